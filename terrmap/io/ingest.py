"""Importing leads from CSV and Parquet files (CRM exports): all or nothing.

The pipeline (no Python loop over rows anywhere):

1. **Map.** The header's columns are matched to :data:`CANONICAL_FIELDS` by name
   (:func:`suggest_mapping` knows the usual Salesforce and HubSpot export
   headers); an explicit ``mapping`` overrides the suggestion. Columns that are
   not mapped are kept, per lead, as a JSON object in ``leads.extra``.
2. **Read.** DuckDB reads the file and converts every value (``TRY_CAST``) in
   one parallel pass into an Arrow table registered on the cursor (the staging
   area; it keeps the file's row order, so no join is needed later). A CSV file
   is read with every column as ``VARCHAR``; its header and delimiter (``,``
   ``;`` tab or ``|``) are detected here, in Python, from the first line. A
   Parquet file is read with its own types. Malformed CSV lines and bytes that
   are not UTF-8 are reported with their line (and byte offset).
3. **Validate.** One aggregate query counts every kind of problem
   (``count_if`` per check, joined to the ``zips`` reference table), a distinct
   count tells whether ids repeat, the distinct statuses are mapped in Python;
   only the kinds that occur are then listed, up to :data:`MAX_ROWS_PER_PROBLEM`
   rows each plus the total. Any problem raises :class:`ImportRejected` before
   anything is written.
4. **Locate**, in a thread while step 3's queries run. Every lead gets coordinates
   (given, else its ZIP's centroid), its H3 cell at :data:`~terrmap.data.store.BASE_H3_RES`
   (h3ronpy, vectorized, in chunks on every core; rows at a ZIP's centroid take that
   ZIP's cell) and its region ZIP (``zips.region_zip`` of its postal ZIP; from the
   coordinates with :func:`~terrmap.geo.zipdata.nearest_region_zip` when no usable
   ZIP is given): numpy arrays read straight from the Arrow table, appended to it as
   further columns (the region ZIP and the status dictionary-encoded).
5. **Write.** In one transaction: delete the leads whose ids are in the file,
   insert the file's leads, recompute fallback scores. Re-importing the same
   ids therefore replaces those leads (every column, including model scores,
   which fall back until the model is re-run); other leads are untouched.

Row numbers in messages: for CSV, ``line N`` is the physical line of the file
where the record starts, counting the header as line 1 (what a text editor
shows; the same as a spreadsheet's row number unless values span several
lines). For Parquet, ``row N`` counts data rows from 1.

Conventions of the values:

* status: mapped case- and punctuation-insensitively through :data:`STATUS_VALUES`
  (e.g. "Closed Won", "Converted" -> won; "Closed Lost", "Unqualified" -> lost;
  "New", "Working - Contacted", "Qualified", HubSpot deal stages -> open);
  anything else is rejected.
* numbers: plain (``1200``, ``1.2e3``) or with thousands separators and a
  leading ``$`` (``$1,200,000.50``). Employees must be whole and >= 0; revenue
  and deal value >= 0.
* CRM score: when every score of the file lies in [0, 1] it is taken as is;
  otherwise the file's scores are read as 0-100 points and divided by 100, and a
  score outside 0-100 is rejected.
* dates: ISO 8601 (``2024-03-01``, ``2024-03-01 14:05``, ``2024-03-01T14:05:00Z``;
  a UTC offset is dropped, keeping the local clock time), or US style
  ``3/1/2024``, ``3/1/2024 2:05 PM``, or ``01.03.2024`` (day first).
* ZIP: 5 digits; a 3- or 4-digit ZIP that lost its leading zeros (``2139``),
  ZIP+4 (``02139-4307``, ``021394307``) and ``2139.0`` (a ZIP that went through
  a spreadsheet as a number) are normalised to 5 digits. It must exist in the
  reference table.
* coordinates: latitude -90..90, longitude -180..180, and inside a generous box
  around the US states and territories (:data:`US_BOXES`).
* text (company name, industry, unmapped columns) is stored exactly as in the
  file: escaping is the display's job. Ids, statuses and ZIPs are trimmed.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from terrmap.data.stats import refresh_rollup
from terrmap.data.store import BASE_H3_RES, Store
from terrmap.geo.h3layer import index_points
from terrmap.geo.zipdata import nearest_region_zip
from terrmap.scoring import (
    apply_fallback_scores,
    fallback_expected_value_sql,
    fallback_score_sql,
    fallback_value_ctes,
)

__all__ = [
    "CANONICAL_FIELDS",
    "CanonicalField",
    "ImportRejected",
    "MAX_ROWS_PER_PROBLEM",
    "Problem",
    "STATUS_VALUES",
    "US_BOXES",
    "import_file",
    "preview",
    "suggest_mapping",
]

MAX_ROWS_PER_PROBLEM = 20

Progress = Callable[[float, str], None]


# ---------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class Problem:
    """One reason to reject a file.

    ``row``: for CSV the line of the file where the record starts (header = line 1),
    for Parquet the 1-based data row; None for problems of the whole file or a column.
    ``column``: the column of the *file* concerned, if any. ``message`` is complete
    on its own (it names the line/row and the column too).
    """

    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        return self.message


class ImportRejected(Exception):
    """The file was not imported; the database is unchanged. ``problems`` says why."""

    def __init__(self, problems: list[Problem], file: str | None = None, convention: str | None = None):
        self.problems = list(problems)
        self.file = file
        self.convention = convention
        super().__init__(str(self))

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''}"
        if self.file:
            head += f" in {self.file}"
        if self.convention:
            head += f" ({self.convention})"
        return head + ":\n" + "\n".join(f"  - {p.message}" for p in self.problems)


# ---------------------------------------------------------------------------
# Canonical fields and column-name matching


@dataclass(frozen=True)
class CanonicalField:
    name: str
    label: str
    required: bool
    description: str
    kind: str  # id, text, int, num, score, date, status, zip, lat, lon
    synonyms: tuple[str, ...] = field(default=(), repr=False)


CANONICAL_FIELDS: list[CanonicalField] = [
    CanonicalField("lead_id", "Lead ID", True, "The CRM's unique id; re-importing the same id updates the lead.", "id",
                   ("Lead ID", "Id", "Record ID", "Record ID - Contact", "Record ID - Company", "Record ID - Deal",
                    "Contact ID", "Company ID", "Deal ID", "Opportunity ID", "Account ID", "CRM ID", "External ID")),
    CanonicalField("name", "Company name", False, "The company (account) name, stored exactly as given.", "text",
                   ("Company", "Company Name", "Account Name", "Account", "Organization", "Organisation",
                    "Organization Name", "Business Name", "Name", "Lead Name", "Deal Name", "Opportunity Name")),
    CanonicalField("industry", "Industry", False, "Industry or vertical (used for expected deal values).", "text",
                   ("Industry", "Vertical", "Sector", "Industry Type")),
    CanonicalField("employees", "Employees", False, "Number of employees (a whole number >= 0).", "int",
                   ("NumberOfEmployees", "Number of Employees", "Employees", "Employee Count", "No. of Employees",
                    "Num Employees", "Headcount")),
    CanonicalField("annual_revenue", "Annual revenue", False, "Annual revenue in dollars (>= 0).", "num",
                   ("AnnualRevenue", "Annual Revenue", "Revenue", "Annual Revenue (USD)", "Yearly Revenue")),
    CanonicalField("status", "Status", True,
                   "Lead or deal status, mapped to open / won / lost (see STATUS_VALUES).", "status",
                   ("Status", "Lead Status", "Stage", "Deal Stage", "StageName", "Stage Name", "Opportunity Stage",
                    "HS Lead Status", "Lifecycle Stage")),
    CanonicalField("deal_value", "Deal value", False, "Deal amount in dollars (>= 0), for won deals.", "num",
                   ("Amount", "Deal Value", "Deal Amount", "Opportunity Amount", "Closed Amount", "Won Amount",
                    "Value", "Deal Size")),
    CanonicalField("created_at", "Created", False, "When the lead was created (a date or date-time).", "date",
                   ("CreatedDate", "Create Date", "Created Date", "Created At", "Created", "Date Created",
                    "Created On", "Creation Date")),
    CanonicalField("closed_at", "Closed", False, "When the deal was won or lost (a date or date-time).", "date",
                   ("CloseDate", "Close Date", "Closed Date", "Closed At", "Closed", "Date Closed", "Closed On",
                    "ConvertedDate", "Converted Date")),
    CanonicalField("postal_zip", "ZIP code", False,
                   "US ZIP code (5 digits; ZIP+4 accepted). Needed unless latitude and longitude are given.", "zip",
                   ("Postal Zip", "PostalCode", "Postal Code", "Zip", "ZIP Code", "Zipcode", "Zip/Postal Code",
                    "Billing Zip/Postal Code", "BillingPostalCode", "Billing Postal Code",
                    "Mailing Zip/Postal Code", "MailingPostalCode", "Mailing Postal Code",
                    "Shipping Zip/Postal Code", "ShippingPostalCode", "Postcode", "Postal", "Billing Zip",
                    "Mailing Zip", "Company Zip", "Zip5")),
    CanonicalField("lat", "Latitude", False,
                   "Latitude in degrees (-90..90). With longitude, takes precedence over the ZIP centroid.", "lat",
                   ("Latitude", "Lat", "BillingLatitude", "Billing Latitude", "MailingLatitude", "Mailing Latitude",
                    "Geo Latitude")),
    CanonicalField("lon", "Longitude", False, "Longitude in degrees (-180..180).", "lon",
                   ("Longitude", "Lng", "Lon", "Long", "BillingLongitude", "Billing Longitude", "MailingLongitude",
                    "Mailing Longitude", "Geo Longitude")),
    CanonicalField("crm_score", "CRM score", False,
                   "The CRM's lead score: 0-1, or 0-100 points (divided by 100).", "score",
                   ("Lead Score", "HubSpot Score", "Score", "CRM Score", "Einstein Score", "Predictive Lead Score",
                    "HS Lead Score")),
]
FIELDS_BY_NAME = {f.name: f for f in CANONICAL_FIELDS}
REQUIRED_FIELDS = tuple(f.name for f in CANONICAL_FIELDS if f.required)


def norm_header(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def suggest_mapping(columns: list[str]) -> dict[str, str | None]:
    """The likely source column of every canonical field (None: no match).

    Matching ignores case, spaces and punctuation ("Billing Zip/Postal Code" =
    "billingzippostalcode"); for each field the first synonym present wins, and a
    column is used for one field at most.
    """
    by_norm: dict[str, str] = {}
    for col in columns:
        by_norm.setdefault(norm_header(col), col)
    used: set[str] = set()
    out: dict[str, str | None] = {}
    for f in CANONICAL_FIELDS:
        out[f.name] = None
        for syn in f.synonyms + (f.label, f.name):
            col = by_norm.get(norm_header(syn))
            if col is not None and col not in used:
                out[f.name] = col
                used.add(col)
                break
    return out


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


# Generous boxes (lat_min, lat_max, lon_min, lon_max) around US states and territories.
US_BOXES: dict[str, tuple[float, float, float, float]] = {
    "contiguous US": (23.5, 50.0, -125.5, -66.0),
    "Alaska": (50.5, 72.0, -180.0, -129.0),
    "Alaska (Aleutians west of 180°)": (50.5, 54.0, 172.0, 180.0),
    "Hawaii": (18.0, 23.0, -161.0, -154.0),
    "Puerto Rico and US Virgin Islands": (17.5, 19.0, -68.0, -64.3),
    "Guam and Northern Mariana Islands": (13.0, 21.0, 144.0, 146.5),
    "American Samoa": (-14.9, -13.9, -171.2, -168.0),
}

_DATE_FORMATS = (
    "%m/%d/%Y", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y, %I:%M %p", "%m/%d/%y", "%m/%d/%y %H:%M", "%m/%d/%y %I:%M %p", "%Y/%m/%d", "%Y/%m/%d %H:%M:%S",
    "%d.%m.%Y", "%d.%m.%Y %H:%M",
)


# ---------------------------------------------------------------------------
# SQL helpers


def _q(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _is_text(dtype: str) -> bool:
    return dtype.upper() == "VARCHAR"


# ---------------------------------------------------------------------------
# Reading files


@dataclass
class _Source:
    path: Path
    fmt: str  # 'csv' or 'parquet'
    columns: list[str]
    types: dict[str, str]
    delimiter: str = ","
    compressed: bool = False

    def where(self, row: int) -> str:
        return f"line {row}" if self.fmt == "csv" else f"row {row}"

    @property
    def convention(self) -> str:
        if self.fmt == "csv":
            return "line numbers are lines of the file, counting the header as line 1"
        return "row numbers count the Parquet file's data rows from 1"


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")


def _detect_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq", ".parq"):
        return "parquet"
    if suffixes and suffixes[-1] in (".xlsx", ".xls", ".xlsm", ".numbers"):
        raise ImportRejected(
            [Problem(None, None, f"{path.name} is a spreadsheet file: save it as CSV (UTF-8) or Parquet first")],
            file=str(path),
        )
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == b"PAR1":
        return "parquet"
    return "csv"


def not_utf8_problem(path: Path, offset: int, line: int, bad: bytes) -> Problem:
    shown = " ".join(f"0x{b:02X}" for b in bad[:4]) or "?"
    return Problem(
        line, None,
        f"the file is not UTF-8: invalid byte sequence {shown} at byte offset {offset:,} (line {line}); "
        "export or save it as UTF-8 (in Excel: 'CSV UTF-8')",
    )


def _find_invalid_utf8(path: Path, start: int = 0) -> tuple[int, int, bytes] | None:
    """(byte offset, line, bad bytes) of the first invalid UTF-8 sequence at or after ``start``; None if valid."""
    chunk_size = 16 << 20
    newlines = 0
    base = 0
    carry = b""
    with _open_bytes(path) as fh:
        if start:
            # Count the newlines before start, then decode from start.
            remaining = start
            while remaining > 0:
                block = fh.read(min(chunk_size, remaining))
                if not block:
                    break
                newlines += block.count(b"\n")
                remaining -= len(block)
            base = start
        while True:
            block = fh.read(chunk_size)
            data = carry + block
            if not data:
                return None
            try:
                data.decode("utf-8")
                carry = b""
            except UnicodeDecodeError as exc:
                if exc.reason == "unexpected end of data" and block and exc.start >= len(data) - 3:
                    carry = data[exc.start:]
                    data = data[: exc.start]
                else:
                    offset = base + exc.start
                    return offset, newlines + data[: exc.start].count(b"\n") + 1, data[exc.start: exc.end]
            newlines += data.count(b"\n")
            base += len(data)
            if not block:
                return None


def _sniff_csv(path: Path) -> _Source:
    """Header and delimiter of a CSV file, from its first bytes."""
    with _open_bytes(path) as fh:
        head = fh.read(1 << 20)
        more = bool(fh.read(1))
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ImportRejected([Problem(1, None, "the file is not UTF-8 (it is UTF-16); export or save it as UTF-8")],
                             file=str(path))
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8):]
    if not head.strip():
        raise ImportRejected([Problem(None, None, "the file is empty")], file=str(path))
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(head, final=not more)
    except UnicodeDecodeError:
        found = _find_invalid_utf8(path)
        if found is not None:
            raise ImportRejected([not_utf8_problem(path, *found)], file=str(path)) from None
        raise
    first_line = re.sub(r'"[^"]*"', "", text.split("\n", 1)[0])  # count delimiters outside quotes
    counts = {d: first_line.count(d) for d in (",", ";", "\t", "|")}
    delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
    try:
        header = next(csv.reader(io.StringIO(text), delimiter=delimiter, quotechar='"', doublequote=True))
    except (StopIteration, csv.Error) as exc:
        raise ImportRejected([Problem(1, None, f"line 1: cannot read the header: {exc}")], file=str(path)) from None
    columns: list[str] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        name = name.strip() or f"column{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        seen.setdefault(name, 1)
        columns.append(name)
    return _Source(path, "csv", columns, {c: "VARCHAR" for c in columns}, delimiter,
                   compressed=path.suffix.lower() == ".gz")


def _csv_sql(src: _Source, extra: str = "") -> str:
    cols = ", ".join(f"{_lit(c)}: 'VARCHAR'" for c in src.columns)
    return (
        f"read_csv({_lit(str(src.path))}, header=true, auto_detect=false, delim={_lit(src.delimiter)}, "
        f"quote='\"', escape='\"', strict_mode=true, null_padding=false, columns={{{cols}}}{extra})"
    )


def _open_source(cur, path: Path) -> _Source:
    if not path.exists():
        raise ImportRejected([Problem(None, None, f"no such file: {path}")], file=str(path))
    if path.stat().st_size == 0:
        raise ImportRejected([Problem(None, None, "the file is empty")], file=str(path))
    fmt = _detect_format(path)
    if fmt == "csv":
        return _sniff_csv(path)
    try:
        desc = cur.execute(f"DESCRIBE SELECT * FROM read_parquet({_lit(str(path))})").fetchall()
    except Exception as exc:  # duckdb raises several types for corrupt files
        raise ImportRejected([Problem(None, None, f"not a readable Parquet file: {_first_line(exc)}")],
                             file=str(path)) from None
    columns = [r[0] for r in desc]
    return _Source(path, "parquet", columns, {r[0]: r[1] for r in desc})


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.split("\n", 1)[0][:300]


def _line_of_offset(path: Path, offset: int) -> int:
    newlines = 0
    with _open_bytes(path) as fh:
        remaining = offset
        while remaining > 0:
            block = fh.read(min(16 << 20, remaining))
            if not block:
                break
            newlines += block.count(b"\n")
            remaining -= len(block)
    return newlines + 1


def _csv_structure_problems(cur, src: _Source, error: BaseException) -> list[Problem]:
    """Re-read a CSV that DuckDB refused, collecting every malformed line (failure path only)."""
    scan, errors = f"_terrmap_rejects_scan_{uuid.uuid4().hex[:8]}", f"_terrmap_rejects_err_{uuid.uuid4().hex[:8]}"
    touch_all = " + ".join(f"length(coalesce({_q(c)}, ''))" for c in src.columns)  # parse every column
    options = f", store_rejects=true, rejects_scan={_lit(scan)}, rejects_table={_lit(errors)}"
    try:
        cur.execute(f"SELECT sum({touch_all}) FROM {_csv_sql(src, options)}").fetchall()
        rows = cur.execute(
            f"SELECT line, line_byte_position, byte_position, column_name, error_type, error_message "
            f"FROM {errors} ORDER BY line_byte_position, byte_position"
        ).fetchall()
    except Exception as exc:
        return [Problem(None, None, f"the file cannot be read as CSV: {_first_line(exc)}")]
    finally:
        for table in (scan, errors):
            try:
                cur.execute(f"DROP TABLE IF EXISTS {table}")
            except Exception:
                pass
    problems: list[Problem] = []
    encoding = [r for r in rows if "ENCODING" in str(r[4]).upper()]
    if encoding:
        found = _find_invalid_utf8(src.path, start=int(encoding[0][1] or 0)) or _find_invalid_utf8(src.path)
        if found is not None:
            problems.append(not_utf8_problem(src.path, *found))
        else:
            problems.append(Problem(encoding[0][0], None, f"line {encoding[0][0]}: the file is not UTF-8"))
        if len(encoding) > 1:
            problems.append(Problem(None, None, f"{len(encoding):,} lines in total contain bytes that are not UTF-8"))
    structural = [r for r in rows if "ENCODING" not in str(r[4]).upper()]
    for line_no, line_pos, _byte_pos, column, etype, message in structural[:MAX_ROWS_PER_PROBLEM]:
        line = _line_of_offset(src.path, int(line_pos)) if line_pos is not None and not src.compressed else line_no
        col = f", column {column!r}" if column and str(column) != "nan" and etype == "MISSING COLUMNS" else ""
        problems.append(Problem(int(line), column if col else None,
                                f"line {line}{col}: {str(message).rstrip('.')} ({str(etype).lower()}); "
                                f"the header has {len(src.columns)} columns"))
    if len(structural) > MAX_ROWS_PER_PROBLEM:
        problems.append(Problem(None, None, f"... {len(structural):,} malformed lines in total "
                                            f"(the first {MAX_ROWS_PER_PROBLEM} are listed)"))
    if not problems and "unicode" in str(error).lower():
        found = _find_invalid_utf8(src.path)
        if found is not None:
            problems.append(not_utf8_problem(src.path, *found))
    if not problems:
        problems.append(Problem(None, None, f"the file cannot be read as CSV: {_first_line(error)}"))
    return problems


def _run(cur, work: Callable[[], object], progress: Progress | None, lo: float, hi: float, message: str):
    """Run ``work()`` (one DuckDB query on ``cur``); meanwhile report DuckDB's progress mapped onto [lo, hi].

    The query runs in a worker thread so that ``progress`` is always called from the calling thread
    (Streamlit only allows that).
    """
    if progress is None:
        return work()
    settings = {}
    # Restored in this order: setting progress_bar_time switches the bar on as a side effect.
    for name in ("progress_bar_time", "enable_progress_bar_print", "enable_progress_bar"):
        try:
            settings[name] = cur.execute(f"SELECT current_setting('{name}')").fetchall()[0][0]
        except Exception:
            pass
    # Never print DuckDB's own bar (print off before the bar is switched on).
    cur.execute("SET enable_progress_bar_print = false")
    cur.execute("SET progress_bar_time = 0")
    cur.execute("SET enable_progress_bar = true")
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = work()
        except BaseException as exc:  # re-raised in the calling thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="terrmap-import", daemon=True)
    worker.start()
    try:
        last = -1.0
        while worker.is_alive():
            worker.join(0.25)
            try:
                pct = cur.query_progress()
            except Exception:
                pct = -1
            if pct is not None and pct >= 0 and pct / 100 > last + 0.01:
                last = pct / 100
                progress(lo + (hi - lo) * min(last, 1.0), message)
    except BaseException:
        cur.interrupt()
        worker.join()
        raise
    finally:
        for name, value in settings.items():
            try:
                cur.execute(f"SET {name} = {_lit(value) if isinstance(value, str) else value}")
            except Exception:
                pass
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


# ---------------------------------------------------------------------------
# Row numbers


def _csv_record_lines(path: Path, chunk_size: int = 64 << 20) -> np.ndarray:
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
    with _open_bytes(path) as fh:
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


class _RowNumbers:
    """Maps staged row ids (file order, 0-based) to the numbers shown to people."""

    def __init__(self, src: _Source):
        self.src = src
        self._lines: np.ndarray | None = None

    def __call__(self, rids: Iterable[int]) -> list[int]:
        rids = [int(r) for r in rids]
        if self.src.fmt != "csv":
            return [r + 1 for r in rids]
        if self._lines is None:
            self._lines = _csv_record_lines(self.src.path)
        lines = self._lines
        return [int(lines[r + 1]) if r + 1 < len(lines) else r + 2 for r in rids]


# ---------------------------------------------------------------------------
# Mapping


def _resolve_mapping(src: _Source, mapping: dict[str, str | None] | None) -> tuple[dict[str, str | None], list[Problem]]:
    effective = suggest_mapping(src.columns)
    problems: list[Problem] = []
    if mapping:
        for key, col in mapping.items():
            if key not in FIELDS_BY_NAME:
                problems.append(Problem(None, None, f"unknown field {key!r} in the column mapping; the fields are: "
                                                    + ", ".join(FIELDS_BY_NAME)))
                continue
            if col is not None and col not in src.columns:
                problems.append(Problem(None, col, f"column {col!r} (mapped to {FIELDS_BY_NAME[key].label}) is not "
                                                   f"in the file; its columns are: {', '.join(map(repr, src.columns))}"))
                continue
            effective[key] = col
    if problems:
        return effective, problems
    cols = ", ".join(repr(c) for c in src.columns)
    for name in REQUIRED_FIELDS:
        if effective[name] is None:
            f = FIELDS_BY_NAME[name]
            problems.append(Problem(None, None, f"missing required column: {f.label} (a column named e.g. "
                                                + " / ".join(repr(s) for s in f.synonyms[:3])
                                                + f", or map one); the file's columns are: {cols}"))
    has_lat, has_lon, has_zip = (effective[k] is not None for k in ("lat", "lon", "postal_zip"))
    if has_lat != has_lon:
        present, absent = ("lat", "lon") if has_lat else ("lon", "lat")
        problems.append(Problem(None, effective[present],
                                f"column {effective[present]!r} ({FIELDS_BY_NAME[present].label}) has no matching "
                                f"{FIELDS_BY_NAME[absent].label} column"))
    elif not has_lat and not has_zip:
        problems.append(Problem(None, None, "missing location columns: need Latitude and Longitude, or a ZIP code "
                                            f"column (e.g. 'PostalCode', 'Zip'); the file's columns are: {cols}"))
    return effective, problems


# ---------------------------------------------------------------------------
# Typed staging


def _src(col: str) -> str:
    """A column of the raw staging table (aliased r)."""
    return "r." + _q(col)


def _expr_key(col: str, dtype: str) -> str:
    if _is_text(dtype):
        return f"nullif(trim({_src(col)}), '')"
    return f"nullif(trim(CAST({_src(col)} AS VARCHAR)), '')"


def _is_float(dtype: str) -> bool:
    return dtype.upper() in ("DOUBLE", "FLOAT", "REAL")


def _expr_present(col: str, dtype: str) -> str:
    if _is_text(dtype):
        # Not blank. A value that does not start with a space is blank only if empty; CASE (unlike OR)
        # evaluates the ltrim, which copies every string it is given, only for the others.
        c = _src(col)
        return f"(CASE WHEN {c} IS NULL THEN false WHEN NOT starts_with({c}, ' ') THEN {c} <> '' " \
               f"ELSE ltrim({c}) <> '' END)"
    if _is_float(dtype):  # pandas writes missing numbers as NaN
        return f"coalesce(NOT isnan({_src(col)}), false)"
    return f"({_src(col)} IS NOT NULL)"


def _expr_num(col: str, dtype: str) -> str:
    c = _src(col)
    if _is_text(dtype):
        formatted = r"\s*\$?\s*-?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]*)?\s*|\s*\$\s*-?[0-9]+(\.[0-9]*)?\s*"
        return (f"coalesce(TRY_CAST({c} AS DOUBLE), CASE WHEN regexp_full_match({c}, {_lit(formatted)}) "
                f"THEN TRY_CAST(regexp_replace({c}, '[\\s$,]', '', 'g') AS DOUBLE) END)")
    if _is_float(dtype):
        return f"CASE WHEN NOT isnan({c}) THEN CAST({c} AS DOUBLE) END"
    return f"TRY_CAST({c} AS DOUBLE)"


def _expr_date(col: str, dtype: str) -> str:
    c = _src(col)
    if _is_text(dtype):
        fmts = "[" + ", ".join(_lit(f) for f in _DATE_FORMATS) + "]"
        return f"coalesce(TRY_CAST({c} AS TIMESTAMP), try_strptime(trim({c}), {fmts}))"
    return f"TRY_CAST({c} AS TIMESTAMP)"


def _expr_zip(col: str, dtype: str) -> str:
    z = _expr_key(col, dtype)
    return (
        f"(CASE WHEN length({z}) = 5 THEN {z} "
        f"WHEN regexp_full_match({z}, '[0-9]{{3,4}}') THEN lpad({z}, 5, '0') "
        f"WHEN regexp_full_match({z}, '[0-9]{{5}}-?[0-9]{{4}}') THEN left({z}, 5) "
        f"WHEN regexp_full_match({z}, '[0-9]{{3,4}}-[0-9]{{4}}') THEN lpad(split_part({z}, '-', 1), 5, '0') "
        f"WHEN regexp_full_match({z}, '[0-9]{{3,5}}\\.0*') THEN lpad(split_part({z}, '.', 1), 5, '0') END)"
    )


def _us_sql(lat: str, lon: str) -> str:
    # CASE, not OR: DuckDB tests a box only on the rows that no earlier box holds (most rows are in the
    # first), where an OR evaluates every box on every row. A missing coordinate is in no box.
    whens = " ".join(f"WHEN {lat} BETWEEN {a} AND {b} AND {lon} BETWEEN {c} AND {d} THEN true"
                     for a, b, c, d in US_BOXES.values())
    return f"(CASE {whens} ELSE false END)"


def _source_sql(src: _Source) -> str:
    return _csv_sql(src) if src.fmt == "csv" else f"read_parquet({_lit(str(src.path))})"


def _typed_sql(src: _Source, m: dict[str, str | None]) -> str:
    """Read the file and convert every value in one pass (the result is in file order)."""
    t = src.types

    def col(name):
        return m.get(name)

    def text(name):
        c = col(name)
        if c is None:
            return f"NULL::VARCHAR AS {name}"
        return f"{_src(c) if _is_text(t[c]) else f'CAST({_src(c)} AS VARCHAR)'} AS {name}"

    def typed_with_presence(name, builder):
        c = col(name)
        if c is None:
            return [f"false AS {name}_p", f"NULL::{'TIMESTAMP' if builder is _expr_date else 'DOUBLE'} AS {name}"]
        return [f"{_expr_present(c, t[c])} AS {name}_p", f"{builder(c, t[c])} AS {name}"]

    sel = [f"{_expr_key(col('lead_id'), t[col('lead_id')])} AS lead_id", text("name"), text("industry"),
           f"{_expr_key(col('status'), t[col('status')])} AS status_key"]
    for name in ("employees", "annual_revenue", "deal_value", "crm_score", "lat", "lon"):
        sel += typed_with_presence(name, _expr_num)
    for name in ("created_at", "closed_at"):
        sel += typed_with_presence(name, _expr_date)
    zc = col("postal_zip")
    if zc is not None:
        sel += [f"{_expr_present(zc, t[zc])} AS zip_p", f"{_expr_zip(zc, t[zc])} AS postal_zip"]
    else:
        sel += ["false AS zip_p", "NULL::VARCHAR AS postal_zip"]
    mapped = {c for c in m.values() if c is not None}
    unmapped = [c for c in src.columns if c not in mapped]
    if unmapped:
        sel.append("json_object(" + ", ".join(f"{_lit(c)}, {_src(c)}" for c in unmapped) + ") AS extra")
    else:
        sel.append("NULL::JSON AS extra")
    # zip_i: the ZIP as a number (-1: none), which locating uses as an array index (converted here, in
    # the parallel pass).
    return (f"SELECT *, coalesce(TRY_CAST(postal_zip AS INTEGER), -1) AS zip_i "
            f"FROM (SELECT {', '.join(sel)} FROM {_source_sql(src)} r)")


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
                   f"lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180 AND NOT {_us_sql('lat', 'lon')}",
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


class _RawValues:
    """The file's values as text, for messages (failure path: re-reads the file once)."""

    def __init__(self, cur, src: _Source, table: str):
        self.cur, self.src, self.table = cur, src, table
        self.created = False

    def get(self, column: str, rids: list[int]) -> dict[int, str | None]:
        if not rids:
            return {}
        if not self.created:
            self.cur.execute(f"CREATE TEMP TABLE {self.table} AS SELECT * FROM {_source_sql(self.src)}")
            self.created = True
        found = self.cur.execute(
            f"SELECT rowid, CAST({_q(column)} AS VARCHAR) FROM {self.table} "
            f"WHERE rowid IN ({', '.join(str(int(r)) for r in rids)})"
        ).fetchall()
        return dict(found)


def _show(value) -> str:
    if value is None:
        return "(empty)"
    text = str(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return repr(text)


def _validation_view(typed: str, m: dict[str, str | None]) -> str:
    if m.get("postal_zip"):
        return (f"(SELECT t.*, z.zip IS NOT NULL AS zip_known, z.lat AS zip_lat, z.lon AS zip_lon, "
                f"z.region_zip AS zip_region FROM {typed} t LEFT JOIN zips z ON z.zip = t.postal_zip)")
    return (f"(SELECT *, false AS zip_known, NULL::DOUBLE AS zip_lat, NULL::DOUBLE AS zip_lon, "
            f"NULL::VARCHAR AS zip_region FROM {typed})")


def _validate(cur, typed: str, src: _Source, m: dict[str, str | None], rows: _RowNumbers, raw: _RawValues,
              progress: Progress | None) -> tuple[list[Problem], float, list[tuple[str, str]]]:
    """Problems of the staged rows; also the score scale and the (status as given, status) pairs."""
    view = _validation_view(typed, m)
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
            found = [(r, _show(values.get(r))) for r in rids]
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
                 lambda rec: f"duplicate lead id {_show(rec[1])} (first on {src.where(rec[2])})",
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
        listed = "(" + ", ".join(_lit(u) for u in unknown[:1000]) + ")"
        cond = f"status_key IN {listed}" if len(unknown) <= 1000 else \
            f"status_key NOT IN ({', '.join(_lit(k) for k, _ in pairs) or 'NULL'})"
        total = cur.execute(f"SELECT count(*) FROM {typed} WHERE status_key IS NOT NULL AND {cond}").fetchall()[0][0]
        found = cur.execute(
            f"SELECT rid, status_key FROM {typed} WHERE status_key IS NOT NULL AND {cond} "
            f"ORDER BY rid LIMIT {MAX_ROWS_PER_PROBLEM}"
        ).fetchall()
        shown = ", ".join(repr(u) for u in sorted(unknown)[:10]) + (", ..." if len(unknown) > 10 else "")
        add_rows(found, int(total), m.get("status"),
                 lambda rec: f"status {_show(rec[1])} is not open, won or lost, nor a known CRM status for them",
                 f"have an unknown status ({len(unknown):,} distinct: {shown})")
    return problems, scale, pairs


# ---------------------------------------------------------------------------
# Locating


def _zip_lookup(cur) -> dict[str, np.ndarray]:
    """Arrays indexed by the ZIP as an integer (0..99999): centroid and region ZIP (-1: none)."""
    ref = cur.execute(
        "SELECT CAST(zip AS INTEGER) AS z, lat, lon, coalesce(TRY_CAST(region_zip AS INTEGER), -1) AS region "
        "FROM zips WHERE TRY_CAST(zip AS INTEGER) IS NOT NULL"
    ).fetchnumpy()
    z = np.asarray(ref["z"], dtype=np.int64)
    lat = np.full(100_000, np.nan)
    lon = np.full(100_000, np.nan)
    region = np.full(100_000, -1, dtype=np.int32)
    lat[z] = np.ma.filled(ref["lat"], np.nan) if np.ma.isMaskedArray(ref["lat"]) else ref["lat"]
    lon[z] = np.ma.filled(ref["lon"], np.nan) if np.ma.isMaskedArray(ref["lon"]) else ref["lon"]
    region[z] = np.asarray(ref["region"], dtype=np.int32)
    region[np.isnan(lat)] = -1
    cell = np.zeros(100_000, dtype=np.uint64)
    located = ~np.isnan(lat)
    cell[located] = index_points(lat[located], lon[located], BASE_H3_RES)
    return {"lat": lat, "lon": lon, "region": region, "cell": cell}


@lru_cache(maxsize=1)
def _zip_text() -> pa.Array:
    """'00000'..'99999': the dictionary of the region ZIP column (indices are the ZIPs as integers)."""
    return pa.array([f"{z:05d}" for z in range(100_000)], type=pa.string())


def _cells(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """H3 cells at BASE_H3_RES. h3ronpy releases the GIL, so large inputs are indexed in chunks on every core."""
    workers = min(os.cpu_count() or 1, 8)
    if workers == 1 or len(lat) < 100_000:  # (under 50 ms: threads would gain little)
        return index_points(lat, lon, BASE_H3_RES)
    cells = np.empty(len(lat), dtype=np.uint64)
    bounds = np.linspace(0, len(lat), workers + 1).astype(np.int64)

    def run(a: int, b: int) -> None:
        cells[a:b] = index_points(lat[a:b], lon[a:b], BASE_H3_RES)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, bounds[:-1], bounds[1:]))  # list(): re-raise a worker's exception here
    return cells


def _locate(table: pa.Table, ref: dict[str, np.ndarray]) -> dict[str, pa.Array]:
    """Coordinates, H3 cell and region ZIP of every staged row, in file order (``ref``: :func:`_zip_lookup`).

    The columns are read from the Arrow table itself (no query, so no question of order, and no use of
    the DuckDB cursor: this runs in a thread beside the validation). The results are meaningful once
    validation has passed, which ensures e.g. that latitude and longitude are both given or both missing.
    """

    def column(name: str) -> np.ndarray:
        values = table.column(name).to_numpy()  # a missing float becomes NaN
        return values if values.flags.writeable else values.copy()

    # In place and on the few rows concerned where possible: at 10M rows every full-size temporary counts.
    lat, lon, zipi = column("lat"), column("lon"), column("zip_i")
    has_zip = zipi >= 0
    np.maximum(zipi, 0, out=zipi)
    at_centroid = has_zip & (np.isnan(lat) | np.isnan(lon))
    centroid_zip = zipi[at_centroid]
    lat[at_centroid] = ref["lat"][centroid_zip]
    lon[at_centroid] = ref["lon"][centroid_zip]
    region = ref["region"][zipi]
    region[~has_zip] = -1
    need = region < 0
    if need.any():
        region[need] = np.asarray(nearest_region_zip(lat[need], lon[need]), dtype="U5").astype(np.int32)
    # Rows placed at their ZIP's centroid share that ZIP's cell; index only the given coordinates.
    cells = ref["cell"][zipi]
    given = ~at_centroid
    if given.any():
        cells[given] = _cells(lat[given], lon[given])
    return {
        "x_lat": pa.array(lat),
        "x_lon": pa.array(lon),
        "x_cell": pa.array(cells, type=pa.uint64()),
        # Dictionary-encoded (ZIP number -> text): no string to format per row, and DuckDB stores it faster.
        "x_zip": pa.DictionaryArray.from_arrays(pa.array(region), _zip_text()),
    }


# ---------------------------------------------------------------------------
# The import


def import_file(
    store: Store,
    path,
    mapping: dict[str, str | None] | None = None,
    progress: Progress | None = None,
) -> dict:
    """Import a CSV or Parquet file of leads, all or nothing.

    ``mapping``: {canonical field name: source column, or None to ignore the field};
    fields not in it use :func:`suggest_mapping`. ``progress(fraction, message)`` is
    called from the calling thread as the import advances.

    Returns {"rows", "inserted", "updated", "seconds", "file", "mapping", "phases"}
    ("phases": seconds per step); raises :class:`ImportRejected`, with the database
    unchanged, when anything is wrong with the file.
    """
    t0 = time.perf_counter()
    phases: dict[str, float] = {}
    mark = [t0]

    def phase(name: str) -> None:
        now = time.perf_counter()
        phases[name] = round(now - mark[0], 3)
        mark[0] = now

    path = Path(path)
    report = progress or (lambda frac, msg: None)
    cur = store.cursor()
    tag = uuid.uuid4().hex[:10]
    staged = f"_terrmap_import_{tag}"
    raw = _RawValues(cur, None, f"_terrmap_import_raw_{tag}")
    report(0.0, f"reading {path.name}")
    src = _open_source(cur, path)
    raw.src = src
    m, problems = _resolve_mapping(src, mapping)
    if problems:
        raise ImportRejected(problems, file=str(path))
    registered = False
    try:
        # 1. Read and convert in one pass, into Arrow (in file order), plus the row index.
        sql = _typed_sql(src, m)
        try:
            table = _run(cur, lambda: cur.sql(sql).to_arrow_table(), progress, 0.0, 0.4, f"reading {path.name}")
        except Exception as exc:
            if src.fmt == "csv":
                raise ImportRejected(_csv_structure_problems(cur, src, exc), file=str(path),
                                     convention=src.convention) from None
            raise ImportRejected([Problem(None, None, f"cannot read the Parquet file: {_first_line(exc)}")],
                                 file=str(path)) from None
        n = table.num_rows
        if n == 0:
            raise ImportRejected([Problem(None, None, "the file has a header but no data rows")], file=str(path))
        table = table.append_column("rid", pa.array(np.arange(n, dtype=np.int64)))
        cur.register(staged, table)
        registered = True
        phase("read")

        # 2. Check everything before writing anything. 3. Meanwhile, a thread computes coordinates, H3 cells
        # and region ZIPs (numpy and h3ronpy, which release the GIL): DuckDB's queries alone leave the cores
        # idle part of the time. Leaving the block waits for that thread, also when the file is rejected
        # (its result, possibly an error from invalid rows, is then dropped).
        report(0.4, f"validating {n:,} rows")
        ref = _zip_lookup(cur)
        with ThreadPoolExecutor(1, thread_name_prefix="terrmap-locate") as pool:
            locating = pool.submit(_locate, table, ref)
            problems, scale, status_pairs = _validate(cur, staged, src, m, _RowNumbers(src), raw, progress)
            if problems:
                raise ImportRejected(problems, file=str(path), convention=src.convention)
            phase("validate")
            report(0.5, f"indexing {n:,} locations")
            located = locating.result()

        # The computed values and the statuses become further columns of the staged rows.
        for name, values in located.items():
            table = table.append_column(name, values)
        del located
        keys = pa.array([k for k, _ in status_pairs], type=pa.string())
        values = pa.array([v for _, v in status_pairs], type=pa.string())
        # Dictionary-encoded (index of the status as given -> open/won/lost): no string per row to build.
        status = pc.index_in(table.column("status_key"), keys).combine_chunks()
        table = table.append_column("x_status", pa.DictionaryArray.from_arrays(status, values))
        cur.unregister(staged)
        cur.register(staged, table)
        phase("locate")

        # 4. Write, all or nothing.
        report(0.65, "writing")
        with store.transaction() as tx:
            updated = 0
            if tx.execute("SELECT count(*) FROM leads").fetchall()[0][0]:
                updated = tx.execute(
                    f"DELETE FROM leads WHERE lead_id IN (SELECT lead_id FROM {staged})"
                ).fetchall()[0][0]
            # Fallback scores are computed as rows go in (medians over the won deals kept and imported):
            # an UPDATE of millions of fresh rows afterwards would cost as much as the insert.
            won = (f"SELECT industry, deal_value FROM leads WHERE status = 'won' AND deal_value > 0 UNION ALL "
                   f"SELECT industry, deal_value FROM {staged} WHERE x_status = 'won' AND deal_value > 0")
            score, source = fallback_score_sql("s")
            insert = f"""
                INSERT INTO leads (lead_id, name, industry, employees, annual_revenue, status, deal_value,
                                   created_at, closed_at, postal_zip, zip, lat, lon, cell, crm_score,
                                   score, score_source, expected_value, extra)
                WITH {fallback_value_ctes(won)},
                s AS (SELECT * REPLACE (CAST(employees AS INTEGER) AS employees, crm_score * {scale} AS crm_score)
                      FROM {staged})
                SELECT lead_id, name, industry, employees, annual_revenue, x_status,
                       deal_value, created_at, closed_at, postal_zip, x_zip,
                       x_lat, x_lon, x_cell, crm_score, {score}, {source}, {fallback_expected_value_sql("s")}, extra
                FROM s
                """
            _run(tx, lambda: tx.execute(insert), progress, 0.65, 0.85, "writing")
            phase("insert")
            report(0.85, "scoring")
            apply_fallback_scores(store, tx)
            refresh_rollup(tx)
            phase("score")
            report(0.95, "committing")
        phase("commit")
        from terrmap.scoring import latest_version, score_leads

        if latest_version(store) is not None:
            # A trained model exists: the new leads get its scores, not the fallback.
            report(0.96, "scoring with the lead model")
            score_leads(store)
            phase("model_score")
        updated = int(min(updated, n))
        summary = {
            "rows": int(n),
            "inserted": int(n - updated),
            "updated": updated,
            "seconds": round(time.perf_counter() - t0, 3),
            "file": str(path),
            "mapping": {k: v for k, v in m.items() if v is not None},
            "phases": phases,
        }
        report(1.0, f"imported {n:,} leads")
        return summary
    finally:
        if registered:
            try:
                cur.unregister(staged)
            except Exception:
                pass
        if raw.created:
            try:
                cur.execute(f"DROP TABLE IF EXISTS {raw.table}")
            except Exception:
                pass


def preview(path, n: int = 50) -> pd.DataFrame:
    """The first ``n`` rows of a file, every column as text (for the column-mapping screen)."""
    import duckdb

    path = Path(path)
    con = duckdb.connect()
    try:
        src = _open_source(con, path)
        if src.fmt == "csv":
            sql = f"SELECT * FROM {_csv_sql(src, ', ignore_errors=true')} LIMIT {int(n)}"
        else:
            cols = ", ".join(f"CAST({_q(c)} AS VARCHAR) AS {_q(c)}" for c in src.columns)
            sql = f"SELECT {cols} FROM read_parquet({_lit(str(path))}) LIMIT {int(n)}"
        try:
            df = con.execute(sql).df()
        except Exception as exc:
            found = _find_invalid_utf8(path) if src.fmt == "csv" else None
            if found is not None:
                raise ImportRejected([not_utf8_problem(path, *found)], file=str(path)) from None
            raise ImportRejected([Problem(None, None, f"cannot read the file: {_first_line(exc)}")],
                                 file=str(path)) from None
        return df.astype(object).where(df.notna(), None)
    finally:
        con.close()
