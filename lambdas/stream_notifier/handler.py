"""DynamoDB Stream (pending requests) -> EventBridge TunnelRequestCompleted events, partial-batch failures."""

from httptunnel import notifier


def handler(event, context):
    # notifier.notify reports per-record failures itself; anything else escaping is a real
    # error and Lambda retries the whole batch, which is the correct behaviour for it.
    return notifier.notify(event)
