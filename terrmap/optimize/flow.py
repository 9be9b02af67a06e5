"""Rebalancing several measures at once by a linear programme over the border regions of every territory.

Border moves between finished territories balance one measure well, but with several measures whose mix varies
by area (customers per unit of potential differ by state) the excess has to travel: a customer-heavy territory
must give customer-rich regions to one neighbour and take customer-light ones from another, which must pass its
own excess on in turn. No single move lowers the imbalance then, and the greedy search stalls (on the lower 48,
K=50, three measures: 6-13% off after 20 s). The linear programme sees every territory's totals at once:

* a variable ``x[r, b]`` in [0, 1] per region r of territory a within ``depth`` steps of its border with a
  neighbouring territory b (breadth-first from that border, inside a): the share of r that moves to b;
* each region moves at most once (``sum_b x[r, b] <= 1``); a region moves only with the region before it on its
  path from the border (``x[r, b] <= x[parent, b]``), and a region next to the border only while its neighbour
  across the border stays (``x[r, b] + sum_c x[q, c] <= 1``), so what moves to b stays attached to b;
* a region that alone links part of its territory to the rest (an articulation point) moves only if that part
  leaves too, and stays if the part is large;
* each territory's totals after the moves within ``band`` of target on every balanced measure, up to slack
  variables, whose sum (weighted as in the objective) is minimised, plus a small cost per unit of load moved
  (more for a region far from b's centre), so the programme moves little and compactly.

Its solution is rounded (what moves whole, then each partly moved region whose move lowers the imbalance,
:func:`round_moves`) and applied one region at a time, nearest the border first, keeping every territory in one
piece (a move that would split its territory is skipped, or takes along what it alone holds if that is light);
the caller's refinement mends what the rounding and the skipped moves leave, and the round is kept only if the
plan ends better (:func:`lp_round`). HiGHS (:func:`scipy.optimize.linprog`) solves the 40,000 variables of the
lower 48 in 2-4 s. What is applied falls short of the programme's totals (on the lower 48 about a tenth of the
load it moves is skipped: moves that would cut a territory through), so a round is a strong, coordinated kick
rather than the answer.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from terrmap.optimize.chunks import chunk_members, cut_off_chunk, refresh_trees
from terrmap.optimize.constraints import stays_connected
from terrmap.optimize.moves import balance_reason
from terrmap.optimize.objective import inner
from terrmap.optimize.state import SearchState

# How deep into a territory (steps from its border with a neighbour) a region may move in one programme.
DEPTH = 6
# The band the programme aims at, as a share of the tolerance (inside it: rounding and skipped moves cost some).
AIM = 0.8
# At most this share of a territory's load leaves it in one programme.
MAX_OUT = 0.35
# A region holding more than this many regions to its territory (see terrmap.optimize.chunks) stays put.
MAX_HELD = 40
# Cost of moving one territory's worth of load, against 1 for a territory one tolerance's worth out of band.
MOVE_COST = 1e-3
# An iteration budget counts one programme as this many iterations per 1,000 variables.
TICKS_PER_1000_VARS = 0.5


def border_variables(s: SearchState, depth: int = DEPTH):
    """The programme's variables: (region, to territory, parent variable or -1, neighbour across the border
    that must stay or -1, depth), breadth-first from each border of each territory; fixed regions never move."""
    lab_l, nbrs, fixed = s.lab_l, s.nbrs, s.fixed
    rows, cols = s.rows, s.indices
    cut = s.lab[rows] != s.lab[cols]
    seeds: dict[tuple[int, int], list[tuple[int, int]]] = {}
    seen_pair: set[tuple[int, int]] = set()
    for r, q in zip(rows[cut].tolist(), cols[cut].tolist()):
        b = lab_l[q]
        if (r, b) in seen_pair or fixed[r] >= 0 or lab_l[r] < 0 or b < 0:
            continue
        seen_pair.add((r, b))
        seeds.setdefault((lab_l[r], b), []).append((r, q))
    var_r: list[int] = []
    var_b: list[int] = []
    var_par: list[int] = []
    var_q: list[int] = []
    var_d: list[int] = []
    index: dict[tuple[int, int], int] = {}
    for (a, b), pairs in seeds.items():
        dq = deque()
        for r, q in pairs:
            index[(r, b)] = len(var_r)
            var_r.append(r), var_b.append(b), var_par.append(-1), var_q.append(q), var_d.append(1)
            dq.append((r, 1))
        while dq:
            x, d = dq.popleft()
            if d >= depth:
                continue
            px = index[(x, b)]
            for y in nbrs[x]:
                if lab_l[y] == a and fixed[y] < 0 and (y, b) not in index:
                    index[(y, b)] = len(var_r)
                    var_r.append(y), var_b.append(b), var_par.append(px), var_q.append(-1), var_d.append(d + 1)
                    dq.append((y, d + 1))
    as_arr = [np.asarray(v, dtype=np.int64) for v in (var_r, var_b, var_par, var_q, var_d)]
    return tuple(as_arr)


def solve_moves(s: SearchState, band: np.ndarray, depth: int = DEPTH, time_limit: float | None = None):
    """Solve the programme on the live plan; returns (region, to territory, parent variable, depth, share moved)
    per variable,
    or None when there is nothing to solve or HiGHS finds no solution."""
    band = inner(band) * AIM
    n, k = s.n, s.k
    load = s.vals[:, s.bal_idx] / s.mu
    m = load.shape[1]
    w = load.sum(axis=1) / m
    var_r, var_b, var_par, var_q, var_d = border_variables(s, depth)
    nv = len(var_r)
    if not nv:
        return None
    var_a = s.lab[var_r]
    ne = k * m
    # Totals: moving x[j] takes load[r] from a to b; excess over the band above (e_hi) or below (e_lo) target.
    jj = np.repeat(np.arange(nv), m)
    mm = np.tile(np.arange(m), nv)
    lv = load[var_r].ravel()
    A = sp.csr_matrix((np.concatenate([-lv, lv]), (np.concatenate([var_a.repeat(m) * m + mm, var_b.repeat(m) * m + mm]),
                                                   np.concatenate([jj, jj]))), shape=(ne, nv))
    eye = sp.identity(ne, format="csr")
    zero = sp.csr_matrix((ne, ne))
    dev0 = s.obj.dev(s.T).ravel()
    bandv = np.tile(band, k)
    blocks = [sp.hstack([A, -eye, zero]), sp.hstack([-A, zero, -eye])]
    rhs = [bandv - dev0, bandv + dev0]
    # Each region moves at most once.
    cnt = np.bincount(var_r, minlength=n)
    by_region = np.argsort(var_r, kind="stable")
    first = np.searchsorted(var_r[by_region], np.arange(n + 1))
    multi = np.flatnonzero(cnt > 1)
    if len(multi):
        sel = np.flatnonzero(np.isin(var_r, multi))
        blocks.append(_pad(sp.csr_matrix((np.ones(len(sel)), (np.searchsorted(multi, var_r[sel]), sel)),
                                         shape=(len(multi), nv)), ne))
        rhs.append(np.ones(len(multi)))
    # A region moves only with its parent on the path from the border.
    hp = np.flatnonzero(var_par >= 0)
    if len(hp):
        rows_p = np.concatenate([np.arange(len(hp))] * 2)
        blocks.append(_pad(sp.csr_matrix((np.concatenate([np.ones(len(hp)), -np.ones(len(hp))]),
                                          (rows_p, np.concatenate([hp, var_par[hp]]))), shape=(len(hp), nv)), ne))
        rhs.append(np.zeros(len(hp)))
    # A region next to the border moves only while its neighbour across it stays.
    hq = np.flatnonzero(var_q >= 0)
    q = var_q[hq]
    qn = cnt[q]
    offs = np.arange(int(qn.sum())) - np.repeat(np.cumsum(qn) - qn, qn)  # 0, 1, .. within each q's variables
    rows_q = np.concatenate([np.arange(len(hq)), np.repeat(np.arange(len(hq)), qn)])
    cols_q = np.concatenate([hq, by_region[np.repeat(first[q], qn) + offs]])
    blocks.append(_pad(sp.csr_matrix((np.ones(len(rows_q)), (rows_q, cols_q)), shape=(len(hq), nv)), ne))
    rhs.append(np.ones(len(hq)))
    # A region that alone links part of its territory to the rest (an articulation point, see
    # terrmap.optimize.chunks) moves only if that part leaves too; if the part is large or cannot move, it stays.
    refresh_trees(s)
    frozen = np.zeros(n, dtype=bool)
    rows_c: list[int] = []
    cols_c: list[int] = []
    vals_c: list[float] = []
    nrow = 0
    for r in np.flatnonzero(cnt > 0).tolist():
        if s.chunk_size[r] <= 1:
            continue
        part = chunk_members(s, r, s.lab_l[r])[1:]
        if not s.chunk_ok[r] or len(part) > MAX_HELD or np.any(cnt[part] == 0):
            frozen[r] = True
            continue
        mine = by_region[first[r]:first[r + 1]].tolist()
        for y in part:
            theirs = by_region[first[y]:first[y + 1]].tolist()
            rows_c.extend([nrow] * (len(mine) + len(theirs)))
            cols_c.extend(mine + theirs)
            vals_c.extend([1.0] * len(mine) + [-1.0] * len(theirs))
            nrow += 1
    if nrow:
        blocks.append(_pad(sp.csr_matrix((vals_c, (rows_c, cols_c)), shape=(nrow, nv)), ne))
        rhs.append(np.zeros(nrow))
    # At most MAX_OUT of a territory's load leaves it.
    terr_load = np.bincount(s.lab[s.lab >= 0], weights=w[s.lab >= 0], minlength=k)
    blocks.append(_pad(sp.csr_matrix((w[var_r], (var_a, np.arange(nv))), shape=(k, nv)), ne))
    rhs.append(MAX_OUT * terr_load + 1e-9)
    # Cost: the slack (weighted as in the objective, relative to a tolerance) and a little per unit of load moved,
    # more for a region far from the centre of its new territory.
    xy = s.cent_xy
    ok = s.lab >= 0
    cw = np.bincount(s.lab[ok], weights=w[ok] + 1e-6, minlength=k)
    cen = np.column_stack([np.bincount(s.lab[ok], weights=xy[ok, i] * (w[ok] + 1e-6), minlength=k) for i in (0, 1)])
    cen /= cw[:, None]
    d_b = ((xy[var_r] - cen[var_b]) ** 2).sum(axis=1)
    d_a = ((xy[var_r] - cen[var_a]) ** 2).sum(axis=1)
    scale = float(np.median(d_a)) + 1e-12
    cost = MOVE_COST * (w[var_r] + 1e-2) * (1 + np.maximum(d_b - d_a, 0) / scale)
    slack = np.tile(s.obj.wn / np.maximum(s.tau, 1e-9), k)
    c = np.concatenate([cost, slack, slack])
    bounds = np.zeros((nv + 2 * ne, 2))
    bounds[:nv, 1] = np.where(frozen[var_r], 0.0, 1.0)
    bounds[nv:, 1] = np.inf
    options = {"presolve": True}
    if time_limit is not None:
        options["time_limit"] = max(float(time_limit), 0.1)
    res = linprog(c, A_ub=sp.vstack(blocks).tocsr(), b_ub=np.concatenate(rhs), bounds=bounds, method="highs",
                  options=options)
    if res.x is None:
        return None
    return var_r, var_b, var_par, var_d, np.asarray(res.x[:nv])


def _pad(block: sp.csr_matrix, ne: int) -> sp.csr_matrix:
    """A constraint block on the move variables only, padded with zeros for the 2 * ``ne`` slack variables."""
    return sp.hstack([block, sp.csr_matrix((block.shape[0], 2 * ne))])


def round_moves(s: SearchState, var_r, var_b, var_par, var_d, x, band) -> np.ndarray:
    """The variables to apply: those the programme moves whole, then, nearest the border first, each partly moved
    one whose parent moves too, if it lowers the imbalance of the totals so far (rounding every share at a half
    can leave the totals worse than before: a chain of regions each moved by 0.4 is all or nothing)."""
    whole = x > 1 - 1e-6
    T = s.T.copy()
    a = s.lab[var_r]
    np.add.at(T, a[whole], -s.vals[var_r[whole]])
    np.add.at(T, var_b[whole], s.vals[var_r[whole]])
    chosen = whole.copy()
    taken = np.zeros(s.n, dtype=bool)
    taken[var_r[whole]] = True
    part = np.flatnonzero((x > 1e-6) & ~whole)
    part = part[np.lexsort((-x[part], var_d[part]))]
    pen = s.obj.pen
    for j in part.tolist():
        r, p = int(var_r[j]), int(var_par[j])
        if taken[r] or (p >= 0 and not chosen[p]):
            continue
        ai, bi, v = int(a[j]), int(var_b[j]), s.vals[r]
        gain = float(pen(T[ai] - v, band) + pen(T[bi] + v, band) - pen(T[ai], band) - pen(T[bi], band))
        if gain < -1e-12 or (gain <= 1e-12 and x[j] > 0.5):
            chosen[j] = True
            taken[r] = True
            T[ai] -= v
            T[bi] += v
    return np.flatnonzero(chosen)


def apply_moves(s: SearchState, var_r, var_b, var_d, sel, band, passes: int = 4) -> int:
    """Apply the chosen variables ``sel``, nearest the border first, each move only if its territory stays in one
    piece and the region touches its new territory (passes retry what an earlier move unblocks); returns how
    many regions moved."""
    todo = sel[np.argsort(var_d[sel], kind="stable")].tolist()
    moved = 0
    lab = s.lab_l
    max_chunk = max(10, s.n // s.k // 20)
    load = (s.vals[:, s.bal_idx] / s.mu).sum(axis=1)
    for _ in range(passes):
        left = []
        for j in todo:
            r, b = int(var_r[j]), int(var_b[j])
            a = lab[r]
            if a == b:
                continue
            if s.count[a] <= 1 or not any(lab[u] == b for u in s.nbrs[r]):
                left.append(j)
                continue
            group = [r] if stays_connected(s, r, a, limit=2000) else cut_off_chunk(s, r, a, max_chunk)
            if group is not None and len(group) > 1 and load[group].sum() > 2 * load[r] + 0.002:
                group = None  # what r holds together weighs more than r: not what the programme chose
            if group is None or len(group) >= s.count[a]:
                left.append(j)
                continue
            # r, with what it alone holds to territory a (often regions without leads, which the programme does
            # not bother to move)
            reason = balance_reason(s, group if len(group) > 1 else r, a, b, band)
            for i in group:
                s.move(i, b, "balance", reason)
            moved += len(group)
        if len(left) == len(todo):
            break
        todo = left
    return moved


def lp_round(s: SearchState, band: np.ndarray, budget: float, refine) -> bool:
    """One programme on the live plan, applied, then ``refine(band, budget)`` (the search's refinement, ``budget``
    on top of the programme's own time); kept only if the plan's score improved (else the plan is restored).
    Returns whether it was kept."""
    clock = s.budget
    before = s.score(band)
    snap = s.snapshot()
    got = solve_moves(s, band, time_limit=None if clock.by_iterations else max(budget, 0.1))
    if got is None:
        return False
    var_r, var_b, var_par, var_d, x = got
    for _ in range(max(1, int(round(TICKS_PER_1000_VARS * len(var_r) / 1000)))):
        if clock.exhausted():
            break
        clock.tick()
    sel = round_moves(s, var_r, var_b, var_par, var_d, x, band)
    applied = apply_moves(s, var_r, var_b, var_d, sel, band)
    if not applied:
        return False
    refine(band, budget)
    if s.score(band) < before:
        return True
    s.restore(snap)
    return False
