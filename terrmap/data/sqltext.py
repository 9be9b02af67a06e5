"""Quoting for SQL text built in Python: identifiers and string literals (DuckDB's rules)."""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """A column or table name as a quoted identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def sql_literal(value: str) -> str:
    """A string literal."""
    return "'" + str(value).replace("'", "''") + "'"
