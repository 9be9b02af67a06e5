"""``python -m terrmap``: the command line.

Every command takes ``--db PATH`` (default: $TERRMAP_DB, else data/terrmap.duckdb).
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _progress(frac: float, msg: str) -> None:
    width = 30
    filled = int(frac * width)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {frac:4.0%} {msg:<50}")
    if frac >= 1:
        sys.stderr.write("\n")
    sys.stderr.flush()


def cmd_demo(args) -> int:
    from terrmap.demo import build_demo
    from terrmap.store import open_store, resolve_db_path

    path = resolve_db_path(args.db)
    if path.exists() and args.if_absent:
        print(f"{path} exists; keeping it")
        return 0
    if path.exists() and args.force:
        path.unlink()
        path.with_suffix(path.suffix + ".wal").unlink(missing_ok=True)
    summary = build_demo(open_store(path), n_leads=args.leads, seed=args.seed, n_reps=args.reps, progress=_progress)
    print(json.dumps(summary))
    return 0


def cmd_regions(args) -> int:
    from terrmap.geo import parse_layer
    from terrmap.plan import assignment_for_layer, get_plan
    from terrmap.stats import region_stats
    from terrmap.store import open_store

    store = open_store(args.db)
    layer = parse_layer(args.layer)
    t0 = time.perf_counter()
    stats = region_stats(store, layer)
    plan = get_plan(store, args.plan)
    if plan is not None:
        terr = assignment_for_layer(store, plan, layer)[["region_id", "territory_id"]]
        names = store.cursor().execute(
            "SELECT territory_id, name AS territory FROM territories WHERE plan_id = ?", [plan.plan_id]
        ).df()
        stats = stats.merge(terr.merge(names, on="territory_id")[["region_id", "territory"]], on="region_id", how="left")
    else:
        stats["territory"] = None
    stats = stats.sort_values("region_id")
    stats.to_csv(args.out, index=False)
    print(json.dumps({"regions": len(stats), "layer": layer.key, "plan": plan.name if plan else None,
                      "seconds": round(time.perf_counter() - t0, 3), "out": str(args.out)}))
    return 0


def cmd_import(args) -> int:
    from terrmap.ingest import ImportRejected, import_file
    from terrmap.store import open_store

    store = open_store(args.db)
    try:
        result = import_file(store, args.file, progress=_progress)
    except ImportRejected as exc:
        sys.stderr.write(f"\nimport rejected, database unchanged:\n{exc}\n")
        return 2
    print(json.dumps(result))
    return 0


def cmd_zcta(args) -> int:
    from terrmap.geo.zipshapes import load_zcta
    from terrmap.store import open_store

    print(json.dumps(load_zcta(open_store(args.db), args.file), default=str))
    return 0


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

    p = add("zcta", cmd_zcta, "use a Census ZCTA boundary file (.shp, .zip, .gpkg, .geojson) for the ZIP polygons")
    p.add_argument("file")

    p = add("regions", cmd_regions, "write per-region statistics of a layer to CSV")
    p.add_argument("--layer", required=True, help="h3:3 .. h3:9 or zip")
    p.add_argument("--plan", help="plan name (default: the published plan)")
    p.add_argument("--out", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        parser.exit(2, f"error: {exc}\n")
