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
