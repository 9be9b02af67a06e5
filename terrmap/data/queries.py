"""Queries the map and the home page need beyond region stats: where regions are, headline numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from terrmap.measures import MEASURES

if TYPE_CHECKING:
    from terrmap.data.store import Store
    from terrmap.geo import Layer

# The headline totals over all leads, in the registry's own SQL (the potential formula included).
_HEADLINE_MEASURES = ["leads", "open_leads", "customers", "won_revenue", "potential"]


def region_places(store: Store, layer: Layer) -> pd.DataFrame:
    """Per populated region: ``place`` ("City, ST" holding most of its leads) and ``states``
    (the states it touches, comma-separated: "CA,NV"; a string pickles fast in caches)."""
    rid = layer.region_id_sql(layer.region_key_sql("l"))
    return store.cursor().sql(
        f"""
        WITH r AS (
            SELECT {rid} AS region_id, z.state, z.city, count(*) AS n
            FROM leads l LEFT JOIN zips z ON z.zip = l.zip
            GROUP BY ALL
        )
        SELECT region_id,
               arg_max(CASE WHEN city IS NULL THEN state ELSE city || ', ' || state END, n) AS place,
               array_to_string(list_sort(list(DISTINCT state) FILTER (WHERE state IS NOT NULL)), ',') AS states
        FROM r WHERE region_id IS NOT NULL GROUP BY region_id
        """
    ).df()


def leads_by_state(store: Store) -> pd.Series:
    """Leads per state of their ZIP (index: state code; leads whose ZIP has no state are left out): the count
    for "the leads of Texas" that does not depend on the layer (an H3 cell at a border holds leads of both)."""
    return store.cursor().sql(
        "SELECT z.state, count(*) AS leads FROM leads l JOIN zips z ON z.zip = l.zip "
        "WHERE z.state IS NOT NULL GROUP BY z.state ORDER BY z.state"
    ).df().set_index("state")["leads"].astype(int)


def headline_kpis(store: Store, plan_id: int | None = None) -> dict:
    """Headline numbers for the home page: lead totals, average open score, territories of the plan, reps."""
    cur = store.cursor()
    totals = ", ".join(MEASURES[m].lead_sql for m in _HEADLINE_MEASURES)
    row = cur.execute(
        f"SELECT {totals}, avg(l.score) FILTER (WHERE l.status = 'open') FROM leads l"
    ).fetchall()[0]
    n_terr = cur.execute("SELECT count(*) FROM territories WHERE plan_id = ?", [plan_id]).fetchall()[0][0] if plan_id else 0
    n_reps = cur.execute("SELECT count(*) FROM reps").fetchall()[0][0]
    leads, open_leads, customers, won_revenue, potential, avg_score = row
    return {
        "leads": int(leads), "open_leads": int(open_leads), "customers": int(customers),
        "won_revenue": float(won_revenue), "potential": float(potential),
        "avg_score": None if avg_score is None else float(avg_score),
        "territories": int(n_terr), "reps": int(n_reps),
    }


def data_stamp_values(store: Store) -> list:
    """What the app's data stamp is made of: lead count, last import, open leads, sums of scores
    (in millionths) and of deal values, the plans as "plan_id:version" (by id), the latest model version."""
    cur = store.cursor()
    leads = cur.execute(
        # integer sums: a parallel float sum can differ in its last bits from run to run
        "SELECT count(*), max(imported_at), count(*) FILTER (WHERE status = 'open'), "
        "sum(round(score * 1e6)::BIGINT), sum(round(deal_value)::BIGINT) FROM leads"
    ).fetchall()[0]
    plans = cur.execute("SELECT list(plan_id || ':' || version ORDER BY plan_id) FROM plans").fetchall()[0][0]
    model = cur.execute("SELECT max(version) FROM models").fetchall()[0][0]
    return [*leads, plans, model]


def lead_count(store: Store) -> int:
    """How many leads the store holds."""
    return int(store.scalar("SELECT count(*) FROM leads") or 0)


def plan_count(store: Store) -> int:
    """How many plans (scenarios) the store holds."""
    return int(store.scalar("SELECT count(*) FROM plans") or 0)
