def handler(event, context):
    raise NotImplementedError("stream_notifier")
