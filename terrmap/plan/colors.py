"""Territory colours: a high-contrast palette, a colouring that keeps neighbours apart, colour validation."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

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


# Two territories that share a border are told apart at a glance when their colours differ by at least this
# CIELAB distance (ΔE*ab, CIE76: 2.3 is a just-noticeable difference; 25 reads as "another colour" even on a
# small hexagon at low zoom).
MIN_NEIGHBOUR_DELTA_E = 25.0


def lab(color: str) -> np.ndarray:
    """CIELAB (D50) of a ``#rrggbb`` / ``#rgb`` sRGB colour."""
    h = color.lstrip("#")
    if len(h) == 3:
        h = "".join(ch * 2 for ch in h)
    rgb = np.array([int(h[i:i + 2], 16) for i in (0, 2, 4)], dtype=float) / 255.0
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    # sRGB to XYZ adapted to D50 (Bradford), the white of ICC colour management and of design tools' Lab.
    xyz = np.array([[0.4360747, 0.3850649, 0.1430804],
                    [0.2225045, 0.7168786, 0.0606169],
                    [0.0139322, 0.0971045, 0.7141733]]) @ linear
    xyz /= np.array([0.96422, 1.0, 0.82521])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def delta_e(a: str, b: str) -> float:
    """CIE76 colour difference of two sRGB colours (Euclidean distance in CIELAB)."""
    return float(np.linalg.norm(lab(a) - lab(b)))


def _is_hex(color: str | None) -> bool:
    return isinstance(color, str) and re.fullmatch(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})", color) is not None


def distinct_colors(n: int, neighbours: Iterable[tuple[int, int]], current: Sequence[str | None] | None = None,
                    palette: Sequence[str] = PALETTE) -> list[str]:
    """Colours for ``n`` territories such that neighbouring territories differ by at least
    :data:`MIN_NEIGHBOUR_DELTA_E` where the palette allows.

    Stable: a territory keeps its current colour unless a neighbour coloured before it (territories with
    more neighbours are served first) is too close to it. A territory that must change takes, among the
    palette colours far enough from all its neighbours, the one used least so far (so with 40+ territories
    colours repeat only far apart); if none is, the farthest. A last pass recolours either end of any pair
    still too close, where one colour fits all of that territory's neighbours.
    """
    adj: list[set[int]] = [set() for _ in range(n)]
    for a, b in neighbours:
        if a != b and 0 <= a < n and 0 <= b < n:
            adj[a].add(b)
            adj[b].add(a)
    current = list(current) if current is not None else [None] * n
    labs = {c: lab(c) for c in palette}

    def lab_of(c: str) -> np.ndarray:
        if c not in labs:
            labs[c] = lab(c) if _is_hex(c) else np.full(3, np.inf)  # a named colour: never "close"
        return labs[c]

    def nearest(c: str, others: list[str]) -> float:
        return min((float(np.linalg.norm(lab_of(c) - lab_of(o))) for o in others), default=np.inf)

    order = sorted(range(n), key=lambda t: (-len(adj[t]), t))
    out: list[str | None] = [None] * n
    used = {c: 0 for c in palette}

    def best_for(t: int) -> str:
        around = [out[u] for u in adj[t] if out[u] is not None]
        fits = [c for c in palette if nearest(c, around) >= MIN_NEIGHBOUR_DELTA_E]
        if fits:
            return min(fits, key=lambda c: (used.get(c, 0), palette.index(c)))
        return max(palette, key=lambda c: (nearest(c, around), -palette.index(c)))

    for t in order:
        mine = current[t] if t < len(current) else None
        around = [out[u] for u in adj[t] if out[u] is not None]
        out[t] = mine if mine is not None and nearest(mine, around) >= MIN_NEIGHBOUR_DELTA_E else best_for(t)
        used[out[t]] = used.get(out[t], 0) + 1
    for _ in range(3):  # repair what the greedy order could not avoid
        clashes = [(a, b) for a in range(n) for b in adj[a] if a < b
                   and nearest(out[a], [out[b]]) < MIN_NEIGHBOUR_DELTA_E]
        if not clashes:
            break
        for a, b in clashes:
            for t in (b, a):
                if nearest(out[t], [out[u] for u in adj[t]]) >= MIN_NEIGHBOUR_DELTA_E:
                    break
                used[out[t]] -= 1
                out[t] = None
                out[t] = best_for(t)
                used[out[t]] = used.get(out[t], 0) + 1
    return out  # type: ignore[return-value]
