"""Plan metrics: pure functions, one definition each, used by the editor, the optimizer and reports.

Notation: a plan assigns each region ``i`` to a territory ``t(i)``; ``m_t`` is
territory t's total of a measure m (leads, potential, ...).

* **Deviation** of territory t: ``dev_t = (m_t - target_t) / target_t``; the
  target is the mean ``sum(m) / K`` unless set per territory.
* **Balance** of a plan: ``max_t |dev_t|`` and the coefficient of variation
  ``std(m_t) / mean(m_t)`` (population std over territories).
* **Contiguity** (:func:`territory_pieces`, the one definition the editor, the
  optimizer's scores and the scenario comparison share): a territory's
  *pieces* are the connected components of its regions on the *land*
  adjacency (shared borders, grid neighbours). It is *contiguous* when it is
  one piece on the full graph, where bridges join land split by water
  (islands, a bay, a lake); one that is one piece only thanks to bridges is
  "in N pieces by water" (N = its land pieces). Split even across water: not
  contiguous.
* **Compactness**: Polsby-Popper ``4 pi A / P^2`` of each dissolved territory,
  where P sums the border lengths a territory shares with other territories or
  the outside (precomputed per adjacency edge, so no polygons are dissolved),
  and the share of adjacency edges that are cut (join two territories).
* **Disruption** against a base plan: the share of a measure (potential,
  customers) whose territory changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp

# What each plan-level number means, in one sentence: the tooltip of the editor's tiles, the optimizer's table
# and the scenario comparison (one text per number, so the three pages explain it alike).
METRIC_HELP: dict[str, str] = {
    "max_abs_deviation": "Largest |total − target| / target over the territories (target: the one set, else an "
                         "equal share); 0% = perfectly balanced.",
    "cv": "Coefficient of variation of the territories' totals (standard deviation / mean): 0 = perfectly even.",
    "unassigned": "Regions of the plan's area in no territory (a complete plan has none).",
    "non_contiguous": "Territories split on the map: not one connected area even when crossings of water (to an "
                      "island, across a bay or a lake) join their parts.",
    "in_pieces_by_water": "Territories whose land is in several pieces that only a crossing of water joins: "
                          "contiguous, but not one piece of land.",
    "mean_polsby_popper": "Compactness: 4π·area / perimeter² of each territory's whole shape, averaged. 1 = a "
                          "disc; ordinary plans of a state's ZIPs score 0.2-0.5; near 0 = sprawling or snaking.",
    "cut_edge_share": "Share of neighbouring region pairs that lie in different territories: lower = smoother, "
                      "more compact borders.",
    "disruption": "Share of revenue potential whose owner changes: accounts owned by geography in regions that "
                  "change territory (pinned and overlay accounts keep their owner), of the potential of the area "
                  "compared (a rebalance of some states: of those states; two saved plans: of the accounts either "
                  "plan owns).",
}


def territory_totals(values: np.ndarray, assignment: np.ndarray, k: int,
                     offsets: np.ndarray | None = None) -> np.ndarray:
    """Each territory's totals (k rows, the columns of ``values``): what it owns whatever its regions
    (``offsets``: pinned accounts), plus the values of its regions; unassigned regions (-1) count nowhere."""
    values = np.asarray(values, dtype=float)
    totals = np.zeros((k,) + values.shape[1:]) if offsets is None else np.array(offsets, dtype=float)
    ok = assignment >= 0
    np.add.at(totals, assignment[ok], values[ok])
    return totals


def deviations(totals: np.ndarray, targets: np.ndarray | None = None) -> np.ndarray:
    """``(m_t - target_t) / target_t`` per territory; targets default to the mean."""
    totals = np.asarray(totals, dtype=float)
    if targets is None:
        targets = np.full(totals.shape, totals.mean() if totals.size else 0.0)
    targets = np.asarray(targets, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = np.where(targets > 0, (totals - targets) / targets, 0.0)
    return dev


def max_abs_deviation(totals: np.ndarray, targets: np.ndarray | None = None) -> float:
    dev = deviations(totals, targets)
    return float(np.abs(dev).max()) if dev.size else 0.0


def coefficient_of_variation(totals: np.ndarray) -> float:
    totals = np.asarray(totals, dtype=float)
    mean = totals.mean() if totals.size else 0.0
    return float(totals.std() / mean) if mean > 0 else 0.0


class Pieces(NamedTuple):
    """How many pieces a territory is in: on land (shared borders / grid neighbours) and once bridges across
    water join them. An empty territory is in 0 pieces (and not contiguous)."""

    land: int
    joined: int

    @property
    def contiguous(self) -> bool:
        """One piece on the map, water crossings allowed."""
        return self.joined == 1

    @property
    def by_water(self) -> int:
        """N when the territory is "in N pieces by water" (one piece only thanks to bridges), else 0."""
        return self.land if self.joined == 1 and self.land > 1 else 0


def territory_pieces(adjacency: sp.csr_matrix, land_adjacency: sp.csr_matrix, assignment: np.ndarray,
                     territories: np.ndarray) -> dict[int, Pieces]:
    """:class:`Pieces` of each territory in ``territories``: connected components of its regions on
    ``land_adjacency``, and on ``adjacency`` (land plus bridges; the same matrix when the graph has none).

    One pass over the members of all the territories asked for; the full graph is only consulted for
    territories in more than one land piece (one land piece is one piece whatever the bridges)."""
    territories = np.asarray(territories, dtype=np.int64).reshape(-1)
    assignment = np.asarray(assignment)
    land = _pieces_per_territory(land_adjacency, assignment, territories)
    joined = dict(land)
    split = np.array([t for t, c in land.items() if c > 1], dtype=np.int64)
    if split.size and land_adjacency is not adjacency:
        joined.update(_pieces_per_territory(adjacency, assignment, split))
    return {t: Pieces(land[t], joined[t]) for t in territories.tolist()}


def _pieces_per_territory(adjacency: sp.csr_matrix, assignment: np.ndarray, territories: np.ndarray) -> dict[int, int]:
    """Connected components of each territory's regions on ``adjacency`` (0 for an empty territory)."""
    counts = dict.fromkeys(territories.tolist(), 0)
    if territories.size == 0:
        return counts
    inside = assignment == territories[0] if territories.size == 1 else np.isin(assignment, territories)
    members = np.flatnonzero(inside)
    if members.size == 0:
        return counts
    # scipy (~0.3 s) loads on the first count, not with every plan (lookup's start-up)
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    lab = assignment[members]
    sub = adjacency[members][:, members].tocoo()
    same = lab[sub.row] == lab[sub.col]  # edges inside one territory only
    m = members.size
    inner = sp.csr_matrix((np.ones(int(same.sum()), dtype=np.int8), (sub.row[same], sub.col[same])), shape=(m, m))
    _, comp = connected_components(inner, directed=False)
    _, first = np.unique(comp, return_index=True)  # one region per piece; each piece lies in one territory
    terr, n = np.unique(lab[first], return_counts=True)
    counts.update(zip(terr.tolist(), n.tolist()))
    return counts


def components_per_territory(adjacency: sp.csr_matrix, assignment: np.ndarray, territories: np.ndarray) -> dict[int, int]:
    """Number of connected pieces of each territory in ``territories`` on ``adjacency`` (0 for an empty one).

    On a bridged region graph this is :attr:`Pieces.joined`; use :func:`territory_pieces` for the verdict."""
    return _pieces_per_territory(adjacency, np.asarray(assignment), np.asarray(territories, dtype=np.int64).reshape(-1))


def water_summary(pieces: dict[int, Pieces]) -> dict:
    """Plan-level contiguity: ``non_contiguous`` (territories with regions, split even across water),
    ``in_pieces_by_water`` (territories one piece only thanks to bridges) and ``water_pieces``
    (territory -> its N land pieces, for those)."""
    water = {t: p.by_water for t, p in pieces.items() if p.by_water}
    return {"non_contiguous": sum(1 for p in pieces.values() if p.joined > 1),
            "in_pieces_by_water": len(water), "water_pieces": water}


def cut_edge_share(edges: np.ndarray, assignment: np.ndarray) -> float:
    """Share of adjacency edges (pairs i<j) whose ends lie in different territories."""
    if len(edges) == 0:
        return 0.0
    a = assignment[edges[:, 0]]
    b = assignment[edges[:, 1]]
    return float(np.mean(a != b))


def polsby_popper(area: np.ndarray, perimeter: np.ndarray) -> np.ndarray:
    """``4 pi A / P^2`` (1 for a disc, near 0 for a sprawling shape); 0 where P is 0."""
    area = np.asarray(area, dtype=float)
    perimeter = np.asarray(perimeter, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(perimeter > 0, 4 * np.pi * area / perimeter**2, 0.0)


def territory_perimeters(
    edges: np.ndarray, edge_length: np.ndarray, outer_length: np.ndarray, assignment: np.ndarray, n_territories: int
) -> np.ndarray:
    """Perimeter of each dissolved territory from shared border lengths.

    A territory's boundary is every edge joining it to another territory plus
    each member region's border with the outside (``outer_length``).
    """
    per = np.bincount(assignment[assignment >= 0], weights=outer_length[assignment >= 0], minlength=n_territories)
    a = assignment[edges[:, 0]]
    b = assignment[edges[:, 1]]
    cut = a != b
    for side in (a, b):
        sel = cut & (side >= 0)
        per += np.bincount(side[sel], weights=edge_length[sel], minlength=n_territories)
    return per[:n_territories]


def disruption(weights: np.ndarray, base: np.ndarray, new: np.ndarray) -> float:
    """Share of ``weights`` (per region) whose territory differs between two assignments."""
    weights = np.asarray(weights, dtype=float)
    total = weights.sum()
    return float(weights[base != new].sum() / total) if total > 0 else 0.0
