"""Optimizer on complete layers (issue 13), side by side with the populated-only instances of before.

    python bench/bench_complete.py --write-docs

A complete instance holds every region of its area (every region ZIP of the states, every H3 cell whose centre is
on their land; regions without leads weigh zero), so territories are whole pieces of the map; a populated-only
instance holds the regions with leads, joined across empty land by bridge edges (what terrmap optimised before
issue 13). Both run in the same process on the same demo database (``--leads`` leads, built once under bench/out/),
our optimizer with a time budget, ``--repeat`` seeds each. Reported per instance: regions, bridges, median
seconds of ``Optimizer.solve()`` (the graph build is a property of the layer and is reported apart), runs within
tolerance, worst max deviation per measure, territories in one piece (over the graph with bridges), mean
Polsby-Popper of the recommended candidate.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_optimize import demo_db
from bench.common import populated_stats, write_section
from terrmap.data.store import Store
from terrmap.geo import parse_layer
from terrmap.geo.zipdata import reference_table
from terrmap.optimize import LOWER_48_EXCLUDED, MEASURES, Instance, Optimizer, area_stats
from terrmap.optimize.state import SearchState

LOWER_48 = sorted(set(reference_table()["state"].dropna()) - set(LOWER_48_EXCLUDED))

# (label, layer, states, K, balance, tolerance, budget s, budget of the issue s)
CASES = [
    ("ZIP, TX, K=12, ±2% potential", "zip", ["TX"], 12, "potential", 0.02, 3.0, 3.0),
    ("ZIP, lower 48, K=50, ±5% potential", "zip", LOWER_48, 50, "potential", 0.05, 10.0, 10.0),
    ("H3 level 5, lower 48, K=50, ±5% potential", "h3:5", LOWER_48, 50, "potential", 0.05, 10.0, 10.0),
    ("ZIP, TX, K=12, ±5% potential+leads+customers", "zip", ["TX"], 12, "potential,leads,customers", 0.05, 5.0, 5.0),
    ("ZIP, lower 48, K=50, ±5% potential+leads+customers", "zip", LOWER_48, 50, "potential,leads,customers", 0.05,
     20.0, 20.0),
    ("H3 level 6, lower 48, K=50, ±5% potential", "h3:6", LOWER_48, 50, "potential", 0.05, 60.0, 60.0),
]


def _instance(store: Store, layer_key: str, stats) -> tuple[Instance, float]:
    """The optimizer's instance over the regions of ``stats``, and the seconds its graph took to build."""
    layer = parse_layer(layer_key)
    t0 = time.perf_counter()
    graph = layer.graph(store, stats["region_id"].tolist())
    build = time.perf_counter() - t0
    values = stats[MEASURES].fillna(0).astype(float)
    return Instance(layer.key, stats["region_id"].tolist(), graph, values.reset_index(drop=True)), build


def populated_instance(store: Store, layer_key: str, states: list[str]) -> tuple[Instance, float]:
    """The regions with leads only (the instance terrmap optimised before issue 13), their bridged graph."""
    return _instance(store, layer_key, populated_stats(store, parse_layer(layer_key), states))


def complete_instance(store: Store, layer_key: str, states: list[str]) -> tuple[Instance, float]:
    """Every region of the area (empty ones weigh zero), their graph."""
    return _instance(store, layer_key, area_stats(store, parse_layer(layer_key), states))


def run_case(inst: Instance, k: int, balance: str, tol: float, budget: float, repeat: int) -> dict:
    measures = balance.split(",")
    runs = []
    for seed in range(repeat):
        t0 = time.perf_counter()
        res = Optimizer(inst, k, measures, tol, time_limit=budget, random_state=seed).solve()
        seconds = time.perf_counter() - t0
        best = res.candidates[0]
        runs.append({"seconds": seconds, "within": bool(best.scores["within_tolerance"]),
                     "dev": best.scores.get("max_deviation_by_measure") or {measures[0]: best.scores["max_deviation"]},
                     "contiguous": int(best.scores["contiguous"]), "pp": float(best.scores["mean_polsby_popper"])})
    worst = {m: max(r["dev"].get(m, np.nan) for r in runs) for m in measures}
    return {"regions": inst.n, "bridges": len(inst.graph.bridges),
            "seconds": statistics.median(r["seconds"] for r in runs),
            "within": sum(r["within"] for r in runs), "runs": len(runs), "worst": worst,
            "contiguous": min(r["contiguous"] for r in runs), "k": k,
            "pp": statistics.median(r["pp"] for r in runs)}


def fmt(row: dict) -> str:
    worst = " / ".join(f"{v:.1%}" for v in row["worst"].values())
    return (f"| {row['case']} | {row['kind']} | {row['regions']:,} | {row['bridges']:,} | {row['build']:.1f} | "
            f"**{row['seconds']:.2f}** | {row['within']}/{row['runs']} | {worst} | {row['contiguous']}/{row['k']} | "
            f"{row['pp']:.3f} | {row['budget']:g} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leads", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--repeat-large", type=int, default=1, help="seeds for the H3 level-6 instance")
    ap.add_argument("--cases", default="", help="comma-separated case numbers (1-based), default all")
    ap.add_argument("--mix-ab", action="store_true",
                    help="cases with several measures: also the complete layer without the mix-balanced start "
                         "(SearchState.mix_start = False), in the same run")
    ap.add_argument("--lp-ab", action="store_true",
                    help="cases with several measures: also the complete layer without the border programme "
                         "(SearchState.lp_balance = False), in the same run")
    ap.add_argument("--complete-only", action="store_true", help="skip the populated-only instances")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    db = demo_db(args.leads)
    store = Store(db)
    wanted = {int(c) for c in args.cases.split(",") if c} or set(range(1, len(CASES) + 1))
    load0 = os.getloadavg()
    rows = []
    for number, (label, layer, states, k, balance, tol, budget, issue_budget) in enumerate(CASES, start=1):
        if number not in wanted:
            continue
        repeat = args.repeat_large if layer == "h3:6" else args.repeat
        kinds = [("populated only (before)", populated_instance, True), ("complete", complete_instance, True)]
        if args.complete_only:
            kinds = kinds[1:]
        kinds = [(kind, build_instance, mix, True) for kind, build_instance, mix in kinds]
        if args.mix_ab and "," in balance:
            kinds.insert(len(kinds) - 1, ("complete, without the mix start", complete_instance, False, True))
        if args.lp_ab and "," in balance:
            kinds.insert(len(kinds) - 1, ("complete, without the border programme", complete_instance, True, False))
        for kind, build_instance, mix, lp in kinds:
            inst, build = build_instance(store, layer, states)
            SearchState.mix_start, SearchState.lp_balance = mix, lp
            try:
                row = {"case": label, "kind": kind, "build": build, "budget": issue_budget,
                       **run_case(inst, k, balance, tol, budget, repeat)}
            finally:
                SearchState.mix_start, SearchState.lp_balance = True, True
            rows.append(row)
            print(fmt(row), flush=True)
    store.close()
    load1 = os.getloadavg()
    body = "\n".join([
        f"Command: `python bench/bench_complete.py {' '.join(sys.argv[1:])}` "
        f"(repeat {args.repeat}, H3 level 6: {args.repeat_large}; demo database of {args.leads:,} leads)  ",
        f"Run: {time.strftime('%Y-%m-%d %H:%M')}; {platform.machine()}, {os.cpu_count()} cores, load average "
        f"{load0[0]:.1f} at the start, {load1[0]:.1f} at the end; Python {platform.python_version()}.",
        "",
        "Each instance twice in the same run: the regions with leads only, bridged across empty land (what terrmap",
        "optimised before issue 13), and the complete layer (every region of the area; empty regions weigh zero).",
        "Seconds: median `Optimizer.solve()` with the budget shown (the graph build is a property of the layer, apart).",
        "Worst deviation: the largest max deviation of any run, per balanced measure. One piece: the fewest territories",
        "in one piece in any run (over land and the bridges that cross water). PP: median mean Polsby-Popper.",
        "",
        "| instance | regions in the instance | regions | bridges | graph build (s) | seconds (median) | runs within "
        "tolerance | worst max deviation | one piece | mean PP | issue budget (s) |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
        *[fmt(r) for r in rows],
    ])
    print(body)
    if args.write_docs:
        write_section("Optimizer on complete layers (issue 13)", body)


if __name__ == "__main__":
    main()
