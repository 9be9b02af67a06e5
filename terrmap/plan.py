"""Plans (scenarios): territories and the assignment of a layer's regions to them.

A plan belongs to one layer (``plans.layer``). Shown on another layer, each
region of that layer goes to the territory holding the largest share of its
revenue potential (lead count breaks ties and covers regions without
potential), computed from the leads in SQL; see :func:`assignment_for_layer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import pandas as pd

from terrmap.geo import Layer, parse_layer

if TYPE_CHECKING:
    from terrmap.store import Store

# Distinct, readable on a light map; cycled (with lightness shifts) past its length.
PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
    "#e6550d", "#31a354", "#756bb1", "#636363", "#6baed6", "#fd8d3c", "#74c476", "#9e9ac8",
]


def palette_color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


@dataclass
class Territory:
    territory_id: int
    name: str
    color: str
    rep_id: str | None = None
    target: float | None = None
    tolerance: float = 0.10
    parent: str | None = None


@dataclass(frozen=True)
class PlanInfo:
    plan_id: int
    name: str
    layer: str
    version: int
    published: bool


def create_plan(
    store: "Store",
    name: str,
    layer: str,
    territories: Iterable[Territory],
    assignment: pd.DataFrame,
    published: bool = False,
    description: str | None = None,
) -> int:
    """Write a new plan in one transaction. ``assignment``: columns region_id, territory_id[, locked]."""
    parse_layer(layer)  # validates the key
    assignment = assignment.copy()
    if "locked" not in assignment:
        assignment["locked"] = False
    assignment = assignment[["region_id", "territory_id", "locked"]]
    terr = pd.DataFrame([t.__dict__ for t in territories])
    with store.transaction() as tx:
        if published:
            tx.execute("UPDATE plans SET published = false")
        plan_id = tx.execute(
            "INSERT INTO plans (name, layer, published, description) VALUES (?, ?, ?, ?) RETURNING plan_id",
            [name, layer, published, description],
        ).fetchall()[0][0]
        tx.register("new_territories", terr)
        tx.execute(
            "INSERT INTO territories SELECT ?, territory_id, name, color, rep_id, target, tolerance, parent "
            "FROM new_territories",
            [plan_id],
        )
        tx.register("new_assignment", assignment)
        tx.execute("INSERT INTO plan_assignments SELECT ?, region_id, territory_id, locked FROM new_assignment", [plan_id])
        tx.unregister("new_territories")
        tx.unregister("new_assignment")
    return plan_id


def list_plans(store: "Store") -> list[PlanInfo]:
    rows = store.cursor().execute(
        "SELECT plan_id, name, layer, version, published FROM plans ORDER BY published DESC, plan_id"
    ).fetchall()
    return [PlanInfo(*r) for r in rows]


def get_plan(store: "Store", name_or_id: str | int | None = None) -> PlanInfo | None:
    """A plan by name or id; with None, the published plan (else the first)."""
    plans = list_plans(store)
    if name_or_id is None:
        return plans[0] if plans else None
    for p in plans:
        if p.name == name_or_id or p.plan_id == name_or_id or str(p.plan_id) == str(name_or_id):
            return p
    return None


def territories(store: "Store", plan_id: int) -> pd.DataFrame:
    return store.cursor().execute(
        "SELECT t.*, r.name AS rep_name FROM territories t LEFT JOIN reps r USING (rep_id) "
        "WHERE plan_id = ? ORDER BY territory_id",
        [plan_id],
    ).df()


def assignment_for_layer(store: "Store", plan: PlanInfo, layer: Layer) -> pd.DataFrame:
    """region_id -> territory_id for every region of ``layer`` the plan covers."""
    cur = store.cursor()
    if plan.layer == layer.key:
        return cur.execute(
            "SELECT region_id, territory_id, locked FROM plan_assignments WHERE plan_id = ?", [plan.plan_id]
        ).df()
    source = parse_layer(plan.layer)
    src_key = source.region_id_sql(source.region_key_sql("l"))
    dst_key = layer.region_id_sql(layer.region_key_sql("l"))
    return cur.execute(
        f"""
        WITH lead_territory AS (
            SELECT {dst_key} AS region_id, a.territory_id,
                   sum(CASE WHEN l.status = 'open' THEN coalesce(l.score * l.expected_value, 0) ELSE 0 END)
                     + 1e-9 * count(*) AS weight
            FROM leads l JOIN plan_assignments a ON a.plan_id = ? AND a.region_id = {src_key}
            WHERE a.territory_id IS NOT NULL
            GROUP BY ALL
        )
        SELECT region_id, arg_max(territory_id, weight) AS territory_id, false AS locked
        FROM lead_territory GROUP BY region_id
        """,
        [plan.plan_id],
    ).df()
