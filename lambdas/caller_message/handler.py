"""Caller frames FIFO queue -> the agent: one caller socket's frames, in order, numbered (shared/README.md
"Caller WebSockets"). Answers partial batch failures: a frame not sent and its socket's later frames."""

from httptunnel import caller_ws
from httptunnel.edge import lambda_edge


# caller_ws.message reports per-frame failures itself; a batch it could not even read, or anything
# escaping it, gives every record back to the queue (which keeps each socket's order).
@lambda_edge(bad_event=caller_ws.every_frame_failed, failure=caller_ws.every_frame_failed)
def handler(event, context):
    return caller_ws.message(event)
