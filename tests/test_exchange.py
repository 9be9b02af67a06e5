"""Alignment import and plan export: round trips, all-or-nothing rejection, CRM account file, map images."""

from __future__ import annotations

import csv
import io
import json
import shutil
from itertools import count

import h3
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terrmap.data.store import Store
from terrmap.geo import H3Layer
from terrmap.geo.zipshapes import ensure_zip_shapes
from terrmap.io.alignment import AlignmentRejected, ImportedPlan, import_alignment, read_alignment
from terrmap.io.export import ACCOUNT_COLUMNS, EXPORT_FORMATS, export_plan, export_to_file
from terrmap.plan import Territory, assignment_for_layer, create_plan, get_plan, list_plans, territories
from tests.cli_support import run_cli

NASTY = ['=HYPERLINK("http://evil","x")', "<script>alert(1)</script>", 'Comma, "quoted" name', "+1 Sales", "$5 & co"]
_names = count(1)


def unique(prefix: str) -> str:
    return f"{prefix} {next(_names)}"


def plan_rows(store: Store, plan_id: int) -> pd.DataFrame:
    """region_id -> territory name (None: unassigned), locked, rep_id, color: what a person sees of a plan."""
    return store.df(
        "SELECT a.region_id, t.name AS territory, a.locked, t.rep_id, t.color FROM plan_assignments a "
        "LEFT JOIN territories t ON t.plan_id = a.plan_id AND t.territory_id = a.territory_id "
        "WHERE a.plan_id = ? ORDER BY a.region_id", [plan_id]
    ).set_index("region_id")


def plan_tables_hash(store: Store) -> tuple:
    cur = store.cursor()
    out = []
    for table in ("plans", "territories", "plan_assignments", "plan_versions", "plan_version_assignments",
                  "hierarchy_nodes", "account_pins", "overlays"):
        out.append(cur.execute(f"SELECT count(*), coalesce(sum(hash(t)), 0) FROM (SELECT * FROM {table}) t").fetchall()[0])
    return tuple(out)


@pytest.fixture(scope="module")
def store(demo_db_path, tmp_path_factory):
    """One writable copy of the demo for the module (plans are added under unique names), with ZIP shapes,
    a ZIP plan with nasty names, locks and unassigned rows, and an H3 plan (resolution 5) with locks."""
    path = tmp_path_factory.mktemp("exchange") / "demo.duckdb"
    shutil.copy(demo_db_path, path)
    s = Store(path)
    ensure_zip_shapes(s)
    demo = get_plan(s)
    terr = territories(s, demo.plan_id)
    terrs = [Territory(int(t.territory_id), NASTY[i] if i < len(NASTY) else t.name, t.color, t.rep_id)
             for i, t in enumerate(terr.itertuples())]
    a = s.df("SELECT region_id, territory_id, locked FROM plan_assignments WHERE plan_id = ? ORDER BY region_id",
             [demo.plan_id])
    a["territory_id"] = a["territory_id"].astype("Int64")
    a.loc[a.index[::97], "locked"] = True
    a.loc[a.index[5::501], "territory_id"] = pd.NA  # listed, unassigned
    create_plan(s, "zip plan", "zip", terrs, a)
    h = assignment_for_layer(s, demo, H3Layer(5))
    h["territory_id"] = h["territory_id"].astype("Int64")
    h["locked"] = False
    h.loc[h.index[::13], "locked"] = True
    create_plan(s, "h3 plan", "h3:5", terrs, h)
    yield s
    s.close()


# -- CSV round trips -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("plan_name", ["zip plan", "h3 plan"])
def test_csv_export_reimports_to_the_identical_plan(store, plan_name):
    plan = get_plan(store, plan_name)
    data = export_plan(store, plan, "csv")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    assert rows[0] == ["region_id", "territory", "territory_id", "rep_id", "locked", "color"]
    assert [r[0] for r in rows[1:]] == sorted(r[0] for r in rows[1:])
    guarded = [r[1] for r in rows[1:] if r[1].startswith("'")]
    assert guarded and all(g[1] in "=+-@" for g in guarded)  # spreadsheet formulas defused

    new = import_alignment(store, data, unique(plan_name), filename="plan.csv")
    assert isinstance(new, ImportedPlan) and new.layer == plan.layer
    before, after = plan_rows(store, plan.plan_id), plan_rows(store, new.plan_id)
    # check_exact: no floats here, and the exact check compares 30k string ids at once instead of one by one
    pd.testing.assert_frame_equal(before, after, check_exact=True)
    assert before["locked"].any() and before["territory"].notna().all() if plan_name == "h3 plan" else \
        before["territory"].isna().any()
    t0 = territories(store, plan.plan_id)[["territory_id", "name", "color", "rep_id"]]
    t1 = territories(store, new.plan_id)[["territory_id", "name", "color", "rep_id"]]
    used = set(store.df("SELECT DISTINCT territory_id FROM plan_assignments WHERE plan_id = ? "
                        "AND territory_id IS NOT NULL", [plan.plan_id])["territory_id"])
    pd.testing.assert_frame_equal(t0[t0.territory_id.isin(used)].reset_index(drop=True), t1.reset_index(drop=True),
                                  check_exact=True)


_zip_set: list[str] = []


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_csv_round_trip_property(store, data):
    if not _zip_set:
        _zip_set.extend(store.df("SELECT zip FROM zips WHERE zip = region_zip ORDER BY zip LIMIT 40 OFFSET 1000")["zip"])
    names = data.draw(st.lists(
        st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1,
                max_size=12).filter(lambda s: not s.startswith("'")),
        min_size=1, max_size=5, unique=True))
    regions = data.draw(st.lists(st.sampled_from(_zip_set), min_size=1, max_size=len(_zip_set), unique=True))
    picks = data.draw(st.lists(st.integers(-1, len(names) - 1), min_size=len(regions), max_size=len(regions)))
    locks = data.draw(st.lists(st.booleans(), min_size=len(regions), max_size=len(regions)))
    if all(p < 0 for p in picks):
        picks[0] = 0
    terrs = [Territory(i + 1, n, "#123456") for i, n in enumerate(names)]
    a = pd.DataFrame({"region_id": regions, "territory_id": pd.array([p + 1 if p >= 0 else None for p in picks],
                                                                      dtype="Int64"), "locked": locks})
    pid = create_plan(store, unique("prop"), "zip", terrs, a)
    new = import_alignment(store, export_plan(store, pid, "csv"), unique("prop back"))
    pd.testing.assert_frame_equal(plan_rows(store, pid), plan_rows(store, new.plan_id), check_exact=True)


# -- GeoJSON / GeoPackage ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["geojson", "gpkg"])
@pytest.mark.parametrize("plan_name", ["zip plan", "h3 plan"])
def test_boundaries_reimport_to_the_same_assignment(store, plan_name, fmt):
    plan = get_plan(store, plan_name)
    data = export_plan(store, plan, fmt)
    new = import_alignment(store, data, unique(f"{plan_name} {fmt}"), filename=f"plan.{fmt}")
    assert new.layer == plan.layer
    before = plan_rows(store, plan.plan_id)["territory"].dropna()
    if plan.layer == "zip":  # every region with a shape (all region ZIPs here)
        shaped = set(store.df("SELECT zip FROM zip_shapes")["zip"])
        before = before[before.index.isin(shaped)]
    after = plan_rows(store, new.plan_id)["territory"]
    assert len(before) > 100
    pd.testing.assert_series_equal(before, after.reindex(before.index), check_exact=True)  # names: no floats
    # Nothing outside the plan was claimed; the regions the plan leaves unassigned are not in the file, so the
    # import completes them (terrmap.plan.complete) like any region missing from an alignment.
    listed = plan_rows(store, plan.plan_id)
    extra = after.dropna().index.difference(before.index)
    assert extra.isin(listed.index[listed["territory"].isna()]).all()


def test_geojson_is_valid_lonlat_with_independent_totals(store):
    import shapely
    from shapely.geometry import shape

    plan = get_plan(store, "zip plan")
    doc = json.loads(export_plan(store, plan, "geojson"))
    assert doc["type"] == "FeatureCollection"
    feats = doc["features"]
    geoms = [shape(f["geometry"]) for f in feats]
    assert all(g.geom_type in ("Polygon", "MultiPolygon") and g.is_valid for g in geoms)
    x0, y0, x1, y1 = shapely.total_bounds(np.array(geoms, dtype=object))
    assert -180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90
    coords = shapely.get_coordinates(np.array(geoms, dtype=object))
    assert np.allclose(coords, np.round(coords, 6))
    props = pd.DataFrame([f["properties"] for f in feats]).set_index("territory_id")
    assert set(props.columns) >= {"territory", "rep_id", "color", "regions", "leads", "potential", "layer"}
    # Independent totals: pandas over the raw leads and the plan rows.
    leads = store.df("SELECT zip, status, score, expected_value FROM leads")
    leads["pot"] = np.where(leads["status"] == "open", leads["score"].fillna(0) * leads["expected_value"].fillna(0), 0)
    a = store.df("SELECT region_id, territory_id FROM plan_assignments WHERE plan_id = ? AND territory_id IS NOT NULL",
                 [plan.plan_id])
    m = leads.merge(a, left_on="zip", right_on="region_id")
    expect = m.groupby("territory_id").agg(leads=("zip", "size"), potential=("pot", "sum"))
    got = props.loc[expect.index]
    assert (got["leads"] == expect["leads"]).all()
    assert np.allclose(got["potential"], expect["potential"], atol=0.01)
    assert (props["regions"].sort_index() == a.groupby("territory_id").size().loc[props.index].sort_index()).all()
    names = dict(zip(props.index, props["territory"]))
    assert NASTY[0] in names.values()  # stored as is in GeoJSON (not a spreadsheet)
    # territories touch without overlapping: areas add up to the union's
    union = shapely.union_all(np.array(geoms, dtype=object))
    assert abs(sum(g.area for g in geoms) - union.area) < 1e-3 * union.area


def test_gpkg_layer_name_and_crs(store, tmp_path):
    import pyogrio

    out = tmp_path / "plan.gpkg"
    summary = export_to_file(store, "h3 plan", "gpkg", out)
    assert summary["bytes"] == out.stat().st_size > 0
    assert [str(x[0]) for x in pyogrio.list_layers(out)] == ["territories"]
    info = pyogrio.read_info(out, layer="territories")
    assert info["crs"] == "EPSG:4326" and info["geometry_type"] in ("MultiPolygon", "Polygon", "Unknown")
    df = pyogrio.read_dataframe(out)
    assert len(df) == store.scalar("SELECT count(DISTINCT territory_id) FROM plan_assignments WHERE plan_id = ? "
                                   "AND territory_id IS NOT NULL", [get_plan(store, "h3 plan").plan_id])


# -- CRM accounts file ------------------------------------------------------------------------------------------------

def test_accounts_export_matches_account_owners_and_defuses_formulas(store):
    from terrmap.plan.accounts import account_owners

    plan = get_plan(store, "zip plan")
    lead_ids = store.df("SELECT lead_id FROM leads ORDER BY lead_id LIMIT 3")["lead_id"].tolist()
    store.cursor().execute("UPDATE leads SET name = ? WHERE lead_id = ?", ['=HYPERLINK("http://evil","x")', lead_ids[0]])
    store.cursor().execute("UPDATE leads SET name = ? WHERE lead_id = ?", ["@SUM(A1:A9)", lead_ids[1]])
    store.cursor().execute("INSERT INTO account_pins (plan_id, lead_id, territory_id, reason) VALUES (?, ?, 3, 'test')",
                           [plan.plan_id, lead_ids[2]])
    try:
        got = pd.read_csv(io.BytesIO(export_plan(store, plan, "accounts")), dtype=str, keep_default_na=False)
        owners = account_owners(store, plan).set_index("lead_id")
    finally:
        store.cursor().execute("DELETE FROM account_pins WHERE plan_id = ?", [plan.plan_id])
    assert list(got.columns) == ACCOUNT_COLUMNS
    got = got.set_index("Id")
    assert len(got) == len(owners) == store.scalar("SELECT count(*) FROM leads")
    owners = owners.loc[got.index]
    assert (got["OwnerId"] == owners["owner_rep_id"].fillna("")).all()
    assert (got["Assignment_Rule__c"] == owners["rule"]).all()
    unguard = got["Territory__c"].str.replace(r"^'(?=[=+\-@])", "", regex=True)
    assert (unguard == owners["owner_name"].fillna("")).all()
    assert (got["Territory_Id__c"] == owners["owner_id"].astype("string").fillna("")).all()
    assert np.allclose(got["Potential__c"].astype(float), owners["potential"].astype(float), atol=0.006)
    assert (got["Region__c"] == owners["region_id"]).all()
    reps = dict(store.cursor().execute("SELECT rep_id, name FROM reps").fetchall())
    assert (got["Owner_Name"] == owners["owner_rep_id"].map(reps).fillna("")).all()
    assert got.loc[lead_ids[0], "Name"] == "'" + '=HYPERLINK("http://evil","x")'
    assert got.loc[lead_ids[1], "Name"] == "'@SUM(A1:A9)"
    assert got.loc[lead_ids[2], "Assignment_Rule__c"] == "pin"
    assert got.loc[lead_ids[2], "Territory_Id__c"] == "3"
    assert (got["Territory__c"] == "'" + NASTY[0]).any()


# -- map images -------------------------------------------------------------------------------------------------------

def test_png_and_pdf_map(store):
    from PIL import Image

    plan = get_plan(store, "h3 plan")
    png = export_plan(store, plan, "png")
    pdf = export_plan(store, plan, "pdf")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 50_000
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF") and len(pdf) > 20_000
    img = Image.open(io.BytesIO(png)).convert("RGB")
    assert img.size == (2400, 1350)  # 16:9 at 150 dpi
    px = np.asarray(img).reshape(-1, 3)
    terr = territories(store, plan.plan_id)
    cells = store.df("SELECT territory_id, count(*) AS n FROM plan_assignments WHERE plan_id = ? GROUP BY 1",
                     [plan.plan_id]).set_index("territory_id")["n"]
    counts = {}
    for t in terr.itertuples():
        rgb = np.array([int(t.color[i:i + 2], 16) for i in (1, 3, 5)])
        counts[t.territory_id] = int((px == rgb).all(axis=1).sum())
    biggest = cells.idxmax()
    assert counts[biggest] > 5_000  # far more than its legend swatch
    assert sum(c > 300 for c in counts.values()) >= 0.8 * len(counts)
    coloured = (px.max(axis=1) - px.min(axis=1) >= 8).mean()
    assert coloured > 0.02  # territories drawn over the grey states, not an empty canvas


# -- rejected files change nothing ------------------------------------------------------------------------------------

def _cell(lat, lon, res=5):
    return h3.latlng_to_cell(lat, lon, res)


BAD_FILES = {
    "unknown zips": ("zip,territory\n02134,East\n99999,East\n00001,West\n10001,West\n",
                     ["line 3: unknown ZIP 99999", "line 4: unknown ZIP 00001"]),
    "conflicting duplicates": ("zip,territory\n02134,East\n10001,West\n02134,West\n10001,West\n",
                               ["region 02134", "'East' (line 2)", "'West' (line 4)"]),
    "empty": ("", ["the file is empty"]),
    "blank": ("  \n\n", ["the file is empty"]),
    "header only": ("zip,territory\n", ["header but no data rows"]),
    "not utf-8": ("zip,territory\n02134,East\n10001,Caf\xe9\n".encode("latin-1"), ["not UTF-8", "line 3"]),
    "missing territory column": ("zip,owner\n02134,R01\n", ["no territory column", "'zip', 'owner'"]),
    "missing region column": ("name,territory\nx,East\n", ["no region (ZIP or H3 cell) column"]),
    "mixed layers": (f"region_id,territory\n02134,East\n{_cell(40, -100)},West\n",
                     ["mixed layers", "1 ZIPs (first at line 2)", "1 H3 cells (first at line 3)"]),
    "mixed resolutions": (f"h3,territory\n{_cell(40, -100, 5)},East\n{_cell(41, -100, 6)},West\n",
                          ["mixed H3 resolutions", "resolution 5: 1 cells (first at line 2)",
                           "resolution 6: 1 cells (first at line 3)"]),
    "bad h3 id": (f"h3,territory\n{_cell(40, -100)},East\n8528347zzzfffff,West\n",
                  ["line 3: '8528347zzzfffff' in column 'h3' is not a valid H3 cell id"]),
    "unknown rep": ("zip,territory,owner id\n02134,East,R01\n10001,West,NOBODY\n",
                    ["line 3: unknown rep 'NOBODY'"]),
    "inconsistent rep": ("zip,territory,rep_id\n02134,East,R01\n02135,East,R02\n",
                         ["territory 'East' has 2 different reps", "'R01' (line 2)", "'R02' (line 3)"]),
    "lost zeros in a text column": ("zip,territory\n02134,East\n2135,East\n", ["line 3: ZIP '2135'", "4 digits"]),
    "ragged line": ("zip,territory\n02134,East\n10001,West,extra\n", ["line 3: 3 fields, the header has 2"]),
    "bad lock": ("zip,territory,locked\n02134,East,maybe\n", ["line 2: locked 'maybe'"]),
    "spreadsheet": (b"PK\x03\x04rest", ["spreadsheet or zip file"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_alignment_rejected_whole(store, case):
    content, expected = BAD_FILES[case]
    before_plans, before_hash = len(list_plans(store)), plan_tables_hash(store)
    data = content.encode("utf-8") if isinstance(content, str) else content
    with pytest.raises(AlignmentRejected) as err:
        import_alignment(store, data, unique("bad"), filename="align.csv")
    text = str(err.value)
    for piece in expected:
        assert piece in text, (piece, text)
    assert err.value.problems and all(isinstance(p, str) for p in err.value.problems)
    assert len(list_plans(store)) == before_plans
    assert plan_tables_hash(store) == before_hash


def test_many_problems_are_all_listed_and_nothing_written(store):
    good = store.df("SELECT zip FROM zips WHERE zip = region_zip ORDER BY zip LIMIT 500")["zip"].tolist()
    lines = ["Zip Code,Territory Name"] + [f"{z},T{i % 3}" for i, z in enumerate(good)]
    lines += ["99990,T1", "99991,T1", f"{good[7]},Other"]
    before = plan_tables_hash(store)
    with pytest.raises(AlignmentRejected) as err:
        import_alignment(store, "\n".join(lines).encode(), unique("partly bad"))
    problems = err.value.problems
    assert any("line 502: unknown ZIP 99990" in p for p in problems)
    assert any("line 503: unknown ZIP 99991" in p for p in problems)
    assert any(f"region {good[7]}" in p and "line 504" in p and "line 9" in p for p in problems)
    assert plan_tables_hash(store) == before


def test_taken_name_rejected(store):
    before = plan_tables_hash(store)
    with pytest.raises(AlignmentRejected, match="already exists"):
        import_alignment(store, b"zip,territory\n02134,East\n", "zip plan")
    assert plan_tables_hash(store) == before


# -- what CRM files look like -----------------------------------------------------------------------------------------

def test_crm_export_headers_numeric_zips_po_boxes_and_notes(store):
    ref = store.df("SELECT zip, region_zip, zip_type, state, lat FROM zips")
    po = ref[(ref.zip != ref.region_zip) & ref.region_zip.notna() & ref.zip.str.startswith("0")].iloc[0]
    po2 = ref[(ref.zip != ref.region_zip) & ref.region_zip.notna() & ~ref.zip.str.startswith("0")
              & (ref.region_zip != po.region_zip)].iloc[0]
    rep = store.df("SELECT rep_id, name FROM reps ORDER BY rep_id").iloc[0]
    # A spreadsheet ate the leading zeros: 2134 is 02134; the column has no value starting with 0.
    text = ("\ufeffZip/Postal Code;Territory__c;Owner Name;Locked\n"
            f"2134;North East;{rep['name'].upper()};yes\n"
            "2134;North East;;\n"  # same region, same territory: fine
            f"{int(po.zip)};Far Away;;no\n"  # a PO box: counts in its region
            f"{int(po.region_zip)}-1234;North East;;\n"  # ZIP+4 of the region itself: wins over the PO box
            f"{int(po2.zip)}.0;West;;\n")
    al = read_alignment(store, text.encode("utf-8"), filename="crm.csv")
    assert al.ok, al.problems
    assert al.layer == "zip" and al.columns["region"] == "Zip/Postal Code" and al.columns["rep"] == "Owner Name"
    a = al.assignment.set_index("region_id")
    terr = al.territories.set_index("territory_id")
    def name_of(region):
        return terr.loc[a.loc[region, "territory_id"], "name"]

    assert name_of("02134") == "North East" and bool(a.loc["02134", "locked"])
    assert name_of(po.region_zip) == "North East"
    assert name_of(po2.region_zip) == "West"
    assert po.zip not in a.index and po2.zip not in a.index
    assert terr.loc[terr.name == "North East", "rep_id"].item() == rep["rep_id"]
    assert "Far Away" not in set(terr["name"])
    assert any(po.zip in n and "wins" in n for n in al.notes)
    # The file's area: every region ZIP of the states its ZIPs lie in (independent: the reference table).
    states = set(ref.loc[ref.zip.isin(a.index), "state"])
    regions = set(ref.loc[(ref.zip == ref.region_zip) & ref.lat.notna() & ref.state.isin(states), "zip"])
    assert al.area_regions_not_listed == len(regions - set(a.index))
    new = import_alignment(store, text.encode("utf-8"), unique("crm"), filename="crm.csv", author="Ann")
    assert new.summary["assigned_regions"] == 3 and new.summary["regions_completed"] == len(regions) - 3
    stored = store.df("SELECT region_id, territory_id FROM plan_assignments WHERE plan_id = ?", [new.plan_id])
    assert set(stored["region_id"]) == regions and stored["territory_id"].notna().all()  # completed at import
    desc = store.scalar("SELECT description FROM plans WHERE plan_id = ?", [new.plan_id])
    assert "crm.csv" in desc and "Ann" in desc
    colors = territories(store, new.plan_id)["color"]
    assert colors.str.fullmatch(r"#[0-9a-f]{6}").all() and colors.nunique() == len(colors)


def test_h3_ids_as_integers_and_given_layer(store):
    cells = [_cell(40, -100), _cell(40.5, -100), _cell(35, -90)]
    text = "H3 Index,Territory\n" + "\n".join(f"{h3.str_to_int(c)},{t}" for c, t in zip(cells, "AAB"))
    al = read_alignment(store, text.encode())
    assert al.ok and al.layer == "h3:5"
    assert sorted(al.assignment["region_id"]) == sorted(cells)
    wrong = read_alignment(store, text.encode(), layer="h3:6")
    assert any("has resolution 5, the layer is h3:6" in p for p in wrong.problems)
    as_zip = read_alignment(store, text.encode(), layer="zip")
    assert as_zip.problems and not as_zip.ok


# -- command line -----------------------------------------------------------------------------------------------------

def test_cli_export_and_import(demo_db_path, tmp_path, capsys):
    db = tmp_path / "cli.duckdb"
    shutil.copy(demo_db_path, db)

    def run(*args):
        return run_cli(capsys, *args, db=db)

    out = tmp_path / "plan.csv"
    res = run("export", "--format", "csv", "--out", str(out))
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["format"] == "csv" and summary["bytes"] == out.stat().st_size
    res = run("import-alignment", str(out), "--name", "from cli")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["plan"] == "from cli" and got["layer"] == "zip" and got["territories"] == 20
    bad = tmp_path / "bad.csv"
    bad.write_text("zip,territory\n99999,A\n")
    res = run("import-alignment", str(bad), "--name", "bad one")
    assert res.returncode == 2 and "line 2: unknown ZIP 99999" in res.stderr
    s = Store(db)
    try:
        names = [p.name for p in list_plans(s)]
        assert "from cli" in names and "bad one" not in names
        demo, back = get_plan(s, names[0]), get_plan(s, "from cli")
        pd.testing.assert_frame_equal(plan_rows(s, demo.plan_id), plan_rows(s, back.plan_id), check_exact=True)
    finally:
        s.close()
    assert set(EXPORT_FORMATS) == {"csv", "accounts", "geojson", "gpkg", "png", "pdf"}


def test_geojson_counts_what_home_counts_with_pins_and_overlays(store):
    """Issue 14.11: a territory's leads and potential in the GeoJSON are the accounts it owns, as on Home
    (hierarchy.rollup at the Territory level): an overlay's accounts and a pinned account count where they
    are owned, not where they lie."""
    from terrmap.plan import accounts as acc
    from terrmap.plan import hierarchy

    zips = store.df("SELECT zip, state FROM zips WHERE zip = region_zip AND state IN ('RI', 'CT') ORDER BY zip")
    a = pd.DataFrame({"region_id": zips["zip"], "territory_id": np.where(zips["state"] == "RI", 1, 2)})
    pid = create_plan(store, unique("owned counts"), "zip", [Territory(1, "Rhode Island", "#1f77b4"),
                                                              Territory(2, "Connecticut", "#ff7f0e")], a)
    plan = get_plan(store, pid)
    acc.save_overlay(store, pid, "Big ones", acc.OverlayRule(min_employees=200), rep_id="R01", territories=[2])
    owners = acc.account_owners(store, plan)
    ri_lead = owners.loc[owners["geo_territory_id"] == 1, "lead_id"].iloc[0]
    acc.pin_account(store, pid, ri_lead, 2, "HQ in Hartford")
    home = hierarchy.rollup(store, plan, "Territory").set_index("name")
    doc = json.loads(export_plan(store, plan, "geojson"))
    got = {f["properties"]["territory"]: f["properties"] for f in doc["features"]}
    assert (home.loc[home["kind"] == "overlay", "leads"] > 0).all()  # the overlay takes accounts from CT
    for name in ("Rhode Island", "Connecticut"):
        assert got[name]["leads"] == home.loc[name, "leads"]
        assert got[name]["potential"] == pytest.approx(home.loc[name, "potential"], abs=0.01)


def test_boundaries_of_an_unchanged_assignment_are_dissolved_once(store, monkeypatch):
    """The Scenarios page's GeoJSON, GeoPackage, PNG and PDF each dissolve the plan's territories: the second
    export of the same assignment reuses the first one's geometry, and a changed assignment (even one written
    behind the plan's back) is dissolved again."""
    plan = get_plan(store, "h3 plan")
    calls = []
    real = H3Layer.dissolve

    def counting(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(H3Layer, "dissolve", counting)
    first = json.loads(export_plan(store, plan, "geojson"))
    again = json.loads(export_plan(store, plan, "geojson"))
    export_plan(store, plan, "gpkg")
    assert first == again and len(calls) <= 1  # at most the first (an earlier test may have filled the cache)
    before = len(calls)
    cell, tid = store.df("SELECT region_id, territory_id FROM plan_assignments WHERE plan_id = ? AND territory_id "
                         "IS NOT NULL ORDER BY region_id LIMIT 1", [plan.plan_id]).iloc[0]
    other = int(store.scalar("SELECT min(territory_id) FROM territories WHERE plan_id = ? AND territory_id <> ?",
                             [plan.plan_id, int(tid)]))
    move = "UPDATE plan_assignments SET territory_id = ? WHERE plan_id = ? AND region_id = ?"
    store.cursor().execute(move, [other, plan.plan_id, cell])
    try:
        changed = json.loads(export_plan(store, plan, "geojson"))
    finally:
        store.cursor().execute(move, [int(tid), plan.plan_id, cell])  # the module's other tests use this plan
    assert len(calls) == before + 1 and changed != first
    regions = {f["properties"]["territory_id"]: f["properties"]["regions"] for f in changed["features"]}
    assert regions[other] == {f["properties"]["territory_id"]: f["properties"]["regions"]
                              for f in first["features"]}[other] + 1
