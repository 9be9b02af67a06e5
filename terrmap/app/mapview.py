"""Building the territory map: plain functions, no Streamlit (the pages only call these).

The flow::

    stats  = region_stats(store, layer)                      # terrmap.data.stats
    places = region_places(store, layer)                     # region -> "City, ST", states
    frame  = region_frame(stats, assignment, territories, places)
    frame  = filter_states(frame, ["CA", "NV"])              # fine layers: pick an area
    data   = map_data(frame, layer.shapes(store, frame["region_id"]), territories, "territory")
    m      = build_map(data, outlines=state_outlines_geojson())   # a folium.Map, assets local

What keeps the map fast (see docs/BENCHMARKS.md, "Map render"):

* one compact, columnar payload per map (:class:`MapData`): rings as
  delta-encoded integers at 2-4 decimals (:func:`default_decimals`), per region only its
  id, place, palette index, territory index and six integers; about 110 bytes
  per H3 cell against ~650 for folium's GeoJSON with all stats as properties;
* parsed with ``JSON.parse`` from one string literal (faster than a big object
  literal) and turned straight into ``L.polygon`` layers with a ready style
  (no per-feature style function, no folium ``switch`` with a case per feature);
* one tooltip and one pair of hover handlers for the whole layer; the tooltip
  is built on hover, so nothing per region is done up front;
* the rendered script is inserted as text (:class:`RawMacroElement`): branca
  would compile megabytes of it as a Jinja template.

Security: every string that ends up in HTML (tooltips, legend) comes from
:func:`esc` (``html.escape``, and ``{ }`` as entities) here in Python; the
browser side only concatenates these already escaped strings and numbers it
formats itself. Colours are validated (:func:`safe_color`). The JSON is
embedded with ``<``, ``>``, ``&`` as ``\\u003c`` etc., so no data can close the
script element or open a Jinja tag.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Sequence

import folium
import numpy as np
import pandas as pd
from branca.element import Element
from folium.elements import MacroElement
from folium.template import Template

from terrmap.app.assets import DEFAULT_STATIC_BASE, LocalMap, localize
from terrmap.data.stats import STAT_COLUMNS

if TYPE_CHECKING:
    from terrmap.geo import Layer
    from terrmap.data.store import Store

# More regions than this are not drawn: the browser would take too long (SVG paths).
MAX_REGIONS = int(os.environ.get("TERRMAP_MAX_REGIONS", "20000"))

UNASSIGNED_COLOR = "#c8ccd2"
NO_DATA_COLOR = "#e4e6ea"
UNASSIGNED_LABEL = "Unassigned"

# ColorBrewer YlGnBu (sequential, colour-blind safe, prints well), without its near-white first class.
SEQUENTIAL = ["#edf8b1", "#c7e9b4", "#7fcdbb", "#41b6c4", "#1d91c0", "#225ea8", "#253494", "#081d58"]
LAND_COLOR = "#f7f8fa"  # the states (offline base layer) ...
WATER_COLOR = "#dde5ec"  # ... and everything else


US_CENTER = (39.5, -98.35)
LOWER48_BOUNDS = [[24.4, -124.8], [49.4, -66.9]]

# -- numbers --------------------------------------------------------------------------

@dataclass(frozen=True)
class Measure:
    name: str
    label: str
    kind: str  # "int", "money", "pct"
    help: str = ""


MEASURES: dict[str, Measure] = {
    m.name: m
    for m in [
        Measure("leads", "Leads", "int", "all leads in the region"),
        Measure("open_leads", "Open leads", "int", "leads not yet won or lost"),
        Measure("customers", "Customers", "int", "won leads"),
        Measure("won_revenue", "Won revenue", "money", "sum of won deal values"),
        Measure("avg_score", "Avg score", "pct", "mean conversion probability of the open leads"),
        Measure("potential", "Potential", "money", "sum over open leads of score x expected deal value"),
    ]
}
assert list(MEASURES) == STAT_COLUMNS


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def fmt_int(value) -> str:
    return "–" if _missing(value) else f"{int(round(float(value))):,}"


def fmt_money(value) -> str:
    """$950, $12.3K, $4.56M, $1.20B: short enough for tooltips and KPI cards."""
    if _missing(value):
        return "–"
    v = float(value)
    sign = "-" if v < 0 else ""
    v = abs(v)
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if v >= div:
            x = v / div
            digits = 2 if x < 10 else 1 if x < 100 else 0
            return f"{sign}${x:,.{digits}f}{suffix}"
    return f"{sign}${v:,.0f}"


def fmt_pct(value, digits: int = 0) -> str:
    return "–" if _missing(value) else f"{float(value) * 100:.{digits}f}%"


def fmt_value(measure: str, value) -> str:
    kind = MEASURES[measure].kind
    return fmt_int(value) if kind == "int" else fmt_money(value) if kind == "money" else fmt_pct(value)


# -- escaping ---------------------------------------------------------------------------

def esc(value) -> str:
    """Text -> HTML-safe text. None/NaN -> ''.

    Escapes ``< > & " '`` and also ``{ }`` (as HTML entities, displayed the
    same): folium/branca compile rendered output as Jinja templates, so a name
    like ``{{ 7*7 }}`` would otherwise be evaluated on the server.
    """
    if _missing(value):
        return ""
    return html.escape(str(value), quote=True).replace("{", "&#123;").replace("}", "&#125;")


_COLOR_RE = re.compile(r"^(#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}|#[0-9a-fA-F]{8}|[a-zA-Z]{3,20})$")


def safe_color(value, default: str = UNASSIGNED_COLOR) -> str:
    """A CSS colour we can put into a style attribute, else ``default``."""
    return value if isinstance(value, str) and _COLOR_RE.match(value.strip() or "-") else default


def js_json(obj) -> str:
    """Compact JSON safe inside an HTML <script> and inside a Jinja template.

    No ``<``, ``>``, ``&``, ``'`` literally (nothing can close the script), and
    no Jinja opener (``{{``, ``{%``, ``{#``): in compact JSON these can only
    occur inside strings, where the second character is written as a
    ``\\uXXXX`` escape (same string for the browser).
    """
    return (
        json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("'", "\\u0027")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
        .replace("{{", "{\\u007b")
        .replace("{%", "{\\u0025")
        .replace("{#", "{\\u0023")
    )


# -- geography --------------------------------------------------------------------------

STATE_NAMES = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California", "CO": "Colorado",
    "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia", "FL": "Florida", "GA": "Georgia",
    "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois", "IN": "Indiana", "IA": "Iowa", "KS": "Kansas",
    "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan",
    "MN": "Minnesota", "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York", "NC": "North Carolina",
    "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon", "PA": "Pennsylvania",
    "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota", "TN": "Tennessee", "TX": "Texas",
    "UT": "Utah", "VT": "Vermont", "VA": "Virginia", "WA": "Washington", "WV": "West Virginia",
    "WI": "Wisconsin", "WY": "Wyoming", "PR": "Puerto Rico", "VI": "U.S. Virgin Islands", "GU": "Guam",
    "AS": "American Samoa", "MP": "Northern Mariana Islands",
}


def region_places(store: "Store", layer: "Layer") -> pd.DataFrame:
    """Per populated region: ``place`` ("City, ST" holding most of its leads) and ``states``
    (the states it touches, comma-separated: "CA,NV"; a string pickles fast in caches)."""
    rid = layer.region_id_sql(layer.region_key_sql("l"))
    return store.cursor().sql(
        f"""
        WITH r AS (
            SELECT {rid} AS region_id, z.state, z.city, count(*) AS n
            FROM leads l LEFT JOIN zips z ON z.zip = l.zip
            GROUP BY ALL
        )
        SELECT region_id,
               arg_max(CASE WHEN city IS NULL THEN state ELSE city || ', ' || state END, n) AS place,
               array_to_string(list_sort(list(DISTINCT state) FILTER (WHERE state IS NOT NULL)), ',') AS states
        FROM r WHERE region_id IS NOT NULL GROUP BY region_id
        """
    ).df()


def state_codes(places: pd.DataFrame) -> list[str]:
    """All state codes in ``places["states"]``, by state name."""
    codes = {c for v in places["states"].dropna().unique() for c in str(v).split(",") if c}
    return sorted(codes, key=lambda c: STATE_NAMES.get(c, c))


def region_frame(
    stats: pd.DataFrame,
    assignment: pd.DataFrame | None = None,
    territories: pd.DataFrame | None = None,
    places: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Stats + territory_id (NaN: unassigned) + place/states: one row per region with leads."""
    frame = stats.copy()
    if assignment is not None and len(assignment):
        a = assignment[["region_id", "territory_id"]].drop_duplicates("region_id")
        frame = frame.merge(a, on="region_id", how="left")
        if territories is not None:
            known = set(territories["territory_id"].tolist())
            frame.loc[~frame["territory_id"].isin(known), "territory_id"] = np.nan
    else:
        frame["territory_id"] = np.nan
    if places is not None and len(places):
        frame = frame.merge(places, on="region_id", how="left")
    if "place" not in frame:
        frame["place"] = None
    if "states" not in frame:
        frame["states"] = None
    return frame


def filter_states(frame: pd.DataFrame, states: Iterable[str] | None) -> pd.DataFrame:
    """Regions touching any of ``states`` (all regions for None/empty)."""
    wanted = set(states or [])
    if not wanted:
        return frame
    touched = {v: not wanted.isdisjoint(str(v).split(",")) for v in frame["states"].dropna().unique()}
    return frame[frame["states"].map(touched).fillna(False).astype(bool)]


# -- colours ----------------------------------------------------------------------------

@dataclass
class Bins:
    """Quantile classes of a measure: class i holds ``lower[i] <= v <= upper[i]`` (actual values)."""

    measure: str
    edges: list[float]  # inner cut points, len = n_classes - 1; class = searchsorted(edges, v, 'right')
    lower: list[float]
    upper: list[float]
    counts: list[int]
    colors: list[str]
    missing: int = 0  # regions without a value (shown as "No data")

    @property
    def labels(self) -> list[str]:
        out = []
        for lo, hi in zip(self.lower, self.upper):
            a, b = fmt_value(self.measure, lo), fmt_value(self.measure, hi)
            out.append(a if a == b else f"{a} – {b}")
        return out

    def classify(self, values) -> np.ndarray:
        """Class index per value; -1 for missing."""
        v = np.asarray(values, dtype=float)
        idx = np.searchsorted(np.asarray(self.edges, dtype=float), v, side="right")
        return np.where(np.isnan(v), -1, idx)


def spread_colors(n: int, palette: Sequence[str] = SEQUENTIAL) -> list[str]:
    """``n`` colours spread evenly over a sequential palette (light to dark)."""
    if n <= 0:
        return []
    if n == 1:
        return [palette[len(palette) // 2]]
    return [palette[round(i * (len(palette) - 1) / (n - 1))] for i in range(n)]


def quantile_bins(values, measure: str, k: int = 5) -> Bins:
    """Up to ``k`` quantile classes of ``values`` (fewer when values repeat, e.g. many regions with 1 lead)."""
    v = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    present = v[~np.isnan(v)]
    missing = int(np.isnan(v).sum())
    if len(present) == 0:
        return Bins(measure, [], [], [], [], [], missing)
    qs = np.quantile(present, np.linspace(0, 1, k + 1)[1:-1], method="linear")
    # A cut at x puts x in the upper class (searchsorted 'right'); cut between distinct data values.
    edges = sorted({float(q) for q in qs if present.min() < q <= present.max()})
    idx = np.searchsorted(np.asarray(edges), present, side="right")
    lower, upper, counts, kept = [], [], [], []
    for i in range(len(edges) + 1):
        sel = present[idx == i]
        if len(sel) == 0:
            continue
        lower.append(float(sel.min()))
        upper.append(float(sel.max()))
        counts.append(int(len(sel)))
        kept.append(i)
    # drop cut points that produced empty classes
    edges = [edges[i - 1] for i in kept[1:]]
    return Bins(measure, edges, lower, upper, counts, spread_colors(len(counts)), missing)


def territory_palette(territories: pd.DataFrame | None) -> tuple[list[int], list[str], list[str]]:
    """(territory ids, escaped labels "Name · Rep", safe colours) in territory order."""
    if territories is None or not len(territories):
        return [], [], []
    ids, labels, colors = [], [], []
    for row in territories.itertuples(index=False):
        rep = getattr(row, "rep_name", None)
        label = esc(row.name) + (f" · {esc(rep)}" if not _missing(rep) and rep else "")
        ids.append(int(row.territory_id))
        labels.append(label)
        colors.append(safe_color(getattr(row, "color", None)))
    return ids, labels, colors


# -- legend -----------------------------------------------------------------------------

def _swatch(color: str) -> str:
    return f'<i class="tm-sw" style="background:{safe_color(color)}"></i>'


def legend_territories_html(labels: Sequence[str], colors: Sequence[str], counts: Sequence[int] | None = None,
                            unassigned: int = 0, title: str = "Territories") -> str:
    """Legend rows for territories. ``labels`` must already be escaped (see :func:`territory_palette`)."""
    rows = []
    for i, (label, color) in enumerate(zip(labels, colors)):
        n = f'<span class="tm-n">{fmt_int(counts[i])}</span>' if counts is not None else ""
        rows.append(f'<div class="tm-row">{_swatch(color)}<span class="tm-l">{label}</span>{n}</div>')
    if unassigned:
        rows.append(
            f'<div class="tm-row">{_swatch(UNASSIGNED_COLOR)}<span class="tm-l">{UNASSIGNED_LABEL}</span>'
            f'<span class="tm-n">{fmt_int(unassigned)}</span></div>'
        )
    return f'<div class="tm-title">{esc(title)}</div><div class="tm-rows">{"".join(rows)}</div>'


def legend_bins_html(bins: Bins, title: str | None = None) -> str:
    measure = MEASURES[bins.measure]
    rows = [
        f'<div class="tm-row">{_swatch(c)}<span class="tm-l">{esc(label)}</span><span class="tm-n">{fmt_int(n)}</span></div>'
        for c, label, n in zip(bins.colors, bins.labels, bins.counts)
    ]
    if bins.missing:
        rows.append(
            f'<div class="tm-row">{_swatch(NO_DATA_COLOR)}<span class="tm-l">No data</span>'
            f'<span class="tm-n">{fmt_int(bins.missing)}</span></div>'
        )
    head = esc(title or measure.label)
    return (
        f'<div class="tm-title">{head}</div><div class="tm-sub">quantiles · regions per class</div>'
        f'<div class="tm-rows">{"".join(rows)}</div>'
    )


# -- the map payload ----------------------------------------------------------------------

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

    t = geometry.get("type")
    if t == "Polygon":
        return {"type": t, "coordinates": [ring(r) for r in geometry["coordinates"]]}
    if t == "MultiPolygon":
        return {"type": t, "coordinates": [[ring(r) for r in poly] for poly in geometry["coordinates"]]}
    return geometry


def _outer_box(geometry: dict) -> tuple[float, float, float, float] | None:
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
    """Inverse of :func:`encode_ring` (closed again); the browser does the same in JS."""
    out, x, y = [], 0, 0
    for k in range(0, len(flat), 2):
        x += flat[k]
        y += flat[k + 1]
        out.append([x / scale, y / scale])
    return out + out[:1]


@dataclass
class MapData:
    """Everything the browser needs for one map: columnar, compact, strings already escaped.

    Per region (same order in every list): ``ids`` (escaped), ``places`` (escaped, "" if
    none), ``colors`` (palette index, -1: unassigned/no data), ``terr`` (territory index,
    -1: none), ``values`` (per measure of :data:`MEASURES`: int, money rounded to $,
    score in per mille, -1 for missing) and ``geoms`` (per polygon, per ring: ints from
    :func:`encode_ring` at ``scale``). :meth:`feature_collection` gives plain GeoJSON.
    """

    ids: list[str]
    places: list[str]
    colors: list[int]
    terr: list[int]
    values: list[list[int]]
    geoms: list[list[list[list[int]]]]
    scale: int
    palette: list[str]  # colour index -> colour
    territories: list[str]  # territory index -> escaped label
    labels: list[str]  # escaped labels of the measures
    legend_html: str
    color_by: str
    region_label: str  # "ZIP", "H3 cell"
    bounds: list[list[float]] | None  # [[south, west], [north, east]] of all regions
    core_bounds: list[list[float]] | None = None  # without AK/HI/territories when most is in the lower 48
    bins: Bins | None = None
    missing_shapes: list[str] = field(default_factory=list)
    _payload_json: str | None = field(default=None, repr=False, compare=False)
    _payload_literal: str | None = field(default=None, repr=False, compare=False)

    @property
    def n_features(self) -> int:
        return len(self.ids)

    def feature_collection(self) -> dict:
        """The regions as a GeoJSON FeatureCollection (properties: id, place, colour, territory, values)."""
        feats = []
        for k, rid in enumerate(self.ids):
            polys = [[decode_ring(r, self.scale) for r in poly] for poly in self.geoms[k]]
            geom = {"type": "Polygon", "coordinates": polys[0]} if len(polys) == 1 else {
                "type": "MultiPolygon", "coordinates": polys}
            props = {"i": rid, "p": self.places[k], "c": self.colors[k], "t": self.terr[k],
                     "v": [col[k] for col in self.values]}
            feats.append({"type": "Feature", "geometry": geom, "properties": props})
        return {"type": "FeatureCollection", "features": feats}

    def payload(self) -> dict:
        hl = list(MEASURES).index(self.color_by) if self.color_by in MEASURES else -1
        return {
            "q": self.scale, "id": self.ids, "p": self.places, "c": self.colors, "t": self.terr,
            "v": self.values, "g": self.geoms,
            "kind": [m.kind for m in MEASURES.values()],
            "pal": self.palette, "ter": self.territories, "lab": self.labels,
            "rl": esc(self.region_label), "hl": hl,
            "na": UNASSIGNED_LABEL if self.color_by == "territory" else "No territory",
            "nc": UNASSIGNED_COLOR if self.color_by == "territory" else NO_DATA_COLOR,
        }

    def payload_json(self) -> str:
        """:meth:`payload` as script-safe JSON, computed once (MapData is cached and read-only)."""
        if self._payload_json is None:
            self._payload_json = js_json(self.payload())
        return self._payload_json

    def payload_literal(self) -> str:
        """The payload as a script-safe JS *string* literal, for ``JSON.parse`` (parses faster than an
        object literal of megabytes)."""
        if self._payload_literal is None:
            self._payload_literal = js_json(self.payload_json())
        return self._payload_literal


def _compact_values(frame: pd.DataFrame) -> list[list[int]]:
    """Per measure, one int per region: counts; dollars rounded; score in per mille; -1 if missing."""
    out = []
    for name, m in MEASURES.items():
        v = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
        if m.kind == "pct":
            v = v * 1000
        ints = np.where(np.isnan(v), -1, np.rint(np.nan_to_num(v))).astype(np.int64)
        out.append(ints.tolist())
    return out


def map_data(
    frame: pd.DataFrame,
    shapes: dict[str, dict],
    territories: pd.DataFrame | None = None,
    color_by: str = "territory",
    region_label: str = "Region",
    decimals: int = 4,
    k: int = 5,
    shown_ids: Sequence[str] | None = None,
) -> MapData:
    """The regions of ``frame`` that have a shape, coloured by territory or by a measure.

    ``frame``: from :func:`region_frame` (region_id, stats, territory_id, place); ``shown_ids`` (one per
    row of ``frame``): what the tooltip shows after ``region_label`` instead of the region id.
    Coordinates are rounded to ``decimals`` (3: ~100 m, 4: ~10 m).
    """
    if color_by != "territory" and color_by not in MEASURES:
        raise ValueError(f"color_by must be 'territory' or one of {', '.join(MEASURES)}")
    t_ids, t_labels, t_colors = territory_palette(territories)
    t_index = {tid: i for i, tid in enumerate(t_ids)}
    terr_idx = np.array(
        [t_index.get(int(t), -1) if not _missing(t) else -1 for t in frame["territory_id"].tolist()], dtype=int
    ) if len(frame) else np.zeros(0, dtype=int)

    bins = None
    if color_by == "territory":
        palette = t_colors
        color_idx = terr_idx
    else:
        bins = quantile_bins(frame[color_by], color_by, k=k)
        palette = bins.colors
        color_idx = bins.classify(frame[color_by].to_numpy(dtype=float)) if len(frame) else terr_idx

    scale = 10 ** decimals
    all_values = _compact_values(frame)
    rids = frame["region_id"].tolist()
    places = frame["place"].tolist() if "place" in frame else [None] * len(frame)
    keep, geoms, boxes, missing_shapes = [], [], [], []
    for row, rid in enumerate(rids):
        geom = shapes.get(rid)
        if geom is None or geom.get("type") not in ("Polygon", "MultiPolygon"):
            missing_shapes.append(rid)
            continue
        geom = round_geometry(geom, decimals)
        box = _outer_box(geom)
        if box is not None:
            boxes.append(box)
        polys = [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
        geoms.append([[encode_ring(r, scale) for r in poly] for poly in polys])
        keep.append(row)

    kept_terr = [int(terr_idx[r]) for r in keep]
    counts = [kept_terr.count(i) for i in range(len(t_ids))]
    unassigned = kept_terr.count(-1)
    if color_by == "territory":
        shown = [i for i, n in enumerate(counts) if n] or list(range(len(counts)))  # territories on this map
        legend = legend_territories_html([t_labels[i] for i in shown], [t_colors[i] for i in shown],
                                         [counts[i] for i in shown], unassigned)
    else:
        legend = legend_bins_html(bins)
    full, core = view_bounds(np.asarray(boxes, dtype=float))
    return MapData(
        ids=[esc(rids[r] if shown_ids is None else shown_ids[r]) for r in keep],
        places=[esc(places[r]) if not _missing(places[r]) else "" for r in keep],
        colors=[int(color_idx[r]) for r in keep],
        terr=kept_terr,
        values=[[col[r] for r in keep] for col in all_values],
        geoms=geoms,
        scale=scale,
        palette=palette,
        territories=t_labels,
        labels=[esc(m.label) for m in MEASURES.values()],
        legend_html=legend,
        color_by=color_by,
        region_label=region_label,
        bounds=full,
        core_bounds=core,
        bins=bins,
        missing_shapes=missing_shapes,
    )


# -- folium elements ------------------------------------------------------------------------

MAP_CSS = """
<style>
.leaflet-container { background: """ + WATER_COLOR + """; font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.tm-legend { background: rgba(255,255,255,.94); padding: 8px 10px; border-radius: 6px; box-shadow: 0 1px 5px rgba(0,0,0,.25);
  font-size: 11.5px; line-height: 1.3; color: #262730; max-height: 300px; overflow-y: auto; min-width: 140px; max-width: 250px; }
.tm-legend .tm-title { font-weight: 600; font-size: 13px; margin-bottom: 2px; }
.tm-legend .tm-sub { color: #6b7280; font-size: 11px; margin-bottom: 4px; }
.tm-legend .tm-row { display: flex; align-items: center; gap: 6px; padding: 1px 0; white-space: nowrap; }
.tm-legend .tm-l { flex: 1; overflow: hidden; text-overflow: ellipsis; }
.tm-legend .tm-n { color: #6b7280; font-variant-numeric: tabular-nums; margin-left: 8px; }
.tm-sw { display: inline-block; width: 14px; height: 14px; border-radius: 3px; border: 1px solid rgba(0,0,0,.15); flex: none; }
.leaflet-tooltip.tm-tip { padding: 6px 9px; font-size: 12px; line-height: 1.35; color: #262730; border-radius: 6px; }
.tm-tip .tm-h { font-weight: 600; font-size: 13px; }
.tm-tip .tm-r { color: #6b7280; margin-bottom: 3px; }
.tm-tip table { border-collapse: collapse; }
.tm-tip td { padding: 0 0 0 0; }
.tm-tip td + td { text-align: right; padding-left: 14px; font-variant-numeric: tabular-nums; }
.tm-tip tr.tm-hl td { font-weight: 600; }
.tm-note { background: rgba(255,255,255,.9); padding: 3px 7px; border-radius: 4px; font-size: 11px; color: #6b7280; }
</style>
"""


class _Raw(Element):
    """Already rendered text, inserted as it is (never compiled as a template)."""

    _template = Template("{{ this.text }}")

    def __init__(self, text: str):
        super().__init__()
        self._name = "Raw"
        self.text = text


class RawMacroElement(MacroElement):
    """A MacroElement whose rendered parts are inserted as text.

    branca's MacroElement.render wraps each rendered macro in ``Element(text)``,
    which *compiles the text as a Jinja template*: slow for megabytes of GeoJSON
    (~0.5 s per 4 MB) and a template injection if the data holds ``{{ ... }}``.
    streamlit-folium calls the same macros directly, so both paths give the same script.
    """

    def render(self, **kwargs):
        figure = self.get_root()
        module = self._template.module
        for part, target in (("header", figure.header), ("html", figure.html), ("script", figure.script)):
            macro = module.__dict__.get(part)
            if macro is not None:
                target.add_child(_Raw(str(macro(self, kwargs))), name=self.get_name())
        for child in self._children.values():
            child.render(**kwargs)


class MapStyle(RawMacroElement):
    """The map's CSS, in the page header (streamlit-folium keeps <style> elements of the header)."""

    _template = Template("{% macro header(this, kwargs) %}" + MAP_CSS + "{% endmacro %}")

    def __init__(self):
        super().__init__()
        self._name = "MapStyle"


# Number formats (the same as fmt_value) and ring decoding, shared by the map and the editor scripts.
_JS_FORMATS = """
            function money(v) {
                var a = Math.abs(v), s = v < 0 ? '-' : '', u = [[1e9, 'B'], [1e6, 'M'], [1e3, 'K']];
                for (var j = 0; j < u.length; j++) {
                    if (a >= u[j][0]) { var x = a / u[j][0];
                        return s + '$' + x.toFixed(x < 10 ? 2 : x < 100 ? 1 : 0) + u[j][1]; }
                }
                return s + '$' + nf.format(Math.round(a));
            }
            function fmt(v, k) {
                if (v < 0 && kind[k] !== 'money') return '\u2013';
                return kind[k] === 'money' ? money(v) : kind[k] === 'pct' ? Math.round(v / 10) + '%' : nf.format(v);
            }
            function ring(a) {
                var out = new Array(a.length / 2), x = 0, y = 0;
                for (var j = 0; j < a.length; j += 2) { x += a[j]; y += a[j + 1]; out[j / 2] = [y / Q, x / Q]; }
                return out;
            }
"""


class RegionLayer(RawMacroElement):
    """All regions as one feature group built from the compact payload, one tooltip and hover highlight."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = (function() {
            var D = JSON.parse({{ this.payload }});
            var Q = D.q, pal = D.pal, ter = D.ter, lab = D.lab, V = D.v, kind = D.kind;
            var nf = new Intl.NumberFormat('en-US');
""" + _JS_FORMATS + """            function tip(l) {
                var i = l.tm, t = D.t[i];
                var h = '<div class="tm-h">' + (t >= 0 ? ter[t] : D.na) + '</div>'
                      + '<div class="tm-r">' + D.rl + ' ' + D.id[i] + (D.p[i] ? ' · ' + D.p[i] : '') + '</div><table>';
                for (var k = 0; k < lab.length; k++) {
                    h += '<tr' + (k === D.hl ? ' class="tm-hl"' : '') + '><td>' + lab[k] + '</td><td>'
                       + fmt(V[k][i], k) + '</td></tr>';
                }
                return h + '</table>';
            }
            var base = {fillOpacity: {{ this.fill_opacity }}, weight: {{ this.weight }}, opacity: 0.4};
            var hover = {weight: 2.2, color: '#1f2937', opacity: 1};
            var layer = L.featureGroup();
            for (var i = 0; i < D.id.length; i++) {
                var c = D.c[i], col = c >= 0 ? pal[c] : D.nc;
                var polys = D.g[i].map(function(p) { return p.map(ring); });
                var l = L.polygon(polys.length === 1 ? polys[0] : polys,
                                  L.extend({fillColor: col, color: {{ this.stroke_js }}}, base));
                l.tm = i;
                l.tmStyle = {color: {{ this.stroke_js }}, weight: base.weight, opacity: base.opacity};
                layer.addLayer(l);
            }
            // one tooltip and one pair of hover handlers for the whole layer, not one per region
            layer.bindTooltip(tip, {sticky: true, className: 'tm-tip', opacity: 0.97});
            layer.on('mouseover', function(e) { e.layer.setStyle(hover); });
            layer.on('mouseout', function(e) { e.layer.setStyle(e.layer.tmStyle); });
            layer.addTo({{ this._parent.get_name() }});
            return layer;
        })();
        {% endmacro %}
        """
    )

    def __init__(self, data: MapData, fill_opacity: float = 0.78, weight: float = 0.5, stroke: str | None = None):
        super().__init__()
        self._name = "RegionLayer"
        self.data = data
        self.payload = data.payload_literal()
        self.fill_opacity = float(fill_opacity)
        self.weight = float(weight)
        # default: the outline in the fill colour (no white mesh over fine layers)
        self.stroke_js = js_json(safe_color(stroke)) if stroke else "col"

    def _get_self_bounds(self):
        b = self.data.bounds
        return b if b else [[None, None], [None, None]]


class OutlineLayer(RawMacroElement):
    """Offline base layer: state shapes filled as land under the regions, their borders drawn on top.

    Not interactive (no tooltips, clicks pass through to the regions).
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function(map) {
            var G = JSON.parse({{ this.payload }}), Q = G.q;
            function ring(a) {
                var out = new Array(a.length / 2), x = 0, y = 0;
                for (var j = 0; j < a.length; j += 2) { x += a[j]; y += a[j + 1]; out[j / 2] = [y / Q, x / Q]; }
                return out;
            }
            if (!map.getPane('tmLand')) { map.createPane('tmLand').style.zIndex = 350; }
            if (!map.getPane('tmLines')) { var p = map.createPane('tmLines'); p.style.zIndex = 450; p.style.pointerEvents = 'none'; }
            G.g.forEach(function(polys) {
                var ll = polys.map(function(p) { return p.map(ring); });
                {%- if this.land %}
                L.polygon(ll, {pane: 'tmLand', interactive: false, stroke: false, fillColor: '{{ this.land_color }}',
                               fillOpacity: 1}).addTo(map);
                {%- endif %}
                L.polygon(ll, {pane: 'tmLines', interactive: false, fill: false, color: '#4b5563', weight: 0.8,
                               opacity: 0.7}).addTo(map);
            });
        })({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, geojson: dict, decimals: int = 3, land: bool = True):
        super().__init__()
        self._name = "OutlineLayer"
        self.land = land
        self.land_color = safe_color(LAND_COLOR)
        self.payload = outline_payload(geojson, decimals)


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


class HtmlControl(RawMacroElement):
    """A Leaflet control showing fixed HTML (the legend). The HTML must already be escaped."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function(map) {
            var c = L.control({position: {{ this.position_js }}});
            c.onAdd = function() {
                var div = L.DomUtil.create('div', {{ this.css_js }});
                div.innerHTML = {{ this.html_js }};
                L.DomEvent.disableClickPropagation(div);
                L.DomEvent.disableScrollPropagation(div);
                return div;
            };
            c.addTo(map);
        })({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, html_text: str, position: str = "bottomright", css_class: str = "tm-legend"):
        super().__init__()
        self._name = "HtmlControl"
        if position not in {"topleft", "topright", "bottomleft", "bottomright"}:
            raise ValueError(position)
        self.html = html_text
        self.html_js = js_json(html_text)
        self.position_js = js_json(position)
        self.css_js = js_json(css_class)


OSM_TILES = "OpenStreetMap"


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
    views), "all" on every region (a chosen area). Every asset is served from
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
        bounds = data.core_bounds if fit == "core" else data.bounds
    # keep the regions clear of the legend (bottom right)
    legend_w = 0 if data is None else 230 if data.color_by == "territory" else 170
    m.fit_bounds(bounds or LOWER48_BOUNDS, padding_top_left=(10, 10), padding_bottom_right=(legend_w, 10))
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
    import h3

    ids, labels, colors = territory_palette(territories)
    color_of = dict(zip(ids, colors))
    label_of = dict(zip(ids, labels))
    bins = quantile_bins(frame[color_by], color_by) if color_by in MEASURES else None
    features = []
    for row in frame.itertuples(index=False):
        geom = shapes.get(row.region_id)
        if geom is None:
            continue
        if h3.is_valid_cell(row.region_id):  # full precision, as h3 returns it
            ring = [[lng, lat] for lat, lng in h3.cell_to_boundary(row.region_id)]
            geom = {"type": "Polygon", "coordinates": [ring + [ring[0]]]}
        tid = None if _missing(row.territory_id) else int(row.territory_id)
        props = {"region_id": esc(row.region_id), "territory": label_of.get(tid, UNASSIGNED_LABEL)}
        for m in MEASURES:
            v = getattr(row, m)
            props[m] = None if _missing(v) else float(v)
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
        tooltip=folium.GeoJsonTooltip(fields=["region_id", "territory", *MEASURES], localize=True),
    ).add_to(m)
    if features:
        m.fit_bounds(m.get_bounds())
    localize(m, static_base)
    return m


# -- territory summary (home page) ------------------------------------------------------------

def territory_summary(stats: pd.DataFrame, assignment: pd.DataFrame, territories: pd.DataFrame) -> pd.DataFrame:
    """One row per territory (plus "Unassigned" if any leads are): the home page table.

    Columns: territory, rep, color, regions, leads, open_leads, customers, won_revenue,
    avg_score (weighted by open leads), potential, share (of total potential),
    deviation (potential vs the mean per territory, -0.2 = 20 % below).
    """
    frame = region_frame(stats, assignment, territories)
    frame = frame.assign(score_x_open=frame["avg_score"].fillna(0) * frame["open_leads"])
    g = frame.groupby(frame["territory_id"].fillna(-1).astype(int))
    agg = g.agg(
        regions=("region_id", "count"),
        leads=("leads", "sum"),
        open_leads=("open_leads", "sum"),
        customers=("customers", "sum"),
        won_revenue=("won_revenue", "sum"),
        potential=("potential", "sum"),
        score_x_open=("score_x_open", "sum"),
    )
    t = territories[["territory_id", "name", "color"]].copy()
    t["rep"] = territories["rep_name"] if "rep_name" in territories else None
    t = t.set_index("territory_id").join(agg, how="left")
    t[["regions", "leads", "open_leads", "customers"]] = t[["regions", "leads", "open_leads", "customers"]].fillna(0).astype(int)
    t[["won_revenue", "potential", "score_x_open"]] = t[["won_revenue", "potential", "score_x_open"]].fillna(0.0)
    if -1 in agg.index and agg.loc[-1, "leads"] > 0:
        row = agg.loc[-1]
        t.loc[-1] = {"name": UNASSIGNED_LABEL, "color": UNASSIGNED_COLOR, "rep": None, **row.to_dict()}
    t["avg_score"] = np.where(t["open_leads"] > 0, t["score_x_open"] / t["open_leads"].clip(lower=1), np.nan)
    total = t["potential"].sum()
    t["share"] = t["potential"] / total if total else 0.0
    assigned = t.index != -1
    mean = t.loc[assigned, "potential"].mean() if assigned.any() else np.nan
    t["deviation"] = np.where(assigned, t["potential"] / mean - 1 if mean else np.nan, np.nan)
    t = t.reset_index().rename(columns={"name": "territory"})
    cols = ["territory_id", "territory", "rep", "color", "regions", "leads", "open_leads", "customers",
            "won_revenue", "avg_score", "potential", "share", "deviation"]
    return t[cols]


def territory_map_data(summary: pd.DataFrame, geoms: dict, decimals: int = 3) -> MapData:
    """Whole territories as map features (one per territory with a shape), for an overview of a plan.

    ``summary``: :func:`territory_summary` rows (unassigned row ignored); ``geoms``: territory_id -> shapely
    (lon/lat) geometry, e.g. from :meth:`terrmap.geo.Layer.dissolve`. The outlines are simplified together
    (neighbours keep a common border) to about 1/1500 of the map's width. The tooltip shows the territory,
    its totals, its region count and its potential against the average.
    """
    import shapely

    rows = summary[(summary["territory_id"] >= 0) & summary["territory_id"].map(lambda t: geoms.get(t) is not None)]
    rows = rows.reset_index(drop=True)
    shapes = np.array([geoms[t] for t in rows["territory_id"]], dtype=object)
    if len(shapes):
        x0, y0, x1, y1 = shapely.total_bounds(shapes)
        tolerance = max(x1 - x0, y1 - y0) / 1500
        try:
            shapes = shapely.coverage_simplify(shapes, tolerance)
        except shapely.errors.GEOSException:  # not a clean coverage (overlapping inputs): one by one
            shapes = shapely.simplify(shapes, tolerance, preserve_topology=True)
    frame = rows.assign(region_id=rows["territory_id"].astype(str), place=[
        "" if _missing(d) else f"potential {d:+.1%} vs the average" for d in rows["deviation"]])
    territories = rows.rename(columns={"territory": "name", "rep": "rep_name"})
    data = map_data(frame, {rid: shapely.geometry.mapping(g) for rid, g in zip(frame["region_id"], shapes)},
                    territories, "territory", region_label="Regions:", decimals=decimals,
                    shown_ids=[fmt_int(n) for n in rows["regions"]])
    data.legend_html = legend_territories_html(data.territories, data.palette, rows["regions"].tolist())
    return data


def kpis(store: "Store", plan_id: int | None = None) -> dict:
    """Headline numbers for the home page."""
    cur = store.cursor()
    row = cur.execute(
        """
        SELECT count(*),
               count(*) FILTER (WHERE status = 'open'),
               count(*) FILTER (WHERE status = 'won'),
               coalesce(sum(deal_value) FILTER (WHERE status = 'won'), 0),
               coalesce(sum(score * expected_value) FILTER (WHERE status = 'open'), 0),
               avg(score) FILTER (WHERE status = 'open')
        FROM leads
        """
    ).fetchall()[0]
    n_terr = cur.execute("SELECT count(*) FROM territories WHERE plan_id = ?", [plan_id]).fetchall()[0][0] if plan_id else 0
    n_reps = cur.execute("SELECT count(*) FROM reps").fetchall()[0][0]
    return {
        "leads": int(row[0]), "open_leads": int(row[1]), "customers": int(row[2]), "won_revenue": float(row[3]),
        "potential": float(row[4]), "avg_score": None if row[5] is None else float(row[5]),
        "territories": int(n_terr), "reps": int(n_reps),
    }


# -- the editor's map (pages/editor.py): drawn once, restyled in place ---------------------------
#
# The base map (regions, state outlines, drawing tools) is built once per plan, layer and area.
# After an edit only an *overlay* travels: the regions whose territory or colour differ from what
# the base drew, and the locked regions, applied by ``window.tmEditor.apply`` in the map iframe
# (streamlit-folium's ``feature_group_to_add``). The big payloads can be served as a script file
# (``payload_url``, e.g. a Streamlit media file) so that the map element itself stays small.

EDITOR_MAP_CSS = """
<style>
.leaflet-draw-toolbar a { background-color: #fff; }
.leaflet-draw-actions a { font-size: 11px; }
.tm-legend.tm-ed-legend { max-height: 190px; font-size: 11px; }
</style>
"""


class EditorStyle(RawMacroElement):
    _template = Template("{% macro header(this, kwargs) %}" + EDITOR_MAP_CSS + "{% endmacro %}")

    def __init__(self):
        super().__init__()
        self._name = "EditorStyle"


class ScriptSource(folium.elements.JSCSSMixin, MacroElement):
    """Makes the map load one more local script (before the map's own script runs)."""

    _template = Template("{% macro script(this, kwargs) %}{% endmacro %}")

    def __init__(self, url: str, name: str = "tm_data"):
        super().__init__()
        self._name = "ScriptSource"
        self.default_js = [(name, url)]
        self.default_css = []


class EditorRegionLayer(RawMacroElement):
    """The regions of :class:`RegionLayer` plus what the editor needs in the browser.

    * ``window.tmRegions``: region id -> polygon; ``window.tmEditor.polys``: by payload index;
    * ``window.tmEditor.apply(overlay)``: restyles regions in place (see :func:`editor_overlay`),
      outlines locked regions (dark, dashed), refreshes the legend and clears drawn shapes;
    * ``source``: a JS expression giving the payload string (default: the payload inline).
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = (function(map) {
            var D = JSON.parse({{ this.source }});
            var Q = D.q, pal = D.pal, ter = D.ter, lab = D.lab, V = D.v, kind = D.kind, n = D.id.length;
            var nf = new Intl.NumberFormat('en-US');
            var lk = {}, touched = {};
""" + _JS_FORMATS + """            function tip(l) {
                var i = l.tm, t = D.t[i];
                var h = '<div class="tm-h">' + (t >= 0 && t < ter.length ? ter[t] : D.na) + '</div>'
                      + '<div class="tm-r">' + D.rl + ' ' + D.id[i] + (D.p[i] ? ' · ' + D.p[i] : '')
                      + (lk[i] ? ' · <b>locked</b>' : '') + '</div><table>';
                for (var k = 0; k < lab.length; k++) {
                    h += '<tr><td>' + lab[k] + '</td><td>' + fmt(V[k][i], k) + '</td></tr>';
                }
                return h + '</table>';
            }
            var base = {fillOpacity: {{ this.fill_opacity }}, weight: {{ this.weight }}, opacity: 0.45};
            var hover = {weight: 2.4, color: '#1f2937', opacity: 1, dashArray: null};
            function look(col, locked) {
                return locked ? {color: '#111827', weight: 1.8, opacity: 0.95, dashArray: '4 3'}
                              : {color: col, weight: base.weight, opacity: base.opacity, dashArray: null};
            }
            var layer = L.featureGroup(), polys = new Array(n), byId = {}, baseT = D.t.slice();
            for (var i = 0; i < n; i++) {
                var c = D.c[i], col = c >= 0 ? pal[c] : D.nc;
                var ps = D.g[i].map(function(p) { return p.map(ring); });
                var l = L.polygon(ps.length === 1 ? ps[0] : ps, L.extend({fillColor: col, color: col}, base));
                l.tm = i;
                l.tmStyle = look(col, false);
                polys[i] = l;
                byId[D.id[i]] = l;
                layer.addLayer(l);
            }
            layer.bindTooltip(tip, {sticky: true, className: 'tm-tip', opacity: 0.97});
            layer.on('mouseover', function(e) { e.layer.setStyle(lk[e.layer.tm] ? L.extend({}, hover, {dashArray: '4 3'}) : hover); });
            layer.on('mouseout', function(e) { e.layer.setStyle(e.layer.tmStyle); });
            // streamlit-folium adds a click listener to every layer; on this group it would report the
            // clicked region's polygon as a drawing ("last_active_drawing"). Clicks reach the map anyway.
            var groupOn = layer.on;
            layer.on = function(types, fn, ctx) { return types === 'click' ? this : groupOn.call(this, types, fn, ctx); };
            layer.addTo(map);
            var legend = L.control({position: 'bottomright'}), legendDiv = null;
            legend.onAdd = function() {
                legendDiv = L.DomUtil.create('div', 'tm-legend tm-ed-legend');
                L.DomEvent.disableClickPropagation(legendDiv);
                L.DomEvent.disableScrollPropagation(legendDiv);
                legendDiv.style.display = 'none';
                return legendDiv;
            };
            legend.addTo(map);
            function apply(O) {
                var now = {}, nlk = {}, todo = {}, k, j, g;
                for (g = 0; g < O.ch.length; g++) {
                    var ids = O.ch[g][1];
                    for (j = 0; j < ids.length; j++) now[ids[j]] = O.ch[g][0];
                }
                for (j = 0; j < O.lk.length; j++) nlk[O.lk[j]] = 1;
                [touched, now, lk, nlk].forEach(function(o) { for (var x in o) todo[x] = 1; });
                if (O.ter) ter = O.ter;
                for (k in todo) {
                    var r = +k, inNow = Object.prototype.hasOwnProperty.call(now, k);
                    var t = inNow ? now[k] : baseT[r];
                    var col = inNow ? (t >= 0 ? O.pal[t] : D.nc) : (D.c[r] >= 0 ? pal[D.c[r]] : D.nc);
                    var st = look(col, !!nlk[k]);
                    D.t[r] = t;
                    polys[r].tmStyle = st;
                    polys[r].setStyle(L.extend({fillColor: col}, st));
                    if (nlk[k] && !lk[k]) polys[r].bringToFront();
                }
                touched = now;
                lk = nlk;
                if (legendDiv && O.lg !== undefined) {
                    legendDiv.innerHTML = O.lg;
                    legendDiv.style.display = O.lg ? '' : 'none';
                }
                if (O.clear && window.drawnItems && window.drawnItems.clearLayers) window.drawnItems.clearLayers();
                window.tmEditor.n = O.n;
                map.getContainer().setAttribute('data-tm-applied', String(O.n));
            }
            window.tmRegions = byId;
            window.tmEditor = {apply: apply, polys: polys, layer: layer, map: map, n: -1};
            return layer;
        })({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, data: MapData, source: str | None = None, fill_opacity: float = 0.8, weight: float = 0.5):
        super().__init__()
        self._name = "EditorRegionLayer"
        self.data = data
        self.source = source or data.payload_literal()
        self.fill_opacity = float(fill_opacity)
        self.weight = float(weight)

    def _get_self_bounds(self):
        b = self.data.bounds
        return b if b else [[None, None], [None, None]]


class EditorEvents(RawMacroElement):
    """Browser-side helpers of the editor map (streamlit-folium specific, all optional):

    * report a click or a finished drawing to the app at once, instead of after the
      component's 250 ms debounce (the same value the component would send, so it
      does not send it again);
    * swallow the click that ends a rectangle or circle drag (it is part of the drawing);
    * forward Ctrl/Cmd+Z and Ctrl/Cmd+Shift+Z pressed in the map to the app (undo/redo buttons).
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function(map) {
            var drawEnd = 0, drawing = false;
            var ORDER = ['last_clicked', 'last_object_clicked', 'last_object_clicked_count',
                         'last_object_clicked_tooltip', 'last_object_clicked_popup', 'all_drawings',
                         'last_active_drawing', 'last_geocoder_result', 'bounds', 'zoom', 'last_circle_radius',
                         'last_circle_polygon', 'center', 'selected_layers', 'selected_tags'];
            function sendNow() {
                var G = window.__GLOBAL_DATA__, S = window.Streamlit;
                if (!G || !S || !S.setComponentValue || !G.returned_objects || G.wrap_longitude) return;
                var src = {last_clicked: G.lat_lng_clicked, last_active_drawing: G.last_active_drawing,
                           last_circle_radius: G.last_circle_radius,
                           last_object_clicked_count: G.last_object_clicked_count};
                var data = {};
                for (var i = 0; i < ORDER.length; i++) {
                    var k = ORDER[i];
                    if (G.returned_objects.indexOf(k) < 0) continue;
                    if (!Object.prototype.hasOwnProperty.call(src, k)) return;  // leave it to the component
                    data[k] = src[k];
                }
                if (JSON.stringify(G.previous_data) === JSON.stringify(data)) return;
                G.previous_data = data;
                S.setComponentValue(data);
            }
            // streamlit-folium adds a click listener to every layer; on a group (GeoJson, feature group)
            // it reports the clicked region's polygon as a drawing. Clicks reach the map anyway.
            map.eachLayer(function(l) {
                if (!l.getLayers || l === window.drawnItems || l.tmNoGroupClick) return;
                var on0 = l.on;
                l.tmNoGroupClick = true;
                l.on = function(types, fn, ctx) { return types === 'click' ? this : on0.call(this, types, fn, ctx); };
            });
            map.on('click', function() { setTimeout(sendNow, 0); });
            map.on('draw:created', function() { drawEnd = Date.now(); setTimeout(sendNow, 0); });
            // while a shape is drawn (and just after), clicks belong to the drawing, not to the regions under it
            // (Leaflet.draw adds vertices on mouseup; only its vertex markers need their clicks)
            map.on('draw:drawstart', function() { drawing = true; });
            map.on('draw:drawstop', function() { drawing = false; drawEnd = Date.now(); });
            map.getContainer().parentNode.addEventListener('click', function(e) {
                var vertex = e.target && e.target.closest && e.target.closest('.leaflet-editing-icon');
                if ((drawing && !vertex) || Date.now() - drawEnd < 400) { e.stopPropagation(); }
            }, true);
            function forward(type, e) {
                var P = window.parent;
                var ev = new P.KeyboardEvent(type, {key: e.key, code: e.code, ctrlKey: e.ctrlKey, metaKey: e.metaKey,
                                                    shiftKey: e.shiftKey, altKey: e.altKey, bubbles: true,
                                                    cancelable: true});
                Object.defineProperty(ev, 'keyCode', {get: function() { return 90; }});
                Object.defineProperty(ev, 'which', {get: function() { return 90; }});
                P.document.dispatchEvent(ev);
            }
            document.addEventListener('keydown', function(e) {
                if (!(e.ctrlKey || e.metaKey) || (e.key || '').toLowerCase() !== 'z') return;
                try { forward('keydown', e); forward('keyup', e); e.preventDefault(); } catch (err) {}
            });
        })({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self):
        super().__init__()
        self._name = "EditorEvents"


class EditorOverlay(RawMacroElement):
    """The script that applies one overlay (see :func:`editor_overlay`) to the drawn map."""

    _template = Template(
        "{% macro script(this, kwargs) %}"
        "window.tmEditor && window.tmEditor.apply && window.tmEditor.apply({{ this.overlay_js }});"
        "{% endmacro %}"
    )

    def __init__(self, overlay: dict):
        super().__init__()
        self._name = "EditorOverlay"
        self.overlay_js = js_json(overlay)


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
    import hashlib

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
        from folium.plugins import Draw

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
    EditorEvents().add_to(m)
    m.fit_bounds(data.bounds or LOWER48_BOUNDS, padding_top_left=(10, 10), padding_bottom_right=(10, 10))
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
            import shapely
            from shapely.geometry import shape as to_shape

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
            import h3

            cell = h3.latlng_to_cell(float(lat), float(lng), self.res)
            return cell if cell in self._known else None
        if self._tree is None:
            return None
        import shapely

        pt = shapely.Point(float(lng), float(lat))
        hits = self._tree.query(pt, predicate="intersects")
        if not len(hits):
            hits = self._tree.query_nearest(pt, max_distance=0.005)
        return self._tree_ids[int(hits[0])] if len(hits) else None


class NaiveEditorTracker(RawMacroElement):
    """For the naive baseline map: ``window.tmEditor`` with only the edit counter (no restyling)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function(map) {
            window.tmEditor = {n: -1, polys: [], map: map, apply: function(O) {
                this.n = O.n;
                map.getContainer().setAttribute('data-tm-applied', String(O.n));
                if (O.clear && window.drawnItems && window.drawnItems.clearLayers) window.drawnItems.clearLayers();
            }};
        })({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self):
        super().__init__()
        self._name = "NaiveEditorTracker"


def build_naive_editor_map(frame: pd.DataFrame, shapes: dict[str, dict], territories: pd.DataFrame | None,
                           static_base: str = DEFAULT_STATIC_BASE) -> folium.Map:
    """The editor's second baseline: :func:`build_naive_map` (folium ``GeoJson`` with a style function and a
    tooltip, as tutorials do it) plus the drawing tools, rebuilt and re-sent on every edit."""
    from folium.plugins import Draw

    m = build_naive_map(frame, shapes, territories, "territory", static_base)
    Draw(position="topleft", show_geometry_on_click=False,
         draw_options={"polyline": False, "marker": False, "circlemarker": False},
         edit_options={"edit": False, "remove": False}).add_to(m)
    NaiveEditorTracker().add_to(m)
    EditorEvents().add_to(m)
    localize(m, static_base)
    return m
