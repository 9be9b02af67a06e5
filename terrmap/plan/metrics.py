"""Plan metrics: pure functions, one definition each, used by the editor, the optimizer and reports.

Notation: a plan assigns each region ``i`` to a territory ``t(i)``; ``m_t`` is
territory t's total of a measure m (leads, potential, ...).

* **Deviation** of territory t: ``dev_t = (m_t - target_t) / target_t``; the
  target is the mean ``sum(m) / K`` unless set per territory.
* **Balance** of a plan: ``max_t |dev_t|`` and the coefficient of variation
  ``std(m_t) / mean(m_t)`` (population std over territories).
* **Contiguity**: the number of connected components of each territory's
  regions on the region adjacency graph (1 = contiguous).
* **Compactness**: Polsby-Popper ``4 pi A / P^2`` of each dissolved territory,
  where P sums the border lengths a territory shares with other territories or
  the outside (precomputed per adjacency edge, so no polygons are dissolved),
  and the share of adjacency edges that are cut (join two territories).
* **Disruption** against a base plan: the share of a measure (potential,
  customers) whose territory changes.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components


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


def components_per_territory(adjacency: sp.csr_matrix, assignment: np.ndarray, territories: np.ndarray) -> dict[int, int]:
    """Number of connected pieces of each territory in ``territories`` (0 for an empty one)."""
    out = {}
    for t in np.asarray(territories).tolist():
        members = np.flatnonzero(assignment == t)
        if members.size == 0:
            out[t] = 0
            continue
        sub = adjacency[members][:, members]
        out[t] = int(connected_components(sub, directed=False, return_labels=False))
    return out


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
