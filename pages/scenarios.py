"""Scenarios: list, create from current (clone), rename, delete, publish; history and restore;
compare two scenarios side by side (metrics with deltas, a diff map, accounts that change owner)."""

import re

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from terrmap.access import Action
from terrmap.app import auth, ui
from terrmap.app.folium_protocol import show_map
from terrmap.app.geometry import default_decimals
from terrmap.app.legend import legend_territories_html
from terrmap.app.map_data import MAX_REGIONS, MapData, filter_states, focus_bounds, map_data
from terrmap.app.maps import build_map
from terrmap.data import plan_events
from terrmap.geo import parse_layer
from terrmap.io.csvsafe import guard_frame
from terrmap.measures import fmt_int, fmt_money, fmt_pct, measure, table_format
from terrmap.plan import PlanInfo, SaveConflict, list_plans
from terrmap.plan import scenarios as sc
from terrmap.plan.metrics import METRIC_HELP

MAP_HEIGHT = 560
GOOD, BAD = "#137333", "#b3261e"  # text colours of an improvement / a worsening

s, path, stamp = ui.page("Scenarios")
who = ui.require(Action.VIEW_ALL)
READ_ONLY = "Your role sees the scenarios and changes none."

plans = list_plans(s)
if not plans:
    st.info("No scenarios yet: create one in the **Editor** or the **Optimizer**.")
    st.stop()
by_id = {p.plan_id: p for p in plans}
# renames and publishing do not bump a plan's version: make them part of every cache key
names_key = "|".join(f"{p.plan_id}:{p.name}:{p.published}" for p in plans)


def label(p: PlanInfo) -> str:
    return p.name + ("  ✓ published" if p.published else "")


def seed_pick(widget_key: str, url_key: str, default: PlanInfo) -> None:
    """Initialise a plan picker: a choice made by an action of the last run, else ``?url_key=<plan id or
    name>``, else ``default`` (and again when the chosen plan is gone)."""
    pending = st.session_state.pop(f"{widget_key}_next", None)
    if pending in by_id:
        st.session_state[widget_key] = pending
    if st.session_state.get(widget_key) not in by_id:
        wanted = st.query_params.get(url_key)
        hit = next((p for p in plans if wanted is not None and (str(p.plan_id) == wanted or p.name == wanted)), None)
        st.session_state[widget_key] = (hit or default).plan_id


def author() -> str | None:
    return auth.author(who, "sc_author")


def done(message: str, logged_for: PlanInfo | None = None) -> None:
    """After a write: record who did it in the event log of plan ``logged_for`` (a write that saves no version
    of it), forget derived data, say what happened on the next run."""
    if logged_for is not None:
        plan_events.record(s, logged_for.plan_id, author(), message)
    ui.clear_caches()
    st.session_state["sc_flash"] = message
    st.rerun()


if "sc_flash" in st.session_state:
    st.success(st.session_state.pop("sc_flash"), icon=":material/check_circle:")

# -- the list -----------------------------------------------------------------------------------------


@st.cache_data(max_entries=8, show_spinner="Measuring the scenarios (contiguity needs each layer's map graph)…")
def cached_list(path: str, stamp: str, names_key: str) -> pd.DataFrame:
    return sc.list_scenarios(ui.store(), graph_for=ui.graph_provider(path))


st.subheader("All scenarios")
table = cached_list(path, stamp, names_key)
st.dataframe(
    table.assign(
        status=np.where(table["published"], "✓ Published", ""),
        layer=table["layer"].map(ui.layer_label),
        author=table["author"].fillna("(no name)"),
        max_abs_deviation=table["max_abs_deviation"] * 100,
    )[["status", "name", "layer", "version", "territories", "regions", "max_abs_deviation", "non_contiguous",
       "author", "updated_at"]],
    hide_index=True, width="stretch",
    column_config={
        "status": st.column_config.TextColumn("Status", help="The published plan is the one reps and reports use."),
        "name": "Scenario",
        "layer": "Layer",
        "version": st.column_config.NumberColumn("Version", help="Bumped by every save or restore."),
        "territories": "Territories",
        "regions": st.column_config.NumberColumn("Regions", help="Regions assigned to a territory.",
                                                 format="localized"),
        "max_abs_deviation": st.column_config.NumberColumn(
            "Max deviation", format="%.1f%%",
            help="Largest gap between a territory's revenue potential and its target (set target, else an equal "
                 "share), in % of the target. Lower is more balanced."),
        "non_contiguous": st.column_config.NumberColumn(
            "Non-contiguous", help="Territories in more than one piece on the map, even counting crossings of "
                                   "water (islands, bays, lakes). 0 is best."),
        "author": st.column_config.TextColumn("Last change by", help="Who saved the latest version (the name typed in "
                                                                     "the editor or on this page)."),
        "updated_at": st.column_config.DatetimeColumn("Updated", format="YYYY-MM-DD HH:mm"),
    },
)

# -- actions on one scenario ---------------------------------------------------------------------------

st.subheader("Manage")
c_pick, c_author = st.columns([3, 1.3], vertical_alignment="bottom")
seed_pick("sc_plan_pick", "plan", plans[0])
pid = c_pick.selectbox("Scenario", list(by_id), format_func=lambda i: label(by_id[i]), key="sc_plan_pick")
plan = by_id[pid]
auth.author_box(c_author, who, "sc_author", placeholder="for the history",
                help_text="Recorded with clones and restores in the scenario's history.")


@st.dialog("Delete scenario")
def confirm_delete(p: PlanInfo) -> None:
    st.write(f"This removes **{ui.md(p.name)}** with its whole history, pins and overlays. It cannot be undone.")
    typed = st.text_input("Type the scenario's name to confirm", key="sc_delete_typed")
    if st.button("Delete for good", type="primary", disabled=typed.strip() != p.name.strip() or not who.can_edit,
                 key="sc_delete_go") and who.can_edit:
        try:
            sc.delete_plan(s, p)
        except ValueError as err:
            st.error(str(err))
            return
        ui.drop_editor_session(s, p.plan_id)
        done(f"Deleted {p.name}.", p)


c_clone, c_rename, c_buttons = st.columns([2, 2, 1.6], vertical_alignment="bottom")
with c_clone.form("sc_clone_form", border=False):
    new_name = st.text_input("Create from current (a copy)", value=f"Copy of {plan.name}",
                             help="Saves the chosen scenario as a new one: territories, assignment and locks, "
                                  "hierarchy, named-account pins and overlays. Its history starts fresh.")
    if st.form_submit_button("Create scenario", icon=":material/content_copy:", disabled=not who.can_edit,
                             help=None if who.can_edit else READ_ONLY) and who.can_edit:
        try:
            new = sc.clone_plan(s, plan, new_name, author=author())
        except ValueError as err:
            st.error(str(err))
        else:
            st.session_state["sc_plan_pick_next"] = new.plan_id
            done(f"Created {new.name} from {plan.name} v{plan.version}.")
with c_rename.form("sc_rename_form", border=False):
    renamed = st.text_input("Rename", value=plan.name)
    if st.form_submit_button("Rename", icon=":material/edit:", disabled=not who.can_edit,
                             help=None if who.can_edit else READ_ONLY) and who.can_edit:
        try:
            info = sc.rename_plan(s, plan, renamed)
        except ValueError as err:
            st.error(str(err))
        else:
            done(f"Renamed {plan.name} to {info.name}.", plan)
with c_buttons:
    if st.button("Publish", icon=":material/verified:", disabled=plan.published or not who.can_publish,
                 width="stretch", help="Make this the published plan (exactly one is): reps and reports use it."
                 if who.can_publish else READ_ONLY) and who.can_publish:
        sc.publish_plan(s, plan)
        done(f"Published {plan.name}.", plan)
    if st.button("Delete…", icon=":material/delete:", width="stretch",
                 disabled=(plan.published and len(plans) > 1) or not who.can_edit,
                 help=READ_ONLY if not who.can_edit else
                 "Publish another scenario first to delete the published one." if plan.published else None
                 ) and who.can_edit:
        confirm_delete(plan)

# export (terrmap.io.export, when installed)
try:
    from terrmap.io.export import EXPORT_FORMATS, FORMAT_MIME, FORMAT_SUFFIX, export_plan
except ImportError:
    st.caption("Exports are not available in this installation yet.")
else:
    export_labels = {"csv": "Regions CSV", "accounts": "Accounts CSV", "geojson": "GeoJSON", "gpkg": "GeoPackage",
                     "png": "Map PNG", "pdf": "Map PDF"}
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", plan.name).strip("_") or f"plan_{plan.plan_id}"
    st.caption("Export this scenario")
    cols = st.columns(len(EXPORT_FORMATS))
    for col, fmt in zip(cols, EXPORT_FORMATS):
        col.download_button(
            export_labels.get(fmt, fmt), data=lambda fmt=fmt: export_plan(s, plan, fmt),
            file_name=f"{stem}{FORMAT_SUFFIX.get(fmt, '')}" if fmt != "accounts" else f"{stem}_accounts.csv",
            mime=FORMAT_MIME.get(fmt), key=f"sc_export_{fmt}", width="stretch", on_click="ignore",
            help="Made when you click (maps and shapes take a few seconds).",
        )

with st.expander(f"History of {plan.name} ({plan.version} version{'s' if plan.version != 1 else ''})",
                 icon=":material/history:"):
    hist = sc.plan_history(s, plan)
    if hist.empty:
        st.caption("No versions recorded yet: the history starts with the next save.")
    head = st.columns([0.7, 1.6, 1.3, 2.6, 1.1, 1.1])
    for h, text in zip(head, ["Version", "Saved", "By", "Note", "Regions changed", ""]):
        h.markdown(f"**{text}**", help="Regions whose territory differs from the previous version."
                   if text == "Regions changed" else None)
    for row in hist.itertuples(index=False):
        cols = st.columns([0.7, 1.6, 1.3, 2.6, 1.1, 1.1], vertical_alignment="center")
        cols[0].write(f"v{row.version}")
        cols[1].write(pd.Timestamp(row.saved_at).strftime("%Y-%m-%d %H:%M"))
        cols[2].write(ui.md(row.author) if isinstance(row.author, str) else "–")
        cols[3].write(ui.md(row.note or ""))
        cols[4].write("–" if pd.isna(row.regions_changed) else f"{int(row.regions_changed):,}")
        if row.version == plan.version:
            cols[5].caption("current")
        elif cols[5].button("Restore", key=f"sc_restore_{row.version}", disabled=not who.can_edit,
                            help="Saves this version again as a new version; nothing is lost."
                            if who.can_edit else READ_ONLY) and who.can_edit:
            try:
                info = sc.restore_version(s, plan, int(row.version), author=author())
            except SaveConflict as err:
                st.error(f"{err} The list above is now up to date; try again.")
            else:
                ui.drop_editor_session(s, plan.plan_id)
                done(f"Restored version {row.version} of {plan.name} as version {info.version}.")
    events = plan_events.plan_events(s, plan.plan_id)
    if len(events):
        st.markdown("**Other changes**", help="Changes that save no new version: publishing, renaming, the "
                                              "hierarchy, pinned accounts and overlays.")
        st.dataframe(events.assign(author=events["author"].fillna("–")), hide_index=True, width="stretch",
                     height=min(38 + 35 * len(events), 280),
                     column_config={"changed_at": st.column_config.DatetimeColumn("When",
                                                                                  format="YYYY-MM-DD HH:mm"),
                                    "author": st.column_config.TextColumn("By"),
                                    "what": st.column_config.TextColumn("Change")})

# -- compare ------------------------------------------------------------------------------------------

st.subheader("Compare")
if len(plans) < 2:
    st.info("Create a second scenario (above) to compare.")
    st.stop()
c_a, c_b = st.columns(2)
ids = list(by_id)
seed_pick("sc_a_pick", "a", plans[0])
a_id = c_a.selectbox("A (before)", ids, format_func=lambda i: label(by_id[i]), key="sc_a_pick",
                     help="The scenario you start from.")
seed_pick("sc_b_pick", "b", next(p for p in plans if p.plan_id != a_id))
b_id = c_b.selectbox("B (after)", ids, format_func=lambda i: label(by_id[i]), key="sc_b_pick",
                     help="The scenario you would move to. Deltas are B − A.")
ui.sync_url({"plan": pid, "a": a_id, "b": b_id}, {})
a, b = by_id[a_id], by_id[b_id]
if a_id == b_id:
    st.info("Choose two different scenarios.")
    st.stop()

key = (path, a.plan_id, a.version, b.plan_id, b.version, stamp, names_key)
results = st.session_state.setdefault("sc_comparisons", {})
if key not in results:
    bar = st.progress(0.0, text="Comparing…")
    cmp = sc.compare_plans(s, a, b, graph_for=ui.graph_provider(path),
                           progress=lambda f, text: bar.progress(min(f, 1.0), text=f"Comparing: {text}"))
    bar.empty()
    results.clear()  # one comparison kept per session: they hold a few MB
    results[key] = cmp
cmp: sc.Comparison = results[key]

# headline numbers
k1, k2, k3, k4 = st.columns(4)
k1.metric("Regions that change territory", fmt_int(len(cmp.changed_regions)), border=True,
          help="Regions (on A's layer) whose territory name differs in B.")
k2.metric("Accounts that change owner", fmt_int(cmp.accounts_moved), border=True,
          help="Leads whose owner (territory or overlay, pins included) differs in B.")
k3.metric("Potential that moves", fmt_money(cmp.potential_moved), border=True,
          help="Revenue potential (score × expected deal value of open leads) of the accounts that change owner.")
k4.metric("Disruption", fmt_pct(cmp.potential_moved_share, 1), border=True,
          help=METRIC_HELP["disruption"])


def fmt_metric(metric: str, v: float, delta: bool = False) -> str:
    if v is None or not np.isfinite(v):
        return "–"
    sign = "+" if delta and v > 0 else ""
    if metric in ("max_abs_deviation", "cut_edge_share"):
        return f"{sign}{v * 100:.1f}" + (" pts" if delta else "%")
    if metric in ("cv", "mean_polsby_popper"):
        return f"{sign}{v:.3f}"
    return f"{sign}{int(round(v)):,}"


def delta_style(better: pd.Series, delta: pd.Series) -> list[str]:
    out = []
    for bt, d in zip(better, delta):
        verdict = sc.is_better(bt, d)
        out.append("" if verdict is None else f"color: {GOOD if verdict else BAD}; font-weight: 600")
    return out


pm = cmp.plan_metrics
plan_table = pd.DataFrame({
    "Metric": pm["label"],
    "A": [fmt_metric(m, v) for m, v in pm["a"].items()],
    "B": [fmt_metric(m, v) for m, v in pm["b"].items()],
    "Δ B − A": [fmt_metric(m, v, delta=True) if v != 0 else "0" for m, v in pm["delta"].items()],
})
styled = plan_table.style.apply(lambda col: delta_style(pm["better"], pm["delta"]), subset=["Δ B − A"])
st.markdown("**Plan metrics** · green = better, red = worse")
c_pm, c_help = st.columns([3, 2])
c_pm.dataframe(styled, hide_index=True, width="stretch", key="sc_plan_metrics",
               column_config={"A": st.column_config.Column(f"A · {a.name}"),
                              "B": st.column_config.Column(f"B · {b.name}")})
c_help.caption("\n\n".join(f"**{ui.md(lab)}**: {ui.md(text)}" for lab, text in zip(pm["label"], pm["help"])))

st.markdown("**Per territory** (matched by name; a territory in only one scenario has the other side empty)")
t = cmp.territories
terr_view = pd.DataFrame({"Territory": t["territory"]})
# Measures from the registry (label and unit); regions and the deviation are counts and shares of the plan.
columns = [(m, measure(m).label, measure(m).unit) for m in ("leads", "potential", "customers")]
columns += [("regions", "Regions", "int"), ("deviation", "Deviation", "pct")]
fmt = {}
for m, title, unit in columns:
    scale = 100 if unit == "pct" else 1
    terr_view[f"{title} A"] = t[f"{m}_a"] * scale
    terr_view[f"{title} B"] = t[f"{m}_b"] * scale
    terr_view[f"{title} Δ"] = t[f"{m}_delta"] * scale
    fmt.update({f"{title} A": table_format(unit), f"{title} B": table_format(unit),
                f"{title} Δ": table_format(unit, signed=True)})


def deviation_style(_col: pd.Series) -> list[str]:
    """Green where B's territory is closer to its target than A's, red where it is further away."""
    gain = t["deviation_a"].abs() - t["deviation_b"].abs()
    return ["" if not np.isfinite(g) or abs(g) < 1e-9 else f"color: {GOOD if g > 0 else BAD}; font-weight: 600"
            for g in gain]


st.dataframe(
    terr_view.style.format(fmt, na_rep="").apply(deviation_style, subset=["Deviation Δ"]),
    hide_index=True, width="stretch", key="sc_territory_table",
    column_config={
        "Deviation A": st.column_config.Column(help="(potential − target) / target; target: set, else equal share"),
        "Deviation B": st.column_config.Column(help="(potential − target) / target; target: set, else equal share"),
        "Deviation Δ": st.column_config.Column(help="B − A in percentage points; green: closer to target in B"),
        "Potential Δ": st.column_config.Column(help="B − A, revenue potential (score × expected value) in $"),
    },
)

chart_data = pd.concat([
    pd.DataFrame({"territory": t["territory"], "scenario": f"A · {a.name}", "potential": t["potential_a"]}),
    pd.DataFrame({"territory": t["territory"], "scenario": f"B · {b.name}", "potential": t["potential_b"]}),
]).dropna(subset=["potential"])
chart = alt.Chart(chart_data).mark_bar().encode(
    x=alt.X("territory:N", sort=list(t["territory"]), title=None, axis=alt.Axis(labelAngle=-40, labelLimit=140)),
    xOffset=alt.XOffset("scenario:N"),
    y=alt.Y("potential:Q", title="Revenue potential ($)", axis=alt.Axis(format="$~s")),
    color=alt.Color("scenario:N", title=None, scale=alt.Scale(range=["#9aa5b1", "#1d91c0"]),
                    legend=alt.Legend(orient="top")),
    tooltip=[alt.Tooltip("territory:N", title="Territory"), alt.Tooltip("scenario:N", title="Scenario"),
             alt.Tooltip("potential:Q", title="Potential", format="$,.0f")],
).properties(height=320, title="Potential per territory, A vs B")
st.altair_chart(chart, width="stretch")

# -- the diff map -------------------------------------------------------------------------------------

st.markdown(f"**What changes on the map** ({ui.layer_label(a.layer)}, A's layer)")


@st.cache_resource(max_entries=2, show_spinner="Drawing the changes…")
def cached_diff_map(key: tuple, _cmp: sc.Comparison) -> tuple[MapData | None, str]:
    layer_key = _cmp.a.layer
    frame = ui.region_frame(s, layer_key, _cmp.a, stamp)
    out, entries = sc.diff_map_frame(frame, _cmp.changed_regions)
    note = ""
    if len(out) > MAX_REGIONS:  # too many to draw: the changes and their surroundings only
        changed = out[out["territory_id"] > 0]
        states = sorted({c for v in changed["states"].dropna() for c in str(v).split(",") if c})
        near = filter_states(out, states)
        out = near if len(near) <= MAX_REGIONS else changed.nlargest(MAX_REGIONS, "potential")
        note = "Only the states where regions change are drawn." if len(out) else "No region changes territory."
    if not len(out):
        return None, note or "No region changes territory."
    shapes = parse_layer(layer_key).shapes(s, out["region_id"].tolist())
    data = map_data(out, shapes, entries, "territory", region_label="ZIP" if layer_key == "zip" else "H3 cell",
                    decimals=default_decimals(layer_key))
    counts = np.bincount([x for x in data.terr if x >= 0], minlength=len(entries))
    shown = [i for i in range(len(entries)) if counts[i]]
    data.legend_html = legend_territories_html([data.territories[i] for i in shown],
                                               [data.palette[i] for i in shown], [counts[i] for i in shown],
                                               title="Change A → B")
    if not note and (entries["territory_id"] > 0).sum() == 0:
        note = "No region changes territory."
    # Open on what changed, not on the whole country (a few changed ZIPs would be specks).
    data.focus_bounds = focus_bounds(shapes, out.loc[out["territory_id"] > 0, "region_id"])
    return data, note


data, note = cached_diff_map(key, cmp)
m = build_map(data, outlines=ui.state_outlines(), static_base=ui.static_base(), note=note or None, fit="focus")
st.caption("Grey: unchanged. Coloured: the region moves, in the colour of its territory in B. "
           "Hover a region for from → to and its potential.")
show_map(m, key="sc_diff_map", height=MAP_HEIGHT)

# -- accounts that change owner ----------------------------------------------------------------------

st.markdown(f"**Accounts that change owner** · {fmt_int(cmp.accounts_moved)} accounts, "
            f"{fmt_money(cmp.potential_moved)} potential")
moved = cmp.moved_accounts


if moved.empty:
    st.caption("No account changes owner.")
else:
    st.dataframe(
        moved, hide_index=True, width="stretch", height=320, key="sc_moved_accounts",
        column_config={
            "lead_id": "Account id", "name": "Account", "from_owner": "From (A)", "to_owner": "To (B)",
            "potential": st.column_config.NumberColumn("Potential", format="dollar",
                                                       help="score × expected deal value (open leads)"),
            "status": "Status",
        },
    )
    st.download_button(
        "Download as CSV", data=lambda: guard_frame(moved).to_csv(index=False).encode("utf-8"),
        file_name="accounts_changing_owner.csv", mime="text/csv", icon=":material/download:", on_click="ignore",
        key="sc_moved_download",
    )
