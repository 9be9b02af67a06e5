"""The territory editor's state on one plan, without Streamlit: what the Editor page shows and changes.

:class:`EditorState` wraps the planner's :class:`terrmap.plan.editor.EditorSession` with what the page
adds around it: the edit counter the panel and the map's overlay follow, the line saying what the last
action did, targets kept per measure, whether locks changed, a save conflict waiting for a choice, and
the saved plan's summary (for the "since the last save" deltas). Each action of the page (a gesture on
the map, undo, a hint, saving, territory edits) is one method; ``tests/test_editor_state.py`` drives them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from terrmap.plan import SaveConflict, Territory, list_plans
from terrmap.plan.editor import MEASURES as SESSION_MEASURES
from terrmap.plan.editor import EditorSession, summary_of
from terrmap.plan.gestures import Click, Gesture, Seen
from terrmap.plan.scenarios import derive_plan

if TYPE_CHECKING:
    from terrmap.data.store import Store

ERASER = -1  # "Unassign" in the palette: the value of the paint choice that unassigns
DEFAULT_TOLERANCE = 0.10

INFO, WARNING = ":material/info:", ":material/warning:"


@dataclass
class EditorState:
    """The page's state on one plan of one database (the session is re-bound on every page run)."""

    session: EditorSession
    rev: int = 0  # bumped by every processed gesture or change: the overlay's and the panel's counter
    epoch: int = 0  # bumped when the base map must be redrawn (new session, deleted territory)
    seen: Seen = field(default_factory=Seen)  # map reports handled already (see terrmap.plan.gestures)
    message: str | None = None
    icon: str | None = None
    locks_changed: bool = False
    targets: dict[str, dict[int, float]] = field(default_factory=dict)  # measure -> {territory_id: target}
    conflict: SaveConflict | None = None
    # The app's caches of the drawn map (its data, the click locator): kept with the state they show.
    base: Any = None
    geo: Any = None
    _saved: dict | None = None
    _hints: tuple | None = None

    @property
    def store(self) -> Store:
        return self.session.store

    @property
    def plan_id(self) -> int:
        return self.session.info.plan_id

    def notify(self, text: str, icon: str, bump: bool = True) -> None:
        self.message, self.icon = text, icon
        if bump:
            self.rev += 1

    # -- what the page shows -------------------------------------------------------------------------
    def territory_ids(self) -> list[int]:
        return [int(t) for t in self.session.terr["territory_id"].tolist()]

    def _area_territories(self) -> tuple[pd.Series, np.ndarray]:
        """The state of each region of the plan's area, and the index of its territory (-1: unassigned)."""
        groups = self.session.groups  # regions of the session only: every one has an index
        rows = self.session.region_indices(groups["region_id"])
        return groups["state"].reset_index(drop=True), self.session.plan.assignment[rows]

    def default_area(self, budget: int) -> list[str]:
        """The states the editor opens on: the plan's whole area when it has at most ``budget`` regions, else
        the states of its first territory (most of its regions first) that fit the budget together, at least
        one: a whole territory and its neighbours rather than a state that may hold none of the plan."""
        states, terr = self._area_territories()
        per_state = states.value_counts()
        if per_state.sum() <= budget or not len(per_state):
            return sorted(per_state.index)
        assigned = terr[terr >= 0]
        first = int(assigned.min()) if len(assigned) else None
        mine = states[terr == first] if first is not None else states
        chosen, total = [], 0
        for state in mine.value_counts().index:
            if not chosen or total + per_state[state] <= budget:
                chosen.append(state)
                total += int(per_state[state])
        return sorted(chosen)

    def territory_on_screen(self, area: Sequence[str]) -> int | None:
        """The territory with the most regions in ``area`` (the first in the plan on a tie): what the palette
        paints with when the page opens, so that the first click paints with a colour that is on screen."""
        states, terr = self._area_territories()
        shown = terr[states.isin(list(area)).to_numpy() & (terr >= 0)]
        if not len(shown):
            return None
        counts = np.bincount(shown)
        return self.territory_ids()[int(np.argmax(counts))]

    def active_territory(self, selected: int | None) -> int | None:
        """The territory painted with for the palette's choice ``selected`` (None: the eraser, or gone)."""
        if selected is None or selected == ERASER or selected not in set(self.territory_ids()):
            return None
        return int(selected)

    @property
    def unsaved(self) -> int:
        """Unsaved moves, plus one for changed locks."""
        return len(self.session.pending) + (1 if self.locks_changed else 0)

    def status_text(self) -> str:
        n = len(self.session.pending)
        state = f"{n:,} unsaved move{'s' if n != 1 else ''}" if n else "no unsaved moves"
        return state + (" · locks changed" if self.locks_changed else "")

    def region_count(self, territory_id: int) -> int:
        ses = self.session
        return int((ses.plan.assignment == ses.territory_index(territory_id)).sum())

    def equal_share(self, measure: str) -> float:
        p = self.session.plan
        return float(p.totals[:, SESSION_MEASURES.index(measure)].sum() / max(p.k, 1))

    def region_frame(self, visible: Sequence[str], places: pd.DataFrame | None = None) -> pd.DataFrame:
        """Per region in ``visible``: the stats the map shows (avg score from its sum and count), its
        territory and its place name."""
        ses = self.session
        rows = ses.region_indices(visible)
        vals = ses.plan.values[rows]
        col = {m: vals[:, i] for i, m in enumerate(SESSION_MEASURES)}
        with np.errstate(invalid="ignore", divide="ignore"):
            avg = np.where(col["scored_open"] > 0, col["score_sum"] / np.maximum(col["scored_open"], 1e-12), np.nan)
        a = ses.plan.assignment[rows]
        tid = ses.terr["territory_id"].to_numpy()
        frame = pd.DataFrame({
            "region_id": list(visible),
            "leads": col["leads"], "open_leads": col["open_leads"], "customers": col["customers"],
            "won_revenue": col["won_revenue"], "avg_score": avg, "potential": col["potential"],
            "territory_id": pd.Series(tid[np.maximum(a, 0)], dtype="Int64").where(a >= 0).astype("float"),
        })
        if places is not None and len(places):
            frame = frame.merge(places[["region_id", "place"]], on="region_id", how="left")
        else:
            frame["place"] = None
        return frame

    # -- targets, per measure --------------------------------------------------------------------------
    def sync_targets(self, measure: str) -> None:
        """Targets are kept per measure; the session's ``target`` column holds the current measure's."""
        ses = self.session
        if "potential" not in self.targets:  # the database stores revenue-potential targets
            self.targets["potential"] = {int(r.territory_id): float(r.target) for r in ses.terr.itertuples()
                                         if r.target is not None and pd.notna(r.target)}
        wanted = self.targets.get(measure, {})
        terr = ses.terr.copy()
        terr["target"] = [wanted.get(int(t), np.nan) for t in terr["territory_id"]]
        ses.terr = terr

    def target(self, measure: str, territory_id: int) -> float | None:
        return self.targets.get(measure, {}).get(territory_id)

    def set_target(self, measure: str, territory_id: int, target: float | None) -> None:
        """Set (None or 0: clear, an equal share then) the target of a territory on ``measure``."""
        targets = self.targets.setdefault(measure, {})
        if target:
            targets[territory_id] = float(target)
        else:
            targets.pop(territory_id, None)

    # -- gestures -------------------------------------------------------------------------------------
    def apply_to_regions(self, region_ids: Sequence[str], gesture: str, selected: int | None,
                         lock_mode: bool = False) -> None:
        """A gesture covering ``region_ids``: move them to the territory ``selected`` in the palette
        (:data:`ERASER`: unassign), or in lock mode lock them (unlock, if all are locked)."""
        ses = self.session
        if lock_mode:
            idx = ses.region_indices(region_ids)
            if not idx.size:
                self.message, self.icon = f"No region in this {gesture}.", INFO
            else:
                lock = not bool(ses.plan.locked[idx].all())
                n = ses.set_locked(region_ids, lock)
                self.locks_changed = True
                self.message = f"{'Locked' if lock else 'Unlocked'} {n:,} region{'s' if n != 1 else ''} ({gesture})"
                self.icon = ":material/lock:" if lock else ":material/lock_open:"
        elif selected not in (None, ERASER) and self.active_territory(selected) is None:
            self.message, self.icon = "Choose a territory to paint with first.", INFO
        elif not region_ids:
            self.message, self.icon = f"The {gesture} covers no region centre in view.", INFO
        else:
            report = ses.assign(region_ids, self.active_territory(selected), gesture=gesture)
            self.message, self.icon = report.text, ":material/swap_horiz:"
        self.rev += 1

    def apply_gesture(self, gesture: Gesture, visible: Sequence[str], selected: int | None,
                      lock_mode: bool = False) -> None:
        """A click or a drawn shape on the map showing ``visible`` (a shape covers regions whose centre
        is inside it, among those)."""
        if isinstance(gesture, Click):
            if gesture.region_id is None:
                self.notify("No region of this plan there.", INFO)
                return
            self.apply_to_regions([gesture.region_id], gesture.label, selected, lock_mode)
            return
        try:
            ids = self.session.layer.cover(self.store, gesture.feature, list(visible))
        except ValueError as exc:
            self.notify(str(exc), WARNING)
            return
        self.apply_to_regions(ids, gesture.label, selected, lock_mode)

    def apply_to_group(self, kind: str, code: str | None, selected: int | None, lock_mode: bool = False) -> None:
        """The gesture for a whole ``kind`` ("state": ``code`` a state code; "county": a county FIPS)."""
        groups = self.session.groups
        column = "state" if kind == "state" else "county_fips"
        ids = groups.loc[groups[column] == code, "region_id"].tolist() if code else []
        self.apply_to_regions(ids, "state" if kind == "state" else "county", selected, lock_mode)

    def undo(self) -> None:
        r = self.session.undo()
        self.notify(*((r.text, ":material/undo:") if r else ("Nothing to undo.", INFO)))

    def redo(self) -> None:
        r = self.session.redo()
        self.notify(*((r.text, ":material/redo:") if r else ("Nothing to redo.", INFO)))

    # -- hints ------------------------------------------------------------------------------------------
    def hints(self, measure: str) -> list:
        """The session's rebalance hints, computed once per state of the plan (edits bump ``rev``)."""
        key = (self.rev, self.epoch, measure, self.session.info.version)
        if self._hints is None or self._hints[0] != key:
            self._hints = (key, self.session.hints(measure))
        return self._hints[1]

    def no_hint_reason(self, measure: str) -> str:
        return self.session.no_hint_reason(measure)

    def hint_scale_note(self, measure: str) -> str | None:
        return self.session.hint_scale_note(self.hints(measure), measure)

    def apply_hint(self, k: int, measure: str) -> None:
        hints = self.hints(measure)
        if k < len(hints):
            r = self.session.apply_hint(hints[k])
            self.message, self.icon = r.text, ":material/tips_and_updates:"
        self.rev += 1

    # -- summaries ----------------------------------------------------------------------------------------
    def balance_table(self, measure: str) -> pd.DataFrame:
        """The session's balance table, with a column holding each territory's total on ``measure``."""
        table = self.session.balance_table(measure)
        if measure not in table:
            table[measure] = self.session.plan.totals[:, SESSION_MEASURES.index(measure)]
        return table

    def summary(self, measure: str) -> dict:
        return self.session.summary(measure)

    def saved_summary(self, measure: str) -> dict:
        """The saved plan's summary (for the deltas), computed once per save, measure and targets.

        Keyed on the session's plan object too: the page rebinds a new session when the data change (an
        import, a retrain), and a summary of the old numbers would show a change nobody made."""
        ses = self.session
        key = (id(ses.plan), ses.info.version, ses.plan.k, self.epoch)
        if self._saved is None or self._saved["key"] != key:
            self._saved = {"key": key, "plan": ses.saved_plan(), "by_measure": {}}
        by_measure = self._saved["by_measure"]
        targets = ses.chosen_targets()
        asked = (measure, targets.tobytes())  # a target set since: the saved plan is measured against it too
        if asked not in by_measure:
            by_measure[asked] = summary_of(self._saved["plan"], measure, targets)
        return by_measure[asked]

    # -- saving ---------------------------------------------------------------------------------------------
    def reset(self, session: EditorSession | None = None) -> None:
        """Start afresh on ``session`` (the saved plan reopened; None: keep the current one)."""
        if session is not None:
            self.session = session
        self.epoch += 1
        self.rev += 1
        self.locks_changed, self._saved, self.conflict, self.base = False, None, None, None
        self.targets = {}

    def save(self, author: str | None = None) -> bool:
        """Save the plan with the revenue-potential targets; False when someone saved it meanwhile
        (the conflict is kept for :meth:`merge` or :meth:`reload_theirs`)."""
        ses = self.session
        self.sync_targets("potential")
        try:
            info = ses.save(author=author or None)
        except SaveConflict as exc:
            self.conflict = exc
            self.notify(f"Not saved: {self.conflict.saver} saved this plan meanwhile.", WARNING)
            return False
        self.locks_changed, self._saved, self.conflict = False, None, None
        self.notify(f"Saved {info.name} (version {info.version}).", ":material/check_circle:")
        return True

    def territory_objects(self) -> list[Territory]:
        """The session's territories as saved with a new plan."""
        return [Territory(int(r.territory_id), str(r.name), str(r.color), r.rep_id if pd.notna(r.rep_id) else None,
                          float(r.target) if pd.notna(r.target) else None,
                          float(r.tolerance) if pd.notna(r.tolerance) else DEFAULT_TOLERANCE,
                          r.parent if pd.notna(r.parent) else None) for r in self.session.terr.itertuples()]

    def save_as(self, name: str | None, author: str | None = None) -> int | None:
        """Save territories and assignment as a new plan called ``name``; its id (None: not saved, the
        message says why). This plan stays as saved."""
        ses = self.session
        name = (name or "").strip()
        if not name:
            self.notify("Give the new plan a name.", WARNING, bump=False)
            return None
        if any(p.name == name for p in list_plans(self.store)):
            self.notify(f"A plan named {name} exists already.", WARNING, bump=False)
            return None
        self.sync_targets("potential")
        # Derived from the plan being edited, so its hierarchy, pins and overlays come along (as on the
        # optimizer and the scenarios page).
        return derive_plan(self.store, ses.info, name, self.territory_objects(), ses.assignment_frame(),
                           author=author, note=f"saved as, from {ses.info.name} in the editor",
                           description=f"Saved from {ses.info.name} in the editor").plan_id

    def discard(self, saved: EditorSession) -> None:
        """Drop the unsaved edits: go on with ``saved`` (the plan reopened)."""
        self.reset(saved)
        self.message, self.icon = "Discarded your unsaved edits: this is the saved plan.", ":material/restart_alt:"

    def reload_theirs(self, saved: EditorSession) -> None:
        self.discard(saved)
        self.message = "Loaded their version; your edits were discarded."

    def merge(self, author: str | None = None) -> bool:
        """Merge the edits into the version saved meanwhile and save; True when saved."""
        if self.conflict is None:
            return False
        self.sync_targets("potential")
        try:
            info, clashes = self.session.merge_and_save(self.conflict, author=author or None)
        except SaveConflict as exc:  # saved again meanwhile: merge into that one next time
            self.conflict = exc
            self.notify("They saved again meanwhile: merge once more.", WARNING)
            return False
        self.reset()
        text = f"Merged your edits into their version and saved (version {info.version})."
        if clashes:
            text += (f" {len(clashes):,} region{'s' if len(clashes) != 1 else ''} you both changed kept their "
                     f"territory: {', '.join(clashes[:8])}{' …' if len(clashes) > 8 else ''}.")
        self.message, self.icon = text, ":material/merge:"
        return True

    # -- territories --------------------------------------------------------------------------------------
    def update_territory(self, territory_id: int, measure: str, *, name: str, color: str, rep_id: str | None,
                         tolerance: float, tolerance_for_all: bool = False, target: float | None = None) -> bool:
        """Apply the territory form: name, colour, rep, tolerance (for all territories too), and the target
        on ``measure``; False when the form is refused (the message says why)."""
        ses = self.session
        try:
            ses.update_territory(territory_id, name=name, color=color, rep_id=rep_id or None, tolerance=tolerance)
        except ValueError as exc:
            self.notify(str(exc), WARNING)
            return False
        if tolerance_for_all:
            for other in self.territory_ids():
                ses.update_territory(other, tolerance=tolerance)
        self.set_target(measure, territory_id, target)
        self.notify(f"Updated territory {name}.", ":material/edit:")
        return True

    def add_territory(self, name: str | None, color: str | None = None, rep_id: str | None = None) -> int | None:
        """A new territory (its id; None: no name given)."""
        name = (name or "").strip()
        if not name:
            self.notify("Give the new territory a name.", WARNING)
            return None
        tid = self.session.add_territory(name, color or None)
        self.session.update_territory(tid, rep_id=rep_id or None)
        self.notify(f"Added territory {name}: paint regions into it.", ":material/add_circle:")
        return tid

    def delete_territory(self, territory_id: int) -> None:
        report = self.session.delete_territory(territory_id)
        for targets in self.targets.values():
            targets.pop(territory_id, None)
        self.message, self.icon = report.text + " (undo history cleared).", ":material/delete:"
        self.epoch += 1  # territory indices moved: draw the map afresh
        self.rev += 1
