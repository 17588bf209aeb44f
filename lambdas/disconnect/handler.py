def handler(event, context):
    raise NotImplementedError("disconnect")
