"""Scheduled cleanup: expired rows in both tables, connections whose socket is gone. Bounded, idempotent."""

from httptunnel import cleanup
from httptunnel.edge import lambda_edge, schedule_failed


@lambda_edge(bad_event=schedule_failed, failure=schedule_failed)  # the next tick retries
def handler(event, context):
    return cleanup.run(context)
