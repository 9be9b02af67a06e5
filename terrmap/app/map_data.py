"""What a map shows, as data: region frames (stats + territory + place), and :class:`MapData`, the one
compact, columnar payload per map that the browser draws (static/terrmap/regions.js).

The flow::

    stats  = region_stats(store, layer)                      # terrmap.data.stats
    places = region_places(store, layer)                     # terrmap.data.queries: "City, ST", states
    frame  = region_frame(stats, assignment, territories, places)
    frame  = filter_states(frame, ["CA", "NV"])              # fine layers: pick an area
    data   = map_data(frame, layer.shapes(store, frame["region_id"]), territories, "territory")
    m      = build_map(data, outlines=state_outlines_geojson())   # terrmap.app.maps

What keeps the map fast (see docs/BENCHMARKS.md, "Map render"): rings as delta-encoded integers
at 2-4 decimals (:func:`terrmap.app.geometry.default_decimals`), per region only its id, place,
palette index, territory index and six integers: about 110 bytes per H3 cell against ~650 for
folium's GeoJSON with all stats as properties; from :data:`CANVAS_REGIONS` regions on, one canvas instead of
an SVG path per region (a whole-country ZIP plan: "Map render: whole-country maps"). Every string in it is escaped here
(:func:`terrmap.app.html_safe.esc`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely
import shapely.geometry

from terrmap.app.geometry import decode_ring, encode_ring, outer_box, round_geometry, view_bounds
from terrmap.app.html_safe import esc, is_missing, js_json
from terrmap.app.legend import legend_bins_html, legend_territories_html
from terrmap.app.map_colors import (
    NO_DATA_COLOR,
    UNASSIGNED_COLOR,
    UNASSIGNED_LABEL,
    Bins,
    quantile_bins,
    territory_palette,
)
from terrmap.measures import MEASURES, STAT_COLUMNS, fmt_int

# From this many regions on, the browser paints them on one canvas instead of one SVG path each
# (static/terrmap/regions.js): a national ZIP plan (~32,000 regions) then draws in a few seconds, see
# docs/BENCHMARKS.md, "Map render: whole-country maps".
CANVAS_REGIONS = int(os.environ.get("TERRMAP_CANVAS_REGIONS", "10000"))
# More regions than this are not drawn, a safety net against a browser tab busy for minutes: well above
# every ZIP code of the US (32,164 with a shape) and the populated cells of H3 level 5 (13,851), so whole-
# country maps of those draw; finer hexagons for the whole country ask for fewer states.
MAX_REGIONS = int(os.environ.get("TERRMAP_MAX_REGIONS", "60000"))

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



def state_codes(places: pd.DataFrame) -> list[str]:
    """All state codes in ``places["states"]``, by state name."""
    codes = {c for v in places["states"].dropna().unique() for c in str(v).split(",") if c}
    return sorted(codes, key=lambda c: STATE_NAMES.get(c, c))


def region_frame(
    stats: pd.DataFrame,
    assignment: pd.DataFrame | None = None,
    territories: pd.DataFrame | None = None,
    places: pd.DataFrame | None = None,
    area: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Stats + territory_id (NaN: unassigned) + place/states: one row per region with leads and per region of
    ``assignment`` (a complete plan's regions without leads: zero in every count and sum, no score).
    ``area`` (region_id, state) gives the state of regions no lead places (:func:`filter_states` needs one)."""
    frame = stats.copy()
    if assignment is not None and len(assignment):
        a = assignment[["region_id", "territory_id"]].drop_duplicates("region_id")
        frame = frame.merge(a, on="region_id", how="outer", sort=True)
        for col in (c for c in STAT_COLUMNS if c in stats and c != "avg_score"):
            frame[col] = frame[col].fillna(0).astype(stats[col].dtype)
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
    if area is not None and len(area):
        state_of = area.drop_duplicates("region_id").set_index("region_id")["state"]
        frame["states"] = frame["states"].fillna(frame["region_id"].map(state_of))
    return frame


def focus_bounds(shapes: dict, region_ids: Iterable[str]) -> list[list[float]] | None:
    """[[south, west], [north, east]] around ``region_ids`` (GeoJSON ``shapes`` by id), without far-off
    outliers (Alaska, Hawaii) when most of them lie in the lower 48; None without any shape."""
    geoms = [shapely.geometry.shape(shapes[r]) for r in region_ids if r in shapes]
    if not geoms:
        return None
    return view_bounds(shapely.bounds(np.array(geoms, dtype=object)))[1]


def filter_states(frame: pd.DataFrame, states: Iterable[str] | None) -> pd.DataFrame:
    """Regions touching any of ``states`` (all regions for None/empty)."""
    wanted = set(states or [])
    if not wanted:
        return frame
    touched = {v: not wanted.isdisjoint(str(v).split(",")) for v in frame["states"].dropna().unique()}
    return frame[frame["states"].map(touched).fillna(False).astype(bool)]



@dataclass
class MapData:
    """Everything the browser needs for one map: columnar, compact, strings already escaped.

    Per region (same order in every list): ``ids`` (escaped), ``places`` (escaped, "" if
    none), ``colors`` (palette index, -1: unassigned/no data), ``terr`` (territory index,
    -1: none), ``values`` (per measure of :data:`terrmap.measures.STAT_COLUMNS`: int, money rounded to $,
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
    focus_bounds: list[list[float]] | None = None  # what the reader should see first (e.g. what changed)
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
        hl = STAT_COLUMNS.index(self.color_by) if self.color_by in STAT_COLUMNS else -1
        return {
            "q": self.scale, "id": self.ids, "p": self.places, "c": self.colors, "t": self.terr,
            "v": self.values, "g": self.geoms,
            "kind": [MEASURES[m].unit for m in STAT_COLUMNS],
            "pal": self.palette, "ter": self.territories, "lab": self.labels,
            "rl": esc(self.region_label), "hl": hl, "cv": int(self.n_features >= CANVAS_REGIONS),
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
    for name in STAT_COLUMNS:
        v = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
        if MEASURES[name].unit == "pct":
            v = v * 1000
        ints = np.where(np.isnan(v), -1, np.rint(np.nan_to_num(v))).astype(np.int64)
        out.append(ints.tolist())
    return out


def _encode_simple_rings(geoms: list, decimals: int) -> dict[int, tuple[list[list[list[list[int]]]], tuple]]:
    """Position -> (encoded rings, outer box) for every geometry that is a Polygon of one closed ring, as
    :func:`round_geometry` + :func:`encode_ring` would give, computed a whole array at a time (an H3 area of
    17,000 cells: 0.05 s instead of 0.8). Rings whose rounding would drop a vertex or that span the
    antimeridian are left out (the per-ring path handles them); so are the vertices next to a rounding tie,
    where numpy's and Python's rounding may differ: those are rounded by Python's ``round`` as there."""
    by_length: dict[int, list[int]] = {}
    for pos, g in enumerate(geoms):
        if g is not None and g.get("type") == "Polygon" and len(g["coordinates"]) == 1:
            ring = g["coordinates"][0]
            if len(ring) >= 5 and ring[0] == ring[-1]:
                by_length.setdefault(len(ring), []).append(pos)
    scale = 10 ** decimals
    out: dict[int, tuple] = {}
    for positions in by_length.values():
        try:
            xy = np.array([geoms[p]["coordinates"][0] for p in positions], dtype=float)[:, :-1, :2]
        except ValueError:  # a ring with vertices of 3 coordinates: the per-ring path
            continue
        scaled = xy * scale
        ints = np.rint(scaled)
        near_tie = np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6
        for i, j, c in zip(*np.nonzero(near_tie)):
            ints[i, j, c] = round(round(float(xy[i, j, c]), decimals) * scale)
        ints = ints.astype(np.int64)
        repeated = (ints == np.roll(ints, 1, axis=1)).all(axis=2).any(axis=1)
        span = ints[:, :, 0].max(axis=1) - ints[:, :, 0].min(axis=1)
        simple = ~repeated & (span <= 180 * scale)
        deltas = ints.copy()
        deltas[:, 1:] -= ints[:, :-1]
        flat = deltas.reshape(len(positions), -1).tolist()
        lo, hi = (ints.min(axis=1) / scale).tolist(), (ints.max(axis=1) / scale).tolist()
        for k in np.flatnonzero(simple).tolist():
            out[positions[k]] = ([[flat[k]]], (lo[k][0], lo[k][1], hi[k][0], hi[k][1]))
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
    if color_by != "territory" and color_by not in STAT_COLUMNS:
        raise ValueError(f"color_by must be 'territory' or one of {', '.join(STAT_COLUMNS)}")
    t_ids, t_labels, t_colors = territory_palette(territories)
    t_index = {tid: i for i, tid in enumerate(t_ids)}
    terr_idx = np.array(
        [t_index.get(int(t), -1) if not is_missing(t) else -1 for t in frame["territory_id"].tolist()], dtype=int
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
    found = [shapes.get(rid) for rid in rids]
    simple = _encode_simple_rings(found, decimals)
    for row, rid in enumerate(rids):
        geom = found[row]
        if geom is None or geom.get("type") not in ("Polygon", "MultiPolygon"):
            missing_shapes.append(rid)
            continue
        if row in simple:
            encoded, box = simple[row]
            boxes.append(box)
            geoms.append(encoded)
            keep.append(row)
            continue
        geom = round_geometry(geom, decimals)
        box = outer_box(geom)
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
        places=[esc(places[r]) if not is_missing(places[r]) else "" for r in keep],
        colors=[int(color_idx[r]) for r in keep],
        terr=kept_terr,
        values=[[col[r] for r in keep] for col in all_values],
        geoms=geoms,
        scale=scale,
        palette=palette,
        territories=t_labels,
        labels=[esc(MEASURES[m].label) for m in STAT_COLUMNS],
        legend_html=legend,
        color_by=color_by,
        region_label=region_label,
        bounds=full,
        core_bounds=core,
        bins=bins,
        missing_shapes=missing_shapes,
    )



# -- territory summary (home page) ------------------------------------------------------------

def territory_summary(stats: pd.DataFrame, assignment: pd.DataFrame, territories: pd.DataFrame) -> pd.DataFrame:
    """One row per territory (plus "Unassigned" if any leads are): the home page table.

    Columns: territory, rep, color, regions (all its regions, with or without leads), leads, open_leads, customers, won_revenue,
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
    if assignment is not None and len(assignment):
        # Every region of a territory counts, with or without leads (a territory is a piece of the map).
        a = assignment.drop_duplicates("region_id").dropna(subset=["territory_id"])
        owned = a.groupby(a["territory_id"].astype(int)).size()
        agg = agg.reindex(agg.index.union(owned.index), fill_value=0)
        agg.loc[owned.index, "regions"] = owned.to_numpy()
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
        "" if is_missing(d) else f"potential {d:+.1%} vs the average" for d in rows["deviation"]])
    territories = rows.rename(columns={"territory": "name", "rep": "rep_name"})
    data = map_data(frame, {rid: shapely.geometry.mapping(g) for rid, g in zip(frame["region_id"], shapes)},
                    territories, "territory", region_label="Regions:", decimals=decimals,
                    shown_ids=[fmt_int(n) for n in rows["regions"]])
    data.legend_html = legend_territories_html(data.territories, data.palette, rows["regions"].tolist())
    return data


