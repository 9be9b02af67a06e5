"""Writing a DataFrame into a table: the frame is registered for one statement, then unregistered."""

from __future__ import annotations

import duckdb
import pandas as pd


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, columns: str = "*",
                 into: str = "") -> None:
    """``INSERT INTO table [(into)] SELECT columns FROM frame`` on ``con`` (a cursor or an open transaction)."""
    name = f"_terrmap_rows_{table}"
    con.register(name, frame)
    try:
        con.execute(f"INSERT INTO {table}{f' ({into})' if into else ''} SELECT {columns} FROM {name}")
    finally:
        con.unregister(name)


def replace_rows(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, columns: str, key: list[str],
                 scope: str = "true", params: list | None = None) -> None:
    """Make the rows of ``table`` that meet ``scope`` (a condition on its columns) exactly ``SELECT columns FROM
    frame`` (``columns``: every column of the table, in its order; ``params``: the values of the ``?`` of
    ``columns``, then of ``scope``), writing only the rows that differ. The rows are cast as an INSERT casts
    them, and duplicate keys fail as an INSERT of them fails.

    Why not DELETE then INSERT: DuckDB maintains a table's primary-key index at COMMIT, and deleting and
    re-inserting every row of a 30k-region plan (or of the country's ZIP polygons) costs 0.1-1 s there, where
    an edit or a ZCTA load changes a few hundred rows (written in milliseconds).
    """
    name, new = f"_terrmap_rows_{table}", f"_terrmap_new_{table}"
    params = list(params or [])
    n_select = columns.count("?")
    select_params, scope_params = params[:n_select], params[n_select:]
    con.register(name, frame)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {new} AS SELECT * FROM {table} LIMIT 0")
        con.execute(f"INSERT INTO {new} SELECT {columns} FROM {name}", select_params)
        keys = ", ".join(key)
        if con.execute(f"SELECT count(*) - count(DISTINCT ({keys})) FROM {new}").fetchall()[0][0]:
            # duplicate keys: written as before, so the same constraint error is raised
            con.execute(f"DELETE FROM {table} WHERE {scope}", scope_params)
            con.execute(f"INSERT INTO {table} SELECT * FROM {new}")
            return
        names = [r[0] for r in con.execute(f"DESCRIBE {new}").fetchall()]
        rest = [c for c in names if c not in key]
        on = " AND ".join(f"t.{k} = n.{k}" for k in key)
        con.execute(f"DELETE FROM {table} t WHERE {scope} AND NOT EXISTS (SELECT 1 FROM {new} n WHERE {on})",
                    scope_params)
        if rest:
            con.execute(f"UPDATE {table} t SET {', '.join(f'{c} = n.{c}' for c in rest)} FROM {new} n "
                        f"WHERE {on} AND ({' OR '.join(f't.{c} IS DISTINCT FROM n.{c}' for c in rest)})")
        con.execute(f"INSERT INTO {table} SELECT * FROM {new} n WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {on})")
    finally:
        try:
            con.execute(f"DROP TABLE IF EXISTS {new}")
        except duckdb.Error:  # the transaction failed: its rollback drops the table, and the error is the caller's
            pass
        con.unregister(name)
