"""Account ownership (pins > overlays > geography) against an independent pandas computation."""

from __future__ import annotations

import json

import h3
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terrmap.data.store import Store
from terrmap.plan import Territory, create_plan, get_plan
from terrmap.plan import accounts as acc

MEASURES = ["leads", "open_leads", "customers", "won_revenue", "potential"]


# -- the independent reference -------------------------------------------------------------------------------


def reference_owners(store: Store, plan) -> pd.DataFrame:
    """Ownership recomputed in pandas from the raw tables (no SQL shared with terrmap.plan.accounts)."""
    cur = store.cursor()
    leads = cur.execute("SELECT lead_id, name, industry, employees, annual_revenue, status, score, expected_value, "
                        "deal_value, zip, cell FROM leads").df()
    if plan.layer == "zip":
        region = leads["zip"]
    else:
        res = int(plan.layer.split(":")[1])
        parent = {c: h3.cell_to_parent(h3.int_to_str(int(c)), res) for c in leads["cell"].unique()}
        region = leads["cell"].map(parent)
    terr = cur.execute("SELECT territory_id, name, rep_id FROM territories WHERE plan_id = ?", [plan.plan_id]).df()
    known = set(terr.territory_id)
    assign = cur.execute("SELECT region_id, territory_id FROM plan_assignments WHERE plan_id = ?", [plan.plan_id]).df()
    assign = assign[assign.territory_id.isin(known)]
    geo = region.map(dict(zip(assign.region_id, assign.territory_id)))
    overlays = cur.execute("SELECT overlay_id, name, rep_id, rule::VARCHAR AS rule, territories, priority "
                           "FROM overlays WHERE plan_id = ?", [plan.plan_id]).df()
    pins = cur.execute("SELECT lead_id, territory_id FROM account_pins WHERE plan_id = ?", [plan.plan_id]).df()
    pins = pins[pins.territory_id.isin(known)]
    pin = leads.lead_id.map(dict(zip(pins.lead_id, pins.territory_id)))

    matches = {}
    for o in overlays.itertuples():
        rule = json.loads(o.rule)
        ok = pd.Series(True, index=leads.index)
        emp = leads.employees.astype(float)
        rev = leads.annual_revenue.astype(float)
        if rule.get("min_employees") is not None:
            ok &= emp >= rule["min_employees"]
        if rule.get("max_employees") is not None:
            ok &= emp <= rule["max_employees"]
        if rule.get("min_annual_revenue") is not None:
            ok &= rev >= rule["min_annual_revenue"]
        if rule.get("industries") is not None:
            ok &= leads.industry.isin(rule["industries"])
        if isinstance(o.territories, (list, np.ndarray)):  # NULL (all territories) comes back as NA
            ok &= geo.isin(list(o.territories))
        matches[o.overlay_id] = ok.fillna(False).astype(bool)

    # The first claiming overlay in priority order (highest priority, then lowest id): fill from the last.
    order = sorted(overlays.itertuples(), key=lambda o: (-o.priority, o.overlay_id))
    claim = pd.Series(np.nan, index=leads.index)
    for o in reversed(order):
        claim = claim.mask(matches[o.overlay_id], float(o.overlay_id))
    claims = sum((matches[o.overlay_id].astype(int) for o in order), pd.Series(0, index=leads.index))
    has_pin, has_claim, has_geo = pin.notna(), claim.notna(), geo.notna()
    choice = [has_pin, has_claim, has_geo]
    out = pd.DataFrame({
        "lead_id": leads.lead_id,
        "geo_territory_id": geo.astype("Float64"),
        "owner_kind": np.select(choice, ["territory", "overlay", "territory"], default=None),
        "owner_id": np.select(choice, [pin.astype(float), claim, geo.astype(float)], default=np.nan),
        "rule": np.select(choice, ["pin", "overlay", "geography"], default="unassigned"),
        # a pin elsewhere than the lead's geography is one more claim (NaN != x: a pin without geography too)
        "n_claims": has_geo.astype(int) + claims + (has_pin & (pin != geo)).astype(int),
    })
    is_open = leads.status == "open"
    out["potential"] = np.where(is_open, (leads.score * leads.expected_value).fillna(0), 0.0)
    out["status"] = leads.status
    out["score"] = leads.score
    out["deal_value"] = leads.deal_value
    return out.sort_values("lead_id").reset_index(drop=True)


def reference_metrics(ref: pd.DataFrame) -> pd.DataFrame:
    owned = ref[ref.owner_kind.notna()].copy()
    owned["open_score"] = owned.score.where(owned.status == "open")
    owned["won_value"] = owned.deal_value.where(owned.status == "won", 0.0).fillna(0.0)
    g = owned.groupby(["owner_kind", "owner_id"])
    return pd.DataFrame({
        "leads": g.size(),
        "open_leads": g.status.apply(lambda s: (s == "open").sum()),
        "customers": g.status.apply(lambda s: (s == "won").sum()),
        "won_revenue": g.won_value.sum(),
        "potential": g.potential.sum(),
        "avg_score": g.open_score.mean(),
    })


def assert_owners_match(store, plan):
    ours = acc.account_owners(store, plan).sort_values("lead_id").reset_index(drop=True)
    ref = reference_owners(store, plan)
    assert list(ours.lead_id) == list(ref.lead_id)
    for col in ["geo_territory_id", "owner_id"]:
        assert ours[col].astype("Float64").fillna(-1).tolist() == ref[col].astype("Float64").fillna(-1).tolist(), col
    assert ours.owner_kind.fillna("-").tolist() == ref.owner_kind.fillna("-").tolist()
    assert ours.rule.tolist() == ref.rule.tolist()
    assert ours.n_claims.tolist() == ref.n_claims.tolist()
    np.testing.assert_allclose(ours.potential, ref.potential, rtol=1e-12)
    return ours, ref


# -- demo: pins and two overlapping overlays ------------------------------------------------------------------


@pytest.fixture
def demo_with_claims(demo_store):
    """The demo plan with two overlapping overlays (different priorities) and three pins."""
    s = demo_store
    plan = get_plan(s)
    s.cursor().execute("DELETE FROM overlays; DELETE FROM account_pins")  # the only tables an example writes
    big = acc.save_overlay(s, plan.plan_id, "Enterprise", acc.OverlayRule(min_employees=300), rep_id="R01",
                           territories=[1, 2, 3, 4], priority=2)
    soft = acc.save_overlay(s, plan.plan_id, "Software & finance",
                            acc.OverlayRule(industries=["Software", "Financial Services"], min_employees=100),
                            rep_id="R02", priority=1)
    # pins: one on an Enterprise account (pin must win), one on a plain account, one to its own territory
    owners = acc.account_owners(s, plan)
    ent = owners[owners.owner_id.eq(big) & owners.owner_kind.eq("overlay")].iloc[0]
    plain = owners[owners.rule.eq("geography")].iloc[0]
    own = owners[owners.rule.eq("geography")].iloc[1]
    target = 7 if ent.geo_territory_id != 7 else 8
    acc.pin_account(s, plan.plan_id, ent.lead_id, target, "signed master agreement")
    acc.pin_account(s, plan.plan_id, plain.lead_id, 9, "HQ relationship")
    acc.pin_account(s, plan.plan_id, own.lead_id, int(own.geo_territory_id), "keep")
    return s, plan, {"enterprise": big, "software": soft, "ent_pinned": ent.lead_id, "ent_target": target,
                     "plain_pinned": plain.lead_id, "own_pinned": own.lead_id}


def test_ownership_matches_pandas_on_demo(demo_with_claims):
    s, plan, ids = demo_with_claims
    ours, _ = assert_owners_match(s, plan)
    # the setup really exercises every rule and overlaps
    assert set(ours.rule) >= {"pin", "overlay", "geography"}
    assert (ours.n_claims >= 3).any()
    assert ((ours.owner_kind == "overlay") & (ours.owner_id == ids["software"])).any()


def test_pins_beat_overlays_and_own_territory_pin_is_no_overlap(demo_with_claims):
    s, plan, ids = demo_with_claims
    owners = acc.account_owners(s, plan).set_index("lead_id")
    ent = owners.loc[ids["ent_pinned"]]
    assert (ent.rule, ent.owner_kind, ent.owner_id) == ("pin", "territory", ids["ent_target"])
    assert owners.loc[ids["plain_pinned"]].owner_id == 9
    own = owners.loc[ids["own_pinned"]]
    assert own.rule == "pin" and own.n_claims == 1
    names = dict(s.cursor().execute("SELECT territory_id, name FROM territories WHERE plan_id = ?",
                                    [plan.plan_id]).fetchall())
    assert ent.owner_name == names[ids["ent_target"]]


def test_higher_priority_overlay_wins_then_lower_id(demo_with_claims):
    s, plan, ids = demo_with_claims
    both = acc.account_owners(s, plan)
    both = both[(both.n_claims >= 3) & (both.rule == "overlay")]
    assert len(both) > 0 and (both.owner_id == ids["enterprise"]).all()
    # flip the priorities: the same accounts go to the other overlay
    ov = acc.list_overlays(s, plan.plan_id).set_index("overlay_id")
    acc.save_overlay(s, plan.plan_id, "Enterprise", acc.OverlayRule.from_json(ov.loc[ids["enterprise"], "rule"]),
                     rep_id="R01", territories=[1, 2, 3, 4], priority=0, overlay_id=ids["enterprise"])
    after = acc.account_owners(s, plan).set_index("lead_id").loc[both.lead_id]
    assert (after.owner_id == ids["software"]).all()
    # equal priority: the lower overlay_id wins
    acc.save_overlay(s, plan.plan_id, "Software & finance",
                     acc.OverlayRule.from_json(ov.loc[ids["software"], "rule"]), rep_id="R02", priority=0,
                     overlay_id=ids["software"])
    tie = acc.account_owners(s, plan).set_index("lead_id").loc[both.lead_id]
    assert (tie.owner_id == min(ids["enterprise"], ids["software"])).all()
    assert_owners_match(s, plan)


def test_metrics_count_each_account_once_where_owned(demo_with_claims):
    s, plan, _ = demo_with_claims
    m = acc.territory_metrics(s, plan)
    ref = reference_metrics(reference_owners(s, plan))
    n_terr = s.scalar("SELECT count(*) FROM territories WHERE plan_id = ?", [plan.plan_id])
    assert (m.owner_kind == "territory").sum() == n_terr and (m.owner_kind == "overlay").sum() == 2
    ours = m.set_index(["owner_kind", "owner_id"])
    ours.index = ours.index.set_levels(ours.index.levels[1].astype(float), level=1)
    ref.index = ref.index.set_levels(ref.index.levels[1].astype(float), level=1)
    joined = ours.join(ref.add_suffix("_ref"), how="left")
    for col in MEASURES + ["avg_score"]:
        np.testing.assert_allclose(joined[col].astype(float), joined[f"{col}_ref"].astype(float).fillna(
            0 if col != "avg_score" else np.nan), rtol=1e-9, err_msg=col)
    # each account once: the owners' sums are the totals over all owned leads, whatever the overlaps
    totals = s.cursor().execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'won'), coalesce(sum(deal_value) FILTER (WHERE status='won'), 0),"
        " sum(CASE WHEN status = 'open' THEN coalesce(score * expected_value, 0) ELSE 0 END) FROM leads").fetchall()[0]
    unowned = acc.account_owners(s, plan).query("owner_kind.isna()", engine="python")
    assert m.leads.sum() + len(unowned) == totals[0]
    assert m.customers.sum() + (unowned.status == "won").sum() == totals[1]
    assert m.won_revenue.sum() + unowned.deal_value.where(unowned.status == "won", 0).fillna(0).sum() == pytest.approx(totals[2])
    assert m.potential.sum() + unowned.potential.sum() == pytest.approx(totals[3])
    regions = dict(s.cursor().execute("SELECT territory_id, count(*) FROM plan_assignments WHERE plan_id = ? "
                                      "AND territory_id IS NOT NULL GROUP BY 1", [plan.plan_id]).fetchall())
    terr = m[m.owner_kind == "territory"]
    assert terr.regions.tolist() == [regions.get(int(t), 0) for t in terr.owner_id]
    assert (m[m.owner_kind == "overlay"].regions == 0).all()


def test_metrics_without_overlays_equal_region_stats_per_territory(demo_store):
    """With no pins or overlays, ownership is geography: the same numbers as region_stats summed per territory."""
    from terrmap.data.stats import region_stats
    from terrmap.geo import parse_layer
    from terrmap.plan import assignment_for_layer

    s = demo_store
    s.cursor().execute("DELETE FROM overlays; DELETE FROM account_pins")  # the only tables an example writes
    plan = get_plan(s)
    layer = parse_layer(plan.layer)
    stats = region_stats(s, layer).merge(assignment_for_layer(s, plan, layer), on="region_id")
    per = stats.groupby("territory_id")[MEASURES].sum()
    m = acc.territory_metrics(s, plan).set_index("owner_id")
    for col in MEASURES:
        np.testing.assert_allclose(m.loc[per.index, col].astype(float), per[col].astype(float), rtol=1e-9)


def test_overlap_report_lists_exactly_the_multi_claimed_accounts(demo_with_claims):
    s, plan, ids = demo_with_claims
    report = acc.overlap_report(s, plan)
    ref = reference_owners(s, plan)
    assert set(report.lead_id) == set(ref.lead_id[ref.n_claims > 1])
    assert report.potential.is_monotonic_decreasing
    row = report.set_index("lead_id").loc[ids["ent_pinned"]]
    assert row.resolved_by == "pin"
    assert "(geography)" in row.claims and "Enterprise (overlay)" in row.claims and row.claims.endswith("(pin)")
    assert ids["own_pinned"] not in set(report.lead_id)
    # pinned to its own territory and claimed by an overlay: the pin shows on the geography claim
    owners = acc.account_owners(s, plan)
    ent_own = owners[(owners.rule == "overlay") & (owners.owner_id == ids["enterprise"])
                     & (owners.geo_territory_id == 1)].lead_id.iloc[0]
    acc.pin_account(s, plan.plan_id, ent_own, 1, "stays")
    row = acc.overlap_report(s, plan).set_index("lead_id").loc[ent_own]
    home = s.scalar("SELECT name FROM territories WHERE territory_id = 1 AND plan_id = ?", [plan.plan_id])
    assert row.claims.startswith(f"{home} (geography, pinned); Enterprise (overlay)")
    assert row.resolved_by == "pin"
    three = report[report.claims.str.count(r"\(overlay\)") == 2]
    assert len(three) and (three.resolved_by[~three.lead_id.isin([ids["ent_pinned"]])] == "overlay priority").all()
    # strongest overlay listed first
    assert three.claims.str.contains(r"Enterprise \(overlay\); Software & finance \(overlay\)").all()
    single = report[(report.claims.str.count(r"\(overlay\)") == 1) & (report.resolved_by != "pin")]
    assert len(single) and (single.resolved_by == "overlay over geography").all()


def test_h3_plan_ownership_matches_pandas(demo_store):
    """region_id on an H3 plan: the lead's parent cell, spelt as the plan stores it."""
    s = demo_store
    cells = s.df("SELECT DISTINCT lower(hex(cell)) AS c FROM leads").c.map(lambda c: h3.cell_to_parent(c, 4)).unique()
    cells = sorted(cells)
    assignment = pd.DataFrame({"region_id": cells, "territory_id": [1 + i % 3 if i % 5 else None
                                                                    for i in range(len(cells))]})
    pid = create_plan(s, "h3 plan", "h3:4", [Territory(t, f"T{t}", "#123456") for t in (1, 2, 3)], assignment)
    plan = get_plan(s, pid)
    acc.save_overlay(s, pid, "Big", acc.OverlayRule(min_annual_revenue=5e7), rep_id="R01", territories=[2])
    ours, _ = assert_owners_match(s, plan)
    assert ours.rule.eq("unassigned").any() and ours.rule.eq("overlay").any()


# -- validation: clear errors, nothing written ----------------------------------------------------------------


def _snapshot(s):
    return (s.df("SELECT * REPLACE (territories::VARCHAR AS territories, rule::VARCHAR AS rule) FROM overlays "
                 "ORDER BY overlay_id").to_dict("records"),
            s.df("SELECT plan_id, lead_id, territory_id, reason FROM account_pins ORDER BY lead_id").to_dict("records"))


def test_bad_input_raises_clear_errors_and_writes_nothing(demo_store):
    s = demo_store
    plan = get_plan(s)
    lead = s.scalar("SELECT min(lead_id) FROM leads")
    before = _snapshot(s)
    with pytest.raises(ValueError, match="'NOPE' does not exist"):
        acc.pin_account(s, plan.plan_id, "NOPE", 1)
    with pytest.raises(ValueError, match="territory 999 is not in plan"):
        acc.pin_account(s, plan.plan_id, lead, 999)
    with pytest.raises(ValueError, match="plan 4242 does not exist"):
        acc.pin_account(s, 4242, lead, 1)
    with pytest.raises(ValueError, match="rep 'R99' does not exist"):
        acc.save_overlay(s, plan.plan_id, "X", acc.OverlayRule(min_employees=5), rep_id="R99")
    with pytest.raises(ValueError, match="territory 77 is not in plan"):
        acc.save_overlay(s, plan.plan_id, "X", acc.OverlayRule(min_employees=5), rep_id="R01", territories=[1, 77])
    with pytest.raises(ValueError, match="name is required"):
        acc.save_overlay(s, plan.plan_id, "  ", acc.OverlayRule(min_employees=5))
    with pytest.raises(ValueError, match="overlay 5 does not exist"):
        acc.save_overlay(s, plan.plan_id, "X", acc.OverlayRule(min_employees=5), rep_id="R01", overlay_id=5)
    with pytest.raises(ValueError, match="give it an owner"):
        acc.save_overlay(s, plan.plan_id, "Ownerless", acc.OverlayRule(min_employees=5))
    with pytest.raises(ValueError, match="not pinned"):
        acc.unpin_account(s, plan.plan_id, "NOPE")
    with pytest.raises(ValueError, match="overlay 31 does not exist"):
        acc.delete_overlay(s, plan.plan_id, 31)
    assert _snapshot(s) == before
    oid = acc.save_overlay(s, plan.plan_id, "Only one", acc.OverlayRule(min_employees=5), rep_id="R01")
    with pytest.raises(ValueError, match="already has an overlay named 'only ONE'"):
        acc.save_overlay(s, plan.plan_id, "only ONE", acc.OverlayRule(min_employees=9), rep_id="R01")
    acc.delete_overlay(s, plan.plan_id, oid)
    assert _snapshot(s) == before


@pytest.mark.parametrize("kwargs, message", [
    ({}, "at least one condition"),
    ({"min_employees": -1}, "min_employees must be a whole number"),
    ({"min_employees": 2.5}, "min_employees must be a whole number"),
    ({"min_employees": 10, "max_employees": 5}, "above max_employees"),
    ({"min_annual_revenue": float("nan")}, "min_annual_revenue must be a number"),
    ({"industries": "Software"}, "industries must be a list"),
    ({"industries": []}, "at least one industry"),
])
def test_overlay_rule_rejects_bad_rules(kwargs, message):
    with pytest.raises(ValueError, match=message):
        acc.OverlayRule(**kwargs)


def test_overlay_rule_json_round_trip_and_description():
    rule = acc.OverlayRule(min_employees=1000, industries=["Software", "Healthcare"])
    back = acc.OverlayRule.from_json(rule.to_json())
    assert back == rule and back.industries == ["Healthcare", "Software"]
    assert rule.describe() == "employees >= 1,000, industry in Healthcare, Software"
    with pytest.raises(ValueError, match="unknown condition"):
        acc.OverlayRule.from_json('{"min_staff": 3}')


def test_pins_list_and_unpin(demo_store):
    s = demo_store
    plan = get_plan(s)
    s.cursor().execute("DELETE FROM account_pins")
    lead, name = s.cursor().execute("SELECT lead_id, name FROM leads ORDER BY lead_id LIMIT 1").fetchall()[0]
    acc.pin_account(s, plan.plan_id, lead, 3, "  first  ")
    acc.pin_account(s, plan.plan_id, lead, 4, "moved")  # re-pinning replaces
    pins = acc.list_pins(s, plan.plan_id)
    assert pins[["lead_id", "name", "territory_id", "reason"]].values.tolist() == [[lead, name, 4, "moved"]]
    acc.unpin_account(s, plan.plan_id, lead)
    assert acc.list_pins(s, plan.plan_id).empty


# -- random small pin / overlay sets (hypothesis) ---------------------------------------------------------------

INDUSTRY_NAMES = ["Software", "Retail", "Healthcare"]
ZIPS = ["10001", "10002", "60601", "94105", "73301"]  # the last is in no territory


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory):
    """40 synthetic leads in five ZIPs, three territories; overlays and pins vary per example."""
    s = Store(tmp_path_factory.mktemp("acc") / "synthetic.duckdb")
    rng = np.random.default_rng(5)
    n = 40
    emp = rng.integers(1, 3000, n).astype(float)
    emp[::9] = np.nan  # unknown size: never meets a size condition
    leads = pd.DataFrame({
        "lead_id": [f"L{i:03d}" for i in range(n)],
        "name": [f"<b>Acct {i}</b>" for i in range(n)],
        "industry": rng.choice(INDUSTRY_NAMES, n),
        "employees": pd.array(emp, dtype="Int64"),
        "annual_revenue": rng.uniform(1e5, 1e8, n),
        "status": rng.choice(["open", "won", "lost"], n),
        "zip": rng.choice(ZIPS, n),
        "score": rng.uniform(0, 1, n),
        "expected_value": rng.uniform(1e3, 1e5, n),
    })
    leads["deal_value"] = np.where(leads.status == "won", rng.uniform(1e3, 1e5, n), np.nan)
    cur = s.cursor()
    cur.register("syn", leads)
    cur.execute("INSERT INTO leads (lead_id, name, industry, employees, annual_revenue, status, deal_value, zip, lat, "
                "lon, cell, score, expected_value) SELECT lead_id, name, industry, employees, annual_revenue, status, "
                "deal_value, zip, 40, -75, 0, score, expected_value FROM syn")
    cur.unregister("syn")
    cur.execute("INSERT INTO reps (rep_id, name) VALUES ('R1', 'Rep one'), ('R2', 'Team two')")
    create_plan(s, "syn", "zip", [Territory(t, f"T{t}", "#000000") for t in (1, 2, 3)],
                pd.DataFrame({"region_id": ZIPS[:4], "territory_id": [1, 2, 3, 1]}))
    yield s, get_plan(s, "syn")
    s.close()


rules = st.builds(
    dict,
    min_employees=st.none() | st.integers(0, 3000),
    max_employees=st.none() | st.integers(0, 3000),
    min_annual_revenue=st.none() | st.floats(0, 1e8),
    industries=st.none() | st.lists(st.sampled_from(INDUSTRY_NAMES), min_size=1, max_size=3),
).filter(lambda r: any(v is not None for v in r.values())
         and not (r["min_employees"] is not None and r["max_employees"] is not None
                  and r["min_employees"] > r["max_employees"]))
overlays = st.lists(
    st.tuples(rules, st.none() | st.lists(st.integers(1, 3), min_size=1, max_size=3), st.integers(0, 2)),
    max_size=3,
)
pins = st.dictionaries(st.integers(0, 39), st.integers(1, 3), max_size=6)


@settings(max_examples=20, deadline=None)
@given(overlay_specs=overlays, pin_specs=pins)
def test_random_pins_and_overlays_match_pandas(synthetic_store, overlay_specs, pin_specs):
    s, plan = synthetic_store
    s.cursor().execute("DELETE FROM overlays; DELETE FROM account_pins")  # the only tables an example writes
    for k, (rule, terrs, priority) in enumerate(overlay_specs):
        acc.save_overlay(s, plan.plan_id, f"O{k}", acc.OverlayRule(**rule), rep_id="R1" if k % 2 else "R2",
                         territories=terrs, priority=priority)
    for i, t in pin_specs.items():
        acc.pin_account(s, plan.plan_id, f"L{i:03d}", t)
    ours, ref = assert_owners_match(s, plan)
    m = acc.territory_metrics(s, plan)
    assert m.leads.sum() == ours.owner_kind.notna().sum()
    assert m.potential.sum() == pytest.approx(ours.potential[ours.owner_kind.notna()].sum())
    report = acc.overlap_report(s, plan)
    assert sorted(report.lead_id) == sorted(ref.lead_id[ref.n_claims > 1])
    # every claim is listed: as many "(...)" parts as claimants
    counts = report.claims.str.count(r"\((geography|overlay|pin)[^)]*\)")
    assert counts.tolist() == ours.set_index("lead_id").loc[report.lead_id, "n_claims"].tolist()
