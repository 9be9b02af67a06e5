"""What moves along with a region that holds its territory together (its "chunk"): per territory, a
depth-first tree from an anchor region (:func:`terrmap.geo.graph.separating_subtrees`); moving region r
takes along the subtrees that only r links to the anchor, so a territory stays in one piece by construction.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from terrmap.geo.graph import separating_subtrees
from terrmap.optimize.state import SearchState


def anchor_of(s: SearchState, t: int, members: np.ndarray) -> int:
    """A region that never leaves territory t during refinement: a fixed one, else the one nearest its centre."""
    x = int(s.anchor[t])
    if x >= 0 and s.lab_l[x] == t:
        return x
    fixed = members[s.fixed[members] == t]
    if len(fixed):
        x = int(fixed[0])
    else:
        w = (s.vals[members][:, s.bal_idx] / s.mu).sum(axis=1) + 1e-6
        c = (s.cent_xy[members] * w[:, None]).sum(axis=0) / w.sum()
        x = int(members[np.argmin(((s.cent_xy[members] - c) ** 2).sum(axis=1))])
    s.anchor[t] = x
    return x


def build_tree(s: SearchState, t: int) -> None:
    """The tree of territory t from its anchor: for each region r, the child subtrees that would lose their
    link to the anchor without r; r's chunk is r plus those subtrees (its load in ``chunk_val``)."""
    members = np.flatnonzero(s.lab == t)
    s.chunk_ok[members] = False
    s.chunk_size[members] = 1
    s.chunk_val[members] = s.vals[members]
    if not len(members):
        s.trees.pop(t, None)
        return
    root = anchor_of(s, t, members)
    order, pre, size, sep, _ = separating_subtrees(s.nbrs, s.lab_l, t, root, s._pre, s._low)
    s.trees[t] = (order, pre, size, sep)
    order_a = np.asarray(order, dtype=np.int64)
    cs = np.vstack([np.zeros((1, s.vals.shape[1])), np.cumsum(s.vals[order_a], axis=0)])
    fx = np.concatenate([[0], np.cumsum(s.fixed[order_a] >= 0)])
    ok = np.ones(len(order_a), dtype=bool)
    ok[0] = False  # the anchor stays
    ok &= s.fixed[order_a] < 0
    s.chunk_ok[order_a] = ok
    if sep:
        rs = np.array([r for r, cs_ in sep.items() for _ in cs_], dtype=np.int64)
        starts = np.array([pre[c] for cs_ in sep.values() for c in cs_], dtype=np.int64)
        ends = starts + np.array([size[c] for cs_ in sep.values() for c in cs_], dtype=np.int64)
        np.add.at(s.chunk_val, rs, cs[ends] - cs[starts])
        np.add.at(s.chunk_size, rs, ends - starts)
        bad = rs[(fx[ends] - fx[starts]) > 0]
        s.chunk_ok[bad] = False


def refresh_trees(s: SearchState, only: np.ndarray | None = None) -> None:
    """Rebuild the chunk trees of changed territories (only those flagged in ``only``, if given)."""
    todo = sorted(s.dirty) if only is None else [t for t in sorted(s.dirty) if only[t]]
    for t in todo:
        build_tree(s, t)
    s.dirty.difference_update(todo)


def chunk_members(s: SearchState, r: int, t: int) -> list[int]:
    """Region r and what it alone links to territory t's anchor (from t's current tree)."""
    order, pre, size, sep = s.trees[t]
    out = [r]
    for c in sep.get(r, ()):
        out.extend(order[pre[c]:pre[c] + size[c]])
    return out


def cut_off_chunk(s: SearchState, r: int, a: int, max_size: int) -> list[int] | None:
    """``r`` plus the pieces of territory ``a`` that removing ``r`` cuts off (all but the main piece: the one
    holding a's fixed regions, else the heaviest); None if that is too big or holds fixed regions.
    (For a territory without a current tree: a breadth-first search from r's neighbours.)"""
    lab = s.lab_l
    pieces: list[list[int]] = []
    seen = {r}
    for s0 in s.nbrs[r]:
        if lab[s0] != a or s0 in seen:
            continue
        piece = [s0]
        seen.add(s0)
        dq = deque([s0])
        while dq:
            x = dq.popleft()
            for y in s.nbrs[x]:
                if y not in seen and lab[y] == a:
                    seen.add(y)
                    piece.append(y)
                    dq.append(y)
        pieces.append(piece)
    if len(pieces) <= 1:
        return [r]
    has_fixed = [any(s.fixed[i] >= 0 for i in p) for p in pieces]
    if sum(has_fixed) > 1:
        return None
    anchor = int(s.anchor[a])
    if any(has_fixed):
        main = has_fixed.index(True)
    elif anchor >= 0 and anchor != r and s.lab_l[anchor] == a:
        main = next(j for j, p in enumerate(pieces) if anchor in p)
    else:
        load = s.vals[:, s.bal_idx] / s.mu
        main = int(np.argmax([load[p].sum() + 1e-9 * len(p) for p in pieces]))
    chunk = [r] + [i for j, p in enumerate(pieces) if j != main for i in p]
    if len(chunk) > max_size:
        return None
    return chunk
