"""The folium maps of regions: :func:`build_map` (what every page shows) and :func:`build_naive_map`
(the benchmark's baseline). Every asset is served from this app (:mod:`terrmap.app.assets`)."""

from __future__ import annotations

import html
from collections.abc import Sequence

import folium
import h3
import numpy as np
import pandas as pd

from terrmap.app.assets import DEFAULT_STATIC_BASE, LocalMap, localize
from terrmap.app.elements import HtmlControl, MapStyle, OutlineLayer, RegionLayer
from terrmap.app.geometry import LOWER48_BOUNDS, US_CENTER
from terrmap.app.html_safe import esc, is_missing
from terrmap.app.map_colors import NO_DATA_COLOR, UNASSIGNED_COLOR, UNASSIGNED_LABEL, quantile_bins, territory_palette
from terrmap.app.map_data import MapData
from terrmap.measures import STAT_COLUMNS

OSM_TILES = "OpenStreetMap"


# The territory legend's width: a swatch and gaps, ~6.2 px per character of the longest label at 11.5 px, the
# count, its padding and the corner margin; capped by its max-width in static/terrmap/map.css (250 px) + margin.
_LEGEND_FIXED_PX, _LEGEND_PX_PER_CHAR, _LEGEND_MAX_PX = 100, 6.2, 262


def legend_clearance(color_by: str, labels: Sequence[str] = ()) -> int:
    """Pixels kept free on the right when the map is framed, so the legend (bottom right) covers no region:
    for a territory legend, as wide as its longest label makes it (the scenario diff's "Los Angeles → San
    Francisco" rows are wider than a plan's names)."""
    if color_by != "territory":
        return 170
    longest = max((len(html.unescape(label)) for label in labels), default=20)
    return int(min(_LEGEND_MAX_PX, max(230, _LEGEND_FIXED_PX + _LEGEND_PX_PER_CHAR * longest)))


def build_map(
    data: MapData | None,
    *,
    tiles: bool = False,
    outlines: dict | None = None,
    static_base: str = DEFAULT_STATIC_BASE,
    note: str | None = None,
    fit: str = "core",
) -> folium.Map:
    """The folium map of ``data``: regions, legend, optional state outlines and OSM tiles (internet).

    ``fit``: "core" opens on the lower 48 when most regions are there (all-US
    views), "all" on every region (a chosen area), "focus" on ``data.focus_bounds`` (what changed; else
    "core"). Every asset is served from
    ``static_base``; see :mod:`terrmap.app.assets`.
    """
    m = LocalMap(
        location=US_CENTER,
        zoom_start=4,
        tiles=None,
        static_base=static_base,
        control_scale=True,
        zoom_snap=0.25,
        zoom_delta=0.5,
        wheel_px_per_zoom_level=90,
    )
    MapStyle().add_to(m)
    if tiles:
        folium.TileLayer(OSM_TILES, name="OpenStreetMap", max_zoom=19).add_to(m)
    if outlines and outlines.get("features"):
        OutlineLayer(outlines, land=not tiles).add_to(m)
    if data is not None:
        RegionLayer(data, fill_opacity=0.62 if tiles else 0.8).add_to(m)
        HtmlControl(data.legend_html, "bottomright").add_to(m)
    if note:
        HtmlControl(f"<div>{esc(note)}</div>", "bottomleft", "tm-note").add_to(m)
    bounds = None
    if data is not None:
        bounds = (data.focus_bounds or data.core_bounds if fit == "focus" else data.core_bounds if fit == "core"
                  else data.bounds)
    m.fit_bounds(bounds or LOWER48_BOUNDS, padding_top_left=(10, 10),
                 padding_bottom_right=(0 if data is None else legend_clearance(data.color_by, data.territories), 10))
    localize(m, static_base)
    return m


def build_naive_map(
    frame: pd.DataFrame,
    shapes: dict[str, dict],
    territories: pd.DataFrame | None = None,
    color_by: str = "territory",
    static_base: str = DEFAULT_STATIC_BASE,
) -> folium.Map:
    """The baseline for the benchmark: folium's defaults, as most tutorials do it.

    Full-precision coordinates (the shapes as given), every stat as a feature
    property, a Python ``style_function`` (folium turns it into a per-feature
    ``switch``), a ``highlight_function`` and a ``GeoJsonTooltip`` on all fields.
    Assets are local too (so it renders offline and the comparison is fair).
    Strings are escaped: GeoJsonTooltip would put them into innerHTML as they are.
    """
    ids, labels, colors = territory_palette(territories)
    color_of = dict(zip(ids, colors))
    label_of = dict(zip(ids, labels))
    bins = quantile_bins(frame[color_by], color_by) if color_by in STAT_COLUMNS else None
    features = []
    for row in frame.itertuples(index=False):
        geom = shapes.get(row.region_id)
        if geom is None:
            continue
        if h3.is_valid_cell(row.region_id):  # full precision, as h3 returns it
            ring = [[lng, lat] for lat, lng in h3.cell_to_boundary(row.region_id)]
            geom = {"type": "Polygon", "coordinates": [ring + [ring[0]]]}
        tid = None if is_missing(row.territory_id) else int(row.territory_id)
        props = {"region_id": esc(row.region_id), "territory": label_of.get(tid, UNASSIGNED_LABEL)}
        for m in STAT_COLUMNS:
            v = getattr(row, m)
            props[m] = None if is_missing(v) else float(v)
        if bins is not None:
            c = int(bins.classify([props[color_by] if props[color_by] is not None else np.nan])[0])
            props["fill"] = bins.colors[c] if c >= 0 else NO_DATA_COLOR
        else:
            props["fill"] = color_of.get(tid, UNASSIGNED_COLOR)
        features.append({"type": "Feature", "geometry": geom, "properties": props})
    fc = {"type": "FeatureCollection", "features": features}
    m = LocalMap(location=US_CENTER, zoom_start=4, static_base=static_base)
    folium.GeoJson(
        fc,
        style_function=lambda f: {"fillColor": f["properties"]["fill"], "color": f["properties"]["fill"],
                                  "weight": 0.5, "fillOpacity": 0.8},
        highlight_function=lambda f: {"weight": 2.2, "color": "#1f2937"},
        tooltip=folium.GeoJsonTooltip(fields=["region_id", "territory", *STAT_COLUMNS], localize=True),
    ).add_to(m)
    if features:
        m.fit_bounds(m.get_bounds())
    localize(m, static_base)
    return m


