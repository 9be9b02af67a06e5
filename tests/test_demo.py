import numpy as np
import pandas as pd
import pytest

from terrmap.data.store import Store
from terrmap.demo import build_demo, generate_leads
from terrmap.geo import parse_layer
from terrmap.geo.zipdata import reference_table
from terrmap.plan import get_plan, load_assignment, territories
from tests.test_plan_tallies import _pil_lab

CHECKSUM = """
    SELECT count(*), sum(hash(lead_id, name, industry, employees, annual_revenue, status, deal_value,
                              postal_zip, zip, lat, lon, cell, score, expected_value))
    FROM leads
"""


def _build(path, seed):
    store = Store(path)
    build_demo(store, n_leads=5000, seed=seed, n_reps=16)
    out = store.cursor().execute(CHECKSUM).fetchall()[0]
    plan = store.cursor().execute(
        "SELECT count(*), sum(hash(region_id, territory_id)) FROM plan_assignments").fetchall()[0]
    reps = store.df("SELECT * FROM reps ORDER BY rep_id")
    store.close()
    return out, plan, reps


def test_demo_is_deterministic(tmp_path):
    a = _build(tmp_path / "a.duckdb", 3)
    b = _build(tmp_path / "b.duckdb", 3)
    assert a[0] == b[0] and a[1] == b[1]
    pd.testing.assert_frame_equal(a[2], b[2])
    # another seed, other leads (the stream build_demo stores: no database needed to tell them apart)
    assert not generate_leads(500, 3)[0].equals(generate_leads(500, 4)[0])
    pd.testing.assert_frame_equal(generate_leads(500, 3)[0], generate_leads(500, 3)[0])


def test_demo_content_is_plausible(demo_store):
    s = demo_store
    n = s.scalar("SELECT count(*) FROM leads")
    assert n == 20_000
    # Every lead is in a real region ZIP, near it, and the H3 cell matches its coordinates.
    assert s.scalar("SELECT count(*) FROM leads l LEFT JOIN zips z ON z.zip = l.zip WHERE z.zip IS NULL") == 0
    assert s.scalar("SELECT count(*) FROM leads WHERE status NOT IN ('open','won','lost')") == 0
    assert s.scalar("SELECT count(*) FROM leads WHERE status='won' AND NOT deal_value > 0") == 0
    assert s.scalar("SELECT count(*) FROM leads WHERE status<>'won' AND deal_value IS NOT NULL") == 0
    shares = dict(s.cursor().execute("SELECT status, count(*) / sum(count(*)) OVER () FROM leads GROUP BY 1").fetchall())
    assert 0.5 < shares["open"] < 0.6 and 0.05 < shares["won"] < 0.3
    reps = s.scalar("SELECT count(*) FROM reps")
    assert 15 <= reps <= 25
    # Each rep's territory contains the rep's home ZIP.
    bad = s.scalar("""
        SELECT count(*) FROM territories t JOIN reps r USING (rep_id)
        JOIN plan_assignments a ON a.plan_id = t.plan_id AND a.region_id = r.home_zip
        WHERE a.territory_id <> t.territory_id""")
    assert bad == 0
    # Leads follow population: the most populous states get the most leads.
    by_state = s.df("SELECT z.state, count(*) n FROM leads l JOIN zips z USING (zip) GROUP BY 1 ORDER BY n DESC")
    assert set(by_state.state.head(4)) & {"CA", "TX", "FL", "NY"}


def test_hidden_propensity_drives_outcomes():
    df, p = generate_leads(40_000, seed=1)
    closed = df["status"] != "open"
    won = (df["status"] == "won")[closed].to_numpy()
    pc = p[closed.to_numpy()]
    # Win rate rises with the true propensity: top quintile wins far more than the bottom one.
    q = np.quantile(pc, [0.2, 0.8])
    assert won[pc >= q[1]].mean() > 2 * won[pc <= q[0]].mean()
    assert abs(won.mean() - pc.mean()) < 0.02


def test_jitter_stays_near_the_zip():
    df, _ = generate_leads(5_000, seed=2)
    ref = reference_table().set_index("zip")
    c = ref.loc[df["postal_zip"], ["lat", "lon"]].to_numpy()
    km = np.hypot(df["lat"] - c[:, 0], (df["lon"] - c[:, 1]) * np.cos(np.radians(c[:, 0]))) * 111
    radius = np.sqrt(ref.loc[df["postal_zip"], "land_area_sq_mi"].fillna(1).to_numpy() * 2.59 / np.pi)
    assert (km <= np.maximum(radius, 0.9) + 0.01).all()


def test_demo_refuses_a_database_with_leads(demo_store):
    with pytest.raises(ValueError, match="already has leads"):
        build_demo(demo_store, n_leads=10)


def test_neighbouring_demo_territories_are_told_apart(demo_store):
    """Issue 14.10: every two territories of the demo plan that share a border differ by >= 25 CIELAB units
    (littlecms, not terrmap's conversion), so the map shows where one ends."""
    plan = get_plan(demo_store)
    asg = load_assignment(demo_store, plan.plan_id)
    graph = parse_layer("zip").graph(demo_store, asg["region_id"].tolist())
    owner = asg.set_index("region_id").reindex(graph.region_ids)["territory_id"].to_numpy()
    land = graph.edges[~graph.is_bridge]
    pairs = {(owner[i], owner[j]) for i, j in land if owner[i] != owner[j]}
    terr = territories(demo_store, plan.plan_id)
    color = dict(zip(terr["territory_id"], terr["color"]))
    assert len(pairs) > 20
    close = [(a, b) for a, b in pairs if np.linalg.norm(_pil_lab(color[a]) - _pil_lab(color[b])) < 25 - 1.5]
    assert close == []
