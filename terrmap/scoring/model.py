"""The trained model: a boosted classifier, its calibration and the expected deal value.

* **Classifier.** A scikit-learn ``Pipeline``: :class:`~terrmap.scoring.features.FeatureMatrix` turns
  categorical columns into ordinal codes, followed by a ``HistGradientBoostingClassifier`` with native
  categorical splits and native missing-value handling (L2 1.0, early stopping on 15% of the training
  split; learning rate and tree size by data size, :func:`boosting_schedule`). Boosting runs one
  OpenMP thread (:func:`model_threads`); predictions run one thread per core over chunks of rows
  (:func:`parallel_rows`).
* **Calibration** (:class:`Calibrator`): isotonic regression when the calibration split has >= 5000
  leads and >= 100 of each outcome (steps of fewer than 2% of the calibration leads pooled with a
  neighbour, then interpolated linearly between the steps' centres, so no score rests on a handful of
  leads and score differences do not vanish inside a step), else Platt scaling (a logistic regression
  on the logit).
* **Expected deal value** (:meth:`LeadModel.expected_value`): a ``HistGradientBoostingRegressor`` on
  log(deal value) of the won leads from the same features (sharing the classifier's fitted first
  step), back-transformed with Duan's smearing factor and clipped to the range of won deals; without
  enough won deals, the fallback rule (:class:`~terrmap.scoring.fallback.ValueRule`).

scikit-learn is imported inside the functions that use it: it takes ~0.8 s to import, and every
import and page loads :mod:`terrmap.scoring` (for the fallback scores) without training anything.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from terrmap.scoring.fallback import ValueRule
from terrmap.scoring.features import FeatureMatrix, FeatureSpec, prepare

ISOTONIC_MIN_ROWS = 5000
ISOTONIC_MIN_PER_CLASS = 100
ISOTONIC_MIN_BLOCK = 30  # leads per isotonic step at least (and 1/ISOTONIC_BLOCKS of the calibration split)
ISOTONIC_BLOCKS = 50
SMALL_TRAIN = 20_000  # training leads: below, learning rate 0.05 and 7 leaves (see boosting_schedule)
LARGE_TRAIN = 80_000  # from here, learning rate 0.3 and 15 leaves


# -- threads ---------------------------------------------------------------------------------------


def model_threads() -> int:
    """OpenMP threads for boosting (default 1; set TERRMAP_MODEL_THREADS to change).

    On shared cores, OpenMP's spin-waiting makes multi-threaded boosting many times slower
    (measured 10-50x on 2 busy cores); one thread per chunk of rows scales without that.
    """
    try:
        return max(1, int(os.environ.get("TERRMAP_MODEL_THREADS", "1")))
    except ValueError:
        return 1


@functools.cache
def _threadpool_controller() -> ThreadpoolController:
    # Made once, on first use: it inspects the native libraries loaded by then (scikit-learn's OpenMP).
    return ThreadpoolController()


def openmp(n: int | None = None):
    """A context limiting OpenMP to ``n`` threads (default :func:`model_threads`)."""
    return _threadpool_controller().limit(limits=n or model_threads(), user_api="openmp")


def parallel_rows(fn: Callable[[np.ndarray], np.ndarray], Z: np.ndarray, min_rows: int = 100_000) -> np.ndarray:
    """``fn`` over chunks of rows of ``Z`` in one thread per core (the models' predict releases the GIL)."""

    def one_thread(part: np.ndarray) -> np.ndarray:
        # OpenMP's thread count is per calling thread: a new thread starts at the default (all cores).
        with openmp(1):
            return fn(part)

    workers = max(1, min(os.cpu_count() or 1, len(Z) // max(min_rows // 2, 1)))
    if workers <= 1:
        return one_thread(Z)
    bounds = np.linspace(0, len(Z), workers + 1).astype(int)
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(one_thread, [Z[a:b] for a, b in zip(bounds[:-1], bounds[1:])]))
    return np.concatenate(parts)


# -- estimators ----------------------------------------------------------------------------------


def _pipeline(spec: FeatureSpec, estimator):
    from sklearn.pipeline import Pipeline  # why: slow import (module note)

    return Pipeline([("features", FeatureMatrix(spec.categorical, spec.numeric)), ("model", estimator)])


def boosting_schedule(n_train: int) -> tuple[float, int]:
    """(learning rate, leaves per tree) for ``n_train`` training leads.

    Small steps and small trees on little data, where variance dominates (on the 20k-lead demo
    they halve the gap to the true propensity's ROC AUC); larger ones on big data, where they
    lose nothing measurable and a third as many trees keep scoring millions of leads fast.
    """
    if n_train < SMALL_TRAIN:
        return 0.05, 7
    if n_train < LARGE_TRAIN:
        return 0.1, 7
    return 0.3, 15


def _boosting_params(spec: FeatureSpec, n_train: int, seed: int) -> dict:
    learning_rate, leaves = boosting_schedule(n_train)
    return dict(
        learning_rate=learning_rate, max_iter=500, max_leaf_nodes=leaves,
        min_samples_leaf=min(40, max(5, n_train // 100)), l2_regularization=1.0,
        categorical_features=[True] * len(spec.categorical) + [False] * len(spec.numeric),
        early_stopping=True, validation_fraction=0.15, n_iter_no_change=20, random_state=seed,
    )


def classifier(spec: FeatureSpec, n_train: int, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier  # why: slow import (module note)

    return _pipeline(spec, HistGradientBoostingClassifier(**_boosting_params(spec, n_train, seed)))


def regressor(spec: FeatureSpec, n_train: int, seed: int):
    """Deal values are far more predictable than wins: larger steps, at most 100 rounds."""
    from sklearn.ensemble import HistGradientBoostingRegressor  # why: slow import (module note)

    params = _boosting_params(spec, n_train, seed)
    params.update(learning_rate=0.5 if n_train >= SMALL_TRAIN else 0.2, max_leaf_nodes=15, max_iter=100)
    return _pipeline(spec, HistGradientBoostingRegressor(**params))


# -- calibration -----------------------------------------------------------------------------------


def calibration_method(y_cal: np.ndarray) -> str:
    """'isotonic' on a large calibration split with enough of each outcome, else 'sigmoid'."""
    n_pos = int(np.sum(y_cal))
    enough = len(y_cal) >= ISOTONIC_MIN_ROWS and min(n_pos, len(y_cal) - n_pos) >= ISOTONIC_MIN_PER_CLASS
    return "isotonic" if enough else "sigmoid"


class Calibrator:
    """Raw boosted probability -> calibrated probability.

    ``isotonic``: isotonic regression, then linear interpolation between the centres of its
    steps (mean raw probability of the calibration leads in each step), so the map is
    continuous and score differences (explanations) do not vanish inside a step.
    ``sigmoid``: Platt scaling, a logistic regression on the logit of the raw probability.
    """

    def __init__(self, method: str):
        self.method = method
        self.model = None
        self.knots: tuple[np.ndarray, np.ndarray] | None = None

    @staticmethod
    def _logit(p):
        p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p)).reshape(-1, 1)

    def fit(self, raw, y) -> Calibrator:
        raw = np.asarray(raw, dtype=float)
        if self.method == "isotonic":
            from sklearn.isotonic import IsotonicRegression  # why: slow import (module note)

            fitted = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y).predict(raw)
            blocks = (pd.DataFrame({"level": fitted, "raw": raw, "y": np.asarray(y, dtype=float)})
                      .groupby("level").agg(raw=("raw", "sum"), y=("y", "sum"), n=("y", "size")))
            self.knots = self._pool(blocks[["raw", "y", "n"]].to_numpy(dtype=float),
                                    max(ISOTONIC_MIN_BLOCK, len(raw) // ISOTONIC_BLOCKS))
        else:
            from sklearn.linear_model import LogisticRegression  # why: slow import (module note)

            self.model = LogisticRegression(C=1e4).fit(self._logit(raw), y)
        return self

    @staticmethod
    def _pool(blocks: np.ndarray, min_n: int) -> tuple[np.ndarray, np.ndarray]:
        """Merge each isotonic step holding fewer than ``min_n`` leads into its nearer neighbour (the pooled
        levels stay increasing), so no level rests on a handful of leads (e.g. a top step of 3 wins = 100%);
        returns the knots (mean raw probability, win rate) of the steps."""
        rows = [list(b) for b in blocks]  # [sum raw, sum y, n], in increasing level
        while len(rows) > 1:
            small = [i for i, r in enumerate(rows) if r[2] < min_n]
            if not small:
                break
            i = min(small, key=lambda k: rows[k][2])
            if i == 0:
                j = 1
            elif i == len(rows) - 1:
                j = i - 1
            else:
                level = rows[i][1] / rows[i][2]
                j = min((i - 1, i + 1), key=lambda k: abs(rows[k][1] / rows[k][2] - level))
            a, b = min(i, j), max(i, j)
            rows[a] = [rows[a][k] + rows[b][k] for k in range(3)]
            del rows[b]
        r = np.asarray(rows, dtype=float)
        return r[:, 0] / r[:, 2], r[:, 1] / r[:, 2]

    def predict(self, raw) -> np.ndarray:
        raw = np.asarray(raw, dtype=float)
        if self.method == "isotonic":
            p = np.interp(raw, *self.knots)
        else:
            p = self.model.predict_proba(self._logit(raw))[:, 1]
        return np.clip(p, 1e-3, 1 - 1e-3)


# -- the model -------------------------------------------------------------------------------------


@dataclass
class LeadModel:
    """A trained lead-scoring model: calibrated win probability and expected deal value."""

    spec: FeatureSpec
    seed: int
    classifier: object
    calibrator: Calibrator
    value_model: object | None
    value_smear: float
    value_range: tuple[float, float]
    value_rule: ValueRule
    baselines: dict
    data_hash: str
    metrics: dict
    holdout_lead_ids: np.ndarray
    holdout_scores: np.ndarray
    version: int | None = None

    @property
    def score_source(self) -> str:
        return f"model:{self.version}"

    @property
    def features(self) -> FeatureMatrix:
        """The fitted first step: model frame -> matrix."""
        return self.classifier.named_steps["features"]

    @property
    def booster(self):
        return self.classifier.named_steps["model"]

    def raw_proba(self, frame: pd.DataFrame, prepared: pd.DataFrame | None = None,
                  matrix: np.ndarray | None = None) -> np.ndarray:
        """The boosted model's (uncalibrated) probability."""
        if matrix is None:
            matrix = self.features.transform(prepare(frame, self.spec) if prepared is None else prepared)
        booster = self.booster
        return parallel_rows(lambda part: booster.predict_proba(part)[:, 1], matrix)

    def predict_proba(self, frame: pd.DataFrame, prepared: pd.DataFrame | None = None,
                      matrix: np.ndarray | None = None) -> np.ndarray:
        """Calibrated probability that each lead converts."""
        if len(frame) == 0:
            return np.zeros(0)
        return self.calibrator.predict(self.raw_proba(frame, prepared, matrix))

    def expected_value(self, frame: pd.DataFrame, prepared: pd.DataFrame | None = None,
                       matrix: np.ndarray | None = None) -> np.ndarray:
        """Expected deal value if each lead converts."""
        if len(frame) == 0:
            return np.zeros(0)
        if self.value_model is None:
            return self.value_rule.predict_frame(frame)
        if matrix is None or not self._shared_features:
            X = prepare(frame, self.spec) if prepared is None else prepared
            matrix = self.value_model.named_steps["features"].transform(X)
        log_v = parallel_rows(self.value_model.named_steps["model"].predict, matrix)
        return np.clip(np.exp(log_v) * self.value_smear, *self.value_range)

    @property
    def _shared_features(self) -> bool:
        return self.value_model is not None and self.value_model.named_steps["features"] is self.features

    def score(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(calibrated probability, expected deal value) of each lead of ``frame`` (features encoded once)."""
        if len(frame) == 0:
            return np.zeros(0), np.zeros(0)
        X = prepare(frame, self.spec)
        Z = self.features.transform(X)
        return self.predict_proba(frame, X, Z), self.expected_value(frame, X, Z if self._shared_features else None)
