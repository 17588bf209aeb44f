"""Public function URL (RESPONSE_STREAM): send the request down the agent's WebSocket, write the
answer to the caller's stream. Runs under the layer's Runtime API loop (httptunnel.runtime_api,
started by the AWS_LAMBDA_EXEC_WRAPPER script), which hands it a context with open_stream."""

from httptunnel import forward_stream, to_caller
from httptunnel.edge import http_error, lambda_edge

BAD_EVENT = http_error(400, "invalid_request", "bad request")
FAILURE = http_error(502, "internal_error", "internal error")


@lambda_edge(bad_event=BAD_EVENT, failure=FAILURE)
def _serve(event, context):
    forward_stream.forward_stream(event, context)


def handler(event, context):
    refusal = _serve(event, context)  # None, or the clean answer lambda_edge made of a failure
    if refusal is None:
        return None
    stream = getattr(context, "stream", None)
    if stream is None:  # nothing sent yet: the caller gets the clean 4xx/5xx
        to_caller.stream_result(context, refusal)
    elif not stream.closed:  # the head went out: cut the body, Lambda logs the error (trailers)
        stream.fail("internal_error", "the answer failed after its head was sent")
    return None
