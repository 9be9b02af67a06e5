"""The model's inputs: which columns are features, how they are read from DuckDB and encoded.

Features (:func:`feature_spec`): firmographics (industry, employees, annual revenue); place features
of the lead's ZIP from the census table ``zips`` (median household income, population density,
urbanicity, metro or not; the postal ZIP, else the region ZIP); and the columns the user imported
that the import did not map (``leads.extra``), detected automatically (:func:`detect_extra_columns`):
a column is *numeric* when >= 95% of its non-empty values parse as numbers (``$1,200`` included),
*categorical* when it has at most :data:`MAX_EXTRA_CATEGORIES` distinct values; ids, names, e-mails,
notes, dates, free text and high-cardinality columns are skipped, as are columns present on under 1%
of leads. The CRM score is not a feature: it is the baseline the model is compared with.

The SQL that reads them is in :mod:`terrmap.data.lead_features`. Leakage guard (the by-value rule
runs on the training rows in :mod:`terrmap.scoring.train`):

1. the classifier's training query (:func:`terrmap.data.lead_features.closed_lead_features`) reads
   only the feature columns, ``lead_id`` and ``status`` (the label) -- never ``deal_value``,
   ``closed_at`` or any date;
2. an imported column is excluded by *name* when a word of it says outcome (:data:`LEAK_WORDS`);
3. by *definition* when whether it is filled in depends on the outcome (present on won and lost or
   open leads at rates more than :data:`LEAK_PRESENCE_GAP` apart: a field filled in at closing).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from terrmap.data.lead_features import (
    BASE_CATEGORICAL,
    BASE_NUMERIC,
    PROFILE_FIELDS,
    extra_key_counts,
    extra_value_profiles,
    lead_column_counts,
)

if TYPE_CHECKING:
    from terrmap.data.store import Store

MAX_EXTRA_KEYS = 40
MAX_EXTRA_CATEGORIES = 30
MIN_EXTRA_PRESENT = 0.01
NUMERIC_SHARE = 0.95
DETECT_SAMPLE = 200_000
MIN_CATEGORY_COUNT = 5
MAX_ENCODED_CATEGORIES = 64
LEAK_PRESENCE_GAP = 0.30

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


def feature_label(name: str) -> str:
    if name.startswith(EXTRA_PREFIX):
        return f"{name[len(EXTRA_PREFIX):]} (imported)"
    return FEATURE_LABELS.get(name, name)


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

    def without(self, names) -> FeatureSpec:
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


def _name_verdict(key: str, n_candidates: int) -> str | None:
    """Why an imported column is not a feature, judged by its name alone (None: look at its values)."""
    words = _words(key)
    if '"' in key or "\\" in key:
        return "name has quotes or backslashes"
    if words & LEAK_WORDS:
        said = ", ".join(sorted(words & LEAK_WORDS))
        return f"leakage guard: the name says it records the outcome ({said})"
    if words & ID_WORDS:
        return "an identifier, contact detail or free text (by name)"
    if n_candidates >= MAX_EXTRA_KEYS:
        return f"more than {MAX_EXTRA_KEYS} imported columns: only the most filled-in are used"
    return None


def _value_verdict(profile: dict, total: int, n_open: int, n_won: int, n_lost: int) -> str:
    """'numeric', 'categorical', or why an imported column is not a feature, from its value profile
    (:func:`terrmap.data.lead_features.extra_value_profiles`)."""
    present, numeric, dates, distinct, distinct_num, integral, p_open, p_won, p_lost = (
        profile[f] for f in PROFILE_FIELDS)
    rates = [r for r, m in ((p_open, n_open), (p_won, n_won), (p_lost, n_lost)) if m >= 20 and r is not None]
    if present < max(1, MIN_EXTRA_PRESENT * total):
        return f"almost always empty (filled in on {present:,} of {total:,} leads)"
    if len(rates) >= 2 and max(rates) - min(rates) > LEAK_PRESENCE_GAP:
        return ("leakage guard: filled in at different rates for open / won / lost leads "
                f"({', '.join(f'{r:.0%}' for r in (p_open, p_won, p_lost) if r is not None)}), "
                "so it is likely recorded at or after closing")
    if distinct <= 1:
        return "a single value"
    if numeric >= NUMERIC_SHARE * present:
        if integral == numeric and distinct_num >= 0.98 * numeric and numeric >= 50:
            return "looks like an identifier (a distinct whole number per lead)"
        return "numeric"
    if dates >= NUMERIC_SHARE * present:
        return "dates are not used"
    if distinct > MAX_EXTRA_CATEGORIES or distinct > max(2, 0.5 * present):
        return f"text with {distinct:,} distinct values (too many categories)"
    return "categorical"


def detect_extra_columns(cur, n_leads: int | None = None) -> tuple[list[ExtraColumn], dict[str, str]]:
    """The usable imported columns in ``leads.extra`` and, for the others, why they are skipped.

    Detection reads at most :data:`DETECT_SAMPLE` leads (a deterministic sample by id hash).
    """
    n = n_leads if n_leads is not None else lead_column_counts(cur)[0]
    every = int(math.ceil(n / DETECT_SAMPLE)) if n > DETECT_SAMPLE else 1
    excluded: dict[str, str] = {}
    candidates = []
    for key, _ in extra_key_counts(cur, every):
        why = _name_verdict(key, len(candidates))
        if why is None:
            candidates.append(key)
        else:
            excluded[EXTRA_PREFIX + key] = why
    if not candidates:
        return [], excluded
    totals, profiles = extra_value_profiles(cur, candidates, every)
    extras: list[ExtraColumn] = []
    for key, profile in zip(candidates, profiles):
        verdict = _value_verdict(profile, totals["total"], totals["open"], totals["won"], totals["lost"])
        if verdict in ("numeric", "categorical"):
            extras.append(ExtraColumn(key, verdict))
        else:
            excluded[EXTRA_PREFIX + key] = verdict
    return extras, excluded


def feature_spec(store: Store, cur=None) -> FeatureSpec:
    """The features a model trained now would use (base features with data, plus usable imported columns)."""
    cur = cur or store.cursor()
    n_leads, filled = lead_column_counts(cur)
    spec = FeatureSpec(list(BASE_CATEGORICAL), list(BASE_NUMERIC))
    empty = [name for name, n in filled.items() if n == 0]
    for name in empty:
        spec.excluded[name] = "no values in the data"
    spec = spec.without(empty)
    extras, excluded = detect_extra_columns(cur, n_leads)
    spec.extras = extras
    spec.categorical += [e.name for e in extras if e.kind == "categorical"]
    spec.numeric += [e.name for e in extras if e.kind == "numeric"]
    spec.excluded.update(excluded)
    return spec


def prepare(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
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

    def set_params(self, **params) -> FeatureMatrix:
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def fit(self, X: pd.DataFrame, y=None) -> FeatureMatrix:
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
