"""The editing session: gestures, locks, undo, balance table, hints, saving with conflicts."""

import numpy as np
import pandas as pd
import pytest

from terrmap.data.stats import region_stats
from terrmap.data.zip_groups import regions_in
from terrmap.geo import parse_layer
from terrmap.plan import SaveConflict, load_assignment
from terrmap.plan.editor import EditorSession


@pytest.fixture
def session(demo_store):
    return EditorSession.open(demo_store)


def _independent_totals(store, assignment: pd.DataFrame) -> pd.Series:
    stats = region_stats(store, parse_layer("zip")).merge(assignment, on="region_id")
    return stats.groupby("territory_id")["potential"].sum()


def test_balance_table_matches_an_independent_sum(demo_store):
    # Geography only (the demo's named accounts and overlay removed): totals are sums of region stats.
    demo_store.cursor().execute("DELETE FROM account_pins; DELETE FROM overlays")
    session = EditorSession.open(demo_store)
    table = session.balance_table("potential").set_index("territory_id")
    indep = _independent_totals(demo_store, load_assignment(demo_store, session.info.plan_id))
    np.testing.assert_allclose(table.loc[indep.index, "potential"], indep.to_numpy(), rtol=1e-9)
    assert table["regions"].sum() == (session.plan.assignment >= 0).sum()
    mean = table["potential"].mean()
    np.testing.assert_allclose(table["deviation"], table["potential"] / mean - 1, atol=1e-12)


def test_named_accounts_count_where_owned_through_edits_and_deletes(demo_store):
    """Pinned accounts count for their territory and overlay accounts for nobody in the balance, as in
    accounts.territory_metrics (checked against pandas in test_accounts), before and after edits."""
    from terrmap.plan.accounts import account_owners, territory_metrics

    def check(ses):
        table = ses.balance_table("potential").set_index("territory_id")
        ref = territory_metrics(demo_store, ses.info)
        ref = ref[ref["owner_kind"] == "territory"].set_index("owner_id")
        for col in ("leads", "customers", "potential"):
            np.testing.assert_allclose(table[col].to_numpy(float), ref.loc[table.index, col].to_numpy(float),
                                       rtol=1e-9, atol=1e-6, err_msg=col)

    ses = EditorSession.open(demo_store)
    owners = account_owners(demo_store, ses.info)
    pins = owners[owners["rule"] == "pin"]
    assert len(pins) and (owners["rule"] == "overlay").any()
    check(ses)
    # Move the pinned accounts' regions away from their territory (not the overlay's territories 1-4):
    # the pinned accounts stay where they are pinned.
    pinned_to = set(pins["owner_id"].astype(int))
    free = [int(t) for t in ses.terr["territory_id"] if int(t) > 4 and int(t) not in pinned_to]
    regions = [r for r, g in zip(pins["region_id"], pins["geo_territory_id"]) if pd.notna(g) and int(g) > 4]
    moved = ses.assign(regions, free[0])
    check(ses.__class__.open(demo_store, ses.save()) if moved.regions else ses)
    # Deleting a territory with a pin: its pinned accounts go back to geography.
    ses = EditorSession.open(demo_store)
    victim = int(pins["owner_id"].iloc[0])
    before = ses.balance_table("potential")["potential"].sum()
    ses.delete_territory(victim)
    saved = ses.save()
    check(ses)
    check(EditorSession.open(demo_store, saved))
    assert ses.balance_table("potential")["potential"].sum() < before  # the deleted territory's regions left


def test_state_gesture_moves_potential_and_reports_it(session, demo_store):
    ri = regions_in(demo_store, session.layer, states=["RI"])
    target = int(session.terr["territory_id"].iloc[0])
    before = session.balance_table().set_index("territory_id")["potential"]
    report = session.assign(ri, target, gesture="state")
    after = session.balance_table().set_index("territory_id")["potential"]
    assert set(report.regions) <= set(ri) and report.regions
    assert after[target] - before[target] == pytest.approx(report.potential)
    assert "→" in report.text and str(len(report.regions)) in report.text
    assert session.balance_table().set_index("territory_id").at[target, "change_since_save"] == pytest.approx(report.potential)


def test_locks_hold_and_undo_restores(session, demo_store):
    ri = regions_in(demo_store, session.layer, states=["RI"])
    start = session.assignment_frame().copy()
    session.set_locked(ri[:3], True)
    to = int(session.terr["territory_id"].iloc[-1])
    report = session.assign(ri, to)
    assert not set(ri[:3]) & set(report.regions)
    assert "locked" in report.text
    session.undo()
    pd.testing.assert_frame_equal(session.assignment_frame().drop(columns="locked"), start.drop(columns="locked"))


def test_hints_reduce_imbalance_and_keep_territories_whole(session):
    before = session.summary()["max_abs_deviation"]
    hints = session.hints("potential", n=5)
    assert hints
    table = session.balance_table().set_index("territory_id")
    worst = table["deviation"].abs().idxmax()
    assert any(worst in (h.from_territory, h.to_territory) for h in hints)
    pieces_before = table["pieces"]
    h = hints[0]
    dev_before = table.loc[[h.from_territory, h.to_territory], "deviation"].abs().sum()
    session.apply_hint(h)
    table2 = session.balance_table().set_index("territory_id")
    assert table2.loc[[h.from_territory, h.to_territory], "deviation"].abs().sum() < dev_before
    assert table2.at[h.from_territory, "pieces"] <= pieces_before[h.from_territory]
    assert session.summary()["max_abs_deviation"] <= before + 1e-12


def test_two_sessions_conflict_then_merge_keeps_both(demo_store):
    a = EditorSession.open(demo_store)
    b = EditorSession.open(demo_store)
    ri = regions_in(demo_store, a.layer, states=["RI"])
    de = regions_in(demo_store, a.layer, states=["DE"])
    t1, t2 = (int(x) for x in a.terr["territory_id"].iloc[:2])
    a.assign(ri, t1)
    b.assign(de, t2)
    a.save(author="alice")
    with pytest.raises(SaveConflict):
        b.save(author="bob")
    b_info, conflicts = b.merge_and_save(SaveConflict(b.info.name, b.info.version, a.info.version,
                                                      load_assignment(demo_store, a.info.plan_id)), author="bob")
    assert conflicts == []
    saved = load_assignment(demo_store, b_info.plan_id).set_index("region_id").territory_id
    assert (saved[ri] == t1).all() and (saved[de] == t2).all()
    log = demo_store.df("SELECT author, to_territory, len(regions) n FROM plan_changes ORDER BY change_id")
    assert list(log.author) == ["alice", "bob"]


def test_new_territory_is_saved(session, demo_store):
    new_id = session.add_territory("Pacific <b>NW</b>")
    session.assign(regions_in(demo_store, session.layer, states=["RI"]), new_id)
    session.save()
    names = demo_store.df("SELECT name FROM territories WHERE plan_id = ?", [session.info.plan_id]).name.tolist()
    assert "Pacific <b>NW</b>" in names
    again = EditorSession.open(demo_store, session.info.name)
    assert again.balance_table().set_index("territory_id").at[new_id, "regions"] > 0


def test_a_one_state_plan_opens_its_area_only(demo_store):
    """A complete plan of one state holds that state's region ZIPs (listed from the zips table here) and nothing
    else: the populated regions of other states are no part of it, so none shows as unassigned."""
    from terrmap.plan import Territory, assignment_for_layer, create_plan, get_plan, territories

    demo = get_plan(demo_store)
    zips = demo_store.cursor().execute("SELECT zip, region_zip, lat, state FROM zips").df()
    region_zips = zips[(zips["zip"] == zips["region_zip"]) & zips["lat"].notna()]
    state = region_zips["state"].value_counts().index[5]
    in_state = set(region_zips.loc[region_zips["state"] == state, "zip"])
    assignment = assignment_for_layer(demo_store, demo, parse_layer("zip"))
    assignment = assignment[assignment["region_id"].isin(in_state)]
    used = set(assignment["territory_id"].dropna().astype(int))
    terrs = [Territory(int(r.territory_id), r.name, r.color) for r in territories(demo_store, demo.plan_id).itertuples()
             if int(r.territory_id) in used]
    create_plan(demo_store, "one state", "zip", terrs, assignment, area=[state])
    session = EditorSession.open(demo_store, "one state")
    assert set(session.plan.graph.region_ids) == in_state
    assert session.summary()["unassigned"] == 0
    populated_elsewhere = set(region_stats(demo_store, parse_layer("zip"))["region_id"]) - in_state
    assert populated_elsewhere and not populated_elsewhere & set(session.index)
