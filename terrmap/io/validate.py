"""Validating staged lead rows: every problem of a file, named by its row (or line) and column.

One aggregate query counts every kind of problem (``count_if`` per check, joined to the ``zips``
reference table), a distinct count tells whether ids repeat, the distinct statuses are mapped in
Python (:data:`STATUS_VALUES`); only the kinds that occur are then listed, up to
:data:`~terrmap.io.problems.MAX_ROWS_PER_PROBLEM` rows each plus the total. Row numbers are what a
person finds in the file (:class:`RowNumbers`): for CSV the physical line where the record starts,
counting the header as line 1; for Parquet the 1-based data row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from terrmap.data.lead_import import zip_check_view
from terrmap.data.sqltext import quote_ident, sql_literal
from terrmap.io.locate import inside_us_sql
from terrmap.io.problems import MAX_ROWS_PER_PROBLEM, Problem
from terrmap.io.progress import Progress
from terrmap.io.read import Source, source_sql
from terrmap.io.sniff import norm_header, open_bytes

# ---------------------------------------------------------------------------
# Status vocabulary (keys compared lower-case with everything but letters and digits removed)

STATUS_VALUES: dict[str, tuple[str, ...]] = {
    "won": ("won", "closed won", "closed - won", "converted", "closed - converted", "customer", "win",
            "closed win"),
    "lost": ("lost", "closed lost", "closed - lost", "closed - not converted", "not converted", "unqualified",
             "disqualified", "not qualified", "dead", "junk", "rejected", "bad timing", "closed unqualified"),
    "open": ("open", "new", "working", "contacted", "nurturing", "nurture", "qualified", "open - not contacted",
             "working - contacted", "not contacted", "attempted to contact", "attempting contact", "connected",
             "in progress", "open deal", "prospect", "prospecting", "qualification", "needs analysis",
             "value proposition", "id. decision makers", "perception analysis", "proposal/price quote",
             "proposal", "negotiation", "negotiation/review", "appointment scheduled", "qualified to buy",
             "presentation scheduled", "decision maker bought-in", "contract sent", "lead", "subscriber",
             "marketing qualified lead", "sales qualified lead", "mql", "sql", "opportunity", "engaged",
             "pending", "active"),
}
_STATUS_LOOKUP = {norm_header(v): status for status, values in STATUS_VALUES.items() for v in values}


def map_status(value: str) -> str | None:
    """open / won / lost for a CRM status value, None if unknown."""
    return _STATUS_LOOKUP.get(norm_header(value))


# ---------------------------------------------------------------------------
# Row numbers


def csv_record_lines(path: Path, chunk_size: int = 64 << 20) -> np.ndarray:
    """Physical line (1-based) on which each CSV record starts; index 0 is the header.

    A newline ends a record when an even number of quote characters precede it
    (RFC 4180 quoting, "" escapes included); blank lines are skipped, as DuckDB does.
    Vectorized over the bytes of the file, chunk by chunk; used on the failure path only.
    """
    newline_pos: list[np.ndarray] = []
    outside: list[np.ndarray] = []
    before: list[np.ndarray] = []  # the byte before each newline ('\r' for CRLF)
    quotes = 0
    offset = 0
    last_byte = 10
    with open_bytes(path) as fh:
        while True:
            chunk = fh.read(chunk_size)
            if not chunk:
                break
            data = np.frombuffer(chunk, dtype=np.uint8)
            nl = np.flatnonzero(data == 10)
            q = np.flatnonzero(data == 34)
            outside.append(((quotes + np.searchsorted(q, nl)) % 2) == 0)
            prev = np.empty(len(nl), dtype=np.uint8)
            if len(nl):
                prev[:] = data[np.maximum(nl - 1, 0)]
                if nl[0] == 0:
                    prev[0] = last_byte
            before.append(prev)
            newline_pos.append(nl + offset)
            quotes += len(q)
            offset += len(data)
            last_byte = int(data[-1])
    size = offset
    nl = np.concatenate(newline_pos) if newline_pos else np.empty(0, dtype=np.int64)
    out = np.concatenate(outside) if outside else np.empty(0, dtype=bool)
    prev = np.concatenate(before) if before else np.empty(0, dtype=np.uint8)
    # Line i + 2 follows newline i; it is blank when the next newline comes right after (or after a lone '\r').
    gap = np.diff(np.append(nl, size if (size and last_byte != 10) else size + 1))
    next_prev = np.append(prev[1:], 0)
    blank = (gap == 1) | ((gap == 2) & (next_prev == 13))
    exists = nl + 1 < size
    starts = np.flatnonzero(out & ~blank & exists) + 2
    return np.concatenate([[1], starts]).astype(np.int64)


class RowNumbers:
    """Maps staged row ids (file order, 0-based) to the numbers shown to people."""

    def __init__(self, src: Source):
        self.src = src
        self._lines: np.ndarray | None = None

    def __call__(self, rids: Iterable[int]) -> list[int]:
        rids = [int(r) for r in rids]
        if self.src.fmt != "csv":
            return [r + 1 for r in rids]
        if self._lines is None:
            self._lines = csv_record_lines(self.src.path)
        lines = self._lines
        return [int(lines[r + 1]) if r + 1 < len(lines) else r + 2 for r in rids]


# ---------------------------------------------------------------------------
# Validation


@dataclass
class _Check:
    key: str
    field: str  # canonical field whose source column is concerned
    condition: str  # SQL on the typed table
    message: str  # "{where}, column {col!r}: " is prepended; may use {value}
    summary: str  # "... N rows in total {summary}"


def _checks(m: dict[str, str | None]) -> list[_Check]:
    checks = [
        _Check("id_missing", "lead_id", "lead_id IS NULL", "the lead id is empty", "have no lead id"),
        _Check("status_missing", "status", "status_key IS NULL", "the status is empty", "have no status"),
    ]
    for name, label in (("employees", "employees"), ("annual_revenue", "annual revenue"),
                        ("deal_value", "deal value"), ("crm_score", "score"), ("lat", "latitude"),
                        ("lon", "longitude")):
        if m.get(name) is None:
            continue
        checks.append(_Check(f"{name}_nan", name, f"{name}_p AND ({name} IS NULL OR NOT isfinite({name}))",
                             f"{{value}} is not a number ({label})", f"have a {label} that is not a number"))
    if m.get("employees"):
        checks.append(_Check("employees_range", "employees",
                             "isfinite(employees) AND (employees < 0 OR employees <> round(employees) "
                             "OR employees > 2000000000)",
                             "{value} is not a whole number of employees >= 0", "have an invalid employee count"))
    for name, label in (("annual_revenue", "annual revenue"), ("deal_value", "deal value")):
        if m.get(name):
            checks.append(_Check(f"{name}_negative", name, f"isfinite({name}) AND {name} < 0",
                                 f"{{value}} is negative ({label} must be >= 0)", f"have a negative {label}"))
    if m.get("crm_score"):
        checks.append(_Check("score_range", "crm_score", "isfinite(crm_score) AND (crm_score < 0 OR crm_score > 100)",
                             "score {value} is outside 0-1 and 0-100", "have a score outside 0-100"))
    for name, label in (("created_at", "created date"), ("closed_at", "close date")):
        if m.get(name):
            checks.append(_Check(f"{name}_bad", name, f"{name}_p AND {name} IS NULL",
                                 f"{{value}} is not a date ({label}; use e.g. 2024-03-01 or 3/1/2024)",
                                 f"have a {label} that is not a date"))
    if m.get("lat"):
        checks += [
            _Check("lat_range", "lat", "isfinite(lat) AND (lat < -90 OR lat > 90)",
                   "latitude {value} is out of range (-90..90)", "have a latitude out of range"),
            _Check("lon_range", "lon", "isfinite(lon) AND (lon < -180 OR lon > 180)",
                   "longitude {value} is out of range (-180..180)", "have a longitude out of range"),
            _Check("lat_without_lon", "lon", "lat_p AND NOT lon_p", "latitude given without a longitude",
                   "have a latitude but no longitude"),
            _Check("lon_without_lat", "lat", "lon_p AND NOT lat_p", "longitude given without a latitude",
                   "have a longitude but no latitude"),
            _Check("outside_us", "lat",
                   f"lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180 AND NOT {inside_us_sql('lat', 'lon')}",
                   "the point {value} is outside the United States (swapped latitude/longitude, or a missing "
                   "minus sign?)", "lie outside the United States"),
        ]
    if m.get("postal_zip"):
        checks += [
            _Check("zip_format", "postal_zip", "zip_p AND postal_zip IS NULL", "{value} is not a ZIP code",
                   "have a value that is not a ZIP code"),
            _Check("zip_unknown", "postal_zip", "postal_zip IS NOT NULL AND NOT zip_known",
                   "{value} is not a known US ZIP code", "have an unknown ZIP code"),
            _Check("zip_unlocated", "postal_zip",
                   "zip_known AND (zip_lat IS NULL OR zip_region IS NULL) AND NOT (lat_p AND lon_p)",
                   "ZIP {value} has no known location (e.g. a military ZIP): give latitude and longitude",
                   "have a ZIP without a known location and no coordinates"),
        ]
    checks.append(_Check("no_location", "postal_zip" if m.get("postal_zip") else "lat",
                         "NOT zip_p AND NOT lat_p AND NOT lon_p",
                         "no location: give a ZIP code or latitude and longitude", "have no location"))
    return checks


class RawValues:
    """The file's values as text, for messages (failure path: re-reads the file once)."""

    def __init__(self, cur, src: Source, table: str):
        self.cur, self.src, self.table = cur, src, table
        self.created = False

    def get(self, column: str, rids: list[int]) -> dict[int, str | None]:
        if not rids:
            return {}
        if not self.created:
            self.cur.execute(f"CREATE TEMP TABLE {self.table} AS SELECT * FROM {source_sql(self.src)}")
            self.created = True
        found = self.cur.execute(
            f"SELECT rowid, CAST({quote_ident(column)} AS VARCHAR) FROM {self.table} "
            f"WHERE rowid IN ({', '.join(str(int(r)) for r in rids)})"
        ).fetchall()
        return dict(found)


def show_value(value) -> str:
    if value is None:
        return "(empty)"
    text = str(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return repr(text)


def validate(cur, typed: str, src: Source, m: dict[str, str | None], rows: RowNumbers, raw: RawValues,
              progress: Progress | None) -> tuple[list[Problem], float, list[tuple[str, str]]]:
    """Problems of the staged rows; also the score scale and the (status as given, status) pairs."""
    view = zip_check_view(typed, bool(m.get("postal_zip")))
    checks = _checks(m)
    aggs = ", ".join(f"count_if({c.condition}) AS {c.key}" for c in checks)
    score_max = "max(crm_score) FILTER (WHERE isfinite(crm_score))" if m.get("crm_score") else "NULL"
    counts_row = cur.execute(f"SELECT {aggs}, {score_max} FROM {view} v").fetchall()[0]
    counts = dict(zip([c.key for c in checks], counts_row[:-1]))
    smax = counts_row[-1]
    scale = 1.0 if smax is None or smax <= 1 else 0.01
    if progress:
        progress(0.45, "checking ids and statuses")

    problems: list[Problem] = []

    def add_rows(found: list[tuple], total: int, column: str | None, fmt: Callable[[tuple], str], summary: str):
        numbers = rows([r[0] for r in found])
        for num, rec in zip(numbers, found):
            colpart = f", column {column!r}" if column else ""
            problems.append(Problem(num, column, f"{src.where(num)}{colpart}: {fmt(rec)}"))
        if total > len(found):
            problems.append(Problem(None, column, f"... {total:,} rows in total {summary} "
                                                  f"(the first {len(found)} are listed)"))

    for check in checks:
        total = counts[check.key]
        if not total:
            continue
        column = m.get(check.field)
        if check.key == "outside_us":
            found = cur.execute(
                f"SELECT rid, '(' || CAST(lat AS VARCHAR) || ', ' || CAST(lon AS VARCHAR) || ')' FROM {view} v "
                f"WHERE {check.condition} ORDER BY rid LIMIT {MAX_ROWS_PER_PROBLEM}"
            ).fetchall()
        else:
            rids = [r[0] for r in cur.execute(
                f"SELECT rid FROM {view} v WHERE {check.condition} ORDER BY rid LIMIT {MAX_ROWS_PER_PROBLEM}"
            ).fetchall()]
            values = raw.get(column, rids) if column else {}
            found = [(r, show_value(values.get(r))) for r in rids]
        add_rows(found, int(total), column, lambda rec, c=check: c.message.format(value=rec[1]), check.summary)

    # Duplicate ids: every occurrence after the first is a problem.
    # (The number of repeats: a distinct count costs less than grouping by id to find them.)
    dup_total = cur.execute(f"SELECT count(lead_id) - count(DISTINCT lead_id) FROM {typed}").fetchall()[0][0]
    if dup_total:
        found = cur.execute(
            f"""
            WITH d AS (
                SELECT rid, lead_id, min(rid) OVER (PARTITION BY lead_id) AS first_rid
                FROM {typed} WHERE lead_id IN (
                    SELECT lead_id FROM {typed} WHERE lead_id IS NOT NULL GROUP BY lead_id HAVING count(*) > 1)
            )
            SELECT rid, lead_id, first_rid FROM d WHERE rid <> first_rid ORDER BY rid LIMIT {MAX_ROWS_PER_PROBLEM}
            """
        ).fetchall()
        firsts = rows([r[2] for r in found])
        found = [(r[0], r[1], f) for r, f in zip(found, firsts)]
        add_rows(found, int(dup_total), m.get("lead_id"),
                 lambda rec: f"duplicate lead id {show_value(rec[1])} (first on {src.where(rec[2])})",
                 "repeat the lead id of an earlier row")

    # Status values: map the distinct values in Python.
    distinct = cur.execute(
        f"SELECT status_key FROM {typed} WHERE status_key IS NOT NULL GROUP BY status_key"
    ).fetchall()
    pairs: list[tuple[str, str]] = []
    unknown: list[str] = []
    for (key,) in distinct:
        mapped = map_status(key)
        if mapped is None:
            unknown.append(key)
        else:
            pairs.append((key, mapped))
    if unknown:
        listed = "(" + ", ".join(sql_literal(u) for u in unknown[:1000]) + ")"
        cond = f"status_key IN {listed}" if len(unknown) <= 1000 else \
            f"status_key NOT IN ({', '.join(sql_literal(k) for k, _ in pairs) or 'NULL'})"
        total = cur.execute(f"SELECT count(*) FROM {typed} WHERE status_key IS NOT NULL AND {cond}").fetchall()[0][0]
        found = cur.execute(
            f"SELECT rid, status_key FROM {typed} WHERE status_key IS NOT NULL AND {cond} "
            f"ORDER BY rid LIMIT {MAX_ROWS_PER_PROBLEM}"
        ).fetchall()
        shown = ", ".join(repr(u) for u in sorted(unknown)[:10]) + (", ..." if len(unknown) > 10 else "")
        add_rows(found, int(total), m.get("status"),
                 lambda rec: f"status {show_value(rec[1])} is not open, won or lost, nor a known CRM status for them",
                 f"have an unknown status ({len(unknown):,} distinct: {shown})")
    return problems, scale, pairs
