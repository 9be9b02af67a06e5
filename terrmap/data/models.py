"""Lead-scoring models as stored (table ``models``, migration 2) and the lead rows scoring reads and writes.

A stored model is a version number (1, 2, ...; the latest is the active one), the seed, a SHA-256 of
its training rows, its validation metrics (JSON) and the model itself as bytes (pickled by
:mod:`terrmap.scoring`, which alone knows what they hold). Scores written by a model carry
``leads.score_source = 'model:<version>'``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from terrmap.measures import LEAD_POTENTIAL_SQL

if TYPE_CHECKING:
    from terrmap.data.store import Store

MODEL_KIND = "lead_score"


# -- the models table ---------------------------------------------------------------------------


def next_model_version(cur: duckdb.DuckDBPyConnection) -> int:
    return int(cur.execute("SELECT coalesce(max(version), 0) + 1 FROM models").fetchall()[0][0])


def insert_model(cur: duckdb.DuckDBPyConnection, version: int, seed: int, data_hash: str, n_train: int | None,
                 metrics: dict, blob: bytes) -> None:
    cur.execute(
        "INSERT INTO models (version, kind, seed, data_hash, n_train, metrics, model) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [version, MODEL_KIND, seed, data_hash, n_train, json.dumps(metrics), blob],
    )


def latest_model_version(store: Store) -> int | None:
    v = store.scalar("SELECT max(version) FROM models WHERE kind = ?", [MODEL_KIND])
    return None if v is None else int(v)


def model_blob(store: Store, version: int) -> bytes | None:
    rows = store.cursor().execute("SELECT model FROM models WHERE version = ?", [int(version)]).fetchall()
    return rows[0][0] if rows else None


def latest_model_metrics(store: Store) -> dict | None:
    """The validation metrics of the latest model, with its ``created_at``, or None."""
    rows = store.cursor().execute(
        "SELECT metrics, created_at FROM models WHERE kind = ? ORDER BY version DESC LIMIT 1", [MODEL_KIND]
    ).fetchall()
    if not rows:
        return None
    metrics = json.loads(rows[0][0])
    metrics["created_at"] = str(rows[0][1])
    return metrics


def model_history(store: Store) -> pd.DataFrame:
    """One row per stored model, newest first: version, created_at, seed, n_train, data_hash, roc_auc, pr_auc, ece."""
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


# -- leads: history, scores ----------------------------------------------------------------------


def closed_lead_counts(cur: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(won, lost) leads: the history a model learns from."""
    won, lost = cur.execute(
        "SELECT count(*) FILTER (WHERE status = 'won'), count(*) FILTER (WHERE status = 'lost') FROM leads"
    ).fetchall()[0]
    return int(won), int(lost)


def closed_lead_crm_scores(cur: duckdb.DuckDBPyConnection) -> np.ndarray:
    """The imported CRM score of every closed lead, in lead_id order (NaN where there is none)."""
    return cur.execute(
        "SELECT crm_score FROM leads l WHERE l.status IN ('won', 'lost') ORDER BY l.lead_id"
    ).df()["crm_score"].to_numpy(dtype=float, na_value=np.nan)


def score_source_counts(store: Store) -> pd.DataFrame:
    """How many open leads each score source scored (score_source, open_leads), most first."""
    return store.cursor().sql(
        "SELECT score_source, count(*) AS open_leads FROM leads WHERE status = 'open' GROUP BY ALL ORDER BY 2 DESC"
    ).df()


def write_scores(tx: duckdb.DuckDBPyConnection, rowids: np.ndarray, scores: np.ndarray, values: np.ndarray,
                 source: str) -> None:
    """Set score, expected_value and score_source of the leads at ``rowids`` (one UPDATE)."""
    table = pa.table({"rid": np.asarray(rowids, dtype=np.int64), "score": np.asarray(scores, dtype=float),
                      "ev": np.asarray(values, dtype=float)})
    tx.register("_terrmap_scores", table)
    try:
        tx.execute(
            "UPDATE leads SET score = s.score, expected_value = s.ev, score_source = ? "
            "FROM _terrmap_scores s WHERE leads.rowid = s.rid",
            [source],
        )
    finally:
        tx.unregister("_terrmap_scores")


# The won deals of the stored leads (industry, deal_value): the fallback scores' medians come from these.
WON_DEALS_SQL = "SELECT industry, deal_value FROM leads WHERE status = 'won' AND deal_value > 0"


def rewrite_fallback_scores(cur: duckdb.DuckDBPyConnection, value_ctes: str, score: str, source: str,
                            expected_value: str) -> None:
    """Set score, score_source and expected_value of every lead not scored by a model, writing only the rows
    whose values change. ``value_ctes`` are the CTEs the expressions need; ``score``, ``source`` and
    ``expected_value`` are expressions over ``leads`` (:mod:`terrmap.scoring.fallback` writes them)."""
    cur.execute(
        f"""
        WITH {value_ctes}
        UPDATE leads SET score = {score}, score_source = {source}, expected_value = {expected_value}
        WHERE (score_source IS NULL OR NOT starts_with(score_source, 'model:'))
          AND (score IS NULL OR score_source IS NULL OR expected_value IS DISTINCT FROM {expected_value})
        """
    )


def lead_score_inputs(cur: duckdb.DuckDBPyConnection, lead_id: str) -> tuple | None:
    """(score_source, crm_score, employees, annual_revenue) of a lead, or None when there is no such lead."""
    rows = cur.execute("SELECT score_source, crm_score, employees, annual_revenue FROM leads WHERE lead_id = ?",
                       [str(lead_id)]).fetchall()
    return rows[0] if rows else None


def lead_card(store: Store, lead_id: str) -> pd.DataFrame:
    """One lead as the Model page shows it (no row when there is no such lead): lead_id, name, industry,
    employees, annual_revenue, status, zip, score, expected_value, score_source and potential."""
    return store.cursor().execute(
        "SELECT lead_id, name, industry, employees, annual_revenue, status, zip, score, expected_value, "
        f"score_source, {LEAD_POTENTIAL_SQL} AS potential FROM leads l WHERE lead_id = ?", [str(lead_id)]
    ).df()


def top_open_leads(store: Store, limit: int = 300) -> pd.DataFrame:
    """The ``limit`` open leads with the most potential (lead_id, name, industry, potential), best first."""
    return store.cursor().execute(
        f"SELECT lead_id, name, industry, {LEAD_POTENTIAL_SQL} AS potential FROM leads l "
        "WHERE status = 'open' ORDER BY potential DESC, lead_id LIMIT ?", [int(limit)]
    ).df()
