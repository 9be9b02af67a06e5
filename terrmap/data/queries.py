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
