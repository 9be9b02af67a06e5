"""Plans as a domain: the live partition with incremental tallies, metrics, colours, editing, scenarios.

No SQL here: stored plans are read and written through :mod:`terrmap.data.plans`, re-exported
below because every caller that holds a plan needs both. ``create_plan`` and ``get_plan`` are the complete
versions (:mod:`terrmap.plan.complete`): a plan made or opened through this package covers its whole area.
"""

from terrmap.data.plans import (
    TERRITORY_COLUMNS,
    PlanInfo,
    SaveConflict,
    Territory,
    list_plans,
    load_assignment,
    record_version,
    save_assignment,
    territories,
)
from terrmap.plan.colors import PALETTE, distinct_colors, palette_color
from terrmap.plan.complete import create_complete_plan as create_plan
from terrmap.plan.complete import get_plan
from terrmap.plan.partition import UNASSIGNED, Move, Plan, merge_assignments
from terrmap.plan.projection import assignment_for_layer

__all__ = [
    "PALETTE", "TERRITORY_COLUMNS", "UNASSIGNED", "Move", "Plan", "PlanInfo", "SaveConflict", "Territory",
    "assignment_for_layer", "create_plan", "distinct_colors", "get_plan", "list_plans", "load_assignment",
    "merge_assignments", "palette_color", "record_version", "save_assignment", "territories",
]
