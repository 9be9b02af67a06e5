"""Optimizer: build balanced, contiguous, compact territories from scratch, or rebalance a plan with a cap on change.

The search runs in a background thread (progress bar, Stop button); its candidates are compared in a table, the
chosen one is drawn on the map (territories dissolved) and saved as a scenario. Logic lives in :mod:`terrmap.optimize`.
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
from dataclasses import dataclass, field

import pandas as pd
import streamlit as st

from terrmap.access import Action
from terrmap.app import ui
from terrmap.app.folium_protocol import show_map
from terrmap.app.map_data import STATE_NAMES, MapData
from terrmap.app.maps import build_map
from terrmap.app.optimizer_map import candidate_map_data
from terrmap.geo import parse_layer
from terrmap.geo.graph import bridge_table
from terrmap.optimize import (
    MEASURE_LABELS,
    MEASURES,
    WORKLOAD_CUSTOMER_WEIGHT,
    InfeasibleError,
    Optimizer,
    cached_instance,
    explain_moves,
    load_instance,
    moved_accounts,
    rep_seeds,
    save_candidate,
    water_line,
)
from terrmap.plan import list_plans
from terrmap.plan.metrics import METRIC_HELP

s, path, stamp = ui.page(
    "Territory optimizer",
    "Balanced, contiguous, compact territories in seconds: build them from scratch, or rebalance a plan while "
    "moving as little as possible. You get a few candidates along the trade-off between balance, compactness "
    "and change; pick one and save it as a scenario.",
)
who = ui.require(Action.EDIT)


# -- the background job -------------------------------------------------------------------------------------

@dataclass
class Job:
    params: dict
    frac: float = 0.0
    message: str = "starting"
    result: object = None
    error: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    started: float = field(default_factory=time.perf_counter)

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


def _run(job: Job, store, data_stamp: str) -> None:
    p = job.params
    try:
        job.message = "loading regions and their adjacency graph (large layers take a while the first time)"
        leads_stamp = "|".join(data_stamp.split("|")[:2])  # leads only: saving a plan keeps the graph
        inst = cached_instance(store, p["layer"], p["states"], leads_stamp)
        if p["mode"] == "rebalance":
            inst = load_instance(store, p["layer"], states=list(p["states"]) or None, base_plan=p["base_plan"],
                                 graph=inst.graph)
        kwargs = dict(balance=p["balance"], tolerance=p["tolerance"], time_limit=p["time_limit"], limits=p["limits"],
                      progress=lambda f, m: (setattr(job, "frac", f), setattr(job, "message", m)),
                      should_stop=job.stop.is_set)
        if p["mode"] == "rebalance":
            opt = Optimizer(inst, None, max_disruption=p["max_disruption"], **kwargs)
        else:
            seeds = {}
            if p["seed_reps"]:
                reps = rep_seeds(store, inst)
                reps = reps[reps["km"] <= p["seed_km"]].head(p["k"])
                seeds = dict(seeds=reps["region_id"].tolist(), seed_names=reps["name"].tolist(),
                             seed_rep_ids=reps["rep_id"].tolist())
            opt = Optimizer(inst, p["k"], **seeds, **kwargs)
        job.result = opt.solve()
    except InfeasibleError as exc:
        job.error = str(exc)
    except Exception as exc:  # shown to the planner; the page keeps working
        job.error = f"{type(exc).__name__}: {exc}"
    finally:
        job.frac = 1.0


def start_job(params: dict) -> None:
    job = Job(params)
    job.thread = threading.Thread(target=_run, args=(job, s, stamp), name="terrmap-optimizer", daemon=True)
    job.thread.start()
    st.session_state["opt_job"] = job
    st.session_state.pop("opt_saved", None)
    st.session_state.pop("opt_pick", None)


def limits_editor(busy: bool) -> dict:
    """Hard per-territory minimum/maximum per measure (blank = none), e.g. at most 400 customers a rep can serve."""
    with st.expander("Hard limits per territory (optional)"):
        st.caption("Every territory must stay within these, whatever the balance: a rep can only serve so many "
                   "customers, or needs a minimum of open leads. Leave blank for no limit.")
        rows = pd.DataFrame({"measure": [MEASURE_LABELS[m].capitalize() for m in MEASURES],
                             "min": [None] * len(MEASURES), "max": [None] * len(MEASURES)})
        edited = st.data_editor(
            rows, key="opt_limits", disabled=busy or ["measure"], hide_index=True, width="stretch",
            column_config={"min": st.column_config.NumberColumn("Minimum", min_value=0.0),
                           "max": st.column_config.NumberColumn("Maximum", min_value=0.0)})
    limits = {}
    for m, lo, hi in zip(MEASURES, edited["min"], edited["max"]):
        lo = None if pd.isna(lo) else float(lo)
        hi = None if pd.isna(hi) else float(hi)
        if lo is not None or hi is not None:
            limits[m] = (lo, hi)
    return limits


# -- the request ----------------------------------------------------------------------------------------------

plans = list_plans(s)
job: Job | None = st.session_state.get("opt_job")
busy = job is not None and job.running

with st.container(border=True):
    c_mode, c_layer, c_area = st.columns([1.6, 1.6, 3])
    mode = c_mode.radio("Mode", ["scratch", "rebalance"], horizontal=True, key="opt_mode", disabled=busy,
                        format_func=lambda m: {"scratch": "Build from scratch", "rebalance": "Rebalance a plan"}[m],
                        help="From scratch: K new territories. Rebalance: keep a plan's territories and move as "
                             "few regions as possible.")
    base_plan = None
    if mode == "rebalance":
        if not plans:
            st.info("There is no plan to rebalance yet: build one from scratch first.")
            st.stop()
        by_id = {p.plan_id: p for p in plans}
        pid = c_layer.selectbox("Plan to rebalance", list(by_id), key="opt_base",
                                format_func=lambda i: by_id[i].name, disabled=busy)
        base_plan = by_id[pid]
        layer_key = base_plan.layer
        c_layer.caption(f"Regions: {ui.layer_label(layer_key)}")
    else:
        layer_key = c_layer.selectbox("Regions", ui.layer_options(), index=ui.layer_options().index("zip"),
                                      format_func=ui.layer_label, key="opt_layer", disabled=busy,
                                      help="ZIP codes, or H3 hexagons (coarser levels are faster).")
    all_states = ui.cached_state_codes(path, layer_key, stamp)
    states = c_area.multiselect("Area", all_states, format_func=lambda c: STATE_NAMES.get(c, c),
                                key="opt_states", disabled=busy, placeholder="All of the US (or choose states)",
                                wrap=True)

    c1, c2, c3, c4 = st.columns([1.2, 2.4, 1.4, 1.4])
    k = None
    seed_reps = False
    max_disruption = None
    if mode == "scratch":
        k = c1.number_input("Territories", min_value=1, max_value=500, value=12, step=1, key="opt_k", disabled=busy)
    else:
        max_disruption = c1.slider("Max change", 0.0, 0.5, 0.10, 0.01, key="opt_cap", disabled=busy,
                                   format="%.2f",
                                   help="Largest share of potential, and of customers, allowed to change territory.")
    balance_on = c2.multiselect(
        "Balance on", MEASURES, default=["potential"], key="opt_measures", disabled=busy, wrap=True,
        format_func=lambda m: MEASURE_LABELS[m].capitalize(),
        help=f"One or several measures (equal weight). Workload = leads + {WORKLOAD_CUSTOMER_WEIGHT:g} × customers.",
    )
    tolerance = c3.slider("Tolerance ±", 0.01, 0.30, 0.05, 0.01, key="opt_tol", disabled=busy, format="%.2f",
                          help="Every territory within this share of the average, on every measure.")
    time_limit = c4.slider("Time (s)", 2, 60, 10, 1, key="opt_time", disabled=busy)
    seed_km = 0.0
    if mode == "scratch":
        seed_reps = st.checkbox("Start one territory at each rep's home (territories named after the reps)",
                                key="opt_seed_reps", disabled=busy)
        if seed_reps:
            seed_km = 25.0 if states else 1e9
    limits = limits_editor(busy)
    run = st.button("Optimize", type="primary", disabled=busy or not balance_on, key="opt_run")

if run:
    start_job({"limits": limits, "mode": mode, "layer": layer_key, "states": tuple(states), "k": int(k) if k else None,
               "balance": ",".join(balance_on), "tolerance": float(tolerance), "time_limit": float(time_limit),
               "base_plan": base_plan, "max_disruption": max_disruption, "seed_reps": seed_reps,
               "seed_km": seed_km})
    job = st.session_state["opt_job"]
    busy = True

# -- progress and cancel ----------------------------------------------------------------------------------------

if job is not None and job.running:
    c_bar, c_stop = st.columns([6, 1], vertical_alignment="bottom")
    c_stop.button("Stop", key="opt_stop", on_click=job.stop.set, help="Stop now and keep the best plan found so far.")
    bar = c_bar.progress(0.0, text="starting")
    while job.running:
        bar.progress(min(max(job.frac, 0.0), 1.0), text=f"{job.message} · {time.perf_counter() - job.started:.0f} s")
        time.sleep(0.25)
    st.rerun()

if job is None:
    st.stop()
if job.error:
    st.error(f"**Cannot optimize:** {ui.md(job.error)}")
    st.stop()
res = job.result
if res is None:
    st.stop()

# -- candidates --------------------------------------------------------------------------------------------------

status = {"ok": "Every candidate listed is contiguous; the recommended one meets the tolerance.",
          "tolerance not reached": "No candidate reached the tolerance (best effort shown).",
          "cancelled": "Stopped: the best plans found so far."}[res.status]
st.subheader("Candidates")
st.caption(f"{res.instance.n:,} regions into {res.n_territories} territories in {res.seconds:.1f} s. {status}")
for note in res.notes:
    st.caption("· " + ui.md(note))
if res.bridges:
    with st.expander(f"Water crossings ({len(res.bridges):,})", expanded=False):
        st.caption("Where land is split by water (islands, bays, lakes) the regions facing each other across it "
                   "are linked, so a territory may hold both shores; it is then reported in pieces by water.")
        st.dataframe(bridge_table(res.instance.graph), hide_index=True, width="stretch", column_config={
            "region_a": "Region", "region_b": "Across water",
            "km": st.column_config.NumberColumn("km", format="%.1f", help="Centre to centre of the two regions.")})

table = res.table()
show = pd.DataFrame({
    "Candidate": table["candidate"],
    "Max deviation": table["max_deviation"] * 100,
    "CV": table["cv"] * 100,
    "Within tolerance": table["within_tolerance"],
    "Contiguous": table["contiguous"].astype(str) + f" / {res.n_territories}",
    "By water": table["in_pieces_by_water"],
    "Cut edges": table["cut_edge_share"] * 100,
    "Polsby-Popper (mean)": table["mean_polsby_popper"],
    "Seconds": table["seconds"],
    "What": table["description"],
})
if res.mode == "rebalance":
    show.insert(5, "Potential moved", table["disruption_potential"].astype(float) * 100)
    show.insert(6, "Customers moved", table["disruption_customers"].astype(float) * 100)
    show.insert(7, "Regions moved", table["moved_regions"])
pct = st.column_config.NumberColumn(format="%.1f%%")
st.dataframe(show, hide_index=True, width="stretch", column_config={
    "Contiguous": st.column_config.TextColumn(
        help="Territories in one piece on the map; a territory joined only across water (an island, a bay, a "
             "lake) counts as one piece, and is also counted under By water."),
    "By water": st.column_config.NumberColumn(help=METRIC_HELP["in_pieces_by_water"]),
    "Max deviation": st.column_config.NumberColumn(format="%.1f%%", help=METRIC_HELP["max_abs_deviation"]),
    "CV": st.column_config.NumberColumn(format="%.1f%%", help=METRIC_HELP["cv"]),
    "Cut edges": st.column_config.NumberColumn(format="%.1f%%", help=METRIC_HELP["cut_edge_share"]),
    "Potential moved": st.column_config.NumberColumn(format="%.1f%%", help=METRIC_HELP["disruption"]
                                                     + " Capped by Max change."),
    "Customers moved": st.column_config.NumberColumn(format="%.1f%%", help="Share of the area's customers (won "
                                                     "accounts) whose territory changes. Capped by Max change."),
    "Polsby-Popper (mean)": st.column_config.NumberColumn(format="%.3f", help=METRIC_HELP["mean_polsby_popper"]),
    "Seconds": st.column_config.NumberColumn(format="%.2f"),
})

names = [c.name for c in res.candidates]
pick = st.radio("Candidate", names, horizontal=True, key="opt_pick",
                format_func=lambda n: n + ("  (recommended)" if n == names[0] else ""))
cand = res.candidate(pick)
water_text = water_line(res.water_report(pick))
if water_text:
    st.caption(ui.md(water_text))


@st.cache_resource(max_entries=6, show_spinner="Drawing the territories…")
def cached_candidate_map(result_id: int, started: float, which: str, _res) -> MapData:
    return candidate_map_data(s, _res, which)


st.caption(f"“{pick}” on the map: each territory as one shape. Hover one for its totals and its potential "
           "against the average.")
show_map(build_map(cached_candidate_map(id(res), job.started, pick, res), outlines=ui.state_outlines(),
                   static_base=ui.static_base()),
         key="opt_map", height=520)

# Per-territory balance of the chosen candidate.
totals = res.territory_totals(pick)
terr_df = pd.DataFrame({"Territory": totals["territory"], "Regions": totals["regions"],
                        **{MEASURE_LABELS[m].capitalize(): totals[m] for m in res.balance}})
for m in res.balance:
    col = MEASURE_LABELS[m].capitalize()
    terr_df[f"{col} vs average"] = (terr_df[col] / terr_df[col].mean() - 1) * 100
with st.expander(f"Territories of “{pick}”", expanded=False):
    st.dataframe(terr_df, hide_index=True, width="stretch", column_config={
        c: st.column_config.NumberColumn(format="%+.1f%%") for c in terr_df.columns if c.endswith("vs average")})

# What moved, and why (rebalance).
if res.mode == "rebalance":
    moves = explain_moves(s, res.instance.base_plan, res, pick)
    st.subheader(f"What moves ({len(moves):,} regions)")
    if moves.empty:
        st.caption("Nothing moves.")
    else:
        st.dataframe(moves, hide_index=True, width="stretch", height=min(420, 38 + 35 * len(moves)),
                     column_config={"potential": st.column_config.NumberColumn("Potential ($)", format="compact")})
        with st.expander("Accounts that change owner"):
            accounts = moved_accounts(s, res, pick)
            st.caption(f"{len(accounts):,} accounts change owner (pinned and overlay accounts keep theirs): the "
                       "list the Scenarios page shows once this candidate is saved.")
            st.dataframe(accounts.head(5000), hide_index=True, width="stretch")
            st.download_button("Download the accounts (CSV)", accounts.to_csv(index=False).encode(),
                               file_name="moved_accounts.csv", mime="text/csv")

# -- save ----------------------------------------------------------------------------------------------------------

st.subheader("Save as a scenario")
existing = {p.name for p in list_plans(s)}
default_name = (f"Optimized {parse_layer(res.instance.layer_key).key} · {res.n_territories} territories · "
                f"{pick} · {_dt.datetime.now():%Y-%m-%d %H:%M}")
c_name, c_save = st.columns([5, 1], vertical_alignment="bottom")
name = c_name.text_input("Scenario name", value=default_name, key="opt_name")
if c_save.button("Save", type="primary", key="opt_save", disabled=not name.strip() or name.strip() in existing):
    try:
        plan_id = save_candidate(s, res, name.strip(), which=pick, author=who.author())
        st.session_state["opt_saved"] = (plan_id, name.strip())
    except Exception as exc:
        st.error(f"Could not save: {ui.md(exc)}")
if name.strip() in existing and st.session_state.get("opt_saved", (None, None))[1] != name.strip():
    st.caption("A plan with this name exists: choose another name.")
saved = st.session_state.get("opt_saved")
if saved:
    st.success(f"Saved as scenario “{ui.md(saved[1])}”. Open it on the map (choose it in the Plan picker).")
    st.session_state["plan_id"] = saved[0]
    try:
        st.page_link("pages/map.py", label="Map")
    except Exception:  # the page runs outside the app's navigation (tests): no link
        pass

st.download_button(
    "Download the assignment (CSV)", res.assignment(pick)[["region_id", "territory"]].to_csv(index=False).encode(),
    file_name="territories.csv", mime="text/csv", key="opt_download",
)
