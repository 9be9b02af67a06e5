"""Starting plans: METIS (contiguous parts, balanced on the sum of the measures), recursive spanning-tree
bisection (for sparse, tree-like graphs METIS cannot balance), recursive bisection by straight cuts that hold
each measure's share (several measures whose mix varies by area), and the matching of parts to the
territories that own fixed (locked/seed) regions."""

from __future__ import annotations

import heapq

import numpy as np
import pymetis
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree

from terrmap.optimize.constraints import connected_without
from terrmap.optimize.repair import repair
from terrmap.optimize.state import SearchState


def metis_weights(s: SearchState) -> np.ndarray:
    """METIS's vertex weight per region: the balanced measures, each relative to its total, summed (weighted
    as in the objective), as integers summing to about 10^7.

    One weight, not one constraint per measure: pymetis passes ``ncon = 1`` to METIS whatever the length
    of ``vweights`` (its wrapper fixes ncon), so an (n, M) array would be read as its first n entries,
    weights of the wrong regions."""
    xb = s.vals[:, s.bal_idx] / np.maximum(s.vals[:, s.bal_idx].sum(axis=0), 1e-300)
    return np.floor(xb @ (s.w / s.w.sum()) * 1e7).astype(np.int64)


def metis_start(s: SearchState, seed: int = 0) -> np.ndarray:
    """METIS parts (``contig=1``), vertex weights = :func:`metis_weights`, edge weights = border length."""
    k = s.k
    if k == 1:
        return np.zeros(s.n, dtype=np.int64)
    scaled = metis_weights(s)
    elen = s.elen
    pos = elen[elen > 0]
    unit = float(np.median(pos)) if len(pos) else 1.0
    ew = np.maximum(1, np.round(elen / unit * 10)).astype(np.int64)
    ufactor = int(np.clip(np.min(s.tau) * 1000 / 2, 1, 300))
    opts = pymetis.Options(contig=1, ufactor=ufactor, seed=seed, ncuts=1)
    adj = pymetis.CSRAdjacency(s.indptr.astype(np.int64), s.indices.astype(np.int64))
    try:
        res = pymetis.part_graph(k, adj, vweights=scaled, eweights=ew, options=opts)
    except Exception:  # METIS refuses some inputs with contig: fall back to no contiguity (repaired below)
        opts = pymetis.Options(ufactor=ufactor, seed=seed)
        res = pymetis.part_graph(k, adj, vweights=scaled, eweights=ew, options=opts)
    return np.asarray(res[1], dtype=np.int64)


def subtree_sums(order: np.ndarray, pred: np.ndarray, load: np.ndarray) -> np.ndarray:
    """Per node of a tree (``order``: breadth-first from the root, ``pred``: parents), the sum of ``load``
    (one column per measure) over its subtree: children added to parents, deepest first."""
    rev = order[::-1].tolist()[:-1]  # every node but the root, children before their parents
    parent = pred.tolist()
    cols = []
    for col in load.T.tolist():  # plain lists: a Python loop over them beats numpy scalars tenfold
        for i in rev:
            col[parent[i]] += col[i]
        cols.append(col)
    return np.array(cols).T


def _split_setup(s: SearchState, nodes: np.ndarray, k1: int, k2: int):
    """What a split of ``nodes`` into k1 : k2 starts from: m, the mask of the CSR entries inside ``nodes``, the
    induced edges (positions in ``nodes``), each region's load on every balanced measure relative to its target
    (a cut is as good as its worst measure), and each side's wanted load and the smaller of the two."""
    m = len(nodes)
    pos = np.full(s.n, -1, dtype=np.int64)
    pos[nodes] = np.arange(m)
    sel = (pos[s.rows] >= 0) & (pos[s.indices] >= 0) & (s.rows < s.indices)
    er, ec = pos[s.rows[sel]], pos[s.indices[sel]]
    load = s.vals[nodes][:, s.bal_idx] / s.mu + 1e-9
    total = load.sum(axis=0)
    want1, want2 = total * k1 / (k1 + k2), total * k2 / (k1 + k2)
    return m, sel, er, ec, load, want1, want2, np.minimum(want1, want2)


def tree_split(s: SearchState, nodes: np.ndarray, k1: int, k2: int, guide: np.ndarray | None, rng, tries: int = 4,
               good_enough: float = 0.0, balance_cuts: bool = True) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Split the connected region set ``nodes`` into two connected parts holding k1 : k2 of its load.

    A random spanning tree of the induced subgraph (minimum spanning tree of random edge weights; edges
    that ``guide`` cuts weigh more, so the tree follows the guide's parts) is cut at the edge whose
    subtree is closest to a k1 or k2 share of every balanced measure (its error: the worst measure's).
    With several measures and ``balance_cuts``, :func:`balance_cut` then trades border regions between
    the two sides. Fixed regions must not be split from their territory-mates: the cut is only chosen
    among edges that leave all regions fixed to one territory on one side (and the trades leave them).
    Returns (part with k1, part with k2, relative error) or None.
    """
    nodes = np.asarray(nodes, dtype=np.int64)
    if len(nodes) < 2:
        return None
    m, sel, er, ec, load, want1, want2, small = _split_setup(s, nodes, k1, k2)
    fx = s.fixed[nodes]
    fixed_terr = np.unique(fx[fx >= 0])
    best = None
    for _ in range(tries):
        wgt = rng.random(len(er)) + 1.0
        if guide is not None:
            wgt += 2.0 * (guide[nodes[er]] != guide[nodes[ec]])
        tree = minimum_spanning_tree(sp.csr_matrix((wgt, (er, ec)), shape=(m, m)))
        order, pred = breadth_first_order(tree, 0, directed=False, return_predecessors=True)
        if len(order) < m:
            return None  # not connected
        sub = subtree_sums(order, pred, load)
        order_l = order.tolist()
        pred_l = pred.tolist()
        # Fixed regions: count per territory in each subtree; a cut must not separate a territory's fixed regions.
        ok = np.ones(m, dtype=bool)
        ok[order[0]] = False
        for t in fixed_terr.tolist():
            cnt = (fx == t).astype(np.int64)
            tot = int(cnt.sum())
            if tot <= 1:
                continue
            for i in reversed(order_l[1:]):
                cnt[pred_l[i]] += cnt[i]
            ok &= (cnt == 0) | (cnt == tot)
        # Relative to the smaller share: a cut off by x is off by x on both sides, most on the smaller one.
        err1 = (np.abs(sub - want1) / small).max(axis=1)
        err2 = (np.abs(sub - want2) / small).max(axis=1)
        err = np.where(ok, np.minimum(err1, err2), np.inf)
        i = int(np.argmin(err))
        if not np.isfinite(err[i]):
            continue
        if best is None or err[i] < best[0]:
            inside = np.zeros(m, dtype=bool)
            inside[i] = True
            for x in order_l:
                p_ = pred_l[x]
                if p_ >= 0 and inside[p_]:
                    inside[x] = True
            first = err1[i] <= err2[i]
            best = (float(err[i]), inside, first)
        if best[0] <= good_enough:
            break
    if best is None:
        return None
    err, inside, first = best
    if balance_cuts and err > good_enough and load.shape[1] > 1:
        want_in = want1 if first else want2
        err = balance_cut(s, nodes, inside, load, want_in, want1 + want2 - want_in, er, ec, max(good_enough, 1e-3))
    a_nodes, b_nodes = nodes[inside], nodes[~inside]
    return (a_nodes, b_nodes, err) if first else (b_nodes, a_nodes, err)


def balance_cut(s: SearchState, nodes: np.ndarray, inside: np.ndarray, load: np.ndarray, want_in: np.ndarray,
                want_out: np.ndarray, er: np.ndarray, ec: np.ndarray, good_enough: float,
                passes: int = 12) -> float:
    """Move regions across a two-way cut of ``nodes`` (``inside``: one side, changed in place) until both
    sides hold their share of every balanced measure (``load``: per node, relative to the targets) within
    ``good_enough``, or no move helps; both sides stay connected, fixed regions stay. Returns the error left.

    One cut of a spanning tree can match one measure's share but rarely several at once: the two sides'
    shared border lets customer-rich regions go one way and customer-poor ones the other."""
    d = load[inside].sum(axis=0) - want_in  # what the inside holds too much (the outside: too little)

    def error() -> float:
        return float(np.max(np.maximum(np.abs(d) / want_in, np.abs(d) / want_out)))

    side = np.full(s.n, -1, dtype=np.int64)
    side[nodes] = inside.astype(np.int64)
    side_l = side.tolist()
    movable = s.fixed[nodes] < 0
    nbrs = s.nbrs
    # The trades lower the squared shortfall over the measures, which may raise the worst one: the best cut seen
    # is kept.
    best_err, best_inside = error(), inside.copy()
    for _ in range(passes):
        if error() <= good_enough:
            break
        cut = inside[er] != inside[ec]
        cand = np.unique(np.concatenate([er[cut], ec[cut]]))
        cand = cand[movable[cand]]
        if not len(cand):
            break
        sign = np.where(inside[cand], -1.0, 1.0)  # leaving the inside lowers d
        v = load[cand]
        gain = -2 * sign * (v @ d) - (v * v).sum(axis=1)
        order = np.argsort(-gain, kind="stable")
        order = order[gain[order] > 0]
        moved = 0
        for j in order.tolist():
            i = int(cand[j])
            vi, sg = load[i], (-1.0 if inside[i] else 1.0)
            if float(-2 * sg * (vi @ d) - vi @ vi) <= 0:
                continue  # what the earlier moves sent made this one useless
            r = int(nodes[i])
            own = side_l[r]
            if not any(side_l[u] == 1 - own for u in nbrs[r]) or not _side_stays_connected(nbrs, side_l, r, own):
                continue
            side_l[r] = 1 - own
            inside[i] = not inside[i]
            d += sg * vi
            moved += 1
            if error() <= good_enough:
                break
        if error() < best_err:
            best_err, best_inside = error(), inside.copy()
        if not moved:
            break
    inside[:] = best_inside
    return best_err


def line_split(s: SearchState, nodes: np.ndarray, k1: int, k2: int, rng, angles: int = 24, keep: int = 3,
               good_enough: float = 0.0, passes: int = 10) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Split the connected region set ``nodes`` by a straight line into two connected parts holding k1 : k2
    of EACH balanced measure (several measures whose mix varies by area: customers per unit of potential
    by state).

    Ham-sandwich style: for ``angles`` directions the regions are ordered as a sweep along the direction
    reaches them (:func:`_sweep`: by their centre's projection, growing only into neighbours, so a side is
    connected however the part bends) and cut where the worst measure's share is closest to k1 : k2; as
    the direction turns half a circle the sides swap, so some direction matches two measures at once (for
    equal shares and two measures a line always exists). Pieces a side still leaves join the other side
    (:func:`_connect_sides`); of the directions nearly as good as the best, the ``keep`` shortest cuts
    (a cut along a strip makes thinner strips, which later cuts cannot split evenly) get the trades of
    :func:`balance_cut` to mend what the line left. Returns the best: (part with k1, part with k2, relative
    error: the worst measure's, relative to the smaller share), or None. A line cuts across a metro and
    its hinterland alike, so both sides get the same mix, where a tree cut follows whatever the tree is.
    Fixed regions are not looked at (the start's parts are matched to them afterwards)."""
    nodes = np.asarray(nodes, dtype=np.int64)
    if len(nodes) < 2:
        return None
    m, sel, er, ec, load, want1, want2, small = _split_setup(s, nodes, k1, k2)
    xy = s.cent_xy[nodes]
    xy = xy - xy.mean(axis=0)
    theta = rng.random() * 2 * np.pi / angles + np.linspace(0, 2 * np.pi, angles, endpoint=False)
    weight = load.sum(axis=1)
    elen = s.elen[sel] + 1e-9
    found = []
    src_, dst = np.concatenate([er, ec]), np.concatenate([ec, er])
    srt = np.argsort(src_, kind="stable")
    bounds = np.searchsorted(src_[srt], np.arange(m + 1)).tolist()
    dst_l = dst[srt].tolist()
    local = [dst_l[bounds[i]:bounds[i + 1]] for i in range(m)]
    for th in theta.tolist():
        order = _sweep(local, xy @ np.array([np.cos(th), np.sin(th)]))
        cum = np.cumsum(load[order], axis=0)[:-1]  # side 1: the first i + 1 regions
        i = int(np.argmin((np.abs(cum - want1) / small).max(axis=1)))
        inside = np.zeros(m, dtype=bool)
        inside[order[: i + 1]] = True
        if not _connect_sides(er, ec, inside, weight):
            continue
        d = load[inside].sum(axis=0) - want1
        cut_len = float(elen[inside[er] != inside[ec]].sum())
        found.append((float(np.max(np.maximum(np.abs(d) / want1, np.abs(d) / want2))), cut_len, inside))
    if not found:
        return None
    # Of the directions nearly as good as the best, the shortest cuts first: a line along a strip makes
    # thinner strips, which later cuts can no longer split evenly.
    e_min = min(f[0] for f in found)
    near = [f for f in found if f[0] <= max(2 * e_min, e_min + 4 * good_enough)]
    near.sort(key=lambda x: x[1])
    best = None
    for e, _, inside in near[:keep]:
        if e > good_enough and passes:
            e = balance_cut(s, nodes, inside, load, want1, want2, er, ec, good_enough, passes=passes)
        if best is None or e < best[0]:
            best = (e, inside)
        if best[0] <= good_enough:
            break
    if best is None:
        return None
    e, inside = best
    return nodes[inside], nodes[~inside], e


def _sweep(nbrs: list[list[int]], proj: np.ndarray) -> np.ndarray:
    """The regions in the order a sweep along ``proj`` reaches them when it may only grow into neighbours
    of what it holds (from the lowest ``proj``, the lowest frontier region next): every prefix is connected,
    and on a convex part it is the order of ``proj`` itself."""
    start = int(np.argmin(proj))
    key = proj.tolist()
    seen = [False] * len(key)
    seen[start] = True
    heap = [(key[start], start)]
    out = []
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        x = pop(heap)[1]
        out.append(x)
        for y in nbrs[x]:
            if not seen[y]:
                seen[y] = True
                push(heap, (key[y], y))
    return np.asarray(out, dtype=np.int64)


def _connect_sides(er: np.ndarray, ec: np.ndarray, inside: np.ndarray, weight: np.ndarray,
                   rounds: int = 10) -> bool:
    """Make both sides of a two-way split of a connected part connected (``er``, ``ec``: the part's edges;
    ``inside``: one side, changed in place): every piece of a side but its heaviest joins the other side
    (a piece borders nothing else there). False if a side empties or ``rounds`` are not enough."""
    m = len(inside)
    for _ in range(rounds):
        if not inside.any() or inside.all():
            return False
        same = inside[er] == inside[ec]
        graph = sp.csr_matrix((np.ones(int(same.sum()), dtype=np.int8), (er[same], ec[same])), shape=(m, m))
        n_c, comp = connected_components(graph, directed=False)
        if n_c <= 2:
            return True
        w = np.bincount(comp, weights=weight + 1e-12, minlength=n_c)
        keep = np.zeros(n_c, dtype=bool)
        for side in (True, False):
            cs = np.unique(comp[inside == side])
            keep[cs[int(np.argmax(w[cs]))]] = True
        stray = ~keep[comp]
        inside[stray] = ~inside[stray]
    return False


def _side_stays_connected(nbrs: list[list[int]], side: list[int], r: int, own: int, limit: int = 400) -> bool:
    """Would the regions of side ``own`` around ``r`` stay connected without r? False when r has no
    neighbour on its side (r is all of it: moving it would empty the side)."""
    if not any(side[u] == own for u in nbrs[r]):
        return False
    return connected_without(nbrs, side, r, own, limit)


def tree_partition(s: SearchState, nodes: np.ndarray, kk: int, guide: np.ndarray | None, rng,
                   tries: int = 6, balance_cuts: bool = True, lines: bool = False,
                   tol: float | None = None) -> np.ndarray | None:
    """Labels 0..kk-1 for ``nodes`` (a connected set): recursive bisection, kk -> kk//2 + rest, each cut
    along a spanning tree (:func:`tree_split`; ``balance_cuts``: see there) or, with ``lines``, along a
    straight line (:func:`line_split`; a tree cut where it does better). A cut is good enough within
    ``tol`` of its shares (default: a quarter of the tightest tolerance)."""
    out = np.full(len(nodes), -1, dtype=np.int64)
    pos = {int(x): i for i, x in enumerate(nodes.tolist())} if len(nodes) < s.n else None
    stack = [(np.asarray(nodes, dtype=np.int64), kk)]
    nxt = 0
    tol = float(np.min(s.tau)) / 4 if tol is None else float(tol)
    while stack:
        part, m = stack.pop()
        if m == 1:
            if pos is None:
                out[part] = nxt
            else:
                out[[pos[int(x)] for x in part.tolist()]] = nxt
            nxt += 1
            continue
        k1 = m // 2
        got = line_split(s, part, k1, m - k1, rng, good_enough=tol) if lines else None
        if got is None or got[2] > tol:
            tree = tree_split(s, part, k1, m - k1, guide, rng, tries=tries, good_enough=tol,
                              balance_cuts=balance_cuts)
            if got is None or (tree is not None and tree[2] < got[2]):
                got = tree
        if got is None:
            return None
        a_nodes, b_nodes, _ = got
        stack.append((a_nodes, k1))
        stack.append((b_nodes, m - k1))
    return out


def tree_start(s: SearchState, guide: np.ndarray | None, rng) -> np.ndarray | None:
    """K connected parts by recursive spanning-tree bisection following ``guide`` (METIS) where it can."""
    return tree_partition(s, np.arange(s.n), s.k, guide, rng)


def mix_start(s: SearchState, guide: np.ndarray | None, rng, tries: int = 4) -> np.ndarray | None:
    """K connected parts by recursive bisection whose every cut holds its k1 : k2 share of EACH balanced
    measure (:func:`line_split`, a spanning-tree cut where that does better), for several measures whose
    mix varies by area (customers per unit of potential by state): the upper cuts balance the mix at the
    scale of states, which border moves between finished territories cannot. A cut is good enough within
    a tenth of the tightest tolerance (the errors of the cuts above a territory add up)."""
    return tree_partition(s, np.arange(s.n), s.k, guide, rng, tries=tries, lines=True,
                          tol=float(np.min(s.tau)) / 10)


def match_fixed(s: SearchState, parts: np.ndarray) -> np.ndarray:
    """Relabel parts so that as many fixed regions as possible already sit in their territory (Hungarian
    method; a seed weighs more than any set of locks)."""
    f = np.flatnonzero(s.fixed >= 0)
    if not len(f):
        return parts
    share = (s.vals[f][:, s.bal_idx] / s.mu).sum(axis=1) + 1.0
    is_seed = np.zeros(s.n, bool)
    for x in s.seed_regions:
        if x is not None:
            is_seed[x] = True
    w = np.where(is_seed[f], 1e6, share)
    gain = np.zeros((s.k, s.k))
    np.add.at(gain, (s.fixed[f], parts[f]), w)
    rows, cols = linear_sum_assignment(-gain)
    relabel = np.empty(s.k, dtype=np.int64)
    relabel[cols] = rows
    return relabel[parts]


# Draws of the mix-balanced start per start of the search: at most MIX_DRAWS, one per MIX_DRAW_REGIONS
# regions of the instance's size fewer (a draw takes 0.1-0.2 s per 1,000 regions).
MIX_DRAWS = 3
# Starts of a search (its restarts) that draw it: the first ones (later restarts gain little from it).
MIX_ATTEMPTS = 2
MIX_DRAW_REGIONS = 6000
# What a draw costs, in budget seconds per region (the lower 48's 31,732 ZIPs: 4-6 s on 2 shared cores).
MIX_SECONDS_PER_REGION = 2e-4


def scratch_start(s: SearchState, attempt: int, rng) -> tuple[str, float, float]:
    """A contiguous start: METIS (seed varies per attempt), or a spanning-tree bisection guided by it when
    METIS cannot balance contiguous parts. Leaves the better one (lower B) in place; returns its name, its
    max deviation and METIS's max deviation."""
    metis = metis_start(s, seed=s.random_state + attempt)
    s.set_labels(match_fixed(s, metis))
    repair(s, "contiguity")
    metis_dev = float(np.abs(s.obj.dev(s.T)).max())
    starts = [("METIS", s.imbalance(), metis_dev, s.lab.copy())]
    mix = len(s.bal_idx) > 1 and s.mix_start and attempt < MIX_ATTEMPTS
    # On a large instance with several measures the mix start below is the one kept (lower 48, K=50: the tree
    # start is 19-25% off, the mix start 11-15%), and the tree start's 1-3 s are better spent refining it.
    big_mix = mix and s.n > MIX_DRAW_REGIONS and s.time_left() >= MIX_SECONDS_PER_REGION * s.n
    if metis_dev > float(np.min(s.tau)) and not big_mix:
        # METIS could not balance contiguous parts (sparse, tree-like graphs: islands chained by bridges):
        # recursive spanning-tree bisection that follows METIS's parts where it can.
        tree = tree_start(s, metis, rng)
        if tree is not None:
            s.set_labels(match_fixed(s, tree))
            repair(s, "contiguity")
            starts.append(("spanning-tree bisection guided by METIS", s.imbalance(),
                           float(np.abs(s.obj.dev(s.T)).max()), s.lab.copy()))
    within = min(x[2] for x in starts) <= float(np.min(s.tau))
    if mix and not within:
        # Several measures: METIS balances their sum only, and their mix varies by area. A few draws where
        # a draw is cheap (a state's regions); one on the whole country. Not when a start above is within the
        # tolerance already (small, even instances: the draws would cost more than the whole search).
        for _ in range(max(1, min(MIX_DRAWS, int(MIX_DRAW_REGIONS // s.n)))):
            if s.time_left() < MIX_SECONDS_PER_REGION * s.n:
                break  # a draw would overrun the search's budget (it cannot be stopped half-way)
            parts = mix_start(s, metis, rng)
            if parts is not None:
                s.set_labels(match_fixed(s, parts))
                repair(s, "contiguity")
                starts.append(("mix-balanced bisection", s.imbalance(), float(np.abs(s.obj.dev(s.T)).max()),
                               s.lab.copy()))
    name, _, dev, lab = min(starts, key=lambda x: (x[1], x[2]))
    s.set_labels(lab)
    return name, dev, metis_dev
