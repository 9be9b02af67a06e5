"""Home: headline numbers, the territories of the plan and how balanced they are."""

import altair as alt
import streamlit as st

from terrmap.access import Action
from terrmap.app import structure as us
from terrmap.app import ui
from terrmap.app.map_colors import UNASSIGNED_COLOR, safe_color
from terrmap.measures import CHART_COUNT_FORMAT, fmt_int, fmt_money, fmt_pct

s, path, stamp = ui.page("Territory overview")
ui.require(Action.VIEW_ALL)
head, pick = st.columns([3, 1], vertical_alignment="bottom")
plan = ui.plan_picker(s, pick)

if plan is None:
    head.caption("No plan yet: every lead is unassigned.")
    ui.kpi_row(ui.cached_kpis(path, None, stamp))
    st.stop()

head.caption(
    f"Plan **{ui.md(plan.name)}**{' (published)' if plan.published else ''} · drawn on {ui.layer_label(plan.layer)} · "
    f"version {plan.version}"
)
ui.kpi_row(ui.cached_kpis(path, plan.plan_id, stamp))

level = us.level_picker(s, plan)
rollup = us.rollup(s, plan, level)
reps = us.rep_names(s)
owner_metrics = us.cached_owner_metrics(path, plan.plan_id, plan.version, *us.stamps(s, plan))
owner_rep = {(k, str(i)): r for k, i, r in zip(owner_metrics["owner_kind"], owner_metrics["owner_id"],
                                                owner_metrics["rep_id"])}
owned = rollup[rollup["kind"].isin(["territory", "node"])]
rollup["rep"] = [
    reps.get(owner_rep.get((k, n))) if k in ("territory", "overlay") else f"{t} territories"
    for k, n, t in zip(rollup["kind"], rollup["node_id"], rollup["territories"])
]
rollup["label"] = [f"{n} (overlay)" if k == "overlay" else n for k, n in zip(rollup["kind"], rollup["name"])]
total_potential = float(rollup["potential"].sum())
rollup["share"] = rollup["potential"] / total_potential if total_potential > 0 else 0.0

plural = us.plural(level)
st.subheader(plural)
spread = owned["deviation"].abs().max() if len(owned) else 0
n_overlays = int((rollup["kind"] == "overlay").sum())
st.caption(
    f"{len(owned)} {plural.lower()}"
    + (f" and {n_overlays} segment overlay{'s' if n_overlays != 1 else ''}" if n_overlays else "")
    + f". Potential per {level.lower()} ranges from {fmt_money(owned['potential'].min())} to "
    f"{fmt_money(owned['potential'].max())}; the largest deviation from the mean is {fmt_pct(spread)}. "
    "Each account counts once, where it is owned (a pin, then an overlay, then geography)."
    if len(owned) else f"No {plural.lower()} in this plan."
)

table = rollup.assign(
    avg_score=rollup["avg_score"] * 100,
    share=rollup["share"] * 100,
    deviation=(rollup["deviation"] * 100).round() + 0.0,  # + 0.0: no "-0%"
)[["label", "rep", "regions", "leads", "open_leads", "customers", "avg_score", "potential", "share", "deviation"]]
st.dataframe(
    # an overlay has no "vs. mean" (it is no territory): a dash, not the grid's "None"
    table.sort_values("potential", ascending=False).style.format({"deviation": "{:+.0f}%"}, na_rep="–"),
    hide_index=True,
    width="stretch",
    height=38 + 35 * min(len(table), 25),
    column_config={
        "label": st.column_config.TextColumn(level, help="overlays: segment teams owning accounts across territories"),
        "rep": st.column_config.TextColumn("Rep" if level == "Territory" else "Rep / territories"),
        "regions": st.column_config.NumberColumn("Regions", format="localized",
                                                 help=f"regions of the plan's layer ({ui.layer_label(plan.layer)}); "
                                                      "overlays own accounts, not regions"),
        "leads": st.column_config.NumberColumn("Leads", format="localized", help="accounts owned (each counted once)"),
        "open_leads": st.column_config.NumberColumn("Open leads", format="localized"),
        "customers": st.column_config.NumberColumn("Customers", format="localized", help="won accounts"),
        "avg_score": st.column_config.NumberColumn("Avg score", format="%.1f%%",
                                                   help="mean conversion probability of the open leads"),
        "potential": st.column_config.NumberColumn("Potential ($)", format="compact",
                                                   help="sum over open leads of score × expected deal value"),
        "share": st.column_config.ProgressColumn("Share of potential", format="%.1f%%", min_value=0,
                                                 max_value=float(max(table["share"].max(), 1))),
        "deviation": st.column_config.NumberColumn(
            "vs. mean",
            help=f"potential compared with the mean {level.lower()} (overlays and unplaced rows are not counted)"),
    },
)

st.subheader(f"Leads and lead quality by {level.lower()}")
chart_df = rollup[rollup["leads"] > 0].sort_values("leads", ascending=False).assign(
    rep=lambda d: d["rep"].fillna("–"),
    color=lambda d: d["color"].fillna(UNASSIGNED_COLOR),
)
order = chart_df["label"].tolist()
colors = [safe_color(c) for c in chart_df["color"]]
base = alt.Chart(chart_df).encode(
    x=alt.X("label:N", sort=order, title=None, axis=alt.Axis(labelAngle=-40, labelLimit=140, labelOverlap=False)),
)
tooltip = [
    alt.Tooltip("label:N", title=level),
    alt.Tooltip("rep:N", title="Rep" if level == "Territory" else "Rep / territories"),
    alt.Tooltip("leads:Q", title="Leads", format=CHART_COUNT_FORMAT),
    alt.Tooltip("avg_score:Q", title="Avg score", format=".1%"),
    alt.Tooltip("potential:Q", title="Potential", format="$,.0f"),
]
bars = base.mark_bar(cornerRadiusTopLeft=3, cornerRadiusTopRight=3, opacity=0.9).encode(
    y=alt.Y("leads:Q", title="Leads", axis=alt.Axis(format=CHART_COUNT_FORMAT)),
    color=alt.Color("label:N", scale=alt.Scale(domain=order, range=colors), legend=None),
    tooltip=tooltip,
)
dots = base.mark_point(filled=True, size=70, color="#111827", opacity=0.85).encode(
    y=alt.Y("avg_score:Q", title="Avg score of open leads (●)", axis=alt.Axis(format=".1%", orient="right"),
            scale=alt.Scale(domain=[0, max(0.05, float(chart_df["avg_score"].max() or 0) * 1.25)])),
    tooltip=tooltip,
)
chart = alt.layer(bars, dots).resolve_scale(y="independent").properties(height=360)
st.altair_chart(chart, width="stretch")
st.caption("Bars: number of leads (left axis). Dots: average score of the open leads (right axis).")

owned_leads = int(rollup["leads"].sum())
all_leads = int(ui.cached_kpis(path, plan.plan_id, stamp)["leads"])
if owned_leads < all_leads:
    st.info(f"{fmt_int(all_leads - owned_leads)} leads are in regions of no territory (and no overlay or pin "
            "claims them).", icon=":material/warning:")

st.page_link("pages/map.py", label="Open the map", icon=":material/map:")
