"""Caches: costly pure results keyed by the content of their input frame (per process, and on disk), and
:class:`LoadCache`, the thread-safe least-recently-used cache of loaded read-only objects (graphs, instances).

Geometry derived from the built-in ZIP reference (Voronoi shapes, their shared borders) is the same for every
database built on it; computing it once per process makes a second database (a test's copy, a new demo) cheap,
and the copy on disk (``$TERRMAP_CACHE``, default ``~/.cache/terrmap``) makes the next process's cheap too (a
new demo builds in 2 s instead of 6). :func:`disk_memo` does the same for results keyed otherwise (a large H3
adjacency graph by its cells, a state's land cells by the geometry's stamp). The disk key also holds a digest
of the geometry code (every module of terrmap.geo), so a change to how shapes or borders are computed never
reads an old result. Writes are atomic (a temporary file renamed); an unreadable or unwritable cache is skipped,
never an error.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from functools import cache, wraps
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import pandas as pd

T = TypeVar("T")
V = TypeVar("V")
KEEP = 2  # results kept per function: the built-in geography and one other


def content_digest(frame: pd.DataFrame) -> str:
    """A digest of the frame's column names and values (not its index)."""
    h = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    h.update(np.ascontiguousarray(pd.util.hash_pandas_object(frame, index=False).to_numpy()).tobytes())
    return h.hexdigest()


CACHE_ENV_VAR = "TERRMAP_CACHE"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "terrmap")


@cache
def _code_digest() -> str:
    """A digest of terrmap.geo's source: what the memoised geometry is computed by."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:16]


def _read(path: Path):
    try:
        with path.open("rb") as f:
            return pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
        return None


def _write(path: Path, result) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass


def _disk_path(name: str, key: str) -> Path:
    return cache_dir() / f"{name}-{_code_digest()}-{key[:32]}.pkl"


def disk_key(*parts: object) -> str:
    """A key for :func:`disk_memo` from its parts (their ``str``), e.g. a content stamp and a state."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


def read_cached(name: str, key: str):
    """What :func:`write_cached` stored under ``name`` and ``key`` for this geometry code (None: nothing, or
    an unreadable file)."""
    return _read(_disk_path(name, key))


def write_cached(name: str, key: str, result) -> None:
    """Store ``result`` on disk under ``name`` and ``key`` (and the geometry code's digest); never an error."""
    _write(_disk_path(name, key), result)


def disk_memo(name: str, key: str, compute: Callable[[], T]) -> T:
    """``compute()`` once per ``key`` across processes: read from the disk copy when there is one, else computed
    and written. ``key`` must name everything the result depends on besides terrmap.geo's code (its digest is
    part of the file name), e.g. :func:`disk_key` of the input's content; a result of None is never stored."""
    result = read_cached(name, key)
    if result is None:
        result = compute()
        if result is not None:
            write_cached(name, key, result)
    return result


def memo_by_digest(fn: Callable[[pd.DataFrame], T]) -> Callable[[pd.DataFrame], T]:
    """``fn(frame)`` computed once per frame content (:func:`content_digest`), kept in the process and on disk.
    Callers must not mutate what it returns."""
    kept: OrderedDict[str, T] = OrderedDict()

    @wraps(fn)
    def wrapper(frame: pd.DataFrame) -> T:
        digest = content_digest(frame)
        if digest in kept:
            kept.move_to_end(digest)
            return kept[digest]
        path = cache_dir() / f"{fn.__module__}.{fn.__qualname__}-{_code_digest()}-{digest[:32]}.pkl"
        result = _read(path)
        if result is None:
            result = fn(frame)
            _write(path, result)
        kept[digest] = result
        while len(kept) > KEEP:
            kept.popitem(last=False)
        return result
    return wrapper


class LoadCache(Generic[V]):
    """A process-wide least-recently-used cache of read-only loaded objects (thread-safe: Streamlit serves each
    session from its own thread; the loader runs outside the lock, so two threads may both load a missing key
    once)."""

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
