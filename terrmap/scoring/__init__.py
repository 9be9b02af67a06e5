"""Lead scores and expected deal values: fallback scores and the predictive model.

Revenue potential of an open lead = score x expected value (see :mod:`terrmap.measures`). Every
lead's ``score_source`` says where its score came from: ``crm`` or ``fit`` (the fallback, until a
model has been trained and for leads it has not scored) or ``model:<version>``.

The way through the package, one concept per module:

* :mod:`~terrmap.scoring.fallback`: the fallback score (imported CRM score, else a firmographic fit
  score) and expected deal value, in SQL and pandas;
* :mod:`~terrmap.scoring.features`: which columns are features (imported columns detected, the
  leakage guard's name and presence rules) and how they are encoded;
* :mod:`~terrmap.scoring.model`: the trained :class:`LeadModel` (boosted classifier, calibration,
  expected deal value) and its threads;
* :mod:`~terrmap.scoring.train`: :func:`train_model` on the closed leads (splits, the leakage guard's
  value rule, the deal-value model);
* :mod:`~terrmap.scoring.evaluate`: held-out validation (metrics, calibration curve, gains,
  permutation importance, baseline) and the report tables;
* :mod:`~terrmap.scoring.saved`: models saved in and loaded from the database
  (the SQL lives in :mod:`terrmap.data.models`);
* :mod:`~terrmap.scoring.apply`: :func:`score_leads` and :func:`retrain` (train, save, score);
* :mod:`~terrmap.scoring.explain`: the top reasons for a lead's score;
* :mod:`~terrmap.scoring.market`: ideal customer profile segments, whitespace and TAM per territory.

Its SQL lives in :mod:`terrmap.data` (``lead_features``: what a model reads; ``models``: stored models,
score writes and closed-lead history; ``market``: segment and place queries); the fallback formula's SQL
(:mod:`~terrmap.scoring.fallback`) stays here beside its pandas twin.
"""

from terrmap.scoring.apply import retrain, score_leads
from terrmap.scoring.evaluate import (
    ECE_BINS,
    calibration_curve,
    comparison_table,
    excluded_table,
    expected_calibration_error,
    features_table,
    gains_curves,
)
from terrmap.scoring.explain import Reason, explain_lead, reasons_table
from terrmap.scoring.fallback import (
    apply_fallback_scores,
    fallback_expected_value_sql,
    fallback_score_sql,
    fallback_value_ctes,
)
from terrmap.scoring.features import FeatureSpec, feature_label, feature_spec
from terrmap.scoring.market import icp_segments, tam_by_territory, whitespace
from terrmap.scoring.model import LeadModel
from terrmap.scoring.saved import NoModel, latest_metrics, latest_version, load_model, save_model
from terrmap.scoring.train import (
    DEFAULT_SEED,
    MIN_CLOSED,
    MIN_PER_CLASS,
    NotEnoughHistory,
    check_history,
    train_model,
)

__all__ = [
    "DEFAULT_SEED", "ECE_BINS", "MIN_CLOSED", "MIN_PER_CLASS", "apply_fallback_scores", "calibration_curve",
    "check_history", "comparison_table", "excluded_table", "expected_calibration_error", "explain_lead",
    "fallback_expected_value_sql", "fallback_score_sql", "fallback_value_ctes", "feature_label", "feature_spec",
    "features_table", "FeatureSpec", "gains_curves", "icp_segments", "latest_metrics", "latest_version",
    "LeadModel", "load_model", "NoModel", "NotEnoughHistory", "Reason", "reasons_table", "retrain",
    "save_model", "score_leads", "tam_by_territory", "train_model", "whitespace",
]
