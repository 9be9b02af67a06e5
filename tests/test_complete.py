"""Completing a plan: every region gets a territory, by shared border first, then the nearest region."""

from __future__ import annotations

import h3
import networkx as nx
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from terrmap.geo.graph import RegionGraph, h3_graph
from terrmap.plan.complete import UNASSIGNED, fill_unassigned


def _path_graph(n: int, lengths=None) -> RegionGraph:
    edges = np.array([(i, i + 1) for i in range(n - 1)], dtype=np.int64)
    lengths = np.ones(n - 1) if lengths is None else np.asarray(lengths, dtype=float)
    cent = np.column_stack([np.full(n, 30.0), -100.0 + 0.1 * np.arange(n)])
    return RegionGraph([f"r{i}" for i in range(n)], edges, lengths, np.ones(n), np.zeros(n), cent)


def test_waves_meet_in_the_middle_and_ties_go_to_the_lower_territory():
    g = _path_graph(5)
    done = fill_unassigned(g, np.array([0, UNASSIGNED, UNASSIGNED, UNASSIGNED, 1]))
    # Wave 1: r1 -> 0 and r3 -> 1; wave 2: r2 borders both equally (one edge of length 1 each) -> 0.
    assert done.assignment.tolist() == [0, 0, 0, 1, 1]
    assert (done.by_border, done.by_nearest) == (3, 0)


def test_the_longer_shared_border_wins():
    # r1 sits between r0 (territory 0, border 1 km) and r2 (territory 1, border 5 km).
    g = _path_graph(3, lengths=[1.0, 5.0])
    assert fill_unassigned(g, np.array([0, UNASSIGNED, 1])).assignment.tolist() == [0, 1, 1]


def test_a_piece_no_territory_touches_takes_the_nearest_region():
    # Two pieces: r0-r1-r2 (r0 in territory 0) and r3-r4 far east (nobody), r4 nearer to r2 than r0 is.
    edges = np.array([(0, 1), (1, 2), (3, 4)], dtype=np.int64)
    cent = np.array([[30.0, -100.0], [30.0, -99.9], [30.0, -99.8], [30.0, -98.0], [30.0, -98.1]])
    g = RegionGraph([f"r{i}" for i in range(5)], edges, np.ones(3), np.ones(5), np.zeros(5), cent)
    a = np.array([0, UNASSIGNED, 1, UNASSIGNED, UNASSIGNED])
    done = fill_unassigned(g, a)
    assert done.assignment.tolist() == [0, 0, 1, 1, 1]  # r3 and r4: nearest assigned region is r2
    assert (done.by_border, done.by_nearest) == (1, 2)
    assert "2 by nearest region" in done.note()
    assert a.tolist() == [0, UNASSIGNED, 1, UNASSIGNED, UNASSIGNED]  # the input is not changed


def test_nothing_to_grow_from_leaves_the_plan_as_it_is():
    g = _path_graph(4)
    done = fill_unassigned(g, np.full(4, UNASSIGNED))
    assert (done.assignment == UNASSIGNED).all() and done.filled == 0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 6), share=st.floats(0.02, 0.6))
def test_completed_territories_stay_one_piece(seed, k, share):
    """On a connected hexagon patch, territories that start as one piece (grown from seeds) and are completed
    by shared border are still one piece each (checked with networkx on the raw grid adjacency), nothing is
    left unassigned and no region already assigned changes."""
    rng = np.random.default_rng(seed)
    cells = sorted(h3.grid_disk(h3.latlng_to_cell(35.0, -97.0, 6), 7))
    g = h3_graph(cells)
    nxg = nx.Graph()
    nxg.add_nodes_from(range(g.n))
    nxg.add_edges_from(map(tuple, g.edges.tolist()))
    # Territories grown by breadth-first search from k seeds, each stopping at a random share of the patch.
    a = np.full(g.n, UNASSIGNED)
    for t, seed_region in enumerate(rng.choice(g.n, size=k, replace=False).tolist()):
        if a[seed_region] != UNASSIGNED:
            continue
        limit = max(1, int(share * g.n / k))
        taken = 0
        for node in nx.bfs_tree(nxg.subgraph(np.flatnonzero(a == UNASSIGNED).tolist()), seed_region):
            a[node] = t
            taken += 1
            if taken >= limit:
                break
    start = a.copy()
    done = fill_unassigned(g, a).assignment
    assert (done != UNASSIGNED).all()
    assert (done[start != UNASSIGNED] == start[start != UNASSIGNED]).all()
    for t in np.unique(done).tolist():
        assert nx.is_connected(nxg.subgraph(np.flatnonzero(done == t).tolist())), f"territory {t} in pieces"


def test_a_frozen_territory_keeps_its_regions_and_never_grows():
    # r0 in territory 0, r1 frozen (left unassigned on purpose, index 1), r2..r4 empty behind it: they are reached
    # only through r1, so they take the nearest region that can grow (territory 0), never the frozen one.
    g = _path_graph(5)
    done = fill_unassigned(g, np.array([0, 1, UNASSIGNED, UNASSIGNED, UNASSIGNED]), frozen=1)
    assert done.assignment.tolist() == [0, 1, 0, 0, 0]
    assert (done.by_border, done.by_nearest) == (0, 3)
