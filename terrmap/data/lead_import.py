"""The SQL of a lead import: the ZIP reference it reads and the all-or-nothing write into ``leads``.

The importer (:mod:`terrmap.io.ingest`) stages a file's rows as an Arrow table registered on the
cursor (columns named by :mod:`terrmap.io.read`, ``x_*`` columns added by :mod:`terrmap.io.locate`);
this module knows how they map onto the store's tables.
"""

from __future__ import annotations

import numpy as np

# The alias of the staged rows in :func:`insert_leads_sql`: the score expressions are written over it.
STAGED_ROWS = "s"


def zip_reference(cur) -> dict[str, np.ndarray]:
    """Every ZIP of the reference table as numbers: z (the ZIP), lat, lon, region (the region ZIP, -1: none)."""
    return cur.execute(
        "SELECT CAST(zip AS INTEGER) AS z, lat, lon, coalesce(TRY_CAST(region_zip AS INTEGER), -1) AS region "
        "FROM zips WHERE TRY_CAST(zip AS INTEGER) IS NOT NULL"
    ).fetchnumpy()


def zip_check_view(typed: str, with_zip: bool) -> str:
    """The staged rows with what the reference table knows of their ZIP: zip_known, zip_lat, zip_lon, zip_region."""
    if with_zip:
        return (f"(SELECT t.*, z.zip IS NOT NULL AS zip_known, z.lat AS zip_lat, z.lon AS zip_lon, "
                f"z.region_zip AS zip_region FROM {typed} t LEFT JOIN zips z ON z.zip = t.postal_zip)")
    return (f"(SELECT *, false AS zip_known, NULL::DOUBLE AS zip_lat, NULL::DOUBLE AS zip_lon, "
            f"NULL::VARCHAR AS zip_region FROM {typed})")


def delete_replaced_leads(tx, staged: str) -> int:
    """Delete the stored leads whose ids are staged (they are re-imported); returns how many."""
    if not tx.execute("SELECT count(*) FROM leads").fetchall()[0][0]:
        return 0
    return tx.execute(f"DELETE FROM leads WHERE lead_id IN (SELECT lead_id FROM {staged})").fetchall()[0][0]


def won_deals_sql(staged: str) -> str:
    """industry, deal_value of the won deals kept and staged (the fallback scores' medians come from these)."""
    return (f"SELECT industry, deal_value FROM leads WHERE status = 'won' AND deal_value > 0 UNION ALL "
            f"SELECT industry, deal_value FROM {staged} WHERE x_status = 'won' AND deal_value > 0")


def insert_leads_sql(staged: str, scale: float, value_ctes: str, score: str, source: str,
                     expected_value: str) -> str:
    """Insert the staged rows into ``leads``, scored as they go in.

    ``scale`` multiplies the CRM score (0.01 for 0-100 points); ``value_ctes`` are the CTEs the score
    expressions need; ``score``, ``source`` and ``expected_value`` are expressions over :data:`STAGED_ROWS`.
    """
    return f"""
        INSERT INTO leads (lead_id, name, industry, employees, annual_revenue, status, deal_value,
                           created_at, closed_at, postal_zip, zip, lat, lon, cell, crm_score,
                           score, score_source, expected_value, extra)
        WITH {value_ctes},
        {STAGED_ROWS} AS (SELECT * REPLACE (CAST(employees AS INTEGER) AS employees, crm_score * {scale} AS crm_score)
              FROM {staged})
        SELECT lead_id, name, industry, employees, annual_revenue, x_status,
               deal_value, created_at, closed_at, postal_zip, x_zip,
               x_lat, x_lon, x_cell, crm_score, {score}, {source}, {expected_value}, extra
        FROM {STAGED_ROWS}
        """
