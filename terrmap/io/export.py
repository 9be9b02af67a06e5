"""Plan export: a plan to CSV, a CRM accounts file, GeoJSON, GeoPackage or a map for slides.

**Export** (:func:`export_plan`, :func:`export_to_file`), formats :data:`EXPORT_FORMATS`:

* ``csv``: region_id, territory, territory_id, rep_id, locked, color: every
  region of the plan, sorted; importing it gives back the same plan.
* ``accounts``: a CRM bulk-update file, Salesforce-style columns
  (:data:`ACCOUNT_COLUMNS`), one row per account with its owner from
  :func:`terrmap.plan.accounts.account_owners` (pins, overlays, geography).
* ``geojson`` / ``gpkg``: the dissolved territory boundaries (lon/lat,
  EPSG:4326) with territory, territory_id, rep_id, color, regions, leads,
  potential (of the accounts the territory owns, as Home counts them) and the plan's layer.
* ``png`` / ``pdf``: a 16:9 map of the territories over the state outlines,
  with a legend (territory and rep), for slides.

Spreadsheets run formulas: a text cell that starts with ``= + - @`` is written
with a leading apostrophe (CSV injection, :mod:`terrmap.io.csvsafe`), which the import
(:mod:`terrmap.io.alignment`) removes again.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from terrmap.data.alignments import assigned_regions, plan_region_rows, rep_names, territories_with_reps
from terrmap.data.store import store_key
from terrmap.data.zip_tables import shapes_stamp
from terrmap.geo import parse_layer
from terrmap.geo.memo import LoadCache, content_digest
from terrmap.geo.outlines import polygonal, state_outlines_geojson
from terrmap.io.alignment import GEO_LAYER_NAME
from terrmap.io.atomic import write_atomically
from terrmap.io.csvsafe import guard_frame
from terrmap.io.locate import US_BOXES
from terrmap.plan import PlanInfo, get_plan
from terrmap.plan.accounts import account_owners, territory_metrics

if TYPE_CHECKING:
    from terrmap.data.store import Store

Progress = Callable[[float, str], None]

EXPORT_FORMATS = ("csv", "accounts", "geojson", "gpkg", "png", "pdf")
FORMAT_SUFFIX = {"csv": ".csv", "accounts": ".csv", "geojson": ".geojson", "gpkg": ".gpkg", "png": ".png",
                 "pdf": ".pdf"}
FORMAT_MIME = {"csv": "text/csv", "accounts": "text/csv", "geojson": "application/geo+json",
               "gpkg": "application/geopackage+sqlite3", "png": "image/png", "pdf": "application/pdf"}

REGION_CSV_COLUMNS = ["region_id", "territory", "territory_id", "rep_id", "locked", "color"]
# Id: lead id; OwnerId / Owner_Name: the owning rep's id and name; Territory__c / Territory_Id__c: the owning
# territory (or overlay team, id "overlay-<id>"); Assignment_Rule__c: pin, overlay, geography or unassigned.
ACCOUNT_COLUMNS = ["Id", "Name", "OwnerId", "Owner_Name", "Territory__c", "Territory_Id__c", "Assignment_Rule__c",
                   "Potential__c", "Region__c"]
GEO_DECIMALS = 6  # ~0.1 m: representative points never land on the wrong side of a rounded border


def _resolve_plan(store: Store, plan) -> PlanInfo:
    info = plan if isinstance(plan, PlanInfo) else get_plan(store, plan)
    if info is None:
        raise ValueError("the database has no plan yet" if plan is None else f"no plan named {plan!r}")
    return info


def _csv_bytes(df: pd.DataFrame) -> bytes:
    return guard_frame(df).to_csv(index=False, lineterminator="\n").encode("utf-8")


def region_table(store: Store, plan) -> pd.DataFrame:
    """Every region of the plan, sorted: region_id, territory, territory_id, rep_id, locked, color."""
    info = _resolve_plan(store, plan)
    df = plan_region_rows(store, info.plan_id)
    df["territory_id"] = df["territory_id"].astype("Int64")
    df["locked"] = df["locked"].map({True: "true", False: "false"})
    return df[REGION_CSV_COLUMNS]


def account_table(store: Store, plan) -> pd.DataFrame:
    """One row per account, Salesforce-style columns (:data:`ACCOUNT_COLUMNS`), owner from account_owners."""
    info = _resolve_plan(store, plan)
    own = account_owners(store, info)
    names = rep_names(store)
    terr_id = np.where(own["owner_kind"].eq("overlay").fillna(False),
                       "overlay-" + own["owner_id"].astype("string").fillna(""),
                       own["owner_id"].astype("string"))
    out = pd.DataFrame({
        "Id": own["lead_id"],
        "Name": own["name"],
        "OwnerId": own["owner_rep_id"],
        "Owner_Name": own["owner_rep_id"].map(names),
        "Territory__c": own["owner_name"],
        "Territory_Id__c": pd.array(terr_id, dtype="string"),
        "Assignment_Rule__c": own["rule"],
        "Potential__c": own["potential"].astype(float).round(2),
        "Region__c": own["region_id"],
    })
    return out[ACCOUNT_COLUMNS]


_DISSOLVED: LoadCache[dict] = LoadCache(max_entries=4)  # territory id -> dissolved geometry, per assignment


def territory_shapes(store: Store, plan, progress: Progress | None = None):
    """The plan's dissolved territories: a GeoDataFrame (EPSG:4326), one row per territory with regions,
    columns territory, territory_id, rep_id, rep_name, color, regions, leads, potential, layer, geometry."""
    report = progress or (lambda f, m: None)
    info = _resolve_plan(store, plan)
    layer = parse_layer(info.layer)
    a = assigned_regions(store, info.plan_id)
    terr = territories_with_reps(store, info.plan_id)
    # Leads and potential as Home counts them: the accounts each territory owns (pins, then overlays, then
    # geography; terrmap.plan.accounts), so a file and the app give one number per territory.
    owned = territory_metrics(store, info)
    owned = owned[owned["owner_kind"] == "territory"].set_index("owner_id")[["leads", "potential"]]
    groups = {int(tid): g for tid, g in a.groupby("territory_id")}
    report(0.1, "reading region shapes")
    # The same assignment on the same shapes dissolves to the same territories: the Scenarios page's GeoJSON,
    # GeoPackage, PNG and PDF buttons (each about 1.5 s for a national ZIP plan) dissolve once.
    key = (store_key(store), layer.key, shapes_stamp(store) if layer.key == "zip" else "",
           content_digest(a[["region_id", "territory_id"]].sort_values("region_id", ignore_index=True)))
    geoms = _DISSOLVED.get(key, lambda: layer.dissolve(store, {tid: g["region_id"].tolist() for tid, g in groups.items()},
                                                       progress=lambda f, m: report(0.1 + 0.85 * f, m)))
    rows = []
    for tid, g in groups.items():
        geom = geoms.get(tid)
        if geom is None:
            continue
        # Onto the output grid (rounded coordinates); set_precision keeps the result valid.
        geom = polygonal(shapely.make_valid(shapely.set_precision(geom, 10 ** -GEO_DECIMALS)))
        if geom is None:
            continue
        leads, potential = (owned.loc[tid, "leads"], owned.loc[tid, "potential"]) if tid in owned.index else (0, 0.0)
        rows.append({"territory_id": tid, "regions": len(g), "leads": int(leads),
                     "potential": round(float(potential), 2), "geometry": geom})
    report(0.95, "assembling")
    geo = pd.DataFrame(rows, columns=["territory_id", "regions", "leads", "potential", "geometry"])
    geo = terr.merge(geo, on="territory_id", how="inner").rename(columns={"name": "territory"})
    geo["layer"] = info.layer
    cols = ["territory", "territory_id", "rep_id", "rep_name", "color", "regions", "leads", "potential", "layer"]
    return gpd.GeoDataFrame(geo[cols], geometry=geo["geometry"].to_list(), crs="EPSG:4326")


def _geojson_bytes(gdf: gpd.GeoDataFrame, info: PlanInfo) -> bytes:
    features = gdf.to_geo_dict(na="null", drop_id=True)["features"]
    doc = {"type": "FeatureCollection", "name": GEO_LAYER_NAME,
           "terrmap": {"plan": info.name, "layer": info.layer, "version": info.version}, "features": features}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _gpkg_bytes(gdf: gpd.GeoDataFrame) -> bytes:
    with tempfile.TemporaryDirectory(prefix="terrmap-gpkg-") as folder:
        path = Path(folder) / "plan.gpkg"
        pyogrio.write_dataframe(gdf, path, layer=GEO_LAYER_NAME, driver="GPKG")
        return path.read_bytes()


def _mpl_text(text) -> str:
    """Text from data for matplotlib: a ``$`` would start mathtext; escape it so names show literally."""
    return str(text).replace("$", r"\$")


def map_figure(store: Store, plan, labels: bool | None = None, progress: Progress | None = None):
    """A 16:9 matplotlib Figure (Agg, no pyplot state) of the plan's territories over the state outlines."""
    # matplotlib is needed only by the map export (about 0.3 s to import): loaded when a map is drawn.
    from matplotlib import patheffects
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    info = _resolve_plan(store, plan)
    gdf = territory_shapes(store, info, progress=progress)
    fig = Figure(figsize=(16, 9), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.01, 0.03, 0.70, 0.86))
    ax.set_axis_off()
    lat_lo, lat_hi, lon_lo, lon_hi = US_BOXES["contiguous US"]
    box = shapely.box(lon_lo, lat_lo, lon_hi, lat_hi)
    parts = gdf.geometry.explode(index_parts=False)
    main = parts[parts.intersects(box)] if parts.intersects(box).any() else parts
    hidden = len(parts) - len(main)
    if len(main):
        x0, y0, x1, y1 = main.total_bounds
    else:
        x0, y0, x1, y1 = lon_lo, lat_lo, lon_hi, lat_hi
    pad_x, pad_y = max((x1 - x0) * 0.04, 0.05), max((y1 - y0) * 0.04, 0.05)
    x0, x1, y0, y1 = x0 - pad_x, x1 + pad_x, y0 - pad_y, y1 + pad_y
    ax.set_aspect(1 / max(math.cos(math.radians((y0 + y1) / 2)), 0.2))  # equirectangular, true shape at mid-latitude
    view = shapely.box(x0, y0, x1, y1)
    states = gpd.GeoSeries([shapely.geometry.shape(f["geometry"]) for f in state_outlines_geojson()["features"]])
    states = states[states.intersects(view)]
    # aspect=None: geopandas keeps the aspect set above.
    if len(states):
        states.plot(ax=ax, facecolor="#f1f1ef", edgecolor="#a3a3a3", linewidth=0.5, zorder=1, aspect=None)
    # Close hairline gaps between region polygons (tiny mismatches where state outlines meet): invisible
    # at slide scale, but a white edge drawn around each would streak the territory.
    close = max(x1 - x0, y1 - y0) / 1500
    geoms = gdf.geometry.to_numpy()
    closed = shapely.buffer(shapely.buffer(geoms, close, quad_segs=2), -close, quad_segs=2)
    shown = gpd.GeoSeries(np.where(shapely.is_empty(closed), geoms, closed))
    if len(gdf):
        shown.plot(ax=ax, facecolor=list(gdf["color"]), edgecolor="white", linewidth=0.6, zorder=2, aspect=None)
    if len(states):  # state borders over the territories, for orientation
        states.plot(ax=ax, facecolor="none", edgecolor="#4d4d4d", linewidth=0.35, alpha=0.45, zorder=2.5,
                    aspect=None)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    if labels is None:
        labels = len(gdf) <= 40
    if labels:
        halo = [patheffects.withStroke(linewidth=2.5, foreground="white")]
        for row in gdf.itertuples():
            biggest = max(shapely.get_parts(row.geometry), key=lambda p: p.area)
            pt = biggest.representative_point()
            if view.contains(pt):
                ax.text(pt.x, pt.y, _mpl_text(row.territory), fontsize=7, ha="center", va="center", zorder=3,
                        path_effects=halo, clip_on=True)
    handles = [Patch(facecolor=r.color, edgecolor="#555555", linewidth=0.4,
                     label=_mpl_text(r.territory + (f" — {r.rep_name}" if isinstance(r.rep_name, str) else "")))
               for r in gdf.itertuples()]
    n = len(handles)
    if n:
        ncol = 1 if n <= 28 else 2 if n <= 56 else 3
        fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.72, 0.89), ncol=ncol, frameon=False,
                   fontsize=9 if n <= 20 else 7 if n <= 40 else 5, title="Territory — rep", title_fontsize=10,
                   alignment="left")
    fig.text(0.01, 0.955, _mpl_text(info.name), fontsize=20, weight="bold", va="center")
    sub = f"{date.today().isoformat()} · {parse_layer(info.layer).label} · {n} territories"
    fig.text(0.01, 0.915, _mpl_text(sub), fontsize=11, color="#555555", va="center")
    if hidden:
        fig.text(0.01, 0.015, f"Not shown: {hidden} piece(s) of territory outside the contiguous US "
                 "(Alaska, Hawaii, Puerto Rico, other territories).", fontsize=8, color="#777777")
    return fig


def export_plan(store: Store, plan, fmt: str, progress: Progress | None = None) -> bytes:
    """The plan in format ``fmt`` (one of :data:`EXPORT_FORMATS`) as bytes."""
    fmt = fmt.strip().lower()
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}")
    info = _resolve_plan(store, plan)
    if fmt == "csv":
        return _csv_bytes(region_table(store, info))
    if fmt == "accounts":
        return _csv_bytes(account_table(store, info))
    if fmt in ("geojson", "gpkg"):
        gdf = territory_shapes(store, info, progress=progress)
        return _geojson_bytes(gdf, info) if fmt == "geojson" else _gpkg_bytes(gdf)
    fig = map_figure(store, info, progress=progress)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=150, metadata={"Title": info.name} if fmt == "pdf" else None)
    return buf.getvalue()


def export_to_file(store: Store, plan, fmt: str, path, progress: Progress | None = None) -> dict:
    """Write :func:`export_plan` to ``path``; returns a summary (format, out, bytes, plan, layer)."""
    info = _resolve_plan(store, plan)
    data = export_plan(store, info, fmt, progress=progress)
    path = write_atomically(path, data)
    return {"plan": info.name, "layer": info.layer, "format": fmt.strip().lower(), "out": str(path),
            "bytes": len(data)}
