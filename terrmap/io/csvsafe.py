"""CSV files people open in a spreadsheet: text that would run as a formula is kept as text.

A cell starting with ``= + - @`` (or a tab or carriage return, which some spreadsheets strip before
reading a formula) gets a leading apostrophe (OWASP's advice against CSV injection); numbers are never
formulas and are left alone. Our imports undo the guard, so an export re-imported gives the same text.
"""

from __future__ import annotations

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def guard_cell(value):
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def unguard_cell(text: str) -> str:
    """``'=x`` -> ``=x``: undo :func:`guard_cell` on a cell read back from one of our files."""
    return text[1:] if len(text) > 1 and text[0] == "'" and text[1:].startswith(FORMULA_START) else text


def guard_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with every text cell guarded."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(guard_cell).astype(object)
    return out
