"""End to end: the real app (streamlit run) in Debian's Chromium, with no request leaving this machine.

A small demo database is built once; one territory gets the name
``<script>alert(1)</script>`` to check that names are displayed as text.
Screenshots go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import time
from pathlib import Path

from terrmap.app.lookup_box import HIGHLIGHT_COLOR
from tests.e2e_support import (  # noqa: F401
    ARTIFACTS,
    EVIL,
    MAP_IFRAME,
    ROOT,
    rerun_after,
    settled_screenshot,
    wait_idle,
)


def _open_map(page, url: str):
    """Go to ``url`` and wait until the map has drawn its first region; returns the map's frame."""
    page.goto(url)
    frame = page.frame_locator(MAP_IFRAME)
    frame.locator("path.leaflet-interactive").first.wait_for(state="attached", timeout=45_000)
    return frame


def _paths(page) -> int:
    return page.frame_locator(MAP_IFRAME).locator("path.leaflet-interactive").count()


def test_home_shows_kpis_table_and_chart(page, app_url):
    page.goto(app_url + "/")
    page.get_by_role("heading", name="Territory overview").wait_for()
    metrics = page.locator('[data-testid="stMetric"]')
    metrics.first.wait_for()
    text = " ".join(metrics.all_inner_texts())
    for label in ("Leads", "Open leads", "Customers", "Won revenue", "Total potential", "Territories", "Reps"):
        assert label in text
    assert "20,000" in text  # the demo's leads

    table = page.locator('[data-testid="stDataFrame"]').first
    table.wait_for()
    box = table.bounding_box()
    assert box and box["height"] > 300  # all 20 territories, not a stub

    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    chart.wait_for()
    chart.locator("canvas, svg").first.wait_for()
    cbox = chart.bounding_box()
    assert cbox and cbox["height"] > 250 and cbox["width"] > 400
    ticks = chart.locator("svg").first.evaluate(
        "svg => [...svg.querySelectorAll('.role-axis-label text')].map(t => t.textContent)")
    assert "2,000" in ticks or "20,000" in ticks or "10,000" in ticks, ticks  # counts as people write them
    assert not [t for t in ticks if "e+" in t], f"axis labels in e-notation: {ticks}"
    settled_screenshot(page, ARTIFACTS / "home.png", full_page=True)
    chart.scroll_into_view_if_needed()
    chart.screenshot(path=str(ARTIFACTS / "home_chart.png"))


def test_map_draws_regions_offline_and_names_as_text(page, app_url):
    t0 = time.time()
    frame = _open_map(page, app_url + "/map")
    page.wait_for_function(
        f"""() => {{ const f = document.querySelector('{MAP_IFRAME}');
                    return f && f.contentDocument &&
                           f.contentDocument.querySelectorAll('path.leaflet-interactive').length > 200; }}""",
        timeout=30_000,
    )
    seconds = time.time() - t0
    n = _paths(page)
    assert n > 200, f"only {n} regions drawn"

    # Leaflet and its CSS came from this server
    assert any(u.endswith("/app/static/vendor/leaflet/leaflet.js") for u in page.recorder.urls)
    assert any(u.endswith("/app/static/vendor/leaflet/leaflet.css") for u in page.recorder.urls)
    # the legend shows the malicious territory name literally
    legend = frame.locator(".tm-legend")
    legend.wait_for()
    assert EVIL in legend.inner_text()
    assert frame.locator(".tm-legend script").count() == 0
    # issue 14.9: all 20 territories are in view, none behind an invisible scroll, and the title counts them
    assert "Territories (20)" in legend.inner_text()
    assert legend.evaluate("e => e.scrollHeight <= e.clientHeight + 1"), "the legend hides rows behind a scroll"

    # a tooltip with the region's numbers on hover
    frame.locator("path.leaflet-interactive").nth(n // 2).hover(force=True)
    tip = frame.locator(".leaflet-tooltip")
    tip.wait_for(timeout=5_000)
    tip_text = tip.inner_text()
    for label in ("Leads", "Open leads", "Potential"):
        assert label in tip_text
    page.screenshot(path=str(ARTIFACTS / "map.png"), full_page=True)
    print(f"map with {n} regions drawn {seconds:.2f} s after navigation")


def test_map_choropleth_of_a_state_and_zip_layer(page, app_url):
    frame = _open_map(page, app_url + "/map?layer=zip&color=potential&area=CA")
    legend = frame.locator(".tm-legend")
    legend.wait_for()
    assert "Potential" in legend.inner_text() and "quantiles" in legend.inner_text()
    assert _paths(page) > 100
    page.screenshot(path=str(ARTIFACTS / "map_zip_ca_potential.png"), full_page=True)


def test_too_many_regions_get_a_clear_message(page, app_url):
    # the app under test caps the map at E2E_MAX_REGIONS (TERRMAP_MAX_REGIONS); level-9 hexagons exceed it
    page.goto(app_url + "/map?layer=h3:9")
    page.get_by_text("too many to draw at once").wait_for(timeout=30_000)
    assert page.locator(MAP_IFRAME).count() == 0


def test_map_search_box_outlines_the_owner(page, app_url):
    frame = _open_map(page, app_url + "/map?layer=zip&area=TX")
    box = page.get_by_placeholder("ZIP or lat, lon")
    box.wait_for()
    wait_idle(page)
    rerun_after(page, lambda: (box.fill("75001"), box.press("Enter")))
    answer = page.locator('[data-testid="stMarkdown"]').filter(has_text="ZIP 75001")
    answer.first.wait_for(timeout=30_000)
    text = answer.first.inner_text()
    assert "territory" in text and "rep" in text
    # the region outlined in the map (a new map: the search changes its content)
    frame.locator(f'path[stroke="{HIGHLIGHT_COLOR}"]').first.wait_for(state="attached", timeout=45_000)
    # ... and the map opened on it (a ZIP fills the view up to zoom 10), not on all of Texas (zoom 6)
    zoom = page.locator(MAP_IFRAME).element_handle().content_frame().evaluate("() => window.map.getZoom()")
    assert zoom >= 9
    settled_screenshot(page, ARTIFACTS / "map_lookup.png", full_page=True)


GOOD_CSV = """Record ID,Company Name,Industry,Number of Employees,Lead Status,Amount,Postal Code
E2E-1,<script>alert(1)</script> Corp,Software,50,Open,,94103
E2E-2,Acme,Retail,12,Closed Won,12000,10001
"""
BAD_CSV = """Record ID,Company Name,Lead Status,Postal Code
E2E-3,Bad Co,Open,99999
E2E-4,Bad Two,Weird,94103
"""


def _upload_and_import(page, app_url, path: Path) -> str:
    page.goto(app_url + "/import")
    page.get_by_text("Lead file").first.wait_for()
    page.locator('input[type="file"]').set_input_files(str(path))
    page.get_by_role("heading", name="Columns").wait_for()
    button = page.get_by_role("button", name="Import")
    button.wait_for()
    wait_idle(page)  # the upload's own run has drawn the mapping: a click now is not lost to it
    button.click()
    alert = page.locator('[data-testid="stAlert"]').filter(has_text="Import")
    alert.first.wait_for(timeout=30_000)
    return alert.first.inner_text()


def test_import_page_rejects_then_imports(page, app_url, tmp_path):
    """Runs last: it adds two leads to the session's database."""
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD_CSV)
    text = _upload_and_import(page, app_url, bad)
    assert "rejected" in text and "unchanged" in text
    good = tmp_path / "good.csv"
    good.write_text(GOOD_CSV)
    text = _upload_and_import(page, app_url, good)
    assert "Imported 2 rows" in text
    page.screenshot(path=str(ARTIFACTS / "import.png"), full_page=True)
