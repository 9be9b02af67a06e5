"""What a lead-scoring model reads: lead features as SQL over ``leads`` (aliased ``l``) and the census
``zips`` table (the postal ZIP ``zp``, else the region ZIP ``zr``), and the imported columns in
``leads.extra``. Which columns become features is decided in :mod:`terrmap.scoring.features`.

Every reader selects ``lead_id`` (or the row id), the features and only the lead columns it names:
the training read (:func:`closed_lead_features`) adds ``status`` for the label and never
``deal_value``, ``closed_at`` or any date (the leakage guard's first rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import duckdb
import pandas as pd

# Base features: name -> SQL.
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
# Base features that are plain lead columns (and may be empty in a user's file).
LEAD_COLUMN_FEATURES = ("industry", "employees", "annual_revenue")
# An imported value that says "no value".
MISSING_TOKENS = ("", "na", "n/a", "null", "none", "nan", "-", "--", "?")

FROM_SQL = """
    FROM leads l
    LEFT JOIN zips zp ON zp.zip = l.postal_zip
    LEFT JOIN zips zr ON zr.zip = l.zip
"""


class ImportedColumn(Protocol):
    key: str  # the JSON key in leads.extra
    kind: str  # 'numeric' or 'categorical'
    name: str  # the feature's name


class FeatureColumns(Protocol):
    categorical: list[str]
    numeric: list[str]
    extras: Sequence[ImportedColumn]


def sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _extra_value_sql(key: str) -> str:
    """The cleaned text of ``extra[key]`` (NULL when empty or a missing-value token)."""
    path = sql_str('$."' + key + '"')
    raw = f"trim(json_extract_string(l.extra, {path}))"
    missing = ", ".join(sql_str(t) for t in MISSING_TOKENS)
    return f"(CASE WHEN lower({raw}) IN ({missing}) THEN NULL ELSE {raw} END)"


def _number_sql(text_sql: str) -> str:
    return f"TRY_CAST(replace(replace({text_sql}, ',', ''), '$', '') AS DOUBLE)"


def column_sql(spec: FeatureColumns) -> list[str]:
    """One ``<SQL> AS "<feature>"`` select item per feature of ``spec`` (over :data:`FROM_SQL`)."""
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


# -- what there is to learn from -------------------------------------------------------------------


def lead_column_counts(cur: duckdb.DuckDBPyConnection) -> tuple[int, dict[str, int]]:
    """(leads, filled-in count of each of :data:`LEAD_COLUMN_FEATURES`)."""
    row = cur.execute(
        f"SELECT count(*), {', '.join(f'count(l.{c})' for c in LEAD_COLUMN_FEATURES)} " + FROM_SQL
    ).fetchall()[0]
    return int(row[0]), dict(zip(LEAD_COLUMN_FEATURES, (int(n) for n in row[1:])))


def _sample_sql(every: int) -> str:
    """A deterministic 1-in-``every`` sample of leads (by id hash); no sample for ``every <= 1``."""
    return f"AND hash(l.lead_id) % {int(every)} = 0" if every > 1 else ""


def extra_key_counts(cur: duckdb.DuckDBPyConnection, sample_every: int = 1) -> list[tuple[str, int]]:
    """(key, leads having it) of every key in ``leads.extra``, most frequent first."""
    return cur.execute(
        f"""
        SELECT key, count(*) AS n FROM (
            SELECT unnest(json_keys(l.extra)) AS key FROM leads l WHERE l.extra IS NOT NULL {_sample_sql(sample_every)}
        ) GROUP BY key ORDER BY n DESC, key
        """
    ).fetchall()


def _profile_sql(i: int) -> list[str]:
    num = _number_sql(f"v{i}")
    return [
        f"count(v{i})",
        f"count({num})",
        f"count(TRY_CAST(v{i} AS TIMESTAMP))",
        f"count(DISTINCT v{i})",
        f"count(DISTINCT {num})",
        f"count({num}) FILTER (WHERE {num} = round({num}))",
        f"avg(CAST(v{i} IS NOT NULL AS DOUBLE)) FILTER (WHERE status = 'open')",
        f"avg(CAST(v{i} IS NOT NULL AS DOUBLE)) FILTER (WHERE status = 'won')",
        f"avg(CAST(v{i} IS NOT NULL AS DOUBLE)) FILTER (WHERE status = 'lost')",
    ]


PROFILE_FIELDS = ("present", "numeric", "dates", "distinct", "distinct_numbers", "whole_numbers",
                  "share_open", "share_won", "share_lost")


def extra_value_profiles(cur: duckdb.DuckDBPyConnection, keys: list[str],
                         sample_every: int = 1) -> tuple[dict[str, int], list[dict]]:
    """Lead counts (total, open, won, lost) and, per imported column ``keys``, its value profile:
    :data:`PROFILE_FIELDS` (values filled in, parsing as numbers, as dates, distinct values and numbers,
    whole numbers; share filled in on open, won and lost leads)."""
    inner = [f"{_extra_value_sql(key)} AS v{i}" for i, key in enumerate(keys)]
    aggs = [agg for i in range(len(keys)) for agg in _profile_sql(i)]
    row = cur.execute(
        f"""
        SELECT count(*), count(*) FILTER (WHERE status = 'open'), count(*) FILTER (WHERE status = 'won'),
               count(*) FILTER (WHERE status = 'lost'), {', '.join(aggs)}
        FROM (SELECT l.status, {', '.join(inner)} FROM leads l WHERE true {_sample_sql(sample_every)})
        """
    ).fetchall()[0]
    totals = dict(zip(("total", "open", "won", "lost"), row[:4]))
    n = len(PROFILE_FIELDS)
    return totals, [dict(zip(PROFILE_FIELDS, row[4 + n * i: 4 + n * (i + 1)])) for i in range(len(keys))]


# -- readers -------------------------------------------------------------------------------------


def _features(cur, spec: FeatureColumns, where: str, columns: tuple[str, ...] = (), params=None) -> pd.DataFrame:
    extra = [f"l.{c}" for c in columns]
    sql = f"SELECT l.lead_id, {', '.join(extra + column_sql(spec))} {FROM_SQL} WHERE {where} ORDER BY l.lead_id"
    return cur.execute(sql, params).df() if params else cur.execute(sql).df()


def closed_lead_features(cur, spec: FeatureColumns) -> pd.DataFrame:
    """lead_id, status (the label) and the features of every won or lost lead, in lead_id order."""
    return _features(cur, spec, "l.status IN ('won', 'lost')", ("status",))


def won_deal_features(cur, spec: FeatureColumns) -> pd.DataFrame:
    """lead_id, deal_value and the features of every won lead with a deal value, in lead_id order."""
    return _features(cur, spec, "l.status = 'won' AND l.deal_value IS NOT NULL", ("deal_value",))


def open_lead_features(cur, spec: FeatureColumns) -> pd.DataFrame:
    """lead_id and the features of every open lead, in lead_id order."""
    return _features(cur, spec, "l.status = 'open'")


def lead_features(cur, spec: FeatureColumns, lead_id: str) -> pd.DataFrame:
    """lead_id and the features of one lead (no row when there is no such lead)."""
    return _features(cur, spec, "l.lead_id = ?", params=[str(lead_id)])


def open_lead_rows(cur, spec: FeatureColumns) -> pd.DataFrame:
    """rid (the row id :func:`terrmap.data.models.write_scores` takes) and the features of every open lead."""
    return cur.execute(f"SELECT l.rowid AS rid, {', '.join(column_sql(spec))} {FROM_SQL} WHERE l.status = 'open'").df()
