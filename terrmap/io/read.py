"""Reading a lead file: the column mapping, then the file converted into typed columns in one pass.

The header's columns are matched to :data:`CANONICAL_FIELDS` by name (:func:`suggest_mapping`
knows the usual Salesforce and HubSpot export headers); an explicit mapping overrides the
suggestion. :func:`typed_sql` is the one query that reads the file (DuckDB, parallel) and
converts every value (``TRY_CAST``), keeping the file's row order; a CSV file is read with
every column as ``VARCHAR`` after :mod:`terrmap.io.sniff` found its header and delimiter, a
Parquet file with its own types. Malformed CSV lines are reported by :func:`csv_structure_problems`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from terrmap.data.sqltext import quote_ident, sql_literal
from terrmap.io.problems import MAX_ROWS_PER_PROBLEM, ImportRejected, Problem, not_utf8_problem
from terrmap.io.sniff import SniffError, find_invalid_utf8, line_of_offset, norm_header, sniff_file

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


# Date formats tried, in order, on text that is not ISO 8601.
DATE_FORMATS = (
    "%m/%d/%Y", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y, %I:%M %p", "%m/%d/%y", "%m/%d/%y %H:%M", "%m/%d/%y %I:%M %p", "%Y/%m/%d", "%Y/%m/%d %H:%M:%S",
    "%d.%m.%Y", "%d.%m.%Y %H:%M",
)


# ---------------------------------------------------------------------------
# SQL helpers


def is_text(dtype: str) -> bool:
    return dtype.upper() == "VARCHAR"


# ---------------------------------------------------------------------------
# Reading files


@dataclass
class Source:
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


def detect_format(path: Path) -> str:
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


def _csv_source(path: Path) -> Source:
    """Header and delimiter of a CSV file, from its first bytes (:func:`terrmap.io.sniff.sniff_file`)."""
    try:
        head = sniff_file(path)
    except SniffError as exc:
        raise ImportRejected([Problem(exc.line, None, exc.message)], file=str(path)) from None
    columns: list[str] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(head.header):
        name = name.strip() or f"column{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        seen.setdefault(name, 1)
        columns.append(name)
    return Source(path, "csv", columns, {c: "VARCHAR" for c in columns}, head.delimiter,
                  compressed=path.suffix.lower() == ".gz")


def csv_sql(src: Source, extra: str = "") -> str:
    cols = ", ".join(f"{sql_literal(c)}: 'VARCHAR'" for c in src.columns)
    return (
        f"read_csv({sql_literal(str(src.path))}, header=true, auto_detect=false, delim={sql_literal(src.delimiter)}, "
        f"quote='\"', escape='\"', strict_mode=true, null_padding=false, columns={{{cols}}}{extra})"
    )


def open_source(cur, path: Path) -> Source:
    if not path.exists():
        raise ImportRejected([Problem(None, None, f"no such file: {path}")], file=str(path))
    if path.stat().st_size == 0:
        raise ImportRejected([Problem(None, None, "the file is empty")], file=str(path))
    fmt = detect_format(path)
    if fmt == "csv":
        return _csv_source(path)
    try:
        desc = cur.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_literal(str(path))})").fetchall()
    except Exception as exc:  # duckdb raises several types for corrupt files
        raise ImportRejected([Problem(None, None, f"not a readable Parquet file: {first_line(exc)}")],
                             file=str(path)) from None
    columns = [r[0] for r in desc]
    return Source(path, "parquet", columns, {r[0]: r[1] for r in desc})


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.split("\n", 1)[0][:300]


def csv_structure_problems(cur, src: Source, error: BaseException) -> list[Problem]:
    """Re-read a CSV that DuckDB refused, collecting every malformed line (failure path only)."""
    scan, errors = f"_terrmap_rejects_scan_{uuid.uuid4().hex[:8]}", f"_terrmap_rejects_err_{uuid.uuid4().hex[:8]}"
    touch_all = " + ".join(f"length(coalesce({quote_ident(c)}, ''))" for c in src.columns)  # parse every column
    options = f", store_rejects=true, rejects_scan={sql_literal(scan)}, rejects_table={sql_literal(errors)}"
    try:
        cur.execute(f"SELECT sum({touch_all}) FROM {csv_sql(src, options)}").fetchall()
        rows = cur.execute(
            f"SELECT line, line_byte_position, byte_position, column_name, error_type, error_message "
            f"FROM {errors} ORDER BY line_byte_position, byte_position"
        ).fetchall()
    except Exception as exc:
        return [Problem(None, None, f"the file cannot be read as CSV: {first_line(exc)}")]
    finally:
        for table in (scan, errors):
            try:
                cur.execute(f"DROP TABLE IF EXISTS {table}")
            except Exception:
                pass
    problems: list[Problem] = []
    encoding = [r for r in rows if "ENCODING" in str(r[4]).upper()]
    if encoding:
        found = find_invalid_utf8(src.path, start=int(encoding[0][1] or 0)) or find_invalid_utf8(src.path)
        if found is not None:
            problems.append(not_utf8_problem(src.path, *found))
        else:
            problems.append(Problem(encoding[0][0], None, f"line {encoding[0][0]}: the file is not UTF-8"))
        if len(encoding) > 1:
            problems.append(Problem(None, None, f"{len(encoding):,} lines in total contain bytes that are not UTF-8"))
    structural = [r for r in rows if "ENCODING" not in str(r[4]).upper()]
    for line_no, line_pos, _byte_pos, column, etype, message in structural[:MAX_ROWS_PER_PROBLEM]:
        line = line_of_offset(src.path, int(line_pos)) if line_pos is not None and not src.compressed else line_no
        col = f", column {column!r}" if column and str(column) != "nan" and etype == "MISSING COLUMNS" else ""
        problems.append(Problem(int(line), column if col else None,
                                f"line {line}{col}: {str(message).rstrip('.')} ({str(etype).lower()}); "
                                f"the header has {len(src.columns)} columns"))
    if len(structural) > MAX_ROWS_PER_PROBLEM:
        problems.append(Problem(None, None, f"... {len(structural):,} malformed lines in total "
                                            f"(the first {MAX_ROWS_PER_PROBLEM} are listed)"))
    if not problems and "unicode" in str(error).lower():
        found = find_invalid_utf8(src.path)
        if found is not None:
            problems.append(not_utf8_problem(src.path, *found))
    if not problems:
        problems.append(Problem(None, None, f"the file cannot be read as CSV: {first_line(error)}"))
    return problems


# ---------------------------------------------------------------------------
# Mapping


def resolve_mapping(src: Source, mapping: dict[str, str | None] | None) -> tuple[dict[str, str | None], list[Problem]]:
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
    return "r." + quote_ident(col)


def _expr_key(col: str, dtype: str) -> str:
    if is_text(dtype):
        return f"nullif(trim({_src(col)}), '')"
    return f"nullif(trim(CAST({_src(col)} AS VARCHAR)), '')"


def _is_float(dtype: str) -> bool:
    return dtype.upper() in ("DOUBLE", "FLOAT", "REAL")


def _expr_present(col: str, dtype: str) -> str:
    if is_text(dtype):
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
    if is_text(dtype):
        formatted = r"\s*\$?\s*-?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]*)?\s*|\s*\$\s*-?[0-9]+(\.[0-9]*)?\s*"
        return (f"coalesce(TRY_CAST({c} AS DOUBLE), CASE WHEN regexp_full_match({c}, {sql_literal(formatted)}) "
                f"THEN TRY_CAST(regexp_replace({c}, '[\\s$,]', '', 'g') AS DOUBLE) END)")
    if _is_float(dtype):
        return f"CASE WHEN NOT isnan({c}) THEN CAST({c} AS DOUBLE) END"
    return f"TRY_CAST({c} AS DOUBLE)"


def _expr_date(col: str, dtype: str) -> str:
    c = _src(col)
    if is_text(dtype):
        fmts = "[" + ", ".join(sql_literal(f) for f in DATE_FORMATS) + "]"
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


def source_sql(src: Source) -> str:
    return csv_sql(src) if src.fmt == "csv" else f"read_parquet({sql_literal(str(src.path))})"


def typed_sql(src: Source, m: dict[str, str | None]) -> str:
    """Read the file and convert every value in one pass (the result is in file order)."""
    t = src.types

    def col(name):
        return m.get(name)

    def text(name):
        c = col(name)
        if c is None:
            return f"NULL::VARCHAR AS {name}"
        return f"{_src(c) if is_text(t[c]) else f'CAST({_src(c)} AS VARCHAR)'} AS {name}"

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
        sel.append("json_object(" + ", ".join(f"{sql_literal(c)}, {_src(c)}" for c in unmapped) + ") AS extra")
    else:
        sel.append("NULL::JSON AS extra")
    # zip_i: the ZIP as a number (-1: none), which locating uses as an array index (converted here, in
    # the parallel pass).
    return (f"SELECT *, coalesce(TRY_CAST(postal_zip AS INTEGER), -1) AS zip_i "
            f"FROM (SELECT {', '.join(sel)} FROM {source_sql(src)} r)")


def preview(path, n: int = 50) -> pd.DataFrame:
    """The first ``n`` rows of a file, every column as text (for the column-mapping screen); an empty field is
    the empty string, as the file has it (a grid would show a missing value as "None")."""
    path = Path(path)
    con = duckdb.connect()
    try:
        src = open_source(con, path)
        if src.fmt == "csv":
            sql = f"SELECT * FROM {csv_sql(src, ', ignore_errors=true')} LIMIT {int(n)}"
        else:
            cols = ", ".join(f"CAST({quote_ident(c)} AS VARCHAR) AS {quote_ident(c)}" for c in src.columns)
            sql = f"SELECT {cols} FROM read_parquet({sql_literal(str(path))}) LIMIT {int(n)}"
        try:
            df = con.execute(sql).df()
        except Exception as exc:
            found = find_invalid_utf8(path) if src.fmt == "csv" else None
            if found is not None:
                raise ImportRejected([not_utf8_problem(path, *found)], file=str(path)) from None
            raise ImportRejected([Problem(None, None, f"cannot read the file: {first_line(exc)}")],
                                 file=str(path)) from None
        return df.astype(object).where(df.notna(), "")
    finally:
        con.close()


# ---------------------------------------------------------------------------
# Reading for routing (terrmap.io.assign): every column as given, plus the location, typed

LOCATION_COLUMNS = ("_terrmap_zip_given", "_terrmap_zip", "_terrmap_lat", "_terrmap_lon")


def located_sql(src: Source, m: dict[str, str | None]) -> str:
    """Read the file with every column as it is, plus :data:`LOCATION_COLUMNS`: whether a ZIP is given, the ZIP
    normalised as the import does (5 digits, or NULL), latitude and longitude as numbers (NULL: none)."""
    t = src.types
    zc, la, lo = m.get("postal_zip"), m.get("lat"), m.get("lon")
    zip_given, zip_norm, lat, lon = LOCATION_COLUMNS
    sel = [f"{_src(c)} AS {quote_ident(c)}" for c in src.columns]
    sel += ([f"{_expr_present(zc, t[zc])} AS {zip_given}", f"{_expr_zip(zc, t[zc])} AS {zip_norm}"]
            if zc is not None else [f"false AS {zip_given}", f"NULL::VARCHAR AS {zip_norm}"])
    sel += [f"{_expr_num(la, t[la])} AS {lat}" if la is not None else f"NULL::DOUBLE AS {lat}",
            f"{_expr_num(lo, t[lo])} AS {lon}" if lo is not None else f"NULL::DOUBLE AS {lon}"]
    return f"SELECT {', '.join(sel)} FROM {source_sql(src)} r"
