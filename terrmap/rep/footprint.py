"""The rep's view: one rep's footprint, KPIs beside their peers, accounts in order of likelihood to buy,
a call list and a visit route. Plain functions (no Streamlit); ``pages/rep_view.py`` shows them and
:mod:`terrmap.app.rep_map` draws the map.

Ownership comes from :func:`terrmap.plan.accounts.account_owners` (pins, then overlays, then geography),
so the accounts listed here are exactly the ones the plan gives the rep, wherever they lie.

* **Footprint**: the regions assigned to the rep's territories, plus the regions holding accounts the
  rep owns elsewhere (named-account pins, segment overlays), drawn in a separate legend row.
* **KPIs** per rep (:data:`KPI_COLUMNS`): over the accounts the rep owns; ``regions`` and ``area_km2``
  over the footprint. Peers are the *other* reps owning a territory or an overlay in the plan; the
  peer median and the percentile rank (share of peers below, ties counted half) compare with them.
* **Value of an account**: ``deal_value_if_won`` (the lead's expected deal value should it convert) and
  ``expected_value`` = score x deal_value_if_won (what the account is worth today, on average).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import h3
import numpy as np
import pandas as pd
from scipy.sparse.csgraph import connected_components

from terrmap.data import rep_queries as rq
from terrmap.frames import member
from terrmap.geo import parse_layer
from terrmap.geo.distance import haversine_km
from terrmap.geo.zipshapes import ensure_zip_shapes
from terrmap.io.csvsafe import guard_frame
from terrmap.measures import fmt_int, fmt_money, fmt_pct
from terrmap.plan import PlanInfo, get_plan, load_assignment, territories
from terrmap.plan.accounts import account_owners
from terrmap.rep.route import Route, plan_route

if TYPE_CHECKING:
    from terrmap.data.store import Store

KPI_COLUMNS = ["leads", "open_leads", "customers", "won_revenue", "potential", "avg_score", "regions", "area_km2"]
KPI_LABELS = {
    "leads": ("Accounts", "int", "accounts (leads of every status) this rep owns in the plan"),
    "open_leads": ("Open accounts", "int", "accounts not yet won or lost"),
    "customers": ("Customers", "int", "won accounts"),
    "won_revenue": ("Won revenue", "money", "sum of the deal values of the won accounts"),
    "potential": ("Potential", "money", "sum over open accounts of score × deal value if won"),
    "avg_score": ("Avg score", "pct", "mean conversion probability (score) of the open accounts"),
    "regions": ("Regions", "int", ("regions of the footprint: the rep's territories plus regions of accounts "
                                   "owned elsewhere (pins, overlays)")),
    "area_km2": ("Area (km²)", "int", "land area of the footprint's regions"),
}

# Employee size bands for filters: (label, min employees, max employees or None).
SIZE_BANDS: list[tuple[str, int, int | None]] = [
    ("1-9", 1, 9), ("10-49", 10, 49), ("50-249", 50, 249), ("250-999", 250, 999), ("1,000+", 1000, None),
]
OUTSIDE_TERRITORY_ID = -2  # legend row of footprint regions outside the rep's territories
OUTSIDE_LABEL = "Accounts outside my territories"
OUTSIDE_COLOR = "#9ca3af"

RANKED_COLUMNS = ["rank", "lead_id", "name", "industry", "employees", "annual_revenue", "status", "score",
                  "deal_value_if_won", "expected_value", "city", "zip", "lat", "lon", "rule", "owner_name",
                  "region_id"]
# A crossing of water up to this far (region centre to region centre) is driven: bay bridges, causeways, short
# car ferries, the Florida Keys (Key West is 44 km from the next ZIP's centre). An island farther off (Puerto
# Rico from Miami, 1,650 km; Hawaii) is not a drive.
ROAD_CROSSING_KM = 50.0
CALL_LIST_COLUMNS = ["rank", "lead_id", "account", "industry", "employees", "annual_revenue", "status", "score",
                     "expected_value", "deal_value_if_won", "city", "state", "zip", "lat", "lon", "owned_as"]


# -- who --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rep:
    rep_id: str
    name: str
    email: str | None
    home_zip: str | None
    home_lat: float | None
    home_lon: float | None
    home_metro: str | None

    @property
    def has_home(self) -> bool:
        return self.home_lat is not None and self.home_lon is not None and not (
            np.isnan(self.home_lat) or np.isnan(self.home_lon))


def get_rep(store: Store, rep_id: str) -> Rep:
    row = rq.rep_row(store, rep_id)
    if row is None:
        raise ValueError(f"no rep with id {rep_id!r}")
    return Rep(*row)


def resolve_plan(store: Store, name: str | None = None) -> PlanInfo | None:
    """The plan a rep sees: ``name`` (or id) if given, else the published one."""
    plan = get_plan(store, name)
    if plan is None and name is not None:
        raise ValueError(f"no plan named {name!r}")
    return plan


def plan_reps(store: Store, plan: PlanInfo) -> pd.DataFrame:
    """The reps owning a territory or an overlay in ``plan``: rep_id, name, home_metro (by name)."""
    return rq.plan_reps(store, plan.plan_id)


def rep_territories(store: Store, plan: PlanInfo, rep_id: str) -> pd.DataFrame:
    """What the rep owns in the plan: kind ('territory' | 'overlay'), id, name, color."""
    return rq.rep_territories(store, plan.plan_id, rep_id)


# -- accounts -----------------------------------------------------------------------------------------

def with_places(store: Store, owners: pd.DataFrame) -> pd.DataFrame:
    """``owners`` plus city and state of each account's ZIP (reference geography)."""
    return owners.merge(rq.zip_places(store), on="zip", how="left")


def rep_accounts(owners: pd.DataFrame, rep_id: str) -> pd.DataFrame:
    """The rows of :func:`terrmap.plan.accounts.account_owners` owned by ``rep_id``."""
    return owners[owners["owner_rep_id"] == rep_id]


def ranked_accounts(
    accounts: pd.DataFrame,
    industries: Sequence[str] | None = None,
    min_employees: int | None = None,
    max_employees: int | None = None,
    statuses: Sequence[str] | None = ("open",),
) -> pd.DataFrame:
    """Accounts by likelihood to buy (score, highest first), then expected value, then id; ``rank`` from 1.

    Filters (None: no filter): industry in ``industries``; employees within [min, max] (an
    account of unknown size is left out once a bound is set); status in ``statuses``.
    Columns: :data:`RANKED_COLUMNS` (city/state when ``accounts`` has them).
    """
    a = accounts
    keep = pd.Series(True, index=a.index)
    if industries is not None:
        keep &= a["industry"].isin(list(industries))
    if min_employees is not None:
        keep &= a["employees"].ge(min_employees).fillna(False).astype(bool)
    if max_employees is not None:
        keep &= a["employees"].le(max_employees).fillna(False).astype(bool)
    if statuses is not None:
        keep &= a["status"].isin(list(statuses))
    a = a[keep].copy()
    a["deal_value_if_won"] = a["expected_value"]
    a["expected_value"] = a["score"] * a["deal_value_if_won"]
    a = a.sort_values(["score", "expected_value", "lead_id"], ascending=[False, False, True],
                      na_position="last", kind="mergesort")
    a.insert(0, "rank", np.arange(1, len(a) + 1))
    for col in ("city", "state"):
        if col not in a:
            a[col] = None
    return a[RANKED_COLUMNS + ["state"]].reset_index(drop=True)


def size_band_bounds(first: str, last: str) -> tuple[int | None, int | None]:
    """(min, max) employees covering the bands ``first`` .. ``last`` (labels of :data:`SIZE_BANDS`);
    None where the range is open (all bands: no filter)."""
    labels = [b[0] for b in SIZE_BANDS]
    for label in (first, last):
        if label not in labels:
            raise ValueError(f"unknown size band {label!r}: use one of {', '.join(labels)}")
    i, j = sorted((labels.index(first), labels.index(last)))
    low = SIZE_BANDS[i][1] if i > 0 else None
    high = SIZE_BANDS[j][2]
    return low, high


# -- KPIs ---------------------------------------------------------------------------------------------

def region_areas_km2(store: Store, layer_key: str, region_ids: Sequence[str]) -> pd.Series:
    """Land area (km²) per region id; ZIPs from their stored polygons, H3 cells from h3."""
    ids = list(dict.fromkeys(region_ids))
    if layer_key == "zip":
        ensure_zip_shapes(store)
        df = rq.zip_areas_km2(store, ids)
        return df.set_index("zip")["area_km2"].reindex(ids).fillna(0.0)
    parse_layer(layer_key)
    return pd.Series([h3.cell_area(r, "km^2") if h3.is_valid_cell(r) else 0.0 for r in ids], index=ids, dtype=float)


def footprints(store: Store, plan: PlanInfo, owners: pd.DataFrame) -> pd.DataFrame:
    """Every rep's footprint: rep_id, region_id, territory_id (None for a region that only holds
    accounts the rep owns outside their territories)."""
    assigned = rq.assigned_rep_regions(store, plan.plan_id)
    owned = owners.loc[owners["owner_rep_id"].notna() & owners["region_id"].notna(), ["owner_rep_id", "region_id"]]
    owned = owned.drop_duplicates().rename(columns={"owner_rep_id": "rep_id"})
    extra = owned.merge(assigned[["rep_id", "region_id"]], how="left", indicator=True)
    extra = extra[extra["_merge"] == "left_only"].drop(columns="_merge").assign(territory_id=pd.NA)
    out = pd.concat([assigned, extra], ignore_index=True)
    out["territory_id"] = out["territory_id"].astype("Int64")
    return out


def all_rep_kpis(store: Store, plan: PlanInfo, owners: pd.DataFrame | None = None,
                 feet: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per rep of the plan (index rep_id) with :data:`KPI_COLUMNS`."""
    owners = account_owners(store, plan) if owners is None else owners
    feet = footprints(store, plan, owners) if feet is None else feet
    reps = plan_reps(store, plan)["rep_id"].tolist()
    own = owners[owners["owner_rep_id"].notna()]
    is_open = own["status"] == "open"
    won = own["status"] == "won"
    g = pd.DataFrame({
        "rep_id": own["owner_rep_id"],
        "leads": 1,
        "open_leads": is_open.astype(int),
        "customers": won.astype(int),
        "won_revenue": own["deal_value"].where(won, 0.0).fillna(0.0),
        "potential": own["potential"].fillna(0.0),
        "score_sum": own["score"].where(is_open & own["score"].notna(), 0.0),
        "scored_open": (is_open & own["score"].notna()).astype(int),
    }).groupby("rep_id").sum()
    g["avg_score"] = g["score_sum"] / g["scored_open"].where(g["scored_open"] > 0)
    area = region_areas_km2(store, plan.layer, feet["region_id"].unique().tolist())
    f = feet.assign(area_km2=feet["region_id"].map(area).fillna(0.0)).drop_duplicates(["rep_id", "region_id"])
    geo = f.groupby("rep_id").agg(regions=("region_id", "size"), area_km2=("area_km2", "sum"))
    out = g.join(geo, how="outer").reindex(reps)
    out[["leads", "open_leads", "customers", "regions"]] = (
        out[["leads", "open_leads", "customers", "regions"]].fillna(0).astype(int))
    out[["won_revenue", "potential", "area_km2"]] = out[["won_revenue", "potential", "area_km2"]].fillna(0.0)
    out.index.name = "rep_id"
    return out[KPI_COLUMNS]


def rep_kpis(store: Store, plan: PlanInfo, rep_id: str, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rep's KPIs beside their peers: one row per KPI with value, peer_median, percentile (0-100:
    share of the other reps of the plan below this rep, ties counted half; NaN without peers)."""
    table = all_rep_kpis(store, plan) if table is None else table
    if rep_id not in table.index:
        raise ValueError(f"rep {rep_id!r} owns no territory or overlay in plan {plan.name!r}")
    mine = table.loc[rep_id]
    peers = table.drop(index=rep_id)
    rows = []
    for k in KPI_COLUMNS:
        v = mine[k]
        others = peers[k].dropna().to_numpy(dtype=float)
        median = float(np.median(others)) if len(others) else np.nan
        if len(others) and not pd.isna(v):
            pct = 100.0 * ((others < v).sum() + 0.5 * (others == v).sum()) / len(others)
        else:
            pct = np.nan
        rows.append({"kpi": k, "value": float(v) if not pd.isna(v) else np.nan, "peer_median": median,
                     "percentile": pct})
    return pd.DataFrame(rows).set_index("kpi")


def fmt_kpi(kpi: str, value) -> str:
    kind = KPI_LABELS[kpi][1]
    return fmt_int(value) if kind == "int" else fmt_money(value) if kind == "money" else fmt_pct(value, 1)


# -- call list ----------------------------------------------------------------------------------------

def call_list(ranked: pd.DataFrame) -> pd.DataFrame:
    """The ranked accounts as a call list (:data:`CALL_LIST_COLUMNS`), text cells guarded
    (:func:`terrmap.io.csvsafe.guard_cell`)."""
    out = ranked.rename(columns={"name": "account", "rule": "owned_as"}).copy()
    out["score"] = out["score"].round(4)
    out["expected_value"] = out["expected_value"].round(2)
    return guard_frame(out[CALL_LIST_COLUMNS])


def call_list_csv(ranked: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    call_list(ranked).to_csv(buf, index=False)
    return buf.getvalue().encode("utf-8")


# -- route --------------------------------------------------------------------------------------------

def road_reachable(store: Store, plan: PlanInfo, rep: Rep, region_ids: Sequence[str]) -> set[str] | None:
    """The regions of ``region_ids`` (the rep's footprint) the rep can drive to from home: those on the piece
    of land holding the plan's region nearest home (roads run through other territories too, so over every
    region of the plan), joined across water only where a road crosses it (:data:`ROAD_CROSSING_KM`). None
    when the rep has no home base."""
    if not rep.has_home:
        return None
    mine = {r for r in region_ids if isinstance(r, str)}
    if not mine:
        return set()
    ids = sorted(mine | set(load_assignment(store, plan.plan_id)["region_id"]))
    graph = parse_layer(plan.layer).graph(store, ids)
    if graph.n == 0:
        return set()
    _, piece = connected_components(graph.adjacency_within(ROAD_CROSSING_KM), directed=False)
    home = int(np.argmin(haversine_km(rep.home_lat, rep.home_lon, graph.centroids[:, 0], graph.centroids[:, 1])))
    return {graph.region_ids[i] for i in np.flatnonzero(piece == piece[home])} & mine


def visit_route(rep: Rep, ranked: pd.DataFrame, n: int, closed: bool = True,
                reachable: set[str] | None = None) -> tuple[Route, pd.DataFrame] | None:
    """The route from the rep's home through the top ``n`` ranked accounts with coordinates that lie in
    ``reachable`` regions (see :func:`road_reachable`; None: every account).

    Returns (route, stops) with stops = those accounts in visiting order plus ``stop`` (1..n) and
    ``leg_km`` (the distance to it); None when the rep has no home or nothing to visit.
    """
    if not rep.has_home:
        return None
    candidates = ranked[ranked["lat"].notna() & ranked["lon"].notna()]
    if reachable is not None:
        candidates = candidates[member(candidates["region_id"], reachable)]
    top = candidates.head(max(int(n), 0))
    if top.empty:
        return None
    route = plan_route((rep.home_lat, rep.home_lon), top["lat"].to_numpy(), top["lon"].to_numpy(), closed=closed)
    stops = top.iloc[route.order].reset_index(drop=True)
    stops.insert(0, "stop", np.arange(1, len(stops) + 1))
    stops["leg_km"] = route.leg_km[: len(stops)]
    return route, stops


def route_table(route: Route, stops: pd.DataFrame) -> pd.DataFrame:
    """The stops as the page lists them, with the way back home as the last row of a round trip."""
    legs = stops[["stop", "name", "city", "score", "expected_value", "leg_km"]].copy()
    legs["stop"] = legs["stop"].astype(str)
    if route.closed and len(route.leg_km) > len(stops):
        home = pd.DataFrame([{"stop": "↩", "name": "Back home", "city": None, "score": np.nan,
                              "expected_value": np.nan, "leg_km": float(route.leg_km[-1])}])
        legs = pd.concat([legs, home], ignore_index=True)
    legs["cumulative_km"] = legs["leg_km"].cumsum()
    return legs


# -- map ------------------------------------------------------------------------------------------------

def footprint_frame(rep_id: str, feet: pd.DataFrame, stats: pd.DataFrame,
                    places: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rep's footprint regions as a :func:`terrmap.app.map_data.region_frame` (empty regions included, with 0)."""
    mine = feet[feet["rep_id"] == rep_id].drop_duplicates("region_id")
    frame = mine[["region_id", "territory_id"]].merge(stats, on="region_id", how="left")
    counts = ["leads", "open_leads", "customers", "won_revenue", "potential"]
    frame[counts] = frame[counts].fillna(0)
    frame["territory_id"] = frame["territory_id"].astype("Float64").fillna(OUTSIDE_TERRITORY_ID).astype(float)
    if places is not None and len(places):
        frame = frame.merge(places, on="region_id", how="left")
    for col in ("place", "states"):
        if col not in frame:
            frame[col] = None
    return frame


def footprint_territories(store: Store, plan: PlanInfo, rep_id: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The legend rows: the rep's territories, plus one row for regions outside them if any."""
    terr = territories(store, plan.plan_id)
    terr = terr[terr["rep_id"] == rep_id][["territory_id", "name", "color", "rep_name"]]
    if (frame["territory_id"] == OUTSIDE_TERRITORY_ID).any():
        terr = pd.concat([terr, pd.DataFrame([{"territory_id": OUTSIDE_TERRITORY_ID, "name": OUTSIDE_LABEL,
                                               "color": OUTSIDE_COLOR, "rep_name": None}])], ignore_index=True)
    return terr
