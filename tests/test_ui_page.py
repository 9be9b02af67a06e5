"""The shared page preamble (terrmap.app.ui.page) run as a Streamlit script (AppTest, no browser)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _page_script():
    import streamlit as st

    from terrmap.app import ui

    ctx = ui.page("A page", "What it is for", needs_leads=st.query_params.get("needs") != "no")
    st.write(f"path={ctx.path}")
    st.write(f"stamp={ctx.stamp}")


def _run(monkeypatch, store, needs: str = "yes") -> AppTest:
    monkeypatch.setenv("TERRMAP_DB", str(store.path))
    at = AppTest.from_function(_page_script, default_timeout=60)
    at.query_params["needs"] = needs
    return at.run()


def test_page_shows_title_and_caption_and_hands_over_store_path_and_stamp(monkeypatch, demo_store):
    from terrmap.app import ui

    at = _run(monkeypatch, demo_store)
    assert not at.exception
    assert at.title[0].value == "A page"
    assert at.caption[0].value == "What it is for"
    shown = [m.value for m in at.markdown]
    assert f"path={demo_store.path.resolve()}" in shown
    assert f"stamp={ui.data_stamp(demo_store)}" in shown


def test_page_without_leads_stops_with_the_how_to_unless_it_needs_none(monkeypatch, empty_store):
    # (outside app.py's navigation the how-to's link to the import page cannot resolve: AppTest reports that)
    at = _run(monkeypatch, empty_store)
    assert "No leads yet" in at.info[0].value
    assert not any(m.value.startswith("path=") for m in at.markdown)
    at = _run(monkeypatch, empty_store, needs="no")
    assert not at.exception
    assert not at.info
    assert any(m.value.startswith("path=") for m in at.markdown)


def _plan_picker_script():
    import streamlit as st

    from terrmap.app import ui

    ctx = ui.page("Plans")
    plan = ui.plan_picker(ctx.store, in_url=True)
    st.write(f"plan={plan.name}")


def test_the_chosen_plan_is_in_the_url_and_a_link_opens_it(monkeypatch, demo_store):
    """Issue 14.13: the Map's plan is part of its URL (reload and bookmarks show the same plan)."""
    from terrmap.plan import get_plan
    from terrmap.plan.scenarios import clone_plan

    published = get_plan(demo_store)
    other = clone_plan(demo_store, published, "Second plan")
    monkeypatch.setenv("TERRMAP_DB", str(demo_store.path))
    at = AppTest.from_function(_plan_picker_script, default_timeout=60)
    at.query_params["plan"] = "Second plan"
    at.run()
    assert not at.exception and "plan=Second plan" in [m.value for m in at.markdown]
    at.selectbox[0].set_value(published.plan_id).run()
    assert "plan" not in at.query_params and f"plan={published.name}" in [m.value for m in at.markdown]
    at.selectbox[0].set_value(other.plan_id).run()
    assert at.query_params["plan"] in ("Second plan", ["Second plan"])  # AppTest keeps a list per key


def test_home_table_shows_a_dash_where_an_overlay_has_no_deviation(monkeypatch, demo_store):
    """Issue 14.13: the grid printed "None" in the overlay row's "vs. mean" (an overlay is no territory, so it has
    no deviation from the mean territory); the table's display values say "–" there and "+12%" elsewhere."""
    import pyarrow as pa

    from tests.e2e_support import ROOT

    monkeypatch.setenv("TERRMAP_DB", str(demo_store.path))
    at = AppTest.from_file(str(ROOT / "pages" / "home.py"), default_timeout=60).run()
    # outside app.py's navigation only the closing "Open the map" link fails
    assert all("Could not find page" in e.value for e in at.exception), [e.value for e in at.exception]
    arrow = at.dataframe[0].proto.arrow_data
    shown = pa.ipc.open_stream(arrow.styler.display_values).read_all().to_pandas()
    overlay = shown[shown["label"].str.endswith("(overlay)")]
    assert len(overlay) == 1 and overlay["deviation"].iloc[0] == "–"
    territories = shown[~shown.index.isin(overlay.index)]["deviation"]
    assert territories.str.fullmatch(r"[+-]\d+%").all(), territories.tolist()
