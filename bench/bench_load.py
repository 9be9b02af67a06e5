"""Under load (issue 18.5): 10 browser sessions at once on one app, on the same 2 cores.

Starts the app (``python -m terrmap.serve``) on a copy of the demo database (200,000 leads) and opens ten
Chromium pages at once, each its own browser context (its own Streamlit session), for ``--minutes``:

* 5 leaders: Home, then the Map, again and again (a fresh page load each time);
* 3 planners: the Editor on one state (New Mexico's ZIPs), clicking regions into the territory they paint with;
* 2 reps: their own Rep view (``/rep?rep=R0x``), reloaded.

Sessions arrive a second apart. Measured: *page ready* (navigation start until the page's script is idle
and, on map pages, the map has drawn its first region), *click → metrics* (from the click until the editor's
balance panel shows the edit: its edit counter, written after the metrics), errors (an exception box on a
page, an HTTP answer >= 400, a timeout), and the app's memory (RSS of the server process) before the sessions,
with them, and per editor session. Medians and 95th percentiles; results go to docs/BENCHMARKS.md ("## Under
load (issue 18)").

Also run: a command-line read (``regions``) and a write (``import`` of 25 leads) beside the loaded app, timed.

    python bench/bench_load.py --minutes 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_map_render import build_db
from bench.common import OUT, write_section
from terrmap.serve import CHROMIUM_ARGS, find_chromium, running_app
from tests.e2e_support import CANDIDATES_JS

IFRAME = 'iframe[title="streamlit_folium.st_folium"]'
REV = '[data-testid="tm-edit-rev"]'
IDLE_JS = ("() => document.querySelector('[data-testid=\"stApp\"]')?.getAttribute('data-test-script-state')"
           " === 'notRunning'")
EDITOR_AREA = "NM"
def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the server runs in its own process group)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().split()
            if int(stat[4]) != pid and int(entry.name) != pid:  # field 5: process group
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1024


class Stats:
    def __init__(self):
        self.ready: dict[str, list[float]] = {"leader": [], "planner": [], "rep": []}
        self.clicks: list[float] = []
        self.errors: list[str] = []


async def wait_ready(page, has_map: bool, timeout: float = 60_000) -> None:
    await page.wait_for_selector('[data-testid="stApp"]', state="attached", timeout=timeout)
    if has_map:
        await page.frame_locator(IFRAME).locator("path.leaflet-interactive").first.wait_for(
            state="attached", timeout=timeout)
    await page.wait_for_function(IDLE_JS, timeout=timeout)


async def check_page(page, stats: Stats, where: str) -> None:
    if await page.locator('[data-testid="stException"]').count():
        stats.errors.append(f"exception on {where}")


async def leader(context, url: str, stats: Stats, until: float, start: float = 0.0) -> None:
    await asyncio.sleep(start)
    page = await context.new_page()
    while time.monotonic() < until:
        for path, has_map in (("/", False), ("/map", True)):
            t0 = time.perf_counter()
            try:
                await page.goto(url + path)
                await wait_ready(page, has_map)
                stats.ready["leader"].append(time.perf_counter() - t0)
                await check_page(page, stats, path)
            except Exception as exc:
                stats.errors.append(f"leader {path}: {type(exc).__name__}")
            await asyncio.sleep(1.0)  # a person looks at the page


async def rep(context, url: str, rep_id: str, stats: Stats, until: float, start: float = 0.0) -> None:
    await asyncio.sleep(start)
    page = await context.new_page()
    while time.monotonic() < until:
        t0 = time.perf_counter()
        try:
            await page.goto(f"{url}/rep?rep={rep_id}")
            await wait_ready(page, True)
            stats.ready["rep"].append(time.perf_counter() - t0)
            await check_page(page, stats, "rep")
        except Exception as exc:
            stats.errors.append(f"rep: {type(exc).__name__}")
        await asyncio.sleep(2.0)


async def planner(context, url: str, stats: Stats, until: float, start: float = 0.0) -> None:
    await asyncio.sleep(start)
    page = await context.new_page()
    t0 = time.perf_counter()
    try:
        await page.goto(f"{url}/editor?area={EDITOR_AREA}")
        await wait_ready(page, True, timeout=120_000)
        await page.locator(REV).wait_for(state="attached", timeout=60_000)
        stats.ready["planner"].append(time.perf_counter() - t0)
    except Exception as exc:
        stats.errors.append(f"planner open: {type(exc).__name__}")
        return
    frame = await (await page.locator(IFRAME).element_handle()).content_frame()
    await frame.wait_for_function("() => window.tmEditor && window.map", timeout=60_000)
    box = await page.locator(IFRAME).bounding_box()
    i = 0
    while time.monotonic() < until:
        candidates = await frame.evaluate(CANDIDATES_JS, 40)
        if not candidates:
            stats.errors.append("planner: nothing to click")
            return
        c = candidates[(i * 7) % len(candidates)]
        i += 1
        rev = int(await page.locator(REV).get_attribute("data-rev"))
        t0 = time.perf_counter()
        try:
            await page.mouse.click(box["x"] + c["x"], box["y"] + c["y"])
            await page.wait_for_function(
                f"() => {{ const e = document.querySelector('{REV}'); return e && +e.dataset.rev > {rev}; }}",
                timeout=30_000)
            stats.clicks.append(time.perf_counter() - t0)
            await check_page(page, stats, "editor")
        except Exception as exc:
            stats.errors.append(f"planner click: {type(exc).__name__}")
        await asyncio.sleep(1.5)  # a planner looks at the numbers before the next click


async def run_sessions(url: str, minutes: float, stats: Stats, server_pid: int, memory: dict) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        contexts = []
        for _ in range(10):
            ctx = await browser.new_context(viewport={"width": 1440, "height": 1000})
            ctx.on("response", lambda r: r.status >= 400 and stats.errors.append(f"HTTP {r.status} {r.url}"))
            contexts.append(ctx)
        until = time.monotonic() + minutes * 60
        # People arrive a second apart (all ten at the same instant is a stampede, not a working day).
        tasks = [leader(contexts[i], url, stats, until, i) for i in range(5)]
        tasks += [planner(contexts[5 + i], url, stats, until, 5 + i) for i in range(3)]
        tasks += [rep(contexts[8 + i], url, f"R{i + 1:02d}", stats, until, 8 + i) for i in range(2)]

        async def sample_memory():
            await asyncio.sleep(min(60, minutes * 30))
            memory["with_sessions_mb"] = rss_mb(server_pid)

        await asyncio.gather(*tasks, sample_memory())
        await browser.close()


def editor_session_memory(url: str, server_pid: int, n: int = 3) -> float:
    """RSS growth of the server per editor session opened (one after the other, on a quiet app)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        page = browser.new_context().new_page()  # a first session warms the caches shared by all
        page.goto(f"{url}/editor?area={EDITOR_AREA}")
        page.locator(REV).wait_for(state="attached", timeout=120_000)
        time.sleep(2)
        before = rss_mb(server_pid)
        for _ in range(n):
            pg = browser.new_context().new_page()
            pg.goto(f"{url}/editor?area={EDITOR_AREA}")
            pg.locator(REV).wait_for(state="attached", timeout=120_000)
        time.sleep(2)
        after = rss_mb(server_pid)
        browser.close()
    return (after - before) / n


def terrmap_cli(db: Path, *args) -> tuple[int, float, str]:
    env = {**os.environ, "TERRMAP_LOCK_WAIT": "120"}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "terrmap", *map(str, args), "--db", str(db)], capture_output=True,
                         text=True, env=env)
    return res.returncode, time.perf_counter() - t0, res.stderr.strip()[-200:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--leads", type=int, default=200_000)
    ap.add_argument("--no-write", action="store_true", help="print, do not update docs/BENCHMARKS.md")
    args = ap.parse_args()

    source = OUT / f"load-source-{args.leads}.duckdb"
    build_db(source, args.leads)
    db = OUT / "load.duckdb"
    shutil.copy(source, db)
    for extra in (".wal", ".turn", ".queue"):
        Path(str(db) + extra).unlink(missing_ok=True)
    stats, memory = Stats(), {}
    cli: dict[str, tuple] = {}
    load0 = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M")
    with running_app(db, OUT / "load-streamlit.log", timeout=120) as url:
        port_pid = _server_pid(url)
        memory["idle_mb"] = rss_mb(port_pid)
        memory["per_editor_session_mb"] = editor_session_memory(url, port_pid)

        async def everything():
            async def jobs():
                await asyncio.sleep(args.minutes * 30)  # halfway, while the sessions run
                new = OUT / "load-new.csv"
                new.write_text("Id,Status,Zip\n" + "".join(f"LOAD{time.time_ns()}{i},Open,87501\n" for i in range(25)))
                cli["regions (read)"] = await asyncio.to_thread(
                    terrmap_cli, db, "regions", "--layer", "zip", "--out", OUT / "load-regions.csv")
                cli["import 25 leads (write)"] = await asyncio.to_thread(terrmap_cli, db, "import", new)
            await asyncio.gather(run_sessions(url, args.minutes, stats, port_pid, memory), jobs())

        asyncio.run(everything())
    load1 = os.getloadavg()[0]
    report(args, stats, memory, cli, started, load0, load1)


def _server_pid(url: str) -> int:
    """The server process: the one whose command line names the benchmark's database."""
    db = str(OUT / "load.duckdb")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"terrmap.serve" in argv and db.encode() in argv:
                return int(entry.name)
    raise RuntimeError(f"no server on {db} ({url})")


def report(args, stats: Stats, memory: dict, cli: dict, started: str, load0: float, load1: float) -> None:
    def row(name, xs, budget):
        return (f"| {name} | {len(xs)} | {statistics.median(xs) if xs else float('nan'):.2f} | "
                f"**{percentile(xs, 0.95):.2f}** | {max(xs) if xs else float('nan'):.2f} | {budget} |")

    ready_all = stats.ready["leader"] + stats.ready["rep"]
    lines = [
        f"Command: `python bench/bench_load.py --minutes {args.minutes:g} --leads {args.leads}`  ",
        f"Run: {started}; {platform.machine()}, {os.cpu_count()} cores, load average {load0:.1f} at the start, "
        f"{load1:.1f} at the end; Python {platform.python_version()}. The app, Chromium (10 pages) and this "
        "script share the cores.",
        "",
        "| what | samples | median (s) | p95 (s) | max (s) | issue budget (p95) |",
        "|---|---:|---:|---:|---:|---|",
        row("page ready: leaders (Home, Map)", stats.ready["leader"], "≤ 8 s"),
        row("page ready: reps (Rep view)", stats.ready["rep"], "≤ 8 s"),
        row("page ready: leaders and reps together", ready_all, "≤ 8 s"),
        row("editor first paint (planners, all three at once)", stats.ready["planner"], "-"),
        row("editor click → metrics (3 planners)", stats.clicks, "≤ 1.5 s"),
        "",
        f"Errors: **{len(stats.errors)}**" + (f" ({'; '.join(sorted(set(stats.errors))[:8])})" if stats.errors else ""),
        "",
        f"Server memory (RSS, MB): idle after start {memory.get('idle_mb', 0):.0f}; "
        f"with the 10 sessions {memory.get('with_sessions_mb', 0):.0f}; "
        f"per editor session (3 more opened on a quiet app) {memory.get('per_editor_session_mb', 0):.0f}.",
        "",
        "Jobs beside the loaded app (their own processes, halfway through): " + "; ".join(
            f"{name}: exit {rc} in {sec:.1f} s" + (f" ({err})" if rc else "") for name, (rc, sec, err) in cli.items()),
    ]
    text = "\n".join(lines)
    print(text)
    print(json.dumps({"errors": stats.errors[:20]}, indent=1))
    if not args.no_write:
        write_section("Under load (issue 18)", text)


if __name__ == "__main__":
    main()
