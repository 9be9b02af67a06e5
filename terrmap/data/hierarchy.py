"""The territory hierarchy as stored: ``hierarchy_nodes`` rows and ``territories.parent``.

The rules a valid hierarchy follows, and the checks run inside each change's
transaction, live in :mod:`terrmap.plan.hierarchy`; these functions only read and
write rows. ``con`` is a store cursor or an open transaction.
"""

from __future__ import annotations

import duckdb
import pandas as pd


def node_rows(con: duckdb.DuckDBPyConnection, plan_id: int) -> pd.DataFrame:
    """The plan's nodes: node_id, name, level, parent, color (by node_id)."""
    return con.execute(
        "SELECT node_id, name, level, parent, color FROM hierarchy_nodes WHERE plan_id = ? ORDER BY node_id",
        [plan_id],
    ).df()


def node_row(con: duckdb.DuckDBPyConnection, plan_id: int, node_id: str) -> tuple | None:
    """(node_id, name, level, parent, color) of one node, None when it does not exist."""
    rows = con.execute("SELECT node_id, name, level, parent, color FROM hierarchy_nodes WHERE plan_id = ? AND node_id = ?",
                       [plan_id, node_id]).fetchall()
    return rows[0] if rows else None


def node_ids(con: duckdb.DuckDBPyConnection, plan_id: int) -> set[str]:
    return {r[0] for r in con.execute("SELECT node_id FROM hierarchy_nodes WHERE plan_id = ?", [plan_id]).fetchall()}


def node_colors(con: duckdb.DuckDBPyConnection, plan_id: int, level: str) -> list[tuple[str, bool]]:
    """(color, whether the node is of ``level``) for every node of the plan."""
    return con.execute("SELECT color, level = ? FROM hierarchy_nodes WHERE plan_id = ?", [level, plan_id]).fetchall()


def level_exists(con: duckdb.DuckDBPyConnection, plan_id: int, level: str) -> bool:
    return bool(con.execute("SELECT 1 FROM hierarchy_nodes WHERE plan_id = ? AND level = ?", [plan_id, level]).fetchall())


def territory_parents(con: duckdb.DuckDBPyConnection, plan_id: int) -> dict[int, str | None]:
    """territory_id -> the node it rolls up into directly (None: none)."""
    rows = con.execute("SELECT territory_id, parent FROM territories WHERE plan_id = ? ORDER BY territory_id",
                       [plan_id]).fetchall()
    return {int(t): p for t, p in rows}


def insert_node(con: duckdb.DuckDBPyConnection, plan_id: int, node_id: str, name: str, level: str,
                parent: str | None, color: str) -> None:
    con.execute("INSERT INTO hierarchy_nodes VALUES (?, ?, ?, ?, ?, ?)", [plan_id, node_id, name, level, parent, color])


def put_top_nodes_under(con: duckdb.DuckDBPyConnection, plan_id: int, node_id: str) -> None:
    """Every top-level node except ``node_id`` gets ``node_id`` as its parent."""
    con.execute("UPDATE hierarchy_nodes SET parent = ? WHERE plan_id = ? AND parent IS NULL AND node_id <> ?",
                [node_id, plan_id, node_id])


def set_node_name(con: duckdb.DuckDBPyConnection, plan_id: int, node_id: str, name: str) -> None:
    con.execute("UPDATE hierarchy_nodes SET name = ? WHERE plan_id = ? AND node_id = ?", [name, plan_id, node_id])


def set_level_name(con: duckdb.DuckDBPyConnection, plan_id: int, old: str, new: str) -> None:
    con.execute("UPDATE hierarchy_nodes SET level = ? WHERE plan_id = ? AND level = ?", [new, plan_id, old])


def set_node_parent(con: duckdb.DuckDBPyConnection, plan_id: int, node_id: str, parent: str | None) -> None:
    con.execute("UPDATE hierarchy_nodes SET parent = ? WHERE plan_id = ? AND node_id = ?", [parent, plan_id, node_id])


def set_node_color(con: duckdb.DuckDBPyConnection, plan_id: int, node_id: str, color: str) -> None:
    con.execute("UPDATE hierarchy_nodes SET color = ? WHERE plan_id = ? AND node_id = ?", [color, plan_id, node_id])


def delete_node(con: duckdb.DuckDBPyConnection, plan_id: int, node_id: str, parent: str | None) -> None:
    """Remove ``node_id``; its child nodes and territories move up to ``parent`` (its own parent)."""
    con.execute("UPDATE hierarchy_nodes SET parent = ? WHERE plan_id = ? AND parent = ?", [parent, plan_id, node_id])
    con.execute("UPDATE territories SET parent = ? WHERE plan_id = ? AND parent = ?", [parent, plan_id, node_id])
    con.execute("DELETE FROM hierarchy_nodes WHERE plan_id = ? AND node_id = ?", [plan_id, node_id])


def set_territory_parent(con: duckdb.DuckDBPyConnection, plan_id: int, territory_id: int, node_id: str | None) -> None:
    con.execute("UPDATE territories SET parent = ? WHERE plan_id = ? AND territory_id = ?",
                [node_id, plan_id, int(territory_id)])


def territory_parent_rows(con: duckdb.DuckDBPyConnection, plan_id: int) -> pd.DataFrame:
    """The plan's territories with their place in the hierarchy: territory_id, name, parent (by territory id)."""
    return con.execute(
        "SELECT territory_id, name, parent FROM territories WHERE plan_id = ? ORDER BY territory_id", [plan_id]
    ).df()
