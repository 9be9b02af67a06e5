"""The ideal customer profile and the market: :func:`icp_segments` (win rates and value of industry x
size band x place type segments), :func:`whitespace` (high-potential regions without customers) and
:func:`tam_by_territory` (all potential per territory of a plan)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from terrmap.data.market import region_places, segment_outcomes
from terrmap.data.stats import region_stats
from terrmap.geo import Layer, parse_layer
from terrmap.plan import assignment_for_layer, get_plan, territories

if TYPE_CHECKING:
    from terrmap.data.store import Store
    from terrmap.plan import PlanInfo


def icp_segments(store: Store, min_support: int = 30, top: int | None = 25) -> pd.DataFrame:
    """Segments industry x size band (employees) x place type (ZIP urbanicity), best first.

    Columns: industry, size_band, place_type, closed, won, win_rate, win_rate_low (the Wilson 95%
    lower bound, the ranking key: a high rate on few leads ranks below a slightly lower one on
    many), lift (win rate / overall), won_value, avg_deal, value_per_closed (won value per
    closed lead), open_leads, open_potential. Only segments with ``min_support`` closed leads.
    """
    df = segment_outcomes(store)
    total_closed = df["closed"].sum()
    overall = df["won"].sum() / total_closed if total_closed else 0.0
    df = df[df["closed"] >= max(1, min_support)].copy()
    n = df["closed"].astype(float)
    rate = df["won"] / n
    z = 1.96
    centre = rate + z * z / (2 * n)
    margin = z * np.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    df["win_rate"] = rate
    df["win_rate_low"] = (centre - margin) / (1 + z * z / n)
    df["lift"] = rate / overall if overall else np.nan
    df["value_per_closed"] = df["won_value"] / n
    df = df.sort_values(["win_rate_low", "value_per_closed"], ascending=False).reset_index(drop=True)
    cols = ["industry", "size_band", "place_type", "closed", "won", "win_rate", "win_rate_low", "lift",
            "won_value", "avg_deal", "value_per_closed", "open_leads", "open_potential"]
    df = df[cols]
    return df.head(top) if top else df


def _layer(layer: Layer | str) -> Layer:
    return parse_layer(layer) if isinstance(layer, str) else layer


def whitespace(store: Store, layer, top: int | None = 100, min_open_leads: int = 1) -> pd.DataFrame:
    """High-potential regions of ``layer`` with no customers (no won lead), largest potential first.

    Columns: region_id, place ("City, ST" holding most of its leads), lat, lon (mean of its
    leads), leads, open_leads, avg_score, potential, share (of all whitespace potential).
    """
    layer = _layer(layer)
    stats = region_stats(store, layer)
    ws = stats[(stats["customers"] == 0) & (stats["open_leads"] >= min_open_leads) & (stats["potential"] > 0)]
    ws = ws.sort_values(["potential", "region_id"], ascending=[False, True])
    total = float(ws["potential"].sum())
    ws = ws.assign(share=ws["potential"] / total if total else 0.0)
    if top:
        ws = ws.head(top)
    ws = ws[["region_id", "leads", "open_leads", "avg_score", "potential", "share"]].reset_index(drop=True)
    if ws.empty:
        return ws.assign(place=pd.Series(dtype=object), lat=pd.Series(dtype=float), lon=pd.Series(dtype=float))
    where = region_places(store, layer, ws["region_id"])
    out = ws.merge(where, on="region_id", how="left")
    return out[["region_id", "place", "lat", "lon", "leads", "open_leads", "avg_score", "potential", "share"]]


def tam_by_territory(store: Store, plan: PlanInfo | str | int | None = None, layer=None) -> pd.DataFrame:
    """Total addressable market per territory of ``plan`` (default: the published plan) on ``layer``
    (default: the plan's): all open potential of its regions, with open leads, customers, won
    revenue and its whitespace (regions without customers). Unassigned regions form territory -1.
    """
    if plan is None or isinstance(plan, (str, int)):
        found = get_plan(store, plan)
        if found is None:
            raise ValueError(f"no plan {plan!r}" if plan is not None else "there is no plan")
        plan = found
    layer = _layer(layer if layer is not None else plan.layer)
    stats = region_stats(store, layer)
    assign = assignment_for_layer(store, plan, layer)[["region_id", "territory_id"]]
    df = stats.merge(assign, on="region_id", how="left")
    df["territory_id"] = df["territory_id"].fillna(-1).astype(int)
    df["ws_potential"] = np.where(df["customers"] == 0, df["potential"], 0.0)
    df["ws_region"] = ((df["customers"] == 0) & (df["potential"] > 0)).astype(int)
    g = df.groupby("territory_id").agg(
        regions=("region_id", "size"), leads=("leads", "sum"), open_leads=("open_leads", "sum"),
        customers=("customers", "sum"), won_revenue=("won_revenue", "sum"), tam=("potential", "sum"),
        whitespace_regions=("ws_region", "sum"), whitespace_potential=("ws_potential", "sum"),
    ).reset_index()
    terr = territories(store, plan.plan_id)[["territory_id", "name", "rep_name"]]
    g = g.merge(terr, on="territory_id", how="left")
    g["name"] = g["name"].where(g["territory_id"] != -1, "Unassigned")
    total = float(g["tam"].sum())
    g["share"] = g["tam"] / total if total else 0.0
    g = g.rename(columns={"name": "territory", "rep_name": "rep"})
    cols = ["territory_id", "territory", "rep", "regions", "leads", "open_leads", "customers", "won_revenue", "tam",
            "share", "whitespace_regions", "whitespace_potential"]
    return g[cols].sort_values("tam", ascending=False).reset_index(drop=True)
