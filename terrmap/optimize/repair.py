"""Contiguity repair: every territory one piece holding its fixed (locked/seed) regions, every region
assigned, no territory empty. Used on every start and on a rebalance's base plan."""

from __future__ import annotations

import heapq
from collections import deque

import numpy as np

from terrmap.optimize.constraints import stays_connected
from terrmap.optimize.explain import MoveRecord, Placed
from terrmap.optimize.instance import InfeasibleError
from terrmap.optimize.state import SearchState


def repair(s: SearchState, phase: str = "contiguity", weight_col: np.ndarray | None = None) -> None:
    """Make every territory one piece holding its fixed regions, every region assigned, none empty.

    Each territory keeps its piece that holds its fixed regions (separated fixed regions are joined along
    shortest paths), else its heaviest piece (by ``weight_col``); the other pieces are freed and regrown
    from the borders into the least-loaded neighbouring territory."""
    protected = s.fixed.copy()  # fixed regions, plus the paths laid to connect them
    for _ in range(8):
        lab = s.lab.copy()
        f = protected >= 0
        lab[f] = protected[f]
        comp = s.pieces(lab)
        weight = weight_col if weight_col is not None else (s.vals[:, s.bal_idx] / s.mu).sum(axis=1) + 1e-9
        keep = np.zeros(s.n, dtype=bool)
        bad_territories = []
        for t in range(s.k):
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
            path = connect(s, comp, t, fixed_cs, protected)
            if path is None:
                names = [s.region_ids[int(np.flatnonzero((comp == c) & (protected == t))[0])] for c in fixed_cs[:2]]
                raise InfeasibleError(
                    f"{s.label(t)} cannot be contiguous: its locked/seed regions {names[0]} and "
                    f"{names[1]} are separated by regions locked to other territories")
            for i in path:
                lab[i] = t
                keep[i] = True
                protected[i] = t
        old = s.lab.copy()
        for i in np.flatnonzero(~keep & (old >= 0)).tolist():
            s.freed_from.setdefault(i, int(old[i]))
        lab[~keep] = -1
        changed = np.flatnonzero((lab != old) & (lab >= 0))
        s.set_labels(lab)
        _log_changes(s, changed, old, phase)
        grow(s, phase)
        fill_empty(s)
        comp = s.pieces(s.lab)
        n_pieces = [len(np.unique(comp[s.lab == t])) for t in range(s.k)]
        if max(n_pieces) <= 1 and min(n_pieces) >= 1:
            return
    split = [s.label(t) for t in range(s.k) if n_pieces[t] != 1]
    raise InfeasibleError(
        f"could not make {', '.join(split)} contiguous around the locked/seed regions: the paths joining one "
        "territory's fixed regions cross another's; unlock or move some of them")


def _log_changes(s: SearchState, changed: np.ndarray, old: np.ndarray, phase: str) -> None:
    """Record regions a repair put in place directly (fixed regions, connecting paths)."""
    for i in changed.tolist():
        src = s.freed_from.pop(i, int(old[i]))
        s.moves.append(MoveRecord(i, src, int(s.lab[i]), phase, None if s.fixed[i] < 0 else Placed("fixed")))


def connect(s: SearchState, comp, t, fixed_cs, protected) -> list[int] | None:
    """Free regions joining territory t's separated fixed pieces ``fixed_cs`` (shortest paths), or None."""
    main = fixed_cs[0]
    inside = set(np.flatnonzero(comp == main).tolist())
    path: list[int] = []
    for c in fixed_cs[1:]:
        goal = set(np.flatnonzero(comp == c).tolist())
        prev = {x: -1 for x in inside}
        dq = deque(inside)
        hit = None
        while dq and hit is None:
            x = dq.popleft()
            for y in s.nbrs[x]:
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


def grow(s: SearchState, phase: str) -> None:
    """Assign every unassigned region to the least-loaded territory among its assigned neighbours, from the borders in."""
    lab = s.lab_l
    un = [i for i in range(s.n) if lab[i] < 0]
    if not un:
        return
    loads = s.loads()
    heap: list[tuple[float, int, int]] = []
    reason = Placed("unassigned") if phase == "unassigned" else None

    def push(i):
        ts = {lab[u] for u in s.nbrs[i] if lab[u] >= 0}
        if ts:
            t = min(ts, key=lambda x: loads[x])
            heapq.heappush(heap, (loads[t], i, t))

    for i in un:
        push(i)
    while heap:
        _, i, t = heapq.heappop(heap)
        if lab[i] >= 0:
            continue
        ts = {lab[u] for u in s.nbrs[i] if lab[u] >= 0}
        best = min(ts, key=lambda x: loads[x])
        if best != t:  # loads moved on: requeue with the current best
            heapq.heappush(heap, (loads[best], i, best))
            continue
        s.move(i, t, phase, reason)
        loads[t] = s.loads()[t]
        for u in s.nbrs[i]:
            if lab[u] < 0:
                push(u)
    if any(x < 0 for x in lab):  # a piece with no assigned region at all (cannot happen on a connected graph)
        rest = [i for i in range(s.n) if lab[i] < 0]
        t = int(np.argmin(s.loads()))
        for i in rest:
            s.move(i, t, phase)


def fill_empty(s: SearchState) -> None:
    """Give each empty territory one region taken from the border of the heaviest territory."""
    for t in range(s.k):
        if s.count[t] > 0:
            continue
        order = np.argsort(-s.loads())
        done = False
        for a in order.tolist():
            if s.count[a] <= 1:
                continue
            members = np.flatnonzero((s.lab == a) & (s.fixed < 0))
            # Prefer regions on the territory's edge (few same-territory neighbours).
            same = np.array([sum(1 for u in s.nbrs[i] if s.lab_l[u] == a) for i in members.tolist()])
            for i in members[np.argsort(same, kind="stable")].tolist():
                if stays_connected(s, i, a):
                    s.move(i, t, "contiguity")
                    done = True
                    break
            if done:
                break
        if not done:
            raise InfeasibleError("cannot give every territory a region (too many locked regions?)")
