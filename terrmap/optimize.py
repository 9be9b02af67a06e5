"""Territory optimizer: balanced, contiguous, compact plans in seconds.

Two modes
---------
* **Build from scratch**: split a layer's populated regions (optionally of some
  states) into K territories.
* **Rebalance** an existing plan: start from its assignment and move as little
  as possible, with a cap on *disruption* -- the share of revenue potential, and
  the share of customers, whose territory changes (:func:`terrmap.plan.metrics.disruption`).

What is optimised
-----------------
Balance on one or several measures ``m`` with weights ``w_m`` (potential, leads,
customers, open leads, won revenue, and ``workload = leads + 3 x customers``: a
customer is counted as three prospects' worth of a rep's time, account care and
renewals). With ``mu_m = total_m / K`` the target and ``tau_m`` the tolerance,
the *imbalance* of a plan is ::

    B = sum_t sum_m w_m * max(0, |W_m(t) / mu_m - 1| - tau_m)

so B = 0 exactly when every territory is within tolerance on every measure.
Hard per-territory limits (``limits={"customers": (None, 400)}``) add a term
that no move may increase. Constraints that always hold: every territory is
contiguous on the region adjacency graph (islands and regions with no land
neighbour are joined to the regions they face across empty land and to their
nearest region by zero-length *bridge* edges,
see :mod:`terrmap.geo.graph`; the result lists them), locked regions stay in
their territory, a seeded territory contains its seed region (a rep's home),
and no territory is empty.

Method
------
1. **Start.** From scratch: METIS (``pymetis.part_graph`` with ``contig=1``), one
   balance constraint per measure (integer weights, each measure scaled to 10^7 in
   total), edge weights = shared border length, so METIS already minimises the
   total border. Seeds and locks are handled after METIS: its parts are matched
   to territories by a maximum-weight assignment (Hungarian method; a seed weighs
   more than any set of locks), the fixed regions are put in place, and a
   *repair* keeps each territory's piece that holds its fixed regions (joining
   separated fixed regions along shortest paths), else its heaviest piece, frees
   the other pieces and regrows them from the borders into the least-loaded
   neighbouring territory (growing from a border keeps every territory in one
   piece). When METIS cannot make contiguous parts balanced -- sparse, tree-like
   graphs such as the populated cells of a fine H3 layer, where islands hang on
   bridge edges -- a second start is drawn by recursive spanning-tree bisection
   (a random minimum spanning tree whose edges across METIS parts weigh more, cut
   at the edge closest to a k1 : k2 share), and the better start is kept.
   Rebalance: the base plan, with unassigned regions grown in and detached pieces
   repaired the same way (that repair counts towards disruption).
2. **Balance refinement** (local search on border regions). Each round lists
   every border move "region r from territory a to neighbouring territory b"
   among the out-of-band territories and their neighbours, scored (vectorised)
   by the change of B and of a smooth guide ``S = sum w_m max(0, |dev| - tau/2)^2``
   that pushes load along chains of territories when no single move lowers B.
   A region that holds its territory together (an articulation point, from a
   Tarjan DFS of the territory rooted at a fixed anchor) moves *with the part it
   alone connects to the anchor* (a "chunk"), so territories stay in one piece
   by construction; elsewhere a breadth-first search from one of r's neighbours
   must reach the others without r. Moves are applied greedily, best first,
   re-scored against the live totals, only if r is not fixed or tabu, the
   territory keeps a region, and the disruption cap and hard limits hold. In
   rebalance mode moves are ranked by imbalance removed per unit of disruption.
   When a round finds no improving move: a swap of two border regions between
   an out-of-band territory and a neighbour; else a ReCom-style recombination
   (merge 2-3 neighbouring territories, split them again along a random spanning
   tree, keep it if B drops); else a tabu step (the least bad move, the regions
   then frozen for a few rounds). From scratch, a start that stays stuck gets one
   *kick* (its worst territory sheds a whole chunk and the search re-balances)
   and then the search restarts from another METIS seed within the time budget;
   the best plan seen is kept.
3. **Compactness passes**: single-region border moves that shorten the total
   border between territories (hence raise Polsby-Popper and lower the cut-edge
   share), taken only if no territory leaves its balance band, contiguity,
   locks, limits and the disruption cap all hold.
4. **Candidates** along the trade-offs. From scratch: the refined plan tightened
   to a band of tau/4 where it can be, then polished with a band of tau/4
   ("balanced"), tau/2 ("middle") and tau ("compact"): the wider the band, the
   more compactness moves fit. Rebalance: the fewest moves that reach tolerance
   ("least change"), then a tighter balance (tau/2), then the same plus
   compactness. Each candidate carries its scores (max deviation, CV, contiguous
   territories, cut-edge share, mean Polsby-Popper, disruption, seconds) so the
   planner chooses; the first is the recommended one (from scratch the most
   compact within tolerance; rebalance the least change within tolerance).

The search is time-boxed (``time_limit``; the candidates are scored in the last
7%), reports progress through ``progress(frac, message)`` and polls
``should_stop()`` between rounds (cancel: the best plans so far are returned).

Infeasible requests raise :class:`InfeasibleError` with the reason: a region
heavier than a territory's upper bound (named, with the largest K or smallest
tolerance that would work), more seeds than territories, two seeds in one
region or one territory, locks that overfill a territory or separate it,
limits that cannot add up.

API (spopt-like)::

    inst = load_instance(store, "zip", states=["TX"])
    res = Optimizer(inst, n_territories=12, balance="potential", tolerance=0.02).solve()
    res.labels_            # territory index per region (recommended candidate)
    res.table()            # the candidates and their scores
    save_candidate(store, res, "TX 12 balanced")
    explain_moves(store, base_plan, res)   # for a rebalance: what moved and why
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from terrmap.geo import Layer, parse_layer
from terrmap.geo.graph import RegionGraph
from terrmap.plan import metrics

if TYPE_CHECKING:
    from terrmap.data.store import Store
    from terrmap.plan import PlanInfo, Territory

MEASURES = ["potential", "leads", "customers", "open_leads", "won_revenue", "workload"]
MEASURE_LABELS = {"potential": "potential", "leads": "leads", "customers": "customers", "open_leads": "open leads",
                  "won_revenue": "won revenue", "workload": "workload"}
# workload = leads + WORKLOAD_CUSTOMER_WEIGHT * customers (a customer ~ three prospects' worth of a rep's time).
WORKLOAD_CUSTOMER_WEIGHT = 3.0
# Hard limits weigh this much more than balance when ranking moves (they are never made worse anyway).
LIMIT_WEIGHT = 10.0
LOWER_48_EXCLUDED = ("AK", "HI", "PR", "VI", "GU", "AS", "MP", "FM", "MH", "PW", "AA", "AE", "AP")


class InfeasibleError(ValueError):
    """The request cannot be met; the message says why (and what would work)."""


# ---------------------------------------------------------------------------------------------
# The instance: regions, their measures, the graph, and (for a rebalance) the base plan.
# ---------------------------------------------------------------------------------------------


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


def populated_regions(store: Store, layer: Layer, states: Iterable[str] | None = None) -> pd.DataFrame:
    """Region stats (region_id + measures) of every region with leads, optionally only in ``states``."""
    from terrmap.data.stats import region_stats
    from terrmap.geo.groups import regions_in

    stats = region_stats(store, layer)
    if states:
        keep = set(regions_in(store, layer, states=[s.strip().upper() for s in states if s.strip()]))
        stats = stats[stats["region_id"].isin(keep)]
    stats = stats.sort_values("region_id").reset_index(drop=True)
    stats["workload"] = stats["leads"] + WORKLOAD_CUSTOMER_WEIGHT * stats["customers"]
    return stats


def load_instance(store: Store, layer: str | Layer, states: Iterable[str] | None = None,
                  base_plan: PlanInfo | str | int | None = None, graph: RegionGraph | None = None) -> Instance:
    """Populated regions of ``layer`` (in ``states``), their measures and graph; with ``base_plan``, its assignment.

    The base plan may be on another layer (its assignment is carried over by
    potential, see :func:`terrmap.plan.assignment_for_layer`). Regions of the
    base plan outside the optimised set (no leads, other states) are kept as
    they are when a candidate is saved.
    """
    from terrmap.plan import PlanInfo, assignment_for_layer, get_plan, territories

    layer = parse_layer(layer) if isinstance(layer, str) else layer
    states = [s.strip().upper() for s in states if s.strip()] if states else None
    stats = populated_regions(store, layer, states)
    if stats.empty:
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
            inst.outside = assign[~assign["region_id"].isin(set(ids))].reset_index(drop=True)
    return inst


_INSTANCES: OrderedDict[tuple, Instance] = OrderedDict()
_INSTANCES_LOCK = threading.Lock()


def cached_instance(store: Store, layer: str, states: Iterable[str] | None = None, stamp: str = "",
                    max_entries: int = 4) -> Instance:
    """:func:`load_instance` (no base plan) kept in memory per (database, layer, states, ``stamp``): building the
    graph of a fine layer takes a while, and an instance is read-only. Pass a stamp that changes with the data."""
    key = (str(getattr(store, "path", id(store))), layer, tuple(sorted(states or ())), stamp)
    with _INSTANCES_LOCK:
        if key in _INSTANCES:
            _INSTANCES.move_to_end(key)
            return _INSTANCES[key]
    inst = load_instance(store, layer, states=list(states) if states else None)
    with _INSTANCES_LOCK:
        _INSTANCES[key] = inst
        while len(_INSTANCES) > max_entries:
            _INSTANCES.popitem(last=False)
    return inst


def rep_seeds(store: Store, inst: Instance, reps: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each rep's home region: rep_id, name, home region id (the populated region nearest the home if the
    home's own region has no leads or lies outside the selection), and the distance in km."""
    from scipy.spatial import cKDTree

    from terrmap.geo.zipdata import project

    if reps is None:
        reps = store.cursor().execute(
            "SELECT rep_id, name, home_zip, home_lat, home_lon FROM reps ORDER BY rep_id").df()
    reps = reps[reps["home_lat"].notna() & reps["home_lon"].notna()].reset_index(drop=True)
    if reps.empty:
        return pd.DataFrame(columns=["rep_id", "name", "region_id", "km"])
    layer = parse_layer(inst.layer_key)
    own: list[str | None] = []
    for r in reps.itertuples():
        if layer.key == "zip":
            own.append(r.home_zip)
        else:
            import h3
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
            km.append(float(d) * 111.195)
    return pd.DataFrame({"rep_id": reps["rep_id"], "name": reps["name"], "region_id": region, "km": km})


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass
class MoveRecord:
    region: int
    src: int  # territory index (-1: unassigned)
    dst: int
    phase: str  # "balance", "compactness", "contiguity", "unassigned"
    detail: str  # the reason, with territory names filled in at explanation time: "{src}"/"{dst}"


@dataclass
class Candidate:
    name: str
    description: str
    labels_: np.ndarray
    scores: dict
    moves: list[MoveRecord] = field(default_factory=list)


@dataclass
class OptimizeResult:
    instance: Instance
    mode: str  # "scratch" or "rebalance"
    n_territories: int
    balance: dict[str, float]
    tolerance: dict[str, float]
    territory_ids: list[int]
    territory_names: list[str]
    rep_ids: list[str | None]
    seeds: list[str | None]
    candidates: list[Candidate]
    status: str  # "ok", "tolerance not reached", "cancelled"
    notes: list[str]
    seconds: float
    max_disruption: float | None = None
    base_labels: np.ndarray | None = None  # rebalance: base territory index per region (same numbering as labels_)

    @property
    def labels_(self) -> np.ndarray:
        return self.candidates[0].labels_

    @property
    def bridges(self) -> list[tuple[str, str]]:
        return list(self.instance.graph.bridges)

    @property
    def region_ids(self) -> list[str]:
        return self.instance.region_ids

    def candidate(self, which: int | str = 0) -> Candidate:
        if isinstance(which, str):
            for c in self.candidates:
                if c.name == which:
                    return c
            raise KeyError(f"no candidate {which!r}: {[c.name for c in self.candidates]}")
        return self.candidates[which]

    def assignment(self, which: int | str = 0) -> pd.DataFrame:
        """region_id, territory (territory id), territory_name for every optimised region."""
        lab = self.candidate(which).labels_
        ids = np.asarray(self.territory_ids)
        names = np.asarray(self.territory_names, dtype=object)
        return pd.DataFrame({"region_id": self.instance.region_ids, "territory": ids[lab], "territory_name": names[lab]})

    def table(self) -> pd.DataFrame:
        """One row per candidate: name, description and scores."""
        rows = []
        for c in self.candidates:
            row = {"candidate": c.name, "description": c.description}
            row.update({k: v for k, v in c.scores.items() if not isinstance(v, dict)})
            for m, v in c.scores.get("max_deviation_by_measure", {}).items():
                row[f"max_dev_{m}"] = v
            rows.append(row)
        return pd.DataFrame(rows)

    def summary(self, which: int | str = 0) -> dict:
        c = self.candidate(which)
        s = {k: v for k, v in c.scores.items()}
        return {
            "mode": self.mode, "layer": self.instance.layer_key, "regions": self.instance.n,
            "territories": self.n_territories, "balance": self.balance, "tolerance": self.tolerance,
            "territory_names": dict(zip(map(str, self.territory_ids), self.territory_names)),
            "candidate": c.name, **s, "status": self.status, "bridges": len(self.bridges), "notes": self.notes,
            "seconds_total": round(self.seconds, 3),
            "candidates": [{"name": x.name, **{k: v for k, v in x.scores.items() if not isinstance(v, dict)}}
                           for x in self.candidates],
        }


# ---------------------------------------------------------------------------------------------
# The optimizer
# ---------------------------------------------------------------------------------------------


def parse_balance(balance: str | Sequence[str] | Mapping[str, float]) -> dict[str, float]:
    """"potential", "potential,leads", "potential:2,leads:1", a list or a dict -> {measure: weight} (sum 1)."""
    if isinstance(balance, str):
        items = {}
        for part in balance.split(","):
            part = part.strip()
            if not part:
                continue
            name, _, w = part.partition(":")
            items[name.strip()] = float(w) if w else 1.0
    elif isinstance(balance, Mapping):
        items = {str(k): float(v) for k, v in balance.items()}
    else:
        items = {str(k): 1.0 for k in balance}
    unknown = [m for m in items if m not in MEASURES]
    if unknown or not items:
        raise InfeasibleError(f"unknown balance measure {unknown or balance!r}: use {', '.join(MEASURES)}")
    if any(w <= 0 for w in items.values()):
        raise InfeasibleError("balance weights must be positive")
    total = sum(items.values())
    return {k: v / total for k, v in items.items()}


class Optimizer:
    """Balanced, contiguous, compact territories (see the module docstring for the method).

    ``n_territories``: K (from scratch; in a rebalance, the base plan's count).
    ``balance``: measure(s) and weights; ``tolerance``: a float or {measure: float}.
    ``seeds``: list (territory i gets ``seeds[i]``, None for none) or {territory index: region id};
    ``seed_names``/``seed_rep_ids`` name the seeded territories. ``locks``: {region id: territory index}
    (a rebalance also keeps the base plan's locked regions). ``limits``: {measure: (min, max)} per territory.
    ``max_disruption``: share of potential, and of customers, allowed to change territory (rebalance).
    ``progress(frac, message)`` is called as the work advances; ``should_stop()`` is polled between
    iterations and stops the search with the best plan found so far.
    """

    def __init__(
        self,
        instance: Instance,
        n_territories: int | None = None,
        balance: str | Sequence[str] | Mapping[str, float] = "potential",
        tolerance: float | Mapping[str, float] = 0.05,
        *,
        mode: str | None = None,
        max_disruption: float | None = None,
        seeds: Sequence[str | None] | Mapping[int, str | Sequence[str]] | None = None,
        seed_names: Sequence[str | None] | None = None,
        seed_rep_ids: Sequence[str | None] | None = None,
        locks: Mapping[str, int] | None = None,
        limits: Mapping[str, tuple[float | None, float | None]] | None = None,
        compactness: bool = True,
        time_limit: float = 10.0,
        random_state: int = 0,
        progress: Callable[[float, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        self.inst = instance
        self.mode = mode or ("rebalance" if instance.base is not None else "scratch")
        if self.mode not in ("scratch", "rebalance"):
            raise ValueError("mode is 'scratch' or 'rebalance'")
        if self.mode == "rebalance" and instance.base is None:
            raise InfeasibleError("a rebalance needs a base plan")
        self.base = None
        self.terr_rows = None
        if self.mode == "rebalance":
            # Only the base territories present among the optimised regions take part (a state subset of a
            # national plan has a few); they are renumbered 0..k-1 here.
            base = np.asarray(instance.base, dtype=np.int64)
            self.terr_rows = np.unique(base[base >= 0])
            if not len(self.terr_rows):
                raise InfeasibleError("no optimised region has a territory in the base plan")
            remap = np.full(int(base.max()) + 1, -1, dtype=np.int64)
            remap[self.terr_rows] = np.arange(len(self.terr_rows))
            self.base = np.where(base >= 0, remap[np.maximum(base, 0)], -1)
            k_base = len(self.terr_rows)
            if n_territories is not None and int(n_territories) != k_base:
                raise InfeasibleError(f"the base plan has {k_base} territories among these regions; a rebalance "
                                      f"keeps them (asked for {n_territories}: build from scratch instead)")
            n_territories = k_base
        if n_territories is None:
            n_territories = _seed_count(seeds)
        if not n_territories:
            raise InfeasibleError("give the number of territories")
        self.k = int(n_territories)
        self.balance = parse_balance(balance)
        if isinstance(tolerance, Mapping):
            self.tolerance = {m: float(tolerance.get(m, 0.05)) for m in self.balance}
        else:
            self.tolerance = {m: float(tolerance) for m in self.balance}
        if any(t < 0 for t in self.tolerance.values()):
            raise InfeasibleError("tolerance must be >= 0")
        self.max_disruption = None if max_disruption is None else float(max_disruption)
        if self.max_disruption is not None and not 0 <= self.max_disruption <= 1:
            raise InfeasibleError("max_disruption is a share between 0 and 1")
        self.seeds_in = seeds
        self.seed_names = seed_names
        self.seed_rep_ids = seed_rep_ids
        self.locks_in = dict(locks or {})
        self.limits = {m: (lo, hi) for m, (lo, hi) in (limits or {}).items()}
        for m in self.limits:
            if m not in MEASURES:
                raise InfeasibleError(f"unknown limit measure {m!r}: use {', '.join(MEASURES)}")
        self.compactness = compactness
        self.time_limit = float(time_limit)
        self.random_state = int(random_state)
        self.progress = progress or (lambda f, m: None)
        self.should_stop = should_stop or (lambda: False)

    @classmethod
    def from_store(cls, store: Store, layer: str | Layer, n_territories: int | None = None, *,
                   states: Iterable[str] | None = None, base_plan=None, seed_reps: bool | Sequence[str] = False,
                   graph: RegionGraph | None = None, **kwargs) -> Optimizer:
        """Load the instance from the database; ``seed_reps=True`` seeds one territory at each rep's home
        (or a list of rep ids), naming the territory after the rep."""
        inst = load_instance(store, layer, states=states, base_plan=base_plan, graph=graph)
        if seed_reps:
            seeds = rep_seeds(store, inst)
            if not isinstance(seed_reps, bool):
                seeds = seeds[seeds["rep_id"].isin(list(seed_reps))]
            elif states:  # only the reps who live in (or within 25 km of) the chosen states
                seeds = seeds[seeds["km"] <= 25.0]
            if seeds.empty:
                raise InfeasibleError("no rep lives in the chosen area: no territory can be seeded at a rep's home")
            kwargs.setdefault("seeds", seeds["region_id"].tolist())
            kwargs.setdefault("seed_names", seeds["name"].tolist())
            kwargs.setdefault("seed_rep_ids", seeds["rep_id"].tolist())
        return cls(inst, n_territories, **kwargs)

    # -- validation ---------------------------------------------------------------------
    def _territory_label(self, t: int) -> str:
        if self.mode == "rebalance" and self.inst.territories is not None:
            return str(self.inst.territories["name"].iat[int(self.terr_rows[t])])
        if self.mode == "rebalance":
            return f"Territory {int(self.terr_rows[t]) + 1}"
        if self.seed_names is not None and t < len(self.seed_names) and self.seed_names[t]:
            return str(self.seed_names[t])
        return f"Territory {t + 1}"

    def _fixed(self) -> tuple[np.ndarray, list[int | None]]:
        """Per region the territory it is fixed to (-1: free), and the seed region per territory."""
        inst, k = self.inst, self.k
        index = inst.graph.index
        fixed = np.full(inst.n, -1, dtype=np.int64)
        why: dict[int, str] = {}
        seeds: list[int | None] = [None] * k
        n_seeds = sum(1 for _ in _seed_items(self.seeds_in, k))
        if n_seeds > k:
            raise InfeasibleError(f"{n_seeds} seeds for {k} territories: at most one seed per territory")
        for t, regs in _seed_items(self.seeds_in, k):
            if not 0 <= t < k:
                raise InfeasibleError(f"a seed is given for territory index {t}, but there are {k} territories")
            if len(regs) > 1:
                raise InfeasibleError(f"{self._territory_label(t)} has {len(regs)} seeds ({', '.join(regs)}): "
                                      "one seed per territory (lock further regions instead)")
            r = regs[0]
            if r not in index:
                raise InfeasibleError(f"seed region {r} of {self._territory_label(t)} is not among the optimised "
                                      "regions (no leads there, or outside the chosen states)")
            i = index[r]
            if fixed[i] >= 0:
                raise InfeasibleError(f"region {r} is the seed of both {self._territory_label(int(fixed[i]))} and "
                                      f"{self._territory_label(t)}: two seeds cannot share a region (two reps "
                                      "live in it?); give one of them another seed")
            fixed[i] = t
            why[i] = "seed"
            seeds[t] = i
        locks = dict(self.locks_in)
        if self.mode == "rebalance" and inst.base_locked is not None:
            for i in np.flatnonzero(inst.base_locked & (self.base >= 0)).tolist():
                locks.setdefault(inst.region_ids[i], int(self.base[i]))
        for r, t in locks.items():
            if r not in index:
                continue  # locked regions outside the optimised set are kept on save anyway
            if not 0 <= int(t) < k:
                raise InfeasibleError(f"region {r} is locked to territory index {t}, but there are {k} territories")
            i = index[r]
            if fixed[i] >= 0 and fixed[i] != int(t):
                raise InfeasibleError(f"region {r} is locked to {self._territory_label(int(t))} but is the "
                                      f"{why.get(i, 'lock')} of {self._territory_label(int(fixed[i]))}")
            fixed[i] = int(t)
            why.setdefault(i, "lock")
        return fixed, seeds

    def check(self, fixed: np.ndarray | None = None) -> None:
        """Raise :class:`InfeasibleError` for requests no plan can meet (the message names the culprit)."""
        inst, k = self.inst, self.k
        if k < 1:
            raise InfeasibleError("at least one territory")
        if k > inst.n:
            raise InfeasibleError(f"{k} territories but only {inst.n} regions with leads")
        if fixed is None:
            fixed, _ = self._fixed()
        vals = inst.values
        for m, tau in self.tolerance.items():
            v = vals[m].to_numpy()
            total = v.sum()
            if total <= 0:
                raise InfeasibleError(f"the regions have no {MEASURE_LABELS[m]} to balance")
            mu = total / k
            i = int(np.argmax(v))
            if v[i] > mu * (1 + tau) * (1 + 1e-12):
                kmax = int(np.floor(total * (1 + tau) / v[i]))
                need = v[i] / mu - 1
                raise InfeasibleError(
                    f"region {inst.region_ids[i]} alone holds {v[i] / total:.1%} of all {MEASURE_LABELS[m]}, "
                    f"{v[i] / mu:.2f}x a territory's target (1/{k} of the total): no plan of {k} territories keeps "
                    f"every territory within ±{tau:.1%}. Use at most {kmax} territories or a tolerance of at least "
                    f"{need:.1%} (or split that region on a finer layer)")
            ok = fixed >= 0
            if ok.any():
                per = np.bincount(fixed[ok], weights=v[ok], minlength=k)
                t = int(np.argmax(per))
                if per[t] > mu * (1 + tau) * (1 + 1e-12):
                    raise InfeasibleError(
                        f"the locked/seed regions of {self._territory_label(t)} hold {per[t] / mu:.0%} of a territory's "
                        f"{MEASURE_LABELS[m]} target (upper bound {1 + tau:.0%}): unlock some or raise the tolerance")
        for m, (lo, hi) in self.limits.items():
            v = vals[m].to_numpy()
            total = v.sum()
            label = MEASURE_LABELS[m]
            if lo is not None and hi is not None and lo > hi:
                raise InfeasibleError(f"limit on {label}: minimum {lo:,.0f} above maximum {hi:,.0f}")
            if lo is not None and lo * k > total * (1 + 1e-12):
                raise InfeasibleError(f"minimum {lo:,.0f} {label} per territory x {k} territories = {lo * k:,.0f} "
                                      f"exceeds the total {total:,.0f}")
            if hi is not None and hi * k < total * (1 - 1e-12):
                raise InfeasibleError(f"maximum {hi:,.0f} {label} per territory x {k} territories = {hi * k:,.0f} "
                                      f"is below the total {total:,.0f}")
            if hi is not None:
                i = int(np.argmax(v))
                if v[i] > hi:
                    raise InfeasibleError(f"region {inst.region_ids[i]} alone has {v[i]:,.0f} {label}, above the "
                                          f"maximum {hi:,.0f} per territory")
                ok = fixed >= 0
                if ok.any():
                    per = np.bincount(fixed[ok], weights=v[ok], minlength=k)
                    t = int(np.argmax(per))
                    if per[t] > hi:
                        raise InfeasibleError(f"the locked regions of {self._territory_label(t)} have {per[t]:,.0f} "
                                              f"{label}, above the maximum {hi:,.0f}")

    # -- solving ------------------------------------------------------------------------
    def solve(self) -> OptimizeResult:
        t0 = time.perf_counter()
        fixed, seeds = self._fixed()
        self.check(fixed)
        self.progress(0.02, "preparing")
        eng = _Engine(self, fixed, t0)
        notes: list[str] = []
        if self.inst.graph.bridges:
            notes.append(f"{len(self.inst.graph.bridges)} bridge edge(s) join islands and regions with no neighbour "
                         "to the regions they face across water or empty land; contiguity counts them, so a territory "
                         "may reach across one")
        if self.mode == "scratch":
            cands = eng.run_scratch(seeds, notes)
        else:
            cands = eng.run_rebalance(notes)
        seconds = time.perf_counter() - t0
        status = "cancelled" if eng.cancelled else (
            "ok" if cands[0].scores["within_tolerance"] else "tolerance not reached")
        if status == "tolerance not reached":
            best = min(c.scores["max_deviation"] for c in cands)
            why = " within the disruption cap" if self.mode == "rebalance" and self.max_disruption is not None else ""
            notes.append(f"no candidate reached the tolerance{why}; best max deviation {best:.2%}")
        k = self.k
        if self.mode == "rebalance" and self.inst.territories is not None:
            terr = self.inst.territories.iloc[self.terr_rows]
            tids = [int(x) for x in terr["territory_id"]]
            names = [str(x) for x in terr["name"]]
            reps = [None if pd.isna(x) else str(x) for x in terr["rep_id"]] if "rep_id" in terr else [None] * k
        else:
            tids = list(range(1, k + 1))
            names = [self._territory_label(t) for t in range(k)]
            reps = [(self.seed_rep_ids[t] if self.seed_rep_ids is not None and t < len(self.seed_rep_ids) else None)
                    for t in range(k)]
        self.progress(1.0, "done")
        return OptimizeResult(
            instance=self.inst, mode=self.mode, n_territories=k, balance=self.balance, tolerance=self.tolerance,
            territory_ids=tids, territory_names=names, rep_ids=reps,
            seeds=[None if s is None else self.inst.region_ids[s] for s in seeds], candidates=cands, status=status,
            notes=notes, seconds=seconds, max_disruption=self.max_disruption, base_labels=self.base,
        )


def _seed_items(seeds, k: int):
    """(territory index, [region ids]) of the seeds given as a list or a mapping."""
    if seeds is None:
        return
    if isinstance(seeds, Mapping):
        for t, regs in seeds.items():
            regs = [regs] if isinstance(regs, str) else [r for r in regs if r is not None]
            if regs:
                yield int(t), [str(r) for r in regs]
    else:
        for t, r in enumerate(seeds):
            if r is not None and not (isinstance(r, float) and np.isnan(r)):
                yield t, [str(r)]


def _seed_count(seeds) -> int:
    if seeds is None:
        return 0
    if isinstance(seeds, Mapping):
        return max((int(t) + 1 for t in seeds), default=0)
    return len(seeds)


# ---------------------------------------------------------------------------------------------
# The engine: live assignment + tallies, and the phases.
# ---------------------------------------------------------------------------------------------


class _Engine:
    def __init__(self, opt: Optimizer, fixed: np.ndarray, t0: float):
        self.opt = opt
        inst = opt.inst
        g = inst.graph
        self.g = g
        self.n = inst.n
        self.k = opt.k
        self.t0 = t0
        self.deadline = t0 + opt.time_limit * 0.93  # the rest: scoring the candidates
        self.fixed = fixed
        self.cancelled = False
        # CSR with the border length of each entry.
        e = g.edges
        rows = np.concatenate([e[:, 0], e[:, 1]])
        cols = np.concatenate([e[:, 1], e[:, 0]])
        eid = np.concatenate([np.arange(len(e)), np.arange(len(e))])
        order = np.lexsort((cols, rows))
        rows, cols, eid = rows[order], cols[order], eid[order]
        self.indptr = np.searchsorted(rows, np.arange(self.n + 1))
        self.indices = cols
        self.rows = rows
        self.elen = np.asarray(g.edge_length, dtype=float)[eid]
        self.nbrs = [cols[self.indptr[i]:self.indptr[i + 1]].tolist() for i in range(self.n)]
        # Measures: all of them (for reports) and the balanced ones.
        self.vals = inst.values[MEASURES].to_numpy(dtype=float)
        self.bal_idx = np.array([MEASURES.index(m) for m in opt.balance])
        self.w = np.array([opt.balance[m] for m in opt.balance])
        self.tau = np.array([opt.tolerance[m] for m in opt.balance])
        self.mu = self.vals[:, self.bal_idx].sum(axis=0) / self.k
        self.mu[self.mu <= 0] = 1.0
        self.lim_idx = np.array([MEASURES.index(m) for m in opt.limits], dtype=np.int64)
        self.lim_lo = np.array([-np.inf if lo is None else lo for lo, _ in opt.limits.values()])
        self.lim_hi = np.array([np.inf if hi is None else hi for _, hi in opt.limits.values()])
        lim_tot = self.vals[:, self.lim_idx].sum(axis=0) / self.k if len(self.lim_idx) else np.zeros(0)
        self.lim_scale = np.where(lim_tot > 0, lim_tot, 1.0)
        # Disruption (rebalance).
        self.base = opt.base if opt.mode == "rebalance" else None
        pot = self.vals[:, MEASURES.index("potential")]
        cus = self.vals[:, MEASURES.index("customers")]
        self.dis_w = np.column_stack([pot / max(pot.sum(), 1e-300), cus / max(cus.sum(), 1e-300)])
        self.cap = opt.max_disruption if (opt.mode == "rebalance" and opt.max_disruption is not None) else None
        self.tabu_until = np.zeros(self.n, dtype=np.int64)
        self.moves: list[MoveRecord] = []
        self.freed_from: dict[int, int] = {}  # regions a repair took out of a territory, until they are placed
        # Per territory, a DFS tree rooted at an anchor region: moving region r takes along the part of its
        # territory that r alone connects to the anchor (its "chunk"); see _build_tree.
        self.anchor = np.full(self.k, -1, dtype=np.int64)
        self._pre = [-1] * self.n
        self._low = [-1] * self.n
        self.version = np.zeros(self.k, dtype=np.int64)  # bumped whenever a territory changes
        self.failed_recombine: dict[tuple[int, int], tuple[int, int]] = {}
        self.tree_terr = np.zeros(self.k, dtype=bool)  # territories whose chunk trees the current round uses
        self.n_kicks = 1  # kicks per start when stuck just out of band (more starts usually pay better)
        self.dirty: set[int] = set(range(self.k))
        self.chunk_val = self.vals.copy()
        self.chunk_size = np.ones(self.n, dtype=np.int64)
        self.chunk_ok = np.zeros(self.n, dtype=bool)
        self.trees: dict[int, tuple[list[int], dict, dict, dict]] = {}
        self.cent_xy = np.column_stack([g.centroids[:, 0], g.centroids[:, 1] * np.cos(np.radians(g.centroids[:, 0]))])

    # -- state ------------------------------------------------------------------------------
    def set_labels(self, lab: np.ndarray) -> None:
        self.lab = np.asarray(lab, dtype=np.int64).copy()
        self.lab_l = self.lab.tolist()
        self.dirty = set(range(self.k))
        self.version = getattr(self, "version", np.zeros(self.k, dtype=np.int64)) + 1
        self._retally()

    def _retally(self) -> None:
        lab = self.lab
        ok = lab >= 0
        self.T = np.zeros((self.k, len(MEASURES)))
        np.add.at(self.T, lab[ok], self.vals[ok])
        self.count = np.bincount(lab[ok], minlength=self.k)
        if self.base is not None:
            changed = (lab != self.base) & (self.base >= 0)
            self.D = self.dis_w[changed].sum(axis=0)
        else:
            self.D = np.zeros(2)

    def snapshot(self):
        return (self.lab.copy(), len(self.moves))

    def restore(self, snap) -> None:
        lab, nmoves = snap
        del self.moves[nmoves:]
        self.set_labels(lab)

    def move(self, r: int, b: int, phase: str, detail: str = "") -> None:
        a = self.lab_l[r]
        src = self.freed_from.pop(r, a) if a < 0 else a
        v = self.vals[r]
        if a >= 0:
            self.T[a] -= v
            self.count[a] -= 1
        self.T[b] += v
        self.count[b] += 1
        if self.base is not None and self.base[r] >= 0:
            if a == self.base[r]:
                self.D += self.dis_w[r]
            elif b == self.base[r]:
                self.D -= self.dis_w[r]
        self.lab[r] = b
        self.lab_l[r] = b
        self.dirty.add(a)
        self.dirty.add(b)
        if a >= 0:
            self.version[a] += 1
        self.version[b] += 1
        self.moves.append(MoveRecord(r, src, b, phase, detail))

    # -- scoring ----------------------------------------------------------------------------
    def dev(self, T: np.ndarray) -> np.ndarray:
        return T[..., self.bal_idx] / self.mu - 1

    def pen(self, T: np.ndarray, band: np.ndarray | None = None) -> np.ndarray:
        """Imbalance of territory totals ``T`` (..., M) against ``band`` (default: the tolerance), plus limits."""
        band = self.tau if band is None else band
        p = (self.w * np.maximum(0.0, np.abs(self.dev(T)) - band)).sum(axis=-1)
        return p + LIMIT_WEIGHT * self.lim_pen(T)

    def lim_pen(self, T: np.ndarray) -> np.ndarray:
        if not len(self.lim_idx):
            return np.zeros(T.shape[:-1])
        x = T[..., self.lim_idx]
        return ((np.maximum(0.0, self.lim_lo - x) + np.maximum(0.0, x - self.lim_hi)) / self.lim_scale).sum(axis=-1)

    def soft(self, T: np.ndarray, band: np.ndarray) -> np.ndarray:
        return (self.w * np.maximum(0.0, np.abs(self.dev(T)) - band / 2) ** 2).sum(axis=-1)

    def imbalance(self, band: np.ndarray | None = None) -> float:
        return float(self.pen(self.T, band).sum())

    def time_left(self) -> float:
        return self.deadline - time.perf_counter()

    def stop(self) -> bool:
        if self.opt.should_stop():
            self.cancelled = True
        return self.cancelled or self.time_left() <= 0

    # -- contiguity -------------------------------------------------------------------------
    def stays_connected(self, r: int, a: int, limit: int = 400) -> bool:
        """Would territory ``a`` stay in one piece without region ``r``? (early-exit BFS; after ``limit``
        regions explored it answers False, which only forgoes a move)"""
        lab = self.lab_l
        nb = self.nbrs
        targets = [u for u in nb[r] if lab[u] == a]
        if len(targets) <= 1:
            return True
        need = set(targets[1:])
        seen = {r, targets[0]}
        dq = deque([targets[0]])
        while dq:
            if len(seen) > limit:
                return False
            x = dq.popleft()
            for y in nb[x]:
                if y not in seen and lab[y] == a:
                    if y in need:
                        need.discard(y)
                        if not need:
                            return True
                    seen.add(y)
                    dq.append(y)
        return False

    def pieces(self, lab: np.ndarray) -> np.ndarray:
        """Component label of each region on the subgraph of same-territory edges."""
        same = (lab[self.rows] == lab[self.indices]) & (lab[self.rows] >= 0)
        m = sp.csr_matrix((np.ones(int(same.sum()), dtype=np.int8), (self.rows[same], self.indices[same])),
                          shape=(self.n, self.n))
        return connected_components(m, directed=False)[1]

    def loads(self) -> np.ndarray:
        """Weighted relative load of each territory (for growing into the least loaded)."""
        return (self.w * (self.T[:, self.bal_idx] / self.mu)).sum(axis=1)

    def repair(self, phase: str = "contiguity", weight_col: np.ndarray | None = None) -> None:
        """Make every territory one piece holding its fixed regions, every region assigned, none empty."""
        protected = self.fixed.copy()  # fixed regions, plus the paths laid to connect them
        for _ in range(8):
            lab = self.lab.copy()
            f = protected >= 0
            lab[f] = protected[f]
            comp = self.pieces(lab)
            weight = weight_col if weight_col is not None else (
                self.vals[:, self.bal_idx] / self.mu).sum(axis=1) + 1e-9
            keep = np.zeros(self.n, dtype=bool)
            bad_territories = []
            for t in range(self.k):
                members = np.flatnonzero(lab == t)
                if not members.size:
                    continue
                cs = comp[members]
                uniq = np.unique(cs)
                fixed_cs = np.unique(comp[members[protected[members] == t]])
                if len(fixed_cs) > 1:
                    bad_territories.append((t, fixed_cs))
                if len(fixed_cs):
                    keep_c = fixed_cs
                elif len(uniq) == 1:
                    keep_c = uniq
                else:
                    w = np.bincount(np.searchsorted(uniq, cs), weights=weight[members], minlength=len(uniq))
                    keep_c = uniq[[int(np.argmax(w))]]
                keep[members[np.isin(cs, keep_c)]] = True
            # Connect a territory's separated fixed regions along shortest paths of free regions.
            for t, fixed_cs in bad_territories:
                path = self._connect(lab, comp, t, fixed_cs, protected)
                if path is None:
                    names = [self.opt.inst.region_ids[int(np.flatnonzero((comp == c) & (protected == t))[0])]
                             for c in fixed_cs[:2]]
                    raise InfeasibleError(
                        f"{self.opt._territory_label(t)} cannot be contiguous: its locked/seed regions {names[0]} and "
                        f"{names[1]} are separated by regions locked to other territories")
                for i in path:
                    lab[i] = t
                    keep[i] = True
                    protected[i] = t
            old = self.lab.copy()
            for i in np.flatnonzero(~keep & (old >= 0)).tolist():
                self.freed_from.setdefault(i, int(old[i]))
            lab[~keep] = -1
            changed = np.flatnonzero((lab != old) & (lab >= 0))
            self.set_labels(lab)
            self._log_changes(changed, old, phase)
            self.grow(phase)
            self.fill_empty()
            comp = self.pieces(self.lab)
            n_pieces = [len(np.unique(comp[self.lab == t])) for t in range(self.k)]
            if max(n_pieces) <= 1 and min(n_pieces) >= 1:
                return
        split = [self.opt._territory_label(t) for t in range(self.k) if n_pieces[t] != 1]
        raise InfeasibleError(
            f"could not make {', '.join(split)} contiguous around the locked/seed regions: the paths joining one "
            "territory's fixed regions cross another's; unlock or move some of them")

    def _log_changes(self, changed: np.ndarray, old: np.ndarray, phase: str) -> None:
        """Record regions a repair put in place directly (fixed regions, connecting paths)."""
        for i in changed.tolist():
            src = self.freed_from.pop(i, int(old[i]))
            detail = "" if self.fixed[i] < 0 else "locked/seed region put in its territory"
            self.moves.append(MoveRecord(i, src, int(self.lab[i]), phase, detail))

    def _connect(self, lab, comp, t, fixed_cs, protected) -> list[int] | None:
        main = fixed_cs[0]
        inside = set(np.flatnonzero(comp == main).tolist())
        path: list[int] = []
        for c in fixed_cs[1:]:
            goal = set(np.flatnonzero(comp == c).tolist())
            prev = {s: -1 for s in inside}
            dq = deque(inside)
            hit = None
            while dq and hit is None:
                x = dq.popleft()
                for y in self.nbrs[x]:
                    if y in prev or (protected[y] >= 0 and protected[y] != t):
                        continue
                    prev[y] = x
                    if y in goal:
                        hit = y
                        break
                    dq.append(y)
            if hit is None:
                return None
            x = prev[hit]
            while x != -1 and x not in inside:
                path.append(x)
                x = prev[x]
            inside |= goal | set(path)
        return path

    def grow(self, phase: str) -> None:
        """Assign every unassigned region to the least-loaded territory among its assigned neighbours, from the borders in."""
        lab = self.lab_l
        un = [i for i in range(self.n) if lab[i] < 0]
        if not un:
            return
        loads = self.loads()
        heap: list[tuple[float, int, int]] = []

        def push(i):
            ts = {lab[u] for u in self.nbrs[i] if lab[u] >= 0}
            if ts:
                t = min(ts, key=lambda x: loads[x])
                heapq.heappush(heap, (loads[t], i, t))

        for i in un:
            push(i)
        while heap:
            _, i, t = heapq.heappop(heap)
            if lab[i] >= 0:
                continue
            ts = {lab[u] for u in self.nbrs[i] if lab[u] >= 0}
            best = min(ts, key=lambda x: loads[x])
            if best != t:  # loads moved on: requeue with the current best
                heapq.heappush(heap, (loads[best], i, best))
                continue
            self.move(i, t, phase if phase != "contiguity" else "contiguity",
                      "" if phase != "unassigned" else "was unassigned")
            loads[t] = self.loads()[t]
            for u in self.nbrs[i]:
                if lab[u] < 0:
                    push(u)
        if any(x < 0 for x in lab):  # a piece with no assigned region at all (cannot happen on a connected graph)
            rest = [i for i in range(self.n) if lab[i] < 0]
            t = int(np.argmin(self.loads()))
            for i in rest:
                self.move(i, t, phase)

    def fill_empty(self) -> None:
        """Give each empty territory one region taken from the border of the heaviest territory."""
        for t in range(self.k):
            if self.count[t] > 0:
                continue
            order = np.argsort(-self.loads())
            done = False
            for a in order.tolist():
                if self.count[a] <= 1:
                    continue
                members = np.flatnonzero((self.lab == a) & (self.fixed < 0))
                # Prefer regions on the territory's edge (few same-territory neighbours).
                same = np.array([sum(1 for u in self.nbrs[i] if self.lab_l[u] == a) for i in members.tolist()])
                for i in members[np.argsort(same, kind="stable")].tolist():
                    if self.stays_connected(i, a):
                        self.move(i, t, "contiguity", "")
                        done = True
                        break
                if done:
                    break
            if not done:
                raise InfeasibleError("cannot give every territory a region (too many locked regions?)")

    # -- chunks: what moves along with a region that holds its territory together -------------
    def _anchor_of(self, t: int, members: np.ndarray) -> int:
        """A region that never leaves territory t during refinement: a fixed one, else the one nearest its centre."""
        x = int(self.anchor[t])
        if x >= 0 and self.lab_l[x] == t:
            return x
        fixed = members[self.fixed[members] == t]
        if len(fixed):
            x = int(fixed[0])
        else:
            w = (self.vals[members][:, self.bal_idx] / self.mu).sum(axis=1) + 1e-6
            c = (self.cent_xy[members] * w[:, None]).sum(axis=0) / w.sum()
            x = int(members[np.argmin(((self.cent_xy[members] - c) ** 2).sum(axis=1))])
        self.anchor[t] = x
        return x

    def _build_tree(self, t: int) -> None:
        """DFS (Tarjan low-links) of territory t from its anchor: for each region r, the child subtrees that
        would lose their link to the anchor without r; r's chunk is r plus those subtrees."""
        members = np.flatnonzero(self.lab == t)
        self.chunk_ok[members] = False
        self.chunk_size[members] = 1
        self.chunk_val[members] = self.vals[members]
        if not len(members):
            self.trees.pop(t, None)
            return
        root = self._anchor_of(t, members)
        lab, nbrs = self.lab_l, self.nbrs
        pre, low = self._pre, self._low  # scratch lists over all regions, -1 outside this build
        pre[root] = low[root] = 0
        order = [root]
        size: dict[int, int] = {}
        sep: dict[int, list[int]] = {}
        stack = [(root, -1, iter(nbrs[root]))]
        while stack:
            node, parent, itr = stack[-1]
            advanced = False
            for y in itr:
                if lab[y] != t:
                    continue
                py = pre[y]
                if py < 0:
                    pre[y] = low[y] = len(order)
                    order.append(y)
                    stack.append((y, node, iter(nbrs[y])))
                    advanced = True
                    break
                if y != parent and py < low[node]:
                    low[node] = py
            if advanced:
                continue
            stack.pop()
            size[node] = len(order) - pre[node]
            if stack:
                up = stack[-1][0]
                if low[node] < low[up]:
                    low[up] = low[node]
                if low[node] >= pre[up] and up != root:
                    sep.setdefault(up, []).append(node)
        pre_t = {x: pre[x] for x in order}
        for x in order:
            pre[x] = low[x] = -1
        pre = pre_t
        self.trees[t] = (order, pre, size, sep)
        order_a = np.asarray(order, dtype=np.int64)
        cs = np.vstack([np.zeros((1, self.vals.shape[1])), np.cumsum(self.vals[order_a], axis=0)])
        fx = np.concatenate([[0], np.cumsum(self.fixed[order_a] >= 0)])
        ok = np.ones(len(order_a), dtype=bool)
        ok[0] = False  # the anchor stays
        ok &= self.fixed[order_a] < 0
        self.chunk_ok[order_a] = ok
        if sep:
            rs = np.array([r for r, cs_ in sep.items() for _ in cs_], dtype=np.int64)
            starts = np.array([pre[c] for cs_ in sep.values() for c in cs_], dtype=np.int64)
            ends = starts + np.array([size[c] for cs_ in sep.values() for c in cs_], dtype=np.int64)
            np.add.at(self.chunk_val, rs, cs[ends] - cs[starts])
            np.add.at(self.chunk_size, rs, ends - starts)
            bad = rs[(fx[ends] - fx[starts]) > 0]
            self.chunk_ok[bad] = False

    def refresh_trees(self, only: np.ndarray | None = None) -> None:
        """Rebuild the chunk trees of changed territories (only those flagged in ``only``, if given)."""
        todo = sorted(self.dirty) if only is None else [t for t in sorted(self.dirty) if only[t]]
        for t in todo:
            self._build_tree(t)
        self.dirty.difference_update(todo)

    def chunk_members(self, r: int, t: int) -> list[int]:
        order, pre, size, sep = self.trees[t]
        out = [r]
        for c in sep.get(r, ()):
            out.extend(order[pre[c]:pre[c] + size[c]])
        return out

    # -- candidate moves --------------------------------------------------------------------
    def border_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (region r, territory a = lab[r], neighbouring territory b != a) once, movable regions only."""
        lab = self.lab
        la, lb = lab[self.rows], lab[self.indices]
        cut = (la != lb) & (la >= 0) & (lb >= 0) & (self.fixed[self.rows] < 0)
        r, b = self.rows[cut], lb[cut]
        key = np.unique(r * self.k + b)
        r, b = key // self.k, key % self.k
        return r, lab[r], b

    def border_lengths(self, r: np.ndarray, b: np.ndarray, a: np.ndarray):
        """Border length (and neighbour count) of each r with territory b and with its own territory a."""
        lab = self.lab
        same = lab[self.rows] == lab[self.indices]
        own_len = np.bincount(self.rows[same], weights=self.elen[same], minlength=self.n)
        own_cnt = np.bincount(self.rows[same], minlength=self.n)
        key_all = self.rows * self.k + lab[self.indices]
        keys = r * self.k + b
        srt = np.argsort(key_all, kind="stable")
        ks = key_all[srt]
        lo = np.searchsorted(ks, keys, "left")
        hi = np.searchsorted(ks, keys, "right")
        csum_len = np.concatenate([[0.0], np.cumsum(self.elen[srt])])
        to_b_len = csum_len[hi] - csum_len[lo]
        to_b_cnt = hi - lo
        return own_len[r], own_cnt[r], to_b_len, to_b_cnt

    def disruption_delta(self, r, a, b) -> np.ndarray:
        """(potential share, customer share) change of the disruption for moves r: a -> b."""
        if self.base is None:
            return np.zeros((len(np.atleast_1d(r)), 2))
        base = self.base[r]
        sign = np.where((a == base) & (base >= 0), 1.0, np.where((b == base) & (base >= 0), -1.0, 0.0))
        return self.dis_w[r] * sign[..., None]

    def _territory_adjacency(self) -> np.ndarray:
        lab = self.lab
        la, lb = lab[self.rows], lab[self.indices]
        cut = (la != lb) & (la >= 0) & (lb >= 0)
        adj = np.zeros((self.k, self.k), dtype=bool)
        adj[la[cut], lb[cut]] = True
        return adj

    def _can_leave(self, r: int, a: int) -> bool:
        return self.count[a] > 1 and self.stays_connected(r, a)

    def _cap_ok(self, dd: np.ndarray) -> bool:
        if self.cap is None:
            return True
        new = self.D + dd
        return bool(np.all((new <= self.cap + 1e-12) | (dd <= 0)))

    def _balance_detail(self, r: int, a: int, b: int, band) -> str:
        """The reason of a balance move, with before/after deviations of the measure it helped most."""
        v = self.vals[r].sum(axis=0) if isinstance(r, list) else self.vals[r]
        da0, db0 = self.dev(self.T[a]), self.dev(self.T[b])
        da1, db1 = self.dev(self.T[a] - v), self.dev(self.T[b] + v)
        gain = self.w * ((np.maximum(0, np.abs(da0) - band) - np.maximum(0, np.abs(da1) - band))
                         + (np.maximum(0, np.abs(db0) - band) - np.maximum(0, np.abs(db1) - band)))
        j = int(np.argmax(gain)) if np.any(gain > 0) else int(np.argmax(np.abs(da0 - da1)))
        m = list(self.opt.balance)[j]
        dB = float(self.pen(self.T[a], band) + self.pen(self.T[b], band) - self.pen(self.T[a] - v, band)
                   - self.pen(self.T[b] + v, band))
        if dB < -1e-12:
            return (f"balance (escape step, {MEASURE_LABELS[m]}): {{src}} {da0[j]:+.1%} → {da1[j]:+.1%}, {{dst}} "
                    f"{db0[j]:+.1%} → {db1[j]:+.1%}; briefly worse to get out of a stall")
        if dB <= 1e-12:
            return (f"balance chain ({MEASURE_LABELS[m]}): {{src}} {da0[j]:+.1%} → {da1[j]:+.1%}, {{dst}} {db0[j]:+.1%} → "
                    f"{db1[j]:+.1%}, making room next to an out-of-tolerance territory")
        return (f"balance ({MEASURE_LABELS[m]}, tolerance ±{self.tau[j]:.0%}): {{src}} {da0[j]:+.1%} → {da1[j]:+.1%}, "
                f"{{dst}} {db0[j]:+.1%} → {db1[j]:+.1%}; imbalance reduced by {dB:.4f}")

    def refine(self, band: np.ndarray, budget: float, label: str, frac0: float, frac1: float,
               max_rounds: int = 10_000, tenure: int = 8, max_stall: int = 25, hold=None) -> None:
        """Local search on border moves until B (with ``band``) is 0, time or stalls run out; keeps the best.
        Regions in ``hold`` stay where they are in this call (a kick's chunk: the search must not just undo it)."""
        t_end = min(self.deadline, time.perf_counter() + budget)
        best = (self.imbalance(band), float(self.soft(self.T, band).sum()))
        best_snap = self.snapshot()
        B0 = max(best[0], 1e-12)
        stall = since_best = 0
        self.tabu_until[:] = 0  # round numbers restart with every call
        if hold is not None:
            self.tabu_until[hold] = max_rounds + 1
        rebalance = self.base is not None
        rng = np.random.default_rng(self.opt.random_state + 1)
        for it in range(1, max_rounds + 1):
            if best[0] <= 1e-12 or time.perf_counter() > t_end or self.stop():
                break
            cur = self.imbalance(band)
            self.opt.progress(frac0 + (frac1 - frac0) * min(1.0, max(0.0, 1 - cur / B0)),
                              f"{label}: imbalance {cur:.4f}")
            # Only territories out of band and their neighbours (two steps) take part: moves elsewhere cannot
            # lower B, and their chunk trees need not be rebuilt.
            viol = self.pen(self.T, band) > 1e-12
            adj = self._territory_adjacency()
            near = viol | adj[viol].any(axis=0)
            near = near | adj[near].any(axis=0)
            # Chunk trees (what moves along with a region) are kept for the out-of-band territories only;
            # elsewhere a move is a single region, checked for contiguity when it is applied.
            self.refresh_trees(viol)
            self.tree_terr = viol.copy()
            r, a, b = self.border_pairs()
            keep = near[a]
            r, a, b = r[keep], a[keep], b[keep]
            use_tree = viol[a]
            movable = np.where(use_tree, self.chunk_ok[r] & (self.chunk_size[r] < self.count[a]), self.count[a] > 1)
            r, a, b, use_tree = r[movable], a[movable], b[movable], use_tree[movable]
            if not len(r):
                break
            V = np.where(use_tree[:, None], self.chunk_val[r], self.vals[r])
            dB, dS = self.deltas_V(V, a, b, band)
            good = (dB < -1e-12) | ((np.abs(dB) <= 1e-12) & (dS < -1e-15) & (near[a] | near[b]))
            applied = 0
            if good.any():
                idx = np.flatnonzero(good)
                if rebalance:
                    dd = self.disruption_delta(r[idx], a[idx], b[idx]).sum(axis=1)
                    big = self.chunk_size[r[idx]] > 1  # chunks: cost bounded by their whole weight
                    dd = np.where(big, (self.chunk_val[r[idx]][:, [MEASURES.index("potential"),
                                                                     MEASURES.index("customers")]]
                                        / np.maximum(self.vals[:, [MEASURES.index("potential"),
                                                                   MEASURES.index("customers")]].sum(axis=0),
                                                     1e-300)).sum(axis=1), dd)
                    cost = np.maximum(dd, 0) + 1e-6
                    key1 = np.where(dB[idx] < -1e-12, dB[idx] / cost, 0.0)
                    key2 = np.where(dB[idx] < -1e-12, 0.0, dS[idx] / cost)
                    order = idx[np.lexsort((key2, key1))]
                else:
                    order = idx[np.lexsort((dS[idx], np.round(dB[idx], 12)))]
                applied = self._apply_greedy(order, r, a, b, dB, dS, band, it)
            if applied:
                stall = 0
            elif self._swap_step(r, a, b, viol, band, it):
                stall += 1
            elif self._recombine_step(adj, viol, band, rng, it):
                stall += 1
            else:
                stall += 1
                if stall > max_stall or not self._tabu_step(r, a, b, dB, dS, viol, band, it, tenure):
                    break
            now = (self.imbalance(band), float(self.soft(self.T, band).sum()))
            if now < best:
                best = now
                best_snap = self.snapshot()
                since_best = 0
            else:
                since_best += 1
                if since_best > max_stall:
                    break
        if (self.imbalance(band), float(self.soft(self.T, band).sum())) > best:
            self.restore(best_snap)

    def deltas_V(self, V: np.ndarray, a: np.ndarray, b: np.ndarray, band):
        Ta, Tb = self.T[a], self.T[b]
        dB = self.pen(Ta - V, band) + self.pen(Tb + V, band) - self.pen(Ta, band) - self.pen(Tb, band)
        dS = self.soft(Ta - V, band) + self.soft(Tb + V, band) - self.soft(Ta, band) - self.soft(Tb, band)
        return dB, dS

    def _deltas_v(self, v: np.ndarray, a: int, b: int, band) -> tuple[float, float]:
        Ta, Tb = self.T[a], self.T[b]
        dB = self.pen(Ta - v, band) + self.pen(Tb + v, band) - self.pen(Ta, band) - self.pen(Tb, band)
        dS = self.soft(Ta - v, band) + self.soft(Tb + v, band) - self.soft(Ta, band) - self.soft(Tb, band)
        return float(dB), float(dS)

    def _limits_ok(self, v: np.ndarray, a: int, b: int) -> bool:
        if not len(self.lim_idx):
            return True
        Ta, Tb = self.T[a], self.T[b]
        return not (self.lim_pen(Ta - v) > self.lim_pen(Ta) + 1e-12 or self.lim_pen(Tb + v) > self.lim_pen(Tb) + 1e-12)

    def _chunk(self, r: int, a: int, max_size: int) -> list[int] | None:
        """``r`` plus the pieces of territory ``a`` that removing ``r`` cuts off (all but the main piece: the one
        holding a's fixed regions, else the heaviest); None if that is too big or holds fixed regions."""
        lab = self.lab_l
        pieces: list[list[int]] = []
        seen = {r}
        for s0 in self.nbrs[r]:
            if lab[s0] != a or s0 in seen:
                continue
            piece = [s0]
            seen.add(s0)
            dq = deque([s0])
            while dq:
                x = dq.popleft()
                for y in self.nbrs[x]:
                    if y not in seen and lab[y] == a:
                        seen.add(y)
                        piece.append(y)
                        dq.append(y)
            pieces.append(piece)
        if len(pieces) <= 1:
            return [r]
        has_fixed = [any(self.fixed[i] >= 0 for i in p) for p in pieces]
        if sum(has_fixed) > 1:
            return None
        anchor = int(self.anchor[a])
        if any(has_fixed):
            main = has_fixed.index(True)
        elif anchor >= 0 and anchor != r and self.lab_l[anchor] == a:
            main = next(j for j, p in enumerate(pieces) if anchor in p)
        else:
            load = self.vals[:, self.bal_idx] / self.mu
            main = int(np.argmax([load[p].sum() + 1e-9 * len(p) for p in pieces]))
        chunk = [r] + [i for j, p in enumerate(pieces) if j != main for i in p]
        if len(chunk) > max_size:
            return None
        return chunk

    def _apply_greedy(self, order, r, a, b, dB0, dS0, band, it) -> int:
        applied = 0
        touched_regions: set[int] = set()
        touched_terr: set[int] = set()
        lab = self.lab_l
        chunk_tries = 60
        max_chunk = max(20, self.n // self.k // 4)
        for j in order[:4000].tolist():
            ri, ai, bi = int(r[j]), int(a[j]), int(b[j])
            if lab[ri] != ai or ri in touched_regions or self.tabu_until[ri] > it:
                continue
            fresh = ai not in touched_terr and bi not in touched_terr and bool(self.tree_terr[ai])
            if fresh:  # the territories' trees and totals are as scored
                dB, dS = float(dB0[j]), float(dS0[j])
                if dB > 1e-12 or (dB >= -1e-12 and dS >= -1e-15):
                    continue
                regions = self.chunk_members(ri, ai)
                if any(self.tabu_until[i] > it or i in touched_regions for i in regions):
                    continue
            else:  # no tree, or totals moved since scoring: re-score the single move, take a chunk only if needed
                if ai in touched_terr or bi in touched_terr:
                    dB, dS = self._deltas_v(self.vals[ri], ai, bi, band)
                else:
                    dB, dS = float(dB0[j]), float(dS0[j])
                if dB > 1e-12 or (dB >= -1e-12 and dS >= -1e-15):
                    continue
                regions = [ri]
            if not any(lab[u] == bi for u in self.nbrs[ri]):
                continue
            if not fresh and not self.stays_connected(ri, ai):
                # r holds territory a together: move it with the part of a it cuts off, if that still helps.
                if chunk_tries <= 0 or dB >= -1e-12:
                    continue
                chunk_tries -= 1
                regions = self._chunk(ri, ai, max_chunk)
                if regions is None or len(regions) >= self.count[ai] or any(self.tabu_until[i] > it for i in regions):
                    continue
                dB, dS = self._deltas_v(self.vals[regions].sum(axis=0), ai, bi, band)
                if dB >= -1e-12:
                    continue
            if len(regions) >= self.count[ai] or not self._move_group(regions, ai, bi, band):
                continue
            touched_regions.update(regions)
            touched_terr.update((ai, bi))
            applied += 1
        return applied

    def _move_group(self, regions: list[int], a: int, b: int, band, tabu_until: int | None = None) -> bool:
        """Move ``regions`` from a to b if the hard limits and the disruption cap allow it (optionally
        freezing them until round ``tabu_until``); the reason is logged with each move."""
        v = self.vals[regions].sum(axis=0)
        if not self._limits_ok(v, a, b):
            return False
        idx = np.asarray(regions)
        dd = self.disruption_delta(idx, np.full(len(idx), a), np.full(len(idx), b)).sum(axis=0)
        if not self._cap_ok(dd):
            return False
        detail = self._balance_detail(regions, a, b, band)
        if len(regions) > 1:
            detail += f" (a group of {len(regions)} regions, moved together to keep {{src}} in one piece)"
        for i in regions:
            self.move(i, b, "balance", detail)
            if tabu_until is not None:
                self.tabu_until[i] = tabu_until
        return True

    def _recombine_step(self, adj, viol, band, rng, it) -> bool:
        """Redraw the border of an out-of-band territory with one of its neighbours (most out of band first)."""
        pen = self.pen(self.T, band)
        for t in np.argsort(-pen)[:3].tolist():
            if not viol[t]:
                break
            nbrs = np.flatnonzero(adj[t])
            # Partners whose deviation is opposite (or smallest) first: their union is closest to two targets.
            load = (self.w * self.dev(self.T)).sum(axis=1)
            partners = nbrs[np.argsort(load[nbrs] * np.sign(load[t]))].tolist()[:4]
            groups = [[t, u] for u in partners]
            groups += [[t, u, v] for i, u in enumerate(partners) for v in partners[i + 1:]]
            for grp in groups:
                key = tuple(sorted(grp))
                ver = tuple(int(self.version[x]) for x in key)
                if self.failed_recombine.get(key) == ver:
                    continue  # tried on these very territories already
                if self.recombine(list(key), band, rng, it):
                    return True
                self.failed_recombine[key] = ver
        return False

    def _swap_step(self, r, a, b, viol, band, it, max_side: int = 60) -> bool:
        """Exchange two border regions between an out-of-band territory and a neighbour when that lowers B
        (single moves overshoot, or several measures pull in different directions)."""
        worst = np.argsort(-self.pen(self.T, band))
        worst = [int(t) for t in worst[:6] if viol[t]]
        pairs = []
        free = self.tabu_until[r] <= it
        for t in worst:
            for u in np.unique(b[(a == t) & free]).tolist():
                R = r[(a == t) & (b == u) & free][:max_side]
                S = r[(a == u) & (b == t) & free][:max_side]
                if not len(R) or not len(S):
                    continue
                vr, vs = self.vals[R][:, None, :], self.vals[S][None, :, :]
                Tt = self.T[t] - vr + vs
                Tu = self.T[u] + vr - vs
                dB = self.pen(Tt, band) + self.pen(Tu, band) - self.pen(self.T[t], band) - self.pen(self.T[u], band)
                ii, jj = np.nonzero(dB < -1e-12)
                for x, y in zip(ii.tolist(), jj.tolist()):
                    pairs.append((float(dB[x, y]), int(R[x]), int(S[y]), t, u))
        pairs.sort()
        lab = self.lab_l
        for _, ri, si, t, u in pairs[:200]:
            if ri == si or lab[ri] != t or lab[si] != u:
                continue
            v = self.vals[ri] - self.vals[si]
            if not self._limits_ok(v, t, u):
                continue
            dd = (self.disruption_delta(np.array([ri]), np.array([t]), np.array([u]))[0]
                  + self.disruption_delta(np.array([si]), np.array([u]), np.array([t]))[0])
            if not self._cap_ok(dd) or not self._can_leave(ri, t):
                continue
            detail = self._swap_detail(ri, si, t, u, band)
            self.move(ri, u, "balance", detail)
            if any(lab[x] == t for x in self.nbrs[si]) and self.stays_connected(si, u):
                self.move(si, t, "balance", detail.replace("{src}", "\0").replace("{dst}", "{src}").replace("\0", "{dst}"))
                return True
            self.move(ri, t, "balance")  # undo
            del self.moves[-2:]
        return False

    def _swap_detail(self, ri: int, si: int, t: int, u: int, band) -> str:
        v = self.vals[ri] - self.vals[si]
        d0, d1 = self.dev(self.T[t]), self.dev(self.T[t] - v)
        e0, e1 = self.dev(self.T[u]), self.dev(self.T[u] + v)
        j = int(np.argmax(self.w * (np.abs(d0) - np.abs(d1))))
        m = list(self.opt.balance)[j]
        return (f"balance by exchange with region {self.opt.inst.region_ids[si]} ({MEASURE_LABELS[m]}): "
                f"{{src}} {d0[j]:+.1%} → {d1[j]:+.1%}, {{dst}} {e0[j]:+.1%} → {e1[j]:+.1%}")

    def _tabu_step(self, r, a, b, dB, dS, viol, band, it, tenure) -> bool:
        """No improving move: make the least bad move touching an out-of-band territory, then forbid undoing it."""
        lab = self.lab_l
        cand = np.flatnonzero((viol[a] | viol[b]) & (self.tabu_until[r] <= it))
        if not len(cand):
            return False
        cand = cand[2 * self.chunk_size[r[cand]] <= self.count[a[cand]]]
        order = cand[np.lexsort((dS[cand], dB[cand]))]
        involved = np.zeros(self.k, dtype=bool)
        involved[a[cand]] = True
        self.refresh_trees(involved)
        for j in order[:500].tolist():
            ri, ai, bi = int(r[j]), int(a[j]), int(b[j])
            if lab[ri] != ai or not self.chunk_ok[ri]:
                continue
            regions = self.chunk_members(ri, ai)
            if any(self.tabu_until[i] > it for i in regions):
                continue
            if self._move_group(regions, ai, bi, band, tabu_until=it + tenure):
                return True
        return False

    def compact(self, band: np.ndarray, budget: float, passes: int = 30) -> None:
        """Border moves that shorten the total border, keeping every territory within max(band, its |deviation|)."""
        t_end = min(self.deadline, time.perf_counter() + budget)
        for _ in range(passes):
            if time.perf_counter() > t_end or self.stop():
                break
            self.refresh_trees()
            r, a, b = self.border_pairs()
            if not len(r):
                break
            single = self.chunk_ok[r] & (self.chunk_size[r] == 1)  # not holding its territory together
            r, a, b = r[single], a[single], b[single]
            if not len(r):
                break
            own_len, own_cnt, to_b_len, to_b_cnt = self.border_lengths(r, b, a)
            scale = float(np.median(self.elen[self.elen > 0])) if np.any(self.elen > 0) else 1.0
            gain = (to_b_len - own_len) / scale + 0.01 * (to_b_cnt - own_cnt)
            good = np.flatnonzero(gain > 1e-9)
            if not len(good):
                break
            if self.base is not None:  # prefer moves back to the base territory, then cheap ones
                dd = self.disruption_delta(r[good], a[good], b[good]).sum(axis=1)
                order = good[np.lexsort((-gain[good], dd))] if self.cap is not None else good[np.argsort(-gain[good])]
            else:
                order = good[np.argsort(-gain[good], kind="stable")]
            applied = 0
            lab = self.lab_l
            touched: set[int] = set()
            touched_terr: set[int] = set()
            for j in order.tolist():
                if time.perf_counter() > t_end:
                    break
                ri, ai, bi = int(r[j]), int(a[j]), int(b[j])
                if lab[ri] != ai or ri in touched:
                    continue
                # Re-check the gain on the live assignment (neighbours may have moved).
                la = lb = 0.0
                ca = cb = 0
                for p in range(self.indptr[ri], self.indptr[ri + 1]):
                    u = lab[self.indices[p]]
                    if u == ai:
                        la += self.elen[p]
                        ca += 1
                    elif u == bi:
                        lb += self.elen[p]
                        cb += 1
                g = (lb - la) / scale + 0.01 * (cb - ca)
                if g <= 1e-9 or cb == 0:
                    continue
                v = self.vals[ri]
                da1, db1 = np.abs(self.dev(self.T[ai] - v)), np.abs(self.dev(self.T[bi] + v))
                da0, db0 = np.abs(self.dev(self.T[ai])), np.abs(self.dev(self.T[bi]))
                if np.any(da1 > np.maximum(band, da0) + 1e-12) or np.any(db1 > np.maximum(band, db0) + 1e-12):
                    continue
                if len(self.lim_idx) and (self.lim_pen(self.T[ai] - v) > self.lim_pen(self.T[ai]) + 1e-12
                                          or self.lim_pen(self.T[bi] + v) > self.lim_pen(self.T[bi]) + 1e-12):
                    continue
                dd = self.disruption_delta(np.array([ri]), np.array([ai]), np.array([bi]))[0]
                if not self._cap_ok(dd):
                    continue
                if self.count[ai] <= 1 or (ai in touched_terr and not self.stays_connected(ri, ai, limit=100)):
                    continue
                touched_terr.update((ai, bi))
                self.move(ri, bi, "compactness",
                          f"compactness: the {{src}}/{{dst}} border gets {lb - la:.1f} km shorter"
                          f" (balance stays within ±{float(np.max(band)):.1%})")
                touched.add(ri)
                applied += 1
            if not applied:
                break

    # -- scores -----------------------------------------------------------------------------
    def scores(self, seconds: float) -> dict:
        lab = self.lab
        g = self.g
        T = self.T
        dev = self.dev(T)
        # Pieces per territory (same count as metrics.components_per_territory, in one pass over the edges).
        pieces = np.unique(np.column_stack([lab, self.pieces(lab)]), axis=0)
        comps = dict(enumerate(np.bincount(pieces[:, 0], minlength=self.k).tolist()))
        per = metrics.territory_perimeters(g.edges, g.edge_length, g.outer_length, lab, self.k)
        area = np.bincount(lab, weights=g.area, minlength=self.k)
        pp = metrics.polsby_popper(area, per)
        primary = list(self.opt.balance)[0]
        mdev = {m: float(np.abs(dev[:, j]).max()) for j, m in enumerate(self.opt.balance)}
        within = all(mdev[m] <= self.opt.tolerance[m] + 1e-9 for m in mdev) and float(self.lim_pen(T).sum()) <= 1e-12
        out = {
            "max_deviation": mdev[primary],
            "max_deviation_by_measure": mdev,
            "cv": metrics.coefficient_of_variation(T[:, MEASURES.index(primary)]),
            "within_tolerance": bool(within),
            "contiguous": int(sum(1 for c in comps.values() if c == 1)),
            "non_contiguous": int(sum(1 for c in comps.values() if c != 1)),
            "cut_edge_share": metrics.cut_edge_share(g.edges, lab),
            "mean_polsby_popper": float(pp.mean()),
            "min_polsby_popper": float(pp.min()),
            "disruption_potential": None,
            "disruption_customers": None,
            "moved_regions": None,
            "seconds": round(seconds, 3),
        }
        if self.base is not None:
            out["disruption_potential"] = metrics.disruption(self.vals[:, MEASURES.index("potential")], self.base, lab)
            out["disruption_customers"] = metrics.disruption(self.vals[:, MEASURES.index("customers")], self.base, lab)
            out["moved_regions"] = int(np.sum((lab != self.base) & (self.base >= 0)))
        return out

    def candidate(self, name: str, description: str, t_start: float) -> Candidate:
        return Candidate(name, description, self.lab.copy(), self.scores(time.perf_counter() - t_start),
                         list(self.moves))

    # -- the two modes ------------------------------------------------------------------------
    def metis_start(self, seed: int = 0) -> np.ndarray:
        import pymetis

        k = self.k
        if k == 1:
            return np.zeros(self.n, dtype=np.int64)
        xb = self.vals[:, self.bal_idx]
        scaled = np.floor(xb / np.maximum(xb.sum(axis=0), 1e-300) * 1e7).astype(np.int64)
        elen = self.elen
        pos = elen[elen > 0]
        unit = float(np.median(pos)) if len(pos) else 1.0
        ew = np.maximum(1, np.round(elen / unit * 10)).astype(np.int64)
        ufactor = int(np.clip(np.min(self.tau) * 1000 / 2, 1, 300))
        opts = pymetis.Options(contig=1, ufactor=ufactor, seed=seed, ncuts=1)
        adj = pymetis.CSRAdjacency(self.indptr.astype(np.int64), self.indices.astype(np.int64))
        try:
            res = pymetis.part_graph(k, adj, vweights=scaled.ravel(), eweights=ew, options=opts)
        except Exception:  # METIS refuses some inputs with contig: fall back to no contiguity (repaired below)
            opts = pymetis.Options(ufactor=ufactor, seed=seed)
            res = pymetis.part_graph(k, adj, vweights=scaled.ravel(), eweights=ew, options=opts)
        return np.asarray(res[1], dtype=np.int64)

    # -- spanning-tree splits (start on sparse graphs, and recombination when stalled) -----------
    def _load_vec(self) -> np.ndarray:
        if not hasattr(self, "_load"):
            self._load = (self.w * (self.vals[:, self.bal_idx] / self.mu)).sum(axis=1)
        return self._load

    def tree_split(self, nodes: np.ndarray, k1: int, k2: int, guide: np.ndarray | None, rng, tries: int = 4,
                   good_enough: float = 0.0) -> tuple[np.ndarray, np.ndarray, float] | None:
        """Split the connected region set ``nodes`` into two connected parts holding k1 : k2 of its load.

        A random spanning tree of the induced subgraph (minimum spanning tree of random edge weights; edges
        that ``guide`` cuts weigh more, so the tree follows the guide's parts) is cut at the edge whose
        subtree load is closest to a k1 or k2 share. Fixed regions must not be split from their territory-mates:
        the cut is only chosen among edges that leave all regions fixed to one territory on one side.
        Returns (part with k1, part with k2, relative error) or None.
        """
        from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

        nodes = np.asarray(nodes, dtype=np.int64)
        m = len(nodes)
        if m < 2:
            return None
        pos = np.full(self.n, -1, dtype=np.int64)
        pos[nodes] = np.arange(m)
        sel = (pos[self.rows] >= 0) & (pos[self.indices] >= 0) & (self.rows < self.indices)
        er, ec = pos[self.rows[sel]], pos[self.indices[sel]]
        load = self._load_vec()[nodes] + 1e-9
        total = load.sum()
        want1, want2 = total * k1 / (k1 + k2), total * k2 / (k1 + k2)
        fx = self.fixed[nodes]
        fixed_terr = np.unique(fx[fx >= 0])
        best = None
        for _ in range(tries):
            wgt = rng.random(len(er)) + 1.0
            if guide is not None:
                wgt += 2.0 * (guide[nodes[er]] != guide[nodes[ec]])
            tree = minimum_spanning_tree(sp.csr_matrix((wgt, (er, ec)), shape=(m, m)))
            order, pred = breadth_first_order(tree, 0, directed=False, return_predecessors=True)
            if len(order) < m:
                return None  # not connected
            sub = load.copy()
            order_l = order.tolist()
            pred_l = pred.tolist()
            for i in reversed(order_l[1:]):
                sub[pred_l[i]] += sub[i]
            # Fixed regions: count per territory in each subtree; a cut must not separate a territory's fixed regions.
            ok = np.ones(m, dtype=bool)
            ok[order[0]] = False
            for t in fixed_terr.tolist():
                cnt = (fx == t).astype(np.int64)
                tot = int(cnt.sum())
                if tot <= 1:
                    continue
                for i in reversed(order_l[1:]):
                    cnt[pred_l[i]] += cnt[i]
                ok &= (cnt == 0) | (cnt == tot)
            err1 = np.abs(sub / want1 - 1)
            err2 = np.abs(sub / want2 - 1)
            err = np.where(ok, np.minimum(err1, err2), np.inf)
            i = int(np.argmin(err))
            if not np.isfinite(err[i]):
                continue
            if best is None or err[i] < best[0]:
                inside = np.zeros(m, dtype=bool)
                inside[i] = True
                for x in order_l:
                    p_ = pred_l[x]
                    if p_ >= 0 and inside[p_]:
                        inside[x] = True
                first = err1[i] <= err2[i]
                best = (float(err[i]), inside, first)
            if best[0] <= good_enough:
                break
        if best is None:
            return None
        err, inside, first = best
        a_nodes, b_nodes = nodes[inside], nodes[~inside]
        return (a_nodes, b_nodes, err) if first else (b_nodes, a_nodes, err)

    def tree_partition(self, nodes: np.ndarray, kk: int, guide: np.ndarray | None, rng,
                       tries: int = 6) -> np.ndarray | None:
        """Labels 0..kk-1 for ``nodes`` (a connected set): recursive spanning-tree bisection, kk -> kk//2 + rest."""
        out = np.full(len(nodes), -1, dtype=np.int64)
        pos = {int(x): i for i, x in enumerate(nodes.tolist())} if len(nodes) < self.n else None
        stack = [(np.asarray(nodes, dtype=np.int64), kk)]
        nxt = 0
        tol = float(np.min(self.tau)) / 4
        while stack:
            part, m = stack.pop()
            if m == 1:
                if pos is None:
                    out[part] = nxt
                else:
                    out[[pos[int(x)] for x in part.tolist()]] = nxt
                nxt += 1
                continue
            k1 = m // 2
            got = self.tree_split(part, k1, m - k1, guide, rng, tries=tries, good_enough=tol)
            if got is None:
                return None
            a_nodes, b_nodes, _ = got
            stack.append((a_nodes, k1))
            stack.append((b_nodes, m - k1))
        return out

    def tree_start(self, guide: np.ndarray | None, rng) -> np.ndarray | None:
        """K connected parts by recursive spanning-tree bisection following ``guide`` (METIS) where it can."""
        return self.tree_partition(np.arange(self.n), self.k, guide, rng)

    def recombine(self, ts: list[int], band, rng, it: int) -> bool:
        """ReCom-style step: merge territories ``ts`` (2 or 3 neighbours) and split their union again along a
        spanning tree into parts matching their combined load; kept only if the imbalance drops."""
        from scipy.optimize import linear_sum_assignment

        ts = list(ts)
        nodes = np.flatnonzero(np.isin(self.lab, ts))
        if len(nodes) < len(ts):
            return False
        before = float(self.pen(self.T[ts], band).sum())
        guide = self.lab if rng.random() < 0.5 else None
        parts = self.tree_partition(nodes, len(ts), guide, rng, tries=3)
        if parts is None:
            return False
        # Match parts to territories: fixed regions decide, then the largest overlap.
        cur = np.searchsorted(np.sort(ts), self.lab[nodes])
        order_ts = np.sort(ts)
        gain = np.zeros((len(ts), len(ts)))
        np.add.at(gain, (parts, cur), 1.0)
        fx = self.fixed[nodes]
        hasf = fx >= 0
        np.add.at(gain, (parts[hasf], np.searchsorted(order_ts, fx[hasf])), 1e6)
        rows, cols = linear_sum_assignment(-gain)
        new_lab = order_ts[cols[np.argsort(rows)]][parts]
        if np.any(hasf & (new_lab != fx)):
            return False
        newT = np.zeros((len(ts), self.vals.shape[1]))
        np.add.at(newT, np.searchsorted(order_ts, new_lab), self.vals[nodes])
        oldT = self.T[order_ts]
        after = float(self.pen(newT, band).sum())
        if after >= before - 1e-12:
            return False
        if len(self.lim_idx) and float(self.lim_pen(newT).sum()) > float(self.lim_pen(oldT).sum()) + 1e-12:
            return False
        changed = new_lab != self.lab[nodes]
        ch_nodes, ch_to = nodes[changed], new_lab[changed]
        if self.cap is not None:
            dd = self.disruption_delta(ch_nodes, self.lab[ch_nodes], ch_to).sum(axis=0)
            if not self._cap_ok(dd):
                return False
        d0, d1 = self.dev(oldT), self.dev(newT)
        j = int(np.argmax(self.w * np.abs(d0).max(axis=0)))
        m = list(self.opt.balance)[j]
        names = ", ".join(f"{self.opt._territory_label(int(t))} {d0[i, j]:+.1%} → {d1[i, j]:+.1%}"
                          for i, t in enumerate(order_ts.tolist()))
        detail = f"balance by redrawing the borders of {len(ts)} neighbouring territories ({MEASURE_LABELS[m]}): {names}"
        for i, t in zip(ch_nodes.tolist(), ch_to.tolist()):
            self.move(i, int(t), "balance", detail)
        self.tabu_until[nodes] = it + 2
        return True

    def kick(self, band, budget: float, rng, tries: int = 3) -> bool:
        """Iterated-local-search step for a plan stuck just out of band: the worst territory sheds (or takes)
        a whole chunk at least as heavy as its excess -- a move no greedy step would make -- and the search
        re-balances around it; kept only if the imbalance ends lower."""
        t_end = time.perf_counter() + budget
        pen = self.pen(self.T, band)
        if pen.max() <= 1e-12:
            return False
        t = int(np.argmax(pen))
        load_dev = float((self.w * self.dev(self.T[t])).sum())
        self.refresh_trees()
        r, a, b = self.border_pairs()
        ok = self.chunk_ok[r] & (self.chunk_size[r] < self.count[a])
        r, a, b = r[ok], a[ok], b[ok]
        load = (self.w * (self.chunk_val[r][:, self.bal_idx] / self.mu)).sum(axis=1)
        need = abs(load_dev) - float(np.min(band)) / 2
        sel = ((a == t) if load_dev > 0 else (b == t)) & (load >= need) & (load <= 0.6)
        idx = np.flatnonzero(sel)
        if not len(idx):
            return False
        idx = rng.permutation(idx)[:tries]
        before = (self.imbalance(band), float(self.soft(self.T, band).sum()))
        for j in idx.tolist():
            if time.perf_counter() > t_end:
                break
            snap = self.snapshot()
            ri, ai, bi = int(r[j]), int(a[j]), int(b[j])
            if self.lab_l[ri] != ai or not self.chunk_ok[ri] or ai in self.dirty:
                self.refresh_trees()
            regions = self.chunk_members(ri, ai)
            detail = self._balance_detail(regions, ai, bi, band)
            for i in regions:
                self.move(i, bi, "balance", detail)
            self.refine(band, budget=max(min(0.6, t_end - time.perf_counter()), 0.05), label="escaping",
                        frac0=0.45, frac1=0.5, hold=regions)
            if (self.imbalance(band), float(self.soft(self.T, band).sum())) < before:
                return True
            self.restore(snap)
        return False

    def match_fixed(self, parts: np.ndarray) -> np.ndarray:
        """Relabel METIS parts so that as many fixed regions as possible already sit in their territory."""
        from scipy.optimize import linear_sum_assignment

        f = np.flatnonzero(self.fixed >= 0)
        if not len(f):
            return parts
        share = (self.vals[f][:, self.bal_idx] / self.mu).sum(axis=1) + 1.0
        is_seed = np.zeros(self.n, bool)
        for s in self.seed_regions:
            if s is not None:
                is_seed[s] = True
        w = np.where(is_seed[f], 1e6, share)
        gain = np.zeros((self.k, self.k))
        np.add.at(gain, (self.fixed[f], parts[f]), w)
        rows, cols = linear_sum_assignment(-gain)
        relabel = np.empty(self.k, dtype=np.int64)
        relabel[cols] = rows
        return relabel[parts]

    def _scratch_start(self, attempt: int, rng) -> tuple[str, float]:
        """A contiguous start: METIS (seed varies per attempt), or a spanning-tree bisection guided by it when
        METIS cannot balance contiguous parts. Leaves the better one (lower B) in place."""
        metis = self.metis_start(seed=self.opt.random_state + attempt)
        self.set_labels(self.match_fixed(metis))
        self.repair("contiguity")
        metis_dev = float(np.abs(self.dev(self.T)).max())
        if attempt == 0:
            self.metis_dev = metis_dev
        starts = [("METIS", self.imbalance(), metis_dev, self.lab.copy())]
        if metis_dev > float(np.min(self.tau)):
            # METIS could not balance contiguous parts (sparse, tree-like graphs: islands chained by bridges):
            # recursive spanning-tree bisection that follows METIS's parts where it can.
            tree = self.tree_start(metis, rng)
            if tree is not None:
                self.set_labels(self.match_fixed(tree))
                self.repair("contiguity")
                starts.append(("spanning-tree bisection guided by METIS", self.imbalance(),
                               float(np.abs(self.dev(self.T)).max()), self.lab.copy()))
        name, _, dev, lab = min(starts, key=lambda x: (x[1], x[2]))
        self.set_labels(lab)
        return name, dev

    def run_scratch(self, seeds: list[int | None], notes: list[str]) -> list[Candidate]:
        self.seed_regions = seeds
        t_start = time.perf_counter()
        rng = np.random.default_rng(self.opt.random_state)
        total = max(self.time_left(), 0.05)
        balance_until = time.perf_counter() + 0.6 * total
        # Out of tolerance at that point: balancing matters more than compactness, so starts go on until here.
        extended_until = time.perf_counter() + 0.85 * total
        best = None
        attempt = 0
        polished = None  # the best plan last polished (each new best is polished once)
        while True:
            # After two starts, go back once to each new best plan that is nearly in band (imbalance under
            # one tolerance's worth): more kicks and a longer refinement there pay better than a fresh start.
            near = best is not None and best[0][0] < 1e-12 + float(np.sum(self.w * self.tau)) and attempt >= 2
            if near and polished is not best:
                polished = best
                self.restore(best[1])
                name, dev0 = best[2], best[3]
                self.opt.progress(0.3, "escaping the best plan's local optimum")
                self.refine(self.tau, budget=max(min(balance_until - time.perf_counter(), 0.1 * total), 0.05),
                            label="escaping", frac0=0.3, frac1=0.5)
                kicks = 4
            else:
                self.opt.progress(0.05, "METIS start" if attempt == 0 else f"restart {attempt + 1}")
                name, dev0 = self._scratch_start(attempt, rng)
                self.moves = []  # a new plan: nothing to explain
                self.opt.progress(0.15, f"{name} start: max deviation {dev0:.1%}; refining")
                left = balance_until - time.perf_counter()
                self.refine(self.tau, budget=max(min(left, max(1.0, 0.15 * total)), 0.05), label="balancing",
                            frac0=0.15, frac1=0.5)
                kicks = self.n_kicks
            # Stuck just out of band: kick the worst territory out of its local optimum a few times.
            for _ in range(kicks):
                if self.imbalance() <= 1e-12 or time.perf_counter() > balance_until - 0.3 or self.stop():
                    break
                self.kick(self.tau, budget=min(1.2, balance_until - time.perf_counter()), rng=rng)
            score = (self.imbalance(), float(self.soft(self.T, self.tau).sum()))
            if best is None or score < best[0]:
                best = (score, self.snapshot(), name, dev0, best[4] if best is not None and polished is best else attempt)
            attempt += 1
            if best[0][0] <= 1e-12 or self.stop() or attempt >= 50:
                break
            if time.perf_counter() > balance_until - 0.05:
                if balance_until >= extended_until or extended_until - time.perf_counter() < 0.1 * total:
                    break
                balance_until = extended_until
        self.restore(best[1])
        _, _, start_name, start_dev, best_attempt = best
        tight = self.tau / 4
        self.refine(tight, budget=max(self.time_left(), 0) * 0.3, label="tightening", frac0=0.5, frac1=0.65)
        start = self.snapshot()
        cands = []
        specs = [("balanced", "tightest balance (band ±tol/4), then compactness within it", tight),
                 ("middle", "balance band ±tol/2, compactness within it", self.tau / 2),
                 ("compact", "most compact within the full tolerance", self.tau)]
        for i, (cname, desc, band) in enumerate(specs):
            self.restore(start)
            if self.opt.compactness and not self.cancelled:
                self.opt.progress(0.65 + 0.1 * i, f"compactness pass: {cname}")
                self.compact(band, budget=max(self.time_left(), 0) / (len(specs) - i))
            cands.append(self.candidate(cname, desc, t_start))
        notes.append(f"METIS start: max deviation {self.metis_dev:.2%} (pymetis, contiguous parts, {self.k} territories)")
        if start_name != "METIS" or best_attempt:
            notes.append(f"best of {attempt} start(s): {start_name} (seed {self.opt.random_state + best_attempt}), "
                         f"max deviation {start_dev:.2%} before refinement")
        return _order_candidates(cands)

    def run_rebalance(self, notes: list[str]) -> list[Candidate]:
        self.seed_regions = []
        t_start = time.perf_counter()
        base = self.base.copy()
        lab = base.copy()
        lab[self.fixed >= 0] = self.fixed[self.fixed >= 0]
        self.set_labels(lab)
        unassigned = int(np.sum(self.lab < 0))
        if unassigned:
            self.grow("unassigned")
            notes.append(f"{unassigned} region(s) without a territory in the base plan were joined to a neighbour")
        before = self.lab.copy()
        pot = self.vals[:, MEASURES.index("potential")]
        self.repair("contiguity", weight_col=pot + 1e-9)
        repaired = np.flatnonzero(self.lab != before)
        if len(repaired):
            share = self.D.copy()
            notes.append(f"contiguity repair: {len(repaired)} region(s) in detached pieces of base territories "
                         f"moved to a neighbouring territory ({share[0]:.2%} of potential, {share[1]:.2%} of customers)")
            if self.cap is not None and np.any(self.D > self.cap + 1e-12):
                raise InfeasibleError(
                    f"the base plan has detached pieces: making every territory contiguous moves {self.D[0]:.1%} of "
                    f"potential and {self.D[1]:.1%} of customers, more than the {self.cap:.0%} cap allows; raise the "
                    "cap (or fix the pieces by hand)")
        self.opt.progress(0.1, "rebalancing")
        cands = []
        self.refine(self.tau, budget=max(self.time_left(), 0) * 0.5, label="least change", frac0=0.1, frac1=0.5)
        cands.append(self.candidate("least change", "fewest moves that reach the tolerance within the cap", t_start))
        self.refine(self.tau / 2, budget=max(self.time_left(), 0) * 0.5, label="tighter balance",
                    frac0=0.5, frac1=0.8)
        cands.append(self.candidate("tighter balance", "balance band ±tol/2 within the cap", t_start))
        if self.opt.compactness and not self.cancelled:
            self.opt.progress(0.85, "compactness pass")
            self.compact(self.tau / 2, budget=max(self.time_left(), 0))
            cands.append(self.candidate("tighter + compact", "band ±tol/2, then compactness moves within the cap",
                                        t_start))
        return _order_candidates(cands, prefer_least_change=True)


def _order_candidates(cands: list[Candidate], prefer_least_change: bool = False) -> list[Candidate]:
    """Recommended first: a candidate within tolerance (scratch: the most compact; rebalance: the least change)."""
    ok = [c for c in cands if c.scores["within_tolerance"] and c.scores["non_contiguous"] == 0]
    if ok:
        if prefer_least_change:
            best = ok[0]
        else:
            best = max(ok, key=lambda c: (c.scores["mean_polsby_popper"], -c.scores["cut_edge_share"]))
    else:
        best = min(cands, key=lambda c: (c.scores["non_contiguous"], c.scores["max_deviation"]))
    return [best] + [c for c in cands if c is not best]


# ---------------------------------------------------------------------------------------------
# Saving and explaining
# ---------------------------------------------------------------------------------------------


def candidate_plan(result: OptimizeResult, which: int | str = 0) -> tuple[list[Territory], pd.DataFrame]:
    """The plan a candidate makes: its territories and the assignment (region_id, territory_id, locked).

    From scratch, territories are named after their seed's rep (or "Territory n") and neighbours get
    different colours; a rebalance keeps the base plan's territories (names, colours, reps, targets) and the
    base assignment of every region the optimizer did not see (no leads, other states), with the base plan's
    locks.
    """
    from terrmap.plan import Territory, palette_color

    c = result.candidate(which)
    inst = result.instance
    frame = result.assignment(which)[["region_id", "territory"]].rename(columns={"territory": "territory_id"})
    frame["locked"] = inst.base_locked if (result.mode == "rebalance" and inst.base_locked is not None) else False
    if result.mode == "rebalance" and inst.territories is not None:
        terr = inst.territories
        terrs = [Territory(int(r.territory_id), str(r.name), str(r.color),
                           None if pd.isna(r.rep_id) else str(r.rep_id),
                           None if pd.isna(r.target) else float(r.target),
                           float(r.tolerance) if pd.notna(r.tolerance) else 0.10,
                           None if pd.isna(r.parent) else str(r.parent)) for r in terr.itertuples()]
        if inst.outside is not None and len(inst.outside):
            rest = inst.outside[["region_id", "territory_id", "locked"]].copy()
            frame = pd.concat([frame, rest], ignore_index=True)
    else:
        tol = max(result.tolerance.values()) if result.tolerance else 0.10
        lab = c.labels_
        e = inst.graph.edges
        cut = lab[e[:, 0]] != lab[e[:, 1]]
        pairs = {(int(x), int(y)) for x, y in zip(lab[e[cut, 0]], lab[e[cut, 1]])}
        try:  # neighbouring territories get different colours where the palette allows
            from terrmap.plan import distinct_colors

            colors = distinct_colors(result.n_territories, pairs)
        except ImportError:
            colors = [palette_color(i) for i in range(result.n_territories)]
        terrs = [Territory(tid, tname, colors[i], rep, None, tol)
                 for i, (tid, tname, rep) in enumerate(zip(result.territory_ids, result.territory_names,
                                                           result.rep_ids))]
    frame["territory_id"] = frame["territory_id"].astype("Int64")
    return terrs, frame


def save_candidate(store: Store, result: OptimizeResult, name: str, which: int | str = 0,
                   published: bool = False, description: str | None = None) -> int:
    """Save a candidate as a new plan (scenario) on the same layer (see :func:`candidate_plan`); returns its
    plan id."""
    from terrmap.plan import create_plan

    terrs, frame = candidate_plan(result, which)
    c = result.candidate(which)
    s = c.scores
    desc = description or (
        f"Optimizer ({result.mode}, candidate '{c.name}'): {result.n_territories} territories balanced on "
        f"{', '.join(result.balance)}; max deviation {s['max_deviation']:.1%}, "
        f"{s['contiguous']}/{result.n_territories} contiguous, cut edges {s['cut_edge_share']:.1%}"
        + (f", disruption {s['disruption_potential']:.1%} of potential" if s.get("disruption_potential") is not None else ""))
    return create_plan(store, name, result.instance.layer_key, terrs, frame, published=published,
                       description=desc)


def candidate_map_data(store: Store, result: OptimizeResult, which: int | str = 0):
    """The candidate's territories, dissolved, as :class:`terrmap.app.map_data.MapData` (one feature per
    territory with its totals): what the planner looks at before saving it. Only the optimised regions."""
    from terrmap.app import map_data as mv
    from terrmap.data.stats import region_stats

    terrs, frame = candidate_plan(result, which)
    territories = pd.DataFrame({"territory_id": [t.territory_id for t in terrs], "name": [t.name for t in terrs],
                                "color": [t.color for t in terrs]})
    inst = result.instance
    frame = frame[frame["region_id"].isin(set(inst.region_ids))]
    layer = parse_layer(inst.layer_key)
    stats = region_stats(store, layer)
    summary = mv.territory_summary(stats[stats["region_id"].isin(frame["region_id"])], frame, territories)
    groups = {int(t): g["region_id"].tolist() for t, g in frame.groupby("territory_id")}
    return mv.territory_map_data(summary, layer.dissolve(store, groups))


def _base_labels(store: Store | None, base_plan, result: OptimizeResult) -> np.ndarray:
    inst = result.instance
    if result.mode == "rebalance" and result.base_labels is not None and (
            base_plan is None or (inst.base_plan is not None and _same_plan(base_plan, inst.base_plan))):
        return result.base_labels
    if store is None or base_plan is None:
        raise ValueError("explaining a plan built from scratch needs the store and a base plan")
    other = load_instance(store, inst.layer_key, states=inst.states, base_plan=base_plan, graph=inst.graph)
    return other.base, other


def _same_plan(a, b) -> bool:
    from terrmap.plan import PlanInfo

    if isinstance(a, PlanInfo):
        return a.plan_id == b.plan_id
    return a == b.name or str(a) == str(b.plan_id)


def explain_moves(store: Store | None, base_plan, result: OptimizeResult, which: int | str = 0) -> pd.DataFrame:
    """Every region whose territory differs from the base plan: region_id, from, to, potential, leads, reason.

    For a rebalance the reason comes from the optimizer's own log: which territory's imbalance the move
    reduced and by how much (deviations before -> after), or the compactness/contiguity step that made it.
    For a plan built from scratch, territories are first matched to the base plan's by shared potential.
    """
    c = result.candidate(which)
    inst = result.instance
    lab = c.labels_
    got = _base_labels(store, base_plan, result)
    if isinstance(got, tuple):  # from scratch: match new territories to the base plan's
        from scipy.optimize import linear_sum_assignment

        base, other = got
        kb = len(other.territories)
        pot = inst.values["potential"].to_numpy() + 1e-9
        ok = base >= 0
        overlap = np.zeros((result.n_territories, kb))
        np.add.at(overlap, (lab[ok], base[ok]), pot[ok])
        rows, cols = linear_sum_assignment(-overlap)
        mapped = np.full(result.n_territories, -1)
        mapped[rows] = cols
        moved = np.flatnonzero(mapped[lab] != base)
        from_names = other.territories["name"].astype(str).to_numpy()
        out = pd.DataFrame({
            "region_id": [inst.region_ids[i] for i in moved],
            "from": [from_names[base[i]] if base[i] >= 0 else "Unassigned" for i in moved],
            "to": [result.territory_names[lab[i]] for i in moved],
            "potential": inst.values["potential"].to_numpy()[moved],
            "leads": inst.values["leads"].to_numpy()[moved].astype(int),
            "reason": "plan rebuilt from scratch (territories matched to the base plan's by shared potential)",
        })
        return out.sort_values("potential", ascending=False).reset_index(drop=True)
    base = got
    names = result.territory_names

    def name(t):
        return "Unassigned" if t < 0 else names[t]

    per_region: dict[int, list[str]] = {}
    for mv in c.moves:
        text = mv.detail or {"contiguity": "contiguity: part of a detached piece of {src}; joined neighbouring {dst}",
                             "unassigned": "was unassigned; joined neighbouring {dst}"}.get(mv.phase, mv.phase)
        per_region.setdefault(mv.region, []).append(text.format(src=name(mv.src), dst=name(mv.dst)))
    moved = np.flatnonzero(lab != base)
    reasons = []
    for i in moved.tolist():
        steps = per_region.get(i, [])
        reasons.append("; then ".join(steps) if steps else "moved")
    out = pd.DataFrame({
        "region_id": [inst.region_ids[i] for i in moved],
        "from": [name(int(base[i])) for i in moved],
        "to": [name(int(lab[i])) for i in moved],
        "potential": inst.values["potential"].to_numpy()[moved],
        "leads": inst.values["leads"].to_numpy()[moved].astype(int),
        "reason": reasons,
    })
    return out.sort_values("potential", ascending=False).reset_index(drop=True)


def moved_accounts(store: Store, result: OptimizeResult, moves: pd.DataFrame) -> pd.DataFrame:
    """The accounts (leads) in the moved regions: lead_id, name, status, potential, region_id, from, to."""
    layer = parse_layer(result.instance.layer_key)
    cols = ["lead_id", "name", "industry", "status", "potential", "region_id", "from", "to"]
    if moves.empty:
        return pd.DataFrame(columns=cols)
    rid = layer.region_id_sql(layer.region_key_sql("l"))
    cur = store.cursor()
    cur.register("optimizer_moves", moves[["region_id", "from", "to"]])
    try:
        df = cur.execute(
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
    return df[cols]


__all__ = [
    "MEASURES", "WORKLOAD_CUSTOMER_WEIGHT", "InfeasibleError", "Instance", "Optimizer", "OptimizeResult",
    "Candidate", "load_instance", "cached_instance", "populated_regions", "rep_seeds", "save_candidate", "explain_moves",
    "moved_accounts", "parse_balance",
]
