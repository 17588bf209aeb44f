"""$connect: authenticate the agent, pick or reclaim its tunnel id, store the connection row."""

from httptunnel import connect
from httptunnel.edge import lambda_edge, ws_status


@lambda_edge(bad_event=ws_status(400), failure=ws_status(500))  # never a traceback to the handshake
def handler(event, context):
    return connect.connect(event)
