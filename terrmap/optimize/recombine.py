"""ReCom-style recombination: merge two or three neighbouring territories and split their union again
along a random spanning tree (:func:`terrmap.optimize.starts.tree_partition`); kept only if B drops."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from terrmap.optimize.constraints import cap_ok
from terrmap.optimize.explain import Redraw
from terrmap.optimize.starts import tree_partition
from terrmap.optimize.state import SearchState

# Share of the redraws of several measures that use straight cuts (starts.line_split) rather than tree cuts.
LINE_SHARE = 0.1  # one in ten


def recombine(s: SearchState, ts: list[int], band, rng, it: int) -> bool:
    """Merge territories ``ts`` (2 or 3 neighbours) and split their union again along a spanning tree into
    parts matching their combined load; kept only if the imbalance drops."""
    ts = list(ts)
    pen = s.obj.pen
    nodes = np.flatnonzero(np.isin(s.lab, ts))
    if len(nodes) < len(ts):
        return False
    before = float(pen(s.T[ts], band).sum())
    guide = s.lab if rng.random() < 0.5 else None
    # No balancing of the tree cuts here: a redraw is tried hundreds of times per search, and the refinement
    # that follows it trades border regions anyway. With several measures, straight cuts that hold each
    # measure's share (their mix varies by area: a tree cut gives one territory the metro, the other its
    # hinterland).
    # A straight cut costs ~10x a tree cut: one redraw in LINE_SHARE does as well for the mix (TX, K=12, three
    # measures: 5/5 seeds within, as with every redraw), and an iteration budget does not pay 4x the time.
    lines = len(s.bal_idx) > 1 and s.mix_start and rng.random() < LINE_SHARE
    parts = tree_partition(s, nodes, len(ts), guide, rng, tries=3, balance_cuts=False, lines=lines)
    if parts is None:
        return False
    # Match parts to territories: fixed regions decide, then the largest overlap.
    cur = np.searchsorted(np.sort(ts), s.lab[nodes])
    order_ts = np.sort(ts)
    gain = np.zeros((len(ts), len(ts)))
    np.add.at(gain, (parts, cur), 1.0)
    fx = s.fixed[nodes]
    hasf = fx >= 0
    np.add.at(gain, (parts[hasf], np.searchsorted(order_ts, fx[hasf])), 1e6)
    rows, cols = linear_sum_assignment(-gain)
    new_lab = order_ts[cols[np.argsort(rows)]][parts]
    if np.any(hasf & (new_lab != fx)):
        return False
    newT = s.offsets[order_ts].copy()
    np.add.at(newT, np.searchsorted(order_ts, new_lab), s.vals[nodes])
    oldT = s.T[order_ts]
    after = float(pen(newT, band).sum())
    if after >= before - 1e-12:
        return False
    if len(s.lim_idx) and float(s.obj.lim_pen(newT).sum()) > float(s.obj.lim_pen(oldT).sum()) + 1e-12:
        return False
    changed = new_lab != s.lab[nodes]
    ch_nodes, ch_to = nodes[changed], new_lab[changed]
    if s.cap is not None:
        dd = s.disruption_delta(ch_nodes, s.lab[ch_nodes], ch_to).sum(axis=0)
        if not cap_ok(s, dd):
            return False
    d0, d1 = s.obj.dev(oldT), s.obj.dev(newT)
    j = int(np.argmax(s.w * np.abs(d0).max(axis=0)))
    reason = Redraw(s.obj.measures[j], tuple((s.label(int(t)), float(d0[i, j]), float(d1[i, j]))
                                             for i, t in enumerate(order_ts.tolist())))
    for i, t in zip(ch_nodes.tolist(), ch_to.tolist()):
        s.move(i, int(t), "balance", reason)
    s.tabu_until[nodes] = it + 2
    return True


def recombine_step(s: SearchState, adj, viol, band, rng, it) -> bool:
    """Redraw the border of an out-of-band territory with one of its neighbours (most out of band first)."""
    pen = s.obj.pen(s.T, band)
    for t in np.argsort(-pen)[:3].tolist():
        if not viol[t]:
            break
        nbrs = np.flatnonzero(adj[t])
        # Partners whose union with t is closest to its targets on every measure first (a partner opposite
        # on one measure but alike on another cannot help); the same for triples.
        dev = s.obj.dev(s.T)
        wn = s.obj.wn
        partners = nbrs[np.argsort(np.abs(wn * (dev[nbrs] + dev[t])).max(axis=1), kind="stable")].tolist()[:4]
        pairs = [[t, u] for u in partners]
        triples = [[t, u, v] for i, u in enumerate(partners) for v in partners[i + 1:]]
        groups = sorted(pairs, key=lambda g: float(np.abs(wn * dev[g].mean(axis=0)).max())) + \
            sorted(triples, key=lambda g: float(np.abs(wn * dev[g].mean(axis=0)).max()))
        for grp in groups:
            key = tuple(sorted(grp))
            ver = tuple(int(s.version[x]) for x in key)
            if s.failed_recombine.get(key) == ver:
                continue  # tried on these very territories already
            if recombine(s, list(key), band, rng, it):
                return True
            s.failed_recombine[key] = ver
    return False
