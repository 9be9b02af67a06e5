"""Test databases: built once per run and shared by the parallel workers, and closed without a checkpoint when
they are thrown away."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

import duckdb

from terrmap.data.store import Store
from terrmap.demo import build_demo


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """``build(path)`` run by the first test process that asks, then shared: the parallel workers of one run
    (pytest-xdist) wait for it instead of building the same database each. Treat the file as read-only."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder, above each worker's own
    folder = shared / "built-once"
    folder.mkdir(exist_ok=True)
    path, done = folder / name, folder / (name + ".done")
    with open(folder / (name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            for stale in (path, path.with_name(path.name + ".wal")):  # of a build that failed half-way
                stale.unlink(missing_ok=True)
            build(path)
            done.touch()
    return path


def built_demo(tmp_path_factory, name: str, n_leads: int, seed: int) -> Path:
    """A demo database of ``n_leads`` leads, built once per run (:func:`built_once`)."""
    def build(path: Path) -> None:
        store = Store(path)
        build_demo(store, n_leads=n_leads, seed=seed)
        store.close()

    return built_once(tmp_path_factory, name, build)


def discard(store: Store) -> None:
    """Close a test's throw-away database without folding its write-ahead log into the file first (DuckDB's
    checkpoint on shutdown: ~50 ms per database, for a file that is deleted next)."""
    try:
        store.con.execute("PRAGMA disable_checkpoint_on_shutdown")
    except duckdb.Error:  # already closed by the test
        pass
    store.close()
