"""Helpers shared by the benchmarks: timing, medians, and writing results into docs/BENCHMARKS.md."""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

from terrmap.data.area import area_regions
from terrmap.data.stats import region_stats
from terrmap.measures import WORKLOAD_CUSTOMER_WEIGHT

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
BENCHMARKS_MD = ROOT / "docs" / "BENCHMARKS.md"


def timed(fn, repeat: int = 5, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time of ``fn()`` over ``repeat`` runs (after ``warmup`` untimed runs)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def _cpu_times() -> tuple[int, int]:
    """(idle, total) jiffies of all cores since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[3] + fields[4], sum(fields)


def wait_for_idle_cpu(idle_share: float = 0.85, window: float = 0.25, timeout: float = 10.0) -> float:
    """Wait until the machine's cores were at least ``idle_share`` idle over a ``window`` (or ``timeout``
    passed); returns the seconds waited.

    Browser benchmarks that run several modes side by side need it: a baseline's browser keeps painting
    and collecting garbage after its measured work is over, and that would be charged to the next mode's
    click.
    """
    t0 = time.perf_counter()
    if not Path("/proc/stat").exists():
        return 0.0
    while time.perf_counter() - t0 < timeout:
        idle0, total0 = _cpu_times()
        time.sleep(window)
        idle1, total1 = _cpu_times()
        if total1 > total0 and (idle1 - idle0) / (total1 - total0) >= idle_share:
            break
    return time.perf_counter() - t0


def write_section(title: str, body: str, subsection: str | None = None) -> None:
    """Replace (or append) the ``## title`` section of docs/BENCHMARKS.md, or only its ``### subsection`` (a
    section several benchmarks write a part of)."""
    BENCHMARKS_MD.parent.mkdir(parents=True, exist_ok=True)
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    if subsection is not None:
        current = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
        inner = current.group(1) if current else ""
        part = f"### {subsection}\n\n{body.strip()}\n\n"
        sub = re.compile(rf"^### {re.escape(subsection)}\n.*?(?=^###? |\Z)", re.S | re.M)
        inner = sub.sub(lambda _: part, inner) if sub.search(inner) else inner.rstrip() + "\n\n" + part
        body = inner
    section = f"## {title}\n\n{body.strip()}\n\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    BENCHMARKS_MD.write_text(text)


def populated_stats(store, layer, states):
    """Region stats of the regions with leads in ``states`` (+ workload), sorted: the instances terrmap optimised
    before plans were complete (issue 13), kept so benchmarks can show before and after side by side."""
    stats = region_stats(store, layer)
    stats = stats[stats["region_id"].isin(set(area_regions(store, layer, states)["region_id"]))]
    stats = stats.sort_values("region_id").reset_index(drop=True)
    stats["workload"] = stats["leads"] + WORKLOAD_CUSTOMER_WEIGHT * stats["customers"]
    return stats
