"""Issue 15.2-3: the workload model's formulas, each checked against a hand computation or brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from terrmap.team.workload import (
    BHH_BETA,
    DEFAULT_TIERS,
    ROAD_CIRCUITY,
    SPEED_KMH,
    TierRules,
    fte_needed,
    speed_kmh,
    territory_workload,
    tour_km,
    travel_km_per_week,
    visit_load,
)


def test_tiers_follow_status_size_and_score():
    frame = pd.DataFrame({
        "status": ["won", "won", "open", "open", "lost", "open"],
        "employees": [800, 20, 5000, 10, 900, None],
        "score": [0.1, 0.9, 0.5, 0.2, 0.9, None],
    })
    got = TierRules().tier_of(frame.status, frame.employees, frame.score).tolist()
    assert got == ["A", "B", "C", "P", None, "P"]


def test_visit_load_is_frequency_times_minutes_per_week():
    tiers = pd.Series(["A"] * 3 + ["B"] * 4 + ["P"] * 13 + [None])
    visits, hours = visit_load(tiers)
    # by hand: A 3 x 4 visits, B 4 x 2, P 13 x 4/13 per 4-week cycle
    assert visits == pytest.approx((12 + 8 + 4) / 4)
    assert hours == pytest.approx((12 * 60 + 8 * 45 + 4 * 30) / 4 / 60)
    _, call_hours = visit_load(tiers, inside=True)
    assert call_hours == pytest.approx((12 * 30 + 8 * 20 + 4 * 15) / 4 / 60)


def test_bhh_tour_length_and_its_scaling():
    assert tour_km(100, 100.0) == pytest.approx(BHH_BETA * 100)
    assert tour_km(400, 100.0) == pytest.approx(2 * tour_km(100, 100.0))  # √n
    assert tour_km(0, 100.0) == 0.0


def test_bhh_estimate_is_close_to_real_tours_of_random_points():
    """The estimate against the optimal tour (brute force) averaged over random 8-point instances in a unit
    square: for so few points the true mean is above β·√(n·A) (boundary effect), within 25%."""
    rng = np.random.default_rng(3)
    lengths = []
    for _ in range(30):
        pts = rng.random((8, 2))
        best = min(sum(math.dist(pts[a], pts[b]) for a, b in zip((0, *perm), (*perm, 0)))
                   for perm in itertools.permutations(range(1, 8)))
        lengths.append(best)
    assert tour_km(8, 1.0) == pytest.approx(np.mean(lengths), rel=0.25)


def test_weekly_travel_is_daily_tours_plus_the_way_out_times_circuity():
    # 20 visits a week over 5 days: 4 stops a day in 400 km²; home 10 km from the territory
    km = travel_km_per_week(20, 400.0, home_km=10.0)
    assert km == pytest.approx(ROAD_CIRCUITY * 5 * (BHH_BETA * math.sqrt(4 * 400) + 20))
    # 2 visits a week: two days out, not five
    assert travel_km_per_week(2, 400.0) == pytest.approx(ROAD_CIRCUITY * 2 * BHH_BETA * math.sqrt(400))


@given(st.floats(0, 1), st.floats(0, 1))
def test_speed_is_the_harmonic_mean_of_the_place_speeds(urban, suburban):
    suburban = min(suburban, 1 - urban)
    v = speed_kmh(urban, suburban)
    assert SPEED_KMH["urban"] - 1e-9 <= v <= SPEED_KMH["rural"] + 1e-9
    rural = 1 - urban - suburban
    hours_per_km = urban / SPEED_KMH["urban"] + suburban / SPEED_KMH["suburban"] + rural / SPEED_KMH["rural"]
    assert v == pytest.approx(1 / hours_per_km)


def test_territory_workload_adds_contact_and_travel_and_inside_reps_do_not_drive():
    tiers = pd.Series(["B"] * 40)  # 20 visits a week, 45 min each
    w = territory_workload(tiers, area_km2=900.0, urban_share=1.0, suburban_share=0.0)
    assert w.contact_hours == pytest.approx(15.0)
    assert w.travel_hours == pytest.approx(w.travel_km / SPEED_KMH["urban"])
    assert w.hours == pytest.approx(w.contact_hours + w.travel_hours)
    inside = territory_workload(tiers, area_km2=900.0, urban_share=1.0, suburban_share=0.0, inside=True)
    assert inside.travel_km == 0 and inside.hours == pytest.approx(40 * 2 * 20 / 4 / 60)


def test_fte_is_hours_over_selling_hours_to_one_decimal():
    assert fte_needed(36.0, 40, 0.6) == 1.5
    assert fte_needed(24.0) == 1.0
    assert fte_needed(25.0, 40, 0.6) == 1.0  # 1.04
    assert fte_needed(26.0, 40, 0.6) == 1.1  # 1.083
    with pytest.raises(ValueError):
        fte_needed(10, 40, 0)


def test_default_tiers_are_ordered_by_attention():
    freq = [t.visits_per_cycle for t in DEFAULT_TIERS]
    assert freq == sorted(freq, reverse=True)
