"""ZIP polygons: approximate Voronoi regions, or real Census ZCTA boundaries when the user supplies them.

**Voronoi (the default, offline).** For each state, the Voronoi cells of its
standard-ZIP centroids are computed in the conformal projection of
:mod:`terrmap.geo.zipdata` -- the same metric as the nearest-centroid point
assignment, so a point inside a ZIP's polygon has that ZIP as its nearest
same-state centroid -- and clipped to the state's outline
(:mod:`terrmap.geo.outlines`: libpysal's lower 48, plus discs around the
centroids of coastal ZIPs that fall outside that coarse outline; discs of
20 km around all centroids for AK, HI, PR, DC and the territories). Cell edges
are densified before unprojecting (a straight edge in the projection is a curve
in lon/lat), each state's cells are simplified together as a coverage (shared
edges stay shared) and coordinates are rounded to 5 decimals (~1 m). The whole
US (32k ZIPs) builds in about two seconds; :func:`ensure_zip_shapes` does it
once per database.

**Real ZCTAs.** Put a Census ZCTA boundary file (e.g.
``cb_2020_us_zcta520_500k.zip`` from
https://www.census.gov/geographies/mapping-files/time-series/geo/cartographic-boundary.html)
in the directory that holds the database (``data/`` by default) -- any file
whose name contains ``zcta`` ending in .shp, .zip, .gpkg or .geojson -- or
point ``$TERRMAP_ZCTA`` at it. The next :func:`ensure_zip_shapes` (i.e. the
next ZIP map) loads it through :func:`load_zcta`; ``python -m terrmap zcta
FILE [FILE ...]`` loads one or several now. Per-state files (TIGER's
``tl_2010_44_zcta510``, ...) add up: a load replaces only the shapes of the
states its files cover. ZCTAs replace the Voronoi polygons of the ZIPs they
cover (coverage-simplified, so shared borders stay shared); ZCTAs without a
region ZIP are merged into the neighbouring region ZIP; the remaining standard
ZIPs keep their Voronoi cell minus the real polygons. PO-box and unique ZIPs
are then re-assigned to the polygon that contains their point and the leads
filed under them follow, in one transaction. :func:`rebuild_zip_shapes` goes
back to Voronoi.

``meta`` records the geometry in use: ``zip_shapes_source`` ('voronoi' or the
names of the ZCTA files in use, comma-separated), ``zip_shapes_file``
(name|size|mtime of the files of the last load, ``;``-separated) and
``zip_shapes_built_at``.

The tables are read and written through ``store.zip_tables`` (:mod:`terrmap.data.zip_tables`, a layer above).
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import shapely

from terrmap.frames import member
from terrmap.geo.distance import KM_PER_DEGREE
from terrmap.geo.memo import LoadCache, memo_by_digest
from terrmap.geo.outlines import (
    discs_outline,
    polygonal,
    project_geoms,
    round_geoms,
    unproject_geoms,
    us48_projected,
)
from terrmap.geo.zipdata import project, reference_table

if TYPE_CHECKING:
    from terrmap.data.store import Store

SOURCE_VORONOI = "voronoi"
META_SOURCE = "zip_shapes_source"
META_FILE = "zip_shapes_file"
META_BUILT = "zip_shapes_built_at"
META_FILE_ERROR = "zip_shapes_file_error"
ZCTA_ENV_VAR = "TERRMAP_ZCTA"
ZCTA_SUFFIXES = (".shp", ".zip", ".gpkg", ".geojson")
ZCTA_CODE_COLUMNS = ("ZCTA5CE20", "ZCTA5CE10", "ZCTA5CE", "GEOID20", "GEOID10", "ZCTA5", "ZCTA", "GEOID",
                     "ZIP", "ZIPCODE", "ZIP_CODE")

DECIMALS = 5  # ~1 m
DENSIFY_DEG = 0.05  # max edge length (projected degrees) before unprojecting: keeps curved edges within ~10 m
SIMPLIFY_DEG = 0.0001  # coverage simplification of each state's cells (~10 m)
OUTSIDE_RADIUS_KM = 5.0  # disc kept around a centroid lying outside its state's coarse outline
NEIGHBOUR_RADIUS_KM = 1.0  # ... and around one lying inside a neighbouring state's outline
ZCTA_SIMPLIFY_DEG = 0.0002  # coverage simplification of real ZCTA polygons (~20 m)
ZCTA_STATE_COLUMNS = ("STATEFP20", "STATEFP10", "STATEFP", "STATEFP00")
OVERLAP_DEG2 = 1e-8  # ~100 m²: an overlap this small is rounding along a shared border, not a shape
SLIVER_WIDTH_DEG = 2e-5  # ~2 m: an overlap narrower than this on average is a rounding sliver along a border
CARVE_RADIUS_KM = 0.5  # the disc a region ZIP keeps when real polygons cover its whole Voronoi cell


# -- Voronoi ---------------------------------------------------------------------------------------------------------
def region_points(store: Store) -> pd.DataFrame:
    """The region ZIPs (standard ZIPs with a centroid): zip, state, lat, lon."""
    return store.zip_tables.region_points(store)


def _clip_region(state: str, xy: np.ndarray):
    """The projected area a state's cells are clipped to."""
    states, geoms, _ = us48_projected()
    if state not in states:
        return discs_outline(xy)
    outline = geoms[states.index(state)]
    outside = ~shapely.contains_xy(outline, xy[:, 0], xy[:, 1])
    if not outside.any():
        return outline
    clip = shapely.union(outline, discs_outline(xy[outside], OUTSIDE_RADIUS_KM, exclude_state=state))
    # Centroids inside a neighbour's (coarse) outline keep a small disc, overlapping that neighbour.
    still = ~shapely.contains_xy(clip, xy[:, 0], xy[:, 1])
    if still.any():
        discs = shapely.buffer(shapely.points(xy[still]), NEIGHBOUR_RADIUS_KM / KM_PER_DEGREE, quad_segs=6)
        clip = shapely.union(clip, shapely.union_all(discs))
    return clip


def _voronoi_cells(xy: np.ndarray, clip) -> np.ndarray:
    """Projected Voronoi cells of the points (in their order), clipped to ``clip``."""
    n = len(xy)
    if n == 1:
        return np.array([clip], dtype=object)
    pts = shapely.multipoints(xy)
    x0, y0, x1, y1 = shapely.bounds(shapely.union(clip, pts))
    env = shapely.box(x0 - 1, y0 - 1, x1 + 1, y1 + 1)
    cells = shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=env, ordered=True))
    if len(cells) != n:
        raise RuntimeError(f"Voronoi returned {len(cells)} cells for {n} points (duplicate centroids?)")
    shapely.prepare(clip)
    inside = shapely.contains(clip, cells)
    edge = np.flatnonzero(~inside)
    cells[edge] = shapely.intersection(cells[edge], clip)
    for i in edge:
        if shapely.get_type_id(cells[i]) not in (3, 6):
            cells[i] = polygonal(cells[i])
    return cells


def _finish(cells: np.ndarray) -> np.ndarray:
    """Projected cells of one state -> lon/lat, simplified as a coverage, rounded."""
    ok = np.array([c is not None and not c.is_empty for c in cells], dtype=bool)
    out = np.full(len(cells), None, dtype=object)
    if not ok.any():
        return out
    geo = unproject_geoms(shapely.segmentize(cells[ok], DENSIFY_DEG))
    try:
        geo = shapely.coverage_simplify(geo, SIMPLIFY_DEG)
    except Exception:  # not a clean coverage (should not happen): keep the densified edges
        pass
    out[ok] = round_geoms(geo, DECIMALS)
    return out


def build_voronoi_shapes(points: pd.DataFrame) -> pd.DataFrame:
    """Voronoi polygons of region ZIPs (columns zip, state, lat, lon; see :func:`region_points`).

    Returns zip, state, area_km2 and geometry (shapely, lon/lat, rounded); a
    ZIP whose cell vanished in clipping (none in the census data) gets None.
    """
    frames = []
    for state, g in points.groupby("state", sort=True):
        xy = project(g["lat"].to_numpy(), g["lon"].to_numpy())
        cells = _voronoi_cells(xy, _clip_region(str(state), xy))
        area = np.nan_to_num(shapely.area(cells)) * KM_PER_DEGREE**2
        frames.append(
            pd.DataFrame({"zip": g["zip"].to_numpy(), "state": str(state), "area_km2": area, "geometry": _finish(cells)})
        )
    if not frames:
        return pd.DataFrame({"zip": [], "state": [], "area_km2": [], "geometry": []})
    return pd.concat(frames, ignore_index=True)


@memo_by_digest
def _voronoi_shape_rows(points: pd.DataFrame) -> pd.DataFrame:
    """zip_shapes rows of the Voronoi polygons, kept per process for the same points (the built-in ZIP
    reference gives every new database the same ones)."""
    return _shape_rows(build_voronoi_shapes(points).assign(source=SOURCE_VORONOI))


# -- storage ---------------------------------------------------------------------------------------------------------
def _shape_rows(df: pd.DataFrame) -> pd.DataFrame:
    """zip_shapes rows (geojson text) from zip, state, source, area_km2, geometry; empty geometries dropped."""
    df = df[df["geometry"].notna()]
    return pd.DataFrame(
        {
            "zip": df["zip"].astype(str).to_numpy(),
            "state": df["state"].to_numpy(),
            "source": df["source"].astype(str).to_numpy(),
            "area_km2": np.round(df["area_km2"].astype(float).to_numpy(), 3),
            "geojson": shapely.to_geojson(df["geometry"].to_numpy()),
        }
    )


def _set_meta(store: Store, tx, source: str, file_sig: str | None) -> None:
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    store.zip_tables.write_meta(tx, [(META_SOURCE, source), (META_FILE, file_sig or ""), (META_BUILT, now)])


def zip_shapes_source(store: Store) -> str | None:
    """'voronoi', the names of the ZCTA files in use (comma-separated), or None before the shapes are built."""
    return store.get_meta(META_SOURCE)


# Every stored polygon parsed once per geometry (shapes stamp), for all databases of the process: parsing the
# country's GeoJSON takes ~0.2 s, and the map, the editor, area completion and lookups each ask for polygons.
_PARSED = LoadCache(max_entries=2)


def _parsed_shapes(store: Store) -> pd.DataFrame:
    df = store.zip_tables.shape_table(store)
    df["geometry"] = shapely.from_geojson(df.pop("geojson").to_numpy(dtype=object))
    return df


def zip_shape_geoms(store: Store, zips=None, states=None) -> pd.DataFrame:
    """Stored ZIP polygons as shapely geometries: zip, state, source, area_km2, geometry (all, or ``zips``, or
    those of ``states``), by zip. A new frame each call (the geometries are shared: shapely's are immutable)."""
    every = _PARSED.get(store.zip_tables.shapes_stamp(store), lambda: _parsed_shapes(store))
    if zips is not None:
        keep = member(every["zip"], list(zips))
    elif states is not None:
        keep = member(every["state"], list(states))
    else:
        return every.copy(deep=False)
    return every[keep].reset_index(drop=True)


def ensure_zip_shapes(store: Store, auto_zcta: bool = True) -> str:
    """Make sure ``zip_shapes`` is filled; returns the geometry source in use.

    Builds the Voronoi polygons if the table is empty (about 2 s for the US).
    With ``auto_zcta``, a ZCTA file found by :func:`find_zcta_file` that is not
    the one already loaded is loaded with :func:`load_zcta` (a file that fails
    to load is reported once as a warning and not retried until it changes).
    Cheap when there is nothing to do: safe to call before every map.
    """
    if not store.zip_tables.has_shapes(store):
        with store.transaction() as tx:
            if not store.zip_tables.has_shapes_in(tx):
                store.zip_tables.write_shapes(tx, _voronoi_shape_rows(region_points(store)))
                _set_meta(store, tx, SOURCE_VORONOI, None)
    if auto_zcta:
        path = find_zcta_file(store)
        if path is not None:
            sig = _file_signature(path)
            loaded = (store.get_meta(META_FILE) or "").split(";")
            if sig not in loaded and sig != store.get_meta(META_FILE_ERROR):
                try:
                    load_zcta(store, path)
                except Exception as exc:  # a bad file must not break the map
                    store.set_meta(META_FILE_ERROR, sig)
                    warnings.warn(f"could not load ZCTA file {path}: {exc}; keeping the current ZIP polygons",
                                  stacklevel=2)
    return store.get_meta(META_SOURCE) or SOURCE_VORONOI


def rebuild_zip_shapes(store: Store) -> dict:
    """Back to Voronoi polygons and nearest-centroid region ZIPs (undoes :func:`load_zcta`); returns a summary."""
    t0 = time.perf_counter()
    rows = _voronoi_shape_rows(region_points(store))  # the region ZIPs' cells, as every new database has them
    ref = reference_table()[["zip", "region_zip"]].dropna()
    current = store.zip_tables.region_zip_map(store)
    merged = current.merge(ref, on="zip", how="inner", suffixes=("_old", ""))
    with store.transaction() as tx:
        store.zip_tables.write_shapes(tx, rows)
        moved = store.zip_tables.apply_region_zips(tx, merged[["zip", "region_zip"]])
        _set_meta(store, tx, SOURCE_VORONOI, None)
    return {"source": SOURCE_VORONOI, "shapes": len(rows), **moved, "seconds": round(time.perf_counter() - t0, 2)}


# -- real ZCTA boundaries -----------------------------------------------------------------------------------------
def _file_signature(path: Path) -> str:
    st = path.stat()
    return f"{path.name}|{st.st_size}|{st.st_mtime_ns}"


def find_zcta_file(store: Store | None = None, directory: str | os.PathLike | None = None) -> Path | None:
    """The ZCTA file to use: ``$TERRMAP_ZCTA`` if set (empty or 'none' disables), else the newest
    ``*zcta*`` .shp/.zip/.gpkg/.geojson in ``directory`` (default: the directory of the store's database)."""
    env = os.environ.get(ZCTA_ENV_VAR)
    if env is not None:
        if env.strip().lower() in ("", "none", "off", "0"):
            return None
        p = Path(env).expanduser()
        return p if p.is_file() else None
    if directory is None:
        if store is None:
            return None
        directory = Path(store.path).parent
    d = Path(directory)
    if not d.is_dir():
        return None
    found = [p for p in d.iterdir()
             if p.is_file() and "zcta" in p.name.lower() and p.suffix.lower() in ZCTA_SUFFIXES]
    if not found:
        return None
    return max(found, key=lambda p: (p.stat().st_mtime_ns, p.name))


class ZctaFileError(ValueError):
    """A boundary file that cannot be used; the message is one line naming the file and the problem."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@functools.cache
def _state_by_fips() -> dict[str, str]:
    """Two-digit state FIPS code -> postal abbreviation, from the ZIP reference's county codes."""
    ref = reference_table()[["county_fips", "state"]].dropna()
    by_fips = ref.assign(fips=ref["county_fips"].astype(str).str[:2]).groupby("fips")["state"]
    return by_fips.agg(lambda s: s.mode().iat[0]).to_dict()


def _polygon_kinds(geoms: np.ndarray) -> str:
    """'Point, LineString' ...: the non-polygon geometry types among ``geoms``."""
    kinds = sorted({shapely.get_type_id(g) for g in geoms if g is not None} - {3, 6})
    names = {0: "Point", 1: "LineString", 2: "LinearRing", 4: "MultiPoint", 5: "MultiLineString",
             7: "GeometryCollection"}
    return ", ".join(names.get(k, str(k)) for k in kinds)


def read_zcta(path: str | os.PathLike, simplify_tolerance: float = ZCTA_SIMPLIFY_DEG) -> pd.DataFrame:
    """A ZCTA file -> zip (5 digits), state (postal, from a STATEFP column; None without one), file (its name),
    geometry (shapely, lon/lat, valid, one row per ZCTA).

    Simplification is a coverage simplification of the whole file (``shapely.coverage_simplify``): a border two
    ZCTAs share is simplified once, so it stays shared; the file's outer edges (coast, the state line of a
    per-state file) are left as they are, so they still match the next file's. A file whose polygons do not form
    a clean coverage is not simplified (simplifying it would open gaps and overlaps).

    Raises :class:`ZctaFileError` (one line) for a file that is not a polygon boundary file with a ZIP/ZCTA
    column, FileNotFoundError for a missing one.
    """
    import pyogrio  # GDAL loads only when a boundary file is read, not with every map

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        info = pyogrio.read_info(path)
    except Exception as exc:  # GDAL's errors for a format it does not know are of several classes
        raise ZctaFileError(f"{path.name}: unreadable format, not a boundary file (.shp, .zip, .gpkg, .geojson): "
                            f"{_first_line(exc)}") from exc
    gtype = info.get("geometry_type")
    if not gtype:
        raise ZctaFileError(f"{path.name}: unreadable format: no geometries (a table, not a boundary file)")
    if "polygon" not in gtype.lower() and gtype.lower() not in ("unknown", "geometry"):
        raise ZctaFileError(f"{path.name}: not polygons (the file holds {gtype} geometries)")
    fields = [str(f) for f in info["fields"]]
    by_upper = {f.upper(): f for f in fields}
    column = next((by_upper[c] for c in ZCTA_CODE_COLUMNS if c in by_upper), None)
    if column is None:
        raise ZctaFileError(f"{path.name}: no ZIP/ZCTA column (looked for {', '.join(ZCTA_CODE_COLUMNS)}; "
                            f"the file has {', '.join(fields) or 'no columns'})")
    state_column = next((by_upper[c] for c in ZCTA_STATE_COLUMNS if c in by_upper), None)
    try:
        gdf = pyogrio.read_dataframe(path, columns=[column] + ([state_column] if state_column else []))
    except Exception as exc:
        raise ZctaFileError(f"{path.name}: unreadable format: {_first_line(exc)}") from exc
    if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs(4326)
    geoms = gdf.geometry.to_numpy()
    other = _polygon_kinds(geoms)
    if other:
        raise ZctaFileError(f"{path.name}: not polygons (the file holds {other} geometries)")
    codes = gdf[column].astype(str).str.strip()
    codes = codes.where(codes.str.len() <= 5, codes.str[-5:]).str.zfill(5)
    if state_column:
        states = gdf[state_column].astype(str).str.strip().str.zfill(2).map(_state_by_fips()).to_numpy(dtype=object)
    else:
        states = np.full(len(gdf), None, dtype=object)
    bad = np.flatnonzero(~shapely.is_valid(geoms))
    if len(bad):
        geoms = geoms.copy()
        geoms[bad] = [polygonal(shapely.make_valid(g)) for g in geoms[bad]]
    df = pd.DataFrame({"zip": codes.to_numpy(), "state": states, "geometry": geoms})
    df = df[df["geometry"].notna() & ~shapely.is_empty(df["geometry"].to_numpy())]
    if df.empty:
        raise ZctaFileError(f"{path.name}: no polygons")
    if df["zip"].duplicated().any():
        df = df.groupby("zip", as_index=False, sort=False).agg(
            state=("state", "first"), geometry=("geometry", lambda s: shapely.union_all(s.to_numpy())))
    geoms = df["geometry"].to_numpy()
    if simplify_tolerance > 0 and shapely.coverage_is_valid(geoms):
        geoms = shapely.coverage_simplify(geoms, simplify_tolerance, simplify_boundary=False)
    return pd.DataFrame({"zip": df["zip"].to_numpy(), "state": df["state"].to_numpy(), "file": path.name,
                         "geometry": round_geoms(geoms, DECIMALS)})


def _as_paths(paths) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def read_zcta_files(paths, simplify_tolerance: float = ZCTA_SIMPLIFY_DEG) -> pd.DataFrame:
    """:func:`read_zcta` of one path or several, in one frame; every file is checked before any is used (the
    first bad one raises)."""
    paths = _as_paths(paths)
    if not paths:
        raise ZctaFileError("no ZCTA file given")
    return pd.concat([read_zcta(p, simplify_tolerance) for p in paths], ignore_index=True)


def _merge_targets(pieces: np.ndarray, codes: np.ndarray, regions: np.ndarray, region_zips: np.ndarray) -> np.ndarray:
    """For each polygon of ``pieces`` (ZCTAs ``codes`` without a region ZIP), the region ZIP it joins: the one
    among ``regions`` (``region_zips``) sharing the longest border with it; one sharing none (an island) joins
    the region ZIP the reference files its code under, if that one is among ``regions``; else None (not a ZIP
    the reference knows near any region: left out)."""
    out = np.full(len(pieces), None, dtype=object)
    if len(pieces) == 0 or len(regions) == 0:
        return out
    tree = shapely.STRtree(regions)
    pi, ri = tree.query(pieces, predicate="intersects")
    shared = shapely.length(shapely.intersection(shapely.boundary(pieces[pi]), shapely.boundary(regions[ri])))
    border = pd.DataFrame({"p": pi, "r": ri, "shared": shared})
    border = border[border["shared"] > 0].sort_values(["p", "shared"], ascending=[True, False]).drop_duplicates("p")
    out[border["p"].to_numpy()] = region_zips[border["r"].to_numpy()]
    lonely = np.flatnonzero(pd.isna(out))
    if len(lonely):
        filed_under = reference_table().set_index("zip")["region_zip"].reindex(codes[lonely]).to_numpy(dtype=object)
        present = member(filed_under, region_zips)
        out[lonely[present]] = filed_under[present]
    return out


def _cut(geoms: np.ndarray, cutters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``geoms`` minus the ``cutters`` they overlap by more than rounding; returns the new geometries and
    whether each lost everything (None). A geometry that only touches the cutters is left as it is."""
    geoms = geoms.copy()
    emptied = np.zeros(len(geoms), dtype=bool)
    if len(geoms) == 0 or len(cutters) == 0:
        return geoms, emptied
    tree = shapely.STRtree(cutters)
    gi, ci = tree.query(geoms, predicate="intersects")
    if len(gi) == 0:
        return geoms, emptied
    common = shapely.intersection(geoms[gi], cutters[ci])
    overlap = shapely.area(common)
    # Rounding to 5 decimals leaves slivers along a shared border (hundreds of m² along a long one, but under a
    # metre wide): they are no overlap, and cutting them would only make the next load cut them again.
    wide = 2 * overlap > SLIVER_WIDTH_DEG * shapely.length(common)
    hits = pd.DataFrame({"g": gi, "c": ci})[(overlap > OVERLAP_DEG2) & wide]
    for g, group in hits.groupby("g", sort=False):
        rest = polygonal(shapely.difference(geoms[g], shapely.union_all(cutters[group["c"].to_numpy()])))
        if rest is not None and geoms[g].area - rest.area < OVERLAP_DEG2:
            continue  # only slivers after all: keep the geometry as it is
        geoms[g] = rest
        emptied[g] = rest is None
    return geoms, emptied


def _carve(lat: float, lon: float, reals: np.ndarray):
    """A disc of :data:`CARVE_RADIUS_KM` around a region ZIP's centroid, within the real polygons: the shape of
    a region ZIP whose Voronoi cell the real polygons cover entirely."""
    centre = shapely.Point(project([lat], [lon])[0])
    disc = unproject_geoms(np.array([shapely.buffer(centre, CARVE_RADIUS_KM / KM_PER_DEGREE, quad_segs=8)]))[0]
    under = reals[shapely.STRtree(reals).query(disc, predicate="intersects")]
    disc = polygonal(shapely.intersection(disc, shapely.union_all(under))) if len(under) else disc
    return round_geoms(np.array([disc]), DECIMALS)[0]


def load_zcta(store: Store, paths, simplify_tolerance: float = ZCTA_SIMPLIFY_DEG, *,
              zcta: pd.DataFrame | None = None) -> dict:
    """Use Census ZCTA boundary files for the ZIP polygons (``python -m terrmap zcta FILE [FILE ...]``).

    ``paths``: one path or several; each a .shp, .gpkg, .geojson, or a .zip holding a shapefile, e.g. the
    Census cartographic-boundary ``cb_2020_us_zcta520_500k.zip`` or the TIGER per-state ``tl_2010_44_zcta510``;
    the ZCTA code column may be ZCTA5CE20, ZCTA5CE10, GEOID20, GEOID10, ZCTA5 (and a few other spellings), in
    any CRS. ``zcta``: the files already read by :func:`read_zcta_files` (the CLI checks them before it opens
    the database). Every file is read and checked first; then, in one transaction:

    * **Per-state loads add up.** The states a load touches are the states of its ZCTAs (the file's STATEFP
      column, else the state of the ZIP in the reference). Only the shapes of those states are replaced;
      the other states keep what they have (real polygons of an earlier load, or Voronoi cells). A ZCTA split
      between states (TIGER's PARTFLG) adds its piece to the ZIP's polygon from the other state's file.
    * Every region ZIP (standard ZIP with a centroid) of a touched state that has a ZCTA gets the real
      polygon (``source`` = the file's name, coverage-simplified, see :func:`read_zcta`); the other region
      ZIPs of those states get their Voronoi cell minus all real polygons (a remnant that no longer holds its
      centroid stays the small piece it is: remnants never overlap real polygons); a cell the real polygons
      cover entirely becomes a disc of :data:`CARVE_RADIUS_KM` around its centroid cut out of them.
    * **ZCTAs without a region ZIP** (a PO-box or unique ZIP's ZCTA) are merged into the region ZIP of the
      same load whose ZCTA shares the longest border with them, so their area stays covered by real polygons;
      one that shares no border (an island) joins the region ZIP the reference files its code under. Only a
      ZCTA that is neither (a code the reference does not know, far from the rest) is ignored: its area
      stays with the Voronoi remnants.
    * ``zips.region_zip`` of every other located ZIP (PO box, unique, military) becomes the region whose
      polygon contains its point (preferring its own state, then a real polygon); a point in no polygon
      keeps the nearest-centroid region; leads filed under a remapped ZIP (``postal_zip``) that followed the
      old mapping move to the new region (``leads.zip``);
    * the stored ZIP adjacency (shared borders, sizes) is updated for the shapes that changed, when it was
      stored (else it is computed on first use, as for Voronoi shapes);
    * ``meta`` records the files.

    Returns a summary: source, files (per file: file, states, zcta), states_touched, zcta_in_file, zcta_used,
    zcta_merged, zcta_ignored, voronoi_kept, voronoi_carved, shapes_changed, zips_remapped, leads_moved, adjacency
    ('updated' or 'deferred'), seconds. The region set (and so every plan's assignment) is unchanged.
    """
    t0 = time.perf_counter()
    paths = _as_paths(paths)
    if zcta is None:
        zcta = read_zcta_files(paths, simplify_tolerance)
    ensure_zip_shapes(store, auto_zcta=False)
    points = region_points(store)
    region_state = points.set_index("zip")["state"]
    ref_state = reference_table().set_index("zip")["state"]

    zcta = zcta.reset_index(drop=True).copy()
    known = ref_state.reindex(zcta["zip"]).to_numpy(dtype=object)
    zcta["state"] = np.where(pd.isna(zcta["state"]), known, zcta["state"])
    is_region = member(zcta["zip"], region_state.index)
    targets = zcta["zip"].to_numpy(dtype=object).copy()
    targets[~is_region] = _merge_targets(zcta["geometry"].to_numpy()[~is_region],
                                         zcta["zip"].to_numpy(dtype=object)[~is_region],
                                         zcta["geometry"].to_numpy()[is_region],
                                         zcta["zip"].to_numpy(dtype=object)[is_region])
    zcta["target"] = targets
    no_state = pd.isna(zcta["state"]) & zcta["target"].notna()
    zcta.loc[no_state, "state"] = region_state.reindex(zcta.loc[no_state, "target"]).to_numpy()
    touched = sorted({str(s) for s in zcta["state"].dropna()})
    pieces = zcta[zcta["target"].notna()]
    real = pieces.groupby("target", sort=True).agg(
        source=("file", "first"),
        geometry=("geometry", lambda s: s.iat[0] if len(s) == 1 else shapely.union_all(s.to_numpy())))
    real = real.reset_index().rename(columns={"target": "zip"})
    real["state"] = region_state.reindex(real["zip"]).to_numpy()

    stored = store.zip_tables.shape_table(store)
    parsed = zip_shape_geoms(store)  # parsed once per geometry (the map, lookups and the last load parsed it)
    if parsed["zip"].tolist() == stored["zip"].tolist():
        stored["geometry"] = parsed["geometry"].to_numpy()
    else:  # written meanwhile by another process
        stored["geometry"] = shapely.from_geojson(stored["geojson"].to_numpy(dtype=object))
    kept = stored[~stored["state"].isin(touched)].drop(columns=["geojson", "area_km2"]).reset_index(drop=True)
    kept_real = kept["source"] != SOURCE_VORONOI
    # Pieces of a ZIP split between states: the new pieces replace the part they cover, the rest stays.
    new_real = real["geometry"].to_numpy()
    cut_real, _ = _cut(kept.loc[kept_real, "geometry"].to_numpy(), new_real)
    kept.loc[kept_real, "geometry"] = cut_real
    joined = member(real["zip"], kept.loc[kept_real, "zip"])
    if joined.any():
        before = kept.loc[kept_real].set_index("zip")["geometry"]
        real.loc[joined, "geometry"] = [
            g if before.get(z) is None else shapely.union(before[z], g)
            for z, g in zip(real.loc[joined, "zip"], real.loc[joined, "geometry"])]
        kept = kept[~(member(kept["zip"], real["zip"]) & kept_real)].reset_index(drop=True)
        kept_real = kept["source"] != SOURCE_VORONOI
    kept = kept[kept["geometry"].notna()]
    kept_real = kept["source"] != SOURCE_VORONOI

    fresh_points = points[points["state"].isin(touched) & ~member(points["zip"], real["zip"])]
    fresh = build_voronoi_shapes(points[points["state"].isin(touched)])
    fresh = fresh[member(fresh["zip"], fresh_points["zip"]) & fresh["geometry"].notna()].assign(source=SOURCE_VORONOI)
    voronoi = pd.concat([fresh[["zip", "state", "source", "geometry"]],
                         kept.loc[~kept_real, ["zip", "state", "source", "geometry"]]], ignore_index=True)
    reals = np.concatenate([real["geometry"].to_numpy(), kept.loc[kept_real, "geometry"].to_numpy()])
    remnant, emptied = _cut(voronoi["geometry"].to_numpy(), reals)
    carved = 0
    if emptied.any():
        at = points.set_index("zip")[["lat", "lon"]]
        discs = []
        for i in np.flatnonzero(emptied):
            lat, lon = at.loc[voronoi["zip"].iat[i]]
            remnant[i] = _carve(lat, lon, reals)
            discs.append(remnant[i])
        carved = len(discs)
        # The discs come out of the real polygons, so no two shapes overlap.
        real["geometry"], _ = _cut(real["geometry"].to_numpy(), np.array(discs, dtype=object))
        kept_geoms, _ = _cut(kept["geometry"].to_numpy(), np.array(discs, dtype=object))
        kept = kept.assign(geometry=kept_geoms)
    voronoi["geometry"] = remnant
    shapes = pd.concat([real[["zip", "state", "source", "geometry"]],
                        voronoi,
                        kept.loc[kept["source"] != SOURCE_VORONOI, ["zip", "state", "source", "geometry"]]],
                       ignore_index=True)
    shapes = shapes[shapes["geometry"].notna()].sort_values("zip").reset_index(drop=True)
    shapes["geometry"] = round_geoms(shapes["geometry"].to_numpy(), DECIMALS)
    geoms = shapes["geometry"].to_numpy()
    geojson = shapely.to_geojson(geoms)
    before = stored.set_index("zip")
    changed = before["geojson"].reindex(shapes["zip"]).to_numpy(dtype=object) != geojson
    area = before["area_km2"].reindex(shapes["zip"]).to_numpy(dtype=float, copy=True)
    area[changed] = shapely.area(project_geoms(shapely.segmentize(geoms[changed], DENSIFY_DEG))) * KM_PER_DEGREE**2
    shapes["area_km2"] = area
    rows = pd.DataFrame({"zip": shapes["zip"].astype(str).to_numpy(), "state": shapes["state"].to_numpy(),
                         "source": shapes["source"].astype(str).to_numpy(), "area_km2": np.round(area, 3),
                         "geojson": geojson})
    edges = sizes = None
    if store.zip_tables.has_adjacency(store):
        edges, sizes = _updated_adjacency(store, shapes, changed)

    mapping = _point_in_polygon_regions(store, shapes)
    source = ", ".join(sorted({s for s in shapes["source"] if s != SOURCE_VORONOI})) or SOURCE_VORONOI
    signature = ";".join(_file_signature(p) for p in paths if p.is_file())
    with store.transaction() as tx:
        store.zip_tables.write_shapes(tx, rows, edges, sizes)
        moved = store.zip_tables.apply_region_zips(tx, mapping)
        _set_meta(store, tx, source, signature)
    files = [{"file": name, "states": sorted({str(s) for s in g["state"].dropna()}), "zcta": int(len(g))}
             for name, g in zcta.groupby("file", sort=False)]
    return {
        "source": source,
        "files": files,
        "states_touched": touched,
        "zcta_in_file": int(len(zcta)),
        "zcta_used": int(is_region.sum()),
        "zcta_merged": int((~is_region & zcta["target"].notna().to_numpy()).sum()),
        "zcta_ignored": int(zcta["target"].isna().sum()),
        "voronoi_kept": int((shapes["source"] == SOURCE_VORONOI).sum()),
        "voronoi_carved": int(carved),
        "shapes_changed": int(changed.sum()),
        **moved,
        "adjacency": "updated" if edges is not None else "deferred",
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _updated_adjacency(store: Store, shapes: pd.DataFrame, changed: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stored shared borders and sizes, redone for the ``changed`` shapes (and their borders with the
    others): the same rows a full :func:`~terrmap.geo.graph.polygon_adjacency` of ``shapes`` (sorted by zip)
    gives, in a fraction of its time."""
    # geo.graph pulls in scipy (~0.3 s): not on the start-up path of lookup or assign
    from terrmap.geo.graph import polygon_adjacency

    old_edges, old_sizes = store.zip_tables.adjacency_tables(store)
    zips = shapes["zip"].to_numpy(dtype=object)
    geoms = shapes["geometry"].to_numpy()
    changed_zips = set(zips[changed])
    keep = ~member(old_edges["a"], changed_zips) & ~member(old_edges["b"], changed_zips)
    keep &= member(old_edges["a"], zips) & member(old_edges["b"], zips)
    idx = np.flatnonzero(changed)
    if len(idx) == 0:
        return old_edges[keep].reset_index(drop=True), old_sizes[member(old_sizes["zip"], zips)]
    _, near = shapely.STRtree(geoms).query(geoms[idx], predicate="intersects")
    subset = np.unique(np.concatenate([idx, near]))
    pairs, lengths, area, perimeter = polygon_adjacency(geoms[subset])
    a, b = zips[subset[pairs[:, 0]]], zips[subset[pairs[:, 1]]]
    touches = np.array([x in changed_zips or y in changed_zips for x, y in zip(a, b)], dtype=bool)
    new_edges = pd.DataFrame({"a": a[touches], "b": b[touches], "length_km": lengths[touches]})
    in_changed = member(zips[subset], changed_zips)
    new_sizes = pd.DataFrame({"zip": zips[subset][in_changed], "area_km2": area[in_changed],
                              "perimeter_km": perimeter[in_changed]})
    sizes = pd.concat([old_sizes[~member(old_sizes["zip"], changed_zips) & member(old_sizes["zip"], zips)], new_sizes],
                      ignore_index=True)
    return pd.concat([old_edges[keep], new_edges], ignore_index=True), sizes


def _point_in_polygon_regions(store: Store, shapes: pd.DataFrame) -> pd.DataFrame:
    """zip -> region_zip for located non-region ZIPs: the polygon containing the point (vectorized)."""
    pts = store.zip_tables.located_non_region_zips(store)
    if pts.empty:
        return pd.DataFrame({"zip": pd.Series([], dtype=str), "region_zip": pd.Series([], dtype=str)})
    ref = reference_table().set_index("zip")["region_zip"]
    fallback = ref.reindex(pts["zip"]).to_numpy(dtype=object)
    fallback = np.where(pd.isna(fallback), pts["region_zip"].to_numpy(dtype=object), fallback)

    geoms = shapes["geometry"].to_numpy()
    tree = shapely.STRtree(geoms)
    pi, gi = tree.query(shapely.points(pts["lon"].to_numpy(), pts["lat"].to_numpy()), predicate="within")
    hits = pd.DataFrame(
        {
            "p": pi,
            "region": shapes["zip"].to_numpy()[gi],
            "other_state": shapes["state"].to_numpy()[gi] != pts["state"].to_numpy()[pi],
            "voronoi": shapes["source"].to_numpy()[gi] == SOURCE_VORONOI,
            "area": shapes["area_km2"].to_numpy()[gi],
        }
    ).sort_values(["p", "other_state", "voronoi", "area"], kind="stable")
    # A Voronoi cell stands for its own state only (state outlines are coarse); real ZCTAs may cross state lines.
    hits = hits[~(hits["other_state"] & hits["voronoi"])]
    best = hits.drop_duplicates("p")
    region = fallback.copy()
    region[best["p"].to_numpy()] = best["region"].to_numpy()
    region = [None if pd.isna(r) else str(r) for r in region]
    return pd.DataFrame({"zip": pts["zip"].to_numpy(), "region_zip": pd.Series(region, dtype=object)})
