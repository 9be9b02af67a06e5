"""Editor: reassign regions on the map (click, rectangle, circle, lasso, county, state) with live balance.

The editing state is :class:`terrmap.plan.editor_state.EditorState`; the widgets (toolbar, map, balance
panel, dialogs) are in :mod:`terrmap.app.editor_panel`. The benchmark's baselines, which rebuild the whole
map on every change, are a separate script: bench/naive_editor_app.py.
"""

import streamlit as st

from terrmap.access import Action
from terrmap.app import auth, ui
from terrmap.app import editor_panel as panel
from terrmap.plan import list_plans

ctx = ui.page()
who = ui.require(Action.EDIT)

plans = list_plans(ctx.store)
if not plans:
    st.title("Territory editor")
    st.info("No plan to edit yet: build the demo database or create a plan on the **Optimizer** page.")
    st.stop()
panel.seed_plan_choice(plans)

st.title("Territory editor")
c_plan, c_area, c_name = st.columns([2.4, 4.2, 1.8], vertical_alignment="bottom")
plan = ui.plan_picker(ctx.store, c_plan)
if plan is None:
    st.stop()
with st.spinner("Opening the plan (the first time builds the map of neighbouring regions)…"):
    state = panel.editor_state(ctx, plan)
if len(plans) == 1:
    c_plan.markdown(f"**Plan** {ui.md(plan.name)}  \n:gray[{ui.layer_label(state.session.layer.key)}]")
state = panel.take_their_save(ctx, plan, state)

state_codes, area, visible = panel.area_picker(ctx, state, c_area)
auth.author_box(c_name, who, "ed_author", placeholder="for the change log",
                help_text="Saved with your edits in the plan's change log.")

panel.workspace(panel.EditorView(ctx, plan.plan_id, state_codes, area, visible))
