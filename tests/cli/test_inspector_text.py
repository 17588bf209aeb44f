"""The inspector page shows captured strings with control and bidi characters made visible
(issue 12): run the page's own helper (static/views.js) in node."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

VIEWS = Path(__file__).resolve().parents[2] / "cli" / "ttf" / "inspector" / "static" / "views.js"

pytestmark = pytest.mark.skipif(shutil.which("node") is None,
                                reason="node is not installed: the page's script cannot be run here")


def visible(*texts: str) -> list[str]:
    script = ("const vm = require('vm'); const fs = require('fs'); const ctx = {};"
              f"vm.runInNewContext(fs.readFileSync({json.dumps(str(VIEWS))}, 'utf8') + ';this.TTF = TTF;', ctx);"
              f"console.log(JSON.stringify({json.dumps(list(texts))}.map(t => ctx.TTF.visible(t))));")
    proc = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout))


def test_controls_and_bidi_are_shown_as_escapes():
    hostile = "/a\x1b]8;;http://x\x07b\u202ecod.exe\u2066\x00\x7f\x85"
    assert visible(hostile) == ["/a\\u001b]8;;http://x\\u0007b\\u202ecod.exe\\u2066\\u0000\\u007f\\u0085"]


def test_ordinary_text_is_untouched_and_bodies_keep_their_lines():
    text = 'line 1\r\nline 2\tcol — é ✓ {"k": [1]}'
    assert visible(text, "") == [text, ""]
