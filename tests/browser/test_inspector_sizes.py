"""The inspector at the sizes people use (issue 28): 1280x800, 1024x768 and 390x844.

At each: status, method, path and duration are inside the list pane (host and time give way
first); every column heading sits over its own cells; the detail pane is usable; Esc in a filter
box restores the list, and the detail pane lets go of a request the list no longer shows.
A screenshot of each state goes to build/inspector-screenshots/."""

from __future__ import annotations

import pytest

from tests.browser.conftest import until

pytestmark = pytest.mark.browser  # make test-browser, never make test

SIZES = [(1280, 800), (1024, 768), (390, 844)]
ESSENTIAL = ["method", "uri", "status", "dur"]
LONG = "/echo/customers/12345/orders/67890/items/with/a/rather/long/path?expand=everything&page=2&sort=-created"

# For the first row: which columns show, whether each is inside the list pane, and whether each
# visible heading sits over its cell (same left edge and width).
COLUMNS = """() => {
  const pane = document.getElementById('listpane').getBoundingClientRect();
  const heads = Array.from(document.querySelectorAll('#list thead th'));
  const cells = Array.from(document.querySelector('#rows tr').children);
  const shown = el => getComputedStyle(el).display !== 'none';
  const out = {pane: [pane.left, pane.right], columns: {}, misaligned: []};
  cells.forEach((td, i) => {
    const r = td.getBoundingClientRect();
    const name = td.className.split(' ')[0];
    out.columns[name] = {shown: shown(td), inside: r.left >= pane.left - 1 && r.right <= pane.right + 1 && r.width > 0,
                         left: r.left, right: r.right};
    const th = heads[i];
    if (!th || shown(th) !== shown(td)) {
      out.misaligned.push(name + ': heading ' + (th ? 'shown=' + shown(th) : 'missing'));
      return;
    }
    if (shown(td)) {
      const h = th.getBoundingClientRect();
      if (Math.abs(h.left - r.left) > 1 || Math.abs(h.width - r.width) > 1) {
        out.misaligned.push(name + ': heading at ' + h.left + ', cell at ' + r.left);
      }
    }
  });
  return out;
}"""


async def fill_list(ui) -> None:
    await ui.send("GET", "/echo/alpha", {"Host": ["a-rather-long-subdomain-name.t.example.test"]})
    await ui.send("POST", LONG, {"Content-Type": ["application/json"]}, b'{"a": 1}')
    await ui.send("GET", "/missing")
    await until(ui.page, "() => document.querySelectorAll('#rows tr').length === 3", "three rows")


@pytest.mark.parametrize("width,height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
async def test_essential_columns_headings_and_detail_at_each_size(ui, width, height):
    page = ui.page
    await page.set_viewport_size({"width": width, "height": height})
    await fill_list(ui)
    layout = await page.evaluate(COLUMNS)
    for name in ESSENTIAL:
        column = layout["columns"][name]
        assert column["shown"] and column["inside"], f"{width}x{height}: {name} not inside the list pane {layout}"
    assert not layout["misaligned"], f"{width}x{height}: headings off their columns: {layout['misaligned']}"
    overflow = await page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{width}x{height}: the page scrolls sideways by {overflow}px"
    await ui.shot(f"30-{width}x{height}-list")

    await page.click("#rows tr[data-id='2']")
    await page.wait_for_selector("#detail .part")
    usable = await page.evaluate("""() => {
      const d = document.getElementById('detail');
      const r = d.getBoundingClientRect();
      const visible = Math.min(r.bottom, innerHeight) - Math.max(r.top, 0);
      const scrolls = document.scrollingElement.scrollHeight > innerHeight;
      return {visible: visible, third: innerHeight / 3, tall: d.scrollHeight, scrolls: scrolls,
              reachable: scrolls || d.clientHeight >= innerHeight / 3};
    }""")
    assert usable["visible"] >= usable["third"], f"{width}x{height}: the detail pane shows {usable}"
    await ui.shot(f"31-{width}x{height}-detail")


@pytest.mark.parametrize("width,height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
async def test_escape_in_a_filter_box_restores_the_list_and_detail_lets_go(ui, width, height):
    page = ui.page
    await page.set_viewport_size({"width": width, "height": height})
    await fill_list(ui)
    await page.click("#rows tr[data-id='3']")
    await page.wait_for_selector("#detail h2 >> text=\"/missing\"")
    for box in ("#f-path", "#f-text"):
        await page.fill(box, "alpha")
        await until(page, "() => document.querySelectorAll('#rows tr').length === 1", f"{box}: filtered to one row")
        # the selected row is no longer listed: the detail pane must not keep showing it
        await until(page, "() => !document.querySelector('#detail h2')", f"{box}: detail of an unlisted row dropped")
        await ui.shot(f"32-{width}x{height}-filtered")
        await page.focus(box)
        await page.keyboard.press("Escape")  # Chromium clears a search box and fires search, not input
        assert await page.input_value(box) == ""
        await until(page, "() => document.querySelectorAll('#rows tr').length === 3", f"{box}: Esc restored the list")
    await ui.shot(f"33-{width}x{height}-esc-restored")


async def test_copy_banner_tab_order_tick_key_and_host_note(ui):
    page = ui.page
    await fill_list(ui)
    await page.click("#rows tr[data-id='1']")
    await page.wait_for_selector("#detail #host-note")
    assert "received Host: 127.0.0.1:" in await page.text_content("#host-note")
    top = await page.evaluate("() => document.getElementById('listpane').getBoundingClientRect().top")
    await page.click("#copy-curl")
    await page.wait_for_selector("#notice:not([hidden])")
    assert "null" not in await page.text_content("#command-box")  # no stray null under the command
    await ui.shot("34-copied-banner")
    after = await page.evaluate("() => document.getElementById('listpane').getBoundingClientRect().top")
    assert after == top, "the copied banner pushed the list down"
    # Tab from the selected row goes to the detail's first button, not through one tick box per row
    await page.focus("#rows tr[data-id='1']")
    await page.keyboard.press("Tab")
    assert await page.evaluate("() => document.activeElement.id") == "do-replay"
    await page.focus("#rows tr[data-id='1']")
    await page.keyboard.press("x")  # ticks the selected row for export
    assert await page.is_checked("#rows tr[data-id='1'] .pick input")
