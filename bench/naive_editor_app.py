"""The Editor page's benchmark baselines, as a Streamlit script of their own (bench/bench_editor.py starts it).

``streamlit run bench/naive_editor_app.py -- --db PATH``, then ``/?plan=ID&area=TX&render=naive`` or
``render=naive-folium``: the Editor's workspace (toolbar, map, balance panel: the same widgets as
pages/editor.py, from terrmap.app.editor_panel) with a map that is rebuilt and re-sent on every change
(its iframe re-created) instead of drawn once and restyled through overlays:

* ``naive``: terrmap's own compact region layer (the same drawing code as the editor; only the update differs);
* ``naive-folium``: ``folium.GeoJson`` with a style function and a tooltip, as tutorials do it.

``bench/static`` links to the project's ``static/`` (Streamlit serves the folder beside the main script).
"""

import streamlit as st

from terrmap.app import editor_panel as panel
from terrmap.app import ui
from terrmap.app.editor_map import build_naive_editor_map
from terrmap.plan import get_plan

RENDERS = {
    "naive": panel.MapRender(rebuild_on_edit=True, note=" · *naive rendering (benchmark baseline)*"),
    "naive-folium": panel.MapRender(
        rebuild_on_edit=True, note=" · *naive-folium rendering (benchmark baseline)*",
        draw=lambda state, base: build_naive_editor_map(base["frame"], state.geo["shapes"], state.session.terr,
                                                        ui.static_base())),
}

st.set_page_config(page_title="terrmap · editor baseline", layout="wide")
ui.page_style()
ctx = ui.page()
render = RENDERS.get(st.query_params.get("render", "naive"))
plan = get_plan(ctx.store, st.query_params.get("plan"))
if render is None or plan is None:
    st.error("Open with ?plan=ID&area=ST&render=naive (or render=naive-folium).")
    st.stop()

st.title("Territory editor")
c_plan, c_area, c_name = st.columns([2.4, 4.2, 1.8], vertical_alignment="bottom")
c_plan.markdown(f"**Plan** {ui.md(plan.name)}  \n:gray[{ui.layer_label(plan.layer)}]")
with st.spinner("Opening the plan (the first time builds the map of neighbouring regions)…"):
    state = panel.editor_state(ctx, plan)
state_codes, area, visible = panel.area_picker(ctx, state, c_area)
c_name.text_input("Your name", key="ed_author", placeholder="for the change log")

panel.workspace(panel.EditorView(ctx, plan.plan_id, state_codes, area, visible, render))
