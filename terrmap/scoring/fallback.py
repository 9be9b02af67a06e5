"""Fallback scores and expected deal values: what every lead gets until a model scores it.

* score: the imported CRM score (``score_source = 'crm'``), else the firmographic fit score (``'fit'``)::

      fit = clip(0.04 + 0.06 * log10(1 + employees) + 0.03 * log10(1 + annual_revenue / 1e6), 0.01, 0.9)

  Larger companies are likelier buyers; an unknown size counts as 10 employees and no revenue.
* expected deal value: the median won deal of the lead's industry when that industry has at least
  :data:`MIN_WON_PER_INDUSTRY` won deals, else the median of all won deals, else 0.2% of the lead's
  annual revenue bounded to [1 000, 250 000], else 10 000.

The rule is written twice on purpose: in SQL (imports and :func:`apply_fallback_scores` score whole
tables in DuckDB) and in pandas (:class:`ValueRule`, which a model keeps for leads it cannot value).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from terrmap.data.models import WON_DEALS_SQL, rewrite_fallback_scores

if TYPE_CHECKING:
    from terrmap.data.store import Store

MIN_WON_PER_INDUSTRY = 20

FIT_SCORE_SQL = (
    "least(0.9, greatest(0.01, 0.04 + 0.06 * log10(1 + coalesce(employees, 10))"
    " + 0.03 * log10(1 + coalesce(annual_revenue, 0) / 1e6)))"
)


def fallback_value_ctes(won_sql: str = WON_DEALS_SQL) -> str:
    """CTEs ``by_industry`` and ``overall``: median won deal value per industry (with enough wins) and overall,
    over the won deals ``won_sql`` selects (industry, deal_value)."""
    return f"""
        won AS ({won_sql}),
        by_industry AS (
            SELECT industry, median(deal_value) AS v FROM won
            GROUP BY industry HAVING count(*) >= {MIN_WON_PER_INDUSTRY}
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


def apply_fallback_scores(store: Store, cur=None) -> None:
    """(Re)compute score and expected value of every lead not scored by a model.

    Only rows whose values change are written (an import computes its own rows' values as it inserts
    them; here only older leads whose industry's median won deal moved are touched)."""
    score, source = fallback_score_sql("leads")
    rewrite_fallback_scores(cur or store.cursor(), fallback_value_ctes(), score, source,
                            fallback_expected_value_sql("leads"))


@dataclass
class ValueRule:
    """The fallback expected deal value (as :func:`apply_fallback_scores`), fitted on won deals in pandas."""

    by_industry: dict[str, float]
    overall: float | None

    @classmethod
    def fit(cls, won: pd.DataFrame) -> ValueRule:
        """From won leads (columns industry, deal_value)."""
        v = won[won["deal_value"] > 0]
        by = v.groupby("industry")["deal_value"].agg(["median", "count"])
        by = by[by["count"] >= MIN_WON_PER_INDUSTRY]["median"]
        return cls({str(k): float(x) for k, x in by.items()}, float(v["deal_value"].median()) if len(v) else None)

    def predict(self, industry: pd.Series, revenue: pd.Series) -> np.ndarray:
        v = industry.map(self.by_industry).astype("float64")
        if self.overall is not None:
            v = v.fillna(self.overall)
        v = v.fillna((0.002 * pd.to_numeric(revenue, errors="coerce")).clip(1000, 250000)).fillna(10000)
        return v.to_numpy(dtype=float)

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """For a frame of leads that may lack the industry or annual_revenue column."""
        industry = frame["industry"] if "industry" in frame else pd.Series(None, index=frame.index, dtype=object)
        revenue = frame["annual_revenue"] if "annual_revenue" in frame else pd.Series(np.nan, index=frame.index)
        return self.predict(industry, revenue)
