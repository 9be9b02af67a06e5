"""What the optimizer returns: candidates with their scores, the result, and what can be done with a
candidate: the plan it makes, saving it, and explaining what moved and why."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from terrmap.optimize.explain import MoveRecord, describe
from terrmap.optimize.instance import MEASURES, Instance, load_instance
from terrmap.plan import PlanInfo, Territory, create_plan, distinct_colors, metrics
from terrmap.plan.accounts import account_owners, owner_changes
from terrmap.plan.partition import water_report
from terrmap.plan.scenarios import derive_plan

if TYPE_CHECKING:
    from terrmap.data.store import Store
    from terrmap.optimize.state import SearchState


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
    offsets: np.ndarray | None = None  # rebalance: (territories, MEASURES) each owns whatever its regions (pins)

    @property
    def labels_(self) -> np.ndarray:
        return self.candidates[0].labels_

    @property
    def bridges(self) -> list[tuple[str, str]]:
        return list(self.instance.graph.bridges)

    def water_report(self, which: int | str = 0) -> pd.DataFrame:
        """The candidate's territories in pieces by water, with the shortest crossing each
        (see :func:`terrmap.plan.partition.water_report`)."""
        c = self.candidate(which)
        pieces = metrics.territory_pieces(self.instance.graph.adjacency, self.instance.graph.land_adjacency,
                                          c.labels_, np.arange(self.n_territories))
        return water_report(self.instance.graph, c.labels_, pieces, self.territory_names)

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

    def territory_totals(self, which: int | str = 0) -> pd.DataFrame:
        """One row per territory of the candidate: territory (name), regions, and its total on each of MEASURES,
        counted as Home counts them (each account once, where it is owned: pinned accounts in their territory,
        overlay accounts in none)."""
        lab = self.candidate(which).labels_
        k = self.n_territories
        totals = metrics.territory_totals(self.instance.values[MEASURES].to_numpy(dtype=float), lab, k, self.offsets)
        out = pd.DataFrame(totals, columns=MEASURES)
        out.insert(0, "regions", np.bincount(lab[lab >= 0], minlength=k))
        out.insert(0, "territory", self.territory_names)
        return out

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
            "water_pieces": self.water_report(which).drop(columns="territory_index").to_dict("records"),
            "seconds_total": round(self.seconds, 3),
            "candidates": [{"name": x.name, **{k: v for k, v in x.scores.items() if not isinstance(v, dict)}}
                           for x in self.candidates],
        }


def plan_scores(s: SearchState, seconds: float) -> dict:
    """A candidate's scores: deviations (the worst measure, and per measure), CV (of the first measure),
    contiguity, cut edges, Polsby-Popper, disruption, seconds."""
    lab = s.lab
    g = s.g
    T = s.T
    dev = s.obj.dev(T)
    pieces = metrics.territory_pieces(g.adjacency, g.land_adjacency, lab, np.arange(s.k))  # as the editor counts
    per = metrics.territory_perimeters(g.edges, g.edge_length, g.outer_length, lab, s.k)
    area = np.bincount(lab, weights=g.area, minlength=s.k)
    pp = metrics.polsby_popper(area, per)
    measures = s.obj.measures
    primary = measures[0]
    tolerance = dict(zip(measures, s.tau.tolist()))
    mdev = {m: float(np.abs(dev[:, j]).max()) for j, m in enumerate(measures)}
    excess = max(mdev[m] - tolerance[m] for m in mdev)
    within = excess <= 1e-9 and float(s.obj.lim_pen(T).sum()) <= 1e-12
    out = {
        # The worst balanced measure: with several, the first one's alone could read 1% on a plan that is
        # out of tolerance on another.
        "max_deviation": max(mdev.values()),
        "max_deviation_by_measure": mdev,
        "tolerance_excess": max(0.0, excess),  # how far the worst measure lies beyond its tolerance
        "cv": metrics.coefficient_of_variation(T[:, MEASURES.index(primary)]),
        "within_tolerance": bool(within),
        "contiguous": int(sum(1 for p in pieces.values() if p.contiguous)),  # water crossings allowed
        "non_contiguous": int(sum(1 for p in pieces.values() if not p.contiguous)),
        "in_pieces_by_water": int(sum(1 for p in pieces.values() if p.by_water)),
        "cut_edge_share": metrics.cut_edge_share(g.edges, lab),
        "mean_polsby_popper": float(pp.mean()),
        "min_polsby_popper": float(pp.min()),
        "disruption_potential": None,
        "disruption_customers": None,
        "moved_regions": None,
        "seconds": round(seconds, 3),
    }
    if s.base is not None:
        # Shares of every account (those owned by exception never move): what the Scenarios page reports.
        moved = (lab != s.base) & (s.base >= 0)
        out["disruption_potential"], out["disruption_customers"] = (float(x) for x in s.dis_w[moved].sum(axis=0))
        out["moved_regions"] = int(np.sum((lab != s.base) & (s.base >= 0)))
    return out


def order_candidates(cands: list[Candidate], prefer_least_change: bool = False) -> list[Candidate]:
    """Recommended first: a candidate within tolerance (scratch: the most compact; rebalance: the least change);
    else the one in the fewest pieces, then the closest to the tolerance on its worst measure."""
    ok = [c for c in cands if c.scores["within_tolerance"] and c.scores["non_contiguous"] == 0]
    if ok:
        if prefer_least_change:
            best = ok[0]
        else:
            best = max(ok, key=lambda c: (c.scores["mean_polsby_popper"], -c.scores["cut_edge_share"]))
    else:
        best = min(cands, key=lambda c: (c.scores["non_contiguous"], c.scores["tolerance_excess"],
                                         c.scores["max_deviation"]))
    return [best] + [c for c in cands if c is not best]


# -- saving and explaining -------------------------------------------------------------------------


def candidate_plan(result: OptimizeResult, which: int | str = 0) -> tuple[list[Territory], pd.DataFrame]:
    """The plan a candidate makes: its territories and the assignment (region_id, territory_id, locked).

    From scratch, territories are named after their seed's rep (or "Territory n") and neighbours get
    different colours; a rebalance keeps the base plan's territories (names, colours, reps, targets) and the
    base assignment of every region the optimizer did not see (no leads, other states), with the base plan's
    locks.
    """
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
        colors = distinct_colors(result.n_territories, pairs)  # neighbouring territories get different colours
        terrs = [Territory(tid, tname, colors[i], rep, None, tol)
                 for i, (tid, tname, rep) in enumerate(zip(result.territory_ids, result.territory_names,
                                                           result.rep_ids))]
    frame["territory_id"] = frame["territory_id"].astype("Int64")
    return terrs, frame


def save_candidate(store: Store, result: OptimizeResult, name: str, which: int | str = 0,
                   published: bool = False, description: str | None = None, author: str | None = None) -> int:
    """Save a candidate as a new plan (scenario) on the same layer (see :func:`candidate_plan`); returns its
    plan id. A rebalance is derived from its base plan (:func:`terrmap.plan.scenarios.derive_plan`: hierarchy,
    pins and overlays kept); a plan from scratch is new (:func:`terrmap.plan.create_plan`)."""
    terrs, frame = candidate_plan(result, which)
    c = result.candidate(which)
    s = c.scores
    desc = description or (
        f"Optimizer ({result.mode}, candidate '{c.name}'): {result.n_territories} territories balanced on "
        f"{', '.join(result.balance)}; max deviation {s['max_deviation']:.1%}, "
        f"{s['contiguous']}/{result.n_territories} contiguous, cut edges {s['cut_edge_share']:.1%}"
        + (f", disruption {s['disruption_potential']:.1%} of potential" if s.get("disruption_potential") is not None else ""))
    base = result.instance.base_plan
    if result.mode == "rebalance" and base is not None:
        # A rebalance is the base plan with other borders: its hierarchy, pins and overlays come along.
        # (one transaction, publishing included: a killed process leaves the plans as they were, or this one saved)
        derived = derive_plan(store, base, name, terrs, frame, author=author, description=desc,
                              note=f"optimizer: rebalanced, candidate '{c.name}'", published=published)
        return derived.plan_id
    return create_plan(store, name, result.instance.layer_key, terrs, frame, published=published,
                       description=desc, author=author)


def _base_labels(store: Store | None, base_plan, result: OptimizeResult):
    inst = result.instance
    if result.mode == "rebalance" and result.base_labels is not None and (
            base_plan is None or (inst.base_plan is not None and _same_plan(base_plan, inst.base_plan))):
        return result.base_labels
    if store is None or base_plan is None:
        raise ValueError("explaining a plan built from scratch needs the store and a base plan")
    other = load_instance(store, inst.layer_key, states=inst.states, base_plan=base_plan, graph=inst.graph)
    return other.base, other


def _same_plan(a, b) -> bool:
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
        per_region.setdefault(mv.region, []).append(describe(mv, name(mv.src), name(mv.dst)))
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


def moved_accounts(store: Store, result: OptimizeResult, which: int | str = 0) -> pd.DataFrame:
    """The accounts a rebalance gives another owner: lead_id, name, from_owner, to_owner, potential, status.

    The same rule as comparing the saved plans on the Scenarios page (:func:`terrmap.plan.scenarios.moved_accounts`):
    the candidate keeps the base plan's territories, pins and overlays, so an account pinned or owned by an
    overlay stays with its owner however its region moves.
    """
    base = result.instance.base_plan
    if result.mode != "rebalance" or base is None:
        raise ValueError("moved accounts are those of a rebalance of a saved plan")
    _, frame = candidate_plan(result, which)
    on_layer = dataclasses.replace(base, layer=result.instance.layer_key)
    return owner_changes(account_owners(store, base), account_owners(store, on_layer, assignment=frame))
