"""``python -m terrmap``: the command line.

Every command takes ``--db PATH`` (default: $TERRMAP_DB, else data/terrmap.duckdb).

Each command imports what it runs, inside its function: ``terrmap demo`` need not load
scikit-learn and the optimizer, and every command starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _progress(frac: float, msg: str) -> None:
    width = 30
    filled = int(frac * width)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {frac:4.0%} {msg:<50}")
    if frac >= 1:
        sys.stderr.write("\n")
    sys.stderr.flush()


def cmd_demo(args) -> int:
    # lazy: start-up time (see the module docstring)
    from terrmap.data.store import Store, open_store, resolve_db_path
    from terrmap.demo import build_demo

    path = resolve_db_path(args.db)
    if path.exists() and args.if_absent:
        print(f"{path} exists; keeping it")
        return 0
    if path.exists() and args.force:
        path.unlink()
        path.with_suffix(path.suffix + ".wal").unlink(missing_ok=True)
    if path.exists():  # build_demo refuses a database with leads, and adds to one without
        summary = build_demo(open_store(path), n_leads=args.leads, seed=args.seed, n_reps=args.reps,
                             progress=_progress)
    else:
        # Built beside it, closed (checkpointed: no log left) and renamed into place: a build killed half-way (the
        # app's first start, interrupted) leaves no half-built demo that --if-absent would then keep for good.
        building = path.with_name(path.name + ".building")
        for stale in (building, building.with_name(building.name + ".wal")):
            stale.unlink(missing_ok=True)
        store = Store(building)
        summary = build_demo(store, n_leads=args.leads, seed=args.seed, n_reps=args.reps, progress=_progress)
        store.close()
        os.replace(building, path)
        summary["db"] = str(path)
    print(json.dumps(summary))
    return 0


def cmd_regions(args) -> int:
    # lazy: start-up time (see the module docstring)
    from terrmap.data.plans import territories
    from terrmap.data.stats import region_stats
    from terrmap.data.store import open_store
    from terrmap.geo import parse_layer
    from terrmap.io.atomic import write_atomically
    from terrmap.plan import assignment_for_layer, get_plan

    store = open_store(args.db)
    layer = parse_layer(args.layer)
    t0 = time.perf_counter()
    stats = region_stats(store, layer)
    plan = get_plan(store, args.plan)
    if plan is not None:
        terr = assignment_for_layer(store, plan, layer)[["region_id", "territory_id"]]
        names = territories(store, plan.plan_id)[["territory_id", "name"]].rename(columns={"name": "territory"})
        stats = stats.merge(terr.merge(names, on="territory_id")[["region_id", "territory"]], on="region_id", how="left")
    else:
        stats["territory"] = None
    stats = stats.sort_values("region_id")
    write_atomically(args.out, stats.to_csv(index=False).encode("utf-8"))
    print(json.dumps({"regions": len(stats), "layer": layer.key, "plan": plan.name if plan else None,
                      "seconds": round(time.perf_counter() - t0, 3), "out": str(args.out)}))
    return 0


def cmd_import(args) -> int:
    # lazy: start-up time (see the module docstring)
    from terrmap.data.store import open_store
    from terrmap.io.ingest import ImportRejected, import_file

    store = open_store(args.db)
    try:
        result = import_file(store, args.file, progress=_progress)
    except ImportRejected as exc:
        sys.stderr.write(f"\nimport rejected, database unchanged:\n{exc}\n")
        return 2
    print(json.dumps(result))
    return 0


def cmd_zcta(args) -> int:
    # lazy: start-up time (see the module docstring)
    from terrmap.data.store import open_store
    from terrmap.geo.zipshapes import load_zcta, read_zcta_files

    # Every file is read and checked before the database is opened: a wrong file leaves no new database behind.
    try:
        zcta = read_zcta_files(args.files)
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}\n")
        return 2
    print(json.dumps(load_zcta(open_store(args.db), args.files, zcta=zcta), default=str))
    return 0


def cmd_score(args) -> int:
    # lazy: start-up time (see the module docstring)
    from terrmap.data.store import open_store
    from terrmap.scoring import NotEnoughHistory, retrain

    store = open_store(args.db)
    try:
        metrics = retrain(store, seed=args.seed, progress=_progress)
    except NotEnoughHistory as exc:
        sys.stderr.write(f"\n{exc}\n")
        print(json.dumps({"error": "not_enough_history", "message": str(exc), **exc.counts, "scores": "fallback"}))
        return 3
    print(json.dumps(metrics))
    return 0


def _limit(text: str) -> tuple[str, tuple[float | None, float | None]]:
    """``customers::400`` -> ("customers", (None, 400.0))."""
    parts = text.split(":")
    if len(parts) != 3 or not parts[0] or not (parts[1] or parts[2]):
        raise argparse.ArgumentTypeError(f"{text!r}: use MEASURE:MIN:MAX with MIN or MAX (or both), e.g. customers::400")
    try:
        lo, hi = (float(x) if x else None for x in parts[1:])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: MIN and MAX are numbers") from None
    return parts[0], (lo, hi)


def cmd_optimize(args) -> int:
    # lazy: start-up time (see the module docstring)
    from terrmap.data.store import open_store
    from terrmap.io.atomic import write_atomically
    from terrmap.optimize import Optimizer

    store = open_store(args.db)
    t0 = time.perf_counter()
    states = [x.strip().upper() for x in (args.states or "").split(",") if x.strip()] or None
    opt = Optimizer.from_store(
        store, args.layer, args.territories, states=states, base_plan=args.base_plan, seed_reps=args.seed_reps,
        balance=args.balance, tolerance=args.tolerance, max_disruption=args.max_disruption,
        limits=dict(args.limit or []), time_limit=args.time_limit, iterations=args.iterations,
        random_state=args.seed, progress=_progress,
    )
    res = opt.solve()
    write_atomically(args.out, res.assignment(args.candidate)[["region_id", "territory"]].to_csv(index=False).encode("utf-8"))
    summary = res.summary(args.candidate)
    summary["compactness"] = {"cut_edge_share": summary["cut_edge_share"],
                              "mean_polsby_popper": summary["mean_polsby_popper"]}
    summary["seconds_with_loading"] = round(time.perf_counter() - t0, 3)
    summary["out"] = str(args.out)
    print(json.dumps(summary, default=float))
    return 0


def cmd_export(args) -> int:
    # lazy: start-up time (see the module docstring)
    from terrmap.data.store import open_store
    from terrmap.io.export import export_to_file

    store = open_store(args.db)
    t0 = time.perf_counter()
    summary = export_to_file(store, args.plan, args.format, args.out, progress=_progress)
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    print(json.dumps(summary))
    return 0


def cmd_import_alignment(args) -> int:
    # lazy: start-up time (see the module docstring)
    from terrmap.data.store import open_store
    from terrmap.io.alignment import AlignmentRejected, import_alignment

    store = open_store(args.db)
    try:
        plan = import_alignment(store, args.file, args.name, layer=args.layer, author=args.author)
    except AlignmentRejected as exc:
        sys.stderr.write(f"alignment rejected, database unchanged:\n{exc}\n")
        return 2
    print(json.dumps({"plan": plan.name, "plan_id": plan.plan_id, **plan.summary}, default=str))
    return 0


def cmd_import_reps(args) -> int:
    # lazy: start-up time (see the module docstring)
    from terrmap.data.store import open_store
    from terrmap.io.problems import ImportRejected
    from terrmap.io.roster import import_roster

    if not Path(args.file).exists():  # before the database is opened: a wrong path creates no database file
        sys.stderr.write(f"error: no such file: {args.file}\n")
        return 2
    try:
        result = import_roster(open_store(args.db), args.file)
    except ImportRejected as exc:
        sys.stderr.write(f"roster rejected, database unchanged:\n{exc}\n")
        return 2
    print(json.dumps(result))
    return 0


def cmd_export_reps(args) -> int:
    # lazy: start-up time (see the module docstring)
    from terrmap.data.store import open_store
    from terrmap.io.roster import export_roster

    print(json.dumps({"reps": export_roster(open_store(args.db), args.out), "out": str(args.out)}))
    return 0


def _plan_or_exit(store, name):
    """The plan named ``name`` (complete, see terrmap.plan.get_plan), or None after a one-line message."""
    # lazy: start-up time (see the module docstring)
    from terrmap.plan.complete import get_plan

    plan = get_plan(store, name)
    if plan is None:
        sys.stderr.write(f"error: no plan named {name!r}\n")
    return plan


def cmd_assign(args) -> int:
    # lazy: start-up time (see the module docstring)
    from terrmap.data.store import open_store
    from terrmap.io.assign import AssignRejected, assign_file

    store = open_store(args.db)
    plan = _plan_or_exit(store, args.plan)
    if plan is None:
        return 2
    try:
        summary = assign_file(store, plan, args.file, args.out)
    except AssignRejected as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    print(json.dumps(summary, default=str))
    return 0


def cmd_lookup(args) -> int:
    # lazy: start-up time (see the module docstring)
    from terrmap.data.store import open_store
    from terrmap.io.assign import lookup

    if args.zip is None and (args.lat is None or args.lon is None):
        sys.stderr.write("error: give --zip, or --lat and --lon\n")
        return 2
    store = open_store(args.db)
    plan = _plan_or_exit(store, args.plan)
    if plan is None:
        return 2
    if args.zip is not None:
        answer = lookup(store, plan, zip=args.zip)
    else:
        answer = lookup(store, plan, lat=args.lat, lon=args.lon)
    print(json.dumps(answer, default=str))
    return 0 if answer["reason"] is None else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m terrmap", description="terrmap: sales territory planning")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, func, help):
        p = sub.add_parser(name, help=help)
        p.add_argument("--db", help="DuckDB file (default: $TERRMAP_DB or data/terrmap.duckdb)")
        p.set_defaults(func=func)
        return p

    p = add("demo", cmd_demo, "build the demo database from real US ZIP geography")
    p.add_argument("--leads", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--if-absent", action="store_true", help="do nothing if the database exists")
    p.add_argument("--force", action="store_true", help="replace an existing database")

    p = add("import", cmd_import, "import leads from a CSV or Parquet file (all or nothing)")
    p.add_argument("file")

    p = add("zcta", cmd_zcta, "use Census ZCTA boundary files (.shp, .zip, .gpkg, .geojson) for the ZIP polygons: "
            "each load replaces the shapes of the states its files cover and keeps the others (per-state files add up)")
    p.add_argument("files", nargs="+", metavar="FILE")

    p = add("score", cmd_score, "train and validate the lead-scoring model on closed leads, score every open lead "
            "and print the validation metrics as JSON (exit code 3: not enough history, fallback scores kept)")
    p.add_argument("--seed", type=int, default=42, help="random seed (same data and seed: same model)")

    p = add("regions", cmd_regions, "write per-region statistics of a layer to CSV")
    p.add_argument("--layer", required=True, help="h3:3 .. h3:9 or zip")
    p.add_argument("--plan", help="plan name (default: the published plan)")
    p.add_argument("--out", required=True)

    p = add("optimize", cmd_optimize, "build balanced, contiguous, compact territories (or rebalance a plan)")
    p.add_argument("--layer", required=True, help="h3:3 .. h3:9 or zip")
    p.add_argument("--territories", type=int, help="number of territories K (a rebalance keeps the base plan's)")
    p.add_argument("--balance", default="potential",
                   help="measure(s) to balance, optionally weighted: potential | potential,leads | potential:2,workload:1")
    p.add_argument("--tolerance", type=float, default=0.05, help="allowed deviation from the mean (0.05 = ±5%%)")
    p.add_argument("--base-plan", help="rebalance this plan (name or id) instead of building from scratch")
    p.add_argument("--max-disruption", type=float, help="rebalance: max share of potential/customers that may move")
    p.add_argument("--states", help="only regions in these states, e.g. TX,OK")
    p.add_argument("--seed-reps", action="store_true", help="seed one territory at each rep's home region")
    p.add_argument("--limit", action="append", type=_limit, metavar="MEASURE:MIN:MAX",
                   help="hard limit per territory, repeatable; leave a side empty: customers::400, leads:500:")
    p.add_argument("--time-limit", type=float, default=10.0, help="seconds for the search (default 10)")
    p.add_argument("--iterations", type=int, default=None,
                   help="an iteration budget instead of --time-limit (deterministic: same input, same plan)")
    p.add_argument("--candidate", default=0, type=lambda x: int(x) if x.isdigit() else x,
                   help="which candidate to write: index or name (default: the recommended one)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--out", required=True, help="CSV written with region_id,territory for every region")

    p = add("export", cmd_export, "export a plan: region CSV, CRM account CSV, territory boundaries or a map image")
    p.add_argument("--plan", help="plan name or id (default: the published plan)")
    # Checked by terrmap.io.export.export_plan (importing it here would slow every command's start).
    p.add_argument("--format", required=True,
                   help="csv: region -> territory (re-importable); accounts: CRM bulk-update CSV; geojson or gpkg: "
                        "dissolved territory boundaries; png or pdf: a 16:9 map with legend")
    p.add_argument("--out", required=True, help="file to write")

    p = add("import-alignment", cmd_import_alignment,
            "create a plan from a ZIP/H3 -> territory file (CSV, or our GeoJSON/GeoPackage export); all or nothing")
    p.add_argument("file")
    p.add_argument("--name", required=True, help="name of the new plan (scenario)")
    p.add_argument("--layer", help="zip or h3:3 .. h3:9 (default: inferred from the file)")
    p.add_argument("--author", help="who imports (kept in the plan's description)")

    p = add("import-reps", cmd_import_reps,
            "import the team roster from a CSV or Parquet file (reps added or updated by id: manager, home, role, "
            "skills, capacity, quota; CRM/HR column names recognised); all or nothing")
    p.add_argument("file")

    p = add("export-reps", cmd_export_reps, "write the team roster as CSV (re-importable with import-reps)")
    p.add_argument("--out", required=True, help="CSV file to write")

    p = add("assign", cmd_assign, "route a CSV/Parquet file of leads or accounts to a plan's territories (by ZIP, "
            "else by coordinates); writes the rows plus territory, territory_id, rep_id, rep_name; nothing is "
            "stored. Exit code 2: the file or the plan cannot be used")
    p.add_argument("file")
    p.add_argument("--plan", help="plan name or id (default: the published plan)")
    p.add_argument("--out", required=True, help="CSV written with every input row and its territory")

    p = add("lookup", cmd_lookup, "which territory and rep own a ZIP or a point: one JSON object "
            "(exit code 1: not placed, the reason is in the JSON)")
    p.add_argument("--plan", help="plan name or id (default: the published plan)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--zip", help="a ZIP code (5 digits or ZIP+4)")
    where.add_argument("--lat", type=float, help="latitude (with --lon)")
    p.add_argument("--lon", type=float, help="longitude (with --lat)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from terrmap.data.connection import DatabaseInUse  # lazy, as every command's imports: --help loads no DuckDB

    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        parser.exit(2, f"error: {exc}\n")
    except DatabaseInUse as exc:
        parser.exit(3, f"error: {exc}\n")
