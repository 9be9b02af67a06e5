"""The ZIP-code layer: one region per standard ZIP (see :mod:`terrmap.geo.zipdata`)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
import shapely

from terrmap.geo.base import Layer
from terrmap.geo.graph import graph_from_edges, polygon_adjacency
from terrmap.geo.memo import memo_by_digest
from terrmap.geo.zipshapes import ensure_zip_shapes, zip_shape_geoms


class ZipLayer(Layer):
    key = "zip"
    label = "ZIP codes"

    def region_key_sql(self, leads: str = "l") -> str:
        return f"{leads}.zip"

    def shapes(self, store, region_ids: Sequence[str]) -> dict[str, dict]:
        ensure_zip_shapes(store)
        cur = store.cursor()
        rows = cur.execute(
            "SELECT zip, geojson FROM zip_shapes WHERE zip IN (SELECT unnest(?::VARCHAR[]))", [list(region_ids)]
        ).fetchall()
        return {z: json.loads(g) for z, g in rows}

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
        rows = store.cursor().execute(
            "SELECT zip, lat, lon FROM zips WHERE zip IN (SELECT unnest(?::VARCHAR[])) AND zip = region_zip "
            "AND lat IS NOT NULL",
            [list(region_ids)],
        ).fetchall()
        return {z: (float(lat), float(lon)) for z, lat, lon in rows}

    def graph(self, store, region_ids: Sequence[str]):
        """The regions' adjacency graph, from the nationwide ZIP adjacency stored with the shapes
        (computed on first use, once per geometry: several seconds for the whole country)."""
        ensure_zip_adjacency(store)
        ids = list(region_ids)
        cents = self.region_centroids(store, ids)
        cur = store.cursor()
        sizes = dict(
            (z, (a, p)) for z, a, p in cur.execute(
                "SELECT zip, area_km2, perimeter_km FROM zip_shape_sizes WHERE zip IN (SELECT unnest(?::VARCHAR[]))",
                [ids]).fetchall()
        )
        missing = [r for r in ids if r not in sizes or r not in cents]
        if missing:
            raise ValueError(f"{len(missing)} ZIP regions have no shape, e.g. {missing[:5]}")
        index = {r: i for i, r in enumerate(ids)}
        rows = cur.execute(
            """
            WITH wanted AS (SELECT unnest(?::VARCHAR[]) AS zip)
            SELECT a, b, length_km FROM zip_shape_edges
            WHERE a IN (SELECT zip FROM wanted) AND b IN (SELECT zip FROM wanted)
            """,
            [ids],
        ).fetchall()
        edges = np.array([(index[a], index[b]) for a, b, _ in rows], dtype=np.int64).reshape(-1, 2)
        edges.sort(axis=1)
        lengths = np.array([x for _, _, x in rows], dtype=float)
        area = np.array([sizes[r][0] for r in ids])
        perimeter = np.array([sizes[r][1] for r in ids])
        return graph_from_edges(ids, edges, lengths, area, perimeter, [cents[r] for r in ids])


def ensure_zip_adjacency(store) -> None:
    """Fill zip_shape_edges / zip_shape_sizes from the current zip_shapes if they are empty."""
    ensure_zip_shapes(store)
    if store.scalar("SELECT count(*) > 0 FROM zip_shape_sizes"):
        return
    shapes = store.cursor().execute("SELECT zip, geojson FROM zip_shapes ORDER BY zip").df()
    edge_rows, size_rows = _adjacency_rows(shapes)
    with store.transaction() as tx:
        if tx.execute("SELECT count(*) > 0 FROM zip_shape_sizes").fetchall()[0][0]:
            return  # another thread got there first
        tx.register("new_zip_edges", edge_rows)
        tx.register("new_zip_sizes", size_rows)
        tx.execute("INSERT INTO zip_shape_edges SELECT a, b, length_km FROM new_zip_edges")
        tx.execute("INSERT INTO zip_shape_sizes SELECT zip, area_km2, perimeter_km FROM new_zip_sizes")
        tx.unregister("new_zip_edges")
        tx.unregister("new_zip_sizes")


@memo_by_digest
def _adjacency_rows(shapes: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Shared borders and sizes of the polygons (zip, geojson): several seconds for the whole country, so kept
    per process for the same shapes (every new database on the built-in geography has the same ones)."""
    zips = shapes["zip"].to_numpy()
    geoms = shapely.from_geojson(shapes["geojson"].to_numpy(dtype=object))
    edges, lengths, area, perimeter = polygon_adjacency(geoms)
    edge_rows = pd.DataFrame({"a": zips[edges[:, 0]], "b": zips[edges[:, 1]], "length_km": lengths})
    size_rows = pd.DataFrame({"zip": zips, "area_km2": area, "perimeter_km": perimeter})
    return edge_rows, size_rows
