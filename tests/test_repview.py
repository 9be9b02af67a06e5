"""The rep's view (terrmap.rep.footprint) against independent pandas computations on the demo database."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import percentileofscore

from terrmap.app import rep_map
from terrmap.data.stats import region_stats
from terrmap.data.store import Store
from terrmap.demo import ENTERPRISE_TEAM_ID
from terrmap.geo import parse_layer
from terrmap.io.csvsafe import guard_cell
from terrmap.io.export import account_table
from terrmap.plan import get_plan
from terrmap.plan.accounts import account_owners
from terrmap.rep import footprint as rv

EVIL = "<script>alert(1)</script>"


def drop_pins_and_overlays(store: Store) -> None:
    """Geography only: the demo ships a few pins and an overlay; the pandas truth here knows only geography
    and pins (the pin and overlay tests add their own)."""
    store.cursor().execute("DELETE FROM account_pins; DELETE FROM overlays")


@pytest.fixture(scope="module")
def store(demo_db_path, tmp_path_factory):
    """One writable copy for the read-only tests of this module (zip shapes get built once)."""
    path = tmp_path_factory.mktemp("repview") / "demo.duckdb"
    shutil.copy(demo_db_path, path)
    s = Store(path)
    drop_pins_and_overlays(s)
    yield s
    s.close()


@pytest.fixture(scope="module")
def plan(store):
    return rv.resolve_plan(store)


@pytest.fixture(scope="module")
def owners(store, plan):
    return rv.with_places(store, account_owners(store, plan))


@pytest.fixture(scope="module")
def kpi_table(store, plan, owners):
    return rv.all_rep_kpis(store, plan, owners)


def pandas_ownership(store: Store, plan_id: int) -> pd.DataFrame:
    """lead_id -> rep_id by geography and pins, from the raw tables (the demo plan is on ZIPs)."""
    leads = store.df("SELECT lead_id, zip, status, score, expected_value, deal_value FROM leads")
    assign = store.df("SELECT region_id, territory_id FROM plan_assignments WHERE plan_id = ?", [plan_id])
    terr = store.df("SELECT territory_id, rep_id FROM territories WHERE plan_id = ?", [plan_id])
    pins = store.df("SELECT lead_id, territory_id AS pin_territory FROM account_pins WHERE plan_id = ?", [plan_id])
    df = leads.merge(assign, left_on="zip", right_on="region_id", how="left").merge(pins, on="lead_id", how="left")
    df["territory_id"] = df["pin_territory"].combine_first(df["territory_id"])
    return df.merge(terr, on="territory_id", how="left")


# -- ownership --------------------------------------------------------------------------------------

def test_rep_accounts_equal_pandas_geography(store, plan, owners):
    truth = pandas_ownership(store, plan.plan_id)
    for rep_id in rv.plan_reps(store, plan)["rep_id"]:
        mine = set(rv.rep_accounts(owners, rep_id)["lead_id"])
        assert mine == set(truth.loc[truth["rep_id"] == rep_id, "lead_id"]), rep_id
        assert mine  # every demo rep has accounts


def test_a_pinned_account_belongs_to_the_pinned_territorys_rep(demo_store):
    drop_pins_and_overlays(demo_store)
    plan = rv.resolve_plan(demo_store)
    terr = demo_store.df("SELECT territory_id, rep_id FROM territories WHERE plan_id = ?", [plan.plan_id])
    before = account_owners(demo_store, plan)
    lead = before[before["owner_rep_id"] == "R01"].iloc[0]
    target = terr[terr["rep_id"] == "R05"].iloc[0]
    demo_store.cursor().execute("INSERT INTO account_pins (plan_id, lead_id, territory_id) VALUES (?, ?, ?)",
                                [plan.plan_id, lead["lead_id"], int(target["territory_id"])])
    after = account_owners(demo_store, plan)
    r05 = rv.rep_accounts(after, "R05")
    assert lead["lead_id"] in set(r05["lead_id"])
    assert r05.set_index("lead_id").loc[lead["lead_id"], "rule"] == "pin"
    assert lead["lead_id"] not in set(rv.rep_accounts(after, "R01")["lead_id"])
    truth = pandas_ownership(demo_store, plan.plan_id)
    assert set(r05["lead_id"]) == set(truth.loc[truth["rep_id"] == "R05", "lead_id"])
    # the pinned account's region joins R05's footprint, outside R05's territories
    feet = rv.footprints(demo_store, plan, after)
    row = feet[(feet["rep_id"] == "R05") & (feet["region_id"] == lead["region_id"])]
    assert len(row) == 1 and pd.isna(row["territory_id"].iloc[0])
    frame = rv.footprint_frame("R05", feet, region_stats(demo_store, parse_layer(plan.layer)))
    assert frame.set_index("region_id").loc[lead["region_id"], "territory_id"] == rv.OUTSIDE_TERRITORY_ID


def test_an_overlay_reps_accounts_and_kpis(demo_store):
    drop_pins_and_overlays(demo_store)
    plan = rv.resolve_plan(demo_store)
    demo_store.cursor().execute(
        "INSERT INTO overlays (plan_id, overlay_id, name, rep_id, rule) VALUES (?, 1, 'Enterprise', 'R03', ?)",
        [plan.plan_id, json.dumps({"min_employees": 1000})])
    owners = account_owners(demo_store, plan)
    big = demo_store.df("SELECT lead_id FROM leads WHERE employees >= 1000")["lead_id"]
    r03 = rv.rep_accounts(owners, "R03")
    assert set(big) <= set(r03["lead_id"])
    assert set(r03.loc[r03["rule"] == "overlay", "lead_id"]) == set(big)
    kinds = rv.rep_territories(demo_store, plan, "R03")
    assert sorted(kinds["kind"]) == ["overlay", "territory"]
    kpis = rv.all_rep_kpis(demo_store, plan, owners)
    assert kpis.loc["R03", "leads"] == len(r03)
    assert kpis["leads"].sum() == owners["owner_rep_id"].notna().sum()  # every owned account counted once
    # the overlay's accounts outside R03's territories widen R03's footprint
    feet = rv.footprints(demo_store, plan, owners)
    own_territories = kinds.loc[kinds["kind"] == "territory", "id"].tolist()
    outside = set(r03.loc[~r03["geo_territory_id"].isin(own_territories), "region_id"])
    mine = feet[feet["rep_id"] == "R03"]
    assert outside and outside <= set(mine.loc[mine["territory_id"].isna(), "region_id"])
    assert kpis.loc["R03", "regions"] == mine["region_id"].nunique()


# -- KPIs -------------------------------------------------------------------------------------------

def test_kpis_equal_pandas(store, plan, kpi_table):
    truth = pandas_ownership(store, plan.plan_id)
    areas = store.df("SELECT zip AS region_id, area_km2 FROM zip_shapes")
    assign = store.df("SELECT a.region_id, t.rep_id FROM plan_assignments a JOIN territories t "
                      "USING (plan_id, territory_id) WHERE plan_id = ?", [plan.plan_id]).merge(areas, how="left")
    for rep_id, g in truth[truth["rep_id"].notna()].groupby("rep_id"):
        got = kpi_table.loc[rep_id]
        open_ = g[g["status"] == "open"]
        assert got["leads"] == len(g)
        assert got["open_leads"] == len(open_)
        assert got["customers"] == (g["status"] == "won").sum()
        assert got["won_revenue"] == pytest.approx(g.loc[g["status"] == "won", "deal_value"].sum(), rel=1e-9)
        assert got["potential"] == pytest.approx((open_["score"] * open_["expected_value"]).sum(), rel=1e-9)
        assert got["avg_score"] == pytest.approx(open_["score"].mean(), rel=1e-9)
        mine = assign[assign["rep_id"] == rep_id]
        assert got["regions"] == len(mine)
        assert got["area_km2"] == pytest.approx(mine["area_km2"].sum(), rel=1e-9)
    assert len(kpi_table) == 20


def test_peer_median_and_percentile(store, plan, kpi_table):
    for rep_id in ["R01", "R07", "R12"]:
        got = rv.rep_kpis(store, plan, rep_id, kpi_table)
        peers = kpi_table.drop(index=rep_id)
        for k in rv.KPI_COLUMNS:
            assert got.loc[k, "value"] == pytest.approx(kpi_table.loc[rep_id, k])
            assert got.loc[k, "peer_median"] == pytest.approx(peers[k].median())
            assert got.loc[k, "percentile"] == pytest.approx(
                percentileofscore(peers[k], kpi_table.loc[rep_id, k], kind="mean"))
    # the rep with the most accounts is above all 19 peers
    top = kpi_table["leads"].idxmax()
    assert rv.rep_kpis(store, plan, top, kpi_table).loc["leads", "percentile"] == 100.0
    with pytest.raises(ValueError, match="owns no territory"):
        rv.rep_kpis(store, plan, "NOBODY", kpi_table)


# -- ranking and filters ------------------------------------------------------------------------------

bands = [b[0] for b in rv.SIZE_BANDS]


@settings(max_examples=40, deadline=None)
@given(
    industries=st.one_of(st.none(), st.lists(st.sampled_from(["Software", "Retail", "Healthcare", "Logistics",
                                                              "Hospitality"]), min_size=1, unique=True)),
    band=st.tuples(st.sampled_from(bands), st.sampled_from(bands)),
    statuses=st.one_of(st.none(), st.lists(st.sampled_from(["open", "won", "lost"]), min_size=1, unique=True)),
    rep_id=st.sampled_from(["R01", "R04", "R10"]),
)
def test_filters_and_order(owners, industries, band, statuses, rep_id):
    low, high = rv.size_band_bounds(*band)
    mine = rv.rep_accounts(owners, rep_id)
    ranked = rv.ranked_accounts(mine, industries=industries, min_employees=low, max_employees=high,
                                statuses=statuses)
    # the same filter, written out in pandas
    keep = pd.Series(True, index=mine.index)
    if industries is not None:
        keep &= mine["industry"].isin(industries)
    if low is not None:
        keep &= mine["employees"] >= low
    if high is not None:
        keep &= mine["employees"] <= high
    if statuses is not None:
        keep &= mine["status"].isin(statuses)
    assert set(ranked["lead_id"]) == set(mine.loc[keep, "lead_id"])
    assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    s, ev = ranked["score"].to_numpy(), ranked["expected_value"].to_numpy()
    assert np.all(s[:-1] >= s[1:])
    ties = s[:-1] == s[1:]
    assert np.all(ev[:-1][ties] >= ev[1:][ties])
    np.testing.assert_allclose(ranked["expected_value"], ranked["score"] * ranked["deal_value_if_won"])


def test_size_bands():
    assert rv.size_band_bounds("1-9", "1,000+") == (None, None)
    assert rv.size_band_bounds("10-49", "250-999") == (10, 999)
    assert rv.size_band_bounds("1,000+", "50-249") == (50, None)
    with pytest.raises(ValueError, match="unknown size band 'huge'"):
        rv.size_band_bounds("huge", "1-9")


def test_default_ranking_is_open_accounts_by_score(owners):
    mine = rv.rep_accounts(owners, "R04")
    ranked = rv.ranked_accounts(mine)
    open_ = mine[mine["status"] == "open"].sort_values(["score", "lead_id"], ascending=[False, True])
    assert len(ranked) == len(open_)
    assert ranked["lead_id"].iloc[0] == open_["lead_id"].iloc[0]


# -- call list ----------------------------------------------------------------------------------------

def test_call_list_csv_guards_formulas(owners):
    mine = rv.rep_accounts(owners, "R04").head(6).copy()
    names = ["=HYPERLINK(\"http://evil\")", "+1 555", "-2+3", "@SUM(A1:A9)", EVIL, "Plain Co"]
    mine["name"] = names
    mine["score"] = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    mine["status"] = "open"
    text = rv.call_list_csv(rv.ranked_accounts(mine)).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == rv.CALL_LIST_COLUMNS
    assert [r["account"] for r in rows] == ["'=HYPERLINK(\"http://evil\")", "'+1 555", "'-2+3", "'@SUM(A1:A9)", EVIL,
                                            "Plain Co"]
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    for r, (_, src) in zip(rows, mine.iterrows()):
        assert float(r["lon"]) == pytest.approx(src["lon"]) and float(r["lon"]) < 0  # numbers stay numbers
        assert r["zip"] == src["zip"]
    assert guard_cell("\t=1") == "'\t=1" and guard_cell(-5.0) == -5.0 and guard_cell("a=b") == "a=b"


# -- route and map --------------------------------------------------------------------------------------

def test_visit_route_takes_the_top_accounts(store, owners):
    rep = rv.get_rep(store, "R04")
    ranked = rv.ranked_accounts(rv.rep_accounts(owners, "R04"), industries=["Software"])
    route, stops = rv.visit_route(rep, ranked, 12)
    assert set(stops["lead_id"]) == set(ranked["lead_id"].head(12))
    assert stops["stop"].tolist() == list(range(1, 13))
    assert route.total_km == pytest.approx(stops["leg_km"].sum() + route.leg_km[-1])
    other = rv.visit_route(rep, rv.ranked_accounts(rv.rep_accounts(owners, "R04"), industries=["Retail"]), 12)[1]
    assert set(other["lead_id"]).isdisjoint(stops["lead_id"])  # recomputed from the filtered list
    assert rv.visit_route(rep, ranked.iloc[0:0], 12) is None
    with pytest.raises(ValueError, match="no rep with id 'NOPE'"):
        rv.get_rep(store, "NOPE")


def test_footprint_map_shows_only_the_reps_regions_escaped(demo_store):
    drop_pins_and_overlays(demo_store)
    plan = rv.resolve_plan(demo_store)
    demo_store.cursor().execute("UPDATE territories SET name = ? WHERE rep_id = 'R07'", [EVIL])
    owners = rv.with_places(demo_store, account_owners(demo_store, plan))
    owners.loc[owners["owner_rep_id"] == "R07", "name"] = EVIL
    feet = rv.footprints(demo_store, plan, owners)
    data = rep_map.footprint_map_data(demo_store, plan, "R07", feet, region_stats(demo_store, parse_layer("zip")))
    assigned = demo_store.df("SELECT region_id FROM plan_assignments a JOIN territories t USING (plan_id, territory_id) "
                             "WHERE plan_id = ? AND t.rep_id = 'R07'", [plan.plan_id])
    assert sorted(data.ids) == sorted(assigned["region_id"])
    assert EVIL not in data.legend_html and "&lt;script&gt;" in data.legend_html
    rep = rv.get_rep(demo_store, "R07")
    ranked = rv.ranked_accounts(rv.rep_accounts(owners, "R07"))
    route, stops = rv.visit_route(rep, ranked, 5)
    m = rep_map.build_rep_map(data, rep, ranked, stops, True, route)
    html = m.get_root().render()
    assert "<script>alert" not in html
    payload = rep_map.overlay_payload(rep, ranked, stops, True)
    assert len(payload["route"]) == 7  # home, 5 stops, home
    assert sum(a[3] > 0 for a in payload["acc"]) == 5
    assert all(EVIL not in a[2] for a in payload["acc"])


def test_h3_plan_footprint_and_area(demo_store):
    """A plan on hexagons: regions are cells, areas come from h3, the map shows exactly the rep's cells."""
    import h3

    from terrmap.data.area import area_regions
    from terrmap.data.plans import plan_area
    from terrmap.plan import Territory, create_plan, load_assignment

    cells = region_stats(demo_store, parse_layer("h3:4"))["region_id"].tolist()
    half = len(cells) // 2
    assignment = pd.DataFrame({"region_id": cells, "territory_id": [1] * half + [2] * (len(cells) - half)})
    create_plan(demo_store, "Hexagons", "h3:4", [Territory(1, "East", "#f3c300", "R01"),
                                                 Territory(2, "West", "#875692", "R02")], assignment)
    plan = rv.resolve_plan(demo_store, "Hexagons")
    # The plan was completed: every cell of its states' land, with or without leads, has a territory.
    stored = load_assignment(demo_store, plan.plan_id)
    area = area_regions(demo_store, parse_layer("h3:4"), plan_area(demo_store, plan.plan_id))
    assert set(stored["region_id"]) == set(area["region_id"]) | set(cells) and stored["territory_id"].notna().all()
    east = stored.loc[stored["territory_id"] == 1, "region_id"].tolist()
    west = stored.loc[stored["territory_id"] == 2, "region_id"].tolist()
    assert set(cells[:half]) <= set(east) and set(cells[half:]) <= set(west)
    owners = account_owners(demo_store, plan)
    kpis = rv.all_rep_kpis(demo_store, plan, owners)
    assert list(kpis.index) == ["R01", "R02"]
    assert kpis.loc["R01", "regions"] == len(east)
    assert kpis.loc["R01", "area_km2"] == pytest.approx(sum(h3.cell_area(c, "km^2") for c in east))
    assert kpis["leads"].sum() == len(owners)  # every lead lies in one of the two territories
    feet = rv.footprints(demo_store, plan, owners)
    data = rep_map.footprint_map_data(demo_store, plan, "R02", feet, region_stats(demo_store, parse_layer("h3:4")))
    assert sorted(data.ids) == sorted(west)


def test_no_home_no_route(store, owners):
    rep = rv.get_rep(store, "R04")
    homeless = rv.Rep(rep.rep_id, rep.name, rep.email, rep.home_zip, None, None, rep.home_metro)
    ranked = rv.ranked_accounts(rv.rep_accounts(owners, "R04"))
    assert rv.visit_route(homeless, ranked, 10) is None
    payload = rep_map.overlay_payload(homeless, ranked, None, True)
    assert payload["home"] is None and payload["route"] == []


def test_page_runs_filters_and_names_the_unknown_plan(demo_store, monkeypatch):
    """The page script itself (Streamlit AppTest, no browser): KPIs, filters, a plan that does not exist."""
    from streamlit.testing.v1 import AppTest

    from tests.e2e_support import ROOT

    monkeypatch.setenv("TERRMAP_DB", str(demo_store.path))
    page = str(ROOT / "pages" / "rep_view.py")
    at = AppTest.from_file(page, default_timeout=60)
    at.query_params["rep"] = "R04"
    at.run()
    assert not at.exception
    assert len(at.metric) == 8
    accounts = rv.rep_accounts(account_owners(demo_store, rv.resolve_plan(demo_store)), "R04")
    assert at.metric[0].value == f"{len(accounts):,}"
    at.multiselect(key="rep_industry").set_value(["Software"]).run()
    table = at.dataframe[0].value
    assert len(table) and set(table["industry"]) == {"Software"}
    assert table["rank"].tolist() == list(range(1, len(table) + 1))

    bad = AppTest.from_file(page, default_timeout=60)
    bad.query_params["plan"] = "No such plan"
    bad.run()
    assert "no plan named 'No such plan'" in bad.error[0].value


def test_overlay_accounts_have_an_owner_in_the_export_and_on_a_call_list(demo_store):
    """Issue 14.12: the demo's Enterprise overlay is owned by a team; its accounts carry that owner in the CRM
    export and make up the team's call list, and every account of the demo has an owner rep."""
    plan = get_plan(demo_store)
    owners = account_owners(demo_store, plan)
    by_overlay = owners[owners["owner_kind"] == "overlay"]
    assert len(by_overlay) > 10 and (by_overlay["owner_rep_id"] == ENTERPRISE_TEAM_ID).all()
    crm = account_table(demo_store, plan).set_index("Id")
    rows = crm.loc[by_overlay["lead_id"]]
    assert (rows["OwnerId"] == ENTERPRISE_TEAM_ID).all() and (rows["Owner_Name"] == "Enterprise team").all()
    assert crm["OwnerId"].notna().all() and crm["Owner_Name"].notna().all()
    assert set(rv.rep_accounts(owners, ENTERPRISE_TEAM_ID)["lead_id"]) == set(by_overlay["lead_id"])
    assert ENTERPRISE_TEAM_ID in set(rv.plan_reps(demo_store, plan)["rep_id"])


def test_a_route_stays_on_the_land_the_rep_can_drive_to(demo_store):
    """Issue 14.2: Miami's territory holds Puerto Rico (the demo gives it the nearest rep); the route from Miami
    never goes there, Key West (joined by the Overseas Highway's bridges) stays reachable, and a round trip's
    way home is the route table's last row."""
    plan = get_plan(demo_store)
    owners = rv.with_places(demo_store, account_owners(demo_store, plan))
    feet = rv.footprints(demo_store, plan, owners)
    reps = rv.plan_reps(demo_store, plan)
    rep = rv.get_rep(demo_store, reps.loc[reps["home_metro"] == "Miami", "rep_id"].iloc[0])
    own = feet.loc[feet["rep_id"].eq(rep.rep_id) & feet["territory_id"].notna(), "region_id"].tolist()
    state = dict(demo_store.df("SELECT zip, state FROM zips").itertuples(index=False))
    puerto_rico = {r for r in own if state.get(r) == "PR"}
    florida = {r for r in own if state.get(r) == "FL"}
    assert puerto_rico and florida and "33040" in florida
    reach = rv.road_reachable(demo_store, plan, rep, own)
    assert florida <= reach and not (puerto_rico & reach)
    ranked = rv.ranked_accounts(rv.rep_accounts(owners, rep.rep_id), statuses=None)
    assert ranked["zip"].map(state).eq("PR").any()  # the call list still names them
    route, stops = rv.visit_route(rep, ranked, 12, closed=True, reachable=reach)
    assert not stops["zip"].map(state).eq("PR").any() and route.leg_km.max() < 800
    table = rv.route_table(route, stops)
    assert len(table) == len(stops) + 1 and table["name"].iloc[-1] == "Back home"
    assert table["cumulative_km"].iloc[-1] == pytest.approx(route.total_km)
    nobody = rv.Rep(**{**rep.__dict__, "home_lat": None, "home_lon": None})
    assert rv.road_reachable(demo_store, plan, nobody, own) is None
