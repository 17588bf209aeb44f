"""$default: the agent's messages (ready, ping, http_response, error). Always 200: the socket stays up."""

from httptunnel import apigw, log, responses


def handler(event, context):
    try:
        return responses.handle(event)
    except apigw.BadEvent as exc:
        log.error("response: malformed event", error=str(exc))
    except Exception as exc:  # outer edge: log, keep the connection
        log.error("response: message dropped", error=type(exc).__name__, detail=str(exc)[:300])
    return apigw.ws_response(200)
