"""The ZIP-code layer: one region per standard ZIP (see :mod:`terrmap.geo.zipdata`)."""

from __future__ import annotations

import json
from typing import Sequence

from terrmap.geo.base import Layer


class ZipLayer(Layer):
    key = "zip"
    label = "ZIP codes"

    def region_key_sql(self, leads: str = "l") -> str:
        return f"{leads}.zip"

    def shapes(self, store, region_ids: Sequence[str]) -> dict[str, dict]:
        from terrmap.geo.zipshapes import ensure_zip_shapes

        ensure_zip_shapes(store)
        cur = store.cursor()
        rows = cur.execute(
            "SELECT zip, geojson FROM zip_shapes WHERE zip IN (SELECT unnest(?::VARCHAR[]))", [list(region_ids)]
        ).fetchall()
        return {z: json.loads(g) for z, g in rows}

    def region_centroids(self, store, region_ids: Sequence[str]) -> dict[str, tuple[float, float]]:
        """(lat, lon) of each region ZIP's census centroid (``zips`` table); unknown ids are left out."""
        rows = store.cursor().execute(
            "SELECT zip, lat, lon FROM zips WHERE zip IN (SELECT unnest(?::VARCHAR[])) AND zip = region_zip "
            "AND lat IS NOT NULL",
            [list(region_ids)],
        ).fetchall()
        return {z: (float(lat), float(lon)) for z, lat, lon in rows}

    def graph(self, store, region_ids: Sequence[str]):
        from terrmap.geo.graph import polygon_graph
        from terrmap.geo.zipshapes import ensure_zip_shapes, zip_shape_geoms

        ensure_zip_shapes(store)
        ids = list(region_ids)
        geoms = zip_shape_geoms(store, ids).set_index("zip")["geometry"]
        cents = self.region_centroids(store, ids)
        missing = [r for r in ids if r not in geoms.index or r not in cents]
        if missing:
            raise ValueError(f"{len(missing)} ZIP regions have no shape, e.g. {missing[:5]}")
        return polygon_graph(ids, geoms.loc[ids].to_numpy(), [cents[r] for r in ids])
