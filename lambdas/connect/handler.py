"""$connect: authenticate the agent, pick or reclaim its tunnel id, store the connection row."""

from httptunnel import apigw, connections, log


def handler(event, context):
    try:
        return connections.connect(event)
    except apigw.BadEvent as exc:
        log.error("connect: malformed event", error=str(exc))
        return apigw.ws_response(400, "bad request")
    except Exception as exc:  # outer edge: never leak a traceback to the handshake
        log.error("connect failed", error=type(exc).__name__, detail=str(exc)[:300])
        return apigw.ws_response(500, "internal error")
