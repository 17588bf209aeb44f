def handler(event, context):
    raise NotImplementedError("forward")
