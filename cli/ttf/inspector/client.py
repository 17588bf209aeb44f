"""`ttf replay ID [--edit]`: replay a captured request from the terminal, through a running inspector.

It talks to the inspector's JSON API (default 127.0.0.1:4045, like `ttf --inspect`), so the
request goes through the same local-forward path as the page's Replay button. `--edit` opens
$VISUAL/$EDITOR on the request as an HTTP message (request line, headers, a blank line, the
body); a body that is not text stays as captured unless a new one is typed. Non-idempotent
methods ask first (or need --yes when stdin is not a terminal). What the network sent is
printed with control characters escaped, so it cannot drive the terminal.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from typing import Any, NoReturn, TextIO

from ttf.config import DEFAULT_INSPECT, ConfigError, check_inspect
from ttf.inspector.edit import idempotent
from ttf.inspector.security import host_port

TIMEOUT_S = 60.0
SHOW_BODY_MAX = 64 * 1024
HELP_LINES = ("# Edit the request, save and quit to send it. Empty the file to cancel.\n"
              "# Lines starting with # at the top are ignored; the body starts after the first empty line.\n")


class ReplayError(Exception):
    """One readable line, exit status 1 (2 for bad arguments)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see ttf replay --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ttf replay", description="Send a request the inspector captured to the local service again.")
    p.add_argument("id", help="the request's number in the inspector (#N)")
    p.add_argument("--edit", action="store_true", help="edit it in $VISUAL / $EDITOR first")
    p.add_argument("-n", "--count", default="1", help="send it N times (1..100)")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask before a non-idempotent method (POST, PATCH)")
    p.add_argument("--inspect", metavar="HOST:PORT",
                   help=f"the running ttf's inspector (env TTF_INSPECT, default {DEFAULT_INSPECT[0]}:{DEFAULT_INSPECT[1]})")
    p.add_argument("--token", help="the inspector's token when it is bound off loopback (env TTF_INSPECT_TOKEN)")
    p.add_argument("--json", action="store_true", help="print the inspector's JSON answer")
    return p


def printable(text: str) -> str:
    """Network text for a terminal: control characters (ESC, CR, ...) shown as escapes."""
    return "".join(ch if ch in "\n\t" or (ord(ch) >= 0x20 and not 0x7F <= ord(ch) < 0xA0) else f"\\x{ord(ch):02x}"
                   for ch in text)


class Api:
    def __init__(self, base: str, token: str | None) -> None:
        self.base = base
        self.token = token

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", exc.reason)
            except ValueError:
                message = exc.reason
            raise ReplayError(f"the inspector answered {exc.code}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ReplayError(f"no inspector at {self.base} ({reason}): is ttf running with its inspector on? "
                              "(--inspect HOST:PORT)") from None


def to_message(detail: dict[str, Any]) -> tuple[str, bool]:
    """The request as editable text, and whether its body is in it (False: binary or truncated)."""
    head = [f"{detail['method']} {detail['uri']}"]
    head += [f"{name}: {value}" for name, values in detail["request_headers"].items() for value in values]
    body = base64.b64decode(detail["request_body"])
    try:
        text = body.decode("utf-8")
        editable = not detail["request_truncated"]
    except UnicodeDecodeError:
        text, editable = "", False
    note = "" if editable or not body else (
        f"# The captured body ({detail['request_size']} bytes, {'truncated' if detail['request_truncated'] else 'binary'}) "
        "is sent unchanged unless you type a new one after the empty line.\n")
    return HELP_LINES + note + "\n".join(head) + "\n\n" + (text if editable else ""), editable


def from_message(text: str, original_body: str | None) -> dict[str, Any]:
    """The edits (method, uri, headers, maybe body) from the edited text; ReplayError when unreadable."""
    lines = text.split("\n")
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    if not "".join(lines).strip():
        raise ReplayError("the file was emptied: nothing sent")
    request_line = lines.pop(0).strip().split(" ")
    if len(request_line) not in (2, 3):
        raise ReplayError(f"the first line must be 'METHOD /path?query', got {' '.join(request_line)[:80]!r}")
    edits: dict[str, Any] = {"method": request_line[0], "uri": request_line[1], "headers": []}
    while lines and lines[0].strip():
        name, colon, value = lines.pop(0).partition(":")
        if not colon:
            raise ReplayError(f"a header line needs 'Name: value', got {name[:80]!r}")
        edits["headers"].append([name.strip(), value.strip(" \t").rstrip("\r")])
    body = "\n".join(lines[1:])
    if original_body is None:
        if body.strip():
            edits["body"] = body
    elif body not in (original_body, original_body + "\n"):  # an editor's final newline is not an edit
        edits["body"] = body[:-1] if body.endswith("\n") and not original_body.endswith("\n") else body
    return edits


def edit_in_editor(text: str) -> str:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w", suffix=".http", prefix="ttf-replay-", delete=False, encoding="utf-8") as f:
        f.write(text)
        path = f.name
    try:
        if subprocess.run([*shlex.split(editor), path]).returncode != 0:
            raise ReplayError(f"the editor ({editor}) failed: nothing sent")
        with open(path, encoding="utf-8") as f:
            return f.read()
    finally:
        os.unlink(path)


def _confirm(method: str, uri: str, count: int, yes: bool, stdin: TextIO) -> None:
    if yes or idempotent(method):
        return
    if not stdin.isatty():
        raise ReplayError(f"{method} is not idempotent: sending it again may change data; pass --yes to send it")
    times = f" {count} times" if count > 1 else ""
    answer = input(f"{method} {printable(uri)} is not idempotent. Send it again{times}? [y/N] ")
    if answer.strip().lower() not in {"y", "yes"}:
        raise ReplayError("not sent")


def show(result: dict[str, Any], out: TextIO) -> None:
    head = f"#{result['id']} {result['source']} of #{result['replay_of']}: {result['method']} {printable(result['uri'])}"
    status = f"{result['status']}" + (f" ({result['error']})" if result.get("error") else "")
    out.write(f"{head} -> {status} in {result['duration_ms']} ms\n")
    if len(result.get("replays", [])) > 1:
        counts = ", ".join(f"{n}x {s}" for s, n in result["statuses"].items())
        d = result["durations_ms"]
        out.write(f"sent {len(result['replays'])} times: {counts}; {d['min']}/{d['median']}/{d['max']} ms min/median/max\n")
        return
    for name, values in result["response_headers"].items():
        for value in values:
            out.write(printable(f"{name}: {value}") + "\n")
    body = base64.b64decode(result["response_body"])
    out.write("\n")
    try:
        out.write(printable(body[:SHOW_BODY_MAX].decode("utf-8")))
        if len(body) > SHOW_BODY_MAX:
            out.write(f"\n... {len(body)} bytes in all")
    except UnicodeDecodeError:
        out.write(f"({len(body)} bytes of binary; see the inspector)")
    out.write("\n")


def run(argv: list[str], stdout: TextIO, stdin: TextIO = sys.stdin) -> int:
    args = build_parser().parse_args(argv)
    if not args.id.lstrip("#").isdigit():
        raise ConfigError(f"{args.id!r} is not a request number (see the # column in the inspector)")
    entry_id = int(args.id.lstrip("#"))
    count = int(args.count) if args.count.isdigit() else 0
    if not 1 <= count <= 100:
        raise ConfigError(f"--count: {args.count!r} is not a whole number 1..100")
    raw = args.inspect or os.environ.get("TTF_INSPECT") or f"{DEFAULT_INSPECT[0]}:{DEFAULT_INSPECT[1]}"
    where = check_inspect("--inspect", raw)
    if where is None:
        raise ConfigError("--inspect off: there is no inspector to replay from")
    api = Api(f"http://{host_port(*where)}", args.token or os.environ.get("TTF_INSPECT_TOKEN"))
    detail = api.call("GET", f"/api/requests/{entry_id}")
    body: dict[str, Any] = {"count": count}
    method, uri = detail["method"], detail["uri"]
    if args.edit:
        text, editable = to_message(detail)
        original = base64.b64decode(detail["request_body"]).decode("utf-8") if editable else None
        body["request"] = from_message(edit_in_editor(text), original)
        method, uri = body["request"]["method"], body["request"]["uri"]
    _confirm(method, uri, count, args.yes, stdin)
    result = api.call("POST", f"/api/requests/{entry_id}/replay", body)
    if args.json:
        stdout.write(json.dumps(result) + "\n")
    else:
        show(result, stdout)
    return 0


def main(argv: list[str], stdout: TextIO) -> int:
    try:
        return run(argv, stdout)
    except ConfigError as exc:
        print(f"ttf replay: error: {exc}", file=sys.stderr)
        return 2
    except ReplayError as exc:
        print(f"ttf replay: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        return 130
