"""Visit routes (terrmap.rep.route): exact up to EXACT_MAX_STOPS, 2-opt/Or-opt beyond, checked against brute force."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from terrmap.geo.distance import distance_matrix_km, haversine_km
from terrmap.rep import route as rt

HOME = (32.78, -96.80)  # Dallas


def brute_force(dist: np.ndarray, closed: bool) -> float:
    """The shortest tour from node 0 by trying every order (small n only)."""
    n = len(dist) - 1
    best = math.inf
    for perm in itertools.permutations(range(1, n + 1)):
        tour = (0, *perm)
        length = sum(dist[a, b] for a, b in itertools.pairwise(tour)) + (dist[tour[-1], 0] if closed else 0.0)
        best = min(best, length)
    return 0.0 if n == 0 else best


def points(n: int, seed: int, spread: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return HOME[0] + rng.uniform(-spread, spread, n), HOME[1] + rng.uniform(-spread, spread, n)


# stops around Dallas; rounding to a coarse grid sometimes makes clusters and exact duplicates
coordinate = st.tuples(st.floats(-4, 4, allow_nan=False), st.floats(-4, 4, allow_nan=False))
stops_strategy = st.lists(coordinate, min_size=1, max_size=8).map(
    lambda pts: (np.array([HOME[0] + p[0] for p in pts]), np.array([HOME[1] + p[1] for p in pts])))


def _matrix(lat, lon) -> np.ndarray:
    return distance_matrix_km(np.r_[HOME[0], lat], np.r_[HOME[1], lon])


def test_haversine_known_distances():
    assert haversine_km(0, 0, 1, 0) == pytest.approx(2 * math.pi * 6371.0088 / 360, rel=1e-12)  # one degree
    assert haversine_km(0, 0, 0, 180) == pytest.approx(math.pi * 6371.0088, rel=1e-12)  # half the equator
    # Dallas - Houston: about 362 km as the crow flies
    assert haversine_km(32.7767, -96.7970, 29.7604, -95.3698) == pytest.approx(362, abs=3)


def _best_reversal_gain(dist: np.ndarray, tour: list[int], closed: bool) -> float:
    """The most any single 2-opt move (reverse tour[i..j], home fixed first) would shorten the tour."""
    base = rt.tour_length(dist, tour, closed)
    best = 0.0
    for i in range(1, len(tour)):
        for j in range(i + 1, len(tour)):
            candidate = tour[:i] + tour[i:j + 1][::-1] + tour[j + 1:]
            best = max(best, base - rt.tour_length(dist, candidate, closed))
    return best


@settings(max_examples=120, deadline=None)
@given(stops=stops_strategy, closed=st.booleans())
@example(stops=(np.array([32.78, 32.78, 32.78, 33.78, 35.78, 30.78]),
                np.array([-95.8, -94.8, -100.3, -97.8, -97.8, -96.8])), closed=False)
def test_heuristic_is_a_local_optimum_never_worse_than_nearest_neighbour(stops, closed):
    """The 2-opt path (forced with exact_max=0): never longer than nearest neighbour, and no single reversal
    shortens it (2-opt's guarantee, checked by trying every reversal). Not a promise of the optimum: the example
    above is 7% longer than the best tour, which the exact method (up to EXACT_MAX_STOPS stops) finds."""
    lat, lon = stops
    dist = _matrix(lat, lon)
    nn = rt.tour_length(dist, rt.nearest_neighbour(dist), closed)
    route = rt.plan_route(HOME, lat, lon, closed=closed, exact_max=0)
    assert route.method == "2-opt"
    assert route.total_km <= nn + 1e-9
    tour = [0, *(route.order + 1).tolist()]
    assert rt.tour_length(dist, tour, closed) == pytest.approx(route.total_km, rel=1e-9, abs=1e-9)
    assert _best_reversal_gain(dist, tour, closed) <= 1e-6


@settings(max_examples=60, deadline=None)
@given(stops=st.lists(coordinate, min_size=0, max_size=30), closed=st.booleans(), exact_max=st.sampled_from([0, 10]))
def test_route_visits_every_stop_once_from_home(stops, closed, exact_max):
    lat = np.array([HOME[0] + p[0] for p in stops])
    lon = np.array([HOME[1] + p[1] for p in stops])
    route = rt.plan_route(HOME, lat, lon, closed=closed, exact_max=exact_max)
    n = len(stops)
    assert sorted(route.order.tolist()) == list(range(n))
    # legs: home -> first stop, stop -> stop, and (closed) last stop -> home
    path_lat = np.r_[HOME[0], lat[route.order], [HOME[0]] if closed and n else []]
    path_lon = np.r_[HOME[1], lon[route.order], [HOME[1]] if closed and n else []]
    expected = haversine_km(path_lat[:-1], path_lon[:-1], path_lat[1:], path_lon[1:])
    np.testing.assert_allclose(route.leg_km, expected, rtol=1e-12, atol=1e-9)
    assert len(route.leg_km) == n + (1 if closed and n else 0)
    assert route.total_km == pytest.approx(float(np.sum(expected)), abs=1e-9)


@pytest.mark.parametrize("closed", [True, False])
def test_two_hundred_stops_fast_and_better_than_nearest_neighbour(closed):
    lat, lon = points(200, seed=3)
    dist = _matrix(lat, lon)
    nn = rt.tour_length(dist, rt.nearest_neighbour(dist), closed)
    t0 = time.process_time()  # CPU time: other work on the machine does not count
    route = rt.plan_route(HOME, lat, lon, closed=closed)
    seconds = time.process_time() - t0
    assert seconds < 0.5, f"{seconds:.2f} CPU s for 200 stops"
    assert sorted(route.order.tolist()) == list(range(200))
    assert route.total_km < nn * 0.97  # 2-opt does real work on random points (NN is typically 15-25 % longer)
    # a 2-opt local optimum: no segment reversal shortens it
    t = np.r_[0, route.order + 1, 0] if closed else np.r_[0, route.order + 1]
    best = route.total_km
    for i in range(1, len(t) - 1):
        for j in range(i + 1, len(t) - (1 if closed else 0)):
            cand = np.r_[t[:i], t[i:j + 1][::-1], t[j + 1:]]
            assert rt.tour_length(dist, cand[:-1] if closed else cand, closed) >= best - 1e-6


def test_exact_limit_is_fast():
    lat, lon = points(rt.EXACT_MAX_STOPS, seed=5)
    t0 = time.process_time()  # CPU time: other work on the machine does not count
    route = rt.plan_route(HOME, lat, lon)
    assert route.method == "exact"
    assert time.process_time() - t0 < 0.5


def test_a_stop_without_coordinates_is_named():
    with pytest.raises(ValueError, match="stop 1 has no coordinates"):
        rt.plan_route(HOME, [33.0, float("nan")], [-97.0, -96.0])
    with pytest.raises(ValueError, match="home has no coordinates"):
        rt.plan_route((float("nan"), -96.0), [33.0], [-97.0])
