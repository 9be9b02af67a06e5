"""Territory colours: a high-contrast palette, a colouring that keeps neighbours apart, colour validation."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

UNASSIGNED_COLOR = "#c8ccd2"
_COLOR_RE = re.compile(r"^(#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}|#[0-9a-fA-F]{8}|[a-zA-Z]{3,20})$")

# Kelly's colours of maximum contrast (without white and black) in his order, then four
# ColorBrewer Dark2 colours: distinct on a light map and for most colour-blind readers
# at the top of the list. Neighbouring territories get different ones (distinct_colors).
PALETTE = [
    "#f3c300", "#875692", "#f38400", "#a1caf1", "#be0032", "#c2b280", "#848482", "#008856",
    "#e68fac", "#0067a5", "#f99379", "#604e97", "#f6a600", "#b3446c", "#dcd300", "#882d17",
    "#8db600", "#654522", "#e25822", "#2b3d26", "#1b9e77", "#7570b3", "#66a61e", "#e7298a",
]


def safe_color(value, default: str = UNASSIGNED_COLOR) -> str:
    """A CSS colour we can put into a style attribute, else ``default``."""
    return value if isinstance(value, str) and _COLOR_RE.match(value.strip() or "-") else default


def palette_color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def distinct_colors(n: int, neighbours: Iterable[tuple[int, int]], current: Sequence[str | None] | None = None,
                    palette: Sequence[str] = PALETTE) -> list[str]:
    """Colours for ``n`` territories such that neighbouring territories differ where possible.

    Stable: a territory keeps its current colour unless a neighbour holding the
    same colour was coloured first (territories with more neighbours are
    served first). A territory that must change takes the palette colour least
    used so far among those no neighbour has, so with 40+ territories colours
    repeat only far apart. Greedy colouring: with a palette larger than the
    highest number of neighbours (24 vs. typically under 10) a clash is never
    forced.
    """
    adj: list[set[int]] = [set() for _ in range(n)]
    for a, b in neighbours:
        if a != b and 0 <= a < n and 0 <= b < n:
            adj[a].add(b)
            adj[b].add(a)
    current = list(current) if current is not None else [None] * n
    order = sorted(range(n), key=lambda t: (-len(adj[t]), t))
    out: list[str | None] = [None] * n
    used = {c: 0 for c in palette}
    for t in order:
        taken = {out[u] for u in adj[t] if out[u] is not None}
        mine = current[t] if t < len(current) else None
        if mine is not None and mine not in taken:
            out[t] = mine
        else:
            free = [c for c in palette if c not in taken] or list(palette)
            out[t] = min(free, key=lambda c: (used.get(c, 0), palette.index(c)))
        used[out[t]] = used.get(out[t], 0) + 1
    return out  # type: ignore[return-value]
