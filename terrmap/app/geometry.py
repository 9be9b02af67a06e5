"""Map geometry: rounding, view bounds, coordinate precision per layer, and the compact ring encoding
the browser decodes (``tm.decodeGeometry`` in static/terrmap/regions.js)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
import shapely.geometry
from shapely.geometry.polygon import orient

from terrmap.app.html_safe import js_json

US_CENTER = (39.5, -98.35)
LOWER48_BOUNDS = [[24.4, -124.8], [49.4, -66.9]]

def round_geometry(geometry: dict, decimals: int) -> dict:
    """A copy of a (Multi)Polygon with coordinates rounded and repeated points dropped.

    A ring crossing the antimeridian (Aleutian hexagons) gets its western
    longitudes shifted by +360 so Leaflet draws it in one piece.
    """

    def ring(r):
        out = []
        for x, y in r:
            p = [round(x, decimals), round(y, decimals)]
            if not out or out[-1] != p:
                out.append(p)
        if len(out) > 1 and out[0] != out[-1]:
            out.append(out[0])
        xs = [p[0] for p in out]
        if xs and max(xs) - min(xs) > 180:
            out = [[x + 360 if x < 0 else x, y] for x, y in out]
        return out

    def polygon(rings):
        # Rounding can shrink a ring below a triangle (a sliver of a hole, a rock offshore): such a ring is
        # not drawn, and a polygon whose outer ring shrinks so is dropped whole.
        rounded = [ring(r) for r in rings]
        if not rounded or len(rounded[0]) < 4:
            return []
        return [r for r in rounded if len(r) >= 4]

    t = geometry.get("type")
    if t == "Polygon":
        return {"type": t, "coordinates": polygon(geometry["coordinates"])}
    if t == "MultiPolygon":
        parts = [p for p in (polygon(poly) for poly in geometry["coordinates"]) if p]
        return {"type": t, "coordinates": parts}
    return geometry


def outer_box(geometry: dict) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) of the outer rings."""
    coords = geometry.get("coordinates") or []
    rings = [coords[0]] if geometry.get("type") == "Polygon" and coords else [p[0] for p in coords if p]
    xs = [x for r in rings for x, _ in r]
    ys = [y for r in rings for _, y in r]
    return (min(xs), min(ys), max(xs), max(ys)) if xs else None


def _box(boxes: np.ndarray) -> list[list[float]] | None:
    """[[south, west], [north, east]] around (west, south, east, north) rows."""
    if not len(boxes):
        return None
    return [[round(float(boxes[:, 1].min()), 3), round(float(boxes[:, 0].min()), 3)],
            [round(float(boxes[:, 3].max()), 3), round(float(boxes[:, 2].max()), 3)]]


def view_bounds(boxes: np.ndarray) -> tuple[list[list[float]] | None, list[list[float]] | None]:
    """(bounds of all regions, bounds of the *core*) from per-region boxes (west, south, east, north).

    The core drops Alaska, Hawaii and the territories when most regions lie in
    the lower 48, so an all-US map opens on the lower 48.
    """
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    full = _box(boxes)
    if not len(boxes):
        return None, None
    (s, w), (n, e) = LOWER48_BOUNDS
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    inside = (cy >= s) & (cy <= n) & (cx >= w) & (cx <= e)
    core = _box(boxes[inside]) if inside.mean() >= 0.5 else full
    return full, core


def default_decimals(layer_key: str) -> int:
    """Coordinate decimals for a layer: about 5 % of a region's edge or finer.

    2 (~1 km) for H3 levels 3-4 (edges 60 / 23 km), 3 (~100 m) for levels 5-6
    (edges 9 / 3 km), 4 (~10 m) for finer hexagons and for ZIPs. Neighbours
    share rounded vertices exactly, so rounding opens no gaps.
    """
    if layer_key.startswith("h3:"):
        res = int(layer_key[3:])
        return 2 if res <= 4 else 3 if res <= 6 else 4
    return 4


def encode_ring(ring: list, scale: int) -> list[int]:
    """A closed ring as flat ints: first vertex absolute, then deltas, in 1/scale degrees, closing vertex dropped."""
    out: list[int] = []
    px = py = 0
    pts = ring[:-1] if len(ring) > 1 and ring[0] == ring[-1] else ring
    for x, y in pts:
        ix, iy = int(round(x * scale)), int(round(y * scale))
        out += (ix - px, iy - py)
        px, py = ix, iy
    return out


def decode_ring(flat: Sequence[int], scale: int) -> list[list[float]]:
    """Inverse of :func:`encode_ring` (closed again); the browser does the same in static/terrmap/regions.js."""
    out, x, y = [], 0, 0
    for k in range(0, len(flat), 2):
        x += flat[k]
        y += flat[k + 1]
        out.append([x / scale, y / scale])
    return out + out[:1]



_outline_cache: dict[tuple[int, int], tuple[dict, str]] = {}


def outline_payload(geojson: dict, decimals: int = 3) -> str:
    """Script-safe JS string literal of the outlines (rings encoded like the regions'), memoized per outline object."""
    key = (id(geojson), decimals)
    hit = _outline_cache.get(key)
    if hit is not None and hit[0] is geojson:
        return hit[1]
    scale = 10 ** decimals
    polys = []
    for f in geojson.get("features", []):
        geom = f.get("geometry") or {}
        if geom.get("type") not in ("Polygon", "MultiPolygon"):
            continue
        geom = round_geometry(geom, decimals)
        parts = [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
        polys.append([[encode_ring(r, scale) for r in part] for part in parts])
    text = js_json(js_json({"q": scale, "g": polys}))
    _outline_cache[key] = (geojson, text)
    return text


def clockwise_features(features: list[dict]) -> list[dict]:
    """GeoJSON polygon features with every exterior ring clockwise and holes counter-clockwise: the winding
    d3-geo (Vega-Lite's geoshape) reads as "this area" rather than "the globe but this area"."""
    out = []
    for f in features:
        geom = shapely.geometry.shape(f["geometry"])
        parts = [orient(p, sign=-1.0) for p in getattr(geom, "geoms", [geom])]
        oriented = parts[0] if geom.geom_type == "Polygon" else shapely.MultiPolygon(parts)
        out.append({**f, "geometry": shapely.geometry.mapping(oriented)})
    return out
