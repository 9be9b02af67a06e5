"""The team roster's tables: reps with manager, role, skills, capacity and quota (issue 15)."""

from __future__ import annotations

import pandas as pd

from terrmap.data.store import Store

ROSTER_COLUMNS = ("rep_id", "name", "email", "home_zip", "home_lat", "home_lon", "manager", "role", "industries",
                  "segments", "products", "languages", "capacity_hours", "selling_share", "quota")


def rep_ids(store: Store) -> list[str]:
    return [r[0] for r in store.cursor().execute("SELECT rep_id FROM reps").fetchall()]


def zip_locations(store: Store) -> dict[str, tuple[float, float]]:
    """Every located ZIP of the reference (any type: a rep may live at a PO-box ZIP) -> (lat, lon)."""
    rows = store.cursor().execute("SELECT zip, lat, lon FROM zips WHERE lat IS NOT NULL AND lon IS NOT NULL")
    return {z: (lat, lon) for z, lat, lon in rows.fetchall()}


def roster(store: Store) -> pd.DataFrame:
    """Every rep, in the roster's columns, by id."""
    return store.cursor().execute(f"SELECT {', '.join(ROSTER_COLUMNS)} FROM reps ORDER BY rep_id").df()


def upsert_reps(store: Store, reps: pd.DataFrame) -> None:
    """Add or update (by id) every rep of ``reps`` (the roster's columns) in one transaction; the home metro of
    an updated rep is kept."""
    cols = ", ".join(ROSTER_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in ROSTER_COLUMNS if c != "rep_id")
    with store.transaction() as tx:
        name = "_terrmap_roster"
        tx.register(name, reps[list(ROSTER_COLUMNS)])
        try:
            tx.execute(f"INSERT INTO reps ({cols}) SELECT {cols} FROM {name} "
                       f"ON CONFLICT (rep_id) DO UPDATE SET {updates}")
        finally:
            tx.unregister(name)

