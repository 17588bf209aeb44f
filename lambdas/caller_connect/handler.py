"""Caller WebSocket API $connect: route the caller's socket to its tunnel, ask the agent to open the local one, wait for it."""

from httptunnel import caller_ws
from httptunnel.edge import lambda_edge, ws_status


@lambda_edge(bad_event=ws_status(400), failure=ws_status(500))  # never a traceback to the handshake
def handler(event, context):
    return caller_ws.connect(event, context.get_remaining_time_in_millis())
