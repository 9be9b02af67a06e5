"""Completing an alignment: every region of a plan's area gets a territory.

A territory is a piece of the map, so a plan assigns every region of its area, with or without leads
(DESIGN.md, "Alignment (complete)"). A region without an owner (a plan made before plans were complete,
an imported alignment that lists only some ZIPs, a region new to the geography) goes to

1. the territory it shares the most border with, in waves from the assigned regions outwards (a region
   whose neighbours were filled in the previous wave joins their territory), so an empty valley between
   two territories is split along the line where the waves meet; then
2. for pieces no assigned region reaches (an island with no owner yet), the territory of the nearest
   assigned region (straight line, in the projection of :mod:`terrmap.geo.zipdata`).

Ties in shared border go to the territory with more bordering edges, then to the lowest territory index,
so the same plan always completes the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from terrmap.data import plans as stored_plans
from terrmap.data.area import area_regions, regions_states
from terrmap.data.plans import PlanInfo, SaveConflict, Territory
from terrmap.geo import Layer, parse_layer
from terrmap.geo.zipdata import project
from terrmap.geo.zipshapes import ensure_zip_shapes

if TYPE_CHECKING:
    from terrmap.data.store import Store
    from terrmap.geo.graph import RegionGraph

UNASSIGNED = -1


@dataclass(frozen=True)
class Completion:
    """The completed assignment (territory index per region) and how each filled region got its owner."""

    assignment: np.ndarray
    by_border: int  # regions that took the territory they share the most border with
    by_nearest: int  # regions (on pieces no territory touches) that took the nearest assigned region's territory

    @property
    def filled(self) -> int:
        return self.by_border + self.by_nearest

    def note(self, region_word: str = "regions") -> str:
        """One line for the plan's history."""
        if not self.filled:
            return "complete: every region of the area already had a territory"
        parts = [f"{self.by_border:,} by shared border"] + (
            [f"{self.by_nearest:,} by nearest region"] if self.by_nearest else [])
        return f"completed: {self.filled:,} {region_word} without a territory assigned ({', '.join(parts)})"


def fill_unassigned(graph: RegionGraph, assignment: np.ndarray, frozen: int | None = None) -> Completion:
    """Give every unassigned region of ``graph`` a territory (see the module doc). Pure: returns a new array.

    ``frozen``: a territory index that keeps its regions but never grows (regions left unassigned on purpose).
    With no region assigned at all there is nothing to grow from: the assignment comes back unchanged.
    """
    out = np.asarray(assignment, dtype=np.int64).copy()
    if len(out) != graph.n:
        raise ValueError(f"assignment has {len(out)} regions, the graph {graph.n}")
    if not (out == UNASSIGNED).any() or not (out != UNASSIGNED).any():
        return Completion(out, 0, 0)
    edges, length = graph.edges, np.asarray(graph.edge_length, dtype=float)
    by_border = 0
    while True:
        a, b = out[edges[:, 0]], out[edges[:, 1]]
        # Directed (empty region, assigned neighbour) pairs across every edge with exactly one assigned end.
        one_way = (a == UNASSIGNED) & (b != UNASSIGNED)
        other_way = (b == UNASSIGNED) & (a != UNASSIGNED)
        region = np.concatenate([edges[one_way, 0], edges[other_way, 1]])
        if region.size == 0:
            break
        territory = np.concatenate([b[one_way], a[other_way]])
        border = np.concatenate([length[one_way], length[other_way]])
        if frozen is not None:
            grows = territory != frozen
            region, territory, border = region[grows], territory[grows], border[grows]
            if region.size == 0:
                break
        winner = _strongest_neighbour(region, territory, border)
        out[winner[:, 0]] = winner[:, 1]
        by_border += len(winner)
    left = np.flatnonzero(out == UNASSIGNED)
    if left.size:
        xy = project(graph.centroids[:, 0], graph.centroids[:, 1])
        owned = np.flatnonzero((out != UNASSIGNED) & (out != (UNASSIGNED if frozen is None else frozen)))
        if owned.size == 0:
            return Completion(out, by_border, 0)
        # scipy (~0.3 s) is not on the start-up path of lookup or assign
        from scipy.spatial import cKDTree

        _, nearest = cKDTree(xy[owned]).query(xy[left])
        out[left] = out[owned[nearest]]
    return Completion(out, by_border, int(left.size))


def _strongest_neighbour(region: np.ndarray, territory: np.ndarray, border: np.ndarray) -> np.ndarray:
    """(region, territory) rows: for each region, the territory with the longest total shared border
    (then more edges, then the lowest index)."""
    pairs, inverse = np.unique(np.column_stack([region, territory]), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    total = np.bincount(inverse, weights=border, minlength=len(pairs))
    count = np.bincount(inverse, minlength=len(pairs))
    # lexsort: the last key is the primary one; best first within each region.
    order = np.lexsort((pairs[:, 1], -count, -total, pairs[:, 0]))
    ranked = pairs[order]
    first = np.ones(len(ranked), dtype=bool)
    first[1:] = ranked[1:, 0] != ranked[:-1, 0]
    return ranked[first]


# -- stored plans -------------------------------------------------------------------------------------------------
def complete_assignment(store: Store, layer: Layer, assignment: pd.DataFrame,
                        states: Iterable[str] | None = None) -> tuple[pd.DataFrame, Completion, list[str]]:
    """``assignment`` (region_id, territory_id[, locked]) with every region of the area added; returns it with the
    :class:`Completion` (indices there are positions in the sorted territory ids) and the area's states
    (``states``, or those of the assigned regions when None)."""
    assignment = assignment.copy()
    if "locked" not in assignment:
        assignment["locked"] = False
    assignment = assignment[["region_id", "territory_id", "locked"]]
    area_states = sorted(set(states)) if states is not None else regions_states(
        store, layer, assignment.loc[assignment["territory_id"].notna(), "region_id"])
    # Python lists, not Series: a national plan's 30k ids one by one out of Arrow strings take a second.
    area = area_regions(store, layer, area_states)["region_id"].tolist()
    listed = set(assignment["region_id"].tolist())
    missing = sorted(set(area) - listed)
    if not missing:
        return assignment.reset_index(drop=True), Completion(np.empty(0, np.int64), 0, 0), area_states
    full = pd.concat([assignment, pd.DataFrame({"region_id": missing, "territory_id": None, "locked": False})],
                     ignore_index=True).sort_values("region_id", kind="stable").reset_index(drop=True)
    ids = full["region_id"].tolist()
    graph = layer.graph(store, ids)
    territory_ids = sorted({int(t) for t in full["territory_id"].dropna().tolist()})
    index_of = {t: i for i, t in enumerate(territory_ids)}
    # A region listed without a territory was left unassigned on purpose (the editor's eraser): it stays so,
    # as if it were one more territory nobody may grow into.
    kept_empty = len(territory_ids)
    idx = np.array([index_of[int(t)] if pd.notna(t) else kept_empty if r in listed else UNASSIGNED
                    for r, t in zip(ids, full["territory_id"].tolist())], dtype=np.int64)
    done = fill_unassigned(graph, idx, frozen=kept_empty)
    full["territory_id"] = [None if i in (UNASSIGNED, kept_empty) else territory_ids[i]
                            for i in done.assignment.tolist()]
    full["locked"] = full["locked"].fillna(False).astype(bool)
    return full, done, area_states


def create_complete_plan(store: Store, name: str, layer: str, territories: Iterable[Territory],
                         assignment: pd.DataFrame, area: Iterable[str] | None = None, note: str = "created",
                         **kwargs) -> int:
    """:func:`terrmap.data.plans.create_plan` of a complete plan: the regions of ``area`` (default: the states of
    the assigned regions) that ``assignment`` leaves out are filled first (:func:`complete_assignment`); the
    history's first line says how many."""
    full, done, states = complete_assignment(store, parse_layer(layer), assignment, area)
    if done.filled:
        note = f"{note}; {done.note(_region_word(layer))}"
    return stored_plans.create_plan(store, name, layer, territories, full, note=note, area=states, **kwargs)


def ensure_complete(store: Store, info: PlanInfo | None) -> PlanInfo | None:
    """A plan made before plans had an area gets one (the states of its regions) and every region of it,
    saved as a new version whose note says what was filled. Other plans come back as they are."""
    if info is None or stored_plans.plan_area(store, info.plan_id) is not None:
        return info
    layer = parse_layer(info.layer)
    full, done, states = complete_assignment(store, layer, stored_plans.load_assignment(store, info.plan_id))
    # The completed assignment and the area in one transaction (a process killed between the two left a complete
    # plan without an area, completed again at the next open).
    try:
        with store.transaction() as tx:
            if done.filled:
                info = stored_plans.write_assignment(tx, info, full, author="terrmap",
                                                     note=done.note(_region_word(info.layer)))
            stored_plans.set_plan_area(tx, info.plan_id, states)
    except SaveConflict:  # someone saved meanwhile: complete what they saved
        return ensure_complete(store, stored_plans.get_plan(store, info.plan_id))
    return info


def complete_new_regions(store: Store, tx=None) -> dict[str, int]:
    """After an import: each plan with an area takes the regions of its area it does not list yet, so every new
    lead has an owner at once. On the ZIP layer the area changes only with the geometry; on an H3 layer a new
    lead can open a cell whose centre lies off land (a pier, a barrier island), which then joins the territory
    it borders most. Returns {plan name: regions added}; a plan someone saves meanwhile is left to the next
    import (their save wins).

    ``tx``: the import's open transaction, which the plans are saved in (then reads through ``store`` see its
    writes: they run on this thread's cursor, which is the transaction's; call :func:`prepare_completion` before
    opening it); None: each plan is saved in its own transaction."""
    added: dict[str, int] = {}
    for info in stored_plans.list_plans(store):
        area = stored_plans.plan_area(store, info.plan_id)
        if area is None:  # made before plans had an area: completed when opened (ensure_complete)
            continue
        layer = parse_layer(info.layer)
        full, done, _ = complete_assignment(store, layer, stored_plans.load_assignment(store, info.plan_id), area)
        if not done.filled:
            continue
        note = f"{done.note(_region_word(info.layer))} (holding new leads)"
        try:
            if tx is None:
                stored_plans.save_assignment(store, info, full, author="terrmap", note=note)
            else:
                stored_plans.write_assignment(tx, info, full, author="terrmap", note=note)
        except SaveConflict:
            continue
        added[info.name] = done.filled
    return added


def prepare_completion(store: Store) -> None:
    """What :func:`complete_new_regions` may write besides the plans, written first: the ZIP polygons a plan's area
    is made of (:func:`terrmap.geo.zipshapes.ensure_zip_shapes` builds them in a transaction of its own, which
    cannot open inside the import's)."""
    if any(stored_plans.plan_area(store, p.plan_id) is not None for p in stored_plans.list_plans(store)):
        ensure_zip_shapes(store)


def _region_word(layer: str) -> str:
    return "ZIPs" if layer == "zip" else "cells"


def get_plan(store: Store, name_or_id: str | int | None = None) -> PlanInfo | None:
    """A stored plan by name or id (None: the published one), completed first if it was made before plans had
    an area (:func:`ensure_complete`): every caller that opens a plan sees a complete one."""
    return ensure_complete(store, stored_plans.get_plan(store, name_or_id))
