"""Contiguity means one piece on the map: bridges are known, listed with their distance, and a territory
that is one piece only thanks to them is "in N pieces by water" (never silently contiguous), the same
verdict in the live plan, the optimizer's scores and the scenario comparison."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h3
import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terrmap.data.area import area_regions
from terrmap.data.store import Store
from terrmap.geo import parse_layer
from terrmap.geo.distance import haversine_km
from terrmap.geo.graph import bridge_table, h3_graph
from terrmap.optimize import Optimizer
from terrmap.optimize.explain import water_line
from terrmap.optimize.instance import Instance
from terrmap.plan import UNASSIGNED, Plan, metrics


@pytest.fixture(scope="module")
def islands():
    """Real H3 cells: a disk around Denver and two small disks apart from it (islands to bridge)."""
    a = h3.grid_disk(h3.latlng_to_cell(39.74, -104.99, 6), 4)
    b = h3.grid_disk(h3.latlng_to_cell(40.5, -103.0, 6), 1)
    c = h3.grid_disk(h3.latlng_to_cell(38.6, -103.5, 6), 1)
    return h3_graph(sorted(set(a) | set(b) | set(c)))


def raw_h3_adjacency(cell_ids: list[str]) -> nx.Graph:
    """Grid neighbours straight from h3 (no bridges): the independent reference."""
    g = nx.Graph()
    g.add_nodes_from(range(len(cell_ids)))
    index = {c: i for i, c in enumerate(cell_ids)}
    for i, c in enumerate(cell_ids):
        for d in h3.grid_ring(c, 1):
            j = index.get(d)
            if j is not None:
                g.add_edge(i, j)
    return g


def nx_pieces(graph: nx.Graph, assignment: np.ndarray, t: int) -> int:
    return nx.number_connected_components(graph.subgraph(np.flatnonzero(assignment == t).tolist()))


def test_the_graph_knows_its_bridges_and_their_distance(islands):
    raw = raw_h3_adjacency(islands.region_ids)
    land = {tuple(sorted(e)) for e in raw.edges}
    assert {tuple(e) for e in islands.edges[~islands.is_bridge].tolist()} == land
    assert not {tuple(e) for e in islands.edges[islands.is_bridge].tolist()} & land
    assert nx.number_connected_components(raw) == 3 and len(islands.bridges) >= 2
    assert (islands.land_adjacency != nx.to_scipy_sparse_array(raw, nodelist=range(islands.n))).nnz == 0
    table = bridge_table(islands)
    assert len(table) == len(islands.bridges) and table["km"].is_monotonic_increasing
    c = dict(zip(islands.region_ids, islands.centroids.tolist()))
    for r in table.itertuples():
        (la, oa), (lb, ob) = c[r.region_a], c[r.region_b]
        assert r.km == pytest.approx(float(haversine_km(la, oa, lb, ob)), rel=1e-9)
        assert r.km > 30  # the islands lie tens of km off the main disk


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 6), unassigned=st.floats(0, 0.3))
def test_pieces_match_networkx_on_the_raw_adjacency(islands, seed, k, unassigned):
    rng = np.random.default_rng(seed)
    # Blobs around random centres (pieces of every size), some regions unassigned.
    centres = rng.choice(islands.n, size=k, replace=False) if k <= islands.n else np.arange(islands.n)
    d = np.linalg.norm(islands.centroids[:, None, :] - islands.centroids[centres][None, :, :], axis=2)
    assignment = np.argmin(d + rng.uniform(0, 0.3, d.shape), axis=1).astype(np.int64)
    assignment[rng.random(islands.n) < unassigned] = UNASSIGNED
    raw = raw_h3_adjacency(islands.region_ids)
    full = nx.Graph(islands.edges.tolist())
    full.add_nodes_from(range(islands.n))
    got = metrics.territory_pieces(islands.adjacency, islands.land_adjacency, assignment, np.arange(k))
    for t in range(k):
        land, joined = nx_pieces(raw, assignment, t), nx_pieces(full, assignment, t)
        assert got[t] == metrics.Pieces(land, joined)
        assert got[t].contiguous == (joined == 1)
        assert got[t].by_water == (land if joined == 1 and land > 1 else 0)
    plan = Plan(islands, np.ones((islands.n, 1)), ["potential"], assignment, k)
    s = plan.summary("potential")
    assert s["non_contiguous"] == sum(p.joined > 1 for p in got.values())
    assert s["water_pieces"] == {t: p.land for t, p in got.items() if p.joined == 1 and p.land > 1}
    assert s["in_pieces_by_water"] == len(s["water_pieces"])


@settings(max_examples=30, deadline=None)
@given(ops=st.lists(st.tuples(st.lists(st.integers(0, 10_000), min_size=1, max_size=20), st.integers(-1, 3)),
                    min_size=1, max_size=20))
def test_incremental_pieces_equal_a_fresh_recount(islands, ops):
    plan = Plan(islands, np.ones((islands.n, 1)), ["potential"], np.zeros(islands.n, dtype=np.int64), 4)
    for regions, to in ops:
        plan.flip([r % islands.n for r in regions], to)
    fresh = Plan(islands, plan.values, plan.measures, plan.assignment, plan.k)
    assert plan.pieces() == fresh.pieces()
    np.testing.assert_array_equal(plan.land_pieces(), fresh.land_pieces())
    keys = ("non_contiguous", "in_pieces_by_water", "water_pieces")
    assert {k: plan.summary("potential")[k] for k in keys} == {k: fresh.summary("potential")[k] for k in keys}


# -- a real case: Michigan's complete ZIP layer (the Upper Peninsula, Mackinac and Beaver islands) --------


@pytest.fixture(scope="module")
def michigan(demo_db_path, tmp_path_factory):
    path = tmp_path_factory.mktemp("water") / "demo.duckdb"
    shutil.copy(demo_db_path, path)
    store = Store(path)
    layer = parse_layer("zip")
    ids = area_regions(store, layer, ["MI"])["region_id"].tolist()
    graph = layer.graph(store, ids)
    raw_rows = store.zip_tables.shape_edges_among(store, ids)  # shared borders as stored, no bridges
    yield graph, raw_rows
    store.close()


def _raw_graph(graph, rows) -> nx.Graph:
    g = nx.Graph()
    g.add_nodes_from(range(graph.n))
    g.add_edges_from((graph.index[a], graph.index[b]) for a, b, _ in rows)
    return g


def _block(raw: nx.Graph, graph, zip_code: str, radius: int) -> set[int]:
    return set(nx.single_source_shortest_path_length(raw, graph.index[zip_code], cutoff=radius))


def test_michigan_whole_is_one_piece_by_water(michigan):
    graph, rows = michigan
    raw = _raw_graph(graph, rows)
    n_land = nx.number_connected_components(raw)
    assert graph.bridges and n_land > 1
    up, lp = graph.index["49855"], graph.index["48201"]  # Marquette (Upper Peninsula), Detroit
    assert not nx.has_path(raw, up, lp)
    plan = Plan(graph, np.ones((graph.n, 1)), ["potential"], np.zeros(graph.n, dtype=np.int64), 1)
    assert plan.pieces()[0] == metrics.Pieces(n_land, 1)
    s = plan.summary("potential")
    assert s["non_contiguous"] == 0 and s["in_pieces_by_water"] == 1 and s["water_pieces"] == {0: n_land}
    report = plan.water_report(["Michigan"])
    shortest = bridge_table(graph).iloc[0]
    row = report.iloc[0]
    assert (row.territory, row.pieces, row.km) == ("Michigan", n_land, pytest.approx(shortest.km))
    assert {row.region_a, row.region_b} == {shortest.region_a, shortest.region_b}
    assert row.km < 30  # Mackinaw City to Mackinac Island, about 16 km
    assert water_line(report) == (f"In pieces by water: Michigan ({n_land}: {row.region_a} ↔ {row.region_b} "
                                  f"across water, {row.km:,.0f} km)")


def test_two_far_apart_lower_peninsula_blocks_are_not_contiguous(michigan):
    graph, rows = michigan
    raw = _raw_graph(graph, rows)
    detroit, grand_rapids = _block(raw, graph, "48201", 2), _block(raw, graph, "49503", 2)
    assert not detroit & grand_rapids and nx.has_path(raw, graph.index["48201"], graph.index["49503"])
    assignment = np.ones(graph.n, dtype=np.int64)
    assignment[sorted(detroit | grand_rapids)] = 0
    plan = Plan(graph, np.ones((graph.n, 1)), ["potential"], assignment, 2)
    p = plan.pieces()[0]
    assert p == metrics.Pieces(2, 2) and not p.contiguous and p.by_water == 0
    assert plan.summary("potential")["non_contiguous"] >= 1
    assert "Territory 0" not in water_line(plan.water_report(["Territory 0", "Territory 1"]))


def test_the_optimizer_scores_give_the_plans_verdict(michigan):
    """The optimizer keeps territories whole across water (bridges allowed) and its scores say which are in
    pieces by water, as the live plan counts them."""
    graph, _ = michigan
    rng = np.random.default_rng(5)
    inst = Instance.from_arrays(graph, {"potential": rng.gamma(2.0, 1000.0, graph.n),
                                        "leads": rng.integers(0, 20, graph.n)}, layer_key="zip")
    res = Optimizer(inst, 4, "potential", 0.10, iterations=30, random_state=1).solve()
    for cand in res.candidates:
        plan = Plan(graph, np.ones((graph.n, 1)), ["potential"], cand.labels_, 4)
        s = plan.summary("potential")
        assert cand.scores["non_contiguous"] == s["non_contiguous"] == 0  # water is the only excuse
        assert cand.scores["contiguous"] == 4
        assert cand.scores["in_pieces_by_water"] == s["in_pieces_by_water"]
        report = res.water_report(cand.name)
        assert report["pieces"].tolist() == list(s["water_pieces"].values())
        assert report["territory_index"].tolist() == list(s["water_pieces"])
    summary = json.loads(json.dumps(res.summary(), default=float))  # as `optimize` prints it
    assert summary["water_pieces"] == res.water_report().drop(columns="territory_index").to_dict("records")
    assert sum(c.scores["in_pieces_by_water"] for c in res.candidates) >= 1  # the UP and the islands go somewhere


def test_every_page_explains_a_plan_metric_with_the_same_words():
    """One text per number: the editor's tiles and the scenario comparison take their tooltips from
    terrmap.plan.metrics.METRIC_HELP (the optimizer's table too: pages/optimizer.py)."""
    from terrmap.app.editor_panel import KPIS
    from terrmap.plan.metrics import METRIC_HELP
    from terrmap.plan.scenarios import PLAN_METRICS

    for key, _label, _fmt, _delta, _lower, help_text in KPIS:
        assert help_text.startswith(METRIC_HELP[key])
    for key, (_label, _better, help_text) in PLAN_METRICS.items():
        if key in METRIC_HELP:
            assert help_text == METRIC_HELP[key]
    optimizer_page = (Path(__file__).parent.parent / "pages" / "optimizer.py").read_text()
    for key in ("mean_polsby_popper", "cut_edge_share", "in_pieces_by_water", "max_abs_deviation"):
        assert f'METRIC_HELP["{key}"]' in optimizer_page
    assert "0.2-0.5" in METRIC_HELP["mean_polsby_popper"]  # what an ordinary plan scores, on hover
