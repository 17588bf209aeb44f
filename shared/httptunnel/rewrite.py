"""Path-mode rewriting, so apps that use root-relative links work under ``/<id>/``.

Only in path mode (subdomain mode never rewrites). What changes, and nothing else:

* ``Location`` / ``Content-Location`` headers starting with a single ``/`` get the prefix.
* ``Set-Cookie``: a ``Path=/x`` attribute becomes ``Path=/<id>/x``.
* Bodies, only when the body is not compressed (no Content-Encoding other than identity),
  is valid UTF-8, and the content type is:
  - HTML: ``href|src|action|formaction|poster=`` attribute values starting with a single
    ``/``, and CSS ``url(/...)`` inside it;
  - CSS: ``url(/...)`` and ``@import "/..."``;
  - JSON: string VALUES (after ``:`` or ``[``) that start with a single ``/``.
  Values already starting with the prefix are left alone, so rewriting is idempotent.
"""

from __future__ import annotations

import re

from .protocol import Headers

_HTML_ATTR = re.compile(r"""(\b(?:href|src|action|formaction|poster)\s*=\s*["']?)(/(?!/))""", re.IGNORECASE)
_CSS_URL = re.compile(r"""(url\(\s*["']?)(/(?!/))""", re.IGNORECASE)
_CSS_IMPORT = re.compile(r"""(@import\s+["'])(/(?!/))""", re.IGNORECASE)
_JSON_VALUE = re.compile(r"""((?:[:\[])\s*")(/(?!/))""")
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


def rewrite_body(body: bytes, content_type: str, content_encoding: str, prefix: str) -> bytes:
    """The rewritten body, or the same bytes when nothing applies (see module docstring)."""
    kind = _kind(content_type)
    if not prefix or not kind or not body:
        return body
    if content_encoding.strip().lower() not in ("", "identity"):
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
        text = _sub(_JSON_VALUE, text, prefix)
    return text.encode("utf-8")
