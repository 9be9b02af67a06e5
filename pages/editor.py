"""Editor: reassign regions on the map (click, rectangle, circle, lasso, county, state) with live balance.

The map is drawn once per plan and area; after each gesture only an overlay travels (the regions whose
colour changed since, the locked ones, the legend) and restyles the drawn polygons in place, so zoom and
pan stay put. Map and balance panel live in one fragment: one gesture = one fragment run.
``?render=naive`` / ``?render=naive-folium`` rebuild the whole map on every change instead (benchmark baselines).
"""

from __future__ import annotations

import copy
import json
from functools import partial

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from terrmap.app import folium_protocol as fp
from terrmap.app import ui
from terrmap.app.editor_map import (
    RegionLocator,
    build_editor_map,
    build_naive_editor_map,
    editor_overlay,
    editor_payload_script,
    overlay_feature_group,
)
from terrmap.app.geometry import default_decimals
from terrmap.app.html_safe import esc
from terrmap.app.map_colors import UNASSIGNED_COLOR, safe_color, territory_palette
from terrmap.app.map_data import MAX_REGIONS, STATE_NAMES, map_data
from terrmap.geo.groups import county_choices, regions_in
from terrmap.measures import fmt_int, fmt_money, fmt_pct
from terrmap.plan import SaveConflict, Territory, create_plan, get_plan, list_plans, palette_color
from terrmap.plan.editor import BALANCE_MEASURES
from terrmap.plan.editor import MEASURES as SESSION_MEASURES

MAP_HEIGHT = 610
MAP_KEY = "editor_map"
ERASER = -1  # "Unassign" in the palette
DEFAULT_AREA_MAX = 2000  # the default area: the largest state with at most this many regions
SHORT_MEASURE = {"potential": "Potential", "leads": "Leads", "open_leads": "Open", "customers": "Customers",
                 "won_revenue": "Won $"}
STATUS_COLORS = {"within": "#2f9e44", "near": "#e8890c", "out": "#d6336c"}
STATUS_LABELS = {"within": "within tolerance", "near": "outside", "out": "far outside"}

s, path, stamp = ui.page()
RENDER = st.query_params.get("render")
naive = RENDER in ("naive", "naive-folium")  # benchmark baselines: the whole map rebuilt on every change

plans = list_plans(s)
if not plans:
    st.title("Territory editor")
    st.info("No plan to edit yet: build the demo database or create a plan on the **Optimizer** page.")
    st.stop()

# a plan chosen by "Save as" (or ?plan= on the first visit) becomes the picker's value before it is drawn
if "ed_switch_plan" in st.session_state:
    st.session_state["plan_id"] = st.session_state.pop("ed_switch_plan")
elif not st.session_state.get("ed_seeded_plan"):
    st.session_state["ed_seeded_plan"] = True
    wanted = st.query_params.get("plan")
    if wanted and any(str(p.plan_id) == wanted for p in plans):
        st.session_state["plan_id"] = int(wanted)


# -- state per (database, plan) ----------------------------------------------------------------------

def ed_state(plan_id: int) -> dict:
    """UI state of the editing session on one plan (the EditorSession itself is in ui.editor_session)."""
    states = st.session_state.setdefault("tm_editor_ui", {})
    key = (path, plan_id)
    if key not in states:
        states[key] = {
            "rev": 0,  # bumped by every processed gesture or change: the overlay's and the panel's counter
            "epoch": 0,  # bumped when the base map must be redrawn (new session, deleted territory)
            "seen": {"base": None, "click": None, "drawing": None},
            "message": None, "icon": None,
            "locks_changed": False,
            "targets": {},  # measure -> {territory_id: target}
            "base": None, "geo": None, "saved": None, "conflict": None,
        }
    return states[key]


def session_for(plan_id: int):
    info = get_plan(s, plan_id)
    return ui.editor_session(s, info)


def sync_targets(ses, ed: dict, measure: str) -> None:
    """Targets are kept per measure; the session's ``target`` column holds the current measure's."""
    if "potential" not in ed["targets"]:  # the database stores revenue-potential targets
        t = ses.terr
        ed["targets"]["potential"] = {int(r.territory_id): float(r.target) for r in t.itertuples()
                                      if r.target is not None and pd.notna(r.target)}
    wanted = ed["targets"].get(measure, {})
    terr = ses.terr.copy()
    terr["target"] = [wanted.get(int(t), np.nan) for t in terr["territory_id"]]
    ses.terr = terr


def reset_session(plan_id: int, ed: dict, reload: bool = True) -> None:
    if reload:
        ui.editor_session(s, get_plan(s, plan_id), reload=True)
    ed.update({"epoch": ed["epoch"] + 1, "rev": ed["rev"] + 1, "locks_changed": False, "saved": None,
               "conflict": None, "targets": {}, "base": None})


# -- gestures ------------------------------------------------------------------------------------------

def active_territory(ses, plan_id: int) -> int | None:
    tid = st.session_state.get(f"ed_active_{plan_id}")
    if tid is None or tid == ERASER or tid not in set(ses.terr["territory_id"].tolist()):
        return None
    return int(tid)


def apply_gesture(plan_id: int, ids: list[str], gesture: str) -> None:
    ses, ed = session_for(plan_id), ed_state(plan_id)
    if st.session_state.get(f"ed_lock_{plan_id}"):
        idx = ses.region_indices(ids)
        if not idx.size:
            ed["message"], ed["icon"] = f"No region in this {gesture}.", ":material/info:"
        else:
            lock = not bool(ses.plan.locked[idx].all())
            n = ses.set_locked(ids, lock)
            ed["locks_changed"] = True
            ed["message"] = f"{'Locked' if lock else 'Unlocked'} {n:,} region{'s' if n != 1 else ''} ({gesture})"
            ed["icon"] = ":material/lock:" if lock else ":material/lock_open:"
    else:
        if st.session_state.get(f"ed_active_{plan_id}") not in (None, ERASER) and active_territory(ses, plan_id) is None:
            ed["message"], ed["icon"] = "Choose a territory to paint with first.", ":material/info:"
        elif not ids:
            ed["message"], ed["icon"] = f"The {gesture} covers no region centre in view.", ":material/info:"
        else:
            report = ses.assign(ids, active_territory(ses, plan_id), gesture=gesture)
            ed["message"], ed["icon"] = report.text, ":material/swap_horiz:"
    ed["rev"] += 1


def on_map_change(plan_id: int) -> None:
    """A click or a finished drawing on the map (st_folium's on_change; runs before the fragment)."""
    ed = ed_state(plan_id)
    base = ed.get("base")
    value = st.session_state.get(MAP_KEY) or {}
    if base is None or not isinstance(value, dict):
        return
    seen = ed["seen"]
    if seen.get("base") != base["key"]:  # a new map instance reports afresh
        seen.update({"base": base["key"], "click": None, "drawing": None})
    drawing = value.get("last_active_drawing")
    click = value.get("last_clicked")
    dkey = json.dumps(drawing, sort_keys=True) if drawing else None
    ckey = f"{click['lat']:.7f},{click['lng']:.7f},{value.get('last_object_clicked_count')}" if click else None
    if dkey and dkey != seen["drawing"]:
        seen["drawing"], seen["click"] = dkey, ckey  # a click arriving with a drawing is part of it
        shape = dict(drawing)
        geom = shape.get("geometry") or {}
        props = dict(shape.get("properties") or {})
        if geom.get("type") == "Point" and not props.get("radius") and value.get("last_circle_radius"):
            props["radius"] = float(value["last_circle_radius"]) * 1000  # km -> m
            shape["properties"] = props
        kind = "circle" if geom.get("type") == "Point" else "drawing"
        try:
            ses = session_for(plan_id)
            ids = ses.layer.cover(s, shape, base["visible"])
        except ValueError as exc:
            ed["message"], ed["icon"], ed["rev"] = str(exc), ":material/warning:", ed["rev"] + 1
            return
        apply_gesture(plan_id, ids, kind)
    elif ckey and ckey != seen["click"]:
        seen["click"] = ckey
        rid = ed["geo"]["locator"].locate(click["lat"], click["lng"]) if ed.get("geo") else None
        if rid is None:
            ed["message"], ed["icon"], ed["rev"] = "No region of this plan there.", ":material/info:", ed["rev"] + 1
            return
        apply_gesture(plan_id, [rid], "click")


def do_undo(plan_id: int) -> None:
    ses, ed = session_for(plan_id), ed_state(plan_id)
    r = ses.undo()
    ed["message"], ed["icon"] = (r.text, ":material/undo:") if r else ("Nothing to undo.", ":material/info:")
    ed["rev"] += 1


def do_redo(plan_id: int) -> None:
    ses, ed = session_for(plan_id), ed_state(plan_id)
    r = ses.redo()
    ed["message"], ed["icon"] = (r.text, ":material/redo:") if r else ("Nothing to redo.", ":material/info:")
    ed["rev"] += 1


def do_group(plan_id: int, kind: str) -> None:
    ses = session_for(plan_id)
    if kind == "state":
        code = st.session_state.get(f"ed_grp_state_{plan_id}")
        ids = regions_in(s, ses.layer, states=[code]) if code else []
        label = "state"
    else:
        fips = st.session_state.get(f"ed_grp_county_{plan_id}")
        ids = regions_in(s, ses.layer, county_fips=[fips]) if fips else []
        label = "county"
    apply_gesture(plan_id, [r for r in ids if r in ses.index], label)


def current_hints(ses, ed: dict, measure: str) -> list:
    """The session's rebalance hints, computed once per state of the plan (edits bump ``rev``)."""
    key = (ed["rev"], ed["epoch"], measure, ses.info.version)
    memo = ed.get("hints")
    if memo is None or memo[0] != key:
        memo = ed["hints"] = (key, ses.hints(measure))
    return memo[1]


def do_hint(plan_id: int, k: int, measure: str) -> None:
    ses, ed = session_for(plan_id), ed_state(plan_id)
    hints = current_hints(ses, ed, measure)
    if k < len(hints):
        r = ses.apply_hint(hints[k])
        ed["message"], ed["icon"] = r.text, ":material/tips_and_updates:"
    ed["rev"] += 1


# -- saving -----------------------------------------------------------------------------------------------

def store_targets_for_save(ses, ed: dict) -> None:
    sync_targets(ses, ed, "potential")


def do_save(plan_id: int) -> None:
    ses, ed = session_for(plan_id), ed_state(plan_id)
    store_targets_for_save(ses, ed)
    try:
        info = ses.save(author=st.session_state.get("ed_author") or None)
    except SaveConflict as exc:
        ed["conflict"] = exc
        ed["message"], ed["icon"] = "Not saved: someone else saved this plan meanwhile.", ":material/warning:"
    else:
        ed.update({"locks_changed": False, "saved": None, "conflict": None})
        ed["message"], ed["icon"] = f"Saved {info.name} (version {info.version}).", ":material/check_circle:"
        ui.clear_caches()
    ed["rev"] += 1


def do_save_as(plan_id: int) -> None:
    ses, ed = session_for(plan_id), ed_state(plan_id)
    name = (st.session_state.get(f"ed_saveas_{plan_id}") or "").strip()
    if not name:
        ed["message"], ed["icon"] = "Give the new plan a name.", ":material/warning:"
        return
    if any(p.name == name for p in list_plans(s)):
        ed["message"], ed["icon"] = f"A plan named {name} exists already.", ":material/warning:"
        return
    store_targets_for_save(ses, ed)
    terrs = [Territory(int(r.territory_id), str(r.name), str(r.color), r.rep_id if pd.notna(r.rep_id) else None,
                       float(r.target) if pd.notna(r.target) else None,
                       float(r.tolerance) if pd.notna(r.tolerance) else 0.10,
                       r.parent if pd.notna(r.parent) else None) for r in ses.terr.itertuples()]
    new_id = create_plan(s, name, ses.layer.key, terrs, ses.assignment_frame(),
                         description=f"Saved from {ses.info.name} in the editor")
    ui.clear_caches()
    st.session_state["ed_switch_plan"] = new_id
    st.session_state["ed_app_rerun"] = True


def do_discard(plan_id: int) -> None:
    ed = ed_state(plan_id)
    reset_session(plan_id, ed)
    ed["message"], ed["icon"] = "Discarded your unsaved edits: this is the saved plan.", ":material/restart_alt:"


def do_reload_theirs(plan_id: int) -> None:
    do_discard(plan_id)
    ed_state(plan_id)["message"] = "Loaded their version; your edits were discarded."


def do_merge(plan_id: int) -> None:
    ses, ed = session_for(plan_id), ed_state(plan_id)
    conflict = ed.get("conflict")
    if conflict is None:
        return
    store_targets_for_save(ses, ed)
    try:
        info, clashes = ses.merge_and_save(conflict, author=st.session_state.get("ed_author") or None)
    except SaveConflict as exc:  # saved again meanwhile: merge into that one next time
        ed["conflict"] = exc
        ed["message"], ed["icon"] = "They saved again meanwhile: merge once more.", ":material/warning:"
        ed["rev"] += 1
        return
    reset_session(plan_id, ed, reload=False)
    text = f"Merged your edits into their version and saved (version {info.version})."
    if clashes:
        text += (f" {len(clashes):,} region{'s' if len(clashes) != 1 else ''} you both changed kept their "
                 f"territory: {', '.join(clashes[:8])}{' …' if len(clashes) > 8 else ''}.")
    ed["message"], ed["icon"] = text, ":material/merge:"
    ui.clear_caches()


# -- territories ------------------------------------------------------------------------------------------

def do_update_territory(plan_id: int, tid: int, measure: str) -> None:
    ses, ed = session_for(plan_id), ed_state(plan_id)
    g = st.session_state.get
    fields = {"name": g(f"ed_tname_{plan_id}_{tid}"), "color": g(f"ed_tcolor_{plan_id}_{tid}"),
              "rep_id": g(f"ed_trep_{plan_id}_{tid}") or None,
              "tolerance": (g(f"ed_ttol_{plan_id}_{tid}") or 10) / 100}
    try:
        ses.update_territory(tid, **fields)
    except ValueError as exc:
        ed["message"], ed["icon"], ed["rev"] = str(exc), ":material/warning:", ed["rev"] + 1
        return
    if g(f"ed_ttol_all_{plan_id}_{tid}"):
        for other in ses.terr["territory_id"].tolist():
            ses.update_territory(int(other), tolerance=fields["tolerance"])
    target = g(f"ed_ttarget_{plan_id}_{tid}")
    targets = ed["targets"].setdefault(measure, {})
    if target:
        targets[tid] = float(target)
    else:
        targets.pop(tid, None)
    ed["message"], ed["icon"] = f"Updated territory {fields['name']}.", ":material/edit:"
    ed["rev"] += 1


def do_add_territory(plan_id: int) -> None:
    ses, ed = session_for(plan_id), ed_state(plan_id)
    g = st.session_state.get
    name = (g(f"ed_new_name_{plan_id}") or "").strip()
    if not name:
        ed["message"], ed["icon"], ed["rev"] = "Give the new territory a name.", ":material/warning:", ed["rev"] + 1
        return
    tid = ses.add_territory(name, g(f"ed_new_color_{plan_id}") or None)
    rep = g(f"ed_new_rep_{plan_id}") or None
    ses.update_territory(tid, rep_id=rep)
    st.session_state[f"ed_active_{plan_id}"] = tid
    ed["message"], ed["icon"] = f"Added territory {name}: paint regions into it.", ":material/add_circle:"
    ed["rev"] += 1


def do_delete_territory(plan_id: int, tid: int) -> None:
    ses, ed = session_for(plan_id), ed_state(plan_id)
    report = ses.delete_territory(tid)
    for targets in ed["targets"].values():
        targets.pop(tid, None)
    st.session_state.pop(f"ed_active_{plan_id}", None)
    ed["message"], ed["icon"] = report.text + " (undo history cleared).", ":material/delete:"
    ed["epoch"] += 1  # territory indices moved: draw the map afresh
    ed["rev"] += 1


# -- the base map and its overlay ---------------------------------------------------------------------

def region_frame(ses, visible: list[str], places: pd.DataFrame) -> pd.DataFrame:
    rows = ses.region_indices(visible)
    vals = ses.plan.values[rows]
    col = {m: vals[:, i] for i, m in enumerate(SESSION_MEASURES)}
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.where(col["scored_open"] > 0, col["score_sum"] / np.maximum(col["scored_open"], 1e-12), np.nan)
    a = ses.plan.assignment[rows]
    tid = ses.terr["territory_id"].to_numpy()
    frame = pd.DataFrame({
        "region_id": visible,
        "leads": col["leads"], "open_leads": col["open_leads"], "customers": col["customers"],
        "won_revenue": col["won_revenue"], "avg_score": avg, "potential": col["potential"],
        "territory_id": pd.Series(tid[np.maximum(a, 0)], dtype="Int64").where(a >= 0).astype("float"),
    })
    if places is not None and len(places):
        frame = frame.merge(places[["region_id", "place"]], on="region_id", how="left")
    else:
        frame["place"] = None
    return frame


def ensure_geo(ses, ed: dict, visible: list[str]) -> dict:
    """Shapes and the click locator of the area (kept while the area stays)."""
    key = (ses.layer.key, hash(tuple(visible)))
    geo = ed.get("geo")
    if geo is None or geo["key"] != key:
        shapes = ses.layer.shapes(s, visible)
        shapes = {r: g for r, g in shapes.items() if g.get("type") in ("Polygon", "MultiPolygon")}
        kept = [r for r in visible if r in shapes]
        geo = {"key": key, "shapes": shapes if naive else None, "kept": kept,  # only the baselines redraw
               "locator": RegionLocator(ses.layer.key, kept, shapes), "first_shapes": shapes}
        ed["geo"] = geo
    return geo


def ensure_base(ses, ed: dict, visible: list[str]) -> dict:
    """The drawn map's data: built when plan, area or epoch change (naive: on every change)."""
    key = (ses.info.plan_id, ses.layer.key, hash(tuple(visible)), ed["epoch"], ed["rev"] if naive else 0)
    base = ed.get("base")
    if base is not None and base["key"] == key:
        return base
    geo = ensure_geo(ses, ed, visible)
    kept = geo["kept"]
    shapes = geo["shapes"] or geo.pop("first_shapes", None) or ses.layer.shapes(s, kept)
    places = ui.cached_places(path, ses.layer.key, stamp)
    frame = region_frame(ses, kept, places)
    data = map_data(frame, shapes, ses.terr, "territory",
                    region_label="ZIP" if ses.layer.key == "zip" else "H3 cell",
                    decimals=default_decimals(ses.layer.key))
    rows = ses.region_indices(kept)
    _, _, colors = territory_palette(ses.terr)
    pal = np.array(colors + [UNASSIGNED_COLOR], dtype=object)
    terr = ses.plan.assignment[rows].copy()
    base = {"key": key, "data": data, "rows": rows, "terr": terr,
            "colors": pal[np.where(terr >= 0, terr, len(colors))], "visible": kept, "script": None,
            "frame": frame if RENDER == "naive-folium" else None}
    if not naive:
        base["payload_key"], base["script"] = editor_payload_script(data, ui.state_outlines())
    ed["base"] = base
    return base


def show_map(ses, ed: dict, base: dict, plan_id: int) -> None:
    if RENDER == "naive-folium":
        m = build_naive_editor_map(base["frame"], ed["geo"]["shapes"], ses.terr, ui.static_base())
    else:
        url = ui.serve_script(base["script"]) if base.get("script") else None
        m = build_editor_map(base["data"], outlines=ui.state_outlines(), static_base=ui.static_base(),
                             payload_url=url, payload_key=base.get("payload_key") if url else None)
    overlay = editor_overlay(base["rows"], base["terr"], base["colors"], ses.plan.assignment,
                             ses.plan.locked, ses.terr, ed["rev"])
    fp.show_map(m, key=MAP_KEY, height=MAP_HEIGHT, returned_objects=fp.EDITOR_RETURNED,
                feature_group_to_add=overlay_feature_group(overlay), on_change=partial(on_map_change, plan_id))


# -- the balance panel -------------------------------------------------------------------------------

def status_of(dev: float, tol: float) -> str:
    if not np.isfinite(dev) or abs(dev) <= tol + 1e-12:
        return "within"
    return "near" if abs(dev) <= 2 * tol else "out"


def fmt_measure(measure: str, v) -> str:
    return fmt_money(v) if measure in ("potential", "won_revenue") else fmt_int(v)


def saved_summary(ses, ed: dict, measure: str) -> dict:
    """The saved plan's summary (for the deltas), computed once per save and measure."""
    from terrmap.plan import Plan, metrics

    key = (ses.info.version, ses.plan.k, ed["epoch"])
    cache = ed.get("saved")
    if cache is None or cache["key"] != key:
        p = Plan(ses.plan.graph, ses.plan.values, SESSION_MEASURES, ses.saved_assignment, ses.plan.k)
        cache = ed["saved"] = {"key": key, "plan": p, "by_measure": {}}
    if measure not in cache["by_measure"]:
        p = cache["plan"]
        out = p.summary(measure)
        totals = p.totals[:, SESSION_MEASURES.index(measure)]
        tgt = ses.targets(measure)
        out["max_abs_deviation"] = metrics.max_abs_deviation(totals, np.where(np.isfinite(tgt), tgt, totals.mean()))
        cache["by_measure"][measure] = out
    return cache["by_measure"][measure]


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
             .properties(height=21 * rows + 10).configure_view(strokeWidth=0))
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


TABLE_CSS = """
<style>
.tm-bal { font-size: 12.5px; border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
.tm-bal th { font-weight: 600; color: #6b7280; text-align: right; padding: 4px 7px; border-bottom: 1px solid #e5e7eb;
  white-space: nowrap; position: sticky; top: 0; background: #fff; }
.tm-bal td { text-align: right; padding: 3px 7px; border-bottom: 1px solid #f1f3f5; white-space: nowrap; }
.tm-bal th:first-child, .tm-bal td:first-child { text-align: left; }
.tm-bal td.tm-name { max-width: 150px; overflow: hidden; text-overflow: ellipsis; }
.tm-bal .tm-sq { display: inline-block; width: 11px; height: 11px; border-radius: 3px; margin-right: 6px;
  vertical-align: -1px; border: 1px solid rgba(0,0,0,.15); }
.tm-bal .tm-dev { font-weight: 650; border-radius: 4px; padding: 1px 5px; }
.tm-bal .tm-muted { color: #9ca3af; }
.tm-bal .tm-bad { color: #d6336c; font-weight: 600; }
.tm-scroll { max-height: 420px; overflow: auto; border: 1px solid #eef0f3; border-radius: 8px; }
.tm-kpis { display: grid; grid-template-columns: repeat(3, 1fr); gap: 8px; margin: 2px 0 4px 0; }
.tm-kpi { border: 1px solid rgba(49, 51, 63, .14); border-radius: 9px; padding: 7px 11px 6px 11px; }
.tm-kpi .l { font-size: 12.5px; color: #4b5563; }
.tm-kpi .v { font-size: 1.45rem; font-weight: 600; line-height: 1.25; color: #111827; }
.tm-kpi .d { font-size: 11.5px; min-height: 15px; color: #9ca3af; }
.tm-kpi .d.good { color: #2f9e44; } .tm-kpi .d.bad { color: #d6336c; }
</style>
"""


def kpi_tiles(ses, ed: dict, measure: str, table: pd.DataFrame) -> None:
    """Plan-level metrics with their change since the last save (one HTML element: cheap to resend)."""
    cur = ses.summary(measure)
    old = saved_summary(ses, ed, measure)

    def delta(a, b, lower_is_better, fmt):
        d = a - b
        if abs(d) < 1e-9 or fmt(d) in ("+0", "-0", "+0.0 pts", "-0.0 pts", "+0.000", "-0.000"):
            return '<div class="d">= saved</div>'
        good = (d < 0) == lower_is_better
        return f'<div class="d {"good" if good else "bad"}">{"▼" if d < 0 else "▲"} {fmt(d)}</div>'

    pts = lambda d: f"{d * 100:+.1f} pts"  # noqa: E731
    num3 = lambda d: f"{d:+.3f}"  # noqa: E731
    ints = lambda d: f"{int(d):+,d}"  # noqa: E731
    tiles = [
        ("Max deviation", f"{cur['max_abs_deviation']:.0%}", delta(cur["max_abs_deviation"], old["max_abs_deviation"], True, pts),
         "Largest |deviation from target| over the territories (0% = perfectly balanced)."),
        ("Spread (CV)", f"{cur['cv']:.2f}", delta(cur["cv"], old["cv"], True, num3),
         "Coefficient of variation of the territories' totals (standard deviation / mean)."),
        ("Unassigned", fmt_int(cur["unassigned"]), delta(cur["unassigned"], old["unassigned"], True, ints),
         "Regions of the plan in no territory."),
        ("In pieces", fmt_int(cur["non_contiguous"]), delta(cur["non_contiguous"], old["non_contiguous"], True, ints),
         "Territories that are not one connected area."),
        ("Compactness", f"{cur['mean_polsby_popper']:.3f}",
         delta(cur["mean_polsby_popper"], old["mean_polsby_popper"], False, num3),
         "Mean Polsby-Popper score (1 = a disc; higher is more compact)."),
        ("Cut edges", f"{cur['cut_edge_share']:.1%}", delta(cur["cut_edge_share"], old["cut_edge_share"], True, pts),
         "Share of neighbouring region pairs split between territories (lower: smoother borders)."),
    ]
    cells = "".join(f'<div class="tm-kpi" title="{esc(h + " Below: the change since the last save.")}"><div class="l">{esc(label)}</div>'
                    f'<div class="v">{esc(v)}</div>{d}</div>' for label, v, d, h in tiles)
    pieces = table[table["pieces"] > 1]
    note = ""
    if len(pieces):
        names = ", ".join(f"{esc(r.territory)} ({int(r.pieces)})" for r in pieces.itertuples())
        note = f'<div style="font-size:12px;color:#6b7280;margin-top:2px">In several pieces: {names}</div>'
    st.html(f'<div class="tm-kpis" data-testid="tm-kpis">{cells}</div>{note}')


def balance_table_html(table: pd.DataFrame, measure: str) -> str:
    money = measure in ("potential", "won_revenue")
    f = fmt_money if money else fmt_int
    cols = ["Territory", "Deviation", BALANCE_MEASURES[measure].replace("Revenue potential", "Potential"),
            "Δ since save", "Target", "Leads", "Avg score"]
    if measure != "potential":
        cols.append("Potential")
    cols += ["Customers", "Regions", "Pieces", "Rep"]
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    rows = []
    for r in table.itertuples():
        st_ = status_of(r.deviation, r.tolerance)
        c = STATUS_COLORS[st_]
        dev_bg = f"background:{c}1f;" if st_ != "within" else ""
        change = r.change_since_save
        chg = '<span class="tm-muted">–</span>' if abs(change) < 0.5 else (("+" if change > 0 else "") + f(change))
        cells = [
            f'<td class="tm-name" title="{esc(r.territory)}"><span class="tm-sq" style="background:'
            f'{safe_color(r.color)}"></span>{esc(r.territory)}</td>',
            f'<td><span class="tm-dev" style="color:{c};{dev_bg}">{r.deviation:+.1%}</span></td>',
            f"<td>{f(getattr(r, measure))}</td>",
            f"<td>{chg}</td>",
            f'<td class="tm-muted">{f(r.target)} ±{r.tolerance:.0%}</td>',
            f"<td>{fmt_int(r.leads)}</td>",
            f"<td>{fmt_pct(r.avg_score, 1)}</td>",
        ]
        if measure != "potential":
            cells.append(f"<td>{fmt_money(r.potential)}</td>")
        rep = r.rep if isinstance(r.rep, str) else None
        cells += [
            f"<td>{fmt_int(r.customers)}</td>",
            f"<td>{fmt_int(r.regions)}</td>",
            f'<td class="{"tm-bad" if r.pieces > 1 else ""}">{fmt_int(r.pieces)}</td>',
            f'<td style="text-align:left">{esc(rep) if rep else "<span class=tm-muted>–</span>"}</td>',
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="tm-scroll"><table class="tm-bal" data-testid="tm-balance-table">'
            f'<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def do_hint_pick(plan_id: int, measure: str) -> None:
    key = f"ed_hint_pick_{plan_id}"
    k = st.session_state.get(key)
    st.session_state[key] = None  # a one-shot choice
    if k is not None:
        do_hint(plan_id, int(k) - 1, measure)


def hints_block(ses, plan_id: int, measure: str, in_view: set) -> None:
    """Rebalance hints as one list and one row of Apply buttons (few elements: cheap to resend)."""
    hints = current_hints(ses, ed_state(plan_id), measure)
    items = []
    for k, hint in enumerate(hints, start=1):
        where = "" if hint.region_id in in_view else ' <span style="color:#9ca3af">(outside the area shown)</span>'
        items.append(f'<li><b>{k}.</b> {esc(hint.text)}{where}</li>')
    body = ("".join(items) if items else
            '<li style="color:#6b7280">Every territory is within tolerance, or no single border move helps.</li>')
    st.html('<div style="font-size:13px;line-height:1.45">'
            '<div style="font-weight:600;font-size:14px;margin-bottom:2px">Rebalance hints</div>'
            f'<ul style="list-style:none;padding-left:0;margin:0">{body}</ul></div>')
    if hints:
        st.pills("Apply hint", [str(k) for k in range(1, len(hints) + 1)], key=f"ed_hint_pick_{plan_id}",
                 format_func=lambda k: f"Apply {k}", on_change=do_hint_pick, args=(plan_id, measure),
                 label_visibility="collapsed", help="Make this move (undo reverts it).")


def balance_panel(ses, ed: dict, plan_id: int, measure: str) -> None:
    unsaved = len(ses.pending) + (1 if ed["locks_changed"] else 0)
    with st.container(horizontal=True, vertical_alignment="center", gap="small"):
        st.markdown("#### Balance", width="content")
        st.space("stretch")
        st.button("Save", type="primary", icon=":material/save:", on_click=do_save, args=(plan_id,),
                  disabled=unsaved == 0, help="Save the plan (your name goes into the change log).")
        if st.button("", icon=":material/library_add:", key=f"ed_saveas_btn_{plan_id}",
                     help="Save as a new plan (a copy with your edits)."):
            save_as_dialog(plan_id)
        st.button("", icon=":material/restart_alt:", key=f"ed_discard_btn_{plan_id}", on_click=do_discard,
                  args=(plan_id,), disabled=unsaved == 0, help="Discard your unsaved edits (reload the saved plan).")
    st.segmented_control("Balance on", list(BALANCE_MEASURES), key="ed_measure", default="potential",
                         format_func=lambda m: SHORT_MEASURE[m], label_visibility="collapsed")
    state = (f"{len(ses.pending):,} unsaved move{'s' if len(ses.pending) != 1 else ''}" if ses.pending
             else "no unsaved moves") + (" · locks changed" if ed["locks_changed"] else "")
    msg = ed.get("message") or "Click or draw on the map to move regions; the numbers follow every move."
    st.markdown(
        f"{ed.get('icon') or ':material/info:'} **Edit {ed['rev']}** · {ui.md(msg)}  \n"
        f":gray[{ui.md(ses.info.name)} · version {ses.info.version} · {state}]"
    )
    table = ses.balance_table(measure)
    kpi_tiles(ses, ed, measure, table)
    balance_chart(table, measure)
    st.html(balance_table_html(table, measure))
    st.html(f'<div data-testid="tm-edit-rev" data-rev="{ed["rev"]}" style="display:none">{ed["rev"]}</div>')


# -- the page ------------------------------------------------------------------------------------------------

st.title("Territory editor")
st.html(TABLE_CSS)  # once, outside the fragment: the panel's HTML blocks change on every edit, their style does not
c_plan, c_area, c_name = st.columns([2.4, 4.2, 1.8], vertical_alignment="bottom")
plan = ui.plan_picker(s, c_plan)
if plan is None:
    st.stop()
plan_id = plan.plan_id
with st.spinner("Opening the plan (the first time builds the map of neighbouring regions)…"):
    ses = ui.editor_session(s, plan)
ed = ed_state(plan_id)
layer_key = ses.layer.key
if len(plans) == 1:
    c_plan.markdown(f"**Plan** {ui.md(plan.name)}  \n:gray[{ui.layer_label(layer_key)}]")

# someone saved this plan since it was opened: take it when nothing is pending here
if plan.version != ses.info.version and not ses.pending and not ed["locks_changed"] and ed.get("conflict") is None:
    reset_session(plan_id, ed)
    ses = session_for(plan_id)

groups = ui.cached_region_groups(path, layer_key, stamp)
groups = groups[groups["region_id"].isin(ses.index)]
per_state = groups["state"].value_counts()
state_codes = sorted(per_state.index, key=lambda c: STATE_NAMES.get(c, c))
area_key = f"ed_area_{layer_key}"
if area_key not in st.session_state or any(c not in per_state for c in st.session_state[area_key]):
    wanted = [c for part in st.query_params.get_all("area") for c in part.split(",") if c in per_state]
    fitting = per_state[per_state <= DEFAULT_AREA_MAX]
    default = [fitting.index[0]] if len(fitting) else [per_state.index[-1]] if len(per_state) else []
    st.session_state[area_key] = wanted or default
area = c_area.multiselect(
    "Area", state_codes, key=area_key, placeholder="Choose states",
    format_func=lambda c: f"{STATE_NAMES.get(c, c)} ({per_state[c]:,})",
    help="The states shown for editing (regions per state in brackets). Fewer regions: a snappier map.",
)
c_name.text_input("Your name", key="ed_author", placeholder="for the change log",
                  help="Saved with your edits in the plan's change log.")

visible = sorted(groups.loc[groups["state"].isin(area), "region_id"].tolist())


@st.fragment
def workspace(plan_id: int) -> None:
    """Toolbar, map and balance panel: every gesture reruns only this."""
    ses, ed = session_for(plan_id), ed_state(plan_id)
    if st.session_state.pop("ed_app_rerun", False):
        st.rerun(scope="app")
    measure = st.session_state.get("ed_measure") or "potential"
    sync_targets(ses, ed, measure)
    terr_ids = [int(t) for t in ses.terr["territory_id"].tolist()]
    names = dict(zip(terr_ids, ses.terr["name"].astype(str)))
    reps = dict(zip(terr_ids, ses.terr["rep_name"] if "rep_name" in ses.terr else [None] * len(terr_ids)))
    colors = dict(zip(terr_ids, [safe_color(c) for c in ses.terr["color"]]))
    active_key, lock_key = f"ed_active_{plan_id}", f"ed_lock_{plan_id}"
    if st.session_state.get(active_key) not in [*terr_ids, ERASER]:
        st.session_state[active_key] = terr_ids[0] if terr_ids else ERASER

    conflict = ed.get("conflict")
    if conflict is not None:
        with st.container(border=True):
            st.warning(
                f"**{ui.md(conflict.plan_name)} was saved by someone else** (version {conflict.current_version}; "
                f"you started from version {conflict.loaded_version}). Your {len(ses.pending):,} move"
                f"{'s are' if len(ses.pending) != 1 else ' is'} not saved yet — nothing is lost. Choose:",
                icon=":material/group:",
            )
            b1, b2, _ = st.columns([1.3, 1.7, 3])
            b1.button("Reload theirs", icon=":material/download:", on_click=do_reload_theirs, args=(plan_id,),
                      help="Discard your edits and load the version they saved.")
            b2.button("Merge mine into theirs", type="primary", icon=":material/merge:", on_click=do_merge,
                      args=(plan_id,), help="Keep their changes and add yours; where you both moved the same "
                                            "region, theirs is kept (listed afterwards). Then save.")

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
            edit_dialog(plan_id, active)
        if st.button("", icon=":material/add:", key=f"ed_new_btn_{plan_id}", help="Create a new territory."):
            new_dialog(plan_id)
        lock_mode = st.toggle("Lock mode", key=lock_key,
                              help="Clicks and drawn shapes lock regions instead of moving them (or unlock "
                                   "them, if all are locked). Locked regions (dark dashed outline) never move.")
        st.button("Undo", icon=":material/undo:", on_click=do_undo, args=(plan_id,), disabled=not p.undo_stack,
                  shortcut="Ctrl+Z", help=f"Undo the last move ({len(p.undo_stack)} steps available).")
        st.button("Redo", icon=":material/redo:", on_click=do_redo, args=(plan_id,), disabled=not p.redo_stack,
                  shortcut="Ctrl+Shift+Z", help=f"Redo ({len(p.redo_stack)} available).")

    left, right = st.columns([3, 2.3], gap="medium")
    with left:
        if not visible:
            st.info("Choose one or more states under **Area** to edit.", icon=":material/map:")
        elif len(visible) > MAX_REGIONS:
            st.warning(f"**{len(visible):,} regions** in this area: too many to draw at once (at most "
                       f"{MAX_REGIONS:,}). Choose fewer states.", icon=":material/zoom_out_map:")
        else:
            base = ensure_base(ses, ed, visible)
            show_map(ses, ed, base, plan_id)
            mode = "**lock or unlock** it" if lock_mode else (
                "**unassign** it" if active == ERASER else f"move it to **{ui.md(names.get(active, ''))}**")
            st.caption(
                f"Click a region to {mode}. Draw a rectangle, circle or polygon (tools at the top left) to do the "
                f"same for every region whose centre is inside. {len(base['visible']):,} regions in view · "
                f"{ui.layer_label(layer_key)}." + (f" · *{RENDER} rendering (benchmark baseline)*" if naive else "")
            )
        if st.button("Assign a whole state or county…", icon=":material/select_all:", key=f"ed_grp_btn_{plan_id}"):
            group_dialog(plan_id)
        hints_block(ses, plan_id, measure, set(visible))
    with right:
        balance_panel(ses, ed, plan_id, measure)


@st.cache_data(ttl=60, show_spinner=False)
def _reps(path: str, stamp: str) -> dict[str, str]:
    rows = ui._store(path).cursor().execute("SELECT rep_id, name FROM reps ORDER BY name").fetchall()
    return {r: f"{n} ({r})" for r, n in rows}


@st.dialog("Assign a whole state or county", width="medium")
def group_dialog(plan_id: int) -> None:
    lock_mode = bool(st.session_state.get(f"ed_lock_{plan_id}"))
    ses = session_for(plan_id)
    active = active_territory(ses, plan_id)
    what = "lock or unlock" if lock_mode else (
        f"move into **{ui.md(ses.territory_name(active))}**" if active is not None else "unassign")
    st.caption(f"Does what a click does, for every region of a county or state: {what}.")
    st_key, co_key = f"ed_grp_state_{plan_id}", f"ed_grp_county_{plan_id}"
    if st.session_state.get(st_key) not in state_codes:
        st.session_state[st_key] = area[0] if area else (state_codes[0] if state_codes else None)
    code = st.selectbox("State", state_codes, key=st_key, format_func=lambda c: STATE_NAMES.get(c, c))
    counties = county_choices(s, [code]) if code else pd.DataFrame(columns=["county_fips", "county"])
    fips = counties["county_fips"].tolist()
    label = dict(zip(fips, counties["county"].fillna("?").astype(str)))
    if st.session_state.get(co_key) not in fips:
        st.session_state[co_key] = fips[0] if fips else None
    st.selectbox("County", fips, key=co_key, format_func=lambda f: f"{label.get(f, f)} ({f})")
    c1, c2 = st.columns(2)
    if c1.button("Apply to the county", type="primary", disabled=not fips, width="stretch"):
        do_group(plan_id, "county")
        st.rerun()
    if c2.button("Apply to the whole state", disabled=not code, width="stretch"):
        do_group(plan_id, "state")
        st.rerun()


@st.dialog("Edit a territory", width="medium")
def edit_dialog(plan_id: int, tid: int) -> None:
    ses, ed = session_for(plan_id), ed_state(plan_id)
    measure = st.session_state.get("ed_measure") or "potential"
    terr_ids = [int(t) for t in ses.terr["territory_id"].tolist()]
    names = dict(zip(terr_ids, ses.terr["name"].astype(str)))
    tkey = f"ed_edit_terr_{plan_id}"
    if st.session_state.get(tkey) not in terr_ids:
        st.session_state[tkey] = tid if tid in terr_ids else terr_ids[0]
    tid = st.selectbox("Territory", terr_ids, key=tkey, format_func=lambda t: names[t])
    territory_form(ses, ed, plan_id, tid, measure, _reps(path, stamp))


@st.dialog("Save as a new plan", width="small")
def save_as_dialog(plan_id: int) -> None:
    ses, ed = session_for(plan_id), ed_state(plan_id)
    st.caption(f"A new plan with the territories and assignment you see now; {ui.md(ses.info.name)} stays as saved.")
    st.text_input("Name of the new plan", key=f"ed_saveas_{plan_id}", placeholder=f"{ses.info.name} (copy)")
    if st.button("Save as new plan", type="primary", icon=":material/library_add:"):
        do_save_as(plan_id)
        if st.session_state.get("ed_app_rerun"):
            st.session_state.pop("ed_app_rerun")
            st.rerun()
        st.error(ed.get("message") or "Could not save.")


@st.dialog("New territory", width="medium")
def new_dialog(plan_id: int) -> None:
    ses = session_for(plan_id)
    reps = _reps(path, stamp)
    with st.form(f"ed_new_{plan_id}", border=False, clear_on_submit=True):
        n1, n2 = st.columns([4, 1], vertical_alignment="bottom")
        n1.text_input("Name", key=f"ed_new_name_{plan_id}", placeholder="e.g. Gulf Coast")
        n2.color_picker("Colour", value=palette_color(len(ses.terr)), key=f"ed_new_color_{plan_id}")
        st.selectbox("Rep", ["", *reps], key=f"ed_new_rep_{plan_id}", format_func=lambda r: reps.get(r, "No rep yet"))
        if st.form_submit_button("Add territory", icon=":material/add:", type="primary"):
            do_add_territory(plan_id)
            st.rerun()


def territory_form(ses, ed: dict, plan_id: int, tid: int, measure: str, reps: dict) -> None:
    row = ses.terr.loc[ses.terr["territory_id"] == tid].iloc[0]
    n_regions = int((ses.plan.assignment == ses.territory_index(tid)).sum())
    equal = float(ses.plan.totals[:, SESSION_MEASURES.index(measure)].sum() / max(ses.plan.k, 1))
    current_target = ed["targets"].get(measure, {}).get(tid)
    with st.form(f"ed_terr_{plan_id}_{tid}", border=False):
        f1, f2, f3 = st.columns([3, 1, 3], vertical_alignment="bottom")
        f1.text_input("Name", value=str(row["name"]), key=f"ed_tname_{plan_id}_{tid}")
        f2.color_picker("Colour", value=safe_color(row["color"], "#888888"), key=f"ed_tcolor_{plan_id}_{tid}")
        rep_now = row["rep_id"] if isinstance(row["rep_id"], str) else ""
        f3.selectbox("Rep", ["", *reps], index=([""] + list(reps)).index(rep_now) if rep_now in reps else 0,
                     key=f"ed_trep_{plan_id}_{tid}", format_func=lambda r: reps.get(r, "No rep"))
        f4, f5, f6 = st.columns([3, 3, 2], vertical_alignment="bottom")
        f4.number_input(
            f"Target ({BALANCE_MEASURES[measure].lower()})", min_value=0.0, value=current_target,
            key=f"ed_ttarget_{plan_id}_{tid}", placeholder=f"equal share: {fmt_measure(measure, equal)}",
            help="Empty: an equal share of the plan's total. Targets are kept per measure (chosen above the "
                 "balance chart); revenue-potential targets are saved with the plan.")
        tol = row["tolerance"] if pd.notna(row["tolerance"]) else 0.10
        f5.slider("Tolerance ±%", 1, 50, int(round(tol * 100)), key=f"ed_ttol_{plan_id}_{tid}")
        f6.checkbox("same for all territories", key=f"ed_ttol_all_{plan_id}_{tid}")
        if st.form_submit_button("Apply", type="primary", icon=":material/check:"):
            do_update_territory(plan_id, tid, measure)
            st.rerun()
    d1, d2 = st.columns([3, 1.2], vertical_alignment="center")
    sure = d1.checkbox(f"Delete {row['name']}: its {n_regions:,} region{'s' if n_regions != 1 else ''} "
                       f"{'become' if n_regions != 1 else 'becomes'} unassigned",
                       key=f"ed_tdel_{plan_id}_{tid}")
    if d2.button("Delete territory", icon=":material/delete:", disabled=not sure, width="stretch"):
        do_delete_territory(plan_id, tid)
        st.rerun()


workspace(plan_id)
