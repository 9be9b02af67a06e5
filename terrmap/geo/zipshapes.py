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
next ZIP map) loads it through :func:`load_zcta`; call :func:`load_zcta`
directly to load it now. ZCTAs replace the Voronoi polygons of the ZIPs they
cover; the remaining standard ZIPs keep their Voronoi cell minus the real
polygons. PO-box and unique ZIPs are then re-assigned to the polygon that
contains their point and the leads filed under them follow, in one
transaction. :func:`rebuild_zip_shapes` goes back to Voronoi.

``meta`` records the geometry in use: ``zip_shapes_source`` ('voronoi' or the
ZCTA file's name), ``zip_shapes_file`` (name|size|mtime of the loaded file) and
``zip_shapes_built_at``.

The tables are read and written through ``store.zip_tables`` (:mod:`terrmap.data.zip_tables`, a layer above).
"""

from __future__ import annotations

import datetime as _dt
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import shapely

from terrmap.geo.distance import KM_PER_DEGREE
from terrmap.geo.memo import memo_by_digest
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
ZCTA_SIMPLIFY_DEG = 0.0002  # simplification of real ZCTA polygons (~20 m)


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
    """'voronoi', the name of the ZCTA file in use, or None before the shapes are built."""
    return store.get_meta(META_SOURCE)


def zip_shape_geoms(store: Store, zips=None, states=None) -> pd.DataFrame:
    """Stored ZIP polygons as shapely geometries: zip, state, source, area_km2, geometry (all, or ``zips``, or
    those of ``states``)."""
    df = store.zip_tables.shape_table(store, zips, states)
    df["geometry"] = shapely.from_geojson(df.pop("geojson").to_numpy(dtype=object))
    return df


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
            if sig not in (store.get_meta(META_FILE), store.get_meta(META_FILE_ERROR)):
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
    shapes = build_voronoi_shapes(region_points(store)).assign(source=SOURCE_VORONOI)
    ref = reference_table()[["zip", "region_zip"]].dropna()
    current = store.zip_tables.region_zip_map(store)
    merged = current.merge(ref, on="zip", how="inner", suffixes=("_old", ""))
    with store.transaction() as tx:
        store.zip_tables.write_shapes(tx, _shape_rows(shapes))
        moved = store.zip_tables.apply_region_zips(tx, merged[["zip", "region_zip"]])
        _set_meta(store, tx, SOURCE_VORONOI, None)
    return {"source": SOURCE_VORONOI, "shapes": int(shapes["geometry"].notna().sum()), **moved,
            "seconds": round(time.perf_counter() - t0, 2)}


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


def read_zcta(path: str | os.PathLike, simplify_tolerance: float = ZCTA_SIMPLIFY_DEG) -> pd.DataFrame:
    """A ZCTA file -> zip (5 digits), geometry (shapely, lon/lat, valid, simplified, one row per ZCTA)."""
    import pyogrio  # GDAL loads only when a boundary file is read, not with every map

    path = Path(path)
    info = pyogrio.read_info(path)
    fields = [str(f) for f in info["fields"]]
    by_upper = {f.upper(): f for f in fields}
    column = next((by_upper[c] for c in ZCTA_CODE_COLUMNS if c in by_upper), None)
    if column is None:
        raise ValueError(f"{path.name}: no ZCTA code column (looked for {', '.join(ZCTA_CODE_COLUMNS)}; "
                         f"the file has {', '.join(fields) or 'none'})")
    gdf = pyogrio.read_dataframe(path, columns=[column])
    if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs(4326)
    codes = gdf[column].astype(str).str.strip()
    codes = codes.where(codes.str.len() <= 5, codes.str[-5:]).str.zfill(5)
    geoms = gdf.geometry.to_numpy()
    bad = np.flatnonzero(~shapely.is_valid(geoms))
    if len(bad):
        geoms = geoms.copy()
        geoms[bad] = [polygonal(shapely.make_valid(g)) for g in geoms[bad]]
    df = pd.DataFrame({"zip": codes.to_numpy(), "geometry": geoms})
    df = df[df["geometry"].notna() & ~shapely.is_empty(df["geometry"].to_numpy())]
    if df["zip"].duplicated().any():
        df = df.groupby("zip", as_index=False).agg(geometry=("geometry", lambda s: shapely.union_all(s.to_numpy())))
    geoms = df["geometry"].to_numpy()
    if simplify_tolerance > 0:
        # Douglas-Peucker without topology preservation is ~10x faster; the few polygons it breaks are redone
        # with the topology-preserving variant.
        fast = shapely.simplify(geoms, simplify_tolerance, preserve_topology=False)
        bad = np.flatnonzero(~shapely.is_valid(fast) | shapely.is_empty(fast))
        if len(bad):
            fast[bad] = shapely.simplify(geoms[bad], simplify_tolerance, preserve_topology=True)
        geoms = fast
    return pd.DataFrame({"zip": df["zip"].to_numpy(), "geometry": round_geoms(geoms, DECIMALS)})


def _current_voronoi(store: Store, points: pd.DataFrame) -> pd.DataFrame:
    """The Voronoi polygons: read back if they are what zip_shapes holds, else built afresh."""
    if zip_shapes_source(store) == SOURCE_VORONOI:
        stored = zip_shape_geoms(store)
        if (stored["source"] == SOURCE_VORONOI).all() and set(stored["zip"]) == set(points["zip"]):
            return stored[["zip", "state", "area_km2", "geometry"]]
    return build_voronoi_shapes(points)


def _remnants(voronoi: pd.DataFrame, real: np.ndarray, points: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Voronoi cells minus the real polygons they overlap.

    A cell left with less than a tenth of its area and without its own centroid
    keeps instead the part of its cell within 2 km of the centroid (which then
    overlaps a real polygon); returns the cells and how many did so.
    """
    geoms = voronoi["geometry"].to_numpy().copy()
    if len(real) == 0 or len(geoms) == 0:
        return geoms, 0
    tree = shapely.STRtree(real)
    has = np.flatnonzero(pd.notna(geoms))
    pairs = tree.query(geoms[has], predicate="intersects")
    overlapping = 0
    changed: list[int] = []
    if pairs.shape[1] == 0:
        return geoms, 0
    pos = dict(zip(points["zip"], range(len(points))))
    lat = points["lat"].to_numpy()
    lon = points["lon"].to_numpy()
    order = np.argsort(pairs[0], kind="stable")
    src, dst = pairs[0][order], pairs[1][order]
    starts = np.flatnonzero(np.r_[True, src[1:] != src[:-1]])
    ends = np.r_[starts[1:], len(src)]
    for a, b in zip(starts, ends):
        i = has[src[a]]
        cell = geoms[i]
        rest = polygonal(shapely.difference(cell, shapely.union_all(real[dst[a:b]])))
        j = pos[voronoi["zip"].iat[i]]
        centroid = shapely.Point(lon[j], lat[j])
        if rest is None or (rest.area < 0.1 * cell.area and not rest.contains(centroid)):
            disc = unproject_geoms(shapely.buffer(shapely.Point(project([lat[j]], [lon[j]])[0]), 2.0 / KM_PER_DEGREE))
            rest = polygonal(shapely.intersection(cell, disc)) or cell
            overlapping += 1
        geoms[i] = rest
        changed.append(i)
    if changed:
        geoms[changed] = round_geoms(geoms[changed], DECIMALS)
    return geoms, overlapping


def load_zcta(store: Store, path: str | os.PathLike, simplify_tolerance: float = ZCTA_SIMPLIFY_DEG) -> dict:
    """Use a Census ZCTA boundary file for the ZIP polygons (``python -m terrmap`` wiring: ``load_zcta(store, path)``).

    ``path``: a .shp, .gpkg, .geojson, or a .zip holding a shapefile, e.g. the
    Census cartographic-boundary ``cb_2020_us_zcta520_500k.zip``; the ZCTA code
    column may be ZCTA5CE20, ZCTA5CE10, GEOID20, GEOID10, ZCTA5 (and a few
    other spellings), in any CRS. In one transaction:

    * every region ZIP (standard ZIP with a centroid) that has a ZCTA gets the
      real polygon (``source`` = the file's name, simplified to ~20 m); the
      others keep their Voronoi cell minus the real polygons; ZCTAs that are
      not region ZIPs are ignored (their area stays with the neighbouring
      Voronoi remnants);
    * ``zips.region_zip`` of every other located ZIP (PO box, unique,
      military) becomes the region whose polygon contains its point
      (preferring its own state, then a real polygon); a point in no polygon
      keeps the nearest-centroid region;
    * leads filed under a remapped ZIP (``postal_zip``) that followed the old
      mapping move to the new region (``leads.zip``);
    * ``meta`` records the file.

    Returns a summary: source, zcta_in_file, zcta_used, zcta_ignored,
    voronoi_kept, voronoi_overlapping, zips_remapped, leads_moved, seconds.
    The region set (and so every plan's assignment) is unchanged.
    """
    t0 = time.perf_counter()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    zcta = read_zcta(path, simplify_tolerance)
    points = region_points(store)
    region_set = set(points["zip"])
    used = zcta[zcta["zip"].isin(region_set)].reset_index(drop=True)
    source = path.name

    voronoi = _current_voronoi(store, points)
    rest = voronoi[~voronoi["zip"].isin(set(used["zip"]))].reset_index(drop=True)
    rest_geoms, overlapping = _remnants(rest, used["geometry"].to_numpy(), points)
    real_state = points.set_index("zip")["state"]
    real = pd.DataFrame(
        {
            "zip": used["zip"].to_numpy(),
            "state": real_state.reindex(used["zip"]).to_numpy(),
            "source": source,
            "geometry": used["geometry"].to_numpy(),
        }
    )
    kept = pd.DataFrame({"zip": rest["zip"].to_numpy(), "state": rest["state"].to_numpy(), "source": SOURCE_VORONOI,
                         "geometry": rest_geoms})
    shapes = pd.concat([real, kept], ignore_index=True)
    shapes = shapes[shapes["geometry"].notna()].reset_index(drop=True)
    geoms = shapes["geometry"].to_numpy()
    shapes["area_km2"] = shapely.area(project_geoms(shapely.segmentize(geoms, DENSIFY_DEG))) * KM_PER_DEGREE**2

    mapping = _point_in_polygon_regions(store, shapes)
    with store.transaction() as tx:
        store.zip_tables.write_shapes(tx, _shape_rows(shapes))
        moved = store.zip_tables.apply_region_zips(tx, mapping)
        _set_meta(store, tx, source, _file_signature(path))
    return {
        "source": source,
        "zcta_in_file": int(len(zcta)),
        "zcta_used": int(len(used)),
        "zcta_ignored": int(len(zcta) - len(used)),
        "voronoi_kept": int(len(kept)),
        "voronoi_overlapping": int(overlapping),
        **moved,
        "seconds": round(time.perf_counter() - t0, 2),
    }


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
