"""The search's moves, each usable alone on a :class:`~terrmap.optimize.state.SearchState`: greedy border
moves (a region, or the chunk it holds together), swaps of two border regions, tabu steps (the least bad
move, then frozen), kicks (a whole chunk shed, then re-balanced) and compactness moves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from terrmap.optimize.chunks import chunk_members, cut_off_chunk, refresh_trees
from terrmap.optimize.constraints import can_leave, cap_ok, keeps_band, limits_ok, stays_connected
from terrmap.optimize.explain import Balance, Compactness, Swap, swapped
from terrmap.optimize.objective import inner
from terrmap.optimize.state import SearchState


def balance_reason(s: SearchState, regions: int | list[int], a: int, b: int, band) -> Balance:
    """Why a balance move of ``regions`` from a to b: the measure it helped most, before/after deviations."""
    v = s.vals[regions].sum(axis=0) if isinstance(regions, list) else s.vals[regions]
    dev, pen = s.obj.dev, s.obj.pen
    aim = inner(band)
    da0, db0 = dev(s.T[a]), dev(s.T[b])
    da1, db1 = dev(s.T[a] - v), dev(s.T[b] + v)
    gain = s.w * ((np.maximum(0, np.abs(da0) - aim) - np.maximum(0, np.abs(da1) - aim))
                  + (np.maximum(0, np.abs(db0) - aim) - np.maximum(0, np.abs(db1) - aim)))
    j = int(np.argmax(gain)) if np.any(gain > 0) else int(np.argmax(np.abs(da0 - da1)))
    dB = float(pen(s.T[a], band) + pen(s.T[b], band) - pen(s.T[a] - v, band) - pen(s.T[b] + v, band))
    return Balance(s.obj.measures[j], float(s.tau[j]), float(da0[j]), float(da1[j]), float(db0[j]), float(db1[j]), dB)


def move_group(s: SearchState, regions: list[int], a: int, b: int, band, tabu_until: int | None = None) -> bool:
    """Move ``regions`` from a to b if the hard limits and the disruption cap allow it (optionally
    freezing them until round ``tabu_until``); the reason is logged with each move."""
    v = s.vals[regions].sum(axis=0)
    if not limits_ok(s, v, a, b):
        return False
    idx = np.asarray(regions)
    dd = s.disruption_delta(idx, np.full(len(idx), a), np.full(len(idx), b)).sum(axis=0)
    if not cap_ok(s, dd):
        return False
    reason = balance_reason(s, regions, a, b, band)
    if len(regions) > 1:
        reason = replace(reason, group_size=len(regions))
    for i in regions:
        s.move(i, b, "balance", reason)
        if tabu_until is not None:
            s.tabu_until[i] = tabu_until
    return True


def apply_greedy(s: SearchState, order, r, a, b, dB0, dS0, band, it) -> int:
    """Apply the scored border moves (r[j]: a[j] -> b[j]) in ``order``, best first, each re-scored against the
    live totals when its territories changed since scoring; returns how many were applied."""
    applied = 0
    touched_regions: set[int] = set()
    touched_terr: set[int] = set()
    lab = s.lab_l
    chunk_tries = 60
    max_chunk = max(20, s.n // s.k // 4)
    for j in order[:4000].tolist():
        ri, ai, bi = int(r[j]), int(a[j]), int(b[j])
        if lab[ri] != ai or ri in touched_regions or s.tabu_until[ri] > it:
            continue
        fresh = ai not in touched_terr and bi not in touched_terr and bool(s.tree_terr[ai])
        if fresh:  # the territories' trees and totals are as scored
            dB, dS = float(dB0[j]), float(dS0[j])
            if dB > 1e-12 or (dB >= -1e-12 and dS >= -1e-15):
                continue
            regions = chunk_members(s, ri, ai)
            if any(s.tabu_until[i] > it or i in touched_regions for i in regions):
                continue
        else:  # no tree, or totals moved since scoring: re-score the single move, take a chunk only if needed
            if ai in touched_terr or bi in touched_terr:
                dB, dS = s.obj.delta(s.T, s.vals[ri], ai, bi, band)
            else:
                dB, dS = float(dB0[j]), float(dS0[j])
            if dB > 1e-12 or (dB >= -1e-12 and dS >= -1e-15):
                continue
            regions = [ri]
        if not any(lab[u] == bi for u in s.nbrs[ri]):
            continue
        if not fresh and not stays_connected(s, ri, ai):
            # r holds territory a together: move it with the part of a it cuts off, if that still helps.
            if chunk_tries <= 0 or dB >= -1e-12:
                continue
            chunk_tries -= 1
            regions = cut_off_chunk(s, ri, ai, max_chunk)
            if regions is None or len(regions) >= s.count[ai] or any(s.tabu_until[i] > it for i in regions):
                continue
            dB, dS = s.obj.delta(s.T, s.vals[regions].sum(axis=0), ai, bi, band)
            if dB >= -1e-12:
                continue
        if len(regions) >= s.count[ai] or not move_group(s, regions, ai, bi, band):
            continue
        touched_regions.update(regions)
        touched_terr.update((ai, bi))
        applied += 1
    return applied


def swap_reason(s: SearchState, ri: int, si: int, t: int, u: int) -> Swap:
    v = s.vals[ri] - s.vals[si]
    dev = s.obj.dev
    d0, d1 = dev(s.T[t]), dev(s.T[t] - v)
    e0, e1 = dev(s.T[u]), dev(s.T[u] + v)
    j = int(np.argmax(s.w * (np.abs(d0) - np.abs(d1))))
    return Swap(s.region_ids[si], s.obj.measures[j], float(d0[j]), float(d1[j]), float(e0[j]), float(e1[j]))


def swap_step(s: SearchState, r, a, b, viol, band, it, max_side: int = 60) -> bool:
    """Exchange two border regions between an out-of-band territory and a neighbour when that lowers B
    (single moves overshoot, or several measures pull in different directions)."""
    pen = s.obj.pen
    worst = np.argsort(-pen(s.T, band))
    worst = [int(t) for t in worst[:6] if viol[t]]
    pairs = []
    free = s.tabu_until[r] <= it
    for t in worst:
        for u in np.unique(b[(a == t) & free]).tolist():
            R = r[(a == t) & (b == u) & free][:max_side]
            S = r[(a == u) & (b == t) & free][:max_side]
            if not len(R) or not len(S):
                continue
            vr, vs = s.vals[R][:, None, :], s.vals[S][None, :, :]
            Tt = s.T[t] - vr + vs
            Tu = s.T[u] + vr - vs
            dB = pen(Tt, band) + pen(Tu, band) - pen(s.T[t], band) - pen(s.T[u], band)
            ii, jj = np.nonzero(dB < -1e-12)
            for x, y in zip(ii.tolist(), jj.tolist()):
                pairs.append((float(dB[x, y]), int(R[x]), int(S[y]), t, u))
    pairs.sort()
    lab = s.lab_l
    for _, ri, si, t, u in pairs[:200]:
        if ri == si or lab[ri] != t or lab[si] != u:
            continue
        v = s.vals[ri] - s.vals[si]
        if not limits_ok(s, v, t, u):
            continue
        dd = (s.disruption_delta(np.array([ri]), np.array([t]), np.array([u]))[0]
              + s.disruption_delta(np.array([si]), np.array([u]), np.array([t]))[0])
        if not cap_ok(s, dd) or not can_leave(s, ri, t):
            continue
        reason = swap_reason(s, ri, si, t, u)
        s.move(ri, u, "balance", reason)
        if any(lab[x] == t for x in s.nbrs[si]) and stays_connected(s, si, u):
            s.move(si, t, "balance", swapped(reason))
            return True
        s.move(ri, t, "balance")  # undo
        del s.moves[-2:]
    return False


def tabu_step(s: SearchState, r, a, b, dB, dS, viol, band, it, tenure) -> bool:
    """No improving move: make the least bad move touching an out-of-band territory, then forbid undoing it."""
    lab = s.lab_l
    cand = np.flatnonzero((viol[a] | viol[b]) & (s.tabu_until[r] <= it))
    if not len(cand):
        return False
    cand = cand[2 * s.chunk_size[r[cand]] <= s.count[a[cand]]]
    order = cand[np.lexsort((dS[cand], dB[cand]))]
    involved = np.zeros(s.k, dtype=bool)
    involved[a[cand]] = True
    refresh_trees(s, involved)
    for j in order[:500].tolist():
        ri, ai, bi = int(r[j]), int(a[j]), int(b[j])
        if lab[ri] != ai or not s.chunk_ok[ri]:
            continue
        regions = chunk_members(s, ri, ai)
        if any(s.tabu_until[i] > it for i in regions):
            continue
        if move_group(s, regions, ai, bi, band, tabu_until=it + tenure):
            return True
    return False


def kick(s: SearchState, band, budget: float, rng, rebalance: Callable[..., None], tries: int = 3) -> bool:
    """Iterated-local-search step for a plan stuck just out of band: the worst territory sheds (or takes)
    a whole chunk at least as heavy as its excess -- a move no greedy step would make -- and ``rebalance``
    (the search's refinement, called with ``band``, ``budget`` and ``hold``: the chunk) re-balances around it;
    kept only if the imbalance ends lower."""
    clock = s.budget
    t_end = clock.now() + budget
    pen = s.obj.pen(s.T, band)
    if pen.max() <= 1e-12:
        return False
    t = int(np.argmax(pen))
    load_dev = float((s.w * s.obj.dev(s.T[t])).sum())
    refresh_trees(s)
    r, a, b = s.border_pairs()
    ok = s.chunk_ok[r] & (s.chunk_size[r] < s.count[a])
    r, a, b = r[ok], a[ok], b[ok]
    load = (s.w * (s.chunk_val[r][:, s.bal_idx] / s.mu)).sum(axis=1)
    need = abs(load_dev) - float(np.min(inner(band))) / 2
    sel = ((a == t) if load_dev > 0 else (b == t)) & (load >= need) & (load <= 0.6)
    idx = np.flatnonzero(sel)
    if not len(idx):
        return False
    idx = rng.permutation(idx)[:tries]
    before = s.score(band)
    for j in idx.tolist():
        if clock.now() >= t_end:
            break
        snap = s.snapshot()
        ri, ai, bi = int(r[j]), int(a[j]), int(b[j])
        if s.lab_l[ri] != ai or not s.chunk_ok[ri] or ai in s.dirty:
            refresh_trees(s)
        regions = chunk_members(s, ri, ai)
        reason = balance_reason(s, regions, ai, bi, band)
        for i in regions:
            s.move(i, bi, "balance", reason)
        rebalance(band, budget=max(min(0.6, t_end - clock.now()), 0.05), hold=regions)
        if s.score(band) < before:
            return True
        s.restore(snap)
    return False


def compact(s: SearchState, band: np.ndarray, budget: float, passes: int = 30) -> None:
    """Border moves that shorten the total border, keeping every territory within max(band, its |deviation|);
    one pass over the border is one iteration of the budget."""
    clock = s.budget
    t_end = min(clock.deadline, clock.now() + budget)
    for _ in range(passes):
        if clock.now() >= t_end or s.stop():
            break
        clock.tick()
        refresh_trees(s)
        r, a, b = s.border_pairs()
        if not len(r):
            break
        single = s.chunk_ok[r] & (s.chunk_size[r] == 1)  # not holding its territory together
        r, a, b = r[single], a[single], b[single]
        if not len(r):
            break
        own_len, own_cnt, to_b_len, to_b_cnt = s.border_lengths(r, b, a)
        scale = float(np.median(s.elen[s.elen > 0])) if np.any(s.elen > 0) else 1.0
        gain = (to_b_len - own_len) / scale + 0.01 * (to_b_cnt - own_cnt)
        good = np.flatnonzero(gain > 1e-9)
        if not len(good):
            break
        if s.base is not None:  # prefer moves back to the base territory, then cheap ones
            dd = s.disruption_delta(r[good], a[good], b[good]).sum(axis=1)
            order = good[np.lexsort((-gain[good], dd))] if s.cap is not None else good[np.argsort(-gain[good])]
        else:
            order = good[np.argsort(-gain[good], kind="stable")]
        applied = 0
        lab = s.lab_l
        touched: set[int] = set()
        touched_terr: set[int] = set()
        for j in order.tolist():
            if clock.now() > t_end:
                break
            ri, ai, bi = int(r[j]), int(a[j]), int(b[j])
            if lab[ri] != ai or ri in touched:
                continue
            # Re-check the gain on the live assignment (neighbours may have moved).
            la = lb = 0.0
            ca = cb = 0
            for p in range(s.indptr[ri], s.indptr[ri + 1]):
                u = lab[s.indices[p]]
                if u == ai:
                    la += s.elen[p]
                    ca += 1
                elif u == bi:
                    lb += s.elen[p]
                    cb += 1
            g = (lb - la) / scale + 0.01 * (cb - ca)
            if g <= 1e-9 or cb == 0:
                continue
            v = s.vals[ri]
            if not keeps_band(s, v, ai, bi, band):
                continue
            if len(s.lim_idx) and not limits_ok(s, v, ai, bi):
                continue
            dd = s.disruption_delta(np.array([ri]), np.array([ai]), np.array([bi]))[0]
            if not cap_ok(s, dd):
                continue
            if s.count[ai] <= 1 or (ai in touched_terr and not stays_connected(s, ri, ai, limit=100)):
                continue
            touched_terr.update((ai, bi))
            s.move(ri, bi, "compactness", Compactness(float(lb - la), float(np.max(band))))
            touched.add(ri)
            applied += 1
        if not applied:
            break
