"""The objective: deviation from target, the imbalance penalty B (with hard limits), the smooth guide S,
and the one formula for the change of both when load moves between two territories.

With ``mu_m = total_m / K`` the target, ``tau_m`` the band (the tolerance, or a tighter one) and
``e_m(t) = w_m / max(w) * max(0, |W_m(t) / mu_m - 1| - tau_m)`` a territory's excess on measure m
(each measure relative to its own target, so a sparse measure weighs as much as a dense one)::

    B = sum_t [max_m e_m(t) + SECOND_SHARE * (sum_m e_m(t) - max_m e_m(t))]  +  LIMIT_WEIGHT * limit excess
    S = sum_t sum_m w_m * max(0, |W_m(t) / mu_m - 1| - tau_m / 2) ** 2

With one measure B is the plain excess. With several, a territory's worst measure counts in full and the
others a little: under a plain sum a territory over on customers and at the edge of the band on potential
can shed no customer-rich region (it would push potential out as much as it brings customers in), and the
search stalls on the sparsest measure. A band may also be a (guard, inner) pair: see :meth:`Objective.pen`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from terrmap.optimize.instance import MEASURES

# Hard limits weigh this much more than balance when ranking moves (they are never made worse anyway).
LIMIT_WEIGHT = 10.0
# Excess over the guard band (the tolerance) weighs this much more than excess over a tighter inner band.
GUARD_WEIGHT = 1000.0
# The measures other than a territory's worst count this much in its imbalance.
SECOND_SHARE = 0.25


def inner(band: np.ndarray) -> np.ndarray:
    """The band a search aims for: ``band`` itself, or the inner band of a (guard, inner) pair."""
    return band[-1] if band.ndim == 2 else band


def guarded(tolerance: np.ndarray, band: np.ndarray) -> np.ndarray:
    """A band tighter than the tolerance, with the tolerance as its guard (see :meth:`Objective.pen`)."""
    return np.stack([tolerance, band])


class Objective:
    """Balance weights, targets, tolerances and hard limits of one request, over territory totals ``T``
    (shape ``(..., len(MEASURES))``: any leading dimensions, so one call scores many moves at once)."""

    def __init__(self, values: np.ndarray, k: int, balance: Mapping[str, float], tolerance: Mapping[str, float],
                 limits: Mapping[str, tuple[float | None, float | None]], offsets: np.ndarray | None = None):
        """``offsets`` (k, M): what each territory owns whatever its regions (pinned accounts); in the targets."""
        if offsets is not None:
            values = np.vstack([values, offsets])  # the targets share out every owned account
        self.measures = list(balance)
        self.bal_idx = np.array([MEASURES.index(m) for m in balance])
        self.w = np.array([balance[m] for m in balance])
        self.wn = self.w / self.w.max()  # the heaviest measure weighs 1 (a single measure: B as before)
        self.tau = np.array([tolerance[m] for m in balance])
        self.mu = values[:, self.bal_idx].sum(axis=0) / k
        self.mu[self.mu <= 0] = 1.0
        self.lim_idx = np.array([MEASURES.index(m) for m in limits], dtype=np.int64)
        self.lim_lo = np.array([-np.inf if lo is None else lo for lo, _ in limits.values()])
        self.lim_hi = np.array([np.inf if hi is None else hi for _, hi in limits.values()])
        lim_tot = values[:, self.lim_idx].sum(axis=0) / k if len(self.lim_idx) else np.zeros(0)
        self.lim_scale = np.where(lim_tot > 0, lim_tot, 1.0)

    def dev(self, T: np.ndarray) -> np.ndarray:
        """Relative deviation from target of each balanced measure."""
        return T[..., self.bal_idx] / self.mu - 1

    def pen(self, T: np.ndarray, band: np.ndarray | None = None) -> np.ndarray:
        """Imbalance of territory totals ``T`` (..., M) against ``band`` (default: the tolerance), plus limits.

        ``band`` of shape (M,) is one band; of shape (2, M) it is a guard band (the tolerance) and an inner
        band: excess over the guard weighs :data:`GUARD_WEIGHT` times more, so tightening towards the inner
        band never trades away the tolerance."""
        band = self.tau if band is None else band
        over = np.maximum(0.0, np.abs(self.dev(T)) - band) if band.ndim == 1 else \
            np.maximum(0.0, np.abs(self.dev(T))[..., None, :] - band)
        p = self.combine(over)
        if band.ndim == 2:
            p = p[..., 0] * GUARD_WEIGHT + p[..., 1]
        return p + LIMIT_WEIGHT * self.lim_pen(T)

    def combine(self, over: np.ndarray) -> np.ndarray:
        """One territory's imbalance from its excess per measure (last axis): the worst measure, relative to
        its own target and weighted, plus a small share of the others (so easing a second measure counts too).
        The worst rather than the sum: a territory over on one measure and at the edge of the band on the
        others may shed load that pushes those slightly out while it brings the worst one in."""
        x = self.wn * over
        return x.max(axis=-1) + SECOND_SHARE * (x.sum(axis=-1) - x.max(axis=-1))

    def lim_pen(self, T: np.ndarray) -> np.ndarray:
        """How far totals ``T`` lie outside the hard limits (relative to the mean territory's total)."""
        if not len(self.lim_idx):
            return np.zeros(T.shape[:-1])
        x = T[..., self.lim_idx]
        return ((np.maximum(0.0, self.lim_lo - x) + np.maximum(0.0, x - self.lim_hi)) / self.lim_scale).sum(axis=-1)

    def soft(self, T: np.ndarray, band: np.ndarray) -> np.ndarray:
        """The smooth guide S per territory: pushes load along chains of territories when no move lowers B."""
        band = inner(band)
        return (self.w * np.maximum(0.0, np.abs(self.dev(T)) - band / 2) ** 2).sum(axis=-1)

    def loads(self, T: np.ndarray) -> np.ndarray:
        """Weighted relative load of each territory (for growing into the least loaded)."""
        return (self.w * (T[..., self.bal_idx] / self.mu)).sum(axis=-1)

    def region_loads(self, values: np.ndarray) -> np.ndarray:
        """Weighted relative load of each region (the same measure as :meth:`loads`)."""
        return (self.w * (values[:, self.bal_idx] / self.mu)).sum(axis=1)

    def deltas(self, T: np.ndarray, V: np.ndarray, a, b, band) -> tuple[np.ndarray, np.ndarray]:
        """Change of (B, S) when load ``V`` moves from territory ``a`` to ``b`` (arrays of moves, or one move:
        ``V`` of shape (M,) with scalar ``a``, ``b`` gives 0-d arrays)."""
        Ta, Tb = T[a], T[b]
        dB = self.pen(Ta - V, band) + self.pen(Tb + V, band) - self.pen(Ta, band) - self.pen(Tb, band)
        dS = self.soft(Ta - V, band) + self.soft(Tb + V, band) - self.soft(Ta, band) - self.soft(Tb, band)
        return dB, dS

    def delta(self, T: np.ndarray, v: np.ndarray, a: int, b: int, band) -> tuple[float, float]:
        """:meth:`deltas` of one move, as floats."""
        dB, dS = self.deltas(T, v, a, b, band)
        return float(dB), float(dS)

    def limits_ok(self, T: np.ndarray, v: np.ndarray, a: int, b: int) -> bool:
        """Moving load ``v`` from a to b makes neither territory's limit excess worse."""
        if not len(self.lim_idx):
            return True
        Ta, Tb = T[a], T[b]
        return not (self.lim_pen(Ta - v) > self.lim_pen(Ta) + 1e-12 or self.lim_pen(Tb + v) > self.lim_pen(Tb) + 1e-12)
