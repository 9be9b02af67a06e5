"""The optimizer's parts, each on its own: the objective (its move delta, the worst-measure penalty, the
guard band), the spanning-tree cuts, the contiguity checks, the chunk trees, the moves, the candidates'
order, the budget and the move explanations."""

from __future__ import annotations

import h3
import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import breadth_first_order, connected_components

from terrmap.geo.graph import articulation_points, h3_graph
from terrmap.optimize import MEASURES, Budget, Instance, MoveRecord, Optimizer
from terrmap.optimize.chunks import chunk_members, refresh_trees
from terrmap.optimize.constraints import stays_connected
from terrmap.optimize.explain import Balance, Compactness, Placed, Redraw, Swap, describe, render, swapped
from terrmap.optimize.moves import compact, kick, swap_step, tabu_step
from terrmap.optimize.objective import GUARD_WEIGHT, SECOND_SHARE, guarded
from terrmap.optimize.results import Candidate, order_candidates
from terrmap.optimize.search import refine
from terrmap.optimize.starts import line_split, metis_start, metis_weights, mix_start, subtree_sums, tree_split
from terrmap.optimize.state import SearchState
from tests.test_optimize import random_instance


def solved_state(seed: int = 3, k: int = 4, balance: str = "potential,leads", iterations: int = 100,
                 **kwargs) -> tuple[Optimizer, SearchState]:
    """A search state holding a contiguous plan the optimizer made."""
    inst = random_instance(seed, 7, 0.1)
    opt = Optimizer(inst, k, balance, 0.05, iterations=iterations, **kwargs)
    res = opt.solve()
    state = Optimizer(inst, k, balance, 0.05, iterations=iterations, **kwargs).search_state()
    state.set_labels(res.labels_)
    return opt, state


def territory_pieces(state: SearchState, members: np.ndarray) -> int:
    """Connected components of the subgraph ``members`` induce (scipy)."""
    if not len(members):
        return 0
    adj = state.g.adjacency[members][:, members]
    return connected_components(sp.csr_matrix(adj), directed=False)[0]


# -- the objective ------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), k=st.integers(2, 6), band_share=st.sampled_from([1.0, 0.5, 0.25, "guarded"]),
       balance=st.sampled_from(["potential", "potential,leads", "workload,customers", "potential,leads,customers"]),
       with_limits=st.booleans())
def test_objective_delta_equals_the_recomputed_objective(seed, k, band_share, balance, with_limits):
    inst = random_instance(seed, 5, 0.1)
    limits = {"customers": (1.0, float(inst.values["customers"].sum()) / k)} if with_limits else None
    opt = Optimizer(inst, k, balance, 0.05, limits=limits, iterations=10)
    obj = opt.objective()
    vals = inst.values[MEASURES].to_numpy(float)
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, k, inst.n)
    T = np.zeros((k, len(MEASURES)))
    np.add.at(T, lab, vals)
    band = guarded(obj.tau, obj.tau / 4) if band_share == "guarded" else obj.tau * band_share
    moves = [(int(r), int(lab[r]), int(b)) for r, b in zip(rng.integers(0, inst.n, 20), rng.integers(0, k, 20))
             if int(b) != int(lab[r])]
    if not moves:
        return
    r, a, b = (np.array(x) for x in zip(*moves))
    dB, dS = obj.deltas(T, vals[r], a, b, band)  # vectorised: all moves at once
    for j, (ri, ai, bi) in enumerate(moves):
        after = T.copy()
        after[ai] -= vals[ri]
        after[bi] += vals[ri]
        assert dB[j] == pytest.approx(obj.pen(after, band).sum() - obj.pen(T, band).sum(), abs=1e-9)
        assert dS[j] == pytest.approx(obj.soft(after, band).sum() - obj.soft(T, band).sum(), abs=1e-9)
        # One formula: the scalar case is the vectorised one with no leading dimension, to the last bit.
        assert obj.delta(T, vals[ri], ai, bi, band) == (float(dB[j]), float(dS[j]))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 6), weights=st.sampled_from([(1,), (1, 1, 1), (2, 1, 1)]))
def test_the_penalty_is_each_territorys_worst_measure_plus_a_share_of_the_others(seed, k, weights):
    measures = ["potential", "leads", "customers"][: len(weights)]
    inst = random_instance(seed, 4, 0.1)
    obj = Optimizer(inst, k, dict(zip(measures, weights)), 0.05, iterations=10).objective()
    rng = np.random.default_rng(seed)
    T = rng.uniform(0.5, 1.5, (k, len(MEASURES))) * inst.values[MEASURES].sum().to_numpy() / k
    # Written out per territory and measure, from the definition in terrmap.optimize.objective.
    expected = []
    for t in range(k):
        excess = []
        for m, w in zip(measures, weights):
            target = inst.values[m].sum() / k
            excess.append(w / max(weights) * max(0.0, abs(T[t, MEASURES.index(m)] / target - 1) - 0.05))
        expected.append(max(excess) + SECOND_SHARE * (sum(excess) - max(excess)))
    assert obj.pen(T) == pytest.approx(expected, abs=1e-12)
    # A guard band: excess over the tolerance weighs GUARD_WEIGHT times, plus the excess over the inner band.
    inner = obj.tau / 4
    assert obj.pen(T, guarded(obj.tau, inner)) == pytest.approx(
        GUARD_WEIGHT * np.asarray(expected) + obj.pen(T, inner), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 4, 9])
def test_tightening_with_a_guard_never_leaves_the_tolerance(seed):
    opt, state = solved_state(seed=seed, k=5, balance="potential,leads,customers", iterations=150)
    within = state.obj.pen(state.T).sum() <= 1e-12
    if not within:
        pytest.skip("the plan to tighten must start within tolerance")
    tight = state.tau / 8  # out of reach: the search keeps trying, and may trade any measure it can
    before = state.imbalance(tight)
    refine(state, guarded(state.tau, tight), budget=1.0, label="tightening", frac0=0, frac1=1)
    assert state.obj.pen(state.T).sum() <= 1e-12  # still within the tolerance on every measure
    assert state.imbalance(tight) <= before + 1e-12
    dev = np.abs(state.obj.dev(state.T)).max(axis=0)
    assert (dev <= state.tau + 1e-9).all(), dev


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 60), seed=st.integers(0, 10_000))
def test_subtree_sums_agree_with_networkx(n, seed):
    rng = np.random.default_rng(seed)
    tree = nx.random_labeled_tree(n, seed=seed) if hasattr(nx, "random_labeled_tree") else nx.random_tree(n, seed=seed)
    root = int(rng.integers(0, n))
    m = sp.csr_matrix(nx.to_scipy_sparse_array(tree, nodelist=range(n)))
    order, pred = breadth_first_order(m, root, directed=False, return_predecessors=True)
    load = rng.random((n, 3))
    sub = subtree_sums(order, pred, load)
    directed = nx.bfs_tree(tree, root)
    for v in range(n):
        members = [v, *nx.descendants(directed, v)]
        assert sub[v] == pytest.approx(load[members].sum(axis=0))


@pytest.mark.parametrize("seed", [1, 2, 3, 5, 8])
def test_a_tree_split_on_several_measures_is_two_connected_parts_no_worse_for_the_trades(seed):
    inst = random_instance(seed, 7, 0.1)
    opt = Optimizer(inst, 4, "potential,leads,customers", 0.05, iterations=10)
    state = opt.search_state()
    nodes = np.arange(inst.n)
    got = {}
    for trades in (False, True):  # the same spanning trees (the trades draw no random numbers)
        got[trades] = tree_split(state, nodes, 1, 3, None, np.random.default_rng(seed), tries=2,
                                 balance_cuts=trades)
    graph = nx.from_scipy_sparse_array(inst.graph.adjacency)
    for part_a, part_b, err in got.values():
        assert sorted(np.concatenate([part_a, part_b]).tolist()) == nodes.tolist()
        assert nx.is_connected(graph.subgraph(part_a.tolist())) and nx.is_connected(graph.subgraph(part_b.tolist()))
        vals = inst.values[["potential", "leads", "customers"]].to_numpy(float) + 1e-9 * state.mu
        share_a = vals[part_a].sum(axis=0) / vals.sum(axis=0)
        recount = max(np.abs(share_a / 0.25 - 1).max(), np.abs((1 - share_a) / 0.75 - 1).max())
        assert err == pytest.approx(recount, abs=1e-6)
    assert got[True][2] <= got[False][2] + 1e-12


def mixed_instance(seed: int, radius: int = 9) -> Instance:
    """A hexagon of H3 cells whose customers per unit of potential grow from 0.5 in the west to 1.5 in the
    east (as they vary by state on the demo data): potential alone balanced leaves customers far off."""
    rng = np.random.default_rng(seed)
    centre = h3.latlng_to_cell(float(rng.uniform(30, 45)), float(rng.uniform(-110, -80)), 6)
    g = h3_graph(sorted(h3.grid_disk(centre, radius)))
    potential = rng.lognormal(0, 0.5, g.n)
    lon = g.centroids[:, 1]
    ratio = 0.5 + (lon - lon.min()) / (lon.max() - lon.min())
    return Instance.from_arrays(g, {"potential": potential, "leads": potential * rng.uniform(0.9, 1.1, g.n),
                                    "customers": potential * ratio})


THREE = ["potential", "leads", "customers"]


def shares_off(inst: Instance, parts: list[np.ndarray], wanted: list[float]) -> float:
    """The worst relative gap between a part's share of a measure and its wanted share (recounted)."""
    vals = inst.values[THREE].to_numpy(float)
    share = np.array([vals[p].sum(axis=0) for p in parts]) / vals.sum(axis=0)
    return float(np.max(np.abs(share / np.asarray(wanted)[:, None] - 1)))


@pytest.mark.parametrize("seed", range(6))
def test_a_line_split_holds_each_measures_share_where_a_tree_cut_holds_one(seed):
    inst = mixed_instance(seed)
    state = Optimizer(inst, 2, THREE, 0.05, iterations=10).search_state()
    nodes = np.arange(inst.n)
    graph = nx.from_scipy_sparse_array(inst.graph.adjacency)
    for k1, k2 in ((1, 1), (1, 2)):
        part_a, part_b, err = line_split(state, nodes, k1, k2, np.random.default_rng(seed), good_enough=0.005)
        assert sorted(np.concatenate([part_a, part_b]).tolist()) == nodes.tolist()
        assert nx.is_connected(graph.subgraph(part_a.tolist())) and nx.is_connected(graph.subgraph(part_b.tolist()))
        wanted = [k1 / (k1 + k2), k2 / (k1 + k2)]
        assert err == pytest.approx(shares_off(inst, [part_a, part_b], wanted), abs=1e-6)  # of the smaller share
        assert err <= 0.02, (k1, k2, err)
    # A spanning-tree cut without trades matches the shares of one measure, not of all three.
    tree_a, tree_b, _ = tree_split(state, nodes, 1, 1, None, np.random.default_rng(seed), balance_cuts=False)
    assert shares_off(inst, [tree_a, tree_b], [0.5, 0.5]) > shares_off(inst, list(line_split(
        state, nodes, 1, 1, np.random.default_rng(seed), good_enough=0.005)[:2]), [0.5, 0.5])


@pytest.mark.parametrize("seed", range(8))
def test_the_mix_start_is_within_tolerance_on_every_measure_where_metis_is_not(seed):
    k = 4
    inst = mixed_instance(seed)
    state = Optimizer(inst, k, THREE, 0.05, iterations=10).search_state()
    labels = mix_start(state, None, np.random.default_rng(seed))
    graph = nx.from_scipy_sparse_array(inst.graph.adjacency)
    parts = [np.flatnonzero(labels == t) for t in range(k)]
    assert all(len(p) and nx.is_connected(graph.subgraph(p.tolist())) for p in parts)
    assert shares_off(inst, parts, [1 / k] * k) <= 0.05
    # METIS balances the measures' sum: customers, whose ratio to potential varies from west to east, stay off.
    metis = metis_start(state, seed=seed)
    assert shares_off(inst, [np.flatnonzero(metis == t) for t in range(k)], [1 / k] * k) > 0.05


def test_metis_weighs_each_region_by_its_own_measures():
    inst = mixed_instance(0)
    state = Optimizer(inst, 3, {"potential": 2, "customers": 1}, 0.05, iterations=10).search_state()
    vals = inst.values[["potential", "customers"]].to_numpy(float)
    expected = (vals / vals.sum(axis=0)) @ np.array([2 / 3, 1 / 3]) * 1e7
    assert np.abs(metis_weights(state) - expected).max() <= 1.0


def test_without_a_candidate_in_tolerance_the_closest_to_it_comes_first():
    def cand(name, by_measure, tol=0.05, pieces=0):
        excess = max(0.0, max(by_measure.values()) - tol)
        return Candidate(name, "", np.zeros(1, dtype=np.int64), {
            "within_tolerance": excess == 0, "non_contiguous": pieces, "max_deviation": max(by_measure.values()),
            "max_deviation_by_measure": by_measure, "tolerance_excess": excess, "mean_polsby_popper": 0.3,
            "cut_edge_share": 0.1})
    # The first measure alone would pick "balanced" (1.3% on potential); its customers are 8% off.
    balanced = cand("balanced", {"potential": 0.013, "customers": 0.08})
    compact = cand("compact", {"potential": 0.049, "customers": 0.052})
    split = cand("split", {"potential": 0.01, "customers": 0.01}, pieces=1)
    assert [c.name for c in order_candidates([balanced, compact, split])] == ["compact", "balanced", "split"]


def test_moves_keep_the_tallies_equal_to_a_recount():
    _, state = solved_state()
    rng = np.random.default_rng(0)
    for _ in range(50):
        r = int(rng.integers(0, state.n))
        state.move(r, int(rng.integers(0, state.k)), "balance")
    T, count = state.T.copy(), state.count.copy()
    state._retally()
    assert np.allclose(T, state.T) and (count == state.count).all()


# -- contiguity -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 3, 7])
def test_stays_connected_agrees_with_a_component_count(seed):
    _, state = solved_state(seed)
    for r in range(state.n):
        a = int(state.lab[r])
        rest = np.flatnonzero((state.lab == a) & (np.arange(state.n) != r))
        if not len(rest):
            continue
        assert stays_connected(state, r, a, limit=10**9) == (territory_pieces(state, rest) == 1), r


@pytest.mark.parametrize("seed", [1, 3, 7])
def test_chunks_hold_exactly_what_an_articulation_point_cuts_off(seed):
    _, state = solved_state(seed)
    refresh_trees(state)
    for t in range(state.k):
        members = np.flatnonzero(state.lab == t)
        cut = articulation_points(state.g.adjacency, members)
        sub = nx.Graph(state.g.adjacency[members][:, members])
        assert cut == {int(members[i]) for i in nx.articulation_points(sub)}
        anchor = int(state.anchor[t])
        for r in members.tolist():
            if r == anchor:
                continue
            chunk = chunk_members(state, r, t)
            assert (len(chunk) > 1) == (r in cut), r
            assert anchor not in chunk
            rest = np.setdiff1d(members, chunk)
            assert territory_pieces(state, rest) == 1  # moving the chunk keeps the territory in one piece


# -- the moves, each alone --------------------------------------------------------------------------------


def _border_scored(state, band):
    r, a, b = state.border_pairs()
    dB, dS = state.obj.deltas(state.T, state.vals[r], a, b, band)
    viol = state.obj.pen(state.T, band) > 1e-12
    return r, a, b, dB, dS, viol


@pytest.mark.parametrize("step", ["swap", "tabu", "kick", "compact", "refine"])
def test_each_move_keeps_territories_whole_and_tallies_right(step):
    inst = random_instance(5, 7, 0.1)
    ids = inst.region_ids
    opt = Optimizer(inst, 4, "potential", 0.02, locks={ids[0]: 0, ids[-1]: 1}, iterations=100)
    state = opt.search_state()
    lab = Optimizer(inst, 4, "potential", 0.02, locks={ids[0]: 0, ids[-1]: 1}, iterations=20).solve().labels_
    state.set_labels(lab)
    band = state.tau / 4  # tight: there is something to do
    rng = np.random.default_rng(0)
    if step == "swap":
        r, a, b, dB, dS, viol = _border_scored(state, band)
        swap_step(state, r, a, b, viol, band, it=1)
    elif step == "tabu":
        refresh_trees(state)
        r, a, b, dB, dS, viol = _border_scored(state, band)
        tabu_step(state, r, a, b, dB, dS, viol, band, it=1, tenure=8)
    elif step == "kick":
        kick(state, band, budget=1.0, rng=rng,
             rebalance=lambda band, budget, hold: refine(state, band, budget, "escaping", 0, 1, hold=hold))
    elif step == "compact":
        compact(state, state.tau, budget=1.0)
    else:
        before = state.score(band)
        refine(state, band, budget=1.0, label="test", frac0=0, frac1=1)
        assert state.score(band) <= before
    for t in range(state.k):
        assert territory_pieces(state, np.flatnonzero(state.lab == t)) == 1
    assert state.lab[0] == 0 and state.lab[-1] == 1
    T = state.T.copy()
    state._retally()
    assert np.allclose(T, state.T)


# -- the budget -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 7, 250])
def test_an_iteration_budget_stops_after_n_iterations(n):
    budget = Budget(iterations=n)
    done = 0
    while not budget.exhausted():
        budget.tick()
        done += 1
    assert done == n


def test_a_budget_is_seconds_or_iterations():
    with pytest.raises(ValueError):
        Budget()
    with pytest.raises(ValueError):
        Budget(seconds=1, iterations=10)
    assert not Budget(seconds=5).by_iterations and Budget(seconds=5).deadline == pytest.approx(5 * 0.93)


@pytest.mark.parametrize("n", [5, 40, 200])
def test_the_search_spends_at_most_its_iterations_and_repeats_itself(n):
    inst = random_instance(9, 8, 0.1)
    runs = []
    for _ in range(2):
        opt = Optimizer(inst, 5, "potential", 0.002, iterations=n)  # unreachable: the budget ends the search
        res = opt.solve()
        assert 0 < opt.budget.ticks <= n
        runs.append(res)
    for x, y in zip(runs[0].candidates, runs[1].candidates):
        assert x.name == y.name and np.array_equal(x.labels_, y.labels_)
        assert [m.detail for m in x.moves] == [m.detail for m in y.moves]


# -- explanations -------------------------------------------------------------------------------------------


def test_move_reasons_render_to_the_explanation_texts():
    bal = Balance("potential", 0.05, 0.081, 0.049, -0.062, -0.03, 0.0123)
    assert render(bal) == ("balance (potential, tolerance ±5%): {src} +8.1% → +4.9%, {dst} -6.2% → -3.0%; "
                           "imbalance reduced by 0.0123")
    group = Balance("open_leads", 0.05, 0.1, 0.09, 0.0, 0.01, 0.0, group_size=3)
    assert render(group) == ("balance chain (open leads): {src} +10.0% → +9.0%, {dst} +0.0% → +1.0%, making room "
                             "next to an out-of-tolerance territory (a group of 3 regions, moved together to keep "
                             "{src} in one piece)")
    escape = Balance("leads", 0.05, 0.01, -0.02, 0.0, 0.03, -0.5)
    assert render(escape) == ("balance (escape step, leads): {src} +1.0% → -2.0%, {dst} +0.0% → +3.0%; briefly "
                              "worse to get out of a stall")
    swap = Swap("75001", "potential", 0.07, 0.04, -0.01, 0.02)
    text = "balance by exchange with region 75001 (potential): {src} +7.0% → +4.0%, {dst} -1.0% → +2.0%"
    assert render(swap) == text
    assert render(swapped(swap)) == text.replace("{src}", "@").replace("{dst}", "{src}").replace("@", "{dst}")
    redraw = Redraw("workload", (("North", 0.1, 0.02), ("South", -0.1, -0.02)))
    assert render(redraw) == ("balance by redrawing the borders of 2 neighbouring territories (workload): "
                              "North +10.0% → +2.0%, South -10.0% → -2.0%")
    assert render(Compactness(12.345, 0.0125)) == ("compactness: the {src}/{dst} border gets 12.3 km shorter "
                                                   "(balance stays within ±1.2%)")
    assert render(Placed("fixed")) == "locked/seed region put in its territory"
    assert render(None) == ""
    assert describe(MoveRecord(0, 1, 2, "balance", bal), "A", "B").startswith("balance (potential, tolerance ±5%): A")
    assert describe(MoveRecord(0, -1, 2, "contiguity"), "Unassigned", "B") == (
        "contiguity: part of a detached piece of Unassigned; joined neighbouring B")
    assert describe(MoveRecord(0, -1, 2, "unassigned", Placed("unassigned")), "Unassigned", "B") == "was unassigned"
    assert describe(MoveRecord(0, -1, 2, "unassigned"), "Unassigned", "B") == "was unassigned; joined neighbouring B"


def test_a_searchs_moves_are_records_rendered_later():
    inst = random_instance(4, 7, 0.1)
    res = Optimizer(inst, 4, "potential", 0.01, iterations=200).solve()
    moves = [m for c in res.candidates for m in c.moves]
    assert moves and all(isinstance(m.reason, (Balance, Swap, Redraw, Compactness, Placed, type(None))) for m in moves)
    assert all("{src}" in m.detail or "{dst}" in m.detail or not m.detail or m.phase != "balance" for m in moves)
