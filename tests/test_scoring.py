"""Predictive lead scoring: quality against the demo's hidden propensity, leakage guard, fallbacks, CLI.

Quality is checked on a 100k-lead demo (45k closed leads; the held-out test split has ~9k
leads): the 20k session demo's ~1.8k held-out leads make ECE too noisy (its sampling noise
alone is ~0.02). Tolerances, as the issue sets them: held-out ROC AUC within 0.02 of the
true propensity's ROC AUC on the same leads (the standard error of that difference is about
0.004 at this size) and ECE <= 0.03 (the true propensity itself scores ~0.01).
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from terrmap import scoring
from terrmap.data.lead_features import closed_lead_features, lead_features, open_lead_features
from terrmap.data.stats import region_stats
from terrmap.data.store import Store
from terrmap.demo import generate_leads
from terrmap.geo import parse_layer
from terrmap.plan import get_plan
from tests.db_support import built_demo, built_once, discard

QUALITY_LEADS = 100_000
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def demo100_path(tmp_path_factory):
    return built_demo(tmp_path_factory, "demo100.duckdb", QUALITY_LEADS, seed=23)


def _build_trained(demo100: Path, path: Path) -> None:
    """The 100k demo retrained once; beside it (pickled) the metrics, the progress steps and the ZIP stats of
    before scoring."""
    shutil.copy(demo100, path)
    store = Store(path)
    before = region_stats(store, parse_layer("zip")).set_index("region_id")
    steps = []
    metrics = scoring.retrain(store, progress=lambda f, m: steps.append((f, m)))
    store.close()
    path.with_suffix(".pkl").write_bytes(pickle.dumps((metrics, steps, before)))


@pytest.fixture(scope="module")
def trained(demo100_path, tmp_path_factory):
    """A copy of the 100k demo, retrained once: (store, metrics, zip stats before scoring)."""
    built = built_once(tmp_path_factory, "trained.duckdb", lambda p: _build_trained(demo100_path, p))
    metrics, steps, before = pickle.loads(built.with_suffix(".pkl").read_bytes())
    assert steps and steps[-1][0] == 1.0 and all(0 <= f <= 1 for f, _ in steps)
    assert [f for f, _ in steps] == sorted(f for f, _ in steps)
    path = tmp_path_factory.mktemp("trained") / "trained.duckdb"
    shutil.copy(built, path)
    store = Store(path)
    yield store, metrics, before
    discard(store)


def _copy(src, tmp_path, name) -> Store:
    path = tmp_path / name
    shutil.copy(src, path)
    return Store(path)


# ---------------------------------------------------------------------------
# Quality


def test_quality_against_true_propensity(trained):
    store, metrics, _ = trained
    model = scoring.load_model(store)
    held = pd.DataFrame({"lead_id": model.holdout_lead_ids.astype(str), "p": model.holdout_scores})
    cur = store.cursor()
    cur.register("held", held)
    d = cur.execute(
        "SELECT h.p, t.propensity, l.status = 'won' AS y FROM held h JOIN demo_truth t USING (lead_id) "
        "JOIN leads l USING (lead_id)"
    ).df()
    cur.unregister("held")
    assert len(d) == metrics["n_test"] > 8000
    true_auc = roc_auc_score(d["y"], d["propensity"])
    model_auc = roc_auc_score(d["y"], d["p"])
    assert model_auc == pytest.approx(metrics["roc_auc"], abs=1e-9)
    assert abs(true_auc - model_auc) <= 0.02, (model_auc, true_auc)
    assert metrics["ece"] <= 0.03
    assert scoring.expected_calibration_error(d["y"], d["p"]) == pytest.approx(metrics["ece"])
    # Better than the simplest baseline (industry win rate: the demo has no CRM score).
    assert metrics["baseline"]["name"] == "industry_win_rate"
    assert metrics["roc_auc"] > metrics["baseline"]["roc_auc"] + 0.03
    assert metrics["pr_auc"] > metrics["baseline"]["pr_auc"]


def test_validation_report(trained):
    _, m, _ = trained
    for key in ("roc_auc", "pr_auc", "ece", "brier", "n_train", "n_calibration", "n_test", "model_version",
                "score_source", "data_hash", "seed", "features", "excluded", "calibration_curve", "gains",
                "permutation_importance", "baseline", "value_model", "scored"):
        assert key in m, key
    assert m["model_version"] == 1 and m["score_source"] == "model:1"
    assert m["n_train"] + m["n_calibration"] + m["n_test"] == m["n_closed"]
    assert m["calibration"] == "isotonic"
    assert len(m["calibration_curve"]) == scoring.ECE_BINS
    gains = m["gains"]
    assert [g["decile"] for g in gains] == list(range(1, 11))
    assert gains[-1]["cum_wins_share"] == pytest.approx(1.0)
    assert gains[0]["lift"] > 1.5 > gains[-1]["lift"]
    imp = {r["feature"]: r["importance"] for r in m["permutation_importance"]}
    assert set(imp) == set(m["features"])
    assert imp["industry"] > 0.02 and imp["employees"] > 0.01  # the demo's two largest effects
    assert m["value_model"]["median_abs_pct_error"] < m["value_model"]["baseline_median_abs_pct_error"]
    json.dumps(m)  # JSON-clean (no NaN, no numpy types)


# ---------------------------------------------------------------------------
# Scores everywhere


def test_scores_written_and_region_potential(trained):
    store, metrics, before = trained
    leads = store.cursor().sql(
        "SELECT lead_id, status, zip, score, expected_value, score_source FROM leads"
    ).df()
    open_ = leads[leads.status == "open"]
    assert (open_.score_source == "model:1").all()
    assert metrics["scored"]["open_leads"] == len(open_)
    assert open_.score.between(0, 1).all() and (open_.expected_value > 0).all()
    assert open_.score.nunique() > 100
    # Region stats: potential = sum of score x expected value over open leads, computed here in pandas.
    ours = region_stats(store, parse_layer("zip")).set_index("region_id").sort_index()
    pot = (open_.score * open_.expected_value).groupby(open_.zip).sum()
    theirs = leads[["zip"]].drop_duplicates().set_index("zip").join(pot.rename("potential")).fillna(0.0)
    theirs = theirs.sort_index()["potential"]
    assert list(ours.index) == list(theirs.index)
    np.testing.assert_allclose(ours["potential"].to_numpy(), theirs.to_numpy(), rtol=1e-9, atol=1e-6)
    # ... and it changed from the fallback scores.
    with_open = ours.index[ours.open_leads > 0]
    changed = (ours.loc[with_open, "potential"] - before["potential"].reindex(with_open)).abs()
    assert (changed > 1e-6).mean() > 0.99
    # Mean score of open leads stays near the closed leads' win rate (calibrated).
    assert open_.score.mean() == pytest.approx(metrics["base_rate"], abs=0.03)


def test_explain_lead(trained):
    store, metrics, _ = trained
    model = scoring.load_model(store)
    lead = store.cursor().sql(
        "SELECT lead_id, industry, employees, score FROM leads WHERE status = 'open' ORDER BY lead_id LIMIT 1"
    ).df().iloc[0]
    reasons = scoring.explain_lead(store, lead.lead_id)
    assert len(reasons) == 5
    assert all(isinstance(r, tuple) and len(r) == 3 for r in reasons)
    assert {r.feature for r in reasons} <= set(metrics["features"])
    mags = [abs(r.contribution) for r in reasons]
    assert mags == sorted(mags, reverse=True) and mags[0] > 0
    by = {r.feature: r for r in scoring.explain_lead(store, lead.lead_id, top=100)}
    assert set(by) == set(metrics["features"])
    assert by["industry"].value == lead.industry and by["employees"].value == lead.employees
    # The definition: score minus the score with the feature at its baseline value.
    frame = lead_features(store.cursor(), model.spec, lead.lead_id)
    base = frame.copy()
    base["industry"] = model.baselines["industry"]
    expected = model.predict_proba(frame)[0] - model.predict_proba(base)[0]
    assert by["industry"].contribution == pytest.approx(expected)
    assert model.predict_proba(frame)[0] == pytest.approx(lead.score)
    with pytest.raises(KeyError):
        scoring.explain_lead(store, "no such lead")


def test_icp_whitespace_tam(trained):
    store, _, _ = trained
    icp = scoring.icp_segments(store, min_support=50, top=None)
    assert (icp["closed"] >= 50).all() and len(icp) > 10
    assert icp["win_rate_low"].is_monotonic_decreasing
    assert (icp["win_rate_low"] <= icp["win_rate"]).all()
    top = icp.iloc[0]
    leads = store.cursor().sql(
        "SELECT l.industry, l.employees, l.status, coalesce(zp.urbanicity, zr.urbanicity) AS place FROM leads l "
        "LEFT JOIN zips zp ON zp.zip = l.postal_zip LEFT JOIN zips zr ON zr.zip = l.zip"
    ).df()
    band = pd.cut(leads.employees, [0, 9, 49, 199, 999, np.inf], labels=["1-9", "10-49", "50-199", "200-999", "1000+"])
    seg = leads[(leads.industry == top.industry) & (band == top.size_band) & (leads.place == top.place_type)]
    closed = seg[seg.status != "open"]
    assert len(closed) == top.closed
    assert (closed.status == "won").mean() == pytest.approx(top.win_rate)
    # The demo's best segments: high-propensity industries.
    assert top.industry in {"Software", "Financial Services", "Healthcare"}

    ws = scoring.whitespace(store, "zip", top=50)
    assert len(ws) == 50 and ws["potential"].is_monotonic_decreasing
    stats = region_stats(store, parse_layer("zip")).set_index("region_id")
    assert (stats.loc[ws.region_id, "customers"] == 0).all()
    assert ws["lat"].between(15, 72).all() and ws["place"].notna().all()
    no_customers = stats[(stats.customers == 0) & (stats.potential > 0) & (stats.open_leads > 0)]
    assert ws["potential"].iloc[0] == pytest.approx(no_customers["potential"].max())

    plan = get_plan(store)
    tam = scoring.tam_by_territory(store, plan, "zip")
    total = store.scalar("SELECT sum(score * expected_value) FROM leads WHERE status = 'open'")
    assert tam["tam"].sum() == pytest.approx(total, rel=1e-9)
    assert tam["share"].sum() == pytest.approx(1.0)
    assert (tam["whitespace_potential"] <= tam["tam"] + 1e-6).all()
    assert tam["territory"].notna().all()
    tam_h3 = scoring.tam_by_territory(store, plan.name, "h3:5")
    assert tam_h3["tam"].sum() == pytest.approx(total, rel=1e-9)


# ---------------------------------------------------------------------------
# Reproducibility, leakage, unseen categories (on the 20k session demo)


def test_same_seed_same_scores(demo_db_path, tmp_path):
    results = []
    for name in ("a.duckdb", "b.duckdb"):
        store = _copy(demo_db_path, tmp_path, name)
        metrics = scoring.retrain(store, seed=5)
        scores = store.cursor().sql(
            "SELECT lead_id, score, expected_value FROM leads WHERE status = 'open' ORDER BY lead_id"
        ).df()
        results.append((metrics, scores))
        store.close()
    (m1, s1), (m2, s2) = results
    pd.testing.assert_frame_equal(s1, s2)
    assert m1["data_hash"] == m2["data_hash"]
    for key in ("roc_auc", "pr_auc", "ece", "gains", "permutation_importance"):
        assert m1[key] == m2[key], key


def _add_extras(store: Store) -> None:
    """Imported columns: two honest ones, and leaky ones the guard must drop."""
    cur = store.cursor()
    d = cur.sql("SELECT l.lead_id, l.status, t.propensity FROM leads l JOIN demo_truth t USING (lead_id)").df()
    rng = np.random.default_rng(0)
    n = len(d)
    visits = rng.poisson(2 + 12 * d.propensity.to_numpy())
    extra = pd.DataFrame({
        "lead_id": d.lead_id,
        "Web Visits": np.where(rng.random(n) < 0.1, "", visits.astype(str)),  # numeric, as text, some empty
        "Lead Source": rng.choice(["Webinar", "Referral", "Cold call", "Trade show"], n),  # categorical
        "Stage": d.status.map({"won": "Closed Won", "lost": "Closed Lost", "open": "Prospecting"}),  # leak by name
        "q7": d.status.map({"won": "x", "lost": "y", "open": "z"}),  # leak under an innocent name: by value
        "Reason code": np.where(d.status == "lost", rng.choice(["price", "timing"], n), ""),  # filled at closing
        "Account Owner Email": [f"rep{i % 97}@x.com" for i in range(n)],  # contact detail
        "Visit summary": [f"call back about thing {i}" for i in range(n)],  # free text
    })
    cur.register("ex", extra)
    cur.execute(
        """UPDATE leads SET extra = json_object('Web Visits', ex."Web Visits", 'Lead Source', ex."Lead Source",
               'Stage', ex."Stage", 'q7', ex.q7, 'Reason code', ex."Reason code",
               'Account Owner Email', ex."Account Owner Email", 'Visit summary', ex."Visit summary")
           FROM ex WHERE leads.lead_id = ex.lead_id"""
    )
    cur.unregister("ex")


def test_leakage_guard(demo_db_path, tmp_path):
    store = _copy(demo_db_path, tmp_path, "leaky.duckdb")
    _add_extras(store)
    model = scoring.train_model(store, seed=3)
    feats = model.metrics["features"]
    kinds = model.metrics["feature_kinds"]
    assert kinds["extra:Web Visits"] == "numeric" and kinds["extra:Lead Source"] == "categorical"
    for leaky in ("extra:Stage", "extra:q7", "extra:Reason code"):
        assert leaky not in feats
        assert "leakage guard" in model.metrics["excluded"][leaky], leaky
    assert "name says it records the outcome" in model.metrics["excluded"]["extra:Stage"]
    assert "predicts the outcome almost perfectly" in model.metrics["excluded"]["extra:q7"]
    assert "different rates" in model.metrics["excluded"]["extra:Reason code"]
    assert "extra:Account Owner Email" in model.metrics["excluded"]
    assert "too many categories" in model.metrics["excluded"]["extra:Visit summary"]
    assert not set(feats) & {"status", "deal_value", "closed_at", "created_at", "crm_score"}
    assert 0.6 < model.metrics["roc_auc"] < 0.8  # no leak got through (a leak would give ~1)


def test_training_reads_no_outcome_columns(demo_db_path, tmp_path):
    """The classifier's query names no outcome column, and scrambling them changes no score."""
    store = _copy(demo_db_path, tmp_path, "a.duckdb")
    spec = scoring.feature_spec(store)
    seen = []

    class Recorder:
        def __init__(self, cur):
            self.cur = cur

        def execute(self, sql, *a):
            seen.append(sql)
            return self.cur.execute(sql, *a)

    closed_lead_features(Recorder(store.cursor()), spec)
    assert seen and not any(w in seen[0] for w in ("deal_value", "closed_at", "created_at", "crm_score"))

    m1 = scoring.train_model(store, seed=9)
    other = _copy(demo_db_path, tmp_path, "b.duckdb")
    rng = np.random.default_rng(1)
    vals = pd.DataFrame({"lead_id": other.cursor().sql("SELECT lead_id FROM leads").df().lead_id})
    vals["dv"] = rng.lognormal(10, 1, len(vals))
    cur = other.cursor()
    cur.register("vals", vals)
    cur.execute("UPDATE leads SET deal_value = vals.dv, closed_at = NULL, created_at = NULL "
                "FROM vals WHERE leads.lead_id = vals.lead_id")
    cur.unregister("vals")
    m2 = scoring.train_model(other, seed=9)
    frame = open_lead_features(store.cursor(), m1.spec)
    np.testing.assert_array_equal(m1.predict_proba(frame), m2.predict_proba(frame))
    np.testing.assert_array_equal(m1.holdout_scores, m2.holdout_scores)
    assert m1.metrics["roc_auc"] == m2.metrics["roc_auc"]
    store.close()
    other.close()


def test_unseen_category_at_scoring_time(demo_db_path, tmp_path):
    store = _copy(demo_db_path, tmp_path, "u.duckdb")
    _add_extras(store)
    scoring.retrain(store, seed=1)
    model = scoring.load_model(store)
    frame = open_lead_features(store.cursor(), model.spec).head(200)
    unseen = frame.assign(industry="Quantum Widgets", **{"extra:Lead Source": "Carrier pigeon"})
    missing = frame.assign(industry=None, **{"extra:Lead Source": None})
    p_unseen = model.predict_proba(unseen)
    assert np.isfinite(p_unseen).all() and ((p_unseen > 0) & (p_unseen < 1)).all()
    np.testing.assert_array_equal(p_unseen, model.predict_proba(missing))  # unseen = missing
    assert np.isfinite(model.expected_value(unseen)).all() and (model.expected_value(unseen) > 0).all()
    # A lead of a new industry in the database is scored too.
    store.cursor().execute(
        """INSERT INTO leads (lead_id, name, industry, employees, annual_revenue, status, postal_zip, zip, lat, lon,
                              cell, extra)
           SELECT 'NEW1', 'New Co', 'Quantum Widgets', 40, 5e6, 'open', postal_zip, zip, lat, lon, cell,
                  json_object('Lead Source', 'Carrier pigeon', 'Web Visits', 'lots')
           FROM leads WHERE status = 'open' ORDER BY lead_id LIMIT 1"""
    )
    scoring.score_leads(store, model)
    row = store.cursor().execute(
        "SELECT score, expected_value, score_source FROM leads WHERE lead_id = 'NEW1'"
    ).fetchall()[0]
    assert 0 < row[0] < 1 and row[1] > 0 and row[2] == "model:1"
    assert scoring.explain_lead(store, "NEW1")[0].feature in model.spec.columns
    store.close()


# ---------------------------------------------------------------------------
# User files: no history, and a small CSV through the CLI


def _csv(path, n: int, seed: int, statuses=None, crm: bool = False) -> None:
    df, prop = generate_leads(n, seed)
    rng = np.random.default_rng(seed)
    status = df.status if statuses is None else pd.Series(statuses[:n])
    out = pd.DataFrame({
        "Lead ID": df.lead_id, "Company": df.name, "Industry": df.industry, "Employees": df.employees,
        "Annual Revenue": df.annual_revenue, "Status": status.map({"won": "Closed Won", "lost": "Closed Lost",
                                                                   "open": "Working"}),
        "Amount": np.where(status == "won", df.deal_value.fillna(5000), np.nan), "Zip": df.postal_zip,
        "Web Visits": rng.poisson(1 + 15 * prop),
        "Lead Source": rng.choice(["Webinar", "Referral", "Cold call"], n),
        "Outcome Flag": status.map({"won": "Y", "lost": "N", "open": "?"}),
        "Notes": [f"met at booth {i}" for i in range(n)],
    })
    if crm:  # a CRM score in points: a noisy view of the propensity
        out["Lead Score"] = np.clip(np.round(100 * prop + rng.normal(0, 15, n)), 0, 100)
    out.to_csv(path, index=False)


def test_no_history_keeps_fallback(empty_store, tmp_path, capsys):
    from terrmap.cli import main
    from terrmap.io.ingest import import_file

    path = tmp_path / "few.csv"
    _csv(path, 40, seed=3)
    import_file(empty_store, path)
    before = empty_store.cursor().sql("SELECT lead_id, score, score_source FROM leads ORDER BY lead_id").df()
    with pytest.raises(scoring.NotEnoughHistory) as info:
        scoring.retrain(empty_store)
    exc = info.value
    closed = int(before.shape[0] - empty_store.scalar("SELECT count(*) FROM leads WHERE status = 'open'"))
    assert exc.closed == closed < scoring.MIN_CLOSED
    assert f"{closed:,} closed leads" in str(exc) and "fallback" in str(exc)
    after = empty_store.cursor().sql("SELECT lead_id, score, score_source FROM leads ORDER BY lead_id").df()
    pd.testing.assert_frame_equal(before, after)
    assert set(after.score_source) <= {"fit", "crm"}
    assert empty_store.scalar("SELECT count(*) FROM models") == 0
    assert scoring.explain_lead(empty_store, after.lead_id[0])[0].feature in ("employees", "annual_revenue")
    with pytest.raises(scoring.NoModel):
        scoring.load_model(empty_store)

    # Plenty of closed leads but a single outcome: also not enough.
    one_class = tmp_path / "lost.csv"
    _csv(one_class, 300, seed=4, statuses=np.array(["lost"] * 300))
    import_file(empty_store, one_class)
    with pytest.raises(scoring.NotEnoughHistory, match="0 won"):
        scoring.train_model(empty_store)

    # The CLI says so, exits 3 and prints the counts.
    assert main(["score", "--db", str(empty_store.path)]) == 3
    out = json.loads(capsys.readouterr().out)
    # (the second file re-used the first one's ids: every lead is now lost)
    assert out["error"] == "not_enough_history" and out["scores"] == "fallback"
    assert (out["closed"], out["won"], out["lost"]) == (300, 0, 300)


def test_cli_scores_an_imported_csv(tmp_path, capsys):
    from terrmap.cli import main
    from terrmap.data.store import close_all, open_store
    from terrmap.io.ingest import import_file

    db = tmp_path / "user.duckdb"
    csv = tmp_path / "leads.csv"
    _csv(csv, 900, seed=8, crm=True)
    store = open_store(db)
    try:
        import_file(store, csv)
        assert main(["score", "--db", str(db)]) == 0
        out = json.loads(capsys.readouterr().out)
        for key in ("roc_auc", "pr_auc", "ece", "n_train", "model_version", "score_source", "baseline", "data_hash",
                    "calibration_curve", "gains", "permutation_importance"):
            assert key in out, key
        assert out["model_version"] == 1 and out["n_train"] > 200 * 0.6
        assert out["calibration"] == "sigmoid"  # small calibration split: Platt scaling
        assert out["feature_kinds"]["extra:Web Visits"] == "numeric"
        assert out["feature_kinds"]["extra:Lead Source"] == "categorical"
        assert "extra:Outcome Flag" not in out["features"] and "extra:Notes" not in out["features"]
        assert 0.5 < out["roc_auc"] <= 1 and 0 <= out["ece"] <= 1
        assert out["baseline"]["name"] == "crm_score" and 0.5 < out["baseline"]["roc_auc"] < 1
        assert "crm_score" not in out["features"]
        sources = store.cursor().sql("SELECT DISTINCT score_source FROM leads WHERE status = 'open'").fetchall()
        assert sources == [("model:1",)]
        version = store.scalar("SELECT max(version) FROM models")
        assert version == 1
        assert store.scalar("SELECT data_hash FROM models") == out["data_hash"]
        # Leads imported after a model exists are scored by it, not by the fallback.
        more = tmp_path / "more.csv"
        _csv(more, 50, seed=9)
        import_file(store, more)
        sources = store.cursor().sql("SELECT DISTINCT score_source FROM leads WHERE status = 'open'").fetchall()
        assert sources == [("model:1",)]
    finally:
        close_all()


# ---------------------------------------------------------------------------
# The Model page (Streamlit's AppTest: the script runs in this process, no browser)


def test_model_page_retrains_and_explains(demo_db_path, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from terrmap.data.store import close_all

    path = tmp_path / "page.duckdb"
    shutil.copy(demo_db_path, path)
    monkeypatch.setenv("TERRMAP_DB", str(path))
    try:
        at = AppTest.from_file(str(ROOT / "pages" / "model.py"), default_timeout=120)
        at.run()
        assert not at.exception
        assert any("enough to train a model" in i.value for i in at.info)
        at.session_state["model_tab"] = "Whitespace"  # the user is on another tab when they retrain
        at.session_state["model_retrain_popover"] = True
        at.run()
        next(b for b in at.button if b.label == "Train and score").click().run()
        assert not at.exception
        assert any("Model 1 trained" in x.value for x in at.success)
        assert at.session_state["model_tab"] == "Whitespace"  # the tab is kept
        assert at.session_state["model_retrain_popover"] is False  # the popover closed when done
        impact = next(m.value for m in at.markdown if "What the new scores did to the plans" in m.value)
        assert "balance of" in impact or "no plan's balance changed" in impact
        assert any("Potential after" in list(d.value.columns) or "potential_after" in list(d.value.columns)
                   for d in at.dataframe)
        labels = {m.label: m.value for m in at.metric}
        assert {"ROC AUC", "PR AUC", "ECE", "Brier"} <= set(labels)
        lead = at.selectbox(key="lookup_pick").options[0].split(" · ")[0]
        at.text_input(key="lookup_id").input(lead).run()
        assert not at.exception
        assert {m.label: m.value for m in at.metric}["Scored by"] == "model:1"
    finally:
        close_all()


# ---------------------------------------------------------------------------
# What the Model page shows, against independent pandas computations on the 20k demo


def _leads(store: Store) -> pd.DataFrame:
    return store.cursor().sql("SELECT * FROM leads").df()


def test_page_queries_match_pandas(demo_store):
    from terrmap.data import models as stored

    leads = _leads(demo_store)
    open_ = leads[leads.status == "open"].assign(potential=lambda d: (d.score * d.expected_value).fillna(0.0))
    expected = open_.sort_values(["potential", "lead_id"], ascending=[False, True]).head(300)
    top = stored.top_open_leads(demo_store, limit=300)
    assert list(top.lead_id) == list(expected.lead_id)
    np.testing.assert_allclose(top.potential, expected.potential, rtol=1e-12)
    assert list(top.columns) == ["lead_id", "name", "industry", "potential"]

    counts = stored.score_source_counts(demo_store).set_index("score_source")["open_leads"]
    theirs = open_.score_source.value_counts()
    assert counts.to_dict() == theirs.to_dict() and counts.is_monotonic_decreasing

    won, lost = stored.closed_lead_counts(demo_store.cursor())
    assert (won, lost) == ((leads.status == "won").sum(), (leads.status == "lost").sum())
    assert scoring.check_history(demo_store) == {"closed": won + lost, "won": won, "lost": lost}

    for status in ("open", "won"):
        row = leads[leads.status == status].sort_values("lead_id").iloc[0]
        card = stored.lead_card(demo_store, row.lead_id)
        assert len(card) == 1 and card.iloc[0].score == pytest.approx(row.score)
        assert card.iloc[0].potential == pytest.approx(row.score * row.expected_value if status == "open" else 0.0)
    assert stored.lead_card(demo_store, "no such lead").empty


def test_model_history_and_saved_versions(demo_store):
    from terrmap.data import models as stored

    assert stored.model_history(demo_store).empty and scoring.latest_metrics(demo_store) is None
    metrics = scoring.retrain(demo_store, seed=2)
    model = scoring.load_model(demo_store)
    with demo_store.transaction() as tx:
        assert scoring.save_model(demo_store, model, tx) == 2
    hist = stored.model_history(demo_store)
    assert list(hist.version) == [2, 1]
    assert hist.roc_auc.tolist() == pytest.approx([metrics["roc_auc"]] * 2)
    assert (hist.data_hash == metrics["data_hash"]).all() and (hist.seed == 2).all()
    latest = scoring.latest_metrics(demo_store)
    assert latest["model_version"] == 2 and latest["created_at"]
    assert scoring.load_model(demo_store, 1).version == 1
    with pytest.raises(scoring.NoModel):
        scoring.load_model(demo_store, 3)
    # Scores went through write_scores: every open lead, as the model scores it.
    leads = _leads(demo_store).sort_values("lead_id")
    open_ = leads[leads.status == "open"]
    frame = open_lead_features(demo_store.cursor(), model.spec)
    p, v = model.score(frame)
    np.testing.assert_allclose(open_.score.to_numpy(), p, rtol=1e-12)
    np.testing.assert_allclose(open_.expected_value.to_numpy(), v, rtol=1e-12)
    assert (open_.score_source == "model:1").all()


def test_report_tables(demo_store):
    metrics = scoring.retrain(demo_store, seed=4)
    base = metrics["baseline"]
    comp = scoring.comparison_table(metrics).set_index("Metric")
    assert list(comp.columns) == ["Model", base["label"]]
    keys = ("roc_auc", "pr_auc", "ece", "brier", "log_loss")
    assert comp["Model"].tolist() == pytest.approx([metrics[k] for k in keys])
    assert comp[base["label"]].tolist() == pytest.approx([base[k] for k in keys])
    gains = scoring.gains_curves(metrics)
    model_curve = gains[gains.who == "Model"]
    assert model_curve.wins.is_monotonic_increasing and model_curve.wins.iloc[-1] == pytest.approx(1.0)
    assert set(gains.who) == {"Model", base["label"], "Random"}
    feats = scoring.features_table(metrics)
    assert len(feats) == len(metrics["features"]) and "Industry" in feats.Feature.tolist()
    lead = _leads(demo_store).query("status == 'open'").sort_values("lead_id").iloc[0]
    reasons = scoring.explain_lead(demo_store, lead.lead_id, top=8)
    table = scoring.reasons_table(reasons)
    assert table.points.tolist() == pytest.approx([100 * r.contribution for r in reasons])
    assert table.label.iloc[0].startswith(scoring.feature_label(reasons[0].feature) + ": ")


def test_calibration_curve_equal_count_bins():
    """Against pandas' quantile cut (the same right-closed bins), ties included."""
    rng = np.random.default_rng(3)
    p = np.round(rng.beta(2, 5, 5000), 3)  # rounded: many ties
    y = (rng.random(5000) < p).astype(int)
    curve = scoring.calibration_curve(y, p)
    bins = pd.qcut(p, scoring.ECE_BINS, duplicates="drop")
    g = pd.DataFrame({"p": p, "y": y}).groupby(bins, observed=True).agg(n=("y", "size"), predicted=("p", "mean"),
                                                                       observed=("y", "mean"))
    assert [b["n"] for b in curve] == g.n.tolist() and sum(g.n) == len(p)
    assert [b["predicted"] for b in curve] == pytest.approx(g.predicted.tolist())
    assert [b["observed"] for b in curve] == pytest.approx(g.observed.tolist())
    ece = float((g.n * (g.observed - g.predicted).abs()).sum() / g.n.sum())
    assert scoring.expected_calibration_error(y, p) == pytest.approx(ece)


def test_segment_outcomes_match_pandas(demo_store):
    from terrmap.data.market import segment_outcomes

    leads = demo_store.cursor().sql(
        "SELECT l.*, coalesce(zp.urbanicity, zr.urbanicity, 'unknown') AS place FROM leads l "
        "LEFT JOIN zips zp ON zp.zip = l.postal_zip LEFT JOIN zips zr ON zr.zip = l.zip"
    ).df()
    band = pd.cut(leads.employees, [0, 9, 49, 199, 999, np.inf], labels=["1-9", "10-49", "50-199", "200-999", "1000+"])
    leads = leads.assign(industry=leads.industry.fillna("unknown"),
                         band=band.astype(object).where(leads.employees.notna(), "unknown"),
                         won=leads.status == "won", closed=leads.status != "open", open=leads.status == "open",
                         won_value=leads.deal_value.where(leads.status == "won"),
                         potential=(leads.score * leads.expected_value).where(leads.status == "open"))
    theirs = leads.groupby(["industry", "band", "place"]).agg(
        closed=("closed", "sum"), won=("won", "sum"), won_value=("won_value", "sum"), avg_deal=("won_value", "median"),
        open_leads=("open", "sum"), open_potential=("potential", "sum"))
    ours = segment_outcomes(demo_store).set_index(["industry", "size_band", "place_type"]).sort_index()
    theirs = theirs.rename_axis(ours.index.names).sort_index()
    assert list(ours.index) == list(theirs.index)
    for col in ("closed", "won", "open_leads"):
        assert ours[col].tolist() == theirs[col].tolist(), col
    for col in ("won_value", "avg_deal", "open_potential"):
        np.testing.assert_allclose(ours[col].to_numpy(dtype=float), theirs[col].to_numpy(dtype=float), rtol=1e-9)


def test_model_saved_by_an_older_layout_asks_for_a_retrain(empty_store):
    """A model pickled when terrmap.scoring was one module (its classes are gone) is NoModel, with a reason."""
    from terrmap.data import models as stored

    old_pickle = b"cterrmap.scoring\n_Calibrator\n)\x81."  # GLOBAL terrmap.scoring._Calibrator, NEWOBJ
    with empty_store.transaction() as tx:
        stored.insert_model(tx, 1, 42, "hash", 10, {"roc_auc": 0.7}, old_pickle)
    assert scoring.latest_version(empty_store) == 1
    with pytest.raises(scoring.NoModel, match="retrain"):
        scoring.load_model(empty_store)


def test_retrain_impact_per_territory_matches_pandas(demo_store):
    """Before/after per territory from two snapshots around a retrain, against sums of score × expected value of
    the open leads by the territory of their region (the demo without named accounts: plain geography)."""
    from terrmap.plan import list_plans, load_assignment
    from terrmap.scoring.impact import BALANCE_CHANGE, balance_snapshot, rescoring_impact

    demo_store.cursor().execute("DELETE FROM account_pins; DELETE FROM overlays")
    plan = list_plans(demo_store)[0]

    def by_pandas() -> pd.Series:
        leads = _leads(demo_store)
        leads = leads[leads.status == "open"].assign(p=lambda d: (d.score * d.expected_value).fillna(0.0))
        assign = load_assignment(demo_store, plan.plan_id)
        owned = leads.merge(assign, left_on="zip", right_on="region_id")
        return owned.groupby("territory_id")["p"].sum()

    before, pandas_before = balance_snapshot(demo_store), by_pandas()
    scoring.retrain(demo_store)
    after, pandas_after = balance_snapshot(demo_store), by_pandas()
    per, plans = rescoring_impact(before, after)
    mine = per[per["plan_id"] == plan.plan_id].set_index("territory_id")
    np.testing.assert_allclose(mine["potential_before"], pandas_before.reindex(mine.index).fillna(0), rtol=1e-9)
    np.testing.assert_allclose(mine["potential_after"], pandas_after.reindex(mine.index).fillna(0), rtol=1e-9)
    shares = pandas_after.reindex(mine.index).fillna(0)
    np.testing.assert_allclose(mine["deviation_after"], shares / shares.mean() - 1, atol=1e-9)
    row = plans.set_index("plan_id").loc[plan.plan_id]
    assert row["potential_after"] != pytest.approx(row["potential_before"], rel=1e-3)  # a model rescales the plan
    moved = abs(row["max_deviation_after"] - row["max_deviation_before"])
    assert bool(row["balance_changes"]) == (moved >= BALANCE_CHANGE)
