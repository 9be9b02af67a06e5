"""Map render time in Chromium: navigation to the Map page -> every region path drawn.

Starts the app (``python -m terrmap.serve``, i.e. ``streamlit run app.py``) on a demo database, opens the Map page
for areas of about 2,000, 5,000 and 10,000 regions (H3 level 5, states added
until the target is reached) and measures, per run in a fresh browser context:

* ``page``: from ``page.goto`` to the last region path in the map iframe
  (includes Streamlit's own start-up in the page, ~2 s here);
* ``map``: from the map iframe's request to the last region path (the map alone);

median of ``--repeat`` runs after one warm-up run (server caches filled; the
cold first run is reported too). The same maps are drawn by the naive baseline
(``?render=naive``: folium's ``GeoJson`` with a Python ``style_function`` and
``highlight_function``, ``GeoJsonTooltip`` on all fields, full-precision
coordinates; see :func:`terrmap.app.maps.build_naive_map`). Results are printed
as a markdown table and written to docs/BENCHMARKS.md ("## Map render").

    python bench/bench_map_render.py --leads 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import OUT, ROOT, write_section
from terrmap.serve import CHROMIUM_ARGS, find_chromium, running_app

IFRAME = 'iframe[title="streamlit_folium.st_folium"]'
# Regions drawn in the map iframe: SVG paths, or on a canvas what tm.addRegions marked as painted.
DRAWN_IN_DOC_JS = """doc => { const box = doc.querySelector('.leaflet-container');
    if (box && box.dataset.tmRender === 'canvas') return +(box.dataset.tmDrawn || 0);
    return doc.querySelectorAll('path.leaflet-interactive').length; }"""
COUNT_JS = f"""() => {{ const f = document.querySelector('{IFRAME}');
    if (!f || !f.contentDocument) return -1;
    return ({DRAWN_IN_DOC_JS})(f.contentDocument); }}"""
SCRIPT_BYTES_JS = f"""() => {{ const f = document.querySelector('{IFRAME}');
    return [...f.contentDocument.scripts].reduce((n, s) => n + (s.src ? 0 : s.text.length), 0); }}"""


def build_db(path: Path, leads: int) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "terrmap", "demo", "--db", str(path), "--leads", str(leads)],
                   cwd=ROOT, check=True)


def scenarios(db: Path, targets: list[int], layer_key: str) -> list[dict]:
    """For each target, states (largest first, skipping overshoots) whose regions add up to about the target."""
    from terrmap.app.map_data import filter_states, region_frame
    from terrmap.data.queries import region_places
    from terrmap.data.stats import region_stats
    from terrmap.data.store import Store
    from terrmap.geo import parse_layer

    store = Store(db, read_only=True)
    try:
        layer = parse_layer(layer_key)
        frame = region_frame(region_stats(store, layer), places=region_places(store, layer))
    finally:
        store.close()
    per_state = {}
    for states in frame["states"].dropna():
        for s in states.split(","):
            per_state[s] = per_state.get(s, 0) + 1
    order = sorted(per_state, key=lambda s: (-per_state[s], s))
    out = []
    for target in targets:
        chosen: list[str] = []
        for s in order:
            n_now = len(filter_states(frame, chosen)) if chosen else 0
            if n_now >= target * 0.97:
                break
            if len(filter_states(frame, chosen + [s])) <= target * 1.06:
                chosen.append(s)
        n = len(filter_states(frame, chosen))
        out.append({"target": target, "layer": layer_key, "states": chosen, "regions": n})
    return out


def measure(browser, url: str, expected: int, timeout_s: float = 180, then_js: str | None = None) -> dict:
    """Seconds until ``expected`` regions are drawn (page: from the navigation; map: from the map iframe's
    request), then, with ``then_js``, until that script's promise resolves too (e.g. the regions painted)."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    marks: dict[str, float] = {}
    t0 = time.perf_counter()

    def on_request(req):
        if "st_folium" in req.url and "index.html" in req.url and "iframe" not in marks:
            marks["iframe"] = time.perf_counter()

    page.on("request", on_request)
    try:
        page.goto(url)
        page.wait_for_function(f"() => ({COUNT_JS})() >= {expected}", timeout=timeout_s * 1000, polling=20)
        if then_js:
            page.evaluate(then_js)
        t_done = time.perf_counter()
        drawn = page.evaluate(COUNT_JS)
        script = page.evaluate(SCRIPT_BYTES_JS)
    finally:
        context.close()
    return {"page": t_done - t0, "map": t_done - marks.get("iframe", t0), "drawn": drawn, "script_bytes": script}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leads", type=int, default=200_000)
    ap.add_argument("--db", type=Path, default=None, help="demo database (built if missing)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--targets", default="2000,5000,10000")
    ap.add_argument("--layer", default="h3:5")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/BENCHMARKS.md")
    args = ap.parse_args(argv)

    load_start = os.getloadavg()[0]
    db = args.db or OUT / f"map_render_{args.leads}.duckdb"
    build_db(db, args.leads)
    cases = scenarios(db, [int(t) for t in args.targets.split(",")], args.layer)

    chromium = find_chromium()
    if not chromium:
        sys.exit("install Debian chromium: apt-get install chromium")

    from playwright.sync_api import sync_playwright

    rows = []
    with running_app(db) as base:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            warm = browser.new_page()  # first visit of a fresh server
            warm.goto(base + "/")
            warm.wait_for_selector('[data-testid="stMetric"]', timeout=60_000)
            warm.close()
            # the floor: Streamlit's own start-up plus a map of a handful of regions
            tiny_url = f"{base}/map?{urlencode([('layer', 'h3:3'), ('area', 'RI')])}"
            measure(browser, tiny_url, 1)
            floor_runs = [measure(browser, tiny_url, 1) for _ in range(args.repeat)]
            floor = statistics.median(r["page"] for r in floor_runs)
            floor_n = floor_runs[0]["drawn"]
            print(f"floor: {floor_n} regions page {floor:.2f} s", flush=True)
            for case in cases:
                query = [("layer", case["layer"])] + [("area", s) for s in case["states"]]
                result = {}
                for variant, extra in (("terrmap", []), ("naive", [("render", "naive")])):
                    url = f"{base}/map?{urlencode(query + extra)}"
                    cold = measure(browser, url, case["regions"])
                    runs = [measure(browser, url, case["regions"]) for _ in range(args.repeat)]
                    result[variant] = {
                        "cold": cold["page"],
                        "page": statistics.median(r["page"] for r in runs),
                        "best": min(r["page"] for r in runs),
                        "map": statistics.median(r["map"] for r in runs),
                        "mb": runs[0]["script_bytes"] / 1e6,
                        "all": [round(r["page"], 2) for r in runs],
                    }
                    print(f"{case['regions']:>6} regions {variant:<8} page {result[variant]['page']:.2f} s "
                          f"map {result[variant]['map']:.2f} s runs {result[variant]['all']} "
                          f"cold {cold['page']:.2f} s script {result[variant]['mb']:.2f} MB", flush=True)
                rows.append((case, result))
            browser.close()

    lines = [
        "| regions | layer, area | terrmap: page → drawn, median / best (s) | terrmap: map → drawn (s) "
        "| first visit (s) | naive: page → drawn, median / best (s) | naive: map → drawn (s) "
        "| map script terrmap / naive (MB) | speed-up (page) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case, r in rows:
        t, n = r["terrmap"], r["naive"]
        st_ = case["states"]
        states = "all US" if not st_ else ", ".join(st_) if len(st_) <= 4 else f"{len(st_)} states ({', '.join(st_[:3])}, …)"
        lines.append(
            f"| {case['regions']:,} | {case['layer']}, {states} | {t['page']:.2f} / {t['best']:.2f} | {t['map']:.2f} "
            f"| {t['cold']:.2f} | {n['page']:.2f} / {n['best']:.2f} | {n['map']:.2f} | {t['mb']:.2f} / {n['mb']:.2f} "
            f"| {n['page'] / t['page']:.1f}x |"
        )
    table = "\n".join(lines)
    print(table)

    cmd = "python bench/bench_map_render.py " + " ".join(argv if argv is not None else sys.argv[1:])
    load = os.getloadavg()[0]
    body = f"""Command: `{cmd.strip()}`
({platform.machine()}, {os.cpu_count()} cores shared with other jobs: load average {load_start:.1f} at the start,
{load:.1f} at the end; the best run is the least disturbed one;
Debian Chromium headless; demo database of {args.leads:,} leads;
medians of {args.repeat} runs, each in a fresh browser context, after one warm-up run whose time is the
"first visit" column: the server computes the layer's stats, places and map payload then).
*page → drawn*: from navigation to the Map page until every region's SVG path exists in the map iframe;
it includes Streamlit starting in the page: the same measure for a map of {floor_n} regions
(h3:3, Rhode Island) takes **{floor:.2f} s** on this run, the floor any map page pays here.
*map → drawn*: from the map iframe's request until every path exists (the map's own cost in the browser;
the payload's trip through the Streamlit server and websocket happens before, so it shows in *page*).
*map script*: the inline script the map iframe runs (regions + state outlines).
Budget: 5,000 regions drawn within 3 s of navigation.

The naive baseline draws the same regions the way folium's documentation does:
`folium.GeoJson` with a Python `style_function` and `highlight_function` (folium emits one `switch`
case per feature), `GeoJsonTooltip` on all fields, every stat as a feature property and
full-precision coordinates. terrmap sends a columnar payload: rings as delta-encoded integers
(3 decimals at H3 levels 5-6), per region its id, place, palette and territory index and six integers;
parsed with `JSON.parse`, drawn as `L.polygon`s with a ready style, one tooltip for the whole layer
built on hover (see `static/terrmap/regions.js`).

{table}
"""
    if not args.no_write:
        write_section("Map render", body)
        print("wrote docs/BENCHMARKS.md (## Map render)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
