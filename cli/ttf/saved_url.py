"""The tunnel id + reclaim token one tunnel presents at $connect, and their copy on disk.

The reclaim token is the agent's own (`new_reclaim_token`, 256 bits from the OS CSPRNG), made
before the first connect and presented at every one; the server keeps only its hash and sends
none back (an older server still does: that one is adopted).

Everything the connection lifecycle knows about reclaiming a public URL goes through SavedUrl:
which headers to send, what to remember after `connection_established`, what to drop when
the server refuses the reclaim. The file itself (format, modes, atomic replace) is
ttf/state.py's; SavedUrl only decides when to read, write and forget it, and says so.
"""

from __future__ import annotations

from httptunnel.protocol import ConnectionEstablished

from ttf.config import Config
from ttf.events import Notice, Sink
from ttf.state import StateError, TunnelStore, new_reclaim_token


class SavedUrl:
    """What this tunnel reclaims; store is None when nothing is saved (no state dir, --subdomain)."""

    def __init__(self, store: TunnelStore | None, emit: Sink) -> None:
        self.store = store
        self.emit = emit
        self.tunnel_id: str | None = None
        self.reclaim_token: str | None = None
        self.from_saved = False  # the id/token came from the state file and are not confirmed yet
        self._saved_as: tuple[str, str] | None = None  # what the file holds, as this tunnel last wrote it
        self._save_failed = False

    @classmethod
    def for_config(cls, config: Config, emit: Sink) -> SavedUrl:
        store = None
        if config.state_dir is not None and not config.subdomain:  # a name needs no saved id
            store = TunnelStore(config.state_dir, config.endpoint, config.local_target, config.name)
        return cls(store, emit)

    def restore(self, new_url: bool) -> None:
        """Present the saved tunnel id on the first connect (not with --subdomain / --new-url)."""
        if self.store is None:
            return
        if new_url:
            self.emit(Notice("info", "--new-url: not reclaiming the saved public URL; the new one will be saved"))
            return
        try:
            saved = self.store.load()
        except StateError as exc:
            self.emit(Notice("warning", f"ignoring the saved tunnel: {exc}"))
            return
        if saved is None:
            return
        self.tunnel_id, self.reclaim_token = saved.tunnel_id, saved.reclaim_token
        self.from_saved = True
        self.emit(Notice("info", f"reclaiming the saved tunnel {saved.tunnel_id} ({self.store.path})"))

    def reclaim_headers(self) -> dict[str, str]:
        """The reclaim token (made here when there is none yet), and the tunnel id to ask back once known."""
        if not self.reclaim_token:
            self.reclaim_token = new_reclaim_token()
        headers = {"X-Tunnel-Reclaim-Token": self.reclaim_token}
        if self.tunnel_id:
            headers["X-Tunnel-Id"] = self.tunnel_id
        return headers

    def established(self, info: ConnectionEstablished) -> None:
        """Remember (and save) the id the server confirmed."""
        if self.tunnel_id and info.tunnel_id != self.tunnel_id:
            self.emit(Notice("warning", f"tunnel id changed from {self.tunnel_id} to {info.tunnel_id}"))
        self.tunnel_id = info.tunnel_id
        self.reclaim_token = info.reclaim_token or self.reclaim_token  # only older servers send one
        self.from_saved = False
        if self.reclaim_token:
            self._save(info.tunnel_id, self.reclaim_token)

    def refused(self, status: int) -> bool:
        """The server will not give this id back: forget it (and its token). False when no reclaim was asked for."""
        if not self.tunnel_id:
            return False
        saved = "saved " if self.from_saved else ""
        self.emit(Notice("warning", f"{saved}tunnel {self.tunnel_id} could not be reclaimed "
                                    f"(HTTP {status}); a new public URL will be assigned"))
        self.tunnel_id = self.reclaim_token = None
        self.from_saved = False
        self._forget()
        return True

    def _save(self, tunnel_id: str, reclaim_token: str) -> None:
        if self.store is None or self._saved_as == (tunnel_id, reclaim_token):
            return  # unchanged (a renewal or a reconnect keeping its id): no need to rewrite the file
        try:
            self.store.save(tunnel_id, reclaim_token)
        except OSError as exc:
            if not self._save_failed:  # once is enough: every renewal would repeat it
                self.emit(Notice("warning", f"cannot save the tunnel to {self.store.path}: {exc.strerror or exc}; "
                                            "the URL will change when ttf restarts"))
            self._save_failed = True
            return
        self._save_failed = False
        self._saved_as = (tunnel_id, reclaim_token)

    def _forget(self) -> None:
        if self.store is None:
            return
        self._saved_as = None
        try:
            self.store.forget()
        except OSError as exc:
            self.emit(Notice("warning", f"cannot remove {self.store.path}: {exc.strerror or exc}"))
