"""$disconnect: remove the connection row (idempotent)."""

from httptunnel import disconnect
from httptunnel.edge import lambda_edge, ws_status


@lambda_edge(bad_event=ws_status(400), failure=ws_status(500))
def handler(event, context):
    return disconnect.disconnect(event)
