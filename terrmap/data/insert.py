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
