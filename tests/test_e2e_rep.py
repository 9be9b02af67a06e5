"""The rep view (pages/rep_view.py) end to end in Debian's Chromium: a deep link ``/rep?rep=ID``.

Reuses the shared end-to-end fixtures (tests/e2e_support.py): one ``streamlit run`` on a 20k-lead demo database,
Chromium that fails the test if a request leaves this machine or a script dialog opens. What the page shows is
compared with the database, read from a copy of it (the server holds the file open).
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.e2e_support import ARTIFACTS, EVIL, MAP_IFRAME, settled_screenshot, wait_idle

REP = "R07"  # a rep of the demo whose territory no overlay or pin touches (checked below)
REGION_PATHS = "path.leaflet-interactive:not(.tm-acct):not(.tm-home)"


@pytest.fixture(scope="module")
def truth(e2e_built, tmp_path_factory) -> dict:
    """The rep's regions and accounts from the demo's tables, in plain SQL (not terrmap's code)."""
    copy = tmp_path_factory.mktemp("e2e-rep") / "copy.duckdb"
    shutil.copy(e2e_built, copy)
    con = duckdb.connect(str(copy), read_only=True)
    try:
        plan_id = con.execute("SELECT plan_id FROM plans WHERE published").fetchall()[0][0]
        terr = [r[0] for r in con.execute("SELECT territory_id FROM territories WHERE plan_id = ? AND rep_id = ?",
                                          [plan_id, REP]).fetchall()]
        touched = con.execute(
            "SELECT count(*) FROM account_pins WHERE plan_id = $p AND territory_id IN (SELECT unnest($t)) "
            "UNION ALL SELECT count(*) FROM overlays WHERE plan_id = $p AND (rep_id = $r OR territories IS NULL "
            "OR len(list_intersect(territories, $t)) > 0)",
            {"p": plan_id, "t": terr, "r": REP}).fetchall()
        assert [t[0] for t in touched] == [0, 0], "pick a rep without pins and overlays for this test"
        regions = {r[0] for r in con.execute(
            "SELECT region_id FROM plan_assignments WHERE plan_id = ? AND territory_id IN (SELECT unnest(?))",
            [plan_id, terr]).fetchall()}
        pinned_away = {r[0] for r in con.execute("SELECT lead_id FROM account_pins WHERE plan_id = ?",
                                                 [plan_id]).fetchall()}
        accounts = con.execute(
            "SELECT lead_id, name, score FROM leads WHERE status = 'open' AND zip IN (SELECT unnest(?)) "
            "ORDER BY score DESC, score * expected_value DESC, lead_id",
            [sorted(regions)]).df()
        accounts = accounts[~accounts["lead_id"].isin(pinned_away)]
        evil_rep = con.execute("SELECT rep_id FROM territories WHERE plan_id = ? AND name = ?",
                               [plan_id, EVIL]).fetchall()[0][0]
    finally:
        con.close()
    return {"regions": regions, "accounts": accounts, "evil_rep": evil_rep}


def _open(page, url: str):
    page.goto(url)
    frame = page.frame_locator(MAP_IFRAME)
    frame.locator("path.leaflet-interactive").first.wait_for(state="attached", timeout=60_000)
    return frame


def _wait_count(page, selector: str, n: int, timeout: float = 30_000) -> None:
    page.wait_for_function(
        # Exactly one map: while Streamlit replaces a redrawn map, the old iframe and the new one coexist.
        f"""() => {{ const fs = document.querySelectorAll('{MAP_IFRAME}'), f = fs[0];
                    return fs.length === 1 && f.contentDocument &&
                           f.contentDocument.querySelectorAll('{selector}').length === {n}; }}""",
        timeout=timeout,
    )


def test_rep_deep_link_shows_only_that_reps_footprint_and_accounts(page, app_url, truth):
    frame = _open(page, f"{app_url}/rep?rep={REP}")
    n_regions = len(truth["regions"])
    _wait_count(page, REGION_PATHS, n_regions)
    assert frame.locator(REGION_PATHS).count() == n_regions
    # the route: one polyline from home through the default 10 stops, numbered, and the total distance
    assert frame.locator("path.tm-route").count() == 1
    assert frame.locator("path.tm-stop").count() == 10
    labels = sorted(int(t) for t in frame.locator(".tm-stop-label").all_inner_texts())
    assert labels == list(range(1, 11))
    assert frame.locator("path.tm-home").count() == 1
    note = frame.locator(".tm-note").inner_text()
    assert "Route: 10 stops" in note and "km" in note
    page.get_by_text("10 stops").first.wait_for()

    # KPI cards, each beside the peer median
    kpis = page.locator(".st-key-tm-rep-kpis [data-testid='stMetric']")
    assert kpis.count() == 8
    assert "vs peers" in " ".join(kpis.all_inner_texts())
    assert f"{n_regions:,}" in kpis.nth(6).inner_text()

    settled_screenshot(page, ARTIFACTS / "rep_view.png")

    # the call list holds exactly the rep's open accounts, in the order of likelihood to buy
    with page.expect_download() as info:
        page.get_by_role("button", name="Download call list (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8"))))
    expected = truth["accounts"]
    assert [r["lead_id"] for r in rows] == expected["lead_id"].tolist()
    assert rows[0]["account"] == expected["name"].iloc[0].lstrip("=+-@")  # demo names need no guard
    # the table on the page shows the same ranking
    table = page.locator('[data-testid="stDataFrame"]').first
    table.wait_for()
    text = table.text_content() or ""  # the grid draws on a canvas; its accessible copy holds the text
    positions = [text.find(name) for name in expected["name"].head(5)]
    assert -1 not in positions and positions == sorted(positions), positions

    # more stops: the route is recomputed and redrawn
    slider = page.locator(".st-key-rep_stops input[type='range']")
    slider.focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    _wait_count(page, "path.tm-stop", 15)
    assert "Route: 15 stops" in frame.locator(".tm-note").inner_text()

    # the URL keeps the rep, so the view can be bookmarked
    assert f"rep={REP}" in page.url


def test_rep_view_shows_names_as_text_and_picker_without_param(page, app_url, truth):
    frame = _open(page, f"{app_url}/rep?rep={truth['evil_rep']}")
    legend = frame.locator(".tm-legend")
    legend.wait_for()
    assert EVIL in legend.inner_text()
    assert frame.locator(".tm-legend script").count() == 0
    page.get_by_text(EVIL).first.wait_for()  # the page header lists the territory literally

    page.goto(f"{app_url}/rep")
    page.get_by_text("Choose a rep to see their footprint").wait_for()
    assert page.locator(MAP_IFRAME).count() == 0


def test_a_reps_bookmark_on_a_fresh_server_opens_without_page_not_found(browser, demo_db_path, tmp_path):
    """The first visit of a fresh server through a deep link (a rep's bookmark) shows the page, no
    "Page not found" dialog (Streamlit's legacy pages/ mode is off before the server starts)."""
    from tests.e2e_support import serve_app

    db = tmp_path / "fresh.duckdb"  # its own file: the shared server holds the e2e database's lock
    shutil.copy(demo_db_path, db)
    with serve_app(db, tmp_path / "fresh.log") as url:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        try:
            page.goto(f"{url}/rep?rep=R07")
            # (other tests edit the shared database's plans: the page itself, not R07's map, is the point here)
            page.get_by_role("heading", name="Rep view").wait_for(timeout=60_000)
            page.get_by_text("Database").first.wait_for(timeout=30_000)  # the sidebar: app.py's navigation ran
            wait_idle(page)  # the first run is over: a "Page not found" dialog would be up by now
            assert page.get_by_text("Page not found").count() == 0
        finally:
            context.close()
