"""Saving plans: conflicting saves are detected, nothing is lost, merges keep both sides' edits."""

import pandas as pd
import pytest

from terrmap.plan import SaveConflict, get_plan, load_assignment, merge_assignments, save_assignment


def test_second_save_from_the_same_version_conflicts(demo_store):
    plan = get_plan(demo_store)
    base = load_assignment(demo_store, plan.plan_id)
    a = base.copy()
    a.loc[a.index[:10], "territory_id"] = 1
    b = base.copy()
    b.loc[b.index[5:20], "territory_id"] = 2
    saved = save_assignment(demo_store, plan, a, changes=[{"regions": list(a.region_id[:10]), "to_territory": 1}])
    assert saved.version == plan.version + 1
    with pytest.raises(SaveConflict) as err:
        save_assignment(demo_store, plan, b)  # still holds the old version
    # Nothing of the losing save was written; the winner's edit is intact.
    now = load_assignment(demo_store, plan.plan_id)
    pd.testing.assert_frame_equal(now.reset_index(drop=True), a.sort_values("region_id").reset_index(drop=True),
                                  check_dtype=False)
    assert err.value.current_version == saved.version
    merged, conflicts = merge_assignments(base, b, err.value.theirs)
    m = merged.set_index("region_id").territory_id
    assert (m[a.region_id[:5]] == 1).all()           # theirs only
    assert (m[b.region_id[10:20]] == 2).all()         # mine only
    assert set(conflicts) == set(a.region_id[5:10]) - set(base.region_id[5:10][base.territory_id[5:10] == 2])
    final = save_assignment(demo_store, get_plan(demo_store, plan.name), merged)
    assert final.version == saved.version + 1
    assert demo_store.scalar("SELECT count(*) FROM plan_changes WHERE plan_id = ?", [plan.plan_id]) == 1


def test_saving_the_palette_keeps_parents_set_meanwhile_on_the_hierarchy_page(demo_store):
    from terrmap.plan import hierarchy
    from terrmap.plan import territories as plan_territories

    plan = get_plan(demo_store)
    palette = plan_territories(demo_store, plan.plan_id)  # what an open editor holds
    node = hierarchy.nodes(demo_store, plan.plan_id).iloc[0]
    first = int(palette["territory_id"].iloc[0])
    others = hierarchy.nodes(demo_store, plan.plan_id)
    others = others[(others["level"] == node["level"]) & (others["node_id"] != palette["parent"].iloc[0])]
    new_parent = others["node_id"].iloc[0]
    hierarchy.set_territory_parent(demo_store, plan.plan_id, first, new_parent)
    # The editor saves its (stale) palette plus a brand-new territory with a parent of its own.
    palette = palette.copy()
    new_id = int(palette["territory_id"].max()) + 1
    palette.loc[len(palette)] = {**palette.iloc[0].to_dict(), "territory_id": new_id, "name": "New",
                                 "parent": new_parent}
    save_assignment(demo_store, plan, load_assignment(demo_store, plan.plan_id), territories=palette)
    stored = plan_territories(demo_store, plan.plan_id).set_index("territory_id")["parent"]
    assert stored[first] == new_parent  # not the editor's stale copy
    assert stored[new_id] == new_parent
