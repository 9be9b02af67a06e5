"""The interface every region layer implements."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import shapely
from shapely.geometry import shape as to_shape

from terrmap.geo.distance import KM_PER_DEGREE

if TYPE_CHECKING:
    from terrmap.data.store import Store
    from terrmap.geo.graph import RegionGraph


def drawn_shape_geometry(shape: dict):
    """A shapely (lon/lat) geometry from a GeoJSON Feature or geometry drawn on the map.

    Circles (Point + radius in metres) become 64-gon polygons on the sphere's
    local tangent plane, accurate to well under 1% for radii of a few hundred km.
    """
    geometry = shape.get("geometry", shape)
    props = shape.get("properties") or {}
    radius = props.get("radius", shape.get("radius"))
    if geometry.get("type") == "Point" and radius:
        lon, lat = geometry["coordinates"]
        angles = [2 * math.pi * k / 64 for k in range(64)]
        dlat = float(radius) / (KM_PER_DEGREE * 1000)
        dlon = dlat / max(math.cos(math.radians(lat)), 1e-6)
        return shapely.Polygon([(lon + dlon * math.cos(a), lat + dlat * math.sin(a)) for a in angles])
    geom = to_shape(geometry)
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise ValueError(f"a selection must be an area (rectangle, circle or polygon), not a {geom.geom_type}")
    return shapely.make_valid(geom)


class Layer(ABC):
    key: str  # stable identifier stored with plans: "zip", "h3:6"
    label: str  # what a person reads

    @abstractmethod
    def region_key_sql(self, leads: str = "l") -> str:
        """SQL expression grouping rows of ``leads`` (an alias of the leads table) by region.

        It may be cheaper than the region id (an integer for H3); use
        :meth:`region_id_sql` to turn it into the id people and files see.
        """

    def region_id_sql(self, key: str) -> str:
        """SQL turning a region key expression into the region id (VARCHAR)."""
        return key

    @abstractmethod
    def shapes(self, store: Store, region_ids: Sequence[str]) -> dict[str, dict]:
        """GeoJSON geometry (lon/lat) of each region id; unknown ids are left out."""

    def dissolve(self, store: Store, groups: Mapping[Hashable, Sequence[str]],
                 progress: Callable[[float, str], None] | None = None) -> dict:
        """One shapely (lon/lat) geometry per group of region ids: the union of their shapes (None for a
        group with no known region). Layers override it with a faster union of their own."""
        shapes = self.shapes(store, [r for ids in groups.values() for r in ids])
        out = {}
        for k, (key, ids) in enumerate(groups.items()):
            if progress:
                progress(k / max(len(groups), 1), f"dissolving {k + 1} of {len(groups)}")
            parts = [to_shape(shapes[r]) for r in ids if r in shapes]
            out[key] = shapely.union_all(parts) if parts else None
        return out

    def region_centroids(self, store: Store, region_ids: Sequence[str]) -> dict[str, tuple[float, float]]:
        """(lat, lon) of a representative point of each region id; unknown ids are left out.

        Every layer should implement it (routes and labels need it).
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement region_centroids")

    def graph(self, store: Store, region_ids: Sequence[str]) -> RegionGraph:
        """The adjacency graph of ``region_ids`` (islands bridged; see :mod:`terrmap.geo.graph`)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement graph")

    def cover(self, store: Store, shape: dict, region_ids: Sequence[str]) -> list[str]:
        """The ids among ``region_ids`` whose representative point lies inside a drawn GeoJSON shape.

        A circle comes as a GeoJSON Point with a ``radius`` (metres) in its
        properties or beside its geometry, as Leaflet.draw reports it.
        """
        geom = drawn_shape_geometry(shape)
        cents = self.region_centroids(store, region_ids)
        ids = [r for r in region_ids if r in cents]
        if not ids:
            return []
        latlon = np.array([cents[r] for r in ids])
        inside = shapely.contains_xy(geom, latlon[:, 1], latlon[:, 0])
        return [r for r, ok in zip(ids, inside) if ok]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layer) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)
