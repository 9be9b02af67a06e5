"""Team: the roster behind the territories (manager, home, role, skills, capacity, quota), edited in place,
imported from a CRM or HR file and exported (issue 15.1)."""

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from terrmap.access import Action
from terrmap.app import ui
from terrmap.io.csvsafe import guard_frame
from terrmap.io.problems import ImportRejected
from terrmap.io.roster import DEFAULT_SELLING_SHARE, ROLES, import_roster, roster_table, save_roster_table
from terrmap.measures import fmt_int, fmt_money
from terrmap.team.workload import selling_hours

s = ui.page("Team", "The reps behind the territories: who reports to whom, where they start their day, how they "
                    "sell, what they know, and the hours they have.", needs_leads=False).store
who = ui.require(Action.VIEW_ALL)
# The roster's e-mails say who signs in as which rep (README: Sign-in and roles): the admin's to change.
READ_ONLY = None if who.can_manage_data else "The roster's e-mails decide who signs in as which rep: an admin's to change."

flash = st.session_state.pop("team_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")

table = roster_table(s)
selling = selling_hours(table["capacity_hours"], table["selling_share"]).sum()
c1, c2, c3, c4 = st.columns(4)
c1.metric("Reps", fmt_int(len(table)))
c2.metric("Field · hybrid · inside", " · ".join(fmt_int((table["role"] == r).sum()) for r in ROLES),
          help="How each rep sells: field reps visit, inside reps call, hybrid reps do both.")
c3.metric("Selling hours a week", fmt_int(selling),
          help=f"Each rep's capacity (hours a week) times the share left for selling (default "
               f"{DEFAULT_SELLING_SHARE:.0%}: the rest goes to admin, training, internal meetings).")
c4.metric("Quota", fmt_money(table["quota"].fillna(0).sum()), help="The team's annual quota, summed.")

st.caption("Edit cells and add reps, then **Save changes**: every row is checked as a roster file would be "
           "(unknown ZIP, duplicate id, capacity, manager ...) and nothing is saved while one is wrong. "
           "Skills are lists separated by `;`.")
edited = st.data_editor(
    table, key="team_editor", hide_index=True, num_rows="add" if who.can_manage_data else "fixed", width="stretch",
    disabled=not who.can_manage_data,
    column_config={
        "rep_id": st.column_config.TextColumn("Rep id", required=True),
        "name": st.column_config.TextColumn("Name", required=True),
        "email": st.column_config.TextColumn("E-mail"),
        "home_zip": st.column_config.TextColumn("Home ZIP", help="Where the rep starts and ends a day of visits"),
        "home_lat": st.column_config.NumberColumn("Home lat", format="%.4f"),
        "home_lon": st.column_config.NumberColumn("Home lon", format="%.4f"),
        "manager": st.column_config.TextColumn("Manager", help="The rep id of their manager"),
        "role": st.column_config.SelectboxColumn("Role", options=list(ROLES), required=True,
                                                 help="field: visits; inside: calls; hybrid: both"),
        "industries": st.column_config.TextColumn("Industries"),
        "segments": st.column_config.TextColumn("Segments"),
        "products": st.column_config.TextColumn("Products"),
        "languages": st.column_config.TextColumn("Languages"),
        "capacity_hours": st.column_config.NumberColumn("Hours a week", min_value=0.0, max_value=80.0),
        "selling_share": st.column_config.NumberColumn("Selling share", min_value=0.0, max_value=1.0, format="%.2f",
                                                       help="Share of the hours left for selling"),
        "quota": st.column_config.NumberColumn("Quota", format="compact"),
    },
)
changed = not edited.reset_index(drop=True).equals(table.reset_index(drop=True))
if st.button("Save changes", type="primary", disabled=not changed or not who.can_manage_data, icon=":material/save:",
             help=READ_ONLY) and who.can_manage_data:
    try:
        result = save_roster_table(s, edited)
    except ImportRejected as exc:
        st.error("Nothing was saved:\n\n" + "\n".join(f"- {ui.md(p.message)}" for p in exc.problems),
                 icon=":material/error:")
    else:
        ui.clear_caches()
        st.session_state["team_flash"] = f"Saved: {result['updated']} reps updated, {result['added']} added."
        st.session_state.pop("team_editor", None)
        st.rerun()

left, right = st.columns(2)
with left:
    upload = st.file_uploader("Import a roster (CSV or Parquet)", type=["csv", "txt", "tsv", "parquet"],
                              help="A CRM's user export or an HR file: Id/Employee ID, Name, Manager/Reports To, "
                                   "Postal Code, Role, Industries, Hours per week, Quota ... Reps are added or "
                                   "updated by id; all or nothing.")
    if upload is not None and st.button("Import", icon=":material/upload_file:", disabled=not who.can_manage_data,
                                        help=READ_ONLY) and who.can_manage_data:
        with tempfile.TemporaryDirectory(prefix="terrmap-roster-") as folder:
            path = Path(folder) / Path(upload.name).name
            path.write_bytes(upload.getvalue())
            try:
                result = import_roster(s, path)
            except ImportRejected as exc:
                st.error("Roster rejected, nothing changed:\n\n" + "\n".join(
                    f"- {ui.md(p.message)}" for p in exc.problems), icon=":material/error:")
            else:
                ui.clear_caches()
                notes = "".join(f" {w}." for w in result["warnings"])
                st.session_state["team_flash"] = (f"Imported {upload.name}: {result['updated']} reps updated, "
                                                  f"{result['added']} added.{notes}")
                st.session_state.pop("team_editor", None)
                st.rerun()
with right:
    st.download_button("Download the roster (CSV)", data=guard_frame(table).to_csv(index=False).encode(),
                       file_name="terrmap_team.csv", mime="text/csv", icon=":material/download:",
                       help="Re-importable here or with `python -m terrmap import-reps`.")

managed = table[table["manager"].fillna("").astype(str).str.len() > 0]  # roster_table leaves "" for no manager
if len(managed):
    st.subheader("Reporting lines")
    names = dict(zip(table["rep_id"], table["name"]))
    lines = (managed.groupby("manager")["rep_id"]
             .apply(lambda ids: ", ".join(names.get(i, i) for i in sorted(ids))).reset_index())
    lines.insert(0, "manager_name", lines["manager"].map(lambda m: names.get(m, m)))
    st.dataframe(pd.DataFrame({"Manager": lines["manager_name"], "Team": lines["rep_id"]}), hide_index=True,
                 width="stretch")
