"""Training and validating a lead-scoring model on the closed leads (:func:`train_model`; nothing is written).

* **Data.** The closed leads (status won or lost) are the training rows; the label is
  ``status = 'won'``. They need at least :data:`MIN_CLOSED` closed leads and :data:`MIN_PER_CLASS`
  of each outcome, else :class:`NotEnoughHistory` is raised (with the counts).
* **Splits.** Stratified and seeded: train (64%), calibration (16%) and test (20%). The returned
  model is exactly the validated one (no refit after validation).
* **Leakage guard, by value**: an imported column that on its own separates won from lost almost
  perfectly (single-column ROC AUC >= :data:`LEAK_AUC` on the training rows: e.g. a copy of the
  status under an innocent name) is dropped; the other rules sit in :mod:`terrmap.scoring.features`.
  Every exclusion and its reason is recorded in the metrics (``excluded``).
* **Expected deal value**: with at least :data:`MIN_WON_FOR_VALUE_MODEL` won deals with a value,
  a regressor trained on 80% of them; its smearing factor and error (beside the industry-median
  rule's) come from the other 20%.
* **Reproducible.** Rows are read in ``lead_id`` order and every random choice (splits, early
  stopping, shuffles) derives from the seed: the same data and seed give the same model and scores.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from terrmap.data.lead_features import closed_lead_features, won_deal_features
from terrmap.data.models import closed_lead_counts, closed_lead_crm_scores
from terrmap.scoring import evaluate
from terrmap.scoring.fallback import ValueRule
from terrmap.scoring.features import FeatureMatrix, FeatureSpec, feature_spec, prepare
from terrmap.scoring.model import Calibrator, LeadModel, calibration_method, classifier, openmp, regressor

if TYPE_CHECKING:
    from terrmap.data.store import Store

Progress = Callable[[float, str], None]

MIN_CLOSED = 200
MIN_PER_CLASS = 20
DEFAULT_SEED = 42
TEST_FRACTION = 0.20
CALIBRATION_FRACTION = 0.20  # of what is left after the test split
MIN_WON_FOR_VALUE_MODEL = 50
LEAK_AUC = 0.97


class NotEnoughHistory(Exception):
    """Too few closed leads (or only one outcome) to train a model; scores stay on the fallback."""

    def __init__(self, closed: int, won: int, lost: int):
        self.closed, self.won, self.lost = int(closed), int(won), int(lost)
        super().__init__(
            f"Not enough history to train a lead-scoring model: {self.closed:,} closed leads "
            f"({self.won:,} won, {self.lost:,} lost). A model needs at least {MIN_CLOSED:,} closed leads "
            f"with at least {MIN_PER_CLASS} won and {MIN_PER_CLASS} lost. Until then every lead keeps its "
            "fallback score: the imported CRM score where there is one, else the firmographic fit score."
        )

    @property
    def counts(self) -> dict:
        return {"closed": self.closed, "won": self.won, "lost": self.lost,
                "min_closed": MIN_CLOSED, "min_per_class": MIN_PER_CLASS}


def check_history(store: Store, cur=None) -> dict:
    """The closed-lead counts; raises :class:`NotEnoughHistory` when a model cannot be trained."""
    won, lost = closed_lead_counts(cur or store.cursor())
    if won + lost < MIN_CLOSED or won < MIN_PER_CLASS or lost < MIN_PER_CLASS:
        raise NotEnoughHistory(won + lost, won, lost)
    return {"closed": won + lost, "won": won, "lost": lost}


def stratified_split(idx: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    from sklearn.model_selection import train_test_split  # why: slow import (see terrmap.scoring.model)

    a, b = train_test_split(idx, test_size=fraction, random_state=seed, stratify=y[idx])
    return np.sort(a), np.sort(b)


def _data_hash(frame: pd.DataFrame, won_values: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for part in (frame, won_values):
        h.update(",".join(map(str, part.columns)).encode())
        h.update(np.ascontiguousarray(pd.util.hash_pandas_object(part, index=False).to_numpy()).tobytes())
    return h.hexdigest()


def _leaky_extras(spec: FeatureSpec, X_train: pd.DataFrame, y_train: np.ndarray) -> list[str]:
    """Leakage guard, by value: the imported columns that alone separate won from lost on the training rows
    (each gets its reason in ``spec.excluded``)."""
    leaky = []
    for e in spec.extras:
        auc = evaluate.single_column_auc(X_train[e.name], y_train, e.kind == "categorical")
        if auc >= LEAK_AUC:
            leaky.append(e.name)
            spec.excluded[e.name] = (f"leakage guard: on its own it predicts the outcome almost perfectly "
                                     f"(ROC AUC {auc:.3f}), so it is likely recorded with or after the outcome")
    return leaky


def _train_value_model(spec: FeatureSpec, won: pd.DataFrame, rule: ValueRule, seed: int,
                       features: FeatureMatrix | None = None):
    """(regressor or None, smearing factor, clip range, metrics) for the expected deal value.

    ``features``: an already fitted first step to share with the classifier (one encoding per scoring run).
    """
    v = won[won["deal_value"] > 0].reset_index(drop=True)
    n = len(v)
    info: dict = {"n_won_with_value": int(n)}
    if n < MIN_WON_FOR_VALUE_MODEL:
        info["method"] = "industry median (fallback rule)"
        return None, 1.0, (0.0, float("inf")), info
    rng = np.random.default_rng(seed + 1)
    test_mask = np.zeros(n, dtype=bool)
    test_mask[rng.choice(n, max(10, int(0.2 * n)), replace=False)] = True
    X = prepare(v, spec)
    logv = np.log(v["deal_value"].to_numpy(dtype=float))
    reg = regressor(spec, int((~test_mask).sum()), seed)
    with openmp():
        if features is None:
            reg.fit(X[~test_mask], logv[~test_mask])
        else:  # keep the shared, fitted first step; fit the booster on its output
            reg.steps[0] = ("features", features)
            reg.named_steps["model"].fit(features.transform(X[~test_mask]), logv[~test_mask])
        pred_test = reg.predict(X[test_mask])
    resid = logv[test_mask] - pred_test
    smear = float(np.mean(np.exp(resid)))
    lo, hi = float(v["deal_value"].min()), float(v["deal_value"].max())
    actual = v["deal_value"].to_numpy()[test_mask]
    ours = np.clip(np.exp(pred_test) * smear, lo, hi)
    rule_pred = rule.predict_frame(v.loc[test_mask])
    ss_tot = float(((logv[test_mask] - logv[test_mask].mean()) ** 2).sum())
    info.update({
        "method": "gradient boosting on log deal value (Duan smearing)",
        "n_train": int((~test_mask).sum()), "n_test": int(test_mask.sum()),
        "r2_log": 1 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else None,
        "median_abs_pct_error": float(np.median(np.abs(ours - actual) / actual)),
        "baseline_median_abs_pct_error": float(np.median(np.abs(rule_pred - actual) / actual)),
        "smearing_factor": smear,
    })
    return reg, smear, (lo, hi), info


def _baselines(spec: FeatureSpec, X_train: pd.DataFrame) -> dict:
    """Per feature, the value an explanation swaps in: the most frequent category, or the median."""
    baselines = {}
    for c in spec.categorical:
        mode = X_train[c].mode(dropna=True)
        baselines[c] = mode.iloc[0] if len(mode) else np.nan
    for c in spec.numeric:
        baselines[c] = float(X_train[c].median()) if X_train[c].notna().any() else np.nan
    return baselines


def _validate(model: LeadModel, frame: pd.DataFrame, X: pd.DataFrame, y: np.ndarray, crm: np.ndarray,
              train_idx: np.ndarray, test_idx: np.ndarray, seed: int, report: Progress) -> dict:
    """The held-out metrics (classification, calibration, gains, baseline, importance); sets holdout_scores."""
    X_test, y_test = X.iloc[test_idx].reset_index(drop=True), y[test_idx]
    p_test = model.predict_proba(X_test)
    model.holdout_scores = p_test.astype(np.float64)
    metrics = evaluate.classification_metrics(y_test, p_test)
    metrics["roc_auc_uncalibrated"] = evaluate.roc_auc(y_test, model.raw_proba(X_test))
    test_frame = frame.iloc[test_idx].reset_index(drop=True).assign(crm_score=crm[test_idx])
    base, mask = evaluate.baseline(frame.iloc[train_idx], y[train_idx], test_frame, y_test)
    if not mask.all():
        base["model_on_same_leads"] = evaluate.classification_metrics(y_test[mask], p_test[mask])
    report(0.7, "permutation importance")
    Z_test = model.features.transform(prepare(X_test, model.spec))  # the matrix's columns: spec.columns
    with openmp(1):
        importance = evaluate.permutation_importance(model.booster, Z_test, y_test, model.spec.columns, seed)
    metrics.update({
        "calibration_curve": evaluate.calibration_curve(y_test, p_test),
        "gains": evaluate.gains_by_decile(y_test, p_test),
        "permutation_importance": importance,
        "baseline": base,
    })
    return metrics


def train_model(store: Store, seed: int = DEFAULT_SEED, progress: Progress | None = None) -> LeadModel:
    """Train and validate a model on the closed leads (nothing is written; see :func:`terrmap.scoring.retrain`).

    Raises :class:`NotEnoughHistory` when there are too few closed leads or only one outcome.
    """
    report = progress or (lambda frac, msg: None)
    t0 = time.perf_counter()
    cur = store.cursor()
    counts = check_history(store, cur)
    report(0.02, "choosing features")
    spec = feature_spec(store, cur)
    report(0.06, f"loading {counts['closed']:,} closed leads")
    # The leakage guard's first rule: only lead_id, status (the label) and the feature columns are read.
    frame = closed_lead_features(cur, spec)
    y = (frame["status"] == "won").to_numpy(dtype=int)
    crm = closed_lead_crm_scores(cur)
    X = prepare(frame, spec)

    fit_idx, test_idx = stratified_split(np.arange(len(frame)), y, TEST_FRACTION, seed)
    train_idx, cal_idx = stratified_split(fit_idx, y, CALIBRATION_FRACTION, seed)
    leaky = _leaky_extras(spec, X.iloc[train_idx], y[train_idx])
    if leaky:
        spec, X = spec.without(leaky), X.drop(columns=leaky)
    report(0.12, f"training on {len(train_idx):,} leads")
    t_fit = time.perf_counter()
    with openmp():
        clf = classifier(spec, len(train_idx), seed).fit(X.iloc[train_idx], y[train_idx])
        fit_seconds = time.perf_counter() - t_fit
        report(0.45, "calibrating")
        raw_cal = clf.predict_proba(X.iloc[cal_idx])[:, 1]
    method = calibration_method(y[cal_idx])
    calibrator = Calibrator(method).fit(raw_cal, y[cal_idx])

    report(0.5, "expected deal values")
    won_values = won_deal_features(cur, spec)
    rule = ValueRule.fit(won_values)
    value_model, smear, vrange, value_info = _train_value_model(spec, won_values, rule, seed,
                                                                clf.named_steps["features"])
    model = LeadModel(
        spec=spec, seed=seed, classifier=clf, calibrator=calibrator, value_model=value_model,
        value_smear=smear, value_range=vrange, value_rule=rule, baselines=_baselines(spec, X.iloc[train_idx]),
        data_hash=_data_hash(frame[["lead_id", "status", *spec.columns]], won_values[["lead_id", "deal_value"]]),
        metrics={}, holdout_lead_ids=frame["lead_id"].to_numpy()[test_idx].astype(object),
        holdout_scores=np.zeros(0),
    )

    report(0.6, "validating on held-out leads")
    metrics = _validate(model, frame, X, y, crm, train_idx, test_idx, seed, report)
    won_n = int(y.sum())
    metrics.update({
        "model_version": None,
        "score_source": None,
        "seed": seed,
        "data_hash": model.data_hash,
        "n_closed": int(len(y)), "n_won": won_n, "n_lost": int(len(y) - won_n),
        "n_train": int(len(train_idx)), "n_calibration": int(len(cal_idx)), "n_test": int(len(test_idx)),
        "base_rate": float(y.mean()),
        "calibration": method,
        "boosting_iterations": int(clf.named_steps["model"].n_iter_),
        "features": spec.columns,
        "feature_kinds": {**{c: "categorical" for c in spec.categorical}, **{c: "numeric" for c in spec.numeric}},
        "excluded": dict(spec.excluded),
        "value_model": value_info,
        "fit_seconds": round(fit_seconds, 3),
        "train_seconds": round(time.perf_counter() - t0, 3),
    })
    model.metrics = evaluate.jsonable(metrics)
    report(0.78, "trained")
    return model
