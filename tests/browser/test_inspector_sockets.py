"""The inspector's WebSocket sessions view in headless Chromium (issue 24 item 4): a caller socket
appears live, its messages are shown as text (markup in them never runs), a message typed in the
page reaches the caller (or the app), and the close shows up without a reload."""

from __future__ import annotations

from typing import Any

import pytest

from httptunnel import protocol
from tests.browser.conftest import until, wait_for

pytestmark = pytest.mark.browser  # make test-browser, never make test

HOSTILE = "<script>window.__pwned = 'ws'</script><img src=x onerror=\"window.__pwned = 'ws-img'\"> & \u202e"


class Caller:
    """The server's side of one caller socket on the fake API Gateway."""

    def __init__(self, ui: Any, socket_id: str) -> None:
        self.conn = ui.gateway.conns[-1]
        self.socket_id = socket_id
        self.seq = 0

    def texts(self) -> list[str]:
        return [t for f in self.conn.received if f.get("type") == "ws_message" and f.get("socket_id") == self.socket_id
                for t in f["data"]]

    async def ack(self) -> None:
        seqs = [f["seq"] for f in self.conn.received if f.get("type") == "ws_message" and f.get("socket_id") == self.socket_id]
        if seqs:
            await self.conn.send({"type": "ws_ack", "socket_id": self.socket_id, "seq": max(seqs)})

    async def open(self) -> None:
        await self.conn.ws.send_str(protocol.encode(protocol.WsOpen(
            "req-1", self.socket_id, "/ws?room=1", {"Origin": ["https://page.example"], "Sec-WebSocket-Protocol": ["chat"]},
            5000)))
        await wait_for(lambda: any(f.get("type") == "ws_opened" for f in self.conn.received), "ws_opened")

    async def say(self, text: str) -> None:
        await self.conn.send({"type": "ws_message", "socket_id": self.socket_id, "seq": self.seq, "data": [text]})
        self.seq += 1
        await wait_for(lambda: "echo: " + text in self.texts(), f"the echo of {text[:20]!r}")
        await self.ack()


async def test_sessions_view_lists_live_shows_messages_as_text_and_sends_into_a_session(ui):
    page = ui.page
    await page.click("#view-sockets")
    await page.wait_for_selector("#sock-empty:not([hidden])")
    assert await page.is_hidden("#listpane") and await page.is_hidden("#f-path")  # the request filters give way

    caller = Caller(ui, "conn-A=")
    await caller.open()
    await until(page, "() => document.querySelectorAll('#sockrows tr').length === 1", "the session row, live")
    assert "open · chat" in await page.text_content("#sockrows tr[data-id='1'] .sstate")
    assert "1 open" in await page.text_content("#sock-count")
    await caller.say("hello ✓")
    await caller.say(HOSTILE)
    await until(page, "() => (document.querySelector('#sockrows tr[data-id=\"1\"] .msgs') || {}).textContent === '2 / 2'",
                "the row's counts, live")

    await page.click("#sockrows tr[data-id='1']")
    await page.wait_for_selector("#sock-msgs")
    texts = await page.locator("#sock-msgs pre").all_text_contents()
    assert texts[0] == "echo: " + HOSTILE.replace("\u202e", "\\u202e")  # newest first; bidi control made visible
    assert texts[1] == HOSTILE.replace("\u202e", "\\u202e") and texts[-1] == "hello ✓"
    assert await page.evaluate("window.__pwned === undefined")
    assert await page.locator("#detail img, #detail script").count() == 0
    assert "Origin" in await page.text_content("#detail")
    await ui.shot("20-websocket-session")

    # a text typed in the page reaches the caller (the default) ...
    await page.fill("#sock-text", "from the inspector <b>bold?</b>")
    await page.click("#sock-send")
    await until(page, "() => document.getElementById('sock-result').textContent.startsWith('Sent')", "sent")
    await wait_for(lambda: "from the inspector <b>bold?</b>" in caller.texts(), "the injected text at the caller")
    await caller.ack()
    await until(page, "() => document.querySelector('#sock-msgs .badge') !== null", "the injected message, marked")
    assert "from the inspector <b>bold?</b>" not in ui.site.ws_received
    # ... or the app
    await page.select_option("#sock-to", "app")
    await page.fill("#sock-text", "to the app")
    await page.click("#sock-send")
    await wait_for(lambda: "to the app" in ui.site.ws_received, "the injected text at the app")
    await wait_for(lambda: "echo: to the app" in caller.texts(), "the app's answer reaches the caller")
    await caller.ack()

    # the caller closes: the detail says so without a reload, and sending is over
    await caller.conn.send({"type": "ws_close", "socket_id": "conn-A=", "code": 4100, "reason": "bye"})
    await page.wait_for_selector("#sock-ended")
    assert "The caller closed it with 4100 (bye)" in await page.text_content("#sock-ended")
    assert await page.locator("#sock-send-form").count() == 0
    assert "closed 4100 by caller" in await page.text_content("#sockrows tr[data-id='1'] .sstate")
    assert await page.text_content("#sock-count") == ""
    result = await page.evaluate("""() => fetch('/api/sockets/1/send', {method: 'POST',
        headers: {'Content-Type': 'application/json'}, body: JSON.stringify({text: 'late'})})
      .then(r => r.json().then(j => [r.status, j.error]))""")
    assert result == [409, "WebSocket session #1 is closed (by the caller with 4100): nothing was sent"]
    ui.expected_errors += 1  # the browser logs the refused fetch (409) as a console error
    await ui.shot("21-websocket-closed")

    await page.click("#view-requests")
    await page.wait_for_selector("#listpane", state="visible")


async def test_the_sessions_list_fits_a_phone(ui):
    page = ui.page
    await page.set_viewport_size({"width": 390, "height": 844})
    caller = Caller(ui, "conn-P=")
    await caller.open()
    await caller.say("hi")
    await page.click("#view-sockets")
    await until(page, "() => document.querySelectorAll('#sockrows tr').length === 1", "the session row")
    placed = await page.evaluate("""() => {
      const pane = document.getElementById('sockpane').getBoundingClientRect();
      const out = {};
      for (const td of document.querySelector('#sockrows tr').children) {
        const r = td.getBoundingClientRect();
        out[td.className.split(' ')[0]] = getComputedStyle(td).display !== 'none' && r.width > 0
          && r.left >= pane.left - 1 && r.right <= pane.right + 1;
      }
      out.page = document.documentElement.scrollWidth <= document.documentElement.clientWidth;
      return out;
    }""")
    assert placed["uri"] and placed["sstate"] and placed["msgs"] and placed["page"], placed  # path, state, counts show
    await page.click("#sockrows tr[data-id='1']")
    await page.wait_for_selector("#sock-send", state="visible")
    await ui.shot("22-websocket-phone")
