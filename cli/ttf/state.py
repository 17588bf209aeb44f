"""The saved tunnel: what lets the public URL survive a `ttf` restart.

The agent makes its own reclaim token (`new_reclaim_token`: 256 bits from the OS CSPRNG) and
presents it at every connect; the server keeps only its hash. After every
`connection_established` the agent writes {tunnel_id, reclaim_token, endpoint, local_target,
saved_at} to one small JSON file per (endpoint, local host:port) under the state directory --
or, for a tunnel named in a config file, per (endpoint, name), with the name in the file: two
named tunnels to the same port keep two URLs, and a tunnel keeps its URL when its port changes.
On start it presents the saved id + reclaim token. The file holds a secret (the reclaim
token): it is created 0600 in a 0700 directory and replaced atomically (temporary file +
fsync + rename), so a crash never leaves half a file.

Version 1 files hold a token the server made and also stored in plain text; servers no longer
honour those, so such a file is reported in one line and replaced by the next save.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

FILE_MODE = 0o600
DIR_MODE = 0o700
_VERSION = 2
_SERVER_MADE_TOKENS = 1  # the version whose tokens came from the server
RECLAIM_TOKEN_BYTES = 32  # 256 bits; token_urlsafe makes 43 characters of [A-Za-z0-9_-]
_TUNNEL_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # fullmatch: "$" would let a trailing newline in
_MAX_FILE = 64 * 1024


class StateError(Exception):
    """The state file exists but cannot be used (unreadable, corrupt): worth a notice."""


@dataclass(frozen=True)
class SavedTunnel:
    tunnel_id: str
    reclaim_token: str
    endpoint: str
    local_target: str
    saved_at: float  # unix seconds
    name: str | None = None  # the config file's tunnel name; None for the command line's tunnel


def new_reclaim_token() -> str:
    """A fresh reclaim token, made here and never by the server."""
    return secrets.token_urlsafe(RECLAIM_TOKEN_BYTES)


def default_state_dir(env: Mapping[str, str]) -> Path:
    """`$XDG_STATE_HOME/ttf`, else `~/.local/state/ttf` (TTF_STATE_DIR is an ordinary option)."""
    xdg = env.get("XDG_STATE_HOME", "")
    if xdg and Path(xdg).is_absolute():  # the XDG spec says relative values are ignored
        return Path(xdg) / "ttf"
    home = env.get("HOME")
    return (Path(home) if home else Path.home()) / ".local" / "state" / "ttf"


def state_file_name(endpoint: str, local_target: str, name: str | None = None) -> str:
    # "#" never occurs in a host:port, so a name's key cannot be an unnamed tunnel's
    key = f"{endpoint}\n{local_target}" if name is None else f"{endpoint}\n#{name.lower()}"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
    return f"tunnel-{digest}.json"


@dataclass(frozen=True)
class TunnelStore:
    """The saved tunnel of one (endpoint, local target) pair, or of one (endpoint, tunnel name)."""

    directory: Path
    endpoint: str
    local_target: str
    name: str | None = None

    @property
    def path(self) -> Path:
        return self.directory / state_file_name(self.endpoint, self.local_target, self.name)

    def load(self) -> SavedTunnel | None:
        """The saved tunnel, None when there is none; StateError when the file is unusable."""
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read(_MAX_FILE + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if len(raw) > _MAX_FILE:
            raise StateError(f"{self.path} is too large to be a ttf state file")
        if _version(raw) == _SERVER_MADE_TOKENS:
            raise StateError(f"{self.path} was saved by an older ttf whose reclaim token the server no longer "
                             "accepts (the server had stored it in plain text); a new public URL will be assigned")
        saved = _parse(raw)
        if saved is None:
            raise StateError(f"{self.path} is not a valid ttf state file")
        if saved.endpoint != self.endpoint or _folded(saved.name) != _folded(self.name):
            return None  # a hash collision or a hand-copied file: not ours
        if self.name is None and saved.local_target != self.local_target:
            return None
        return saved

    def save(self, tunnel_id: str, reclaim_token: str, now: float | None = None) -> SavedTunnel:
        """Atomically replace the file; raises OSError when the directory is not writable."""
        saved = SavedTunnel(tunnel_id, reclaim_token, self.endpoint, self.local_target,
                            round(time.time() if now is None else now, 3), self.name)
        fields = {key: value for key, value in asdict(saved).items() if key != "name" or value is not None}
        data = json.dumps({"version": _VERSION, **fields}, indent=2).encode("utf-8") + b"\n"
        self.directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tunnel-", suffix=".tmp", dir=self.directory)  # created 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), FILE_MODE)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            _unlink_quietly(Path(tmp))
            raise
        return saved

    def forget(self) -> None:
        """Remove the saved tunnel (no error when there is none)."""
        _unlink_quietly(self.path)


def _version(raw: bytes) -> object:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return data.get("version") if isinstance(data, dict) else None


def _parse(raw: bytes) -> SavedTunnel | None:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("version") != _VERSION:
        return None
    strings = ("tunnel_id", "reclaim_token", "endpoint", "local_target")
    if not all(isinstance(data.get(key), str) and data[key] for key in strings):
        return None
    if not isinstance(data.get("saved_at"), (int, float)) or not _TUNNEL_ID.fullmatch(data["tunnel_id"]):
        return None
    token = data["reclaim_token"]
    if len(token) > 512 or not token.isascii() or not token.isprintable():
        return None  # it goes into an HTTP header
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        return None
    return SavedTunnel(data["tunnel_id"], token, data["endpoint"], data["local_target"], float(data["saved_at"]),
                       name)


def _folded(name: str | None) -> str | None:
    return None if name is None else name.lower()


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
