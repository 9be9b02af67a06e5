"""Saving and loading trained models (rows of table ``models``, see :mod:`terrmap.data.models`).

The :class:`~terrmap.scoring.model.LeadModel` is pickled into the row (the database is trusted local
data); a model pickled by an incompatible version of terrmap cannot be loaded and must be retrained.
The latest version is the active one.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING

from terrmap.data import models as stored
from terrmap.scoring.model import LeadModel

if TYPE_CHECKING:
    from terrmap.data.store import Store


class NoModel(LookupError):
    """No (loadable) model of that version in this database."""


def save_model(store: Store, model: LeadModel, cur=None) -> int:
    """Store ``model`` as the next version; returns the version (also set on the model and its metrics)."""
    cur = cur or store.cursor()
    version = stored.next_model_version(cur)
    model.version = version
    model.metrics["model_version"] = version
    model.metrics["score_source"] = model.score_source
    stored.insert_model(cur, version, model.seed, model.data_hash, model.metrics.get("n_train"), model.metrics,
                        pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    return version


def latest_version(store: Store) -> int | None:
    return stored.latest_model_version(store)


def latest_metrics(store: Store) -> dict | None:
    """The validation metrics of the latest model (without loading the model), or None."""
    return stored.latest_model_metrics(store)


def load_model(store: Store, version: int | None = None) -> LeadModel:
    """The stored model of ``version`` (default: the latest); raises :class:`NoModel` when there is none."""
    if version is None:
        version = latest_version(store)
    blob = None if version is None else stored.model_blob(store, version)
    if blob is None:
        raise NoModel("no lead-scoring model has been trained in this database" if version is None
                      else f"there is no model version {version}")
    try:
        model = pickle.loads(blob)
    except (AttributeError, ModuleNotFoundError) as exc:
        raise NoModel(f"model version {version} was saved by an incompatible version of terrmap "
                      f"({exc}): retrain the model") from exc
    model.version = int(version)
    return model
