"""Lead import: CRM headers, geocoding, H3 cells, all-or-nothing validation with row/column messages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terrmap.data.store import BASE_H3_RES, Store
from terrmap.geo.zipdata import nearest_region_zip
from terrmap.io.ingest import (
    CANONICAL_FIELDS,
    MAX_ROWS_PER_PROBLEM,
    ImportRejected,
    Problem,
    import_file,
    map_status,
    preview,
    suggest_mapping,
)
from tests.cli_support import run_cli

SF_HEADER = ("Lead ID,Company,Industry,NumberOfEmployees,AnnualRevenue,Lead Status,Amount,CreatedDate,CloseDate,"
             "PostalCode,Latitude,Longitude,Lead Source")


def write(tmp_path: Path, text: str | bytes, name: str = "leads.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def snapshot(store: Store) -> tuple:
    """Everything an import could change, plus leftovers of the staging."""
    cur = store.cursor()
    leads = cur.execute(
        "SELECT count(*), sum(hash(lead_id, status, lat, lon, zip, cell, name, score, expected_value)) FROM leads"
    ).fetchall()[0]
    temp = cur.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchall()[0][0]
    return leads, temp


def rejected(store: Store, path: Path, **kw) -> ImportRejected:
    """Import must be refused and leave the database exactly as it was."""
    before = snapshot(store)
    with pytest.raises(ImportRejected) as info:
        import_file(store, path, **kw)
    assert snapshot(store) == before
    exc = info.value
    assert exc.problems and all(isinstance(p, Problem) for p in exc.problems)
    assert str(exc).count("\n") >= len(exc.problems)  # one line per problem
    return exc


def zip_ref(store: Store, z: str) -> tuple[float, float, str]:
    return tuple(store.cursor().execute("SELECT lat, lon, region_zip FROM zips WHERE zip = ?", [z]).fetchall()[0])


def lead(store: Store, lead_id: str) -> dict:
    df = store.cursor().execute("SELECT * FROM leads WHERE lead_id = ?", [lead_id]).df()
    assert len(df) == 1, f"{lead_id}: {len(df)} rows"
    return df.iloc[0].to_dict()


def h3_int(lat: float, lon: float) -> int:
    return h3.str_to_int(h3.latlng_to_cell(lat, lon, BASE_H3_RES))


# ---------------------------------------------------------------------------
# Column names


def test_salesforce_and_hubspot_headers_are_recognised():
    sf = suggest_mapping(SF_HEADER.split(",") + ["Name"])
    assert sf == {
        "lead_id": "Lead ID", "name": "Company", "industry": "Industry", "employees": "NumberOfEmployees",
        "annual_revenue": "AnnualRevenue", "status": "Lead Status", "deal_value": "Amount",
        "created_at": "CreatedDate", "closed_at": "CloseDate", "postal_zip": "PostalCode", "lat": "Latitude",
        "lon": "Longitude", "crm_score": None,
    }
    hs = suggest_mapping(["Record ID", "Company name", "Number of Employees", "Annual Revenue", "Deal Stage",
                          "Deal Value", "Create Date", "Close Date", "Postal Code", "lat", "lng", "HubSpot Score"])
    assert hs["lead_id"] == "Record ID" and hs["name"] == "Company name" and hs["status"] == "Deal Stage"
    assert hs["employees"] == "Number of Employees" and hs["annual_revenue"] == "Annual Revenue"
    assert hs["deal_value"] == "Deal Value" and hs["created_at"] == "Create Date"
    assert hs["closed_at"] == "Close Date" and hs["postal_zip"] == "Postal Code"
    assert (hs["lat"], hs["lon"], hs["crm_score"]) == ("lat", "lng", "HubSpot Score")
    other = suggest_mapping(["Id", "Account Name", "Employees", "Stage", "Billing Zip/Postal Code", "Score"])
    assert other["lead_id"] == "Id" and other["name"] == "Account Name" and other["status"] == "Stage"
    assert other["postal_zip"] == "Billing Zip/Postal Code"
    assert [f.name for f in CANONICAL_FIELDS if f.required] == ["lead_id", "status"]


@pytest.mark.parametrize("value,status", [
    ("Closed Won", "won"), ("won", "won"), ("Converted", "won"), ("closedwon", "won"),
    ("Closed Lost", "lost"), ("LOST", "lost"), ("Unqualified", "lost"), ("Disqualified", "lost"),
    ("Closed - Not Converted", "lost"), ("Open", "open"), ("New", "open"), ("Working - Contacted", "open"),
    ("Contacted", "open"), ("Nurturing", "open"), ("Qualified", "open"), ("appointmentscheduled", "open"),
    ("Maybe", None), ("Closed", None),
])
def test_status_vocabulary(value, status):
    assert map_status(value) == status


# ---------------------------------------------------------------------------
# Good files


def test_salesforce_csv_geocodes_indexes_and_keeps_text_literally(empty_store, tmp_path):
    path = write(tmp_path, SF_HEADER + "\n"
                 "L1,<script>alert(1)</script>,Software,12,\"$1,200,000\",Closed Won,5000,2024-01-05,3/1/2024,"
                 "02139-4307,,,Web\n"
                 "L2,Beta,Retail,3,1000,Open - Not Contacted,,1/5/2024,,2139,,,\n"
                 "L3,\"Gamma, \"\"the\"\" Co\",Retail,,,Unqualified,,,,,40.7128,-74.006,Ads\n"
                 "L4,Delta,Retail,7,,Working - Contacted,,,,10001,40.75,-73.99,\n")
    result = import_file(empty_store, path)
    assert (result["rows"], result["inserted"], result["updated"]) == (4, 4, 0)
    assert empty_store.scalar("SELECT count(*) FROM leads") == 4

    lat, lon, region = zip_ref(empty_store, "02139")
    l1 = lead(empty_store, "L1")
    assert l1["name"] == "<script>alert(1)</script>"
    assert l1["status"] == "won" and l1["annual_revenue"] == 1_200_000 and l1["employees"] == 12
    assert l1["postal_zip"] == "02139" and l1["zip"] == region
    assert (l1["lat"], l1["lon"]) == (lat, lon)  # ZIP-only: the ZIP centroid
    assert l1["cell"] == h3_int(lat, lon)
    assert str(l1["closed_at"].date()) == "2024-03-01" and str(l1["created_at"].date()) == "2024-01-05"
    assert json.loads(l1["extra"]) == {"Lead Source": "Web"}
    assert l1["score_source"] == "fit" and 0 < l1["score"] < 1

    l2 = lead(empty_store, "L2")  # 4-digit ZIP that lost its leading zero
    assert (l2["postal_zip"], l2["zip"], l2["status"]) == ("02139", region, "open")

    l3 = lead(empty_store, "L3")  # coordinates only: region ZIP from the coordinates
    assert l3["name"] == 'Gamma, "the" Co' and l3["status"] == "lost"
    assert pd.isna(l3["postal_zip"])
    assert l3["zip"] == nearest_region_zip(np.array([40.7128]), np.array([-74.006]))[0]
    assert (l3["lat"], l3["lon"]) == (40.7128, -74.006) and l3["cell"] == h3_int(40.7128, -74.006)

    l4 = lead(empty_store, "L4")  # both: coordinates as given, region of the ZIP
    assert (l4["lat"], l4["lon"]) == (40.75, -73.99) and l4["zip"] == zip_ref(empty_store, "10001")[2]


def test_hubspot_parquet_with_scores(empty_store, tmp_path):
    df = pd.DataFrame({
        "Record ID": [101, 102, 103],
        "Company name": ["A", "B", "C"],
        "Number of Employees": [10, 20, None],
        "Deal Stage": ["closedwon", "appointmentscheduled", "closedlost"],
        "Deal Value": [1000.0, None, None],
        "Create Date": pd.to_datetime(["2024-01-01", "2024-02-01", None]),
        "Postal Code": [2139, 10001, 94103],  # numbers: leading zero lost
        "HubSpot Score": [80, 35, None],
        "Owner": ["x", "y", "z"],
    })
    path = tmp_path / "hubspot.parquet"
    df.to_parquet(path)
    result = import_file(empty_store, path)
    assert result["rows"] == 3
    a = lead(empty_store, "101")
    assert a["postal_zip"] == "02139" and a["status"] == "won" and a["crm_score"] == pytest.approx(0.8)
    assert a["score_source"] == "crm" and a["score"] == pytest.approx(0.8)
    assert json.loads(a["extra"]) == {"Owner": "x"}
    c = lead(empty_store, "103")
    assert pd.isna(c["crm_score"]) and c["score_source"] == "fit" and c["status"] == "lost"
    lat, lon, region = zip_ref(empty_store, "94103")
    assert (c["lat"], c["lon"], c["zip"], c["cell"]) == (lat, lon, region, h3_int(lat, lon))


def test_parquet_nan_means_missing(empty_store, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "nan.parquet"
    pq.write_table(pa.table({"Id": ["n1", "n2"], "Status": ["Open", "Won"], "Zip": ["10001", None],
                             "Latitude": [float("nan"), 40.7], "Longitude": [float("nan"), -74.0],
                             "Employees": [float("nan"), 5.0]}), path)
    import_file(empty_store, path)
    n1 = lead(empty_store, "n1")
    lat, lon, region = zip_ref(empty_store, "10001")
    assert (n1["lat"], n1["lon"], n1["zip"]) == (lat, lon, region) and pd.isna(n1["employees"])
    assert lead(empty_store, "n2")["employees"] == 5


def test_blank_and_padded_values(empty_store, tmp_path):
    """Spaces alone (or "") are a missing value; spaces around a value are ignored where values are parsed."""
    path = write(tmp_path, 'Id,Status,Zip,Latitude,Longitude,Employees,Amount\n'
                 'b1,Open,10001,"  ",  , ,""\n'
                 'b2,Open, 10001 ,,, 12 ,\n'
                 'b3,Open,,21.3069,-157.8583,,\n'  # Hawaii, Puerto Rico and Guam: later boxes of US_BOXES
                 'b4,Open,00601,18.18,-66.75,,\n'
                 'b5,Open,96910,13.45,144.75,,\n')
    import_file(empty_store, path)
    lat, lon, region = zip_ref(empty_store, "10001")
    b1 = lead(empty_store, "b1")
    assert (b1["lat"], b1["lon"], b1["zip"]) == (lat, lon, region) and pd.isna(b1["employees"])
    b2 = lead(empty_store, "b2")
    assert (b2["postal_zip"], b2["employees"], b2["lat"]) == ("10001", 12, lat)
    b3 = lead(empty_store, "b3")
    assert b3["cell"] == h3_int(21.3069, -157.8583)
    assert b3["zip"] == nearest_region_zip(np.array([21.3069]), np.array([-157.8583]))[0]
    assert lead(empty_store, "b5")["cell"] == h3_int(13.45, 144.75)
    bad = write(tmp_path, "Id,Status,Zip,Employees\nc1,Open,10001, x\n", "bad.csv")
    exc = rejected(empty_store, bad)
    assert [(p.row, p.column) for p in exc.problems] == [(2, "Employees")] and "not a number" in str(exc)


def test_computed_values_stay_with_their_rows(empty_store, tmp_path):
    """Coordinates, cells and region ZIPs are computed apart from the rows (numpy, h3ronpy in threads) and
    joined back by position: with the ids shuffled against the file order and enough rows for several Arrow
    batches and the threaded H3 indexing, every lead must still get exactly its own values (h3-py as the
    independent reference)."""
    ref = empty_store.df("SELECT zip, lat, lon, region_zip FROM zips WHERE lat BETWEEN 25 AND 49 "
                         "AND lon BETWEEN -124 AND -67 AND region_zip IS NOT NULL")
    n = 150_000
    rng = np.random.default_rng(7)
    pick = ref.iloc[rng.integers(0, len(ref), n)].reset_index(drop=True)
    kind = rng.choice(["zip", "zip4", "both", "coords"], n, p=[0.15, 0.05, 0.4, 0.4])
    given = np.isin(kind, ["both", "coords"])
    lat = np.where(given, pick["lat"] + rng.uniform(-0.02, 0.02, n), np.nan)
    lon = np.where(given, pick["lon"] + rng.uniform(-0.02, 0.02, n), np.nan)
    postal = np.where(kind == "coords", "", np.where(kind == "zip4", pick["zip"] + "-1234", pick["zip"]))
    ids = np.array([f"S{i:06d}" for i in rng.permutation(n)])
    df = pd.DataFrame({"Id": ids, "Status": "Open", "Zip": postal, "Latitude": lat, "Longitude": lon})
    path = tmp_path / "shuffled.csv"
    df.to_csv(path, index=False)
    assert import_file(empty_store, path)["inserted"] == n

    got = empty_store.df("SELECT lead_id, lat, lon, cell, zip, postal_zip FROM leads").set_index("lead_id")
    got = got.loc[ids]
    exp_lat = np.where(given, lat, pick["lat"])
    exp_lon = np.where(given, lon, pick["lon"])
    assert np.array_equal(got["lat"].to_numpy(), exp_lat) and np.array_equal(got["lon"].to_numpy(), exp_lon)
    expected_cells = [h3_int(a, b) for a, b in zip(exp_lat, exp_lon)]
    assert got["cell"].astype("uint64").tolist() == expected_cells
    coords_only = kind == "coords"
    exp_zip = pick["region_zip"].to_numpy().astype(object)
    exp_zip[coords_only] = nearest_region_zip(lat[coords_only], lon[coords_only])
    assert got["zip"].tolist() == exp_zip.tolist()
    assert got["postal_zip"].fillna("").tolist() == np.where(coords_only, "", pick["zip"]).tolist()


def test_scores_between_0_and_1_are_kept(empty_store, tmp_path):
    path = write(tmp_path, "Id,Status,Zip,Lead Score\na,Open,10001,0.25\nb,Open,10001,1\n")
    import_file(empty_store, path)
    assert lead(empty_store, "a")["crm_score"] == 0.25 and lead(empty_store, "b")["crm_score"] == 1.0


def test_reimport_updates_instead_of_duplicating(demo_store, tmp_path):
    n0 = demo_store.scalar("SELECT count(*) FROM leads")
    first = write(tmp_path, "Id,Company,Status,Zip\nX1,Acme,Open,10001\nX2,Bolt,New,02139\n", "a.csv")
    assert import_file(demo_store, first)["inserted"] == 2
    second = write(tmp_path, "Id,Company,Status,Zip\nX1,Acme Corp,Closed Won,10001\nX3,Cog,Open,60601\n", "b.csv")
    result = import_file(demo_store, second)
    assert (result["inserted"], result["updated"]) == (1, 1)
    assert demo_store.scalar("SELECT count(*) FROM leads") == n0 + 3
    assert demo_store.scalar("SELECT count(*) FROM leads WHERE lead_id = 'X1'") == 1
    x1 = lead(demo_store, "X1")
    assert (x1["name"], x1["status"]) == ("Acme Corp", "won")
    assert lead(demo_store, "X2")["name"] == "Bolt"  # not in the second file: untouched
    # A demo lead can be updated by id too.
    demo_id = demo_store.scalar("SELECT min(lead_id) FROM leads WHERE lead_id LIKE 'D%'")
    third = write(tmp_path, f"Id,Company,Status,Zip\n{demo_id},Renamed,Lost,10001\n", "c.csv")
    assert import_file(demo_store, third)["updated"] == 1
    assert demo_store.scalar("SELECT count(*) FROM leads") == n0 + 3
    assert lead(demo_store, demo_id)["name"] == "Renamed"
    # Region stats (read from the pre-aggregated rollup) see the imports at once.
    from terrmap.data.stats import region_stats
    from terrmap.geo import parse_layer

    stats = region_stats(demo_store, parse_layer("zip")).set_index("region_id")
    raw = demo_store.df("SELECT zip, count(*) n, count(*) FILTER (WHERE status = 'won') won FROM leads GROUP BY zip")
    raw = raw.set_index("zip")
    assert (stats.loc[raw.index, "leads"] == raw["n"]).all()
    assert (stats.loc[raw.index, "customers"] == raw["won"]).all()


def test_scores_computed_at_insert_equal_a_full_recomputation(demo_store, tmp_path):
    """The import computes fallback scores as rows go in and then rewrites only older leads whose
    industry's median won deal moved: the result must equal recomputing every lead from scratch."""
    demo_store.cursor().execute("DELETE FROM models")  # the demo's leads carry fallback scores only
    rows = ["Id,Company,Industry,Employees,Annual Revenue,Status,Amount,Zip,Score"]
    industry = demo_store.scalar("SELECT industry FROM leads WHERE status = 'won' GROUP BY 1 ORDER BY count(*) LIMIT 1")
    for i in range(60):  # enough big wins in one industry to move its median
        rows.append(f"W{i},Big {i},{industry},{50 + i},{1e6 * i},Closed Won,{900000 + i},10001,")
    rows += ["O1,Open one,Retail,12,150000,Open,,60601,0.42", "O2,Open two,,,,Open,,73301,"]
    old_lead = demo_store.scalar("SELECT min(lead_id) FROM leads WHERE industry = ? AND status = 'open'", [industry])
    value_before = lead(demo_store, old_lead)["expected_value"]
    import_file(demo_store, write(tmp_path, "\n".join(rows) + "\n", "wins.csv"))
    after = demo_store.df("SELECT lead_id, score, score_source, expected_value FROM leads ORDER BY lead_id")
    assert after["score"].notna().all() and after["expected_value"].notna().all()
    assert lead(demo_store, "O1")["score_source"] == "crm"
    demo_store.cursor().execute("UPDATE leads SET score = NULL, score_source = NULL, expected_value = NULL")
    from terrmap.scoring import apply_fallback_scores

    apply_fallback_scores(demo_store)
    again = demo_store.df("SELECT lead_id, score, score_source, expected_value FROM leads ORDER BY lead_id")
    pd.testing.assert_frame_equal(after, again)
    assert lead(demo_store, old_lead)["expected_value"] > value_before  # older leads take the industry's new median


def test_explicit_mapping_semicolons_and_progress(empty_store, tmp_path):
    path = write(tmp_path, "ref;phase;where;firm\nq1;Won;10001;Q\nq2;Lost;02139;R\n")
    with pytest.raises(ImportRejected):
        import_file(empty_store, path)  # nothing recognisable
    calls = []
    result = import_file(empty_store, path, mapping={"lead_id": "ref", "status": "phase", "postal_zip": "where"},
                         progress=lambda f, m: calls.append((f, m)))
    assert result["rows"] == 2 and lead(empty_store, "q1")["status"] == "won"
    assert json.loads(lead(empty_store, "q2")["extra"]) == {"firm": "R"}  # unmapped: kept
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and all(isinstance(m, str) for _, m in calls)


def test_preview_gives_raw_strings(tmp_path):
    path = write(tmp_path, SF_HEADER + "\nL1,Acme,Software,12,100,Open,,,,02139,,,\n")
    df = preview(path, n=5)
    assert list(df.columns) == SF_HEADER.split(",")
    assert df.loc[0, "PostalCode"] == "02139" and df.loc[0, "NumberOfEmployees"] == "12"
    assert df.loc[0, "Amount"] == ""  # an empty field stays empty, not None (shown "None" in the preview grid)


# ---------------------------------------------------------------------------
# Bad files: each rejected with row and column, database unchanged

GOOD = "L{i},Co {i},Software,10,1000,Open,,2024-01-01,,10001,,,\n"


def sf_file(tmp_path, bad_row: str, bad_at: int = 3, n: int = 5) -> Path:
    """A Salesforce-style file whose data row ``bad_at`` (line bad_at + 1) is ``bad_row``."""
    rows = [GOOD.format(i=i) for i in range(1, n + 1)]
    rows[bad_at - 1] = bad_row + "\n"
    return write(tmp_path, SF_HEADER + "\n" + "".join(rows))


BAD_ROWS = [
    # (row, column expected in the problem, words expected in the message)
    ("L3,Co,Software,many,1000,Open,,,,10001,,,", "NumberOfEmployees", "not a number"),
    ("L3,Co,Software,2.5,1000,Open,,,,10001,,,", "NumberOfEmployees", "whole number"),
    ("L3,Co,Software,10,1.2.3,Open,,,,10001,,,", "AnnualRevenue", "not a number"),
    ("L3,Co,Software,10,-5,Open,,,,10001,,,", "AnnualRevenue", "negative"),
    ("L3,Co,Software,10,1000,Won,lots,,,10001,,,", "Amount", "not a number"),
    ("L3,Co,Software,10,1000,Open,,yesterday,,10001,,,", "CreatedDate", "not a date"),
    ("L3,Co,Software,10,1000,Lost,,,2024-13-45,10001,,,", "CloseDate", "not a date"),
    ("L3,Co,Software,10,1000,Open,,,,,north,-71,", "Latitude", "not a number"),
    ("L3,Co,Software,10,1000,Open,,,,,42,west,", "Longitude", "not a number"),
    ("L3,Co,Software,10,1000,Open,,,,,91,-71,", "Latitude", "out of range"),
    ("L3,Co,Software,10,1000,Open,,,,,42,-181,", "Longitude", "out of range"),
    ("L3,Co,Software,10,1000,Open,,,,,51.5,-0.12,", "Latitude", "outside the United States"),
    ("L3,Co,Software,10,1000,Open,,,,,42.3,,", "Longitude", "without a longitude"),
    ("L3,Co,Software,10,1000,Open,,,,00000,,,", "PostalCode", "not a known US ZIP"),
    ("L3,Co,Software,10,1000,Open,,,,ABCDE-1,,,", "PostalCode", "not a ZIP code"),
    ("L3,Co,Software,10,1000,Open,,,,,,,", "PostalCode", "no location"),
    ("L3,Co,Software,10,1000,Pending Review,,,,10001,,,", "Lead Status", "not open, won or lost"),
    ("L3,Co,Software,10,1000,,,,,10001,,,", "Lead Status", "status is empty"),
    (",Co,Software,10,1000,Open,,,,10001,,,", "Lead ID", "lead id is empty"),
    ("L1,Co,Software,10,1000,Open,,,,10001,,,", "Lead ID", "duplicate lead id 'L1' (first on line 2)"),
]


@pytest.mark.parametrize("bad_row,column,words", BAD_ROWS, ids=[f"{c}:{w}" for _, c, w in BAD_ROWS])
def test_bad_value_is_rejected_with_line_and_column(module_demo_store, tmp_path, bad_row, column, words):
    exc = rejected(module_demo_store, sf_file(tmp_path, bad_row, bad_at=3))
    hits = [p for p in exc.problems if p.row == 4 and p.column == column and words in p.message]
    assert hits, str(exc)
    assert hits[0].message.startswith(f"line 4, column '{column}'")
    assert "counting the header as line 1" in str(exc)


def test_score_out_of_range(module_demo_store, tmp_path):
    path = write(tmp_path, "Id,Status,Zip,Score\na,Open,10001,50\nb,Open,10001,101\nc,Open,10001,x\n")
    exc = rejected(module_demo_store, path)
    assert {(p.row, p.column) for p in exc.problems} == {(3, "Score"), (4, "Score")}


@pytest.mark.parametrize("header,missing", [
    ("Company,Status,Zip", "Lead ID"),
    ("Id,Company,Zip", "Status"),
    ("Id,Status,Company", "location"),
    ("Id,Status,Latitude", "Longitude"),
])
def test_missing_required_columns(module_demo_store, tmp_path, header, missing):
    path = write(tmp_path, header + "\n" + ",".join(["x"] * len(header.split(","))) + "\n")
    exc = rejected(module_demo_store, path)
    assert any(missing in p.message and p.row is None for p in exc.problems), str(exc)


def test_bad_mapping(module_demo_store, tmp_path):
    path = write(tmp_path, "Id,Status,Zip\na,Open,10001\n")
    exc = rejected(module_demo_store, path, mapping={"lead_id": "Nope"})
    assert exc.problems[0].column == "Nope" and "not in the file" in exc.problems[0].message
    exc = rejected(module_demo_store, path, mapping={"colour": "Id"})
    assert "unknown field 'colour'" in exc.problems[0].message


def test_empty_and_header_only_files(module_demo_store, tmp_path):
    assert "empty" in str(rejected(module_demo_store, write(tmp_path, "", "empty.csv")))
    assert "empty" in str(rejected(module_demo_store, write(tmp_path, "\n\n", "blank.csv")))
    assert "no data rows" in str(rejected(module_demo_store, write(tmp_path, "Id,Status,Zip\n", "header.csv")))


def test_non_utf8_reports_byte_offset_and_line(module_demo_store, tmp_path):
    head = ("Id,Company,Status,Zip\n" + "".join(f"a{i},Co,Open,10001\n" for i in range(3))).encode()
    data = head + b"a9,Caf" + b"\xe9" + b",Open,10001\n"
    exc = rejected(module_demo_store, write(tmp_path, data))
    text = str(exc)
    assert "not UTF-8" in text and f"byte offset {len(head) + 6}" in text and "line 5" in text
    assert exc.problems[0].row == 5
    # Past the first megabyte too (found by DuckDB, located exactly afterwards).
    rows = "".join(f"b{i},Co,Open,10001\n" for i in range(80_000))
    big = ("Id,Company,Status,Zip\n" + rows).encode() + b"zz,\xff\xfe,Open,10001\n"
    exc = rejected(module_demo_store, write(tmp_path, big, "big.csv"))
    assert "not UTF-8" in str(exc) and f"byte offset {len(big) - 14:,}" in str(exc) and "line 80002" in str(exc)


def test_utf16_file_is_not_utf8(module_demo_store, tmp_path):
    exc = rejected(module_demo_store, write(tmp_path, "Id,Status,Zip\na,Open,10001\n".encode("utf-16")))
    assert "not UTF-8" in str(exc)


def test_ragged_rows_are_reported_by_line(module_demo_store, tmp_path):
    path = write(tmp_path, "Id,Status,Zip\na,Open,10001\nb,Open\nc,Open,10001,extra\nd,Open,10001\n")
    exc = rejected(module_demo_store, path)
    assert [p.row for p in exc.problems if p.row] == [3, 4], str(exc)


def test_line_numbers_count_multiline_values_and_blank_lines(module_demo_store, tmp_path):
    path = write(tmp_path, 'Id,Company,Status,Zip\na,"two\nlines",Open,10001\n\nb,Co,Open,ZZZZZ\n')
    exc = rejected(module_demo_store, path)
    assert exc.problems[0].row == 5 and exc.problems[0].message.startswith("line 5, column 'Zip'"), str(exc)


def test_many_bad_rows_are_capped_with_a_total(module_demo_store, tmp_path):
    rows = "".join(f"a{i},Open,{'99999' if i % 2 else '10001'}\n" for i in range(100))
    exc = rejected(module_demo_store, write(tmp_path, "Id,Status,Zip\n" + rows))
    listed = [p for p in exc.problems if p.row is not None]
    assert len(listed) == MAX_ROWS_PER_PROBLEM and [p.row for p in listed[:2]] == [3, 5]
    assert any(p.row is None and "50 rows in total" in p.message for p in exc.problems), str(exc)


def test_parquet_errors_use_row_numbers(module_demo_store, tmp_path):
    path = tmp_path / "bad.parquet"
    pd.DataFrame({"Id": ["a", "b"], "Status": ["Open", "Open"], "Latitude": [40.0, 140.0],
                  "Longitude": [-74.0, -74.0]}).to_parquet(path)
    exc = rejected(module_demo_store, path)
    assert exc.problems[0].row == 2 and exc.problems[0].message.startswith("row 2, column 'Latitude'")


def test_rejections_left_the_demo_database_as_built(module_demo_store, demo_db_path):
    import duckdb

    pristine = duckdb.connect(str(demo_db_path), read_only=True)
    try:
        expected = pristine.execute(
            "SELECT count(*), sum(hash(lead_id, status, lat, lon, zip, cell, name, score, expected_value)) FROM leads"
        ).fetchall()[0]
    finally:
        pristine.close()
    assert snapshot(module_demo_store) == (expected, 0)


# ---------------------------------------------------------------------------
# Property: random mixtures of valid and invalid rows

VALID = st.sampled_from([
    "{id},Co,Open,10001,,", "{id},Co,Closed Won,2139,,", "{id},<b>x</b>,Lost,,40.7,-74.0",
    "{id},Co,New,02139-4307,42.36,-71.1", '{id},"A, B",Qualified,94103,,',
])
INVALID = st.sampled_from([
    "{id},Co,Open,00000,,", "{id},Co,Huh,10001,,", "{id},Co,Open,,,", "{id},Co,Open,,95,0",
    "{id},Co,Open,,40.7,", "{id},Co,,10001,,", ",Co,Open,10001,,",
])


@pytest.fixture(scope="module")
def empty_db_path(tmp_path_factory):
    """An empty database (schema and reference geography), closed: each example imports into a copy."""
    path = tmp_path_factory.mktemp("prop") / "prop.duckdb"
    Store(path).close()
    return path


@settings(max_examples=15, deadline=None)
@given(rows=st.lists(st.tuples(st.booleans(), VALID, INVALID), min_size=1, max_size=12))
def test_import_succeeds_iff_every_row_is_valid(empty_db_path, tmp_path_factory, rows):
    folder = tmp_path_factory.mktemp("p")
    shutil.copy(empty_db_path, folder / "prop.duckdb")
    store = Store(folder / "prop.duckdb")
    try:
        lines = [(inv if bad else ok).format(id=f"lead-{i}") for i, (bad, ok, inv) in enumerate(rows)]
        path = folder / "mix.csv"
        path.write_text("Id,Company,Status,Zip,lat,lon\n" + "\n".join(lines) + "\n")
        before = snapshot(store)
        expect_bad = {i + 2 for i, (bad, _, _) in enumerate(rows) if bad}
        if expect_bad:
            with pytest.raises(ImportRejected) as info:
                import_file(store, path)
            assert snapshot(store) == before
            assert {p.row for p in info.value.problems if p.row is not None} == expect_bad
        else:
            result = import_file(store, path)
            assert result["inserted"] == len(rows)
            assert snapshot(store)[0][0] == before[0][0] + len(rows)
    finally:
        store.close()


# ---------------------------------------------------------------------------
# Command line


def test_cli_import(tmp_path, capsys):
    db = tmp_path / "cli.duckdb"
    good = write(tmp_path, "Id,Company,Status,Zip\nc1,Acme,Open,10001\n", "good.csv")
    bad = write(tmp_path, "Id,Company,Status,Zip\nc2,Acme,Open,10001\nc3,Bolt,Open,1\n", "bad.csv")
    ok = run_cli(capsys, "import", str(good), db=db)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.strip().splitlines()[-1])["inserted"] == 1
    no = run_cli(capsys, "import", str(bad), db=db)
    assert no.returncode == 2
    assert "line 3, column 'Zip'" in no.stderr and "database unchanged" in no.stderr
    store = Store(db)
    try:
        assert store.scalar("SELECT count(*) FROM leads") == 1
    finally:
        store.close()
