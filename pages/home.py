"""Home: headline numbers, the territories of the plan and how balanced they are."""

import altair as alt
import streamlit as st

from terrmap import mapview as mv
from terrmap import ui

ui.ensure_app_navigation()

s = ui.store()
st.title("Territory overview")
ui.require_leads(s)

stamp = ui.data_stamp(s)
head, pick = st.columns([3, 1], vertical_alignment="bottom")
plan = ui.plan_picker(s, pick)
path = str(s.path)

if plan is None:
    head.caption("No plan yet: every lead is unassigned.")
    ui.kpi_row(ui.cached_kpis(path, None, stamp))
    st.stop()

head.caption(
    f"Plan **{ui.md(plan.name)}**{' (published)' if plan.published else ''} · drawn on {ui.layer_label(plan.layer)} · "
    f"version {plan.version}"
)
ui.kpi_row(ui.cached_kpis(path, plan.plan_id, stamp))

summary = mv.territory_summary(
    ui.cached_stats(path, plan.layer, stamp),
    ui.cached_assignment(path, plan.plan_id, plan.version, plan.layer, stamp),
    ui.cached_territories(path, plan.plan_id, plan.version),
)
assigned = summary[summary["territory_id"] != -1]

st.subheader("Territories")
spread = assigned["deviation"].abs().max() if len(assigned) else 0
st.caption(
    f"{len(assigned)} territories. Potential per territory ranges from "
    f"{mv.fmt_money(assigned['potential'].min())} to {mv.fmt_money(assigned['potential'].max())}; "
    f"the largest deviation from the mean is {mv.fmt_pct(spread)}."
    if len(assigned) else "No territories in this plan."
)

table = summary.assign(
    avg_score=summary["avg_score"] * 100,
    share=summary["share"] * 100,
    deviation=(summary["deviation"] * 100).round() + 0.0,  # + 0.0: no "-0%"
)[["territory", "rep", "regions", "leads", "open_leads", "customers", "avg_score", "potential", "share", "deviation"]]
st.dataframe(
    table.sort_values("potential", ascending=False),
    hide_index=True,
    width="stretch",
    height=38 + 35 * min(len(table), 25),
    column_config={
        "territory": st.column_config.TextColumn("Territory"),
        "rep": st.column_config.TextColumn("Rep"),
        "regions": st.column_config.NumberColumn("Regions", format="localized",
                                                 help=f"regions of the plan's layer ({ui.layer_label(plan.layer)})"),
        "leads": st.column_config.NumberColumn("Leads", format="localized"),
        "open_leads": st.column_config.NumberColumn("Open leads", format="localized"),
        "customers": st.column_config.NumberColumn("Customers", format="localized"),
        "avg_score": st.column_config.NumberColumn("Avg score", format="%.1f%%",
                                                   help="mean conversion probability of the open leads"),
        "potential": st.column_config.NumberColumn("Potential ($)", format="compact",
                                                   help="sum over open leads of score × expected deal value"),
        "share": st.column_config.ProgressColumn("Share of potential", format="%.1f%%", min_value=0,
                                                 max_value=float(max(table["share"].max(), 1))),
        "deviation": st.column_config.NumberColumn("vs. mean", format="%+.0f%%",
                                                   help="potential compared with the mean territory"),
    },
)

st.subheader("Leads and lead quality by territory")
chart_df = assigned.sort_values("leads", ascending=False).assign(
    avg_score_pct=lambda d: d["avg_score"],
    rep=lambda d: d["rep"].fillna("–"),
)
order = chart_df["territory"].tolist()
colors = [mv.safe_color(c) for c in chart_df["color"]]
base = alt.Chart(chart_df).encode(
    x=alt.X("territory:N", sort=order, title=None, axis=alt.Axis(labelAngle=-40, labelLimit=140, labelOverlap=False)),
)
tooltip = [
    alt.Tooltip("territory:N", title="Territory"),
    alt.Tooltip("rep:N", title="Rep"),
    alt.Tooltip("leads:Q", title="Leads", format=","),
    alt.Tooltip("avg_score:Q", title="Avg score", format=".1%"),
    alt.Tooltip("potential:Q", title="Potential", format="$,.0f"),
]
bars = base.mark_bar(cornerRadiusTopLeft=3, cornerRadiusTopRight=3, opacity=0.9).encode(
    y=alt.Y("leads:Q", title="Leads", axis=alt.Axis(format=",")),
    color=alt.Color("territory:N", scale=alt.Scale(domain=order, range=colors), legend=None),
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

unassigned = summary[summary["territory_id"] == -1]
if len(unassigned):
    st.info(
        f"{mv.fmt_int(unassigned['leads'].iloc[0])} leads in {mv.fmt_int(unassigned['regions'].iloc[0])} regions "
        "are not in any territory.",
        icon=":material/warning:",
    )

st.page_link("pages/map.py", label="Open the map", icon=":material/map:")
