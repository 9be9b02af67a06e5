"""Alignment import: a plan (a scenario) from a file that says which territory each region belongs to.

:func:`import_alignment` turns such a file into a new plan, all or nothing;
:func:`read_alignment` is the preview (parse and validate, write nothing).

* CSV, as exported by a CRM or another tool, or by :func:`terrmap.io.export.export_plan` (``csv``):
  one row per region. The encoding and delimiter are found by
  :mod:`terrmap.io.sniff`, as for lead files. Columns are found by name, ignoring case and punctuation
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
* GeoJSON or GeoPackage, as written by :func:`terrmap.io.export.export_plan`: one (Multi)Polygon
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
(:func:`terrmap.plan.create_plan`). Regions of the file's states that it does not
mention are completed (each joins the territory it shares the most border with); the
returned :class:`ImportedPlan` says how many.

Spreadsheets run formulas: an exported text cell that starts with ``= + - @`` has a leading
apostrophe (:mod:`terrmap.io.csvsafe`), which this import removes again.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import h3
import numpy as np
import pandas as pd
import pyogrio
import shapely
from scipy.spatial import Delaunay

from terrmap.data.alignments import region_zip_of, region_zips, rep_directory
from terrmap.data.area import AreaTooLarge, area_regions, regions_states
from terrmap.data.stats import region_stats
from terrmap.geo import Layer, parse_layer
from terrmap.geo.zipdata import project
from terrmap.geo.zipshapes import ensure_zip_shapes, zip_shape_geoms
from terrmap.io.csvsafe import unguard_cell
from terrmap.io.problems import MAX_ROWS_PER_PROBLEM
from terrmap.io.sniff import EMPTY_MESSAGE, SniffError, decode_utf8, find_columns, guess_delimiter, norm_header
from terrmap.plan import PlanInfo, Territory, create_plan, distinct_colors, get_plan, list_plans, palette_color

if TYPE_CHECKING:
    from terrmap.data.store import Store

# The layer (table) name of the territories in a GeoPackage, and the GeoJSON collection's name.
GEO_LAYER_NAME = "territories"

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
    # Regions of the file's area (the states of the regions it lists) that it does not list: the import gives
    # each the territory it shares the most border with (terrmap.plan.complete), so the scenario is complete.
    area_regions_not_listed: int | None = None
    populated_regions_not_listed: int | None = None  # ... of which hold leads

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> dict:
        assigned = int(self.assignment["territory_id"].notna().sum()) if len(self.assignment) else 0
        return {
            "file": self.file, "format": self.format, "layer": self.layer, "rows": self.rows,
            "territories": len(self.territories), "regions": len(self.assignment), "assigned_regions": assigned,
            "locked_regions": int(self.assignment["locked"].sum()) if len(self.assignment) else 0,
            "regions_completed": self.area_regions_not_listed,
            "populated_regions_completed": self.populated_regions_not_listed,
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
    try:
        return decode_utf8(data)
    except SniffError as exc:
        raise AlignmentRejected([exc.message], file=name) from None


def _find_columns(header: Sequence[str]) -> dict[str, str | None]:
    return find_columns(header, COLUMN_NAMES)


def _csv_rows(text: str, name: str) -> tuple[list[_Row], dict[str, str | None], list[str]]:
    if not text.strip():
        raise AlignmentRejected([EMPTY_MESSAGE], file=name)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=guess_delimiter(text))
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
    region_of = region_zip_of(store, zips)
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

    reps = rep_directory(store)
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


def _not_listed(store: Store, layer: Layer, listed: set[str]) -> tuple[int, int]:
    """(regions of the area of ``listed`` -- the states they lie in -- that are not listed, of which with leads)."""
    area = set(area_regions(store, layer, regions_states(store, layer, listed))["region_id"].tolist())
    populated = set(region_stats(store, layer)["region_id"].tolist()) & area
    return len(area - listed), len(populated - listed)


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
        try:
            al.area_regions_not_listed, al.populated_regions_not_listed = _not_listed(
                store, layer_obj, set(al.assignment["region_id"].tolist()))
        except AreaTooLarge as exc:
            al.problems.append(str(exc))
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
        raise AlignmentRejected([EMPTY_MESSAGE], file=name)
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
        ensure_zip_shapes(store)
        shapes = zip_shape_geoms(store, region_zips(store))
        ids = shapes["zip"].to_numpy()
        points = shapely.point_on_surface(shapes["geometry"].to_numpy())
        tree = shapely.STRtree(geoms)
        pt_idx, feat_idx = tree.query(points, predicate="within")
        for p, f in zip(pt_idx.tolist(), feat_idx.tolist()):
            rows.append(_Row(f"feature {f + 1}", str(ids[p]), *props[f], region_id=str(ids[p])))
    else:
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
