"""The rep view's database reads (:mod:`terrmap.rep.footprint` builds the view from them): a rep's row,
the reps and the territories/overlays of a plan, ZIP places and areas, and the regions a plan assigns to
each rep's territories."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from terrmap.data.store import Store


def rep_row(store: Store, rep_id: str) -> tuple | None:
    """(rep_id, name, email, home_zip, home_lat, home_lon, home_metro) of rep ``rep_id``; None when there is none."""
    rows = store.cursor().execute(
        "SELECT rep_id, name, email, home_zip, home_lat, home_lon, home_metro FROM reps WHERE rep_id = ?", [rep_id]
    ).fetchall()
    return rows[0] if rows else None


def plan_reps(store: Store, plan_id: int) -> pd.DataFrame:
    """The reps owning a territory or an overlay in plan ``plan_id``: rep_id, name, home_metro (by name)."""
    return store.cursor().execute(
        """
        SELECT r.rep_id, r.name, r.home_metro FROM reps r
        WHERE r.rep_id IN (SELECT rep_id FROM territories WHERE plan_id = $p
                           UNION SELECT rep_id FROM overlays WHERE plan_id = $p)
        ORDER BY r.name, r.rep_id
        """,
        {"p": plan_id},
    ).df()


def rep_territories(store: Store, plan_id: int, rep_id: str) -> pd.DataFrame:
    """What the rep owns in plan ``plan_id``: kind ('territory' | 'overlay'), id, name, color; territories
    first, then by id."""
    return store.cursor().execute(
        """
        SELECT 'territory' AS kind, territory_id AS id, name, color FROM territories WHERE plan_id = $p AND rep_id = $r
        UNION ALL
        SELECT 'overlay', overlay_id, name, color FROM overlays WHERE plan_id = $p AND rep_id = $r
        ORDER BY kind DESC, id
        """,
        {"p": plan_id, "r": rep_id},
    ).df()


def zip_places(store: Store) -> pd.DataFrame:
    """Every reference ZIP with its city and state: zip, city, state."""
    return store.cursor().execute("SELECT zip, city, state FROM zips").df()


def zip_areas_km2(store: Store, zips: Sequence[str]) -> pd.DataFrame:
    """zip, area_km2 of the stored ZIP polygons among ``zips`` (ZIPs without a polygon are left out;
    the caller builds the polygons first)."""
    return store.cursor().execute(
        "SELECT zip, area_km2 FROM zip_shapes WHERE zip IN (SELECT unnest(?::VARCHAR[]))", [list(zips)]
    ).df()


def assigned_rep_regions(store: Store, plan_id: int) -> pd.DataFrame:
    """rep_id, region_id, territory_id (BIGINT) of every region plan ``plan_id`` assigns to a territory that
    has a rep."""
    return store.cursor().execute(
        """
        SELECT t.rep_id, a.region_id, a.territory_id::BIGINT AS territory_id
        FROM plan_assignments a JOIN territories t ON t.plan_id = a.plan_id AND t.territory_id = a.territory_id
        WHERE a.plan_id = ? AND t.rep_id IS NOT NULL
        """,
        [plan_id],
    ).df()
