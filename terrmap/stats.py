"""Per-region statistics of any layer, computed in DuckDB.

For each region with at least one lead:

* ``leads``: all leads; ``open_leads``: status open; ``customers``: status won;
* ``won_revenue``: sum of won deal values;
* ``avg_score``: mean score of the open leads (NULL when none is open);
* ``potential``: sum over open leads of score x expected deal value.

Everything interactive works on these aggregates (thousands of rows), never on
raw leads, so interaction cost does not grow with the number of leads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from terrmap.geo import Layer

if TYPE_CHECKING:
    from terrmap.store import Store

STAT_COLUMNS = ["leads", "open_leads", "customers", "won_revenue", "avg_score", "potential"]

LEAD_POTENTIAL_SQL = "CASE WHEN l.status = 'open' THEN coalesce(l.score * l.expected_value, 0) ELSE 0 END"


def region_stats_sql(layer: Layer, where: str | None = None) -> str:
    key = layer.region_key_sql("l")
    # Filter on the cheap grouping key, not on the region id: a predicate on the id
    # would be pushed below the GROUP BY and format an id for every lead.
    conditions = [f"{key} IS NOT NULL"] + ([f"({where})"] if where else [])
    return f"""
        SELECT {layer.region_id_sql('k')} AS region_id, * EXCLUDE (k) FROM (
            SELECT {key} AS k,
                count(*) AS leads,
                count(*) FILTER (WHERE l.status = 'open') AS open_leads,
                count(*) FILTER (WHERE l.status = 'won') AS customers,
                coalesce(sum(l.deal_value) FILTER (WHERE l.status = 'won'), 0) AS won_revenue,
                avg(l.score) FILTER (WHERE l.status = 'open') AS avg_score,
                coalesce(sum(l.score * l.expected_value) FILTER (WHERE l.status = 'open'), 0) AS potential
            FROM leads l
            WHERE {' AND '.join(conditions)}
            GROUP BY k
        )
    """


def region_stats(store: "Store", layer: Layer, where: str | None = None) -> pd.DataFrame:
    """One row per populated region of ``layer``: region_id and :data:`STAT_COLUMNS`."""
    return store.cursor().sql(region_stats_sql(layer, where)).df()
