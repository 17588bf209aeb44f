"""The API Gateway management API (``@connections``): post to, probe and close an agent's socket.

This is the ONE place the management endpoint is built: ``AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI``
if set, else ``WS_MANAGEMENT_ENDPOINT``, else ``https://<domainName>/<stage>`` of the connection
(API Gateway's own callback URL). A socket that no longer exists answers 410 ``GoneException``:
``post_to_connection`` raises :class:`Gone`, ``connection_alive`` says False, ``close_connection``
is done. Tests replace ``_client`` (the one thing moto lacks).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from botocore.config import Config
from botocore.exceptions import ClientError

from . import aws, config


class Gone(Exception):
    """The WebSocket connection no longer exists (410 GoneException)."""


def management_endpoint(domain_name: str = "", stage: str = "") -> str:
    configured = config.management_endpoint()
    if configured:
        return configured
    if domain_name:
        return f"https://{domain_name}/{stage}" if stage else f"https://{domain_name}"
    raise config.ConfigError("no management endpoint: set WS_MANAGEMENT_ENDPOINT")


_CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2})


def _boto_client(endpoint: str) -> Any:
    return aws.client("apigatewaymanagementapi", endpoint_url=endpoint, config=_CLIENT_CONFIG)


_client: Callable[[str], Any] = _boto_client


def _is_gone(exc: ClientError) -> bool:
    """The management API's answer for a socket that no longer exists (410 GoneException)."""
    return aws.error_code(exc) == "GoneException" or aws.http_status(exc) == 410


def _on_socket(operation: str, connection_id: str, endpoint: str, **params: Any) -> bool:
    """One @connections call; False when the socket is gone (410), other errors raise."""
    try:
        getattr(_client(endpoint), operation)(ConnectionId=connection_id, **params)
    except ClientError as exc:
        if _is_gone(exc):
            return False
        raise
    return True


def post_to_connection(connection_id: str, data: str, endpoint: str) -> None:
    """Send one message. Raises Gone when the socket is gone (410)."""
    if not _on_socket("post_to_connection", connection_id, endpoint, Data=data.encode("utf-8")):
        raise Gone(connection_id)


def post_with_retry(connection_id: str, data: str, endpoint: str, budget_s: float = 1.0) -> None:
    """Post, retrying briefly on Gone/Forbidden: a fresh connection can refuse posts for a few hundred ms."""
    deadline = time.monotonic() + budget_s
    delay = 0.02
    while True:
        try:
            post_to_connection(connection_id, data, endpoint)
            return
        except Gone:
            if time.monotonic() + delay > deadline:
                raise
        except ClientError as exc:
            if aws.error_code(exc) != "ForbiddenException" or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)  # backoff between retries, bounded by the deadline above
        delay = min(delay * 2, 0.2)


def connection_alive(connection_id: str, endpoint: str) -> bool:
    """GET @connections/<id>: False on 410 Gone, True when it answers."""
    return _on_socket("get_connection", connection_id, endpoint)


def close_connection(connection_id: str, endpoint: str) -> None:
    """DELETE @connections/<id>: close the socket (the agent reconnects). Already gone is fine."""
    _on_socket("delete_connection", connection_id, endpoint)
