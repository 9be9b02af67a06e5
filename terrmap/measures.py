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
from decimal import ROUND_HALF_UP, Decimal
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
    """$950, $12.3K, $4.56M, $1.20B: three significant digits, halves rounded up, and a value that rounds
    up to 1,000 of one unit is written in the next ($1.00M, not $1,000K)."""
    if _missing(value):
        return MISSING
    v = float(value)
    if not math.isfinite(v):
        return MISSING
    sign = "-" if v < 0 else ""
    a = abs(v)
    units = ((1.0, ""),) + tuple(reversed(MONEY_UNITS))
    i = max([j for j, (div, _) in enumerate(units) if a >= div], default=0)
    while True:
        div, suffix = units[i]
        x = a / div
        digits = 0 if div == 1 else _money_digits(x)
        rounded = _round_half_up(x, digits)
        if div != 1 and _money_digits(rounded) != digits:  # 9.996 -> 10.00 is written 10.0
            digits = _money_digits(rounded)
            rounded = _round_half_up(x, digits)
        if rounded < 1000 or i == len(units) - 1:
            return f"{sign}${rounded:,.{digits}f}{suffix}"
        i += 1


def _round_half_up(x: float, digits: int) -> float:
    # JavaScript's toFixed rounds the exact binary value half up; Decimal(x) is that exact value.
    return float(Decimal(x).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def fmt_pct(value, digits: int = 0) -> str:
    return MISSING if _missing(value) else f"{float(value) * 100:.{digits}f}%"


_FORMATTERS = {"int": fmt_int, "money": fmt_money, "pct": fmt_pct, "number": fmt_number}


def format_value(unit: Unit, value) -> str:
    return _FORMATTERS[unit](value)


def fmt_value(name: str, value) -> str:
    """``value`` of measure ``name`` as people read it."""
    return measure(name).fmt(value)


# Full figures for table columns (a table compares rows digit by digit; tooltips and cards use the short forms).
# A count on a chart axis or tooltip (d3-format): plain "," prints "2e+4" in Streamlit's charts.
CHART_COUNT_FORMAT = ",.0f"

_TABLE_FORMATS = {"int": "{:,.0f}", "money": "${:,.0f}", "pct": "{:.1f}%", "number": "{:,.1f}"}


def table_format(unit: Unit, signed: bool = False) -> str:
    """A ``str.format`` pattern for a table column of ``unit`` (``signed``: differences, with + or -).
    pct columns hold percent values (x100)."""
    pattern = _TABLE_FORMATS[unit]
    if signed:
        pattern = pattern.replace("{:", "{:+")
        if unit == "money":
            pattern = pattern.replace("$", "")  # "+$1,200" reads oddly; the column title says it is money
    return pattern


def formats_js() -> str:
    """``money(v)`` in JavaScript, the same rule as :func:`fmt_money` (generated from MONEY_UNITS).

    Expects ``nf`` (an ``Intl.NumberFormat('en-US')``) in scope.
    """
    units = json.dumps([[1, ""]] + [[d, s] for d, s in reversed(MONEY_UNITS)])
    return (
        "function money(v) {\n"
        f"    var a = Math.abs(v), s = v < 0 ? '-' : '', u = {units}, i = 0;\n"
        "    function digits(x) { return x < 10 ? 2 : x < 100 ? 1 : 0; }\n"
        "    while (i + 1 < u.length && a >= u[i + 1][0]) i++;\n"
        "    for (;;) {\n"
        "        var x = a / u[i][0], d = u[i][0] === 1 ? 0 : digits(x), r = Number(x.toFixed(d));\n"
        "        if (u[i][0] !== 1 && digits(r) !== d) { d = digits(r); r = Number(x.toFixed(d)); }\n"
        "        if (r < 1000 || i === u.length - 1) {\n"
        "            return s + '$' + (d === 0 ? nf.format(r) : r.toFixed(d)) + u[i][1];\n"
        "        }\n"
        "        i++;\n"
        "    }\n"
        "}\n"
    )
