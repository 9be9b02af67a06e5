"""Complete plans end to end (issue 13): a partial plan is completed, old plans are completed when opened (with
history), and what leaves terrmap (region CSV, territory shapes) covers the whole area."""

from __future__ import annotations

import csv
import io
import json

import geopandas as gpd
import h3
import pandas as pd
import pytest
import shapely

from terrmap.data.accounts import account_owners
from terrmap.data.area import area_regions
from terrmap.data.plans import lead_majority_assignment, plan_area
from terrmap.geo import parse_layer
from terrmap.geo.zipshapes import zip_shape_geoms
from terrmap.io.export import export_plan
from terrmap.io.ingest import import_file
from terrmap.plan import Territory, assignment_for_layer, create_plan, get_plan, load_assignment
from terrmap.plan.scenarios import plan_history

ZIP = parse_layer("zip")


def _partial_tx_plan(store, name="TX partial") -> int:
    """Three territories of Texas, each given only the populated ZIPs of a band of longitudes."""
    tx = area_regions(store, ZIP, ["TX"])
    cents = ZIP.region_centroids(store, tx["region_id"].tolist())
    lon = pd.Series({r: c[1] for r, c in cents.items()})
    band = pd.cut(lon, [-107, -100, -97, -93], labels=[1, 2, 3]).astype(int)
    populated = store.df("SELECT DISTINCT zip FROM leads")["zip"]
    rows = band[band.index.isin(set(populated))]
    assignment = pd.DataFrame({"region_id": rows.index, "territory_id": rows.to_numpy()})
    terrs = [Territory(t, f"Band {t}", c) for t, c in ((1, "#1f77b4"), (2, "#ff7f0e"), (3, "#2ca02c"))]
    return create_plan(store, name, "zip", terrs, assignment)


def test_a_partial_plan_is_saved_complete_with_the_reason_in_its_history(demo_store):
    pid = _partial_tx_plan(demo_store)
    stored = load_assignment(demo_store, pid)
    tx = set(area_regions(demo_store, ZIP, ["TX"])["region_id"])
    assert set(stored["region_id"]) == tx and stored["territory_id"].notna().all()
    assert plan_area(demo_store, pid) == ["TX"]
    note = plan_history(demo_store, get_plan(demo_store, pid)).sort_values("version")["note"].iloc[-1]
    assert note.startswith("created; completed:") and "by shared border" in note


def test_a_plan_from_before_areas_is_completed_when_opened(demo_store):
    pid = _partial_tx_plan(demo_store, "old plan")
    # Make it an old plan: only its populated ZIPs, no area (as every plan was before issue 13).
    keep = set(demo_store.df("SELECT DISTINCT zip FROM leads")["zip"])
    cur = demo_store.cursor()
    cur.execute("DELETE FROM plan_assignments WHERE plan_id = ? AND region_id NOT IN (SELECT unnest(?::VARCHAR[]))",
                [pid, sorted(keep)])
    cur.execute("UPDATE plans SET area = NULL WHERE plan_id = ?", [pid])
    before = len(load_assignment(demo_store, pid))
    info = get_plan(demo_store, "old plan")  # opening it completes it
    after = load_assignment(demo_store, pid)
    assert len(after) == len(area_regions(demo_store, ZIP, ["TX"])) > before
    assert info.version == 2 and plan_area(demo_store, pid) == ["TX"]
    history = plan_history(demo_store, info).sort_values("version")
    assert history["note"].iloc[-1].startswith("completed:") and history["author"].iloc[-1] == "terrmap"
    assert get_plan(demo_store, "old plan").version == 2  # opened again: nothing more to do


def test_exports_cover_the_whole_area(demo_store):
    pid = _partial_tx_plan(demo_store)
    info = get_plan(demo_store, pid)
    rows = list(csv.DictReader(io.StringIO(export_plan(demo_store, info, "csv").decode("utf-8"))))
    assert sorted(r["region_id"] for r in rows) == sorted(area_regions(demo_store, ZIP, ["TX"])["region_id"])
    assert all(r["territory"] for r in rows)
    # One feature per territory; together they cover Texas's land (its ZIP polygons) with no gap or overlap,
    # and a hole in one territory is another territory's enclave (or water), never land nobody owns.
    doc = json.loads(export_plan(demo_store, info, "geojson"))
    shapes = gpd.GeoDataFrame.from_features(doc["features"], crs=4326).to_crs(5070)
    assert sorted(shapes["territory"]) == ["Band 1", "Band 2", "Band 3"]
    land = gpd.GeoSeries(zip_shape_geoms(demo_store, states=["TX"])["geometry"].to_list(), crs=4326).to_crs(5070)
    land_union = shapely.union_all(land.to_numpy())
    covered = shapely.union_all(shapes.geometry.to_numpy())
    assert covered.symmetric_difference(land_union).area < 1e-4 * land_union.area
    assert shapes.geometry.area.sum() == pytest.approx(covered.area, rel=1e-4)  # no overlaps
    for i, geom in enumerate(shapes.geometry):
        others = shapely.union_all(shapes.geometry.drop(shapes.index[i]).to_numpy())
        for part in shapely.get_parts(geom):
            for ring in part.interiors:
                hole = shapely.Polygon(ring)
                empty_land = hole.difference(others).intersection(land_union)  # a lake is no land: a hole it may be
                assert empty_land.area < 1e-3 * hole.area + 1e4  # within 0.01 km² of slivers


def test_a_lead_imported_later_in_an_empty_zip_has_an_owner(demo_store, tmp_path):
    """The published plan is complete, so a lead arriving in a ZIP where no lead was before is owned at once."""
    plan = get_plan(demo_store)
    populated = set(demo_store.df("SELECT DISTINCT zip FROM leads")["zip"])
    empty = sorted(set(area_regions(demo_store, ZIP, ["KS"])["region_id"]) - populated)[:3]
    lines = ["Lead ID,Company,Lead Status,PostalCode"] + [f"NEW-{z},New Co {z},Open,{z}" for z in empty]
    path = tmp_path / "new_leads.csv"
    path.write_text("\n".join(lines) + "\n")
    import_file(demo_store, path)
    owners = account_owners(demo_store, plan).set_index("lead_id")
    new = owners.loc[[f"NEW-{z}" for z in empty]]
    assert len(empty) == 3 and new["owner_name"].notna().all() and (new["rule"] == "geography").all()
    assert owners["owner_name"].notna().all()  # nobody's leads: none


def test_a_zip_plan_on_hexagons_owns_every_land_cell_like_a_point_in_polygon_join(demo_store):
    """The map's default view (a ZIP plan drawn on H3 cells): every cell of Texas's land has an owner; a cell with
    leads follows the majority of their potential, a cell without leads the ZIP polygon under its centre
    (checked with a geopandas spatial join, not terrmap's lookup)."""
    pid = _partial_tx_plan(demo_store)
    plan = get_plan(demo_store, pid)
    layer = parse_layer("h3:6")
    projected = assignment_for_layer(demo_store, plan, layer).set_index("region_id")["territory_id"]
    # The land cells: an H3 polyfill of the union of Texas's ZIP polygons, centre inside (h3's containment mode).
    shapes = zip_shape_geoms(demo_store, states=["TX"])
    land = shapely.union_all(shapes["geometry"].to_numpy())
    polyfill = set(h3.geo_to_cells(land.__geo_interface__, 6))
    assert polyfill <= set(projected.index)
    assert projected.reindex(sorted(polyfill)).notna().all()
    with_leads = set(lead_majority_assignment(demo_store, plan, layer)["region_id"])
    empty = sorted(polyfill - with_leads)
    assert len(empty) > 1000  # most of Texas holds no lead of the small demo
    centres = gpd.GeoDataFrame({"cell": empty}, geometry=gpd.points_from_xy(
        [h3.cell_to_latlng(c)[1] for c in empty], [h3.cell_to_latlng(c)[0] for c in empty]), crs=4326)
    zips = gpd.GeoDataFrame(shapes[["zip"]], geometry=shapes["geometry"].to_numpy(), crs=4326)
    joined = gpd.sjoin(centres, zips, predicate="intersects").sort_values(["cell", "zip"]).drop_duplicates("cell")
    owner = load_assignment(demo_store, pid).set_index("region_id")["territory_id"]
    expected = joined.set_index("cell")["zip"].map(owner)
    assert len(expected) > 0.99 * len(empty)
    pd.testing.assert_series_equal(projected.reindex(expected.index).astype(float), expected.astype(float),
                                   check_names=False)


def test_a_lead_off_the_coast_opens_a_cell_that_its_plan_takes_on_at_import(demo_store, tmp_path):
    """On an H3 plan a new lead can sit in a cell whose centre is off land (a pier, a barrier island): the import
    gives that cell to the territory it borders, records why in the plan's history, and the lead has an owner."""
    layer = parse_layer("h3:6")
    tx = area_regions(demo_store, layer, ["TX"])
    cells = set(tx["region_id"])
    pid = create_plan(demo_store, "TX cells", "h3:6", [Territory(1, "Texas", "#1f77b4")],
                      pd.DataFrame({"region_id": sorted(cells), "territory_id": 1}), area=["TX"])
    offshore = next(n for c in sorted(cells) for n in sorted(h3.grid_disk(c, 1)) if n not in cells
                    and 26 < h3.cell_to_latlng(n)[0] < 29.5 and h3.cell_to_latlng(n)[1] > -97.5)
    lat, lon = h3.cell_to_latlng(offshore)
    path = tmp_path / "pier.csv"
    path.write_text(f"Lead ID,Company,Lead Status,PostalCode,Latitude,Longitude\nPIER-1,Pier Co,Open,77550,{lat},{lon}\n")
    summary = import_file(demo_store, path)
    assert summary["plans_completed"] == {"TX cells": 1}
    stored = load_assignment(demo_store, pid).set_index("region_id")["territory_id"]
    assert stored.get(offshore) == 1 and len(stored) == len(cells) + 1
    plan = get_plan(demo_store, pid)
    assert plan_history(demo_store, plan).sort_values("version")["note"].iloc[-1].endswith("(holding new leads)")
    owners = account_owners(demo_store, plan).set_index("lead_id")
    assert owners.loc["PIER-1", "owner_name"] == "Texas"
    again = import_file(demo_store, path)  # nothing new: no new version
    assert again["plans_completed"] == {} and get_plan(demo_store, pid).version == plan.version
