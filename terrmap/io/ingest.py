"""Importing leads from CSV and Parquet files (CRM exports): all or nothing.

This module runs the pipeline; each step has its module (no Python loop over rows anywhere):

1. **Map** (:mod:`terrmap.io.read`). The header's columns are matched to :data:`CANONICAL_FIELDS` by name
   (:func:`suggest_mapping` knows the usual Salesforce and HubSpot export
   headers); an explicit ``mapping`` overrides the suggestion. Columns that are
   not mapped are kept, per lead, as a JSON object in ``leads.extra``.
2. **Read** (:mod:`terrmap.io.read`, :mod:`terrmap.io.sniff`). DuckDB reads the file and converts every value (``TRY_CAST``) in
   one parallel pass into an Arrow table registered on the cursor (the staging
   area; it keeps the file's row order, so no join is needed later). A CSV file
   is read with every column as ``VARCHAR``; its header and delimiter (``,``
   ``;`` tab or ``|``) are detected here, in Python, from the first line. A
   Parquet file is read with its own types. Malformed CSV lines and bytes that
   are not UTF-8 are reported with their line (and byte offset).
3. **Validate** (:mod:`terrmap.io.validate`). One aggregate query counts every kind of problem
   (``count_if`` per check, joined to the ``zips`` reference table), a distinct
   count tells whether ids repeat, the distinct statuses are mapped in Python;
   only the kinds that occur are then listed, up to :data:`MAX_ROWS_PER_PROBLEM`
   rows each plus the total. Any problem raises :class:`ImportRejected` before
   anything is written.
4. **Locate** (:mod:`terrmap.io.locate`), in a thread while step 3's queries run. Every lead gets coordinates
   (given, else its ZIP's centroid), its H3 cell at :data:`~terrmap.data.store.BASE_H3_RES`
   (h3ronpy, vectorized, in chunks on every core; rows at a ZIP's centroid take that
   ZIP's cell) and its region ZIP (``zips.region_zip`` of its postal ZIP; from the
   coordinates with :func:`~terrmap.geo.zipdata.nearest_region_zip` when no usable
   ZIP is given): numpy arrays read straight from the Arrow table, appended to it as
   further columns (the region ZIP and the status dictionary-encoded).
5. **Write** (:mod:`terrmap.io.load`). In one transaction: delete the leads whose ids are in the file,
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

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa

from terrmap.data.store import Store
from terrmap.io.load import with_located, write_leads
from terrmap.io.locate import US_BOXES, locate, zip_lookup
from terrmap.io.problems import MAX_ROWS_PER_PROBLEM, ImportRejected, Problem, not_utf8_problem
from terrmap.io.progress import Progress, run_with_progress
from terrmap.io.read import (
    CANONICAL_FIELDS,
    FIELDS_BY_NAME,
    REQUIRED_FIELDS,
    CanonicalField,
    csv_structure_problems,
    first_line,
    open_source,
    preview,
    resolve_mapping,
    suggest_mapping,
    typed_sql,
)
from terrmap.io.sniff import norm_header
from terrmap.io.validate import STATUS_VALUES, RawValues, RowNumbers, map_status, validate

__all__ = [
    "CANONICAL_FIELDS",
    "FIELDS_BY_NAME",
    "REQUIRED_FIELDS",
    "CanonicalField",
    "ImportRejected",
    "MAX_ROWS_PER_PROBLEM",
    "Problem",
    "Progress",
    "STATUS_VALUES",
    "US_BOXES",
    "import_file",
    "map_status",
    "norm_header",
    "not_utf8_problem",
    "preview",
    "suggest_mapping",
]


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

    Returns {"rows", "inserted", "updated", "seconds", "file", "mapping", "phases", "plans_completed"}
    ("phases": seconds per step; "plans_completed": regions each plan took on to own the new leads,
    :func:`terrmap.plan.complete.complete_new_regions`); raises :class:`ImportRejected`, with the database
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
    report(0.0, f"reading {path.name}")
    src = open_source(cur, path)
    raw = RawValues(cur, src, f"_terrmap_import_raw_{tag}")
    m, problems = resolve_mapping(src, mapping)
    if problems:
        raise ImportRejected(problems, file=str(path))
    registered = False
    try:
        table = _read(cur, src, m, progress)
        n = table.num_rows
        cur.register(staged, table)
        registered = True
        phase("read")

        # Check everything before writing anything. Meanwhile, a thread computes coordinates, H3 cells
        # and region ZIPs (numpy and h3ronpy, which release the GIL): DuckDB's queries alone leave the cores
        # idle part of the time. Leaving the block waits for that thread, also when the file is rejected
        # (its result, possibly an error from invalid rows, is then dropped).
        report(0.4, f"validating {n:,} rows")
        ref = zip_lookup(cur)
        with ThreadPoolExecutor(1, thread_name_prefix="terrmap-locate") as pool:
            locating = pool.submit(locate, table, ref)
            problems, scale, status_pairs = validate(cur, staged, src, m, RowNumbers(src), raw, progress)
            if problems:
                raise ImportRejected(problems, file=str(path), convention=src.convention)
            phase("validate")
            report(0.5, f"indexing {n:,} locations")
            # The computed values and the statuses become further columns of the staged rows.
            table = with_located(table, locating.result(), status_pairs)
        cur.unregister(staged)
        cur.register(staged, table)
        phase("locate")

        report(0.65, "writing")
        updated, completed = write_leads(store, staged, scale, progress, phase)
        updated = int(min(updated, n))
        summary = {
            "rows": int(n),
            "inserted": int(n - updated),
            "updated": updated,
            "seconds": round(time.perf_counter() - t0, 3),
            "file": str(path),
            "mapping": {k: v for k, v in m.items() if v is not None},
            "phases": phases,
            "plans_completed": completed,  # {plan name: regions added so that every new lead has an owner}
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


def _read(cur, src, m: dict[str, str | None], progress: Progress | None) -> pa.Table:
    """The file read and converted in one pass, into Arrow (in file order), plus the row index ``rid``."""
    sql = typed_sql(src, m)
    name = src.path.name
    try:
        table = run_with_progress(cur, lambda: cur.sql(sql).to_arrow_table(), progress, 0.0, 0.4, f"reading {name}")
    except Exception as exc:
        if src.fmt == "csv":
            raise ImportRejected(csv_structure_problems(cur, src, exc), file=str(src.path),
                                 convention=src.convention) from None
        raise ImportRejected([Problem(None, None, f"cannot read the Parquet file: {first_line(exc)}")],
                             file=str(src.path)) from None
    n = table.num_rows
    if n == 0:
        raise ImportRejected([Problem(None, None, "the file has a header but no data rows")], file=str(src.path))
    return table.append_column("rid", pa.array(np.arange(n, dtype=np.int64)))
