"""The demo's own writes: generated leads (with their hidden propensity in ``demo_truth``) and its reps."""

from __future__ import annotations

import pandas as pd

from terrmap.data.insert import insert_frame
from terrmap.data.store import Store

_LEAD_COLUMNS = ("lead_id, name, industry, employees, annual_revenue, status, deal_value, created_at, closed_at, "
                 "postal_zip, zip, lat, lon, cell")


def create_truth_table(store: Store) -> None:
    """``demo_truth`` keeps each generated lead's true propensity; only quality tests read it."""
    store.cursor().execute("CREATE TABLE IF NOT EXISTS demo_truth (lead_id VARCHAR, propensity DOUBLE)")


def insert_leads(store: Store, frame: pd.DataFrame) -> None:
    """Insert generated leads (``frame`` has the leads columns plus ``propensity``) and their truth rows."""
    cur = store.cursor()
    insert_frame(cur, "leads", frame, _LEAD_COLUMNS, into=_LEAD_COLUMNS)
    insert_frame(cur, "demo_truth", frame, "lead_id, propensity")


def insert_reps(store: Store, reps: pd.DataFrame) -> None:
    """Insert ``reps`` (any of the reps table's columns, by name)."""
    cols = ", ".join(reps.columns)
    insert_frame(store.cursor(), "reps", reps, cols, into=cols)


def zip_states(store: Store) -> dict[str, str]:
    """ZIP → state, from the store's ZIP reference table."""
    return dict(store.cursor().execute("SELECT zip, state FROM zips").fetchall())
