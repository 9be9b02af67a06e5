"""A process's connection to one database file: open while the process has work for it, given up when another
process waits for its turn (:mod:`terrmap.data.turn`), opened again on the next query.

So the app can serve a database all day while command-line jobs (an import, an export, a health check) and a
second app process use the same file: each waits its turn, and a holder lets go at its next quiet moment:
when none of its threads has touched the database for :data:`QUIET_S` and no transaction is open. A process
nobody waits for keeps its connection (and DuckDB's cache) as long as it likes.

Code above this module never sees a raw DuckDB connection: :meth:`SharedConnection.cursor` hands out
:class:`Cursor`, a stand-in that marks each call as database work (so the connection is never closed under a
running query) and, after the connection was given up and opened again, continues on a fresh DuckDB cursor.
Registered data frames and temporary tables live as long as the connection: use them within one burst of work
(register, query, unregister), as every caller does.
"""

from __future__ import annotations

import atexit
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from terrmap.data.turn import FileTurn, Holder, TurnTimeout

QUIET_S = 0.1  # a holder gives up its turn once its threads have been this long away from the database
POLL_S = 0.02  # how often a holder looks for a waiting process

LOCK_WAIT_ENV_VAR = "TERRMAP_LOCK_WAIT"
DEFAULT_LOCK_WAIT_S = 10.0  # how long a job waits for its turn before it gives up


def lock_wait_s() -> float:
    return float(os.environ.get(LOCK_WAIT_ENV_VAR, DEFAULT_LOCK_WAIT_S))


class DatabaseInUse(RuntimeError):
    """Another process held the database for longer than this one would wait."""

    def __init__(self, path: Path, holder: Holder | str | None, waited: float):
        self.path, self.holder, self.waited = path, holder, waited
        if isinstance(holder, Holder):
            who = holder.describe()
        else:
            who = f"process {holder}" if holder else "another process"
        super().__init__(
            f"the database {path} is in use by {who}; waited {_seconds(waited)} s for a turn. Run this again when it "
            f"is done, or set {LOCK_WAIT_ENV_VAR}=SECONDS to wait longer.")


# Never download an extension: replaying the log of a process killed while it created the schema asks for
# DuckDB's core functions, built in but not yet loaded, and DuckDB 2.0 then tries to install them from the
# internet (and fails offline) unless it may only load what it has.
CONNECT_CONFIG = {"autoinstall_known_extensions": False}


def _seconds(s: float) -> str:
    return f"{s:.1f}" if s < 10 else f"{s:.0f}"


def _connect(path: Path, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, retried while a process outside terrmap's turn-taking (a DuckDB shell, say) holds
    the file, up to ``wait`` seconds."""
    start = time.monotonic()
    pause = 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=CONNECT_CONFIG)
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" not in text.lower():
                raise
            waited = time.monotonic() - start
            if waited >= wait:
                found = re.search(r"\(PID (\d+)\)", text)
                raise DatabaseInUse(path, found.group(1) if found else None, waited) from None
            time.sleep(min(pause, max(wait - waited, 0.0)))
            pause = min(pause * 2, 0.5)


class SharedConnection:
    """The connection of this process to one database file, shared by its threads and its Store objects."""

    def __init__(self, path: Path, read_only: bool = False, lock_wait: float | None = None):
        self.path = Path(path)
        self.read_only = read_only
        self.lock_wait = lock_wait_s() if lock_wait is None else lock_wait
        self.turn = FileTurn(self.path)
        self.generation = 0  # bumped each time the connection is opened
        self.opened = 0  # how many times (1 for a process nobody waited for)
        self._root: duckdb.DuckDBPyConnection | None = None
        self._cond = threading.Condition()
        self._opening = False
        self._yielding = False  # another process waits: no new work starts until the turn has gone round
        self._busy: dict[int, int] = {}  # thread id -> calls in progress
        self._last: dict[int, float] = {}  # thread id -> when it last touched the database
        self._local = threading.local()
        self._cursors: weakref.WeakSet[Cursor] = weakref.WeakSet()
        self._closed = False
        # Told (in the waiting thread) when opening waits more than a moment for another process: the app shows it.
        self.on_slow_wait: Callable[[Holder | None], None] | None = None

    # -- work ------------------------------------------------------------------------------
    def cursor(self) -> Cursor:
        """This thread's cursor (a stand-in that survives the connection being given up and opened again)."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._local.cursor = Cursor(self)
            self._cursors.add(cur)
        return cur

    def root(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection itself, open (for settings that belong to the database instance)."""
        self._enter()
        try:
            return self._root
        finally:
            self._exit()

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Keep the turn for the whole block (a transaction: never given up half-way)."""
        self._enter()
        try:
            yield
        finally:
            self._exit()

    def _enter(self) -> duckdb.DuckDBPyConnection:
        me = threading.get_ident()
        while True:
            with self._cond:
                if self._closed:
                    raise duckdb.ConnectionException("Connection already closed!")
                if self._root is not None and (not self._yielding or self._busy.get(me) or self._recent(me)):
                    self._busy[me] = self._busy.get(me, 0) + 1
                    self._last[me] = time.monotonic()
                    return self._root
                if self._root is not None or self._opening:
                    self._cond.wait(POLL_S)
                    continue
                self._opening = True
            try:
                self._open()
            finally:
                with self._cond:
                    self._opening = False
                    self._cond.notify_all()

    def _exit(self) -> None:
        me = threading.get_ident()
        with self._cond:
            left = self._busy.get(me, 1) - 1
            if left:
                self._busy[me] = left
            else:
                self._busy.pop(me, None)
            self._last[me] = time.monotonic()

    def _recent(self, thread: int) -> bool:
        return time.monotonic() - self._last.get(thread, float("-inf")) < QUIET_S

    # -- turns -----------------------------------------------------------------------------
    def _open(self) -> None:
        start = time.monotonic()
        try:
            self.turn.acquire(self.lock_wait, self.on_slow_wait)
        except TurnTimeout as exc:
            raise DatabaseInUse(self.path, exc.holder, exc.waited) from None
        try:
            root = _connect(self.path, self.read_only, max(self.lock_wait - (time.monotonic() - start), 0.0))
        except BaseException:
            self.turn.release()
            raise
        with self._cond:
            self._root = root
            self.generation += 1
            self.opened += 1
        _watch(self)

    def give_up_if_quiet(self) -> bool:
        """Called by the watcher: when another process waits, stop new work and, once this process is quiet,
        close the connection and pass the turn. True when the turn was given up."""
        if self._root is None or self._closed:
            return False
        if not self._yielding:
            if not self.turn.others_waiting():
                return False
            with self._cond:
                self._yielding = True
        with self._cond:
            now = time.monotonic()
            if self._busy or any(now - t < QUIET_S for t in self._last.values()):
                return False
            self._give_up()
            return True

    def _give_up(self) -> None:
        """With the condition held: close the connection (DuckDB checkpoints its log) and pass the turn."""
        root, self._root = self._root, None
        for cur in list(self._cursors):
            cur._real = None  # closed with the connection; the next call opens a fresh one
        self._last.clear()
        self._yielding = False
        try:
            if root is not None:
                root.close()
        finally:
            self.turn.release(passed=True)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            if self._root is not None:
                self._give_up()
            self.turn.close()


class Cursor:
    """A DuckDB cursor's stand-in: every call is database work of the calling thread, on a DuckDB cursor of
    the current connection (a new one after the connection was given up and opened again)."""

    # Calls that only look at a query another thread runs on this cursor: never wait for a turn.
    _PASS_THROUGH = frozenset({"query_progress", "interrupt"})

    def __init__(self, shared: SharedConnection):
        self._shared = shared
        self._real: duckdb.DuckDBPyConnection | None = None
        self._generation = -1

    def _current(self, root: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        if self._generation != self._shared.generation or self._real is None:
            self._real = root.cursor()
            self._generation = self._shared.generation
        return self._real

    def __getattr__(self, name: str):
        if name in Cursor._PASS_THROUGH:
            real = self._real
            if real is None:
                raise AttributeError(name)
            return getattr(real, name)
        shared = self._shared

        def call(*args, **kwargs):
            root = shared._enter()
            try:
                real = self._current(root)
                result = getattr(real, name)(*args, **kwargs)
            finally:
                shared._exit()
            return _wrap(result, real, self, shared)

        return call


class Relation:
    """A DuckDB relation's stand-in: evaluating it is database work (the connection stays open meanwhile)."""

    def __init__(self, relation: duckdb.DuckDBPyRelation, shared: SharedConnection):
        self._relation = relation
        self._shared = shared

    def __getattr__(self, name: str):
        target = getattr(self._relation, name)
        if not callable(target):
            return target
        shared = self._shared

        def call(*args, **kwargs):
            shared._enter()
            try:
                result = target(*args, **kwargs)
            finally:
                shared._exit()
            return _wrap(result, None, None, shared)

        return call


def _wrap(result, real, proxy, shared: SharedConnection):
    if real is not None and result is real:
        return proxy
    if isinstance(result, duckdb.DuckDBPyRelation):
        return Relation(result, shared)
    return result


# -- the watcher: one thread per process looks for waiting processes ---------------------------------------------
_watched: weakref.WeakSet[SharedConnection] = weakref.WeakSet()
_watch_lock = threading.Lock()
_watcher: threading.Thread | None = None


def _watch(shared: SharedConnection) -> None:
    global _watcher
    with _watch_lock:
        _watched.add(shared)
        if _watcher is None or not _watcher.is_alive():
            _watcher = threading.Thread(target=_watch_loop, name="terrmap-db-turns", daemon=True)
            _watcher.start()


def _watch_loop() -> None:
    while True:
        time.sleep(POLL_S)
        _watch_once()


def _watch_once() -> None:
    # Its own frame, so that no connection stays referenced from the loop while it sleeps.
    with _watch_lock:
        connections = [c for c in _watched if c._root is not None and not c._closed]
    for shared in connections:
        try:
            shared.give_up_if_quiet()
        except Exception:  # a watcher that dies would leave every waiter waiting
            pass


@atexit.register
def _close_all() -> None:
    """Close every connection when the process ends (DuckDB folds its log into the file), before the watcher,
    a daemon thread, is stopped wherever it is."""
    with _watch_lock:
        connections = list(_watched)
    for shared in connections:
        try:
            shared.close()
        except Exception:
            pass
