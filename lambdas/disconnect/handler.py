"""$disconnect: remove the connection row (idempotent)."""

from httptunnel import apigw, connections, log


def handler(event, context):
    try:
        return connections.disconnect(event)
    except apigw.BadEvent as exc:
        log.error("disconnect: malformed event", error=str(exc))
        return apigw.ws_response(400, "bad request")
