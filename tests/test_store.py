import subprocess
import sys
import threading

import duckdb
import pandas as pd
import pytest

from terrmap.data.store import MIGRATIONS, Store, open_store, resolve_db_path
from tests.cli_support import run_cli


def test_new_file_gets_schema_and_reference_zips(tmp_path):
    store = Store(tmp_path / "a.duckdb")
    tables = {r[0] for r in store.cursor().execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"leads", "reps", "territories", "plans", "plan_assignments", "plan_changes", "zips", "zip_shapes"} <= tables
    assert store.schema_version == len(MIGRATIONS)
    assert store.scalar("SELECT count(*) FROM zips") > 40_000
    store.close()
    # Reopening applies nothing twice.
    again = Store(tmp_path / "a.duckdb")
    assert again.scalar("SELECT count(*) FROM schema_version") == len(MIGRATIONS)
    again.close()


def test_shapes_stored_before_stamps_get_their_stamp_once_at_open(tmp_path):
    """Migration 6: a database whose ZIP polygons were written without a stamp gets it when next opened (the
    caches of land, cells and polygons key on it), equal to the one written with new shapes."""
    from terrmap.data import zip_tables

    path = tmp_path / "old.duckdb"
    store = Store(path)
    rows = pd.DataFrame({"zip": ["00001", "00002"], "state": ["RI", "RI"], "source": ["voronoi"] * 2,
                         "area_km2": [1.0, 2.0], "geojson": ['{"type":"Point","coordinates":[0,0]}'] * 2})
    with store.transaction() as tx:
        zip_tables.write_shapes(tx, rows)
    written = zip_tables.shapes_stamp(store)
    # as a database of before migration 6: shapes, no stamp
    store.cursor().execute("DELETE FROM meta WHERE key = 'zip_shapes_stamp'")
    store.cursor().execute("DELETE FROM schema_version WHERE version >= 6")  # and those after it
    store.close()
    again = Store(path)
    try:
        assert again.scalar("SELECT value FROM meta WHERE key = 'zip_shapes_stamp'") == written
        assert written.startswith("2:")
    finally:
        again.close()


def test_db_path_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("TERRMAP_DB", raising=False)
    assert resolve_db_path(None).name == "terrmap.duckdb"
    monkeypatch.setenv("TERRMAP_DB", str(tmp_path / "env.duckdb"))
    assert resolve_db_path(None) == tmp_path / "env.duckdb"
    assert resolve_db_path(tmp_path / "x.duckdb") == tmp_path / "x.duckdb"


def test_open_store_is_one_per_file_and_cursor_per_thread(tmp_path):
    a = open_store(tmp_path / "s.duckdb")
    assert open_store(tmp_path / "s.duckdb") is a
    seen = []

    def work():
        seen.append(a.cursor())
        a.cursor().execute("INSERT INTO meta VALUES (?, 'x')", [threading.current_thread().name]).fetchall()

    threads = [threading.Thread(target=work, name=f"t{i}") for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 4
    assert a.scalar("SELECT count(*) FROM meta WHERE key LIKE 't%'") == 4


def test_transaction_rolls_back_on_error(empty_store):
    with pytest.raises(RuntimeError):
        with empty_store.transaction() as tx:
            tx.execute("INSERT INTO meta VALUES ('k', 'v')")
            raise RuntimeError("boom")
    assert empty_store.scalar("SELECT count(*) FROM meta WHERE key = 'k'") == 0


def test_cli_db_flag_and_env_var(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TERRMAP_DB", str(tmp_path / "from_env.duckdb"))
    assert run_cli(capsys, "demo", "--leads", "2000", "--reps", "15").returncode == 0
    assert (tmp_path / "from_env.duckdb").exists()
    con = duckdb.connect(str(tmp_path / "from_env.duckdb"), read_only=True)
    assert con.sql("SELECT count(*) FROM leads").fetchall()[0][0] == 2000
    assert con.sql("SELECT count(*) FROM reps").fetchall()[0][0] == 15 + 1  # and the Enterprise overlay's team
    # The demo leaves the ZIP borders built, so the first editor or optimizer open does not wait for them.
    assert con.sql("SELECT count(*) FROM zip_shape_sizes").fetchall()[0][0] == con.sql(
        "SELECT count(*) FROM zip_shapes").fetchall()[0][0] > 30_000


def _hold(db, seconds: float) -> subprocess.Popen:
    """Another process that opens ``db`` (as the app does) and keeps it for ``seconds``."""
    proc = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('open', flush=True); "
        "time.sleep(float(sys.argv[2])); c.close()"), str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "open"
    return proc


def test_a_command_on_a_database_another_process_holds_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    """Issue 18.1 (a first step): a command on a database the app holds used to end in DuckDB's traceback. It
    now waits up to $TERRMAP_LOCK_WAIT seconds for the holder to let go, then exits 3 with one line naming the
    file and the holder's process id."""
    db = tmp_path / "held.duckdb"
    Store(db).close()
    holder = _hold(db, 30)
    try:
        monkeypatch.setenv("TERRMAP_LOCK_WAIT", "0.3")
        res = run_cli(capsys, "regions", "--layer", "zip", "--out", tmp_path / "r.csv", db=db)
        assert res.returncode == 3, res
        line = res.stderr.strip()
        assert "\n" not in line and "Traceback" not in line
        assert f"in use by process {holder.pid}" in line and str(db) in line and "waited 0." in line
    finally:
        holder.kill()
        holder.wait()


def test_a_command_waits_for_a_short_job_that_holds_the_database(tmp_path, monkeypatch):
    db = tmp_path / "busy.duckdb"
    Store(db).close()
    holder = _hold(db, 0.8)
    try:
        monkeypatch.setenv("TERRMAP_LOCK_WAIT", "30")
        store = Store(db)  # opened once the other process closed the file
        assert store.scalar("SELECT count(*) FROM zips") > 30_000
        store.close()
    finally:
        holder.kill()
        holder.wait()
