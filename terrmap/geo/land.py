"""Land: what a plan's area is made of, so a complete plan can list every region of it.

**What counts as land.** A state's land is the union of its ZIP polygons, the shapes in use
(:mod:`terrmap.geo.zipshapes`: Voronoi cells of the state's ZIP centroids clipped to its outline, or real
Census ZCTA boundaries once loaded). So the ZIP layer and the H3 layers share one definition: a complete
ZIP plan and a complete H3 plan of the same states cover the same ground. Lakes and bays inside a state's
outline count as land where the outline (libpysal's lower-48 file) includes them; the sea does not.

**H3 cells of the area.** Every cell at the plan's resolution whose centre lies on that land (H3's own
polygon fill, which tests the centre), each in the state whose land holds its centre.
"""

from __future__ import annotations

from collections.abc import Iterable

import h3
import numpy as np
import pandas as pd
import shapely

# A complete plan lists every cell of its area; past this many the editor and the optimizer cannot work
# interactively (H3 level 9 of Texas alone is about 6.6 million cells).
MAX_AREA_CELLS = 1_500_000


def state_lands(shapes: pd.DataFrame) -> dict[str, shapely.Geometry]:
    """Each state's land: the union of its ZIP polygons (``shapes``: state, geometry)."""
    return {state: _union(group.to_numpy()) for state, group in shapes.groupby("state")["geometry"]}


def _union(geoms: np.ndarray) -> shapely.Geometry:
    # A state's ZIP polygons tile it (a coverage), whose union is ~20x faster; where they overlap (the union's
    # area falls short of the parts' sum) the general union is taken instead.
    fast = shapely.coverage_union_all(geoms)
    if fast.is_valid and abs(fast.area - shapely.area(geoms).sum()) <= 1e-9 * max(fast.area, 1e-12) + 1e-12:
        return fast
    return shapely.union_all(geoms)


def estimated_cells(lands: dict[str, shapely.Geometry], areas_km2: dict[str, float], res: int) -> int:
    """About how many cells of resolution ``res`` cover ``lands`` (``areas_km2``: each state's land area)."""
    return int(sum(areas_km2.get(s, 0.0) for s in lands) / h3.average_hexagon_area(res, "km^2"))


def land_cells(lands: dict[str, shapely.Geometry], res: int, states: Iterable[str] | None = None) -> pd.DataFrame:
    """region_id (H3 cell), state for every cell of resolution ``res`` whose centre lies on the land of
    ``states`` (all of ``lands`` when None); sorted by region_id. A centre on the line between two
    states' land goes to the first state in alphabetical order."""
    wanted = sorted(lands) if states is None else sorted(set(states) & set(lands))
    ids, owner = [], []
    for state in wanted:
        land = lands[state]
        if land is None or land.is_empty:
            continue
        cells = h3.h3shape_to_cells(h3.geo_to_h3shape(land.__geo_interface__), res)
        ids.extend(cells)
        owner.extend([state] * len(cells))
    frame = pd.DataFrame({"region_id": pd.Series(ids, dtype=object), "state": pd.Series(owner, dtype=object)})
    return frame.drop_duplicates("region_id").sort_values("region_id", kind="stable").reset_index(drop=True)


def containing_zip(points_lat: np.ndarray, points_lon: np.ndarray, shapes: pd.DataFrame) -> np.ndarray:
    """The ZIP (``shapes``: zip, geometry) whose polygon holds each point (its border included); None where
    none does. Where polygons overlap, or a point lies on a shared border, the smallest polygon wins, then the
    lowest ZIP: the one rule for leads, lookups and H3 cell centres."""
    geoms = shapes["geometry"].to_numpy()
    zips = shapes["zip"].to_numpy(dtype=object)
    out = np.full(len(points_lat), None, dtype=object)
    if not len(geoms) or not len(points_lat):
        return out
    tree = shapely.STRtree(geoms)
    pi, gi = tree.query(shapely.points(np.asarray(points_lon, float), np.asarray(points_lat, float)),
                        predicate="intersects")
    if len(pi):
        order = np.lexsort((zips[gi].astype(str), shapely.area(geoms[gi]), pi))
        pi, gi = pi[order], gi[order]
        first = np.ones(len(pi), bool)
        first[1:] = pi[1:] != pi[:-1]
        out[pi[first]] = zips[gi[first]]
    return out
