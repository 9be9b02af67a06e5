"""The Accounts & hierarchy page, the Home level selector and the Map coloured by a hierarchy level.

Page logic runs under Streamlit's AppTest on a private copy of the demo (fast, writes allowed); the
rendering (overlap report, map colours and legend) is checked in Chromium on the shared e2e server,
whose demo names territory 1 ``<script>alert(1)</script>`` (the page fixture fails on any dialog).
"""

from __future__ import annotations

import shutil

import pytest
from streamlit.testing.v1 import AppTest

from terrmap.data.store import Store
from terrmap.plan import accounts as acc
from terrmap.plan import get_plan
from terrmap.plan import hierarchy as hi
from tests.e2e_support import ARTIFACTS, EVIL, MAP_IFRAME, ROOT

# -- page logic (AppTest) -----------------------------------------------------------------------------------


@pytest.fixture
def app_db(demo_db_path, tmp_path, monkeypatch):
    path = tmp_path / "app.duckdb"
    shutil.copy(demo_db_path, path)
    monkeypatch.setenv("TERRMAP_DB", str(path))
    monkeypatch.syspath_prepend(str(ROOT))
    return path


def _run(script: str, **state) -> AppTest:
    at = AppTest.from_file(str(ROOT / script), default_timeout=120)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def _store(path) -> Store:
    from terrmap.data.store import open_store

    return open_store(path)  # the same process-wide Store the page uses


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def test_structure_page_edits_hierarchy_pins_and_overlays(app_db):
    at = _run("pages/structure.py")
    s = _store(app_db)
    plan = get_plan(s)
    # the overlap report lists the demo's multi-claimed accounts
    report = next(d for d in at.dataframe if "resolved_by" in d.value.columns).value
    assert set(report.lead_id) == set(acc.overlap_report(s, plan).lead_id) and len(report) > 0

    # add a Region under the first Division
    east = hi.nodes(s, plan.plan_id).query("name == 'East'").node_id.iloc[0]
    at.text_input(key="new_node_name").input("Mid-Atlantic")
    at.selectbox(key="new_node_parent").select(east)
    at.run()
    assert at.text_input(key=f"new_node_level_{east}").value == "Region"
    _button(at, "Add node").click()
    at.run()
    assert not at.exception
    assert "Mid-Atlantic" in hi.nodes(s, plan.plan_id).query("level == 'Region'").name.tolist()

    # a duplicate name is refused with a message, nothing written
    before = len(hi.nodes(s, plan.plan_id))
    at.text_input(key="new_node_name").input("mid-atlantic")
    at.selectbox(key="new_node_parent").select(east)
    _button(at, "Add node").click()
    at.run()
    assert any("two Region nodes are named" in e.value for e in at.error)
    assert len(hi.nodes(s, plan.plan_id)) == before

    # pin an account found by id
    lead = s.scalar("SELECT lead_id FROM leads ORDER BY lead_id LIMIT 1 OFFSET 5")
    at.text_input(key="pin_search").input(lead)
    at.run()
    at.selectbox(key="pin_lead").select(lead)
    at.selectbox(key="pin_territory").select(7)
    at.text_input(key="pin_reason").input("<b>board</b> decision")
    _button(at, "Pin account").click()
    at.run()
    pins = acc.list_pins(s, plan.plan_id).set_index("lead_id")
    assert pins.loc[lead, "territory_id"] == 7 and pins.loc[lead, "reason"] == "<b>board</b> decision"

    # an overlay without a rule is refused; with one it is saved and owns accounts
    at.text_input(key="ov_name_None").input("Healthcare team")
    _button(at, "Save overlay").click()
    at.run()
    assert any("at least one condition" in e.value for e in at.error)
    assert "Healthcare team" not in acc.list_overlays(s, plan.plan_id).name.tolist()
    at.multiselect(key="ov_industries_None").select("Healthcare")
    at.number_input(key="ov_priority_None").set_value(5)
    _button(at, "Save overlay").click()
    at.run()
    assert any("give it an owner" in e.value for e in at.error)  # issue 14.12: no ownerless accounts
    assert "Healthcare team" not in acc.list_overlays(s, plan.plan_id).name.tolist()
    at.selectbox(key="ov_rep_None").set_value("R02")
    _button(at, "Save overlay").click()
    at.run()
    assert not at.exception
    overlays = acc.list_overlays(s, plan.plan_id).set_index("name")
    assert overlays.loc["Healthcare team", "priority"] == 5 and overlays.loc["Healthcare team", "rep_id"] == "R02"
    owners = acc.account_owners(s, plan)
    owned = owners[(owners.owner_kind == "overlay") & (owners.owner_name == "Healthcare team")]
    assert len(owned) > 0 and (owned.industry == "Healthcare").all()


def test_home_rolls_up_by_level(app_db):
    at = _run("app.py", level="Division")  # through the navigation: Home is the default page
    s = _store(app_db)
    plan = get_plan(s)
    table = at.dataframe[0].value
    expected = hi.rollup(s, plan, "Division")
    assert sorted(table["label"]) == sorted(
        [f"{n} (overlay)" if k == "overlay" else n for k, n in zip(expected.kind, expected.name)])
    assert table["leads"].sum() == expected["leads"].sum()
    assert at.subheader[0].value == "Divisions"


# -- rendering (Chromium) -------------------------------------------------------------------------------------


def test_structure_page_shows_the_overlap_report(page, app_url):
    page.goto(app_url + "/structure")
    page.get_by_role("heading", name="Accounts & hierarchy").wait_for(timeout=60_000)
    page.get_by_role("tab", name="Overlap report").click()
    caption = page.get_by_text("accounts are claimed by more than one owner")
    caption.wait_for(timeout=30_000)
    assert int(caption.inner_text().split()[0].replace(",", "")) > 0
    panel = page.get_by_role("tabpanel", name="Overlap report")
    panel.locator('[data-testid="stDataFrame"]').wait_for()
    download = panel.locator('[data-testid="stDownloadButton"]')
    download.wait_for()
    assert "Download the overlap report (CSV)" in download.inner_text()
    page.get_by_role("tab", name="Hierarchy").click()
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "structure.png"), full_page=True)
    assert not page.recorder.dialogs


FILLS_JS = """() => {
  const f = document.querySelector('iframe[title="streamlit_folium.st_folium"]').contentDocument;
  return Array.from(f.querySelectorAll('path.leaflet-interactive'))
    .map(p => (p.getAttribute('fill') || '').toLowerCase()).filter(c => c && c !== 'none');
}"""
SWATCH_JS = """() => {
  const f = document.querySelector('iframe[title="streamlit_folium.st_folium"]').contentDocument;
  return Array.from(f.querySelectorAll('.tm-legend .tm-sw')).map(e => getComputedStyle(e).backgroundColor);
}"""


def _wait_map(page):
    page.wait_for_function(
        """() => { const f = document.querySelector('iframe[title="streamlit_folium.st_folium"]');
                   return f && f.contentDocument &&
                          f.contentDocument.querySelectorAll('path.leaflet-interactive').length > 200; }""",
        timeout=60_000,
    )


def _rgb(hex_color: str) -> str:
    h = hex_color.lstrip("#")
    return f"rgb({int(h[0:2], 16)}, {int(h[2:4], 16)}, {int(h[4:6], 16)})"


def test_map_colours_regions_by_hierarchy_level(page, app_url):
    page.goto(app_url + "/map")
    _wait_map(page)
    by_territory = set(page.evaluate(FILLS_JS))
    frame = page.frame_locator(MAP_IFRAME)
    assert EVIL in frame.locator(".tm-legend").inner_text()

    page.goto(app_url + "/map?color=level:Region")
    _wait_map(page)
    legend = frame.locator(".tm-legend")
    legend.wait_for()
    page.wait_for_function("() => document.querySelector('iframe[title=\"streamlit_folium.st_folium\"]')"
                           ".contentDocument.querySelector('.tm-legend .tm-title').textContent.startsWith('Regions (')",
                           timeout=30_000)
    text = legend.inner_text()
    for region in ("Northeast", "South", "Central", "West"):
        assert region in text
    fills = page.evaluate(FILLS_JS)
    by_region = set(fills)
    swatches = set(page.evaluate(SWATCH_JS))
    # four census regions (plus the grey of regions outside the hierarchy, if any) instead of 20 territories
    assert len(by_territory) >= 15 and 4 <= len(by_region) <= 5
    assert {_rgb(c) for c in by_region} <= swatches | {_rgb("#c8ccd2")}
    assert len(swatches) == 4
    page.screenshot(path=str(ARTIFACTS / "map_by_region.png"), full_page=True)
    assert not page.recorder.dialogs and not page.recorder.remote()
