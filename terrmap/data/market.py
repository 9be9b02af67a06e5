"""Queries behind the ideal customer profile and whitespace (:mod:`terrmap.scoring.market` ranks them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from terrmap.geo import Layer
from terrmap.measures import LEAD_POTENTIAL_SQL

if TYPE_CHECKING:
    from terrmap.data.store import Store

SIZE_BAND_SQL = """CASE
    WHEN l.employees IS NULL THEN 'unknown'
    WHEN l.employees < 10 THEN '1-9'
    WHEN l.employees < 50 THEN '10-49'
    WHEN l.employees < 200 THEN '50-199'
    WHEN l.employees < 1000 THEN '200-999'
    ELSE '1000+' END"""
SIZE_BANDS = ["1-9", "10-49", "50-199", "200-999", "1000+", "unknown"]


def segment_outcomes(store: Store) -> pd.DataFrame:
    """Per segment industry x size band (employees, :data:`SIZE_BANDS`) x place type (the urbanicity of the
    postal ZIP, else the region ZIP; 'unknown' when missing): closed, won, won_value, avg_deal (median won
    deal), open_leads, open_potential."""
    return store.cursor().execute(
        f"""
        SELECT coalesce(l.industry, 'unknown') AS industry, {SIZE_BAND_SQL} AS size_band,
               coalesce(zp.urbanicity, zr.urbanicity, 'unknown') AS place_type,
               count(*) FILTER (WHERE l.status IN ('won', 'lost')) AS closed,
               count(*) FILTER (WHERE l.status = 'won') AS won,
               coalesce(sum(l.deal_value) FILTER (WHERE l.status = 'won'), 0) AS won_value,
               median(l.deal_value) FILTER (WHERE l.status = 'won') AS avg_deal,
               count(*) FILTER (WHERE l.status = 'open') AS open_leads,
               coalesce(sum({LEAD_POTENTIAL_SQL}), 0) AS open_potential
        FROM leads l
        LEFT JOIN zips zp ON zp.zip = l.postal_zip
        LEFT JOIN zips zr ON zr.zip = l.zip
        GROUP BY ALL
        """
    ).df()


def region_places(store: Store, layer: Layer, region_ids: pd.Series) -> pd.DataFrame:
    """Per region of ``layer`` in ``region_ids``: region_id, place ("City, ST" of the ZIP holding most of its
    leads), lat, lon (mean of its leads)."""
    key = layer.region_key_sql("l")
    cur = store.cursor()
    cur.register("_terrmap_regions", pd.DataFrame({"region_id": region_ids.to_numpy()}))
    try:
        return cur.execute(
            f"""
            WITH per_key AS (
                SELECT {key} AS k, avg(l.lat) AS lat, avg(l.lon) AS lon
                FROM leads l WHERE {key} IS NOT NULL GROUP BY k
            ),
            places AS (
                SELECT {key} AS k, CASE WHEN z.city IS NULL THEN z.state ELSE z.city || ', ' || z.state END AS place,
                       count(*) AS n
                FROM leads l LEFT JOIN zips z ON z.zip = l.zip WHERE {key} IS NOT NULL GROUP BY ALL
            ),
            best AS (SELECT k, arg_max(place, n) AS place FROM places GROUP BY k)
            SELECT w.region_id, b.place, p.lat, p.lon
            FROM per_key p JOIN best b USING (k)
            JOIN _terrmap_regions w ON w.region_id = {layer.region_id_sql('p.k')}
            """
        ).df()
    finally:
        cur.unregister("_terrmap_regions")
