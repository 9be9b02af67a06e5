"""Process-wide caches of read-only objects loaded from a database (instances, land cells)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from terrmap.data.store import Store

V = TypeVar("V")


class LoadCache(Generic[V]):
    """A process-wide least-recently-used cache of read-only loaded objects (thread-safe; the loader runs
    outside the lock, so two threads may both load a missing key once)."""

    def __init__(self, max_entries: int = 4):
        self.max_entries = max_entries
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], V], max_entries: int | None = None) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = load()
        with self._lock:
            self._items[key] = value
            while len(self._items) > (max_entries or self.max_entries):
                self._items.popitem(last=False)
        return value

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def store_key(store: Store) -> str:
    """What identifies a database in a cache key: its path (or the object, for one in memory)."""
    return str(getattr(store, "path", id(store)))
