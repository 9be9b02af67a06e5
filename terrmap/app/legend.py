"""The map legend as HTML: territories with region counts, or the quantile classes of a measure."""

from __future__ import annotations

from collections.abc import Sequence

from terrmap.app.html_safe import esc
from terrmap.app.map_colors import NO_DATA_COLOR, UNASSIGNED_COLOR, UNASSIGNED_LABEL, Bins, safe_color
from terrmap.measures import MEASURES, fmt_int


def _swatch(color: str) -> str:
    return f'<i class="tm-sw" style="background:{safe_color(color)}"></i>'


def legend_territories_html(labels: Sequence[str], colors: Sequence[str], counts: Sequence[int] | None = None,
                            unassigned: int = 0, title: str = "Territories") -> str:
    """Legend rows for territories. ``labels`` must already be escaped (see :func:`territory_palette`)."""
    rows = []
    for i, (label, color) in enumerate(zip(labels, colors)):
        n = f'<span class="tm-n">{fmt_int(counts[i])}</span>' if counts is not None else ""
        rows.append(f'<div class="tm-row">{_swatch(color)}<span class="tm-l">{label}</span>{n}</div>')
    if unassigned:
        rows.append(
            f'<div class="tm-row">{_swatch(UNASSIGNED_COLOR)}<span class="tm-l">{UNASSIGNED_LABEL}</span>'
            f'<span class="tm-n">{fmt_int(unassigned)}</span></div>'
        )
    # The count: a legend longer than the map scrolls, and the reader should know how many rows there are.
    return f'<div class="tm-title">{esc(title)} ({fmt_int(len(labels))})</div><div class="tm-rows">{"".join(rows)}</div>'


def legend_bins_html(bins: Bins, title: str | None = None) -> str:
    measure = MEASURES[bins.measure]
    rows = [
        f'<div class="tm-row">{_swatch(c)}<span class="tm-l">{esc(label)}</span><span class="tm-n">{fmt_int(n)}</span></div>'
        for c, label, n in zip(bins.colors, bins.labels, bins.counts)
    ]
    if bins.missing:
        rows.append(
            f'<div class="tm-row">{_swatch(NO_DATA_COLOR)}<span class="tm-l">No data</span>'
            f'<span class="tm-n">{fmt_int(bins.missing)}</span></div>'
        )
    head = esc(title or measure.label)
    return (
        f'<div class="tm-title">{head}</div><div class="tm-sub">quantiles · regions per class</div>'
        f'<div class="tm-rows">{"".join(rows)}</div>'
    )

