"""Scenarios: the lifecycle of plans and their side-by-side comparison.

A *scenario* is a plan (:mod:`terrmap.plan`). Here planners list them with headline
metrics, clone ("save as"), rename, delete and publish them, browse a plan's history
and restore any saved version, and compare two plans:

* per territory (matched by name) and per plan: the metrics of A and B and the delta B − A;
* the regions that change territory (B shown on A's layer when the layers differ);
* the accounts that change owner (named-account pins and overlays included, see
  :mod:`terrmap.plan.accounts`), with the potential that moves.

The rows are read and written through :mod:`terrmap.data.scenarios`. Every write happens in one
transaction; names are user text (escape them when shown as HTML).
History: :func:`terrmap.plan.create_plan` and :func:`terrmap.plan.save_assignment` record every
version in ``plan_versions``; restoring a version saves it again as a new version, so the
history only grows and a restore can itself be undone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from terrmap.data import scenarios as stored
from terrmap.data.hierarchy import node_ids, territory_parents
from terrmap.data.plans import plan_area, write_assignment
from terrmap.data.stats import region_stats
from terrmap.geo import parse_layer
from terrmap.plan import (
    TERRITORY_COLUMNS,
    PlanInfo,
    Territory,
    assignment_for_layer,
    load_assignment,
    metrics,
    record_version,
    save_assignment,
)
from terrmap.plan.accounts import NO_OWNER, account_owners, owner_changes, territory_metrics
from terrmap.plan.complete import complete_assignment
from terrmap.plan.editor import EditorSession

if TYPE_CHECKING:
    from terrmap.data.store import Store

UNASSIGNED = NO_OWNER
MAX_NAME_LENGTH = 120

# Plan-level metrics of a comparison: key -> (label, which direction is better, help).
PLAN_METRICS: dict[str, tuple[str, str, str]] = {
    "max_abs_deviation": ("Max deviation of potential", "lower", metrics.METRIC_HELP["max_abs_deviation"]),
    "cv": ("Coefficient of variation", "lower", metrics.METRIC_HELP["cv"]),
    "non_contiguous": ("Non-contiguous territories", "lower", metrics.METRIC_HELP["non_contiguous"]),
    "in_pieces_by_water": ("In pieces by water", "neutral", metrics.METRIC_HELP["in_pieces_by_water"]),
    "cut_edge_share": ("Cut-edge share", "lower", metrics.METRIC_HELP["cut_edge_share"]),
    "mean_polsby_popper": ("Mean Polsby-Popper", "higher", metrics.METRIC_HELP["mean_polsby_popper"]),
    "unassigned": ("Unassigned regions", "lower", metrics.METRIC_HELP["unassigned"]),
    "territories": ("Territories", "neutral", "Number of territories."),
}
# Per-territory measures compared side by side (deviation: of potential from the territory's target).
TERRITORY_MEASURES = ["leads", "potential", "customers", "regions", "deviation"]


# ---------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------


def _check_name(con, name: str, exclude_plan_id: int | None = None) -> str:
    """The trimmed name if no other plan has it (case-insensitive), else a ValueError saying so."""
    clean = (name or "").strip()
    if not clean:
        raise ValueError("a scenario needs a name")
    if len(clean) > MAX_NAME_LENGTH:
        raise ValueError(f"a scenario name has at most {MAX_NAME_LENGTH} characters (this one has {len(clean)})")
    clash = stored.plan_named(con, clean, other_than=exclude_plan_id)
    if clash is not None:
        raise ValueError(f"a scenario named {clash!r} already exists: choose another name")
    return clean


def _require(con, plan: PlanInfo) -> tuple:
    row = stored.plan_row(con, plan.plan_id)
    if row is None:
        raise ValueError(f"scenario {plan.name!r} no longer exists")
    return row


# ---------------------------------------------------------------------------
# Lifecycle
# ---------------------------------------------------------------------------


def clone_plan(store: Store, plan: PlanInfo, new_name: str, author: str | None = None,
               description: str | None = None) -> PlanInfo:
    """A copy of ``plan`` named ``new_name``: territories, assignment (locks included), area, hierarchy,
    named-account pins and overlays (``description``: a new one, else the plan's). Its history starts with
    "cloned from <name> v<version>"."""
    with store.transaction() as tx:
        return _clone(tx, plan, new_name, author, description)


def _clone(tx, plan: PlanInfo, new_name: str, author: str | None, description: str | None) -> PlanInfo:
    """:func:`clone_plan` inside the caller's transaction."""
    name = _check_name(tx, new_name)
    src_name, layer, version, _, base_description = _require(tx, plan)
    new_id = stored.copy_plan(tx, plan.plan_id, name, layer, base_description if description is None else description)
    record_version(tx, new_id, 1, author, f"cloned from {src_name} v{version}")
    return PlanInfo(new_id, name, layer, 1, False)


def derive_plan(store: Store, base: PlanInfo, new_name: str, territories: Iterable[Territory],
                assignment: pd.DataFrame, author: str | None = None, note: str = "saved",
                description: str | None = None, published: bool = False) -> PlanInfo:
    """A new plan made from ``base`` with other territories and assignment (the optimizer's rebalance, the
    editor's "Save as"): everything else of the base comes along, as in :func:`clone_plan` (hierarchy,
    named-account pins, overlays, area), so the three ways of deriving a plan keep the same things.
    History: "cloned from <base>", then ``note``. Territories the new plan drops lose their pins.
    ``published``: the new plan becomes the published one.

    One transaction: a process killed half-way leaves no clone of the base without its new borders (nor a new
    plan saved but not published)."""
    terr = pd.DataFrame([asdict(t) for t in territories]).reindex(columns=TERRITORY_COLUMNS)
    layer = parse_layer(base.layer)
    # The clone's area is the base's (copied with it): completed before the transaction, which then only writes.
    full, _, _ = complete_assignment(store, layer, assignment, plan_area(store, base.plan_id))
    with store.transaction() as tx:
        clone = _clone(tx, base, new_name, author, description)
        saved = write_assignment(tx, clone, full, author=author, territories=terr, note=note)
        if published:
            stored.set_published(tx, saved.plan_id)
    return PlanInfo(saved.plan_id, saved.name, saved.layer, saved.version, published)


def rename_plan(store: Store, plan: PlanInfo, new_name: str) -> PlanInfo:
    with store.transaction() as tx:
        _, layer, version, published, _ = _require(tx, plan)
        name = _check_name(tx, new_name, exclude_plan_id=plan.plan_id)
        stored.set_plan_name(tx, plan.plan_id, name)
    return PlanInfo(plan.plan_id, name, layer, version, published)


def delete_plan(store: Store, plan: PlanInfo) -> int:
    """Remove every row of the plan from every plan table (versions, changes, pins, overlays, ...).

    The published plan can be deleted only when it is the last one (publish another first: reps
    and the rest of the app read the published plan). Returns the number of rows removed.
    """
    with store.transaction() as tx:
        name, _, _, published, _ = _require(tx, plan)
        others = stored.count_other_plans(tx, plan.plan_id)
        if published and others:
            raise ValueError(f"scenario {name!r} is the published plan: publish another scenario before deleting it")
        removed = stored.delete_plan_rows(tx, plan.plan_id)
    return int(removed)


def publish_plan(store: Store, plan: PlanInfo) -> PlanInfo:
    """Make ``plan`` the published plan (and no other)."""
    with store.transaction() as tx:
        name, layer, version, _, _ = _require(tx, plan)
        stored.set_published(tx, plan.plan_id)
    return PlanInfo(plan.plan_id, name, layer, version, True)


# ---------------------------------------------------------------------------
# History
# ---------------------------------------------------------------------------


def plan_history(store: Store, plan: PlanInfo) -> pd.DataFrame:
    """Every recorded version, newest first: version, saved_at, author, note, regions_changed
    (regions whose territory differs from the previous recorded version; NA for the first)."""
    return stored.plan_history(store, plan.plan_id)


def version_snapshot(store: Store, plan: PlanInfo, version: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(territories, assignment) of a recorded version; ValueError if it was not recorded."""
    saved = stored.version_territories_json(store, plan.plan_id, version)
    if saved is None:
        raise ValueError(f"scenario {plan.name!r} has no recorded version {version}")
    terr = pd.DataFrame(json.loads(saved), columns=TERRITORY_COLUMNS).astype(
        {"territory_id": int, "name": object, "color": object, "rep_id": object, "target": float,
         "tolerance": float, "parent": object})
    assignment = stored.version_assignment(store, plan.plan_id, version)
    return terr, assignment


def restore_version(store: Store, plan: PlanInfo, version: int, author: str | None = None) -> PlanInfo:
    """Save the territories and assignment of ``version`` as a new version ("restored version N").

    ``plan`` is the version the planner is looking at: if someone saved since, this raises
    :class:`terrmap.plan.SaveConflict` and writes nothing (as any save does).
    """
    terr, assignment = version_snapshot(store, plan, version)
    # The hierarchy (territories.parent) is edited on its own, outside plan versions (like pins and
    # overlays): a territory keeps its current place in it; one that comes back keeps its old parent
    # only if that node still exists.
    cur = store.cursor()
    current = territory_parents(cur, plan.plan_id)
    nodes = node_ids(cur, plan.plan_id)
    terr["parent"] = [current[t] if t in current else (p if p in nodes else None)
                      for t, p in zip(terr["territory_id"], terr["parent"])]
    return save_assignment(store, plan, assignment, author=author, territories=terr,
                           note=f"restored version {int(version)}")


# ---------------------------------------------------------------------------
# Metrics of one plan
# ---------------------------------------------------------------------------

GraphFor = Callable  # (layer, region_ids) -> RegionGraph, e.g. a cache (building a ZIP graph takes seconds)


def territory_table(store: Store, plan: PlanInfo) -> pd.DataFrame:
    """One row per territory: territory_id, name, color, rep_id, leads, potential, customers, regions,
    target and deviation of potential from it.

    Sums come from :func:`terrmap.plan.accounts.territory_metrics` (each account counted once, where
    it is owned: pins and overlays included); overlays are not territories and are left out.
    The target is the territory's set target, else an equal share of the territories' potential.
    """
    tm = territory_metrics(store, plan)
    tm = tm[tm["owner_kind"] == "territory"].rename(columns={"owner_id": "territory_id"})
    targets = stored.territory_targets(store, plan.plan_id)
    t = tm.astype({"territory_id": int}).merge(targets, on="territory_id", how="left")
    pot = t["potential"].to_numpy(dtype=float)
    equal_share = pot.sum() / len(pot) if len(pot) else 0.0
    set_target = t["target"].to_numpy(dtype=float)
    t["target"] = np.where(np.isfinite(set_target), set_target, equal_share)
    t["deviation"] = metrics.deviations(pot, t["target"].to_numpy())
    return t[["territory_id", "name", "color", "rep_id", "leads", "potential", "customers", "regions", "target",
              "deviation"]].reset_index(drop=True)


def plan_summary(store: Store, plan: PlanInfo, graph_for: GraphFor | None = None,
                 table: pd.DataFrame | None = None) -> dict:
    """Plan-level metrics (keys of :data:`PLAN_METRICS`).

    Balance (max deviation, CV) from the account-based :func:`territory_table`, so it agrees
    with the per-territory comparison; contiguity (:func:`terrmap.plan.metrics.territory_pieces`: split
    even across water, or in pieces by water) and compactness from the region graph as the editor
    computes them (:class:`terrmap.plan.editor.EditorSession`).
    """
    table = territory_table(store, plan) if table is None else table
    graph_side = EditorSession.open(store, plan, graph_for=graph_for).plan.summary("potential")
    pot = table["potential"].to_numpy(dtype=float)
    return {
        "max_abs_deviation": metrics.max_abs_deviation(pot, table["target"].to_numpy(dtype=float)),
        "cv": metrics.coefficient_of_variation(pot),
        "non_contiguous": graph_side["non_contiguous"],
        "in_pieces_by_water": graph_side["in_pieces_by_water"],
        "cut_edge_share": graph_side["cut_edge_share"],
        "mean_polsby_popper": graph_side["mean_polsby_popper"],
        "unassigned": graph_side["unassigned"],
        "territories": len(table),
    }


def list_scenarios(store: Store, graph_for: GraphFor | None = None, with_metrics: bool = True) -> pd.DataFrame:
    """Every plan, published first: plan_id, name, layer, version, published, updated_at, description,
    territories, regions (assigned), author (of the last recorded version), and with ``with_metrics``
    the headline metrics max_abs_deviation (of potential) and non_contiguous (see :func:`plan_summary`)."""
    df = stored.scenario_rows(store)
    if with_metrics:
        heads = []
        for row in df.itertuples(index=False):
            info = PlanInfo(row.plan_id, row.name, row.layer, row.version, row.published)
            s = plan_summary(store, info, graph_for)
            heads.append((s["max_abs_deviation"], s["non_contiguous"]))
        df["max_abs_deviation"] = [h[0] for h in heads]
        df["non_contiguous"] = pd.array([h[1] for h in heads], dtype="Int64")
    return df


# ---------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------


@dataclass
class Comparison:
    """Plan B against plan A.

    * ``territories``: one row per territory name (in either plan): ``territory``, ``color_a``,
      ``color_b``, ``in_a``, ``in_b`` and, per measure of :data:`TERRITORY_MEASURES`, ``<m>_a``,
      ``<m>_b`` (NaN where the territory is not in that plan) and ``<m>_delta`` = B − A (a missing
      side counts as 0 for the additive measures; deviation delta is NaN then).
    * ``plan_metrics``: index = keys of :data:`PLAN_METRICS`; columns label, better, help, a, b, delta.
    * ``changed_regions`` (on A's layer): region_id, from_territory, to_territory, from_id, to_id,
      to_color, potential (of the region), largest potential first.
    * ``moved_accounts``: lead_id, name, from_owner, to_owner, potential, status, largest first.
    """

    a: PlanInfo
    b: PlanInfo
    territories: pd.DataFrame
    plan_metrics: pd.DataFrame
    changed_regions: pd.DataFrame
    moved_accounts: pd.DataFrame
    total_potential: float

    @property
    def accounts_moved(self) -> int:
        return len(self.moved_accounts)

    @property
    def potential_moved(self) -> float:
        return float(self.moved_accounts["potential"].sum())

    @property
    def potential_moved_share(self) -> float:
        """Disruption: the share of the potential either plan owns whose owner changes."""
        return self.potential_moved / self.total_potential if self.total_potential > 0 else 0.0


def _delta(b, a):
    """b − a, exactly 0 where the two agree to rounding (the same territory computed twice must
    show "no change", not ±2e-16)."""
    b, a = np.asarray(b, dtype=float), np.asarray(a, dtype=float)
    return np.where(np.isclose(b, a, rtol=1e-12, atol=1e-12), 0.0, b - a)


def _unique_names(names: pd.Series) -> pd.Series:
    """Names as matching keys: a name used twice in one plan gets " (2)", " (3)" ... in territory order."""
    nth = names.groupby(names).cumcount()
    return names.where(nth == 0, names + " (" + (nth + 1).astype(str) + ")")


def compare_territories(ta: pd.DataFrame, tb: pd.DataFrame) -> pd.DataFrame:
    """Side-by-side territory metrics matched by name (see :class:`Comparison`)."""
    cols = ["color", *TERRITORY_MEASURES]
    a = ta.assign(territory=_unique_names(ta["name"]))[["territory", *cols]].assign(in_a=True)
    b = tb.assign(territory=_unique_names(tb["name"]))[["territory", *cols]].assign(in_b=True)
    m = a.merge(b, on="territory", how="outer", suffixes=("_a", "_b"), sort=False)
    m["in_a"] = m["in_a"].fillna(False).astype(bool)
    m["in_b"] = m["in_b"].fillna(False).astype(bool)
    for col in TERRITORY_MEASURES:
        va, vb = m[f"{col}_a"].astype(float), m[f"{col}_b"].astype(float)
        m[f"{col}_a"], m[f"{col}_b"] = va, vb
        m[f"{col}_delta"] = _delta(vb, va) if col == "deviation" else _delta(vb.fillna(0), va.fillna(0))
    # A's order first, then the territories only B has, in B's order
    order = {t: i for i, t in enumerate(list(a["territory"]) + list(b["territory"]))}
    m = m.assign(_o=m["territory"].map(order)).sort_values("_o").drop(columns="_o").reset_index(drop=True)
    out = ["territory", "color_a", "color_b", "in_a", "in_b"]
    for col in TERRITORY_MEASURES:
        out += [f"{col}_a", f"{col}_b", f"{col}_delta"]
    return m[out]


def _territory_keys(table: pd.DataFrame) -> dict[int, str]:
    return dict(zip(table["territory_id"].astype(int), _unique_names(table["name"])))


def changed_regions(store: Store, a: PlanInfo, b: PlanInfo, ta: pd.DataFrame, tb: pd.DataFrame) -> pd.DataFrame:
    """Regions of A's layer whose territory (matched by name) differs in B (see :class:`Comparison`)."""
    layer = parse_layer(a.layer)
    asg_a = load_assignment(store, a.plan_id)
    asg_b = assignment_for_layer(store, b, layer) if b.layer != a.layer else load_assignment(store, b.plan_id)
    key_a, key_b = _territory_keys(ta), _territory_keys(tb)
    color_b = dict(zip(tb["territory_id"].astype(int), tb["color"]))
    both = asg_a[["region_id", "territory_id"]].merge(asg_b[["region_id", "territory_id"]], on="region_id",
                                                      how="outer", suffixes=("_a", "_b"))

    def names(ids: pd.Series, keys: dict) -> pd.Series:
        return ids.astype("Int64").map(keys).astype(object).fillna(UNASSIGNED)

    both["from_territory"] = names(both["territory_id_a"], key_a)
    both["to_territory"] = names(both["territory_id_b"], key_b)
    moved = both[both["from_territory"] != both["to_territory"]].copy()
    pot = region_stats(store, layer)[["region_id", "potential"]]
    moved = moved.merge(pot, on="region_id", how="left")
    moved["potential"] = moved["potential"].fillna(0.0)
    moved["from_id"] = moved["territory_id_a"].astype("Int64")
    moved["to_id"] = moved["territory_id_b"].astype("Int64")
    moved["to_color"] = moved["to_id"].map(lambda t: color_b.get(int(t)) if pd.notna(t) else None)
    moved = moved.sort_values(["potential", "region_id"], ascending=[False, True])
    return moved[["region_id", "from_territory", "to_territory", "from_id", "to_id", "to_color",
                  "potential"]].reset_index(drop=True)


def moved_accounts(store: Store, a: PlanInfo, b: PlanInfo) -> tuple[pd.DataFrame, float]:
    """(accounts whose owner name differs between A and B, total potential of the accounts either plan owns).

    Of the accounts either plan owns, not of every account in the database: a Texas plan's disruption is a
    share of Texas (as the optimizer's rebalance of it reports), not of the country."""
    oa, ob = account_owners(store, a), account_owners(store, b)
    owned_in_b = ob.set_index("lead_id")["owner_name"].reindex(oa["lead_id"]).notna().to_numpy()
    total = float(oa.loc[oa["owner_name"].notna().to_numpy() | owned_in_b, "potential"].sum())
    return owner_changes(oa, ob), total


def compare_plans(store: Store, a: PlanInfo, b: PlanInfo, graph_for: GraphFor | None = None,
                  progress: Callable[[float, str], None] | None = None) -> Comparison:
    """Plan B against plan A: territory and plan metrics with deltas, changed regions, moved accounts."""
    report = progress or (lambda frac, text: None)
    report(0.0, f"territory metrics of {a.name}")
    ta = territory_table(store, a)
    report(0.15, f"territory metrics of {b.name}")
    tb = territory_table(store, b)
    report(0.3, f"contiguity and compactness of {a.name}")
    sa = plan_summary(store, a, graph_for, ta)
    report(0.5, f"contiguity and compactness of {b.name}")
    sb = plan_summary(store, b, graph_for, tb)
    pm = pd.DataFrame(
        [{"metric": k, "label": lab, "better": better, "help": text, "a": float(sa[k]), "b": float(sb[k]),
          "delta": float(_delta(sb[k], sa[k]))} for k, (lab, better, text) in PLAN_METRICS.items()]
    ).set_index("metric")
    report(0.7, "regions that change territory")
    regions = changed_regions(store, a, b, ta, tb)
    report(0.85, "accounts that change owner")
    accounts, total = moved_accounts(store, a, b)
    report(1.0, "done")
    return Comparison(a, b, compare_territories(ta, tb), pm, regions, accounts, total)


def is_better(better: str, delta: float) -> bool | None:
    """Whether a change of ``delta`` improves a metric (None: no change, or no direction)."""
    if better not in ("lower", "higher") or delta is None or not np.isfinite(delta) or abs(delta) < 1e-12:
        return None
    return (delta < 0) if better == "lower" else (delta > 0)


# ---------------------------------------------------------------------------
# The diff map's regions
# ---------------------------------------------------------------------------

UNCHANGED_COLOR = "#dadde2"
UNCHANGED_LABEL = "Unchanged"


def diff_map_frame(frame: pd.DataFrame, changed: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Regions coloured by change, for :func:`terrmap.app.map_data.map_data` with ``color_by="territory"``.

    ``frame``: regions with stats (a :func:`terrmap.app.map_data.region_frame`); ``changed``: from
    :class:`Comparison`. Each from → to pair becomes one legend entry (largest potential moved
    first) in B's territory colour, every other region the light "Unchanged" entry. Returns the
    frame with ``territory_id`` set to those entries and the entries as a territories table
    (raw names: map_data escapes them).
    """
    pairs = (changed.groupby(["from_territory", "to_territory"], sort=False, dropna=False)
             .agg(potential=("potential", "sum"), color=("to_color", "first")).reset_index()
             .sort_values("potential", ascending=False, kind="stable").reset_index(drop=True))
    entries = pd.DataFrame({
        "territory_id": np.arange(1, len(pairs) + 1),
        "name": pairs["from_territory"] + " → " + pairs["to_territory"],
        "color": pairs["color"].fillna(UNCHANGED_COLOR).where(pairs["to_territory"] != UNASSIGNED, "#8a8f98"),
        "rep_name": None,
    })
    entries = pd.concat([entries, pd.DataFrame([{"territory_id": 0, "name": UNCHANGED_LABEL,
                                                 "color": UNCHANGED_COLOR, "rep_name": None}])], ignore_index=True)
    pair_id = changed[["region_id", "from_territory", "to_territory"]].merge(
        pairs[["from_territory", "to_territory"]].assign(territory_id=np.arange(1, len(pairs) + 1)),
        on=["from_territory", "to_territory"])[["region_id", "territory_id"]]
    out = frame.drop(columns=["territory_id"], errors="ignore").merge(pair_id, on="region_id", how="left")
    out["territory_id"] = out["territory_id"].fillna(0).astype(int)
    return out, entries
