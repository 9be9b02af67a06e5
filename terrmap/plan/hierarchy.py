"""The territory hierarchy: territories roll up into regions, divisions, ... (any depth).

Nodes live in ``hierarchy_nodes`` (node_id, name, level, parent, color) per plan;
``territories.parent`` holds the node a territory rolls up into directly. A
node's *depth* is its number of ancestors (top-level nodes: 0). The structure is
valid when

* every parent exists (in the same plan) and no node is its own ancestor;
* all nodes at one depth share one level name, and each level name is used at
  one depth only (so "Region" always means the same rung of the ladder);
* level names are not "Territory" (the bottom rung, always there), and node
  names are unique within their level.

A territory may roll up into a node of any depth; at a deeper level than its
parent's it has no ancestor and is reported under "(no <level>)".

Rows are read and written through :mod:`terrmap.data.hierarchy`; every change
is checked against these rules inside its transaction and rolled back, with a
message naming the node, when it would break one of them.

Roll-ups (:func:`rollup`) sum :func:`terrmap.plan.accounts.territory_metrics` per
node of a level, so accounts are counted once, where they are owned; accounts
owned by segment overlays are not in any territory and appear as their own rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from terrmap.data import hierarchy as stored
from terrmap.data.plans import plan_exists
from terrmap.plan import PALETTE, PlanInfo, metrics
from terrmap.plan.accounts import territory_metrics
from terrmap.plan.colors import safe_color

if TYPE_CHECKING:
    from terrmap.data.store import Store

TERRITORY_LEVEL = "Territory"
ADDITIVE = ["territories", "leads", "open_leads", "customers", "won_revenue", "potential", "regions", "scored_open"]
ROLLUP_COLUMNS = ["kind", "node_id", "name", "level", "parent", "color", "territories", "leads", "open_leads",
                  "customers", "won_revenue", "potential", "avg_score", "regions", "deviation"]


class HierarchyError(ValueError):
    """A change that would leave the hierarchy invalid (nothing was written)."""


# ---------------------------------------------------------------------------
# Reading and checking
# ---------------------------------------------------------------------------


def nodes(store: Store, plan_id: int) -> pd.DataFrame:
    """The plan's nodes: node_id, name, level, parent, color, depth (ancestors; None inside a cycle)."""
    df = stored.node_rows(store.cursor(), plan_id)
    df["depth"] = pd.array([_depths(df).get(n) for n in df["node_id"]], dtype="Int64")
    return df


def _parents(node_frame: pd.DataFrame) -> dict[str, str | None]:
    return {n: (None if pd.isna(p) else p) for n, p in zip(node_frame["node_id"], node_frame["parent"])}


def _depths(node_frame: pd.DataFrame) -> dict[str, int | None]:
    """Number of ancestors per node; None for a node on or under a cycle or an unknown parent."""
    parents = _parents(node_frame)
    out: dict[str, int | None] = {}
    for start in parents:
        chain, node = [], start
        while node is not None and node not in out and node not in chain and node in parents:
            chain.append(node)
            node = parents[node]
        if node is None:
            base = -1
        elif node in out and out[node] is not None:
            base = out[node]
        else:  # a cycle, an unknown parent, or under one of them
            for n in chain:
                out[n] = None
            continue
        for k, n in enumerate(reversed(chain)):
            out[n] = base + 1 + k
    return out


def problems(node_frame: pd.DataFrame, territory_parents: dict[int, str | None] | None = None) -> list[str]:
    """Every way the structure breaks the rules (see the module doc); empty when valid. Pure."""
    out: list[str] = []
    parents = _parents(node_frame)
    names = dict(zip(node_frame["node_id"], node_frame["name"]))
    levels_of = dict(zip(node_frame["node_id"], node_frame["level"]))
    for n in parents:
        if not str(names[n] or "").strip():
            out.append(f"node {n!r}: a name is required")
        level = str(levels_of[n] or "").strip()
        if not level:
            out.append(f"node {n!r}: a level name is required")
        elif level.lower() == TERRITORY_LEVEL.lower():
            out.append(f"node {n!r}: {TERRITORY_LEVEL!r} is the bottom level; name the level above it differently")
    for n, p in parents.items():
        if p is not None and p not in parents:
            out.append(f"node {names[n]!r} ({n}): parent {p!r} does not exist")
    depths = _depths(node_frame)
    for n, d in depths.items():
        if d is None and parents[n] in parents:
            # only report the cycle itself, once per node on it
            seen, node = [], n
            while node is not None and node in parents and node not in seen:
                seen.append(node)
                node = parents[node]
            if node == n:
                out.append(f"node {names[n]!r} ({n}) would be its own ancestor: "
                           + " -> ".join(str(names[x]) for x in seen + [n]))
    by_depth: dict[int, set[str]] = {}
    for n, d in depths.items():
        if d is not None:
            by_depth.setdefault(d, set()).add(str(levels_of[n]))
    for d, lv in sorted(by_depth.items()):
        if len(lv) > 1:
            out.append(f"nodes at depth {d} mix levels {', '.join(sorted(lv))}: one level name per depth "
                       "(a node's level follows from its parent's)")
    depth_of_level: dict[str, set[int]] = {}
    for d, lv in by_depth.items():
        for name in lv:
            depth_of_level.setdefault(name, set()).add(d)
    for name, ds in sorted(depth_of_level.items()):
        if len(ds) > 1:
            out.append(f"level {name!r} is used at {len(ds)} depths: it must sit at one rung of the hierarchy")
    seen_names: dict[tuple[str, str], str] = {}
    for n in parents:
        key = (str(levels_of[n]), str(names[n]).strip().lower())
        if key in seen_names:
            out.append(f"two {levels_of[n]} nodes are named {names[n]!r} ({seen_names[key]} and {n})")
        seen_names[key] = n
    for t, p in (territory_parents or {}).items():
        if p is not None and p not in parents:
            out.append(f"territory {t}: parent node {p!r} does not exist")
    return out


def check(store: Store, plan_id: int) -> list[str]:
    """Problems of the stored hierarchy (empty when valid)."""
    return problems(nodes(store, plan_id), stored.territory_parents(store.cursor(), plan_id))


def _assert_valid(tx, plan_id: int) -> None:
    frame = stored.node_rows(tx, plan_id)
    found = problems(frame, stored.territory_parents(tx, plan_id))
    if found:
        raise HierarchyError("; ".join(found))


def levels(store: Store, plan_id: int) -> list[str]:
    """Level names from the bottom up, e.g. ``["Territory", "Region", "Division"]``."""
    df = nodes(store, plan_id)
    df = df[df["depth"].notna()]
    by_depth = df.groupby("depth")["level"].first().sort_index(ascending=False)
    return [TERRITORY_LEVEL] + list(dict.fromkeys(by_depth.tolist()))


def ancestor_at(store: Store, plan_id: int, level: str) -> dict[int, str | None]:
    """territory_id -> the node of ``level`` it rolls up into (None: it has none at that level)."""
    if level == TERRITORY_LEVEL:
        raise ValueError(f"{TERRITORY_LEVEL!r} is the bottom level: every territory is its own node there")
    df = nodes(store, plan_id)
    if level not in set(df["level"]):
        raise ValueError(f"plan {plan_id} has no level {level!r} (its levels: {', '.join(levels(store, plan_id))})")
    parents = _parents(df)
    level_of = dict(zip(df["node_id"], df["level"]))
    out: dict[int, str | None] = {}
    for t, p in stored.territory_parents(store.cursor(), plan_id).items():
        seen: set[str] = set()
        node = p
        while node is not None and node in parents and node not in seen and level_of[node] != level:
            seen.add(node)
            node = parents[node]
        out[t] = node if node is not None and level_of.get(node) == level else None
    return out


# ---------------------------------------------------------------------------
# Changing
# ---------------------------------------------------------------------------


def _require_plan(con, plan_id: int) -> None:
    if not plan_exists(con, plan_id):
        raise ValueError(f"plan {plan_id} does not exist")


def _require_node(con, plan_id: int, node_id: str) -> tuple:
    row = stored.node_row(con, plan_id, node_id)
    if row is None:
        raise ValueError(f"node {node_id!r} does not exist in plan {plan_id}")
    return row


def _free_color(con, plan_id: int, level: str) -> str:
    """The palette colour least used by the level's nodes (so a map by level tells them apart), preferring
    one no other level uses (so a Division's colour differs from its Regions')."""
    rows = stored.node_colors(con, plan_id, level)
    same = [c for c, here in rows if here]
    other = {c for c, here in rows if not here}
    return min(PALETTE, key=lambda c: (same.count(c), c in other, PALETTE.index(c)))


def _new_node_id(con, plan_id: int) -> str:
    taken = stored.node_ids(con, plan_id)
    number = len(taken) + 1
    while f"N{number}" in taken:
        number += 1
    return f"N{number}"


def create_node(store: Store, plan_id: int, name: str, level: str, parent: str | None = None,
                color: str | None = None) -> str:
    """A new node of ``level`` under ``parent`` (None: top level); returns its node_id."""
    name, level = (name or "").strip(), (level or "").strip()
    with store.transaction() as tx:
        _require_plan(tx, plan_id)
        if parent is not None:
            _require_node(tx, plan_id, parent)
        node_id = _new_node_id(tx, plan_id)
        stored.insert_node(tx, plan_id, node_id, name, level, parent, color or _free_color(tx, plan_id, level))
        _assert_valid(tx, plan_id)
    return node_id


def add_top_level(store: Store, plan_id: int, name: str, level: str, color: str | None = None) -> str:
    """A new single node above every current top-level node (a new rung, e.g. "Company" over the Divisions).

    One transaction: creating it beside the current top nodes first would mix two levels at one depth.
    """
    name, level = (name or "").strip(), (level or "").strip()
    with store.transaction() as tx:
        _require_plan(tx, plan_id)
        node_id = _new_node_id(tx, plan_id)
        stored.insert_node(tx, plan_id, node_id, name, level, None, color or _free_color(tx, plan_id, level))
        stored.put_top_nodes_under(tx, plan_id, node_id)
        _assert_valid(tx, plan_id)
    return node_id


def rename_node(store: Store, plan_id: int, node_id: str, name: str) -> None:
    with store.transaction() as tx:
        _require_node(tx, plan_id, node_id)
        stored.set_node_name(tx, plan_id, node_id, (name or "").strip())
        _assert_valid(tx, plan_id)


def rename_level(store: Store, plan_id: int, old: str, new: str) -> None:
    """Rename a level for all its nodes (e.g. "Region" -> "Area")."""
    with store.transaction() as tx:
        if not stored.level_exists(tx, plan_id, old):
            raise ValueError(f"plan {plan_id} has no level {old!r}")
        stored.set_level_name(tx, plan_id, old, (new or "").strip())
        _assert_valid(tx, plan_id)


def move_node(store: Store, plan_id: int, node_id: str, parent: str | None) -> None:
    """Put ``node_id`` (and everything under it) under ``parent`` (None: top level)."""
    with store.transaction() as tx:
        _require_node(tx, plan_id, node_id)
        if parent is not None:
            _require_node(tx, plan_id, parent)
        stored.set_node_parent(tx, plan_id, node_id, parent)
        _assert_valid(tx, plan_id)


def set_node_color(store: Store, plan_id: int, node_id: str, color: str) -> None:
    if safe_color(color, default="") != color:
        raise ValueError(f"node {node_id!r}: {color!r} is not a colour like #1b9e77")
    with store.transaction() as tx:
        _require_node(tx, plan_id, node_id)
        stored.set_node_color(tx, plan_id, node_id, color)


def delete_node(store: Store, plan_id: int, node_id: str) -> None:
    """Remove a node; its child nodes and territories move up to its parent.

    Refused (nothing changed) when that would put child nodes beside nodes of
    another level, e.g. the Regions of a deleted Division next to other Divisions.
    """
    with store.transaction() as tx:
        _, name, level, parent, _ = _require_node(tx, plan_id, node_id)
        stored.delete_node(tx, plan_id, node_id, parent)
        try:
            _assert_valid(tx, plan_id)
        except HierarchyError as e:
            raise HierarchyError(f"cannot delete {level} {name!r}: its children would move up beside other nodes "
                                 f"({e}); move or delete its child nodes first") from None


def set_territory_parent(store: Store, plan_id: int, territory_id: int, node_id: str | None) -> None:
    """Roll territory ``territory_id`` up into ``node_id`` (None: into nothing)."""
    set_territory_parents(store, plan_id, {territory_id: node_id})


def set_territory_parents(store: Store, plan_id: int, parents: dict[int, str | None]) -> None:
    """Several territories at once, all or nothing."""
    with store.transaction() as tx:
        _require_plan(tx, plan_id)
        known = set(stored.territory_parents(tx, plan_id))
        unknown = sorted(int(t) for t in parents if int(t) not in known)
        if unknown:
            raise ValueError(f"territory {', '.join(map(str, unknown))} is not in plan {plan_id}")
        for t, node in parents.items():
            if node is not None:
                _require_node(tx, plan_id, node)
            stored.set_territory_parent(tx, plan_id, int(t), node)
        _assert_valid(tx, plan_id)


# ---------------------------------------------------------------------------
# Roll-ups
# ---------------------------------------------------------------------------


def rollup(store: Store, plan: PlanInfo, level: str, measure: str = "potential",
           owner_metrics: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`~terrmap.plan.accounts.territory_metrics` summed per node of ``level``, with balance.

    Rows (column ``kind``): 'node' for every node of the level (even without territories)
    or 'territory' at the Territory level; 'none' for the territories with no ancestor at
    that level (if any); 'overlay' for each segment overlay (their accounts are in no
    territory). ``avg_score`` is the mean score of the open leads (weighted exactly by
    the scored open leads); ``deviation`` is ``measure`` against the mean of the level's
    nodes (:func:`terrmap.plan.metrics.deviations`), NaN on 'none' and 'overlay' rows.
    ``owner_metrics``: a territory_metrics frame already at hand (saves recomputing it).
    """
    m = territory_metrics(store, plan) if owner_metrics is None else owner_metrics
    if measure not in m.columns or measure in ("owner_kind", "owner_id", "name", "rep_id", "color"):
        raise ValueError(f"unknown measure {measure!r}")
    m = m.assign(territories=(m["owner_kind"] == "territory").astype(int))
    terr = m[m["owner_kind"] == "territory"].copy()
    over = m[m["owner_kind"] == "overlay"]
    tparents = stored.territory_parents(store.cursor(), plan.plan_id)
    if level == TERRITORY_LEVEL:
        body = terr.assign(kind="territory", node_id=terr["owner_id"].astype(int).astype(str), level=level,
                           parent=terr["owner_id"].map(lambda t: tparents.get(int(t))))
    else:
        anc = ancestor_at(store, plan.plan_id, level)
        terr["node_id"] = terr["owner_id"].map(lambda t: anc.get(int(t)))
        terr["score_x"] = terr["avg_score"].fillna(0) * terr["scored_open"]
        placed = terr[terr["node_id"].notna()]
        sums = placed.groupby("node_id")[ADDITIVE + ["score_x"]].sum()
        level_nodes = nodes(store, plan.plan_id)
        level_nodes = level_nodes[level_nodes["level"] == level]
        body = level_nodes[["node_id", "name", "level", "parent", "color"]].merge(
            sums, left_on="node_id", right_index=True, how="left")
        body[ADDITIVE + ["score_x"]] = body[ADDITIVE + ["score_x"]].fillna(0)
        body["kind"] = "node"
        unplaced = terr[terr["node_id"].isna()]
        if len(unplaced):
            row = unplaced[ADDITIVE + ["score_x"]].sum().to_frame().T
            row = row.assign(kind="none", node_id=None, name=f"(no {level})", level=level, parent=None, color=None)
            body = pd.concat([body, row], ignore_index=True)
        body["avg_score"] = np.where(body["scored_open"] > 0, body["score_x"] / body["scored_open"].where(
            body["scored_open"] > 0, 1), np.nan)
    rows = pd.concat([
        body,
        over.assign(kind="overlay", node_id=over["owner_id"].astype(int).astype(str), level="Overlay", parent=None),
    ], ignore_index=True)
    own = rows["kind"].isin(["node", "territory"])
    rows["deviation"] = np.nan
    rows.loc[own, "deviation"] = metrics.deviations(rows.loc[own, measure].to_numpy(dtype=float))
    counts = [c for c in ADDITIVE if c not in ("won_revenue", "potential")]
    rows[counts] = rows[counts].astype(int)
    rows[["won_revenue", "potential", "avg_score"]] = rows[["won_revenue", "potential", "avg_score"]].astype(float)
    return rows[ROLLUP_COLUMNS + ["scored_open"]].reset_index(drop=True)


def balance(rollup_frame: pd.DataFrame, measure: str = "potential") -> dict:
    """Max |deviation| and coefficient of variation of ``measure`` over the level's nodes."""
    own = rollup_frame[rollup_frame["kind"].isin(["node", "territory"])][measure].to_numpy(dtype=float)
    return {"max_abs_deviation": metrics.max_abs_deviation(own), "cv": metrics.coefficient_of_variation(own),
            "nodes": int(own.size)}


def tree(store: Store, plan: PlanInfo, measure: str = "potential",
         owner_metrics: pd.DataFrame | None = None) -> pd.DataFrame:
    """The whole hierarchy as ordered rows for a tree view: each top node, then what it contains, depth first.

    Columns: :data:`ROLLUP_COLUMNS` plus ``depth`` (0 = top). Territories are leaves under their
    parent node; nodes and territories outside the tree (no parent) follow the tree at depth 0.
    ``deviation`` compares each row with the mean of its own level.
    """
    m = territory_metrics(store, plan) if owner_metrics is None else owner_metrics
    frames = [rollup(store, plan, lv, measure, owner_metrics=m) for lv in levels(store, plan.plan_id)]
    rows_of: dict[tuple[str, str], pd.Series] = {}
    children: dict[str | None, list[tuple[str, str]]] = {}
    for frame in frames:
        for _, row in frame[frame["kind"].isin(["node", "territory"])].iterrows():
            key = (row["kind"], row["node_id"])
            rows_of[key] = row
    all_nodes = nodes(store, plan.plan_id)
    parent_of = {("node", n): (None if pd.isna(p) else p) for n, p in zip(all_nodes["node_id"], all_nodes["parent"])}
    for t, p in stored.territory_parents(store.cursor(), plan.plan_id).items():
        parent_of[("territory", str(t))] = p
    for key, parent in parent_of.items():
        children.setdefault(parent if parent in set(all_nodes["node_id"]) else None, []).append(key)
    out: list[dict] = []

    def visit(key: tuple[str, str], depth: int) -> None:
        row = rows_of.get(key)
        if row is None:
            return
        out.append({**row.to_dict(), "depth": depth})
        if key[0] == "node":
            kids = sorted(children.get(key[1], []), key=lambda k: (k[0] == "territory", str(rows_of[k]["name"])
                                                                    if k in rows_of else ""))
            for kid in kids:
                visit(kid, depth + 1)

    tops = sorted(children.get(None, []), key=lambda k: (k[0] == "territory", str(rows_of[k]["name"])
                                                          if k in rows_of else ""))
    for key in tops:
        visit(key, 0)
    return pd.DataFrame(out, columns=ROLLUP_COLUMNS + ["scored_open", "depth"])
