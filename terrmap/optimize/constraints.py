"""Yes/no checks on a move: does its territory stay in one piece, do the hard limits and the disruption
cap hold, may the region leave at all."""

from __future__ import annotations

from collections import deque

import numpy as np

from terrmap.optimize.state import SearchState


def connected_without(nbrs: list[list[int]], labels, r: int, a: int, limit: int = 400) -> bool:
    """Would the regions labelled ``a`` around ``r`` stay connected without r? (early-exit breadth-first
    search over ``nbrs``; after ``limit`` regions explored it answers False, which only forgoes a move).
    True when r has at most one neighbour labelled ``a``."""
    targets = [u for u in nbrs[r] if labels[u] == a]
    if len(targets) <= 1:
        return True
    need = set(targets[1:])
    seen = {r, targets[0]}
    queue = deque([targets[0]])
    while queue:
        if len(seen) > limit:
            return False
        x = queue.popleft()
        for y in nbrs[x]:
            if y not in seen and labels[y] == a:
                if y in need:
                    need.discard(y)
                    if not need:
                        return True
                seen.add(y)
                queue.append(y)
    return False


def stays_connected(s: SearchState, r: int, a: int, limit: int = 400) -> bool:
    """Would territory ``a`` stay in one piece without region ``r``? (:func:`connected_without`)"""
    return connected_without(s.nbrs, s.lab_l, r, a, limit)


def can_leave(s: SearchState, r: int, a: int) -> bool:
    """Region r may leave territory a: a keeps a region and stays in one piece."""
    return s.count[a] > 1 and stays_connected(s, r, a)


def cap_ok(s: SearchState, dd: np.ndarray) -> bool:
    """A disruption change ``dd`` keeps within the cap (or lowers the disruption)."""
    if s.cap is None:
        return True
    new = s.D + dd
    return bool(np.all((new <= s.cap + 1e-12) | (dd <= 0)))


def limits_ok(s: SearchState, v: np.ndarray, a: int, b: int) -> bool:
    """Moving load v from a to b makes no hard limit worse."""
    return s.obj.limits_ok(s.T, v, a, b)


def keeps_band(s: SearchState, v: np.ndarray, a: int, b: int, band: np.ndarray) -> bool:
    """Moving load v from a to b leaves both territories within max(band, their current |deviation|)."""
    dev = s.obj.dev
    da1, db1 = np.abs(dev(s.T[a] - v)), np.abs(dev(s.T[b] + v))
    da0, db0 = np.abs(dev(s.T[a])), np.abs(dev(s.T[b]))
    return not (np.any(da1 > np.maximum(band, da0) + 1e-12) or np.any(db1 > np.maximum(band, db0) + 1e-12))
