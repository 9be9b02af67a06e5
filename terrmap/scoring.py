"""Lead scores and expected deal values.

Until a model has been trained (see the scoring issue), every open lead gets a
*fallback* score, recorded in ``leads.score_source``:

* ``crm``: the score imported with the lead (``crm_score``, in [0, 1]);
* ``fit``: a documented firmographic fit score::

      fit = clip(0.04 + 0.06 * log10(1 + employees) + 0.03 * log10(1 + annual_revenue / 1e6), 0.01, 0.9)

  Larger companies are likelier buyers; an unknown size counts as 10 employees
  and no revenue.

The expected deal value of a lead is the median won deal of its industry when
that industry has at least ``MIN_WON_PER_INDUSTRY`` won deals, else the median
of all won deals, else 0.2% of the lead's annual revenue bounded to
[1 000, 250 000], else 10 000.

Revenue potential of an open lead = score x expected value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from terrmap.store import Store

MIN_WON_PER_INDUSTRY = 20

FIT_SCORE_SQL = (
    "least(0.9, greatest(0.01, 0.04 + 0.06 * log10(1 + coalesce(employees, 10))"
    " + 0.03 * log10(1 + coalesce(annual_revenue, 0) / 1e6)))"
)


def apply_fallback_scores(store: "Store", cur=None) -> None:
    """(Re)compute score and expected value for every lead not scored by a model."""
    cur = cur or store.cursor()
    cur.execute(
        f"""
        WITH won AS (SELECT industry, deal_value FROM leads WHERE status = 'won' AND deal_value > 0),
        by_industry AS (
            SELECT industry, median(deal_value) AS v FROM won GROUP BY industry HAVING count(*) >= {MIN_WON_PER_INDUSTRY}
        ),
        overall AS (SELECT median(deal_value) AS v FROM won)
        UPDATE leads SET
            score = CASE WHEN leads.crm_score IS NOT NULL THEN leads.crm_score ELSE {FIT_SCORE_SQL} END,
            score_source = CASE WHEN leads.crm_score IS NOT NULL THEN 'crm' ELSE 'fit' END,
            expected_value = coalesce(
                (SELECT v FROM by_industry b WHERE b.industry = leads.industry),
                (SELECT v FROM overall),
                least(250000, greatest(1000, 0.002 * leads.annual_revenue)),
                10000)
        WHERE score_source IS NULL OR NOT starts_with(score_source, 'model:')
        """
    )
