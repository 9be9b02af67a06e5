"""Plans (scenarios) as stored: territories and the assignment of a layer's regions to them.

A plan belongs to one layer (``plans.layer``). Shown on another layer, each
region of that layer holding leads goes to the territory holding the largest share of its
revenue potential (lead count breaks ties and covers regions without
potential), computed from the leads in SQL; see :func:`lead_majority_assignment` (and
:func:`terrmap.plan.projection.assignment_for_layer`, which places the regions without leads too).
Saves use optimistic concurrency, so two planners cannot silently overwrite each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from terrmap.data.insert import replace_rows
from terrmap.geo import Layer, parse_layer
from terrmap.measures import LEAD_POTENTIAL_SQL

if TYPE_CHECKING:
    from terrmap.data.store import Store


def plan_exists(con, plan_id: int) -> bool:
    """Whether plan ``plan_id`` is stored (``con``: a store cursor or an open transaction)."""
    return bool(con.execute("SELECT 1 FROM plans WHERE plan_id = ?", [plan_id]).fetchall())


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
    store: Store,
    name: str,
    layer: str,
    territories: Iterable[Territory],
    assignment: pd.DataFrame,
    published: bool = False,
    description: str | None = None,
    author: str | None = None,
    note: str = "created",
    area: Iterable[str] | None = None,
) -> int:
    """Write a new plan in one transaction. ``assignment``: columns region_id, territory_id[, locked];
    ``area``: the states it covers (:func:`terrmap.plan.complete.create_complete_plan` works it out and fills
    the assignment; None leaves it to be completed when the plan is opened).

    The plan starts its history: version 1 is recorded in ``plan_versions`` (see :func:`record_version`).
    """
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
            "INSERT INTO plans (name, layer, published, description, area) VALUES (?, ?, ?, ?, ?) RETURNING plan_id",
            [name, layer, published, description, None if area is None else sorted(set(area))],
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
        record_version(tx, plan_id, 1, author, note)
    return plan_id


# Territory columns a version keeps (the territories table without plan_id).
TERRITORY_COLUMNS = ["territory_id", "name", "color", "rep_id", "target", "tolerance", "parent"]


def record_version(tx, plan_id: int, version: int, author: str | None, note: str | None) -> None:
    """Snapshot the plan's current territories and assignment as ``version`` (inside the caller's transaction).

    Every write of a plan records one, so any saved state can be compared with or restored
    (see :mod:`terrmap.plan.scenarios`). A full copy per version rather than a diff: restoring or
    comparing is then one query, and 30k regions cost about 1 MB per version in DuckDB.
    """
    fields = ", ".join(f"'{c}': {c}" for c in TERRITORY_COLUMNS)
    tx.execute(
        f"""
        INSERT INTO plan_versions (plan_id, version, author, note, territories)
        SELECT ?, ?, ?, ?, coalesce((SELECT to_json(list({{{fields}}} ORDER BY territory_id))
                                     FROM territories WHERE plan_id = ?), '[]')
        """,
        [plan_id, version, author, note, plan_id],
    )
    tx.execute(
        "INSERT INTO plan_version_assignments SELECT plan_id, ?, region_id, territory_id, locked "
        "FROM plan_assignments WHERE plan_id = ?",
        [version, plan_id],
    )


def list_plans(store: Store) -> list[PlanInfo]:
    rows = store.cursor().execute(
        "SELECT plan_id, name, layer, version, published FROM plans ORDER BY published DESC, plan_id"
    ).fetchall()
    return [PlanInfo(*r) for r in rows]


def get_plan(store: Store, name_or_id: str | int | None = None) -> PlanInfo | None:
    """A plan by name or id; with None, the published plan (else the first)."""
    plans = list_plans(store)
    if name_or_id is None:
        return plans[0] if plans else None
    for p in plans:
        if p.name == name_or_id or p.plan_id == name_or_id or str(p.plan_id) == str(name_or_id):
            return p
    return None


def plan_area(store: Store, plan_id: int) -> list[str] | None:
    """The states plan ``plan_id`` covers (sorted), or None for a plan made before plans had an area."""
    rows = store.cursor().execute("SELECT area FROM plans WHERE plan_id = ?", [plan_id]).fetchall()
    return None if not rows or rows[0][0] is None else sorted(rows[0][0])


def set_plan_area(con, plan_id: int, states: Iterable[str]) -> None:
    """Record the states plan ``plan_id`` covers (``con``: a store cursor or an open transaction)."""
    con.execute("UPDATE plans SET area = ? WHERE plan_id = ?", [sorted(set(states)), plan_id])


def territories(store: Store, plan_id: int) -> pd.DataFrame:
    return store.cursor().execute(
        "SELECT t.*, r.name AS rep_name FROM territories t LEFT JOIN reps r USING (rep_id) "
        "WHERE plan_id = ? ORDER BY territory_id",
        [plan_id],
    ).df()


def rep_name(store: Store, rep_id: str) -> str | None:
    """The name of rep ``rep_id``, or None when there is no such rep."""
    rows = store.cursor().execute("SELECT name FROM reps WHERE rep_id = ?", [rep_id]).fetchall()
    return rows[0][0] if rows else None


def rep_names(store: Store) -> list[tuple[str, str]]:
    """Every rep as (rep_id, name), ordered by name: the choices when a territory gets a rep."""
    return store.cursor().execute("SELECT rep_id, name FROM reps ORDER BY name").fetchall()


def lead_majority_assignment(store: Store, plan: PlanInfo, layer: Layer) -> pd.DataFrame:
    """region_id, territory_id, locked: the plan's own assignment on its layer; on another layer, each region
    holding leads in the territory with most of their potential (regions without leads are not listed)."""
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
                   -- rounded: a parallel float sum differs in its last bits from run to run, and the
                   -- same plan must map the same way every time (ties: the lowest territory id)
                   round(sum({LEAD_POTENTIAL_SQL}), 4)
                     AS potential,
                   count(*) AS leads
            FROM leads l JOIN plan_assignments a ON a.plan_id = ? AND a.region_id = {src_key}
            WHERE a.territory_id IS NOT NULL
            GROUP BY ALL
        )
        SELECT region_id, arg_max(territory_id, (potential, leads, -territory_id)) AS territory_id, false AS locked
        FROM lead_territory GROUP BY region_id
        """,
        [plan.plan_id],
    ).df()


class SaveConflict(Exception):
    """The plan was saved by someone else since it was loaded."""

    def __init__(self, plan_name: str, loaded_version: int, current_version: int, theirs: pd.DataFrame,
                 saved_by: str | None = None, saved_at=None):
        self.plan_name = plan_name
        self.loaded_version = loaded_version
        self.current_version = current_version
        self.theirs = theirs  # their assignment: region_id, territory_id, locked
        self.saved_by = saved_by  # the name given with their save (None: saved without one)
        self.saved_at = saved_at
        super().__init__(
            f"plan {plan_name!r} was saved by {self.saver} (version {current_version}, you loaded "
            f"{loaded_version}): reload it, or merge your changes into theirs"
        )

    @property
    def saver(self) -> str:
        """Who saved the version in the way, as a sentence says it."""
        return self.saved_by or "someone else (no name given)"


def load_assignment(store: Store, plan_id: int) -> pd.DataFrame:
    return store.cursor().execute(
        "SELECT region_id, territory_id, locked FROM plan_assignments WHERE plan_id = ? ORDER BY region_id", [plan_id]
    ).df()


def save_assignment(
    store: Store,
    plan: PlanInfo,
    assignment: pd.DataFrame,
    changes: list[dict] | None = None,
    author: str | None = None,
    territories: pd.DataFrame | None = None,
    note: str = "saved",
) -> PlanInfo:
    """Replace the plan's assignment if nobody saved since ``plan.version``; returns the new PlanInfo.

    ``territories`` (optional) replaces the plan's territories (the palette).
    ``changes``: the edits since the last save, written to ``plan_changes``
    (dicts with regions, from_territory, to_territory, potential_moved).
    The result is recorded as the new version in the plan's history, with ``author`` and ``note``.
    Raises :class:`SaveConflict` (nothing written) when the stored version moved on.
    """
    with store.transaction() as tx:
        return write_assignment(tx, plan, assignment, changes, author, territories, note)


def write_assignment(
    tx,
    plan: PlanInfo,
    assignment: pd.DataFrame,
    changes: list[dict] | None = None,
    author: str | None = None,
    territories: pd.DataFrame | None = None,
    note: str = "saved",
) -> PlanInfo:
    """:func:`save_assignment` inside the caller's transaction ``tx``: a write that does more than save one
    plan (a "Save as", an import completing its plans) commits all of it or nothing. Raises
    :class:`SaveConflict` before writing anything when the stored version moved on."""
    assignment = assignment[["region_id", "territory_id", "locked"]]
    current = tx.execute("SELECT version FROM plans WHERE plan_id = ?", [plan.plan_id]).fetchall()
    if not current:
        raise ValueError(f"plan {plan.name!r} no longer exists")
    if current[0][0] != plan.version:
        theirs = tx.execute(
            "SELECT region_id, territory_id, locked FROM plan_assignments WHERE plan_id = ?", [plan.plan_id]
        ).df()
        saved = tx.execute("SELECT author, saved_at FROM plan_versions WHERE plan_id = ? AND version = ?",
                           [plan.plan_id, current[0][0]]).fetchall()
        raise SaveConflict(plan.name, plan.version, current[0][0], theirs, *(saved[0] if saved else ()))
    if not tx.execute("SELECT count(*) FROM plan_versions WHERE plan_id = ? AND version = ?",
                      [plan.plan_id, plan.version]).fetchall()[0][0]:
        # A plan from before history was kept: record what is overwritten, so it can be restored.
        record_version(tx, plan.plan_id, plan.version, None, "before history was kept")
    if territories is not None:
        cols = TERRITORY_COLUMNS
        # The hierarchy page edits parents while editors have the plan open: a territory that exists keeps
        # its stored parent (the editor's copy may be stale); only new territories take the given one.
        stored = dict(tx.execute("SELECT territory_id, parent FROM territories WHERE plan_id = ?",
                                 [plan.plan_id]).fetchall())
        territories = territories[cols].copy()
        territories["parent"] = [stored[t] if t in stored else p
                                 for t, p in zip(territories["territory_id"].tolist(), territories["parent"])]
        tx.execute("DELETE FROM territories WHERE plan_id = ?", [plan.plan_id])
        tx.register("saved_territories", territories[cols])
        tx.execute(f"INSERT INTO territories SELECT ?, {', '.join(cols)} FROM saved_territories", [plan.plan_id])
        tx.unregister("saved_territories")
    # Only the regions that changed are written (an edit moves a few of 30k; see replace_rows).
    replace_rows(tx, "plan_assignments", assignment, "?, region_id, territory_id, locked", ["plan_id", "region_id"],
                 "plan_id = ?", [plan.plan_id, plan.plan_id])
    for c in changes or []:
        tx.execute(
            "INSERT INTO plan_changes (plan_id, author, regions, from_territory, to_territory, potential_moved) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [plan.plan_id, author, list(c["regions"]), c.get("from_territory"), c.get("to_territory"),
             c.get("potential_moved")],
        )
    tx.execute("UPDATE plans SET version = version + 1, updated_at = current_timestamp WHERE plan_id = ?",
               [plan.plan_id])
    record_version(tx, plan.plan_id, plan.version + 1, author, note)
    return PlanInfo(plan.plan_id, plan.name, plan.layer, plan.version + 1, plan.published)
