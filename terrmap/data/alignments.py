"""The SQL of alignment files: what an alignment import looks up and what a plan export reads.

The reference ZIPs (which region a ZIP counts in), the reps, and a plan's assignment joined to
its territories and reps. Plans themselves are written by :func:`terrmap.plan.create_plan`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from terrmap.data.store import Store


def region_zip_of(store: Store, zips: Iterable[str]) -> dict[str, str | None]:
    """Each known ZIP of ``zips`` -> the region ZIP it counts in (None: the ZIP has no location)."""
    return dict(store.cursor().execute(
        "SELECT zip, region_zip FROM zips WHERE zip IN (SELECT unnest(?::VARCHAR[]))", [list(zips)]
    ).fetchall())


def region_zips(store: Store) -> list[str]:
    """The ZIPs that are regions of the ZIP layer (their own region ZIP)."""
    return [z for (z,) in store.cursor().execute("SELECT zip FROM zips WHERE zip = region_zip").fetchall()]


def rep_directory(store: Store) -> list[tuple[str, str | None, str | None]]:
    """(rep_id, name, email) of every rep."""
    return store.cursor().execute("SELECT rep_id, name, email FROM reps").fetchall()


def rep_names(store: Store) -> dict[str, str | None]:
    """rep_id -> name."""
    return dict(store.cursor().execute("SELECT rep_id, name FROM reps").fetchall())


def plan_region_rows(store: Store, plan_id: int) -> pd.DataFrame:
    """Every region of the plan, sorted: region_id, territory, territory_id, rep_id, locked, color."""
    return store.cursor().execute(
        """
        SELECT a.region_id, t.name AS territory, a.territory_id::BIGINT AS territory_id, t.rep_id, a.locked, t.color
        FROM plan_assignments a LEFT JOIN territories t ON t.plan_id = a.plan_id AND t.territory_id = a.territory_id
        WHERE a.plan_id = ? ORDER BY a.region_id
        """, [plan_id]).df()


def assigned_regions(store: Store, plan_id: int) -> pd.DataFrame:
    """region_id, territory_id of the plan's assigned regions, sorted by region."""
    return store.cursor().execute("SELECT region_id, territory_id FROM plan_assignments WHERE plan_id = ? "
                                  "AND territory_id IS NOT NULL ORDER BY region_id", [plan_id]).df()


def territories_with_reps(store: Store, plan_id: int) -> pd.DataFrame:
    """territory_id, name, rep_id, rep_name, color of the plan's territories, by id."""
    return store.cursor().execute(
        "SELECT t.territory_id, t.name, t.rep_id, r.name AS rep_name, t.color FROM territories t "
        "LEFT JOIN reps r USING (rep_id) WHERE t.plan_id = ? ORDER BY t.territory_id", [plan_id]).df()
