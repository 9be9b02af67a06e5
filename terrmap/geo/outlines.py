"""State outlines: the offline base map, and the areas ZIP polygons are clipped to.

The lower 48 states come from the outline file that ships with ``libpysal``
(``examples/us_income/us48.shp``, lon/lat). States and territories missing
there (AK, HI, PR, DC, VI, GU, MP, AS) get an approximate outline: the union of
discs of :data:`FALLBACK_RADIUS_KM` around their ZIP centroids, minus the
lower-48 outlines (which carves DC out of the MD/VA gap), computed in the
conformal projection of :mod:`terrmap.geo.zipdata` so the discs are round.
"""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import shapely

from terrmap.geo.distance import KM_PER_DEGREE
from terrmap.geo.zipdata import project, reference_table, region_candidates, unproject

# Units of the projection of terrmap.geo.zipdata (~1 degree of latitude) -> km.
FALLBACK_RADIUS_KM = 20.0

STATE_NAMES = {
    "AK": "Alaska", "HI": "Hawaii", "PR": "Puerto Rico", "DC": "District of Columbia",
    "VI": "U.S. Virgin Islands", "GU": "Guam", "MP": "Northern Mariana Islands", "AS": "American Samoa",
}


def polygonal(geom):
    """Only the polygon parts of ``geom`` (a Polygon, a MultiPolygon, or None if there are none)."""
    if geom is None:
        return None
    kind = shapely.get_type_id(geom)
    if kind in (3, 6):  # Polygon, MultiPolygon
        return None if geom.is_empty else geom
    parts = [p for p in shapely.get_parts(geom) if shapely.get_type_id(p) in (3, 6) and not p.is_empty]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.union_all(parts)


def round_geoms(geoms, decimals: int):
    """Round every coordinate; the few geometries this makes invalid are repaired (polygon parts only)."""
    geoms = shapely.transform(np.asarray(geoms, dtype=object), lambda c: np.round(c, decimals))
    bad = np.flatnonzero(~shapely.is_valid(geoms))
    for i in bad:
        geoms[i] = polygonal(shapely.make_valid(geoms[i]))
    return geoms


def us48_path() -> Path:
    spec = importlib.util.find_spec("libpysal")  # locate the package without importing it (slow: ~1 s)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("libpysal is not installed (it ships the lower-48 state outlines)")
    path = Path(list(spec.submodule_search_locations)[0]) / "examples" / "us_income" / "us48.shp"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: reinstall libpysal (it ships the lower-48 state outlines)")
    return path


def project_geoms(geoms):
    """lon/lat geometries -> projected units (vertices only; segmentize first for long edges)."""
    return shapely.transform(geoms, lambda c: project(c[:, 1], c[:, 0]))


def unproject_geoms(geoms):
    """Inverse of :func:`project_geoms`."""
    return shapely.transform(geoms, unproject)


@lru_cache(maxsize=1)
def us48_outlines() -> dict[str, shapely.Geometry]:
    """State abbreviation -> outline (lon/lat) of the lower 48 states, as shipped by libpysal."""
    import pyogrio  # pulls in geopandas (~0.4 s): not on the start-up path of lookup or assign

    df = pyogrio.read_dataframe(us48_path(), columns=["STATE_ABBR", "STATE_NAME"])
    geoms = shapely.make_valid(df.geometry.to_numpy())
    return {str(s): g for s, g in zip(df["STATE_ABBR"], geoms)}


@lru_cache(maxsize=1)
def us48_names() -> dict[str, str]:
    import pyogrio  # pulls in geopandas (~0.4 s): not on the start-up path of lookup or assign

    df = pyogrio.read_dataframe(us48_path(), columns=["STATE_ABBR", "STATE_NAME"], read_geometry=False)
    return dict(zip(df["STATE_ABBR"].astype(str), df["STATE_NAME"].astype(str)))


@lru_cache(maxsize=1)
def us48_projected() -> tuple[list[str], np.ndarray, shapely.STRtree]:
    """The lower-48 outlines densified (0.05 degree edges) and projected, with a spatial index."""
    outlines = us48_outlines()
    states = list(outlines)
    geoms = project_geoms(shapely.segmentize(np.array([outlines[s] for s in states]), 0.05))
    shapely.prepare(geoms)
    return states, geoms, shapely.STRtree(geoms)


def discs_outline(xy: np.ndarray, radius_km: float = FALLBACK_RADIUS_KM, exclude_state: str | None = None):
    """Projected union of discs around projected points, minus the lower-48 outlines except ``exclude_state``'s."""
    radius = radius_km / KM_PER_DEGREE
    discs = shapely.union_all(shapely.buffer(shapely.points(xy), radius, quad_segs=6))
    states, geoms, tree = us48_projected()
    hits = [i for i in tree.query(discs, predicate="intersects") if states[i] != exclude_state]
    if hits:
        discs = shapely.difference(discs, shapely.union_all(geoms[hits]))
    return discs


@lru_cache(maxsize=1)
def fallback_outlines() -> dict[str, shapely.Geometry]:
    """Approximate outlines (lon/lat) of states/territories missing from the lower-48 file."""
    regions = region_candidates(reference_table())
    known = set(us48_outlines())
    out = {}
    for state, g in regions[~regions["state"].isin(known)].groupby("state"):
        shape = discs_outline(project(g["lat"], g["lon"]))
        out[str(state)] = unproject_geoms(shape)
    return out


@lru_cache(maxsize=8)
def state_outlines_geojson(simplify_tolerance: float = 0.02) -> dict:
    """A GeoJSON FeatureCollection of state outlines (lon/lat), properties ``state`` and ``name``.

    The lower 48 are simplified together (shared borders stay shared); the
    approximate outlines of AK, HI, PR, DC and the territories are appended.
    Coordinates are rounded to 3 decimals; the default result is ~200 KB of JSON.
    Cached: treat the returned dict as read-only.
    """
    outlines = us48_outlines()
    names = us48_names()
    states = list(outlines)
    geoms = np.array([outlines[s] for s in states])
    if simplify_tolerance > 0:
        try:
            geoms = shapely.coverage_simplify(geoms, simplify_tolerance)
        except Exception:  # not a clean coverage: simplify one by one
            geoms = shapely.simplify(geoms, simplify_tolerance, preserve_topology=True)
    extra = fallback_outlines()
    for state, geom in sorted(extra.items()):
        states.append(state)
        geoms = np.append(geoms, shapely.simplify(geom, simplify_tolerance / 2, preserve_topology=True))
    geoms = round_geoms(geoms, 3)
    features = []
    for state, geom in zip(states, geoms):
        if geom is None or geom.is_empty:
            continue
        features.append(
            {
                "type": "Feature",
                "properties": {"state": state, "name": names.get(state) or STATE_NAMES.get(state, state)},
                "geometry": json.loads(shapely.to_geojson(geom)),
            }
        )
    return {"type": "FeatureCollection", "features": features}
