"""Scenarios: history and restore, clone/rename/delete/publish, and comparisons checked against pandas.

The comparison tests recompute every number from the raw tables (leads, plan_assignments,
territories, account_pins) in pandas here, never through terrmap's own aggregation code.
"""

from __future__ import annotations

import json
import shutil

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terrmap.app.html_safe import esc
from terrmap.app.map_data import map_data, region_frame
from terrmap.data import scenarios as stored_scenarios
from terrmap.data.store import Store
from terrmap.geo import parse_layer
from terrmap.optimize import Optimizer, load_instance, save_candidate
from terrmap.plan import SaveConflict, create_plan, get_plan, hierarchy, load_assignment, save_assignment, territories
from terrmap.plan import scenarios as sc
from terrmap.plan.accounts import OverlayRule, account_owners, pin_account, save_overlay
from terrmap.plan.editor import EditorSession
from terrmap.plan.editor_state import EditorState

EVIL = "<script>alert(1)</script>"

_graphs: dict = {}


def graph_for_store(store):
    """One adjacency graph per layer and region set for the whole module (building a ZIP graph takes seconds;
    every copy of the demo database has the same geography)."""

    def graph_for(layer, ids):
        key = (layer.key, tuple(ids))
        if key not in _graphs:
            _graphs[key] = layer.graph(store, ids)
        return _graphs[key]

    return graph_for


def _assignment(store, plan_id):
    return load_assignment(store, plan_id).sort_values("region_id").reset_index(drop=True)


def _moved(store, plan, n, to, start=0):
    """The plan's assignment with ``n`` regions (from ``start``, in region order) moved to territory ``to``."""
    a = _assignment(store, plan.plan_id)
    a.loc[start:start + n - 1, "territory_id"] = to
    return a


# ---------------------------------------------------------------------------
# history
# ---------------------------------------------------------------------------


def test_every_write_records_a_version_numbered_like_the_plan(demo_store):
    plan = get_plan(demo_store)
    hist = sc.plan_history(demo_store, plan)
    assert hist["version"].tolist() == [1] and hist["note"].tolist() == ["created"]
    saved = save_assignment(demo_store, plan, _moved(demo_store, plan, 40, 2), author="ana")
    assert saved.version == 2 == demo_store.scalar("SELECT version FROM plans WHERE plan_id = ?", [plan.plan_id])
    snap = demo_store.df("SELECT region_id, territory_id, locked FROM plan_version_assignments "
                         "WHERE plan_id = ? AND version = 2 ORDER BY region_id", [plan.plan_id])
    pd.testing.assert_frame_equal(snap, _assignment(demo_store, plan.plan_id), check_dtype=False)
    hist = sc.plan_history(demo_store, saved)
    assert hist["version"].tolist() == [2, 1]
    assert hist.loc[0, "author"] == "ana" and hist.loc[0, "note"] == "saved"
    before = _assignment(demo_store, plan.plan_id)
    # regions changed = independent count of regions whose territory differs from version 1
    v1 = demo_store.df("SELECT region_id, territory_id FROM plan_version_assignments WHERE plan_id = ? AND version = 1",
                       [plan.plan_id]).set_index("region_id")["territory_id"]
    now = before.set_index("region_id")["territory_id"]
    assert hist.loc[0, "regions_changed"] == int((v1.reindex(now.index) != now).sum())
    assert pd.isna(hist.loc[1, "regions_changed"])


def test_restore_round_trip_restores_territories_and_assignment_exactly(demo_store):
    plan = get_plan(demo_store)
    v1_terr = territories(demo_store, plan.plan_id)
    v1_asg = _assignment(demo_store, plan.plan_id)
    edited = _moved(demo_store, plan, 300, 5)
    edited.loc[10:20, "locked"] = True
    terr = v1_terr.copy()
    terr.loc[0, "name"] = "Renamed"
    terr.loc[1, "target"] = 123456.0
    v2 = save_assignment(demo_store, plan, edited, territories=terr, author="bo")
    v3 = sc.restore_version(demo_store, v2, 1, author="cy")
    assert v3.version == 3
    restored_terr = territories(demo_store, plan.plan_id)
    cols = ["territory_id", "name", "color", "rep_id", "target", "tolerance", "parent"]
    # the parent (hierarchy) is not part of a version: it stays as it is now (here: as at version 1)
    pd.testing.assert_frame_equal(restored_terr[cols], v1_terr[cols], check_dtype=False)
    pd.testing.assert_frame_equal(_assignment(demo_store, plan.plan_id), v1_asg, check_dtype=False)
    hist = sc.plan_history(demo_store, v3)
    assert hist["note"].tolist() == ["restored version 1", "saved", "created"]
    assert hist["author"].tolist()[:2] == ["cy", "bo"]
    really_moved = int((v1_asg.territory_id[:300] != 5).sum())
    assert 0 < really_moved and hist["regions_changed"].tolist() == [really_moved, really_moved, pd.NA]
    # restoring the restored state back to version 2 brings the edit back
    v4 = sc.restore_version(demo_store, v3, 2)
    pd.testing.assert_frame_equal(_assignment(demo_store, plan.plan_id),
                                  edited.sort_values("region_id").reset_index(drop=True), check_dtype=False)
    assert territories(demo_store, plan.plan_id).loc[0, "name"] == "Renamed" and v4.version == 4


def test_restore_of_an_unknown_version_is_a_clear_error_and_writes_nothing(demo_store):
    plan = get_plan(demo_store)
    with pytest.raises(ValueError, match="no recorded version 9"):
        sc.restore_version(demo_store, plan, 9)
    assert demo_store.scalar("SELECT count(*) FROM plan_versions WHERE plan_id = ?", [plan.plan_id]) == 1


def test_concurrent_restore_and_save_conflict(demo_store):
    plan = get_plan(demo_store)
    v2 = save_assignment(demo_store, plan, _moved(demo_store, plan, 50, 3))
    mine = v2  # I look at version 2 and decide to restore version 1 ...
    theirs = save_assignment(demo_store, v2, _moved(demo_store, v2, 80, 4, start=100))  # ... a colleague saves first
    with pytest.raises(SaveConflict):
        sc.restore_version(demo_store, mine, 1)
    assert demo_store.scalar("SELECT version FROM plans WHERE plan_id = ?", [plan.plan_id]) == theirs.version == 3
    assert demo_store.scalar("SELECT max(version) FROM plan_versions WHERE plan_id = ?", [plan.plan_id]) == 3
    # and the other way round: a restore wins, the stale save is refused
    restored = sc.restore_version(demo_store, theirs, 1)
    with pytest.raises(SaveConflict):
        save_assignment(demo_store, theirs, _moved(demo_store, theirs, 10, 2))
    assert demo_store.scalar("SELECT version FROM plans WHERE plan_id = ?", [plan.plan_id]) == restored.version


def test_a_plan_from_before_history_gets_its_state_recorded_before_the_first_save(demo_store):
    plan = get_plan(demo_store)
    demo_store.cursor().execute("DELETE FROM plan_versions; DELETE FROM plan_version_assignments")
    before = _assignment(demo_store, plan.plan_id)
    v2 = save_assignment(demo_store, plan, _moved(demo_store, plan, 20, 2))
    assert sc.plan_history(demo_store, v2)["version"].tolist() == [2, 1]
    sc.restore_version(demo_store, v2, 1)
    pd.testing.assert_frame_equal(_assignment(demo_store, plan.plan_id), before, check_dtype=False)


# ---------------------------------------------------------------------------
# lifecycle
# ---------------------------------------------------------------------------


def _decorate(store, plan):
    """Give a plan rows in every side table: locks, a pin, an overlay, hierarchy nodes."""
    a = _assignment(store, plan.plan_id)
    a.loc[:25, "locked"] = True
    plan = save_assignment(store, plan, a, changes=[{"regions": list(a.region_id[:3]), "to_territory": 1}])
    lead = store.scalar("SELECT min(lead_id) FROM leads")
    pin_account(store, plan.plan_id, lead, 2, reason="key account")
    k = plan.plan_id  # names and node ids unique per plan: a clone already holds its original's
    save_overlay(store, plan.plan_id, f"Enterprise {k}", OverlayRule(min_employees=1000), rep_id="R01",
                 territories=[1, 2])
    store.cursor().execute("INSERT INTO hierarchy_nodes VALUES (?, ?, 'West', 'Region', NULL, '#123456'), "
                           "(?, ?, 'Pacific NW', 'Division', ?, NULL)",
                           [k, f"west{k}", k, f"pnw{k}", f"west{k}"])
    return plan, lead


def _rows(store, table, plan_id):
    df = store.df(f"SELECT * EXCLUDE (plan_id) FROM {table} WHERE plan_id = ?", [plan_id])
    return df.sort_values(list(df.columns[:2])).reset_index(drop=True)


def test_clone_copies_every_part_and_is_independent(demo_store):
    plan, lead = _decorate(demo_store, get_plan(demo_store))
    clone = sc.clone_plan(demo_store, plan, "What if", author="dee")
    assert clone.version == 1 and not clone.published and clone.layer == plan.layer
    for table in ["territories", "plan_assignments", "hierarchy_nodes", "account_pins", "overlays"]:
        pd.testing.assert_frame_equal(_rows(demo_store, table, clone.plan_id), _rows(demo_store, table, plan.plan_id))
        assert len(_rows(demo_store, table, plan.plan_id)) > 0, table
    hist = sc.plan_history(demo_store, clone)
    assert hist["note"].tolist() == [f"cloned from {plan.name} v{plan.version}"] and hist["author"][0] == "dee"
    assert demo_store.scalar("SELECT count(*) FROM plan_changes WHERE plan_id = ?", [clone.plan_id]) == 0
    # editing the clone leaves the original alone
    original = {t: _rows(demo_store, t, plan.plan_id) for t in ["territories", "plan_assignments", "account_pins"]}
    terr = territories(demo_store, clone.plan_id)
    terr.loc[0, "name"] = "Only in the clone"
    save_assignment(demo_store, clone, _moved(demo_store, clone, 500, 7, start=1000), territories=terr)
    pin_account(demo_store, clone.plan_id, lead, 5)
    for t, df in original.items():
        pd.testing.assert_frame_equal(_rows(demo_store, t, plan.plan_id), df)


def test_delete_removes_every_row_of_that_plan_and_nothing_else(demo_store):
    plan, _ = _decorate(demo_store, get_plan(demo_store))
    clone = sc.clone_plan(demo_store, plan, "Doomed")
    _decorate(demo_store, clone)
    tables = stored_scenarios.plan_tables(demo_store.cursor())
    expected = {"plans", "territories", "plan_assignments", "plan_changes", "plan_versions",
                "plan_version_assignments", "hierarchy_nodes", "account_pins", "overlays"}
    assert expected <= set(tables)
    before = {t: demo_store.scalar(f"SELECT count(*) FROM {t} WHERE plan_id = ?", [plan.plan_id]) for t in tables}
    assert all(demo_store.scalar(f"SELECT count(*) FROM {t} WHERE plan_id = ?", [clone.plan_id]) > 0
               for t in expected)
    sc.delete_plan(demo_store, get_plan(demo_store, clone.plan_id))
    for t in tables:
        assert demo_store.scalar(f"SELECT count(*) FROM {t} WHERE plan_id = ?", [clone.plan_id]) == 0, t
        assert demo_store.scalar(f"SELECT count(*) FROM {t} WHERE plan_id = ?", [plan.plan_id]) == before[t], t


def test_the_published_plan_is_deleted_only_when_it_is_the_last(demo_store):
    plan = get_plan(demo_store)
    other = sc.clone_plan(demo_store, plan, "Other")
    with pytest.raises(ValueError, match="publish another scenario"):
        sc.delete_plan(demo_store, plan)
    assert get_plan(demo_store, plan.plan_id) is not None
    sc.delete_plan(demo_store, other)
    sc.delete_plan(demo_store, plan)
    assert demo_store.scalar("SELECT count(*) FROM plans") == 0


@pytest.fixture(scope="module")
def four_plans(demo_db_path, tmp_path_factory):
    """One store with the demo plan and three clones, shared by the examples below: each example starts
    from whatever the last one published, which is one more state the property must hold from."""
    path = tmp_path_factory.mktemp("publish") / "demo.duckdb"
    shutil.copy(demo_db_path, path)
    store = Store(path)
    base = get_plan(store)
    yield store, [base] + [sc.clone_plan(store, base, f"P{i}") for i in range(3)]
    store.close()


@settings(max_examples=12, deadline=None)
@given(picks=st.lists(st.integers(0, 3), min_size=1, max_size=8))
def test_publish_keeps_exactly_one_published(four_plans, picks):
    store, plans = four_plans
    for k in picks:
        sc.publish_plan(store, plans[k])
        published = store.df("SELECT plan_id FROM plans WHERE published")["plan_id"].tolist()
        assert published == [plans[k].plan_id]
        assert get_plan(store).plan_id == plans[k].plan_id  # the default plan everywhere


def test_names_are_checked_and_stored_as_written(demo_store):
    plan = get_plan(demo_store)
    n_plans = demo_store.scalar("SELECT count(*) FROM plans")
    for bad, message in [(plan.name, "already exists"), ("  " + plan.name.upper() + " ", "already exists"),
                         ("   ", "needs a name"), ("x" * 200, "at most")]:
        with pytest.raises(ValueError, match=message):
            sc.clone_plan(demo_store, plan, bad)
    assert demo_store.scalar("SELECT count(*) FROM plans") == n_plans  # nothing written
    evil = sc.clone_plan(demo_store, plan, EVIL)
    assert get_plan(demo_store, evil.plan_id).name == EVIL
    with pytest.raises(ValueError, match="already exists"):
        sc.rename_plan(demo_store, evil, plan.name)
    assert sc.rename_plan(demo_store, evil, f" {EVIL} ").name == EVIL  # its own name is fine
    renamed = sc.rename_plan(demo_store, evil, "Plan {{ 7*7 }}")
    assert get_plan(demo_store, renamed.plan_id).name == "Plan {{ 7*7 }}"


# ---------------------------------------------------------------------------
# comparison against an independent computation
# ---------------------------------------------------------------------------


def _raw_leads(store) -> pd.DataFrame:
    leads = store.df("SELECT lead_id, zip, status, score, expected_value, employees FROM leads")
    leads["potential"] = np.where(leads["status"] == "open", (leads["score"] * leads["expected_value"]).fillna(0), 0.0)
    return leads


def _independent(store, plan_id: int, leads: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Per territory name: leads, potential, customers, regions, deviation; and each lead's owner name.

    Geography: a ZIP-layer plan puts a lead in the region of its ``zip``; an overlay (the demo's rules
    are employee thresholds over listed territories) takes the accounts it matches; a pin beats both.
    Overlay-owned accounts count for no territory.
    """
    asg = store.df("SELECT region_id, territory_id FROM plan_assignments WHERE plan_id = ?", [plan_id])
    terr = store.df("SELECT territory_id, name, target FROM territories WHERE plan_id = ?", [plan_id])
    pins = store.df("SELECT lead_id, territory_id AS pin FROM account_pins WHERE plan_id = ?", [plan_id])
    overlays = store.df("SELECT name, rule::VARCHAR AS rule, territories, priority, overlay_id FROM overlays "
                        "WHERE plan_id = ? ORDER BY priority DESC, overlay_id", [plan_id])
    owned = leads.merge(asg, left_on="zip", right_on="region_id", how="left").merge(pins, on="lead_id", how="left")
    owned = owned.merge(terr[["territory_id", "name"]], on="territory_id", how="left")
    owned["overlay"] = None
    for o in overlays.itertuples():
        rule = json.loads(o.rule)
        assert set(rule) == {"min_employees"}, "this check knows employee thresholds only"
        hit = (owned["employees"] >= rule["min_employees"]) & owned["overlay"].isna()
        if o.territories is not None:
            hit &= owned["territory_id"].isin(list(o.territories))
        owned.loc[hit, "overlay"] = o.name
    pinned = owned["pin"].notna()
    owned.loc[pinned, "overlay"] = None
    owned["territory_id"] = owned["pin"].combine_first(owned["territory_id"].where(owned["overlay"].isna()))
    owned = owned.drop(columns="name").merge(terr[["territory_id", "name"]], on="territory_id", how="left")
    owned["owner"] = owned["name"].where(owned["overlay"].isna(), owned["overlay"])
    per = owned.groupby("name").agg(leads=("lead_id", "size"), potential=("potential", "sum"),
                                    customers=("status", lambda s: int((s == "won").sum())))
    regions = asg.dropna(subset=["territory_id"]).merge(terr, on="territory_id").groupby("name").size()
    t = terr.set_index("name")
    per = per.reindex(t.index).fillna(0)
    per["regions"] = regions.reindex(t.index).fillna(0)
    target = t["target"].fillna(per["potential"].mean())
    per["deviation"] = (per["potential"] - target) / target
    return per, owned.set_index("lead_id")["owner"].fillna("Unassigned")


def _make_b(store, a):
    """B: a clone with regions moved, one territory renamed, a set target and a pinned account."""
    b = sc.clone_plan(store, a, "B")
    terr = territories(store, b.plan_id)
    terr.loc[terr.territory_id == 2, "name"] = "Brand new"
    terr.loc[terr.territory_id == 4, "target"] = 250_000.0
    b = save_assignment(store, b, _moved(store, b, 700, 6, start=2000), territories=terr)
    lead = store.scalar("SELECT lead_id FROM leads WHERE status = 'open' ORDER BY score * expected_value DESC LIMIT 1")
    pin_account(store, b.plan_id, lead, 9)
    return get_plan(store, b.plan_id), lead


def test_comparison_deltas_equal_an_independent_pandas_computation(demo_store):
    a = get_plan(demo_store)
    b, pinned = _make_b(demo_store, a)
    cmp = sc.compare_plans(demo_store, a, b, graph_for=graph_for_store(demo_store))
    leads = _raw_leads(demo_store)
    ia, owner_a = _independent(demo_store, a.plan_id, leads)
    ib, owner_b = _independent(demo_store, b.plan_id, leads)
    t = cmp.territories.set_index("territory")
    assert set(t.index) == set(ia.index) | set(ib.index)
    only_a, only_b = set(ia.index) - set(ib.index), set(ib.index) - set(ia.index)
    assert only_b == {"Brand new"} and len(only_a) == 1
    assert not t.loc[list(only_a), "in_b"].any() and t.loc[list(only_a), "potential_b"].isna().all()
    for m in sc.TERRITORY_MEASURES:
        va, vb = ia[m].reindex(t.index), ib[m].reindex(t.index)
        np.testing.assert_allclose(t[f"{m}_a"], va, rtol=1e-9, atol=1e-6, err_msg=m)
        np.testing.assert_allclose(t[f"{m}_b"], vb, rtol=1e-9, atol=1e-6, err_msg=m)
        expected = vb - va if m == "deviation" else vb.fillna(0) - va.fillna(0)
        np.testing.assert_allclose(t[f"{m}_delta"], expected, rtol=1e-9, atol=1e-6, err_msg=m)
    assert (t["leads_delta"] != 0).sum() >= 3  # the moves really changed something
    for side, owner, ind in (("a", owner_a, ia), ("b", owner_b, ib)):  # each lead counted once: territory or not
        assert t[f"leads_{side}"].sum() + (~owner.isin(ind.index)).sum() == len(leads)

    pm = cmp.plan_metrics
    for side, ind in (("a", ia), ("b", ib)):
        pot = ind["potential"].to_numpy()
        assert pm.loc["max_abs_deviation", side] == pytest.approx(np.abs(ind["deviation"]).max(), rel=1e-9)
        assert pm.loc["cv", side] == pytest.approx(pot.std() / pot.mean(), rel=1e-9)
        assert pm.loc["territories", side] == len(ind)
    np.testing.assert_allclose(pm["delta"], pm["b"] - pm["a"], atol=1e-12)

    # regions whose territory (matched by name, like the table) changed, with their potential
    # (ZIP layer: region = the lead's zip); the renamed territory's regions count as changed
    q = ("SELECT a.region_id, t.name FROM plan_assignments a JOIN territories t USING (plan_id, territory_id) "
         "WHERE plan_id = ?")
    both = demo_store.df(q, [a.plan_id]).merge(demo_store.df(q, [b.plan_id]), on="region_id")
    changed = set(both.loc[both.name_x != both.name_y, "region_id"])
    assert len(changed) > 0 and set(cmp.changed_regions["region_id"]) == changed
    region_pot = leads.groupby("zip")["potential"].sum()
    got = cmp.changed_regions.set_index("region_id")["potential"]
    np.testing.assert_allclose(got, region_pot.reindex(got.index).fillna(0), rtol=1e-9)
    assert got.is_monotonic_decreasing

    # accounts that change owner (the pin included), with the potential that moves
    moved = owner_a.index[owner_a != owner_b.reindex(owner_a.index)]
    assert set(cmp.moved_accounts["lead_id"]) == set(moved) and pinned in set(moved)
    assert cmp.accounts_moved == len(moved)
    assert cmp.potential_moved == pytest.approx(leads.set_index("lead_id").loc[moved, "potential"].sum(), rel=1e-9)
    # the share is of the accounts either plan owns
    either = (owner_a != "Unassigned") | (owner_b.reindex(owner_a.index) != "Unassigned")
    owned = leads.set_index("lead_id")["potential"].reindex(owner_a.index)[either]
    assert cmp.potential_moved_share == pytest.approx(cmp.potential_moved / owned.sum(), rel=1e-9)
    row = cmp.moved_accounts.set_index("lead_id").loc[pinned]
    assert (row["from_owner"], row["to_owner"]) == (owner_a[pinned], owner_b[pinned])
    assert cmp.moved_accounts["potential"].is_monotonic_decreasing


def test_contiguity_and_compactness_match_networkx(demo_store):
    a = get_plan(demo_store)
    b, _ = _make_b(demo_store, a)
    gf = graph_for_store(demo_store)
    cmp = sc.compare_plans(demo_store, a, b, graph_for=gf)
    for side, plan in (("a", a), ("b", b)):
        asg = load_assignment(demo_store, plan.plan_id).set_index("region_id")["territory_id"]
        from terrmap.data.stats import region_stats

        ids = sorted(set(asg.index) | set(region_stats(demo_store, parse_layer(plan.layer))["region_id"]))
        g = gf(parse_layer(plan.layer), ids)
        nxg = nx.Graph()
        nxg.add_nodes_from(range(g.n))
        nxg.add_edges_from(g.edges.tolist())
        land = nx.Graph()  # the raw adjacency: shared borders only, no bridges
        land.add_nodes_from(range(g.n))
        land.add_edges_from(g.edges[~g.is_bridge].tolist())
        terr_of = asg.reindex(ids).to_numpy()
        pieces, land_pieces = {}, {}
        for t in pd.unique(terr_of[~pd.isna(terr_of)]):
            members = [i for i in range(g.n) if terr_of[i] == t]
            pieces[t] = nx.number_connected_components(nxg.subgraph(members))
            land_pieces[t] = nx.number_connected_components(land.subgraph(members))
        assert cmp.plan_metrics.loc["non_contiguous", side] == sum(v > 1 for v in pieces.values())
        assert cmp.plan_metrics.loc["in_pieces_by_water", side] == sum(
            pieces[t] == 1 and land_pieces[t] > 1 for t in pieces)
        cut = sum(1 for i, j in g.edges.tolist() if terr_of[i] != terr_of[j])
        assert cmp.plan_metrics.loc["cut_edge_share", side] == pytest.approx(cut / len(g.edges), rel=1e-12)
    assert cmp.plan_metrics.loc["non_contiguous", "delta"] == (
        cmp.plan_metrics.loc["non_contiguous", "b"] - cmp.plan_metrics.loc["non_contiguous", "a"])


def test_a_plan_compared_with_its_clone_shows_no_change(demo_store):
    a = get_plan(demo_store)
    b = sc.clone_plan(demo_store, a, "Same")
    cmp = sc.compare_plans(demo_store, a, b, graph_for=graph_for_store(demo_store))
    deltas = cmp.territories[[c for c in cmp.territories if c.endswith("_delta")]]
    assert (deltas.to_numpy() == 0).all()
    assert (cmp.plan_metrics["delta"] == 0).all()
    assert cmp.changed_regions.empty and cmp.moved_accounts.empty and cmp.potential_moved == 0


@settings(max_examples=4, deadline=None)  # each example compares two national plans (~1 s)
@given(moves=st.lists(st.tuples(st.integers(0, 32_000), st.integers(1, 400), st.integers(1, 20)),
                      min_size=1, max_size=4))
def test_random_edits_deltas_and_moves_match_pandas(module_demo_store, moves):
    store = module_demo_store
    a = get_plan(store)
    b = sc.clone_plan(store, a, "H" + json.dumps(moves))
    try:
        asg = _assignment(store, b.plan_id)
        for start, n, to in moves:
            asg.loc[start:start + n - 1, "territory_id"] = to
        b = save_assignment(store, b, asg)
        cmp = sc.compare_plans(store, a, b, graph_for=graph_for_store(store))
        leads = _raw_leads(store)
        ia, owner_a = _independent(store, a.plan_id, leads)
        ib, owner_b = _independent(store, b.plan_id, leads)
        t = cmp.territories.set_index("territory")
        for m in ["leads", "potential", "customers", "regions"]:
            np.testing.assert_allclose(t[f"{m}_delta"], (ib[m] - ia[m]).reindex(t.index), rtol=1e-9, atol=1e-6)
        base = _assignment(store, a.plan_id)
        assert len(cmp.changed_regions) == int((base["territory_id"] != asg["territory_id"]).sum())
        assert cmp.accounts_moved == int((owner_a != owner_b.reindex(owner_a.index)).sum())
    finally:
        sc.delete_plan(store, b)


def test_plan_on_another_layer_is_compared_on_the_first_plans_layer(demo_store):
    a = get_plan(demo_store)
    layer = parse_layer("h3:4")
    from terrmap.plan import Territory, assignment_for_layer

    terr = territories(demo_store, a.plan_id)
    hex_asg = assignment_for_layer(demo_store, a, layer)
    hex_asg.loc[:30, "territory_id"] = 1  # B differs from A's projection in a few hexagons
    b_id = create_plan(demo_store, "Hexagons", "h3:4",
                       [Territory(r.territory_id, r.name, r.color, r.rep_id) for r in terr.itertuples()], hex_asg)
    b = get_plan(demo_store, b_id)
    cmp = sc.compare_plans(demo_store, a, b, graph_for=graph_for_store(demo_store))
    projected = assignment_for_layer(demo_store, b, parse_layer("zip")).set_index("region_id")["territory_id"]
    base = load_assignment(demo_store, a.plan_id).set_index("region_id")["territory_id"]
    names = dict(zip(terr.territory_id, terr.name))
    expect = {r for r in base.index if names.get(base[r]) != names.get(projected.get(r), "Unassigned")}
    assert set(cmp.changed_regions["region_id"]) == expect
    assert cmp.changed_regions["region_id"].str.fullmatch(r"\d{5}").all()  # ZIPs: A's layer


def test_list_scenarios_headline_metrics(demo_store):
    a = get_plan(demo_store)
    b, _ = _make_b(demo_store, a)
    save_assignment(demo_store, b, _assignment(demo_store, b.plan_id), author="eve")
    df = sc.list_scenarios(demo_store, graph_for=graph_for_store(demo_store)).set_index("name")
    assert list(df.index) == [a.name, "B"] and df.loc[a.name, "published"] and not df.loc["B", "published"]
    assert df.loc["B", "author"] == "eve" and df.loc["B", "version"] == 3
    # A save without a name is nobody's: not eve's, the saver before.
    save_assignment(demo_store, get_plan(demo_store, b.plan_id), _assignment(demo_store, b.plan_id))
    again = sc.list_scenarios(demo_store, graph_for=graph_for_store(demo_store)).set_index("name")
    assert pd.isna(again.loc["B", "author"]) and again.loc["B", "version"] == 4
    assert df.loc[a.name, "territories"] == 20 and df.loc[a.name, "regions"] == len(load_assignment(demo_store, 1))
    ia, _ = _independent(demo_store, a.plan_id, _raw_leads(demo_store))
    assert df.loc[a.name, "max_abs_deviation"] == pytest.approx(np.abs(ia["deviation"]).max(), rel=1e-9)
    assert df["non_contiguous"].notna().all()


# ---------------------------------------------------------------------------
# the diff map
# ---------------------------------------------------------------------------


def test_diff_map_colours_changed_regions_by_their_new_territory_and_escapes_names(demo_store):
    a = get_plan(demo_store)
    b = sc.clone_plan(demo_store, a, "Evil")
    terr = territories(demo_store, b.plan_id)
    terr.loc[terr.territory_id == 6, "name"] = EVIL
    b = save_assignment(demo_store, b, _moved(demo_store, b, 400, 6, start=5000), territories=terr)
    cmp = sc.compare_plans(demo_store, a, b, graph_for=graph_for_store(demo_store))
    layer = parse_layer(a.layer)
    from terrmap.data.stats import region_stats

    frame = region_frame(region_stats(demo_store, layer))
    out, entries = sc.diff_map_frame(frame, cmp.changed_regions)
    assert len(out) == len(frame)
    by_region = out.set_index("region_id")["territory_id"]
    changed_with_leads = set(cmp.changed_regions["region_id"]) & set(frame["region_id"])
    assert (by_region[list(changed_with_leads)] > 0).all()
    assert (by_region.drop(list(changed_with_leads)) == 0).all()
    colors = entries.set_index("territory_id")["color"]
    to_color = dict(zip(terr.name, terr.color))
    for pair in entries[entries.territory_id > 0].itertuples():
        assert pair.name.endswith(" → " + EVIL) or pair.name.split(" → ")[1] in to_color
        assert colors[pair.territory_id] == terr.set_index("territory_id").loc[6, "color"]
    assert colors[0] == sc.UNCHANGED_COLOR
    data = map_data(out[out.region_id.isin(list(changed_with_leads)[:50])], {}, entries)
    assert all(EVIL not in label for label in data.territories)
    assert any(esc(EVIL) in label for label in data.territories)


def _derived_things(store, plan_id: int) -> dict:
    """What a derived plan must carry over from its base: pins, overlays, hierarchy, territory parents."""
    q = {
        "pins": "SELECT lead_id, territory_id, reason FROM account_pins WHERE plan_id = ? ORDER BY lead_id",
        "overlays": "SELECT name, rule::VARCHAR AS rule, territories, priority, rep_id FROM overlays "
                    "WHERE plan_id = ? ORDER BY name",
        "nodes": "SELECT node_id, name, level, parent FROM hierarchy_nodes WHERE plan_id = ? ORDER BY node_id",
        "parents": "SELECT territory_id, parent FROM territories WHERE plan_id = ? ORDER BY territory_id",
    }
    return {k: store.df(sql, [plan_id]).reset_index(drop=True) for k, sql in q.items()}


def test_every_way_to_derive_a_plan_keeps_its_hierarchy_pins_and_overlays(demo_store):
    """Issue 14.1: the Optimizer's rebalance, the Editor's "Save as" and Scenarios' clone all keep the base plan's
    named-account pins, overlays and hierarchy; comparing with the base moves no overlay account."""
    base = get_plan(demo_store)
    want = _derived_things(demo_store, base.plan_id)
    assert len(want["pins"]) and len(want["overlays"]) and len(want["nodes"])  # the demo has all three
    derived = {"clone": sc.clone_plan(demo_store, base, "Cloned").plan_id}
    state = EditorState(EditorSession.open(demo_store, base))
    state.apply_to_group("state", "RI", state.territory_ids()[0])
    derived["save as"] = state.save_as("Saved as", author="ann")
    inst = load_instance(demo_store, "zip", states=["RI", "CT", "MA"], base_plan=base)
    res = Optimizer(inst, None, "potential", 0.10, max_disruption=0.2, iterations=100).solve()
    assert res.mode == "rebalance"
    derived["rebalance"] = save_candidate(demo_store, res, "Rebalanced", author="bob")
    owners_base = account_owners(demo_store, base).set_index("lead_id")
    by_overlay = owners_base["owner_kind"] == "overlay"
    assert by_overlay.sum() > 10
    for how, plan_id in derived.items():
        got = _derived_things(demo_store, plan_id)
        for k in want:
            pd.testing.assert_frame_equal(got[k], want[k], obj=f"{how}: {k}")
        assert hierarchy.check(demo_store, plan_id) == [], how
        # An overlay account keeps its overlay owner unless its region moved out of the overlay's territories.
        owners = account_owners(demo_store, get_plan(demo_store, plan_id)).set_index("lead_id").reindex(
            owners_base.index)
        same_geo = owners["geo_territory_id"].eq(owners_base["geo_territory_id"]).fillna(False)
        kept = owners.loc[by_overlay & same_geo, "owner_kind"]
        assert len(kept) > 5 and (kept == "overlay").all(), how
    history = sc.plan_history(demo_store, get_plan(demo_store, derived["rebalance"])).sort_values("version")
    assert history["note"].iloc[0].startswith("cloned from") and history["author"].iloc[-1] == "bob"
