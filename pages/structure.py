"""Accounts & hierarchy: the territory hierarchy with roll-ups, named-account pins, segment overlays, overlaps."""

import altair as alt
import pandas as pd
import streamlit as st

from terrmap.access import Action
from terrmap.app import structure as us
from terrmap.app import ui
from terrmap.app.html_safe import plain
from terrmap.app.map_colors import safe_color
from terrmap.data import accounts as stored_accounts
from terrmap.data import hierarchy as stored_hierarchy
from terrmap.data import plan_events
from terrmap.measures import fmt_int, fmt_pct
from terrmap.plan import accounts
from terrmap.plan import hierarchy as hi

MEASURE_LABELS = {"potential": "Potential", "leads": "Leads", "open_leads": "Open leads", "customers": "Customers",
                  "won_revenue": "Won revenue"}

s = ui.page("Accounts & hierarchy").store
who = ui.require(Action.VIEW_ALL)
READ_ONLY = "Your role sees the structure and changes none."
head, pick = st.columns([3, 1], vertical_alignment="bottom")
plan = ui.plan_picker(s, pick)
if plan is None:
    st.info("No plan yet: create one in the Editor or the Optimizer first.")
    st.stop()
head.caption(f"Plan **{ui.md(plan.name)}** · territories roll up into the hierarchy; accounts belong to a pin, "
             "else a segment overlay, else their region's territory, and count once, where they are owned.")
pid = plan.plan_id
stamp, sstamp = us.stamps(s, plan)
path = str(s.path)
terr = stored_hierarchy.territory_parent_rows(s.cursor(), pid)
terr_name = dict(zip(terr["territory_id"].astype(int), terr["name"]))
reps = us.rep_names(s)


def territory_list(value) -> list[int]:
    """An overlay's territories as ints ([] when NULL: all of them)."""
    return [] if value is None or not hasattr(value, "__len__") else [int(t) for t in value]


def changed(message: str) -> None:
    """After a write: record who did it in the plan's event log, remember the message for the next run (the
    caches key on the structure stamp)."""
    plan_events.record(s, pid, who.author(), plain(message))
    st.session_state["structure_flash"] = message
    st.rerun()


flash = st.session_state.pop("structure_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")

tab_tree, tab_pins, tab_overlays, tab_overlaps = st.tabs(
    ["Hierarchy", "Named accounts", "Segment overlays", "Overlap report"])

# -- (a) hierarchy ------------------------------------------------------------------------------------------------
with tab_tree:
    nodes = hi.nodes(s, pid)
    levels = hi.levels(s, pid)
    node_label = {n: f"{name} ({level})" for n, name, level in zip(nodes["node_id"], nodes["name"], nodes["level"])}
    problems = hi.check(s, pid)
    if problems:
        st.warning("The stored hierarchy has problems: " + ui.md("; ".join(problems)), icon=":material/warning:")

    measure = st.segmented_control(
        "Balance on", list(MEASURE_LABELS), format_func=MEASURE_LABELS.get, default="potential", key="tree_measure",
        help="The measure the tree's deviations and the charts compare: each node against the mean of its level.",
    ) or "potential"
    metrics = us.cached_owner_metrics(path, pid, plan.version, stamp, sstamp)
    tree = hi.tree(s, plan, measure, owner_metrics=metrics)
    if len(nodes) == 0:
        st.info("No hierarchy yet: add a node below (for example a *Region*, then a *Division* above it) and "
                "put territories under it.", icon=":material/account_tree:")
    else:
        view = tree.assign(
            shown=[("\u2003" * d) + ("▸ " if k == "node" else "") + str(n)
                   for d, k, n in zip(tree["depth"], tree["kind"], tree["name"])],
            avg_score=tree["avg_score"] * 100,
            deviation=(tree["deviation"] * 100).round() + 0.0,
        )
        st.dataframe(
            view[["shown", "level", "territories", "leads", "customers", "avg_score", "potential", "won_revenue",
                  "deviation"]],
            hide_index=True, width="stretch", height=38 + 35 * min(len(view), 18), key="tree_table",
            column_config={
                "shown": st.column_config.TextColumn("Hierarchy", help="nodes (▸) with what rolls up into them"),
                "level": st.column_config.TextColumn("Level"),
                "territories": st.column_config.NumberColumn("Territories", help="territories under the node"),
                "leads": st.column_config.NumberColumn("Leads", format="localized",
                                                       help="accounts owned, each counted once"),
                "customers": st.column_config.NumberColumn("Customers", format="localized"),
                "avg_score": st.column_config.NumberColumn("Avg score", format="%.1f%%",
                                                           help="mean conversion probability of the open leads"),
                "potential": st.column_config.NumberColumn("Potential ($)", format="compact",
                                                           help="sum over open leads of score × expected deal value"),
                "won_revenue": st.column_config.NumberColumn("Won revenue ($)", format="compact"),
                "deviation": st.column_config.NumberColumn(
                    "vs. level mean", format="%+.0f%%",
                    help=f"{MEASURE_LABELS[measure].lower()} compared with the mean of the nodes of the same level"),
            },
        )
        n_overlay = int((metrics["owner_kind"] == "overlay").sum())
        if n_overlay:
            st.caption(f"Accounts owned by the {n_overlay} segment overlay(s) belong to no territory and so to no "
                       "node: see *Segment overlays*.")

        st.markdown(f"**{MEASURE_LABELS[measure]} per node, level by level** (dashed line: the level's mean)")
        chart_levels = [lv for lv in levels if lv != hi.TERRITORY_LEVEL][::-1] + [hi.TERRITORY_LEVEL]
        cols = st.columns(min(len(chart_levels), 3))
        for i, lv in enumerate(chart_levels):
            frame = us.rollup(s, plan, lv, measure)
            frame = frame[frame["kind"].isin(["node", "territory"])].copy()
            if frame.empty:
                continue
            frame["color"] = [safe_color(c) for c in frame["color"]]
            b = hi.balance(frame, measure)
            mean = float(frame[measure].mean())
            fmt = "$,.0f" if measure in ("potential", "won_revenue") else ","
            bars = alt.Chart(frame).mark_bar(cornerRadiusTopLeft=3, cornerRadiusTopRight=3).encode(
                x=alt.X("name:N", sort="-y", title=None, axis=alt.Axis(labelAngle=-40, labelLimit=110)),
                y=alt.Y(f"{measure}:Q", title=MEASURE_LABELS[measure], axis=alt.Axis(format="~s")),
                color=alt.Color("color:N", scale=None),
                tooltip=[alt.Tooltip("name:N", title=lv), alt.Tooltip(f"{measure}:Q", format=fmt),
                         alt.Tooltip("deviation:Q", title="vs. mean", format="+.0%")],
            )
            rule = alt.Chart(pd.DataFrame({"mean": [mean]})).mark_rule(strokeDash=[5, 4], color="#111827").encode(
                y="mean:Q", tooltip=[alt.Tooltip("mean:Q", title="mean", format=fmt)])
            with cols[i % len(cols)]:
                st.altair_chart(alt.layer(bars, rule).properties(height=240, title=us.plural(lv)), width="stretch")
                st.caption(f"{b['nodes']} {us.plural(lv).lower()} · largest deviation {fmt_pct(b['max_abs_deviation'])} · "
                           f"coefficient of variation {b['cv']:.2f}")

    st.divider()
    st.markdown("**Edit the hierarchy**")
    c_add, c_edit = st.columns(2)
    with c_add.container(border=True):
        # not a form: the level follows the parent chosen, so the parent must rerun the page
        st.markdown("Add a node")
        name = st.text_input("Name", placeholder="e.g. West", key="new_node_name")
        parent = st.selectbox("Parent", [None, *nodes["node_id"]], key="new_node_parent",
                              format_func=lambda n: "(top level)" if n is None else node_label[n],
                              help="A node's level follows from its parent's: every node at one depth shares a level.")
        depth = 0 if parent is None else int(nodes.set_index("node_id").loc[parent, "depth"] or 0) + 1
        at_depth = nodes[nodes["depth"] == depth]["level"].unique().tolist()
        level = st.text_input(
            "Level", value=at_depth[0] if at_depth else "", key=f"new_node_level_{parent}",
            disabled=bool(at_depth),
            help="Nodes at one depth share one level name (e.g. Region under Division); a new depth takes a new name.")
        on_top = False
        if parent is None and at_depth:
            on_top = st.checkbox("As a new level above everything", key="new_node_on_top",
                                 help="Put every current top-level node under the new node (e.g. a Company "
                                      "over the Divisions).")
            level = st.text_input("New level name", key="new_top_level", placeholder="e.g. Company") if on_top else level
        if st.button("Add node", type="primary", key="add_node", disabled=not who.can_edit,
                     help=None if who.can_edit else READ_ONLY) and who.can_edit:
            try:
                if on_top:
                    hi.add_top_level(s, pid, name, level)
                else:
                    hi.create_node(s, pid, name, level, parent)
            except ValueError as e:
                st.error(ui.md(e), icon=":material/error:")
            else:
                del st.session_state["new_node_name"]
                changed(f"Added {ui.md(level)} {ui.md(name)}.")

    with c_edit.container(border=True):
        st.markdown("Change a node")
        if len(nodes) == 0:
            st.caption("No nodes yet.")
        else:
            target = st.selectbox("Node", nodes["node_id"].tolist(), format_func=node_label.get, key="edit_node")
            row = nodes.set_index("node_id").loc[target]
            new_name = st.text_input("Name", value=row["name"], key=f"rename_{target}")
            others = [n for n in nodes["node_id"] if n != target]
            current_parent = None if pd.isna(row["parent"]) else row["parent"]
            new_parent = st.selectbox("Parent", [None, *others], index=([None, *others].index(current_parent)),
                                      format_func=lambda n: "(top level)" if n is None else node_label[n],
                                      key=f"parent_{target}")
            new_color = st.color_picker("Colour on the map", value=safe_color(row["color"]), key=f"color_{target}")
            b1, b2 = st.columns(2)
            if b1.button("Save changes", key="save_node", type="primary", disabled=not who.can_edit,
                         help=None if who.can_edit else READ_ONLY) and who.can_edit:
                try:
                    if new_name != row["name"]:
                        hi.rename_node(s, pid, target, new_name)
                    if new_parent != current_parent:
                        hi.move_node(s, pid, target, new_parent)
                    if new_color != row["color"]:
                        hi.set_node_color(s, pid, target, new_color)
                except ValueError as e:
                    st.error(ui.md(e), icon=":material/error:")
                else:
                    changed(f"Saved {ui.md(new_name)}.")
            if b2.button("Delete node", key="delete_node", disabled=not who.can_edit,
                         help="Its child nodes and territories move up to its parent." if who.can_edit
                         else READ_ONLY) and who.can_edit:
                try:
                    hi.delete_node(s, pid, target)
                except ValueError as e:
                    st.error(ui.md(e), icon=":material/error:")
                else:
                    changed(f"Deleted {ui.md(row['name'])}; what it held moved up.")

    if len(nodes):
        st.markdown("**Territories and their parent node**")
        edit = terr.assign(parent=terr["parent"].map(lambda p: node_label.get(p, "(none)") if pd.notna(p) else "(none)"))
        edited = st.data_editor(
            edit[["territory_id", "name", "parent"]], hide_index=True, width="stretch", key="terr_parents",
            disabled=["territory_id", "name"],
            column_config={
                "territory_id": st.column_config.NumberColumn("Id"),
                "name": st.column_config.TextColumn("Territory"),
                "parent": st.column_config.SelectboxColumn(
                    "Rolls up into", options=["(none)", *node_label.values()], required=True,
                    help="The node this territory belongs to directly (usually one of the lowest level)."),
            },
        )
        if st.button("Save territory parents", type="primary", disabled=not who.can_edit,
                     help=None if who.can_edit else READ_ONLY) and who.can_edit:
            by_label = {v: k for k, v in node_label.items()}
            wanted = {int(t): by_label.get(p) for t, p in zip(edited["territory_id"], edited["parent"])}
            try:
                hi.set_territory_parents(s, pid, wanted)
            except ValueError as e:
                st.error(ui.md(e), icon=":material/error:")
            else:
                changed("Territory parents saved.")

# -- (b) named accounts -------------------------------------------------------------------------------------------
with tab_pins:
    st.caption("Pin an account to a territory regardless of geography: a pin beats overlays and geography.")
    query = st.text_input("Find an account", placeholder="name or lead id", key="pin_search")
    if query.strip():
        found = stored_accounts.find_leads(s, query.strip())
        if found.empty:
            st.info("No account matches.")
        else:
            owners = accounts.account_owners(s, plan).set_index("lead_id")
            found["owner"] = found["lead_id"].map(owners["owner_name"])
            found["rule"] = found["lead_id"].map(owners["rule"])
            st.dataframe(found, hide_index=True, width="stretch", height=38 + 35 * min(len(found), 8),
                         column_config={"rule": st.column_config.TextColumn(
                             "Owned by rule", help="pin, overlay, geography or unassigned")})
            with st.form("pin_form", border=True):
                lead = st.selectbox("Account", found["lead_id"].tolist(), key="pin_lead",
                                    format_func=lambda i: f"{i} · {found.set_index('lead_id').loc[i, 'name']}")
                territory = st.selectbox("Pin to territory", list(terr_name), format_func=terr_name.get,
                                         key="pin_territory")
                reason = st.text_input("Reason", placeholder="e.g. HQ relationship, signed master agreement",
                                       key="pin_reason")
                if st.form_submit_button("Pin account", type="primary", disabled=not who.can_edit,
                                         help=None if who.can_edit else READ_ONLY) and who.can_edit:
                    try:
                        accounts.pin_account(s, pid, lead, territory, reason)
                    except ValueError as e:
                        st.error(ui.md(e), icon=":material/error:")
                    else:
                        changed(f"Pinned {ui.md(lead)} to {ui.md(terr_name[territory])}.")

    pins = accounts.list_pins(s, pid)
    st.markdown(f"**Pins ({len(pins)})**")
    if pins.empty:
        st.caption("No pinned accounts in this plan.")
    else:
        st.dataframe(pins, hide_index=True, width="stretch", key="pins_table",
                     column_config={"lead_id": "Lead id", "name": "Account", "territory_id": "Territory id",
                                    "territory": "Territory", "reason": "Reason", "pinned_at": "Pinned at"})
        drop = st.multiselect("Unpin", pins["lead_id"].tolist(), key="unpin_ids",
                              format_func=lambda i: f"{i} · {pins.set_index('lead_id').loc[i, 'name']}")
        if st.button("Unpin selected", disabled=not drop or not who.can_edit) and who.can_edit:
            for lead in drop:
                accounts.unpin_account(s, pid, lead)
            changed(f"Unpinned {len(drop)} account(s).")

# -- (c) overlays ------------------------------------------------------------------------------------------------
with tab_overlays:
    st.caption("A segment overlay is a team owning the accounts that match a rule (for example employees ≥ 1,000) "
               "inside some territories. It beats geography; the higher priority wins where overlays overlap.")
    overlays = accounts.list_overlays(s, pid)
    if len(overlays):
        owned = metrics[metrics["owner_kind"] == "overlay"].set_index("owner_id")
        shown = overlays.assign(
            where=[", ".join(terr_name.get(t, str(t)) for t in territory_list(ts)) or "all territories"
                   for ts in overlays["territories"]],
            rep=overlays["rep_id"].map(lambda r: reps.get(r)),
            leads=overlays["overlay_id"].map(owned["leads"]),
            potential=overlays["overlay_id"].map(owned["potential"]),
        )
        st.dataframe(
            shown[["name", "description", "where", "priority", "rep", "leads", "potential"]],
            hide_index=True, width="stretch", key="overlays_table",
            column_config={
                "name": "Overlay", "description": st.column_config.TextColumn("Rule"),
                "where": st.column_config.TextColumn("In territories"),
                "priority": st.column_config.NumberColumn("Priority", help="higher wins where overlays overlap"),
                "rep": "Rep",
                "leads": st.column_config.NumberColumn("Accounts owned", format="localized",
                                                       help="accounts the overlay owns after pins and priorities"),
                "potential": st.column_config.NumberColumn("Potential ($)", format="compact"),
            },
        )
    choice = st.selectbox("Create or edit", [None, *overlays["overlay_id"].tolist()], key="overlay_choice",
                          format_func=lambda o: "New overlay" if o is None
                          else overlays.set_index("overlay_id").loc[o, "name"])
    current = None if choice is None else overlays.set_index("overlay_id").loc[choice]
    rule = accounts.OverlayRule.from_json(current["rule"]) if current is not None else None
    industries = stored_accounts.lead_industries(s)
    with st.form(f"overlay_form_{choice}", border=True):
        c1, c2, c3 = st.columns(3)
        o_name = c1.text_input("Name", value="" if current is None else current["name"], key=f"ov_name_{choice}")
        o_priority = c2.number_input("Priority", value=0 if current is None else int(current["priority"]), step=1,
                                     key=f"ov_priority_{choice}",
                                     help="Where overlays overlap, the higher priority owns the account.")
        rep_ids = sorted(reps)
        o_rep = c3.selectbox("Owner", rep_ids, index=rep_ids.index(current["rep_id"]) if current is not None
                             and current["rep_id"] in rep_ids else None, placeholder="choose a rep or team",
                             format_func=lambda r: f"{reps[r]} ({r})", key=f"ov_rep_{choice}",
                             help="Who owns the accounts this overlay takes: they appear on this rep's call list "
                                  "and as their owner in the CRM export.")
        c4, c5, c6 = st.columns(3)
        min_emp = c4.number_input("Employees at least", min_value=0, step=1, value=None if rule is None
                                  else rule.min_employees, placeholder="any", key=f"ov_min_emp_{choice}")
        max_emp = c5.number_input("Employees at most", min_value=0, step=1, value=None if rule is None
                                  else rule.max_employees, placeholder="any", key=f"ov_max_emp_{choice}")
        min_rev = c6.number_input("Annual revenue at least ($)", min_value=0.0, step=1e6, value=None if rule is None
                                  else rule.min_annual_revenue, placeholder="any", key=f"ov_min_rev_{choice}")
        o_ind = st.multiselect("Industries", industries, default=[] if rule is None or not rule.industries
                               else [i for i in rule.industries if i in industries], placeholder="any industry",
                               key=f"ov_industries_{choice}")
        existing_terr = [] if current is None else territory_list(current["territories"])
        o_terr = st.multiselect("In territories", list(terr_name), default=existing_terr, format_func=terr_name.get,
                                placeholder="all territories", key=f"ov_territories_{choice}",
                                help="Only accounts whose region lies in these territories (empty: anywhere).")
        save = st.form_submit_button("Save overlay", type="primary", disabled=not who.can_edit,
                                     help=None if who.can_edit else READ_ONLY) and who.can_edit
    if save:
        try:
            new_rule = accounts.OverlayRule(
                min_employees=min_emp, max_employees=max_emp, min_annual_revenue=min_rev,
                industries=o_ind or None)
            accounts.save_overlay(s, pid, o_name, new_rule, rep_id=o_rep, territories=o_terr or None,
                                  priority=int(o_priority), overlay_id=choice)
        except ValueError as e:
            st.error(ui.md(e), icon=":material/error:")
        else:
            changed(f"Saved overlay {ui.md(o_name)}.")
    if choice is not None and st.button("Delete this overlay", key="delete_overlay",
                                        disabled=not who.can_edit) and who.can_edit:
        accounts.delete_overlay(s, pid, choice)
        st.session_state.pop("overlay_choice", None)
        changed(f"Deleted overlay {ui.md(current['name'])}.")

# -- (d) overlaps -------------------------------------------------------------------------------------------------
with tab_overlaps:
    report = us.cached_overlap_report(path, pid, plan.version, stamp, sstamp)
    resolved = report["resolved_by"].value_counts()
    st.caption(
        f"{fmt_int(len(report))} accounts are claimed by more than one owner "
        f"({', '.join(f'{fmt_int(n)} by {ui.md(k)}' for k, n in resolved.items()) or 'none'}). "
        "Each counts once, for the owner shown."
    )
    st.dataframe(
        report, hide_index=True, width="stretch", key="overlap_table",
        column_config={
            "lead_id": "Lead id", "name": "Account",
            "potential": st.column_config.NumberColumn("Potential ($)", format="dollar",
                                                       help="score × expected deal value (open accounts)"),
            "claims": st.column_config.TextColumn("Claims", help="geography, then overlays (strongest first), then a pin"),
            "owner_name": "Owner",
            "resolved_by": st.column_config.TextColumn(
                "Resolved by", help="pin: a named-account pin wins; overlay priority: the highest-priority overlay; "
                                    "overlay over geography: the one matching overlay beats the region's territory"),
        },
    )
    st.download_button("Download the overlap report (CSV)", report.to_csv(index=False).encode("utf-8"),
                       file_name=f"overlaps_plan_{pid}.csv", mime="text/csv", icon=":material/download:")
