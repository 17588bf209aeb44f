"""ttf.toml: several tunnels from one `ttf` process (read with the stdlib's tomllib).

(Over 300 lines because the key table, the TOML type checks and the line finder for error
messages belong together: splitting them would scatter the one schema across modules.)

    endpoint = "wss://abc123.execute-api.eu-west-1.amazonaws.com/prod"   # defaults for every tunnel

    [tunnels.web]
    port = 3000

    [tunnels.api]
    port = 8000
    subdomain = "my-api"
    no-rewrite = true

The file is `--config FILE` (or TTF_CONFIG), else ./ttf.toml when it exists and the command
line names no tunnel of its own (-p, --subdomain). Keys are the long options without `--`, with
TOML types (`port = 3000`, not "3000"). A tunnel's table takes TUNNEL_KEYS; the top level takes
TOP_KEYS, the defaults for every tunnel. port and subdomain name one tunnel, so given outside
the file they are refused while a file is in use.

Per tunnel a value comes from, for a file the user named (--config, TTF_CONFIG): its table >
the command line > TTF_* > .env > the file's top level > the built-in default. A ./ttf.toml
found by itself may have come with a repository, so it is trusted less: the command line,
TTF_* and .env outrank all of it; a token from outside it is refused rather than sent to an
endpoint only the file names; and the endpoint and local host it sets are named in a notice.

Anything else is refused with the file name, the line (tomllib reports none for a key, so the
text is searched for it) and the key path: `ttf.toml:7: tunnels.api.prot: unknown key (did you
mean port?)`. A new per-tunnel option is one entry in KINDS plus its name in TUNNEL_KEYS.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ttf.config import ConfigError, Config, convert, finish, given_options, parse_args, single_tunnel, unread_dotenv

DEFAULT_FILE = "ttf.toml"
MAX_FILE_BYTES = 1024 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Kind:
    """A TOML type a key accepts, as the error message says it."""

    says: str
    accepts: Callable[[object], bool]


STRING = Kind("a string", lambda v: isinstance(v, str))
INTEGER = Kind("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool))
NUMBER = Kind("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
BOOLEAN = Kind("true or false", lambda v: isinstance(v, bool))
STRINGS = Kind("an array of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))
STRING_OR_FALSE = Kind('a string ("HOST:PORT", "off") or false', lambda v: isinstance(v, str) or v is False)

KINDS: dict[str, Kind] = {
    "endpoint": STRING, "token": STRING, "port": INTEGER, "host": STRING, "subdomain": STRING,
    "keep-host": BOOLEAN, "no-rewrite": BOOLEAN, "rewrite-json": BOOLEAN, "new-url": BOOLEAN,
    "max-concurrency": INTEGER, "max-streams": INTEGER, "max-websockets": INTEGER,
    "connect-timeout": NUMBER, "request-timeout": NUMBER,
    "state-dir": STRING, "inspect": STRING_OR_FALSE, "inspect-history": INTEGER, "json": BOOLEAN,
    "verbose": BOOLEAN, "heartbeat-interval": NUMBER, "renew-after": NUMBER, "drain-timeout": NUMBER,
    # the edge policy (README "Edge policy"): e.g. basic-auth = ["alice:pw"], allow-ip = ["10.0.0.0/8"]
    "basic-auth": STRINGS, "basic-auth-forward": BOOLEAN, "allow-ip": STRINGS, "deny-ip": STRINGS, "verify-webhook": STRINGS,
    "request-header-add": STRINGS, "request-header-remove": STRINGS,
    "response-header-add": STRINGS, "response-header-remove": STRINGS,
}
# What one tunnel can set for itself (the edge-policy options join here).
TUNNEL_KEYS = frozenset({
    "endpoint", "token", "port", "host", "subdomain", "keep-host", "no-rewrite", "rewrite-json", "new-url",
    "max-concurrency", "max-streams", "max-websockets", "connect-timeout", "request-timeout",
    "basic-auth", "allow-ip", "deny-ip", "verify-webhook", "request-header-add", "request-header-remove",
    "response-header-add", "response-header-remove", "basic-auth-forward",
})
ONLY_PER_TUNNEL = frozenset({"port", "subdomain"})  # one tunnel's own: never a default for all
TOP_KEYS = frozenset(KINDS) - ONLY_PER_TUNNEL
REQUIRED = ("port",)
SECRET_KEYS = frozenset({"token", "basic-auth", "verify-webhook"})  # never echoed in an error
NAMED_WHEN_FOUND = ("endpoint", "host")  # where the token and the requests go: a found file's are named


@dataclass(frozen=True)
class Plan:
    """What one ttf process runs: one tunnel from the command line, or a config file's tunnels."""

    tunnels: tuple[Config, ...]
    source: str | None = None  # the config file, as the user named it
    notes: tuple[str, ...] = ()  # warnings found while loading, shown once output is set up

    @property
    def process(self) -> Config:
        """The process-wide settings (json, verbose, inspector, drain): the same in every tunnel."""
        return self.tunnels[0]


def load(argv: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Plan:
    """The command line (+ environment, .env, config file) -> Plan. ConfigError for bad input;
    SystemExit(0) for --help / --version."""
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    args = parse_args(argv)
    given = given_options(args, env, cwd)
    unread = unread_dotenv(args, env, cwd)
    notes = (unread,) if unread else ()
    chosen = given.pop("config", None)
    if chosen is not None:
        source, raw = chosen
        if not str(raw).strip():
            raise ConfigError(f"{source}: the config file name is empty")
        display = str(raw)
    elif not (cwd / DEFAULT_FILE).is_file():
        return Plan((single_tunnel(given, env, unread),), notes=notes)
    elif args.port is not None or args.subdomain is not None:
        note = (f"./{DEFAULT_FILE} not read: -p/--subdomain on the command line run that one tunnel "
                f"(--config {DEFAULT_FILE} runs the file's tunnels)")
        return Plan((single_tunnel(given, env, unread),), notes=(note, *notes))
    else:
        display = DEFAULT_FILE
    plan = read_file(display, cwd / Path(display).expanduser(), given, env, found=chosen is None)
    return dataclasses.replace(plan, notes=plan.notes + notes)


def read_file(display: str, path: Path, given: Mapping[str, tuple[str, object]], env: Mapping[str, str],
              found: bool = False) -> Plan:
    """A config file (named by the user, or `found` in the working directory) with the options
    given outside it (port and subdomain refused: they belong to one tunnel). Also the Python
    API's config=."""
    for option in sorted(ONLY_PER_TUNNEL & {name.replace("_", "-") for name in given}):
        where = given[option.replace("-", "_")][0]
        raise ConfigError(f"{where}: {option} is set per tunnel in {display} ([tunnels.NAME] {option} = ...) "
                          "while a config file is used")
    return _plan(display, path, given, env, found)


def _plan(display: str, path: Path, given: Mapping[str, tuple[str, object]], env: Mapping[str, str],
          found: bool = False) -> Plan:
    """`found`: the file was found in the working directory, not named by the user."""
    text = _read(display, path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_decode_error(display, exc)) from None
    where = _Where(display, text)
    top = where.table(doc, (), TOP_KEYS | {"tunnels"}, "the top level")
    tunnels = doc.get("tunnels")
    if not isinstance(tunnels, dict) or not tunnels:
        if tunnels is not None and not isinstance(tunnels, dict):
            raise ConfigError(where.error(("tunnels",), f"expected tables ([tunnels.NAME]), got {_type(tunnels)}"))
        raise ConfigError(f"{display}: no tunnels: add a [tunnels.NAME] table with port = ... for each local service")
    from_command_line = {name: convert(name, *given[name]) for name in given}
    configs: list[Config] = []
    # a found file's endpoints and hosts, for the notice
    named = [f"{key} {top[key]}" for key in NAMED_WHEN_FOUND if key in top and key not in given] if found else []
    seen: dict[str, str] = {}
    subdomains: dict[tuple[object, str], str] = {}
    for name, table in tunnels.items():
        at = ("tunnels", name)
        if not _NAME.match(name):
            raise ConfigError(where.error(at, "a tunnel name is 1-32 letters, digits, '-' or '_' "
                                                "(starting with a letter or digit)"))
        if name.lower() in seen:
            raise ConfigError(where.error(at, f"the same name as tunnels.{seen[name.lower()]} "
                                                f"(line {where.line(('tunnels', seen[name.lower()])) or '?'}); "
                                                "names are compared ignoring case"))
        seen[name.lower()] = name
        if not isinstance(table, dict):
            raise ConfigError(where.error(at, f"expected a table of options, got {_type(table)}"))
        own = where.table(table, at, TUNNEL_KEYS, "a tunnel")
        for key in REQUIRED:
            if key.replace("-", "_") not in own:
                raise ConfigError(where.error(at, f"no {key} (which local port does this tunnel forward to?)"))
        if found:  # the user's command line and environment outrank a file that came with the directory
            values: dict[str, object] = {**top, **own, **from_command_line, "name": name}
            _check_token_destination(display, name, {**top, **own}, given)
            named += [f"{key} {own[key]} for tunnels.{name}" for key in NAMED_WHEN_FOUND
                      if key in own and key not in given]
        else:
            values = {**top, **from_command_line, **own, "name": name}
        if "endpoint" not in values:
            raise ConfigError(f"{display}: tunnels.{name} has no endpoint: set endpoint at the top of the file "
                              "or in the tunnel's table, or pass -e/--endpoint or TTF_ENDPOINT")
        if "subdomain" in values:
            asked = (values["endpoint"], str(values["subdomain"]))
            if asked in subdomains:
                raise ConfigError(where.error(at + ("subdomain",), f"tunnels.{subdomains[asked]} asks for the "
                                                                      "same subdomain on the same endpoint"))
            subdomains[asked] = name
        configs.append(finish(values, env))
    notes = _notes(display, path, doc)
    if named:
        notes = (f"./{display} found in the working directory sets " + ", ".join(named)
                 + " (you did not name it with --config; -e/--host and TTF_* override it)",) + notes
    return Plan(tuple(configs), display, notes)


def _check_token_destination(display: str, name: str, in_file: Mapping[str, object],
                             given: Mapping[str, tuple[str, object]]) -> None:
    """A token from outside a found file never goes to an endpoint only that file names."""
    if "token" not in given or "endpoint" in given or "endpoint" not in in_file:
        return
    raise ConfigError(
        f"./{display} (found in the working directory, not named with --config) sets endpoint "
        f"{in_file['endpoint']} for tunnels.{name}, and the token comes from {given['token'][0]}: "
        f"refusing to send your token to an endpoint only that file names; pass -e/--endpoint (or "
        f"TTF_ENDPOINT), or --config {display} if you trust the file")


def _read(display: str, path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{display}: cannot read the config file: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{display}: too large for a config file (over {MAX_FILE_BYTES // 1024} KB)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{display}: not UTF-8 text (byte {exc.start})") from None


def _decode_error(display: str, exc: tomllib.TOMLDecodeError) -> str:
    """tomllib's message ends with "(at line L, column C)": lead with it, like a compiler."""
    message = str(exc)
    found = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if found is None:
        return f"{display}: not valid TOML: {message}"
    return f"{display}:{found[1]}:{found[2]}: not valid TOML: {message[:found.start()]}"


def _notes(display: str, path: Path, doc: dict[str, Any]) -> tuple[str, ...]:
    """The token is a secret: say so when others can read the file that holds it."""
    tables = [doc, *(t for t in doc.get("tunnels", {}).values() if isinstance(t, dict))]
    held = sorted({key for table in tables for key in SECRET_KEYS & table.keys()})
    if os.name != "posix" or not held:
        return ()
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return ()
    if not mode & 0o077:
        return ()
    what = "a token" if held == ["token"] else "secrets (" + ", ".join(held) + ")"
    return (f"{display} holds {what} and others can read it (mode {mode:04o}): chmod 600 {display}",)


def _type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"  # dates and times


class _Where:
    """Errors that name the file, the line and the key path."""

    def __init__(self, display: str, text: str) -> None:
        self.display = display
        self.text = text

    def line(self, path: tuple[str, ...]) -> int | None:
        return find_line(self.text, path)

    def error(self, path: tuple[str, ...], problem: str) -> str:
        line = self.line(path)
        at = f"{self.display}:{line}" if line is not None else self.display
        return f"{at}: {key_path(path)}: {problem}"

    def table(self, table: dict[str, Any], path: tuple[str, ...], allowed: frozenset[str], what: str
              ) -> dict[str, object]:
        """Check one table's keys and types; Config field -> converted value."""
        values: dict[str, object] = {}
        for key, value in table.items():
            here = path + (key,)
            if key == "tunnels" and not path:
                continue
            if key not in allowed:
                raise ConfigError(self.error(here, _unknown(key, allowed, what)))
            kind = KINDS[key]
            if not kind.accepts(value):
                shown = "" if key in SECRET_KEYS or isinstance(value, (dict, list)) else f" ({value!r})"
                raise ConfigError(self.error(here, f"expected {kind.says}, got {_type(value)}{shown}"))
            line = self.line(here)
            source = f"{self.display}:{line}: {key_path(here)}" if line is not None else \
                f"{self.display}: {key_path(here)}"
            field = key.replace("-", "_")
            values[field] = convert(field, source, "off" if value is False else value)
        return values


def _unknown(key: str, allowed: frozenset[str], what: str) -> str:
    if key in TUNNEL_KEYS:
        return "set per tunnel, in a [tunnels.NAME] table"
    if key in KINDS:
        return "not a per-tunnel key: it applies to the whole process (set it at the top of the file)"
    spelled = key.replace("_", "-").lower()
    guess = spelled if spelled in allowed else next(iter(difflib.get_close_matches(spelled, sorted(allowed), 1)), None)
    hint = f" (did you mean {guess}?)" if guess else ""
    return f"unknown key{hint}; {what} takes: {', '.join(sorted(allowed))}"


_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def key_path(path: tuple[str, ...]) -> str:
    """("tunnels", "my api", "port") -> tunnels."my api".port, as TOML writes it."""
    return ".".join(part if _BARE.match(part) else json.dumps(part) for part in path)


# ---- finding a key's line in the text ---------------------------------------------------
_KEY_PART = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*(?P<key>{_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(rf"^\s*(?P<key>{_DOTTED})\s*=")


def _split_key(dotted: str) -> tuple[str, ...]:
    parts = re.findall(_KEY_PART, dotted)
    out = []
    for part in parts:
        if part.startswith('"'):
            try:
                part = json.loads(part)
            except ValueError:
                part = part[1:-1]
        elif part.startswith("'"):
            part = part[1:-1]
        out.append(part)
    return tuple(out)


def find_line(text: str, path: tuple[str, ...]) -> int | None:
    """The 1-based line where `path` is set or its table opens; None when the search cannot tell
    (inline tables are searched on their line; keys inside multi-line strings are skipped)."""
    table: tuple[str, ...] = ()
    in_string: str | None = None
    prefix_hit: int | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if in_string is not None:
            if line.count(in_string) % 2:
                in_string = None
            continue
        header = _HEADER.match(line)
        if header:
            table = _split_key(header["key"])
            if table == path:
                return number
            if prefix_hit is None and table[:len(path)] == path:
                prefix_hit = number
            continue
        assign = _ASSIGN.match(line)
        if assign:
            full = table + _split_key(assign["key"])
            if full == path:
                return number
            rest = path[len(full):]
            if full == path[:len(full)] and rest and re.search(rf"[{{,]\s*{re.escape(rest[0])}\s*[.=]",
                                                               line[assign.end():]):
                return number  # an inline table: web = { port = 3000 }
            if prefix_hit is None and full[:len(path)] == path:
                prefix_hit = number
            value = line[assign.end():]
            for quote in ('"""', "'''"):
                if value.count(quote) % 2:
                    in_string = quote
    return prefix_hit
