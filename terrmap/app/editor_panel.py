"""The Editor page's widgets (pages/editor.py): toolbar, map, balance panel (KPIs, chart, table), dialogs.

The domain lives in :class:`terrmap.plan.editor_state.EditorState` (one per database and plan, kept in
the Streamlit session); this module reads widget values, calls its methods and shows the result. The map
is drawn once per plan and area; after each gesture only an overlay travels (regions whose colour changed
since, the locked ones, the legend) and restyles the drawn polygons in place, so zoom and pan stay put.
Map and balance panel live in one fragment: one gesture = one fragment run. How the map is drawn is a
:class:`MapRender`: the benchmark's baselines (bench/naive_editor_app.py) rebuild it on every edit instead.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import altair as alt
import folium
import numpy as np
import pandas as pd
import streamlit as st

from terrmap.app import auth, ui
from terrmap.app import folium_protocol as fp
from terrmap.app.editor_map import (
    RegionLocator,
    build_editor_map,
    editor_overlay,
    editor_payload_script,
    overlay_feature_group,
)
from terrmap.app.geometry import default_decimals
from terrmap.app.html_safe import esc
from terrmap.app.map_colors import UNASSIGNED_COLOR, safe_color, territory_palette
from terrmap.app.map_data import MAX_REGIONS, STATE_NAMES, map_data
from terrmap.data.plans import rep_names
from terrmap.data.zip_groups import county_choices
from terrmap.measures import fmt_int, fmt_money, fmt_pct, fmt_value
from terrmap.optimize.explain import water_line
from terrmap.plan import PlanInfo, get_plan, palette_color
from terrmap.plan.editor import BALANCE_MEASURES
from terrmap.plan.editor_state import ERASER, EditorState
from terrmap.plan.gestures import MapReturn, decode
from terrmap.plan.metrics import METRIC_HELP

MAP_HEIGHT = 610
MAP_KEY = "editor_map"
DEFAULT_AREA_MAX = 2000  # regions of the default area (see EditorState.default_area)
SHORT_MEASURE = {"potential": "Potential", "leads": "Leads", "open_leads": "Open", "customers": "Customers",
                 "won_revenue": "Won $"}
STATUS_COLORS = {"within": "#2f9e44", "near": "#e8890c", "out": "#d6336c"}
STATUS_LABELS = {"within": "within tolerance", "near": "outside", "out": "far outside"}
STATES = "tm_editor_ui"
# Stable hooks for the browser tests and the benchmark: containers with a key carry the class st-key-<key>.
KPIS_KEY, TABLE_KEY = "tm-kpis", "tm-balance-table"


@dataclass(frozen=True)
class MapRender:
    """How the editor's map is drawn. terrmap draws the base map once per plan, area and epoch (its payload
    served as a script file) and restyles it through overlays; a baseline rebuilds it on every edit."""

    rebuild_on_edit: bool = False
    # Builds the map from the state and its base (None: terrmap's editor map).
    draw: Callable[[EditorState, dict], folium.Map] | None = None
    note: str = ""  # added to the map's caption


EDITOR_RENDER = MapRender()


@dataclass(frozen=True)
class EditorView:
    """What the workspace needs from the page: the store, the plan, the area shown, how to draw."""

    ctx: ui.PageContext
    plan_id: int
    state_codes: list[str]
    area: list[str]
    visible: list[str]
    render: MapRender = EDITOR_RENDER


# -- the state, per (database, plan) -----------------------------------------------------------------------

def editor_state(ctx: ui.PageContext, plan: PlanInfo | int) -> EditorState:
    """The editing state on ``plan``, bound to the planner's session (kept by :func:`ui.editor_session`)."""
    info = plan if isinstance(plan, PlanInfo) else get_plan(ctx.store, plan)
    session = ui.editor_session(ctx.store, info)
    states = st.session_state.setdefault(STATES, {})
    key = (ctx.path, info.plan_id)
    if key not in states:
        states[key] = EditorState(session)
    state = states[key]
    state.session = session
    return state


def reopened(ctx: ui.PageContext, plan_id: int):
    """The saved plan opened afresh (the session's unsaved edits dropped)."""
    return ui.editor_session(ctx.store, get_plan(ctx.store, plan_id), reload=True)


def take_their_save(ctx: ui.PageContext, plan: PlanInfo, state: EditorState) -> EditorState:
    """Someone saved this plan since it was opened: take it when nothing is pending here."""
    if (plan.version != state.session.info.version and not state.session.pending and not state.locks_changed
            and state.conflict is None):
        state.reset(reopened(ctx, plan.plan_id))
        state = editor_state(ctx, plan.plan_id)
    return state


def seed_plan_choice(plans: Sequence[PlanInfo]) -> None:
    """A plan chosen by "Save as" (or ?plan= on the first visit) becomes the picker's value before it is drawn."""
    if "ed_switch_plan" in st.session_state:
        st.session_state["plan_id"] = st.session_state.pop("ed_switch_plan")
    elif not st.session_state.get("ed_seeded_plan"):
        st.session_state["ed_seeded_plan"] = True
        wanted = st.query_params.get("plan")
        if wanted and any(str(p.plan_id) == wanted for p in plans):
            st.session_state["plan_id"] = int(wanted)


def area_picker(ctx: ui.PageContext, state: EditorState, where) -> tuple[list[str], list[str], list[str]]:
    """The states shown (``?area=`` first, else :meth:`EditorState.default_area`); returns
    (state codes of the plan, the chosen area, the regions in view)."""
    layer_key = state.session.layer.key
    groups = state.session.groups
    per_state = groups["state"].value_counts()
    state_codes = sorted(per_state.index, key=lambda c: STATE_NAMES.get(c, c))
    area_key = f"ed_area_{layer_key}"
    if area_key not in st.session_state or any(c not in per_state for c in st.session_state[area_key]):
        wanted = [c for part in st.query_params.get_all("area") for c in part.split(",") if c in per_state]
        st.session_state[area_key] = wanted or state.default_area(DEFAULT_AREA_MAX)
        # Paint with a territory on screen (unless the planner chose one on an earlier visit).
        st.session_state.setdefault(f"ed_active_{state.plan_id}", state.territory_on_screen(
            st.session_state[area_key]))
    area = where.multiselect(
        "Area", state_codes, key=area_key, placeholder="Choose states",
        format_func=lambda c: f"{STATE_NAMES.get(c, c)} ({per_state[c]:,})",
        help="The states shown for editing (regions per state in brackets). Fewer regions: a snappier map.",
        wrap=True,  # in a column the chips would scroll sideways, hiding the states chosen after the first few
    )
    visible = sorted(groups.loc[groups["state"].isin(area), "region_id"].tolist())
    return state_codes, area, visible


def _selected(plan_id: int) -> int | None:
    return st.session_state.get(f"ed_active_{plan_id}")


def _lock_mode(plan_id: int) -> bool:
    return bool(st.session_state.get(f"ed_lock_{plan_id}"))


def _measure() -> str:
    return st.session_state.get("ed_measure") or "potential"


def _author() -> str | None:
    return auth.author(ui.viewer(), "ed_author")


# -- callbacks (run before the rerun they cause) ----------------------------------------------------------------

def on_map_change(ctx: ui.PageContext, plan_id: int) -> None:
    """A click or a finished drawing on the map (st_folium's on_change; runs before the fragment)."""
    state = editor_state(ctx, plan_id)
    value = st.session_state.get(MAP_KEY) or {}
    if state.base is None or not isinstance(value, dict):
        return
    ret = MapReturn(clicked=value.get(fp.LAST_CLICKED), click_count=value.get(fp.LAST_OBJECT_CLICKED_COUNT),
                    drawing=value.get(fp.LAST_ACTIVE_DRAWING), circle_radius_km=value.get(fp.LAST_CIRCLE_RADIUS))
    locator = state.geo["locator"] if state.geo else None
    gesture, state.seen = decode(ret, state.seen, state.base["key"],
                                 lambda lat, lng: locator.locate(lat, lng) if locator else None)
    if gesture is not None:
        state.apply_gesture(gesture, state.base["visible"], _selected(plan_id), _lock_mode(plan_id))


def do_undo(ctx: ui.PageContext, plan_id: int) -> None:
    editor_state(ctx, plan_id).undo()


def do_redo(ctx: ui.PageContext, plan_id: int) -> None:
    editor_state(ctx, plan_id).redo()


def do_group(ctx: ui.PageContext, plan_id: int, kind: str) -> None:
    code = st.session_state.get(f"ed_grp_state_{plan_id}" if kind == "state" else f"ed_grp_county_{plan_id}")
    editor_state(ctx, plan_id).apply_to_group(kind, code, _selected(plan_id), _lock_mode(plan_id))


def do_hint_pick(ctx: ui.PageContext, plan_id: int, measure: str) -> None:
    key = f"ed_hint_pick_{plan_id}"
    k = st.session_state.get(key)
    st.session_state[key] = None  # a one-shot choice
    if k is not None:
        editor_state(ctx, plan_id).apply_hint(int(k) - 1, measure)


def do_save(ctx: ui.PageContext, plan_id: int) -> None:
    if editor_state(ctx, plan_id).save(author=_author()):
        ui.clear_caches()


def do_save_as(ctx: ui.PageContext, plan_id: int) -> None:
    new_id = editor_state(ctx, plan_id).save_as(st.session_state.get(f"ed_saveas_{plan_id}"), author=_author())
    if new_id is not None:
        ui.clear_caches()
        st.session_state["ed_switch_plan"] = new_id
        st.session_state["ed_app_rerun"] = True


def do_discard(ctx: ui.PageContext, plan_id: int) -> None:
    editor_state(ctx, plan_id).discard(reopened(ctx, plan_id))


def do_reload_theirs(ctx: ui.PageContext, plan_id: int) -> None:
    editor_state(ctx, plan_id).reload_theirs(reopened(ctx, plan_id))


def do_merge(ctx: ui.PageContext, plan_id: int) -> None:
    if editor_state(ctx, plan_id).merge(author=_author()):
        ui.clear_caches()


def do_update_territory(ctx: ui.PageContext, plan_id: int, tid: int, measure: str) -> None:
    g = st.session_state.get
    editor_state(ctx, plan_id).update_territory(
        tid, measure, name=g(f"ed_tname_{plan_id}_{tid}"), color=g(f"ed_tcolor_{plan_id}_{tid}"),
        rep_id=g(f"ed_trep_{plan_id}_{tid}") or None, tolerance=(g(f"ed_ttol_{plan_id}_{tid}") or 10) / 100,
        tolerance_for_all=bool(g(f"ed_ttol_all_{plan_id}_{tid}")), target=g(f"ed_ttarget_{plan_id}_{tid}"))


def do_add_territory(ctx: ui.PageContext, plan_id: int) -> None:
    g = st.session_state.get
    tid = editor_state(ctx, plan_id).add_territory(g(f"ed_new_name_{plan_id}"), g(f"ed_new_color_{plan_id}"),
                                                   g(f"ed_new_rep_{plan_id}"))
    if tid is not None:
        st.session_state[f"ed_active_{plan_id}"] = tid


def do_delete_territory(ctx: ui.PageContext, plan_id: int, tid: int) -> None:
    editor_state(ctx, plan_id).delete_territory(tid)
    st.session_state.pop(f"ed_active_{plan_id}", None)


# -- the base map and its overlay ----------------------------------------------------------------------------

def ensure_geo(ctx: ui.PageContext, state: EditorState, visible: list[str], render: MapRender) -> dict:
    """Shapes and the click locator of the area (kept while the area stays)."""
    ses = state.session
    key = (ses.layer.key, hash(tuple(visible)))
    geo = state.geo
    if geo is None or geo["key"] != key:
        shapes = ses.layer.shapes(ctx.store, visible)
        shapes = {r: g for r, g in shapes.items() if g.get("type") in ("Polygon", "MultiPolygon")}
        kept = [r for r in visible if r in shapes]
        geo = {"key": key, "shapes": shapes if render.rebuild_on_edit else None, "kept": kept,  # only baselines redraw
               "locator": RegionLocator(ses.layer.key, kept, shapes), "first_shapes": shapes}
        state.geo = geo
    return geo


def ensure_base(ctx: ui.PageContext, state: EditorState, visible: list[str], render: MapRender) -> dict:
    """The drawn map's data: built when plan, area or epoch change (a baseline: on every change)."""
    ses = state.session
    key = (ses.info.plan_id, ses.layer.key, hash(tuple(visible)), state.epoch,
           state.rev if render.rebuild_on_edit else 0)
    base = state.base
    if base is not None and base["key"] == key:
        return base
    geo = ensure_geo(ctx, state, visible, render)
    kept = geo["kept"]
    shapes = geo["shapes"] or geo.pop("first_shapes", None) or ses.layer.shapes(ctx.store, kept)
    places = ui.cached_places(ctx.path, ses.layer.key, ctx.stamp)
    frame = state.region_frame(kept, places)
    data = map_data(frame, shapes, ses.terr, "territory",
                    region_label="ZIP" if ses.layer.key == "zip" else "H3 cell",
                    decimals=default_decimals(ses.layer.key))
    rows = ses.region_indices(kept)
    _, _, colors = territory_palette(ses.terr)
    pal = np.array(colors + [UNASSIGNED_COLOR], dtype=object)
    terr = ses.plan.assignment[rows].copy()
    base = {"key": key, "data": data, "rows": rows, "terr": terr,
            "colors": pal[np.where(terr >= 0, terr, len(colors))], "visible": kept, "script": None,
            "frame": frame if render.rebuild_on_edit else None}
    if not render.rebuild_on_edit:
        base["payload_key"], base["script"] = editor_payload_script(data, ui.state_outlines())
    state.base = base
    return base


def show_map(view: EditorView, state: EditorState, base: dict) -> None:
    if view.render.draw is not None:
        m = view.render.draw(state, base)
    else:
        url = ui.serve_script(base["script"]) if base.get("script") else None
        m = build_editor_map(base["data"], outlines=ui.state_outlines(), static_base=ui.static_base(),
                             payload_url=url, payload_key=base.get("payload_key") if url else None)
    ses = state.session
    overlay = editor_overlay(base["rows"], base["terr"], base["colors"], ses.plan.assignment,
                             ses.plan.locked, ses.terr, state.rev)
    fp.show_map(m, key=MAP_KEY, height=MAP_HEIGHT, returned_objects=fp.EDITOR_RETURNED,
                feature_group_to_add=overlay_feature_group(overlay),
                on_change=partial(on_map_change, view.ctx, view.plan_id))


# -- the balance panel -----------------------------------------------------------------------------------------

def status_of(dev: float, tol: float) -> str:
    if not np.isfinite(dev) or abs(dev) <= tol + 1e-12:
        return "within"
    return "near" if abs(dev) <= 2 * tol else "out"


# Streamlit fits the whole chart (legend, plot, axis and its title) into the height asked for: the rows get what
# the frame leaves, so the frame is added to the rows' height rather than taken out of it.
CHART_ROW_PX, CHART_FRAME_PX = 21, 115


@st.cache_resource(max_entries=64, show_spinner=False)
def chart_spec(measure: str, rows: int, span: float) -> dict:
    """The balance chart's Vega-Lite spec without data (built with Altair once per shape; each edit
    only sends new rows): bars of deviation per territory coloured by status, the tolerance band
    shaded, the zero line, the territory colour as a square at the left."""
    sample = pd.DataFrame({"name": ["a"], "deviation": [0.0], "lo": [-0.1], "hi": [0.1], "color": ["#000000"],
                           "status_label": [STATUS_LABELS["within"]], "label": ["+0%"]})
    pad = span * 0.2
    x = alt.X("deviation:Q", title=f"Deviation from target · {BALANCE_MEASURES[measure].lower()}",
              axis=alt.Axis(format="+%", grid=True, tickCount=7, labelFontSize=11, titleFontSize=11,
                            titleFontWeight="normal", titleColor="#6b7280"),
              scale=alt.Scale(domain=[-span - pad, span + pad], nice=False))
    y = alt.Y("name:N", title=None, sort=None,
              axis=alt.Axis(labelLimit=120, ticks=False, domain=False, labelFontSize=11.5, labelPadding=6,
                            labelFlush=False,  # flush, the first territory's label sits above its bar
                            labelOverlap=False))
    c = alt.Chart(sample)
    band = c.mark_bar(color="#e7ecf2", height={"band": 0.94}).encode(x=alt.X("lo:Q"), x2="hi:Q", y=y)
    bars = c.mark_bar(height={"band": 0.6}, cornerRadius=2).encode(
        x=x, y=y,
        color=alt.Color("status_label:N", title=None,
                        scale=alt.Scale(domain=list(STATUS_LABELS.values()), range=list(STATUS_COLORS.values())),
                        legend=alt.Legend(orient="top", direction="horizontal", symbolType="square",
                                          labelFontSize=11, symbolSize=90)),
        tooltip=[alt.Tooltip("name:N", title="Territory"),
                 alt.Tooltip("deviation:Q", format="+.1%", title="Deviation"),
                 alt.Tooltip("hi:Q", format=".0%", title="Tolerance ±")],
    )
    zero = c.mark_rule(color="#374151", strokeWidth=1.3).encode(x=alt.datum(0))
    swatch = c.mark_square(size=110, opacity=1).encode(
        x=alt.datum(-span - pad * 0.72), y=y, color=alt.Color("color:N", scale=None, legend=None))
    pos = c.transform_filter("datum.deviation >= 0").mark_text(fontSize=10.5, dx=4, align="left",
                                                               color="#374151").encode(x="deviation:Q", y=y,
                                                                                       text="label:N")
    neg = c.transform_filter("datum.deviation < 0").mark_text(fontSize=10.5, dx=-4, align="right",
                                                              color="#374151").encode(x="deviation:Q", y=y,
                                                                                      text="label:N")
    chart = (alt.layer(band, bars, zero, swatch, pos, neg).resolve_scale(color="independent")
             .properties(height=CHART_ROW_PX * rows + CHART_FRAME_PX).configure_view(strokeWidth=0))
    spec = chart.to_dict()
    spec.pop("data", None)
    spec.pop("datasets", None)
    return spec


def balance_chart(table: pd.DataFrame, measure: str) -> None:
    tol = table["tolerance"].to_numpy(dtype=float)
    dev = table["deviation"].to_numpy(dtype=float)
    data = pd.DataFrame({
        "name": table["territory"].astype(str).to_numpy(), "deviation": dev, "lo": -tol, "hi": tol,
        "color": [safe_color(c) for c in table["color"]],
        "status_label": [STATUS_LABELS[status_of(d, t)] for d, t in zip(dev, tol)],
        "label": [f"{d:+.0%}" for d in dev],
    })
    span = max(float(np.nanmax(np.abs(dev))) if len(dev) else 0.0, float(tol.max()) * 2 if len(tol) else 0.2, 0.2)
    span = float(np.ceil(span * 4) / 4)  # in steps of 25 points: the spec is reused while the data move
    st.vega_lite_chart(data, copy.deepcopy(chart_spec(measure, len(data), span)), width="stretch")


def _points(d: float) -> str:
    return f"{d * 100:+.1f} pts"


def _three_decimals(d: float) -> str:
    return f"{d:+.3f}"


def _signed_int(d: float) -> str:
    return f"{int(d):+,d}"


_UNCHANGED = ("+0", "-0", "+0.0 pts", "-0.0 pts", "+0.000", "-0.000")

# (summary key, label, value format, delta format, lower is better, help)
KPIS = [
    ("max_abs_deviation", "Max deviation", lambda v: f"{v:.0%}", _points, True,
     METRIC_HELP["max_abs_deviation"]),
    ("cv", "Spread (CV)", lambda v: f"{v:.2f}", _three_decimals, True,
     METRIC_HELP["cv"]),
    ("unassigned", "Unassigned", fmt_int, _signed_int, True, METRIC_HELP["unassigned"]),
    ("non_contiguous", "In pieces", fmt_int, _signed_int, True,
     METRIC_HELP["non_contiguous"] + " A territory joined only across water is listed under the tiles as in "
     "pieces by water, not counted here."),
    ("mean_polsby_popper", "Compactness", lambda v: f"{v:.3f}", _three_decimals, False,
     METRIC_HELP["mean_polsby_popper"]),
    ("cut_edge_share", "Cut edges", lambda v: f"{v:.1%}", _points, True,
     METRIC_HELP["cut_edge_share"]),
]


def kpi_tiles(state: EditorState, measure: str, table: pd.DataFrame) -> None:
    """Plan-level metrics with their change since the last save."""
    cur, old = state.summary(measure), state.saved_summary(measure)
    with st.container(key=KPIS_KEY, gap="small"):
        # Two per row: in the panel's width three tiles cut their labels short ("Max devia…").
        for first in range(0, len(KPIS), 2):
            for col, (key, label, fmt, fmt_delta, lower_is_better, help_text) in zip(
                    st.columns(2, gap="small"), KPIS[first:first + 2]):
                d = cur[key] - old[key]
                unchanged = abs(d) < 1e-9 or fmt_delta(d) in _UNCHANGED
                col.metric(label, fmt(cur[key]), "= saved" if unchanged else fmt_delta(d),
                           delta_color="off" if unchanged else "inverse" if lower_is_better else "normal",
                           delta_arrow="off" if unchanged else "auto", border=True,
                           help=help_text + " Below: the change since the last save.")
        pieces = table[table["pieces"] > 1]
        if len(pieces):
            st.caption("In several pieces: " + ", ".join(f"{ui.md(r.territory)} ({int(r.pieces)})"
                                                         for r in pieces.itertuples()))
        water = water_line(state.session.water_report())
        if water:
            st.caption(ui.md(water), help="Territories whose land is in N pieces that only a crossing of water "
                                          "(an island, a bay, a lake) joins: the shortest crossing, between the "
                                          "centres of the two regions it links.")


def balance_frame(table: pd.DataFrame, measure: str) -> pd.DataFrame:
    """The balance table as people read it: one row per territory, numbers formatted by the registry."""
    def f(v):
        return fmt_value(measure, v)

    measure_label = BALANCE_MEASURES[measure].replace("Revenue potential", "Potential")
    out = pd.DataFrame({
        " ": "■",
        "Territory": table["territory"].astype(str).to_numpy(),
        "Deviation": [f"{d:+.1%}" for d in table["deviation"]],
        measure_label: [f(v) for v in table[measure]],
        "Δ since save": ["–" if abs(c) < 0.5 else ("+" if c > 0 else "") + f(c) for c in table["change_since_save"]],
        "Regions": [fmt_int(v) for v in table["regions"]],  # up front: every move changes it
        "Target": [f"{f(t)} ±{tol:.0%}" for t, tol in zip(table["target"], table["tolerance"])],
        "Leads": [fmt_int(v) for v in table["leads"]],
        "Avg score": [fmt_pct(v, 1) for v in table["avg_score"]],
    })
    if measure != "potential":
        out["Potential"] = [fmt_money(v) for v in table["potential"]]
    out["Customers"] = [fmt_int(v) for v in table["customers"]]
    out["Pieces"] = [fmt_int(v) for v in table["pieces"]]
    out["Rep"] = [r if isinstance(r, str) else "–" for r in table["rep"]]
    return out


def balance_table(table: pd.DataFrame, measure: str) -> None:
    """The per-territory table: deviation coloured by status, the territory's colour as a square."""
    frame = balance_frame(table, measure)
    status = [status_of(d, t) for d, t in zip(table["deviation"], table["tolerance"])]
    colors = [safe_color(c) for c in table["color"]]
    pieces = table["pieces"].to_numpy()

    def style(df: pd.DataFrame) -> pd.DataFrame:
        css = pd.DataFrame("", index=df.index, columns=df.columns)
        css[" "] = [f"color: {c}" for c in colors]
        css["Deviation"] = [f"color: {STATUS_COLORS[s]}" + ("" if s == "within" else
                                                           f"; background-color: {STATUS_COLORS[s]}1f")
                            for s in status]
        css["Pieces"] = ["color: #d6336c" if p > 1 else "" for p in pieces]
        return css

    right = st.column_config.TextColumn(alignment="right", width="small")
    config = {c: right for c in frame.columns if c not in (" ", "Territory", "Rep")}
    config[" "] = st.column_config.TextColumn(" ", width=28, pinned=True)
    config["Territory"] = st.column_config.TextColumn("Territory", width=130, pinned=True)
    with st.container(key=TABLE_KEY):
        st.dataframe(frame.style.apply(style, axis=None), hide_index=True, column_config=config,
                     height=35 * (len(frame) + 1) + 3 if len(frame) <= 12 else 420)


def hints_block(state: EditorState, view: EditorView, measure: str, in_view: set) -> None:
    """Rebalance hints as one list and one row of Apply buttons (few elements: cheap to resend)."""
    hints = state.hints(measure)
    items = []
    for k, hint in enumerate(hints, start=1):
        where = "" if hint.region_id in in_view else ' <span style="color:#9ca3af">(outside the area shown)</span>'
        items.append(f'<li><b>{k}.</b> {esc(hint.text)}{where}</li>')
    body = ("".join(items) if items else
            f'<li style="color:#6b7280">{esc(state.no_hint_reason(measure))}</li>')
    note = state.hint_scale_note(measure) if hints else None
    if note:
        body += f'<li style="color:#6b7280;margin-top:4px">{esc(note)}</li>'

    st.html('<div style="font-size:13px;line-height:1.45">'
            '<div style="font-weight:600;font-size:14px;margin-bottom:2px">Rebalance hints</div>'
            f'<ul style="list-style:none;padding-left:0;margin:0">{body}</ul></div>')
    if hints:
        st.pills("Apply hint", [str(k) for k in range(1, len(hints) + 1)], key=f"ed_hint_pick_{view.plan_id}",
                 format_func=lambda k: f"Apply {k}", on_change=do_hint_pick, args=(view.ctx, view.plan_id, measure),
                 label_visibility="collapsed", help="Make this move (undo reverts it).")


def balance_panel(state: EditorState, view: EditorView, measure: str) -> None:
    ses, ctx, plan_id = state.session, view.ctx, view.plan_id
    with st.container(horizontal=True, vertical_alignment="center", gap="small"):
        st.markdown("#### Balance", width="content")
        st.space("stretch")
        st.button("Save", type="primary", icon=":material/save:", on_click=do_save, args=(ctx, plan_id),
                  disabled=state.unsaved == 0, help="Save the plan (your name goes into the change log).")
        if st.button("", icon=":material/library_add:", key=f"ed_saveas_btn_{plan_id}",
                     help="Save as a new plan (a copy with your edits)."):
            save_as_dialog(ctx, plan_id)
        st.button("", icon=":material/restart_alt:", key=f"ed_discard_btn_{plan_id}", on_click=do_discard,
                  args=(ctx, plan_id), disabled=state.unsaved == 0,
                  help="Discard your unsaved edits (reload the saved plan).")
    st.segmented_control("Balance on", list(BALANCE_MEASURES), key="ed_measure", default="potential",
                         format_func=lambda m: SHORT_MEASURE[m], label_visibility="collapsed")
    msg = state.message or "Click or draw on the map to move regions; the numbers follow every move."
    st.markdown(
        f"{state.icon or ':material/info:'} **Edit {state.rev}** · {ui.md(msg)}  \n"
        f":gray[{ui.md(ses.info.name)} · version {ses.info.version} · {state.status_text()}]"
    )
    table = state.balance_table(measure)
    kpi_tiles(state, measure, table)
    balance_chart(table, measure)
    balance_table(table, measure)
    st.html(f'<div data-testid="tm-edit-rev" data-rev="{state.rev}" style="display:none">{state.rev}</div>')


# -- the workspace: toolbar, map, panel ---------------------------------------------------------------------------

def conflict_banner(state: EditorState, view: EditorView) -> None:
    conflict = state.conflict
    if conflict is None:
        return
    n = len(state.session.pending)
    with st.container(border=True):
        st.warning(
            f"**{ui.md(conflict.plan_name)} was saved by {ui.md(conflict.saver)}**"
            + (f" at {conflict.saved_at:%H:%M}" if conflict.saved_at is not None else "")
            + f" (version {conflict.current_version}; "
            f"you started from version {conflict.loaded_version}). Your {n:,} move"
            f"{'s are' if n != 1 else ' is'} not saved yet — nothing is lost. Choose:",
            icon=":material/group:",
        )
        b1, b2, _ = st.columns([1.3, 1.7, 3])
        b1.button("Reload theirs", icon=":material/download:", on_click=do_reload_theirs,
                  args=(view.ctx, view.plan_id), help="Discard your edits and load the version they saved.")
        b2.button("Merge mine into theirs", type="primary", icon=":material/merge:", on_click=do_merge,
                  args=(view.ctx, view.plan_id), help="Keep their changes and add yours; where you both moved the "
                                                      "same region, theirs is kept (listed afterwards). Then save.")


def toolbar(state: EditorState, view: EditorView) -> tuple[int, bool]:
    """Paint choice, territory buttons, lock mode, undo/redo; returns (the paint choice, lock mode)."""
    ses, plan_id = state.session, view.plan_id
    terr_ids = state.territory_ids()
    names = dict(zip(terr_ids, ses.terr["name"].astype(str)))
    reps = dict(zip(terr_ids, ses.terr["rep_name"] if "rep_name" in ses.terr else [None] * len(terr_ids)))
    colors = dict(zip(terr_ids, [safe_color(c) for c in ses.terr["color"]]))
    active_key, lock_key = f"ed_active_{plan_id}", f"ed_lock_{plan_id}"
    if st.session_state.get(active_key) not in [*terr_ids, ERASER]:
        st.session_state[active_key] = terr_ids[0] if terr_ids else ERASER
    p = ses.plan
    with st.container(horizontal=True, vertical_alignment="bottom", gap="small"):
        active = st.selectbox(
            "Paint with", [*terr_ids, ERASER], key=active_key, width=250,
            format_func=lambda t: "⌫  Unassign (eraser)" if t == ERASER else
            f"{names[t]}" + (f" · {reps[t]}" if isinstance(reps.get(t), str) else ""),
            help="Clicks, drawn shapes and the state/county buttons move regions into this territory.",
        )
        sw = UNASSIGNED_COLOR if active == ERASER else colors.get(active, UNASSIGNED_COLOR)
        st.html(f'<div title="colour of the territory you paint with" style="width:38px;height:38px;'
                f'border-radius:8px;background:{sw};border:1px solid rgba(0,0,0,.18)"></div>', width=40)
        if st.button("", icon=":material/edit:", key=f"ed_edit_btn_{plan_id}", disabled=active == ERASER,
                     help="Edit this territory: name, colour, rep, target, tolerance; or delete it."):
            edit_dialog(view.ctx, plan_id, active)
        if st.button("", icon=":material/add:", key=f"ed_new_btn_{plan_id}", help="Create a new territory."):
            new_dialog(view.ctx, plan_id)
        lock_mode = st.toggle("Lock mode", key=lock_key,
                              help="Clicks and drawn shapes lock regions instead of moving them (or unlock "
                                   "them, if all are locked). Locked regions (dark dashed outline) never move.")
        st.button("Undo", icon=":material/undo:", on_click=do_undo, args=(view.ctx, plan_id),
                  disabled=not p.undo_stack, shortcut="Ctrl+Z",
                  help=f"Undo the last move ({len(p.undo_stack)} steps available).")
        st.button("Redo", icon=":material/redo:", on_click=do_redo, args=(view.ctx, plan_id),
                  disabled=not p.redo_stack, shortcut="Ctrl+Shift+Z", help=f"Redo ({len(p.redo_stack)} available).")
    return active, lock_mode


@st.fragment
def workspace(view: EditorView) -> None:
    """Toolbar, map and balance panel: every gesture reruns only this."""
    state = editor_state(view.ctx, view.plan_id)
    if st.session_state.pop("ed_app_rerun", False):
        st.rerun(scope="app")
    measure = _measure()
    state.sync_targets(measure)
    conflict_banner(state, view)
    active, lock_mode = toolbar(state, view)
    ses, visible = state.session, view.visible
    left, right = st.columns([3, 2.3], gap="medium")
    with left:
        if not visible:
            st.info("Choose one or more states under **Area** to edit.", icon=":material/map:")
        elif len(visible) > MAX_REGIONS:
            st.warning(f"**{len(visible):,} regions** in this area: too many to draw at once (at most "
                       f"{MAX_REGIONS:,}). Choose fewer states.", icon=":material/zoom_out_map:")
        else:
            base = ensure_base(view.ctx, state, visible, view.render)
            show_map(view, state, base)
            names = dict(zip(state.territory_ids(), ses.terr["name"].astype(str)))
            mode = "**lock or unlock** it" if lock_mode else (
                "**unassign** it" if active == ERASER else f"move it to **{ui.md(names.get(active, ''))}**")
            st.caption(
                f"Click a region to {mode}. Draw a rectangle, circle or polygon (tools at the top left) to do the "
                f"same for every region whose centre is inside. {len(base['visible']):,} regions in view · "
                f"{ui.layer_label(ses.layer.key)}." + view.render.note
            )
        if st.button("Assign a whole state or county…", icon=":material/select_all:",
                     key=f"ed_grp_btn_{view.plan_id}"):
            group_dialog(view)
    with right:
        balance_panel(state, view, measure)
    # The hints (articulation points of the territories out of tolerance: 0.1 s on a complete H3 level-6
    # plan of a large state) come after the balance panel, so the numbers of an edit do not wait for them.
    with left:
        hints_block(state, view, measure, set(visible))


# -- dialogs --------------------------------------------------------------------------------------------------

@st.cache_data(ttl=60, show_spinner=False)
def rep_choices(path: str, stamp: str) -> dict[str, str]:
    return {r: f"{n} ({r})" for r, n in rep_names(ui._store(path))}


@st.dialog("Assign a whole state or county", width="medium")
def group_dialog(view: EditorView) -> None:
    plan_id, state_codes, area = view.plan_id, view.state_codes, view.area
    state = editor_state(view.ctx, plan_id)
    active = state.active_territory(_selected(plan_id))
    what = "lock or unlock" if _lock_mode(plan_id) else (
        f"move into **{ui.md(state.session.territory_name(active))}**" if active is not None else "unassign")
    st.caption(f"Does what a click does, for every region of a county or state: {what}.")
    st_key, co_key = f"ed_grp_state_{plan_id}", f"ed_grp_county_{plan_id}"
    if st.session_state.get(st_key) not in state_codes:
        st.session_state[st_key] = area[0] if area else (state_codes[0] if state_codes else None)
    code = st.selectbox("State", state_codes, key=st_key, format_func=lambda c: STATE_NAMES.get(c, c))
    counties = county_choices(view.ctx.store, [code]) if code else pd.DataFrame(columns=["county_fips", "county"])
    fips = counties["county_fips"].tolist()
    label = dict(zip(fips, counties["county"].fillna("?").astype(str)))
    if st.session_state.get(co_key) not in fips:
        st.session_state[co_key] = fips[0] if fips else None
    st.selectbox("County", fips, key=co_key, format_func=lambda f: f"{label.get(f, f)} ({f})")
    c1, c2 = st.columns(2)
    if c1.button("Apply to the county", type="primary", disabled=not fips, width="stretch"):
        do_group(view.ctx, plan_id, "county")
        st.rerun()
    if c2.button("Apply to the whole state", disabled=not code, width="stretch"):
        do_group(view.ctx, plan_id, "state")
        st.rerun()


@st.dialog("Edit a territory", width="medium")
def edit_dialog(ctx: ui.PageContext, plan_id: int, tid: int) -> None:
    state = editor_state(ctx, plan_id)
    terr_ids = state.territory_ids()
    names = dict(zip(terr_ids, state.session.terr["name"].astype(str)))
    tkey = f"ed_edit_terr_{plan_id}"
    if st.session_state.get(tkey) not in terr_ids:
        st.session_state[tkey] = tid if tid in terr_ids else terr_ids[0]
    tid = st.selectbox("Territory", terr_ids, key=tkey, format_func=lambda t: names[t])
    territory_form(ctx, state, plan_id, tid, _measure(), rep_choices(ctx.path, ctx.stamp))


@st.dialog("Save as a new plan", width="small")
def save_as_dialog(ctx: ui.PageContext, plan_id: int) -> None:
    state = editor_state(ctx, plan_id)
    name = state.session.info.name
    st.caption(f"A new plan with the territories and assignment you see now; {ui.md(name)} stays as saved.")
    st.text_input("Name of the new plan", key=f"ed_saveas_{plan_id}", placeholder=f"{name} (copy)")
    if st.button("Save as new plan", type="primary", icon=":material/library_add:"):
        do_save_as(ctx, plan_id)
        if st.session_state.get("ed_app_rerun"):
            st.session_state.pop("ed_app_rerun")
            st.rerun()
        st.error(state.message or "Could not save.")


@st.dialog("New territory", width="medium")
def new_dialog(ctx: ui.PageContext, plan_id: int) -> None:
    state = editor_state(ctx, plan_id)
    reps = rep_choices(ctx.path, ctx.stamp)
    with st.form(f"ed_new_{plan_id}", border=False, clear_on_submit=True):
        n1, n2 = st.columns([4, 1], vertical_alignment="bottom")
        n1.text_input("Name", key=f"ed_new_name_{plan_id}", placeholder="e.g. Gulf Coast")
        n2.color_picker("Colour", value=palette_color(len(state.session.terr)), key=f"ed_new_color_{plan_id}")
        st.selectbox("Rep", ["", *reps], key=f"ed_new_rep_{plan_id}", format_func=lambda r: reps.get(r, "No rep yet"))
        if st.form_submit_button("Add territory", icon=":material/add:", type="primary"):
            do_add_territory(ctx, plan_id)
            st.rerun()


def territory_form(ctx: ui.PageContext, state: EditorState, plan_id: int, tid: int, measure: str,
                   reps: dict) -> None:
    ses = state.session
    row = ses.terr.loc[ses.terr["territory_id"] == tid].iloc[0]
    n_regions = state.region_count(tid)
    with st.form(f"ed_terr_{plan_id}_{tid}", border=False):
        f1, f2, f3 = st.columns([3, 1, 3], vertical_alignment="bottom")
        f1.text_input("Name", value=str(row["name"]), key=f"ed_tname_{plan_id}_{tid}")
        f2.color_picker("Colour", value=safe_color(row["color"], "#888888"), key=f"ed_tcolor_{plan_id}_{tid}")
        rep_now = row["rep_id"] if isinstance(row["rep_id"], str) else ""
        f3.selectbox("Rep", ["", *reps], index=([""] + list(reps)).index(rep_now) if rep_now in reps else 0,
                     key=f"ed_trep_{plan_id}_{tid}", format_func=lambda r: reps.get(r, "No rep"))
        f4, f5, f6 = st.columns([3, 3, 2], vertical_alignment="bottom")
        f4.number_input(
            f"Target ({BALANCE_MEASURES[measure].lower()})", min_value=0.0, value=state.target(measure, tid),
            key=f"ed_ttarget_{plan_id}_{tid}",
            placeholder=f"equal share: {fmt_value(measure, state.equal_share(measure))}",
            help="Empty: an equal share of the plan's total. Targets are kept per measure (chosen above the "
                 "balance chart); revenue-potential targets are saved with the plan.")
        tol = row["tolerance"] if pd.notna(row["tolerance"]) else 0.10
        f5.slider("Tolerance ±%", 1, 50, int(round(tol * 100)), key=f"ed_ttol_{plan_id}_{tid}")
        f6.checkbox("same for all territories", key=f"ed_ttol_all_{plan_id}_{tid}")
        if st.form_submit_button("Apply", type="primary", icon=":material/check:"):
            do_update_territory(ctx, plan_id, tid, measure)
            st.rerun()
    d1, d2 = st.columns([3, 1.2], vertical_alignment="center")
    sure = d1.checkbox(f"Delete {row['name']}: its {n_regions:,} region{'s' if n_regions != 1 else ''} "
                       f"{'become' if n_regions != 1 else 'becomes'} unassigned",
                       key=f"ed_tdel_{plan_id}_{tid}")
    if d2.button("Delete territory", icon=":material/delete:", disabled=not sure, width="stretch"):
        do_delete_territory(ctx, plan_id, tid)
        st.rerun()
