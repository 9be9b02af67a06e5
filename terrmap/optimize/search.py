"""The search: balance refinement (local search on border moves, with swap, recombination and tabu
escapes), restarts and kicks from scratch, and the candidate plans along the trade-offs.

It runs on a :class:`~terrmap.optimize.budget.Budget` (seconds or iterations); the shares of the budget
given to each phase are named in :class:`~terrmap.optimize.budget.Phases`.
"""

from __future__ import annotations

import time

import numpy as np

from terrmap.optimize.budget import Budget
from terrmap.optimize.chunks import refresh_trees
from terrmap.optimize.flow import lp_round
from terrmap.optimize.instance import MEASURES, InfeasibleError
from terrmap.optimize.moves import apply_greedy, compact, kick, swap_step, tabu_step
from terrmap.optimize.objective import guarded
from terrmap.optimize.recombine import recombine_step
from terrmap.optimize.repair import grow, repair
from terrmap.optimize.results import Candidate, order_candidates, plan_scores
from terrmap.optimize.starts import scratch_start
from terrmap.optimize.state import SearchState

__all__ = ["Budget", "refine", "run_rebalance", "run_scratch"]

# Rounds of the linear programme after a start's refinement (each kept only if it improves the plan).
LP_ROUNDS = 6


def refine(s: SearchState, band: np.ndarray, budget: float, label: str, frac0: float, frac1: float,
           max_rounds: int = 10_000, tenure: int = 8, max_stall: int = 25, hold=None) -> None:
    """Local search on border moves until B (with ``band``) is 0, the budget or stalls run out; keeps the best.
    Regions in ``hold`` stay where they are in this call (a kick's chunk: the search must not just undo it).
    One round is one iteration of the budget."""
    clock = s.budget
    pen = s.obj.pen
    t_end = min(clock.deadline, clock.now() + budget)
    best = s.score(band)
    best_snap = s.snapshot()
    B0 = max(best[0], 1e-12)
    stall = since_best = 0
    s.tabu_until[:] = 0  # round numbers restart with every call
    if hold is not None:
        s.tabu_until[hold] = max_rounds + 1
    rebalance = s.base is not None
    rng = np.random.default_rng(s.random_state + 1)
    i_pot, i_cus = MEASURES.index("potential"), MEASURES.index("customers")
    for it in range(1, max_rounds + 1):
        if best[0] <= 1e-12 or clock.now() >= t_end or s.stop():
            break
        clock.tick()
        cur = s.imbalance(band)
        s.progress(frac0 + (frac1 - frac0) * min(1.0, max(0.0, 1 - cur / B0)), f"{label}: imbalance {cur:.4f}")
        # Only territories out of band and their neighbours (two steps) take part: moves elsewhere cannot
        # lower B, and their chunk trees need not be rebuilt.
        viol = pen(s.T, band) > 1e-12
        adj = s.territory_adjacency()
        near = viol | adj[viol].any(axis=0)
        near = near | adj[near].any(axis=0)
        # Chunk trees (what moves along with a region) are kept for the out-of-band territories only;
        # elsewhere a move is a single region, checked for contiguity when it is applied.
        refresh_trees(s, viol)
        s.tree_terr = viol.copy()
        r, a, b = s.border_pairs()
        keep = near[a]
        r, a, b = r[keep], a[keep], b[keep]
        use_tree = viol[a]
        movable = np.where(use_tree, s.chunk_ok[r] & (s.chunk_size[r] < s.count[a]), s.count[a] > 1)
        r, a, b, use_tree = r[movable], a[movable], b[movable], use_tree[movable]
        if not len(r):
            break
        V = np.where(use_tree[:, None], s.chunk_val[r], s.vals[r])
        dB, dS = s.obj.deltas(s.T, V, a, b, band)
        good = (dB < -1e-12) | ((np.abs(dB) <= 1e-12) & (dS < -1e-15) & (near[a] | near[b]))
        applied = 0
        if good.any():
            idx = np.flatnonzero(good)
            if rebalance:
                dd = s.disruption_delta(r[idx], a[idx], b[idx]).sum(axis=1)
                big = s.chunk_size[r[idx]] > 1  # chunks: cost bounded by their whole weight
                dd = np.where(big, (s.chunk_val[r[idx]][:, [i_pot, i_cus]]
                                    / np.maximum(s.dis_total, 1e-300)).sum(axis=1), dd)
                cost = np.maximum(dd, 0) + 1e-6
                key1 = np.where(dB[idx] < -1e-12, dB[idx] / cost, 0.0)
                key2 = np.where(dB[idx] < -1e-12, 0.0, dS[idx] / cost)
                order = idx[np.lexsort((key2, key1))]
            else:
                order = idx[np.lexsort((dS[idx], np.round(dB[idx], 12)))]
            applied = apply_greedy(s, order, r, a, b, dB, dS, band, it)
        if applied:
            stall = 0
        elif swap_step(s, r, a, b, viol, band, it):
            stall += 1
        elif recombine_step(s, adj, viol, band, rng, it):
            stall += 1
        else:
            stall += 1
            if stall > max_stall or not tabu_step(s, r, a, b, dB, dS, viol, band, it, tenure):
                break
        now = s.score(band)
        if now < best:
            best = now
            best_snap = s.snapshot()
            since_best = 0
        else:
            since_best += 1
            if since_best > max_stall:
                break
    if s.score(band) > best:
        s.restore(best_snap)


def uses_lp(s: SearchState) -> bool:
    """Whether the search runs the border programme: several balanced measures, no hard limits, no base plan
    (the programme knows neither)."""
    return len(s.bal_idx) > 1 and s.lp_balance and not len(s.lim_idx) and s.base is None


def lp_rounds(s: SearchState, until: float, total: float) -> None:
    """Several balanced measures still out of band: rounds of the linear programme over the border regions, each
    followed by refinement (:func:`terrmap.optimize.flow.lp_round`), while they improve the plan and time is left
    before ``until`` (see :func:`uses_lp`)."""
    if not uses_lp(s):
        return
    clock = s.budget

    def settle(band, budget):
        refine(s, band, budget, label="balancing", frac0=0.15, frac1=0.5)

    for _ in range(LP_ROUNDS):
        left = until - clock.now()
        if s.imbalance() <= 1e-12 or left < min(0.5, 0.05 * total) or s.stop():
            break
        if not lp_round(s, s.tau, budget=min(left, max(1.0, s.budget.phases.lp_round * total)), refine=settle):
            break


def candidate(s: SearchState, name: str, description: str, t_start: float) -> Candidate:
    """The live plan as a candidate, scored (``seconds``: wall clock since ``t_start``)."""
    return Candidate(name, description, s.lab.copy(), plan_scores(s, time.perf_counter() - t_start), list(s.moves))


def run_scratch(s: SearchState, seeds: list[int | None], notes: list[str], compactness: bool = True) -> list[Candidate]:
    """From scratch: starts, refinement, kicks and restarts within the budget; then the candidates."""
    s.seed_regions = seeds
    t_start = time.perf_counter()
    clock, phases = s.budget, s.budget.phases
    rng = np.random.default_rng(s.random_state)
    total = max(s.time_left(), 0.05)
    balance_until = clock.now() + phases.balance * total
    # Out of tolerance at that point: balancing matters more than compactness, so starts go on until here.
    extended_until = clock.now() + phases.extended * total
    best = None
    attempt = 0
    metis_dev = float("nan")
    polished = None  # the best plan last polished (each new best is polished once)

    def escape(band, budget, hold):  # a kick's re-balancing
        refine(s, band, budget, "escaping", 0.45, 0.5, hold=hold)

    while True:
        # After two starts, go back once to each new best plan that is nearly in band (imbalance under
        # one tolerance's worth): more kicks and a longer refinement there pay better than a fresh start.
        near = best is not None and best[0][0] < 1e-12 + float(np.max(s.obj.wn * s.tau)) and attempt >= 2
        if near and polished is not best:
            polished = best
            s.restore(best[1])
            name, dev0 = best[2], best[3]
            s.progress(0.3, "escaping the best plan's local optimum")
            refine(s, s.tau, budget=max(min(balance_until - clock.now(), phases.polish * total), 0.05),
                   label="escaping", frac0=0.3, frac1=0.5)
            kicks = 4
        else:
            s.progress(0.05, "METIS start" if attempt == 0 else f"restart {attempt + 1}")
            name, dev0, start_metis_dev = scratch_start(s, attempt, rng)
            if attempt == 0:
                metis_dev = start_metis_dev
            s.moves = []  # a new plan: nothing to explain
            s.progress(0.15, f"{name} start: max deviation {dev0:.1%}; refining")
            left = balance_until - clock.now()
            # With the border programme to follow, a shorter first refinement (the programme moves the load
            # further, and faster, than border moves can).
            share = phases.lp_round if uses_lp(s) else phases.start_refine
            refine(s, s.tau, budget=max(min(left, max(1.0, share * total)), 0.05), label="balancing",
                   frac0=0.15, frac1=0.5)
            # Out of band, balancing comes first: the programme's rounds may go on until the extended phase ends.
            lp_rounds(s, extended_until, total)
            kicks = s.n_kicks
        # Stuck just out of band: kick the worst territory out of its local optimum a few times.
        for _ in range(kicks):
            if s.imbalance() <= 1e-12 or clock.now() > balance_until - 0.3 or s.stop():
                break
            kick(s, s.tau, budget=min(1.2, balance_until - clock.now()), rng=rng, rebalance=escape)
        score = s.score(s.tau)
        if best is None or score < best[0]:
            best = (score, s.snapshot(), name, dev0, best[4] if best is not None and polished is best else attempt)
        attempt += 1
        if best[0][0] <= 1e-12 or s.stop() or attempt >= 50:
            break
        if clock.now() > balance_until - 0.05:
            if balance_until >= extended_until or extended_until - clock.now() < 0.1 * total:
                break
            balance_until = extended_until
    s.restore(best[1])
    _, _, start_name, start_dev, best_attempt = best
    tight = s.tau / 4
    # Guarded: tightening never takes a territory out of the tolerance (with several measures it would
    # otherwise trade one measure's tolerance for the others' tighter band).
    refine(s, guarded(s.tau, tight), budget=max(s.time_left(), 0) * phases.tighten, label="tightening", frac0=0.5,
           frac1=0.65)
    start = s.snapshot()
    cands = []
    specs = [("balanced", "tightest balance (band ±tol/4), then compactness within it", tight),
             ("middle", "balance band ±tol/2, compactness within it", s.tau / 2),
             ("compact", "most compact within the full tolerance", s.tau)]
    for i, (cname, desc, band) in enumerate(specs):
        s.restore(start)
        if compactness and not s.cancelled:
            s.progress(0.65 + 0.1 * i, f"compactness pass: {cname}")
            compact(s, band, budget=max(s.time_left(), 0) / (len(specs) - i))
        cands.append(candidate(s, cname, desc, t_start))
    notes.append(f"METIS start: max deviation {metis_dev:.2%} (pymetis, contiguous parts, {s.k} territories)")
    if start_name != "METIS" or best_attempt:
        notes.append(f"best of {attempt} start(s): {start_name} (seed {s.random_state + best_attempt}), "
                     f"max deviation {start_dev:.2%} before refinement")
    return order_candidates(cands)


def run_rebalance(s: SearchState, notes: list[str], compactness: bool = True) -> list[Candidate]:
    """Rebalance: the base plan repaired, then the least change, a tighter balance, and compactness."""
    s.seed_regions = []
    t_start = time.perf_counter()
    share_step = s.budget.phases.rebalance_step
    base = s.base.copy()
    lab = base.copy()
    lab[s.fixed >= 0] = s.fixed[s.fixed >= 0]
    s.set_labels(lab)
    unassigned = int(np.sum(s.lab < 0))
    if unassigned:
        grow(s, "unassigned")
        notes.append(f"{unassigned} region(s) without a territory in the base plan were joined to a neighbour")
    before = s.lab.copy()
    pot = s.vals[:, MEASURES.index("potential")]
    repair(s, "contiguity", weight_col=pot + 1e-9)
    repaired = np.flatnonzero(s.lab != before)
    if len(repaired):
        share = s.D.copy()
        notes.append(f"contiguity repair: {len(repaired)} region(s) in detached pieces of base territories "
                     f"moved to a neighbouring territory ({share[0]:.2%} of potential, {share[1]:.2%} of customers)")
        if s.cap is not None and np.any(s.D > s.cap + 1e-12):
            raise InfeasibleError(
                f"the base plan has detached pieces: making every territory contiguous moves {s.D[0]:.1%} of "
                f"potential and {s.D[1]:.1%} of customers, more than the {s.cap:.0%} cap allows; raise the "
                "cap (or fix the pieces by hand)")
    s.progress(0.1, "rebalancing")
    cands = []
    refine(s, s.tau, budget=max(s.time_left(), 0) * share_step, label="least change", frac0=0.1, frac1=0.5)
    cands.append(candidate(s, "least change", "fewest moves that reach the tolerance within the cap", t_start))
    refine(s, guarded(s.tau, s.tau / 2), budget=max(s.time_left(), 0) * share_step, label="tighter balance",
           frac0=0.5, frac1=0.8)
    cands.append(candidate(s, "tighter balance", "balance band ±tol/2 within the cap", t_start))
    if compactness and not s.cancelled:
        s.progress(0.85, "compactness pass")
        compact(s, s.tau / 2, budget=max(s.time_left(), 0))
        cands.append(candidate(s, "tighter + compact", "band ±tol/2, then compactness moves within the cap", t_start))
    return order_candidates(cands, prefer_least_change=True)
