"""Loading validated, located lead rows into the store: all or nothing, in one transaction.

The leads whose ids are in the file are deleted and the file's leads inserted, scored as they go in
(fallback scores: medians over the won deals kept and imported), then the fallback scores and the
roll-up are refreshed. Re-importing the same ids therefore replaces those leads (every column,
including model scores, which fall back until the model is re-run); other leads are untouched.
When a lead model has been trained, the new leads then get its scores; the plans then take on the
regions of new leads. All of it in the one transaction.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from terrmap.data.lead_import import STAGED_ROWS, delete_replaced_leads, insert_leads_sql, won_deals_sql
from terrmap.data.rollup import refresh_rollup
from terrmap.data.store import Store
from terrmap.io.progress import Progress, run_with_progress
from terrmap.plan.complete import complete_new_regions, prepare_completion
from terrmap.scoring import (
    NoModel,
    apply_fallback_scores,
    fallback_expected_value_sql,
    fallback_score_sql,
    fallback_value_ctes,
    latest_version,
    load_model,
)
from terrmap.scoring.apply import score_open_leads


def with_located(table: pa.Table, located: dict[str, pa.Array], status_pairs: list[tuple[str, str]]) -> pa.Table:
    """The staged rows with the located columns and ``x_status`` (open/won/lost) appended."""
    for name, values in located.items():
        table = table.append_column(name, values)
    keys = pa.array([k for k, _ in status_pairs], type=pa.string())
    values = pa.array([v for _, v in status_pairs], type=pa.string())
    # Dictionary-encoded (index of the status as given -> open/won/lost): no string per row to build.
    status = pc.index_in(table.column("status_key"), keys).combine_chunks()
    return table.append_column("x_status", pa.DictionaryArray.from_arrays(status, values))


def write_leads(store: Store, staged: str, scale: float, progress: Progress | None,
                phase: Callable[[str], None]) -> tuple[int, dict[str, int]]:
    """Replace the staged leads in the store, in one transaction; returns how many stored leads were replaced
    and the regions each plan took on (:func:`terrmap.plan.complete.complete_new_regions`).

    ``scale`` multiplies the CRM scores (0.01 for a file in 0-100 points); ``phase(name)`` marks the end of
    each timed step. Everything the import writes is in that transaction: the leads, their fallback scores, the
    lead model's scores (when one has been trained), the roll-up and the plans' new regions, so a process
    killed at any point leaves the database as it was before the import, or as it is after it.
    """
    report = progress or (lambda frac, msg: None)
    model = _lead_model(store)
    prepare_completion(store)
    phase("prepare")
    with store.transaction() as tx:
        updated = delete_replaced_leads(tx, staged)
        # Fallback scores are computed as rows go in (medians over the won deals kept and imported):
        # an UPDATE of millions of fresh rows afterwards would cost as much as the insert.
        score, source = fallback_score_sql(STAGED_ROWS)
        insert = insert_leads_sql(staged, scale, fallback_value_ctes(won_deals_sql(staged)), score, source,
                                  fallback_expected_value_sql(STAGED_ROWS))
        run_with_progress(tx, lambda: tx.execute(insert), progress, 0.65, 0.85, "writing")
        phase("insert")
        report(0.85, "scoring")
        apply_fallback_scores(store, tx)
        if model is None:
            refresh_rollup(tx)
        else:
            # A trained model exists: the new leads get its scores, not the fallback.
            report(0.9, "scoring with the lead model")
            score_open_leads(tx, model)
        phase("score")
        report(0.95, "giving the regions of new leads an owner")
        completed = complete_new_regions(store, tx)
        phase("complete plans")
        report(0.97, "committing")
    phase("commit")
    return updated, completed


def _lead_model(store: Store):
    """The latest lead model, None when there is none (or it cannot be loaded: the fallback scores then stay,
    as before any model was trained, until the model is retrained)."""
    if latest_version(store) is None:
        return None
    try:
        return load_model(store)
    except NoModel:
        return None
