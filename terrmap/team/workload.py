"""The workload model (issue 15.2): how many hours a week a territory's accounts take, and how many reps that is.

Every account gets a **tier** from its status, size and score (:class:`TierRules`, a small table a planner can
read and change); a tier says how often it is visited in a cycle and how long a visit takes
(:data:`DEFAULT_TIERS`: customers of 500+ employees weekly, other customers every two weeks, promising
prospects monthly, the rest once a quarter). Inside reps call instead of driving: their tiers' call minutes
apply and there is no travel.

A territory's weekly hours are its visit time plus its **travel time**, estimated from the territory itself
with the Beardwood-Halton-Hammersley result: the shortest tour through ``n`` points spread over an area ``A``
is about ``β·√(n·A)`` long, with β ≈ 0.7124 for uniformly random points in the plane (Beardwood, Halton and
Hammersley 1959; the constant from Applegate et al., *The Traveling Salesman Problem*, 2006; Percus and Martin
1996 estimate 0.7124). A week of visits is ``days`` tours (one a working day) of ``n/days`` stops each, plus
the way out to the territory and back from home (:func:`travel_km_per_week`). Straight-line kilometres become
road kilometres by a **circuity factor** of 1.3 (US road networks: 1.2-1.4, Ballou, Rahardja and Sakai 2002,
"Selected country circuity factors for road travel distance estimation", Transportation Research A 36),
and hours by a speed that depends on how urban the territory is (:data:`SPEED_KMH`; door to door with
parking, as field teams plan it). Then **FTE needed** = weekly hours ÷ a rep's selling hours (capacity × the
share of it left for selling).

Everything here is arithmetic on numbers and frames: no database, so tests can check each formula by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

BHH_BETA = 0.7124  # tour length ≈ β·√(n·A) for n random points in area A (Euclidean plane)
ROAD_CIRCUITY = 1.3  # road km per straight-line km (US: 1.2-1.4)
SPEED_KMH = {"urban": 30.0, "suburban": 45.0, "rural": 65.0}  # average door-to-door driving speed
WORKING_DAYS_PER_WEEK = 5
WEEKS_PER_CYCLE = 4


@dataclass(frozen=True)
class Tier:
    name: str
    label: str
    visits_per_cycle: float  # in a cycle of WEEKS_PER_CYCLE weeks (0.31 ≈ once a quarter)
    visit_minutes: float  # a field visit, on site
    call_minutes: float  # the same contact made by an inside rep, by phone or video


DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier("A", "key customers: weekly", 4.0, 60.0, 30.0),
    Tier("B", "customers: every two weeks", 2.0, 45.0, 20.0),
    Tier("C", "promising prospects: monthly", 1.0, 45.0, 20.0),
    Tier("P", "other prospects: once a quarter", WEEKS_PER_CYCLE / 13.0, 30.0, 15.0),
)


@dataclass(frozen=True)
class TierRules:
    """Which tier an account is in: customers with at least ``key_employees`` employees are A, other customers
    B; open leads scoring at least ``promising_score`` are C, other open leads P; lost leads are not visited."""

    key_employees: int = 500
    promising_score: float = 0.35

    def tier_of(self, status: pd.Series, employees: pd.Series, score: pd.Series) -> pd.Series:
        won = status.eq("won")
        open_ = status.eq("open")
        big = employees.fillna(0).ge(self.key_employees)
        promising = score.fillna(0).ge(self.promising_score)
        tier = np.select([won & big, won, open_ & promising, open_], ["A", "B", "C", "P"], default="")
        return pd.Series(tier, index=status.index, dtype=object).replace("", None)


def tier_table(tiers: tuple[Tier, ...] = DEFAULT_TIERS) -> pd.DataFrame:
    return pd.DataFrame([t.__dict__ for t in tiers])


def visit_load(tiers_of_accounts: pd.Series, inside: bool = False,
               tiers: tuple[Tier, ...] = DEFAULT_TIERS) -> tuple[float, float]:
    """(visits a week, contact hours a week) of a set of accounts given their tiers (None: not visited)."""
    by_name = {t.name: t for t in tiers}
    counts = tiers_of_accounts.dropna().value_counts()
    visits = sum(by_name[t].visits_per_cycle * n for t, n in counts.items()) / WEEKS_PER_CYCLE
    minutes = sum(by_name[t].visits_per_cycle * (by_name[t].call_minutes if inside else by_name[t].visit_minutes) * n
                  for t, n in counts.items()) / WEEKS_PER_CYCLE
    return float(visits), float(minutes) / 60.0


def tour_km(stops: float, area_km2: float) -> float:
    """BHH: the straight-line length of a short tour through ``stops`` points spread over ``area_km2``."""
    if stops <= 0 or area_km2 <= 0:
        return 0.0
    return BHH_BETA * math.sqrt(stops * area_km2)


def travel_km_per_week(visits_per_week: float, area_km2: float, home_km: float = 0.0,
                       days: int = WORKING_DAYS_PER_WEEK) -> float:
    """Road km a week: one tour a working day through that day's share of the visits, plus the way from home
    to the territory and back (``home_km``: straight-line distance from home to the territory's centre,
    0 when the rep lives in it), all times the circuity factor."""
    if visits_per_week <= 0:
        return 0.0
    active_days = min(days, max(1, math.ceil(visits_per_week)))  # a few visits a week fill fewer days
    per_day = tour_km(visits_per_week / active_days, area_km2) + 2 * home_km
    return ROAD_CIRCUITY * active_days * per_day


def speed_kmh(urban_share: float, suburban_share: float) -> float:
    """Average speed for a territory whose visits lie ``urban_share`` in urban and ``suburban_share`` in
    suburban ZIPs (the rest rural): the harmonic mean, since time, not distance, adds up."""
    rural = max(0.0, 1.0 - urban_share - suburban_share)
    return 1.0 / (urban_share / SPEED_KMH["urban"] + suburban_share / SPEED_KMH["suburban"]
                  + rural / SPEED_KMH["rural"])


@dataclass(frozen=True)
class Workload:
    """A territory's weekly workload, in parts (all per week)."""

    visits: float
    contact_hours: float
    travel_km: float
    travel_hours: float

    @property
    def hours(self) -> float:
        return self.contact_hours + self.travel_hours


def territory_workload(tiers_of_accounts: pd.Series, area_km2: float, urban_share: float, suburban_share: float,
                       inside: bool = False, home_km: float = 0.0) -> Workload:
    """The weekly workload of a territory's accounts (see the module docstring)."""
    visits, contact = visit_load(tiers_of_accounts, inside)
    if inside:
        return Workload(visits, contact, 0.0, 0.0)
    km = travel_km_per_week(visits, area_km2, home_km)
    return Workload(visits, contact, km, km / speed_kmh(urban_share, suburban_share))


def selling_hours(capacity_hours, selling_share):
    """A rep's hours a week left for selling (numbers or columns alike)."""
    return capacity_hours * selling_share


def fte_needed(hours_per_week: float, capacity_hours: float = 40.0, selling_share: float = 0.6) -> float:
    """Reps needed for a workload: its hours over one rep's selling hours, to one decimal."""
    selling = selling_hours(capacity_hours, selling_share)
    if selling <= 0:
        raise ValueError("a rep needs some selling hours (capacity × selling share > 0)")
    return round(hours_per_week / selling + 1e-9, 1)
