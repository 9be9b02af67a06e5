"""Territory optimizer: balanced, contiguous, compact plans in seconds.

The package's parts: :mod:`~terrmap.optimize.instance` (the input, loading it), :mod:`~terrmap.optimize.objective`
(B, S and their change for a move), :mod:`~terrmap.optimize.constraints` (yes/no checks on a move),
:mod:`~terrmap.optimize.state` (the live plan and tallies), :mod:`~terrmap.optimize.chunks` and
:mod:`~terrmap.optimize.repair` (contiguity), :mod:`~terrmap.optimize.starts`, :mod:`~terrmap.optimize.moves`,
:mod:`~terrmap.optimize.recombine`, :mod:`~terrmap.optimize.flow` (the border programme for several measures),
:mod:`~terrmap.optimize.search` (the loop, on a
:mod:`~terrmap.optimize.budget`), :mod:`~terrmap.optimize.explain` (why each region moved),
:mod:`~terrmap.optimize.results` and :mod:`~terrmap.optimize.optimizer` (the request and ``solve``).

Two modes
---------
* **Build from scratch**: split a layer's populated regions (optionally of some
  states) into K territories.
* **Rebalance** an existing plan: start from its assignment and move as little
  as possible, with a cap on *disruption* -- the share of revenue potential, and
  the share of customers, whose territory changes (:func:`terrmap.plan.metrics.disruption`).

What is optimised
-----------------
Balance on one or several measures ``m`` with weights ``w_m`` (potential, leads,
customers, open leads, won revenue, and ``workload = leads + 3 x customers``: a
customer is counted as three prospects' worth of a rep's time, account care and
renewals). With ``mu_m = total_m / K`` the target and ``tau_m`` the tolerance,
the *imbalance* of a plan is ::

    B = sum_t sum_m w_m * max(0, |W_m(t) / mu_m - 1| - tau_m)

so B = 0 exactly when every territory is within tolerance on every measure.
Hard per-territory limits (``limits={"customers": (None, 400)}``) add a term
that no move may increase. Constraints that always hold: every territory is
contiguous on the region adjacency graph (islands and regions with no land
neighbour are joined to the regions they face across empty land and to their
nearest region by zero-length *bridge* edges,
see :mod:`terrmap.geo.graph`; the result lists them, and a territory that reaches across one is reported
"in N pieces by water", :func:`terrmap.plan.metrics.territory_pieces`), locked regions stay in
their territory, a seeded territory contains its seed region (a rep's home),
and no territory is empty.

Method
------
1. **Start.** From scratch: METIS (``pymetis.part_graph`` with ``contig=1``), one
   vertex weight: the balanced measures, each relative to its total, summed with
   their weights (integers, 10^7 in total; pymetis gives METIS one constraint
   whatever it is passed), edge weights = shared border length, so METIS already
   minimises the total border. Seeds and locks are handled after METIS: its parts are matched
   to territories by a maximum-weight assignment (Hungarian method; a seed weighs
   more than any set of locks), the fixed regions are put in place, and a
   *repair* keeps each territory's piece that holds its fixed regions (joining
   separated fixed regions along shortest paths), else its heaviest piece, frees
   the other pieces and regrows them from the borders into the least-loaded
   neighbouring territory (growing from a border keeps every territory in one
   piece). When METIS cannot make contiguous parts balanced -- sparse, tree-like
   graphs such as the populated cells of a fine H3 layer, where islands hang on
   bridge edges -- a second start is drawn by recursive spanning-tree bisection
   (a random minimum spanning tree whose edges across METIS parts weigh more, cut
   at the edge closest to a k1 : k2 share of every balanced measure; with several
   measures the two sides then trade border regions until each holds its share of
   each measure), and the better start is kept. With several measures, whose mix
   varies by area (customers per unit of potential differ by state), a third start
   is drawn (a few times on small instances): recursive bisection by straight cuts,
   ham-sandwich style -- for 24 directions a sweep that grows only into neighbours
   is cut where every measure is closest to its k1 : k2 share, the shortest of the
   nearly best cuts is made connected and mended by border trades (a spanning-tree
   cut where that does better) -- so the upper cuts balance the mix at the scale of
   states, which border moves between finished territories cannot
   (:func:`~terrmap.optimize.starts.mix_start`).
   Rebalance: the base plan, with unassigned regions grown in and detached pieces
   repaired the same way (that repair counts towards disruption).
2. **Balance refinement** (local search on border regions). Each round lists
   every border move "region r from territory a to neighbouring territory b"
   among the out-of-band territories and their neighbours, scored (vectorised)
   by the change of B (per territory its worst measure's excess over the band,
   each measure relative to its own target, plus a quarter of the others'; see
   :mod:`terrmap.optimize.objective`) and of a smooth guide ``S = sum w_m max(0, |dev| - tau/2)^2``
   that pushes load along chains of territories when no single move lowers B.
   A region that holds its territory together (an articulation point, from a
   Tarjan DFS of the territory rooted at a fixed anchor) moves *with the part it
   alone connects to the anchor* (a "chunk"), so territories stay in one piece
   by construction; elsewhere a breadth-first search from one of r's neighbours
   must reach the others without r. Moves are applied greedily, best first,
   re-scored against the live totals, only if r is not fixed or tabu, the
   territory keeps a region, and the disruption cap and hard limits hold. In
   rebalance mode moves are ranked by imbalance removed per unit of disruption.
   With several measures, a start's refinement is followed by rounds of a linear programme over every
   territory's border regions at once (:mod:`~terrmap.optimize.flow`): which regions to pass to which
   neighbour so that every territory's totals come within the band on every measure -- the excess of a
   customer-heavy area travels across several territories, which no single border move does; its rounded
   moves are applied keeping territories whole and refined, and a round is kept if the plan ends better.
   When a round finds no improving move: a swap of two border regions between
   an out-of-band territory and a neighbour; else a ReCom-style recombination
   (merge 2-3 neighbouring territories, split them again along a random spanning
   tree -- with several measures by the straight cuts of the mix start -- keep it
   if B drops); else a tabu step (the least bad move, the regions
   then frozen for a few rounds). From scratch, a start that stays stuck gets one
   *kick* (its worst territory sheds a whole chunk and the search re-balances)
   and then the search restarts from another METIS seed within the time budget;
   the best plan seen is kept.
3. **Compactness passes**: single-region border moves that shorten the total
   border between territories (hence raise Polsby-Popper and lower the cut-edge
   share), taken only if no territory leaves its balance band, contiguity,
   locks, limits and the disruption cap all hold.
4. **Candidates** along the trade-offs. From scratch: the refined plan tightened
   to a band of tau/4 where it can be (never leaving tau: excess over tau weighs
   1000 times more while tightening), then polished with a band of tau/4
   ("balanced"), tau/2 ("middle") and tau ("compact"): the wider the band, the
   more compactness moves fit. Rebalance: the fewest moves that reach tolerance
   ("least change"), then a tighter balance (tau/2), then the same plus
   compactness. Each candidate carries its scores (max deviation of the worst
   balanced measure, and per measure, CV, contiguous
   territories, cut-edge share, mean Polsby-Popper, disruption, seconds) so the
   planner chooses; the first is the recommended one (from scratch the most
   compact within tolerance; rebalance the least change within tolerance).

The search runs on a budget: ``time_limit`` seconds (the candidates are scored in
the last 7%) or ``iterations`` of the search (deterministic, for tests and
benchmarks); see :mod:`terrmap.optimize.budget`. It reports progress through ``progress(frac, message)`` and polls
``should_stop()`` between rounds (cancel: the best plans so far are returned).

Infeasible requests raise :class:`InfeasibleError` with the reason: a region
heavier than a territory's upper bound (named, with the largest K or smallest
tolerance that would work), more seeds than territories, two seeds in one
region or one territory, locks that overfill a territory or separate it,
limits that cannot add up.

API (spopt-like)::

    inst = load_instance(store, "zip", states=["TX"])
    res = Optimizer(inst, n_territories=12, balance="potential", tolerance=0.02).solve()
    res.labels_            # territory index per region (recommended candidate)
    res.table()            # the candidates and their scores
    save_candidate(store, res, "TX 12 balanced")
    explain_moves(store, base_plan, res)   # for a rebalance: what moved and why
"""

from terrmap.optimize.budget import PHASES, Budget, Phases
from terrmap.optimize.explain import MoveRecord, water_line
from terrmap.optimize.instance import (
    LOWER_48_EXCLUDED,
    MEASURE_LABELS,
    MEASURES,
    WORKLOAD_CUSTOMER_WEIGHT,
    InfeasibleError,
    Instance,
    area_stats,
    cached_instance,
    load_instance,
    rep_seeds,
)
from terrmap.optimize.objective import LIMIT_WEIGHT, Objective
from terrmap.optimize.optimizer import Optimizer, parse_balance
from terrmap.optimize.results import (
    Candidate,
    OptimizeResult,
    candidate_plan,
    explain_moves,
    moved_accounts,
    save_candidate,
)

__all__ = [
    "water_line",
    "LIMIT_WEIGHT", "LOWER_48_EXCLUDED", "MEASURES", "MEASURE_LABELS", "PHASES", "WORKLOAD_CUSTOMER_WEIGHT", "Budget",
    "Candidate", "InfeasibleError", "Instance", "MoveRecord", "Objective", "OptimizeResult", "Optimizer", "Phases",
    "cached_instance", "candidate_plan", "explain_moves", "load_instance", "moved_accounts", "parse_balance",
    "area_stats", "rep_seeds", "save_candidate",
]
