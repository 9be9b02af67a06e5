"""Whole-country maps (issue 14.8) in Chromium: the Map page on the demo plan's ZIP layer for all of the US, and a
click in the Editor with every state open, against today's SVG path where it can still run.

* Map: ``page → painted`` as bench/bench_map_render.py's ``page → drawn`` (navigation until every region is
  drawn; on a canvas, until ``tm.addRegions`` marks the regions painted) plus two animation frames, so that SVG
  paths are painted too, not only in the DOM; median of ``--repeat`` runs after a warm-up. The SVG
  baseline is the same app with the canvas switched off (``TERRMAP_CANVAS_REGIONS`` above any map), on the
  ZIPs of the largest states, ~20,000 regions (the old cap) and, where it finishes, the whole country.
* Editor: ``click → metrics`` as in bench/bench_editor.py (mouse click in the map iframe until the balance
  panel shows the edit), median of ``--clicks`` clicks after 2 warm-up ones, every state of the demo plan open,
  the map zoomed in so a click lands on one region.

    python bench/bench_national.py --leads 200000 --repeat 3 --clicks 8
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_editor import REV
from bench.bench_map_render import IFRAME, build_db, measure, scenarios
from bench.common import OUT, wait_for_idle_cpu, write_section
from terrmap.serve import CHROMIUM_ARGS, find_chromium, running_app
from tests.e2e_support import CANVAS_CANDIDATES_JS

SECTION = "Map render: whole-country maps (issue 14.8)"
SVG_ONLY = {"TERRMAP_CANVAS_REGIONS": str(10**9)}



def all_states(db: Path) -> list[str]:
    from terrmap.data.store import Store
    from terrmap.data.zip_groups import region_groups
    from terrmap.geo import parse_layer

    store = Store(db, read_only=True)
    try:
        return sorted(region_groups(store, parse_layer("zip"))["state"].dropna().unique())
    finally:
        store.close()


# Two animation frames of the map iframe: the frame in which the browser lays out and paints what the script
# added has passed (SVG paths exist in the DOM before they are painted; a canvas is marked once painted).
PAINTED_JS = f"""() => new Promise(done => {{ const w = document.querySelector('{IFRAME}').contentWindow;
    w.requestAnimationFrame(() => w.requestAnimationFrame(() => done(true))); }})"""


def measure_painted(browser, url: str) -> dict:
    """bench/bench_map_render.py's measure until every region is drawn *and painted*. The regions are added in
    one script (SVG paths all at once, a canvas marked painted once), so the first region drawn means all are."""
    return measure(browser, url, 1, then_js=PAINTED_JS)


def map_runs(browser, url: str, repeat: int) -> dict:
    cold = measure_painted(browser, url)
    runs = [measure_painted(browser, url) for _ in range(repeat)]
    return {"cold": cold["page"], "page": statistics.median(r["page"] for r in runs),
            "map": statistics.median(r["map"] for r in runs), "all": [round(r["page"], 2) for r in runs],
            "drawn": runs[0]["drawn"], "mb": runs[0]["script_bytes"] / 1e6}


def editor_clicks(browser, url: str, clicks: int, warmup: int = 2) -> dict:
    context = browser.new_context(viewport={"width": 1500, "height": 1050})
    page = context.new_page()
    page.set_default_timeout(120_000)
    t0 = time.perf_counter()
    page.goto(url)
    page.locator(REV).wait_for(state="attached", timeout=180_000)
    frame = page.locator(IFRAME).element_handle().content_frame()
    frame.wait_for_function("() => window.tmEditor && window.tmEditor.n >= 0 && "
                            "+document.querySelector('.leaflet-container').dataset.tmDrawn > 0", timeout=180_000)
    first_paint = time.perf_counter() - t0
    regions = frame.evaluate("() => window.tmEditor.polys.length")
    frame.evaluate("() => window.tmEditor.map.setView([39.1, -94.6], 9, {animate: false})")  # Kansas City
    page.wait_for_timeout(1500)
    style = page.locator('div[title="colour of the territory you paint with"]').get_attribute("style")
    active = style.split("background:")[1].split(";")[0].strip().lower()
    cands = [c for c in frame.evaluate(CANVAS_CANDIDATES_JS, {"maxN": 200, "step": 3, "minPx": 8}) if c["fill"] != active]
    step = max(1, len(cands) // (clicks + warmup))
    cands = cands[::step][:clicks + warmup]
    ox, oy = page.locator(IFRAME).evaluate(
        "e => { const r = e.getBoundingClientRect(); return [r.left + e.clientLeft, r.top + e.clientTop]; }")
    times, moved = [], 0
    for k, c in enumerate(cands):
        rev = int(page.locator(REV).get_attribute("data-rev"))
        page.wait_for_timeout(200)
        wait_for_idle_cpu()
        t = time.perf_counter()
        page.mouse.click(ox + c["x"], oy + c["y"])
        page.wait_for_function(
            f"() => {{ const e = document.querySelector('{REV}'); return e && +e.dataset.rev > {rev}; }}",
            timeout=120_000, polling=5)
        dt = time.perf_counter() - t
        frame.wait_for_function("n => window.tmEditor.n >= n", arg=rev + 1, timeout=120_000)
        if k >= warmup:
            times.append(dt)
            moved += frame.evaluate("i => window.tmEditor.polys[i].options.fillColor.toLowerCase()", c["i"]) == active
    context.close()
    return {"regions": regions, "first_paint": first_paint, "median": statistics.median(times),
            "runs": [round(x, 2) for x in times], "moved": moved}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leads", type=int, default=200_000)
    ap.add_argument("--db", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--clicks", type=int, default=8)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    load_start, started = os.getloadavg()[0], time.strftime('%Y-%m-%d %H:%M')
    db = args.db or OUT / f"map_render_{args.leads}.duckdb"
    build_db(db, args.leads)
    states = all_states(db)
    # the largest states whose ZIPs with leads number ~13,000: with the plan's ZIPs without leads ~20,000 drawn
    near_cap = scenarios(db, [13_000], "zip")[0]

    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        for variant, env in (("canvas (terrmap)", {}), ("SVG (before)", SVG_ONLY)):
            with running_app(db, env=env) as base:
                for label, query in (
                        (f"ZIP, {len(near_cap['states'])} largest states", [("layer", "zip")] +
                         [("area", s) for s in near_cap["states"]]),
                        ("ZIP, all of the US", [("layer", "zip")])):
                    url = f"{base}/map?{urlencode(query)}"
                    r = map_runs(browser, url, args.repeat)
                    rows.append((variant, label, r))
                    print(variant, label, r, flush=True)
                if not env:
                    q = urlencode({"area": ",".join(states)})
                    ed = editor_clicks(browser, f"{base}/editor?{q}", args.clicks)
                    print("editor", ed, flush=True)
        browser.close()

    lines = ["| renderer | map | regions drawn | page → painted, median (s) | map → painted (s) | first visit (s) "
             "| map script (MB) | runs (s) |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for variant, label, r in rows:
        lines.append(f"| {variant} | {label} | {r['drawn']:,} | **{r['page']:.2f}** | {r['map']:.2f} "
                     f"| {r['cold']:.2f} | {r['mb']:.2f} | {', '.join(map(str, r['all']))} |")
    cmd = "python bench/bench_national.py " + " ".join(argv if argv is not None else sys.argv[1:])
    body = f"""Command: `{cmd.strip()}`
Run: {started}; {platform.machine()}, {os.cpu_count()} cores shared with other work, load
average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; Debian Chromium headless; demo database
of {args.leads:,} leads; the demo plan (ZIP codes, complete: every ZIP of the country assigned).

From {10_000:,} regions on (`terrmap.app.map_data.CANVAS_REGIONS`) the browser paints the regions on one Leaflet
canvas instead of one SVG path each (`static/terrmap/regions.js`; hover, tooltips and clicks are the canvas
renderer's own hit-testing); the cap (`MAX_REGIONS`) went from 20,000 to 60,000. *SVG (before)*: the same app
with the canvas switched off, i.e. the map as it drew before. Measures as in "Map render" (median of
{args.repeat} runs after a warm-up run, the "first visit"), but until the regions are *painted*: two animation
frames of the map after the last region exists (an SVG path exists in the DOM before the browser lays it out
and paints it, which "Map render" does not wait for). Budget (issue 14.8): the whole country's ZIP map
drawn ≤ 6 s after navigation.

{chr(10).join(lines)}

Editor, every state of the demo plan open ({ed['regions']:,} regions on a canvas; first paint
{ed['first_paint']:.1f} s, first visit: the server opens the plan): click → metrics (until the balance panel
shows the edit, as in "Editor: click to updated metrics"), median of {len(ed['runs'])} clicks after 2 warm-up
clicks, the map zoomed to Kansas City: **{ed['median']:.2f} s** (runs: {', '.join(map(str, ed['runs']))};
{ed['moved']} of {len(ed['runs'])} clicked regions took the paint colour). Budget: ≤ 1.5 s.
"""
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
