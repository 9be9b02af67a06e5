"""Plans (scenarios): territories and the assignment of a layer's regions to them.

A plan belongs to one layer (``plans.layer``). Shown on another layer, each
region of that layer goes to the territory holding the largest share of its
revenue potential (lead count breaks ties and covers regions without
potential), computed from the leads in SQL; see :func:`assignment_for_layer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

import pandas as pd

from terrmap.geo import Layer, parse_layer

if TYPE_CHECKING:
    from terrmap.store import Store

# Kelly's colours of maximum contrast (without white and black) in his order, then four
# ColorBrewer Dark2 colours: distinct on a light map and for most colour-blind readers
# at the top of the list. Neighbouring territories get different ones (distinct_colors).
PALETTE = [
    "#f3c300", "#875692", "#f38400", "#a1caf1", "#be0032", "#c2b280", "#848482", "#008856",
    "#e68fac", "#0067a5", "#f99379", "#604e97", "#f6a600", "#b3446c", "#dcd300", "#882d17",
    "#8db600", "#654522", "#e25822", "#2b3d26", "#1b9e77", "#7570b3", "#66a61e", "#e7298a",
]


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
    author: str | None = None,
    note: str = "created",
) -> int:
    """Write a new plan in one transaction. ``assignment``: columns region_id, territory_id[, locked].

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
        record_version(tx, plan_id, 1, author, note)
    return plan_id


# Territory columns a version keeps (the territories table without plan_id).
TERRITORY_COLUMNS = ["territory_id", "name", "color", "rep_id", "target", "tolerance", "parent"]


def record_version(tx, plan_id: int, version: int, author: str | None, note: str | None) -> None:
    """Snapshot the plan's current territories and assignment as ``version`` (inside the caller's transaction).

    Every write of a plan records one, so any saved state can be compared with or restored
    (see :mod:`terrmap.scenarios`). A full copy per version rather than a diff: restoring or
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
                   -- rounded: a parallel float sum differs in its last bits from run to run, and the
                   -- same plan must map the same way every time (ties: the lowest territory id)
                   round(sum(CASE WHEN l.status = 'open' THEN coalesce(l.score * l.expected_value, 0) ELSE 0 END), 4)
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


# ---------------------------------------------------------------------------
# The live plan: assignment + tallies kept current on every flip.
# ---------------------------------------------------------------------------

import numpy as np  # noqa: E402

from terrmap import metrics  # noqa: E402

UNASSIGNED = -1


@dataclass
class Move:
    """One edit: ``regions`` (indices) went from ``before[k]`` to ``to`` (or back, on undo)."""

    regions: np.ndarray
    before: np.ndarray
    to: int
    moved: np.ndarray  # per measure, the total that changed hands


class Plan:
    """Regions ``0..n-1`` assigned to territories ``0..K-1`` (or UNASSIGNED), with tallies.

    ``values`` is an (n, m) array of additive per-region measures named by
    ``measures`` (leads, potential, ...). Every flip updates the per-territory
    totals, region counts, cut edges and perimeters from the moved regions and
    their incident edges only, so a move costs O(moved regions), not O(plan).
    Contiguity is recounted for the territories a move touched only.
    ``offsets`` (k, m), added to the totals, hold what a territory owns whatever
    its regions (named accounts pinned to it). GerryChain's Partition + updaters
    inspired the design.
    """

    def __init__(self, graph, values: np.ndarray, measures: list[str], assignment: np.ndarray, n_territories: int,
                 locked: np.ndarray | None = None, targets: np.ndarray | None = None, history: int = 200,
                 offsets: np.ndarray | None = None):
        self.graph = graph
        self.values = np.asarray(values, dtype=float)
        self.measures = list(measures)
        self.assignment = np.asarray(assignment, dtype=np.int64).copy()
        self.k = int(n_territories)
        self.locked = np.zeros(len(self.assignment), bool) if locked is None else np.asarray(locked, bool).copy()
        self.targets = targets  # (k, m) or None: the mean
        self.history = history
        # (k, m) per-territory amounts that belong to a territory whatever its regions (named accounts)
        self.offsets = np.zeros((self.k, self.values.shape[1])) if offsets is None else np.asarray(offsets, float)
        self.undo_stack: list[Move] = []
        self.redo_stack: list[Move] = []
        self._recompute()

    # -- full recomputation (start, and the reference for tests) ------------
    def _recompute(self) -> None:
        a = self.assignment
        ok = a >= 0
        self.totals = self.offsets.copy()
        np.add.at(self.totals, a[ok], self.values[ok])
        self.region_counts = np.bincount(a[ok], minlength=self.k)
        g = self.graph
        ea, eb = a[g.edges[:, 0]], a[g.edges[:, 1]]
        self.cut_edges = int(np.sum(ea != eb))
        self.perimeter = metrics.territory_perimeters(g.edges, g.edge_length, g.outer_length, a, self.k)
        self.area = np.bincount(a[ok], weights=g.area[ok], minlength=self.k)
        self._components = metrics.components_per_territory(g.adjacency, a, np.arange(self.k))

    # -- edits ------------------------------------------------------------
    def flip(self, regions, to: int, record: bool = True) -> Move:
        """Assign ``regions`` to territory ``to`` (UNASSIGNED allowed); locked regions stay."""
        regions = np.unique(np.asarray(regions, dtype=np.int64))
        regions = regions[~self.locked[regions] & (self.assignment[regions] != to)]
        move = self._apply(regions, np.full(regions.size, to), to)
        if record and regions.size:
            self.undo_stack.append(move)
            del self.undo_stack[: -self.history]
            self.redo_stack.clear()
        return move

    def _apply(self, regions: np.ndarray, new: np.ndarray, to: int) -> Move:
        before = self.assignment[regions].copy()
        vals = self.values[regions]
        g = self.graph
        inc = g.incident_edges(regions)
        self._edge_contrib(inc, -1)
        self._outer_contrib(regions, -1)
        old_ok = before >= 0
        np.subtract.at(self.totals, before[old_ok], vals[old_ok])
        np.subtract.at(self.region_counts, before[old_ok], 1)
        np.subtract.at(self.area, before[old_ok], g.area[regions][old_ok])
        self.assignment[regions] = new
        new_ok = new >= 0
        np.add.at(self.totals, new[new_ok], vals[new_ok])
        np.add.at(self.region_counts, new[new_ok], 1)
        np.add.at(self.area, new[new_ok], g.area[regions][new_ok])
        self._edge_contrib(inc, +1)
        self._outer_contrib(regions, +1)
        touched = set(before[old_ok].tolist()) | set(new[new_ok].tolist())
        self._components.update(metrics.components_per_territory(g.adjacency, self.assignment, np.array(sorted(touched))))
        return Move(regions, before, to, vals.sum(axis=0))

    def _edge_contrib(self, edge_ids: np.ndarray, sign: int) -> None:
        g = self.graph
        e = g.edges[edge_ids]
        a, b = self.assignment[e[:, 0]], self.assignment[e[:, 1]]
        cut = a != b
        self.cut_edges += sign * int(cut.sum())
        length = g.edge_length[edge_ids]
        for side in (a, b):
            sel = cut & (side >= 0)
            np.add.at(self.perimeter, side[sel], sign * length[sel])

    def _outer_contrib(self, regions: np.ndarray, sign: int) -> None:
        t = self.assignment[regions]
        ok = t >= 0
        np.add.at(self.perimeter, t[ok], sign * self.graph.outer_length[regions][ok])

    def undo(self) -> Move | None:
        if not self.undo_stack:
            return None
        move = self.undo_stack.pop()
        self._apply(move.regions, move.before, UNASSIGNED)
        self.redo_stack.append(move)
        return move

    def redo(self) -> Move | None:
        if not self.redo_stack:
            return None
        move = self.redo_stack.pop()
        self._apply(move.regions, np.full(move.regions.size, move.to), move.to)
        self.undo_stack.append(move)
        return move

    def add_territory(self) -> int:
        """A new, empty territory; returns its index."""
        self.k += 1
        self.totals = np.vstack([self.totals, np.zeros((1, self.totals.shape[1]))])
        self.offsets = np.vstack([self.offsets, np.zeros((1, self.offsets.shape[1]))])
        self.region_counts = np.append(self.region_counts, 0)
        self.perimeter = np.append(self.perimeter, 0.0)
        self.area = np.append(self.area, 0.0)
        self._components[self.k - 1] = 0
        return self.k - 1

    def set_locked(self, regions, locked: bool = True) -> None:
        self.locked[np.asarray(regions, dtype=np.int64)] = locked

    # -- metrics ----------------------------------------------------------
    def components(self) -> np.ndarray:
        return np.array([self._components[t] for t in range(self.k)])

    def summary(self, measure: str = "potential") -> dict:
        """Plan-level metrics on one measure (see :mod:`terrmap.metrics` for the formulas)."""
        m = self.measures.index(measure)
        totals = self.totals[:, m]
        targets = None if self.targets is None else self.targets[:, m]
        comps = self.components()
        pp = metrics.polsby_popper(self.area, self.perimeter)
        return {
            "max_abs_deviation": metrics.max_abs_deviation(totals, targets),
            "cv": metrics.coefficient_of_variation(totals),
            "non_contiguous": int(np.sum(comps > 1)),
            "cut_edge_share": self.cut_edges / max(len(self.graph.edges), 1),
            "mean_polsby_popper": float(pp[self.region_counts > 0].mean()) if (self.region_counts > 0).any() else 0.0,
            "unassigned": int(np.sum(self.assignment < 0)),
        }


# ---------------------------------------------------------------------------
# Saving: optimistic concurrency, so two planners cannot silently overwrite each other.
# ---------------------------------------------------------------------------


class SaveConflict(Exception):
    """The plan was saved by someone else since it was loaded."""

    def __init__(self, plan_name: str, loaded_version: int, current_version: int, theirs: pd.DataFrame):
        self.plan_name = plan_name
        self.loaded_version = loaded_version
        self.current_version = current_version
        self.theirs = theirs  # their assignment: region_id, territory_id, locked
        super().__init__(
            f"plan {plan_name!r} was saved by someone else (version {current_version}, you loaded {loaded_version}): "
            "reload it, or merge your changes into theirs"
        )


def load_assignment(store: "Store", plan_id: int) -> pd.DataFrame:
    return store.cursor().execute(
        "SELECT region_id, territory_id, locked FROM plan_assignments WHERE plan_id = ? ORDER BY region_id", [plan_id]
    ).df()


def save_assignment(
    store: "Store",
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
    assignment = assignment[["region_id", "territory_id", "locked"]]
    with store.transaction() as tx:
        current = tx.execute("SELECT version FROM plans WHERE plan_id = ?", [plan.plan_id]).fetchall()
        if not current:
            raise ValueError(f"plan {plan.name!r} no longer exists")
        if current[0][0] != plan.version:
            theirs = tx.execute(
                "SELECT region_id, territory_id, locked FROM plan_assignments WHERE plan_id = ?", [plan.plan_id]
            ).df()
            raise SaveConflict(plan.name, plan.version, current[0][0], theirs)
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
        tx.execute("DELETE FROM plan_assignments WHERE plan_id = ?", [plan.plan_id])
        tx.register("saved_assignment", assignment)
        tx.execute("INSERT INTO plan_assignments SELECT ?, region_id, territory_id, locked FROM saved_assignment",
                   [plan.plan_id])
        tx.unregister("saved_assignment")
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


def merge_assignments(base: pd.DataFrame, mine: pd.DataFrame, theirs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Three-way merge by region: take each side's change; where both changed a region differently, theirs wins.

    Returns the merged assignment and the region ids where the two edits conflicted.
    """
    cols = ["territory_id", "locked"]

    def norm(df: pd.DataFrame) -> pd.DataFrame:
        return df.astype({"territory_id": "Int64", "locked": bool})

    base, mine, theirs = norm(base), norm(mine), norm(theirs)
    b = base.set_index("region_id")[cols]
    m = mine.set_index("region_id")[cols].reindex(b.index.union(mine.region_id))
    t = theirs.set_index("region_id")[cols].reindex(m.index.union(theirs.region_id))
    b = b.reindex(t.index)
    m = m.reindex(t.index)

    def changed(x):
        return ~((x.territory_id == b.territory_id) | (x.territory_id.isna() & b.territory_id.isna())) | (x.locked != b.locked)

    mine_changed, theirs_changed = changed(m), changed(t)
    merged = t.copy()
    take_mine = mine_changed & ~theirs_changed
    merged.loc[take_mine] = m.loc[take_mine]
    differ = (m.territory_id != t.territory_id) & ~(m.territory_id.isna() & t.territory_id.isna())
    conflicts = sorted(t.index[mine_changed & theirs_changed & differ].tolist())
    return merged.reset_index(), conflicts
