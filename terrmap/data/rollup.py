"""``lead_rollup``: the leads pre-aggregated by (base H3 cell, region ZIP).

Every layer's regions are unions of these keys, so region statistics read a few times fewer rows than
``leads`` (:mod:`terrmap.data.stats`). Whatever writes leads, or moves leads between region ZIPs, rebuilds it
in the same transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from terrmap.measures import MEASURES, ROLLUP_MEASURES

if TYPE_CHECKING:
    import duckdb


def rollup_sql() -> str:
    columns = ",\n        ".join(f"{MEASURES[m].lead_sql} AS {m}" for m in ROLLUP_MEASURES)
    return f"CREATE OR REPLACE TABLE lead_rollup AS SELECT cell, zip,\n        {columns}\n    FROM leads l GROUP BY cell, zip"


def refresh_rollup(cur: duckdb.DuckDBPyConnection) -> None:
    """Rebuild ``lead_rollup`` from ``leads`` (call after any change to leads, scores included)."""
    cur.execute(rollup_sql())
