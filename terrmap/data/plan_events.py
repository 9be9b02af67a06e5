"""Who changed a plan without saving a new version of it: publishing, renaming, deleting, and the edits of its
hierarchy, pinned accounts and overlays (table ``plan_events``, migration 7). Saves and restores carry their
author in ``plan_versions`` and ``plan_changes``; together they answer "who changed this plan, and when"."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from terrmap.data.store import Store


def record(store: Store, plan_id: int, author: str | None, what: str) -> None:
    """One line of the plan's event log (``author`` None: nobody signed in)."""
    store.cursor().execute("INSERT INTO plan_events (plan_id, author, what) VALUES (?, ?, ?)",
                           [int(plan_id), author, what])


def plan_events(store: Store, plan_id: int) -> pd.DataFrame:
    """changed_at, author, what of every event of ``plan_id``, newest first."""
    return store.cursor().execute(
        "SELECT changed_at, author, what FROM plan_events WHERE plan_id = ? ORDER BY event_id DESC", [int(plan_id)]).df()
