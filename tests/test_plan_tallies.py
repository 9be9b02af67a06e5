"""The live plan's incremental tallies equal a from-scratch recomputation after any sequence of edits."""

import functools

import h3
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terrmap.geo.graph import h3_graph
from terrmap.plan import UNASSIGNED, Plan, metrics

K = 5


@pytest.fixture(scope="module")
def graph():
    # A real patch of H3 cells (two disks, so there is an island to bridge).
    a = h3.grid_disk(h3.latlng_to_cell(39.74, -104.99, 6), 6)
    b = h3.grid_disk(h3.latlng_to_cell(40.5, -103.0, 6), 2)
    return h3_graph(sorted(set(a) | set(b)))


def fresh(graph, seed=0):
    rng = np.random.default_rng(seed)
    n = graph.n
    values = np.column_stack([rng.integers(0, 50, n), rng.gamma(2.0, 1000.0, n)])
    assign = rng.integers(0, K, n)
    return Plan(graph, values, ["leads", "potential"], assign, K)


def assert_matches_scratch(plan: Plan):
    ref = Plan(plan.graph, plan.values, plan.measures, plan.assignment, plan.k, plan.locked)
    np.testing.assert_allclose(plan.totals, ref.totals, atol=1e-6)
    np.testing.assert_array_equal(plan.region_counts, ref.region_counts)
    assert plan.cut_edges == ref.cut_edges
    np.testing.assert_allclose(plan.perimeter, ref.perimeter, atol=1e-6)
    np.testing.assert_allclose(plan.area, ref.area, atol=1e-6)
    np.testing.assert_array_equal(plan.components(), ref.components())
    np.testing.assert_array_equal(plan.land_pieces(), ref.land_pieces())
    # ... and the reference itself agrees with the plain metric functions.
    a = plan.assignment
    assert ref.cut_edges == int(np.sum(a[plan.graph.edges[:, 0]] != a[plan.graph.edges[:, 1]]))


def test_islands_are_bridged(graph):
    assert graph.bridges, "the second disk must be joined to the first"
    from scipy.sparse.csgraph import connected_components

    assert connected_components(graph.adjacency, directed=False)[0] == 1


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 10_000), min_size=1, max_size=30), st.integers(-1, K - 1),
                          st.sampled_from(["flip", "flip", "undo", "redo", "lock"])), min_size=1, max_size=25))
def test_random_edit_sequences_match_recomputation(graph, ops):
    plan = fresh(graph)
    for regions, to, op in ops:
        regions = [r % graph.n for r in regions]
        if op == "flip":
            before_locked = plan.assignment[plan.locked].copy()
            plan.flip(regions, to)
            np.testing.assert_array_equal(plan.assignment[plan.locked], before_locked)
        elif op == "undo":
            plan.undo()
        elif op == "redo":
            plan.redo()
        else:
            plan.set_locked(regions[:3])
    assert_matches_scratch(plan)


def test_undo_restores_exactly_and_redo_reapplies(graph):
    plan = fresh(graph, seed=3)
    start = plan.assignment.copy()
    states = []
    rng = np.random.default_rng(1)
    for _ in range(60):
        plan.flip(rng.choice(graph.n, 5, replace=False), int(rng.integers(0, K)))
        states.append(plan.assignment.copy())
    for _ in range(60):
        plan.undo()
    np.testing.assert_array_equal(plan.assignment, start)
    assert_matches_scratch(plan)
    for _ in range(60):
        plan.redo()
    np.testing.assert_array_equal(plan.assignment, states[-1])


def test_locked_regions_do_not_move(graph):
    plan = fresh(graph, seed=4)
    plan.set_locked([0, 1, 2])
    before = plan.assignment[:3].copy()
    move = plan.flip(np.arange(10), 2 if before[0] != 2 else 3)
    np.testing.assert_array_equal(plan.assignment[:3], before)
    assert not set(move.regions.tolist()) & {0, 1, 2}


def test_summary_uses_metric_definitions(graph):
    plan = fresh(graph, seed=5)
    plan.flip([0, 1], UNASSIGNED)
    s = plan.summary("potential")
    totals = plan.totals[:, 1]
    assert s["max_abs_deviation"] == pytest.approx(np.max(np.abs(totals / totals.mean() - 1)))
    assert s["cv"] == pytest.approx(totals.std() / totals.mean())
    assert s["unassigned"] == 2
    pp = metrics.polsby_popper(plan.area, plan.perimeter)
    assert ((pp > 0) & (pp <= 1.0 + 1e-9)).all()


def test_articulation_points_match_brute_force(graph):
    from scipy.sparse.csgraph import connected_components

    from terrmap.geo.graph import articulation_points

    rng = np.random.default_rng(7)
    for _ in range(5):
        members = np.sort(rng.choice(graph.n, size=graph.n // 3, replace=False))
        sub = graph.adjacency[members][:, members]
        base = connected_components(sub, directed=False)[0]
        brute = set()
        for k, r in enumerate(members):
            keep = np.delete(np.arange(len(members)), k)
            if connected_components(sub[keep][:, keep], directed=False)[0] > base:
                brute.add(int(r))
        assert articulation_points(graph.adjacency, members) == brute


def test_distinct_colors_for_many_territories(graph):
    from terrmap.plan import PALETTE, distinct_colors

    # 45 territories as vertical bands over a real H3 patch: neighbours never share a colour.
    k = 45
    order = np.argsort(graph.centroids[:, 1])
    assign = np.empty(graph.n, dtype=np.int64)
    assign[order] = np.arange(graph.n) * k // graph.n
    e = graph.edges
    pairs = {(int(a), int(b)) for a, b in zip(assign[e[:, 0]], assign[e[:, 1]]) if a != b}
    colors = distinct_colors(k, pairs)
    assert all(colors[a] != colors[b] for a, b in pairs)
    assert set(colors) <= set(PALETTE) and len(set(colors)) >= min(len(PALETTE), k) * 0.9
    # Stable: recolouring with the same neighbours keeps every colour.
    assert distinct_colors(k, pairs, colors) == colors
    # A clash introduced by hand is repaired by changing one side only.
    clashed = list(colors)
    a, b = next(iter(pairs))
    clashed[b] = clashed[a]
    fixed = distinct_colors(k, pairs, clashed)
    assert fixed[a] != fixed[b] and sum(x != y for x, y in zip(fixed, clashed)) == 1


@functools.cache
def _srgb_to_lab():
    from PIL import ImageCms

    return ImageCms.buildTransformFromOpenProfiles(ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"),
                                                   "RGB", "LAB")  # 6 ms to build: once


@functools.cache
def _pil_lab(color: str) -> np.ndarray:
    """CIELAB of a colour by littlecms (Pillow's ImageCms), independent of terrmap.plan.colors.lab."""
    from PIL import Image, ImageCms

    transform = _srgb_to_lab()
    rgb = tuple(int(color.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4))
    lum, a, b = ImageCms.applyTransform(Image.new("RGB", (1, 1), rgb), transform).getpixel((0, 0))
    return np.array([lum * 100 / 255, a - 128, b - 128], dtype=float)  # 8-bit LAB: L scaled, a and b offset


def test_lab_agrees_with_littlecms():
    from terrmap.plan.colors import PALETTE, lab

    for c in [*PALETTE, "#ffffff", "#000000", "#808080"]:
        assert np.abs(lab(c) - _pil_lab(c)).max() < 1.5, c  # 8-bit LAB rounds to ~0.5 unit


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 45))
def test_neighbouring_territories_differ_by_25_delta_e(seed, k):
    """Territories as the Voronoi cells of random seeds (neighbours: Delaunay edges, as on a map, typically
    up to 6-8): every pair of neighbours differs by >= 25 CIELAB units, measured by littlecms."""
    from scipy.spatial import Delaunay

    from terrmap.plan import distinct_colors

    points = np.random.default_rng(seed).random((k, 2))
    pairs = set()
    if k >= 3:
        for simplex in Delaunay(points, qhull_options="QJ").simplices:
            pairs |= {(int(a), int(b)) for a in simplex for b in simplex if a < b}
    else:
        pairs = {(0, 1)}
    colors = distinct_colors(k, pairs)
    labs = {c: _pil_lab(c) for c in set(colors)}
    assert all(np.linalg.norm(labs[colors[a]] - labs[colors[b]]) >= 25 - 1.5 for a, b in pairs)


def test_territory_totals_are_offsets_plus_a_groupby_of_the_assigned_regions():
    rng = np.random.default_rng(5)
    values = rng.random((50, 3))
    assignment = rng.integers(-1, 4, 50)
    offsets = rng.random((4, 3))
    got = metrics.territory_totals(values, assignment, 4, offsets)
    frame = pd.DataFrame(values).assign(t=assignment)
    expect = frame[frame["t"] >= 0].groupby("t").sum().reindex(range(4), fill_value=0.0).to_numpy() + offsets
    np.testing.assert_allclose(got, expect)
    np.testing.assert_allclose(metrics.territory_totals(values[:, 0], assignment, 4), expect[:, 0] - offsets[:, 0])
