"""Names shared by the code and the infrastructure (Terraform must match; a contract test checks)."""

# connections table
CONN_PK = "connectionId"
CONN_TUNNEL_ID = "tunnelId"
TUNNEL_INDEX = "tunnel-id-index"
TTL_ATTRIBUTE = "ttl"
CONN_SEALED_HOOKS = "sealedHooks"  # the edge policy's webhook secrets, KMS ciphertext (httptunnel.sealed)
# The encryption context of that ciphertext: the key policy (terraform/kms.tf) requires exactly these keys.
SEALED_CONTEXT_TUNNEL = "tunnel"
SEALED_CONTEXT_CONNECTION = "connection"

# pending requests table: answer rows, PK "<request id>:<answering connection id>"
PENDING_PK = "requestId"
ANSWER_REQUEST_ID = "forRequest"
ANSWER_CONNECTION_ID = "connectionId"
PENDING_STATUS = "status"
STATUS_COMPLETED = "completed"
STATUS_ERROR = "error"
# a streamed answer's head (issue 23): the answer row of a request whose body follows as frame
# items "<request id>:<connection id>#<seq>" (no status: the traffic log's filter skips them)
STATUS_STREAMING = "streaming"

# EventBridge
EVENT_SOURCE = "http-tunnel"
EVENT_DETAIL_TYPE = "TunnelRequestCompleted"

# S3 body objects
REQUEST_BODY_PREFIX = "req/"
RESPONSE_BODY_PREFIX = "resp/"

# Error header on every error the tunnel itself produces (not the local app's errors).
ERROR_HEADER = "x-tunnel-error"

# Every x-tunnel-error code forward can answer with -> its HTTP status. forward logs the code
# as `error_code` on its "forwarded" line; the observability module's metric filter counts
# exactly these codes (tests/infra/test_contract.py and tests/unit/test_error_codes.py check both).
ERROR_CODES: dict[str, int] = {
    "invalid_request": 400,
    "basic_auth_required": 401,  # the edge policy (httptunnel.policy)
    "ip_denied": 403,
    "edge_bypass": 403,  # the function URL called around CloudFront (httptunnel.edge_origin)
    "webhook_signature_invalid": 403,
    "tunnel_not_found": 404,
    "payload_too_large": 413,
    "tunnel_busy": 429,
    "basic_auth_throttled": 429,
    "tunnel_rate_limited": 429,  # the tunnel's rate or in-flight ceiling (httptunnel.fairness)
    "websocket_unsupported": 501,  # a WebSocket upgrade: not passed through (yet)
    "agent_gone": 502,
    "internal_error": 502,
    "local_service_error": 502,
    "response_too_large": 502,
    "local_service_unavailable": 503,
    "timeout": 504,
}

FUNCTIONS = ("connect", "disconnect", "response", "forward", "forward_stream", "cleanup", "stream_notifier",
             "caller_connect", "caller_message", "caller_disconnect")

# A caller WebSocket's row in the connections table (issue 24): "ws#<caller connection id>", no tunnelId
# (so never in the GSI); cleanup leaves it to TTL (its socket lives on the caller API, not the agents').
SOCKET_PREFIX = "ws#"

# The streaming function (forward_stream) runs the layer's Runtime API loop through this wrapper
# (its AWS_LAMBDA_EXEC_WRAPPER; the layer is mounted at /opt, its python/ folder holds httptunnel).
STREAM_WRAPPER = "/opt/python/httptunnel/runtime_bootstrap"
