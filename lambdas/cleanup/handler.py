def handler(event, context):
    raise NotImplementedError("cleanup")
