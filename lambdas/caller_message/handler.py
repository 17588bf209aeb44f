"""Caller WebSocket API $default: one caller frame, numbered, to the agent. Always 200: the socket stays up."""

from httptunnel import caller_ws
from httptunnel.edge import lambda_edge, ws_status


@lambda_edge(bad_event=ws_status(200), failure=ws_status(200))
def handler(event, context):
    return caller_ws.message(event)
