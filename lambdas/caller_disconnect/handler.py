"""Caller WebSocket API $disconnect: drop the socket row, tell the agent the caller's close code."""

from httptunnel import caller_ws
from httptunnel.edge import lambda_edge, ws_status


@lambda_edge(bad_event=ws_status(400), failure=ws_status(500))
def handler(event, context):
    return caller_ws.disconnect(event)
