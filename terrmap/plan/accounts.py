"""Who owns each account: geography, segment overlays and named-account pins.

Three kinds of claim can fall on one account (a lead) in a plan:

* **geography**: the territory its region is assigned to (``plan_assignments``);
* **overlay**: a segment team (``overlays``) claims every account matching its
  :class:`OverlayRule` (e.g. employees >= 1000) whose geographic territory is in
  the overlay's ``territories`` (NULL: anywhere, unassigned regions included);
* **pin**: a named account given to a territory regardless of geography
  (``account_pins``), an exception a planner makes on purpose.

Resolution, strongest first: a pin; then the overlay with the highest
``priority`` (ties: the lowest ``overlay_id``); then geography. Every account
has at most one owner, so metrics per owner (:func:`territory_metrics`) count
each account once, where it is owned. Accounts claimed more than once are
listed with their claims and how the tie was resolved by :func:`overlap_report`.

A rule condition on a value the account lacks (employees or revenue unknown) is
not met: an overlay never claims an account it cannot show belongs to it.

Everything is computed in DuckDB from the leads (well under a second for 200k
leads) by :mod:`terrmap.data.accounts` (the SQL; re-exported here: :func:`account_owners`,
:func:`territory_metrics`, :func:`exceptions_by_region`, :func:`overlap_report`,
:func:`list_pins`); the measures follow :mod:`terrmap.data.stats` (``leads``, ``open_leads``,
``customers``, ``won_revenue``, ``avg_score``, ``potential``). This module holds the rules
and the checks before every change.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from terrmap.data import accounts as stored
from terrmap.data.accounts import (
    NO_OWNER,
    OWNER_COLUMNS,
    account_owners,
    exceptions_by_region,
    list_pins,
    overlap_report,
    owner_changes,
    territory_metrics,
)
from terrmap.plan import palette_color

if TYPE_CHECKING:
    from terrmap.data.store import Store

OWNER_KINDS = ("territory", "overlay")
RULES = ("pin", "overlay", "geography", "unassigned")

__all__ = [
    "METRIC_COLUMNS", "NO_OWNER", "OWNER_COLUMNS", "OWNER_KINDS", "RULES", "OverlayRule", "account_owners", "delete_overlay",
    "exceptions_by_region", "list_overlays", "list_pins", "overlap_report", "owner_changes", "pin_account", "save_overlay",
    "territory_metrics", "unpin_account",
]
METRIC_COLUMNS = ["leads", "open_leads", "customers", "won_revenue", "potential", "avg_score", "regions"]


# ---------------------------------------------------------------------------
# Overlay rules
# ---------------------------------------------------------------------------


@dataclass
class OverlayRule:
    """Which accounts a segment overlay claims: every condition set must hold (bounds inclusive)."""

    min_employees: int | None = None
    max_employees: int | None = None
    min_annual_revenue: float | None = None
    industries: list[str] | None = field(default=None)

    def __post_init__(self) -> None:
        for name in ("min_employees", "max_employees"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, bool) or not float(value).is_integer() or value < 0:
                    raise ValueError(f"overlay rule: {name} must be a whole number >= 0, got {value!r}")
                setattr(self, name, int(value))
        if self.min_annual_revenue is not None:
            value = float(self.min_annual_revenue)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"overlay rule: min_annual_revenue must be a number >= 0, got {self.min_annual_revenue!r}")
            self.min_annual_revenue = value
        if self.industries is not None:
            if isinstance(self.industries, str) or not all(isinstance(i, str) and i.strip() for i in self.industries):
                raise ValueError(f"overlay rule: industries must be a list of industry names, got {self.industries!r}")
            self.industries = sorted({i.strip() for i in self.industries})
            if not self.industries:
                raise ValueError("overlay rule: industries, when given, must name at least one industry")
        if (self.min_employees is not None and self.max_employees is not None
                and self.min_employees > self.max_employees):
            raise ValueError(
                f"overlay rule: min_employees ({self.min_employees}) is above max_employees ({self.max_employees})"
            )
        if self.is_empty():
            raise ValueError("overlay rule: set at least one condition (employees, annual revenue or industries); "
                             "an overlay without one would claim every account")

    def is_empty(self) -> bool:
        return all(v is None for v in (self.min_employees, self.max_employees, self.min_annual_revenue, self.industries))

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in self.__dict__.items() if v is not None}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | dict) -> OverlayRule:
        data = json.loads(text) if isinstance(text, str) else dict(text)
        unknown = set(data) - {"min_employees", "max_employees", "min_annual_revenue", "industries"}
        if unknown:
            raise ValueError(f"overlay rule: unknown condition(s) {sorted(unknown)}")
        return cls(**data)

    def describe(self) -> str:
        """The rule as a person reads it, e.g. ``employees >= 1000, industry in Software``."""
        parts = []
        if self.min_employees is not None and self.max_employees is not None:
            parts.append(f"employees {self.min_employees:,}-{self.max_employees:,}")
        elif self.min_employees is not None:
            parts.append(f"employees >= {self.min_employees:,}")
        elif self.max_employees is not None:
            parts.append(f"employees <= {self.max_employees:,}")
        if self.min_annual_revenue is not None:
            parts.append(f"annual revenue >= {self.min_annual_revenue:,.0f}")
        if self.industries:
            parts.append("industry in " + ", ".join(self.industries))
        return ", ".join(parts)


# ---------------------------------------------------------------------------
# Ownership
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Named-account pins
# ---------------------------------------------------------------------------


def _require_plan(con, plan_id: int) -> None:
    if not stored.plan_exists(con, plan_id):
        raise ValueError(f"plan {plan_id} does not exist")


def _require_territories(con, plan_id: int, territory_ids: Iterable[int], what: str) -> None:
    ids = [int(t) for t in territory_ids]
    known = stored.territory_ids(con, plan_id)
    unknown = sorted(set(ids) - known)
    if unknown:
        raise ValueError(f"{what}: territory {', '.join(map(str, unknown))} is not in plan {plan_id} "
                         f"(its territories are {', '.join(map(str, sorted(known))) or 'none'})")


def _require_rep(con, rep_id: str | None, what: str) -> None:
    if rep_id is not None and not stored.rep_exists(con, rep_id):
        raise ValueError(f"{what}: rep {rep_id!r} does not exist")


def pin_account(store: Store, plan_id: int, lead_id: str, territory_id: int, reason: str | None = None) -> None:
    """Give the account ``lead_id`` to ``territory_id`` regardless of geography (replaces an earlier pin)."""
    with store.transaction() as tx:
        _require_plan(tx, plan_id)
        if not stored.lead_exists(tx, lead_id):
            raise ValueError(f"pin: account (lead_id) {lead_id!r} does not exist")
        _require_territories(tx, plan_id, [territory_id], f"pin {lead_id!r}")
        stored.upsert_pin(tx, plan_id, lead_id, int(territory_id), (reason or "").strip() or None)


def unpin_account(store: Store, plan_id: int, lead_id: str) -> None:
    """Let geography (or an overlay) decide the account's owner again."""
    with store.transaction() as tx:
        if not stored.pin_exists(tx, plan_id, lead_id):
            raise ValueError(f"unpin: account {lead_id!r} is not pinned in plan {plan_id}")
        stored.delete_pin(tx, plan_id, lead_id)


# ---------------------------------------------------------------------------
# Segment overlays
# ---------------------------------------------------------------------------


def save_overlay(
    store: Store,
    plan_id: int,
    name: str,
    rule: OverlayRule,
    rep_id: str | None = None,
    territories: Iterable[int] | None = None,
    priority: int = 0,
    color: str | None = None,
    overlay_id: int | None = None,
) -> int:
    """Create an overlay (``overlay_id`` None) or replace an existing one; returns its id.

    ``territories``: the geographic territories it covers (None: all of them).
    Higher ``priority`` wins where overlays overlap. ``rep_id`` is its owner, required: the rep (or a team
    stored as a rep) whose call list, exports and KPIs hold its accounts, so no account it takes is ownerless.
    """
    name = (name or "").strip()
    if not name:
        raise ValueError("overlay: a name is required")
    if rep_id is None or not str(rep_id).strip():
        raise ValueError(f"overlay {name!r}: give it an owner (a rep, or a team added as a rep): its accounts "
                         "would otherwise have nobody in the CRM export and on no rep's call list")
    if not isinstance(rule, OverlayRule):
        raise ValueError(f"overlay {name!r}: rule must be an OverlayRule, got {type(rule).__name__}")
    if isinstance(priority, bool) or not float(priority).is_integer():
        raise ValueError(f"overlay {name!r}: priority must be a whole number, got {priority!r}")
    terr_list = None if territories is None else sorted({int(t) for t in territories})
    if terr_list is not None and not terr_list:
        raise ValueError(f"overlay {name!r}: give at least one territory, or None for all of them")
    with store.transaction() as tx:
        _require_plan(tx, plan_id)
        _require_rep(tx, rep_id, f"overlay {name!r}")
        if terr_list is not None:
            _require_territories(tx, plan_id, terr_list, f"overlay {name!r}")
        clash = stored.overlay_named(tx, plan_id, name, other_than=overlay_id)
        if clash is not None:
            raise ValueError(f"overlay: plan {plan_id} already has an overlay named {name!r} (id {clash})")
        if overlay_id is None:
            overlay_id = stored.next_overlay_id(tx, plan_id)
            # overlays share the map with territories: start their colours at the far end of the palette
            color = color or palette_color(-overlay_id)
        else:
            old = stored.overlay_color(tx, plan_id, overlay_id)
            if old is None:
                raise ValueError(f"overlay {overlay_id} does not exist in plan {plan_id}")
            color = color or old[0] or palette_color(-int(overlay_id))
            stored.delete_overlay_row(tx, plan_id, overlay_id)
        stored.insert_overlay(tx, plan_id, int(overlay_id), name, rep_id, color, rule.to_json(), terr_list,
                              int(priority))
    return int(overlay_id)


def delete_overlay(store: Store, plan_id: int, overlay_id: int) -> None:
    with store.transaction() as tx:
        if not stored.overlay_exists(tx, plan_id, overlay_id):
            raise ValueError(f"overlay {overlay_id} does not exist in plan {plan_id}")
        stored.delete_overlay_row(tx, plan_id, overlay_id)


def list_overlays(store: Store, plan_id: int) -> pd.DataFrame:
    """The plan's overlays: overlay_id, name, rep_id, color, rule (JSON), description, territories, priority."""
    df = stored.overlay_rows(store, plan_id)
    df.insert(5, "description", [OverlayRule.from_json(r).describe() for r in df["rule"]])
    return df
