"""Names shared by the code and the infrastructure (Terraform must match; a contract test checks)."""

# connections table
CONN_PK = "connectionId"
CONN_TUNNEL_ID = "tunnelId"
TUNNEL_INDEX = "tunnel-id-index"
TTL_ATTRIBUTE = "ttl"

# pending requests table
PENDING_PK = "requestId"
PENDING_STATUS = "status"
STATUS_PENDING = "pending"
STATUS_COMPLETED = "completed"
STATUS_ERROR = "error"

# EventBridge
EVENT_SOURCE = "http-tunnel"
EVENT_DETAIL_TYPE = "TunnelRequestCompleted"

# S3 body objects
REQUEST_BODY_PREFIX = "req/"
RESPONSE_BODY_PREFIX = "resp/"

# Error header on every error the tunnel itself produces (not the local app's errors).
ERROR_HEADER = "x-tunnel-error"

FUNCTIONS = ("connect", "disconnect", "response", "forward", "cleanup", "stream_notifier")
