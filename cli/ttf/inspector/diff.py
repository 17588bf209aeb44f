"""What changed between two answers: status, headers (by name, values in order), body.

Bodies are compared on their decoded-for-display copies when both are compressed, line by
line when both are text and small enough (DIFF_TEXT_MAX), else by size and SHA-256.
"""

from __future__ import annotations

import difflib
import hashlib
from typing import Any

from httptunnel.protocol import Headers

from ttf.inspector.history import Entry
from ttf.inspector.views import decoded_for_display, is_text

DIFF_TEXT_MAX = 256 * 1024
DIFF_LINES_MAX = 2000


def _by_name(headers: Headers) -> dict[str, tuple[str, list[str]]]:
    out: dict[str, tuple[str, list[str]]] = {}
    for name, values in headers.items():
        spelled, kept = out.get(name.lower(), (name, []))
        out[name.lower()] = (spelled, kept + list(values))
    return out


def header_diff(a: Headers, b: Headers) -> list[dict[str, Any]]:
    left, right = _by_name(a), _by_name(b)
    rows = []
    for key in list(left) + [k for k in right if k not in left]:
        name = (left.get(key) or right[key])[0]
        va, vb = left.get(key, (name, []))[1], right.get(key, (name, []))[1]
        change = "same" if va == vb else "added" if not va else "removed" if not vb else "changed"
        rows.append({"name": name, "a": va, "b": vb, "change": change})
    return rows


def _shown(entry: Entry) -> tuple[bytes, bool]:
    """The response body as the page shows it, and whether it was decoded for display."""
    _, decoded = decoded_for_display(entry.response.data, entry.response_headers, entry.response.truncated)
    return (decoded, True) if decoded is not None else (entry.response.data, False)


def body_diff(a: Entry, b: Entry) -> dict[str, Any]:
    (da, deca), (db, decb) = _shown(a), _shown(b)
    out: dict[str, Any] = {
        "same": da == db and a.response.size == b.response.size,
        "a_size": a.response.size, "b_size": b.response.size,
        "a_sha256": hashlib.sha256(da).hexdigest(), "b_sha256": hashlib.sha256(db).hexdigest(),
        "decoded_for_display": deca or decb,
        "truncated": a.response.truncated or b.response.truncated,
        "lines": None,
    }
    if out["same"] or len(da) > DIFF_TEXT_MAX or len(db) > DIFF_TEXT_MAX or not (is_text(da) and is_text(db)):
        return out
    left = da.decode("utf-8").splitlines()
    right = db.decode("utf-8").splitlines()
    if len(left) == 1 and len(right) == 1 and (len(left[0]) > 200 or len(right[0]) > 200):
        left, right = _soft_lines(left[0]), _soft_lines(right[0])  # one-line JSON: compare it by fields
    lines = []
    for line in difflib.unified_diff(left, right, "original", "replay", n=3, lineterm=""):
        lines.append(line)
        if len(lines) >= DIFF_LINES_MAX:
            lines.append(f"... diff cut at {DIFF_LINES_MAX} lines")
            break
    out["lines"] = lines
    return out


def _soft_lines(text: str) -> list[str]:
    """A long single line split after commas, so a changed field shows as a changed line."""
    return [piece for piece in text.replace(",", ",\n").split("\n")]


def diff(a: Entry, b: Entry) -> dict[str, Any]:
    return {
        "a": a.id, "b": b.id,
        "status": {"a": a.status, "b": b.status, "same": a.status == b.status},
        "error": {"a": a.error, "b": b.error},
        "headers": header_diff(a.response_headers, b.response_headers),
        "body": body_diff(a, b),
    }
