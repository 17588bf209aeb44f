"""DynamoDB Stream (pending requests) -> EventBridge TunnelRequestCompleted events, partial-batch failures."""

from httptunnel import notifier
from httptunnel.edge import every_record_failed, lambda_edge


# notifier.notify reports per-record failures itself; anything escaping it fails the whole
# batch explicitly, so Lambda retries exactly these records.
@lambda_edge(bad_event=every_record_failed, failure=every_record_failed)
def handler(event, context):
    return notifier.notify(event)
