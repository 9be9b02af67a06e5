"""H3 hexagon layers at any resolution, derived from each lead's base cell in SQL.

An H3 index packs its resolution in bits 52-55 and one 3-bit digit per
resolution below that, unused digits set to 7. The parent at resolution r is
therefore: clear the resolution bits, write r, and set the digits of
resolutions r+1..15 (the lowest 3*(15-r) bits) to all ones. Pure bit
arithmetic, so coarser layers need neither Python nor the H3 extension.
"""

from __future__ import annotations

from collections.abc import Sequence

import h3
import numpy as np
from h3ronpy.vector import coordinates_to_cells
from shapely.geometry import shape as to_shape

from terrmap.geo.base import Layer
from terrmap.geo.memo import LoadCache, disk_key, disk_memo

H3_RESOLUTIONS = tuple(range(3, 10))
_GRAPHS = LoadCache(max_entries=4)
_RES_MASK = 0xF << 52
_U64 = (1 << 64) - 1


def parent_sql(cell: str, res: int) -> str:
    """SQL for the resolution-``res`` parent of the UBIGINT H3 cell expression ``cell``."""
    keep = _U64 & ~_RES_MASK & ~((1 << (3 * (15 - res))) - 1)
    fill = (res << 52) | ((1 << (3 * (15 - res))) - 1)
    return f"(({cell} & {keep}::UBIGINT) | {fill}::UBIGINT)"


def parent_int(cells: np.ndarray, res: int) -> np.ndarray:
    """The same arithmetic on a numpy uint64 array (used where data is already in memory)."""
    keep = np.uint64(_U64 & ~_RES_MASK & ~((1 << (3 * (15 - res))) - 1))
    fill = np.uint64((res << 52) | ((1 << (3 * (15 - res))) - 1))
    return (np.asarray(cells, dtype=np.uint64) & keep) | fill


def index_points(lat: np.ndarray, lon: np.ndarray, res: int) -> np.ndarray:
    """H3 cells (uint64) of many points at once (h3ronpy, about 1M points/s)."""

    return coordinates_to_cells(np.asarray(lat, dtype=float), np.asarray(lon, dtype=float), res).to_numpy()


def cell_polygon(cell_id: str) -> dict:
    """GeoJSON polygon of one cell (lon/lat, closed ring, 5 decimals ~ 1 m)."""
    ring = [[round(lng, 5), round(lat, 5)] for lat, lng in h3.cell_to_boundary(cell_id)]
    ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}


class H3Layer(Layer):
    def __init__(self, res: int):
        if res not in H3_RESOLUTIONS:
            raise ValueError(f"H3 resolution {res} not supported: use {H3_RESOLUTIONS[0]}-{H3_RESOLUTIONS[-1]}")
        self.res = res
        self.key = f"h3:{res}"
        self.label = f"H3 hexagons, resolution {res} (~{h3.average_hexagon_area(res, 'km^2'):,.0f} km²)"

    def region_key_sql(self, leads: str = "l") -> str:
        return parent_sql(f"{leads}.cell", self.res)

    def region_id_sql(self, key: str) -> str:
        return f"lower(hex({key}))"

    def shapes(self, store, region_ids: Sequence[str]) -> dict[str, dict]:
        out = {}
        for rid in region_ids:
            if h3.is_valid_cell(rid) and h3.get_resolution(rid) == self.res:
                out[rid] = cell_polygon(rid)
        return out

    def dissolve(self, store, groups, progress=None) -> dict:
        """The cells' outlines from H3 itself (cells_to_h3shape: edges shared by two cells cancel out)."""

        out = {}
        for k, (key, ids) in enumerate(groups.items()):
            if progress:
                progress(k / max(len(groups), 1), f"dissolving {k + 1} of {len(groups)}")
            cells = [c for c in ids if h3.is_valid_cell(c) and h3.get_resolution(c) == self.res]
            out[key] = to_shape(h3.cells_to_h3shape(cells).__geo_interface__) if cells else None
        return out

    def region_centroids(self, store, region_ids: Sequence[str]) -> dict[str, tuple[float, float]]:
        """(lat, lon) of each cell's centre (h3.cell_to_latlng); ids that are not cells of this resolution are left out."""
        out = {}
        for rid in region_ids:
            if h3.is_valid_cell(rid) and h3.get_resolution(rid) == self.res:
                out[rid] = tuple(h3.cell_to_latlng(rid))
        return out

    def graph(self, store, region_ids: Sequence[str]):
        """The cells' grid adjacency (bridged across water); the last few graphs are kept per cell set (read-only:
        every editor of a plan shares one; a national level-6 area takes seconds to build), and graphs of at
        least :data:`DISK_GRAPH_CELLS` cells on disk too (:func:`terrmap.geo.memo.disk_memo`, keyed by the
        cells): opening a complete level-6 plan of Texas (17k cells) in a new process reads its graph in a few
        hundredths of a second instead of building it in 0.7 s."""
        ids = tuple(region_ids)
        return _GRAPHS.get(ids, lambda: cached_h3_graph(ids))


# From this many cells on a graph is kept on disk: smaller ones build about as fast as a file is read.
DISK_GRAPH_CELLS = 2000


def cached_h3_graph(ids: Sequence[str]):
    """:func:`terrmap.geo.graph.h3_graph` of ``ids``, read from the disk cache when there (see H3Layer.graph)."""
    # geo.graph pulls in scipy (~0.3 s): not on the start-up path of lookup or assign
    from terrmap.geo.graph import h3_graph

    ids = list(ids)
    if len(ids) < DISK_GRAPH_CELLS:
        return h3_graph(ids)
    return disk_memo("terrmap.geo.graph.h3_graph", disk_key(h3.__version__, *ids), lambda: h3_graph(ids))
