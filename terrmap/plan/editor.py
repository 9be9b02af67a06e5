"""A planner's editing session on one plan: gestures, balance, hints, undo, saving.

An :class:`EditorSession` wraps a live :class:`terrmap.plan.Plan` (regions of
the plan's layer, per-region stats, the adjacency graph) with what a person
works with: territory ids and names instead of indices, a "what moved" line
after each gesture, a balance table, rebalance hints, and save/reload/merge
against the database. It holds no Streamlit state and is tested directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from terrmap.data.area import AREA_COLUMNS, area_regions
from terrmap.data.plans import plan_area
from terrmap.data.plans import rep_name as stored_rep_name
from terrmap.data.stats import region_stats
from terrmap.frames import member, sorted_union
from terrmap.geo import Layer, parse_layer
from terrmap.geo.graph import articulation_points
from terrmap.measures import fmt_money
from terrmap.plan import (
    UNASSIGNED,
    Plan,
    PlanInfo,
    SaveConflict,
    get_plan,
    load_assignment,
    merge_assignments,
    metrics,
    palette_color,
    save_assignment,
    territories,
)
from terrmap.plan.accounts import exceptions_by_region
from terrmap.plan.complete import ensure_complete

if TYPE_CHECKING:
    from terrmap.data.store import Store

# Additive per-region values the plan tallies; avg score = score_sum / scored_open.
MEASURES = ["leads", "open_leads", "customers", "won_revenue", "potential", "score_sum", "scored_open"]
HINT_PRECISION = 3  # decimals of a deviation as a hint shows it (+12.3%): a hint must change what it shows
# A hint list whose best move would need more repeats than this to bring the worst territory within tolerance
# comes with a pointer to a rebalance (one region at a time is the wrong tool for that gap).
HINT_NIBBLE_MOVES = 20
BALANCE_MEASURES = {"potential": "Revenue potential", "leads": "Leads", "open_leads": "Open leads",
                    "customers": "Customers", "won_revenue": "Won revenue"}


@dataclass
class MoveReport:
    regions: list[str]
    to_territory: int | None
    from_territories: dict[int | None, int]  # territory id -> regions taken from it
    potential: float
    leads: int
    text: str


@dataclass
class Hint:
    region_id: str
    from_territory: int
    to_territory: int
    improvement: float  # how much the move lowers the plan's worst deviation (max |dev|)
    text: str


@dataclass
class EditorSession:
    store: Store
    info: PlanInfo
    layer: Layer
    region_ids: list[str]
    plan: Plan
    terr: pd.DataFrame  # territory_id, name, color, rep_id, target, tolerance, parent (row order = plan index)
    saved_assignment: np.ndarray = field(default=None)
    # Named accounts taken out of their regions' tallies (see _named_accounts)
    pinned: dict = field(default_factory=lambda: _no_named_accounts())
    pending: list[dict] = field(default_factory=list)
    last_report: MoveReport | None = None
    # region_id, state, county_fips, county of the plan's area: what "a whole state / county" selects
    groups: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=AREA_COLUMNS))

    # -- loading --------------------------------------------------------------
    @classmethod
    def open(cls, store: Store, plan: PlanInfo | str | int | None = None, graph_for=None) -> EditorSession:
        """Load a plan for editing; ``graph_for(layer, region_ids)`` may supply the adjacency graph
        (a cache: building a ZIP graph takes seconds, and it is the same for every session)."""
        info = ensure_complete(store, plan) if isinstance(plan, PlanInfo) else get_plan(store, plan)
        if info is None:
            raise ValueError("no plan to edit: create one first")
        layer = parse_layer(info.layer)
        assign = load_assignment(store, info.plan_id)
        groups = area_regions(store, layer, plan_area(store, info.plan_id))
        stats = region_stats(store, layer)
        # The plan's regions are those of its area: populated regions elsewhere (another state's leads) are no
        # part of it; counted in, a Texas plan on H3 level 6 would open a graph of every populated cell of the
        # country (51k instead of 17k cells, 3 s instead of 0.5) and show them all as unassigned.
        in_area = member(stats["region_id"], groups["region_id"])
        ids = sorted_union(assign["region_id"], stats.loc[in_area, "region_id"])
        graph = graph_for(layer, ids) if graph_for is not None else layer.graph(store, ids)
        stats = stats.set_index("region_id").reindex(ids)
        stats["score_sum"] = (stats["avg_score"] * stats["open_leads"]).fillna(0)
        stats["scored_open"] = stats["open_leads"].where(stats["avg_score"].notna(), 0)
        values = stats[MEASURES].fillna(0).to_numpy(dtype=float)
        terr = territories(store, info.plan_id).reset_index(drop=True)
        index_of = {t: i for i, t in enumerate(terr["territory_id"])}
        a = assign.set_index("region_id").reindex(ids)
        idx = a["territory_id"].astype("Int64").map(index_of).fillna(UNASSIGNED).to_numpy(dtype=np.int64)
        locked = a["locked"].fillna(False).to_numpy(dtype=bool)
        pinned = _named_accounts(store, info, graph.index, index_of)
        np.subtract.at(values, pinned["region"], pinned["values"])  # owned by exception: not the region's
        offsets = np.zeros((len(terr), len(MEASURES)))
        to_territory = pinned["territory"] >= 0
        np.add.at(offsets, pinned["territory"][to_territory], pinned["values"][to_territory])
        plan_obj = Plan(graph, values, MEASURES, idx, len(terr), locked=locked, offsets=offsets)
        ses = cls(store, info, layer, ids, plan_obj, terr, saved_assignment=idx.copy())
        ses.pinned = pinned
        ses.groups = groups[member(groups["region_id"], ses.index)].reset_index(drop=True)
        return ses

    # -- ids <-> indices ---------------------------------------------------------
    @property
    def index(self) -> dict[str, int]:
        return self.plan.graph.index

    def region_indices(self, region_ids: Iterable[str]) -> np.ndarray:
        idx = self.index
        return np.array([idx[r] for r in region_ids if r in idx], dtype=np.int64)

    def territory_index(self, territory_id: int | None) -> int:
        if territory_id is None:
            return UNASSIGNED
        hits = np.flatnonzero(self.terr["territory_id"].to_numpy() == territory_id)
        if not hits.size:
            raise ValueError(f"no territory {territory_id} in plan {self.info.name!r}")
        return int(hits[0])

    def territory_id(self, index: int) -> int | None:
        return None if index < 0 else int(self.terr["territory_id"].iat[index])

    def territory_ids(self, indices: Iterable[int]) -> list[int | None]:
        """:meth:`territory_id` of many indices at once (a national plan's 30k regions: one lookup each in
        pandas takes a second)."""
        tid = self.terr["territory_id"].to_numpy().tolist()
        return [None if i < 0 else int(tid[i]) for i in indices]

    def territory_name(self, territory_id: int | None) -> str:
        if territory_id is None:
            return "Unassigned"
        return str(self.terr.loc[self.terr["territory_id"] == territory_id, "name"].iat[0])

    def assignment_of(self, region_ids: Sequence[str]) -> dict[str, int | None]:
        index = self.index
        present = [r for r in region_ids if r in index]
        at = self.plan.assignment[np.array([index[r] for r in present], dtype=np.int64)].tolist()
        return dict(zip(present, self.territory_ids(at)))

    def assignment_frame(self) -> pd.DataFrame:
        tid = self.terr["territory_id"].to_numpy()
        a = self.plan.assignment
        return pd.DataFrame({
            "region_id": self.region_ids,
            "territory_id": pd.Series(tid[np.maximum(a, 0)], dtype="Int64").where(a >= 0),
            "locked": self.plan.locked,
        })

    # -- gestures --------------------------------------------------------------
    def assign(self, region_ids: Sequence[str], territory_id: int | None, gesture: str = "edit") -> MoveReport:
        """Move regions to a territory (None: unassign). Locked regions stay; returns what moved."""
        to = self.territory_index(territory_id)
        move = self.plan.flip(self.region_indices(region_ids), to)
        moved_ids = [self.region_ids[i] for i in move.regions.tolist()]
        from_counts: dict[int | None, int] = {}
        for tid in self.territory_ids(move.before.tolist()):
            from_counts[tid] = from_counts.get(tid, 0) + 1
        pot = float(move.moved[MEASURES.index("potential")])
        leads = int(move.moved[MEASURES.index("leads")])
        skipped = len(set(region_ids) & set(self.index)) - len(moved_ids)
        report = MoveReport(moved_ids, territory_id, from_counts, pot, leads,
                            self._move_text(moved_ids, territory_id, from_counts, pot, skipped))
        if moved_ids:
            self.pending.append({"regions": moved_ids, "from_territory": _single(from_counts), "to_territory": territory_id,
                                 "potential_moved": pot, "gesture": gesture})
        self.last_report = report
        return report

    def _move_text(self, moved, to, from_counts, pot, skipped) -> str:
        if not moved:
            return "Nothing moved" + (f" ({skipped} locked or already there)" if skipped else "") + "."
        sources = ", ".join(f"{self.territory_name(t)} ({n})" for t, n in sorted(from_counts.items(), key=lambda x: -x[1]))
        text = (f"{len(moved)} region{'s' if len(moved) != 1 else ''}, {fmt_money(pot)} potential: {sources} → "
                f"{self.territory_name(to)}")
        if skipped:
            text += f" · {skipped} locked or already there"
        return text

    def undo(self) -> MoveReport | None:
        move = self.plan.undo()
        if move is None:
            return None
        ids = [self.region_ids[i] for i in move.regions.tolist()]
        if self.pending and self.pending[-1]["gesture"] != "undo":
            self.pending.pop()  # a move made since the save: undone, it is no change any more
        else:
            # A move saved already (or the plan as it was before an earlier undo of a saved move): undoing it
            # changes the plan from the saved one, so it is a pending change itself, and the summary's
            # "since the last save" and the "unsaved moves" line say the same.
            before = dict.fromkeys(self.territory_ids(move.before.tolist()), 1)
            self.pending.append({"regions": ids, "from_territory": self.territory_id(move.to),
                                 "to_territory": _single(before),
                                 "potential_moved": float(move.moved[MEASURES.index("potential")]), "gesture": "undo"})
        self.last_report = MoveReport(ids, None, {}, float(move.moved[MEASURES.index("potential")]), 0,
                                      f"Undone: {len(ids)} region{'s' if len(ids) != 1 else ''} back")
        return self.last_report

    def redo(self) -> MoveReport | None:
        move = self.plan.redo()
        if move is None:
            return None
        ids = [self.region_ids[i] for i in move.regions.tolist()]
        to = self.territory_id(move.to)
        if self.pending and self.pending[-1]["gesture"] == "undo":
            self.pending.pop()  # redoing a saved move that was undone: back to the saved plan
        else:
            self.pending.append({"regions": ids, "from_territory": None, "to_territory": to,
                                 "potential_moved": float(move.moved[MEASURES.index("potential")]), "gesture": "redo"})
        self.last_report = MoveReport(ids, to, {}, float(move.moved[MEASURES.index("potential")]), 0,
                                      f"Redone: {len(ids)} region{'s' if len(ids) != 1 else ''} → {self.territory_name(to)}")
        return self.last_report

    def set_locked(self, region_ids: Sequence[str], locked: bool) -> int:
        idx = self.region_indices(region_ids)
        self.plan.set_locked(idx, locked)
        return int(idx.size)

    # -- territories (the palette) -------------------------------------------------
    def add_territory(self, name: str, color: str | None = None, rep_id: str | None = None) -> int:
        new_id = int(self.terr["territory_id"].max()) + 1 if len(self.terr) else 1
        self.plan.add_territory()
        row = {"plan_id": self.info.plan_id, "territory_id": new_id, "name": name,
               "color": color or palette_color(len(self.terr)), "rep_id": rep_id, "target": None,
               "tolerance": 0.10, "parent": None}
        self.terr = pd.concat([self.terr, pd.DataFrame([row])], ignore_index=True)
        return new_id

    def update_territory(self, territory_id: int, **fields) -> None:
        """Rename, recolour, set the rep, target or tolerance of a territory (saved with the plan).

        Accepted fields: name, color, rep_id (also sets rep_name from the reps table), target
        (None: an equal share), tolerance (a fraction: 0.1 = ±10%).
        """
        allowed = {"name", "color", "rep_id", "target", "tolerance"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown territory fields: {sorted(unknown)}")
        i = self.territory_index(territory_id)
        terr = self.terr.copy()
        for col in ("rep_name", "target", "tolerance"):
            if col not in terr:
                terr[col] = None
        terr["target"] = terr["target"].astype(float)
        terr["tolerance"] = terr["tolerance"].astype(float)
        terr["rep_name"] = terr["rep_name"].astype(object)
        terr["rep_id"] = terr["rep_id"].astype(object)
        if "name" in fields:
            name = str(fields["name"]).strip()
            if not name:
                raise ValueError("a territory needs a name")
            terr.loc[i, "name"] = name
        if "color" in fields:
            terr.loc[i, "color"] = str(fields["color"])
        if "rep_id" in fields:
            rep = fields["rep_id"] or None
            rep_name = None
            if rep is not None:
                rep_name = stored_rep_name(self.store, rep)
                if rep_name is None:
                    raise ValueError(f"no rep {rep!r}")
            terr.at[i, "rep_id"] = rep
            terr.at[i, "rep_name"] = rep_name
        if "target" in fields:
            t = fields["target"]
            terr.loc[i, "target"] = np.nan if t is None or (isinstance(t, float) and np.isnan(t)) else float(t)
        if "tolerance" in fields:
            tol = float(fields["tolerance"])
            if not 0 <= tol <= 10:
                raise ValueError("tolerance is a fraction, e.g. 0.1 for ±10%")
            terr.loc[i, "tolerance"] = tol
        self.terr = terr

    def delete_territory(self, territory_id: int) -> MoveReport:
        """Remove a territory; its regions become unassigned (and unlocked). Clears undo/redo history."""
        t = self.territory_index(territory_id)
        name = self.territory_name(territory_id)
        p = self.plan
        members = np.flatnonzero(p.assignment == t)
        p.set_locked(members, False)
        report = self.assign([self.region_ids[i] for i in members.tolist()], None, gesture="delete")
        keep = np.arange(p.k) != t
        remap = np.cumsum(keep) - 1
        remap[t] = UNASSIGNED

        def reindex(a: np.ndarray) -> np.ndarray:
            return np.where(a >= 0, remap[np.maximum(a, 0)], UNASSIGNED)

        # Accounts pinned to the deleted territory fall back to an overlay that claims them (still out of the
        # geographic tallies), else to geography: back into their regions' tallies.
        orphaned = self.pinned["territory"] == t
        if orphaned.any():
            back = orphaned & ~self.pinned["overlay_behind"]
            regions, vals = self.pinned["region"][back], self.pinned["values"][back]
            np.add.at(p.values, regions, vals)
            owner = p.assignment[regions]
            np.add.at(p.totals, owner[owner >= 0], vals[owner >= 0])
            p.offsets[t] = 0.0
            self.pinned = {k: v[~back] for k, v in self.pinned.items()}
            self.pinned["territory"][self.pinned["territory"] == t] = UNASSIGNED
        self.pinned["territory"] = reindex(self.pinned["territory"])
        p.assignment = reindex(p.assignment)
        p.offsets = p.offsets[keep]
        p.totals = p.totals[keep]
        p.region_counts = p.region_counts[keep]
        p.perimeter = p.perimeter[keep]
        p.area = p.area[keep]
        if p.targets is not None:
            p.targets = p.targets[keep]
        p._pieces = {int(remap[k]): v for k, v in p._pieces.items() if k != t}
        p.k -= 1
        p.undo_stack.clear()
        p.redo_stack.clear()
        self.saved_assignment = reindex(self.saved_assignment)
        self.terr = self.terr[keep].reset_index(drop=True)
        n = len(report.regions)
        report.text = f"Deleted territory {name}: {n} region{'s' if n != 1 else ''} now unassigned"
        self.last_report = report
        return report

    @classmethod
    def open_with_graph(cls, store: Store, plan: PlanInfo | str | int | None = None, graph_for=None) -> EditorSession:
        """:meth:`open` with a graph provider (kept for the page's call)."""
        return cls.open(store, plan, graph_for=graph_for)

    # -- balance --------------------------------------------------------------
    def targets(self, measure: str) -> np.ndarray:
        """Target per territory on ``measure``: the set target, else an equal share of the total."""
        return targets_of(self.plan, measure, self.chosen_targets())

    def chosen_targets(self) -> np.ndarray:
        """The targets set per territory (NaN where none is set)."""
        if "target" in self.terr:
            return self.terr["target"].to_numpy(dtype=float)
        return np.full(len(self.terr), np.nan)

    def balance_table(self, measure: str = "potential") -> pd.DataFrame:
        p = self.plan
        col = {m: p.totals[:, i] for i, m in enumerate(MEASURES)}
        j = MEASURES.index(measure)
        saved_totals = metrics.territory_totals(p.values[:, j], self.saved_assignment, p.k, p.offsets[:, j])
        tgt = self.targets(measure)
        dev, tol = self._deviation_and_tolerance(measure)
        with np.errstate(invalid="ignore", divide="ignore"):
            avg_score = np.where(col["scored_open"] > 0, col["score_sum"] / col["scored_open"], np.nan)
        return pd.DataFrame({
            "territory_id": self.terr["territory_id"].to_numpy(),
            "territory": self.terr["name"].to_numpy(),
            "color": self.terr["color"].to_numpy(),
            "rep": self.terr["rep_name"].to_numpy() if "rep_name" in self.terr else None,
            "regions": p.region_counts,
            "leads": col["leads"].astype(int),
            "avg_score": avg_score,
            "potential": col["potential"],
            "customers": col["customers"].astype(int),
            "target": tgt,
            "deviation": dev,
            "tolerance": tol,
            "within_tolerance": np.abs(dev) <= tol + 1e-12,
            "pieces": p.components(),
            "change_since_save": col[measure] - saved_totals,
        })

    def water_report(self) -> pd.DataFrame:
        """The territories in pieces by water, with their shortest water crossing
        (:func:`terrmap.plan.partition.water_report`)."""
        return self.plan.water_report(self.terr["name"].to_numpy())

    def summary(self, measure: str = "potential") -> dict:
        s = summary_of(self.plan, measure, self.chosen_targets())
        s["unsaved_edits"] = len(self.pending)
        return s

    def saved_plan(self) -> Plan:
        """The plan as last saved (same regions, territories and named accounts; the saved assignment)."""
        p = self.plan
        return Plan(p.graph, p.values, MEASURES, self.saved_assignment, p.k, offsets=p.offsets.copy())

    # -- rebalance hints ---------------------------------------------------------
    def _deviation_and_tolerance(self, measure: str) -> tuple[np.ndarray, np.ndarray]:
        """Each territory's deviation from its target on ``measure`` now, and its tolerance (default ±10%)."""
        dev = metrics.deviations(self.plan.totals[:, MEASURES.index(measure)], self.targets(measure))
        return dev, self.terr["tolerance"].fillna(0.10).to_numpy(dtype=float)

    def hints(self, measure: str = "potential", n: int = 5, worst: int = 3) -> list[Hint]:
        """Border moves that most reduce the plan's worst deviation (max |dev| over the territories).

        For each of the ``worst`` territories outside tolerance, every unlocked region on its border with a
        neighbour territory is a candidate move (either direction across that border); a move is kept only if
        the region is not an articulation point of the territory it leaves (so that territory stays in one
        piece), if it lowers the worst deviation, and if both territories' deviations change at the precision
        the hint shows them (:data:`HINT_PRECISION`): a hint that reads "+128% → +128%" does nothing one can see.
        Candidates are ranked by how much they lower the worst deviation. :meth:`no_hint_reason` says why
        there is none.
        """
        p = self.plan
        m = MEASURES.index(measure)
        totals = p.totals[:, m].copy()
        tgt = self.targets(measure)
        dev, tol = self._deviation_and_tolerance(measure)
        out_of = [t for t in np.argsort(-np.abs(dev)).tolist() if abs(dev[t]) > tol[t]][:worst]
        if not out_of:
            return []
        edges = p.graph.edges
        a, b = p.assignment[edges[:, 0]], p.assignment[edges[:, 1]]
        border = (a != b) & (a >= 0) & (b >= 0)
        pairs = np.concatenate([np.column_stack([edges[border, 0], b[border]]),
                                np.column_stack([edges[border, 1], a[border]])])  # (region, neighbour territory)
        pairs = np.unique(pairs, axis=0)
        frm = p.assignment[pairs[:, 0]]
        focus = np.isin(frm, out_of) | np.isin(pairs[:, 1], out_of)
        pairs, frm = pairs[focus], frm[focus]
        pairs_ok = ~p.locked[pairs[:, 0]]
        pairs, frm = pairs[pairs_ok], frm[pairs_ok]
        if not len(pairs):
            return []
        v = p.values[pairs[:, 0], m]
        to = pairs[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            new_from = np.where(tgt[frm] > 0, (totals[frm] - v - tgt[frm]) / tgt[frm], 0.0)
            new_to = np.where(tgt[to] > 0, (totals[to] + v - tgt[to]) / tgt[to], 0.0)
        # The worst deviation after a move: the two territories' new ones, or the worst of the others (among the
        # three largest, at least one is neither of the two).
        absdev = np.abs(dev)
        top = np.argsort(-absdev)[:3]
        others = np.zeros(len(pairs))
        for t in top[::-1].tolist():
            others = np.where((frm != t) & (to != t), absdev[t], others)
        worst_after = np.maximum(others, np.maximum(np.abs(new_from), np.abs(new_to)))
        gain = float(absdev.max()) - worst_after
        visible = ((np.round(dev[frm], HINT_PRECISION) != np.round(new_from, HINT_PRECISION))
                   & (np.round(dev[to], HINT_PRECISION) != np.round(new_to, HINT_PRECISION)))
        order = np.argsort(-gain, kind="stable")
        cut_cache: dict[int, set[int]] = {}
        hints: list[Hint] = []
        used: set[int] = set()
        shown = f"+.{HINT_PRECISION - 2}%"
        for k in order.tolist():
            if gain[k] < 10 ** -HINT_PRECISION or len(hints) >= n:
                break
            r, t_from, t_to = int(pairs[k, 0]), int(frm[k]), int(to[k])
            if r in used or not visible[k]:
                continue
            if t_from not in cut_cache:
                cut_cache[t_from] = articulation_points(p.graph.adjacency, np.flatnonzero(p.assignment == t_from))
            if r in cut_cache[t_from]:
                continue
            used.add(r)
            f_id, t_id = self.territory_id(t_from), self.territory_id(t_to)
            text = (f"Move {self.region_ids[r]} ({fmt_money(v[k]) if measure in ('potential', 'won_revenue') else int(v[k])}) "
                    f"{self.territory_name(f_id)} → {self.territory_name(t_id)}: "
                    f"{self.territory_name(f_id)} {dev[t_from]:{shown}} → {new_from[k]:{shown}}, "
                    f"{self.territory_name(t_id)} {dev[t_to]:{shown}} → {new_to[k]:{shown}}")
            hints.append(Hint(self.region_ids[r], f_id, t_id, float(gain[k]), text))
        return hints

    def no_hint_reason(self, measure: str = "potential") -> str:
        """Why :meth:`hints` has nothing to offer: every territory within tolerance; regions unassigned (assign
        them first); or no single border move lowers the worst deviation visibly (the territories over and under
        target are not neighbours, or the regions between them are too heavy or locked): a rebalance then."""
        dev, tol = self._deviation_and_tolerance(measure)
        if not (np.abs(dev) > tol + 1e-12).any():
            return "Every territory is within tolerance."
        unassigned = int((self.plan.assignment < 0).sum())
        if unassigned:
            return (f"{unassigned:,} region{'s are' if unassigned != 1 else ' is'} unassigned: assign "
                    f"{'them' if unassigned != 1 else 'it'} first (paint, or a whole state or county).")
        return ("No single border move helps: the territories over and under target are not neighbours (or the "
                "regions between them are locked or too heavy). Run a rebalance on the Optimizer page.")

    def hint_scale_note(self, hints: list[Hint], measure: str = "potential") -> str | None:
        """When even the best hint barely dents the imbalance (it would take more than
        :data:`HINT_NIBBLE_MOVES` such moves to bring the worst territory within tolerance), say so and point
        to a rebalance; None when the hints are worth making one by one."""
        if not hints:
            return None
        dev, tol = self._deviation_and_tolerance(measure)
        worst = int(np.argmax(np.abs(dev)))
        beyond = float(abs(dev[worst]) - tol[worst])
        best = max(h.improvement for h in hints)
        if beyond <= 0 or best * HINT_NIBBLE_MOVES >= beyond:
            return None
        return (f"Each of these moves changes little: the best lowers the worst deviation by {best * 100:.1f} pts, "
                f"and {self.territory_name(self.territory_id(worst))} is {beyond * 100:.0f} pts beyond its "
                f"tolerance. A rebalance on the Optimizer page moves many regions at once.")

    def apply_hint(self, hint: Hint) -> MoveReport:
        return self.assign([hint.region_id], hint.to_territory, gesture="hint")

    # -- saving -----------------------------------------------------------------
    def save(self, author: str | None = None) -> PlanInfo:
        """Save the assignment (raises SaveConflict if someone saved meanwhile; nothing is written then)."""
        self.info = save_assignment(self.store, self.info, self.assignment_frame(), self.pending, author=author,
                                    territories=self.terr)
        self.saved_assignment = self.plan.assignment.copy()
        self.pending = []
        return self.info

    def merge_and_save(self, conflict: SaveConflict, author: str | None = None) -> tuple[PlanInfo, list[str]]:
        """Merge this session's edits into the version someone else saved, then save; returns conflicting regions."""
        base = pd.DataFrame({"region_id": self.region_ids, "locked": False,
                             "territory_id": pd.array(self.territory_ids(self.saved_assignment.tolist()),
                                                      dtype="Int64")})
        merged, conflicts = merge_assignments(base, self.assignment_frame(), conflict.theirs)
        current = get_plan(self.store, self.info.plan_id)
        self.info = save_assignment(self.store, current, merged, self.pending, author=author, territories=self.terr)
        fresh = EditorSession.open(self.store, self.info)
        self.__dict__.update(fresh.__dict__)
        return self.info, conflicts


def _single(counts: dict) -> int | None:
    return next(iter(counts)) if len(counts) == 1 else None


def targets_of(plan: Plan, measure: str, set_targets: np.ndarray) -> np.ndarray:
    """Target per territory: the set target, else an equal share of the plan's total on ``measure``."""
    totals = plan.totals[:, MEASURES.index(measure)]
    mean = totals.sum() / max(len(totals), 1)
    return np.where(np.isfinite(set_targets), set_targets, mean)


def summary_of(plan: Plan, measure: str, set_targets: np.ndarray) -> dict:
    """The plan-level KPIs the editor shows (the current plan and the saved one alike, so a delta of zero
    means no change)."""
    s = plan.summary(measure)
    s["max_abs_deviation"] = metrics.max_abs_deviation(
        plan.totals[:, MEASURES.index(measure)], targets_of(plan, measure, set_targets))
    return s


def _no_named_accounts() -> dict:
    return {"region": np.zeros(0, dtype=np.int64), "territory": np.zeros(0, dtype=np.int64),
            "overlay_behind": np.zeros(0, dtype=bool), "values": np.zeros((0, len(MEASURES)))}


def _named_accounts(store: Store, info: PlanInfo, region_index: dict, territory_index: dict) -> dict:
    """Accounts owned by exception, per (region, owner), as arrays: their region's index, the index of the
    territory they are pinned to (UNASSIGNED for an overlay team: owned outside the geographic plan), whether
    an overlay would own a pinned account without its pin, and their values on MEASURES. Overlay claims are
    decided on the plan as opened (an overlay limited to some
    territories keeps its accounts while their regions move in the session)."""
    exc = exceptions_by_region(store, info)
    exc = exc[member(exc["region_id"], region_index)]
    if exc.empty:
        return _no_named_accounts()
    territory = [territory_index.get(int(o), UNASSIGNED) if rule == "pin" else UNASSIGNED
                 for rule, o in zip(exc["rule"], exc["owner_id"])]
    return {"region": np.array([region_index[r] for r in exc["region_id"]], dtype=np.int64),
            "territory": np.array(territory, dtype=np.int64),
            "overlay_behind": exc["overlay_behind"].to_numpy(dtype=bool),
            "values": exc[MEASURES].to_numpy(dtype=float)}
