"""A Stripe-style webhook test: the edge checks Stripe-Signature (and its timestamp) first.

Run like test_github_webhook.py (`pytest examples/webhooks --ttf-stack .local/stack.json`).
The test plays Stripe, signing as documented (https://stripe.com/docs/webhooks/signatures):
`Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the endpoint
secret>`; the edge refuses a timestamp more than 300 s away. The receiver is an ASGI app
(FastAPI or Starlette would do the same), served in-process with app=.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from typing import Any, Callable

SECRET = "whsec_example_endpoint_secret"


class Receiver:
    """The app under test: a raw ASGI 3 app (with lifespan, as frameworks have)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.started = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                self.started = True
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.events.append(json.loads(body))
        answer = json.dumps({"received": True}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})


def deliver(url: str, body: bytes, secret: str, at: int | None = None) -> tuple[int, bytes]:
    stamp = int(time.time()) if at is None else at
    signature = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8", "Stripe-Signature": f"t={stamp},v1={signature}",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def public(tunnel: Any, path: str) -> str:
    return (tunnel.path_url or tunnel.url).rstrip("/") + path


EVENT = {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_1", "amount": 2000}}}


def test_a_signed_event_reaches_the_app(ttf_tunnel: Callable[..., Any]) -> None:
    app = Receiver()
    tunnel = ttf_tunnel(app=app, verify_webhook=[f"stripe:{SECRET}"])
    assert app.started  # lifespan startup ran before the tunnel opened
    body = json.dumps(EVENT).encode()
    assert deliver(public(tunnel, "/stripe/webhook"), body, SECRET) == (200, b'{"received": true}')
    assert tunnel.wait_for_request(path="/stripe/webhook", timeout=30).request.data == body
    assert app.events == [EVENT]


def test_a_replayed_event_is_refused_at_the_edge(ttf_tunnel: Callable[..., Any]) -> None:
    app = Receiver()
    tunnel = ttf_tunnel(app=app, verify_webhook=[f"stripe:{SECRET}"])
    stale = int(time.time()) - 3600  # signed correctly, an hour ago: a replay
    status, _ = deliver(public(tunnel, "/stripe/webhook"), json.dumps(EVENT).encode(), SECRET, at=stale)
    assert status == 403
    assert tunnel.wait_for_request(path="/stripe/webhook", where=lambda r: r.source == "denied", timeout=30).status == 403
    assert app.events == []
