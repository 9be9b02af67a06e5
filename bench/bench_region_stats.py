"""Region stats over many leads: DuckDB (terrmap.data.stats) vs a pandas groupby baseline.

    python bench/bench_region_stats.py --leads 10000000 --repeat 5

Builds (once) a demo database with ``--leads`` leads under bench/out/, then for
every layer times ``region_stats`` and, in the same run, the same aggregation
done by pandas on the leads already loaded in memory (loading is not counted
against pandas). Results are checked equal before timing.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import OUT, timed, write_section
from terrmap.data.stats import region_stats
from terrmap.data.store import Store
from terrmap.demo import build_demo
from terrmap.geo import parse_layer
from terrmap.geo.h3layer import parent_int


def pandas_stats(df: pd.DataFrame, key: np.ndarray) -> pd.DataFrame:
    is_open = df["status"].to_numpy() == "open"
    is_won = df["status"].to_numpy() == "won"
    frame = pd.DataFrame({
        "k": key,
        "leads": 1,
        "open_leads": is_open.astype(np.int64),
        "customers": is_won.astype(np.int64),
        "won_revenue": np.where(is_won, df["deal_value"].fillna(0).to_numpy(), 0.0),
        "open_score": np.where(is_open, df["score"].to_numpy(), np.nan),
        "potential": np.where(is_open, (df["score"] * df["expected_value"]).to_numpy(), 0.0),
    })
    g = frame.groupby("k", sort=False)
    out = g[["leads", "open_leads", "customers", "won_revenue", "potential"]].sum()
    out["avg_score"] = g["open_score"].mean()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leads", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--layers", default="h3:3,h3:5,h3:6,h3:7,h3:9,zip")
    args = ap.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"stats_{args.leads}.duckdb"
    if not path.exists():
        t0 = time.perf_counter()
        s = Store(path)
        build_demo(s, n_leads=args.leads, seed=1)
        s.close()
        print(f"built {path} in {time.perf_counter() - t0:.1f} s")
    store = Store(path)
    df = store.cursor().sql("SELECT status, deal_value, score, expected_value, zip, cell FROM leads").df()
    cells = df["cell"].to_numpy(dtype=np.uint64)

    rows = []
    for key in args.layers.split(","):
        layer = parse_layer(key)
        if key == "zip":
            pkey = df["zip"].to_numpy()
        else:
            pkey = None
        def run_pandas(pkey=pkey, layer=layer):
            k = pkey if pkey is not None else parent_int(cells, layer.res)
            return pandas_stats(df, k)

        ours = region_stats(store, layer)
        theirs = run_pandas()
        assert len(ours) == len(theirs), (key, len(ours), len(theirs))
        assert abs(ours["potential"].sum() - theirs["potential"].sum()) < 1e-6 * max(1, theirs["potential"].sum())
        t_duck, _ = timed(lambda layer=layer: region_stats(store, layer), repeat=args.repeat)
        t_pd, _ = timed(run_pandas, repeat=max(1, args.repeat // 2))
        rows.append((key, len(ours), t_duck, t_pd))
        print(f"{key:6} regions={len(ours):>8,} duckdb={t_duck:.3f}s pandas={t_pd:.3f}s x{t_pd / t_duck:.1f}", flush=True)

    table = ["| layer | regions | DuckDB median (s) | pandas groupby median (s) | speed-up |", "|---|---:|---:|---:|---:|"]
    for key, n, a, b in rows:
        table.append(f"| {key} | {n:,} | {a:.3f} | {b:.3f} | {b / a:.1f}x |")
    worst = max(a for _, _, a, _ in rows)
    body = f"""Command: `python bench/bench_region_stats.py --leads {args.leads} --repeat {args.repeat}`
({platform.machine()}, {__import__('os').cpu_count()} cores; medians; pandas works on the leads already in memory,
its load time is not counted). Budget: <= 1 s for any layer over 10M leads and >= 5x the pandas baseline.

{chr(10).join(table)}

Slowest layer: {worst:.3f} s.
"""
    write_section(f"Region stats ({args.leads:,} leads)", body)


if __name__ == "__main__":
    main()
