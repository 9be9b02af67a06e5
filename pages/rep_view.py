"""Rep view: one rep's footprint, KPIs beside their peers, accounts by likelihood to buy, call list and route.

Opened directly as ``/rep?rep=R04`` (``&plan=NAME`` for a plan other than the published one).
"""

import altair as alt
import pandas as pd
import streamlit as st

from terrmap import access
from terrmap.app import rep_map, ui
from terrmap.app.folium_protocol import show_map
from terrmap.app.map_data import MAX_REGIONS, MapData
from terrmap.data.store import open_store
from terrmap.frames import member
from terrmap.measures import fmt_int, fmt_money
from terrmap.plan.accounts import account_owners
from terrmap.rep import footprint as rv

MAP_HEIGHT = 560
MAX_STOPS = 50

s, path, stamp = ui.page("Rep view")
who = ui.viewer()
asked_plan = st.query_params.get("plan")
if asked_plan is not None and who.sees_only_published:
    st.warning("You see the published plan: drafts are the planners'.", icon=":material/info:")
    asked_plan = None

try:
    plan = rv.resolve_plan(s, asked_plan)
except ValueError as exc:
    st.error(f"{ui.md(exc)}. Remove `plan` from the address to see the published plan.")
    st.stop()
if plan is None:
    st.info("No plan yet: build one in the Editor or the Optimizer, then reps see their territories here.")
    st.stop()


@st.cache_resource(max_entries=4, show_spinner="Working out who owns which account…")
def plan_data(path: str, plan_id: int, plan_version: int, stamp: str) -> dict:
    """Shared read-only by every session: the plan's owners, footprints and per-rep KPIs."""
    store = open_store(path)
    p = rv.resolve_plan(store, plan_id)
    owners = rv.with_places(store, account_owners(store, p))
    feet = rv.footprints(store, p, owners)
    return {"owners": owners, "feet": feet, "kpis": rv.all_rep_kpis(store, p, owners, feet)}


@st.cache_resource(max_entries=12, show_spinner="Drawing the footprint…")
def footprint_data(path: str, plan_id: int, plan_version: int, stamp: str, rep_id: str) -> MapData:
    store = open_store(path)
    p = rv.resolve_plan(store, plan_id)
    return rep_map.footprint_map_data(store, p, rep_id, plan_data(path, plan_id, plan_version, stamp)["feet"],
                                      ui.cached_stats(path, p.layer, stamp), ui.cached_places(path, p.layer, stamp))


reps = rv.plan_reps(s, plan)
if reps.empty:
    st.info(f"No rep owns a territory in plan **{ui.md(plan.name)}** yet.")
    st.stop()
label_of = {r.rep_id: f"{r.name} ({r.rep_id})" + (f" · {r.home_metro}" if isinstance(r.home_metro, str) and r.home_metro else "")
            for r in reps.itertuples()}
try:  # a rep sees their own view only, whatever ?rep= says
    choices, pinned = access.rep_choice(who, st.query_params.get("rep"), label_of)
except PermissionError as exc:
    st.error(f"{ui.md(exc)}.", icon=":material/block:")
    st.page_link("pages/rep_view.py", label="Your rep view", icon=":material/person:", query_params={"rep": who.rep_id})
    st.stop()
if not choices:
    st.info(f"You own no territory in plan **{ui.md(plan.name)}**.")
    st.stop()
if not who.can_view_all:
    st.session_state["rep"] = pinned
ui.seed_from_url("rep", choices, default=pinned)
head, pick = st.columns([3, 1], vertical_alignment="bottom")
rep_id = pick.selectbox("Rep", choices, format_func=label_of.get, key="rep", placeholder="Choose a rep",
                        disabled=not who.can_view_all, help="Each rep can bookmark their own view: /rep?rep=ID")
ui.sync_url({"rep": rep_id}, {})
if rep_id is None or not who.can_see_rep(rep_id):
    head.caption(f"Plan **{ui.md(plan.name)}**. Choose a rep to see their footprint and accounts.")
    st.stop()

rep = rv.get_rep(s, rep_id)
data = plan_data(path, plan.plan_id, plan.version, stamp)
owned = rv.rep_territories(s, plan, rep_id)
terr_names = ", ".join(ui.md(n) for n in owned.loc[owned["kind"] == "territory", "name"]) or "none"
overlay_names = ", ".join(ui.md(n) for n in owned.loc[owned["kind"] == "overlay", "name"])
head.subheader(ui.md(rep.name))
head.caption(
    f"Home: **{ui.md(rep.home_metro or '–')}** {ui.md(rep.home_zip or '')} · territories: **{terr_names}**"
    + (f" · overlays: **{overlay_names}**" if overlay_names else "")
    + f" · plan **{ui.md(plan.name)}**{' (published)' if plan.published else ''}"
)

# -- KPIs beside the peer median -----------------------------------------------------------------
kpis = rv.rep_kpis(s, plan, rep_id, data["kpis"])
n_peers = len(data["kpis"]) - 1
with st.container(key="tm-rep-kpis"):
    cols = [c for _ in range(2) for c in st.columns(4)]  # two rows: room for the peer comparison
    for col, (k, row) in zip(cols, kpis.iterrows()):
        label, kind, meaning = rv.KPI_LABELS[k]
        median = row["peer_median"]
        if pd.isna(median) or pd.isna(row["value"]):
            delta = None
        elif kind == "pct":
            delta = f"{(row['value'] - median) * 100:+.1f} pts vs peers"
        elif median:
            delta = f"{(row['value'] / median - 1) * 100:+.0f}% vs peers"
        else:
            delta = None
        help_text = (f"{meaning}. Peer median (the other {n_peers} reps of the plan): {rv.fmt_kpi(k, median)}; "
                     f"percentile rank {row['percentile']:.0f} (share of peers below this rep)."
                     if n_peers else meaning)
        col.metric(label, rv.fmt_kpi(k, row["value"]), delta=delta, help=help_text, border=True,
                   delta_color="off" if k in ("regions", "area_km2") else "normal")

# -- filters -------------------------------------------------------------------------------------
accounts = rv.rep_accounts(data["owners"], rep_id)
industries_all = sorted(accounts["industry"].dropna().unique().tolist())
bands = [b[0] for b in rv.SIZE_BANDS]
f1, f2, f3, f4, f5 = st.columns([3, 2, 2, 2, 1.4], vertical_alignment="bottom")
industries = f1.multiselect("Industry", industries_all, key="rep_industry", placeholder="All industries", wrap=True,
                            help="Only accounts of these industries (none chosen: all)")
band_lo, band_hi = f2.select_slider("Employees", bands, value=(bands[0], bands[-1]), key="rep_size",
                                    help="Company size band; accounts of unknown size drop out once you narrow it")
statuses = f3.multiselect("Status", ["open", "won", "lost"], default=["open"], key="rep_status", wrap=True,
                          help="Open: prospects to win; won: customers to grow (none chosen: all)")
n_stops = f4.slider("Route stops", 1, MAX_STOPS, 10, key="rep_stops",
                    help="Visit the top N accounts of the list, in the shortest order found, from home")
closed = f5.toggle("Round trip", value=True, key="rep_closed", help="Drive back to the home base at the end")
min_emp, max_emp = rv.size_band_bounds(band_lo, band_hi)
ranked = rv.ranked_accounts(accounts, industries=industries or None, min_employees=min_emp, max_employees=max_emp,
                            statuses=statuses or None)



@st.cache_data(max_entries=24, show_spinner=False)
def reachable_regions(path: str, plan_id: int, plan_version: int, stamp: str, rep_id: str) -> set[str] | None:
    """The regions of this rep's own territories they can drive to from home (None: no home base). Accounts
    they own elsewhere (named accounts, a segment) are called or flown to, not on the driving route."""
    store = open_store(path)
    feet = plan_data(path, plan_id, plan_version, stamp)["feet"]
    own = feet["rep_id"].eq(rep_id) & feet["territory_id"].notna()
    return rv.road_reachable(store, rv.resolve_plan(store, plan_id), rv.get_rep(store, rep_id),
                             feet.loc[own, "region_id"].tolist())


reachable = reachable_regions(path, plan.plan_id, plan.version, stamp, rep_id)
on_route = member(ranked["region_id"], reachable) if reachable is not None else None  # None: no home base
off_road = ranked[~on_route] if on_route is not None else ranked.iloc[:0]
routed = rv.visit_route(rep, ranked, n_stops, closed, reachable=reachable)
route, stops = routed if routed else (None, None)

# -- map -----------------------------------------------------------------------------------------
footprint = footprint_data(path, plan.plan_id, plan.version, stamp, rep_id)
if footprint.n_features > MAX_REGIONS:
    st.warning(f"{fmt_int(footprint.n_features)} regions: too many to draw (at most {fmt_int(MAX_REGIONS)}).")
else:
    m = rep_map.build_rep_map(footprint, rep, ranked, stops, closed, route, outlines=ui.state_outlines(),
                              static_base=ui.static_base())
    show_map(m, key="rep_map", height=MAP_HEIGHT)
route_text = (f"Route: **{len(stops)} stops, {route.total_km:,.0f} km**{' round trip' if closed else ''} "
              f"(straight-line distances, {'the shortest order' if route.method == 'exact' else 'a short order'})"
              if route else ("No home base on file: no route." if not rep.has_home else "No accounts to visit."))
if len(off_road):
    places = ", ".join(sorted(off_road["state"].dropna().astype(str).unique())[:4])
    route_text = route_text.rstrip(".") + "." + (
        f" {fmt_int(len(off_road))} of these accounts are not on the route: across the sea from home"
        f"{f' ({ui.md(places)})' if places else ''}, or yours outside your territories (call them).")
st.caption(
    f"{fmt_int(footprint.n_features)} regions in the footprint, {fmt_int(len(ranked))} accounts match the filters; "
    "the top 300 are on the map (orange, numbered: "
    f"the route). {route_text}"
)

# -- accounts --------------------------------------------------------------------------------------
left, right = st.columns([3, 1], vertical_alignment="bottom")
left.subheader("Accounts by likelihood to buy")
right.download_button(
    "Download call list (CSV)", rv.call_list_csv(ranked), file_name=f"call_list_{rep_id}.csv", mime="text/csv",
    icon=":material/download:", width="stretch",
    help="The filtered accounts in this order: rank, account, firmographics, score, values, place, coordinates",
)
table = ranked.assign(score=ranked["score"] * 100, place=ranked["city"].fillna("") + ", " + ranked["state"].fillna(""),
                      by_road=on_route)
st.dataframe(
    table[["rank", "name", "industry", "employees", "score", "expected_value", "deal_value_if_won", "place", "zip",
           "status", "rule", "by_road"]],
    hide_index=True, width="stretch", height=420,
    column_config={
        "rank": st.column_config.NumberColumn("Rank", help="1 = most likely to buy (highest score)"),
        "name": st.column_config.TextColumn("Account"),
        "industry": st.column_config.TextColumn("Industry"),
        "employees": st.column_config.NumberColumn("Employees", format="localized"),
        "score": st.column_config.NumberColumn("Score", format="%.1f%%",
                                               help="probability the account converts (likelihood to buy)"),
        "expected_value": st.column_config.NumberColumn(
            "Expected value ($)", format="dollar", help="score × deal value if won: what the account is worth today"),
        "deal_value_if_won": st.column_config.NumberColumn(
            "Deal value if won ($)", format="dollar", help="the expected size of the deal should the account convert"),
        "place": st.column_config.TextColumn("City"),
        "zip": st.column_config.TextColumn("ZIP"),
        "status": st.column_config.TextColumn("Status"),
        "rule": st.column_config.TextColumn(
            "Why mine", help="geography: in your territory; pin: a named account given to you; overlay: your segment"),
        "by_road": st.column_config.CheckboxColumn(
            "On route", help="In your territories, on the land you can drive to from home (bridges, causeways and "
                             "short car ferries count; an island across the sea does not): only these go on the "
                             "visit route"),
    },
)

if stops is not None:
    st.subheader("Visit route")
    legs = rv.route_table(route, stops)
    # As text: the way-home row has no account, and an empty cell must read empty, not "None".
    legs["city"] = legs["city"].fillna("")
    legs["score"] = [f"{v:.1%}" if pd.notna(v) else "" for v in legs["score"]]
    legs["expected_value"] = [fmt_money(v) if pd.notna(v) else "" for v in legs["expected_value"]]
    st.dataframe(
        legs,
        hide_index=True, width="stretch", height=min(38 + 35 * len(legs), 420),
        column_config={
            "stop": st.column_config.TextColumn("Stop", help="↩: the way back home at the end of a round trip"),
            "name": st.column_config.TextColumn("Account"),
            "city": st.column_config.TextColumn("City"),
            "score": st.column_config.TextColumn("Score"),
            "expected_value": st.column_config.TextColumn("Expected value"),
            "leg_km": st.column_config.NumberColumn("Distance (km)", format="%.0f",
                                                    help="straight-line km from the previous stop (or from home); "
                                                         "roads are longer"),
            "cumulative_km": st.column_config.NumberColumn("So far (km)", format="%.0f"),
        },
    )

if n_peers:
    st.subheader("Where this rep stands among peers")
    chart = kpis.reset_index().assign(
        label=lambda d: d["kpi"].map(lambda k: rv.KPI_LABELS[k][0]),
        shown=lambda d: [rv.fmt_kpi(k, v) for k, v in zip(d["kpi"], d["value"])],
        median=lambda d: [rv.fmt_kpi(k, v) for k, v in zip(d["kpi"], d["peer_median"])],
    )
    bars = alt.Chart(chart).mark_bar(cornerRadiusEnd=3, height=18).encode(
        x=alt.X("percentile:Q", title="Percentile rank among the other reps (50 = the peer median)",
                scale=alt.Scale(domain=[0, 100])),
        y=alt.Y("label:N", sort=None, title=None),
        color=alt.Color("percentile:Q", scale=alt.Scale(scheme="blues", domain=[0, 100]), legend=None),
        tooltip=[alt.Tooltip("label:N", title="KPI"), alt.Tooltip("shown:N", title="This rep"),
                 alt.Tooltip("median:N", title="Peer median"), alt.Tooltip("percentile:Q", format=".0f")],
    )
    median_rule = alt.Chart(pd.DataFrame({"x": [50]})).mark_rule(strokeDash=[4, 3], color="#6b7280").encode(x="x:Q")
    st.altair_chart(alt.layer(bars, median_rule).properties(height=260), width="stretch")
