"""Model: the lead-scoring model's validation, retraining, ideal customer profile, whitespace, TAM and lead reasons."""

import altair as alt
import pandas as pd
import streamlit as st

from terrmap import scoring
from terrmap.access import Action
from terrmap.app import ui
from terrmap.app.map_colors import LAND_COLOR
from terrmap.data import models as stored_models
from terrmap.data.store import open_store
from terrmap.geo import parse_layer
from terrmap.measures import CHART_COUNT_FORMAT, fmt_int, fmt_money, fmt_pct
from terrmap.plan.metrics import METRIC_HELP
from terrmap.scoring.impact import balance_snapshot, rescoring_impact

s, path, _ = ui.page("Lead scoring model")
who = ui.require(Action.VIEW_ALL)

POS_COLOR = "#2ca02c"
NEG_COLOR = "#d62728"
MODEL_COLOR = "#1f77b4"
BASE_COLOR = "#ff7f0e"
RETRAIN_POPOVER = "model_retrain_popover"


# -- cached data (keyed by the model version and the data stamp) ----------------------------------

@st.cache_resource(max_entries=2, show_spinner="Loading the model…")
def cached_model(db: str, version: int) -> scoring.LeadModel:
    return scoring.load_model(open_store(db), version)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_icp(db: str, stamp: str, version, min_support: int) -> pd.DataFrame:
    return scoring.icp_segments(open_store(db), min_support=min_support, top=None)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_whitespace(db: str, stamp: str, version, layer_key: str, top: int) -> pd.DataFrame:
    return scoring.whitespace(open_store(db), parse_layer(layer_key), top=top)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_tam(db: str, stamp: str, version, plan_id: int, plan_version: int, layer_key: str) -> pd.DataFrame:
    return scoring.tam_by_territory(open_store(db), plan_id, layer_key)


@st.cache_data(max_entries=4, show_spinner=False)
def cached_top_leads(db: str, stamp: str, version) -> pd.DataFrame:
    return stored_models.top_open_leads(open_store(db), limit=300)


# -- status and retraining ------------------------------------------------------------------

version = scoring.latest_version(s)
metrics = scoring.latest_metrics(s)
sources = stored_models.score_source_counts(s)

head, action = st.columns([3, 1], vertical_alignment="bottom")
head = head.empty()  # filled once a retrain (below) is done

if st.session_state.pop("model_close_retrain", False):
    st.session_state[RETRAIN_POPOVER] = False  # a finished retrain closes its popover (set before it is drawn)
with action.popover("Retrain", icon=":material/model_training:", width="stretch", key=RETRAIN_POPOVER,
                    on_change="rerun"):
    seed = st.number_input("Random seed", min_value=0, max_value=2**31 - 1, value=scoring.DEFAULT_SEED, step=1,
                           help="The same data and seed give the same model and scores.")
    st.caption("New scores change every plan's revenue potential: you see each plan's balance before and after.")
    go = st.button("Train and score", type="primary", icon=":material/play_arrow:", width="stretch",
                   disabled=not who.can_manage_data,
                   help=None if who.can_manage_data else "Retraining changes every score: an admin's task.") \
        and who.can_manage_data

told = False
if go:
    bar = st.progress(0.0, text="Starting…")

    def progress(frac: float, msg: str) -> None:
        bar.progress(min(max(float(frac), 0.0), 1.0), text=str(msg))

    before = balance_snapshot(s)
    try:
        result = scoring.retrain(s, seed=int(seed), progress=progress)
    except scoring.NotEnoughHistory as exc:
        bar.empty()
        st.warning(str(exc), icon=":material/warning:")
        told = True
    else:
        bar.progress(1.0, text="Comparing the plans' balance…")
        ui.clear_caches()
        st.session_state["model_retrained"] = (result, *rescoring_impact(before, balance_snapshot(s)))
        st.session_state["model_close_retrain"] = True
        st.rerun()

retrained = st.session_state.pop("model_retrained", None)
if retrained is not None:
    result, per_territory, per_plan = retrained
    st.success(
        f"Model {result['model_version']} trained (ROC AUC {result['roc_auc']:.3f}, ECE {result['ece']:.3f}) "
        f"and {result['scored']['open_leads']:,} open leads scored in "
        f"{result['train_seconds'] + result['scored']['seconds']:.1f} s.",
        icon=":material/check_circle:",
    )
    changed = per_plan[per_plan["balance_changes"]]
    with st.container(border=True, key="tm-retrain-impact"):
        st.markdown("**What the new scores did to the plans** " + (
            f"· the balance of {len(changed)} of {len(per_plan)} plan(s) changed by a point or more: "
            + ", ".join(ui.md(n) for n in changed["plan"]) if len(changed) else "· no plan's balance changed "
            "by a point or more"))
        st.dataframe(per_plan.assign(max_deviation_before=per_plan["max_deviation_before"] * 100,
                                     max_deviation_after=per_plan["max_deviation_after"] * 100)[
            ["plan", "potential_before", "potential_after", "max_deviation_before", "max_deviation_after"]],
            hide_index=True, width="stretch", column_config={
                "plan": "Plan", "potential_before": st.column_config.NumberColumn("Potential before ($)", format="compact"),
                "potential_after": st.column_config.NumberColumn("Potential after ($)", format="compact"),
                "max_deviation_before": st.column_config.NumberColumn("Max deviation before", format="%.1f%%"),
                "max_deviation_after": st.column_config.NumberColumn("Max deviation after", format="%.1f%%",
                                                                     help=METRIC_HELP["max_abs_deviation"])})
        first = per_plan.iloc[0] if len(per_plan) else None
        if first is not None:
            rows = per_territory[per_territory["plan_id"] == first["plan_id"]]
            st.caption(f"Per territory of **{ui.md(first['plan'])}**" + (" (published)" if first["published"] else ""))
            st.dataframe(rows.assign(**{c: rows[c] * 100 for c in ("deviation_before", "deviation_after", "change")})[
                ["territory", "potential_before", "potential_after", "deviation_before", "deviation_after", "change"]],
                hide_index=True, width="stretch", column_config={
                    "territory": "Territory",
                    "potential_before": st.column_config.NumberColumn("Potential before ($)", format="compact"),
                    "potential_after": st.column_config.NumberColumn("Potential after ($)", format="compact"),
                    "deviation_before": st.column_config.NumberColumn("Deviation before", format="%+.1f%%"),
                    "deviation_after": st.column_config.NumberColumn("Deviation after", format="%+.1f%%"),
                    "change": st.column_config.NumberColumn("Change (points)", format="%+.1f")})

stamp = ui.data_stamp(s)

if metrics:
    head.caption(
        f"Model **{version}** trained {metrics.get('created_at', '')[:16]} on {metrics['n_closed']:,} closed leads "
        f"({metrics['n_won']:,} won) · seed {metrics['seed']} · training data hash `{metrics['data_hash'][:12]}`"
    )
else:
    head.caption("No model trained yet: open leads are scored by the fallback (imported CRM score, else fit score).")

if len(sources):
    parts = [f"{int(r.open_leads):,} by **{ui.md(r.score_source or 'nothing')}**" for r in sources.itertuples()]
    st.caption("Open leads scored: " + " · ".join(parts))

if not metrics and not told:
    try:
        counts = scoring.check_history(s)
    except scoring.NotEnoughHistory as exc:
        st.info(str(exc), icon=":material/info:")
    else:
        st.info(
            f"{counts['closed']:,} closed leads ({counts['won']:,} won) are enough to train a model: use **Retrain**, "
            "or `python -m terrmap score --db PATH`.",
            icon=":material/info:",
        )

# -- headline metrics -----------------------------------------------------------------------

# Keyed and tracked: a rerun (a retrain, a widget in a tab) keeps the tab the user is on.
tabs = st.tabs(["Validation", "Ideal customer profile", "Whitespace", "Territory TAM", "Lead lookup"],
               key="model_tab", on_change="rerun")

with tabs[0]:
    if not metrics:
        st.caption("Validation appears here once a model is trained.")
    else:
        base = metrics["baseline"]
        vs = f"vs. baseline ({base['label'].lower()})"
        cols = st.columns(6)
        cols[0].metric("ROC AUC", metrics["roc_auc"], format="%.3f",
                       delta=f"{metrics['roc_auc'] - base['roc_auc']:+.3f}",
                       help=f"chance a random won lead scores above a random lost one; change {vs}", border=True)
        cols[1].metric("PR AUC", metrics["pr_auc"], format="%.3f",
                       delta=f"{metrics['pr_auc'] - base['pr_auc']:+.3f}",
                       help=f"average precision; change {vs}", border=True)
        cols[2].metric("ECE", metrics["ece"], format="%.3f", delta=f"{metrics['ece'] - base['ece']:+.3f}",
                       delta_color="inverse",
                       help="expected calibration error: mean gap between predicted and observed win rates over 10 "
                            f"equal-size score bins (lower is better); change {vs}", border=True)
        cols[3].metric("Brier", metrics["brier"], format="%.3f", delta=f"{metrics['brier'] - base['brier']:+.3f}",
                       delta_color="inverse", help=f"mean squared error of the probabilities; change {vs}", border=True)
        cols[4].metric("Win rate", fmt_pct(metrics["base_rate"], 1), border=True, help="of the closed leads")
        cols[5].metric("Held-out", metrics["n_test"], format="compact", border=True,
                       help=f"closed leads never seen in training, where every figure here is measured "
                            f"(trained on {metrics['n_train']:,}, calibrated on {metrics['n_calibration']:,})")
        st.caption(
            f"Baseline: **{ui.md(base['label'])}**. Calibration: {metrics['calibration']}. "
            f"{metrics['boosting_iterations']} boosting rounds. "
            f"All figures are on the {metrics['n_test']:,} held-out leads."
        )

        left, right = st.columns(2)
        with left:
            st.subheader("Calibration")
            cal = pd.DataFrame(metrics["calibration_curve"])
            top = float(max(cal["predicted"].max(), cal["observed"].max()) * 1.05)
            diag = alt.Chart(pd.DataFrame({"x": [0, top], "y": [0, top]})).mark_line(
                strokeDash=[4, 4], color="#9ca3af").encode(x="x:Q", y="y:Q")
            curve = alt.Chart(cal).mark_line(point=True, color=MODEL_COLOR).encode(
                x=alt.X("predicted:Q", title="Predicted win probability", axis=alt.Axis(format="%"),
                        scale=alt.Scale(domain=[0, top])),
                y=alt.Y("observed:Q", title="Observed win rate", axis=alt.Axis(format="%"),
                        scale=alt.Scale(domain=[0, top])),
                tooltip=[alt.Tooltip("bin:O", title="Bin"), alt.Tooltip("n:Q", title="Leads", format=CHART_COUNT_FORMAT),
                         alt.Tooltip("predicted:Q", title="Predicted", format=".1%"),
                         alt.Tooltip("observed:Q", title="Observed", format=".1%")],
            )
            st.altair_chart(alt.layer(diag, curve).properties(height=320), width="stretch")
            st.caption("Ten bins of equal size by score; on the dashed line, predictions match outcomes.")
        with right:
            st.subheader("Cumulative gains")
            gains = scoring.gains_curves(metrics)
            chart = alt.Chart(gains).mark_line(point=True).encode(
                x=alt.X("leads:Q", title="Share of leads worked, best scores first", axis=alt.Axis(format="%")),
                y=alt.Y("wins:Q", title="Share of wins captured", axis=alt.Axis(format="%")),
                color=alt.Color("who:N", title=None, scale=alt.Scale(
                    domain=["Model", base["label"], "Random"], range=[MODEL_COLOR, BASE_COLOR, "#9ca3af"]),
                    legend=alt.Legend(orient="bottom-right")),
                tooltip=[alt.Tooltip("who:N", title=""), alt.Tooltip("leads:Q", title="Leads", format=".0%"),
                         alt.Tooltip("wins:Q", title="Wins", format=".0%")],
            )
            st.altair_chart(chart.properties(height=320), width="stretch")
            g10 = metrics["gains"][0]
            st.caption(f"The top 10% of leads by score hold {g10['cum_wins_share']:.0%} of the wins "
                       f"(lift {g10['lift']:.1f}x).")

        left, right = st.columns(2)
        with left:
            st.subheader("Lift by decile")
            dec = pd.DataFrame(metrics["gains"])
            bars = alt.Chart(dec).mark_bar(color=MODEL_COLOR, opacity=0.85).encode(
                x=alt.X("decile:O", title="Score decile (1 = best)"),
                y=alt.Y("lift:Q", title="Win rate / average"),
                tooltip=[alt.Tooltip("decile:O", title="Decile"), alt.Tooltip("n:Q", title="Leads", format=CHART_COUNT_FORMAT),
                         alt.Tooltip("wins:Q", title="Wins", format=CHART_COUNT_FORMAT),
                         alt.Tooltip("win_rate:Q", title="Win rate", format=".1%"),
                         alt.Tooltip("lift:Q", title="Lift", format=".2f")],
            )
            one = alt.Chart(pd.DataFrame({"y": [1.0]})).mark_rule(strokeDash=[4, 4], color="#6b7280").encode(y="y:Q")
            st.altair_chart(alt.layer(bars, one).properties(height=300), width="stretch")
        with right:
            st.subheader("What drives the score")
            imp = pd.DataFrame(metrics["permutation_importance"])
            order = imp.sort_values("importance", ascending=False)["label"].tolist()
            chart = alt.Chart(imp).mark_bar(color=MODEL_COLOR, opacity=0.85).encode(
                y=alt.Y("label:N", sort=order, title=None, axis=alt.Axis(labelLimit=220, labelOverlap=False)),
                x=alt.X("importance:Q", title="Drop of ROC AUC when shuffled"),
                tooltip=[alt.Tooltip("label:N", title="Feature"),
                         alt.Tooltip("importance:Q", title="Importance", format=".4f"),
                         alt.Tooltip("std:Q", title="± (std)", format=".4f")],
            )
            st.altair_chart(chart.properties(height=max(160, 30 * len(imp))), width="stretch")
            st.caption("Permutation importance on the held-out leads (mean of 3 shuffles).")

        st.subheader("Model vs. baseline")
        same = base.get("model_on_same_leads")
        comp = scoring.comparison_table(metrics)
        st.dataframe(comp, hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(c, format="%.4f") for c in comp.columns[1:]})
        st.caption(f"On {base['n']:,} held-out leads"
                   + (" (those with an imported CRM score)." if same else "."))

        vm = metrics.get("value_model", {})
        with st.expander("Expected deal value", icon=":material/payments:"):
            if vm.get("median_abs_pct_error") is not None:
                st.markdown(
                    f"{ui.md(vm['method'])}, trained on {vm['n_train']:,} won deals. On {vm['n_test']:,} held-out won "
                    f"deals the median error is **{vm['median_abs_pct_error']:.0%}** (industry median rule: "
                    f"{vm['baseline_median_abs_pct_error']:.0%}); R² of log value {vm['r2_log']:.2f}."
                )
            else:
                st.markdown(f"{vm.get('n_won_with_value', 0):,} won deals with a value: too few for a model, the "
                            "expected value is the industry median of won deals.")
            st.caption("Potential of an open lead = score × expected deal value.")

        with st.expander("Features and excluded columns", icon=":material/list:"):
            st.dataframe(scoring.features_table(metrics), hide_index=True, width="stretch")
            if metrics["excluded"]:
                st.markdown("**Not used** (leakage guard, identifiers, free text …)")
                st.dataframe(scoring.excluded_table(metrics), hide_index=True, width="stretch")

        hist = stored_models.model_history(s)
        if len(hist) > 1:
            with st.expander(f"Model history ({len(hist)} versions)", icon=":material/history:"):
                st.dataframe(hist, hide_index=True, width="stretch")

# -- ICP ---------------------------------------------------------------------------------------

with tabs[1]:
    st.caption("Segments of industry × company size × place type ranked by win rate (its 95% lower bound, so "
               "a high rate on few leads does not outrank a solid one), with the value they bring.")
    min_support = st.slider("Minimum closed leads per segment", 10, 500, 30, step=10, key="icp_support")
    icp = cached_icp(path, stamp, version, min_support)
    if icp.empty:
        st.info("No segment has that many closed leads.")
    else:
        st.dataframe(
            icp.head(50), hide_index=True, width="stretch",
            column_config={
                "industry": st.column_config.TextColumn("Industry"),
                "size_band": st.column_config.TextColumn("Employees"),
                "place_type": st.column_config.TextColumn("Place"),
                "closed": st.column_config.NumberColumn("Closed", format="localized"),
                "won": st.column_config.NumberColumn("Won", format="localized"),
                "win_rate": st.column_config.ProgressColumn("Win rate", format="percent", min_value=0, max_value=1),
                "win_rate_low": st.column_config.NumberColumn("Win rate (low)", format="percent",
                                                              help="95% Wilson lower bound: the ranking key"),
                "lift": st.column_config.NumberColumn("Lift", format="%.2fx"),
                "won_value": st.column_config.NumberColumn("Won value ($)", format="compact"),
                "avg_deal": st.column_config.NumberColumn("Median deal ($)", format="compact"),
                "value_per_closed": st.column_config.NumberColumn("Value per closed lead ($)", format="compact"),
                "open_leads": st.column_config.NumberColumn("Open leads", format="localized"),
                "open_potential": st.column_config.NumberColumn("Open potential ($)", format="compact"),
            },
        )

# -- whitespace --------------------------------------------------------------------------------

with tabs[2]:
    st.caption("Regions with open potential and no customer yet, largest potential first.")
    c1, c2 = st.columns([2, 1])
    ws_layer = c1.selectbox("Regions", ui.layer_options(), index=ui.layer_options().index("zip"),
                            format_func=ui.layer_label, key="ws_layer")
    ws_top = c2.number_input("How many", 10, 1000, 100, step=10, key="ws_top")
    ws = cached_whitespace(path, stamp, version, ws_layer, int(ws_top))
    if ws.empty:
        st.info("Every region with open potential already has a customer.")
    else:
        points = alt.Chart(ws.dropna(subset=["lat", "lon"])).mark_circle(opacity=0.75, stroke="#111827",
                                                                         strokeWidth=0.4).encode(
            longitude="lon:Q", latitude="lat:Q",
            size=alt.Size("potential:Q", title="Potential", scale=alt.Scale(range=[15, 500]),
                          legend=alt.Legend(format="$,.0f")),
            color=alt.Color("avg_score:Q", title="Avg score", scale=alt.Scale(scheme="viridis"),
                            legend=alt.Legend(format=".0%")),
            tooltip=[alt.Tooltip("place:N", title="Place"), alt.Tooltip("region_id:N", title="Region"),
                     alt.Tooltip("potential:Q", title="Potential", format="$,.0f"),
                     alt.Tooltip("open_leads:Q", title="Open leads", format=CHART_COUNT_FORMAT),
                     alt.Tooltip("avg_score:Q", title="Avg score", format=".1%")],
        )
        layers = []
        outlines = ui.chart_outlines()
        if outlines:
            layers.append(alt.Chart(alt.Data(values=outlines)).mark_geoshape(
                fill=LAND_COLOR, stroke="#9ca3af", strokeWidth=0.5))
        layers.append(points)
        st.altair_chart(alt.layer(*layers).project(type="albersUsa").properties(height=460), width="stretch")
        st.dataframe(
            ws, hide_index=True, width="stretch",
            column_order=["region_id", "place", "open_leads", "avg_score", "potential", "share"],
            column_config={
                "region_id": st.column_config.TextColumn("Region"),
                "place": st.column_config.TextColumn("Place"),
                "open_leads": st.column_config.NumberColumn("Open leads", format="localized"),
                "avg_score": st.column_config.NumberColumn("Avg score", format="percent"),
                "potential": st.column_config.NumberColumn("Potential ($)", format="compact"),
                "share": st.column_config.NumberColumn("Share of whitespace", format="percent"),
            },
        )

# -- TAM -----------------------------------------------------------------------------------------

with tabs[3]:
    plan = ui.plan_picker(s)
    if plan is None:
        st.info("No plan yet: TAM per territory needs a plan.")
    else:
        st.caption(f"Total addressable market of each territory of **{ui.md(plan.name)}**: all open potential "
                   "(score × expected deal value) of its regions, and the part in regions without customers.")
        tam = cached_tam(path, stamp, version, plan.plan_id, plan.version, plan.layer)
        chart = alt.Chart(tam).mark_bar(opacity=0.9).encode(
            x=alt.X("territory:N", sort="-y", title=None,
                    axis=alt.Axis(labelAngle=-40, labelLimit=140, labelOverlap=False)),
            y=alt.Y("tam:Q", title="TAM ($)", axis=alt.Axis(format="$,.2s")),
            color=alt.value(MODEL_COLOR),
            tooltip=[alt.Tooltip("territory:N", title="Territory"), alt.Tooltip("rep:N", title="Rep"),
                     alt.Tooltip("tam:Q", title="TAM", format="$,.0f"),
                     alt.Tooltip("whitespace_potential:Q", title="Whitespace", format="$,.0f"),
                     alt.Tooltip("share:Q", title="Share", format=".1%")],
        )
        st.altair_chart(chart.properties(height=320), width="stretch")
        st.dataframe(
            tam.drop(columns=["territory_id"]), hide_index=True, width="stretch",
            column_config={
                "territory": st.column_config.TextColumn("Territory"),
                "rep": st.column_config.TextColumn("Rep"),
                "regions": st.column_config.NumberColumn("Regions", format="localized"),
                "leads": st.column_config.NumberColumn("Leads", format="localized"),
                "open_leads": st.column_config.NumberColumn("Open leads", format="localized"),
                "customers": st.column_config.NumberColumn("Customers", format="localized"),
                "won_revenue": st.column_config.NumberColumn("Won revenue ($)", format="compact"),
                "tam": st.column_config.NumberColumn("TAM ($)", format="compact"),
                "share": st.column_config.ProgressColumn("Share of TAM", format="percent", min_value=0,
                                                         max_value=float(max(tam["share"].max(), 0.01))),
                "whitespace_regions": st.column_config.NumberColumn("Whitespace regions", format="localized"),
                "whitespace_potential": st.column_config.NumberColumn("Whitespace ($)", format="compact"),
            },
        )

# -- lead lookup -----------------------------------------------------------------------------------

with tabs[4]:
    top_leads = cached_top_leads(path, stamp, version)
    names = dict(zip(top_leads["lead_id"], top_leads["name"].fillna("")))
    c1, c2 = st.columns(2)
    typed = c1.text_input("Lead ID", key="lookup_id", placeholder="type a lead id")
    picked = c2.selectbox(
        "… or one of the open leads with the most potential", top_leads["lead_id"].tolist(), index=None,
        format_func=lambda i: f"{i} · {names.get(i, '')}", key="lookup_pick",
    )
    lead_id = (typed or "").strip() or picked
    if not lead_id:
        st.caption("Pick a lead to see its score and the top reasons for it.")
    else:
        lead = stored_models.lead_card(s, lead_id)
        if lead.empty:
            st.warning(f"No lead with id {ui.md(lead_id)}.")
        else:
            row = lead.iloc[0]
            cols = st.columns(4)
            cols[0].metric("Score", fmt_pct(row.score, 1), border=True, help="probability the lead converts")
            cols[1].metric("Expected deal value", fmt_money(row.expected_value), border=True)
            cols[2].metric("Potential", fmt_money(row.potential) if row.status == "open" else "– (closed)",
                           border=True)
            cols[3].metric("Scored by", str(row.score_source or "–"), border=True)
            st.caption(f"{ui.md(row['name'])} · {ui.md(row.industry)} · "
                       f"{fmt_int(row.employees)} employees · ZIP {ui.md(row.zip)} · status {ui.md(row.status)}")
            source = str(row.score_source or "")
            model = None
            if source.startswith("model:"):
                try:
                    model = cached_model(path, int(source.split(":", 1)[1]))
                except (scoring.NoModel, ValueError):
                    model = None
            reasons = scoring.explain_lead(s, lead_id, top=8, model=model)
            if not reasons:
                st.caption("No reasons to show.")
            else:
                rdf = scoring.reasons_table(reasons)
                order = rdf["label"].tolist()
                chart = alt.Chart(rdf).mark_bar().encode(
                    y=alt.Y("label:N", sort=order, title=None, axis=alt.Axis(labelLimit=320)),
                    x=alt.X("points:Q", title="Effect on the score (percentage points)"),
                    color=alt.condition(alt.datum.points >= 0, alt.value(POS_COLOR), alt.value(NEG_COLOR)),
                    tooltip=[alt.Tooltip("feature:N", title="Feature"), alt.Tooltip("value:N", title="Value"),
                             alt.Tooltip("points:Q", title="Points", format="+.2f")],
                )
                st.altair_chart(chart.properties(height=max(120, 34 * len(rdf))), width="stretch")
                st.caption(
                    "Each bar: the score minus the score this lead would get with that feature at a typical value "
                    "(median, or most frequent category), everything else unchanged."
                    if model is not None else
                    "Fallback score: the fit score's terms above an unknown-size company, or the imported CRM score."
                )
