"""Alignment files in and out: a plan from a territory file, and a plan to CSV, GeoJSON, GeoPackage or a map.

**Import** (:func:`import_alignment`): a file that says which territory each
region belongs to becomes a new plan (a scenario), all or nothing.

* CSV, as exported by a CRM or another tool, or by :func:`export_plan` (``csv``):
  one row per region. Columns are found by name, ignoring case and punctuation
  (:data:`COLUMN_NAMES`): the region (``zip``, ``Zip Code``, ``Postal Code``,
  ``region_id``, ``h3``, ``cell`` ...) and the territory (``territory``,
  ``Territory Name``, ``Territory__c`` ...) are required; territory id, rep
  (an id, name or e-mail of a known rep), colour, parent and locked are optional.
  Every value is read as text. A ZIP written without its leading zeros
  (``2134`` for 02134) is padded only when the column was plainly a number in a
  spreadsheet (no value in it starts with 0); ZIP+4 is cut to the ZIP. A
  PO-box or single-organisation ZIP counts in the region that contains it
  (``zips.region_zip``); when the file also lists that region itself, the
  region's own row wins and the disagreement is reported as a note.
* GeoJSON or GeoPackage, as written by :func:`export_plan`: one (Multi)Polygon
  per territory; each region of the layer goes to the territory whose polygon
  contains its representative point (a point on the surface of a ZIP polygon,
  an H3 cell's centre). Locks are not part of these formats.

The layer is the one given, else the file's ``layer`` property (GeoJSON and
GeoPackage), else inferred from the ids: 5-digit ZIPs -> ``zip``; H3 cells ->
``h3:<their resolution>``. Every problem is collected, not just the first:
unknown ZIPs or cells (with their lines), a region given two different
territories, an empty file, missing columns, bytes that are not UTF-8, invalid
H3 ids, mixed resolutions or layers, unknown reps, inconsistent territory
attributes. Any problem raises :class:`AlignmentRejected` and nothing is
written; otherwise the plan is created in one transaction
(:func:`terrmap.plan.create_plan`). Regions of the layer the file does not
mention stay unassigned; the returned :class:`ImportedPlan` says how many.

**Export** (:func:`export_plan`, :func:`export_to_file`), formats :data:`EXPORT_FORMATS`:

* ``csv``: region_id, territory, territory_id, rep_id, locked, color: every
  region of the plan, sorted; importing it gives back the same plan.
* ``accounts``: a CRM bulk-update file, Salesforce-style columns
  (:data:`ACCOUNT_COLUMNS`), one row per account with its owner from
  :func:`terrmap.plan.accounts.account_owners` (pins, overlays, geography).
* ``geojson`` / ``gpkg``: the dissolved territory boundaries (lon/lat,
  EPSG:4326) with territory, territory_id, rep_id, color, regions, leads,
  potential and the plan's layer.
* ``png`` / ``pdf``: a 16:9 map of the territories over the state outlines,
  with a legend (territory and rep), for slides.

Spreadsheets run formulas: a text cell that starts with ``= + - @`` is written
with a leading apostrophe (CSV injection), which the import removes again.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from terrmap.geo import Layer, parse_layer
from terrmap.io.csvsafe import guard_frame, unguard_cell
from terrmap.io.ingest import MAX_ROWS_PER_PROBLEM, norm_header, not_utf8_problem
from terrmap.plan import PlanInfo, Territory, create_plan, distinct_colors, get_plan, list_plans, palette_color

if TYPE_CHECKING:
    from terrmap.data.store import Store

Progress = Callable[[float, str], None]

EXPORT_FORMATS = ("csv", "accounts", "geojson", "gpkg", "png", "pdf")
FORMAT_SUFFIX = {"csv": ".csv", "accounts": ".csv", "geojson": ".geojson", "gpkg": ".gpkg", "png": ".png",
                 "pdf": ".pdf"}
FORMAT_MIME = {"csv": "text/csv", "accounts": "text/csv", "geojson": "application/geo+json",
               "gpkg": "application/geopackage+sqlite3", "png": "image/png", "pdf": "application/pdf"}

REGION_CSV_COLUMNS = ["region_id", "territory", "territory_id", "rep_id", "locked", "color"]
# Id: lead id; OwnerId / Owner_Name: the owning rep's id and name; Territory__c / Territory_Id__c: the owning
# territory (or overlay team, id "overlay-<id>"); Assignment_Rule__c: pin, overlay, geography or unassigned.
ACCOUNT_COLUMNS = ["Id", "Name", "OwnerId", "Owner_Name", "Territory__c", "Territory_Id__c", "Assignment_Rule__c",
                   "Potential__c", "Region__c"]
GEO_LAYER_NAME = "territories"
GEO_DECIMALS = 6  # ~0.1 m: representative points never land on the wrong side of a rounded border

# Column names by role, compared with ingest's header normalisation (case, spaces, punctuation ignored).
# The first name present wins, so the order is a preference.
COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "region": ("region_id", "region id",
               "zip", "zip code", "zipcode", "zip5", "zip_code__c", "zip__c", "postal code", "postalcode",
               "postal_code__c", "postcode", "postal", "zip/postal code",
               "h3", "h3 index", "h3 cell", "h3id", "cell", "cell id", "hex", "hex id", "hexagon",
               "region"),
    "territory": ("territory", "territory name", "territory__c", "territory2.name", "sales territory",
                  "territory label"),
    "territory_id": ("territory_id", "territory id", "territory_id__c", "territory2id", "territory2.id"),
    "rep": ("rep_id", "rep id", "owner id", "ownerid", "owner_id__c", "rep", "rep name", "owner", "owner name",
            "owner.name", "sales rep", "assigned rep", "assigned to", "user id", "owner email", "rep email"),
    "color": ("color", "colour", "territory color", "fill", "hex color"),
    "parent": ("parent", "parent territory", "parent id", "rollup", "division"),
    "locked": ("locked", "lock", "is locked", "frozen"),
}
_ZIP_NAMES = {norm_header(n) for n in COLUMN_NAMES["region"][2:14]}
_H3_NAMES = {norm_header(n) for n in COLUMN_NAMES["region"][14:23]}
ROLE_LABELS = {"region": "region (ZIP or H3 cell)", "territory": "territory", "territory_id": "territory id",
               "rep": "rep", "color": "colour", "parent": "parent", "locked": "locked"}

_TRUE = {"true", "t", "yes", "y", "1", "x", "locked"}
_FALSE = {"false", "f", "no", "n", "0", ""}
_HEX_COLOR = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")
_ZIP_TEXT = re.compile(r"\d{5}(?:-?\d{4})?")
_ZIP_NUMBER = re.compile(r"(\d{3,5})(?:\.0*)?")
_ZIP_NUMBER_PLUS4 = re.compile(r"(\d{3,4})-?(\d{4})")


class AlignmentRejected(Exception):
    """The alignment file was not imported; the database is unchanged. ``problems`` says why."""

    def __init__(self, problems: list[str], file: str | None = None):
        self.problems = list(problems)
        self.file = file
        super().__init__(str(self))

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''}" + (f" in {self.file}" if self.file else "")
        return head + ", nothing imported:\n" + "\n".join(f"  - {p}" for p in self.problems)


@dataclass(frozen=True)
class ImportedPlan(PlanInfo):
    """The new plan (a :class:`~terrmap.plan.PlanInfo`) and what the import did (``summary``)."""

    summary: dict = field(default_factory=dict, compare=False, hash=False)


# ---------------------------------------------------------------------------
# Reading an alignment (no writes)


@dataclass
class _Row:
    """One region claim of the file, before validation."""

    where: str  # "line 4" or "feature 2": what a person finds in the file
    raw: str  # the region as written
    territory: str  # "" = listed but unassigned
    territory_id: str = ""
    rep: str = ""
    color: str = ""
    parent: str = ""
    locked: str = ""
    region_id: str | None = None  # the layer's region id, once resolved
    direct: bool = True  # the region itself, not a PO-box/unique ZIP lying in it


@dataclass
class Alignment:
    """A parsed and validated alignment file: what importing it would create.

    ``problems`` empty means it can be imported. ``assignment``: region_id,
    territory_id (NA: listed but unassigned), locked. ``territories``:
    territory_id, name, color, rep_id, rep_name, parent, regions.
    """

    file: str
    format: str  # csv, geojson or gpkg
    layer: str | None = None
    columns: dict[str, str | None] = field(default_factory=dict)
    rows: int = 0
    territories: pd.DataFrame = field(default_factory=pd.DataFrame)
    assignment: pd.DataFrame = field(default_factory=pd.DataFrame)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    layer_regions_missing: int | None = None  # regions of the layer the file does not mention
    populated_regions_missing: int | None = None  # ... of which have leads

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> dict:
        assigned = int(self.assignment["territory_id"].notna().sum()) if len(self.assignment) else 0
        return {
            "file": self.file, "format": self.format, "layer": self.layer, "rows": self.rows,
            "territories": len(self.territories), "regions": len(self.assignment), "assigned_regions": assigned,
            "locked_regions": int(self.assignment["locked"].sum()) if len(self.assignment) else 0,
            "unassigned_layer_regions": self.layer_regions_missing,
            "unassigned_populated_regions": self.populated_regions_missing,
            "columns": {k: v for k, v in self.columns.items() if v is not None},
            "notes": list(self.notes),
        }


def _listed(problems: list[str], items: list[str], what: str) -> None:
    """Append up to MAX_ROWS_PER_PROBLEM items, then one line counting the rest."""
    problems.extend(items[:MAX_ROWS_PER_PROBLEM])
    if len(items) > MAX_ROWS_PER_PROBLEM:
        problems.append(f"... and {len(items) - MAX_ROWS_PER_PROBLEM:,} more {what}")


def _read_source(source, filename: str | None) -> tuple[bytes, str, str]:
    """(bytes, display name, format) of a path or bytes; format: csv, geojson or gpkg."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = filename or "upload"
    else:
        path = Path(source)
        if not path.exists():
            raise AlignmentRejected([f"no such file: {path}"], file=str(path))
        data = path.read_bytes()
        name = filename or path.name
    suffix = Path(name).suffix.lower()
    if data.startswith(b"SQLite format 3\x00") or suffix == ".gpkg":
        return data, name, "gpkg"
    if suffix in (".xlsx", ".xls", ".xlsm", ".numbers") or data.startswith(b"PK\x03\x04"):
        raise AlignmentRejected([f"{name} is a spreadsheet or zip file: save it as CSV (UTF-8) first"], file=name)
    if suffix in (".geojson", ".json") or data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return data, name, "geojson"
    return data, name, "csv"


def _decode(data: bytes, name: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise AlignmentRejected(["the file is not UTF-8 (it is UTF-16); export or save it as UTF-8"], file=name)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise AlignmentRejected([not_utf8_problem(None, exc.start, line, data[exc.start: exc.end]).message],
                                file=name) from None


def _find_columns(header: Sequence[str]) -> dict[str, str | None]:
    by_norm: dict[str, str] = {}
    for col in header:
        by_norm.setdefault(norm_header(col), col)
    out: dict[str, str | None] = {}
    used: set[str] = set()
    for role, names in COLUMN_NAMES.items():
        out[role] = None
        for n in names:
            col = by_norm.get(norm_header(n))
            if col is not None and col not in used:
                out[role] = col
                used.add(col)
                break
    return out


def _csv_rows(text: str, name: str) -> tuple[list[_Row], dict[str, str | None], list[str]]:
    if not text.strip():
        raise AlignmentRejected(["the file is empty"], file=name)
    first = re.sub(r'"[^"]*"', "", text.split("\n", 1)[0])  # count delimiters outside quotes
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as exc:
        raise AlignmentRejected([f"line 1: cannot read the header: {exc}"], file=name) from None
    columns = _find_columns(header)
    problems = []
    for role in ("region", "territory"):
        if columns[role] is None:
            expected = ", ".join(repr(n) for n in COLUMN_NAMES[role][:8])
            problems.append(f"no {ROLE_LABELS[role]} column: expected one named like {expected} "
                            f"(columns in the file: {', '.join(repr(h) for h in header)})")
    if problems:
        raise AlignmentRejected(problems, file=name)
    index = {role: header.index(col) for role, col in columns.items() if col is not None}
    rows: list[_Row] = []
    start = reader.line_num + 1
    try:
        for record in reader:
            where = f"line {start}"
            start = reader.line_num + 1
            if not any(v.strip() for v in record):
                continue  # blank line
            if len(record) != len(header):
                problems.append(f"{where}: {len(record)} fields, the header has {len(header)}")
                continue
            get = {role: unguard_cell(record[i].strip()) for role, i in index.items()}
            rows.append(_Row(where, get["region"], get["territory"], get.get("territory_id", ""),
                             get.get("rep", ""), get.get("color", ""), get.get("parent", ""),
                             get.get("locked", "")))
    except csv.Error as exc:
        problems.append(f"line {start}: cannot read the record: {exc}")
    if not rows and not problems:
        raise AlignmentRejected(["the file has a header but no data rows"], file=name)
    return rows, columns, problems


def _classify_regions(rows: list[_Row], column: str, layer: str | None, hint: str | None,
                      problems: list[str]) -> str | None:
    """Normalise every row's region id to ``layer`` (inferred when None); returns the layer key."""
    import h3

    def as_cell(raw: str) -> str | None:
        text = raw.lower().removeprefix("0x")
        if text.isdigit() and len(text) > 12:  # a cell written as its 64-bit integer
            try:
                text = h3.int_to_str(int(text))
            except (ValueError, OverflowError):
                return None
        try:
            return text if h3.is_valid_cell(text) else None
        except (ValueError, TypeError):
            return None

    cells = {r.raw: as_cell(r.raw) for r in rows}
    looks_zip = {r.raw: bool(_ZIP_TEXT.fullmatch(r.raw) or _ZIP_NUMBER.fullmatch(r.raw)
                             or _ZIP_NUMBER_PLUS4.fullmatch(r.raw)) for r in rows}
    if layer is None:
        n_zip = sum(looks_zip[r.raw] for r in rows)
        n_cell = sum(cells[r.raw] is not None for r in rows)
        if hint == "zip" or (hint is None and n_zip and not n_cell):
            layer = "zip"
        elif hint == "h3" or (hint is None and n_cell and not n_zip):
            res = {}
            for r in rows:
                if cells[r.raw] is not None:
                    res.setdefault(h3.get_resolution(cells[r.raw]), []).append(r.where)
            if len(res) > 1:
                problems.append("mixed H3 resolutions in column {!r}: {}; a plan has one layer".format(
                    column, "; ".join(f"resolution {k}: {len(v):,} cells (first at {v[0]})"
                                      for k, v in sorted(res.items()))))
                return None
            layer = f"h3:{next(iter(res))}" if res else None
        elif n_zip and n_cell:
            first_zip = next(r.where for r in rows if looks_zip[r.raw])
            first_cell = next(r.where for r in rows if cells[r.raw] is not None)
            problems.append(f"mixed layers in column {column!r}: {n_zip:,} ZIPs (first at {first_zip}) and "
                            f"{n_cell:,} H3 cells (first at {first_cell}); a plan has one layer")
            return None
        if layer is None:
            bad = [f"{r.where}: {r.raw!r} in column {column!r} is neither a ZIP nor an H3 cell id"
                   for r in rows if r.raw]
            _listed(problems, bad or [f"column {column!r} holds no region ids"], "unreadable region ids")
            return None
    if layer == "zip":
        _zip_ids(rows, column, problems)
    else:
        res = int(layer.split(":")[1])
        bad = []
        for r in rows:
            cell = cells[r.raw]
            if cell is None:
                bad.append(f"{r.where}: {r.raw!r} in column {column!r} is not a valid H3 cell id")
            elif h3.get_resolution(cell) != res:
                bad.append(f"{r.where}: H3 cell {r.raw} in column {column!r} has resolution "
                           f"{h3.get_resolution(cell)}, the layer is {layer}")
            else:
                r.region_id = cell
        _listed(problems, bad, "bad H3 cell ids")
    return layer


def _zip_ids(rows: list[_Row], column: str, problems: list[str]) -> None:
    """ZIP text -> 5-digit ZIP (padded only when the whole column was plainly a number)."""
    # Plainly a number column: no value keeps a leading zero, and every value is digits (ZIP+4 aside).
    numeric_column = all((_ZIP_NUMBER.fullmatch(r.raw) or _ZIP_NUMBER_PLUS4.fullmatch(r.raw))
                         and not r.raw.startswith("0") for r in rows if r.raw)
    bad = []
    for r in rows:
        text = r.raw
        if _ZIP_TEXT.fullmatch(text):
            r.region_id = text[:5]
        elif numeric_column and (m := _ZIP_NUMBER.fullmatch(text) or _ZIP_NUMBER_PLUS4.fullmatch(text)):
            r.region_id = m.group(1).zfill(5)
        elif re.fullmatch(r"\d{3,4}", text):
            bad.append(f"{r.where}: ZIP {text!r} in column {column!r} has {len(text)} digits; other ZIPs of the "
                       "column keep their leading zeros, so this is not a number that lost them: write 5 digits")
        else:
            bad.append(f"{r.where}: {text!r} in column {column!r} is not a ZIP code" if text else
                       f"{r.where}: no ZIP in column {column!r}")
    _listed(problems, bad, "bad ZIPs")


def _resolve_zips(store: Store, rows: list[_Row], column: str, problems: list[str]) -> None:
    """Each ZIP -> the region ZIP it counts in; unknown ZIPs (or ZIPs without a location) are problems."""
    zips = sorted({r.region_id for r in rows if r.region_id})
    ref = store.cursor().execute(
        "SELECT zip, region_zip FROM zips WHERE zip IN (SELECT unnest(?::VARCHAR[]))", [zips]
    ).fetchall()
    region_of = dict(ref)
    unknown = []
    for r in rows:
        if r.region_id is None:
            continue
        if r.region_id not in region_of:
            unknown.append(f"{r.where}: unknown ZIP {r.region_id} in column {column!r}")
            r.region_id = None
        elif region_of[r.region_id] is None:
            unknown.append(f"{r.where}: ZIP {r.region_id} in column {column!r} has no location (a military "
                           "ZIP): it lies in no region")
            r.region_id = None
        elif region_of[r.region_id] != r.region_id:
            r.direct = False
            r.raw = r.region_id
            r.region_id = region_of[r.region_id]
    _listed(problems, unknown, "unknown ZIPs")


def _conflicts(rows: list[_Row], problems: list[str], notes: list[str]) -> dict[str, _Row]:
    """One row per region: listing a region twice is fine only with the same territory."""
    by_region: dict[str, list[_Row]] = {}
    for r in rows:
        if r.region_id is not None:
            by_region.setdefault(r.region_id, []).append(r)
    chosen: dict[str, _Row] = {}
    clashes, overruled = [], []
    for region, claims in by_region.items():
        direct = [c for c in claims if c.direct]
        deciding = direct or claims
        names = {c.territory for c in deciding}
        if len(names) > 1:
            listed = ", ".join(f"{_show_territory(c.territory)} ({c.where}"
                               + ("" if c.direct else f", ZIP {c.raw}") + ")" for c in deciding)
            clashes.append(f"region {region} is given different territories: {listed}")
            continue
        row = deciding[0]
        if any(_truthy(c.locked) is True for c in deciding):
            row.locked = "true"
        chosen[region] = row
        for c in claims:
            if not c.direct and direct and c.territory != row.territory:
                overruled.append(f"ZIP {c.raw} ({c.where}, {_show_territory(c.territory)}) lies in region {region}, "
                                 f"which the file gives to {_show_territory(row.territory)} ({row.where}): "
                                 "the region's own row wins")
    _listed(problems, clashes, "regions with different territories")
    _listed(notes, overruled, "PO-box/unique ZIPs overruled by their region's row")
    return chosen


def _show_territory(name: str) -> str:
    return repr(name) if name else "no territory"


def _truthy(text: str) -> bool | None:
    t = text.strip().lower()
    return True if t in _TRUE else False if t in _FALSE else None


def _territory_table(store: Store, rows: Sequence[_Row], columns: dict[str, str | None],
                     problems: list[str], notes: list[str]) -> tuple[pd.DataFrame, Callable[[_Row], int]]:
    """Territories named in ``rows`` (keyed by the file's territory id when every row has one, else by name),
    with consistent attributes and known reps; returns the table and row -> territory_id."""
    assigned = [r for r in rows if r.territory]
    by_id = columns.get("territory_id") is not None and assigned and all(r.territory_id for r in assigned)
    if columns.get("territory_id") is not None and assigned and not by_id:
        notes.append(f"the territory id column {columns['territory_id']!r} is blank on some rows: "
                     "territories are identified by name and numbered in order of appearance")
    key_of = (lambda r: r.territory_id) if by_id else (lambda r: r.territory)
    attrs: dict[str, dict[str, dict[str, str]]] = {}  # key -> attribute -> value -> first place
    order: list[str] = []
    for r in assigned:
        k = key_of(r)
        if k not in attrs:
            attrs[k] = {"name": {}, "rep": {}, "color": {}, "parent": {}}
            order.append(k)
        for a, v in (("name", r.territory), ("rep", r.rep), ("color", r.color), ("parent", r.parent)):
            if v:
                attrs[k][a].setdefault(v, r.where)
    if by_id:
        names: dict[str, list[str]] = {}
        for k in order:
            for n in attrs[k]["name"]:
                names.setdefault(n, []).append(k)
        for n, ks in names.items():
            if len(ks) > 1:
                notes.append(f"territory name {n!r} is used by {len(ks)} territory ids ({', '.join(ks)})")
    clash = []
    for k in order:
        for a in ("name", "rep", "color", "parent"):
            seen = attrs[k][a]
            if len(seen) > 1:
                who = f"territory id {k}" if by_id else f"territory {k!r}"
                clash.append(f"{who} has {len(seen)} different {'names' if a == 'name' else a + 's'}: "
                             + ", ".join(f"{v!r} ({w})" for v, w in seen.items()))
    _listed(problems, clash, "territories with inconsistent attributes")

    numeric = by_id and all(re.fullmatch(r"\d{1,9}", k) for k in order)
    if by_id and not numeric:
        notes.append("territory ids are not all whole numbers: territories are numbered in order of appearance")
    ids = {k: (int(k) if numeric else i + 1) for i, k in enumerate(order)}

    reps = store.cursor().execute("SELECT rep_id, name, email FROM reps").fetchall()
    by_rep_id = {r[0]: r for r in reps}
    by_lower: dict[str, set[str]] = {}
    for rep_id, name, email in reps:
        for v in (name, email):
            if v:
                by_lower.setdefault(str(v).strip().lower(), set()).add(rep_id)
    unknown_reps: dict[str, str] = {}

    def rep_of(value: str) -> str | None:
        if not value:
            return None
        if value in by_rep_id:
            return value
        hits = by_lower.get(value.lower(), set())
        if len(hits) == 1:
            return next(iter(hits))
        unknown_reps.setdefault(value, attrs_where[value])
        return None

    attrs_where = {v: w for k in order for v, w in attrs[k]["rep"].items()}
    bad_colors = []
    out = []
    for k in order:
        a = attrs[k]
        name = next(iter(a["name"]), k)
        rep_id = rep_of(next(iter(a["rep"]), ""))
        color = next(iter(a["color"]), "")
        if color:
            m = _HEX_COLOR.fullmatch(color)
            if m is None:
                bad_colors.append(f"{a['color'][color]}: colour {color!r} of territory {name!r} is not a hex "
                                  "colour like #1f77b4")
                color = ""
            else:
                h = m.group(1).lower()
                color = "#" + (h if len(h) == 6 else "".join(c * 2 for c in h))
        parent = next(iter(a["parent"]), None)
        out.append({"territory_id": ids[k], "name": name, "color": color or None, "rep_id": rep_id,
                    "parent": parent})
    _listed(problems, [f"{w}: unknown rep {v!r} (not a rep id, nor the name or e-mail of exactly one rep)"
                       for v, w in unknown_reps.items()], "unknown reps")
    _listed(problems, bad_colors, "bad colours")
    terr = pd.DataFrame(out, columns=["territory_id", "name", "color", "rep_id", "parent"])
    rep_names = {r[0]: r[1] for r in reps}
    terr["rep_name"] = terr["rep_id"].map(rep_names)
    return terr, lambda r: ids[key_of(r)]


def _fill_colors(store: Store, layer: Layer, terr: pd.DataFrame, assignment: pd.DataFrame) -> None:
    """Colours for territories the file left without one: neighbours differ (Delaunay neighbours of the
    regions' representative points: cheap, and an extra pair only constrains the colouring a little)."""
    missing = terr["color"].isna()
    if not missing.any():
        return
    index = {t: i for i, t in enumerate(terr["territory_id"])}
    a = assignment.dropna(subset=["territory_id"])
    pairs: set[tuple[int, int]] = set()
    try:
        from scipy.spatial import Delaunay

        from terrmap.geo.zipdata import project

        cents = layer.region_centroids(store, a["region_id"].tolist())
        a = a[a["region_id"].isin(cents)]
        if len(a) >= 4:
            latlon = np.array([cents[r] for r in a["region_id"]])
            t_idx = np.array([index[int(t)] for t in a["territory_id"]])
            tri = Delaunay(project(latlon[:, 0], latlon[:, 1]))
            s = tri.simplices
            for i, j in ((0, 1), (1, 2), (0, 2)):
                ta, tb = t_idx[s[:, i]], t_idx[s[:, j]]
                differ = ta != tb
                pairs.update(zip(ta[differ].tolist(), tb[differ].tolist()))
    except Exception:  # a degenerate point set (all on a line): plain palette order is fine
        pairs = set()
    given = [c if isinstance(c, str) else None for c in terr["color"]]
    colors = distinct_colors(len(terr), pairs, current=given)
    terr["color"] = [g if g else c for g, c in zip(given, colors)]


def _missing_regions(store: Store, layer: Layer, listed: set[str]) -> tuple[int | None, int]:
    """(regions of the layer not listed or None for H3, whose cells are unbounded; populated regions not listed)."""
    from terrmap.data.stats import region_stats

    populated = set(region_stats(store, layer)["region_id"])
    if layer.key == "zip":
        all_regions = {z for (z,) in store.cursor().execute("SELECT zip FROM zips WHERE zip = region_zip").fetchall()}
        return len(all_regions - listed), len(populated - listed)
    return None, len(populated - listed)


def _finish(store: Store, al: Alignment, rows: list[_Row], column: str, layer_obj: Layer | None) -> Alignment:
    """Shared tail of every format: ZIP lookup, conflicts, territories, colours, counts."""
    if al.layer == "zip" and column:
        _resolve_zips(store, rows, column, al.problems)
    chosen = _conflicts(rows, al.problems, al.notes)
    terr, territory_id_of = _territory_table(store, list(chosen.values()), al.columns, al.problems, al.notes)
    bad_locks = []
    recs = []
    for region, r in sorted(chosen.items()):
        locked = _truthy(r.locked)
        if locked is None:
            bad_locks.append(f"{r.where}: locked {r.locked!r} is not yes/no, true/false or 1/0")
        recs.append((region, territory_id_of(r) if r.territory else None, bool(locked)))
    _listed(al.problems, bad_locks, "bad locked values")
    al.assignment = pd.DataFrame(recs, columns=["region_id", "territory_id", "locked"]).astype(
        {"region_id": str, "territory_id": "Int64", "locked": bool})
    counts = al.assignment["territory_id"].value_counts()
    terr["regions"] = terr["territory_id"].map(counts).fillna(0).astype(int)
    al.territories = terr
    if layer_obj is not None and len(terr):
        _fill_colors(store, layer_obj, terr, al.assignment)
    if layer_obj is not None:
        al.layer_regions_missing, al.populated_regions_missing = _missing_regions(
            store, layer_obj, set(al.assignment["region_id"]))
    return al


def read_alignment(store: Store, source, layer: str | Layer | None = None,
                   filename: str | None = None) -> Alignment:
    """Parse and validate an alignment file without writing anything (the preview).

    Raises :class:`AlignmentRejected` only when the file cannot be read at all
    (empty, not UTF-8, no region or territory column); every other problem is
    collected in ``Alignment.problems``.
    """
    layer_key = (layer.key if isinstance(layer, Layer) else parse_layer(layer).key) if layer is not None else None
    data, name, fmt = _read_source(source, filename)
    if not data.strip():
        raise AlignmentRejected(["the file is empty"], file=name)
    if fmt in ("geojson", "gpkg"):
        return _read_geo(store, data, name, fmt, layer_key)
    rows, columns, problems = _csv_rows(_decode(data, name), name)
    al = Alignment(file=name, format="csv", columns=columns, rows=len(rows), problems=problems)
    col = columns["region"]
    hint = "zip" if norm_header(col) in _ZIP_NAMES else "h3" if norm_header(col) in _H3_NAMES else None
    al.layer = _classify_regions(rows, col, layer_key, hint, al.problems)
    layer_obj = parse_layer(al.layer) if al.layer else None
    if al.layer is None:
        return al
    return _finish(store, al, rows, col, layer_obj)


def _read_geo(store: Store, data: bytes, name: str, fmt: str, layer_key: str | None) -> Alignment:
    """Territory polygons -> one row per region whose representative point they contain."""
    import pyogrio
    import shapely

    al = Alignment(file=name, format=fmt)
    try:
        if fmt == "geojson":
            _decode(data, name)
        with warnings.catch_warnings():  # GDAL notes that an in-memory buffer has no .gpkg extension
            warnings.filterwarnings("ignore", message=".*non conformant file extension.*")
            layers = [str(x[0]) for x in pyogrio.list_layers(io.BytesIO(data))]
            df = pyogrio.read_dataframe(io.BytesIO(data), layer=GEO_LAYER_NAME if GEO_LAYER_NAME in layers else None)
    except AlignmentRejected:
        raise
    except Exception as exc:  # GDAL raises many types for a corrupt or foreign file
        raise AlignmentRejected([f"cannot read the {fmt} file: {str(exc).splitlines()[0][:300]}"], file=name) from None
    if len(df) == 0:
        raise AlignmentRejected(["the file has no features"], file=name)
    header = [c for c in df.columns if c != "geometry"]
    al.columns = _find_columns(header)
    al.columns["region"] = None
    al.rows = len(df)
    if al.columns["territory"] is None:
        found = ", ".join(repr(h) for h in header)
        message = f"no territory property: expected one named like 'territory' (properties in the file: {found})"
        raise AlignmentRejected([message], file=name)
    if layer_key is None:
        file_layers = sorted({str(v) for v in df["layer"].dropna()}) if "layer" in df else []
        if len(file_layers) > 1:
            al.problems.append(f"the features name different layers: {', '.join(file_layers)}")
            return al
        if not file_layers:
            al.problems.append("the file does not say its layer (no 'layer' property): choose the layer")
            return al
        try:
            layer_key = parse_layer(file_layers[0]).key
        except ValueError as exc:
            al.problems.append(str(exc))
            return al
    al.layer = layer_key
    layer = parse_layer(layer_key)
    geoms = np.asarray(df.geometry.to_numpy(), dtype=object)
    if getattr(df, "crs", None) is not None and not df.crs.equals("EPSG:4326"):
        geoms = np.asarray(df.to_crs("EPSG:4326").geometry.to_numpy(), dtype=object)
    bad = [f"feature {i + 1}: geometry is {'missing' if g is None else g.geom_type}, not a polygon"
           for i, g in enumerate(geoms) if g is None or g.geom_type not in ("Polygon", "MultiPolygon")]
    _listed(al.problems, bad, "features without a polygon")
    if bad:
        return al
    geoms = shapely.make_valid(geoms)

    def text(v) -> str:
        if v is None or (isinstance(v, (float, np.floating)) and math.isnan(v)):
            return ""
        return unguard_cell(str(int(v)) if isinstance(v, (float, np.floating)) and float(v).is_integer() else str(v).strip())

    roles = ("territory", "territory_id", "rep", "color", "parent")
    # Per feature: territory, territory_id, rep, color, parent, locked (polygons carry no locks).
    props = [tuple(text(df[al.columns[role]].iat[i]) if al.columns.get(role) else "" for role in roles) + ("",)
             for i in range(len(df))]
    rows: list[_Row] = []
    if layer.key == "zip":
        from terrmap.geo.zipshapes import ensure_zip_shapes, zip_shape_geoms

        ensure_zip_shapes(store)
        shapes = zip_shape_geoms(store, [z for (z,) in store.cursor().execute(
            "SELECT zip FROM zips WHERE zip = region_zip").fetchall()])
        ids = shapes["zip"].to_numpy()
        points = shapely.point_on_surface(shapes["geometry"].to_numpy())
        tree = shapely.STRtree(geoms)
        pt_idx, feat_idx = tree.query(points, predicate="within")
        for p, f in zip(pt_idx.tolist(), feat_idx.tolist()):
            rows.append(_Row(f"feature {f + 1}", str(ids[p]), *props[f], region_id=str(ids[p])))
    else:
        import h3

        for f, g in enumerate(geoms):
            for cell in h3.geo_to_cells(json.loads(shapely.to_geojson(g)), layer.res):
                rows.append(_Row(f"feature {f + 1}", cell, *props[f], region_id=cell))
    if not rows:
        al.problems.append(f"no region of layer {layer.key} lies inside the file's polygons")
        return al
    return _finish(store, al, rows, "", layer)


def import_alignment(store: Store, source, name: str, layer: str | Layer | None = None,
                     filename: str | None = None, author: str | None = None) -> ImportedPlan:
    """Create plan ``name`` from an alignment file (path or bytes), all or nothing.

    Raises :class:`AlignmentRejected` (nothing written) listing every problem,
    including a plan name already taken. The result is the new plan's
    :class:`~terrmap.plan.PlanInfo` with ``summary`` (see :meth:`Alignment.summary`).
    """
    name = (name or "").strip()
    al = read_alignment(store, source, layer=layer, filename=filename)
    problems = list(al.problems)
    if not name:
        problems.insert(0, "the new scenario needs a name")
    elif any(p.name == name for p in list_plans(store)):
        problems.insert(0, f"a plan named {name!r} already exists: choose another name")
    if not problems and al.assignment["territory_id"].notna().sum() == 0:
        problems.append("the file assigns no region to a territory")
    if problems:
        raise AlignmentRejected(problems, file=al.file)
    terrs = [Territory(territory_id=int(t.territory_id), name=t.name, color=t.color or palette_color(i),
                       rep_id=t.rep_id, parent=t.parent)
             for i, t in enumerate(al.territories.itertuples())]
    description = f"Imported from {al.file}" + (f" by {author}" if author else "")
    assignment = al.assignment.astype({"territory_id": "Int64"})
    try:
        plan_id = create_plan(store, name, al.layer, terrs, assignment, description=description, author=author,
                              note=f"imported from {al.file}")
    except Exception as exc:  # a concurrent import took the name: create_plan rolled back
        if "unique" in str(exc).lower() or "duplicate" in str(exc).lower():
            raise AlignmentRejected([f"a plan named {name!r} already exists: choose another name"],
                                    file=al.file) from None
        raise
    info = get_plan(store, plan_id)
    return ImportedPlan(info.plan_id, info.name, info.layer, info.version, info.published, summary=al.summary())


# ---------------------------------------------------------------------------
# Export


def _resolve_plan(store: Store, plan) -> PlanInfo:
    info = plan if isinstance(plan, PlanInfo) else get_plan(store, plan)
    if info is None:
        raise ValueError("the database has no plan yet" if plan is None else f"no plan named {plan!r}")
    return info


def _csv_bytes(df: pd.DataFrame) -> bytes:
    return guard_frame(df).to_csv(index=False, lineterminator="\n").encode("utf-8")


def region_table(store: Store, plan) -> pd.DataFrame:
    """Every region of the plan, sorted: region_id, territory, territory_id, rep_id, locked, color."""
    info = _resolve_plan(store, plan)
    df = store.cursor().execute(
        """
        SELECT a.region_id, t.name AS territory, a.territory_id::BIGINT AS territory_id, t.rep_id, a.locked, t.color
        FROM plan_assignments a LEFT JOIN territories t ON t.plan_id = a.plan_id AND t.territory_id = a.territory_id
        WHERE a.plan_id = ? ORDER BY a.region_id
        """, [info.plan_id]).df()
    df["territory_id"] = df["territory_id"].astype("Int64")
    df["locked"] = df["locked"].map({True: "true", False: "false"})
    return df[REGION_CSV_COLUMNS]


def account_table(store: Store, plan) -> pd.DataFrame:
    """One row per account, Salesforce-style columns (:data:`ACCOUNT_COLUMNS`), owner from account_owners."""
    from terrmap.plan.accounts import account_owners

    info = _resolve_plan(store, plan)
    own = account_owners(store, info)
    rep_names = dict(store.cursor().execute("SELECT rep_id, name FROM reps").fetchall())
    terr_id = np.where(own["owner_kind"].eq("overlay").fillna(False),
                       "overlay-" + own["owner_id"].astype("string").fillna(""),
                       own["owner_id"].astype("string"))
    out = pd.DataFrame({
        "Id": own["lead_id"],
        "Name": own["name"],
        "OwnerId": own["owner_rep_id"],
        "Owner_Name": own["owner_rep_id"].map(rep_names),
        "Territory__c": own["owner_name"],
        "Territory_Id__c": pd.array(terr_id, dtype="string"),
        "Assignment_Rule__c": own["rule"],
        "Potential__c": own["potential"].astype(float).round(2),
        "Region__c": own["region_id"],
    })
    return out[ACCOUNT_COLUMNS]


def territory_shapes(store: Store, plan, progress: Progress | None = None):
    """The plan's dissolved territories: a GeoDataFrame (EPSG:4326), one row per territory with regions,
    columns territory, territory_id, rep_id, rep_name, color, regions, leads, potential, layer, geometry."""
    import geopandas as gpd
    import shapely

    from terrmap.data.stats import region_stats
    from terrmap.geo.outlines import polygonal

    report = progress or (lambda f, m: None)
    info = _resolve_plan(store, plan)
    layer = parse_layer(info.layer)
    cur = store.cursor()
    a = cur.execute("SELECT region_id, territory_id FROM plan_assignments WHERE plan_id = ? "
                    "AND territory_id IS NOT NULL ORDER BY region_id", [info.plan_id]).df()
    terr = cur.execute("SELECT t.territory_id, t.name, t.rep_id, r.name AS rep_name, t.color FROM territories t "
                       "LEFT JOIN reps r USING (rep_id) WHERE t.plan_id = ? ORDER BY t.territory_id",
                       [info.plan_id]).df()
    stats = region_stats(store, layer)[["region_id", "leads", "potential"]]
    a = a.merge(stats, on="region_id", how="left").fillna({"leads": 0, "potential": 0.0})
    groups = {int(tid): g for tid, g in a.groupby("territory_id")}
    report(0.1, "reading region shapes")
    geoms = layer.dissolve(store, {tid: g["region_id"].tolist() for tid, g in groups.items()},
                           progress=lambda f, m: report(0.1 + 0.85 * f, m))
    rows = []
    for tid, g in groups.items():
        geom = geoms.get(tid)
        if geom is None:
            continue
        # Onto the output grid (rounded coordinates); set_precision keeps the result valid.
        geom = polygonal(shapely.make_valid(shapely.set_precision(geom, 10 ** -GEO_DECIMALS)))
        if geom is None:
            continue
        rows.append({"territory_id": tid, "regions": len(g), "leads": int(g["leads"].sum()),
                     "potential": round(float(g["potential"].sum()), 2), "geometry": geom})
    report(0.95, "assembling")
    geo = pd.DataFrame(rows, columns=["territory_id", "regions", "leads", "potential", "geometry"])
    geo = terr.merge(geo, on="territory_id", how="inner").rename(columns={"name": "territory"})
    geo["layer"] = info.layer
    cols = ["territory", "territory_id", "rep_id", "rep_name", "color", "regions", "leads", "potential", "layer"]
    return gpd.GeoDataFrame(geo[cols], geometry=geo["geometry"].to_list(), crs="EPSG:4326")


def _geojson_bytes(gdf, info: PlanInfo) -> bytes:
    import shapely

    features = []
    for row in gdf.itertuples():
        props = {c: (None if pd.isna(getattr(row, c)) else getattr(row, c)) for c in gdf.columns if c != "geometry"}
        props = {k: (v.item() if hasattr(v, "item") else v) for k, v in props.items()}
        features.append({"type": "Feature", "properties": props,
                         "geometry": json.loads(shapely.to_geojson(row.geometry))})
    doc = {"type": "FeatureCollection", "name": GEO_LAYER_NAME,
           "terrmap": {"plan": info.name, "layer": info.layer, "version": info.version}, "features": features}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _gpkg_bytes(gdf) -> bytes:
    import pyogrio

    with tempfile.TemporaryDirectory(prefix="terrmap-gpkg-") as folder:
        path = Path(folder) / "plan.gpkg"
        pyogrio.write_dataframe(gdf, path, layer=GEO_LAYER_NAME, driver="GPKG")
        return path.read_bytes()


def _mpl_text(text) -> str:
    """Text from data for matplotlib: a ``$`` would start mathtext; escape it so names show literally."""
    return str(text).replace("$", r"\$")


def _polygon_path(geom):
    """A matplotlib Path (holes included) of a shapely (Multi)Polygon."""
    import shapely
    from matplotlib.path import Path as MplPath

    verts, codes = [], []
    for poly in shapely.get_parts(geom):
        for ring in [poly.exterior, *poly.interiors]:
            xy = np.asarray(ring.coords)
            if len(xy) < 3:
                continue
            verts.append(xy)
            codes.append(np.r_[MplPath.MOVETO, np.full(len(xy) - 2, MplPath.LINETO), MplPath.CLOSEPOLY])
    if not verts:
        return None
    return MplPath(np.concatenate(verts), np.concatenate(codes))


def map_figure(store: Store, plan, labels: bool | None = None, progress: Progress | None = None):
    """A 16:9 matplotlib Figure (Agg, no pyplot state) of the plan's territories over the state outlines."""
    import shapely
    from matplotlib import patheffects
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, PathPatch

    from terrmap.geo.outlines import state_outlines_geojson
    from terrmap.io.ingest import US_BOXES

    info = _resolve_plan(store, plan)
    gdf = territory_shapes(store, info, progress=progress)
    fig = Figure(figsize=(16, 9), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.01, 0.03, 0.70, 0.86))
    ax.set_axis_off()
    geoms = list(gdf.geometry)
    lat_lo, lat_hi, lon_lo, lon_hi = US_BOXES["contiguous US"]
    box = shapely.box(lon_lo, lat_lo, lon_hi, lat_hi)
    parts = [p for g in geoms for p in shapely.get_parts(g)]
    main = [p for p in parts if p.intersects(box)] or parts
    hidden = len(parts) - len(main)
    if main:
        x0, y0, x1, y1 = shapely.total_bounds(np.array(main, dtype=object))
    else:
        x0, y0, x1, y1 = lon_lo, lat_lo, lon_hi, lat_hi
    pad_x, pad_y = max((x1 - x0) * 0.04, 0.05), max((y1 - y0) * 0.04, 0.05)
    x0, x1, y0, y1 = x0 - pad_x, x1 + pad_x, y0 - pad_y, y1 + pad_y
    ax.set_aspect(1 / max(math.cos(math.radians((y0 + y1) / 2)), 0.2))  # equirectangular, true shape at mid-latitude
    view = shapely.box(x0, y0, x1, y1)
    state_paths = []
    for feat in state_outlines_geojson()["features"]:
        g = shapely.geometry.shape(feat["geometry"])
        if g.intersects(view):
            path = _polygon_path(g)
            if path is not None:
                state_paths.append(path)
                ax.add_patch(PathPatch(path, facecolor="#f1f1ef", edgecolor="#a3a3a3", linewidth=0.5, zorder=1))
    # Close hairline gaps between region polygons (tiny mismatches where state outlines meet): invisible
    # at slide scale, but a white edge drawn around each would streak the territory.
    close = max(x1 - x0, y1 - y0) / 1500
    for row in gdf.itertuples():
        shown = row.geometry.buffer(close, quad_segs=2).buffer(-close, quad_segs=2)
        path = _polygon_path(shown if not shown.is_empty else row.geometry)
        if path is not None:
            ax.add_patch(PathPatch(path, facecolor=row.color, edgecolor="white", linewidth=0.6, zorder=2))
    for path in state_paths:  # state borders over the territories, for orientation
        ax.add_patch(PathPatch(path, facecolor="none", edgecolor="#4d4d4d", linewidth=0.35, alpha=0.45, zorder=2.5))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    if labels is None:
        labels = len(gdf) <= 40
    if labels:
        halo = [patheffects.withStroke(linewidth=2.5, foreground="white")]
        for row in gdf.itertuples():
            biggest = max(shapely.get_parts(row.geometry), key=lambda p: p.area)
            pt = biggest.representative_point()
            if view.contains(pt):
                ax.text(pt.x, pt.y, _mpl_text(row.territory), fontsize=7, ha="center", va="center", zorder=3,
                        path_effects=halo, clip_on=True)
    handles = [Patch(facecolor=r.color, edgecolor="#555555", linewidth=0.4,
                     label=_mpl_text(r.territory + (f" — {r.rep_name}" if isinstance(r.rep_name, str) else "")))
               for r in gdf.itertuples()]
    n = len(handles)
    if n:
        ncol = 1 if n <= 28 else 2 if n <= 56 else 3
        fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.72, 0.89), ncol=ncol, frameon=False,
                   fontsize=9 if n <= 20 else 7 if n <= 40 else 5, title="Territory — rep", title_fontsize=10,
                   alignment="left")
    fig.text(0.01, 0.955, _mpl_text(info.name), fontsize=20, weight="bold", va="center")
    sub = f"{date.today().isoformat()} · {parse_layer(info.layer).label} · {n} territories"
    fig.text(0.01, 0.915, _mpl_text(sub), fontsize=11, color="#555555", va="center")
    if hidden:
        fig.text(0.01, 0.015, f"Not shown: {hidden} piece(s) of territory outside the contiguous US "
                 "(Alaska, Hawaii, Puerto Rico, other territories).", fontsize=8, color="#777777")
    return fig


def export_plan(store: Store, plan, fmt: str, progress: Progress | None = None) -> bytes:
    """The plan in format ``fmt`` (one of :data:`EXPORT_FORMATS`) as bytes."""
    fmt = fmt.strip().lower()
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}")
    info = _resolve_plan(store, plan)
    if fmt == "csv":
        return _csv_bytes(region_table(store, info))
    if fmt == "accounts":
        return _csv_bytes(account_table(store, info))
    if fmt in ("geojson", "gpkg"):
        gdf = territory_shapes(store, info, progress=progress)
        return _geojson_bytes(gdf, info) if fmt == "geojson" else _gpkg_bytes(gdf)
    fig = map_figure(store, info, progress=progress)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=150, metadata={"Title": info.name} if fmt == "pdf" else None)
    return buf.getvalue()


def export_to_file(store: Store, plan, fmt: str, path, progress: Progress | None = None) -> dict:
    """Write :func:`export_plan` to ``path``; returns a summary (format, out, bytes, plan, layer)."""
    info = _resolve_plan(store, plan)
    data = export_plan(store, info, fmt, progress=progress)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"plan": info.name, "layer": info.layer, "format": fmt.strip().lower(), "out": str(path),
            "bytes": len(data)}
