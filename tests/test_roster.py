"""Issue 15.1: the team roster: import (CRM/HR column names, all or nothing, row and column named), export and
re-import, and the demo's team."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from terrmap.data import team
from terrmap.data.store import Store
from terrmap.geo.distance import haversine_km
from terrmap.io.problems import ImportRejected
from terrmap.io.roster import ROLES, export_roster, import_roster, roster_table, save_roster_table
from tests.cli_support import run_cli
from tests.db_support import built_once

SALESFORCE_USERS = (
    "Id,FirstName,LastName,Email,ManagerId,PostalCode,Sales Motion,Industries,Languages,Hours per week,Selling time,"
    "Annual Quota\n"
    """005A1,Ana,Ruiz,ana@example.com,,75201,Field Sales,Software; Healthcare,English; Spanish,40,65%,"$1,500,000"
005A2,Bo,Lee,bo@example.com,005A1,10001-2345,inside,Retail,,32,0.7,900000
005A3,Cy,Okafor,,005A1,60601,hybrid,,,,,
""")


@pytest.fixture
def store(tmp_path_factory, tmp_path):
    built = built_once(tmp_path_factory, "roster-empty.duckdb", lambda p: Store(p).close())
    path = tmp_path / "r.duckdb"
    shutil.copy(built, path)
    s = Store(path)
    yield s
    s.close()


def _write(tmp_path, text: str, name: str = "reps.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _reps_state(store) -> list[tuple]:
    return store.cursor().execute("SELECT * FROM reps ORDER BY rep_id").fetchall()


def test_a_salesforce_user_export_comes_in_with_every_field(store, tmp_path):
    result = import_roster(store, _write(tmp_path, SALESFORCE_USERS))
    assert result["added"] == 3 and result["updated"] == 0
    got = team.roster(store).set_index("rep_id")
    raw = pd.read_csv(tmp_path / "reps.csv", dtype=str).set_index("Id")
    for rep_id, row in raw.iterrows():
        assert got.loc[rep_id, "name"] == f"{row.FirstName} {row.LastName}"
        manager = got.loc[rep_id, "manager"]
        assert manager == row.ManagerId if isinstance(row.ManagerId, str) else pd.isna(manager)
    assert got.loc["005A1", "role"] == "field" and got.loc["005A2", "role"] == "inside"
    assert list(got.loc["005A1", "industries"]) == ["Software", "Healthcare"]
    assert list(got.loc["005A1", "languages"]) == ["English", "Spanish"]
    assert got.loc["005A1", "selling_share"] == pytest.approx(0.65)
    assert got.loc["005A1", "quota"] == 1_500_000 and got.loc["005A2", "capacity_hours"] == 32
    assert got.loc["005A3", "capacity_hours"] == 40 and got.loc["005A3", "selling_share"] == 0.6  # defaults
    assert got.loc["005A2", "home_zip"] == "10001"  # ZIP+4 read as its ZIP
    # the home is the ZIP's location (the reference's coordinates, independently looked up)
    ref = store.cursor().execute("SELECT lat, lon FROM zips WHERE zip = '75201'").fetchone()
    assert haversine_km(got.loc["005A1", "home_lat"], got.loc["005A1", "home_lon"], *ref) < 0.01


@pytest.mark.parametrize("cell_line, column, fragment", [
    ("R1,Ana,,99999,field,40", "zip", "line 2: unknown ZIP '99999' in column 'zip'"),
    ("R1,Ana,,75201,pilot,40", "role", "line 2: role 'pilot' is not one of field, inside, hybrid"),
    ("R1,Ana,,75201,field,-5", "capacity", "line 2: capacity '-5' is not a number of hours per week"),
    ("R1,Ana,,75201,field,lots", "capacity", "line 2: capacity 'lots' is not a number"),
    ("R1,Ana,BOSS,75201,field,40", "manager", "line 2: manager 'BOSS' is neither a rep in this file"),
    (",Ana,,75201,field,40", "rep_id", "line 2: no rep id in column 'rep_id'"),
])
def test_a_bad_row_is_named_by_line_and_column_and_nothing_is_written(store, tmp_path, cell_line, column, fragment):
    import_roster(store, _write(tmp_path, "rep_id,name\nR0,Zed\n", "first.csv"))
    before = _reps_state(store)
    path = _write(tmp_path, f"rep_id,name,manager,zip,role,capacity\n{cell_line}\nR2,Bo,,10001,field,40\n")
    with pytest.raises(ImportRejected) as info:
        import_roster(store, path)
    messages = [p.message for p in info.value.problems]
    assert any(fragment in m for m in messages), messages
    assert all(p.row == 2 for p in info.value.problems if p.row is not None)
    assert _reps_state(store) == before  # all or nothing


def test_duplicate_ids_name_both_lines(store, tmp_path):
    with pytest.raises(ImportRejected) as info:
        import_roster(store, _write(tmp_path, "rep_id,name\nR1,Ana\nR2,Bo\nR1,Cy\n"))
    assert [p.message for p in info.value.problems] == ["line 4: rep id 'R1' is already on line 2"]


def test_a_file_without_id_or_name_columns_lists_the_columns_it_has(store, tmp_path):
    with pytest.raises(ImportRejected) as info:
        import_roster(store, _write(tmp_path, "who,where\nAna,Dallas\n"))
    text = str(info.value)
    assert "no rep id column" in text and "no name column" in text and "found: who, where" in text


def test_export_then_import_gives_the_same_roster_formula_looking_names_included(store, tmp_path):
    import_roster(store, _write(tmp_path, SALESFORCE_USERS.replace("Cy,Okafor", "=HYPERLINK(1),Okafor")))
    before = team.roster(store)
    export_roster(store, tmp_path / "out.csv")
    assert "'=HYPERLINK(1) Okafor" in (tmp_path / "out.csv").read_text()  # guarded for spreadsheets
    store.cursor().execute("DELETE FROM reps")
    import_roster(store, tmp_path / "out.csv")
    pd.testing.assert_frame_equal(team.roster(store), before)


def test_a_parquet_roster_and_an_update_by_id(store, tmp_path):
    import_roster(store, _write(tmp_path, SALESFORCE_USERS))
    pd.DataFrame({"Employee ID": ["005A2"], "Full Name": ["Bo Lee-Smith"], "Reports To": ["005A1"],
                  "Capacity": [36.0]}).to_parquet(tmp_path / "hr.parquet")
    result = import_roster(store, tmp_path / "hr.parquet")
    assert result["updated"] == 1 and result["added"] == 0
    got = team.roster(store).set_index("rep_id")
    assert got.loc["005A2", "name"] == "Bo Lee-Smith" and got.loc["005A2", "capacity_hours"] == 36
    assert len(got) == 3


def test_cli_imports_and_a_missing_file_leaves_no_database(tmp_path, capsys):
    db = tmp_path / "new.duckdb"
    res = run_cli(capsys, "import-reps", tmp_path / "nope.csv", db=db)
    assert res.returncode == 2 and "no such file" in res.stderr and not db.exists()
    bad = _write(tmp_path, "rep_id,name,capacity\nR1,Ana,-1\n")
    res = run_cli(capsys, "import-reps", bad, db=db)
    assert res.returncode == 2 and "line 2: capacity '-1'" in res.stderr and "database unchanged" in res.stderr


def test_the_demo_team_has_managers_roles_skills_and_capacities(demo_store):
    roster = team.roster(demo_store).set_index("rep_id")
    field_reps = roster.drop(index=[r for r in roster.index if not r.startswith("R")])
    assert set(field_reps["role"]) == {"field", "hybrid", "inside"}
    managers = set(field_reps["manager"].dropna())
    assert managers and managers <= set(field_reps.index)
    assert field_reps.loc[sorted(managers), "manager"].isna().all()  # team leads report to nobody here
    assert all(len(x) >= 2 for x in field_reps["industries"])
    assert field_reps["capacity_hours"].between(30, 40).all() and field_reps["quota"].gt(0).all()
    assert any("Spanish" in list(x) for x in field_reps["languages"])



def test_team_page_shows_the_roster(demo_store, monkeypatch):
    """The Team page (AppTest): the roster's numbers, computed independently from the table."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TERRMAP_DB", str(demo_store.path))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "pages" / "team.py"), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    roster = team.roster(demo_store)
    assert metrics["Reps"] == f"{len(roster):,}"
    assert metrics["Selling hours a week"] == f"{(roster.capacity_hours * roster.selling_share).sum():,.0f}"
    assert metrics["Field · hybrid · inside"] == " · ".join(str((roster.role == r).sum()) for r in ROLES)
    lines = at.dataframe[-1].value  # reporting lines: one row per manager, none for "no manager"
    names = dict(zip(roster.rep_id, roster.name))
    assert sorted(lines["Manager"]) == sorted(names[m] for m in roster.manager.dropna().unique())


def test_a_table_edit_goes_through_the_file_checks(demo_store):
    """What the Team page's Save does: a wrong cell is refused with its row named, nothing saved; a right one is."""
    table = roster_table(demo_store)
    before = _reps_state(demo_store)
    bad = table.copy()
    bad.loc[3, "capacity_hours"] = -4
    bad.loc[5, "manager"] = "NOBODY"
    with pytest.raises(ImportRejected) as info:
        save_roster_table(demo_store, bad)
    assert {(p.row, p.message.split(":")[0]) for p in info.value.problems} == {(4, "row 4"), (6, "row 6")}
    assert _reps_state(demo_store) == before
    good = table.copy()
    good.loc[3, "capacity_hours"] = 30
    good.loc[3, "industries"] = "Retail; Logistics"
    assert save_roster_table(demo_store, good) == {"reps": len(table), "added": 0, "updated": len(table)}
    got = team.roster(demo_store).set_index("rep_id").loc[table.loc[3, "rep_id"]]
    assert got["capacity_hours"] == 30 and list(got["industries"]) == ["Retail", "Logistics"]
