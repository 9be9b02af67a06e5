"""Scenarios as stored: the plan rows the lifecycle (clone, rename, delete, publish) and the history touch.

The rules (names unique case-insensitively, the published plan deleted last, a restore saved as a
new version) live in :mod:`terrmap.plan.scenarios`; these functions read and write rows and return
DataFrames or plain values. ``con`` is a store cursor or an open transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
import pandas as pd

if TYPE_CHECKING:
    from terrmap.data.store import Store

# Rows of a plan a clone copies (the history and the change log start afresh).
CLONED_TABLES = ["territories", "plan_assignments", "hierarchy_nodes", "account_pins", "overlays"]


def plan_named(con: duckdb.DuckDBPyConnection, name: str, other_than: int | None = None) -> str | None:
    """The stored name of another plan called ``name`` (case-insensitive), None when there is none."""
    rows = con.execute(
        "SELECT name FROM plans WHERE lower(name) = lower(?) AND plan_id IS DISTINCT FROM ?", [name, other_than]
    ).fetchall()
    return rows[0][0] if rows else None


def plan_row(con: duckdb.DuckDBPyConnection, plan_id: int) -> tuple | None:
    """(name, layer, version, published, description) of a plan, None when it does not exist."""
    rows = con.execute("SELECT name, layer, version, published, description FROM plans WHERE plan_id = ?",
                       [plan_id]).fetchall()
    return rows[0] if rows else None


def plan_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every table with a plan_id column: all of them hold rows of a plan (found, not listed, so a
    table added by a later migration is cloned/deleted too)."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.columns c JOIN information_schema.tables t USING "
        "(table_catalog, table_schema, table_name) WHERE c.column_name = 'plan_id' AND t.table_type = 'BASE TABLE' "
        "AND c.table_schema = current_schema() ORDER BY table_name"
    ).fetchall()
    return [r[0] for r in rows]


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = current_schema() "
        "ORDER BY ordinal_position", [table]).fetchall()]


def copy_plan(con: duckdb.DuckDBPyConnection, plan_id: int, name: str, layer: str, description: str | None) -> int:
    """A new unpublished plan ``name`` with the rows of :data:`CLONED_TABLES` of ``plan_id``; returns its id."""
    new_id = con.execute(
        "INSERT INTO plans (name, layer, published, description, area) "
        "SELECT ?, ?, false, ?, area FROM plans WHERE plan_id = ? RETURNING plan_id",
        [name, layer, description, plan_id],
    ).fetchall()[0][0]
    for table in CLONED_TABLES:
        cols = [c for c in table_columns(con, table) if c != "plan_id"]
        con.execute(f"INSERT INTO {table} (plan_id, {', '.join(cols)}) SELECT ?, {', '.join(cols)} "
                    f"FROM {table} WHERE plan_id = ?", [new_id, plan_id])
    return new_id


def set_plan_name(con: duckdb.DuckDBPyConnection, plan_id: int, name: str) -> None:
    con.execute("UPDATE plans SET name = ?, updated_at = current_timestamp WHERE plan_id = ?", [name, plan_id])


def count_other_plans(con: duckdb.DuckDBPyConnection, plan_id: int) -> int:
    return int(con.execute("SELECT count(*) FROM plans WHERE plan_id <> ?", [plan_id]).fetchall()[0][0])


def delete_plan_rows(con: duckdb.DuckDBPyConnection, plan_id: int) -> int:
    """Remove every row of the plan from every plan table; returns the number of rows removed."""
    removed = 0
    for table in plan_tables(con):
        removed += con.execute(f"DELETE FROM {table} WHERE plan_id = ?", [plan_id]).fetchall()[0][0]
    return int(removed)


def set_published(con: duckdb.DuckDBPyConnection, plan_id: int) -> None:
    """Make ``plan_id`` the published plan, and no other."""
    con.execute("UPDATE plans SET published = (plan_id = ?)", [plan_id])


def plan_history(store: Store, plan_id: int) -> pd.DataFrame:
    """Every recorded version, newest first: version, saved_at, author, note, regions_changed
    (regions whose territory differs from the previous recorded version; NA for the first)."""
    return store.cursor().execute(
        """
        WITH v AS (
            SELECT version, lag(version) OVER (ORDER BY version) AS prev, saved_at, author, note
            FROM plan_versions WHERE plan_id = $plan
        ),
        a AS (SELECT version, region_id, territory_id FROM plan_version_assignments WHERE plan_id = $plan),
        both_sides AS (
            SELECT v.version, a.region_id, a.territory_id FROM v JOIN a ON a.version = v.version WHERE v.prev IS NOT NULL
            UNION ALL
            SELECT v.version, a.region_id, a.territory_id FROM v JOIN a ON a.version = v.prev
        ),
        changed AS (
            -- a region on one side only, or on both in different territories
            SELECT version, count(*) AS n FROM (
                SELECT version, region_id FROM both_sides GROUP BY version, region_id
                HAVING count(*) = 1 OR count(DISTINCT coalesce(territory_id, -1)) > 1
            ) GROUP BY version
        )
        SELECT v.version, v.saved_at, v.author, v.note,
               CASE WHEN v.prev IS NULL THEN NULL ELSE coalesce(c.n, 0) END AS regions_changed
        FROM v LEFT JOIN changed c USING (version)
        ORDER BY v.version DESC
        """,
        {"plan": plan_id},
    ).df().astype({"regions_changed": "Int64"})


def version_territories_json(store: Store, plan_id: int, version: int) -> str | None:
    """The territories of a recorded version as saved (JSON records), None when it was not recorded."""
    rows = store.cursor().execute("SELECT territories FROM plan_versions WHERE plan_id = ? AND version = ?",
                                  [plan_id, int(version)]).fetchall()
    return rows[0][0] if rows else None


def version_assignment(store: Store, plan_id: int, version: int) -> pd.DataFrame:
    """region_id, territory_id, locked of a recorded version, by region."""
    return store.cursor().execute(
        "SELECT region_id, territory_id, locked FROM plan_version_assignments WHERE plan_id = ? AND version = ? "
        "ORDER BY region_id", [plan_id, int(version)]).df()


def territory_targets(store: Store, plan_id: int) -> pd.DataFrame:
    """territory_id, target (NaN: none set) of the plan's territories."""
    return store.cursor().execute("SELECT territory_id, target FROM territories WHERE plan_id = ?", [plan_id]).df()


def scenario_rows(store: Store) -> pd.DataFrame:
    """Every plan, published first: plan_id, name, layer, version, published, updated_at, description,
    territories, regions (assigned), author (of the last recorded version, None when it was saved without a
    name; plans without history: of the last change)."""
    return store.cursor().execute(
        """
        SELECT p.plan_id, p.name, p.layer, p.version, p.published, p.updated_at, p.description,
               (SELECT count(*) FROM territories t WHERE t.plan_id = p.plan_id) AS territories,
               (SELECT count(*) FROM plan_assignments a WHERE a.plan_id = p.plan_id AND a.territory_id IS NOT NULL)
                   AS regions,
               -- The latest version's author, NULL for an anonymous save (arg_max would skip it and name the
               -- saver before); plans from before history was kept: the last change's.
               CASE WHEN EXISTS (SELECT 1 FROM plan_versions v WHERE v.plan_id = p.plan_id)
                    THEN (SELECT v.author FROM plan_versions v WHERE v.plan_id = p.plan_id
                          ORDER BY v.version DESC LIMIT 1)
                    ELSE (SELECT c.author FROM plan_changes c WHERE c.plan_id = p.plan_id
                          ORDER BY c.change_id DESC LIMIT 1) END AS author
        FROM plans p ORDER BY p.published DESC, p.plan_id
        """
    ).df()
