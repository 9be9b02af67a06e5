"""The editor's map (pages/editor.py): drawn once, restyled in place.

The base map (regions, state outlines, drawing tools) is built once per plan, layer and area.
After an edit only an *overlay* travels: the regions whose territory or colour differ from what
the base drew, and the locked regions, applied by ``window.tmEditor.apply`` in the map iframe
(streamlit-folium's ``feature_group_to_add``, see :mod:`terrmap.app.folium_protocol`). The big
payloads can be served as a script file (``payload_url``, e.g. a Streamlit media file) so that the
map element itself stays small.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import folium
import h3
import numpy as np
import pandas as pd
import shapely
from folium.plugins import Draw
from shapely.geometry import shape as to_shape

from terrmap.app.assets import DEFAULT_STATIC_BASE, LocalMap, localize
from terrmap.app.elements import (
    EditorEvents,
    EditorOverlay,
    EditorRegionLayer,
    EditorStyle,
    MapStyle,
    NaiveEditorTracker,
    OutlineLayer,
    ScriptSource,
)
from terrmap.app.folium_protocol import browser_protocol
from terrmap.app.geometry import LOWER48_BOUNDS, US_CENTER, outline_payload
from terrmap.app.html_safe import js_json
from terrmap.app.legend import legend_territories_html
from terrmap.app.map_colors import UNASSIGNED_COLOR, territory_palette
from terrmap.app.map_data import MapData
from terrmap.app.maps import build_naive_map, legend_clearance


def overlay_feature_group(overlay: dict) -> folium.FeatureGroup:
    """A feature group for streamlit-folium's ``feature_group_to_add`` carrying one overlay."""
    fg = folium.FeatureGroup(name="edits", control=False)
    EditorOverlay(overlay).add_to(fg)
    return fg


def editor_overlay(
    base_rows: np.ndarray,
    base_terr: np.ndarray,
    base_colors: np.ndarray,
    assignment: np.ndarray,
    locked: np.ndarray,
    territories: pd.DataFrame,
    n: int,
    legend: bool = True,
) -> dict:
    """What the browser must change on the base map to show the current plan.

    ``base_rows``: per drawn region (payload order), its index in ``assignment``/``locked``;
    ``base_terr``/``base_colors``: territory index and fill colour the base drew. Returns
    ``{"ch": [[territory index, [region positions]], ...], "pal", "ter", "lk", "lg", "n", "clear"}``:
    only regions whose territory or colour changed since the base travel (cumulative, so a
    missed overlay is harmless), plus every locked region in view and the legend.
    """
    _, labels, colors = territory_palette(territories)
    pal = np.array(colors + [UNASSIGNED_COLOR], dtype=object)
    cur = np.asarray(assignment)[base_rows]
    cur_col = pal[np.where(cur >= 0, cur, len(colors))]
    changed = np.flatnonzero((cur != base_terr) | (cur_col != base_colors))
    groups = []
    if changed.size:
        t = cur[changed]
        for tv in np.unique(t).tolist():
            groups.append([int(tv), changed[t == tv].tolist()])
    out = {
        "ch": groups,
        "pal": colors,
        "ter": labels,
        "lk": np.flatnonzero(np.asarray(locked)[base_rows]).tolist(),
        "n": int(n),
        "clear": True,
    }
    if legend:
        counts = np.bincount(cur[cur >= 0], minlength=len(colors)) if len(colors) else np.zeros(0, int)
        shown = [i for i in range(len(colors)) if counts[i]]
        out["lg"] = legend_territories_html([labels[i] for i in shown], [colors[i] for i in shown],
                                            [int(counts[i]) for i in shown], int((cur < 0).sum()),
                                            title="Territories in view") if len(cur) else ""
    return out


def editor_payload_script(data: MapData, outlines: dict | None = None) -> tuple[str, str]:
    """(key, script) defining the map's payloads as ``window.tmData["r"+key]`` and ``["o"+key]``,
    for serving as a file; :func:`build_editor_map` then reads them from there."""
    region = data.payload_literal()
    outline = outline_payload(outlines) if outlines and outlines.get("features") else None
    h = hashlib.sha1(region.encode())
    if outline:
        h.update(outline.encode())
    key = h.hexdigest()[:16]
    parts = ["window.tmData = window.tmData || {};", f'window.tmData["r{key}"] = {region};']
    if outline:
        parts.append(f'window.tmData["o{key}"] = {outline};')
    return key, "\n".join(parts)


DRAW_SHAPE = {"color": "#111827", "weight": 2, "opacity": 0.9, "fillColor": "#111827", "fillOpacity": 0.08,
              "dashArray": "6 4"}


def build_editor_map(
    data: MapData,
    *,
    outlines: dict | None = None,
    static_base: str = DEFAULT_STATIC_BASE,
    payload_url: str | None = None,
    payload_key: str | None = None,
    draw: bool = True,
) -> folium.Map:
    """The editor's base map: regions (restylable), state outlines, Leaflet.draw (local assets).

    With ``payload_url``/``payload_key`` (from :func:`editor_payload_script`, served by the app)
    the payloads load from that script instead of being inlined: the map's own script is a few KB.
    """
    m = LocalMap(
        location=US_CENTER, zoom_start=4, tiles=None, static_base=static_base, control_scale=True,
        zoom_snap=0.25, zoom_delta=0.5, wheel_px_per_zoom_level=90,
    )
    MapStyle().add_to(m)
    EditorStyle().add_to(m)
    external = bool(payload_url and payload_key)
    if external:
        ScriptSource(payload_url).add_to(m)
    if outlines and outlines.get("features"):
        ol = OutlineLayer(outlines, land=True)
        if external:
            ol.payload = f"window.tmData[{js_json('o' + payload_key)}]"
        ol.add_to(m)
    source = f"window.tmData[{js_json('r' + payload_key)}]" if external else None
    EditorRegionLayer(data, source=source).add_to(m)
    if draw:
        Draw(
            position="topleft",
            show_geometry_on_click=False,
            draw_options={
                "polyline": False, "marker": False, "circlemarker": False,
                "rectangle": {"shapeOptions": DRAW_SHAPE, "showArea": False},
                "polygon": {"shapeOptions": DRAW_SHAPE, "allowIntersection": False, "showArea": False},
                "circle": {"shapeOptions": DRAW_SHAPE, "showRadius": True, "metric": True, "feet": False},
            },
            edit_options={"edit": False, "remove": False},
        ).add_to(m)
    EditorEvents(browser_protocol()).add_to(m)
    # all of the area; the lower 48 when most of it is there (the whole country: not Guam to Puerto Rico)
    m.fit_bounds(data.core_bounds or data.bounds or LOWER48_BOUNDS, padding_top_left=(10, 10),
                 padding_bottom_right=(legend_clearance("territory"), 10))
    localize(m, static_base)
    return m


class RegionLocator:
    """The drawn region under a clicked point: H3 by cell arithmetic, other layers by polygon search."""

    def __init__(self, layer_key: str, region_ids: Sequence[str], shapes: dict[str, dict] | None = None):
        self.ids = list(region_ids)
        self.res = int(layer_key[3:]) if layer_key.startswith("h3:") else None
        self._known = set(self.ids)
        self._tree = None
        self._tree_ids: list[str] = []
        if self.res is None and shapes:
            geoms, ids = [], []
            for rid in self.ids:
                g = shapes.get(rid)
                if g is not None:
                    geoms.append(shapely.make_valid(to_shape(g)))
                    ids.append(rid)
            self._tree = shapely.STRtree(geoms)
            self._tree_ids = ids

    def locate(self, lat: float, lng: float) -> str | None:
        if self.res is not None:
            cell = h3.latlng_to_cell(float(lat), float(lng), self.res)
            return cell if cell in self._known else None
        if self._tree is None:
            return None
        pt = shapely.Point(float(lng), float(lat))
        hits = self._tree.query(pt, predicate="intersects")
        if not len(hits):
            hits = self._tree.query_nearest(pt, max_distance=0.005)
        return self._tree_ids[int(hits[0])] if len(hits) else None



def build_naive_editor_map(frame: pd.DataFrame, shapes: dict[str, dict], territories: pd.DataFrame | None,
                           static_base: str = DEFAULT_STATIC_BASE) -> folium.Map:
    """The editor's second baseline: :func:`build_naive_map` (folium ``GeoJson`` with a style function and a
    tooltip, as tutorials do it) plus the drawing tools, rebuilt and re-sent on every edit."""
    m = build_naive_map(frame, shapes, territories, "territory", static_base)
    Draw(position="topleft", show_geometry_on_click=False,
         draw_options={"polyline": False, "marker": False, "circlemarker": False},
         edit_options={"edit": False, "remove": False}).add_to(m)
    NaiveEditorTracker().add_to(m)
    EditorEvents(browser_protocol()).add_to(m)
    localize(m, static_base)
    return m
