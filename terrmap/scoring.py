"""Lead scores and expected deal values: fallback scores and the predictive model.

Revenue potential of an open lead = score x expected value (see :mod:`terrmap.data.stats`).
Every lead's ``score_source`` says where its score came from.

Fallback scores (no model yet)
------------------------------
Until a model has been trained, and for leads imported after it ran, every lead
gets a *fallback* score (:func:`apply_fallback_scores`):

* ``crm``: the score imported with the lead (``crm_score``, in [0, 1]);
* ``fit``: a documented firmographic fit score::

      fit = clip(0.04 + 0.06 * log10(1 + employees) + 0.03 * log10(1 + annual_revenue / 1e6), 0.01, 0.9)

  Larger companies are likelier buyers; an unknown size counts as 10 employees
  and no revenue.

The fallback expected deal value of a lead is the median won deal of its industry
when that industry has at least ``MIN_WON_PER_INDUSTRY`` won deals, else the
median of all won deals, else 0.2% of the lead's annual revenue bounded to
[1 000, 250 000], else 10 000.

The model (``score_source = 'model:<version>'``)
------------------------------------------------
:func:`retrain` (the Model page's button, ``python -m terrmap score``) trains,
validates, stores and applies a model in one go:

* **Data.** The closed leads (status won or lost) are the training rows; the
  label is ``status = 'won'``. They need at least :data:`MIN_CLOSED` closed leads
  and :data:`MIN_PER_CLASS` of each outcome, else :class:`NotEnoughHistory` is
  raised (with the counts) and every lead keeps its fallback score.
* **Features** (:func:`feature_spec`): firmographics (industry, employees,
  annual revenue); place features of the lead's ZIP from the census table
  ``zips`` (median household income, population density, urbanicity, metro or
  not; the postal ZIP, else the region ZIP); and the columns the user imported
  that the import did not map (``leads.extra``), detected automatically: a
  column is *numeric* when >= 95% of its non-empty values parse as numbers
  (``$1,200`` included), *categorical* when it has at most
  :data:`MAX_EXTRA_CATEGORIES` distinct values; ids, names, e-mails, notes,
  dates, free text and high-cardinality columns are skipped, as are columns
  present on under 1% of leads. The CRM score is not a feature: it is the
  baseline the model is compared with.
* **Leakage guard.** Nothing derived from the outcome may be a feature:

  1. the classifier's training query (:func:`load_frame`) reads only the
     feature columns, ``lead_id`` and ``status`` (for the label) -- never
     ``deal_value``, ``closed_at`` or any date; deal values are read only as
     the target of the deal-value model, the CRM score only for the baseline;
  2. an imported column is excluded by *name* when a word of it says outcome
     (:data:`LEAK_WORDS`: status, stage, won, lost, closed, outcome, deal,
     amount, probability, ...);
  3. by *definition* when whether it is filled in depends on the outcome
     (present on won and lost or open leads at rates more than
     :data:`LEAK_PRESENCE_GAP` apart: a field filled in at closing);
  4. by *value* when on its own it separates won from lost almost perfectly
     (single-column ROC AUC >= :data:`LEAK_AUC` on the training rows: e.g. a
     copy of the status under an innocent name).

  Every exclusion and its reason is recorded in the metrics (``excluded``).
* **Classifier.** A scikit-learn ``Pipeline``: :class:`FeatureMatrix` turns
  categorical columns into ordinal codes (categories seen fewer than
  :data:`MIN_CATEGORY_COUNT` times, and past the :data:`MAX_ENCODED_CATEGORIES`
  most frequent, pooled into one code; missing values and categories never seen
  in training become "missing") followed by a
  ``HistGradientBoostingClassifier`` with native categorical splits and native
  missing-value handling (L2 1.0, early stopping on 15% of the training split;
  learning rate and tree size by data size, :func:`boosting_schedule`: 0.05
  and 7 leaves under 20k training leads, 0.1 and 7 under 80k, else 0.3 and 15). Boosting runs one OpenMP thread
  (:func:`model_threads`); predictions run one thread per core over chunks of
  rows (:func:`parallel_rows`).
* **Calibration.** The closed leads are split, stratified and seeded, into
  train (64%), calibration (16%) and test (20%). The boosted model's
  probabilities are mapped to calibrated ones fitted on the calibration split:
  isotonic regression when it has >= 5000 leads and >= 100 of each outcome
  (steps of fewer than 2% of the calibration leads pooled with a neighbour,
  then interpolated linearly between the steps' centres, so no score rests on
  a handful of leads and score differences do not vanish inside a step), else
  Platt scaling (a logistic regression on the logit). The stored model is exactly the validated
  one (no refit after validation).
* **Validation** (on the test split, never seen by training or calibration):
  ROC AUC, PR AUC (average precision), Brier score, log loss, the calibration
  curve over 10 equal-count bins and the expected calibration error (ECE: the
  count-weighted mean |observed win rate - mean predicted| over those bins),
  gains and lift by decile, permutation importance (mean drop of ROC AUC over
  3 seeded shuffles of each input column), and the simplest baseline: the
  imported CRM score when at least half the test leads have one, else the win
  rate of the lead's industry on the training split (smoothed towards the
  overall rate with a weight of 20 leads).
* **Expected deal value** (:class:`LeadModel.expected_value`): with at least
  :data:`MIN_WON_FOR_VALUE_MODEL` won deals with a value, a
  ``HistGradientBoostingRegressor`` (learning rate 0.5, 0.2 under 20k won deals,
  at most 100 rounds) on
  log(deal value) of the won leads from the same features (sharing the
  classifier's fitted :class:`FeatureMatrix`), back-transformed with Duan's smearing factor (estimated on a
  20% hold-out, where its error is compared with the industry-median rule) and
  clipped to the range of won deals; otherwise the fallback rule above.
* **Scores.** Every open lead gets score = calibrated probability, expected
  value = expected deal value and ``score_source = 'model:<version>'``, in one
  transaction that also rebuilds the region rollup (:func:`score_leads`).
* **Explanations** (:func:`explain_lead`): the contribution of a feature to a
  lead's score is the score minus the score with that feature replaced by its
  baseline value (the training median of a numeric column, the most frequent
  category of a categorical one), all else unchanged.
* **Storage.** Table ``models`` (migration 2 of :mod:`terrmap.data.store`): a
  version number (1, 2, ...), the seed, a SHA-256 of the training rows, the
  metrics (JSON) and the :class:`LeadModel` itself pickled into a BLOB (the
  database is trusted local data; a model pickled by an incompatible version of
  this module must be retrained). The latest version is the active one.
* **Reproducible.** Rows are read in ``lead_id`` order and every random choice
  (splits, early stopping, shuffles) derives from the seed: the same data and
  seed give the same model and scores.

ICP and whitespace: :func:`icp_segments` (win rates and value of industry x
size band x place type segments), :func:`whitespace` (high-potential regions
without customers) and :func:`tam_by_territory` (all potential per territory).
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, NamedTuple

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from terrmap.geo import Layer
    from terrmap.plan import PlanInfo
    from terrmap.data.store import Store

Progress = Callable[[float, str], None]

MIN_WON_PER_INDUSTRY = 20

FIT_SCORE_SQL = (
    "least(0.9, greatest(0.01, 0.04 + 0.06 * log10(1 + coalesce(employees, 10))"
    " + 0.03 * log10(1 + coalesce(annual_revenue, 0) / 1e6)))"
)


def fallback_value_ctes(won_sql: str = "SELECT industry, deal_value FROM leads WHERE status = 'won' AND deal_value > 0") -> str:
    """CTEs ``by_industry`` and ``overall``: median won deal value per industry (with enough wins) and overall,
    over the won deals ``won_sql`` selects (industry, deal_value)."""
    return f"""
        won AS ({won_sql}),
        by_industry AS (
            SELECT industry, median(deal_value) AS v FROM won GROUP BY industry HAVING count(*) >= {MIN_WON_PER_INDUSTRY}
        ),
        overall AS (SELECT median(deal_value) AS v FROM won)"""


def fallback_expected_value_sql(row: str) -> str:
    """A lead's fallback expected deal value (needs :func:`fallback_value_ctes`): its industry's median won
    deal, else the overall median, else 0.2% of its annual revenue (between $1k and $250k), else $10k."""
    return (f"coalesce((SELECT v FROM by_industry b WHERE b.industry = {row}.industry), (SELECT v FROM overall), "
            f"least(250000, greatest(1000, 0.002 * {row}.annual_revenue)), 10000)")


def fallback_score_sql(row: str) -> tuple[str, str]:
    """(score, score_source) SQL of a lead without a model score: its imported CRM score, else the fit score."""
    fit = FIT_SCORE_SQL.replace("employees", f"{row}.employees").replace("annual_revenue", f"{row}.annual_revenue")
    return (f"CASE WHEN {row}.crm_score IS NOT NULL THEN {row}.crm_score ELSE {fit} END",
            f"CASE WHEN {row}.crm_score IS NOT NULL THEN 'crm' ELSE 'fit' END")


def apply_fallback_scores(store: "Store", cur=None) -> None:
    """(Re)compute score and expected value of every lead not scored by a model.

    Only rows whose values change are written (an import computes its own rows' values as it inserts
    them; here only older leads whose industry's median won deal moved are touched)."""
    cur = cur or store.cursor()
    score, source = fallback_score_sql("leads")
    value = fallback_expected_value_sql("leads")
    cur.execute(
        f"""
        WITH {fallback_value_ctes()}
        UPDATE leads SET score = {score}, score_source = {source}, expected_value = {value}
        WHERE (score_source IS NULL OR NOT starts_with(score_source, 'model:'))
          AND (score IS NULL OR score_source IS NULL OR expected_value IS DISTINCT FROM {value})
        """
    )


# ---------------------------------------------------------------------------
# Settings

MIN_CLOSED = 200
MIN_PER_CLASS = 20
DEFAULT_SEED = 42
TEST_FRACTION = 0.20
CALIBRATION_FRACTION = 0.20  # of what is left after the test split
ISOTONIC_MIN_ROWS = 5000
ISOTONIC_MIN_PER_CLASS = 100
ISOTONIC_MIN_BLOCK = 30  # leads per isotonic step at least (and 1/ISOTONIC_BLOCKS of the calibration split)
ISOTONIC_BLOCKS = 50
ECE_BINS = 10
PERMUTATION_REPEATS = 3
PERMUTATION_MAX_ROWS = 20_000
BASELINE_SMOOTHING = 20.0
MIN_WON_FOR_VALUE_MODEL = 50
SMALL_TRAIN = 20_000  # training leads: below, learning rate 0.05 and 7 leaves (see boosting_schedule)
LARGE_TRAIN = 80_000  # from here, learning rate 0.3 and 15 leaves
MODEL_KIND = "lead_score"

MAX_EXTRA_KEYS = 40
MAX_EXTRA_CATEGORIES = 30
MIN_EXTRA_PRESENT = 0.01
NUMERIC_SHARE = 0.95
DETECT_SAMPLE = 200_000
MIN_CATEGORY_COUNT = 5
MAX_ENCODED_CATEGORIES = 64
LEAK_PRESENCE_GAP = 0.30
LEAK_AUC = 0.97

# Words that, in an imported column's name, say it records the outcome.
LEAK_WORDS = frozenset({
    "status", "stage", "stagename", "won", "win", "wins", "winning", "lost", "loss", "lose", "losing",
    "closed", "close", "closing", "closedate", "outcome", "outcomes", "result", "results", "converted",
    "conversion", "convert", "deal", "deals", "amount", "booked", "booking", "bookings", "signed", "churn",
    "churned", "disposition", "customer", "customers", "probability", "forecast", "opportunity",
})
# Words that mark an identifier or free text.
ID_WORDS = frozenset({
    "id", "ids", "uuid", "guid", "key", "email", "mail", "phone", "mobile", "fax", "url", "website", "domain",
    "name", "address", "street", "note", "notes", "description", "comment", "comments", "memo", "linkedin",
})
MISSING_TOKENS = ("", "na", "n/a", "null", "none", "nan", "-", "--", "?")

# Base features: name -> SQL over leads l, zips zp (the postal ZIP) and zr (the region ZIP).
BASE_CATEGORICAL = {
    "industry": "l.industry",
    "urbanicity": "coalesce(zp.urbanicity, zr.urbanicity)",
}
BASE_NUMERIC = {
    "employees": "CAST(l.employees AS DOUBLE)",
    "annual_revenue": "CAST(l.annual_revenue AS DOUBLE)",
    "median_household_income": "CAST(coalesce(zp.median_household_income, zr.median_household_income) AS DOUBLE)",
    "population_density": "CAST(coalesce(zp.population_density, zr.population_density) AS DOUBLE)",
    "is_metro": "CAST(coalesce(zp.is_metro, zr.is_metro) AS DOUBLE)",
}
FEATURE_LABELS = {
    "industry": "Industry",
    "urbanicity": "Place type",
    "employees": "Employees",
    "annual_revenue": "Annual revenue",
    "median_household_income": "ZIP median household income",
    "population_density": "ZIP population density",
    "is_metro": "In a metro area",
}
EXTRA_PREFIX = "extra:"


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


class NoModel(LookupError):
    """No model has been trained in this database."""


class Reason(NamedTuple):
    """One reason for a lead's score: the feature, the lead's value and its contribution (score points, 0-1)."""

    feature: str
    value: object
    contribution: float


def feature_label(name: str) -> str:
    if name.startswith(EXTRA_PREFIX):
        return f"{name[len(EXTRA_PREFIX):]} (imported)"
    return FEATURE_LABELS.get(name, name)


# ---------------------------------------------------------------------------
# Features


@dataclass
class ExtraColumn:
    key: str  # the JSON key in leads.extra
    kind: str  # 'numeric' or 'categorical'

    @property
    def name(self) -> str:
        return EXTRA_PREFIX + self.key


@dataclass
class FeatureSpec:
    categorical: list[str]
    numeric: list[str]
    extras: list[ExtraColumn] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)  # column -> why it is not a feature

    @property
    def columns(self) -> list[str]:
        return self.categorical + self.numeric

    def without(self, names) -> "FeatureSpec":
        names = set(names)
        return FeatureSpec(
            [c for c in self.categorical if c not in names],
            [c for c in self.numeric if c not in names],
            [e for e in self.extras if e.name not in names],
            dict(self.excluded),
        )


def _words(name: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name))
    return {w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w}


def _sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _extra_value_sql(key: str) -> str:
    """The cleaned text of ``extra[key]`` (NULL when empty or a missing-value token)."""
    path = _sql_str('$."' + key + '"')
    raw = f"trim(json_extract_string(l.extra, {path}))"
    missing = ", ".join(_sql_str(t) for t in MISSING_TOKENS)
    return f"(CASE WHEN lower({raw}) IN ({missing}) THEN NULL ELSE {raw} END)"


def _number_sql(text_sql: str) -> str:
    return f"TRY_CAST(replace(replace({text_sql}, ',', ''), '$', '') AS DOUBLE)"


def _column_sql(spec: FeatureSpec) -> list[str]:
    cols = []
    for name in spec.categorical:
        if name in BASE_CATEGORICAL:
            cols.append(f"{BASE_CATEGORICAL[name]} AS \"{name}\"")
    for name in spec.numeric:
        if name in BASE_NUMERIC:
            cols.append(f"{BASE_NUMERIC[name]} AS \"{name}\"")
    for e in spec.extras:
        v = _extra_value_sql(e.key)
        alias = e.name.replace('"', '""')
        cols.append(f"{_number_sql(v) if e.kind == 'numeric' else v} AS \"{alias}\"")
    return cols


_FROM_SQL = """
    FROM leads l
    LEFT JOIN zips zp ON zp.zip = l.postal_zip
    LEFT JOIN zips zr ON zr.zip = l.zip
"""


def detect_extra_columns(cur, n_leads: int | None = None) -> tuple[list[ExtraColumn], dict[str, str]]:
    """The usable imported columns in ``leads.extra`` and, for the others, why they are skipped.

    Detection reads at most :data:`DETECT_SAMPLE` leads (a deterministic sample by id hash).
    """
    n = n_leads if n_leads is not None else cur.execute("SELECT count(*) FROM leads").fetchall()[0][0]
    sample = ""
    if n > DETECT_SAMPLE:
        sample = f"AND hash(l.lead_id) % {int(math.ceil(n / DETECT_SAMPLE))} = 0"
    keys = cur.execute(
        f"""
        SELECT key, count(*) AS n FROM (
            SELECT unnest(json_keys(l.extra)) AS key FROM leads l WHERE l.extra IS NOT NULL {sample}
        ) GROUP BY key ORDER BY n DESC, key
        """
    ).fetchall()
    excluded: dict[str, str] = {}
    candidates = []
    for key, _ in keys:
        label = EXTRA_PREFIX + key
        words = _words(key)
        if '"' in key or "\\" in key:
            excluded[label] = "name has quotes or backslashes"
        elif words & LEAK_WORDS:
            said = ", ".join(sorted(words & LEAK_WORDS))
            excluded[label] = f"leakage guard: the name says it records the outcome ({said})"
        elif words & ID_WORDS:
            excluded[label] = "an identifier, contact detail or free text (by name)"
        elif len(candidates) >= MAX_EXTRA_KEYS:
            excluded[label] = f"more than {MAX_EXTRA_KEYS} imported columns: only the most filled-in are used"
        else:
            candidates.append(key)
    if not candidates:
        return [], excluded
    aggs = []
    inner = []
    for i, key in enumerate(candidates):
        inner.append(f"{_extra_value_sql(key)} AS v{i}")
        aggs += [
            f"count(v{i})",
            f"count({_number_sql(f'v{i}')})",
            f"count(TRY_CAST(v{i} AS TIMESTAMP))",
            f"count(DISTINCT v{i})",
            f"count(DISTINCT {_number_sql(f'v{i}')})",
            f"count({_number_sql(f'v{i}')}) FILTER (WHERE {_number_sql(f'v{i}')} = round({_number_sql(f'v{i}')}))",
            f"avg(CAST(v{i} IS NOT NULL AS DOUBLE)) FILTER (WHERE status = 'open')",
            f"avg(CAST(v{i} IS NOT NULL AS DOUBLE)) FILTER (WHERE status = 'won')",
            f"avg(CAST(v{i} IS NOT NULL AS DOUBLE)) FILTER (WHERE status = 'lost')",
        ]
    row = cur.execute(
        f"""
        SELECT count(*), count(*) FILTER (WHERE status = 'open'), count(*) FILTER (WHERE status = 'won'),
               count(*) FILTER (WHERE status = 'lost'), {', '.join(aggs)}
        FROM (SELECT l.status, {', '.join(inner)} FROM leads l WHERE true {sample})
        """
    ).fetchall()[0]
    total, n_open, n_won, n_lost = row[:4]
    extras: list[ExtraColumn] = []
    for i, key in enumerate(candidates):
        label = EXTRA_PREFIX + key
        present, numeric, dates, distinct, distinct_num, integral, p_open, p_won, p_lost = row[4 + 9 * i: 13 + 9 * i]
        rates = [r for r, m in ((p_open, n_open), (p_won, n_won), (p_lost, n_lost)) if m >= 20 and r is not None]
        if present < max(1, MIN_EXTRA_PRESENT * total):
            excluded[label] = f"almost always empty (filled in on {present:,} of {total:,} leads)"
        elif len(rates) >= 2 and max(rates) - min(rates) > LEAK_PRESENCE_GAP:
            excluded[label] = (
                "leakage guard: filled in at different rates for open / won / lost leads "
                f"({', '.join(f'{r:.0%}' for r in (p_open, p_won, p_lost) if r is not None)}), "
                "so it is likely recorded at or after closing"
            )
        elif distinct <= 1:
            excluded[label] = "a single value"
        elif numeric >= NUMERIC_SHARE * present:
            if integral == numeric and distinct_num >= 0.98 * numeric and numeric >= 50:
                excluded[label] = "looks like an identifier (a distinct whole number per lead)"
            else:
                extras.append(ExtraColumn(key, "numeric"))
        elif dates >= NUMERIC_SHARE * present:
            excluded[label] = "dates are not used"
        elif distinct > MAX_EXTRA_CATEGORIES or distinct > max(2, 0.5 * present):
            excluded[label] = f"text with {distinct:,} distinct values (too many categories)"
        else:
            extras.append(ExtraColumn(key, "categorical"))
    return extras, excluded


def feature_spec(store: "Store", cur=None) -> FeatureSpec:
    """The features a model trained now would use (base features with data, plus usable imported columns)."""
    cur = cur or store.cursor()
    counts = cur.execute(
        "SELECT count(*), count(l.industry), count(l.employees), count(l.annual_revenue) " + _FROM_SQL
    ).fetchall()[0]
    spec = FeatureSpec(list(BASE_CATEGORICAL), list(BASE_NUMERIC))
    empty = [name for name, n in zip(("industry", "employees", "annual_revenue"), counts[1:]) if n == 0]
    for name in empty:
        spec.excluded[name] = "no values in the data"
    spec = spec.without(empty)
    extras, excluded = detect_extra_columns(cur, counts[0])
    spec.extras = extras
    spec.categorical += [e.name for e in extras if e.kind == "categorical"]
    spec.numeric += [e.name for e in extras if e.kind == "numeric"]
    spec.excluded.update(excluded)
    return spec


def _prepare(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The model's input frame: categorical columns as object (NaN missing), numeric as float64."""
    out = {}
    for c in spec.categorical:
        col = frame[c] if c in frame else pd.Series(np.nan, index=frame.index)
        values = col.astype(object)
        out[c] = values.where(col.notna(), np.nan)
    for c in spec.numeric:
        col = frame[c] if c in frame else pd.Series(np.nan, index=frame.index)
        values = pd.to_numeric(col, errors="coerce").astype("float64")
        out[c] = values.where(np.isfinite(values), np.nan)  # an imported "1e999" is missing, not infinite
    return pd.DataFrame(out, index=frame.index)


def load_frame(cur, spec: FeatureSpec, where: str, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """lead_id, ``columns`` (other lead columns, e.g. status) and the features of the leads matching ``where``,
    in lead_id order. Reads nothing but those columns."""
    extra = [f"l.{c}" for c in columns]
    sql = f"SELECT l.lead_id, {', '.join(extra + _column_sql(spec))} {_FROM_SQL} WHERE {where} ORDER BY l.lead_id"
    return cur.execute(sql).df()


# ---------------------------------------------------------------------------
# Metrics


def expected_calibration_error(y, p, bins: int = ECE_BINS) -> float:
    """Count-weighted mean |observed rate - mean predicted| over ``bins`` equal-count bins of ``p``."""
    curve = calibration_curve(y, p, bins)
    n = sum(b["n"] for b in curve)
    return float(sum(b["n"] * abs(b["observed"] - b["predicted"]) for b in curve) / max(n, 1))


def calibration_curve(y, p, bins: int = ECE_BINS) -> list[dict]:
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    out = []
    for part in np.array_split(order, bins):
        if len(part):
            out.append({"bin": len(out) + 1, "n": int(len(part)), "predicted": float(p[part].mean()),
                        "observed": float(y[part].mean())})
    return out


def gains_by_decile(y, p) -> list[dict]:
    """Leads sorted by score, best first, cut into 10 equal groups: wins, win rate, lift and cumulative gains."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    order = np.argsort(-p, kind="stable")
    total_wins = max(y.sum(), 1e-12)
    base = y.mean() if len(y) else 0.0
    out, cum_n, cum_w = [], 0, 0.0
    for d, part in enumerate(np.array_split(order, 10), start=1):
        if not len(part):
            continue
        wins = float(y[part].sum())
        cum_n += len(part)
        cum_w += wins
        rate = wins / len(part)
        out.append({
            "decile": d, "n": int(len(part)), "wins": int(wins), "win_rate": rate,
            "avg_score": float(p[part].mean()), "lift": rate / base if base else 0.0,
            "cum_leads_share": cum_n / len(y), "cum_wins_share": cum_w / total_wins,
            "cum_lift": (cum_w / total_wins) / (cum_n / len(y)),
        })
    return out


def _auc(y, p) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def _pr_auc(y, p) -> float:
    from sklearn.metrics import average_precision_score

    y = np.asarray(y)
    return float(average_precision_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def classification_metrics(y, p) -> dict:
    from sklearn.metrics import brier_score_loss, log_loss

    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    both = 0 < y.sum() < len(y)
    return {
        "roc_auc": _auc(y, p),
        "pr_auc": _pr_auc(y, p),
        "ece": expected_calibration_error(y, p),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])) if both else float("nan"),
        "n": int(len(y)),
        "positives": int(y.sum()),
    }


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


# ---------------------------------------------------------------------------
# The model


class _Calibrator:
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

    def fit(self, raw, y) -> "_Calibrator":
        raw = np.asarray(raw, dtype=float)
        if self.method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            fitted = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y).predict(raw)
            blocks = (pd.DataFrame({"level": fitted, "raw": raw, "y": np.asarray(y, dtype=float)})
                      .groupby("level").agg(raw=("raw", "sum"), y=("y", "sum"), n=("y", "size")))
            self.knots = self._pool(blocks[["raw", "y", "n"]].to_numpy(dtype=float),
                                    max(ISOTONIC_MIN_BLOCK, len(raw) // ISOTONIC_BLOCKS))
        else:
            from sklearn.linear_model import LogisticRegression

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


class FeatureMatrix:
    """The pipeline's first step: the model frame -> a float matrix (categorical codes, then numeric columns).

    Categorical columns become ordinal codes (sorted category names). Categories seen fewer than
    ``min_count`` times, and past the ``max_categories - 1`` most frequent, share one pooled code;
    missing values and categories never seen in training become NaN, which the boosting model
    treats as missing. (Hash look-ups: ~20x faster than sklearn's OrdinalEncoder on object columns.)
    """

    def __init__(self, categorical: list[str], numeric: list[str], min_count: int = MIN_CATEGORY_COUNT,
                 max_categories: int = MAX_ENCODED_CATEGORIES):
        self.categorical = list(categorical)
        self.numeric = list(numeric)
        self.min_count = min_count
        self.max_categories = max_categories

    def get_params(self, deep: bool = True) -> dict:
        return {"categorical": self.categorical, "numeric": self.numeric, "min_count": self.min_count,
                "max_categories": self.max_categories}

    def set_params(self, **params) -> "FeatureMatrix":
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def fit(self, X: pd.DataFrame, y=None) -> "FeatureMatrix":
        self.codes_: dict[str, dict] = {}
        for c in self.categorical:
            counts = X[c].dropna().value_counts()
            counts = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
            kept = counts[counts >= self.min_count].index[: self.max_categories - 1]
            mapping = {v: float(i) for i, v in enumerate(sorted(kept, key=str))}
            pooled = float(len(mapping))
            for v in counts.index:
                mapping.setdefault(v, pooled)
            self.codes_[c] = mapping
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(X), len(self.categorical) + len(self.numeric)), dtype=np.float64)
        for i, c in enumerate(self.categorical):
            out[:, i] = X[c].map(self.codes_[c]).to_numpy(dtype=np.float64, na_value=np.nan)
        for j, c in enumerate(self.numeric, start=len(self.categorical)):
            out[:, j] = X[c].to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    def fit_transform(self, X: pd.DataFrame, y=None) -> np.ndarray:
        return self.fit(X, y).transform(X)


def model_threads() -> int:
    """OpenMP threads for boosting (default 1; set TERRMAP_MODEL_THREADS to change).

    On shared cores, OpenMP's spin-waiting makes multi-threaded boosting many times slower
    (measured 10-50x on 2 busy cores); one thread per chunk of rows scales without that.
    """
    import os

    try:
        return max(1, int(os.environ.get("TERRMAP_MODEL_THREADS", "1")))
    except ValueError:
        return 1


_controller = None


def _openmp(n: int | None = None):
    """A context limiting OpenMP to ``n`` threads (default :func:`model_threads`)."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=n or model_threads(), user_api="openmp")


def parallel_rows(fn: Callable[[np.ndarray], np.ndarray], Z: np.ndarray, min_rows: int = 100_000) -> np.ndarray:
    """``fn`` over chunks of rows of ``Z`` in one thread per core (the models' predict releases the GIL)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    def one_thread(part: np.ndarray) -> np.ndarray:
        # OpenMP's thread count is per calling thread: a new thread starts at the default (all cores).
        with _openmp(1):
            return fn(part)

    workers = max(1, min(os.cpu_count() or 1, len(Z) // max(min_rows // 2, 1)))
    if workers <= 1:
        return one_thread(Z)
    bounds = np.linspace(0, len(Z), workers + 1).astype(int)
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(one_thread, [Z[a:b] for a, b in zip(bounds[:-1], bounds[1:])]))
    return np.concatenate(parts)


def _pipeline(spec: FeatureSpec, estimator):
    from sklearn.pipeline import Pipeline

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


def _classifier(spec: FeatureSpec, n_train: int, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return _pipeline(spec, HistGradientBoostingClassifier(**_boosting_params(spec, n_train, seed)))


def _regressor(spec: FeatureSpec, n_train: int, seed: int):
    """Deal values are far more predictable than wins: larger steps, at most 100 rounds."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    params = _boosting_params(spec, n_train, seed)
    params.update(learning_rate=0.5 if n_train >= SMALL_TRAIN else 0.2, max_leaf_nodes=15, max_iter=100)
    return _pipeline(spec, HistGradientBoostingRegressor(**params))


@dataclass
class ValueRule:
    """The fallback expected deal value (as :func:`apply_fallback_scores`)."""

    by_industry: dict[str, float]
    overall: float | None

    def predict(self, industry: pd.Series, revenue: pd.Series) -> np.ndarray:
        v = industry.map(self.by_industry).astype("float64")
        if self.overall is not None:
            v = v.fillna(self.overall)
        v = v.fillna((0.002 * pd.to_numeric(revenue, errors="coerce")).clip(1000, 250000)).fillna(10000)
        return v.to_numpy(dtype=float)


@dataclass
class LeadModel:
    """A trained lead-scoring model: calibrated win probability and expected deal value."""

    spec: FeatureSpec
    seed: int
    classifier: object
    calibrator: _Calibrator
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

    def raw_proba(self, frame: pd.DataFrame, prepared: pd.DataFrame | None = None,
                  matrix: np.ndarray | None = None) -> np.ndarray:
        """The boosted model's (uncalibrated) probability."""
        if matrix is None:
            X = _prepare(frame, self.spec) if prepared is None else prepared
            matrix = self.classifier.named_steps["features"].transform(X)
        Z = matrix
        booster = self.classifier.named_steps["model"]
        return parallel_rows(lambda part: booster.predict_proba(part)[:, 1], Z)

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
            industry = frame["industry"] if "industry" in frame else pd.Series(None, index=frame.index, dtype=object)
            revenue = frame["annual_revenue"] if "annual_revenue" in frame else pd.Series(np.nan, index=frame.index)
            return self.value_rule.predict(industry, revenue)
        if matrix is None or not self._shared_features:
            X = _prepare(frame, self.spec) if prepared is None else prepared
            matrix = self.value_model.named_steps["features"].transform(X)
        Z = matrix
        log_v = parallel_rows(self.value_model.named_steps["model"].predict, Z)
        return np.clip(np.exp(log_v) * self.value_smear, *self.value_range)

    @property
    def _shared_features(self) -> bool:
        return (self.value_model is not None
                and self.value_model.named_steps["features"] is self.classifier.named_steps["features"])

    def score(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(calibrated probability, expected deal value) of each lead of ``frame`` (features encoded once)."""
        if len(frame) == 0:
            return np.zeros(0), np.zeros(0)
        X = _prepare(frame, self.spec)
        Z = self.classifier.named_steps["features"].transform(X)
        return self.predict_proba(frame, X, Z), self.expected_value(frame, X, Z if self._shared_features else None)


def _data_hash(frame: pd.DataFrame, won_values: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for part in (frame, won_values):
        h.update(",".join(map(str, part.columns)).encode())
        h.update(np.ascontiguousarray(pd.util.hash_pandas_object(part, index=False).to_numpy()).tobytes())
    return h.hexdigest()


def _single_column_auc(x: pd.Series, y: np.ndarray, categorical: bool) -> float:
    """How well one column alone separates won from lost (0.5 = not at all, 1 = perfectly)."""
    if categorical:
        keys = x.astype(object).where(x.notna(), "\0missing")
        rate = pd.Series(y, index=x.index).groupby(keys).transform("mean").to_numpy()
        score = rate
    else:
        v = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
        if np.isnan(v).all():
            return 0.5
        score = np.where(np.isnan(v), np.nanmin(v) - 1, v)
    auc = _auc(y, score)
    return 0.5 if math.isnan(auc) else max(auc, 1 - auc)


def _stratified_split(idx: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    from sklearn.model_selection import train_test_split

    a, b = train_test_split(idx, test_size=fraction, random_state=seed, stratify=y[idx])
    return np.sort(a), np.sort(b)


def _permutation_importance(model: LeadModel, X: pd.DataFrame, y: np.ndarray, seed: int) -> list[dict]:
    """Mean drop of ROC AUC when one input column is shuffled (seeded), over PERMUTATION_REPEATS shuffles."""
    rng = np.random.default_rng(seed)
    if len(X) > PERMUTATION_MAX_ROWS:
        keep = np.sort(rng.choice(len(X), PERMUTATION_MAX_ROWS, replace=False))
        X, y = X.iloc[keep].reset_index(drop=True), y[keep]
    Z = model.classifier.named_steps["features"].transform(_prepare(X, model.spec))
    booster = model.classifier.named_steps["model"]
    out = []
    with _openmp(1):
        base = _auc(y, booster.predict_proba(Z)[:, 1])
        for j, col in enumerate(model.spec.columns):  # the matrix's columns are spec.columns, in order
            drops = []
            for _ in range(PERMUTATION_REPEATS):
                shuffled = Z.copy()
                shuffled[:, j] = Z[rng.permutation(len(Z)), j]
                drops.append(base - _auc(y, booster.predict_proba(shuffled)[:, 1]))
            out.append({"feature": col, "label": feature_label(col), "importance": float(np.mean(drops)),
                        "std": float(np.std(drops))})
    return sorted(out, key=lambda r: -r["importance"])


def _baseline(train: pd.DataFrame, y_train: np.ndarray, test: pd.DataFrame,
              y_test: np.ndarray) -> tuple[dict, np.ndarray]:
    """The simplest baseline's metrics and its mask of test rows it scores."""
    crm = pd.to_numeric(test["crm_score"], errors="coerce")
    has = crm.notna().to_numpy()
    if has.sum() >= 0.5 * len(test) and 0 < y_test[has].sum() < has.sum():
        m = classification_metrics(y_test[has], crm.to_numpy()[has])
        m["name"] = "crm_score"
        m["label"] = "Imported CRM score"
        m["gains"] = gains_by_decile(y_test[has], crm.to_numpy()[has])
        return m, has
    overall = float(y_train.mean())
    if "industry" in train:
        keys = train["industry"].astype(object).where(train["industry"].notna(), "\0missing")
        g = pd.Series(y_train, index=train.index).groupby(keys).agg(["sum", "count"])
        rate = (g["sum"] + BASELINE_SMOOTHING * overall) / (g["count"] + BASELINE_SMOOTHING)
        tkeys = test["industry"].astype(object).where(test["industry"].notna(), "\0missing")
        p = tkeys.map(rate).astype(float).fillna(overall).to_numpy()
    else:
        p = np.full(len(test), overall)
    m = classification_metrics(y_test, p)
    m["name"] = "industry_win_rate"
    m["label"] = "Win rate of the lead's industry"
    m["gains"] = gains_by_decile(y_test, p)
    return m, np.ones(len(test), dtype=bool)


def _value_rule(won: pd.DataFrame) -> ValueRule:
    v = won[won["deal_value"] > 0]
    by = v.groupby("industry")["deal_value"].agg(["median", "count"])
    by = by[by["count"] >= MIN_WON_PER_INDUSTRY]["median"]
    return ValueRule({str(k): float(x) for k, x in by.items()}, float(v["deal_value"].median()) if len(v) else None)


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
    X = _prepare(v, spec)
    logv = np.log(v["deal_value"].to_numpy(dtype=float))
    reg = _regressor(spec, int((~test_mask).sum()), seed)
    with _openmp():
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
    held = v.loc[test_mask]
    rule_pred = rule.predict(
        held["industry"] if "industry" in held else pd.Series(None, index=held.index, dtype=object),
        held["annual_revenue"] if "annual_revenue" in held else pd.Series(np.nan, index=held.index),
    )
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


def _history_counts(cur) -> tuple[int, int]:
    won, lost = cur.execute(
        "SELECT count(*) FILTER (WHERE status = 'won'), count(*) FILTER (WHERE status = 'lost') FROM leads"
    ).fetchall()[0]
    return int(won), int(lost)


def check_history(store: "Store", cur=None) -> dict:
    """The closed-lead counts; raises :class:`NotEnoughHistory` when a model cannot be trained."""
    won, lost = _history_counts(cur or store.cursor())
    if won + lost < MIN_CLOSED or won < MIN_PER_CLASS or lost < MIN_PER_CLASS:
        raise NotEnoughHistory(won + lost, won, lost)
    return {"closed": won + lost, "won": won, "lost": lost}


def train_model(store: "Store", seed: int = DEFAULT_SEED, progress: Progress | None = None) -> LeadModel:
    """Train and validate a model on the closed leads (nothing is written; see :func:`retrain`).

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
    frame = load_frame(cur, spec, "l.status IN ('won', 'lost')", columns=("status",))
    y = (frame["status"] == "won").to_numpy(dtype=int)
    crm = cur.execute(
        "SELECT crm_score FROM leads l WHERE l.status IN ('won', 'lost') ORDER BY l.lead_id"
    ).df()["crm_score"].to_numpy(dtype=float, na_value=np.nan)
    X = _prepare(frame, spec)

    idx = np.arange(len(frame))
    fit_idx, test_idx = _stratified_split(idx, y, TEST_FRACTION, seed)
    train_idx, cal_idx = _stratified_split(fit_idx, y, CALIBRATION_FRACTION, seed)

    # Leakage guard, value rule: an imported column that alone separates won from lost.
    leaky = []
    for e in spec.extras:
        auc = _single_column_auc(X[e.name].iloc[train_idx], y[train_idx], e.kind == "categorical")
        if auc >= LEAK_AUC:
            leaky.append(e.name)
            spec.excluded[e.name] = (f"leakage guard: on its own it predicts the outcome almost perfectly "
                                     f"(ROC AUC {auc:.3f}), so it is likely recorded with or after the outcome")
    if leaky:
        spec = spec.without(leaky)
        X = X.drop(columns=leaky)

    report(0.12, f"training on {len(train_idx):,} leads")
    t_fit = time.perf_counter()
    with _openmp():
        clf = _classifier(spec, len(train_idx), seed).fit(X.iloc[train_idx], y[train_idx])
        fit_seconds = time.perf_counter() - t_fit
        report(0.45, "calibrating")
        raw_cal = clf.predict_proba(X.iloc[cal_idx])[:, 1]
    n_cal_pos = int(y[cal_idx].sum())
    method = ("isotonic" if len(cal_idx) >= ISOTONIC_MIN_ROWS
              and min(n_cal_pos, len(cal_idx) - n_cal_pos) >= ISOTONIC_MIN_PER_CLASS else "sigmoid")
    calibrator = _Calibrator(method).fit(raw_cal, y[cal_idx])

    report(0.5, "expected deal values")
    won_values = cur.execute(
        f"SELECT l.lead_id, l.deal_value, {', '.join(_column_sql(spec))} {_FROM_SQL} "
        "WHERE l.status = 'won' AND l.deal_value IS NOT NULL ORDER BY l.lead_id"
    ).df()
    rule = _value_rule(won_values)
    value_model, smear, vrange, value_info = _train_value_model(spec, won_values, rule, seed,
                                                                clf.named_steps["features"])

    baselines = {}
    for c in spec.categorical:
        mode = X[c].iloc[train_idx].mode(dropna=True)
        baselines[c] = mode.iloc[0] if len(mode) else np.nan
    for c in spec.numeric:
        baselines[c] = float(X[c].iloc[train_idx].median()) if X[c].iloc[train_idx].notna().any() else np.nan

    model = LeadModel(
        spec=spec, seed=seed, classifier=clf, calibrator=calibrator, value_model=value_model,
        value_smear=smear, value_range=vrange, value_rule=rule, baselines=baselines,
        data_hash=_data_hash(frame[["lead_id", "status", *spec.columns]], won_values[["lead_id", "deal_value"]]),
        metrics={}, holdout_lead_ids=frame["lead_id"].to_numpy()[test_idx].astype(object),
        holdout_scores=np.zeros(0),
    )

    report(0.6, "validating on held-out leads")
    X_test, y_test = X.iloc[test_idx].reset_index(drop=True), y[test_idx]
    p_test = model.predict_proba(X_test)
    model.holdout_scores = p_test.astype(np.float64)
    metrics = classification_metrics(y_test, p_test)
    metrics["roc_auc_uncalibrated"] = _auc(y_test, model.raw_proba(X_test))
    test_frame = frame.iloc[test_idx].reset_index(drop=True).assign(crm_score=crm[test_idx])
    base, mask = _baseline(frame.iloc[train_idx], y[train_idx], test_frame, y_test)
    if not mask.all():
        base["model_on_same_leads"] = classification_metrics(y_test[mask], p_test[mask])
    report(0.7, "permutation importance")
    importance = _permutation_importance(model, X_test, y_test, seed)
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
        "calibration_curve": calibration_curve(y_test, p_test),
        "gains": gains_by_decile(y_test, p_test),
        "permutation_importance": importance,
        "baseline": base,
        "value_model": value_info,
        "fit_seconds": round(fit_seconds, 3),
        "train_seconds": round(time.perf_counter() - t0, 3),
    })
    model.metrics = _jsonable(metrics)
    report(0.78, "trained")
    return model


# ---------------------------------------------------------------------------
# Storage


def save_model(store: "Store", model: LeadModel, cur=None) -> int:
    """Store ``model`` as the next version; returns the version (also set on the model and its metrics)."""
    cur = cur or store.cursor()
    version = int(cur.execute("SELECT coalesce(max(version), 0) + 1 FROM models").fetchall()[0][0])
    model.version = version
    model.metrics["model_version"] = version
    model.metrics["score_source"] = model.score_source
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    cur.execute(
        "INSERT INTO models (version, kind, seed, data_hash, n_train, metrics, model) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [version, MODEL_KIND, model.seed, model.data_hash, model.metrics.get("n_train"),
         json.dumps(model.metrics), blob],
    )
    return version


def latest_version(store: "Store") -> int | None:
    v = store.scalar("SELECT max(version) FROM models WHERE kind = ?", [MODEL_KIND])
    return None if v is None else int(v)


def load_model(store: "Store", version: int | None = None) -> LeadModel:
    """The stored model of ``version`` (default: the latest); raises :class:`NoModel` when there is none."""
    if version is None:
        version = latest_version(store)
    rows = [] if version is None else store.cursor().execute(
        "SELECT model FROM models WHERE version = ?", [int(version)]
    ).fetchall()
    if not rows:
        raise NoModel("no lead-scoring model has been trained in this database" if version is None
                      else f"there is no model version {version}")
    model = pickle.loads(rows[0][0])
    model.version = int(version)
    return model


def latest_metrics(store: "Store") -> dict | None:
    """The validation metrics of the latest model (without loading the model), or None."""
    rows = store.cursor().execute(
        "SELECT metrics, created_at FROM models WHERE kind = ? ORDER BY version DESC LIMIT 1", [MODEL_KIND]
    ).fetchall()
    if not rows:
        return None
    metrics = json.loads(rows[0][0])
    metrics["created_at"] = str(rows[0][1])
    return metrics


def model_history(store: "Store") -> pd.DataFrame:
    return store.cursor().execute(
        """
        SELECT version, created_at, seed, n_train, data_hash,
               CAST(json_extract(metrics, '$.roc_auc') AS DOUBLE) AS roc_auc,
               CAST(json_extract(metrics, '$.pr_auc') AS DOUBLE) AS pr_auc,
               CAST(json_extract(metrics, '$.ece') AS DOUBLE) AS ece
        FROM models WHERE kind = ? ORDER BY version DESC
        """,
        [MODEL_KIND],
    ).df()


def score_sources(store: "Store") -> pd.DataFrame:
    """How many open leads each score source scored."""
    return store.cursor().sql(
        "SELECT score_source, count(*) AS open_leads FROM leads WHERE status = 'open' GROUP BY ALL ORDER BY 2 DESC"
    ).df()


# ---------------------------------------------------------------------------
# Scoring


def score_leads(store: "Store", model: LeadModel | None = None, progress: Progress | None = None) -> dict:
    """Score every open lead with ``model`` (default: the latest) and refresh the region rollup, in one transaction."""
    import pyarrow as pa

    from terrmap.data.stats import refresh_rollup

    report = progress or (lambda frac, msg: None)
    model = model or load_model(store)
    if model.version is None:
        raise ValueError("save the model first (its version goes into leads.score_source)")
    t0 = time.perf_counter()
    with store.transaction() as tx:
        report(0.0, "loading open leads")
        rows = tx.execute(
            f"SELECT l.rowid AS rid, {', '.join(_column_sql(model.spec))} {_FROM_SQL} WHERE l.status = 'open'"
        ).df()
        n = len(rows)
        report(0.3, f"scoring {n:,} open leads")
        if n:
            score, value = model.score(rows)
            report(0.6, "writing scores")
            table = pa.table({"rid": rows["rid"].to_numpy(dtype=np.int64), "score": score.astype(float),
                              "ev": value.astype(float)})
            tx.register("_terrmap_scores", table)
            try:
                tx.execute(
                    "UPDATE leads SET score = s.score, expected_value = s.ev, score_source = ? "
                    "FROM _terrmap_scores s WHERE leads.rowid = s.rid",
                    [model.score_source],
                )
            finally:
                tx.unregister("_terrmap_scores")
        report(0.85, "refreshing region stats")
        refresh_rollup(tx)
    report(1.0, "scored")
    return {"open_leads": int(n), "score_source": model.score_source, "seconds": round(time.perf_counter() - t0, 3)}


def retrain(store: "Store", seed: int = DEFAULT_SEED, progress: Progress | None = None) -> dict:
    """Train, validate, store and apply a new model; returns its metrics (with ``scored``).

    Without enough history, makes sure every lead has its fallback score and raises :class:`NotEnoughHistory`.
    """
    from terrmap.data.stats import refresh_rollup

    report = progress or (lambda frac, msg: None)
    try:
        model = train_model(store, seed=seed, progress=lambda f, m: report(0.8 * f, m))
    except NotEnoughHistory:
        with store.transaction() as tx:
            apply_fallback_scores(store, tx)
            refresh_rollup(tx)
        raise
    report(0.8, "saving the model")
    with store.transaction() as tx:
        save_model(store, model, tx)
    scored = score_leads(store, model, progress=lambda f, m: report(0.82 + 0.18 * f, m))
    metrics = dict(model.metrics)
    metrics["scored"] = scored
    report(1.0, f"model {model.version} trained and applied")
    return metrics


# ---------------------------------------------------------------------------
# Explanations


def explain_lead(store: "Store", lead_id: str, top: int = 5, model: LeadModel | None = None) -> list[Reason]:
    """The top reasons for a lead's score, largest effect first.

    With a model: for each feature, contribution = the lead's score minus its score with that
    feature set to its baseline (training median or most frequent category). Scored by the
    fallback: the terms of the fit score above an unknown-size company (``fit``), or the imported
    score itself (``crm``).
    """
    cur = store.cursor()
    row = cur.execute("SELECT score_source, crm_score, employees, annual_revenue FROM leads WHERE lead_id = ?",
                      [str(lead_id)]).fetchall()
    if not row:
        raise KeyError(f"no lead with id {lead_id!r}")
    source, crm, employees, revenue = row[0]
    if model is None and source is not None and str(source).startswith("model:"):
        try:
            model = load_model(store, int(str(source).split(":", 1)[1]))
        except (NoModel, ValueError):
            model = None
    if model is None:
        if source == "crm":
            return [Reason("crm_score", crm, float(crm or 0.0))]
        emp_term = 0.06 * (math.log10(1 + (employees if employees is not None else 10)) - math.log10(11))
        rev_term = 0.03 * math.log10(1 + (revenue or 0) / 1e6)
        reasons = [Reason("employees", employees, emp_term), Reason("annual_revenue", revenue, rev_term)]
        return sorted(reasons, key=lambda r: -abs(r.contribution))[:top]
    frame = load_frame(cur, model.spec, f"l.lead_id = {_sql_str(str(lead_id))}")
    X = _prepare(frame, model.spec)
    variants = [X]
    for c in model.spec.columns:
        v = X.copy()
        v[c] = pd.Series([model.baselines.get(c, np.nan)], dtype=X[c].dtype, index=v.index)
        variants.append(v)
    p = model.predict_proba(pd.concat(variants, ignore_index=True))
    reasons = []
    for i, c in enumerate(model.spec.columns, start=1):
        value = X[c].iloc[0]
        if isinstance(value, float) and math.isnan(value):
            value = None
        elif isinstance(value, (np.floating, np.integer)):
            value = value.item()
        reasons.append(Reason(c, value, float(p[0] - p[i])))
    return sorted(reasons, key=lambda r: -abs(r.contribution))[:top]


# ---------------------------------------------------------------------------
# ICP, whitespace, TAM

SIZE_BAND_SQL = """CASE
    WHEN l.employees IS NULL THEN 'unknown'
    WHEN l.employees < 10 THEN '1-9'
    WHEN l.employees < 50 THEN '10-49'
    WHEN l.employees < 200 THEN '50-199'
    WHEN l.employees < 1000 THEN '200-999'
    ELSE '1000+' END"""
SIZE_BANDS = ["1-9", "10-49", "50-199", "200-999", "1000+", "unknown"]


def icp_segments(store: "Store", min_support: int = 30, top: int | None = 25) -> pd.DataFrame:
    """Segments industry x size band (employees) x place type (ZIP urbanicity), best first.

    Columns: industry, size_band, place_type, closed, won, win_rate, win_rate_low (the Wilson 95%
    lower bound, the ranking key: a high rate on few leads ranks below a slightly lower one on
    many), lift (win rate / overall), won_value, avg_deal, value_per_closed (won value per
    closed lead), open_leads, open_potential. Only segments with ``min_support`` closed leads.
    """
    df = store.cursor().execute(
        f"""
        SELECT coalesce(l.industry, 'unknown') AS industry, {SIZE_BAND_SQL} AS size_band,
               coalesce(zp.urbanicity, zr.urbanicity, 'unknown') AS place_type,
               count(*) FILTER (WHERE l.status IN ('won', 'lost')) AS closed,
               count(*) FILTER (WHERE l.status = 'won') AS won,
               coalesce(sum(l.deal_value) FILTER (WHERE l.status = 'won'), 0) AS won_value,
               median(l.deal_value) FILTER (WHERE l.status = 'won') AS avg_deal,
               count(*) FILTER (WHERE l.status = 'open') AS open_leads,
               coalesce(sum(l.score * l.expected_value) FILTER (WHERE l.status = 'open'), 0) AS open_potential
        {_FROM_SQL}
        GROUP BY ALL
        """
    ).df()
    total_closed = df["closed"].sum()
    overall = df["won"].sum() / total_closed if total_closed else 0.0
    df = df[df["closed"] >= max(1, min_support)].copy()
    n = df["closed"].astype(float)
    rate = df["won"] / n
    z = 1.96
    centre = rate + z * z / (2 * n)
    margin = z * np.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    df["win_rate"] = rate
    df["win_rate_low"] = (centre - margin) / (1 + z * z / n)
    df["lift"] = rate / overall if overall else np.nan
    df["value_per_closed"] = df["won_value"] / n
    df = df.sort_values(["win_rate_low", "value_per_closed"], ascending=False).reset_index(drop=True)
    cols = ["industry", "size_band", "place_type", "closed", "won", "win_rate", "win_rate_low", "lift",
            "won_value", "avg_deal", "value_per_closed", "open_leads", "open_potential"]
    df = df[cols]
    return df.head(top) if top else df


def _layer(layer) -> "Layer":
    from terrmap.geo import parse_layer

    return parse_layer(layer) if isinstance(layer, str) else layer


def whitespace(store: "Store", layer, top: int | None = 100, min_open_leads: int = 1) -> pd.DataFrame:
    """High-potential regions of ``layer`` with no customers (no won lead), largest potential first.

    Columns: region_id, place ("City, ST" holding most of its leads), lat, lon (mean of its
    leads), leads, open_leads, avg_score, potential, share (of all whitespace potential).
    """
    from terrmap.data.stats import region_stats

    layer = _layer(layer)
    stats = region_stats(store, layer)
    ws = stats[(stats["customers"] == 0) & (stats["open_leads"] >= min_open_leads) & (stats["potential"] > 0)]
    ws = ws.sort_values(["potential", "region_id"], ascending=[False, True])
    total = float(ws["potential"].sum())
    ws = ws.assign(share=ws["potential"] / total if total else 0.0)
    if top:
        ws = ws.head(top)
    ws = ws[["region_id", "leads", "open_leads", "avg_score", "potential", "share"]].reset_index(drop=True)
    if ws.empty:
        return ws.assign(place=pd.Series(dtype=object), lat=pd.Series(dtype=float), lon=pd.Series(dtype=float))
    key = layer.region_key_sql("l")
    cur = store.cursor()
    cur.register("_terrmap_ws", ws[["region_id"]])
    try:
        where = cur.execute(
            f"""
            WITH per_key AS (
                SELECT {key} AS k, avg(l.lat) AS lat, avg(l.lon) AS lon
                FROM leads l WHERE {key} IS NOT NULL GROUP BY k
            ),
            places AS (
                SELECT {key} AS k, CASE WHEN z.city IS NULL THEN z.state ELSE z.city || ', ' || z.state END AS place,
                       count(*) AS n
                FROM leads l LEFT JOIN zips z ON z.zip = l.zip WHERE {key} IS NOT NULL GROUP BY ALL
            ),
            best AS (SELECT k, arg_max(place, n) AS place FROM places GROUP BY k)
            SELECT w.region_id, b.place, p.lat, p.lon
            FROM per_key p JOIN best b USING (k)
            JOIN _terrmap_ws w ON w.region_id = {layer.region_id_sql('p.k')}
            """
        ).df()
    finally:
        cur.unregister("_terrmap_ws")
    out = ws.merge(where, on="region_id", how="left")
    return out[["region_id", "place", "lat", "lon", "leads", "open_leads", "avg_score", "potential", "share"]]


def tam_by_territory(store: "Store", plan: "PlanInfo | str | int | None" = None, layer=None) -> pd.DataFrame:
    """Total addressable market per territory of ``plan`` (default: the published plan) on ``layer``
    (default: the plan's): all open potential of its regions, with open leads, customers, won
    revenue and its whitespace (regions without customers). Unassigned regions form territory -1.
    """
    from terrmap.plan import assignment_for_layer, get_plan, territories
    from terrmap.data.stats import region_stats

    if plan is None or isinstance(plan, (str, int)):
        found = get_plan(store, plan)
        if found is None:
            raise ValueError(f"no plan {plan!r}" if plan is not None else "there is no plan")
        plan = found
    layer = _layer(layer if layer is not None else plan.layer)
    stats = region_stats(store, layer)
    assign = assignment_for_layer(store, plan, layer)[["region_id", "territory_id"]]
    df = stats.merge(assign, on="region_id", how="left")
    df["territory_id"] = df["territory_id"].fillna(-1).astype(int)
    df["ws_potential"] = np.where(df["customers"] == 0, df["potential"], 0.0)
    df["ws_region"] = ((df["customers"] == 0) & (df["potential"] > 0)).astype(int)
    g = df.groupby("territory_id").agg(
        regions=("region_id", "size"), leads=("leads", "sum"), open_leads=("open_leads", "sum"),
        customers=("customers", "sum"), won_revenue=("won_revenue", "sum"), tam=("potential", "sum"),
        whitespace_regions=("ws_region", "sum"), whitespace_potential=("ws_potential", "sum"),
    ).reset_index()
    terr = territories(store, plan.plan_id)[["territory_id", "name", "rep_name"]]
    g = g.merge(terr, on="territory_id", how="left")
    g["name"] = g["name"].where(g["territory_id"] != -1, "Unassigned")
    total = float(g["tam"].sum())
    g["share"] = g["tam"] / total if total else 0.0
    g = g.rename(columns={"name": "territory", "rep_name": "rep"})
    cols = ["territory_id", "territory", "rep", "regions", "leads", "open_leads", "customers", "won_revenue", "tam",
            "share", "whitespace_regions", "whitespace_potential"]
    return g[cols].sort_values("tam", ascending=False).reset_index(drop=True)
