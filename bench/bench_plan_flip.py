"""Server side of one edit: flip 1k regions in a 50k-region plan and refresh every metric.

    python bench/bench_plan_flip.py --regions 50000 --territories 50 --move 1000 --repeat 30

Incremental (terrmap.plan.Plan.flip + summary) against the naive way, a full
recomputation of all tallies and metrics after the edit, in the same run.
Budget: <= 20 ms per 1k-region move.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import h3
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_section
from terrmap.geo.graph import h3_graph
from terrmap.plan import Plan


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--regions", type=int, default=50_000)
    ap.add_argument("--territories", type=int, default=50)
    ap.add_argument("--move", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()

    rings = int(np.ceil(np.sqrt(args.regions / 3)))
    cells = sorted(h3.grid_disk(h3.latlng_to_cell(39.0, -98.0, 6), rings))[: args.regions]
    graph = h3_graph(cells)
    rng = np.random.default_rng(0)
    values = np.column_stack([rng.integers(0, 50, graph.n), rng.gamma(2, 1000, graph.n), rng.integers(0, 5, graph.n)])
    order = np.argsort(graph.centroids[:, 1])
    assign = np.empty(graph.n, dtype=np.int64)
    assign[order] = np.arange(graph.n) * args.territories // graph.n
    plan = Plan(graph, values, ["leads", "potential", "customers"], assign, args.territories)

    inc, naive = [], []
    for _ in range(args.repeat):
        src = int(rng.integers(0, args.territories - 1))
        members = np.flatnonzero(plan.assignment == src)[: args.move]
        t0 = time.perf_counter()
        plan.flip(members, src + 1)
        plan.summary()
        inc.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        Plan(graph, values, plan.measures, plan.assignment, plan.k).summary()  # everything from scratch
        naive.append(time.perf_counter() - t0)
    a, b = statistics.median(inc) * 1000, statistics.median(naive) * 1000
    print(f"incremental {a:.2f} ms, full recomputation {b:.2f} ms, x{b / a:.1f}")
    write_section(
        "Plan edit, server side",
        f"""Command: `python bench/bench_plan_flip.py --regions {args.regions} --territories {args.territories} \
--move {args.move} --repeat {args.repeat}`

Move {args.move} regions between territories of a {graph.n:,}-region H3 plan ({args.territories} territories) and refresh
all metrics (totals per measure, deviations, CV, contiguity of the touched territories, cut edges, perimeters,
Polsby-Popper). Budget: <= 20 ms.

| method | median per edit (ms) |
|---|---:|
| incremental `Plan.flip` + `summary` | {a:.2f} |
| naive: recompute every tally and metric | {b:.2f} |

Speed-up: {b / a:.1f}x.""",
    )


if __name__ == "__main__":
    main()
