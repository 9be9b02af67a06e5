"""Real ZIP polygons (issue 13 point 6): per-state Census ZCTA files loaded one after the other add up, shared
borders stay shared, ZCTAs without a region ZIP keep their area, wrong files get one line and exit code 2.

The fixtures are real Census TIGER 2010 ZCTAs of Rhode Island and of eastern Connecticut (tests/data/zcta/
SOURCE.md): the two files share the RI-CT state line. Every check is against an independent computation on
the raw files (pyogrio + shapely), not against the code under test.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from terrmap.cli import main
from terrmap.data.area import area_regions
from terrmap.data.plans import load_assignment, plan_area
from terrmap.data.store import Store
from terrmap.data.zip_tables import shapes_stamp
from terrmap.geo import parse_layer
from terrmap.geo.graph import polygon_adjacency
from terrmap.geo.zipdata import reference_table
from terrmap.geo.zipshapes import SOURCE_VORONOI, load_zcta, region_points, zip_shape_geoms
from tests.db_support import built_once, discard

ZCTA_DIR = Path(__file__).parent / "data" / "zcta"
RI = ZCTA_DIR / "ri_zcta510_2010.geojson"
CT = ZCTA_DIR / "ct_zcta510_2010_east.geojson"
FIXTURES = {RI.name, CT.name}
KM2_PER_DEG2 = 111.2**2 * 0.74  # at 41.7° N: a deg² is about 9,150 km²


def _raw(*paths: Path) -> pd.DataFrame:
    """The fixture ZCTAs as they are in the files: zip, geometry."""
    frames = [pyogrio.read_dataframe(p, columns=["ZCTA5CE10"]) for p in paths]
    raw = pd.concat(frames, ignore_index=True)
    return pd.DataFrame({"zip": raw["ZCTA5CE10"].to_numpy(), "geometry": raw.geometry.to_numpy()})


def _pairs(zips: np.ndarray, geoms: np.ndarray) -> set[frozenset]:
    edges, _, _, _ = polygon_adjacency(geoms)
    return {frozenset((zips[a], zips[b])) for a, b in edges if zips[a] != zips[b]}


def _holders(raw: pd.DataFrame, shapes: pd.DataFrame) -> pd.Series:
    """For each raw ZCTA, the zip of the stored shape holding most of its area."""
    tree = shapely.STRtree(shapes["geometry"].to_numpy())
    ri, si = tree.query(raw["geometry"].to_numpy(), predicate="intersects")
    common = shapely.area(shapely.intersection(raw["geometry"].to_numpy()[ri], shapes["geometry"].to_numpy()[si]))
    best = pd.DataFrame({"r": ri, "zip": shapes["zip"].to_numpy()[si], "common": common})
    best = best.sort_values(["r", "common"], ascending=[True, False]).drop_duplicates("r")
    return best.set_index("r")["zip"]


def _load_both(demo_db_path: Path, path: Path) -> None:
    """The demo with RI's ZCTAs loaded, then eastern CT's; beside it (pickled) what the tests compare with."""
    shutil.copy(demo_db_path, path)
    store = Store(path)
    regions_before = set(region_points(store)["zip"])
    plans = store.cursor().execute("SELECT plan_id FROM plans").fetchall()
    assigned_before = {pid: set(load_assignment(store, pid)["region_id"]) for (pid,) in plans}
    stamps = [shapes_stamp(store)]
    first = load_zcta(store, RI)
    stamps.append(shapes_stamp(store))
    after_ri = zip_shape_geoms(store, states=["RI", "CT"])
    second = load_zcta(store, [CT])
    stamps.append(shapes_stamp(store))
    store.close()
    path.with_suffix(".pkl").write_bytes(pickle.dumps(
        {"first": first, "second": second, "after_ri": after_ri, "stamps": stamps,
         "regions_before": regions_before, "assigned_before": assigned_before}))


@pytest.fixture(scope="module")
def loaded(demo_db_path, tmp_path_factory):
    """A demo database with Rhode Island's ZCTAs loaded, then eastern Connecticut's (two loads); the shapes
    after the first load, the summaries, the region ZIPs and plan assignments of before. Built once per run."""
    built = built_once(tmp_path_factory, "zcta_ri_ct.duckdb", lambda p: _load_both(demo_db_path, p))
    path = tmp_path_factory.mktemp("zcta") / "demo.duckdb"
    shutil.copy(built, path)
    store = Store(path)
    yield {"store": store, **pickle.loads(built.with_suffix(".pkl").read_bytes())}
    discard(store)


def test_every_load_changes_the_shapes_stamp_to_a_hash_of_the_shapes(loaded):
    """Caches of land and cells key on the stamp written with the shapes: it must be the shapes' content."""
    store, stamps = loaded["store"], loaded["stamps"]
    assert len(set(stamps)) == 3
    n, digest = store.cursor().execute("SELECT count(*), sum(hash(zip, geojson)) FROM zip_shapes").fetchall()[0]
    assert stamps[-1] == f"{n}:{digest}"


def test_per_state_loads_add_up(loaded):
    store, first, second = loaded["store"], loaded["first"], loaded["second"]
    assert first["states_touched"] == ["RI"] and second["states_touched"] == ["CT"]
    assert first["files"] == [{"file": RI.name, "states": ["RI"], "zcta": 77}]
    assert second["files"] == [{"file": CT.name, "states": ["CT"], "zcta": 57}]
    regions = set(region_points(store)["zip"])
    raw = _raw(RI, CT)
    now = zip_shape_geoms(store, states=["RI", "CT"]).set_index("zip")
    # Every fixture ZCTA that is a region ZIP has its real polygon, from its own file, after both loads.
    for name, path in ((RI.name, RI), (CT.name, CT)):
        codes = set(_raw(path)["zip"]) & regions
        assert codes and (now.loc[sorted(codes), "source"] == name).all()
    assert first["zcta_used"] + first["zcta_merged"] == 77 and second["zcta_used"] + second["zcta_merged"] == 57
    assert first["zcta_used"] == len(set(_raw(RI)["zip"]) & regions)
    # Loading Connecticut left Rhode Island's real polygons as the first load made them.
    ri_before = loaded["after_ri"].set_index("zip")
    ri_real = ri_before.index[ri_before["source"] == RI.name]
    moved = shapely.area(shapely.symmetric_difference(now.loc[ri_real, "geometry"].to_numpy(),
                                                      ri_before.loc[ri_real, "geometry"].to_numpy()))
    assert moved.max() * KM2_PER_DEG2 < 1e-3
    # The real polygons cover what the raw files cover (merged ZCTAs included).
    real = shapely.union_all(now.loc[now["source"].isin(FIXTURES), "geometry"].to_numpy())
    uncovered = shapely.difference(shapely.union_all(raw["geometry"].to_numpy()), real).area * KM2_PER_DEG2
    carved = (first["voronoi_carved"] + second["voronoi_carved"]) * np.pi * 0.5**2
    assert uncovered <= carved + 0.01
    assert store.get_meta("zip_shapes_source") == f"{CT.name}, {RI.name}"


def test_shared_borders_stay_shared(loaded):
    """Adjacency of the stored real polygons = adjacency of the raw ZCTAs (each raw ZCTA counted as the stored
    ZIP holding it); nothing overlaps."""
    store = loaded["store"]
    raw = _raw(RI, CT)
    stored = zip_shape_geoms(store, states=["RI", "CT", "MA", "NY"])
    real = stored[stored["source"].isin(FIXTURES)].reset_index(drop=True)
    # The stored ZIP holding each raw ZCTA: itself, or the region ZIP it was merged into.
    holder = _holders(raw, real)
    assert len(holder) == len(raw)
    raw_pairs = _pairs(holder.sort_index().to_numpy(dtype=object), raw["geometry"].to_numpy())
    stored_pairs = _pairs(real["zip"].to_numpy(dtype=object), real["geometry"].to_numpy())
    assert stored_pairs == raw_pairs
    # Across the state line too: RI-CT pairs exist and are kept.
    state = dict(zip(stored["zip"], stored["state"]))
    assert sum(1 for p in raw_pairs if {state[z] for z in p} == {"RI", "CT"}) >= 8

    # No real polygon overlaps another shape by more than a sliver: real polygons, the Voronoi remnants
    # around them, carved discs. (Voronoi cells of neighbouring states may overlap a little along the coarse
    # state outlines, by design of the Voronoi shapes: not checked here.)
    geoms = stored["geometry"].to_numpy()
    is_real = stored["source"].isin(FIXTURES).to_numpy()
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = (left < right) & (is_real[left] | is_real[right])
    assert keep.sum() > 300
    overlap = shapely.area(shapely.intersection(geoms[left[keep]], geoms[right[keep]])) * KM2_PER_DEG2
    assert overlap.sum() < 0.01  # km², over all pairs


def test_stored_adjacency_is_rebuilt_from_the_new_shapes(loaded):
    store = loaded["store"]
    assert loaded["first"]["adjacency"] == loaded["second"]["adjacency"] == "updated"
    shapes = zip_shape_geoms(store, states=["RI", "CT", "MA"])
    zips = shapes["zip"].to_numpy(dtype=object)
    edges, lengths, area, _ = polygon_adjacency(shapes["geometry"].to_numpy())
    expected = {(zips[a], zips[b]): x for (a, b), x in zip(edges, lengths)}
    rows = store.zip_tables.shape_edges_among(store, list(zips))
    got = {tuple(sorted((a, b))): x for a, b, x in rows}
    assert set(got) == {tuple(sorted(k)) for k in expected}
    assert np.allclose([got[tuple(sorted(k))] for k in expected], list(expected.values()), rtol=1e-6, atol=1e-6)
    sizes = store.zip_tables.shape_sizes(store, list(zips))
    assert np.allclose([sizes[z][0] for z in zips], area, rtol=1e-6)
    # The ZIP layer's graph of Rhode Island builds from it (every region has a shape and a size).
    ri = sorted(shapes.loc[shapes["state"] == "RI", "zip"])
    graph = parse_layer("zip").graph(store, ri)
    assert graph.n == len(ri) and len(graph.edges) > len(ri)


def test_merged_zctas_join_the_neighbour_with_the_longest_border(loaded):
    store = loaded["store"]
    regions = set(region_points(store)["zip"])
    raw = _raw(RI, CT)
    stored = zip_shape_geoms(store, states=["RI", "CT"]).set_index("zip")
    edges, lengths, _, _ = polygon_adjacency(raw["geometry"].to_numpy())
    codes = raw["zip"].to_numpy()
    merged = [i for i, z in enumerate(codes) if z not in regions]
    holders = _holders(raw, stored.reset_index())
    filed_under = reference_table().set_index("zip")["region_zip"]
    assert len(merged) == loaded["first"]["zcta_merged"] + loaded["second"]["zcta_merged"] == 6
    for i in merged:
        borders = [(x, codes[b if a == i else a]) for (a, b), x in zip(edges, lengths)
                   if i in (a, b) and codes[b if a == i else a] in regions]
        holder = holders[i]
        if borders:  # the region ZCTA sharing the longest border holds it
            assert holder == max(borders)[1]
        else:  # an island (Prudence Island): the region ZIP the reference files it under
            assert holder == filed_under[codes[i]]
        covered = shapely.intersection(raw["geometry"].iat[i], stored.loc[holder, "geometry"]).area
        assert covered >= 0.99 * raw["geometry"].iat[i].area


def test_plans_stay_complete_and_regions_unchanged(loaded):
    store = loaded["store"]
    assert set(region_points(store)["zip"]) == loaded["regions_before"]
    zip_layer = parse_layer("zip")
    for pid, before in loaded["assigned_before"].items():
        after = set(load_assignment(store, pid)["region_id"])
        assert after == before
        area = plan_area(store, pid)
        if area is not None:
            assert set(area_regions(store, zip_layer, area)["region_id"]) == after
    # Every region ZIP of the touched states still has a polygon.
    shaped = set(zip_shape_geoms(store, states=["RI", "CT"])["zip"])
    points = region_points(store)
    assert set(points.loc[points["state"].isin(["RI", "CT"]), "zip"]) <= shaped


def test_one_load_of_both_files_matches_two_loads(loaded, demo_store, capsys):
    """``python -m terrmap zcta RI CT``: one load of both files gives the same real polygons as the two."""
    assert main(["zcta", str(RI), str(CT), "--db", str(demo_store.path)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["states_touched"] == ["CT", "RI"]
    assert [f["states"] for f in summary["files"]] == [["RI"], ["CT"]]
    both = zip_shape_geoms(demo_store, states=["RI", "CT"]).set_index("zip")
    two = zip_shape_geoms(loaded["store"], states=["RI", "CT"]).set_index("zip")
    real = two.index[two["source"].isin(FIXTURES)]
    assert set(both.index[both["source"].isin(FIXTURES)]) == set(real)
    diff = shapely.area(shapely.symmetric_difference(both.loc[real, "geometry"].to_numpy(),
                                                     two.loc[real, "geometry"].to_numpy()))
    assert diff.max() * KM2_PER_DEG2 < 1e-3
    assert (both.loc[both["state"] == "CT", "source"] == SOURCE_VORONOI).sum() > 150  # western CT: no file


def _points_file(path: Path) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"ZCTA5CE10": "02903"},
         "geometry": {"type": "Point", "coordinates": [-71.41, 41.82]}}]}))
    return path


def _no_zip_column_file(path: Path) -> Path:
    raw = pyogrio.read_dataframe(RI, max_features=3)
    raw[["ALAND10", "geometry"]].rename(columns={"ALAND10": "LAND"}).to_file(path, driver="GeoJSON")
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda d: _points_file(d / "points_zcta.geojson"), ["not polygons", "Point"]),
        (lambda d: _no_zip_column_file(d / "nozip.geojson"), ["no ZIP/ZCTA column", "LAND"]),
        (lambda d: (d / "leads.csv").write_text("zip,lat,lon\n02903,41.82,-71.41\n") and d / "leads.csv",
         ["unreadable format"]),
        (lambda d: (d / "graph.json").write_text(json.dumps({"nodes": [1, 2], "edges": [[1, 2]]}))
         and d / "graph.json", ["unreadable format"]),
        (lambda d: d / "missing.geojson", ["no such file"]),
    ],
    ids=["points", "no-zip-column", "csv", "graph-json", "missing"],
)
def test_wrong_input_one_line_exit_2_no_database(tmp_path, capsys, make, words):
    bad = make(tmp_path)
    db = tmp_path / "new" / "fresh.duckdb"
    code = main(["zcta", str(RI), str(bad), "--db", str(db)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert bad.name in err and all(w in err for w in words), err
    assert not db.exists() and not db.with_name(db.name + ".wal").exists()


def test_reloading_a_file_changes_nothing(loaded):
    """Loading Rhode Island's file again over RI+CT: the same shapes, the same region ZIPs, the same adjacency."""
    store = loaded["store"]
    edges_before = store.zip_tables.adjacency_tables(store)[0]
    again = load_zcta(store, RI)
    assert again["states_touched"] == ["RI"]
    assert again["shapes_changed"] == 0 and again["zips_remapped"] == 0 and again["leads_moved"] == 0
    edges_after = store.zip_tables.adjacency_tables(store)[0]
    pd.testing.assert_frame_equal(edges_after, edges_before)
