"""Shared Streamlit widgets and cached data access for the pages (the only UI module).

Caching: the store is a ``cache_resource`` per database path. Data is cached
with ``cache_data``/``cache_resource`` keyed by the database path, the layer,
the plan (id and version) and a *data stamp* (:func:`data_stamp`: lead count,
last import, open leads, sums of scores and deal values, plan versions), so an
import, a rescoring or a saved plan shows up at once, while panning, reruns and
switching pages reuse what is computed.
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
import threading
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import streamlit as st

from terrmap.access import Action, Viewer
from terrmap.app import auth
from terrmap.app.assets import static_base as _static_base
from terrmap.app.geometry import clockwise_features, default_decimals
from terrmap.app.html_safe import md  # noqa: F401  (ui.md: the pages' markdown escape)
from terrmap.app.map_data import MapData, filter_states, map_data, state_codes
from terrmap.app.map_data import region_frame as build_region_frame
from terrmap.data import queries
from terrmap.data.area import AreaTooLarge, area_regions
from terrmap.data.plans import plan_area
from terrmap.data.queries import headline_kpis, leads_by_state, region_places
from terrmap.data.stats import region_stats
from terrmap.data.store import Store, open_store, resolve_db_path
from terrmap.data.turn import Holder
from terrmap.geo import LAYER_KEYS, parse_layer
from terrmap.geo.outlines import state_outlines_geojson
from terrmap.measures import fmt_int, fmt_money
from terrmap.plan import PlanInfo, assignment_for_layer, list_plans, territories
from terrmap.plan.editor import EditorSession

DEFAULT_MAP_LAYER = "h3:4"


# -- database ---------------------------------------------------------------------------

def db_path(argv: list[str] | None = None) -> Path:
    """``streamlit run app.py -- --db PATH``, else $TERRMAP_DB, else data/terrmap.duckdb."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db")
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return resolve_db_path(args.db).resolve()


# The app waits longer than a job for its turn on the database: a job that holds it (a nightly import of
# millions of leads) is doing work the user will want to see, and the page says whom it waits for.
APP_LOCK_WAIT_S = 300.0


def _tell_waiting(holder: Holder | None) -> None:
    who = f"{holder.program} (process {holder.pid})" if holder else "another process"
    try:
        st.toast(f"Waiting for the database: {who} is using it; this page continues when it is done.",
                 icon=":material/hourglass_top:")
    except Exception:  # outside a script run (a background thread): nobody to tell
        pass


@st.cache_resource(show_spinner="Opening the database…")
def _store(path: str) -> Store:
    s = open_store(path, lock_wait=APP_LOCK_WAIT_S)
    s.on_slow_wait(_tell_waiting)
    return s


def store() -> Store:
    return _store(str(db_path()))


def data_stamp(s: Store) -> str:
    """Changes whenever leads, scores or plans change: a few column aggregates (milliseconds, even for
    millions of leads). Pages that change data should still call :func:`clear_caches`."""
    return "|".join(map(str, queries.data_stamp_values(s)))


def require_leads(s: Store) -> None:
    """Stop the page with a friendly how-to when the database has no leads."""
    if queries.lead_count(s) > 0:
        return
    path = shlex.quote(str(s.path))
    st.info(
        f"**No leads yet** in `{s.path}`.\n\n"
        "To explore with realistic data, stop the app (it holds the database open), build the demo database "
        "(a few seconds) and start the app again:\n\n"
        f"```\npython -m terrmap demo --db {path}\nstreamlit run app.py -- --db {path}\n```\n\n"
        "Or bring your own leads (CSV or Parquet) on the **Import data** page.",
        icon=":material/info:",
    )
    st.page_link("pages/import_data.py", label="Import data", icon=":material/upload_file:")
    st.stop()


class PageContext(NamedTuple):
    """What every page starts from: the store, its path (the cache key) and the data stamp."""

    store: Store
    path: str
    stamp: str


def page(title: str | None = None, caption: str | None = None, needs_leads: bool = True) -> PageContext:
    """The top of every page: run it through app.py's navigation, open the store, show the title (and a
    caption), and stop with a how-to when the page needs leads and there are none."""
    ensure_app_navigation()
    s = store()
    auth.require_viewer(s)  # with sign-in configured: signed in, with a role, or the page stops here
    if title:
        st.title(title)
    if caption:
        st.caption(caption)
    if needs_leads:
        require_leads(s)
    return PageContext(s, str(s.path), data_stamp(s))


def viewer() -> Viewer:
    """Who is looking (:mod:`terrmap.access`): the signed-in person, or the person at this machine when no
    identity provider is configured. (:func:`page` has already stopped the page for anybody else.)"""
    return auth.require_viewer(store())


def require(action: Action) -> Viewer:
    """Stop the page unless the viewer may ``action`` (app.py's navigation offers a page only to whom it is
    for; this guards a page reached some other way)."""
    who = viewer()
    if not who.can(action):
        st.error(f"Your role ({who.role}) cannot open this page.", icon=":material/block:")
        st.stop()
    return who


def static_base() -> str:
    """URL prefix of ``static/`` as this server serves it."""
    return _static_base(st.get_option("server.baseUrlPath"))


# -- cached data -------------------------------------------------------------------------

@st.cache_data(max_entries=24, show_spinner=False)
def cached_stats(path: str, layer_key: str, stamp: str) -> pd.DataFrame:
    return region_stats(_store(path), parse_layer(layer_key))


@st.cache_data(max_entries=24, show_spinner=False)
def cached_places(path: str, layer_key: str, stamp: str) -> pd.DataFrame:
    return region_places(_store(path), parse_layer(layer_key))


@st.cache_data(max_entries=24, show_spinner=False)
def cached_state_codes(path: str, layer_key: str, stamp: str) -> list[str]:
    return state_codes(cached_places(path, layer_key, stamp))


def border_note(in_regions: int, by_address: int, area: str) -> str | None:
    """Why the leads of an area's regions differ from the leads with an address in it (None: they agree):
    hexagons and ZIPs along a border hold leads of both sides."""
    if in_regions == by_address:
        return None
    more = in_regions > by_address
    return (f"{fmt_int(by_address)} leads have an address in {area}; the regions along its border "
            + (f"also hold {fmt_int(in_regions - by_address)} of the neighbouring states'"
               if more else f"leave {fmt_int(by_address - in_regions)} of them to regions of the neighbours")
            + " (a hexagon or ZIP across a state line counts all of its leads).")


@st.cache_data(max_entries=8, show_spinner=False)
def cached_leads_by_state(path: str, stamp: str) -> dict[str, int]:
    return leads_by_state(_store(path)).to_dict()


@st.cache_data(max_entries=24, show_spinner=False)
def cached_assignment(path: str, plan_id: int, plan_version: int, layer_key: str, stamp: str) -> pd.DataFrame:
    plan = next(p for p in list_plans(_store(path)) if p.plan_id == plan_id)
    return assignment_for_layer(_store(path), plan, parse_layer(layer_key))


@st.cache_data(max_entries=24, show_spinner=False)
def cached_territories(path: str, plan_id: int, plan_version: int) -> pd.DataFrame:
    return territories(_store(path), plan_id)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_kpis(path: str, plan_id: int | None, stamp: str) -> dict:
    return headline_kpis(_store(path), plan_id)


@st.cache_data(max_entries=24, show_spinner=False)
def cached_area_states(path: str, plan_id: int, plan_version: int, layer_key: str, stamp: str) -> pd.DataFrame:
    """region_id, state of every region of the plan's area on this layer (empty if too many to list)."""
    try:
        return area_regions(_store(path), parse_layer(layer_key), plan_area(_store(path), plan_id))[
            ["region_id", "state"]]
    except AreaTooLarge:
        return pd.DataFrame(columns=["region_id", "state"])


def region_frame(s: Store, layer_key: str, plan: PlanInfo | None, stamp: str) -> pd.DataFrame:
    """The map's regions: those with leads, and with a plan every region of its area (a complete plan)."""
    path = str(s.path)
    stats = cached_stats(path, layer_key, stamp)
    places = cached_places(path, layer_key, stamp)
    if plan is None:
        return build_region_frame(stats, None, None, places)
    return build_region_frame(
        stats,
        cached_assignment(path, plan.plan_id, plan.version, layer_key, stamp),
        cached_territories(path, plan.plan_id, plan.version),
        places,
        cached_area_states(path, plan.plan_id, plan.version, layer_key, stamp),
    )


@st.cache_resource(max_entries=6, show_spinner=False)
def cached_map_data(
    path: str, layer_key: str, plan_id: int | None, plan_version: int | None, stamp: str,
    states: tuple[str, ...], color_by: str,
) -> MapData:
    """Shared read-only across sessions (cache_resource: no copy of a multi-MB payload per rerun)."""
    s = _store(path)
    plan = next((p for p in list_plans(s) if p.plan_id == plan_id), None)
    frame = filter_states(region_frame(s, layer_key, plan, stamp), states)
    layer = parse_layer(layer_key)
    shapes = layer.shapes(s, frame["region_id"].tolist())
    terr = cached_territories(path, plan.plan_id, plan.version) if plan else None
    return map_data(
        frame, shapes, terr, color_by,
        region_label="ZIP" if layer_key == "zip" else "H3 cell",
        decimals=default_decimals(layer_key),
    )


def _outlines_or_none() -> dict | None:
    try:
        return state_outlines_geojson()
    except Exception:  # a broken outline file must not take the map down
        return None


@st.cache_resource(show_spinner=False)
def state_outlines() -> dict | None:
    """US state outlines for the offline base layer (None if terrmap.geo.outlines is unavailable)."""
    return _outlines_or_none()


@st.cache_resource(show_spinner=False)
def chart_outlines() -> list[dict] | None:
    """The state outlines as Vega-Lite geoshape features: every ring wound the way d3-geo reads spherical
    polygons (exterior clockwise). GeoJSON's own order (counter-clockwise) reads there as "the whole globe but
    this state": a few such states paint the chart grey and hide the others."""
    outlines = state_outlines()
    return None if not outlines else clockwise_features(outlines["features"])


# Computing the outlines takes ~2 s: start it when the app starts, not on the first map.
threading.Thread(target=_outlines_or_none, name="terrmap-outlines-warmup", daemon=True).start()


def clear_caches() -> None:
    """After an import: everything derived from the data is stale."""
    st.cache_data.clear()
    cached_map_data.clear()


# -- URL state --------------------------------------------------------------------------------

def ensure_app_navigation() -> None:
    """Run pages through app.py's st.navigation even on a fresh server.

    Streamlit starts in its legacy "pages/ directory" mode when a ``pages/``
    folder exists and switches only once the main script has called
    st.navigation; the very first visit of a deep link (``/map``) would run the
    page alone (no page config, a different sidebar). Switch and rerun instead.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager  # private API, guarded: it may move
    except ImportError:  # private API moved: the legacy quirk is harmless
        return
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def seed_from_url(key: str, options, default=None, multi: bool = False) -> None:
    """Initialise widget state ``key`` from the URL query (``?layer=h3:5&area=CA&area=NV``) once per session."""
    if key in st.session_state:
        return
    options = list(options)
    if multi:
        wanted = [v for part in st.query_params.get_all(key) for v in part.split(",")]
        st.session_state[key] = [v for v in wanted if v in options] or list(default or [])
    else:
        value = st.query_params.get(key)
        st.session_state[key] = value if value in options else default


def sync_url(values: dict, defaults: dict) -> None:
    """Mirror widget values into the URL (values equal to the default are left out)."""
    for key, value in values.items():
        if value == defaults.get(key) or value in (None, [], ""):
            if key in st.query_params:
                del st.query_params[key]
        elif isinstance(value, (list, tuple)):
            st.query_params[key] = [str(v) for v in value]
        else:
            st.query_params[key] = str(value)


# -- pickers ---------------------------------------------------------------------------------

def plan_picker(s: Store, container=None, in_url: bool = False) -> PlanInfo | None:
    """Choose the plan (published first; no widget when there is only one); remembered across pages.

    ``in_url``: the plan's name is kept in the URL (``?plan=NAME``, left out for the published plan), so a
    reload or a bookmark shows the same plan."""
    plans = list_plans(s)
    if not plans:
        return None
    where = container or st
    ids = [p.plan_id for p in plans]
    by_id = {p.plan_id: p for p in plans}
    if in_url:
        wanted = st.query_params.get("plan")
        by_name = {p.name: p.plan_id for p in plans}
        if wanted in by_name and st.session_state.get("_plan_from_url") != wanted:
            st.session_state["plan_id"] = by_name[wanted]  # a new link wins over what the session had
            st.session_state["_plan_from_url"] = wanted
    if st.session_state.get("plan_id") not in ids:
        st.session_state["plan_id"] = ids[0]
    if len(plans) == 1:  # nothing to choose
        return plans[0]
    pid = where.selectbox(
        "Plan",
        ids,
        format_func=lambda i: by_id[i].name + ("  ✓ published" if by_id[i].published else ""),
        key="plan_id",
        persist_state="session",
    )
    if in_url:
        sync_url({"plan": by_id[pid].name}, {"plan": plans[0].name})
        st.session_state["_plan_from_url"] = st.query_params.get("plan")
    return by_id[pid]


def layer_label(key: str) -> str:
    if key == "zip":
        return "ZIP codes"
    layer = parse_layer(key)
    size = layer.label.split("(", 1)[-1].rstrip(")")
    return f"Hexagons, level {layer.res} ({size})"


def layer_options() -> list[str]:
    return list(LAYER_KEYS)


# -- display ---------------------------------------------------------------------------------

# -- widgets (display) ---------------------------------------------------------------------------------

def kpi_row(k: dict) -> None:
    items = [
        ("Leads", fmt_int(k["leads"]), None),
        ("Open leads", fmt_int(k["open_leads"]), None),
        ("Customers", fmt_int(k["customers"]), None),
        ("Won revenue", fmt_money(k["won_revenue"]), None),
        ("Total potential", fmt_money(k["potential"]), None),
        ("Territories", fmt_int(k["territories"]), None),
        ("Reps", fmt_int(k["reps"]), None),
    ]
    cols = st.columns(len(items))
    for col, (label, value, help_text) in zip(cols, items):
        col.metric(label, value, help=help_text, border=True)


def sidebar_footer(s: Store) -> None:
    with st.sidebar:
        st.caption(f"Database `{s.path.name}` · {fmt_int(queries.lead_count(s))} leads")


PAGE_CSS = """
<style>
div[data-testid="stMetricValue"] { font-size: 1.6rem; }
iframe[title="streamlit_folium.st_folium"] { border-radius: 8px; border: 1px solid rgba(49, 51, 63, 0.15); }
</style>
"""


def page_style() -> None:
    """A few static CSS tweaks (no data in it)."""
    st.html(PAGE_CSS)


# -- the editor (pages/editor.py) ------------------------------------------------------------------

@st.cache_resource(max_entries=4, show_spinner=False)
def _cached_graph(path: str, layer_key: str, digest: str, _ids: tuple[str, ...]):
    """A layer's adjacency graph over given regions, shared read-only by every session."""
    return parse_layer(layer_key).graph(_store(path), list(_ids))


def graph_provider(path: str):
    """graph_for(layer, ids) for terrmap functions that take one: graphs cached across sessions."""
    def graph_for(layer, ids):
        digest = hashlib.sha1("\n".join(ids).encode()).hexdigest()
        return _cached_graph(path, layer.key, digest, tuple(ids))

    return graph_for


EDITOR_SESSIONS = "tm_editor_sessions"


def editor_session(s: Store, plan: PlanInfo, reload: bool = False):
    """The planner's :class:`terrmap.plan.editor.EditorSession` on ``plan``, kept in the Streamlit session
    (keyed by database path and plan id); ``reload``: discard it and open the saved plan again."""
    sessions = st.session_state.setdefault(EDITOR_SESSIONS, {})
    key = (str(s.path), plan.plan_id)
    if reload or key not in sessions:
        sessions[key] = EditorSession.open_with_graph(s, plan.plan_id, graph_for=graph_provider(str(s.path)))
    return sessions[key]


def drop_editor_session(s: Store, plan_id: int) -> None:
    st.session_state.setdefault(EDITOR_SESSIONS, {}).pop((str(s.path), plan_id), None)


def serve_script(js: str, coordinates: str = "terrmap-editor-map") -> str | None:
    """Serve ``js`` from this app (Streamlit's media files, same origin) and return its URL, or None
    when there is no runtime (bare mode, tests). Re-register on every run that shows it: files not
    registered during a full run are dropped after it."""
    try:
        from streamlit import runtime  # internal API, guarded by the except below

        if not runtime.exists():
            return None
        url = runtime.get_instance().media_file_mgr.add(js.encode("utf-8"), "application/javascript", coordinates)
    except Exception:  # an internal API moved: inline the payload instead
        return None
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}{url}" if base and not url.startswith(f"/{base}/") else url
