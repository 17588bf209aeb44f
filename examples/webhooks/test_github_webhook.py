"""A GitHub-style webhook test: the edge checks X-Hub-Signature-256 before anything reaches the app.

Run it against a running local stack (offline, no account):

    make stack                                   # in another terminal
    pytest examples/webhooks --ttf-stack .local/stack.json

or against a deployment with TTF_ENDPOINT and TTF_TOKEN set. The test plays GitHub: it signs
its own delivery as GitHub documents (https://docs.github.com/webhooks/using-webhooks/
validating-webhook-deliveries: `sha256=` + hex HMAC-SHA256 of the body under the secret). A
real GitHub delivery needs a deployment GitHub can reach; register `tunnel.url + "/webhook"`.
Without an endpoint the tests are skipped, saying why (the ttf pytest plugin).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from typing import Any, Callable

SECRET = "It's a Secret to Everybody"  # GitHub's documented example secret


def receiver(received: list[tuple[str, Any]]) -> Callable[..., Any]:
    """The app under test: a WSGI webhook receiver (Flask or Django would do the same)."""
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        received.append((environ.get("HTTP_X_GITHUB_EVENT", ""), json.loads(body)))
        start_response("204 No Content", [])
        return []
    return app


def deliver(url: str, body: bytes, secret: str, event: str = "push") -> int:
    """What GitHub sends: the JSON body, its event name and its signature."""
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "X-GitHub-Event": event, "X-Hub-Signature-256": signature,
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958", "User-Agent": "GitHub-Hookshot/044aadd"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def public(tunnel: Any, path: str) -> str:
    """The path-based URL where there is one (the local stack's *.localhost names need not resolve)."""
    return (tunnel.path_url or tunnel.url).rstrip("/") + path


def test_a_signed_push_reaches_the_app(ttf_tunnel: Callable[..., Any]) -> None:
    received: list[tuple[str, Any]] = []
    tunnel = ttf_tunnel(app=receiver(received), verify_webhook=[f"github:{SECRET}"])
    body = json.dumps({"ref": "refs/heads/main", "commits": [{"id": "6dcb09b"}]}).encode()
    assert deliver(public(tunnel, "/webhook"), body, SECRET) == 204
    seen = tunnel.wait_for_request(path="/webhook", timeout=30)
    assert (seen.method, seen.status, seen.request.data) == ("POST", 204, body)  # byte for byte
    assert received == [("push", {"ref": "refs/heads/main", "commits": [{"id": "6dcb09b"}]})]


def test_a_forged_delivery_is_refused_at_the_edge(ttf_tunnel: Callable[..., Any]) -> None:
    received: list[tuple[str, Any]] = []
    tunnel = ttf_tunnel(app=receiver(received), verify_webhook=[f"github:{SECRET}"])
    assert deliver(public(tunnel, "/webhook"), b'{"ref": "refs/heads/evil"}', "not the secret") == 403
    denied = tunnel.wait_for_request(path="/webhook", where=lambda r: r.source == "denied", timeout=30)
    assert (denied.status, denied.error) == (403, "webhook_signature_invalid")
    assert received == []  # the app never saw it
