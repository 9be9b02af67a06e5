"""Streamlit caching and widgets for account ownership and the territory hierarchy.

Used by the Home, Map and "Accounts & hierarchy" pages. Kept beside :mod:`terrmap.app.ui`
(same conventions) because pins, overlays and the hierarchy change without the plan's
version moving: every cache here is also keyed by :func:`structure_stamp`, so a pin or a
new node shows on every page at once, while the usual reruns reuse what is computed.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from terrmap.app import ui
from terrmap.app.geometry import default_decimals
from terrmap.app.legend import legend_territories_html
from terrmap.app.map_data import MapData, filter_states, map_data
from terrmap.data import alignments
from terrmap.data.accounts import structure_digest
from terrmap.data.store import Store
from terrmap.geo import parse_layer
from terrmap.plan import PlanInfo, accounts, list_plans
from terrmap.plan import hierarchy as hi

LEVEL_PREFIX = "level:"  # "Colour by" values for hierarchy levels: "level:Region"


def plural(level: str) -> str:
    """"Region" -> "Regions", "Territory" -> "Territories" (level names are user-defined English nouns)."""
    if level.endswith("y") and level[-2:-1].lower() not in "aeiou":
        return level[:-1] + "ies"
    return level if level.endswith("s") else level + "s"


def structure_stamp(s: Store, plan_id: int) -> str:
    """Changes whenever the plan's pins, overlays, hierarchy nodes or territory parents change (milliseconds)."""
    return structure_digest(s, plan_id)


def _plan(path: str, plan_id: int) -> PlanInfo:
    return next(p for p in list_plans(ui._store(path)) if p.plan_id == plan_id)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_owner_metrics(path: str, plan_id: int, plan_version: int, stamp: str, sstamp: str) -> pd.DataFrame:
    return accounts.territory_metrics(ui._store(path), _plan(path, plan_id))


@st.cache_data(max_entries=32, show_spinner=False)
def cached_rollup(path: str, plan_id: int, plan_version: int, level: str, measure: str, stamp: str,
                  sstamp: str) -> pd.DataFrame:
    metrics = cached_owner_metrics(path, plan_id, plan_version, stamp, sstamp)
    return hi.rollup(ui._store(path), _plan(path, plan_id), level, measure=measure, owner_metrics=metrics)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_overlap_report(path: str, plan_id: int, plan_version: int, stamp: str, sstamp: str) -> pd.DataFrame:
    return accounts.overlap_report(ui._store(path), _plan(path, plan_id))


def stamps(s: Store, plan: PlanInfo) -> tuple[str, str]:
    return ui.data_stamp(s), structure_stamp(s, plan.plan_id)


def rollup(s: Store, plan: PlanInfo, level: str, measure: str = "potential") -> pd.DataFrame:
    stamp, sstamp = stamps(s, plan)
    return cached_rollup(str(s.path), plan.plan_id, plan.version, level, measure, stamp, sstamp)


def rep_names(s: Store) -> dict[str, str]:
    """rep_id -> name of every rep."""
    return alignments.rep_names(s)


def level_picker(s: Store, plan: PlanInfo, container=None, key: str = "level") -> str:
    """Territory / Region / Division ...: the rung of the hierarchy to show (one option: no widget)."""
    levels = hi.levels(s, plan.plan_id)
    if st.session_state.get(key) not in levels:
        st.session_state[key] = levels[0]
    if len(levels) == 1:
        return levels[0]
    return (container or st).segmented_control(
        "Level", levels, key=key,
        help="Roll territories up into the hierarchy's levels (edit it under Accounts & hierarchy). "
             "Accounts owned by a segment overlay are shown as their own rows: each account counts once.",
    ) or levels[0]


# -- the map coloured by a hierarchy level ----------------------------------------------------------------------

def level_territories(s: Store, plan: PlanInfo, level: str) -> tuple[pd.DataFrame, dict[int, int]]:
    """Nodes of ``level`` as a territories-like frame (territory_id = node position, name, colour) and
    territory_id -> node position, so the map colours regions by their ancestor node unchanged."""
    anc = hi.ancestor_at(s, plan.plan_id, level)
    level_nodes = hi.nodes(s, plan.plan_id)
    level_nodes = level_nodes[level_nodes["level"] == level].reset_index(drop=True)
    position = {n: i for i, n in enumerate(level_nodes["node_id"])}
    frame = pd.DataFrame({"territory_id": range(len(level_nodes)), "name": level_nodes["name"],
                          "color": level_nodes["color"]})
    return frame, {t: position[n] for t, n in anc.items() if n is not None}


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_level_map_data(path: str, layer_key: str, plan_id: int, plan_version: int, level: str, stamp: str,
                          sstamp: str, states: tuple[str, ...]) -> MapData:
    """Like :func:`terrmap.app.ui.cached_map_data`, coloured by the ancestor node at ``level``."""
    s = ui._store(path)
    plan = _plan(path, plan_id)
    frame = filter_states(ui.region_frame(s, layer_key, plan, stamp), states)
    node_frame, node_of = level_territories(s, plan, level)
    frame = frame.assign(territory_id=frame["territory_id"].map(
        lambda t: node_of.get(int(t)) if pd.notna(t) else None).astype("Float64"))
    shapes = parse_layer(layer_key).shapes(s, frame["region_id"].tolist())
    data = map_data(frame, shapes, node_frame, "territory",
                    region_label="ZIP" if layer_key == "zip" else "H3 cell",
                    decimals=default_decimals(layer_key))
    counts = [data.terr.count(i) for i in range(len(node_frame))]
    shown = [i for i, n in enumerate(counts) if n] or list(range(len(counts)))
    legend = legend_territories_html([data.territories[i] for i in shown], [data.palette[i] for i in shown],
                                     [counts[i] for i in shown], data.terr.count(-1), title=plural(level))
    return replace(data, legend_html=legend)
