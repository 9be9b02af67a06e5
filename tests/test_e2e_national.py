"""Whole-country plans (issue 14.8) in Debian's Chromium: the Map draws the demo plan's every ZIP (32,164 regions,
above the 20,000 the map used to refuse) and the Editor edits all states of it.

Its own server on the shared demo database, with the default cap (``TERRMAP_MAX_REGIONS`` unset: the shared
server caps maps at 6,000 for its refusal test) and the canvas from 2,000 regions on, so the canvas renderer is
what draws here. A canvas has no element per region: the checks read ``window.tmEditor`` and the map container's
``data-tm-render`` / ``data-tm-drawn`` (``tm.addRegions`` in static/terrmap/regions.js) and the canvas pixels.
"""

from __future__ import annotations

import re
import shutil

import pytest

from terrmap.app.map_data import STATE_NAMES
from tests.e2e_support import ARTIFACTS, CANVAS_CANDIDATES_JS, MAP_IFRAME, serve_app
from tests.test_e2e_editor import REV, _active_color, _iframe_origin, _map_frame, _rev, _wait_rev

NATIONAL_CANVAS = {"TERRMAP_CANVAS_REGIONS": "2000"}
OLD_CAP = 20_000


@pytest.fixture(scope="module")
def national(e2e_db, tmp_path_factory):
    """URL of a server with the default cap and the canvas from 2,000 regions on, on a copy of the shared demo
    database (the shared server holds the lock of the original)."""
    work = tmp_path_factory.mktemp("e2e-national")
    db = work / "national.duckdb"
    for src in (e2e_db, e2e_db.with_name(e2e_db.name + ".wal")):
        if src.exists():
            shutil.copy(src, db.with_name(db.name + src.name[len(e2e_db.name):]))
    with serve_app(db, work / "streamlit.log", env=NATIONAL_CANVAS, max_regions=None) as url:
        yield url


def _wait_drawn(page, at_least: int, timeout: float = 45_000) -> int:
    page.wait_for_function(
        f"""n => {{ const f = document.querySelector('{MAP_IFRAME}');
                   const b = f && f.contentDocument && f.contentDocument.querySelector('.leaflet-container');
                   return b && b.dataset.tmRender === 'canvas' && +(b.dataset.tmDrawn || 0) >= n; }}""",
        arg=at_least, timeout=timeout)
    return int(_map_frame(page).evaluate("() => +document.querySelector('.leaflet-container').dataset.tmDrawn"))


COLOURED_PIXELS_JS = """() => {
    // share of the region canvas' pixels that are painted (not transparent; the canvas reaches 30 % beyond the view)
    const c = document.querySelector('.leaflet-overlay-pane canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let k = 3; k < d.length; k += 4 * 16) if (d[k] > 0) n++;
    return n / (d.length / (4 * 16));
}"""



def test_map_draws_a_national_zip_plan_on_a_canvas(page, national):
    url = national
    page.goto(url + "/map?layer=zip")
    drawn = _wait_drawn(page, OLD_CAP + 1)
    assert drawn > OLD_CAP
    assert page.get_by_text("too many to draw").count() == 0
    assert page.get_by_text(re.compile(rf"{drawn:,} regions")).count() >= 1  # the caption counts them
    frame = _map_frame(page)
    assert frame.locator("path.leaflet-interactive").count() == 0  # no SVG path per region
    assert frame.evaluate(COLOURED_PIXELS_JS) > 0.03, "the regions' canvas is blank"
    # hit-testing on the canvas: hovering a region shows its tooltip
    box = page.locator(MAP_IFRAME).bounding_box()
    ox, oy = _iframe_origin(page)
    pt = frame.evaluate("() => map.latLngToContainerPoint([39.1, -94.6])")  # Kansas City
    page.mouse.move(ox + pt["x"], oy + pt["y"])
    page.mouse.move(ox + pt["x"] + 2, oy + pt["y"] + 1)
    tip = frame.locator(".leaflet-tooltip")
    tip.wait_for(timeout=5_000)
    assert "ZIP" in tip.inner_text() and "Potential" in tip.inner_text()
    assert box is not None
    page.screenshot(path=str(ARTIFACTS / "map_national_zip.png"), full_page=True)


def test_editor_edits_all_states_of_a_national_plan(page, national):
    # every state and territory code: the editor keeps those of the plan (all of them, here)
    page.goto(f"{national}/editor?area={','.join(STATE_NAMES)}")
    drawn = _wait_drawn(page, OLD_CAP + 1, timeout=60_000)
    assert page.get_by_text("too many to draw").count() == 0
    page.locator(REV).wait_for(state="attached", timeout=30_000)
    frame = _map_frame(page)
    frame.wait_for_function("() => window.tmEditor && window.tmEditor.n >= 0", timeout=30_000)
    assert frame.evaluate("() => window.tmEditor.polys.length") == drawn
    active = _active_color(page)
    # a ZIP is a pixel or two at the whole country's zoom: zoom in on Kansas City (a click sends its point, and
    # the server finds the region there at any zoom)
    # (the palette paints with the territory holding most of the area: a city of another territory, then)
    for lat, lon in ((39.1, -94.6), (32.8, -96.8), (33.7, -84.4), (39.7, -105.0)):  # KC, Dallas, Atlanta, Denver
        frame.evaluate(f"() => window.tmEditor.map.setView([{lat}, {lon}], 9, {{animate: false}})")
        cands = [c for c in frame.evaluate(CANVAS_CANDIDATES_JS, {"maxN": 60, "step": 7, "minPx": 6}) if c["fill"] != active]
        if cands:
            break
    assert cands, "no clickable region of another territory found"
    c = cands[len(cands) // 2]
    rev = _rev(page)
    ox, oy = _iframe_origin(page)
    page.mouse.click(ox + c["x"], oy + c["y"])
    _wait_rev(page, rev + 1)
    frame.wait_for_function("n => window.tmEditor.n >= n", arg=rev + 1, timeout=20_000)
    message = page.get_by_text(re.compile(r"Edit \d+ ·")).first.inner_text()
    assert "region" in message and "Nothing moved" not in message, message
    # the clicked region took the paint colour on the canvas (restyled in place)
    assert frame.evaluate("i => window.tmEditor.polys[i].options.fillColor.toLowerCase()", c["i"]) == active
    page.screenshot(path=str(ARTIFACTS / "editor_national_zip.png"), full_page=True)
