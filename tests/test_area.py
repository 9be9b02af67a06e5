"""A plan's area as regions: every region ZIP of its states, every H3 cell on their land (issue 13)."""

from __future__ import annotations

import h3
import numpy as np
import pytest
import shapely

from terrmap.data.area import AreaTooLarge, area_regions, regions_states
from terrmap.data.stats import region_stats
from terrmap.data.zip_groups import region_groups
from terrmap.geo import parse_layer
from terrmap.geo.zipdata import reference_table
from terrmap.geo.zipshapes import zip_shape_geoms


def test_zip_area_is_every_region_zip_of_the_states(demo_store):
    got = area_regions(demo_store, parse_layer("zip"), ["tx", "NM"])
    ref = reference_table()
    want = ref[(ref["zip"] == ref["region_zip"]) & ref["lat"].notna() & ref["state"].isin(["TX", "NM"])]
    assert sorted(got["region_id"]) == sorted(want["zip"])
    assert got["region_id"].is_monotonic_increasing and got["county_fips"].notna().all()
    populated = set(region_stats(demo_store, parse_layer("zip"))["region_id"])
    assert populated & set(want["zip"]) < set(got["region_id"])  # with and without leads


def test_h3_area_is_every_cell_whose_centre_is_on_the_states_land(demo_store):
    """Independent check: cells around the state (h3 polyfill of a 20 km buffer), kept where shapely finds the
    centre inside the union of the state's ZIP polygons (geopandas-free, no H3 containment rule)."""
    layer = parse_layer("h3:7")
    got = area_regions(demo_store, layer, ["DE"])
    shapes = zip_shape_geoms(demo_store, states=["DE"])
    land = shapely.union_all(shapes["geometry"].to_numpy())
    around = h3.h3shape_to_cells(h3.geo_to_h3shape(land.buffer(0.2).__geo_interface__), 7)
    centres = np.array([h3.cell_to_latlng(c) for c in around])
    on_land = {c for c, ok in zip(around, shapely.contains_xy(land, centres[:, 1], centres[:, 0])) if ok}
    populated = region_groups(demo_store, layer)
    populated = set(populated.loc[populated["state"] == "DE", "region_id"])
    assert set(got["region_id"]) == on_land | populated
    assert len(on_land) > 500 and (got["state"] == "DE").all()
    # Every cell on land has the county of the ZIP polygon holding its centre.
    assert got.loc[got["region_id"].isin(on_land), "county_fips"].str.startswith("10").all()


def test_every_lead_of_the_area_has_a_region_in_it(demo_store):
    layer = parse_layer("h3:6")
    area = set(area_regions(demo_store, layer, ["TX"])["region_id"])
    groups = region_groups(demo_store, layer)
    assert set(groups.loc[groups["state"] == "TX", "region_id"]) <= area


def test_too_large_an_h3_area_is_refused_with_the_reason(demo_store):
    with pytest.raises(AreaTooLarge, match=r"H3 level 9 would hold about [\d,]+ cells"):
        area_regions(demo_store, parse_layer("h3:9"), ["TX"])


def test_the_states_of_a_partial_plan(demo_store):
    assert regions_states(demo_store, parse_layer("zip"), ["75001", "87102", "99999"]) == ["NM", "TX"]
    cells = [h3.latlng_to_cell(32.78, -96.80, 6), h3.latlng_to_cell(35.08, -106.65, 6)]  # Dallas, Albuquerque
    assert regions_states(demo_store, parse_layer("h3:6"), cells) == ["NM", "TX"]


def test_h3_area_cells_read_back_from_disk_equal_the_computed_ones(demo_store, tmp_path, monkeypatch):
    """A new process (no cells in memory) reads a state's land cells from the disk cache instead of parsing
    the ZIP polygons again; what it reads is what was computed."""
    from terrmap.data import area
    from terrmap.geo import memo

    monkeypatch.setenv(memo.CACHE_ENV_VAR, str(tmp_path))
    monkeypatch.setattr(area, "_CELLS", memo.LoadCache(max_entries=256))
    monkeypatch.setattr(area, "_LANDS", memo.LoadCache(max_entries=128))
    layer = parse_layer("h3:7")
    computed = area_regions(demo_store, layer, ["DE", "RI"])
    assert len(list(tmp_path.glob("terrmap.data.area._state_cells-*.pkl"))) == 2

    def no_polygons(*args, **kwargs):
        raise AssertionError("the ZIP polygons were parsed again")

    monkeypatch.setattr(area, "_CELLS", memo.LoadCache(max_entries=256))  # "another process"
    monkeypatch.setattr(area, "_LANDS", memo.LoadCache(max_entries=128))
    monkeypatch.setattr(area, "zip_shape_geoms", no_polygons)
    again = area_regions(demo_store, layer, ["DE", "RI"])
    assert again.equals(computed)
    # Another resolution is not on disk: computed (and here refused, the polygons being "unavailable").
    with pytest.raises(AssertionError, match="parsed again"):
        area_regions(demo_store, parse_layer("h3:6"), ["DE"])
