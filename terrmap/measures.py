"""The measures terrmap counts per region and per territory: one registry, used everywhere.

A :class:`Measure` knows its name, the label and tooltip people read, its unit (how it is
formatted, in Python and in the map's JavaScript alike), whether it adds up across regions,
and how DuckDB computes it from leads. Region stats (:mod:`terrmap.data.stats`), the map,
the editor, the optimizer, scenarios and every page read it from here, so adding a measure
is one entry in :data:`MEASURES`.

Lead-level formulas (:data:`LEAD_POTENTIAL_SQL`) are written once, here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

Unit = Literal["int", "money", "pct", "number"]

# What an open lead is worth today: conversion probability x expected deal value.
LEAD_POTENTIAL_SQL = "CASE WHEN l.status = 'open' THEN coalesce(l.score * l.expected_value, 0) ELSE 0 END"

# A customer costs about three prospects' worth of a rep's time (account care, renewals).
WORKLOAD_CUSTOMER_WEIGHT = 3.0


@dataclass(frozen=True)
class Measure:
    name: str
    label: str
    unit: Unit
    help: str
    additive: bool  # a territory's value is the sum of its regions' values
    # Aggregate over the leads table aliased ``l``: for the base measures stored in lead_rollup.
    lead_sql: str | None = None
    # How a region's value follows from other columns (SQL over those column names), for
    # measures that are not stored: ratios (not additive) and weighted sums.
    derived_sql: str | None = None
    shown: bool = True  # False: internal tally (e.g. the numerator and denominator of a mean)

    def fmt(self, value) -> str:
        return format_value(self.unit, value)


_BASE = [
    Measure("leads", "Leads", "int", "all leads in the region", True, "count(*)"),
    Measure("open_leads", "Open leads", "int", "leads not yet won or lost", True,
            "count(*) FILTER (WHERE l.status = 'open')"),
    Measure("customers", "Customers", "int", "won leads", True, "count(*) FILTER (WHERE l.status = 'won')"),
    Measure("won_revenue", "Won revenue", "money", "sum of won deal values", True,
            "coalesce(sum(l.deal_value) FILTER (WHERE l.status = 'won'), 0)"),
    Measure("scored_open", "Scored open leads", "int", "open leads with a score", True,
            "count(l.score) FILTER (WHERE l.status = 'open')", shown=False),
    Measure("score_sum", "Sum of open scores", "number", "sum of the open leads' scores", True,
            "coalesce(sum(l.score) FILTER (WHERE l.status = 'open'), 0)", shown=False),
    Measure("potential", "Potential", "money", "sum over open leads of score x expected deal value", True,
            f"coalesce(sum({LEAD_POTENTIAL_SQL}), 0)"),
]
_DERIVED = [
    Measure("avg_score", "Avg score", "pct", "mean conversion probability of the open leads", False,
            derived_sql="score_sum / nullif(scored_open, 0)"),
    Measure("workload", "Workload", "number",
            f"leads + {WORKLOAD_CUSTOMER_WEIGHT:g} x customers (a customer takes about "
            f"{WORKLOAD_CUSTOMER_WEIGHT:g} prospects' worth of a rep's time)", True,
            derived_sql=f"leads + {WORKLOAD_CUSTOMER_WEIGHT!r} * customers"),
]

MEASURES: dict[str, Measure] = {m.name: m for m in _BASE + _DERIVED}

# What lead_rollup stores per (cell, zip), and what every layer's region stats sum.
ROLLUP_MEASURES = [m.name for m in _BASE]
# The per-region statistics shown on maps and tables, in display order.
STAT_COLUMNS = ["leads", "open_leads", "customers", "won_revenue", "avg_score", "potential"]
# What a territory can be balanced on (all additive).
BALANCE_MEASURES = ["potential", "leads", "customers", "open_leads", "won_revenue", "workload"]


def measure(name: str) -> Measure:
    try:
        return MEASURES[name]
    except KeyError:
        raise KeyError(f"unknown measure {name!r}: use {', '.join(m for m, x in MEASURES.items() if x.shown)}") from None


def label(name: str) -> str:
    return measure(name).label


def add_derived(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the derived measures (avg_score, workload) to a frame holding the base ones, in place."""
    frame["avg_score"] = frame["score_sum"] / frame["scored_open"].where(frame["scored_open"] > 0)
    frame["workload"] = frame["leads"] + WORKLOAD_CUSTOMER_WEIGHT * frame["customers"]
    return frame


# -- formatting: one definition, rendered in Python and in JavaScript ----------------------

MISSING = "\u2013"
# Money is written short for tooltips and KPI cards: $950, $12.3K, $4.56M, $1.20B.
MONEY_UNITS = ((1e9, "B"), (1e6, "M"), (1e3, "K"))


def _money_digits(x: float) -> int:
    return 2 if x < 10 else 1 if x < 100 else 0


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and math.isnan(value))


def fmt_int(value) -> str:
    return MISSING if _missing(value) else f"{int(round(float(value))):,}"


def fmt_number(value) -> str:
    if _missing(value):
        return MISSING
    v = float(value)
    return f"{v:,.0f}" if abs(v) >= 100 or v == int(v) else f"{v:,.1f}"


def fmt_money(value) -> str:
    """$950, $12.3K, $4.56M, $1.20B."""
    if _missing(value):
        return MISSING
    v = float(value)
    sign = "-" if v < 0 else ""
    v = abs(v)
    for div, suffix in MONEY_UNITS:
        if v >= div:
            x = v / div
            return f"{sign}${x:,.{_money_digits(x)}f}{suffix}"
    return f"{sign}${v:,.0f}"


def fmt_pct(value, digits: int = 0) -> str:
    return MISSING if _missing(value) else f"{float(value) * 100:.{digits}f}%"


_FORMATTERS = {"int": fmt_int, "money": fmt_money, "pct": fmt_pct, "number": fmt_number}


def format_value(unit: Unit, value) -> str:
    return _FORMATTERS[unit](value)


def fmt_value(name: str, value) -> str:
    """``value`` of measure ``name`` as people read it."""
    return measure(name).fmt(value)


def formats_js() -> str:
    """``money(v)`` in JavaScript, the same rule as :func:`fmt_money` (generated from MONEY_UNITS).

    Expects ``nf`` (an ``Intl.NumberFormat('en-US')``) in scope.
    """
    units = json.dumps([[d, s] for d, s in MONEY_UNITS])
    return (
        "function money(v) {\n"
        f"    var a = Math.abs(v), s = v < 0 ? '-' : '', u = {units};\n"
        "    for (var j = 0; j < u.length; j++) {\n"
        "        if (a >= u[j][0]) { var x = a / u[j][0];\n"
        "            return s + '$' + x.toFixed(x < 10 ? 2 : x < 100 ? 1 : 0) + u[j][1]; }\n"
        "    }\n"
        "    return s + '$' + nf.format(Math.round(a));\n"
        "}\n"
    )
