"""Putting a model to work: score every open lead (:func:`score_leads`), or train, save and score in one
go (:func:`retrain`, the Model page's button and ``python -m terrmap score``).

Every open lead gets score = calibrated probability, expected value = expected deal value and
``score_source = 'model:<version>'``, in one transaction that also rebuilds the region rollup.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from terrmap.data.lead_features import open_lead_rows
from terrmap.data.models import write_scores
from terrmap.data.rollup import refresh_rollup
from terrmap.scoring.fallback import apply_fallback_scores
from terrmap.scoring.model import LeadModel
from terrmap.scoring.saved import load_model, save_model
from terrmap.scoring.train import DEFAULT_SEED, NotEnoughHistory, Progress, train_model

if TYPE_CHECKING:
    from terrmap.data.store import Store


def score_leads(store: Store, model: LeadModel | None = None, progress: Progress | None = None) -> dict:
    """Score every open lead with ``model`` (default: the latest) and refresh the region rollup, in one transaction."""
    report = progress or (lambda frac, msg: None)
    model = model or load_model(store)
    if model.version is None:
        raise ValueError("save the model first (its version goes into leads.score_source)")
    t0 = time.perf_counter()
    with store.transaction() as tx:
        n = score_open_leads(tx, model, report)
    report(1.0, "scored")
    return {"open_leads": int(n), "score_source": model.score_source, "seconds": round(time.perf_counter() - t0, 3)}


def score_open_leads(tx, model: LeadModel, progress: Progress | None = None) -> int:
    """:func:`score_leads` inside the caller's transaction ``tx`` (an import scores its leads in the transaction
    that writes them); returns how many open leads were scored."""
    report = progress or (lambda frac, msg: None)
    report(0.0, "loading open leads")
    rows = open_lead_rows(tx, model.spec)
    n = len(rows)
    report(0.3, f"scoring {n:,} open leads")
    if n:
        score, value = model.score(rows)
        report(0.6, "writing scores")
        write_scores(tx, rows["rid"].to_numpy(), score, value, model.score_source)
    report(0.85, "refreshing region stats")
    refresh_rollup(tx)
    return n


def retrain(store: Store, seed: int = DEFAULT_SEED, progress: Progress | None = None) -> dict:
    """Train, validate, store and apply a new model; returns its metrics (with ``scored``).

    Without enough history, makes sure every lead has its fallback score and raises :class:`NotEnoughHistory`.
    """
    report = progress or (lambda frac, msg: None)
    try:
        model = train_model(store, seed=seed, progress=lambda f, m: report(0.8 * f, m))
    except NotEnoughHistory:
        with store.transaction() as tx:
            apply_fallback_scores(store, tx)
            refresh_rollup(tx)
        raise
    report(0.8, "saving the model")
    # The model and the scores it gives in one transaction: a process killed meanwhile leaves the previous model
    # with the scores it gave, never a new model whose scores were not written.
    t0 = time.perf_counter()
    with store.transaction() as tx:
        save_model(store, model, tx)
        n = score_open_leads(tx, model, lambda f, m: report(0.82 + 0.18 * f, m))
    scored = {"open_leads": int(n), "score_source": model.score_source, "seconds": round(time.perf_counter() - t0, 3)}
    metrics = dict(model.metrics)
    metrics["scored"] = scored
    report(1.0, f"model {model.version} trained and applied")
    return metrics
