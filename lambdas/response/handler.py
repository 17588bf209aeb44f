"""$default: the agent's messages (ready, ping, http_response, error). Always 200: the socket stays up."""

from httptunnel import response
from httptunnel.edge import lambda_edge, ws_status


@lambda_edge(bad_event=ws_status(200), failure=ws_status(200))  # a bad message is logged and dropped
def handler(event, context):
    return response.handle(event)
