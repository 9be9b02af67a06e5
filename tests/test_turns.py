"""Issue 18.1-2: processes take turns on one database file (terrmap.data.turn, terrmap.data.connection).

Every test runs a real second process on the same DuckDB file. No verdict depends on the clock: the other
process holds the file for far longer than the test waits, so a read that succeeds proves the turn was passed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from terrmap.data.store import Store
from tests.cli_support import run_cli
from tests.db_support import built_once

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory) -> Path:
    """A database with the schema and the ZIP reference, no leads (built once per run)."""
    return built_once(tmp_path_factory, "turns-empty.duckdb", lambda p: Store(p).close())


@pytest.fixture
def db(empty_db, tmp_path) -> Path:
    path = tmp_path / "t.duckdb"
    shutil.copy(empty_db, path)
    return path


def _worker(db: Path, *args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "tests.turn_worker", args[0], str(db), *map(str, args[1:])],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line == "ready", (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc


def _finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


def test_a_command_reads_while_another_process_keeps_the_database_open(db, tmp_path, capsys, monkeypatch):
    """The app keeps its connection between reruns; a command on the same file used to fail on DuckDB's lock.
    The holder now lets go while it is idle, and opens the file again for its next query."""
    holder = _worker(db, "idle", 3)
    try:
        monkeypatch.setenv("TERRMAP_LOCK_WAIT", "60")
        res = run_cli(capsys, "regions", "--layer", "zip", "--out", tmp_path / "r.csv", db=db)
        assert res.returncode == 0, res
        assert holder.poll() is None  # the holder was still there, keeping the file, when the read ran
        assert _finish(holder).strip() == "opened 2"  # it gave the file up once and took it back
    finally:
        holder.kill()


def test_a_writer_waits_for_the_other_process_transaction_and_sees_all_of_it(db, monkeypatch):
    """A transaction is never interrupted to pass the turn: the reader sees nothing of it, then all of it."""
    holder = _worker(db, "transaction", 1.5, "k")
    try:
        store = Store(db, lock_wait=60)
        assert store.scalar("SELECT value FROM meta WHERE key = 'k'") == "whole"
        store.close()
        _finish(holder)
    finally:
        holder.kill()


def test_a_command_that_gets_no_turn_says_who_holds_the_database_in_one_line(db, tmp_path, capsys, monkeypatch):
    holder = _worker(db, "transaction", 120, "k")
    try:
        monkeypatch.setenv("TERRMAP_LOCK_WAIT", "0.5")
        res = run_cli(capsys, "regions", "--layer", "zip", "--out", tmp_path / "r.csv", db=db)
        assert res.returncode == 3, res
        line = res.stderr.strip()
        assert "\n" not in line and "Traceback" not in line, line
        assert f"in use by process {holder.pid} (turn_worker.py), holding it for" in line, line
        assert str(db) in line and "waited 0." in line
    finally:
        holder.kill()
        holder.wait()


def test_two_writing_processes_and_a_reader_all_get_their_turns(db):
    """Two processes commit 25 transactions each while this one reads from four threads: every write lands, no
    call fails."""
    writers = [_worker(db, "inserts", 25, tag) for tag in ("a", "b")]
    store = Store(db, lock_wait=60)
    seen: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def read(mine: list[int]) -> None:
        try:
            for _ in range(10):
                mine.append(store.scalar("SELECT count(*) FROM meta WHERE key LIKE 'a-%' OR key LIKE 'b-%'"))
        except BaseException as exc:  # collected: a failing thread must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(mine,)) for mine in seen]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for w in writers:
        _finish(w)
    assert not errors, errors
    assert all(len(mine) == 10 and mine == sorted(mine) for mine in seen), seen  # commits are never undone
    assert store.scalar("SELECT count(*) FROM meta WHERE key LIKE 'a-%' OR key LIKE 'b-%'") == 50
    store.close()
