"""Lead routing and territory lookup on complete plans: ``python -m terrmap assign`` of a file of 1,000,000 leads
and ``python -m terrmap lookup`` of one ZIP or point, each timed as a command (start-up included), beside naive
baselines in the same run.

The database is the editor benchmark's (bench/bench_editor.py: the demo of ``--leads`` leads, its national ZIP
plan, completed when opened, and the demo plan carried over to a complete national H3 level 6 plan). The files
are ``--rows`` leads drawn (with replacement) from the demo's leads, their coordinates moved by up to ~1 km so
points repeat rarely: one file with a ZIP column, one with latitude/longitude only. Three cases:

* ZIP plan, rows by ZIP; baseline: pandas ``read_csv`` + ``merge`` on the ZIP table (ZIP -> region ZIP), the
  plan's assignment and its territories, ``to_csv``;
* ZIP plan, rows by coordinates (point in the stored ZIP polygon); baseline: geopandas ``sjoin``
  (``predicate="within"``) of the points with the ZIP polygons, then the same merges;
* H3 level 6 plan, rows by coordinates (the cell holding the point); baseline: ``h3.latlng_to_cell`` row by row,
  then the same merges.

terrmap runs as a command (``python -m terrmap assign FILE --plan ID --out OUT --db DB``, wall time from the
start of the process); the baselines run inside this process, with their libraries imported and the ZIP
polygons already loaded (not timed), so the comparison favours them. Lookup: the command's wall time for a ZIP
and for a point on each plan; its baseline is a script that loads every ZIP polygon into geopandas and tests
which one contains the point (as a one-off lookup would without terrmap's nearest-polygon query).
Medians of ``--repeat`` runs. Results go to docs/BENCHMARKS.md ("Editor, assign and lookup on complete plans
(issue 13)", part "assign and lookup").

    nice -n 5 python bench/bench_assign.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_editor import COMPLETE_SECTION, H3_PLAN, prepare_db
from bench.common import OUT, ROOT, write_section

ASSIGN_BUDGET = 10.0  # s, 1M leads (issue 13)
LOOKUP_BUDGET = 1.0  # s, start-up included
LOOKUPS = [("zip", {"zip": "75001"}), ("zip", {"lat": 32.9, "lon": -96.8}), ("h3", {"lat": 32.9, "lon": -96.8})]


def make_files(db: Path, rows: int, seed: int = 7) -> tuple[Path, Path]:
    """A file of ``rows`` leads with a ZIP column and one with coordinates only (made once per size)."""
    by_zip, by_point = OUT / f"assign_{rows}_zip.csv", OUT / f"assign_{rows}_coords.csv"
    if by_zip.exists() and by_point.exists():
        return by_zip, by_point
    from terrmap.data.store import Store

    store = Store(db)
    try:
        leads = store.cursor().execute(
            "SELECT zip, lat, lon FROM leads WHERE zip IS NOT NULL AND lat IS NOT NULL").df()
    finally:
        store.close()
    rng = np.random.default_rng(seed)
    pick = leads.iloc[rng.integers(0, len(leads), rows)].reset_index(drop=True)
    ids = pd.Series([f"L{i:07d}" for i in range(rows)])
    names = pd.Series(rng.choice(["Acme", "Globex", "Initech", "Umbrella", "Stark"], rows))
    pd.DataFrame({"lead_id": ids, "company": names, "zip": pick["zip"]}).to_csv(by_zip, index=False)
    jitter = rng.uniform(-0.01, 0.01, (rows, 2))
    pd.DataFrame({"lead_id": ids, "company": names, "latitude": (pick["lat"] + jitter[:, 0]).round(6),
                  "longitude": (pick["lon"] + jitter[:, 1]).round(6)}).to_csv(by_point, index=False)
    return by_zip, by_point


def plan_tables(db: Path, plan_ids: dict) -> dict:
    """What the baselines join with (loaded before they are timed): the ZIP table, each plan's assignment
    with territory and rep, the ZIP polygons."""
    from terrmap.data.plans import rep_names
    from terrmap.data.store import Store
    from terrmap.geo.zipshapes import zip_shape_geoms
    from terrmap.plan import get_plan, load_assignment, territories

    store = Store(db)
    try:
        zips = store.cursor().execute("SELECT zip, region_zip FROM zips WHERE lat IS NOT NULL").df()
        owners = {}
        for kind, plan_id in plan_ids.items():
            plan = get_plan(store, plan_id)
            terr = territories(store, plan.plan_id)[["territory_id", "name", "rep_id"]]
            terr = terr.rename(columns={"name": "territory"})
            terr["rep_name"] = terr["rep_id"].map(dict(rep_names(store)))
            owners[kind] = load_assignment(store, plan.plan_id)[["region_id", "territory_id"]].merge(
                terr, on="territory_id", how="left")
        shapes = zip_shape_geoms(store)[["zip", "geometry"]]
    finally:
        store.close()
    return {"zips": zips, "owners": owners, "shapes": shapes}


def naive_by_zip(path: Path, out: Path, t: dict) -> int:
    leads = pd.read_csv(path, dtype={"zip": str})
    leads = leads.merge(t["zips"], on="zip", how="left")
    leads = leads.merge(t["owners"]["zip"], left_on="region_zip", right_on="region_id", how="left")
    leads.drop(columns=["region_zip", "region_id"]).to_csv(out, index=False)
    return int(leads["territory_id"].notna().sum())


def naive_zip_by_point(path: Path, out: Path, t: dict) -> int:
    import geopandas as gpd  # heavy, and only this baseline needs it

    leads = pd.read_csv(path)
    points = gpd.GeoDataFrame(leads, geometry=gpd.points_from_xy(leads["longitude"], leads["latitude"]),
                              crs="EPSG:4326")
    polys = gpd.GeoDataFrame(t["shapes"], geometry="geometry", crs="EPSG:4326")
    joined = gpd.sjoin(points, polys, how="left", predicate="within")
    joined = joined[~joined.index.duplicated(keep="first")]  # a point on a border: one owner
    joined = pd.DataFrame(joined.drop(columns=["geometry", "index_right"])).merge(
        t["owners"]["zip"], left_on="zip", right_on="region_id", how="left")
    joined.drop(columns=["zip", "region_id"]).to_csv(out, index=False)
    return int(joined["territory_id"].notna().sum())


def naive_h3_by_point(path: Path, out: Path, t: dict, res: int = 6) -> int:
    import h3  # only this baseline needs it

    leads = pd.read_csv(path)
    leads["region_id"] = [h3.latlng_to_cell(a, b, res) for a, b in zip(leads["latitude"], leads["longitude"])]
    leads = leads.merge(t["owners"]["h3"], on="region_id", how="left")
    leads.drop(columns=["region_id"]).to_csv(out, index=False)
    return int(leads["territory_id"].notna().sum())


NAIVE_LOOKUP = textwrap.dedent("""
    import sys, duckdb, geopandas as gpd, shapely
    lat, lon, db, plan = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    con = duckdb.connect(db, read_only=True)
    shapes = con.execute("SELECT zip, geojson FROM zip_shapes").df()
    polys = gpd.GeoDataFrame(shapes, geometry=shapely.from_geojson(shapes["geojson"]), crs="EPSG:4326")
    hit = polys[polys.contains(shapely.Point(lon, lat))]["zip"].min()
    print(con.execute("SELECT t.name FROM plan_assignments a JOIN territories t USING (plan_id, territory_id) "
                      "WHERE a.plan_id = ? AND a.region_id = ?", [plan, hit]).fetchall())
""")


def run_command(args: list[str]) -> tuple[float, str]:
    """Wall time of a process (start-up included) and its standard output."""
    t0 = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=os.environ)
    seconds = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def median_of(fn, repeat: int) -> tuple[float, list[float], object]:
    times, last = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        last = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, last


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leads", type=int, default=200_000, help="leads of the demo database")
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the file to assign")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--lookup-repeat", type=int, default=5)
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args()

    db = OUT / f"editor_{args.leads}.duckdb"
    info = prepare_db(db, args.leads)
    plan_ids = {"zip": info["demo"], "h3": info["h3"]}
    by_zip, by_point = make_files(db, args.rows)
    tables = plan_tables(db, plan_ids)
    load0 = os.getloadavg()
    py = [sys.executable, "-m", "terrmap"]
    cases = [("ZIP plan, by ZIP", "zip", by_zip, naive_by_zip, "pandas read_csv + merge"),
             ("ZIP plan, by coordinates (point in polygon)", "zip", by_point, naive_zip_by_point,
              "geopandas sjoin within"),
             ("H3 level 6 plan, by coordinates", "h3", by_point, naive_h3_by_point, "h3.latlng_to_cell per row + merge")]
    assign_rows = []
    for label, kind, path, naive, naive_label in cases:
        out = OUT / f"assigned_{kind}_{path.stem}.csv"
        cmd = [*py, "assign", str(path), "--plan", str(plan_ids[kind]), "--out", str(out), "--db", str(db)]
        tm, runs, result = median_of(lambda c=cmd: run_command(c), args.repeat)
        summary = json.loads(result[1].strip().splitlines()[-1])
        naive_out = OUT / f"naive_{kind}_{path.stem}.csv"
        tn, naive_runs, naive_placed = median_of(lambda p=path, o=naive_out, f=naive: f(p, o, tables), args.repeat)
        row = {"case": label, "plan": kind, "rows": summary["rows"], "placed": summary["placed"],
               "terrmap": tm, "terrmap_runs": runs, "inside": summary["seconds"], "naive": tn,
               "naive_runs": naive_runs, "naive_placed": naive_placed, "naive_label": naive_label}
        print(f"{label}: terrmap {tm:.2f} s ({summary['placed']:,} placed), naive {tn:.2f} s "
              f"({naive_placed:,} placed)", flush=True)
        assign_rows.append(row)
    lookup_rows = []
    for kind, query in LOOKUPS:
        where = [f"--{k}={v}" for k, v in query.items()]
        cmd = [*py, "lookup", "--plan", str(plan_ids[kind]), *where, "--db", str(db)]
        tm, runs, result = median_of(lambda c=cmd: run_command(c), args.lookup_repeat)
        answer = json.loads(result[1])
        row = {"plan": kind, "query": query, "terrmap": tm, "runs": runs, "region": answer["region"],
               "territory": answer["territory"]}
        if "lat" in query and kind == "zip":
            naive_cmd = [sys.executable, "-c", NAIVE_LOOKUP, str(query["lat"]), str(query["lon"]), str(db),
                         str(plan_ids[kind])]
            row["naive"], row["naive_runs"], _ = median_of(lambda c=naive_cmd: run_command(c), args.lookup_repeat)
        print(f"lookup {kind} {query}: {tm:.2f} s -> {answer['region']} {answer['territory']}"
              + (f"; naive {row['naive']:.2f} s" if "naive" in row else ""), flush=True)
        lookup_rows.append(row)
    floor, _, _ = median_of(lambda: run_command([sys.executable, "-c", "pass"]), args.lookup_repeat)
    load1 = os.getloadavg()
    (OUT / "bench_assign.json").write_text(json.dumps(
        {"args": vars(args), "load": [load0, load1], "assign": assign_rows, "lookup": lookup_rows,
         "python_start": floor}, indent=1, default=str))
    body = report(assign_rows, lookup_rows, floor, args, load0, load1)
    print(body)
    if not args.no_docs:
        write_section(COMPLETE_SECTION, body, subsection="assign and lookup")


def report(assign_rows: list[dict], lookup_rows: list[dict], floor: float, args, load0, load1) -> str:
    lines = [
        f"Command: `nice -n 5 python bench/bench_assign.py --rows {args.rows} --repeat {args.repeat}`  ",
        f"Run: {time.strftime('%Y-%m-%d %H:%M')}; {platform.machine()}, {os.cpu_count()} cores, load average "
        f"{load0[0]:.1f} at the start, {load1[0]:.1f} at the end (cores shared with other work when above ~1); "
        f"demo database of {args.leads:,} leads; its national ZIP plan and the demo plan on H3 level 6 "
        f"(\"{H3_PLAN}\"), both complete; files of {args.rows:,} leads drawn from the demo's leads (coordinates "
        f"moved by up to ~1 km); medians of {args.repeat} runs (lookups: {args.lookup_repeat}).",
        "",
        "terrmap: `python -m terrmap assign FILE --plan ID --out OUT.csv --db DB`, wall time of the command "
        "(start-up, reading, placing, writing the CSV); in brackets the time it reports itself (after start-up). "
        "Baselines run in this process with their libraries imported and the polygons loaded (not timed), "
        "writing the same CSV. Budget (issue 13): 1M leads ≤ 10 s.",
        "",
        "| case | rows | placed: terrmap / baseline | terrmap (s) | baseline | baseline (s) | speed-up |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in assign_rows:
        lines.append(f"| {r['case']} | {r['rows']:,} | {r['placed']:,} / {r['naive_placed']:,} | "
                     f"**{r['terrmap']:.2f}** ({r['inside']:.2f}) | {r['naive_label']} | {r['naive']:.2f} | "
                     f"{r['naive'] / r['terrmap']:.1f}x |")
    lines += [
        "",
        "Lookup: `python -m terrmap lookup --plan ID (--zip Z | --lat A --lon B) --db DB`, wall time of the "
        f"command (a bare `python -c pass` starts in {floor:.2f} s here). Baseline for a point: a script that "
        "loads every ZIP polygon into geopandas and asks which contains it. Budget (issue 13): ≤ 1 s.",
        "",
        "| plan | query | answer | terrmap (s) | baseline (s) |",
        "|---|---|---|---:|---:|",
    ]
    for r in lookup_rows:
        q = ", ".join(f"{k} {v}" for k, v in r["query"].items())
        naive = f"{r['naive']:.2f}" if "naive" in r else "–"
        lines.append(f"| {'ZIP' if r['plan'] == 'zip' else 'H3 level 6'} | {q} | {r['region']} → {r['territory']} | "
                     f"**{r['terrmap']:.2f}** | {naive} |")
    worst_assign = max(r["terrmap"] for r in assign_rows)
    worst_lookup = max(r["terrmap"] for r in lookup_rows)
    lines += ["", f"Against the budgets: assign of {args.rows:,} leads at most {worst_assign:.2f} s "
                  f"{'≤' if worst_assign <= ASSIGN_BUDGET else '>'} {ASSIGN_BUDGET:.0f} s; lookup at most "
                  f"{worst_lookup:.2f} s {'≤' if worst_lookup <= LOOKUP_BUDGET else '>'} {LOOKUP_BUDGET:.0f} s."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
