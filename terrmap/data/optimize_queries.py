"""The optimizer's database reads: the regions of an area and their measures, reps' homes, the accounts in
moved regions.

Plain data in, plain data out (DataFrames, callables): this module knows nothing of
:mod:`terrmap.optimize`, which sits above it and builds its instances from these frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd

from terrmap.data.area import area_regions
from terrmap.data.stats import region_stats
from terrmap.geo import Layer
from terrmap.measures import WORKLOAD_CUSTOMER_WEIGHT

if TYPE_CHECKING:
    from terrmap.data.store import Store

def area_stats(store: Store, layer: Layer, states: Iterable[str] | None = None) -> pd.DataFrame:
    """Region stats (region_id + measures) of every region of the area (``states``, None: the whole country;
    see :mod:`terrmap.data.area`), zero where a region has no leads; sorted by region_id."""
    ids = area_regions(store, layer, states)["region_id"]
    stats = region_stats(store, layer).set_index("region_id")
    stats = stats.reindex(ids)
    counts = [c for c in stats.columns if c != "avg_score"]
    stats[counts] = stats[counts].fillna(0)
    stats = stats.rename_axis("region_id").reset_index()
    stats["workload"] = stats["leads"] + WORKLOAD_CUSTOMER_WEIGHT * stats["customers"]
    return stats


def rep_homes(store: Store) -> pd.DataFrame:
    """rep_id, name, home_zip, home_lat, home_lon of every rep."""
    return store.cursor().execute("SELECT rep_id, name, home_zip, home_lat, home_lon FROM reps ORDER BY rep_id").df()
