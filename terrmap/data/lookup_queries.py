"""What territory lookup and lead routing (:mod:`terrmap.io.assign`) read: the reference facts of ZIPs, the
owner (territory, rep) of a plan's regions, and the ZIP polygons nearest a point. Nothing here writes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from terrmap.data.store import Store

_OWNERS = """
    SELECT a.region_id, a.territory_id, t.name AS territory, t.rep_id, r.name AS rep_name, t.parent
    FROM plan_assignments a
    LEFT JOIN territories t ON t.plan_id = a.plan_id AND t.territory_id = a.territory_id
    LEFT JOIN reps r ON r.rep_id = t.rep_id
    WHERE a.plan_id = ?
"""


def zip_facts(store: Store, zips: np.ndarray) -> pd.DataFrame:
    """z (the ZIP as an integer), lat, lon, region (the region ZIP as an integer, -1: none) of each of ``zips``
    (integers) that the reference table knows."""
    return store.cursor().execute(
        """
        SELECT CAST(zip AS INTEGER) AS z, lat, lon, coalesce(TRY_CAST(region_zip AS INTEGER), -1) AS region
        FROM zips WHERE TRY_CAST(zip AS INTEGER) IN (SELECT unnest(?::INTEGER[]))
        """,
        [np.asarray(zips, dtype=np.int64).tolist()],
    ).df()


def region_owners(store: Store, plan_id: int, region_ids: list[str] | None = None) -> pd.DataFrame:
    """region_id, territory_id, territory (its name), rep_id, rep_name, parent (hierarchy node) of every region
    of the plan (or of ``region_ids``); a region listed without a territory has territory_id NULL."""
    if region_ids is None:
        return store.cursor().execute(_OWNERS, [plan_id]).df()
    return store.cursor().execute(_OWNERS + " AND a.region_id IN (SELECT unnest(?::VARCHAR[]))",
                                  [plan_id, list(region_ids)]).df()


def shapes_near(store: Store, lat: float, lon: float, k: int) -> pd.DataFrame:
    """zip, geojson of the ``k`` stored ZIP polygons whose ZIP centroid is nearest (lat, lon)."""
    return store.cursor().execute(
        """
        SELECT s.zip, s.geojson FROM zip_shapes s JOIN zips z ON z.zip = s.zip
        WHERE z.lat IS NOT NULL
        ORDER BY (z.lat - ?) ^ 2 + ((z.lon - ?) * cos(radians(?))) ^ 2, s.zip
        LIMIT ?
        """,
        [lat, lon, lat, k],
    ).df()
