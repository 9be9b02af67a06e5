"""The optimizer's candidates as map data: what the planner looks at before saving one."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from terrmap.app import map_data as mv
from terrmap.data.stats import region_stats
from terrmap.frames import member
from terrmap.geo import parse_layer
from terrmap.optimize import OptimizeResult, candidate_plan

if TYPE_CHECKING:
    from terrmap.data.store import Store


def candidate_map_data(store: Store, result: OptimizeResult, which: int | str = 0) -> mv.MapData:
    """The candidate's territories, dissolved, as :class:`terrmap.app.map_data.MapData` (one feature per
    territory with its totals): what the planner looks at before saving it. Only the optimised regions."""
    terrs, frame = candidate_plan(result, which)
    territories = pd.DataFrame({"territory_id": [t.territory_id for t in terrs], "name": [t.name for t in terrs],
                                "color": [t.color for t in terrs]})
    inst = result.instance
    frame = frame[member(frame["region_id"], inst.region_ids)]
    layer = parse_layer(inst.layer_key)
    stats = region_stats(store, layer)
    summary = mv.territory_summary(stats[member(stats["region_id"], frame["region_id"])], frame, territories)
    groups = {int(t): g["region_id"].tolist() for t, g in frame.groupby("territory_id")}
    return mv.territory_map_data(summary, layer.dissolve(store, groups))
