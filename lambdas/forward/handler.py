"""Public HTTP API route: send the request down the agent's WebSocket and wait for its answer."""

from httptunnel import forward
from httptunnel.edge import http_error, lambda_edge


# a clear 502, never a traceback to the caller
@lambda_edge(bad_event=http_error(400, "invalid_request", "bad request"),
             failure=http_error(502, "internal_error", "internal error"))
def handler(event, context):
    return forward.forward(event, context)
