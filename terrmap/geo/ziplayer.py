"""The ZIP-code layer: one region per standard ZIP (see :mod:`terrmap.geo.zipdata`).

Its tables are read and written through ``store.zip_tables`` (:mod:`terrmap.data.zip_tables`, a layer above).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import shapely

from terrmap.geo.base import Layer
from terrmap.geo.memo import LoadCache, memo_by_digest
from terrmap.geo.zipshapes import ensure_zip_shapes, zip_shape_geoms

_GRAPHS = LoadCache(max_entries=4)


class ZipLayer(Layer):
    key = "zip"
    label = "ZIP codes"

    def region_key_sql(self, leads: str = "l") -> str:
        return f"{leads}.zip"

    def shapes(self, store, region_ids: Sequence[str]) -> dict[str, dict]:
        ensure_zip_shapes(store)
        return store.zip_tables.shape_geojson(store, list(region_ids))

    def dissolve(self, store, groups, progress=None) -> dict:
        """Unions of the stored ZIP polygons (read once, as shapely geometries)."""
        ensure_zip_shapes(store)
        geoms = zip_shape_geoms(store, [r for ids in groups.values() for r in ids]).set_index("zip")["geometry"]
        out = {}
        for k, (key, ids) in enumerate(groups.items()):
            if progress:
                progress(k / max(len(groups), 1), f"dissolving {k + 1} of {len(groups)}")
            present = [r for r in ids if r in geoms.index]
            out[key] = shapely.union_all(geoms.loc[present].to_numpy()) if present else None
        return out

    def region_centroids(self, store, region_ids: Sequence[str]) -> dict[str, tuple[float, float]]:
        """(lat, lon) of each region ZIP's census centroid (``zips`` table); unknown ids are left out."""
        return store.zip_tables.region_centroids(store, list(region_ids))

    def graph(self, store, region_ids: Sequence[str]):
        """The regions' adjacency graph, from the nationwide ZIP adjacency stored with the shapes
        (computed on first use, once per geometry: several seconds for the whole country). The last few
        graphs are kept per geometry and region set (read-only: every editor of a plan shares one)."""
        ensure_zip_adjacency(store)
        ids = tuple(region_ids)
        return _GRAPHS.get((store.zip_tables.shapes_stamp(store), ids), lambda: self._build_graph(store, list(ids)))

    def _build_graph(self, store, ids: list[str]):
        cents = self.region_centroids(store, ids)
        sizes = store.zip_tables.shape_sizes(store, ids)
        missing = [r for r in ids if r not in sizes or r not in cents]
        if missing:
            raise ValueError(f"{len(missing)} ZIP regions have no shape, e.g. {missing[:5]}")
        index = {r: i for i, r in enumerate(ids)}
        rows = store.zip_tables.shape_edges_among(store, ids)
        edges = np.array([(index[a], index[b]) for a, b, _ in rows], dtype=np.int64).reshape(-1, 2)
        edges.sort(axis=1)
        lengths = np.array([x for _, _, x in rows], dtype=float)
        area = np.array([sizes[r][0] for r in ids])
        perimeter = np.array([sizes[r][1] for r in ids])
        # geo.graph pulls in scipy (~0.3 s): not on the start-up path of lookup or assign
        from terrmap.geo.graph import graph_from_edges

        return graph_from_edges(ids, edges, lengths, area, perimeter, [cents[r] for r in ids])


def ensure_zip_adjacency(store) -> None:
    """Fill zip_shape_edges / zip_shape_sizes from the current zip_shapes if they are empty."""
    ensure_zip_shapes(store)
    if store.zip_tables.has_adjacency(store):
        return
    edge_rows, size_rows = _adjacency_rows(store.zip_tables.all_shape_geojson(store))
    store.zip_tables.write_adjacency(store, edge_rows, size_rows)


@memo_by_digest
def _adjacency_rows(shapes: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Shared borders and sizes of the polygons (zip, geojson): several seconds for the whole country, so kept
    per process for the same shapes (every new database on the built-in geography has the same ones)."""
    # geo.graph pulls in scipy (~0.3 s): not on the start-up path of lookup or assign
    from terrmap.geo.graph import polygon_adjacency

    zips = shapes["zip"].to_numpy()
    geoms = shapely.from_geojson(shapes["geojson"].to_numpy(dtype=object))
    edges, lengths, area, perimeter = polygon_adjacency(geoms)
    edge_rows = pd.DataFrame({"a": zips[edges[:, 0]], "b": zips[edges[:, 1]], "length_km": lengths})
    size_rows = pd.DataFrame({"zip": zips, "area_km2": area, "perimeter_km": perimeter})
    return edge_rows, size_rows
