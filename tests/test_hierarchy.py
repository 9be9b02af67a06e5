"""Territory hierarchy: structure rules, and roll-ups against pandas groupby sums over territory_metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terrmap.plan import accounts as acc
from terrmap.plan import get_plan
from terrmap.plan import hierarchy as hi

SUMMED = ["leads", "open_leads", "customers", "won_revenue", "potential", "regions"]


def _clear(s, plan_id):
    s.cursor().execute("DELETE FROM hierarchy_nodes WHERE plan_id = ?", [plan_id])
    s.cursor().execute("UPDATE territories SET parent = NULL WHERE plan_id = ?", [plan_id])


@pytest.fixture
def tree(demo_store):
    """Two divisions over three regions; territories 1-8 placed, the rest not; one overlay and a pin."""
    s = demo_store
    plan = get_plan(s)
    _clear(s, plan.plan_id)
    s.cursor().execute("DELETE FROM overlays; DELETE FROM account_pins")
    # some open leads without a score: averages must weigh by scored leads, not open ones
    s.cursor().execute("UPDATE leads SET score = NULL WHERE status = 'open' AND lead_id LIKE '%3'")
    east = hi.create_node(s, plan.plan_id, "East", "Division")
    west = hi.create_node(s, plan.plan_id, "West", "Division")
    ne = hi.create_node(s, plan.plan_id, "Northeast", "Region", east)
    south = hi.create_node(s, plan.plan_id, "South", "Region", east)
    pac = hi.create_node(s, plan.plan_id, "Pacific", "Region", west)
    empty = hi.create_node(s, plan.plan_id, "Mountain", "Region", west)
    hi.set_territory_parents(s, plan.plan_id, {1: ne, 6: ne, 7: south, 8: south, 2: pac, 3: pac, 4: west, 5: south})
    acc.save_overlay(s, plan.plan_id, "Enterprise", acc.OverlayRule(min_employees=500), rep_id="R01",
                     territories=[1, 2, 7])
    lead = s.scalar("SELECT min(lead_id) FROM leads")
    acc.pin_account(s, plan.plan_id, lead, 3)
    return s, plan, {"east": east, "west": west, "ne": ne, "south": south, "pac": pac, "empty": empty}


def test_levels_and_ancestors(tree):
    s, plan, ids = tree
    assert hi.levels(s, plan.plan_id) == ["Territory", "Region", "Division"]
    region = hi.ancestor_at(s, plan.plan_id, "Region")
    division = hi.ancestor_at(s, plan.plan_id, "Division")
    assert region[1] == ids["ne"] and region[2] == ids["pac"] and region[4] is None and region[12] is None
    assert division[1] == ids["east"] and division[4] == ids["west"] and division[3] == ids["west"]
    assert division[12] is None
    with pytest.raises(ValueError, match="no level 'Area'"):
        hi.ancestor_at(s, plan.plan_id, "Area")


@pytest.mark.parametrize("level", ["Region", "Division"])
def test_rollup_matches_pandas_groupby(tree, level):
    s, plan, _ = tree
    m = acc.territory_metrics(s, plan)
    anc = hi.ancestor_at(s, plan.plan_id, level)
    terr = m[m.owner_kind == "territory"].assign(node=lambda d: d.owner_id.map(lambda t: anc[int(t)]))
    expected = terr.dropna(subset=["node"]).groupby("node")[SUMMED].sum()
    r = hi.rollup(s, plan, level)
    nodes = r[r.kind == "node"].set_index("node_id")
    level_nodes = hi.nodes(s, plan.plan_id).query("level == @level").node_id
    assert set(nodes.index) == set(level_nodes)  # every node, even an empty one
    for col in SUMMED:
        np.testing.assert_allclose(nodes[col].astype(float), expected[col].reindex(nodes.index).fillna(0).astype(float),
                                   rtol=1e-9, err_msg=col)
    # the exact mean score of the open leads, straight from the owners
    owners = acc.account_owners(s, plan)
    owners = owners[(owners.owner_kind == "territory") & (owners.status == "open")]
    owners = owners.assign(node=owners.owner_id.map(lambda t: anc[int(t)]))
    mean_score = owners.dropna(subset=["node"]).groupby("node").score.mean()
    placed = nodes.index[nodes.leads > 0]
    np.testing.assert_allclose(nodes.loc[placed, "avg_score"], mean_score.loc[placed], rtol=1e-9)
    # balance: deviation from the mean over this level's nodes
    pot = nodes.potential.to_numpy()
    np.testing.assert_allclose(nodes.deviation, (pot - pot.mean()) / pot.mean(), rtol=1e-9)
    # nothing lost: nodes + unplaced + overlays = every owned account
    assert r.leads.sum() == m.leads.sum()
    assert r.potential.sum() == pytest.approx(m.potential.sum())
    assert r[r.kind == "none"].name.tolist() == [f"(no {level})"]
    assert r[r.kind == "overlay"].name.tolist() == ["Enterprise"] and r[r.kind != "node"].deviation.isna().all()


def test_empty_node_and_territory_level(tree):
    s, plan, ids = tree
    r = hi.rollup(s, plan, "Region").set_index("node_id")
    assert r.loc[ids["empty"], "leads"] == 0 and r.loc[ids["empty"], "territories"] == 0
    t = hi.rollup(s, plan, "Territory", measure="leads")
    m = acc.territory_metrics(s, plan)
    own = t[t.kind == "territory"]
    assert own.leads.tolist() == m[m.owner_kind == "territory"].leads.tolist()
    np.testing.assert_allclose(own.deviation, own.leads / own.leads.mean() - 1, rtol=1e-9)
    assert own.set_index("node_id").loc["1", "parent"] == ids["ne"]


def test_cycles_unknown_parents_and_level_mixups_are_rejected_unchanged(tree):
    s, plan, ids = tree
    before = (hi.nodes(s, plan.plan_id).to_dict("records"),
              s.df("SELECT territory_id, parent FROM territories ORDER BY 1").to_dict("records"))
    with pytest.raises(hi.HierarchyError, match="would be its own ancestor"):
        hi.move_node(s, plan.plan_id, ids["east"], ids["ne"])
    with pytest.raises(hi.HierarchyError, match="would be its own ancestor"):
        hi.move_node(s, plan.plan_id, ids["east"], ids["east"])
    with pytest.raises(ValueError, match="node 'N99' does not exist"):
        hi.create_node(s, plan.plan_id, "X", "Region", "N99")
    with pytest.raises(ValueError, match="node 'N99' does not exist"):
        hi.set_territory_parents(s, plan.plan_id, {1: ids["south"], 2: "N99"})  # all or nothing
    with pytest.raises(ValueError, match="territory 999 is not in plan"):
        hi.set_territory_parent(s, plan.plan_id, 999, ids["ne"])
    with pytest.raises(hi.HierarchyError, match="mix levels Area, Region"):
        hi.create_node(s, plan.plan_id, "X", "Area", ids["east"])
    with pytest.raises(hi.HierarchyError, match="'Division' is used at 2 depths"):
        hi.create_node(s, plan.plan_id, "Sub", "Division", ids["east"])
    with pytest.raises(hi.HierarchyError, match="'Territory' is the bottom level"):
        hi.create_node(s, plan.plan_id, "T", "territory")
    with pytest.raises(hi.HierarchyError, match="two Region nodes are named"):
        hi.create_node(s, plan.plan_id, "south", "Region", ids["west"])
    with pytest.raises(hi.HierarchyError, match="name is required"):
        hi.rename_node(s, plan.plan_id, ids["ne"], "  ")
    with pytest.raises(hi.HierarchyError, match="cannot delete Division 'East'"):
        hi.delete_node(s, plan.plan_id, ids["east"])
    after = (hi.nodes(s, plan.plan_id).to_dict("records"),
             s.df("SELECT territory_id, parent FROM territories ORDER BY 1").to_dict("records"))
    assert after == before
    assert hi.check(s, plan.plan_id) == []


def test_delete_reparents_children(tree):
    s, plan, ids = tree
    hi.delete_node(s, plan.plan_id, ids["south"])
    parents = dict(s.cursor().execute("SELECT territory_id, parent FROM territories WHERE plan_id = ?",
                                      [plan.plan_id]).fetchall())
    assert parents[7] == parents[8] == parents[5] == ids["east"]
    assert hi.ancestor_at(s, plan.plan_id, "Division")[7] == ids["east"]
    assert hi.ancestor_at(s, plan.plan_id, "Region")[7] is None
    # the only top node may go: its children become the top level
    _clear(s, plan.plan_id)
    top = hi.create_node(s, plan.plan_id, "All", "Company")
    a = hi.create_node(s, plan.plan_id, "A", "Division", top)
    hi.set_territory_parent(s, plan.plan_id, 1, a)
    hi.delete_node(s, plan.plan_id, top)
    assert hi.nodes(s, plan.plan_id).parent.isna().all() and hi.levels(s, plan.plan_id) == ["Territory", "Division"]


def test_rename_level_and_node_colours_distinct(tree):
    s, plan, ids = tree
    hi.rename_level(s, plan.plan_id, "Region", "Area")
    assert hi.levels(s, plan.plan_id) == ["Territory", "Area", "Division"]
    colors = hi.nodes(s, plan.plan_id).query("level == 'Area'").color
    assert colors.is_unique
    with pytest.raises(ValueError, match="not a colour"):
        hi.set_node_color(s, plan.plan_id, ids["ne"], "red;background:url(x)")


# -- random trees (hypothesis): the validator agrees with a brute-force reading of the rules ---------------------

@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 7), st.sampled_from(["A", "B", "C"])), min_size=1, max_size=8))
def test_problems_agree_with_brute_force(spec):
    ids = [f"n{i}" for i in range(len(spec))]
    frame = pd.DataFrame({
        "node_id": ids, "name": ids, "level": [lv for _, lv in spec],
        "parent": [None if p < 0 else f"n{p}" for p, _ in spec],
    })
    parent = {n: (None if p < 0 else f"n{p}") for n, (p, _) in zip(ids, spec)}

    def depth(n, seen=()):
        p = parent[n]
        if p is None:
            return 0
        if p not in parent or p in seen or p == n:
            return None
        d = depth(p, seen + (n,))
        return None if d is None else d + 1

    depths = {n: depth(n) for n in ids}
    broken = any(d is None for d in depths.values())
    level_depths = {}
    for n, d in depths.items():
        if d is not None:
            level_depths.setdefault(frame.set_index("node_id").level[n], set()).add(d)
    depth_levels = {}
    for n, d in depths.items():
        if d is not None:
            depth_levels.setdefault(d, set()).add(frame.set_index("node_id").level[n])
    valid = (not broken and all(len(v) == 1 for v in level_depths.values())
             and all(len(v) == 1 for v in depth_levels.values()))
    assert (hi.problems(frame) == []) == valid


def test_demo_plan_has_a_hierarchy_an_overlay_and_pins(demo_store):
    s = demo_store
    plan = get_plan(s)
    assert hi.check(s, plan.plan_id) == []
    assert hi.levels(s, plan.plan_id) == ["Territory", "Region", "Division"]
    region = hi.ancestor_at(s, plan.plan_id, "Region")
    assert all(node is not None for node in region.values())
    # territories sit in their home state's census region
    home_state = dict(s.cursor().execute(
        "SELECT t.territory_id, z.state FROM territories t JOIN reps r USING (rep_id) JOIN zips z ON z.zip = r.home_zip "
        "WHERE t.plan_id = ?", [plan.plan_id]).fetchall())
    names = hi.nodes(s, plan.plan_id).set_index("node_id").name
    from terrmap.demo import CENSUS_REGIONS
    assert all(home_state[t] in CENSUS_REGIONS[names[n]].split() for t, n in region.items())
    overlays = acc.list_overlays(s, plan.plan_id)
    assert overlays.name.tolist() == ["Enterprise"]
    pins = acc.list_pins(s, plan.plan_id)
    assert len(pins) == 3
    report = acc.overlap_report(s, plan)
    assert set(report.resolved_by) >= {"pin", "overlay over geography"}


def test_add_top_level_wraps_every_top_node(tree):
    s, plan, _ = tree
    company = hi.add_top_level(s, plan.plan_id, "Company", "Company")
    assert hi.levels(s, plan.plan_id) == ["Territory", "Region", "Division", "Company"]
    top = hi.rollup(s, plan, "Company")
    division = hi.rollup(s, plan, "Division")
    node = top[top.kind == "node"].iloc[0]
    assert node.node_id == company
    assert node.leads == division[division.kind == "node"].leads.sum()
    with pytest.raises(hi.HierarchyError, match="level 'Division' is used at 2 depths"):
        hi.add_top_level(s, plan.plan_id, "Again", "Division")


def test_tree_nodes_sum_their_children(tree):
    s, plan, _ = tree
    t = hi.tree(s, plan).reset_index(drop=True)
    assert t.depth.iloc[0] == 0
    for i, row in t[t.kind == "node"].iterrows():
        kids = []
        for j in range(i + 1, len(t)):
            if t.depth[j] <= row.depth:
                break
            if t.depth[j] == row.depth + 1:
                kids.append(j)
        assert t.loc[kids, "leads"].sum() == row.leads, row["name"]
    placed = [t_ for t_, p in s.cursor().execute("SELECT territory_id, parent FROM territories WHERE plan_id = ?",
                                                 [plan.plan_id]).fetchall()]
    assert (t.kind == "territory").sum() == len(placed)  # every territory once, in or outside the tree
