"""The optimizer's request: validation (what cannot be met, and why), fixed regions (seeds, locks), and
:meth:`Optimizer.solve`, which runs the search and assembles the result."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from terrmap.geo import Layer
from terrmap.geo.graph import RegionGraph
from terrmap.measures import measure, table_format
from terrmap.optimize.budget import Budget
from terrmap.optimize.instance import MEASURE_LABELS, MEASURES, InfeasibleError, Instance, load_instance, rep_seeds
from terrmap.optimize.objective import Objective
from terrmap.optimize.results import OptimizeResult
from terrmap.optimize.search import run_rebalance, run_scratch
from terrmap.optimize.state import SearchState

if TYPE_CHECKING:
    from terrmap.data.store import Store


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
    The search's budget: ``time_limit`` seconds (the default), ``iterations`` of the search (deterministic),
    or a :class:`~terrmap.optimize.budget.Budget`.
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
        iterations: int | None = None,
        budget: Budget | None = None,
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
        self.offsets = None  # (k, MEASURES) a rebalance's territories own whatever their regions (pinned accounts)
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
            if instance.offsets is not None:
                self.offsets = np.asarray(instance.offsets, dtype=float)[self.terr_rows]
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
        if budget is None:
            budget = Budget(iterations=iterations) if iterations is not None else Budget(seconds=self.time_limit)
        self.budget = budget
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
        own = np.zeros((k, len(MEASURES))) if self.offsets is None else self.offsets  # pinned accounts
        for m, tau in self.tolerance.items():
            v = vals[m].to_numpy()
            total = v.sum() + own[:, MEASURES.index(m)].sum()
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
                per = np.bincount(fixed[ok], weights=v[ok], minlength=k) + own[:, MEASURES.index(m)]
                t = int(np.argmax(per))
                if per[t] > mu * (1 + tau) * (1 + 1e-12):
                    raise InfeasibleError(
                        f"the locked/seed regions of {self._territory_label(t)} hold {per[t] / mu:.0%} of a territory's "
                        f"{MEASURE_LABELS[m]} target (upper bound {1 + tau:.0%}): unlock some or raise the tolerance")
        for m, (lo, hi) in self.limits.items():
            v = vals[m].to_numpy()
            total = v.sum() + own[:, MEASURES.index(m)].sum()
            label = MEASURE_LABELS[m]
            show = table_format(measure(m).unit).format  # full figures: limits are numbers the user typed
            if lo is not None and hi is not None and lo > hi:
                raise InfeasibleError(f"limit on {label}: minimum {show(lo)} above maximum {show(hi)}")
            if lo is not None and lo * k > total * (1 + 1e-12):
                raise InfeasibleError(f"minimum {show(lo)} {label} per territory x {k} territories = {show(lo * k)} "
                                      f"exceeds the total {show(total)}")
            if hi is not None and hi * k < total * (1 - 1e-12):
                raise InfeasibleError(f"maximum {show(hi)} {label} per territory x {k} territories = {show(hi * k)} "
                                      f"is below the total {show(total)}")
            if hi is not None:
                i = int(np.argmax(v))
                if v[i] > hi:
                    raise InfeasibleError(f"region {inst.region_ids[i]} alone has {show(v[i])} {label}, above the "
                                          f"maximum {show(hi)} per territory")
                ok = fixed >= 0
                if ok.any():
                    per = np.bincount(fixed[ok], weights=v[ok], minlength=k) + own[:, MEASURES.index(m)]
                    t = int(np.argmax(per))
                    if per[t] > hi:
                        raise InfeasibleError(f"the locked regions of {self._territory_label(t)} have {show(per[t])} "
                                              f"{label}, above the maximum {show(hi)}")

    # -- solving ------------------------------------------------------------------------
    def objective(self) -> Objective:
        """The request's objective (balance weights, targets, tolerances, limits)."""
        return Objective(self.inst.values[MEASURES].to_numpy(dtype=float), self.k, self.balance, self.tolerance,
                         self.limits, offsets=self.offsets)

    def search_state(self, fixed: np.ndarray | None = None) -> SearchState:
        """A fresh search state for this request (``fixed``: from :meth:`_fixed`), on this optimizer's budget."""
        if fixed is None:
            fixed, _ = self._fixed()
        return SearchState(
            self.inst, self.k, self.objective(), fixed, self.budget,
            base=self.base if self.mode == "rebalance" else None,
            cap=self.max_disruption if self.mode == "rebalance" else None,
            offsets=self.offsets, excepted=self.inst.excepted if self.mode == "rebalance" else None,
            label=self._territory_label, random_state=self.random_state, progress=self.progress,
            should_stop=self.should_stop)

    def solve(self) -> OptimizeResult:
        t0 = time.perf_counter()
        self.budget.start()
        fixed, seeds = self._fixed()
        self.check(fixed)
        self.progress(0.02, "preparing")
        state = self.search_state(fixed)
        notes: list[str] = []
        if self.inst.graph.bridges:
            notes.append(f"{len(self.inst.graph.bridges)} bridge edge(s) join land split by water (islands, bays, "
                         "lakes) to the regions it faces; a territory may reach across one, and is then reported "
                         "in pieces by water, not as one piece")
        if self.mode == "rebalance" and self.inst.limited_overlays:
            notes.append(f"the overlay(s) {', '.join(self.inst.limited_overlays)} own accounts only in some "
                         "territories: the balance counts their accounts where the base plan has them, while a "
                         "region moving into or out of those territories hands such accounts between the overlay "
                         "team and a territory. Once saved, the Scenarios page may read slightly different totals; "
                         "the disruption here counts those accounts as moving, so the cap holds on what it reports")
        if self.mode == "scratch":
            cands = run_scratch(state, seeds, notes, compactness=self.compactness)
        else:
            cands = run_rebalance(state, notes, compactness=self.compactness)
        seconds = time.perf_counter() - t0
        status = "cancelled" if state.cancelled else (
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
            offsets=self.offsets,
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
