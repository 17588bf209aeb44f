"""Command line, environment and .env parsing for `ttf`.

Precedence: command line > environment (`TTF_*`) > a `.env` file > defaults. A `.env` file is
read only when asked for (`--env-file FILE` or `TTF_ENV_FILE` in the process environment): one
in the working directory may come with a repository, and must not choose where the user's
token goes. A config file naming several tunnels (ttf.toml) is configfile.py's; it uses the
same conversion (convert()). Every problem becomes a :class:`ConfigError` with one readable
sentence.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, NoReturn
from urllib.parse import urlsplit

from httptunnel import policy as edge_policy

from ttf._version import __version__
from ttf.state import default_state_dir

DEFAULT_PORT = 3000
DEFAULT_HOST = "127.0.0.1"
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_REQUEST_TIMEOUT = 900.0  # a cap of ours; the edge says how long it waits (time_left_ms)
DEFAULT_MAX_CONCURRENCY = 64
DEFAULT_MAX_STREAMS = 8  # streamed answers at once per tunnel (ttf.streaming)
DEFAULT_MAX_WEBSOCKETS = 64  # caller WebSockets open at once per tunnel (ttf.sockets)
DEFAULT_HEARTBEAT_INTERVAL = 30.0
DEFAULT_RENEW_AFTER = 110 * 60.0  # API Gateway closes a WebSocket at 2 h
DEFAULT_DRAIN_TIMEOUT = 5.0
DEFAULT_INSPECT = ("127.0.0.1", 4045)
DEFAULT_INSPECT_HISTORY = 100


class ConfigError(Exception):
    """Bad input: one readable line, exit status 2."""

    exit_code = 2  # what `ttf` exits with (the Python API's exceptions carry it too)


@dataclass(frozen=True)
class Config:
    """Everything the agent needs. Built by parse_config(), which also fills the command
    line's defaults for the two optional features that are off in a bare Config:
    state_dir (None = the URL is not saved) and inspect (None = no inspector)."""

    endpoint: str
    port: int = DEFAULT_PORT
    host: str = DEFAULT_HOST
    token: str | None = None
    subdomain: str | None = None
    verbose: bool = False
    json: bool = False
    keep_host: bool = False
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_streams: int = DEFAULT_MAX_STREAMS
    max_websockets: int = DEFAULT_MAX_WEBSOCKETS
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    renew_after: float = DEFAULT_RENEW_AFTER
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    state_dir: Path | None = None
    new_url: bool = False
    no_rewrite: bool = False
    rewrite_json: bool = False
    inspect: tuple[str, int] | None = None
    inspect_history: int = DEFAULT_INSPECT_HISTORY
    name: str | None = None  # the tunnel's name in a config file (None: the command line's one tunnel)
    policy: edge_policy.Policy | None = None  # the edge policy sent at every $connect (None = open)
    # HTTP statuses of a refused WebSocket that stop the tunnel before its first success (401 always
    # does). The command line retries the others; the Python API gives up on 403 and 409 too.
    give_up_on: frozenset[int] = frozenset()

    @property
    def local_target(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are raised (one line) instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see ttf --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ttf",
        description="Forward a public http-tunnel URL to a local HTTP service.",
        epilog="Every option can also come from a TTF_<OPTION> environment variable "
        "(e.g. TTF_ENDPOINT, TTF_TOKEN, TTF_PORT), or from a .env file named with --env-file. "
        "`ttf replay ID [--edit]` sends a request the inspector captured again (ttf replay --help).",
    )
    add = parser.add_argument
    add("-e", "--endpoint", help="WebSocket endpoint, ws:// or wss:// (env TTF_ENDPOINT)")
    add("-p", "--port", help=f"local port to forward to (default {DEFAULT_PORT})")
    add("--host", help=f"local host to forward to (default {DEFAULT_HOST})")
    add("-t", "--token", help="JWT sent as 'Authorization: Bearer' (env TTF_TOKEN)")
    add("--subdomain", metavar="NAME", help="ask for a reserved tunnel name")
    add("--max-concurrency", help=f"local requests in flight at once (default {DEFAULT_MAX_CONCURRENCY})")
    add("--max-streams", help=f"streamed answers at once (SSE, long downloads; on the streaming edge); past it "
                              f"the caller gets 429 tunnel_busy (default {DEFAULT_MAX_STREAMS})")
    add("--max-websockets", help=f"caller WebSockets open at once (each its own local WebSocket); past it the "
                                 f"caller's handshake gets 429 tunnel_busy (default {DEFAULT_MAX_WEBSOCKETS})")
    add("--connect-timeout", help=f"seconds to wait for the tunnel (default {DEFAULT_CONNECT_TIMEOUT:g})")
    add("--request-timeout", help=f"most seconds to wait for the local service; the edge's own wait "
                                   f"(25 s on the HTTP API) ends it sooner (default {DEFAULT_REQUEST_TIMEOUT:g})")
    add("--keep-host", action="store_true", default=None, help="pass the public Host header to the local service")
    add("--json", action="store_true", default=None, help="one JSON object per line on stdout")
    add("--new-url", action="store_true", default=None,
        help="do not reclaim the saved public URL; take a new one and save that instead")
    add("--no-rewrite", action="store_true", default=None,
        help="on the path-based URL, pass answers through untouched (by default root-relative links, "
             "Location and cookie paths get the /<id> prefix)")
    add("--rewrite-json", action="store_true", default=None,
        help="on the path-based URL, also prefix JSON string values that start with '/' (off by default: "
             "such strings are as often data as links)")
    add("--state-dir", metavar="DIR",
        help="where the public URL is saved between runs (env TTF_STATE_DIR, default $XDG_STATE_HOME/ttf "
             "or ~/.local/state/ttf)")
    add("--inspect", metavar="HOST:PORT|off",
        help=f"serve the request inspector there (default {DEFAULT_INSPECT[0]}:{DEFAULT_INSPECT[1]}; off disables)")
    add("--inspect-history", metavar="N",
        help=f"requests the inspector keeps (default {DEFAULT_INSPECT_HISTORY})")
    edge = parser.add_argument_group(
        "edge policy", "enforced by the server before a request reaches this machine; each option may be "
        "repeated; as TTF_* variables, separate several CIDRs or header names with commas, and several "
        "USER:PASS, PROVIDER:SECRET or NAME:VALUE entries with newlines; in ttf.toml, arrays of strings")
    edge.add_argument("--basic-auth", action="append", metavar="USER:PASS",
                      help=f"require HTTP basic auth (up to {edge_policy.MAX_USERS} users; sent only as scrypt hashes)")
    edge.add_argument("--basic-auth-forward", action="store_true", default=None,
                      help="pass the caller's Authorization header on to the local service (default: dropped, "
                           "X-Forwarded-User: USER instead)")
    edge.add_argument("--allow-ip", action="append", metavar="CIDR",
                      help="only these source addresses may call (IPv4 or IPv6; deny wins)")
    edge.add_argument("--deny-ip", action="append", metavar="CIDR", help="refuse these source addresses")
    edge.add_argument("--verify-webhook", action="append", metavar="PROVIDER:SECRET",
                      help="require a valid webhook signature: github, stripe, slack, shopify, or "
                           "hmac-sha256:HEADER:SECRET[:hex|base64][:PREFIX]")
    edge.add_argument("--request-header-add", action="append", metavar="NAME:VALUE",
                      help="set this header on requests to the local service")
    edge.add_argument("--request-header-remove", action="append", metavar="NAME",
                      help="drop this header from requests to the local service")
    edge.add_argument("--response-header-add", action="append", metavar="NAME:VALUE",
                      help="set this header on answers to callers")
    edge.add_argument("--response-header-remove", action="append", metavar="NAME",
                      help="drop this header from answers to callers")
    add("-v", "--verbose", action="store_true", default=None, help="log protocol details on stderr")
    add("-c", "--config", metavar="FILE",
        help="run the tunnels a TOML file names (default ./ttf.toml when it exists and neither -p nor "
             "--subdomain is given; see cli/README.md)")
    add("--env-file", metavar="FILE",
        help="read TTF_* settings from this .env file (env TTF_ENV_FILE; never read unless named: "
             "a .env in the working directory is not read by itself)")
    add("-V", "--version", action="version", version=f"ttf {__version__}")
    # Hidden knobs for tests and unusual networks.
    add("--heartbeat-interval", help=argparse.SUPPRESS)
    add("--renew-after", help=argparse.SUPPRESS)
    add("--drain-timeout", help=argparse.SUPPRESS)
    return parser


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (optional `export `, quotes, # comments). Missing file: {}."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


_OPTIONS = (
    "endpoint", "port", "host", "token", "subdomain", "max_concurrency", "max_streams", "max_websockets",
    "connect_timeout",
    "request_timeout", "keep_host", "json", "verbose", "heartbeat_interval", "renew_after",
    "drain_timeout", "new_url", "no_rewrite", "rewrite_json", "state_dir", "inspect", "inspect_history", "config",
    "basic_auth_forward",
)


# Edge policy options (lists; the command line's entries replace the environment's) -> how a
# TTF_* value holds several entries. Config file keys: the same names with '-', arrays of strings.
POLICY_OPTIONS = {
    "basic_auth": "\n", "allow_ip": ",", "deny_ip": ",", "verify_webhook": "\n",
    "request_header_add": "\n", "request_header_remove": ",",
    "response_header_add": "\n", "response_header_remove": ",",
}
_POLICY_LIMITS = {
    "basic_auth": edge_policy.MAX_USERS, "allow_ip": edge_policy.MAX_CIDRS, "deny_ip": edge_policy.MAX_CIDRS,
    "verify_webhook": edge_policy.MAX_HOOKS,
}
_POLICY_CHECKS = {
    "basic_auth": edge_policy.split_basic_auth, "allow_ip": edge_policy.parse_cidr, "deny_ip": edge_policy.parse_cidr,
    "verify_webhook": edge_policy.webhook, "request_header_add": edge_policy.header_rule,
    "request_header_remove": edge_policy.header_name, "response_header_add": edge_policy.header_rule,
    "response_header_remove": edge_policy.header_name,
}


def _merged(args: argparse.Namespace, env: Mapping[str, str], dotenv: Mapping[str, str]) -> dict[str, tuple[str, object]]:
    """option -> (where it came from, raw value), for options given somewhere."""
    out: dict[str, tuple[str, object]] = {}
    for name, separator in POLICY_OPTIONS.items():
        var = "TTF_" + name.upper()
        entries = getattr(args, name)
        if entries:
            out[name] = ("--" + name.replace("_", "-"), list(entries))
        elif (env.get(var, "") or dotenv.get(var, "")) != "":
            where, raw = (var, env[var]) if env.get(var, "") else (f"{var} (.env)", dotenv[var])
            out[name] = (where, [e.strip() for e in raw.split(separator) if e.strip()])
    for name in _OPTIONS:
        var = "TTF_" + name.upper()
        cli_value = getattr(args, name)
        if cli_value is not None:
            out[name] = ("--" + name.replace("_", "-"), cli_value)
        elif env.get(var, "") != "":
            out[name] = (var, env[var])
        elif dotenv.get(var, "") != "":
            out[name] = (f"{var} (.env)", dotenv[var])
    return out


def _number(source: str, raw: object, kind: type, low: float, high: float) -> float | int:
    try:
        value: float | int = kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {raw!r} is not a {'whole ' if kind is int else ''}number") from None
    if not low <= value <= high or value != value:
        raise ConfigError(f"{source}: {raw} is out of range ({low:g}..{high:g})")
    return value


def _flag(source: str, raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{source}: {raw!r} is not a boolean (use true or false)")


def check_endpoint(source: str, raw: str) -> str:
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{source}: malformed endpoint URL {raw!r} ({exc})") from None
    if parts.scheme not in {"ws", "wss"}:
        raise ConfigError(f"{source}: endpoint must start with ws:// or wss://, got {raw!r}")
    if not parts.hostname:
        raise ConfigError(f"{source}: endpoint URL {raw!r} has no host")
    if port == 0:
        raise ConfigError(f"{source}: endpoint URL {raw!r} has port 0")
    if any(ch.isspace() for ch in raw):
        raise ConfigError(f"{source}: endpoint URL {raw!r} contains whitespace")
    return raw


def loopback_host(host: str) -> bool:
    """True for localhost, *.localhost and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_plain_ws(endpoint: str, token: object) -> None:
    """A token never goes over plain ws:// to another machine (anyone on the path could read and
    replay it): ws:// is for a stack on this machine (loopback), everything else takes wss://."""
    parts = urlsplit(endpoint)
    if token and parts.scheme == "ws" and not loopback_host(parts.hostname or ""):
        raise ConfigError(f"refusing to send the token over plain ws:// to {parts.hostname}: use wss:// "
                          "(ws:// is only for a stack on this machine: localhost, 127.0.0.1, ::1)")


def check_inspect(source: str, raw: object) -> tuple[str, int] | None:
    """`off` -> None; `HOST:PORT`, `[v6]:PORT` or `PORT` (on 127.0.0.1) -> (host, port)."""
    text = str(raw).strip()
    if text.lower() in {"off", "none", "no", "false"}:
        return None
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = DEFAULT_INSPECT[0], text
    host = host.strip("[]")
    if not host or any(ch.isspace() or ch in "/?#@[]" for ch in host):
        raise ConfigError(f"{source}: {raw!r} is not HOST:PORT or off")
    port = _number(source, port_text, int, 0, 65535)
    return host, int(port)


def convert(name: str, source: str, raw: object) -> object:
    """One option's value, checked (ConfigError names `source`); the command line, the
    environment and the config file all go through here."""
    if name in POLICY_OPTIONS:
        entries = [str(e) for e in raw] if isinstance(raw, (list, tuple)) else [str(raw)]
        limit = _POLICY_LIMITS.get(name, edge_policy.MAX_HEADER_RULES)
        if len(entries) > limit:
            raise ConfigError(f"{source}: at most {limit} entries (got {len(entries)})")
        try:
            for entry in entries:
                _POLICY_CHECKS[name](entry)
        except edge_policy.PolicyError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        return tuple(entries)
    if name == "endpoint":
        return check_endpoint(source, str(raw))
    if name == "port":
        return _number(source, raw, int, 1, 65535)
    if name == "max_concurrency":
        return _number(source, raw, int, 1, 10_000)
    if name == "max_streams":
        return _number(source, raw, int, 1, 1_000)
    if name == "max_websockets":
        return _number(source, raw, int, 1, 10_000)
    if name in {"connect_timeout", "request_timeout", "heartbeat_interval", "renew_after", "drain_timeout"}:
        return _number(source, raw, float, 0.01, 7 * 24 * 3600)
    if name in {"keep_host", "json", "verbose", "new_url", "no_rewrite", "rewrite_json", "basic_auth_forward"}:
        return _flag(source, raw)
    if name == "host":
        host = str(raw).strip().strip("[]")
        if not host or any(ch.isspace() or ch in "/?#@" for ch in host):
            raise ConfigError(f"{source}: {raw!r} is not a host name or address")
        return host
    if name == "subdomain":
        name_value = str(raw).strip().lower()
        if not name_value.replace("-", "").isalnum() or not name_value.isascii():
            raise ConfigError(f"{source}: {raw!r} is not a valid name (letters, digits, '-')")
        return name_value
    if name == "inspect":
        return check_inspect(source, raw)
    if name == "inspect_history":
        return _number(source, raw, int, 1, 100_000)
    if name == "state_dir":
        if not str(raw).strip():
            raise ConfigError(f"{source}: the state directory is empty")
        return Path(str(raw)).expanduser()
    return str(raw)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Raises ConfigError for bad input; SystemExit(0) for --help / --version."""
    return build_parser().parse_args(argv)


DOTENV = ".env"


def _env_file(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str, str] | None:
    """(where it was named, the file) when a .env file is asked for, else None. Only the command
    line and the process environment can ask: a .env file cannot name another."""
    if args.env_file is not None:
        return "--env-file", str(args.env_file)
    if env.get("TTF_ENV_FILE", "") != "":
        return "TTF_ENV_FILE", env["TTF_ENV_FILE"]
    return None


def given_options(args: argparse.Namespace, env: Mapping[str, str], cwd: Path) -> dict[str, tuple[str, object]]:
    """option -> (where it came from, raw value): command line > environment > the .env file
    asked for with --env-file / TTF_ENV_FILE (none otherwise)."""
    named = _env_file(args, env)
    dotenv: dict[str, str] = {}
    if named is not None:
        source, raw = named
        if not raw.strip():
            raise ConfigError(f"{source}: the .env file name is empty")
        path = cwd / Path(raw).expanduser()
        if not path.is_file():
            raise ConfigError(f"{source}: {raw}: no such file")
        dotenv = read_dotenv(path)
    return _merged(args, env, dotenv)


def unread_dotenv(args: argparse.Namespace, env: Mapping[str, str], cwd: Path) -> str | None:
    """A notice when ./.env holds TTF_* settings that were not read (no --env-file)."""
    if _env_file(args, env) is not None:
        return None
    try:
        names = sorted(k for k in read_dotenv(cwd / DOTENV) if k.startswith("TTF_"))
    except ConfigError:
        return None
    if not names:
        return None
    return (f"./{DOTENV} not read ({', '.join(names)}): a .env file is read only when named "
            f"(--env-file {DOTENV} or TTF_ENV_FILE={DOTENV})")


def finish(values: dict[str, object], env: Mapping[str, str]) -> Config:
    """The Config, with the command line's defaults for the state dir and the inspector, and
    the edge policy built (passwords hashed) from the policy options' checked entries."""
    if values.get("no_rewrite") and values.get("rewrite_json"):
        raise ConfigError("--no-rewrite and --rewrite-json contradict each other: pick one")
    lists = {name: values.pop(name, ()) for name in POLICY_OPTIONS}
    forward_authorization = bool(values.pop("basic_auth_forward", False))
    if forward_authorization and not lists["basic_auth"]:
        raise ConfigError("--basic-auth-forward needs --basic-auth")
    if any(lists.values()):
        try:
            built = edge_policy.build(
                basic_auth=lists["basic_auth"], allow=lists["allow_ip"], deny=lists["deny_ip"],  # type: ignore[arg-type]
                hooks=lists["verify_webhook"], request_add=lists["request_header_add"],  # type: ignore[arg-type]
                request_remove=lists["request_header_remove"],  # type: ignore[arg-type]
                response_add=lists["response_header_add"],  # type: ignore[arg-type]
                response_remove=lists["response_header_remove"],  # type: ignore[arg-type]
                forward_authorization=forward_authorization)
        except edge_policy.PolicyError as exc:
            where = f"tunnels.{values['name']}: " if values.get("name") else ""
            raise ConfigError(f"{where}edge policy: {exc}") from None
        values["policy"] = built or None
    if isinstance(values.get("endpoint"), str):
        check_plain_ws(str(values["endpoint"]), values.get("token"))
    values.setdefault("state_dir", default_state_dir(env))
    values.setdefault("inspect", DEFAULT_INSPECT)
    return Config(**values)  # type: ignore[arg-type]


def parse_config(argv: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Config:
    """The command line's one tunnel (a config file is configfile.load()'s). Raises ConfigError
    for bad input; SystemExit(0) for --help / --version."""
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    args = parse_args(argv)
    given = given_options(args, env, cwd)
    given.pop("config", None)
    return single_tunnel(given, env, unread_dotenv(args, env, cwd))


def single_tunnel(given: Mapping[str, tuple[str, object]], env: Mapping[str, str], unread: str | None = None
                  ) -> Config:
    if "endpoint" not in given:
        hint = f" ({unread})" if unread else ""
        raise ConfigError(f"no endpoint: pass -e/--endpoint wss://... or set TTF_ENDPOINT{hint}")
    return finish({name: convert(name, *given[name]) for name in given}, env)


# The Python API (ttf.api) reads explicit arguments and these TTF_* variables only: never a .env
# or a config file it was not given, and none of the command line's process-wide settings (an
# inspector port, a saved URL, output) that a library call must not pick up from the environment.
API_FROM_ENV = frozenset(_OPTIONS) - {"config", "inspect", "inspect_history", "state_dir", "new_url", "json",
                                      "verbose", "port", "host"} | frozenset(POLICY_OPTIONS)


def api_options(explicit: Mapping[str, object], env: Mapping[str, str]) -> dict[str, tuple[str, object]]:
    """option -> (where it came from, raw value): the caller's arguments (named as such) > TTF_*."""
    given = {name: got for name, got in _merged(parse_args([]), env, {}).items() if name in API_FROM_ENV}
    for name, value in explicit.items():
        if name in POLICY_OPTIONS and isinstance(value, str):
            value = [value]
        given[name] = (name, value)
    return given
