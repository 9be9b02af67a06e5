"""What a retrain does to the plans: every territory's revenue potential and its deviation from target,
before and after the new scores (potential is score × expected value, so a new model rescales every plan).

Used by the Model page around :func:`terrmap.scoring.retrain`: take :func:`balance_snapshot` before, again
after, and show :func:`rescoring_impact`. The numbers are the Scenarios page's (:func:`terrmap.plan.scenarios.
territory_table`: each account counted once, where it is owned).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from terrmap.plan import list_plans
from terrmap.plan.scenarios import territory_table

if TYPE_CHECKING:
    from terrmap.data.store import Store

# A plan's balance "changes" when its largest deviation moves by at least this much (1 point).
BALANCE_CHANGE = 0.01

SNAPSHOT_COLUMNS = ["plan_id", "plan", "published", "territory_id", "territory", "potential", "deviation"]


def balance_snapshot(store: Store) -> pd.DataFrame:
    """Every territory of every plan: :data:`SNAPSHOT_COLUMNS`."""
    parts = []
    for plan in list_plans(store):
        t = territory_table(store, plan)
        parts.append(pd.DataFrame({"plan_id": plan.plan_id, "plan": plan.name, "published": plan.published,
                                   "territory_id": t["territory_id"], "territory": t["name"],
                                   "potential": t["potential"].astype(float), "deviation": t["deviation"]}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SNAPSHOT_COLUMNS)


def rescoring_impact(before: pd.DataFrame, after: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per territory, per plan) from two :func:`balance_snapshot` frames.

    Per territory: plan_id, plan, territory, potential_before/after, deviation_before/after, change (points of
    deviation). Per plan, published first: plan_id, plan, published, potential_before/after,
    max_deviation_before/after and ``balance_changes`` (the largest deviation moved by >= 1 point)."""
    keys = ["plan_id", "territory_id"]
    per = before.merge(after[[*keys, "potential", "deviation"]], on=keys, how="outer", suffixes=("_before", "_after"))
    per["change"] = per["deviation_after"] - per["deviation_before"]
    per = per[["plan_id", "plan", "published", "territory_id", "territory", "potential_before", "potential_after",
               "deviation_before", "deviation_after", "change"]]
    plans = per.groupby(["plan_id", "plan", "published"], sort=False).agg(
        potential_before=("potential_before", "sum"), potential_after=("potential_after", "sum"),
        max_deviation_before=("deviation_before", lambda d: float(np.abs(d).max())),
        max_deviation_after=("deviation_after", lambda d: float(np.abs(d).max())),
    ).reset_index()
    plans["balance_changes"] = (plans["max_deviation_after"] - plans["max_deviation_before"]).abs() >= BALANCE_CHANGE
    plans = plans.sort_values(["published", "plan_id"], ascending=[False, True]).reset_index(drop=True)
    return per.reset_index(drop=True), plans
