"""What forward changes in an answer: cookie scope (always) and path-mode rewriting.

In BOTH modes, and even when the agent turned rewriting off: a ``Domain=`` attribute is
dropped from every ``Set-Cookie`` (see ``drop_cookie_domain``). A cookie is then host-only: it
goes back to the tunnel that set it and to no other tunnel under the same domain.

Path-mode rewriting, so apps that use root-relative links work under ``/<id>/``.
Only in path mode (subdomain mode never rewrites). What changes, and nothing else:

* ``Location`` / ``Content-Location`` headers starting with a single ``/`` get the prefix.
* ``Set-Cookie``: a ``Path=/x`` attribute becomes ``Path=/<id>/x``.
* Bodies, only when the body is not compressed (no Content-Encoding other than identity),
  is valid UTF-8, and the content type is:
  - HTML: ``href|src|action|formaction|poster=`` attribute values starting with a single
    ``/``, and CSS ``url(/...)`` inside it;
  - CSS: ``url(/...)`` and ``@import "/..."``;
  - JSON, only when the agent asked (``ttf --rewrite-json``): string VALUES (never object
    keys) that start with a single ``/``; the text is scanned, not re-serialised, so every
    other byte (spacing, order, numbers) is kept. Invalid JSON is left alone. Off by default:
    a JSON string starting with ``/`` is as often data (an echoed form value, a file path) as
    a link, and data must come back unchanged.
  Values already starting with the prefix are left alone, so rewriting is idempotent.
"""

from __future__ import annotations

import re

from .protocol import Headers

_HTML_ATTR = re.compile(r"""(\b(?:href|src|action|formaction|poster)\s*=\s*["']?)(/(?!/))""", re.IGNORECASE)
_CSS_URL = re.compile(r"""(url\(\s*["']?)(/(?!/))""", re.IGNORECASE)
_CSS_IMPORT = re.compile(r"""(@import\s+["'])(/(?!/))""", re.IGNORECASE)
_COOKIE_PATH = re.compile(r"""((?:^|;)\s*path\s*=\s*)(/[^;]*)""", re.IGNORECASE)


def _already(text: str, pos: int, prefix: str) -> bool:
    """True when text[pos:] already starts with prefix followed by / or a delimiter."""
    if not text.startswith(prefix, pos):
        return False
    after = text[pos + len(prefix): pos + len(prefix) + 1]
    return after in ("", "/", "?", "#", '"', "'", ")", " ", ";")


def _sub(pattern: re.Pattern[str], text: str, prefix: str) -> str:
    def repl(m: re.Match[str]) -> str:
        if _already(text, m.start(2), prefix):
            return m.group(0)
        return m.group(1) + prefix + m.group(2)
    return pattern.sub(repl, text)


def prefix_path(value: str, prefix: str) -> str:
    """'/x' -> '<prefix>/x'; untouched when absolute URL, '//' or already prefixed."""
    if not prefix or not value.startswith("/") or value.startswith("//") or _already(value, 0, prefix):
        return value
    return prefix + value


def drop_cookie_domain(value: str) -> str:
    """The Set-Cookie value without its ``Domain`` attribute(s); every other byte kept.

    With ``Domain=t.example.com`` tunnel A could plant (or overwrite) cookies that the browser
    then sends to every other tunnel under t.example.com (cookie tossing, session fixation).
    Dropping the attribute makes the cookie host-only: the browser scopes it to the host that
    answered, which is the tunnel itself (RFC 6265 section 5.3 step 6). Dropping is tighter
    than pinning Domain to the tunnel's host, which would also cover names below it."""
    name_value, sep, attributes = value.partition(";")
    if not sep:
        return value
    kept = [part for part in attributes.split(";") if part.split("=", 1)[0].strip().lower() != "domain"]
    return name_value + "".join(";" + part for part in kept)


def scope_cookies(headers: Headers) -> Headers:
    """Every Set-Cookie without Domain (both modes, whatever the agent asked)."""
    return {name: [drop_cookie_domain(v) for v in values] if name.lower() == "set-cookie" else list(values)
            for name, values in headers.items()}


def rewrite_set_cookie(value: str, prefix: str) -> str:
    if not prefix:
        return value

    def repl(m: re.Match[str]) -> str:
        return m.group(1) + prefix_path(m.group(2), prefix)
    return _COOKIE_PATH.sub(repl, value)


def rewrite_headers(headers: Headers, prefix: str) -> Headers:
    if not prefix:
        return headers
    out: Headers = {}
    for name, values in headers.items():
        lower = name.lower()
        if lower in ("location", "content-location"):
            out[name] = [prefix_path(v, prefix) for v in values]
        elif lower == "set-cookie":
            out[name] = [rewrite_set_cookie(v, prefix) for v in values]
        else:
            out[name] = list(values)
    return out


def _kind(content_type: str) -> str:
    ct = content_type.split(";", 1)[0].strip().lower()
    if ct in ("text/html", "application/xhtml+xml"):
        return "html"
    if ct == "text/css":
        return "css"
    if ct == "application/json" or ct.endswith("+json"):
        return "json"
    return ""


def rewrites(content_type: str, content_encoding: str, json: bool = False) -> bool:
    """Whether a body of this type and encoding is rewritten at all (a streamed answer is then
    gathered whole first)."""
    kind = _kind(content_type)
    return bool(kind) and (kind != "json" or json) and content_encoding.strip().lower() in ("", "identity")


def rewrite_body(body: bytes, content_type: str, content_encoding: str, prefix: str, json: bool = False) -> bytes:
    """The rewritten body, or the same bytes when nothing applies (see module docstring)."""
    kind = _kind(content_type)
    if not prefix or not body or not rewrites(content_type, content_encoding, json):
        return body
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return body
    if kind == "html":
        text = _sub(_CSS_URL, _sub(_HTML_ATTR, text, prefix), prefix)
    elif kind == "css":
        text = _sub(_CSS_IMPORT, _sub(_CSS_URL, text, prefix), prefix)
    else:
        text = _rewrite_json(text, prefix)
    return text.encode("utf-8")


def _json_value_strings(text: str) -> list[tuple[int, int]] | None:
    """(start, end) of the content of every string that is a JSON value; None if not JSON-ish."""
    spans: list[tuple[int, int]] = []
    stack: list[str] = []
    expect_key = False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                return None
            if not (stack and stack[-1] == "{" and expect_key):
                spans.append((i + 1, j))
            i = j + 1
            continue
        if ch in "{[":
            stack.append(ch)
            expect_key = ch == "{"
        elif ch in "}]":
            if not stack:
                return None
            stack.pop()
            expect_key = False
        elif ch == ",":
            expect_key = bool(stack) and stack[-1] == "{"
        elif ch == ":":
            expect_key = False
        i += 1
    return spans if not stack else None


def _rewrite_json(text: str, prefix: str) -> str:
    spans = _json_value_strings(text)
    if not spans:
        return text
    out: list[str] = []
    last = 0
    for start, end in spans:
        value = text[start:end]
        new = prefix_path(value, prefix)
        if new != value:
            out.append(text[last:start])
            out.append(new)
            last = end
    out.append(text[last:])
    return "".join(out)
