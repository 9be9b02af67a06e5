"""The optimizer's database reads: populated regions and their measures, reps' homes, the accounts in
moved regions, and a small in-memory cache of loaded instances.

Plain data in, plain data out (DataFrames, callables): this module knows nothing of
:mod:`terrmap.optimize`, which sits above it and builds its instances from these frames.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Generic, TypeVar

import pandas as pd

from terrmap.data.stats import region_stats
from terrmap.data.zip_groups import regions_in
from terrmap.geo import Layer
from terrmap.measures import WORKLOAD_CUSTOMER_WEIGHT

if TYPE_CHECKING:
    from terrmap.data.store import Store

V = TypeVar("V")


def populated_regions(store: Store, layer: Layer, states: Iterable[str] | None = None) -> pd.DataFrame:
    """Region stats (region_id + measures) of every region with leads, optionally only in ``states``."""
    stats = region_stats(store, layer)
    if states:
        keep = set(regions_in(store, layer, states=[s.strip().upper() for s in states if s.strip()]))
        stats = stats[stats["region_id"].isin(keep)]
    stats = stats.sort_values("region_id").reset_index(drop=True)
    stats["workload"] = stats["leads"] + WORKLOAD_CUSTOMER_WEIGHT * stats["customers"]
    return stats


def rep_homes(store: Store) -> pd.DataFrame:
    """rep_id, name, home_zip, home_lat, home_lon of every rep."""
    return store.cursor().execute("SELECT rep_id, name, home_zip, home_lat, home_lon FROM reps ORDER BY rep_id").df()


def accounts_in_regions(store: Store, layer: Layer, moves: pd.DataFrame) -> pd.DataFrame:
    """The leads in the regions of ``moves`` (region_id, from, to): lead_id, name, industry, status, potential,
    region_id, from, to."""
    rid = layer.region_id_sql(layer.region_key_sql("l"))
    cur = store.cursor()
    cur.register("optimizer_moves", moves[["region_id", "from", "to"]])
    try:
        return cur.execute(
            f"""
            SELECT l.lead_id, l.name, l.industry, l.status,
                   CASE WHEN l.status = 'open' THEN coalesce(l.score * l.expected_value, 0) ELSE 0 END AS potential,
                   m.region_id, m."from", m."to"
            FROM leads l JOIN optimizer_moves m ON m.region_id = {rid}
            ORDER BY m.region_id, potential DESC, l.lead_id
            """
        ).df()
    finally:
        cur.unregister("optimizer_moves")


class LoadCache(Generic[V]):
    """A process-wide least-recently-used cache of read-only loaded objects (thread-safe; the loader runs
    outside the lock, so two threads may both load a missing key once)."""

    def __init__(self, max_entries: int = 4):
        self.max_entries = max_entries
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], V], max_entries: int | None = None) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = load()
        with self._lock:
            self._items[key] = value
            while len(self._items) > (max_entries or self.max_entries):
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def store_key(store: Store) -> str:
    """What identifies a database in a cache key: its path (or the object, for one in memory)."""
    return str(getattr(store, "path", id(store)))
