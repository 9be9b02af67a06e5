"""Colours of the map: fixed colours, colour validation, quantile classes of a measure, territory palette."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from terrmap.app.html_safe import esc, is_missing
from terrmap.measures import fmt_value
from terrmap.plan.colors import UNASSIGNED_COLOR, safe_color  # noqa: F401 (re-exported: colour validation lives in plan)

NO_DATA_COLOR = "#e4e6ea"
UNASSIGNED_LABEL = "Unassigned"

# ColorBrewer YlGnBu (sequential, colour-blind safe, prints well), without its near-white first class.
SEQUENTIAL = ["#edf8b1", "#c7e9b4", "#7fcdbb", "#41b6c4", "#1d91c0", "#225ea8", "#253494", "#081d58"]
LAND_COLOR = "#f7f8fa"  # the states (offline base layer); water is the map background (static/terrmap/map.css)

@dataclass
class Bins:
    """Quantile classes of a measure: class i holds ``lower[i] <= v <= upper[i]`` (actual values)."""

    measure: str
    edges: list[float]  # inner cut points, len = n_classes - 1; class = searchsorted(edges, v, 'right')
    lower: list[float]
    upper: list[float]
    counts: list[int]
    colors: list[str]
    missing: int = 0  # regions without a value (shown as "No data")

    @property
    def labels(self) -> list[str]:
        out = []
        for lo, hi in zip(self.lower, self.upper):
            a, b = fmt_value(self.measure, lo), fmt_value(self.measure, hi)
            out.append(a if a == b else f"{a} – {b}")
        return out

    def classify(self, values) -> np.ndarray:
        """Class index per value; -1 for missing."""
        v = np.asarray(values, dtype=float)
        idx = np.searchsorted(np.asarray(self.edges, dtype=float), v, side="right")
        return np.where(np.isnan(v), -1, idx)


def spread_colors(n: int, palette: Sequence[str] = SEQUENTIAL) -> list[str]:
    """``n`` colours spread evenly over a sequential palette (light to dark)."""
    if n <= 0:
        return []
    if n == 1:
        return [palette[len(palette) // 2]]
    return [palette[round(i * (len(palette) - 1) / (n - 1))] for i in range(n)]


def quantile_bins(values, measure: str, k: int = 5) -> Bins:
    """Up to ``k`` quantile classes of ``values`` (fewer when values repeat, e.g. many regions with 1 lead)."""
    v = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    present = v[~np.isnan(v)]
    missing = int(np.isnan(v).sum())
    if len(present) == 0:
        return Bins(measure, [], [], [], [], [], missing)
    qs = np.quantile(present, np.linspace(0, 1, k + 1)[1:-1], method="linear")
    # A cut at x puts x in the upper class (searchsorted 'right'); cut between distinct data values.
    edges = sorted({float(q) for q in qs if present.min() < q <= present.max()})
    idx = np.searchsorted(np.asarray(edges), present, side="right")
    lower, upper, counts, kept = [], [], [], []
    for i in range(len(edges) + 1):
        sel = present[idx == i]
        if len(sel) == 0:
            continue
        lower.append(float(sel.min()))
        upper.append(float(sel.max()))
        counts.append(int(len(sel)))
        kept.append(i)
    # drop cut points that produced empty classes
    edges = [edges[i - 1] for i in kept[1:]]
    return Bins(measure, edges, lower, upper, counts, spread_colors(len(counts)), missing)


def territory_palette(territories: pd.DataFrame | None) -> tuple[list[int], list[str], list[str]]:
    """(territory ids, escaped labels "Name · Rep", safe colours) in territory order."""
    if territories is None or not len(territories):
        return [], [], []
    ids, labels, colors = [], [], []
    for row in territories.itertuples(index=False):
        rep = getattr(row, "rep_name", None)
        label = esc(row.name) + (f" · {esc(rep)}" if not is_missing(rep) and rep else "")
        ids.append(int(row.territory_id))
        labels.append(label)
        colors.append(safe_color(getattr(row, "color", None)))
    return ids, labels, colors

