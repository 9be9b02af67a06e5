"""The live plan: an assignment of regions to territories with tallies kept current on every flip."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from terrmap.plan import metrics

UNASSIGNED = -1


@dataclass
class Move:
    """One edit: ``regions`` (indices) went from ``before[k]`` to ``to`` (or back, on undo)."""

    regions: np.ndarray
    before: np.ndarray
    to: int
    moved: np.ndarray  # per measure, the total that changed hands


class Plan:
    """Regions ``0..n-1`` assigned to territories ``0..K-1`` (or UNASSIGNED), with tallies.

    ``values`` is an (n, m) array of additive per-region measures named by
    ``measures`` (leads, potential, ...). Every flip updates the per-territory
    totals, region counts, cut edges and perimeters from the moved regions and
    their incident edges only, so a move costs O(moved regions), not O(plan).
    Contiguity (:func:`terrmap.plan.metrics.territory_pieces`: pieces on land, and across water) is
    recounted for the territories a move touched only.
    ``offsets`` (k, m), added to the totals, hold what a territory owns whatever
    its regions (named accounts pinned to it). GerryChain's Partition + updaters
    inspired the design.
    """

    def __init__(self, graph, values: np.ndarray, measures: list[str], assignment: np.ndarray, n_territories: int,
                 locked: np.ndarray | None = None, targets: np.ndarray | None = None, history: int = 200,
                 offsets: np.ndarray | None = None):
        self.graph = graph
        self.values = np.asarray(values, dtype=float)
        self.measures = list(measures)
        self.assignment = np.asarray(assignment, dtype=np.int64).copy()
        self.k = int(n_territories)
        self.locked = np.zeros(len(self.assignment), bool) if locked is None else np.asarray(locked, bool).copy()
        self.targets = targets  # (k, m) or None: the mean
        self.history = history
        # (k, m) per-territory amounts that belong to a territory whatever its regions (named accounts)
        self.offsets = np.zeros((self.k, self.values.shape[1])) if offsets is None else np.asarray(offsets, float)
        self.undo_stack: list[Move] = []
        self.redo_stack: list[Move] = []
        self._recompute()

    # -- full recomputation (start, and the reference for tests) ------------
    def _recompute(self) -> None:
        a = self.assignment
        ok = a >= 0
        self.totals = metrics.territory_totals(self.values, a, self.k, self.offsets)
        self.region_counts = np.bincount(a[ok], minlength=self.k)
        g = self.graph
        ea, eb = a[g.edges[:, 0]], a[g.edges[:, 1]]
        self.cut_edges = int(np.sum(ea != eb))
        self.perimeter = metrics.territory_perimeters(g.edges, g.edge_length, g.outer_length, a, self.k)
        self.area = np.bincount(a[ok], weights=g.area[ok], minlength=self.k)
        self._pieces = metrics.territory_pieces(g.adjacency, g.land_adjacency, a, np.arange(self.k))

    # -- edits ------------------------------------------------------------
    def flip(self, regions, to: int, record: bool = True) -> Move:
        """Assign ``regions`` to territory ``to`` (UNASSIGNED allowed); locked regions stay."""
        regions = np.unique(np.asarray(regions, dtype=np.int64))
        regions = regions[~self.locked[regions] & (self.assignment[regions] != to)]
        move = self._apply(regions, np.full(regions.size, to), to)
        if record and regions.size:
            self.undo_stack.append(move)
            del self.undo_stack[: -self.history]
            self.redo_stack.clear()
        return move

    def _apply(self, regions: np.ndarray, new: np.ndarray, to: int) -> Move:
        before = self.assignment[regions].copy()
        vals = self.values[regions]
        g = self.graph
        inc = g.incident_edges(regions)
        self._edge_contrib(inc, -1)
        self._outer_contrib(regions, -1)
        old_ok = before >= 0
        np.subtract.at(self.totals, before[old_ok], vals[old_ok])
        np.subtract.at(self.region_counts, before[old_ok], 1)
        np.subtract.at(self.area, before[old_ok], g.area[regions][old_ok])
        self.assignment[regions] = new
        new_ok = new >= 0
        np.add.at(self.totals, new[new_ok], vals[new_ok])
        np.add.at(self.region_counts, new[new_ok], 1)
        np.add.at(self.area, new[new_ok], g.area[regions][new_ok])
        self._edge_contrib(inc, +1)
        self._outer_contrib(regions, +1)
        touched = set(before[old_ok].tolist()) | set(new[new_ok].tolist())
        self._pieces.update(metrics.territory_pieces(g.adjacency, g.land_adjacency, self.assignment, np.array(sorted(touched))))
        return Move(regions, before, to, vals.sum(axis=0))

    def _edge_contrib(self, edge_ids: np.ndarray, sign: int) -> None:
        g = self.graph
        e = g.edges[edge_ids]
        a, b = self.assignment[e[:, 0]], self.assignment[e[:, 1]]
        cut = a != b
        self.cut_edges += sign * int(cut.sum())
        length = g.edge_length[edge_ids]
        for side in (a, b):
            sel = cut & (side >= 0)
            np.add.at(self.perimeter, side[sel], sign * length[sel])

    def _outer_contrib(self, regions: np.ndarray, sign: int) -> None:
        t = self.assignment[regions]
        ok = t >= 0
        np.add.at(self.perimeter, t[ok], sign * self.graph.outer_length[regions][ok])

    def undo(self) -> Move | None:
        if not self.undo_stack:
            return None
        move = self.undo_stack.pop()
        self._apply(move.regions, move.before, UNASSIGNED)
        self.redo_stack.append(move)
        return move

    def redo(self) -> Move | None:
        if not self.redo_stack:
            return None
        move = self.redo_stack.pop()
        self._apply(move.regions, np.full(move.regions.size, move.to), move.to)
        self.undo_stack.append(move)
        return move

    def add_territory(self) -> int:
        """A new, empty territory; returns its index."""
        self.k += 1
        self.totals = np.vstack([self.totals, np.zeros((1, self.totals.shape[1]))])
        self.offsets = np.vstack([self.offsets, np.zeros((1, self.offsets.shape[1]))])
        self.region_counts = np.append(self.region_counts, 0)
        self.perimeter = np.append(self.perimeter, 0.0)
        self.area = np.append(self.area, 0.0)
        self._pieces[self.k - 1] = metrics.Pieces(0, 0)
        return self.k - 1

    def set_locked(self, regions, locked: bool = True) -> None:
        self.locked[np.asarray(regions, dtype=np.int64)] = locked

    # -- metrics ----------------------------------------------------------
    def components(self) -> np.ndarray:
        """Pieces of each territory on the map, water crossings allowed (1 = contiguous)."""
        return np.array([self._pieces[t].joined for t in range(self.k)], dtype=np.int64)

    def land_pieces(self) -> np.ndarray:
        """Pieces of each territory on land alone (more than :meth:`components` where water splits it)."""
        return np.array([self._pieces[t].land for t in range(self.k)], dtype=np.int64)

    def pieces(self) -> dict[int, metrics.Pieces]:
        """:class:`terrmap.plan.metrics.Pieces` per territory."""
        return {t: self._pieces[t] for t in range(self.k)}

    def water_report(self, names) -> pd.DataFrame:
        """The territories in pieces by water (see :func:`water_report`)."""
        return water_report(self.graph, self.assignment, self.pieces(), names)

    def summary(self, measure: str = "potential") -> dict:
        """Plan-level metrics on one measure (see :mod:`terrmap.plan.metrics` for the formulas)."""
        m = self.measures.index(measure)
        totals = self.totals[:, m]
        targets = None if self.targets is None else self.targets[:, m]
        pp = metrics.polsby_popper(self.area, self.perimeter)
        return {
            "max_abs_deviation": metrics.max_abs_deviation(totals, targets),
            "cv": metrics.coefficient_of_variation(totals),
            # non_contiguous (split even across water), in_pieces_by_water, water_pieces {t: N}
            **metrics.water_summary(self.pieces()),
            "cut_edge_share": self.cut_edges / max(len(self.graph.edges), 1),
            "mean_polsby_popper": float(pp[self.region_counts > 0].mean()) if (self.region_counts > 0).any() else 0.0,
            "unassigned": int(np.sum(self.assignment < 0)),
        }


def water_report(graph, assignment: np.ndarray, pieces: dict[int, metrics.Pieces], names) -> pd.DataFrame:
    """One row per territory in pieces by water: territory (its name from ``names[t]``), territory_index,
    pieces (N land pieces) and the shortest bridge inside it (region_a, region_b, km centroid to centroid)."""
    cols = ["territory", "territory_index", "pieces", "region_a", "region_b", "km"]
    water = sorted(t for t, p in pieces.items() if p.by_water)
    if not water:
        return pd.DataFrame(columns=cols)
    e = graph.edges[graph.bridge_edges]
    ta, tb = assignment[e[:, 0]], assignment[e[:, 1]]
    inside = np.flatnonzero((ta == tb) & np.isin(ta, water))
    inside = inside[np.argsort(graph.bridge_km[inside], kind="stable")]
    shortest: dict[int, int] = {}
    for k in inside.tolist():
        shortest.setdefault(int(ta[k]), k)
    ids = graph.region_ids
    rows = []
    for t in water:
        k = shortest.get(t)
        rows.append({"territory": str(names[t]), "territory_index": t, "pieces": pieces[t].by_water,
                     "region_a": None if k is None else ids[e[k, 0]], "region_b": None if k is None else ids[e[k, 1]],
                     "km": np.nan if k is None else float(graph.bridge_km[k])})
    return pd.DataFrame(rows, columns=cols)


def merge_assignments(base: pd.DataFrame, mine: pd.DataFrame, theirs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Three-way merge by region: take each side's change; where both changed a region differently, theirs wins.

    Returns the merged assignment and the region ids where the two edits conflicted.
    """
    cols = ["territory_id", "locked"]

    def norm(df: pd.DataFrame) -> pd.DataFrame:
        return df.astype({"territory_id": "Int64", "locked": bool})

    base, mine, theirs = norm(base), norm(mine), norm(theirs)
    b = base.set_index("region_id")[cols]
    m = mine.set_index("region_id")[cols].reindex(b.index.union(mine.region_id))
    t = theirs.set_index("region_id")[cols].reindex(m.index.union(theirs.region_id))
    b = b.reindex(t.index)
    m = m.reindex(t.index)

    def changed(x):
        return ~((x.territory_id == b.territory_id) | (x.territory_id.isna() & b.territory_id.isna())) | (x.locked != b.locked)

    mine_changed, theirs_changed = changed(m), changed(t)
    merged = t.copy()
    take_mine = mine_changed & ~theirs_changed
    merged.loc[take_mine] = m.loc[take_mine]
    differ = (m.territory_id != t.territory_id) & ~(m.territory_id.isna() & t.territory_id.isna())
    conflicts = sorted(t.index[mine_changed & theirs_changed & differ].tolist())
    return merged.reset_index(), conflicts
