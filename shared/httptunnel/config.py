"""The ONLY module that reads environment variables.

Each getter reads exactly the variable(s) named in ``GETTER_VARIABLES``; ``FUNCTION_VARIABLES``
says which variables each Lambda reads (shared/README.md documents the same table and a
contract test checks the two agree with this module and with Terraform).
Getters read the environment on every call (cheap), so tests can monkeypatch them.
"""

from __future__ import annotations

import os

from . import limits


class ConfigError(RuntimeError):
    """A required variable is missing or malformed (a deployment mistake, not a client error)."""


GETTER_VARIABLES: dict[str, tuple[str, ...]] = {
    "connections_table": ("CONNECTIONS_TABLE",),
    "pending_table": ("PENDING_TABLE",),
    "management_endpoint": ("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI", "WS_MANAGEMENT_ENDPOINT"),
    "public_http_url": ("PUBLIC_HTTP_URL",),
    "tunnel_domain": ("TUNNEL_DOMAIN",),
    "subdomain_url_template": ("SUBDOMAIN_URL_TEMPLATE",),
    "body_bucket": ("BODY_BUCKET",),
    "require_auth": ("REQUIRE_AUTH",),
    "jwt_secret": ("JWT_SECRET",),
    "jwt_secret_ssm_parameter": ("JWT_SECRET_SSM_PARAMETER",),
    "jwt_secret_arn": ("JWT_SECRET_ARN",),
    "jwks": ("JWKS",),
    "jwks_url": ("JWKS_URL",),
    "jwt_issuer": ("JWT_ISSUER",),
    "jwt_audience": ("JWT_AUDIENCE",),
    "jwt_subdomains_claim": ("JWT_SUBDOMAINS_CLAIM",),
    "jwt_max_lifetime": ("JWT_MAX_LIFETIME",),
    "event_bus_name": ("EVENT_BUS_NAME",),
    "log_level": ("LOG_LEVEL",),
    "forward_wait_seconds": ("FORWARD_WAIT_SECONDS",),
    "max_stream_seconds": ("MAX_STREAM_SECONDS",),
    "path_routing": ("PATH_ROUTING",),
    "path_referer_routing": ("PATH_REFERER_ROUTING",),
    "request_id_key": ("REQUEST_ID_KEY",),
    "request_id_key_ssm_prefix": ("REQUEST_ID_KEY_SSM_PREFIX",),
    "request_id_key_version": ("REQUEST_ID_KEY_VERSION",),
    "secrets_kms_key_id": ("SECRETS_KMS_KEY_ID",),
    "edge_origin_secret_ssm_parameter": ("EDGE_ORIGIN_SECRET_SSM_PARAMETER",),
    "tunnel_limits": ("TUNNEL_RATE_LIMIT", "TUNNEL_BURST_LIMIT", "TUNNEL_MAX_IN_FLIGHT"),
    "tunnel_max_open_streams": ("TUNNEL_MAX_OPEN_STREAMS",),
    "token_max_open_streams": ("TOKEN_MAX_OPEN_STREAMS",),
    "agent_message_budget": ("AGENT_MESSAGE_RATE_LIMIT", "AGENT_MESSAGE_BURST_LIMIT"),
    "caller_message_budget": ("CALLER_MESSAGE_RATE_LIMIT", "CALLER_MESSAGE_BURST_LIMIT"),
    "caller_management_endpoint": ("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI", "CALLER_WS_MANAGEMENT_ENDPOINT"),
    "caller_ws_domain": ("CALLER_WS_DOMAIN",),
}

_AUTH = ("REQUIRE_AUTH", "JWT_SECRET", "JWT_SECRET_SSM_PARAMETER", "JWT_SECRET_ARN", "JWKS",
         "JWKS_URL", "JWT_ISSUER", "JWT_AUDIENCE", "JWT_SUBDOMAINS_CLAIM", "JWT_MAX_LIFETIME")
_MGMT = ("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI", "WS_MANAGEMENT_ENDPOINT")
_ID_KEY = ("REQUEST_ID_KEY", "REQUEST_ID_KEY_SSM_PREFIX", "REQUEST_ID_KEY_VERSION")
_CALLER_MGMT = ("CALLER_WS_MANAGEMENT_ENDPOINT",)  # the caller WebSocket API's @connections (issue 24)
_FAIR = ("TUNNEL_RATE_LIMIT", "TUNNEL_BURST_LIMIT", "TUNNEL_MAX_IN_FLIGHT")  # issue 29 (fairness)

FUNCTION_VARIABLES: dict[str, tuple[str, ...]] = {
    "connect": ("CONNECTIONS_TABLE", *_AUTH, "SECRETS_KMS_KEY_ID", "LOG_LEVEL"),
    "disconnect": ("CONNECTIONS_TABLE", "LOG_LEVEL"),
    "response": ("CONNECTIONS_TABLE", "PENDING_TABLE", *_MGMT, "PUBLIC_HTTP_URL", "SUBDOMAIN_URL_TEMPLATE",
                 "PATH_ROUTING", *_ID_KEY, *_CALLER_MGMT, "AGENT_MESSAGE_RATE_LIMIT", "AGENT_MESSAGE_BURST_LIMIT",
                 "LOG_LEVEL"),
    "forward": ("CONNECTIONS_TABLE", "PENDING_TABLE", *_MGMT, "PUBLIC_HTTP_URL", "TUNNEL_DOMAIN", "PATH_ROUTING",
                "BODY_BUCKET", "FORWARD_WAIT_SECONDS", "PATH_REFERER_ROUTING", *_ID_KEY, "SECRETS_KMS_KEY_ID", *_FAIR,
                "LOG_LEVEL"),
    "forward_stream": ("CONNECTIONS_TABLE", "PENDING_TABLE", *_MGMT, "PUBLIC_HTTP_URL", "TUNNEL_DOMAIN",
                       "PATH_ROUTING", "BODY_BUCKET", "MAX_STREAM_SECONDS", "PATH_REFERER_ROUTING", *_ID_KEY,
                       "SECRETS_KMS_KEY_ID", "EDGE_ORIGIN_SECRET_SSM_PARAMETER", *_FAIR, "TUNNEL_MAX_OPEN_STREAMS",
                       "TOKEN_MAX_OPEN_STREAMS", "LOG_LEVEL"),
    "cleanup": ("CONNECTIONS_TABLE", "PENDING_TABLE", *_MGMT, "JWT_SECRET_SSM_PARAMETER", "LOG_LEVEL"),
    "stream_notifier": ("CONNECTIONS_TABLE", "EVENT_BUS_NAME", "LOG_LEVEL"),
    "caller_connect": ("CONNECTIONS_TABLE", "PENDING_TABLE", *_MGMT, "CALLER_WS_DOMAIN", "PATH_ROUTING", *_ID_KEY,
                       "PUBLIC_HTTP_URL", "EDGE_ORIGIN_SECRET_SSM_PARAMETER", *_FAIR, "LOG_LEVEL"),
    "caller_message": ("CONNECTIONS_TABLE", *_MGMT, *_CALLER_MGMT, "CALLER_MESSAGE_RATE_LIMIT",
                       "CALLER_MESSAGE_BURST_LIMIT", "LOG_LEVEL"),
    "caller_disconnect": ("CONNECTIONS_TABLE", *_MGMT, "LOG_LEVEL"),
}

# Read when present but never required from Terraform (local/test overrides).
OPTIONAL_VARIABLES: frozenset[str] = frozenset({"AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI", "FORWARD_WAIT_SECONDS",
                                                "REQUEST_ID_KEY"})


def _get(name: str) -> str:
    return os.environ.get(name, "").strip()


def _required(name: str) -> str:
    value = _get(name)
    if not value:
        raise ConfigError(f"environment variable {name} is not set")
    return value


def connections_table() -> str:
    return _required("CONNECTIONS_TABLE")


def pending_table() -> str:
    return _required("PENDING_TABLE")


def management_endpoint() -> str:
    """`AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI` (LocalStack/emulator) wins over WS_MANAGEMENT_ENDPOINT.

    Returns "" when neither is set (callers then fall back to the connection's own
    domainName/stage, as API Gateway's callback URL).
    """
    return (_get("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI") or _get("WS_MANAGEMENT_ENDPOINT")).rstrip("/")


def caller_management_endpoint() -> str:
    """The caller WebSocket API's @connections base (issue 24): `AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI`
    (the emulator serves both APIs' connections there) wins over CALLER_WS_MANAGEMENT_ENDPOINT; ""
    when neither is set (the caller connection's own domainName/stage is used then)."""
    return (_get("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI") or _get("CALLER_WS_MANAGEMENT_ENDPOINT")).rstrip("/")


def caller_ws_domain() -> str:
    """Host suffix of caller sockets in subdomain form (``<id>.<CALLER_WS_DOMAIN>``); empty = query form only."""
    return _get("CALLER_WS_DOMAIN").strip().lower()


def public_http_url() -> str:
    return _get("PUBLIC_HTTP_URL").rstrip("/")


def tunnel_domain() -> str:
    return _get("TUNNEL_DOMAIN").lower().strip(".")


def subdomain_url_template() -> str:
    return _get("SUBDOMAIN_URL_TEMPLATE")


def body_bucket() -> str:
    return _get("BODY_BUCKET")


def _bool(name: str, default: bool) -> bool:
    value = _get(name).lower()
    if value == "":
        return default
    if value in ("false", "0", "no", "off"):
        return False
    if value in ("true", "1", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def require_auth() -> bool:
    """Secure by default: unset means true; only an explicit false lets anonymous agents in."""
    return _bool("REQUIRE_AUTH", True)


def path_routing() -> bool:
    """Whether ``/<id>/...`` on the API's own host reaches a tunnel (default true). Path mode
    serves every tunnel from ONE origin; a multi-tenant deployment with a wildcard custom
    domain turns it off and uses subdomains only."""
    return _bool("PATH_ROUTING", True)


def path_referer_routing() -> bool:
    """Single-tenant switch (Terraform ``path_referer_routing``), off unless explicitly true."""
    value = _get("PATH_REFERER_ROUTING").lower()
    if value in ("", "false", "0", "no", "off"):
        return False
    if value in ("true", "1", "yes", "on"):
        return True
    raise ConfigError(f"PATH_REFERER_ROUTING must be true or false, got {value!r}")


def jwt_secret() -> str:
    return os.environ.get("JWT_SECRET", "")


def jwt_secret_ssm_parameter() -> str:
    return _get("JWT_SECRET_SSM_PARAMETER")


def jwt_secret_arn() -> str:
    return _get("JWT_SECRET_ARN")


def jwks() -> str:
    return _get("JWKS")


def jwks_url() -> str:
    return _get("JWKS_URL")


def jwt_issuer() -> str:
    return _get("JWT_ISSUER")


def jwt_audience() -> str:
    return _get("JWT_AUDIENCE")


def jwt_subdomains_claim() -> str:
    return _get("JWT_SUBDOMAINS_CLAIM") or "tunnel_subdomains"


def jwt_max_lifetime() -> int:
    """Longest accepted token lifetime in seconds (``exp - iat``); 0 = no limit."""
    raw = _get("JWT_MAX_LIFETIME")
    if not raw:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"JWT_MAX_LIFETIME must be a whole number of seconds, got {raw!r}") from None
    if value < 0:
        raise ConfigError("JWT_MAX_LIFETIME must be >= 0 (0 = no limit)")
    return value


def event_bus_name() -> str:
    return _get("EVENT_BUS_NAME") or "default"


def log_level() -> str:
    return (_get("LOG_LEVEL") or "INFO").upper()


def _seconds(name: str, default: float, maximum: float) -> float:
    """A number of seconds in (0, maximum]; ``default`` when unset."""
    raw = _get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not 0 < value <= maximum:
        raise ConfigError(f"{name} must be in (0, {maximum}]")
    return value


def forward_wait_seconds() -> float:
    """How long forward waits for the agent. Default 25 s; lower values are for tests only."""
    return _seconds("FORWARD_WAIT_SECONDS", float(limits.FORWARD_WAIT_S), limits.FORWARD_WAIT_S)


def max_stream_seconds() -> float:
    """The longest a streamed request may last on the function URL edge (Terraform
    ``max_stream_seconds``, default 600); the function's timeout is this plus a margin."""
    return _seconds("MAX_STREAM_SECONDS", float(limits.MAX_STREAM_S), limits.MAX_STREAM_CAP_S)


def request_id_key() -> str:
    """The request-id key itself (tests and local overrides; Terraform uses the SSM parameters)."""
    return os.environ.get("REQUEST_ID_KEY", "")


def request_id_key_ssm_prefix() -> str:
    """``/<name_prefix>/request-id-key-``: the SSM SecureStrings ``<prefix>0`` and ``<prefix>1``."""
    return _get("REQUEST_ID_KEY_SSM_PREFIX")


def request_id_key_version() -> int:
    """The version request ids are minted with (default 1); the previous one still verifies."""
    raw = _get("REQUEST_ID_KEY_VERSION")
    if not raw:
        return 1
    if not raw.isdigit() or not 1 <= int(raw) <= 999_999:
        raise ConfigError(f"REQUEST_ID_KEY_VERSION must be a whole number 1-999999, got {raw!r}")
    return int(raw)


def secrets_kms_key_id() -> str:
    """The KMS key (ARN) that seals the edge policy's webhook secrets on the connection row
    (``httptunnel.sealed``): connect encrypts with it, forward names it when it decrypts.
    Terraform always sets it; empty = secrets are stored unsealed (the layer without Terraform)."""
    return _get("SECRETS_KMS_KEY_ID")


def edge_origin_secret_ssm_parameter() -> str:
    """The SSM SecureString holding the secret CloudFront adds to origin requests (Terraform, with a
    domain on the function URL edge); empty = no CloudFront in front (``edge_origin``)."""
    return _get("EDGE_ORIGIN_SECRET_SSM_PARAMETER")


def _limit(name: str) -> float:
    """A limit >= 0 from the environment; unset or 0 = no limit (issue 29, ``fairness``)."""
    raw = _get(name)
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not 0 <= value < float("inf"):
        raise ConfigError(f"{name} must be a number >= 0 (0 = no limit)")
    return value


def tunnel_limits() -> tuple[float, float, int]:
    """The operator's per-tunnel ceilings: (requests/s, burst, requests in flight); 0 = none."""
    return _limit("TUNNEL_RATE_LIMIT"), _limit("TUNNEL_BURST_LIMIT"), int(_limit("TUNNEL_MAX_IN_FLIGHT"))


def tunnel_max_open_streams() -> int:
    """Requests one tunnel may hold open at once on the function URL edge, counted across execution
    environments (``stream_holds``); 0 = no such count."""
    return int(_limit("TUNNEL_MAX_OPEN_STREAMS"))


def token_max_open_streams() -> int:
    """Requests the tunnels of one agent token (its ``sub``) may hold open at once on the function
    URL edge, all together, counted across execution environments (``stream_holds``); 0 = no such
    count. Anonymous agents' tunnels are counted per tunnel only."""
    return int(_limit("TOKEN_MAX_OPEN_STREAMS"))


def agent_message_budget() -> tuple[float, float]:
    """Messages one agent socket may send per second, and at once, before it is closed; 0 = none."""
    return _limit("AGENT_MESSAGE_RATE_LIMIT"), _limit("AGENT_MESSAGE_BURST_LIMIT")


def caller_message_budget() -> tuple[float, float]:
    """Caller messages one tunnel may receive per second, and at once, before the caller socket
    that goes over is closed (``fairness.caller_message_flooding``); 0 = none."""
    return _limit("CALLER_MESSAGE_RATE_LIMIT"), _limit("CALLER_MESSAGE_BURST_LIMIT")
