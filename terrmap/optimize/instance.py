"""The optimizer's input: the regions, their measures, their graph and (for a rebalance) the base plan;
loading it from the database; the request's errors.

The SQL lives in :mod:`terrmap.data.optimize_queries`; here the frames become an :class:`Instance`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import h3
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from terrmap.data import accounts
from terrmap.data import optimize_queries as queries
from terrmap.data.area import AreaTooLarge
from terrmap.data.optimize_queries import area_stats
from terrmap.data.store import store_key
from terrmap.frames import member
from terrmap.geo import Layer, parse_layer
from terrmap.geo.distance import KM_PER_DEGREE
from terrmap.geo.graph import RegionGraph
from terrmap.geo.memo import LoadCache
from terrmap.geo.zipdata import project
from terrmap.measures import BALANCE_MEASURES, WORKLOAD_CUSTOMER_WEIGHT, measure
from terrmap.plan import PlanInfo, assignment_for_layer, get_plan, territories

MEASURES = list(BALANCE_MEASURES)
# Labels as they read inside a sentence ("minimum 10 open leads per territory").
MEASURE_LABELS = {m: measure(m).label.lower() for m in MEASURES}
LOWER_48_EXCLUDED = ("AK", "HI", "PR", "VI", "GU", "AS", "MP", "FM", "MH", "PW", "AA", "AE", "AP")

__all__ = ["LOWER_48_EXCLUDED", "MEASURES", "MEASURE_LABELS", "WORKLOAD_CUSTOMER_WEIGHT", "InfeasibleError", "Instance",
           "area_stats", "cached_instance", "load_instance", "rep_seeds"]


class InfeasibleError(ValueError):
    """The request cannot be met; the message says why (and what would work)."""


@dataclass
class Instance:
    layer_key: str
    region_ids: list[str]
    graph: RegionGraph
    values: pd.DataFrame  # one row per region (same order), columns MEASURES
    base: np.ndarray | None = None  # base territory index per region (-1: unassigned)
    base_locked: np.ndarray | None = None  # bool per region
    territories: pd.DataFrame | None = None  # base plan's territories (row i = territory index i)
    base_plan: PlanInfo | None = None
    states: list[str] | None = None
    outside: pd.DataFrame | None = None  # base plan rows for regions not optimised (kept on save)
    # Accounts the base plan owns by exception (see terrmap.data.accounts.exceptions_by_region), taken out of their
    # regions' values, so the search balances what Home and Scenarios count (each account once, where owned):
    offsets: np.ndarray | None = None  # (territories, MEASURES): what each base territory owns whatever its regions
    excepted: np.ndarray | None = None  # (MEASURES,): every account owned by exception (pins and overlays)
    # (regions, MEASURES): what changes owner when a region moves: its values, plus the accounts an overlay limited
    # to some territories holds there (they pass to the new territory if it lies outside the overlay's territories).
    moving: np.ndarray | None = None
    limited_overlays: list[str] = dataclasses.field(default_factory=list)  # names of such overlays

    @property
    def n(self) -> int:
        return len(self.region_ids)

    @classmethod
    def from_arrays(cls, graph: RegionGraph, values: Mapping[str, Sequence[float]] | pd.DataFrame,
                    layer_key: str = "h3:6", base: Sequence[int] | None = None) -> Instance:
        """An instance without a database (tests, benchmarks): ``values`` maps measure -> per-region array."""
        df = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in dict(values).items()})
        for m in MEASURES:
            if m not in df:
                df[m] = 0.0
        if "workload" not in dict(values):
            df["workload"] = df["leads"] + WORKLOAD_CUSTOMER_WEIGHT * df["customers"]
        b = None if base is None else np.asarray(base, dtype=np.int64)
        return cls(layer_key, list(graph.region_ids), graph, df[MEASURES].reset_index(drop=True), base=b,
                   base_locked=None if b is None else np.zeros(len(b), bool))


def load_instance(store, layer: str | Layer, states: Iterable[str] | None = None,
                  base_plan: PlanInfo | str | int | None = None, graph: RegionGraph | None = None) -> Instance:
    """Every region of ``layer`` in ``states`` (a complete area, see :mod:`terrmap.data.area`: regions without
    leads weigh zero), their measures and graph; with ``base_plan``, its assignment.

    The base plan may be on another layer (its assignment is carried over by
    potential, see :func:`terrmap.plan.assignment_for_layer`). Regions of the
    base plan outside the optimised set (no leads, other states) are kept as
    they are when a candidate is saved.
    """
    layer = parse_layer(layer) if isinstance(layer, str) else layer
    states = [s.strip().upper() for s in states if s.strip()] if states else None
    try:
        stats = area_stats(store, layer, states)
    except AreaTooLarge as exc:
        raise InfeasibleError(str(exc)) from None
    if stats.empty or not stats["leads"].any():
        raise InfeasibleError(f"no region of layer {layer.key} has leads" + (f" in {', '.join(states)}" if states else ""))
    ids = stats["region_id"].tolist()
    g = graph if graph is not None else layer.graph(store, ids)
    if list(g.region_ids) != ids:
        raise ValueError("the graph's regions differ from the instance's")
    values = stats[MEASURES].fillna(0).astype(float).reset_index(drop=True)
    inst = Instance(layer.key, ids, g, values, states=states)
    if base_plan is not None:
        info = base_plan if isinstance(base_plan, PlanInfo) else get_plan(store, base_plan)
        if info is None:
            raise InfeasibleError(f"no plan {base_plan!r}")
        terr = territories(store, info.plan_id).reset_index(drop=True)
        if terr.empty:
            raise InfeasibleError(f"plan {info.name!r} has no territories")
        assign = assignment_for_layer(store, info, layer)
        index_of = {int(t): i for i, t in enumerate(terr["territory_id"])}
        a = assign.drop_duplicates("region_id").set_index("region_id").reindex(ids)
        inst.base = np.array([index_of.get(int(t), -1) if pd.notna(t) else -1 for t in a["territory_id"]], dtype=np.int64)
        inst.base_locked = a["locked"].fillna(False).astype(bool).to_numpy() if "locked" in a else np.zeros(len(ids), bool)
        inst.territories = terr
        inst.base_plan = info
        if info.layer == layer.key:
            inst.outside = assign[~member(assign["region_id"], ids)].reset_index(drop=True)
            _take_out_named_accounts(store, inst, info, index_of)
    return inst


def _take_out_named_accounts(store, inst: Instance, info: PlanInfo, territory_index: dict[int, int]) -> None:
    """Pinned and overlay accounts leave their regions' values: a pinned account adds to its territory's offset
    (it stays there whatever the regions do), an overlay's to no territory (the overlay team owns it)."""
    exc = accounts.exceptions_by_region(store, info)
    exc = exc[member(exc["region_id"], inst.region_ids)]
    k = len(inst.territories)
    inst.offsets = np.zeros((k, len(MEASURES)))
    inst.excepted = np.zeros(len(MEASURES))
    if exc.empty:
        return
    exc = exc.assign(workload=exc["leads"] + WORKLOAD_CUSTOMER_WEIGHT * exc["customers"])
    v = exc[MEASURES].to_numpy(dtype=float)
    rows = np.array([inst.graph.index[r] for r in exc["region_id"]], dtype=np.int64)
    values = inst.values[MEASURES].to_numpy(dtype=float)
    np.subtract.at(values, rows, v)
    inst.values = pd.DataFrame(np.maximum(values, 0.0), columns=MEASURES)  # float noise only: never below zero
    overlays = accounts.overlay_rows(store, info.plan_id)
    limited = overlays[overlays["territories"].map(lambda t: hasattr(t, "__len__") and len(t) > 0)]
    inst.limited_overlays = [str(n) for n in limited["name"]]
    by_limited = (exc["rule"] == "overlay").to_numpy() & member(exc["owner_id"].astype("string").fillna(""),
                                                               limited["overlay_id"].astype(str))
    inst.moving = inst.values[MEASURES].to_numpy(dtype=float, copy=True)
    np.add.at(inst.moving, rows[by_limited], v[by_limited])
    pinned = np.array([territory_index.get(int(o), -1) if rule == "pin" else -1
                       for rule, o in zip(exc["rule"], exc["owner_id"])], dtype=np.int64)
    np.add.at(inst.offsets, pinned[pinned >= 0], v[pinned >= 0])
    inst.excepted = v.sum(axis=0)


_INSTANCES: LoadCache[Instance] = LoadCache(max_entries=4)


def cached_instance(store, layer: str, states: Iterable[str] | None = None, stamp: str = "",
                    max_entries: int = 4) -> Instance:
    """:func:`load_instance` (no base plan) kept in memory per (database, layer, states, ``stamp``): building the
    graph of a fine layer takes a while, and an instance is read-only. Pass a stamp that changes with the data."""
    key = (store_key(store), layer, tuple(sorted(states or ())), stamp)
    return _INSTANCES.get(key, lambda: load_instance(store, layer, states=list(states) if states else None),
                          max_entries=max_entries)


def rep_seeds(store, inst: Instance, reps: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each rep's home region: rep_id, name, home region id (the populated region nearest the home if the
    home's own region has no leads or lies outside the selection), and the distance in km."""
    if reps is None:
        reps = queries.rep_homes(store)
    reps = reps[reps["home_lat"].notna() & reps["home_lon"].notna()].reset_index(drop=True)
    if reps.empty:
        return pd.DataFrame(columns=["rep_id", "name", "region_id", "km"])
    layer = parse_layer(inst.layer_key)
    own: list[str | None] = []
    for r in reps.itertuples():
        if layer.key == "zip":
            own.append(r.home_zip)
        else:
            own.append(h3.latlng_to_cell(float(r.home_lat), float(r.home_lon), layer.res))
    index = inst.graph.index
    xy = project(inst.graph.centroids[:, 0], inst.graph.centroids[:, 1])
    dist, near = cKDTree(xy).query(project(reps["home_lat"].to_numpy(), reps["home_lon"].to_numpy()))
    region, km = [], []
    for o, d, j in zip(own, dist, near):
        if o in index:
            region.append(o)
            km.append(0.0)
        else:
            region.append(inst.region_ids[int(j)])
            km.append(float(d) * KM_PER_DEGREE)  # projected degrees -> km (see geo.zipdata.project)
    return pd.DataFrame({"rep_id": reps["rep_id"], "name": reps["name"], "region_id": region, "km": km})
