"""A small bounded map with per-entry expiry: what a warm instance remembers between invocations.

forward keeps four such memories (tunnel -> connection row, tunnel -> recent answer times,
stored policy -> parsed policy, connection -> request_denied token bucket) and policy one
(basic-auth credentials already verified); each is one ``TTLMap``, so each has the same
guarantees:

* at most ``max_entries`` entries; putting one more evicts the least recently used
  (``get``, ``put`` and ``update`` all count as a use);
* an entry put with a ``ttl_s`` is gone once that many seconds have passed (``clock``,
  ``time.monotonic`` by default): ``get`` no longer returns it and ``update`` starts afresh;
  ``ttl_s=None`` keeps it until it is evicted;
* thread-safe: the local emulator may run several invocations in threads of one process,
  and ``update`` is an atomic read-modify-write.

Expired entries are removed when they are next looked at, or evicted as the least recently
used; nothing runs in the background. Stdlib only: ``policy`` uses it, and the agent imports ``policy``.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import OrderedDict
from typing import Callable, Final, Generic, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")


class Missing(enum.Enum):
    """``get``'s default for maps whose values may be None (``found is not MISSING``)."""
    MISSING = "missing"


MISSING: Final = Missing.MISSING


class TTLMap(Generic[K, V]):
    def __init__(self, max_entries: int, ttl_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.ttl_s = ttl_s  # the default for put/update without their own
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, tuple[float | None, V]] = OrderedDict()  # key -> (expires at, value)

    def _live(self, key: K, now: float) -> tuple[float | None, V] | None:
        """The entry if present and not expired (made the most recent); an expired one is dropped. Lock held."""
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] is not None and found[0] <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return found

    def _store(self, key: K, value: V, ttl_s: float | None, now: float) -> None:
        """Insert or replace as the most recent entry, then evict down to the bound. Lock held."""
        self._entries[key] = (None if ttl_s is None else now + ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...

    def get(self, key: K, default: object = None) -> object:
        with self._lock:
            found = self._live(key, self._clock())
        return default if found is None else found[1]

    def put(self, key: K, value: V, ttl_s: float | None = None) -> None:
        """Remember ``value`` for ``ttl_s`` seconds (the map's ``ttl_s`` when None)."""
        with self._lock:
            self._store(key, value, self.ttl_s if ttl_s is None else ttl_s, self._clock())

    def update(self, key: K, change: Callable[[V | None], V], ttl_s: float | None = None) -> V:
        """Atomically replace the value with ``change(current or None)``; returns the new value.
        ``change`` runs under the map's lock: keep it short and never touch the map from it."""
        with self._lock:
            now = self._clock()
            found = self._live(key, now)
            value = change(None if found is None else found[1])
            self._store(key, value, self.ttl_s if ttl_s is None else ttl_s, now)
        return value

    def pop(self, key: K, only_if: Callable[[V], bool] | None = None) -> bool:
        """Forget ``key`` (only when ``only_if(value)`` holds, when given). True when removed."""
        with self._lock:
            found = self._live(key, self._clock())
            if found is None or (only_if is not None and not only_if(found[1])):
                return False
            del self._entries[key]
            return True

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        """Entries held, expired ones not yet removed included (never more than ``max_entries``)."""
        with self._lock:
            return len(self._entries)
