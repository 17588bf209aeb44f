"""DynamoDB Stream (pending requests) -> EventBridge TunnelRequestCompleted events, partial-batch failures."""

from httptunnel import stream_notifier
from httptunnel.edge import every_record_failed, lambda_edge


# stream_notifier.notify reports per-record failures itself; anything escaping it fails the whole
# batch explicitly, so Lambda retries exactly these records.
@lambda_edge(bad_event=every_record_failed, failure=every_record_failed)
def handler(event, context):
    return stream_notifier.notify(event)
