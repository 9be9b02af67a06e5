"""The search's budget: wall-clock seconds, or a number of iterations (deterministic: tests, benchmarks).

The search reads the budget's clock in *budget seconds*: real seconds, or iterations scaled by
:data:`ITERATIONS_PER_SECOND` (so the search's own time constants -- "at least a second of refinement per
start" -- mean the same share of either budget). One iteration is one round of balance refinement or one
compactness pass; :meth:`Budget.tick` counts them. The phases of a search are shares of the budget, named
here rather than written as fractions where they are used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# One budget second of an iteration budget is this many iterations (a round of refinement on a state-sized
# instance takes about 10 ms).
ITERATIONS_PER_SECOND = 100.0


@dataclass(frozen=True)
class Phases:
    """Shares of the budget at which a search moves on."""

    search: float = 0.93  # the search stops here; the rest of a wall-clock budget is for scoring candidates
    balance: float = 0.6  # from scratch: new starts until here ...
    extended: float = 0.85  # ... or until here while no start is within tolerance
    start_refine: float = 0.15  # a start's first refinement: at most this share (and at least a second)
    polish: float = 0.1  # going back to the best plan nearly in band: at most this share
    lp_round: float = 0.1  # several measures: a round of the border programme and its refinement (at least 1 s)
    tighten: float = 0.3  # from scratch: share of the time left to tighten the best plan to tau/4
    rebalance_step: float = 0.5  # rebalance: share of the time left for each refinement


PHASES = Phases()


@dataclass
class Budget:
    """Either ``seconds`` of wall clock or ``iterations`` of the search (exactly one of them)."""

    seconds: float | None = None
    iterations: int | None = None
    phases: Phases = PHASES
    ticks: int = field(default=0, init=False)
    _t0: float = field(default=0.0, init=False)

    def __post_init__(self):
        if (self.seconds is None) == (self.iterations is None):
            raise ValueError("a budget is either seconds or iterations")
        if self.iterations is not None:
            self.iterations = int(self.iterations)
        self.start()

    @property
    def by_iterations(self) -> bool:
        return self.iterations is not None

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self.ticks = 0

    @property
    def total(self) -> float:
        """The whole budget in budget seconds."""
        return float(self.seconds) if self.seconds is not None else self.iterations / ITERATIONS_PER_SECOND

    @property
    def deadline(self) -> float:
        """When the search stops (budget seconds since :meth:`start`): an iteration budget spends no
        iteration on scoring, so its search may use all of it."""
        return self.total if self.by_iterations else self.total * self.phases.search

    def now(self) -> float:
        """Budget seconds spent since :meth:`start`."""
        if self.by_iterations:
            return self.ticks / ITERATIONS_PER_SECOND
        return time.perf_counter() - self._t0

    def left(self) -> float:
        """Budget seconds left until the search's deadline."""
        return self.deadline - self.now()

    def tick(self) -> None:
        """One iteration done."""
        self.ticks += 1

    def exhausted(self) -> bool:
        return self.now() >= self.deadline
