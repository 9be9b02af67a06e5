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

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from terrmap.geo.graph import RegionGraph
from terrmap.geo.zipdata import project

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


def fill_unassigned(graph: RegionGraph, assignment: np.ndarray) -> Completion:
    """Give every unassigned region of ``graph`` a territory (see the module doc). Pure: returns a new array.

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
        winner = _strongest_neighbour(region, territory, border)
        out[winner[:, 0]] = winner[:, 1]
        by_border += len(winner)
    left = np.flatnonzero(out == UNASSIGNED)
    if left.size:
        xy = project(graph.centroids[:, 0], graph.centroids[:, 1])
        owned = np.flatnonzero(out != UNASSIGNED)
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
