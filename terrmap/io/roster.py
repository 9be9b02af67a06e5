"""The team roster in and out: reps with their manager, home, role, skills, capacity and quota (issue 15.1).

``python -m terrmap import-reps FILE`` reads a CSV or Parquet file whose columns a CRM or an HR system would
name (Salesforce's User export: ``Id``, ``Name``, ``ManagerId``, ``PostalCode``; HR: ``Employee ID``,
``Reports To``, ...; see :data:`COLUMN_NAMES`), checks every row, and either writes all of them (a rep already
in the database is updated, by id) or none, with one problem per row and column at fault:

- an id missing or given twice, a name missing;
- a home ZIP unknown to the ZIP reference, or coordinates off the map, or a ZIP and coordinates that disagree
  (more than 150 km apart);
- a role other than field, inside or hybrid;
- a capacity that is not a positive number of hours per week (at most 80), a selling share outside (0, 1],
  a negative quota;
- a manager who is neither in the file nor already a rep.

Skills (industries, segments, products, languages) are free lists, separated by ``;`` or ``|`` (a comma too,
where the file's delimiter is not one).
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from terrmap.data import team as team_data
from terrmap.data.store import Store
from terrmap.geo.distance import haversine_km
from terrmap.io.csvsafe import guard_frame, unguard_cell
from terrmap.io.problems import MAX_ROWS_PER_PROBLEM, ImportRejected, Problem
from terrmap.io.read import detect_format
from terrmap.io.sniff import SniffError, decode_utf8, find_columns, open_bytes, sniff_text

ROLES = ("field", "inside", "hybrid")
SKILL_FIELDS = ("industries", "segments", "products", "languages")
DEFAULT_CAPACITY_HOURS = 40.0
DEFAULT_SELLING_SHARE = 0.6  # of a rep's hours, the share left for selling (visits, calls, travel)
MAX_CAPACITY_HOURS = 80.0
HOME_MISMATCH_KM = 150.0
ROLE_SYNONYMS = {"outside": "field", "field sales": "field", "inside sales": "inside", "sdr": "inside", "bdr": "inside"}

# The roster's fields and the names files give them (compared ignoring case, spaces and punctuation).
COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "rep_id": ("rep_id", "rep id", "id", "user id", "userid", "employee id", "employee number", "owner id",
               "sales rep id"),
    "name": ("name", "rep name", "full name", "sales rep", "rep", "user name", "employee name"),
    "first_name": ("first name", "firstname", "given name"),
    "last_name": ("last name", "lastname", "surname", "family name"),
    "email": ("email", "e-mail", "email address", "work email"),
    "manager": ("manager", "manager id", "managerid", "reports to", "reports to id", "supervisor", "manager_id"),
    "home_zip": ("home_zip", "home zip", "zip", "postal code", "postalcode", "zip code", "zipcode",
                 "mailing postal code", "home postal code"),
    "home_lat": ("home_lat", "latitude", "lat", "home latitude"),
    "home_lon": ("home_lon", "longitude", "lon", "lng", "long", "home longitude"),
    "role": ("role", "motion", "sales motion", "rep type", "type", "channel"),
    "industries": ("industries", "industry", "skills industries", "verticals", "vertical"),
    "segments": ("segments", "segment", "skills segments"),
    "products": ("products", "product", "product lines", "skills products"),
    "languages": ("languages", "language", "spoken languages"),
    "capacity_hours": ("capacity_hours", "capacity", "hours per week", "weekly hours", "hours", "fte hours"),
    "selling_share": ("selling_share", "selling share", "selling time", "selling time share", "selling %"),
    "quota": ("quota", "annual quota", "quota amount", "target"),
}


@dataclass
class RosterRead:
    """The checked roster (one row per rep, the columns of the reps table) and what the file left out."""

    reps: pd.DataFrame
    columns: dict[str, str | None]
    warnings: list[str] = field(default_factory=list)


def _records(path: Path) -> tuple[list[dict[str, str]], list[int], list[str], str, str]:
    """Every record of the file as text (empty cells as ""), the line (CSV) or row (Parquet) each starts on,
    the header, how rows are numbered, and the delimiter (Parquet: none)."""
    if not path.exists():
        raise ImportRejected([Problem(None, None, f"no such file: {path}")], file=str(path))
    if path.stat().st_size == 0:
        raise ImportRejected([Problem(None, None, "the file is empty")], file=str(path))
    if detect_format(path) == "parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            raise ImportRejected([Problem(None, None, f"not a readable Parquet file: {str(exc)[:200]}")],
                                 file=str(path)) from None
        frame = frame.astype(object).where(frame.notna(), "")
        rows = [{k: str(v) for k, v in r.items()} for r in frame.to_dict("records")]
        return rows, list(range(1, len(rows) + 1)), [str(c) for c in frame.columns], "row", ""
    try:
        with open_bytes(path) as fh:
            text = decode_utf8(fh.read())
        head = sniff_text(text)
    except SniffError as exc:
        raise ImportRejected([Problem(exc.line, None, exc.message)], file=str(path)) from None
    reader = csv.reader(io.StringIO(text), delimiter=head.delimiter, quotechar='"', doublequote=True)
    try:
        header = [h.strip() for h in next(reader)]
        rows, lines = [], []
        start = reader.line_num + 1
        for record in reader:
            if any(cell.strip() for cell in record):
                if len(record) != len(header):
                    raise ImportRejected([Problem(start, None, f"line {start}: {len(record)} fields, the header has "
                                                               f"{len(header)}")], file=str(path))
                rows.append(dict(zip(header, map(unguard_cell, record))))
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ImportRejected([Problem(reader.line_num, None, f"line {reader.line_num}: {exc}")],
                             file=str(path)) from None
    return rows, lines, header, "line", head.delimiter


def _skills(value: str, delimiter_is_comma: bool) -> list[str]:
    parts = re.split(r"[;|]" if delimiter_is_comma else r"[;|,]", value)
    seen: dict[str, None] = {}
    for p in parts:
        p = p.strip()
        if p:
            seen.setdefault(p, None)
    return list(seen)


def _number(text: str) -> float | None:
    text = text.strip().replace(",", "").replace("$", "").replace("%", "")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return math.nan
    return value


def read_roster(store: Store, path: str | Path) -> RosterRead:
    """Read and check a roster file (nothing is written): :class:`RosterRead`, or :class:`ImportRejected`."""
    path = Path(path)
    records, where, header, unit, delimiter = _records(path)
    return check_roster(store, records, where, header, unit, delimiter, path.name)


def roster_from_table(store: Store, table: pd.DataFrame) -> RosterRead:
    """Check a roster edited as a table (the Team page: skills as "a; b" text), with the file import's rules;
    problems name the table's rows from 1."""
    frame = table.astype(object).where(table.notna(), "")
    records = [{k: str(v) for k, v in r.items()} for r in frame.to_dict("records")]
    return check_roster(store, records, list(range(1, len(records) + 1)), [str(c) for c in frame.columns], "row",
                        "", "the table")


def check_roster(store: Store, records: list[dict[str, str]], where: list[int], header: list[str], unit: str,
                 delimiter: str, name: str) -> RosterRead:
    """The roster's rules over records of text (see the module docstring)."""
    cols = find_columns(header, COLUMN_NAMES)
    missing = []
    if cols["rep_id"] is None:
        missing.append(Problem(None, None, f"no rep id column (looked for {', '.join(COLUMN_NAMES['rep_id'][:5])}, "
                                           f"...; found: {', '.join(header)})"))
    if cols["name"] is None and cols["first_name"] is None:
        missing.append(Problem(None, None, f"no name column (looked for Name, Rep Name, Full Name or First/Last "
                                           f"Name; found: {', '.join(header)})"))
    if missing:
        raise ImportRejected(missing, file=name)
    if not records:
        raise ImportRejected([Problem(None, None, "the file has a header but no reps")], file=name)
    checker = _Checker(cols, unit, team_data.zip_locations(store), comma=delimiter in (",", ""))
    reps = [checker.row(rec, row) for rec, row in zip(records, where)]
    checker.managers(reps, set(team_data.rep_ids(store)))
    problems = checker.problems()
    if problems:
        raise ImportRejected(problems, file=name,
                             convention="line numbers count the header as line 1" if unit == "line" else None)
    return RosterRead(pd.DataFrame(reps).drop(columns="_row"), cols, _warnings(cols))


class _Checker:
    """Checks roster records one by one, keeping every problem (grouped by kind, so each kind's first
    :data:`MAX_ROWS_PER_PROBLEM` are shown)."""

    def __init__(self, cols: dict[str, str | None], unit: str, zips: dict[str, tuple[float, float]], comma: bool):
        self.cols, self.unit, self.zips = cols, unit, zips
        self.comma = comma  # skills split on ; or | (on a comma too where the file is not comma-separated)
        self.first_row: dict[str, int] = {}
        self.by_kind: dict[str, list[Problem]] = {}

    def bad(self, kind: str, row: int, field: str | None, message: str) -> None:
        column = self.cols.get(field) if field else None
        self.by_kind.setdefault(kind, []).append(Problem(row, column, f"{self.unit} {row}: {message}"))

    def row(self, rec: dict[str, str], row: int) -> dict:
        def get(fld: str) -> str:
            col = self.cols[fld]
            return rec.get(col, "").strip() if col else ""

        rep_id = self._identity(get, row)
        home_zip, lat, lon = self._home(get, row)
        role, capacity, share, quota = self._capacity(get, row)
        return {
            "rep_id": rep_id, "name": get("name") or " ".join(x for x in (get("first_name"), get("last_name")) if x),
            "email": get("email") or None, "home_zip": home_zip, "home_lat": lat, "home_lon": lon,
            "manager": get("manager") or None, "role": role, **{s: _skills(get(s), self.comma) for s in SKILL_FIELDS},
            "capacity_hours": capacity, "selling_share": share, "quota": quota, "_row": row,
        }

    def _identity(self, get, row: int) -> str:
        rep_id = get("rep_id")
        if not rep_id:
            self.bad("id", row, "rep_id", f"no rep id in column {self.cols['rep_id']!r}")
        elif rep_id in self.first_row:
            self.bad("duplicate", row, "rep_id", f"rep id {rep_id!r} is already on {self.unit} {self.first_row[rep_id]}")
        else:
            self.first_row[rep_id] = row
        if not (get("name") or get("first_name") or get("last_name")):
            self.bad("name", row, "name" if self.cols["name"] else "first_name", "no name")
        return rep_id

    def _home(self, get, row: int) -> tuple[str | None, float | None, float | None]:
        """The home ZIP (ZIP+4 read as its ZIP) and coordinates (from the ZIP when not given)."""
        home_zip, lat, lon = get("home_zip"), _number(get("home_lat")), _number(get("home_lon"))
        if re.fullmatch(r"\d{3,5}(-\d{4})?", home_zip):
            home_zip = re.sub(r"-\d{4}$", "", home_zip).zfill(5)
        if home_zip and home_zip not in self.zips:
            self.bad("zip", row, "home_zip", f"unknown ZIP {get('home_zip')!r} in column {self.cols['home_zip']!r}")
        for value, fld, lo, hi in ((lat, "home_lat", -90, 90), (lon, "home_lon", -180, 180)):
            if value is not None and not (lo <= value <= hi):  # NaN fails both comparisons
                self.bad("coords", row, fld, f"{self.cols[fld]!r} is {get(fld)!r}: not a {fld[5:]}itude in [{lo}, {hi}]")
        if (lat is None) != (lon is None):
            self.bad("coords", row, "home_lat" if self.cols["home_lat"] else "home_lon",
                     "a home needs both latitude and longitude")
        if home_zip in self.zips:
            zlat, zlon = self.zips[home_zip]
            if lat is None or lon is None:
                lat, lon = zlat, zlon
            elif not (math.isnan(lat) or math.isnan(lon)):
                km = float(haversine_km(lat, lon, zlat, zlon))
                if km > HOME_MISMATCH_KM:
                    self.bad("coords", row, "home_lat", f"home ZIP {home_zip} is {km:,.0f} km from the coordinates given")
        return home_zip or None, lat, lon

    def _capacity(self, get, row: int) -> tuple[str, float, float, float | None]:
        """Role (sales motion), hours a week, selling share and quota, with their defaults."""
        role = get("role").lower() or "field"
        role = ROLE_SYNONYMS.get(role, role)
        if role not in ROLES:
            self.bad("role", row, "role", f"role {get('role')!r} is not one of {', '.join(ROLES)}")
        capacity = _number(get("capacity_hours"))
        if capacity is not None and not (0 < capacity <= MAX_CAPACITY_HOURS):
            self.bad("capacity", row, "capacity_hours", f"capacity {get('capacity_hours')!r} is not a number of hours "
                                                        f"per week in (0, {MAX_CAPACITY_HOURS:g}]")
        share = _number(get("selling_share"))
        if share is not None and 1 < share <= 100 and "%" in get("selling_share"):
            share /= 100
        if share is not None and not (0 < share <= 1):
            self.bad("share", row, "selling_share", f"selling share {get('selling_share')!r} is not a share in (0, 1] "
                                                    "(or a percentage such as 60%)")
        quota = _number(get("quota"))
        if quota is not None and not (quota >= 0):
            self.bad("quota", row, "quota", f"quota {get('quota')!r} is not a non-negative amount")
        return (role, DEFAULT_CAPACITY_HOURS if capacity is None else capacity,
                DEFAULT_SELLING_SHARE if share is None else share, quota)

    def managers(self, reps: list[dict], known: set[str]) -> None:
        """Every manager must be a rep: of this file or already in the database."""
        ids = set(self.first_row) | known
        for r in reps:
            if r["manager"] and r["manager"] not in ids:
                self.bad("manager", r["_row"], "manager",
                         f"manager {r['manager']!r} is neither a rep in this file nor one already in the database")
            elif r["manager"] and r["manager"] == r["rep_id"]:
                self.bad("manager", r["_row"], "manager", f"rep {r['rep_id']!r} is their own manager")

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        for kind in self.by_kind.values():
            out.extend(kind[:MAX_ROWS_PER_PROBLEM])
            if len(kind) > MAX_ROWS_PER_PROBLEM:
                out.append(Problem(None, None, f"... and {len(kind) - MAX_ROWS_PER_PROBLEM:,} more like it"))
        return out


def _warnings(cols: dict[str, str | None]) -> list[str]:
    """What the file leaves to defaults."""
    missing = [f for f in ("manager", "home_zip", "role", "capacity_hours") if cols[f] is None and
               not (f == "home_zip" and cols["home_lat"])]
    return [f"no {f.replace('_', ' ')} column: " + {
        "manager": "no reporting lines", "home_zip": "no homes (no drive times, no routes)",
        "role": "every rep is a field rep", "capacity_hours": f"{DEFAULT_CAPACITY_HOURS:g} hours a week each",
    }[f] for f in missing]


def import_roster(store: Store, path: str | Path) -> dict:
    """Check a roster file and write it in one transaction (reps updated by id, new ones added); all or
    nothing. Returns counts and warnings."""
    read = read_roster(store, path)
    return {**_write(store, read), "warnings": read.warnings}


def _write(store: Store, read: RosterRead) -> dict:
    before = set(team_data.rep_ids(store))
    team_data.upsert_reps(store, read.reps)
    ids = set(read.reps["rep_id"])
    return {"reps": len(ids), "added": len(ids - before), "updated": len(ids & before)}


def roster_table(store: Store) -> pd.DataFrame:
    """The roster with skills as "a; b" text: what the export writes and the Team page edits."""
    frame = team_data.roster(store)
    for s in SKILL_FIELDS:
        frame[s] = frame[s].map(lambda xs: "; ".join(xs) if xs is not None and not isinstance(xs, str) else "")
    for text in ("email", "home_zip", "manager"):  # an empty cell, not "None"
        frame[text] = frame[text].astype(object).where(frame[text].notna(), "")
    return frame


def save_roster_table(store: Store, table: pd.DataFrame) -> dict:
    """Check an edited roster table and write it (all or nothing): reps updated by id, new ones added."""
    return _write(store, roster_from_table(store, table))


def export_roster(store: Store, path: str | Path) -> int:
    """The roster as CSV (skills joined by "; "), re-importable; returns the number of reps."""
    frame = roster_table(store)
    guard_frame(frame).to_csv(path, index=False)
    return len(frame)
