"""Killing writers: an operation run in a child process is killed (SIGKILL) at a random point, many times, and
the database must then open with the schema intact and hold either the state before the operation or the state
after it (issue 18.3), never a mix.

``python -m tests.crash_support OP --base DB --work DIR --kills N --seed S`` runs one operation's trials and
prints a JSON report (:func:`run_trials`); tests/test_crash.py runs it per operation.

The runner is one Python process that imports terrmap once and never opens a database itself: every step that
touches one (setting up, running the operation, checking a database) is a child forked from it, so a trial costs
a fork, not an interpreter start, and every check opens the file as a fresh process would (DuckDB replays the
write-ahead log a killed writer left). Each kill lands ``delay`` seconds after the child reports it is ready to
write (its modules imported, its store open, its inputs read). Half the delays spread evenly over 0 .. 1.4 times
the operation's measured duration (ready until the process exits, so the closing checkpoint is a target too),
the other half over the span of its transactions in the measured run (widened by half): both stratified and
jittered by a seeded RNG. Where a kill lands depends on the machine's load; the verdict does not: whatever the
moment, the state must be the one before or the one after. The child reports each transaction's begin and
commit, so the report also counts where the kills landed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Columns that hold the moment a row was written (DEFAULT current_timestamp): they differ between two runs of
# the same operation, so the fingerprint leaves them out.
VOLATILE = {
    "leads": {"imported_at"},
    "plans": {"created_at", "updated_at"},
    "plan_versions": {"saved_at"},
    "plan_changes": {"changed_at"},
    "schema_version": {"applied_at"},
    "models": {"created_at", "model", "metrics"},
    "account_pins": {"pinned_at"},
}
# Values that hold a moment, left out likewise: (table, column) -> the expression hashed instead.
VOLATILE_VALUES = {("meta", "value"): "CASE WHEN key LIKE '%\\_at' ESCAPE '\\' THEN NULL ELSE value END"}
# The tables whose content makes the state (every base table of the schema is fingerprinted; these must exist).
# Kills land over 0 .. SPREAD times the operation's measured duration: past its end too, as a loaded machine runs
# a trial slower than the measured run.
SPREAD = 1.4
REQUIRED = ["leads", "lead_rollup", "plans", "plan_assignments", "territories", "plan_versions",
            "plan_version_assignments", "plan_changes", "schema_version", "zips", "meta"]


def fingerprint(con) -> dict[str, list]:
    """table -> [rows, order-independent checksum of the rows] for every base table (doubles compared as
    FLOAT: a parallel sum differs in its last bits from run to run)."""
    columns: dict[str, list[str]] = {}
    for table, column, kind in con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE schema_name = 'main' "
            "AND NOT internal AND table_oid IN (SELECT table_oid FROM duckdb_tables() WHERE schema_name = 'main') "
            "ORDER BY table_name, column_index").fetchall():
        if column not in VOLATILE.get(table, ()):
            columns.setdefault(table, []).append(
                VOLATILE_VALUES.get((table, column)) or (f'CAST("{column}" AS FLOAT)' if kind == "DOUBLE" else f'"{column}"'))
    # one query: the catalog is read once and the tables are summed in parallel
    query = " UNION ALL ".join(
        f"SELECT '{table}', count(*), coalesce(sum(hash({', '.join(parts)})), 0)::VARCHAR FROM \"{table}\""
        for table, parts in columns.items())
    return {table: [int(rows), check] for table, rows, check in con.execute(query).fetchall()} if query else {}


def differences(a: dict, b: dict) -> list[str]:
    return sorted(t for t in set(a) | set(b) if a.get(t) != b.get(t))


# -- the database the trials start from -----------------------------------------------------------------------------
BASE_STATES = ["NM", "AZ", "NV", "UT"]


def small_base(demo: Path, path: Path) -> None:
    """The demo database with its plan cut down to four states (1,200 ZIPs instead of 32,000): every trial
    writes, commits and checks a few times less, and the writes go through the same code. The plan keeps its 20
    territories (those with no ZIP left keep their pins), hierarchy and overlay."""
    import duckdb

    shutil.copyfile(demo, path)
    con = duckdb.connect(str(path))
    con.execute("BEGIN")
    keep = "SELECT zip FROM zips WHERE state IN (SELECT unnest(?::VARCHAR[]))"
    con.execute(f"DELETE FROM plan_assignments WHERE region_id NOT IN ({keep})", [BASE_STATES])
    con.execute(f"DELETE FROM plan_version_assignments WHERE region_id NOT IN ({keep})", [BASE_STATES])
    con.execute("UPDATE plans SET area = ?", [BASE_STATES])
    con.execute("COMMIT")
    con.close()


# -- the operations ---------------------------------------------------------------------------------------------------
@dataclass
class Operation:
    """``setup(store, work)`` once, on the database every trial starts from; ``prepare(store, work)`` in each
    child before it reports ready, returning the write to perform."""

    setup: Callable | None
    prepare: Callable
    fresh: bool = False  # the operation creates the database: trials start from no file
    # the write is opening the store (a migration), which the check's open performs too: before = after
    opening: bool = False


def _the_plan(store):
    from terrmap.plan import get_plan

    return get_plan(store)


def _moved(store, plan, n: int = 150):
    """The plan's assignment with ``n`` ZIPs of its first territory given to its second."""
    from terrmap.data.plans import load_assignment

    asg = load_assignment(store, plan.plan_id)
    ids = sorted(asg["territory_id"].dropna().unique())
    first = asg.index[asg["territory_id"] == ids[0]][:n]
    asg.loc[first, "territory_id"] = ids[1]
    return asg, asg.loc[first, "region_id"].tolist(), int(ids[0]), int(ids[1])


def setup_import(store, work: Path) -> None:
    """A trained lead model (so an import rescores with it), an H3 plan of three states (an import opens new
    cells it must take on), and the file: 800 known leads re-imported with new statuses, 1,500 new ones in ZIPs
    of those states that hold no lead yet."""
    from terrmap.data.plans import Territory
    from terrmap.plan import create_plan
    from terrmap.scoring import retrain

    retrain(store, seed=1)
    cur = store.cursor()
    states = ["NM", "AZ", "NV"]  # (of the plan's area: the ZIP plan takes on no new region, the H3 plan does)
    from terrmap.geo import parse_layer

    layer = parse_layer("h3:5")
    asg = cur.execute(
        f"SELECT DISTINCT {layer.region_id_sql(layer.region_key_sql('l'))} AS region_id FROM leads l "
        "JOIN zips z USING (zip) WHERE z.state IN (SELECT unnest(?::VARCHAR[])) ORDER BY region_id", [states]).df()
    asg["territory_id"] = [1 + (i * 3) // len(asg) for i in range(len(asg))]
    create_plan(store, "Southwest cells", "h3:5", [Territory(1, "West", "#1f77b4"), Territory(2, "Middle", "#ff7f0e"),
                                                   Territory(3, "East", "#2ca02c")], asg, area=states)
    known = cur.execute("SELECT lead_id, name, postal_zip FROM leads ORDER BY lead_id LIMIT 800").fetchall()
    empty_zips = [r[0] for r in cur.execute(
        "SELECT zip FROM zips WHERE state IN (SELECT unnest(?::VARCHAR[])) AND zip = region_zip AND lat IS NOT NULL "
        "AND zip NOT IN (SELECT zip FROM leads WHERE zip IS NOT NULL) ORDER BY zip", [states]).fetchall()]
    rng = random.Random(5)
    statuses = ["Open", "Closed Won", "Closed Lost"]
    lines = ["Id,Company,Status,Zip,Employees,Amount"]
    for i, (lead_id, name, zip_) in enumerate(known):
        lines.append(f"{lead_id},{name} (updated),{statuses[i % 3]},{zip_},{50 + i},{1000 * (i % 7) if i % 3 == 1 else ''}")
    for i in range(1500):
        lines.append(f"N{i:06d},New {i},{statuses[i % 3]},{rng.choice(empty_zips)},{10 + i % 400},"
                     f"{2000 + 10 * i if i % 3 == 1 else ''}")
    (work / "leads.csv").write_text("\n".join(lines) + "\n")


def prepare_import(store, work: Path):
    from terrmap.io.ingest import import_file

    return lambda: import_file(store, work / "leads.csv")


def prepare_plan_save(store, work: Path):
    """The editor's save: a new assignment, the change log of the moves and a renamed territory."""
    from terrmap.data.plans import save_assignment, territories

    plan = _the_plan(store)
    asg, regions, a, b = _moved(store, plan)
    terr = territories(store, plan.plan_id).drop(columns=["rep_name"])
    terr.loc[0, "name"] = "Renamed in the editor"
    changes = [{"regions": regions[:60], "from_territory": a, "to_territory": b, "potential_moved": 12.5},
               {"regions": regions[60:], "from_territory": a, "to_territory": b, "potential_moved": 7.0}]
    return lambda: save_assignment(store, plan, asg, changes, author="crash test", territories=terr)


def prepare_plan_save_as(store, work: Path):
    """The editor's "Save as": a new plan derived from the one edited (hierarchy, pins and overlays come along)."""
    from terrmap.plan.editor_state import EditorState  # noqa: F401 (the editor's module: its save_as calls this)
    from terrmap.plan.scenarios import derive_plan

    plan = _the_plan(store)
    asg, _, _, _ = _moved(store, plan)
    from terrmap.data.plans import Territory, territories

    terrs = [Territory(int(r.territory_id), str(r.name), str(r.color), r.rep_id, None, float(r.tolerance), r.parent)
             for r in territories(store, plan.plan_id).itertuples()]
    return lambda: derive_plan(store, plan, "Saved as in the editor", terrs, asg, author="crash test",
                               note="saved as, from the demo in the editor")


def setup_optimizer_save(store, work: Path) -> None:
    """A rebalance of the plan, solved once and pickled: each trial then only saves it."""
    import pickle

    from terrmap.optimize import Optimizer

    plan = _the_plan(store)
    res = Optimizer.from_store(store, "zip", states=BASE_STATES, base_plan=plan.name, balance="potential",
                               tolerance=0.1, iterations=30, random_state=0, compactness=False).solve()
    (work / "result.pkl").write_bytes(pickle.dumps(res))


def prepare_optimizer_save(store, work: Path):
    """The optimizer page's save of a rebalance, published at once."""
    import pickle

    from terrmap.optimize import save_candidate

    res = pickle.loads((work / "result.pkl").read_bytes())
    return lambda: save_candidate(store, res, "Rebalanced by the optimizer", published=True, author="crash test")


def setup_restore(store, work: Path) -> None:
    from terrmap.data.plans import save_assignment

    plan = _the_plan(store)
    asg, regions, a, b = _moved(store, plan, 400)
    save_assignment(store, plan, asg, [{"regions": regions, "from_territory": a, "to_territory": b}], author="setup")


def prepare_restore(store, work: Path):
    from terrmap.plan.scenarios import restore_version

    plan = _the_plan(store)
    return lambda: restore_version(store, plan, 1, author="crash test")


def setup_alignment(store, work: Path) -> None:
    from terrmap.io.export import export_to_file

    export_to_file(store, None, "csv", work / "alignment.csv")


def prepare_alignment(store, work: Path):
    from terrmap.io.alignment import import_alignment

    return lambda: import_alignment(store, work / "alignment.csv", "Imported alignment", author="crash test")


def prepare_create(store, work: Path):
    """Creating a database: opening a path where there is none (migrations, the roll-up, the ZIP reference)."""
    from terrmap.data.store import Store
    from terrmap.geo.zipdata import reference_table

    reference_table()  # read from the package's file (cached): the kills land on the database's writes
    path = work / "trial.duckdb"
    return lambda: Store(path).close()


def prepare_demo(store, work: Path):
    """``python -m terrmap demo`` (what ``./run app`` runs first, with --if-absent): a small demo database."""
    from terrmap.cli import main
    from terrmap.geo.zipdata import reference_table

    reference_table()  # read from the package's file (cached): the kills land on the database's writes
    path = work / "trial.duckdb"
    return lambda: main(["demo", "--db", str(path), "--leads", "2000", "--reps", "15", "--if-absent"])


def setup_incomplete(store, work: Path) -> None:
    """A plan from before plans had an area (``area`` NULL), with 100 of its ZIPs unassigned."""
    cur = store.cursor()
    cur.execute("UPDATE plans SET area = NULL")
    cur.execute("DELETE FROM plan_assignments WHERE region_id IN "
                "(SELECT region_id FROM plan_assignments ORDER BY region_id LIMIT 100)")


def prepare_complete_on_open(store, work: Path):
    """Opening such a plan completes it (terrmap.plan.complete.ensure_complete): a save and its area."""
    from terrmap.data.plans import get_plan as stored_plan
    from terrmap.plan.complete import ensure_complete

    info = stored_plan(store)
    return lambda: ensure_complete(store, info)


def setup_old_schema(store, work: Path) -> None:
    """The database as schema version 4 left it (before plans had an area and shapes a stamp)."""
    cur = store.cursor()
    cur.execute("ALTER TABLE plans DROP COLUMN area")
    cur.execute("DELETE FROM schema_version WHERE version > 4")
    cur.execute("DELETE FROM meta WHERE key = 'zip_shapes_stamp'")


OPERATIONS: dict[str, Operation] = {
    "import": Operation(setup_import, prepare_import),
    "plan_save": Operation(None, prepare_plan_save),
    "plan_save_as": Operation(None, prepare_plan_save_as),
    "optimizer_save": Operation(setup_optimizer_save, prepare_optimizer_save),
    "restore": Operation(setup_restore, prepare_restore),
    "alignment_import": Operation(setup_alignment, prepare_alignment),
    "complete_on_open": Operation(setup_incomplete, prepare_complete_on_open),
    "create": Operation(None, prepare_create, fresh=True),
    "demo": Operation(None, prepare_demo, fresh=True),
    "upgrade": Operation(setup_old_schema, None, opening=True),
}


# -- children -------------------------------------------------------------------------------------------------------
def _fork(body: Callable[[int], object]) -> tuple[int, int]:
    """Fork a child running ``body(write_fd)`` (it reports on the pipe); returns (pid, read_fd)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(r)
        quiet = os.open(os.devnull, os.O_WRONLY)  # what the operation prints (progress, a CLI's summary) is not read
        os.dup2(quiet, 1)
        os.dup2(quiet, 2)
        code = 0
        try:
            body(w)
        except BaseException:
            os.write(w, ("error " + json.dumps(traceback.format_exc()) + "\n").encode())
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


def _say(fd: int, text: str) -> None:
    os.write(fd, (text + "\n").encode())


def _child_write(op: str, path: Path, work: Path, fd: int) -> None:
    from terrmap.data.store import Store

    spec = OPERATIONS[op]
    if spec.opening:
        _say(fd, "ready")
        Store(path).close()
        _say(fd, "done")
        return
    if spec.fresh:
        store = None
        write = spec.prepare(None, work)
    else:
        store = Store(path)
        write = spec.prepare(store, work)
        _trace_transactions(store, fd)
    _say(fd, "ready")
    write()
    _say(fd, "done")
    if store is not None:
        store.close()


def _trace_transactions(store, fd: int) -> None:
    """Report each transaction of ``store`` on the pipe ("begin", "committed"): where a kill landed is then known
    (before any transaction, inside one, between or after them), for the report only."""
    opened = store.transaction

    @contextmanager
    def traced():
        _say(fd, "begin")
        with opened() as tx:
            yield tx
        _say(fd, "committed")

    store.transaction = traced


def _phase(lines: list[str], killed: bool, traced: bool) -> str:
    """Where the kill landed, from what the child reported (see :func:`_trace_transactions`)."""
    if not killed:
        return "after exit"
    if "done" in lines:
        return "closing"
    if not traced:  # creating or opening a database: its transactions are the Store's own
        return "during the operation"
    events = [line for line in lines if line in ("begin", "committed")]
    if not events:
        return "before any transaction"
    if events[-1] == "begin":
        return "inside a transaction"
    return "after a commit"


def _child_setup(op: str, path: Path, work: Path, fd: int) -> None:
    from terrmap.data.store import Store

    store = Store(path)
    OPERATIONS[op].setup(store, work)
    store.close()
    _say(fd, "done")


def _child_check(path: Path, fd: int, reopen: bool = True) -> None:
    """Open the database as the app does, fingerprint it, run the Home page's queries; checkpoint, reopen
    read-only and fingerprint again (what was replayed from the log must also be what is written to the file;
    ``reopen=False`` skips that)."""
    import duckdb

    from terrmap.data import store as store_module
    from terrmap.data.queries import lead_count
    from terrmap.plan.scenarios import list_scenarios, territory_table

    store = store_module.open_store(path)
    report = {"schema_version": store.schema_version, "latest": len(store_module.MIGRATIONS),
              "fingerprint": fingerprint(store.cursor())}
    missing = [t for t in REQUIRED if t not in report["fingerprint"]]
    if missing:
        raise AssertionError(f"tables missing: {missing}")
    report["leads"] = lead_count(store)
    scenarios = list_scenarios(store, with_metrics=False)
    report["scenarios"] = len(scenarios)
    if len(scenarios):  # the Home page's territory table of the published plan
        from terrmap.plan import get_plan

        report["territories"] = len(territory_table(store, get_plan(store)))
    if reopen:
        opened = fingerprint(store.cursor())  # (opening a plan may complete it: a write)
        store_module.close_all()
        con = duckdb.connect(str(path), read_only=True)
        if fingerprint(con) != opened:
            raise AssertionError("the checkpointed file differs from what was replayed")
        con.close()
    else:
        store_module.close_all()
    _say(fd, "result " + json.dumps(report))


_unread: dict[int, bytes] = {}  # fd -> what a read returned past the line it waited for


def _read_lines(fd: int, until: str | None, timeout: float, stamps: list | None = None) -> list[str]:
    """Lines from ``fd`` until one starts with ``until`` (None: end of file) or ``timeout`` s; ``stamps`` gets
    (line, arrival time) of each."""
    buf, lines, end = _unread.pop(fd, b""), [], time.monotonic() + timeout
    while True:
        while b"\n" in buf:  # (lines read with an earlier call's last chunk first)
            line, buf = buf.split(b"\n", 1)
            lines.append(line.decode())
            if stamps is not None:
                stamps.append((line.decode(), time.monotonic()))
            if until is not None and line.decode().startswith(until):
                if buf:
                    _unread[fd] = buf
                return lines
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {until!r} within {timeout} s; got {lines}")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return lines + ([buf.decode()] if buf else [])
        buf += chunk


def _finish(pid: int, fd: int, timeout: float = 120.0, stamps: list | None = None) -> tuple[list[str], int]:
    lines = _read_lines(fd, None, timeout, stamps)
    _unread.pop(fd, None)
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    return lines, status


def _run_to_end(body: Callable[[int], object], timeout: float = 300.0) -> list[str]:
    pid, fd = _fork(body)
    lines, status = _finish(pid, fd, timeout)
    errors = [line for line in lines if line.startswith("error ")]
    if errors or status != 0:
        raise RuntimeError("child failed: " + (json.loads(errors[0][6:]) if errors else f"status {status}"))
    return lines


def check(path: Path, reopen: bool = True) -> dict:
    """Open ``path`` in a fresh child as the app does; its report (raises with the child's error)."""
    lines = _run_to_end(lambda fd: _child_check(path, fd, reopen))
    return json.loads(next(line for line in lines if line.startswith("result "))[7:])


def _copy(src: Path, dst: Path) -> None:
    for suffix in ("", ".wal"):
        s, d = Path(str(src) + suffix), Path(str(dst) + suffix)
        d.unlink(missing_ok=True)
        if s.exists():
            shutil.copyfile(s, d)


def _remove(path: Path) -> None:
    for suffix in ("", ".wal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


# -- the trials -----------------------------------------------------------------------------------------------------
def run_trials(op: str, base: Path, work: Path, kills: int, seed: int, keep: bool = False,
               reopen_every: int = 4) -> dict:
    """Set up, run the operation once to completion (the after state and its duration), then ``kills`` trials
    killed at spread delays; returns the report: the states seen and every trial that went wrong. ``keep``:
    each killed database is also kept as it was left (``kept-<trial>.duckdb`` and its log, not yet replayed).
    Every ``reopen_every``-th check also reopens the checkpointed file (see :func:`_child_check`)."""
    spec = OPERATIONS[op]
    work.mkdir(parents=True, exist_ok=True)
    before = work / "before.duckdb"
    t_setup = time.perf_counter()
    if spec.fresh:
        _remove(before)
    else:
        _copy(base, before)
        if spec.setup is not None:
            _run_to_end(lambda fd: _child_setup(op, before, work, fd))
    t_setup = time.perf_counter() - t_setup
    trial = work / "trial.duckdb"

    def start() -> tuple[int, int, float]:
        if spec.fresh:
            _remove(trial)
        else:
            _copy(before, trial)
        pid, fd = _fork(lambda w: _child_write(op, trial, work, w))
        lines = _read_lines(fd, "ready", 300.0)
        if not lines or lines[-1] != "ready":
            raise RuntimeError(f"the child did not get ready: {lines}")
        return pid, fd, time.monotonic()

    fp_before = None if spec.fresh else check(_checked_copy(before, work))["fingerprint"]
    pid, fd, t0 = start()
    stamps: list[tuple[str, float]] = []
    lines, status = _finish(pid, fd, stamps=stamps)
    duration = time.monotonic() - t0
    # The span of the transactions in that run (from the first begin to the last commit): every other kill
    # lands in it, so transactions in flight are hit however short they are beside the whole operation.
    marks = [t - t0 for line, t in stamps if line in ("begin", "committed")]
    window = (min(marks), max(marks)) if marks else (0.0, duration)
    if status != 0 or "done" not in lines:
        raise RuntimeError(f"the operation failed: {lines}")
    after_report = check(trial)
    fp_after = after_report["fingerprint"]
    if fp_before is not None and fp_before == fp_after and not spec.opening:
        raise RuntimeError("the operation changed nothing")

    rng = random.Random(seed)
    spent = {"start": 0.0, "run": 0.0, "check": 0.0}
    outcomes = {"before": 0, "after": 0}
    phases: dict[str, int] = {}
    finished_first = 0
    failures, delays = [], []
    for i in range(kills):
        if i % 2:  # (stratified over the kills that land in the transactions' span, widened by a quarter)
            lo, hi = window
            width = (hi - lo) * 1.5 + 0.002
            delay = max(0.0, lo - (hi - lo) * 0.25) + ((i // 2) + rng.random()) / (kills // 2) * width
        else:
            delay = ((i // 2) + rng.random()) / ((kills + 1) // 2) * SPREAD * duration
        t_start = time.monotonic()
        pid, fd, t0 = start()
        spent["start"] += t0 - t_start
        time.sleep(max(0.0, delay - (time.monotonic() - t0)))
        os.kill(pid, signal.SIGKILL)
        lines, status = _finish(pid, fd)
        t_check = time.monotonic()
        spent["run"] += t_check - t0
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        finished_first += not killed
        phase = _phase(lines, killed, traced=not (spec.fresh or spec.opening))
        phases[phase] = phases.get(phase, 0) + 1
        delays.append(round(delay, 4))
        errors = [line for line in lines if line.startswith("error ")]
        if errors:
            failures.append({"trial": i, "delay": delay, "error": json.loads(errors[0][6:])})
            continue
        if keep:
            _copy(trial, work / f"kept-{i}.duckdb")
        try:
            if spec.fresh and not trial.exists():
                outcomes["before"] += 1
                continue
            got = check(trial, reopen=i % reopen_every == 0)
            spent["check"] += time.monotonic() - t_check
        except Exception as exc:
            kept = work / f"failed-{i}.duckdb"
            _copy(trial, kept)
            failures.append({"trial": i, "delay": delay, "done": "done" in lines, "error": str(exc), "kept": str(kept)})
            continue
        if got["schema_version"] != got["latest"]:
            failures.append({"trial": i, "delay": delay, "error": f"schema version {got['schema_version']}"})
        fp = got["fingerprint"]
        # (a database killed while it was being created opens as a new one: as after)
        if fp == fp_after:
            outcomes["after"] += 1
        elif fp == fp_before:
            outcomes["before"] += 1
        else:
            kept = work / f"failed-{i}.duckdb"
            _copy(trial, kept)
            failures.append({"trial": i, "delay": round(delay, 4), "done": "done" in lines,
                             "error": "neither the state before nor the one after",
                             "vs_before": differences(fp, fp_before or {}), "vs_after": differences(fp, fp_after),
                             "kept": str(kept)})
    _remove(trial)
    return {"op": op, "kills": kills, "seed": seed, "setup_s": round(t_setup, 3), "duration_s": round(duration, 4),
            "outcomes": outcomes, "finished_before_kill": finished_first, "kills_landed": phases,
            "seconds": {k: round(v, 2) for k, v in spent.items()}, "failures": failures,
            "transactions_s": [round(window[0], 4), round(window[1], 4)],
            "delays": [min(delays), max(delays)] if delays else []}


def _checked_copy(path: Path, work: Path) -> Path:
    """A copy of ``path`` to check (a check opens the file read-write and checkpoints it)."""
    copy = work / "checked.duckdb"
    _copy(path, copy)
    return copy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("op", choices=sorted(OPERATIONS))
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep every killed database (kept-N.duckdb)")
    parser.add_argument("--reopen-every", type=int, default=4,
                        help="every N-th check reopens the checkpointed file read-only (1: every check)")
    args = parser.parse_args(argv)
    # Everything the children run is imported here, once: a fork then starts writing at once.
    import terrmap.cli
    import terrmap.data.store
    import terrmap.demo
    import terrmap.io.alignment
    import terrmap.io.export
    import terrmap.io.ingest
    import terrmap.optimize
    import terrmap.plan.editor_state
    import terrmap.plan.scenarios
    import terrmap.scoring  # noqa: F401

    if OPERATIONS[args.op].fresh:
        # The ZIP reference a new database is filled from (read from the package's file and cached): read once
        # here, not in every child.
        from terrmap.geo.zipdata import reference_table

        reference_table()
    print(json.dumps(run_trials(args.op, args.base, args.work, args.kills, args.seed, args.keep, args.reopen_every)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
