"""Copy as curl / HTTPie: a shell command that sends the captured request's exact bytes.

Two targets: `local` sends what the local service received (the Host and X-Forwarded-Host
as ttf set them), `public` sends it through the tunnel again (Host, proxy headers and
Content-Length left to the edge and curl). The tools' own default headers (User-Agent,
Accept, a form Content-Type, Expect) are switched off unless the request had them. A body
that is not plain text (not UTF-8, control characters, or big) goes through a file:
`--data-binary @body-<id>.bin` (curl) or `< body-<id>.bin` (HTTPie), downloadable from
/api/requests/<id>/body/request. Every argument is shell-quoted (POSIX sh).

Nothing captured can make the command read a local file or hide what it does: a body starting
with ``@`` goes through the file too (curl would read the file it names), a header value
starting with ``@`` or ``=`` is backslash-escaped for HTTPie (``Name:@file`` reads a file,
``Name:=x`` is a JSON field), a header whose name is not an RFC 9110 token is left out (noted),
and control or format characters (ESC, CR, U+202E and other bidi or zero-width characters) never
stand in the text: they are written as ``$(printf '\\ooo')`` of their UTF-8 bytes.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from dataclasses import dataclass
from typing import Any

from httptunnel.protocol import Headers, header_lookup, strip_hop_by_hop

from ttf.inspector.history import Entry

INLINE_BODY_MAX = 16 * 1024
# Added by the edge on the way in: sending them again through the tunnel would forge them.
EDGE_HEADERS = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-port", "x-forwarded-host",
                          "x-forwarded-prefix", "forwarded", "x-real-ip", "x-amzn-trace-id", "via"})
_ALWAYS_DROP = frozenset({"content-length", "expect"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _hidden(ch: str) -> bool:
    """A character a pasted command must not carry as itself: controls (but tab and newline),
    and Unicode format and separator characters (bidi overrides, zero-width ones)."""
    return (ord(ch) < 0x20 and ch not in "\t\n") or 0x7F <= ord(ch) < 0xA0 or \
        unicodedata.category(ch) in ("Cf", "Zl", "Zp")


def _quote(arg: str) -> str:
    """shlex.quote, with every hidden character written as a printf of its UTF-8 bytes."""
    if not any(_hidden(ch) for ch in arg):
        return shlex.quote(arg)
    out: list[str] = []
    run = ""
    for ch in arg:
        if _hidden(ch):
            if run:
                out.append(shlex.quote(run))
                run = ""
            out.append("\"$(printf '" + "".join(f"\\{b:03o}" for b in ch.encode("utf-8")) + "')\"")
        else:
            run += ch
    if run:
        out.append(shlex.quote(run))
    return "".join(out)


def _join(args: list[str]) -> str:
    return " ".join(_quote(arg) for arg in args)


@dataclass(frozen=True)
class Target:
    base_url: str  # http://127.0.0.1:3000 or https://abc.t.example.com (no trailing slash)
    kind: str  # "local" | "public"
    keep_host: bool = False


def _inline_text(body: bytes) -> str | None:
    """The body as a shell-safe string, or None when it must go through a file."""
    if len(body) > INLINE_BODY_MAX:
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(_hidden(ch) for ch in text):
        return None  # CR, ESC, U+202E and friends: a pasted command must not carry them
    if text.startswith("@"):
        return None  # curl --data-binary @x reads the file x
    return text


def request_headers(entry: Entry, target: Target) -> list[tuple[str, str]]:
    """The header lines the command sends, in captured order."""
    out: list[tuple[str, str]] = []
    headers: Headers = strip_hop_by_hop(entry.request_headers)
    for name, values in headers.items():
        low = name.lower()
        if low in _ALWAYS_DROP or (low == "host" and not (target.kind == "local" and target.keep_host)):
            continue
        if target.kind == "public" and low in EDGE_HEADERS:
            continue
        if not _TOKEN.fullmatch(name):
            continue  # not a header name (curl -H @x would read the file x): left out, noted
        out += [(name, value) for value in values]
    if target.kind == "local" and not target.keep_host:
        host = header_lookup(entry.request_headers, "host")
        if host and not header_lookup(headers, "x-forwarded-host"):
            out.append(("X-Forwarded-Host", host[0]))  # what ttf adds on the way to the local service
    return out


def _has(lines: list[tuple[str, str]], name: str) -> bool:
    return any(n.lower() == name for n, _ in lines)


def _needs_path_as_is(uri: str) -> bool:
    path = uri.split("?", 1)[0]
    return any(seg in {".", ".."} for seg in path.split("/"))


def curl(entry: Entry, target: Target) -> tuple[str, str | None]:
    """(command, body file name or None)."""
    url = target.base_url + entry.uri
    lines = request_headers(entry, target)
    body = entry.request.data
    args = ["curl", "-sS", "-i"]
    if _needs_path_as_is(entry.uri):
        args.append("--path-as-is")
    if any(ch in entry.uri for ch in "[]{}"):
        args.append("--globoff")
    if entry.method == "HEAD" and not body:
        args.append("--head")
    elif entry.method != "GET" or body:
        args += ["-X", entry.method]
    args.append(url)
    for name, value in lines:
        args += ["-H", f"{name}: {value}" if value else f"{name};"]  # starts with a token: never @
    for name in ("User-Agent", "Accept"):
        if not _has(lines, name.lower()):
            args += ["-H", f"{name}:"]  # curl's own default, which the caller did not send
    body_file = None
    if body:
        if not _has(lines, "content-type"):
            args += ["-H", "Content-Type:"]
        if len(body) > 1024:
            args += ["-H", "Expect:"]
        text = _inline_text(body)
        if text is None:
            body_file = f"body-{entry.id}.bin"
            args += ["--data-binary", f"@{body_file}"]
        else:
            args += ["--data-binary", text]
    return _join(args), body_file


def httpie(entry: Entry, target: Target) -> tuple[str, str | None]:
    url = target.base_url + entry.uri
    lines = request_headers(entry, target)
    body = entry.request.data
    text = _inline_text(body) if body else None
    body_file = f"body-{entry.id}.bin" if body and text is None else None
    args = ["http", "--print=HhBb"]
    if body_file is None:
        args.append("--ignore-stdin")
    if _needs_path_as_is(entry.uri):
        args.append("--path-as-is")
    if text is not None:
        args += ["--raw", text]
    args += [entry.method, url]
    for name, value in lines:
        escaped = "\\" + value if value[:1] in ("@", "=") else value  # Name:@file, Name:=json
        args.append(f"{name}:{escaped}" if value else f"{name};")
    for name in ("User-Agent", "Accept", "Accept-Encoding"):
        if not _has(lines, name.lower()):
            args.append(f"{name}:")  # HTTPie's own default, which the caller did not send
    if body and not _has(lines, "content-type"):
        args.append("Content-Type:")
    command = _join(args)
    if body_file is not None:
        command += f" < {shlex.quote(body_file)}"
    return command, body_file


def commands(entry: Entry, target: Target) -> dict[str, Any]:
    curl_line, body_file = curl(entry, target)
    httpie_line, _ = httpie(entry, target)
    notes = []
    if entry.request.truncated:
        notes.append(f"the captured body was truncated: {len(entry.request.data)} of {entry.request.size} bytes "
                     "are sent")
    if body_file:
        notes.append(f"the body is binary, long or starts with @: download it as {body_file} "
                     "(next to where you run the command)")
    left_out = [name for name in strip_hop_by_hop(entry.request_headers) if not _TOKEN.fullmatch(name)]
    if left_out:
        notes.append(f"left out {len(left_out)} header(s) whose name is not a valid header name")
    return {"target": target.kind, "url": target.base_url + entry.uri, "curl": curl_line, "httpie": httpie_line,
            "body_file": body_file, "body_url": f"/api/requests/{entry.id}/body/request" if body_file else None,
            "exact": not entry.request.truncated, "notes": notes}
