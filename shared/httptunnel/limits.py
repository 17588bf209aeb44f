"""AWS limits the code and the local emulator both respect (see shared/README.md)."""

KB = 1024
MB = 1024 * 1024

WS_FRAME_MAX = 32 * KB  # agent -> API Gateway frame; bigger closes the socket (1009)
WS_MESSAGE_MAX = 128 * KB  # WebSocket message / PostToConnection payload
WS_IDLE_TIMEOUT_S = 10 * 60
WS_MAX_CONNECTION_AGE_S = 2 * 60 * 60
HTTP_INTEGRATION_TIMEOUT_S = 30
FORWARD_WAIT_S = 25  # forward gives up (504) after this
# The function URL edge (forward_stream): a request lasts at most MAX_STREAM_S (Terraform
# max_stream_seconds); the function's timeout is that + STREAM_MARGIN_S, so Lambda's 15 minutes
# less the margin is the cap (shared/README.md "The live web").
MAX_STREAM_S = 600
STREAM_MARGIN_S = 15
MAX_STREAM_CAP_S = 900 - STREAM_MARGIN_S
HTTP_PAYLOAD_MAX = 10 * MB
HTTP_REQUEST_LINE_AND_HEADERS_MAX = 10_240
LAMBDA_PAYLOAD_MAX = 6 * MB  # synchronous invoke, each way (the JSON event / result)
EVENTBRIDGE_ENTRY_MAX = 256 * KB

# Our own budget choices derived from the above.
# A server -> agent http_request carries the body inline when the whole message stays
# within WS_MESSAGE_MAX with headroom for headers and URLs; bigger goes through S3.
INLINE_REQUEST_BODY_MAX = 64 * KB
# An agent -> server message must fit in ONE frame: the agent sends the body inline only
# when the encoded message is at most this many bytes, otherwise it PUTs it to S3.
AGENT_MESSAGE_MAX = 30 * KB
# Bodies through S3 are bounded (a clear 413 / 502 beyond).
BODY_MAX = 10 * MB
# The response Lambda stores an inline answer only up to this many bytes: what ttf sends
# (AGENT_MESSAGE_MAX) plus room for the channel v2 fields its session adds (`seq`, `ack`).
# A bigger inline message (API Gateway would take 128 KB in frames) becomes an error answer.
AGENT_INLINE_ANSWER_MAX = AGENT_MESSAGE_MAX + 256


def inline_too_big(frame: str) -> bool:
    """An agent message (as received) over AGENT_INLINE_ANSWER_MAX UTF-8 bytes."""
    return len(frame.encode("utf-8")) > AGENT_INLINE_ANSWER_MAX
