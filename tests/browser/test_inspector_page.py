"""The inspector page in headless Chromium: list, select, bodies, filters, live updates, safety, layout."""

from __future__ import annotations

import gzip
import json

import pytest

from scripts.harness.wait import wait_until_async
from tests.browser.conftest import png, until

pytestmark = pytest.mark.browser  # make test-browser, never make test

SCRIPT = "<script>window.__pwned = 'body'</script><img src=x onerror=\"window.__pwned = 'img'\">"


async def test_empty_state_then_list_select_and_body_views(ui):
    page = ui.page
    await page.wait_for_selector("#empty:not([hidden])")
    assert (await page.text_content("#empty-curl")).strip() == "curl -i https://api.example.test/tun123/"
    header = await page.text_content("header")
    assert "tun123" in header and "https://tun123.t.example.test" in header and "online" in header
    assert "0 of max 100 kept" in await page.text_content("#cap")
    await ui.shot("01-empty-state")

    await ui.send("POST", "/echo/orders?x=1", {"Content-Type": ["application/json"]},
                  json.dumps({"order": {"id": 7, "items": [{"sku": "needle-sku", "qty": 2}]}, "note": "hello"}).encode())
    await ui.send("POST", "/echo/upload", {"Content-Type": ["image/png"]}, png())
    await ui.send("GET", "/gzip")
    await ui.send("POST", "/echo/form", {"Content-Type": ["application/x-www-form-urlencoded"]},
                  b"name=Ada+L&city=%C3%89vry&empty=")
    multipart = (b"--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhi there\r\n"
                 b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n"
                 b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\x02\xff\r\n--XyZ--\r\n")
    await ui.send("POST", "/echo/multi", {"Content-Type": ["multipart/form-data; boundary=XyZ"]}, multipart)
    await ui.send("PUT", "/echo/blob", {"Content-Type": ["application/octet-stream"]}, bytes(range(256)))
    await until(page, "() => document.querySelectorAll('#rows tr').length === 6", "six rows")
    assert await ui.rows() == ["6", "5", "4", "3", "2", "1"]
    assert "6 of max 100 kept" in await page.text_content("#cap")

    # JSON: pretty, collapsible, searchable
    await page.click("#rows tr[data-id='1']")
    await page.wait_for_selector("#detail .jtree")
    await page.fill("#detail .jsearch", "needle")
    assert (await page.text_content("#detail .json .tools")).strip().endswith("1 match")
    assert await page.locator("#detail .jtree .hit").count() == 1
    assert await page.locator("#detail .jtree .hit").is_visible()  # its collapsed ancestors were opened
    await ui.shot("02-detail-json")

    # an image body: previewed from a blob: URL
    await page.click("#rows tr[data-id='2']")
    await page.wait_for_selector("#detail img.preview")
    assert await page.eval_on_selector("#detail img.preview", "img => img.complete && img.naturalWidth") == 4
    await ui.shot("03-detail-image")

    # gzip answer: decoded for display only, and labelled so
    await page.click("#rows tr[data-id='3']")
    await page.wait_for_selector("#detail .body .info")
    label = await page.text_content("#detail .body .info")
    assert "Decoded for display (gzip)" in label and "not changed" in label
    detail = await ui.api("/api/requests/3")
    raw = bytes(__import__("base64").b64decode(detail["response_body"]))
    assert gzip.decompress(raw).startswith(b'{"compressed"')  # the capture itself is the compressed bytes

    # a form as a table, multipart parts as a table, binary as a hex dump with offsets
    await page.click("#rows tr[data-id='4']")
    await page.wait_for_selector("#detail table.kv >> text=Ada L")
    assert "Évry" in await page.text_content("#detail .body")
    await page.click("#rows tr[data-id='5']")
    await page.wait_for_selector("#detail .body table.kv >> text=a.bin")
    parts = await page.text_content("#detail .body table.kv")
    assert "title" in parts and "hi there" in parts and "(binary)" in parts
    await ui.shot("04-detail-multipart")
    await page.click("#rows tr[data-id='6']")
    await page.wait_for_selector("#detail pre.hex")
    hexdump = await page.text_content("#detail pre.hex")
    assert hexdump.startswith("00000000  00 01 02 03") and "000000f0  f0 f1" in hexdump
    await ui.shot("05-detail-hex")


async def test_filters(ui):
    page = ui.page
    await ui.send("GET", "/echo/alpha", {"X-Trace": ["abc-123"]})
    await ui.send("POST", "/echo/beta", {"Content-Type": ["text/plain"]}, b"the secret word is kumquat")
    await ui.send("GET", "/missing")  # 404 from the local site
    await until(page, "() => document.querySelectorAll('#rows tr').length === 3", "three rows")

    async def shown(expected: list[str]) -> None:
        await until(page, f"() => JSON.stringify(Array.from(document.querySelectorAll('#rows tr')).map(r => r.dataset.id)) === "
                          f"'{json.dumps(expected, separators=(',', ':'))}'", f"rows {expected}")

    await page.select_option("#f-method", "POST")
    await shown(["2"])
    await page.select_option("#f-method", "")
    await page.select_option("#f-status", "4xx")
    await shown(["3"])
    await page.select_option("#f-status", "")
    await page.fill("#f-path", "alp")
    await shown(["1"])
    await page.fill("#f-path", "")
    await page.fill("#f-text", "KUMQUAT")  # body text, any case
    await shown(["2"])
    await page.fill("#f-text", "abc-123")  # a header value
    await shown(["1"])
    await ui.shot("06-filtered")
    await page.fill("#f-text", "nothing like this")
    await shown([])
    assert "No request matches the filters" in await page.text_content("#empty")
    await page.fill("#f-text", "")
    await page.select_option("#f-time", "5")
    await shown(["3", "2", "1"])


async def test_live_updates_keep_selection_scroll_and_pause(ui):
    page = ui.page
    for i in range(40):
        await ui.send("GET", f"/echo/{i}")
    await until(page, "() => document.querySelectorAll('#rows tr').length === 40", "forty rows")
    await page.click("#rows tr[data-id='20']")
    await page.wait_for_selector("#detail h2 >> text=\"/echo/19\"")
    await page.eval_on_selector("#listpane", "p => { p.scrollTop = 300; }")
    before = await page.evaluate("() => { const p = document.getElementById('listpane'); const r = document.querySelector("
                                 "'#rows tr[data-id=\"20\"]'); window.__row = r; return r.offsetTop - p.scrollTop; }")
    # select some text in the list, as a user copying a path would
    await page.evaluate("() => { const s = getSelection(); s.removeAllRanges(); const r = document.createRange();"
                        " r.selectNodeContents(document.querySelector('#rows tr[data-id=\"20\"] td.uri')); s.addRange(r); }")
    for i in range(3):
        await ui.send("GET", f"/echo/live{i}")
    await until(page, "() => document.querySelectorAll('#rows tr').length === 43", "three more rows, no reload")
    after = await page.evaluate("() => { const p = document.getElementById('listpane'); const r = document.querySelector("
                                "'#rows tr[data-id=\"20\"]'); return [r === window.__row, r.offsetTop - p.scrollTop, "
                                "r.classList.contains('sel'), getSelection().toString()]; }")
    assert after[0] is True  # the same DOM row: nothing was rebuilt
    assert abs(after[1] - before) <= 1  # the row did not move on screen
    assert after[2] is True and after[3] == "/echo/19"  # selection and selected text survived
    assert "/echo/19" in await page.text_content("#detail h2")

    await page.click("#pause")
    assert await page.get_attribute("#pause", "aria-pressed") == "true"
    await ui.send("GET", "/echo/while-paused")
    await until(page, "() => document.getElementById('pending').textContent === '1 new while paused'", "paused count")
    assert len(await ui.rows()) == 43
    await ui.shot("07-paused")
    await page.click("#pause")
    await until(page, "() => document.querySelectorAll('#rows tr').length === 44", "resumed")


async def test_captured_script_and_markup_never_execute(ui):
    page = ui.page
    await ui.send("POST", "/echo/x?q=<script>window.__pwned='uri'</script>".replace(" ", "%20"),
                  {"Content-Type": ["text/html"], "X-Evil": ["<script>window.__pwned='header'</script>"],
                   "X-Img": ["<img src=x onerror=\"window.__pwned='himg'\">"]}, SCRIPT.encode())
    await ui.send("GET", "/page")  # the local app answers HTML with a script and an onerror image
    await until(page, "() => document.querySelectorAll('#rows tr').length === 2", "two rows")
    for entry_id in ("1", "2"):
        await page.click(f"#rows tr[data-id='{entry_id}']")
        await page.wait_for_selector("#detail .part")
        for tab in await page.locator("#detail .tabs button").all():
            await tab.click()
    await page.click("#rows tr[data-id='1']")
    await page.wait_for_selector("#detail pre.text")
    assert SCRIPT in await page.text_content("#detail pre.text")  # shown as text, character for character
    assert "<script>window.__pwned='header'</script>" in await page.text_content("#detail table.kv")
    state = await page.evaluate("() => [window.__pwned, document.querySelectorAll('#detail script, #detail img[src=\"x\"],"
                                " #rows script, #rows img').length]")
    assert state == [None, 0]
    await ui.shot("08-script-as-text")


async def test_keyboard_navigation(ui):
    page = ui.page
    for i in range(3):
        await ui.send("GET", f"/echo/k{i}")
    await until(page, "() => document.querySelectorAll('#rows tr').length === 3", "three rows")
    await page.locator("body").press("j")
    await page.wait_for_selector("#rows tr.sel[data-id='3']")
    await page.keyboard.press("ArrowDown")
    await page.wait_for_selector("#rows tr.sel[data-id='2']")
    await page.wait_for_selector("#detail h2 >> text=\"/echo/k1\"")
    await page.keyboard.press("k")
    await page.wait_for_selector("#rows tr.sel[data-id='3']")
    assert await page.evaluate("() => document.activeElement.dataset.id") == "3"
    await page.keyboard.press("/")
    assert await page.evaluate("() => document.activeElement.id") == "f-text"
    await page.keyboard.press("Escape")
    await page.wait_for_selector("#detail h2 >> text=\"/echo/k2\"")  # row 3's detail, not row 2's
    await page.keyboard.press("e")
    await page.wait_for_selector("#editor")
    assert await page.input_value("#edit-method") == "GET"
    await page.keyboard.press("Escape")  # leaves the method field
    await page.keyboard.press("Escape")  # closes the editor
    await page.wait_for_selector("#editor", state="detached")


async def test_shortcuts_wait_for_the_selected_requests_detail(ui):
    """j/k select at once but the detail loads after: until it has, e (edit) and r (replay) must not
    act on the request shown before. The detail of row 1 is held back to make the gap certain."""
    page = ui.page
    for i in range(2):
        await ui.send("GET", f"/echo/w{i}")
    await until(page, "() => document.querySelectorAll('#rows tr').length === 2", "two rows")
    await page.click("#rows tr[data-id='2']")
    await page.wait_for_selector("#detail h2 >> text=\"/echo/w1\"")
    held: list = []
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.method + " " + request.url))
    await page.route("**/api/requests/1", lambda route: held.append(route))
    await page.keyboard.press("ArrowDown")
    await page.wait_for_selector("#rows tr.sel[data-id='1']")
    await wait_until_async(lambda: held, 10, what="the detail request of row 1, held back")
    await page.keyboard.press("e")
    await page.keyboard.press("r")
    assert await page.locator("#editor").count() == 0  # nothing opened for /echo/w1's request
    await held[0].continue_()
    await page.wait_for_selector("#detail h2 >> text=\"/echo/w0\"")
    assert not [line for line in sent if "/replay" in line]  # and nothing replayed
    await page.unroute("**/api/requests/1")
    await page.keyboard.press("e")
    await page.wait_for_selector("#editor")


async def test_history_size_clear_and_denied_requests(ui):
    page = ui.page
    for i in range(4):
        await ui.send("GET", f"/echo/h{i}")
    await until(page, "() => document.querySelectorAll('#rows tr').length === 4", "four rows")
    await page.fill("#limit", "2")
    await page.press("#limit", "Enter")  # lowering it would drop two: it asks first
    await page.wait_for_selector("#confirm[open]")
    assert "Keep only the newest 2 of the 4" in await page.text_content("#confirm-text")
    await page.click("#confirm-cancel")
    assert len(await ui.rows()) == 4 and await page.input_value("#limit") == "100"
    await page.fill("#limit", "2")
    await page.press("#limit", "Enter")
    await page.wait_for_selector("#confirm[open]")
    await page.click("#confirm-ok")
    await until(page, "() => document.querySelectorAll('#rows tr').length === 2", "history cut to 2")
    await until(page, "() => document.getElementById('cap').textContent.startsWith('2 of max 2 kept')", "cap shown")

    # the edge reports a request it refused for this tunnel
    await ui.gateway.conns[-1].send({"type": "request_denied", "method": "POST", "uri": "/admin?x=1", "status": 403,
                                     "reason": "policy_denied", "headers": {"X-Forwarded-For": ["203.0.113.9"]},
                                     "timestamp": 1700000000000})
    await until(page, "() => document.querySelector('#rows tr[data-id=\"5\"] td.status')", "denied row")
    assert "403 denied" in await page.text_content("#rows tr[data-id='5'] td.status")
    assert "policy_denied" in await page.text_content("#rows tr[data-id='5']")
    await page.select_option("#f-status", "denied")
    await until(page, "() => document.querySelectorAll('#rows tr').length === 1", "only the denied one")
    await page.click("#rows tr[data-id='5']")
    await page.wait_for_selector("#detail >> text=refused by the edge: policy_denied")
    await ui.shot("09-denied")
    await page.select_option("#f-status", "")

    await page.click("#clear")
    await page.click("#confirm-ok")
    await page.wait_for_selector("#empty:not([hidden])")
    assert (await ui.api("/api/requests"))["requests"] == []


async def test_layouts_and_contrast(ui, playwright_browser):
    page = ui.page
    await ui.send("POST", "/echo/a/rather/long/path/that/keeps/going?with=query&and=more", {"Content-Type": ["application/json"]},
                  b'{"a": 1}')
    await ui.send("GET", "/missing")
    await until(page, "() => document.querySelectorAll('#rows tr').length === 2", "two rows")
    await page.click("#rows tr[data-id='1']")
    await page.wait_for_selector("#detail .jtree")
    # the check itself can fail: grey #999 on white (2.8:1) is caught
    await page.evaluate("() => { const p = document.createElement('p'); p.id = 'probe'; p.textContent = 'low contrast probe';"
                        " p.style.color = '#999'; document.getElementById('detail').prepend(p); }")
    assert any("low contrast probe" in f for f in await page.evaluate(CONTRAST))
    await page.evaluate("() => document.getElementById('probe').remove()")
    for width, height, name in ((1280, 800, "10-desktop-1280x800"), (390, 844, "11-phone-390x844")):
        await page.set_viewport_size({"width": width, "height": height})
        overflow = await page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{width}x{height}: the page scrolls sideways by {overflow}px"
        assert await page.locator("#rows tr[data-id='1']").is_visible()
        assert await page.locator("#detail h2").is_visible() or await page.locator("#detail h2").count() == 1
        await ui.shot(name)
        failures = await page.evaluate(CONTRAST)
        assert not failures, f"{width}x{height}: text below WCAG AA contrast: {failures[:10]}"


# Every visible text node's colour against the background it is painted on (the first opaque
# background up the tree); AA: 4.5:1, or 3:1 for large text (>= 24px, or >= 18.66px bold).
CONTRAST = """() => {
  const parse = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const bg = el => { for (; el; el = el.parentElement) { const c = parse(getComputedStyle(el).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) return c.slice(0, 3); } return [255, 255, 255]; };
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!n.textContent.trim() || !el || el.closest('[hidden], dialog:not([open]), option, .sr')) continue;
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height) continue;
    const s = getComputedStyle(el);
    if (s.visibility === 'hidden' || s.display === 'none') continue;
    const fg = parse(s.color).slice(0, 3), back = bg(el);
    const [a, b] = [lum(fg), lum(back)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) out.push(n.textContent.trim().slice(0, 30) + ' ' + ratio.toFixed(2) + ' ' + s.color + ' on ' + back);
  }
  return out;
}"""
