"""Region stats from DuckDB against an independent pandas + h3-py computation."""


import h3
import numpy as np
import pandas as pd
import pytest

from terrmap.data.stats import STAT_COLUMNS, region_stats
from terrmap.geo import parse_layer
from terrmap.plan import assignment_for_layer, get_plan
from tests.cli_support import run_cli


def _pandas_stats(leads: pd.DataFrame, region: pd.Series) -> pd.DataFrame:
    df = leads.assign(region_id=region.to_numpy())
    is_open = df.status == "open"
    is_won = df.status == "won"
    df["is_open"] = is_open.astype(int)
    df["is_won"] = is_won.astype(int)
    df["won_value"] = df.deal_value.where(is_won, 0.0)
    df["pot"] = np.where(is_open, df.score * df.expected_value, 0.0)
    df["open_score"] = df.score.where(is_open)
    g = df.groupby("region_id")
    out = pd.DataFrame({
        "leads": g.size(),
        "open_leads": g["is_open"].sum(),
        "customers": g["is_won"].sum(),
        "won_revenue": g["won_value"].sum(),
        "avg_score": g["open_score"].mean(),
        "potential": g["pot"].sum(),
    })
    return out.sort_index()


@pytest.fixture(scope="module")
def leads_df(demo_db_path):
    import duckdb

    con = duckdb.connect(str(demo_db_path), read_only=True)
    df = con.sql("SELECT lead_id, status, deal_value, score, expected_value, lat, lon, zip, cell FROM leads").df()
    con.close()
    return df


@pytest.mark.parametrize("res", [3, 5, 6, 8, 9])
def test_h3_region_stats_match_pandas(demo_store, leads_df, res):
    ours = region_stats(demo_store, parse_layer(f"h3:{res}")).set_index("region_id").sort_index()
    region = leads_df.cell.map(lambda c: h3.cell_to_parent(h3.int_to_str(int(c)), res))
    # Independent check of the stored base cell too.
    sample = leads_df.sample(200, random_state=0)
    assert all(h3.latlng_to_cell(a, b, 9) == h3.int_to_str(int(c)) for a, b, c in zip(sample.lat, sample.lon, sample.cell))
    theirs = _pandas_stats(leads_df, region)
    assert list(ours.index) == list(theirs.index)
    pd.testing.assert_frame_equal(ours[STAT_COLUMNS], theirs[STAT_COLUMNS], check_dtype=False, rtol=1e-9)


def test_zip_region_stats_match_pandas(demo_store, leads_df):
    ours = region_stats(demo_store, parse_layer("zip")).set_index("region_id").sort_index()
    theirs = _pandas_stats(leads_df, leads_df.zip)
    pd.testing.assert_frame_equal(ours[STAT_COLUMNS], theirs[STAT_COLUMNS], check_dtype=False, rtol=1e-9)
    assert ours.leads.sum() == len(leads_df)


def test_plan_on_another_layer_maps_by_majority_of_potential(demo_store, leads_df):
    plan = get_plan(demo_store)
    assert plan.layer == "zip"
    mapped = assignment_for_layer(demo_store, plan, parse_layer("h3:5")).set_index("region_id").territory_id
    zip_terr = assignment_for_layer(demo_store, plan, parse_layer("zip")).set_index("region_id").territory_id
    df = leads_df.assign(
        cell5=leads_df.cell.map(lambda c: h3.cell_to_parent(h3.int_to_str(int(c)), 5)),
        terr=leads_df.zip.map(zip_terr),
        w=np.where(leads_df.status == "open", leads_df.score * leads_df.expected_value, 0) + 1e-9,
    )
    weights = df.groupby(["cell5", "terr"]).w.sum().reset_index()
    best = weights.sort_values("w").groupby("cell5").tail(1).set_index("cell5").terr
    assert set(best.index) <= set(mapped.index)  # and the cells without leads (tests/test_complete_plans.py)
    assert (mapped.reindex(best.index) == best).mean() > 0.999


def test_regions_cli_writes_the_documented_columns(demo_db_path, tmp_path, capsys):
    import shutil

    db = tmp_path / "d.duckdb"
    shutil.copy(demo_db_path, db)
    out = tmp_path / "r.csv"
    assert run_cli(capsys, "regions", "--layer", "h3:5", "--out", out, db=db).returncode == 0
    df = pd.read_csv(out)
    assert list(df.columns) == ["region_id", "leads", "open_leads", "customers", "won_revenue", "avg_score",
                                "potential", "territory"]
    assert df.leads.sum() == 20_000
    assert df.region_id.map(lambda r: h3.is_valid_cell(r) and h3.get_resolution(r) == 5).all()
    assert df.territory.notna().mean() > 0.99
    bad = run_cli(capsys, "regions", "--layer", "h3:42", "--out", out, db=db)
    assert bad.returncode != 0 and "unknown layer" in bad.stderr
