"""Territory lookup and lead routing: which territory (and rep) of a plan owns a ZIP, a point, or each row of a
file of leads or accounts. One rule for ``python -m terrmap assign``, ``lookup`` and the Map page's search box.

How a row is placed, on the plan's layer:

* **ZIP layer**: by its ZIP when the reference table knows it (5 digits, ZIP+4, a ZIP that lost its leading
  zeros: normalised as the import does); the region is that ZIP's region ZIP (``zips.region_zip``: a PO-box or
  unique ZIP counts in the ZIP polygon that holds it). Without a known ZIP, by coordinates: the stored ZIP polygon
  that *contains* the point (shapely STRtree; never the nearest centroid). A point on a border between two
  polygons goes to the lower ZIP. When a row has both, the ZIP wins: that is what CRM assignment rules key on.
* **H3 layer**: the cell at the plan's resolution that contains the row's coordinates, or, without usable
  coordinates, its ZIP's centroid (as the import places a lead without coordinates).

Then the region's territory in the plan. A row that cannot be placed gets one of :data:`REASONS`. Files are
read with the import's reader (:mod:`terrmap.io.read`: same formats, same header recognition), but no lead id
or status is needed, and nothing is written to the database.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import shapely

from terrmap.data import hierarchy as stored_hierarchy
from terrmap.data import lookup_queries
from terrmap.data.plans import PlanInfo
from terrmap.data.store import BASE_H3_RES, Store
from terrmap.geo import parse_layer
from terrmap.geo.h3layer import index_points, parent_int
from terrmap.geo.land import containing_zip
from terrmap.geo.zipshapes import zip_shape_geoms
from terrmap.io.problems import ImportRejected
from terrmap.io.read import LOCATION_COLUMNS, first_line, located_sql, open_source, suggest_mapping
from terrmap.io.validate import RowNumbers

NO_LOCATION = "no ZIP and no coordinates"
UNKNOWN_ZIP = "unknown ZIP (not in the reference list, or without a location) and no coordinates"
BAD_COORDINATES = "coordinates outside -90..90 / -180..180 and no known ZIP"
NO_REGION = "point in no ZIP polygon"
OUTSIDE_PLAN = "region outside the plan's area"
NO_TERRITORY = "region in no territory"
REASONS = (NO_LOCATION, UNKNOWN_ZIP, BAD_COORDINATES, NO_REGION, OUTSIDE_PLAN, NO_TERRITORY)

OUTPUT_COLUMNS = ("territory", "territory_id", "rep_id", "rep_name")
MAX_LISTED = 20  # unplaced rows listed by row number in the summary
FEW_POINTS = 64  # up to this many points, test the polygons near each one instead of building the whole tree
NEAR_SHAPES = 32  # ... the polygons of the nearest ZIP centroids (the whole tree when none contains the point)

# 12345 | 12345-6789 | 123456789 | 2139-4307 | 2139 | 2139.0 (a ZIP that went through a spreadsheet)
_ZIP_RE = r"^(?:(\d{5})-?\d{4}|(\d{3,4})-\d{4}|(\d{3,5})(?:\.0*)?)$"
_LAT_LON_RE = re.compile(r"^\s*([-+]?\d+(?:\.\d*)?|[-+]?\.\d+)\s*[,;\s]\s*([-+]?\d+(?:\.\d*)?|[-+]?\.\d+)\s*$")


class AssignRejected(ValueError):
    """The file (or the plan) cannot be used at all; nothing was written. The message is one line."""


# ---------------------------------------------------------------------------
# Placing rows


def zip_numbers(values) -> tuple[np.ndarray, np.ndarray]:
    """(ZIP as an integer, -1 where none or unreadable; whether a ZIP was given) of each value, normalised as
    the import normalises ZIPs."""
    text = pd.Series(values, dtype="object").astype("string").str.strip()
    given = (text.notna() & (text != "")).to_numpy(dtype=bool)
    parts = text.str.extract(_ZIP_RE)
    digits = parts[0].fillna(parts[1]).fillna(parts[2])
    return pd.to_numeric(digits, errors="coerce").fillna(-1).astype(np.int64).to_numpy(), given


def _zip_tables(store: Store, zip_i: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrays indexed by the ZIP as an integer: region ZIP (-1: none), centroid lat, lon (NaN: none), filled for
    the ZIPs in ``zip_i`` that the reference table knows."""
    region = np.full(100_000, -1, dtype=np.int64)
    lat = np.full(100_000, np.nan)
    lon = np.full(100_000, np.nan)
    wanted = np.unique(zip_i[(zip_i >= 0) & (zip_i < 100_000)])
    if len(wanted):
        facts = lookup_queries.zip_facts(store, wanted)
        z = facts["z"].to_numpy(dtype=np.int64)
        lat[z] = facts["lat"].to_numpy(dtype=float, na_value=np.nan)
        lon[z] = facts["lon"].to_numpy(dtype=float, na_value=np.nan)
        region[z] = facts["region"].to_numpy(dtype=np.int64)
        region[np.isnan(lat)] = -1  # a ZIP without a location has no region (as in the import)
    return region, lat, lon


def zip_polygons_containing(store: Store, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """The ZIP (integer) whose stored polygon holds each point (:func:`terrmap.geo.land.containing_zip`); -1
    where none does."""
    n = len(lat)
    out = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return out
    todo = np.arange(n)
    if n <= FEW_POINTS:  # a lookup: a few dozen polygons per point, not all 33,000 (start-up time)
        left = []
        for i in todo:
            near = lookup_queries.shapes_near(store, float(lat[i]), float(lon[i]), NEAR_SHAPES)
            shapes = pd.DataFrame({"zip": near["zip"].to_numpy(dtype=object),
                                   "geometry": shapely.from_geojson(near["geojson"].to_numpy(dtype=object))})
            hit = containing_zip(lat[i:i + 1], lon[i:i + 1], shapes)[0]
            if hit is None:
                left.append(i)
            else:
                out[i] = int(hit)
        todo = np.asarray(left, dtype=np.int64)
        if len(todo) == 0:
            return out
    hits = containing_zip(lat[todo], lon[todo], zip_shape_geoms(store))
    out[todo] = [-1 if z is None else int(z) for z in hits]
    return out


def _region_labels(keys: np.ndarray, is_zip: bool) -> np.ndarray:
    """Region ids as text ('75001', '8948e0...'; None for -1), formatting each distinct key once."""
    uniq, inverse = np.unique(keys, return_inverse=True)
    labels = np.array([None if k < 0 else (f"{k:05d}" if is_zip else f"{k:x}") for k in uniq.tolist()], dtype=object)
    return labels[inverse]


def place(store: Store, plan: PlanInfo, zip_i: np.ndarray, zip_given: np.ndarray, lat: np.ndarray,
          lon: np.ndarray) -> pd.DataFrame:
    """The placement of every row (arrays of equal length; ZIPs as integers, -1: none): region_id, located_by
    ('zip' or 'coordinates'), territory_id, territory, rep_id, rep_name, parent (hierarchy node), reason (None:
    placed)."""
    zip_i = np.asarray(zip_i, dtype=np.int64)
    zip_given = np.asarray(zip_given, dtype=bool)
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    n = len(zip_i)
    layer = parse_layer(plan.layer)
    is_zip = layer.key == "zip"

    region_of, zip_lat, zip_lon = _zip_tables(store, zip_i)
    zi = np.clip(zip_i, 0, 99_999)
    zip_known = (zip_i >= 0) & (zip_i < 100_000) & (region_of[zi] >= 0)
    has_coords = np.isfinite(lat) & np.isfinite(lon)
    coords_ok = has_coords & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)

    key = np.full(n, -1, dtype=np.int64)
    if is_zip:
        by_zip = zip_known
        by_point = ~zip_known & coords_ok
        key[by_zip] = region_of[zi[by_zip]]
        key[by_point] = zip_polygons_containing(store, lat[by_point], lon[by_point])
    else:
        by_point = coords_ok
        by_zip = ~coords_ok & zip_known
        use = by_point | by_zip
        plat = np.where(by_point, lat, zip_lat[zi])
        plon = np.where(by_point, lon, zip_lon[zi])
        if use.any():
            # As the import files a lead: its level-9 cell, then that cell's parent at the plan's level (a parent
            # does not always contain every point of its children), so a routed lead lands where its stored twin is.
            base = index_points(plat[use], plon[use], BASE_H3_RES)
            key[use] = parent_int(base, layer.res).astype(np.int64)  # H3 ids are < 2**63

    region_id = _region_labels(key, is_zip)
    wanted = None if n > FEW_POINTS else sorted({r for r in region_id if r is not None})
    owners = lookup_queries.region_owners(store, plan.plan_id, wanted)
    owner_keys = (owners["region_id"].astype(np.int64) if is_zip
                  else pd.Series([int(r, 16) for r in owners["region_id"]], dtype=np.int64))
    pos = pd.Index(owner_keys.to_numpy()).get_indexer(key)
    pos[key < 0] = -1
    in_plan = pos >= 0
    tid = owners["territory_id"].to_numpy(dtype=float, na_value=np.nan)
    territory_id = np.where(in_plan, tid[np.maximum(pos, 0)] if len(tid) else np.nan, np.nan)
    owned = ~np.isnan(territory_id)

    reason = np.full(n, None, dtype=object)
    unplaced_region = key < 0
    reason[unplaced_region & ~zip_given & ~has_coords] = NO_LOCATION
    reason[unplaced_region & ~zip_known & has_coords & ~coords_ok & ~zip_given] = BAD_COORDINATES
    reason[unplaced_region & zip_given & ~zip_known & ~coords_ok] = UNKNOWN_ZIP
    reason[unplaced_region & by_point] = NO_REGION
    reason[~unplaced_region & ~in_plan] = OUTSIDE_PLAN
    reason[in_plan & ~owned] = NO_TERRITORY

    def owner_column(name: str) -> np.ndarray:
        values = owners[name].astype(object)
        values = values.where(values.notna(), None).to_numpy(dtype=object)
        col = np.full(n, None, dtype=object)
        if len(values):
            col[owned] = values[pos[owned]]
        return col

    located_by = np.where(~unplaced_region, np.where(by_zip, "zip", "coordinates"), None)
    # Object columns throughout: a missing value is None (pandas would turn a column of text and None into
    # strings with NaN).
    return pd.DataFrame({
        "region_id": pd.Series(region_id, dtype=object),
        "located_by": pd.Series(located_by, dtype=object),
        "territory_id": pd.arrays.IntegerArray(np.where(owned, territory_id, 0).astype(np.int64), ~owned),
        "territory": pd.Series(owner_column("territory"), dtype=object),
        "rep_id": pd.Series(owner_column("rep_id"), dtype=object),
        "rep_name": pd.Series(owner_column("rep_name"), dtype=object),
        "parent": pd.Series(owner_column("parent"), dtype=object),
        "reason": pd.Series(reason, dtype=object),
    })


def locate(store: Store, plan: PlanInfo, frame: pd.DataFrame) -> pd.DataFrame:
    """Region and territory of each row of ``frame`` (a leads or accounts frame with ``postal_zip`` and/or ``lat``
    and ``lon``; ZIPs as text or numbers, ZIP+4 accepted), index-aligned with it: region_id, located_by,
    territory_id, territory, rep_id, rep_name, reason (None: placed; else one of :data:`REASONS`)."""
    n = len(frame)
    if "postal_zip" in frame:
        zip_i, given = zip_numbers(frame["postal_zip"].to_numpy(dtype=object))
    else:
        zip_i, given = np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=bool)

    def coordinate(name: str) -> np.ndarray:
        if name not in frame:
            return np.full(n, np.nan)
        return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)

    placed = place(store, plan, zip_i, given, coordinate("lat"), coordinate("lon"))
    return placed.drop(columns="parent").set_index(frame.index)


# ---------------------------------------------------------------------------
# One location: lookup


def parse_query(text: str) -> dict:
    """``"75001"`` / ``"75001-1234"`` -> {"zip": ...}; ``"32.9, -96.8"`` (or separated by a space) ->
    {"lat": 32.9, "lon": -96.8}. Raises ValueError with what to type."""
    text = (text or "").strip()
    if re.fullmatch(r"\d{3,5}(-?\d{4})?", text):
        return {"zip": text}
    match = _LAT_LON_RE.match(text)
    if match:
        return {"lat": float(match.group(1)), "lon": float(match.group(2))}
    raise ValueError(f"{text!r}: type a ZIP (75001) or a latitude, longitude (32.9, -96.8)")


def hierarchy_path(store: Store, plan_id: int, node: str | None) -> list[dict]:
    """The hierarchy nodes above a territory whose parent is ``node``, top first: [{"level", "name"}, ...]."""
    if node is None:
        return []
    rows = stored_hierarchy.node_rows(store.cursor(), plan_id)
    by_id = {r.node_id: r for r in rows.itertuples(index=False)}
    path: list[dict] = []
    seen: set[str] = set()
    while node is not None and node in by_id and node not in seen:  # seen: a cycle must not hang a lookup
        seen.add(node)
        row = by_id[node]
        path.append({"level": row.level, "name": row.name})
        node = None if pd.isna(row.parent) else row.parent
    return path[::-1]


def lookup(store: Store, plan: PlanInfo, *, zip: str | None = None, lat: float | None = None,
           lon: float | None = None) -> dict:
    """The owner of one ZIP or one point, as :func:`locate` places a row: plan, layer, query, region,
    located_by, territory, territory_id, rep_id, rep_name, hierarchy (the nodes above the territory, top
    first), path ("Division / Region / Territory"), reason (None: placed)."""
    if zip is not None:
        query = {"zip": str(zip)}
        zip_i, given = zip_numbers([str(zip)])
        row = place(store, plan, zip_i, given, np.array([np.nan]), np.array([np.nan])).iloc[0]
    elif lat is not None and lon is not None:
        query = {"lat": float(lat), "lon": float(lon)}
        row = place(store, plan, np.array([-1]), np.array([False]), np.array([float(lat)]),
                    np.array([float(lon)])).iloc[0]
    else:
        raise ValueError("give a ZIP, or a latitude and a longitude")
    placed = row["reason"] is None
    hierarchy = hierarchy_path(store, plan.plan_id, row["parent"]) if placed else []
    names = [h["name"] for h in hierarchy] + ([row["territory"]] if placed else [])
    return {
        "plan": plan.name, "layer": plan.layer, "query": query,
        "region": row["region_id"], "located_by": row["located_by"],
        "territory": row["territory"], "territory_id": None if pd.isna(row["territory_id"]) else int(row["territory_id"]),
        "rep_id": row["rep_id"], "rep_name": row["rep_name"],
        "hierarchy": hierarchy, "path": " / ".join(str(x) for x in names) or None,
        "reason": row["reason"],
    }


# ---------------------------------------------------------------------------
# A file: assign


def _one_line(exc: ImportRejected) -> str:
    first = exc.problems[0].message if exc.problems else str(exc)
    more = len(exc.problems) - 1
    return first + (f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else "")


def assign_file(store: Store, plan: PlanInfo, path, out) -> dict:
    """Route every row of a CSV or Parquet file of leads or accounts to its territory in ``plan``; write the
    file's rows with :data:`OUTPUT_COLUMNS` added to the CSV ``out`` (an input column of the same name is kept
    as ``<name>_input``). Returns the summary: rows, placed, unplaced (count per reason), unplaced_rows (the
    first :data:`MAX_LISTED`: row number and reason), located_by, seconds. Raises :class:`AssignRejected`
    (one line, ``out`` not written) when the file cannot be used at all."""
    t0 = time.perf_counter()
    path, out = Path(path), Path(out)
    cur = store.cursor()
    try:
        src = open_source(cur, path)
    except ImportRejected as exc:
        raise AssignRejected(_one_line(exc)) from None
    m = suggest_mapping(src.columns)
    if m["postal_zip"] is None and (m["lat"] is None or m["lon"] is None):
        raise AssignRejected("no location column: need a ZIP code column (e.g. 'PostalCode', 'Zip') or Latitude "
                             f"and Longitude; the file's columns are: {', '.join(map(repr, src.columns))}")
    try:
        table = cur.sql(located_sql(src, m)).to_arrow_table()
    except Exception as exc:  # duckdb raises several types for malformed files
        raise AssignRejected(f"cannot read {path.name}: {first_line(exc)}") from None

    zip_text = table.column(LOCATION_COLUMNS[1]).to_pandas()
    zip_i = pd.to_numeric(zip_text, errors="coerce").fillna(-1).astype(np.int64).to_numpy()
    placed = place(store, plan, zip_i, table.column(LOCATION_COLUMNS[0]).to_numpy(zero_copy_only=False),
                   table.column(LOCATION_COLUMNS[2]).to_numpy(zero_copy_only=False).astype(float),
                   table.column(LOCATION_COLUMNS[3]).to_numpy(zero_copy_only=False).astype(float))

    table = table.drop_columns(list(LOCATION_COLUMNS))
    names = [f"{c}_input" if c in OUTPUT_COLUMNS else c for c in table.column_names]
    table = table.rename_columns(names)
    for name in OUTPUT_COLUMNS:
        values = placed[name]
        if name == "territory_id":
            table = table.append_column(name, pa.array(values, type=pa.int64(), from_pandas=True))
        else:
            table = table.append_column(name, pa.array(values.to_numpy(dtype=object), type=pa.string(),
                                                        from_pandas=True))
    tmp = out.with_name(out.name + ".part")
    try:
        pa_csv.write_csv(table, tmp, pa_csv.WriteOptions(quoting_style="needed"))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)

    reasons = placed["reason"]
    unplaced = reasons.notna().to_numpy()
    rows = np.flatnonzero(unplaced)[:MAX_LISTED]
    numbers = RowNumbers(src)(rows)
    counts = reasons[unplaced].value_counts()
    return {
        "rows": int(len(placed)),
        "placed": int((~unplaced).sum()),
        "unplaced": {r: int(counts[r]) for r in REASONS if r in counts},
        "unplaced_rows": [{src.where(k).split()[0]: k, "reason": reasons.iat[int(i)]} for i, k in zip(rows, numbers)],
        "row_numbers": src.convention,
        "located_by": {k: int(v) for k, v in placed["located_by"].value_counts().items()},
        "plan": plan.name, "layer": plan.layer, "file": str(path), "out": str(out),
        "mapping": {k: m[k] for k in ("postal_zip", "lat", "lon") if m[k] is not None},
        "seconds": round(time.perf_counter() - t0, 3),
    }

