"""Map building without Streamlit: escaping, bins and legend, features, local assets."""

from __future__ import annotations

import json
import re

import branca.colormap
import folium
import folium.plugins
import numpy as np
import pandas as pd
import pytest
import shapely.geometry
from hypothesis import given, settings
from hypothesis import strategies as st

from terrmap.app import assets
from terrmap.app.geometry import decode_ring, default_decimals, encode_ring, round_geometry
from terrmap.app.html_safe import js_json
from terrmap.app.legend import legend_bins_html
from terrmap.app.map_colors import UNASSIGNED_COLOR, quantile_bins, safe_color
from terrmap.app.map_data import filter_states, map_data, region_frame, state_codes, territory_summary
from terrmap.app.maps import build_map, build_naive_map
from terrmap.data.queries import region_places
from terrmap.data.stats import region_stats
from terrmap.geo import parse_layer
from terrmap.measures import STAT_COLUMNS, fmt_int, fmt_money, fmt_pct, table_format
from terrmap.plan import assignment_for_layer, get_plan, territories

EVIL = "<script>alert(1)</script>"


def _frame(n=6, territory_ids=(1, 2)):
    ids = [f"r{i}" for i in range(n)]
    stats = pd.DataFrame(
        {
            "region_id": ids,
            "leads": np.arange(1, n + 1) * 10,
            "open_leads": np.arange(1, n + 1) * 5,
            "customers": np.arange(n),
            "won_revenue": np.arange(n) * 1000.0,
            "avg_score": np.linspace(0.1, 0.5, n),
            "potential": np.arange(1, n + 1) * 12_345.0,
        }
    )
    assignment = pd.DataFrame({"region_id": ids, "territory_id": [territory_ids[i % len(territory_ids)] for i in range(n)]})
    return stats, assignment


def _territories(names=("North", "South"), colors=("#1f77b4", "#ff7f0e"), reps=("Ava", None)):
    return pd.DataFrame(
        {"territory_id": list(range(1, len(names) + 1)), "name": list(names), "color": list(colors),
         "rep_name": list(reps)}
    )


def _squares(ids):
    """A unit square per id, side by side."""
    return {
        rid: {"type": "Polygon", "coordinates": [[[i, 40], [i + 0.9, 40], [i + 0.9, 40.9], [i, 40.9], [i, 40]]]}
        for i, rid in enumerate(ids)
    }


def _rendered(m: folium.Map) -> str:
    """What the browser gets: the full folium page and streamlit-folium's script."""
    from streamlit_folium import _get_map_string

    page = m.get_root().render()
    return page + _get_map_string(m)


# -- escaping ----------------------------------------------------------------------------------

def test_script_territory_name_is_escaped_in_tooltips_and_legend():
    stats, assignment = _frame()
    terr = _territories(names=(EVIL, "South"), reps=(f"Rep {EVIL}", None))
    frame = region_frame(stats, assignment, terr, pd.DataFrame({"region_id": ["r0"], "place": [EVIL],
                                                                "states": ["CA"]}))
    data = map_data(frame, _squares(stats["region_id"]), terr, "territory")

    # the tooltip strings the browser concatenates are escaped once, in Python
    assert data.territories[0] == "&lt;script&gt;alert(1)&lt;/script&gt; · Rep &lt;script&gt;alert(1)&lt;/script&gt;"
    props = data.feature_collection()["features"][0]["properties"]
    assert props["p"] == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in data.legend_html
    assert "<script>alert" not in data.legend_html

    html_out = _rendered(build_map(data))
    assert "<script>alert(1)" not in html_out
    # and the payload cannot close the <script> element it is embedded in
    payload = data.payload_json()
    assert "<" not in payload and ">" not in payload
    decoded = json.loads(payload)
    assert decoded["ter"][0].startswith("&lt;script&gt;")


def test_template_syntax_in_names_is_not_evaluated():
    """folium/branca compile rendered output as Jinja templates: data must not be able to inject one."""
    stats, assignment = _frame()
    terr = _territories(names=("{{ 7777 * 1111 }}", "{% for x in range(3) %}loop{% endfor %}"))
    frame = region_frame(stats, assignment, terr)
    data = map_data(frame, _squares(stats["region_id"]), terr, "territory")
    html_out = _rendered(build_map(data))
    assert str(7777 * 1111) not in html_out
    assert "looplooploop" not in html_out
    assert "&#123;&#123; 7777 * 1111 &#125;&#125;" in data.legend_html


def test_js_json_has_no_script_or_template_openers():
    text = js_json({"a": "</script><!-- {{ x }} {% y %} {# z #} 'q' & \u2028"})
    for bad in ("<", ">", "&", "'", "{{", "{%", "{#", "\u2028"):
        assert bad not in text
    assert json.loads(text)["a"] == "</script><!-- {{ x }} {% y %} {# z #} 'q' & \u2028"


def test_colors_are_validated():
    assert safe_color("#1f77b4") == "#1f77b4"
    assert safe_color("teal") == "teal"
    assert safe_color('red;background:url("http://x")') == UNASSIGNED_COLOR
    assert safe_color(None) == UNASSIGNED_COLOR


# -- bins and legend --------------------------------------------------------------------------------

def test_quantile_bins_split_evenly_and_cover_all_values():
    values = np.arange(1, 101, dtype=float)
    bins = quantile_bins(values, "leads", k=5)
    assert bins.counts == [20, 20, 20, 20, 20]
    assert len(bins.colors) == 5 and len(set(bins.colors)) == 5
    assert bins.labels[0] == "1 – 20" and bins.labels[-1] == "81 – 100"
    idx = bins.classify(values)
    assert idx.min() == 0 and idx.max() == 4
    for i, (lo, hi) in enumerate(zip(bins.lower, bins.upper)):
        assert (values[idx == i].min(), values[idx == i].max()) == (lo, hi)


def test_quantile_bins_with_repeated_values_and_missing():
    values = [1.0] * 60 + [2.0] * 20 + [5.0, 9.0, 30.0, 100.0] * 5 + [np.nan] * 3
    bins = quantile_bins(values, "leads", k=5)
    assert 0 not in bins.counts  # no empty class
    assert sum(bins.counts) == 100 and bins.missing == 3
    assert bins.labels[0] == "1"  # a class of one value is labelled by that value
    assert list(bins.classify([np.nan])) == [-1]
    legend = legend_bins_html(bins)
    assert "No data" in legend and "Leads" in legend
    for label in bins.labels:
        assert label in legend


def test_measure_colouring_uses_bins_palette_and_legend():
    stats, assignment = _frame(n=10)
    terr = _territories()
    data = map_data(region_frame(stats, assignment, terr), _squares(stats["region_id"]), terr, "potential")
    assert data.bins is not None and data.palette == data.bins.colors
    colors = [f["properties"]["c"] for f in data.feature_collection()["features"]]
    assert colors == sorted(colors)  # potential grows with the region number
    # compact values: dollars rounded, score in per mille
    potential = data.values[STAT_COLUMNS.index("potential")]
    assert potential == [round(x) for x in stats["potential"]]
    assert data.values[STAT_COLUMNS.index("avg_score")][0] == 100
    assert "Potential" in data.legend_html and "$" in data.legend_html
    assert data.payload()["hl"] == STAT_COLUMNS.index("potential")


def test_territory_legend_counts_regions_and_unassigned():
    stats, assignment = _frame(n=6)
    assignment.loc[5, "territory_id"] = 99  # unknown territory -> unassigned
    terr = _territories()
    data = map_data(region_frame(stats, assignment, terr), _squares(stats["region_id"]), terr)
    assert "Unassigned" in data.legend_html
    t_idx = [f["properties"]["t"] for f in data.feature_collection()["features"]]
    assert t_idx.count(-1) == 1 and t_idx.count(0) == 3 and t_idx.count(1) == 2


def test_number_formats():
    assert fmt_int(1234567) == "1,234,567"
    assert fmt_money(950) == "$950"
    assert fmt_money(12_345) == "$12.3K"
    assert fmt_money(4_560_000) == "$4.56M"
    assert fmt_money(183_493_606) == "$183M"
    assert fmt_pct(0.1491) == "15%"
    assert fmt_int(None) == fmt_money(float("nan")) == "–"
    # Tables show full figures; differences carry their sign.
    assert table_format("money").format(1234567.4) == "$1,234,567"
    assert table_format("money", signed=True).format(-1200) == "-1,200"
    assert table_format("int", signed=True).format(5) == "+5"
    assert table_format("pct", signed=True).format(-3.14) == "-3.1%"


# -- features -----------------------------------------------------------------------------------------

def test_feature_count_equals_region_count(demo_store):
    plan = get_plan(demo_store)
    terr = territories(demo_store, plan.plan_id)
    for key in ("h3:3", "h3:4"):
        layer = parse_layer(key)
        stats = region_stats(demo_store, layer)
        frame = region_frame(stats, assignment_for_layer(demo_store, plan, layer), terr,
                             region_places(demo_store, layer))
        data = map_data(frame, layer.shapes(demo_store, frame["region_id"].tolist()), terr, "territory",
                        decimals=default_decimals(key))
        # the plan's whole area: every cell with leads and every land cell without
        assert data.n_features == len(frame) > len(stats) > 50
        assert not data.missing_shapes
        shown = {f["properties"]["i"] for f in data.feature_collection()["features"]}
        assert shown == set(frame["region_id"]) and shown >= set(stats["region_id"])
        # every region of the demo plan's layer maps to a territory on coarser layers
        assert sum(f["properties"]["t"] >= 0 for f in data.feature_collection()["features"]) == data.n_features
        # coordinates are rounded
        ring = data.feature_collection()["features"][0]["geometry"]["coordinates"][0]
        assert all(round(x, 3) == x and round(y, 3) == y for x, y in ring)
        # the default view is the lower 48
        (s, w), (n, e) = data.core_bounds
        assert 22 <= s < n <= 52 and -130 <= w < e <= -63


def test_filter_states_and_places(demo_store):
    layer = parse_layer("h3:5")
    frame = region_frame(region_stats(demo_store, layer), places=region_places(demo_store, layer))
    ca = filter_states(frame, ["CA"])
    assert 0 < len(ca) < len(frame)
    assert all("CA" in s.split(",") for s in ca["states"])
    assert "CA" in state_codes(region_places(demo_store, layer))
    assert ca["place"].str.endswith(", CA").mean() > 0.9
    assert len(filter_states(frame, [])) == len(frame)


def test_ring_encoding_round_trips():
    ring = [[-122.436, 37.757], [-122.42, 37.8], [-122.401, 37.771], [-122.436, 37.757]]
    flat = encode_ring(ring, 1000)
    assert flat[:2] == [-122436, 37757] and len(flat) == 6  # closing vertex dropped, then deltas
    assert all(abs(a - b) < 1e-9 for p, q in zip(decode_ring(flat, 1000), ring) for a, b in zip(p, q))


def test_payload_is_compact():
    stats, assignment = _frame(n=200)
    terr = _territories()
    data = map_data(region_frame(stats, assignment, terr), _squares(stats["region_id"]), terr, decimals=3)
    per_region = len(data.payload_json()) / data.n_features
    assert per_region < 110, per_region


def test_antimeridian_ring_is_drawn_in_one_piece():
    geom = {"type": "Polygon", "coordinates": [[[179.9, 52], [-179.9, 52], [-179.9, 52.1], [179.9, 52.1], [179.9, 52]]]}
    ring = round_geometry(geom, 3)["coordinates"][0]
    xs = [x for x, _ in ring]
    assert max(xs) - min(xs) < 1


def test_territory_summary_shares_and_deviation():
    stats, assignment = _frame(n=6)
    assignment.loc[5, "territory_id"] = None
    terr = _territories()
    summary = territory_summary(stats, assignment, terr)
    assert list(summary["territory"]) == ["North", "South", "Unassigned"]
    assert summary["share"].sum() == pytest.approx(1.0)
    assigned = summary[summary["territory_id"] != -1]
    assert assigned["deviation"].mean() == pytest.approx(0.0, abs=1e-12)
    assert summary["leads"].sum() == stats["leads"].sum()
    north = summary.iloc[0]
    sel = stats.iloc[[0, 2, 4]]
    assert north["avg_score"] == pytest.approx((sel["avg_score"] * sel["open_leads"]).sum() / sel["open_leads"].sum())


# -- local assets ----------------------------------------------------------------------------------------

def _all_links(m) -> list[str]:
    """The URLs streamlit-folium hands to its iframe (same walk as st_folium)."""
    m.get_root().render()
    return assets.asset_urls(m)


def test_every_map_asset_url_is_local():
    stats, assignment = _frame()
    terr = _territories()
    data = map_data(region_frame(stats, assignment, terr), _squares(stats["region_id"]), terr)
    outline = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
                                                          "geometry": _squares(["x"])["x"]}]}
    m = build_map(data, outlines=outline)
    folium.plugins.Draw().add_to(m)  # the editor's drawing tools must be local too
    assets.localize(m)
    urls = _all_links(m)
    assert urls, "the map needs at least Leaflet"
    for url in urls:
        assert not url.startswith(("http:", "https:", "//")), url
        assert url.startswith(assets.DEFAULT_STATIC_BASE + "/")
    assert any(u.endswith("/leaflet.js") for u in urls)
    assert any(u.endswith("/leaflet.draw.js") for u in urls)
    # every element's own lists too (what st_folium walks)
    for el in assets.walk(m):
        for _, url in list(getattr(el, "default_js", [])) + list(getattr(el, "default_css", [])):
            assert not url.startswith("http"), (el, url)
    # branca colormaps make st_folium add d3 from a CDN: the map must not contain one
    assert not any(isinstance(el, branca.colormap.ColorMap) for el in assets.walk(m))
    # the vendored files exist where the URLs point (static/ is served at /app/static)
    for url in urls:
        assert (assets.STATIC_DIR / url.removeprefix(assets.DEFAULT_STATIC_BASE + "/")).is_file()


def test_localize_leaves_folium_defaults_alone_and_rejects_unknown_cdn():
    m = folium.Map(tiles=None)
    assets.localize(m, base="/base/app/static")
    assert all(u.startswith("/base/app/static/") for u in assets.asset_urls(m))
    assert folium.Map.default_js[0][1].startswith("https://")  # class attribute untouched
    other = folium.Map(tiles=None)
    folium.plugins.Fullscreen().add_to(other)  # not vendored
    with pytest.raises(assets.RemoteAssetError):
        assets.localize(other)


def test_naive_baseline_map_is_local_too():
    stats, assignment = _frame()
    terr = _territories(names=(EVIL, "South"))
    frame = region_frame(stats, assignment, terr)
    m = build_naive_map(frame, _squares(stats["region_id"]), terr)
    assert all(not u.startswith("http") for u in _all_links(m))
    assert "<script>alert(1)" not in m.get_root().render()


def test_static_base_honours_base_url_path():
    assert assets.static_base("") == "/app/static"
    assert assets.static_base("/crm/maps/") == "/crm/maps/app/static"


def test_a_diff_map_opens_on_what_changed_not_on_alaska(demo_store):
    """Issue 14.9: the scenario diff map fits the changed regions (three in Texas, one in Alaska: the lower-48
    ones win) instead of the whole country."""
    from terrmap.app.map_data import focus_bounds
    from terrmap.app.maps import build_map

    layer = parse_layer("zip")
    changed = ["75001", "75002", "78701", "99501"]
    shapes = layer.shapes(demo_store, changed)
    box = focus_bounds(shapes, changed)
    tx = [shapely.geometry.shape(shapes[r]).bounds for r in changed[:3]]  # (west, south, east, north)
    south, north = min(b[1] for b in tx), max(b[3] for b in tx)
    assert box is not None and abs(box[0][0] - south) < 1e-3 and abs(box[1][0] - north) < 1e-3  # not Anchorage
    stats = region_stats(demo_store, layer)
    frame = region_frame(stats[stats["region_id"].isin(changed)])
    data = map_data(frame, shapes, None, "leads")
    data.focus_bounds = box
    m = build_map(data, fit="focus")
    fits = [c for c in m._children.values() if type(c).__name__ == "FitBounds"]
    assert fits and fits[-1].bounds == box
    data.focus_bounds = None  # nothing changed: the usual lower-48 view
    m = build_map(data, fit="focus")
    assert [c for c in m._children.values() if type(c).__name__ == "FitBounds"][-1].bounds == data.core_bounds
    assert focus_bounds(shapes, []) is None


def _per_ring(geom: dict, decimals: int):
    """What map_data encodes a geometry as on its per-ring path: (rings per polygon, outer box)."""
    from terrmap.app.geometry import outer_box

    rounded = round_geometry(geom, decimals)
    polys = [rounded["coordinates"]] if rounded["type"] == "Polygon" else rounded["coordinates"]
    return [[encode_ring(r, 10 ** decimals) for r in poly] for poly in polys], outer_box(rounded)


@settings(max_examples=60, deadline=None)
@given(st.data(), st.sampled_from([2, 3, 4]))
def test_whole_array_ring_encoding_equals_the_per_ring_one(data, decimals):
    """Single-ring polygons encoded a whole array at a time, as the per-ring path encodes them, rounding ties
    included; vertices that merge when rounded and rings across the antimeridian are left to the per-ring path."""
    from terrmap.app.map_data import _encode_simple_rings

    q = 10 ** decimals
    vertex = st.tuples(st.integers(-180 * q + 1, 180 * q - 1), st.integers(-90 * q + 1, 90 * q - 1),
                       st.sampled_from([0.0, 0.5, 0.4999999, 0.5000001, 0.25]), st.sampled_from([0.0, 0.5, 0.75]))
    rings = data.draw(st.lists(st.lists(vertex, min_size=4, max_size=8), min_size=1, max_size=20))
    geoms = []
    for ring in rings:
        pts = [[(x + fx) / q, (y + fy) / q] for x, y, fx, fy in ring]
        geoms.append({"type": "Polygon", "coordinates": [pts + [pts[0]]]})
    fast = _encode_simple_rings(geoms, decimals)
    for pos, geom in enumerate(geoms):
        want_rings, want_box = _per_ring(geom, decimals)
        if pos in fast:
            assert fast[pos] == (want_rings, want_box)
        else:  # the per-ring path drops a vertex or shifts the ring across the antimeridian
            rounded = round_geometry(geom, decimals)["coordinates"]
            xs = [round(x, decimals) for x, _ in geom["coordinates"][0]]
            assert not rounded or len(rounded[0]) != len(geom["coordinates"][0]) or max(xs) - min(xs) > 180


def test_whole_array_path_covers_h3_cells():
    import h3

    from terrmap.app.map_data import _encode_simple_rings
    from terrmap.geo.h3layer import cell_polygon

    pentagon = h3.get_pentagons(6)[0]
    cells = sorted(h3.grid_disk(h3.latlng_to_cell(31.0, -99.0, 6), 12)) + [pentagon]
    geoms = [cell_polygon(c) for c in cells]
    fast = _encode_simple_rings(geoms, 3)
    assert len(fast) == len(cells)
    assert all(fast[k] == _per_ring(g, 3) for k, g in enumerate(geoms))


def test_leads_by_state_is_a_count_of_lead_zips(demo_store):
    from terrmap.data.queries import leads_by_state

    leads = demo_store.cursor().execute("SELECT zip FROM leads").df()
    zips = demo_store.cursor().execute("SELECT zip, state FROM zips").df()
    expected = leads.merge(zips, on="zip").dropna(subset=["state"]).groupby("state").size()
    pd.testing.assert_series_equal(leads_by_state(demo_store), expected.rename("leads"), check_names=False,
                                   check_index_type=False)


def test_map_says_why_an_areas_leads_differ_by_layer(demo_store, monkeypatch):
    """Texas on hexagons counts the leads of border cells from both sides; the caption says how many have a
    Texas address, so the number a planner sees on another page is explained, not contradicted."""
    from streamlit.testing.v1 import AppTest

    from terrmap.data.queries import leads_by_state
    from terrmap.data.store import PROJECT_ROOT

    monkeypatch.setenv("TERRMAP_DB", str(demo_store.path))
    texas = int(leads_by_state(demo_store)["TX"])

    def in_regions(key):
        layer = parse_layer(key)
        frame = region_frame(region_stats(demo_store, layer), places=region_places(demo_store, layer))
        return int(filter_states(frame, ["TX"])["leads"].sum())

    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / "map.py"), default_timeout=60)
    at.query_params["area"] = "TX"
    for key in ("h3:5", "zip"):
        at.query_params["layer"] = key
        at.run()
        assert not at.exception
        caption = next(c.value for c in at.caption if "regions ·" in c.value)
        n = int(re.search(r"([\d,]+) leads ·", caption).group(1).replace(",", ""))
        if key.startswith("h3"):
            assert n == in_regions(key) and n > texas, "border cells should hold leads of both sides"
        assert (f"{fmt_int(texas)} leads have an address in Texas" in caption) == (n != texas), caption
        if n != texas:
            assert f"also hold {fmt_int(n - texas)} of the neighbouring states'" in caption


def test_maps_are_framed_clear_of_their_legend():
    """The legend sits bottom right: both the map and the editor frame their regions with that corner kept
    free (the editor's legend covered Florida on a south-eastern view)."""
    from terrmap.app.editor_map import build_editor_map
    from terrmap.app.maps import legend_clearance

    stats, assignment = _frame()
    terr = _territories()
    data = map_data(region_frame(stats, assignment, terr), _squares(stats["region_id"]), terr, "territory")
    for m, clear in ((build_map(data), legend_clearance("territory", data.territories)),
                     (build_editor_map(data, draw=False), legend_clearance("territory"))):
        html_out = _rendered(m)
        assert re.search(rf'"paddingBottomRight":\s*\[{clear},\s*10\]', html_out), \
            re.findall(r'"padding\w+":\s*\[[^\]]*\]', html_out)
    # Wider labels (the scenario diff's "A → B") keep more of the map free, up to the legend's max-width.
    short, diff = legend_clearance("territory", ["Boston"]), legend_clearance("territory", ["San Francisco → Seattle"])
    assert short == 230 < diff < legend_clearance("territory", ["x" * 80]) == 262
    assert legend_clearance("territory", ["San Francisco &rarr; Seattle"]) == diff  # escaped labels count as shown

def test_large_maps_are_painted_on_a_canvas(monkeypatch):
    """Issue 14.8: from CANVAS_REGIONS regions on the payload asks regions.js for the canvas renderer."""
    import terrmap.app.map_data as md

    monkeypatch.setattr(md, "CANVAS_REGIONS", 10)
    for n, canvas in ((9, 0), (10, 1)):
        stats, assignment = _frame(n=n)
        terr = _territories()
        data = map_data(region_frame(stats, assignment, terr), _squares(stats["region_id"]), terr, "territory")
        assert data.n_features == n and data.payload()["cv"] == canvas



def test_chart_outlines_wind_clockwise_and_keep_their_shape():
    """Issue 14.13: the Model page's whitespace map drew a grey box with one state: 7 state polygons wound
    counter-clockwise read to d3-geo as "the globe minus the state". Every exterior ring is clockwise after
    clockwise_features (shoelace sign, computed here), holes the other way, and each shape is unchanged."""
    from shapely.geometry import shape

    from terrmap.app.geometry import clockwise_features
    from terrmap.geo.outlines import state_outlines_geojson

    def signed_area(ring) -> float:
        xy = np.asarray(ring, dtype=float)
        return 0.5 * float(np.sum(xy[:-1, 0] * xy[1:, 1] - xy[1:, 0] * xy[:-1, 1]))

    features = state_outlines_geojson()["features"]
    fixed = clockwise_features(features)
    assert len(fixed) == len(features)
    flipped = 0
    for before, after in zip(features, fixed):
        assert after["properties"] == before["properties"]
        assert shape(after["geometry"]).equals(shape(before["geometry"]))
        polys = after["geometry"]["coordinates"] if after["geometry"]["type"] == "MultiPolygon" \
            else [after["geometry"]["coordinates"]]
        for rings in polys:
            assert signed_area(rings[0]) < 0 and all(signed_area(h) > 0 for h in rings[1:])
        src = before["geometry"]["coordinates"] if before["geometry"]["type"] == "MultiPolygon" \
            else [before["geometry"]["coordinates"]]
        flipped += sum(signed_area(rings[0]) > 0 for rings in src)
    assert flipped > 0  # the shipped outlines do mix both windings: the test covers the repair
