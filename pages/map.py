"""Map: regions coloured by territory or by a measure, at any layer, for all the US or chosen states."""

import streamlit as st

from terrmap.access import Action
from terrmap.app import lookup_box, ui
from terrmap.app import structure as us
from terrmap.app.folium_protocol import show_map
from terrmap.app.map_data import MAX_REGIONS, STATE_NAMES, filter_states
from terrmap.app.maps import build_map, build_naive_map
from terrmap.data import queries
from terrmap.geo import parse_layer
from terrmap.measures import MEASURES, STAT_COLUMNS, fmt_int, fmt_money
from terrmap.plan import hierarchy as hi

MAP_HEIGHT = 660
COLOR_OPTIONS = ["territory", *STAT_COLUMNS]

s, path, stamp = ui.page("Territory map")
who = ui.require(Action.VIEW_ALL)

DEFAULTS = {"layer": ui.DEFAULT_MAP_LAYER, "color": "territory", "area": []}
ui.seed_from_url("layer", ui.layer_options(), DEFAULTS["layer"])

if queries.plan_count(s) > 1:
    c_plan, c_layer, c_color, c_area, c_tiles = st.columns([2, 2, 1.6, 3.4, 1.1], vertical_alignment="bottom")
    plan = ui.plan_picker(s, c_plan, in_url=True)
else:
    c_layer, c_color, c_area, c_tiles = st.columns([2.2, 1.6, 4, 1.3], vertical_alignment="bottom")
    plan = ui.plan_picker(s)
layer_key = c_layer.selectbox(
    "Regions", ui.layer_options(), format_func=ui.layer_label, key="layer", persist_state="session",
    help="Hexagons of the H3 grid (level 3 coarse … 9 fine) or ZIP codes. For fine layers, pick an area.",
)
# The hierarchy's levels above Territory ("level:Region", ...) colour regions by their ancestor node.
level_options = [us.LEVEL_PREFIX + lv for lv in hi.levels(s, plan.plan_id)[1:]] if plan is not None else []
color_options = [COLOR_OPTIONS[0], *level_options, *COLOR_OPTIONS[1:]]
ui.seed_from_url("color", color_options, DEFAULTS["color"])
if st.session_state.get("color") not in color_options:  # a level of another plan
    st.session_state["color"] = DEFAULTS["color"]


def color_label(option: str) -> str:
    if option == "territory":
        return "Territory"
    if option.startswith(us.LEVEL_PREFIX):
        return option[len(us.LEVEL_PREFIX):]
    return MEASURES[option].label


color_by = c_color.selectbox(
    "Colour by", color_options, format_func=color_label, key="color", persist_state="session",
    help="The plan's territory colours, a level of the territory hierarchy (regions take their region's or "
         "division's colour), or a measure in quantile classes (each class holds about as many regions).",
)
level = color_by[len(us.LEVEL_PREFIX):] if color_by.startswith(us.LEVEL_PREFIX) else None
all_states = ui.cached_state_codes(path, layer_key, stamp)
ui.seed_from_url("area", all_states, DEFAULTS["area"], multi=True)
if any(c not in all_states for c in st.session_state.get("area") or []):  # kept from another layer
    st.session_state["area"] = [c for c in st.session_state["area"] if c in all_states]
states = c_area.multiselect(
    "Area", all_states, format_func=lambda c: STATE_NAMES.get(c, c), key="area", persist_state="session",
    placeholder="All of the US (or choose states)", wrap=True,
)
tiles = c_tiles.toggle(
    "Street map", key="tiles", persist_state="session",
    help="Show OpenStreetMap tiles under the regions. **Needs internet**; off, the map works offline.",
)
ui.sync_url({"layer": layer_key, "color": color_by, "area": states}, DEFAULTS)
# Which territory owns a ZIP or a point: the same answer as `python -m terrmap lookup`, outlined on the map.
found = lookup_box.search_box(s, plan, who) if plan is not None else None

frame = filter_states(ui.region_frame(s, layer_key, plan, stamp), states)
n = len(frame)
area = "all of the US" if not states else ", ".join(STATE_NAMES.get(c, c) for c in states)

if n == 0:
    st.info(f"No leads in {area} on this layer.")
    st.stop()
if n > MAX_REGIONS:
    st.warning(
        f"**{fmt_int(n)} regions** with leads in {area} — too many to draw at once "
        f"(the map shows at most {fmt_int(MAX_REGIONS)}). Choose fewer states under *Area*, or a coarser "
        "layer under *Regions*.",
        icon=":material/zoom_out_map:",
    )
    st.stop()

try:
    if level is not None:
        with st.spinner("Drawing the map…"):
            data = us.cached_level_map_data(path, layer_key, plan.plan_id, plan.version, level, stamp,
                                            us.structure_stamp(s, plan.plan_id), tuple(states))
        m = build_map(data, tiles=tiles, outlines=ui.state_outlines(), static_base=ui.static_base(),
                      fit="all" if states else "core")
    elif st.query_params.get("render") == "naive":  # benchmark baseline, see bench/bench_map_render.py
        terr = ui.cached_territories(path, plan.plan_id, plan.version) if plan else None
        m = build_naive_map(frame, parse_layer(layer_key).shapes(s, frame["region_id"].tolist()), terr, color_by,
                            ui.static_base())
    else:
        with st.spinner("Drawing the map…"):
            data = ui.cached_map_data(
                path, layer_key, plan.plan_id if plan else None, plan.version if plan else None, stamp,
                tuple(states), color_by,
            )
        m = build_map(data, tiles=tiles, outlines=ui.state_outlines(), static_base=ui.static_base(),
                      fit="all" if states else "core")
except NotImplementedError:
    st.info(f"Shapes of {ui.layer_label(layer_key)} are not available in this installation yet; choose hexagons.")
    st.stop()

leads = int(frame["leads"].sum())
plan_text = f"Plan **{ui.md(plan.name)}** · " if plan is not None else "No plan · "
by_state = ui.cached_leads_by_state(path, stamp)
note = ui.border_note(leads, sum(by_state.get(c, 0) for c in states), area) if states else None
st.caption(
    f"{plan_text}{f'coloured by {ui.md(level)} · ' if level else ''}{fmt_int(n)} regions · "
    f"{fmt_int(leads)} leads · {fmt_money(frame['potential'].sum())} "
    f"potential in {area}. Hover a region for its numbers."
    + (f" {note}" if note else "")
    + (" Street map: needs internet." if tiles else "")
)
if found is not None:
    lookup_box.highlight(m, found)
show_map(m, key="territory_map", height=MAP_HEIGHT)


@st.fragment
def region_table() -> None:
    """The regions of the map as a table, on request (keeps the first paint of the map light)."""
    if not st.toggle("Show these regions as a table", key="show_table"):
        return
    top = frame.sort_values("potential", ascending=False)
    cols = ["region_id", "place", *STAT_COLUMNS]
    if plan is not None:
        terr = ui.cached_territories(path, plan.plan_id, plan.version)
        top = top.merge(terr[["territory_id", "name"]].rename(columns={"name": "territory"}), on="territory_id",
                        how="left")
        cols.insert(2, "territory")
    st.dataframe(
        top[cols].assign(avg_score=top["avg_score"] * 100),
        hide_index=True, width="stretch", height=360,
        column_config={
            "region_id": "Region", "place": "Place", "territory": "Territory",
            "leads": st.column_config.NumberColumn("Leads", format="localized"),
            "open_leads": st.column_config.NumberColumn("Open leads", format="localized"),
            "customers": st.column_config.NumberColumn("Customers", format="localized"),
            "won_revenue": st.column_config.NumberColumn("Won revenue", format="dollar"),
            "avg_score": st.column_config.NumberColumn("Avg score", format="%.1f%%"),
            "potential": st.column_config.NumberColumn("Potential", format="dollar"),
        },
    )


region_table()
