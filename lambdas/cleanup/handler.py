"""Scheduled cleanup: expired rows in both tables, connections whose socket is gone. Bounded, idempotent."""

from httptunnel import janitor


def handler(event, context):
    return janitor.run(context)
