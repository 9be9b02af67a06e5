"""Why a lead has its score: the top reasons, largest effect first (:func:`explain_lead`).

With a model, the contribution of a feature to a lead's score is the score minus the score with that
feature replaced by its baseline value (the training median of a numeric column, the most frequent
category of a categorical one), all else unchanged. Scored by the fallback: the terms of the fit
score above an unknown-size company (``fit``), or the imported score itself (``crm``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from terrmap.data.lead_features import lead_features
from terrmap.data.models import lead_score_inputs
from terrmap.scoring.features import feature_label, prepare
from terrmap.scoring.model import LeadModel
from terrmap.scoring.saved import NoModel, load_model

if TYPE_CHECKING:
    from terrmap.data.store import Store


class Reason(NamedTuple):
    """One reason for a lead's score: the feature, the lead's value and its contribution (score points, 0-1)."""

    feature: str
    value: object
    contribution: float


def _model_of(store: Store, source) -> LeadModel | None:
    """The model that wrote ``score_source``, when it is a model and still loadable."""
    if source is None or not str(source).startswith("model:"):
        return None
    try:
        return load_model(store, int(str(source).split(":", 1)[1]))
    except (NoModel, ValueError):
        return None


def _fallback_reasons(source, crm, employees, revenue) -> list[Reason]:
    if source == "crm":
        return [Reason("crm_score", crm, float(crm or 0.0))]
    emp_term = 0.06 * (math.log10(1 + (employees if employees is not None else 10)) - math.log10(11))
    rev_term = 0.03 * math.log10(1 + (revenue or 0) / 1e6)
    return [Reason("employees", employees, emp_term), Reason("annual_revenue", revenue, rev_term)]


def _plain(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def _model_reasons(store: Store, model: LeadModel, lead_id: str) -> list[Reason]:
    frame = lead_features(store.cursor(), model.spec, lead_id)
    X = prepare(frame, model.spec)
    variants = [X]
    for c in model.spec.columns:
        v = X.copy()
        v[c] = pd.Series([model.baselines.get(c, np.nan)], dtype=X[c].dtype, index=v.index)
        variants.append(v)
    p = model.predict_proba(pd.concat(variants, ignore_index=True))
    return [Reason(c, _plain(X[c].iloc[0]), float(p[0] - p[i])) for i, c in enumerate(model.spec.columns, start=1)]


def explain_lead(store: Store, lead_id: str, top: int = 5, model: LeadModel | None = None) -> list[Reason]:
    """The top reasons for a lead's score, largest effect first (by the model that scored it, or ``model``).

    Raises KeyError when there is no such lead.
    """
    row = lead_score_inputs(store.cursor(), lead_id)
    if row is None:
        raise KeyError(f"no lead with id {lead_id!r}")
    source = row[0]
    model = model or _model_of(store, source)
    reasons = _fallback_reasons(*row) if model is None else _model_reasons(store, model, lead_id)
    return sorted(reasons, key=lambda r: -abs(r.contribution))[:top]


def reasons_table(reasons: list[Reason]) -> pd.DataFrame:
    """The reasons as people read them: feature (label), value (text), points (score points, 0-100), label."""
    def text(value) -> str:
        if value is None:
            return "missing"
        return f"{value:,.0f}" if isinstance(value, float) else str(value)

    out = pd.DataFrame({"feature": [feature_label(r.feature) for r in reasons],
                        "value": [text(r.value) for r in reasons],
                        "points": [r.contribution * 100 for r in reasons]})
    out["label"] = out["feature"] + ": " + out["value"]
    return out
