"""Edit and replay, the response diff, copy as curl, HAR export and re-import — in Chromium."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess

import pytest

from tests.browser.conftest import until

pytestmark = pytest.mark.browser  # make test-browser, never make test

ORDER = {"order": {"id": 7, "qty": 1}, "note": "first"}


async def test_edit_and_replay_asks_for_confirmation_and_shows_the_diff(ui):
    page = ui.page
    await ui.send("POST", "/echo/orders?x=1", {"Content-Type": ["application/json"], "X-Flavour": ["vanilla"]},
                  json.dumps(ORDER).encode())
    await until(page, "() => document.querySelectorAll('#rows tr').length === 1", "one row")
    await page.click("#rows tr[data-id='1']")
    await page.click("#do-edit")
    await page.wait_for_selector("#editor")
    assert await page.input_value("#edit-mode") == "json"
    assert json.loads(await page.input_value("#edit-body")) == ORDER
    headers = await page.input_value("#edit-headers")
    assert "X-Flavour: vanilla" in headers
    await page.fill("#edit-headers", headers.replace("X-Flavour: vanilla", "X-Flavour: chocolate"))
    await page.fill("#edit-body", json.dumps({"order": {"id": 7, "qty": 3}, "note": "edited"}))
    await page.fill("#edit-uri", "/echo/orders?x=2")
    await ui.shot("12-editor")

    # POST is not idempotent: the page asks first; Cancel sends nothing
    await page.click("#edit-send")
    await page.wait_for_selector("#confirm[open]")
    assert "not idempotent" in await page.text_content("#confirm-text")
    await ui.shot("13-confirm-non-idempotent")
    await page.click("#confirm-cancel")
    assert len(ui.site.seen) == 1
    await page.click("#edit-send")
    await page.click("#confirm-ok")

    # the edited request is a new entry, linked to its original, selected and in view, with the diff
    await page.wait_for_selector("#rows tr.sel[data-id='2']")
    assert await page.locator("#rows tr[data-id='2']").is_visible()
    assert "edited" in await page.text_content("#rows tr[data-id='2']")
    await page.wait_for_selector("#diff")
    assert "Edited from #1" in await page.text_content("#detail .links")
    diff = await page.text_content("#diff")
    assert "Body: different" in diff
    assert await page.locator("#diff .udiff .add").count() >= 1 and await page.locator("#diff .udiff .del").count() >= 1
    await ui.shot("14-diff")

    got = ui.site.seen[-1]
    assert got["raw_path"] == "/echo/orders?x=2" and ["X-Flavour", "chocolate"] in got["headers"]
    assert json.loads(got["body"]) == {"order": {"id": 7, "qty": 3}, "note": "edited"}
    detail = await ui.api("/api/requests/2")
    assert (detail["source"], detail["replay_of"]) == ("edited", 1)

    # the link goes back to the original; the original lists its replay
    await page.click("#detail .links button.link")
    await page.wait_for_selector("#rows tr.sel[data-id='1']")
    await page.wait_for_selector("#detail .links >> text=Replayed as")


async def test_untouched_editor_sends_the_captured_bytes_and_replay_n_times(ui):
    page = ui.page
    body = b'{"a":  1,\n "b": [1,2]}\n'  # odd spacing: a re-serialised body would differ
    await ui.send("PUT", "/echo/doc", {"Content-Type": ["application/json"]}, body)
    await until(page, "() => document.querySelectorAll('#rows tr').length === 1", "one row")
    await page.click("#rows tr[data-id='1']")
    await page.click("#do-edit")
    await page.fill("#edit-count", "5")
    await page.click("#edit-send")  # PUT is idempotent: no question asked
    await until(page, "() => document.querySelectorAll('#rows tr').length === 6", "five replays")
    assert [s["body"] for s in ui.site.seen[1:]] == [body] * 5
    assert "Replayed 5 times: 5× 200" in await page.text_content("#notice")


async def test_invalid_edited_header_is_refused_naming_it(ui):
    page = ui.page
    ui.expected_errors = 1  # the browser logs the 400 it got
    await ui.send("GET", "/echo/h")
    await until(page, "() => document.querySelectorAll('#rows tr').length === 1", "one row")
    await page.click("#rows tr[data-id='1']")
    await page.click("#do-edit")
    headers = await page.input_value("#edit-headers")
    await page.fill("#edit-headers", headers + "\nBad Name: x")
    await page.click("#edit-send")
    await page.wait_for_selector("#edit-error >> text=Bad Name")
    assert "not a valid header name" in await page.text_content("#edit-error")
    await ui.shot("15-invalid-header")
    assert len(ui.site.seen) == 1 and len(await ui.rows()) == 1  # nothing sent, nothing recorded


async def test_copy_as_curl_sends_the_same_bytes(ui):
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed (apt-get install curl): the copied command cannot be run", pytrace=False)
    page = ui.page
    binary = bytes(range(256)) * 3
    await ui.send("POST", "/echo/bin?a=1&b=%20", {"Content-Type": ["application/octet-stream"],
                                                  "X-Repeat": ["one", "two"], "X-Quote": ["it's \"quoted\" $HOME `x`"]}, binary)
    await ui.send("POST", "/echo/text", {"Content-Type": ["text/plain"]}, "line 1\nit's 'quoted' $HOME\n".encode())
    await until(page, "() => document.querySelectorAll('#rows tr').length === 2", "two rows")

    async def copied(entry_id: str) -> str:
        await page.click(f"#rows tr[data-id='{entry_id}']")
        await page.wait_for_selector("#detail h2")
        await page.click("#copy-curl")
        await page.wait_for_selector("#command")
        text = await page.evaluate("() => navigator.clipboard.readText()")
        assert text == await page.text_content("#command")
        return text

    text_command = await copied("2")
    binary_command = await copied("1")
    await ui.shot("16-copy-as-curl")
    assert "--data-binary @body-1.bin" in binary_command
    async with page.expect_download() as download_info:
        await page.click("#body-download")
    download = await download_info.value
    workdir = ui.site_dir
    await download.save_as(str(workdir / "body-1.bin"))
    assert (workdir / "body-1.bin").read_bytes() == binary

    for command, original in ((binary_command, ui.site.seen[0]), (text_command, ui.site.seen[1])):
        before = len(ui.site.seen)
        proc = await asyncio.to_thread(subprocess.run, ["sh", "-c", command], cwd=workdir, capture_output=True,
                                       timeout=30, env={"PATH": os.environ["PATH"], "HOME": "/nonexistent"})
        assert proc.returncode == 0, proc.stderr
        again = ui.site.seen[before]
        assert again["body"] == original["body"] and again["raw_path"] == original["raw_path"]
        assert again["method"] == original["method"]
        assert again["headers"] == original["headers"]  # every header, in order, and no curl defaults
        assert hashlib.sha256(again["body"]).hexdigest() == original["body_sha256"]


async def test_har_export_then_reimport(ui):
    page = ui.page
    await ui.send("POST", "/echo/one", {"Content-Type": ["application/json"]}, b'{"k": "v"}')
    await ui.send("PUT", "/echo/two", {"Content-Type": ["application/octet-stream"]}, bytes(range(10)))
    await ui.send("GET", "/echo/three")
    await until(page, "() => document.querySelectorAll('#rows tr').length === 3", "three rows")
    await page.check("#rows tr[data-id='1'] input[type=checkbox]")
    await page.check("#rows tr[data-id='2'] input[type=checkbox]")
    async with page.expect_download() as download_info:
        await page.click("#export")
    download = await download_info.value
    har_path = ui.site_dir / "export.har"
    await download.save_as(str(har_path))
    har = json.loads(har_path.read_text())
    assert har["log"]["version"] == "1.2"
    assert [e["request"]["url"] for e in har["log"]["entries"]] == [
        "https://api.example.test/tun123/echo/one", "https://api.example.test/tun123/echo/two"]

    # a broken file is refused with a clear message and the history is untouched
    ui.expected_errors = 1
    bad = ui.site_dir / "bad.har"
    bad.write_text('{"log": {"entries": [{"request": {"method": "GET"}}]}}')
    await page.set_input_files("#import", str(bad))
    await page.wait_for_selector("#notice >> text=HAR import refused")
    assert "log.entries[0].startedDateTime" in await page.text_content("#notice") or \
        "log.entries[0].request.url" in await page.text_content("#notice")
    assert await ui.rows() == ["3", "2", "1"]
    await ui.shot("17-har-refused")

    await page.click("#clear")
    await page.click("#confirm-ok")
    await page.wait_for_selector("#empty:not([hidden])")
    await page.set_input_files("#import", str(har_path))
    await page.wait_for_selector("#notice >> text=Imported 2 request(s)")
    await until(page, "() => document.querySelectorAll('#rows tr').length === 2", "two imported rows")
    assert "imported" in await page.text_content("#rows")
    original_two = har["log"]["entries"][1]
    again = await ui.api("/api/requests/5")
    assert (again["method"], again["uri"], again["source"]) == ("PUT", "/echo/two", "imported")
    assert __import__("base64").b64decode(again["request_body"]) == bytes(range(10))
    expected: dict[str, list[str]] = {}
    for header in original_two["response"]["headers"]:
        expected.setdefault(header["name"], []).append(header["value"])
    assert again["response_headers"] == expected and again["status"] == original_two["response"]["status"]
    await ui.shot("18-har-imported")

    # an imported request can be replayed like any other
    await page.click("#rows tr[data-id='5']")
    await page.click("#do-replay")
    await page.wait_for_selector("#rows tr.sel[data-id='6']")
    assert ui.site.seen[-1]["body"] == bytes(range(10))
