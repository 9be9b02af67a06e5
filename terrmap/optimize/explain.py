"""Why each region moved: the search records every move as data (:class:`MoveRecord` with a reason
record: the measure it helped and the deviations before and after); the English text is written here,
in one place, when an explanation is shown.

A rendered reason names the territories as ``{src}`` and ``{dst}``; :func:`describe` fills them in.
:func:`water_line` is the one sentence for territories "in N pieces by water" (the optimizer page and the
editor show the same words).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from terrmap.optimize.instance import MEASURE_LABELS


@dataclass(frozen=True)
class Balance:
    """A balance move (one region or a group): deviations of ``measure`` in the source and destination
    before and after, and the imbalance it removed (``gain`` < 0: an escape step that made it worse)."""

    measure: str
    tolerance: float
    src_before: float
    src_after: float
    dst_before: float
    dst_after: float
    gain: float
    group_size: int = 1


@dataclass(frozen=True)
class Swap:
    """Half of an exchange of two border regions; ``reverse`` is the other region's half (src and dst swap)."""

    other_region: str
    measure: str
    src_before: float
    src_after: float
    dst_before: float
    dst_after: float
    reverse: bool = False


@dataclass(frozen=True)
class Redraw:
    """A recombination: the borders of neighbouring territories redrawn; per territory (label, before, after)."""

    measure: str
    territories: tuple[tuple[str, float, float], ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Compactness:
    """A move that shortens the border between two territories by ``km``, balance staying within ``band``."""

    km: float
    band: float


@dataclass(frozen=True)
class Placed:
    """A region put in place by a repair: ``"fixed"`` (a locked or seed region) or ``"unassigned"``."""

    why: str


Reason = Balance | Swap | Redraw | Compactness | Placed


@dataclass
class MoveRecord:
    region: int
    src: int  # territory index (-1: unassigned)
    dst: int
    phase: str  # "balance", "compactness", "contiguity", "unassigned"
    reason: Reason | None = None

    @property
    def detail(self) -> str:
        """The reason as text, with ``{src}``/``{dst}`` for the territories ("" when there is none)."""
        return render(self.reason)


_PLACED = {"fixed": "locked/seed region put in its territory", "unassigned": "was unassigned"}
_PHASE_TEXT = {"contiguity": "contiguity: part of a detached piece of {src}; joined neighbouring {dst}",
               "unassigned": "was unassigned; joined neighbouring {dst}"}


def _swap_sides(text: str) -> str:
    return text.replace("{src}", "\0").replace("{dst}", "{src}").replace("\0", "{dst}")


def render(reason: Reason | None) -> str:
    """The text of one reason (territories left as ``{src}``/``{dst}``)."""
    if reason is None:
        return ""
    if isinstance(reason, Balance):
        label = MEASURE_LABELS[reason.measure]
        sides = (f"{{src}} {reason.src_before:+.1%} → {reason.src_after:+.1%}, {{dst}} {reason.dst_before:+.1%} → "
                 f"{reason.dst_after:+.1%}")
        if reason.gain < -1e-12:
            text = f"balance (escape step, {label}): {sides}; briefly worse to get out of a stall"
        elif reason.gain <= 1e-12:
            text = f"balance chain ({label}): {sides}, making room next to an out-of-tolerance territory"
        else:
            text = f"balance ({label}, tolerance ±{reason.tolerance:.0%}): {sides}; imbalance reduced by {reason.gain:.4f}"
        if reason.group_size > 1:
            text += f" (a group of {reason.group_size} regions, moved together to keep {{src}} in one piece)"
        return text
    if isinstance(reason, Swap):
        text = (f"balance by exchange with region {reason.other_region} ({MEASURE_LABELS[reason.measure]}): "
                f"{{src}} {reason.src_before:+.1%} → {reason.src_after:+.1%}, {{dst}} {reason.dst_before:+.1%} → "
                f"{reason.dst_after:+.1%}")
        return _swap_sides(text) if reason.reverse else text
    if isinstance(reason, Redraw):
        names = ", ".join(f"{label} {before:+.1%} → {after:+.1%}" for label, before, after in reason.territories)
        return (f"balance by redrawing the borders of {len(reason.territories)} neighbouring territories "
                f"({MEASURE_LABELS[reason.measure]}): {names}")
    if isinstance(reason, Compactness):
        return (f"compactness: the {{src}}/{{dst}} border gets {reason.km:.1f} km shorter"
                f" (balance stays within ±{reason.band:.1%})")
    if isinstance(reason, Placed):
        return _PLACED[reason.why]
    raise TypeError(f"not a move reason: {reason!r}")


def describe(move: MoveRecord, src_name: str, dst_name: str) -> str:
    """The sentence shown for one move, territories named (a move without a reason: its phase's text)."""
    text = move.detail or _PHASE_TEXT.get(move.phase, move.phase)
    return text.format(src=src_name, dst=dst_name)


def swapped(reason: Swap) -> Swap:
    """The other half of an exchange."""
    return replace(reason, reverse=not reason.reverse)


def water_piece(territory: str, pieces: int, region_a: str | None, region_b: str | None, km: float | None) -> str:
    """One territory in pieces by water: its name, N, and the shortest water crossing inside it, e.g.
    "Detroit (2: 49757 ↔ 49701 across water, 8 km)"."""
    if region_a is None or km is None or km != km:  # NaN: no crossing known
        return f"{territory} ({pieces})"
    return f"{territory} ({pieces}: {region_a} ↔ {region_b} across water, {km:,.0f} km)"


def water_line(rows) -> str:
    """"In pieces by water: ..." for rows with territory, pieces, region_a, region_b, km ("" when none)."""
    parts = [water_piece(r.territory, int(r.pieces), r.region_a, r.region_b, r.km) for r in rows.itertuples()]
    return "In pieces by water: " + ", ".join(parts) if parts else ""
