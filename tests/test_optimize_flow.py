"""The border programme for several measures (terrmap.optimize.flow): its moves keep every territory in one piece
and the tallies right, its rounding lowers the imbalance the programme saw, and a search that needs it reaches
the tolerance on three measures where the same search without it does not."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from terrmap.optimize import Optimizer
from terrmap.optimize.flow import apply_moves, round_moves, solve_moves
from terrmap.optimize.repair import repair
from terrmap.optimize.starts import metis_start
from terrmap.optimize.state import SearchState
from tests.test_optimize_parts import THREE, mixed_instance


def metis_state(seed: int, k: int = 6, tol: float = 0.03) -> SearchState:
    """A search state on the west-to-east mixed hexagon, holding METIS's (repaired) plan: customers far off."""
    state = Optimizer(mixed_instance(seed), k, THREE, tol, iterations=100).search_state()
    state.set_labels(metis_start(state, seed=seed))
    repair(state)
    return state


@pytest.mark.parametrize("seed", range(4))
def test_the_programmes_moves_keep_territories_whole_and_lower_the_imbalance_they_aim_at(seed):
    state = metis_state(seed)
    before = state.imbalance()
    var_r, var_b, var_par, var_d, x = solve_moves(state, state.tau)
    assert np.all((x >= -1e-9) & (x <= 1 + 1e-9))
    sel = round_moves(state, var_r, var_b, var_par, var_d, x, state.tau)
    assert len(np.unique(var_r[sel])) == len(sel)  # a region moves once
    # The rounded moves, all applied, lower the imbalance (the programme's aim; applying them one at a time
    # may skip some, which the refinement after it mends).
    T = state.T.copy()
    np.add.at(T, state.lab[var_r[sel]], -state.vals[var_r[sel]])
    np.add.at(T, var_b[sel], state.vals[var_r[sel]])
    assert float(state.obj.pen(T).sum()) < before
    moved = apply_moves(state, var_r, var_b, var_d, sel, state.tau)
    assert moved > 0
    graph = nx.from_scipy_sparse_array(state.g.adjacency)
    for t in range(state.k):
        members = np.flatnonzero(state.lab == t)
        assert len(members) and nx.is_connected(graph.subgraph(members.tolist()))
    recount = np.zeros_like(state.T)
    np.add.at(recount, state.lab, state.vals)
    assert np.allclose(state.T, recount)
    assert np.array_equal(np.bincount(state.lab, minlength=state.k), state.count)


def solve_three(lp: bool, seed: int = 1) -> tuple:
    """Three measures within 3% on the mixed hexagon (K=6), 400 iterations, with or without the programme; the
    mix-balanced start off, so that the search starts from METIS (customers 10-20% off) and must move the mix."""
    old = SearchState.mix_start, SearchState.lp_balance
    SearchState.mix_start, SearchState.lp_balance = False, lp
    try:
        return Optimizer(mixed_instance(seed), 6, THREE, 0.03, iterations=400, random_state=seed).solve()
    finally:
        SearchState.mix_start, SearchState.lp_balance = old


def test_three_measures_reach_the_tolerance_with_the_programme_where_border_moves_alone_do_not():
    with_lp = solve_three(True)
    best = with_lp.candidates[0].scores
    assert best["within_tolerance"] and best["max_deviation"] <= 0.03 + 1e-9
    assert best["contiguous"] == 6
    assert not solve_three(False).candidates[0].scores["within_tolerance"]
    again = solve_three(True)  # deterministic under an iteration budget (HiGHS included)
    assert np.array_equal(again.labels_, with_lp.labels_)
