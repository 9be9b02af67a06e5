"""The search's live state: the assignment, its tallies (totals per territory, region counts, disruption),
the move log, and the graph in the flat arrays the search reads.

Why not :class:`terrmap.plan.Plan`: the editor's plan tallies perimeters and keeps undo/redo stacks on every
flip, which the search does not need and cannot afford in its inner loop; the search needs the disruption
against a base plan, snapshots, and the per-territory change counters its caches key on. So it keeps these
tallies itself, in one class.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from terrmap.optimize.budget import Budget
from terrmap.optimize.explain import MoveRecord, Reason
from terrmap.optimize.instance import MEASURES, Instance
from terrmap.optimize.objective import Objective
from terrmap.plan import metrics


class SearchState:
    """One search: the instance as arrays, the objective, the budget, and the plan being improved."""

    # From scratch with several balanced measures, each start also draws a bisection that balances their mix
    # (terrmap.optimize.starts.mix_start); False: METIS and the spanning-tree start only (benchmarks compare).
    mix_start: bool = True
    # Likewise, a start's refinement is followed by rounds of the linear programme over the border regions
    # (terrmap.optimize.flow); False: without them (benchmarks compare).
    lp_balance: bool = True

    def __init__(self, inst: Instance, k: int, objective: Objective, fixed: np.ndarray, budget: Budget, *,
                 base: np.ndarray | None = None, cap: float | None = None,
                 offsets: np.ndarray | None = None, excepted: np.ndarray | None = None,
                 label: Callable[[int], str] | None = None, random_state: int = 0,
                 progress: Callable[[float, str], None] | None = None,
                 should_stop: Callable[[], bool] | None = None):
        g = inst.graph
        self.g = g
        self.region_ids = inst.region_ids
        self.n = inst.n
        self.k = k
        self.obj = objective
        self.budget = budget
        self.fixed = fixed
        self.label = label or (lambda t: f"Territory {t + 1}")
        self.random_state = int(random_state)
        self.progress = progress or (lambda f, m: None)
        self.should_stop = should_stop or (lambda: False)
        self.cancelled = False
        # CSR with the border length of each entry.
        e = g.edges
        rows = np.concatenate([e[:, 0], e[:, 1]])
        cols = np.concatenate([e[:, 1], e[:, 0]])
        eid = np.concatenate([np.arange(len(e)), np.arange(len(e))])
        order = np.lexsort((cols, rows))
        rows, cols, eid = rows[order], cols[order], eid[order]
        self.indptr = np.searchsorted(rows, np.arange(self.n + 1))
        self.indices = cols
        self.rows = rows
        self.elen = np.asarray(g.edge_length, dtype=float)[eid]
        self.nbrs = [cols[self.indptr[i]:self.indptr[i + 1]].tolist() for i in range(self.n)]
        # Measures: all of them (for reports); the objective's arrays under short names (read everywhere).
        self.vals = inst.values[MEASURES].to_numpy(dtype=float)
        # What each territory owns whatever its regions (pinned accounts): part of its totals T.
        self.offsets = np.zeros((k, len(MEASURES))) if offsets is None else np.asarray(offsets, dtype=float)
        self.bal_idx, self.w, self.tau, self.mu = objective.bal_idx, objective.w, objective.tau, objective.mu
        self.lim_idx = objective.lim_idx
        self.region_load = objective.region_loads(self.vals)
        # Disruption (rebalance).
        self.base = base
        # Shares of every account's potential and customers (those owned by exception included): the share the
        # Scenarios page reports as disruption. A region moving weighs what changes owner with it (inst.moving:
        # its values, plus accounts of an overlay limited to some territories, which pass to the new territory
        # when it lies outside them), so the cap holds on the accounts Scenarios counts.
        ip, ic = MEASURES.index("potential"), MEASURES.index("customers")
        extra = np.zeros(len(MEASURES)) if excepted is None else np.asarray(excepted, dtype=float)
        self.dis_total = np.array([self.vals[:, ip].sum() + extra[ip], self.vals[:, ic].sum() + extra[ic]])
        moving = self.vals if inst.moving is None else np.asarray(inst.moving, dtype=float)
        self.dis_w = moving[:, [ip, ic]] / np.maximum(self.dis_total, 1e-300)
        self.cap = cap
        self.tabu_until = np.zeros(self.n, dtype=np.int64)
        self.moves: list[MoveRecord] = []
        self.freed_from: dict[int, int] = {}  # regions a repair took out of a territory, until they are placed
        # Per territory, a DFS tree rooted at an anchor region: moving region r takes along the part of its
        # territory that r alone connects to the anchor (its "chunk"); see terrmap.optimize.chunks.
        self.anchor = np.full(self.k, -1, dtype=np.int64)
        self._pre = [-1] * self.n
        self._low = [-1] * self.n
        self.version = np.zeros(self.k, dtype=np.int64)  # bumped whenever a territory changes
        self.failed_recombine: dict[tuple[int, int], tuple[int, int]] = {}
        self.tree_terr = np.zeros(self.k, dtype=bool)  # territories whose chunk trees the current round uses
        self.n_kicks = 1  # kicks per start when stuck just out of band (more starts usually pay better)
        self.dirty: set[int] = set(range(self.k))
        self.chunk_val = self.vals.copy()
        self.chunk_size = np.ones(self.n, dtype=np.int64)
        self.chunk_ok = np.zeros(self.n, dtype=bool)
        self.trees: dict[int, tuple[list[int], dict, dict, dict]] = {}
        self.cent_xy = np.column_stack([g.centroids[:, 0], g.centroids[:, 1] * np.cos(np.radians(g.centroids[:, 0]))])
        self.seed_regions: list[int | None] = []

    # -- the assignment and its tallies --------------------------------------------------------
    def set_labels(self, lab: np.ndarray) -> None:
        self.lab = np.asarray(lab, dtype=np.int64).copy()
        self.lab_l = self.lab.tolist()
        self.dirty = set(range(self.k))
        self.version = self.version + 1
        self._retally()

    def _retally(self) -> None:
        lab = self.lab
        ok = lab >= 0
        self.T = metrics.territory_totals(self.vals, lab, self.k, self.offsets)
        self.count = np.bincount(lab[ok], minlength=self.k)
        if self.base is not None:
            changed = (lab != self.base) & (self.base >= 0)
            self.D = self.dis_w[changed].sum(axis=0)
        else:
            self.D = np.zeros(2)

    def snapshot(self):
        return (self.lab.copy(), len(self.moves))

    def restore(self, snap) -> None:
        lab, nmoves = snap
        del self.moves[nmoves:]
        self.set_labels(lab)

    def move(self, r: int, b: int, phase: str, reason: Reason | None = None) -> None:
        """Region r to territory b, tallies updated and the move logged (with its reason)."""
        a = self.lab_l[r]
        src = self.freed_from.pop(r, a) if a < 0 else a
        v = self.vals[r]
        if a >= 0:
            self.T[a] -= v
            self.count[a] -= 1
        self.T[b] += v
        self.count[b] += 1
        if self.base is not None and self.base[r] >= 0:
            if a == self.base[r]:
                self.D += self.dis_w[r]
            elif b == self.base[r]:
                self.D -= self.dis_w[r]
        self.lab[r] = b
        self.lab_l[r] = b
        self.dirty.add(a)
        self.dirty.add(b)
        if a >= 0:
            self.version[a] += 1
        self.version[b] += 1
        self.moves.append(MoveRecord(r, src, b, phase, reason))

    # -- the objective on the live totals ---------------------------------------------------------
    def imbalance(self, band: np.ndarray | None = None) -> float:
        return float(self.obj.pen(self.T, band).sum())

    def score(self, band: np.ndarray) -> tuple[float, float]:
        """(B, S) of the live plan: what the search compares plans by."""
        return self.imbalance(band), float(self.obj.soft(self.T, band).sum())

    def loads(self) -> np.ndarray:
        """Weighted relative load of each territory (for growing into the least loaded)."""
        return self.obj.loads(self.T)

    # -- time ------------------------------------------------------------------------------
    def time_left(self) -> float:
        return self.budget.left()

    def stop(self) -> bool:
        if self.should_stop():
            self.cancelled = True
        return self.cancelled or self.time_left() <= 0

    # -- reading the plan --------------------------------------------------------------------
    def pieces(self, lab: np.ndarray) -> np.ndarray:
        """Component label of each region on the subgraph of same-territory edges."""
        same = (lab[self.rows] == lab[self.indices]) & (lab[self.rows] >= 0)
        m = sp.csr_matrix((np.ones(int(same.sum()), dtype=np.int8), (self.rows[same], self.indices[same])),
                          shape=(self.n, self.n))
        return connected_components(m, directed=False)[1]

    def border_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (region r, territory a = lab[r], neighbouring territory b != a) once, movable regions only."""
        lab = self.lab
        la, lb = lab[self.rows], lab[self.indices]
        cut = (la != lb) & (la >= 0) & (lb >= 0) & (self.fixed[self.rows] < 0)
        r, b = self.rows[cut], lb[cut]
        key = np.unique(r * self.k + b)
        r, b = key // self.k, key % self.k
        return r, lab[r], b

    def border_lengths(self, r: np.ndarray, b: np.ndarray, a: np.ndarray):
        """Border length (and neighbour count) of each r with territory b and with its own territory a."""
        lab = self.lab
        same = lab[self.rows] == lab[self.indices]
        own_len = np.bincount(self.rows[same], weights=self.elen[same], minlength=self.n)
        own_cnt = np.bincount(self.rows[same], minlength=self.n)
        key_all = self.rows * self.k + lab[self.indices]
        keys = r * self.k + b
        srt = np.argsort(key_all, kind="stable")
        ks = key_all[srt]
        lo = np.searchsorted(ks, keys, "left")
        hi = np.searchsorted(ks, keys, "right")
        csum_len = np.concatenate([[0.0], np.cumsum(self.elen[srt])])
        to_b_len = csum_len[hi] - csum_len[lo]
        to_b_cnt = hi - lo
        return own_len[r], own_cnt[r], to_b_len, to_b_cnt

    def disruption_delta(self, r, a, b) -> np.ndarray:
        """(potential share, customer share) change of the disruption for moves r: a -> b."""
        if self.base is None:
            return np.zeros((len(np.atleast_1d(r)), 2))
        base = self.base[r]
        sign = np.where((a == base) & (base >= 0), 1.0, np.where((b == base) & (base >= 0), -1.0, 0.0))
        return self.dis_w[r] * sign[..., None]

    def territory_adjacency(self) -> np.ndarray:
        lab = self.lab
        la, lb = lab[self.rows], lab[self.indices]
        cut = (la != lb) & (la >= 0) & (lb >= 0)
        adj = np.zeros((self.k, self.k), dtype=bool)
        adj[la[cut], lb[cut]] = True
        return adj
