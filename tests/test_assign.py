"""Territory lookup and lead routing (terrmap.io.assign, ``assign`` / ``lookup``), checked against independent
computations: a geopandas point-in-polygon join for coordinates, the zips table for ZIPs, h3-py for cells."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely

from terrmap import cli
from terrmap.access import LOCAL
from terrmap.app import lookup_box
from terrmap.app.maps import build_map
from terrmap.data.plans import Territory, load_assignment, territories
from terrmap.data.store import PROJECT_ROOT, Store, close_all
from terrmap.io import assign
from terrmap.plan import create_plan, get_plan
from terrmap.plan import hierarchy as hi

DEMO_PLAN = "Demo: nearest rep by county"
# The bounding box of Texas and its coast (points in the Gulf fall in no ZIP polygon).
TX_BOX = (25.5, 36.5, -106.6, -93.5)


@pytest.fixture(scope="module")
def store(demo_db_path, tmp_path_factory):
    """One copy of the demo database with one more plan: H3 level 5 over CT, split east / west, with one
    cell listed without a territory."""
    path = tmp_path_factory.mktemp("assign") / "demo.duckdb"
    shutil.copy(demo_db_path, path)
    s = Store(path)
    cells = [h3.latlng_to_cell(41.6, lon, 5) for lon in (-73.3, -72.9, -72.5, -72.1)]
    seeds = pd.DataFrame({"region_id": cells, "territory_id": [1, 1, 2, 2]})
    seeds.loc[len(seeds)] = [h3.latlng_to_cell(41.75, -72.7, 5), None]
    create_plan(s, "CT hexagons", "h3:5", [Territory(1, "West CT", "#123456", "R01"),
                                           Territory(2, "East CT", "#654321")], seeds, area=["CT"])
    yield s
    s.close()


@pytest.fixture(scope="module")
def zip_plan(store):
    return get_plan(store, DEMO_PLAN)


@pytest.fixture(scope="module")
def hex_plan(store):
    return get_plan(store, "CT hexagons")


def owner_table(store, plan) -> pd.DataFrame:
    """region_id -> territory_id, territory, rep_id, rep_name of the stored plan (pandas, not the module)."""
    terr = territories(store, plan.plan_id)[["territory_id", "name", "rep_id", "rep_name"]]
    return load_assignment(store, plan.plan_id)[["region_id", "territory_id"]].merge(
        terr.rename(columns={"name": "territory"}), on="territory_id", how="left").set_index("region_id")


def zip_polygons(store) -> gpd.GeoDataFrame:
    shapes = store.zip_tables.shape_table(store)
    return gpd.GeoDataFrame({"zip": shapes["zip"]}, geometry=gpd.GeoSeries.from_wkt(
        shapely.to_wkt(shapely.from_geojson(shapes["geojson"].to_numpy(dtype=object)))), crs=4326)


def write_csv(tmp_path, frame: pd.DataFrame, name="leads.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


# ---------------------------------------------------------------------------
# Coordinates: the polygon that contains the point


def test_coordinate_rows_match_a_geopandas_point_in_polygon_join(store, zip_plan, tmp_path):
    rng = np.random.default_rng(3)
    n = 3000
    lat, lon = rng.uniform(*TX_BOX[:2], n), rng.uniform(*TX_BOX[2:], n)
    path = write_csv(tmp_path, pd.DataFrame({"Lead ID": [f"L{i}" for i in range(n)], "Company": "Acme",
                                             "BillingLatitude": lat, "BillingLongitude": lon}))
    out = tmp_path / "out.csv"
    summary = assign.assign_file(store, zip_plan, path, out)
    got = pd.read_csv(out, dtype={"rep_id": str})

    points = gpd.GeoDataFrame({"i": np.arange(n)}, geometry=gpd.points_from_xy(lon, lat), crs=4326)
    joined = gpd.sjoin(points, zip_polygons(store), predicate="within", how="left").sort_values(["i", "zip"])
    region = joined.drop_duplicates("i").set_index("i")["zip"].reindex(np.arange(n))
    owners = owner_table(store, zip_plan)
    expected = owners["territory_id"].reindex(region.to_numpy()).to_numpy(dtype=float)

    assert np.array_equal(got["territory_id"].to_numpy(dtype=float), expected, equal_nan=True)
    assert list(got["Lead ID"]) == [f"L{i}" for i in range(n)]  # every input row, in order
    outside = int(region.isna().sum())
    assert 0 < outside < n and summary["unplaced"] == {assign.NO_REGION: outside}  # the Gulf and Mexico
    assert summary["placed"] == n - outside and summary["located_by"] == {"coordinates": n - outside}
    placed = got["territory_id"].notna()
    assert (got.loc[placed, "rep_name"].to_numpy()
            == owners["rep_name"].reindex(region[placed.to_numpy()].to_numpy()).to_numpy()).all()


def test_the_polygon_that_holds_the_point_not_the_nearest_centroid(demo_store):
    """On the demo's Voronoi polygons the two rules agree; on real ZCTAs they do not. Two boxes stand in for
    ZCTAs: the point lies in 75001's box but nearer 75002's centroid."""
    box = {"75001": (-97.0, 32.5, -96.7, 33.5), "75002": (-96.7, 32.5, -96.0, 33.5)}
    rows = pd.DataFrame({"zip": list(box), "state": "TX", "source": "test", "area_km2": 1.0,
                         "geojson": [shapely.to_geojson(shapely.box(*b)) for b in box.values()]})
    with demo_store.transaction() as tx:
        demo_store.zip_tables.write_shapes(tx, rows)
    plan = get_plan(demo_store, DEMO_PLAN)
    centroids = dict(demo_store.cursor().execute(
        "SELECT zip, [lat, lon] FROM zips WHERE zip IN ('75001', '75002')").fetchall())
    y, x = 33.09, -96.75
    nearest = min(centroids, key=lambda z: (centroids[z][0] - y) ** 2 + ((centroids[z][1] - x) * 0.84) ** 2)
    assert nearest == "75002"
    padded = pd.DataFrame({"lat": np.full(assign.FEW_POINTS + 1, y), "lon": np.full(assign.FEW_POINTS + 1, x)})
    assert set(assign.locate(demo_store, plan, padded)["region_id"]) == {"75001"}  # the whole tree
    assert assign.lookup(demo_store, plan, lat=y, lon=x)["region"] == "75001"  # the polygons near the point
    assert assign.lookup(demo_store, plan, lat=33.0, lon=-96.7)["region"] == "75001"  # a border: the lower ZIP


def test_lookup_of_a_point_equals_the_file_route(store, zip_plan):
    """A lookup tests the polygons near its point, a file the whole tree: one answer, also on borders (the
    corners of polygons, shared by two or three: the lowest ZIP) and at sea."""
    rng = np.random.default_rng(9)
    corners = shapely.get_coordinates(shapely.from_geojson(
        store.zip_tables.shape_table(store, states=["TX"])["geojson"].to_numpy(dtype=object)[:300]))
    corners = corners[rng.choice(len(corners), 15, replace=False)]
    lat = np.r_[rng.uniform(*TX_BOX[:2], 15), corners[:, 1]]
    lon = np.r_[rng.uniform(*TX_BOX[2:], 15), corners[:, 0]]
    padding = assign.FEW_POINTS  # more points than a lookup's path takes: the whole tree
    by_file = assign.locate(store, zip_plan, pd.DataFrame({"lat": np.r_[lat, np.full(padding, 31.0)],
                                                           "lon": np.r_[lon, np.full(padding, -97.0)]}))
    assert by_file["reason"].notna().any() and by_file["reason"].isna().any()
    for k in range(len(lat)):
        one = assign.lookup(store, zip_plan, lat=lat[k], lon=lon[k])
        tid = by_file["territory_id"].iat[k]
        assert (one["region"], one["territory_id"], one["reason"]) == (
            by_file["region_id"].iat[k], None if pd.isna(tid) else int(tid), by_file["reason"].iat[k])


# ---------------------------------------------------------------------------
# ZIPs: the zips table's region ZIP


def test_zip_rows_with_salesforce_headers_match_the_zips_table(store, zip_plan, tmp_path):
    zips = store.cursor().execute(
        "SELECT zip, region_zip FROM zips WHERE region_zip IS NOT NULL AND lat IS NOT NULL ORDER BY zip").df()
    po_boxes = zips[zips["zip"] != zips["region_zip"]].sample(40, random_state=1)
    standard = zips[zips["zip"] == zips["region_zip"]].sample(160, random_state=2)
    sample = pd.concat([po_boxes, standard]).reset_index(drop=True)
    written = sample["zip"].copy()
    written[::4] = sample["zip"][::4] + "-4307"  # ZIP+4
    written[1::4] = sample["zip"][1::4] + "1234"  # ZIP+4 without the dash
    written[2::4] = sample["zip"][2::4].str.lstrip("0")  # a spreadsheet dropped the leading zeros
    frame = pd.DataFrame({"Id": range(len(sample)), "Account Name": "Acme", "Billing Zip/Postal Code": written,
                          "Stage": "Prospecting", "territory": "old owner"})
    out = tmp_path / "out.csv"
    summary = assign.assign_file(store, zip_plan, write_csv(tmp_path, frame), out)
    got = pd.read_csv(out, dtype=str)

    owners = owner_table(store, zip_plan)
    assert summary["mapping"] == {"postal_zip": "Billing Zip/Postal Code"}
    assert summary["rows"] == summary["placed"] == len(sample) and summary["unplaced"] == {}
    assert list(got["territory"]) == list(owners["territory"].reindex(sample["region_zip"]))
    assert list(got["territory_id"].astype(int)) == list(owners["territory_id"].reindex(sample["region_zip"]))
    assert list(got["Billing Zip/Postal Code"]) == list(written)  # the input as it was
    assert set(got["territory_input"]) == {"old owner"}  # an input column of the same name is kept


def test_locate_takes_a_frame_with_numeric_zips(store, zip_plan):
    frame = pd.DataFrame({"postal_zip": [2139, 2139.0, "02139-4307", None, "1"]}, index=[10, 11, 12, 13, 14])
    got = assign.locate(store, zip_plan, frame)
    region = store.scalar("SELECT region_zip FROM zips WHERE zip = '02139'")
    assert list(got.index) == [10, 11, 12, 13, 14]
    assert list(got["region_id"][:3]) == [region] * 3 and list(got["located_by"][:3]) == ["zip"] * 3
    assert list(got["reason"][3:]) == [assign.NO_LOCATION, assign.UNKNOWN_ZIP]


# ---------------------------------------------------------------------------
# H3: the plan-level parent of the point's level-9 cell (where the import files the same lead)


def test_h3_plan_places_points_and_zip_centroids_in_their_cells(store, hex_plan):
    rng = np.random.default_rng(8)
    lat, lon = rng.uniform(41.0, 42.0, 200), rng.uniform(-73.7, -71.8, 200)
    got = assign.locate(store, hex_plan, pd.DataFrame({"lat": lat, "lon": lon, "postal_zip": "06450"}))
    # As the import files a lead: the level-9 cell's parent (h3-py here, bit arithmetic in terrmap).
    cells = [h3.cell_to_parent(h3.latlng_to_cell(y, x, 9), 5) for y, x in zip(lat, lon)]
    assert list(got["region_id"]) == cells  # coordinates win over the ZIP on a grid
    owners = owner_table(store, hex_plan)
    expected = owners["territory_id"].reindex(cells).to_numpy(dtype=float)
    assert np.array_equal(got["territory_id"].to_numpy(dtype=float), expected, equal_nan=True)

    zlat, zlon = store.cursor().execute("SELECT lat, lon FROM zips WHERE zip = '06450'").fetchall()[0]
    by_zip = assign.lookup(store, hex_plan, zip="06450")  # Meriden
    cell = h3.cell_to_parent(h3.latlng_to_cell(zlat, zlon, 9), 5)
    assert (by_zip["region"], by_zip["located_by"], by_zip["reason"]) == (cell, "zip", None)
    assert (by_zip["territory_id"], by_zip["territory"]) == tuple(owners.loc[cell, ["territory_id", "territory"]])
    greenwich = assign.lookup(store, hex_plan, zip="06830")  # its cell's centre is in New York: not CT's land
    assert greenwich["reason"] == assign.OUTSIDE_PLAN


def test_unplaceable_rows_get_their_reason(store, hex_plan, zip_plan, tmp_path):
    blank_cell = h3.latlng_to_cell(41.75, -72.7, 5)
    blat, blon = h3.cell_to_latlng(blank_cell)
    frame = pd.DataFrame({
        "Lead ID": ["a", "b", "c", "d", "e", "f"],
        "Zip": [None, "00000", None, "75001", None, None],
        "Latitude": [None, None, 95.0, None, blat, 41.53],
        "Longitude": [None, None, 10.0, None, blon, -72.80],  # Meriden
    })
    summary = assign.assign_file(store, hex_plan, write_csv(tmp_path, frame), tmp_path / "out.csv")
    reasons = {r["line"]: r["reason"] for r in summary["unplaced_rows"]}
    assert reasons == {2: assign.NO_LOCATION, 3: assign.UNKNOWN_ZIP, 4: assign.BAD_COORDINATES,
                       5: assign.OUTSIDE_PLAN, 6: assign.NO_TERRITORY}  # 75001 is in Texas, not in CT
    assert summary["placed"] == 1 and sum(summary["unplaced"].values()) == 5

    at_sea = assign.lookup(store, zip_plan, lat=26.5, lon=-90.0)  # the Gulf of Mexico
    assert at_sea["reason"] == assign.NO_REGION and at_sea["territory"] is None and at_sea["path"] is None


# ---------------------------------------------------------------------------
# lookup


def test_lookup_json_has_region_owner_and_hierarchy_path(store, zip_plan):
    one = assign.lookup(store, zip_plan, zip="75001-1234")
    region = store.scalar("SELECT region_zip FROM zips WHERE zip = '75001'")
    owners = owner_table(store, zip_plan)
    assert one["region"] == region and one["located_by"] == "zip" and one["reason"] is None
    assert (one["territory_id"], one["territory"], one["rep_id"], one["rep_name"]) == tuple(
        owners.loc[region, ["territory_id", "territory", "rep_id", "rep_name"]])
    nodes = hi.nodes(store, zip_plan.plan_id).set_index("node_id")
    parent = territories(store, zip_plan.plan_id).set_index("territory_id").loc[one["territory_id"], "parent"]
    chain = []
    while isinstance(parent, str):
        chain.insert(0, {"level": nodes.loc[parent, "level"], "name": nodes.loc[parent, "name"]})
        parent = nodes.loc[parent, "parent"]
    assert chain and one["hierarchy"] == chain
    assert one["path"] == " / ".join([c["name"] for c in chain] + [one["territory"]])
    json.dumps(one)  # plain JSON


@pytest.mark.parametrize("text,query", [
    ("75001", {"zip": "75001"}), (" 75001-1234 ", {"zip": "75001-1234"}), ("2139", {"zip": "2139"}),
    ("32.9, -96.8", {"lat": 32.9, "lon": -96.8}), ("32.9 -96.8", {"lat": 32.9, "lon": -96.8}),
    ("+41.7;-72.7", {"lat": 41.7, "lon": -72.7}),
])
def test_parse_query(text, query):
    assert assign.parse_query(text) == query


@pytest.mark.parametrize("text", ["", "Dallas", "32.9", "1, 2, 3", "7500"[:2]])
def test_parse_query_says_what_to_type(text):
    with pytest.raises(ValueError, match="type a ZIP"):
        assign.parse_query(text)


# ---------------------------------------------------------------------------
# Parquet and the command line


def test_parquet_file(store, zip_plan, tmp_path):
    path = tmp_path / "accounts.parquet"
    pd.DataFrame({"Account ID": ["x", "y"], "PostalCode": ["75001", None], "Latitude": [None, 32.9],
                  "Longitude": [None, -96.8], "Employees": [5, 7]}).to_parquet(path)
    summary = assign.assign_file(store, zip_plan, path, tmp_path / "out.csv")
    got = pd.read_csv(tmp_path / "out.csv")
    assert summary["placed"] == 2 and summary["located_by"] == {"zip": 1, "coordinates": 1}
    assert list(got["Employees"]) == [5, 7] and got["territory"].notna().all()


@pytest.fixture
def cli_db(demo_db_path, tmp_path):
    """A copy of the demo database, opened by the command line only (closed again afterwards)."""
    db = tmp_path / "cli.duckdb"
    shutil.copy(demo_db_path, db)
    yield str(db)
    close_all()


def test_cli_assign_exit_codes(cli_db, tmp_path, capsys):
    good = write_csv(tmp_path, pd.DataFrame({"Id": [1, 2], "Zip": ["75001", "00000"]}), "good.csv")
    out = tmp_path / "routed.csv"
    assert cli.main(["assign", str(good), "--plan", DEMO_PLAN, "--out", str(out), "--db", cli_db]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["rows"], summary["placed"], summary["unplaced"]) == (2, 1, {assign.UNKNOWN_ZIP: 1})
    assert summary["unplaced_rows"] == [{"line": 3, "reason": assign.UNKNOWN_ZIP}] and summary["seconds"] >= 0
    assert list(pd.read_csv(out).columns) == ["Id", "Zip", *assign.OUTPUT_COLUMNS]

    no_location = write_csv(tmp_path, pd.DataFrame({"Id": [1], "City": ["Dallas"]}), "bad.csv")
    sheet = tmp_path / "leads.xlsx"
    sheet.write_bytes(b"PK\x03\x04")
    cases = [(no_location, DEMO_PLAN, "no location column"), (tmp_path / "missing.csv", DEMO_PLAN, "no such file"),
             (sheet, DEMO_PLAN, "spreadsheet"), (good, "nope", "no plan named 'nope'")]
    for path, plan, words in cases:
        code = cli.main(["assign", str(path), "--plan", plan, "--out", str(tmp_path / "no.csv"), "--db", cli_db])
        said = capsys.readouterr()
        assert code == 2 and said.out == "" and words in said.err
        assert len(said.err.strip().splitlines()) == 1, said.err
        assert not (tmp_path / "no.csv").exists()

    assert cli.main(["lookup", "--plan", DEMO_PLAN, "--zip", "00000", "--db", cli_db]) == 1
    assert json.loads(capsys.readouterr().out)["reason"] == assign.UNKNOWN_ZIP


# Libraries that each add 0.2-0.5 s to a command's start-up and that a lookup does not need (the 1 s budget of
# `python -m terrmap lookup`, start-up included, leaves room for duckdb, pandas, shapely and h3 only).
NOT_FOR_A_LOOKUP = ("scipy", "geopandas", "pyogrio", "pyproj", "sklearn", "streamlit", "folium", "altair")
_LOOKUP_AND_REPORT = """
import json, sys
from terrmap import cli
code = cli.main(sys.argv[1:])
sys.stdout.flush()
print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)
raise SystemExit(code)
"""


def test_cli_lookup_prints_one_json_object_and_loads_no_heavy_library(cli_db):
    for where in (["--lat", "32.9", "--lon", "-96.8"], ["--zip", "75001"]):
        looked = subprocess.run([sys.executable, "-c", _LOOKUP_AND_REPORT, "lookup", "--plan", DEMO_PLAN, *where,
                                 "--db", cli_db], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
        assert looked.returncode == 0, looked.stderr
        answer = json.loads(looked.stdout)
        assert {"region", "territory", "territory_id", "rep_id", "rep_name", "hierarchy", "path"} <= set(answer)
        loaded = set(json.loads(looked.stderr.strip().splitlines()[-1]))
        assert loaded.isdisjoint(NOT_FOR_A_LOOKUP), sorted(loaded & set(NOT_FOR_A_LOOKUP))
    s = Store(cli_db)
    try:
        assert answer == assign.lookup(s, get_plan(s, DEMO_PLAN), zip="75001")
        assert answer["region"] == "75001"
    finally:
        s.close()


# ---------------------------------------------------------------------------
# The Map page's search box


def test_map_page_search_box_gives_the_lookup_answer(demo_store, monkeypatch):
    """The page script (Streamlit AppTest, no browser): the box's answer is terrmap.io.assign.lookup's."""
    from streamlit.testing.v1 import AppTest  # heavy: Streamlit's test harness, only for this test

    monkeypatch.setenv("TERRMAP_DB", str(demo_store.path))
    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / "map.py"), default_timeout=60)
    at.run()
    assert not at.exception
    at.text_input(key="lookup").set_value("32.9, -96.8").run()
    assert not at.exception
    expected = assign.lookup(demo_store, get_plan(demo_store, DEMO_PLAN), lat=32.9, lon=-96.8)
    said = [m.value for m in at.markdown if "territory" in m.value]
    assert said == [lookup_box.answer_markdown(expected)]
    assert f"**{expected['territory']}**" in said[0] and expected["rep_name"] in said[0]
    at.text_input(key="lookup").set_value("Dallas").run()
    assert "type a ZIP" in at.warning[0].value


def test_highlight_outlines_the_region_and_opens_the_map_on_it(store, zip_plan):
    found = lookup_box.find(store, zip_plan, "75001", LOCAL)
    assert found.answer == assign.lookup(store, zip_plan, zip="75001")
    m = build_map(None)
    lookup_box.highlight(m, found)
    html = m.get_root().render()
    west, south, east, north = shapely.bounds(shapely.from_geojson(json.dumps(found.shape))).tolist()
    assert f"[[{south}, {west}], [{north}, {east}]]" in html and html.count(".fitBounds(") == 1  # the region's view
    assert lookup_box.HIGHLIGHT_COLOR in html
    nowhere = lookup_box.find(store, zip_plan, "00000", LOCAL)
    assert nowhere.shape is None and "unknown ZIP" in lookup_box.answer_markdown(nowhere.answer)
