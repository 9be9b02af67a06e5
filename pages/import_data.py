"""Import data: leads (CSV or Parquet, columns mapped, all or nothing) or an alignment (a territory file
that becomes a scenario, all or nothing)."""

import shutil
import tempfile
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from terrmap.access import Action
from terrmap.app import ui
from terrmap.data import queries
from terrmap.measures import CHART_COUNT_FORMAT, fmt_int

s = ui.page("Import data", needs_leads=False).store
who = ui.require(Action.MANAGE_DATA)
IMPORTED_KEY = "import_done_message"

if IMPORTED_KEY in st.session_state:
    st.success(st.session_state.pop(IMPORTED_KEY), icon=":material/check_circle:")
    st.page_link("pages/home.py", label="See the overview", icon=":material/dashboard:")

LEADS, ALIGNMENT = "Leads", "Alignment (territory file)"
# One section at a time (not tabs): tabs would render both file uploaders at once.
kind = st.segmented_control(
    "What does your file hold?", [LEADS, ALIGNMENT], default=LEADS, key="import_kind",
    help="Leads: companies and deals from your CRM. Alignment: which territory each ZIP or H3 cell belongs to, "
         "as exported from a CRM or another planning tool; it becomes a new scenario.",
) or LEADS


def alignment_section() -> None:
    from terrmap.geo import LAYER_KEYS
    from terrmap.io import alignment

    st.caption(
        "Upload a ZIP (or H3 cell) → territory file: a CSV from your CRM or another tool (columns such as "
        "*Zip Code* / *Postal Code* / *region_id* / *h3* and *Territory* / *Territory Name* / *Territory\\_\\_c*; "
        "optional rep or owner, territory id, colour, parent, locked), or a GeoJSON / GeoPackage exported from "
        "terrmap. It becomes a **new scenario**; nothing is imported if any row has a problem."
    )
    upload = st.file_uploader("Territory file", type=["csv", "txt", "tsv", "geojson", "json", "gpkg"],
                              key="alignment_upload")
    if upload is None:
        with st.expander("Which columns are understood?", icon=":material/help:"):
            st.dataframe(
                pd.DataFrame([{"Column": alignment.ROLE_LABELS[role], "Required": "yes" if role in
                               ("region", "territory") else "", "Names recognised": ", ".join(names)}
                              for role, names in alignment.COLUMN_NAMES.items()]),
                hide_index=True, width="stretch",
            )
        return
    layer_choice = st.selectbox(
        "Layer", [None, *LAYER_KEYS], format_func=lambda k: "Detect from the file" if k is None else ui.layer_label(k),
        key="alignment_layer",
        help="5-digit ZIPs mean the ZIP layer; H3 cell ids give the hexagon level of their resolution. "
             "Choose a layer only to insist on it.",
    )
    cache_key = (upload.file_id, layer_choice, ui.data_stamp(s))
    cached = st.session_state.get("_alignment")
    if cached and cached[0] == cache_key:
        parsed, error = cached[1], cached[2]
    else:
        with st.spinner(f"Reading {upload.name}…"):
            try:
                parsed, error = alignment.read_alignment(s, upload.getvalue(), layer=layer_choice,
                                                        filename=upload.name), None
            except alignment.AlignmentRejected as exc:
                parsed, error = None, exc
        st.session_state["_alignment"] = (cache_key, parsed, error)
    if error is not None:
        show_alignment_problems(error.problems, "The file cannot be read")
        return

    st.subheader("Preview")
    summary = parsed.summary()
    c = st.columns(4)
    c[0].metric("Layer", ui.layer_label(parsed.layer) if parsed.layer else "unknown",
                help="The regions the scenario is made of: ZIP codes or H3 hexagons of one level.")
    c[1].metric("Territories", fmt_int(summary["territories"]), help="Distinct territories named in the file.")
    c[2].metric("Regions assigned", fmt_int(summary["assigned_regions"]),
                help="Regions the file gives a territory (PO-box and unique ZIPs count in the region that "
                     "contains them). Locked: " + fmt_int(summary["locked_regions"]) + ".")
    completed, with_leads = summary["regions_completed"], summary["populated_regions_completed"]
    c[3].metric("Regions the file leaves out", "–" if completed is None else fmt_int(completed),
                help="Regions of the file's states that it does not list"
                     + ("" if with_leads is None else f" ({fmt_int(with_leads)} of them hold leads)")
                     + ": each joins the territory it shares the most border with (else the nearest), so the "
                       "scenario covers every region of its states and every new lead there has an owner.")
    if parsed.problems:
        show_alignment_problems(parsed.problems, "Nothing can be imported")
    terr = parsed.territories
    if len(terr):
        table = terr.assign(rep=terr["rep_name"].fillna(terr["rep_id"]).fillna(""))[["name", "rep", "regions", "color"]]
        left, right = st.columns([3, 2])
        left.dataframe(table.rename(columns={"name": "Territory", "rep": "Rep", "regions": "Regions",
                                             "color": "Colour"}),
                       hide_index=True, width="stretch", height=min(420, 38 + 35 * len(table)))
        chart = alt.Chart(table).mark_bar().encode(
            y=alt.Y("name:N", sort="-x", title=None),
            x=alt.X("regions:Q", title="Regions"),
            color=alt.Color("name:N", scale=alt.Scale(domain=table["name"].tolist(), range=table["color"].tolist()),
                            legend=None),
            tooltip=[alt.Tooltip("name:N", title="Territory"), alt.Tooltip("rep:N", title="Rep"),
                     alt.Tooltip("regions:Q", title="Regions", format=CHART_COUNT_FORMAT)],
        ).properties(height=max(140, min(420, 24 * len(table) + 40)))
        right.altair_chart(chart, width="stretch")
    if parsed.notes:
        with st.expander(f"{len(parsed.notes)} note(s)", icon=":material/info:"):
            st.dataframe(pd.DataFrame({"Note": parsed.notes}), hide_index=True, width="stretch")
    if parsed.problems:
        return

    default_name = f"Imported: {Path(upload.name).stem}"
    name = st.text_input("Scenario name", value=default_name, key=f"alignment_name_{upload.file_id}",
                         help="The new scenario's name; it must not be in use.")
    if st.button("Create scenario", type="primary", icon=":material/upload:", disabled=not name.strip()):
        try:
            plan = alignment.import_alignment(s, upload.getvalue(), name, layer=layer_choice, filename=upload.name,
                                              author=who.author())
        except alignment.AlignmentRejected as exc:
            show_alignment_problems(exc.problems, "Import rejected")
        else:
            ui.clear_caches()
            st.session_state.pop("_alignment", None)
            st.success(f"Scenario {ui.md(plan.name)} created: {fmt_int(plan.summary['assigned_regions'])} "
                       f"regions in {fmt_int(plan.summary['territories'])} territories.",
                       icon=":material/check_circle:")
            st.page_link("pages/editor.py", label="Open the editor", icon=":material/edit:")


def show_alignment_problems(problems: list[str], title: str) -> None:
    st.error(f"{title}: {len(problems):,} problem(s). The database is unchanged; fix the file and upload it again.",
             icon=":material/error:")
    box = st.container(height=320) if len(problems) > 10 else st.container()
    box.markdown("\n".join(f"- {ui.md(p)}" for p in problems))  # names from the file shown literally


if kind == ALIGNMENT:
    alignment_section()
    st.stop()

st.caption(
    "Upload a CSV or Parquet export of your CRM. You choose which column holds what; "
    "the import is all or nothing: if any row has a problem, nothing changes and you get the list of problems. "
    "Re-importing a lead with the same id updates it."
)

try:
    from terrmap.io import ingest
except ImportError:
    st.info("The importer is not available in this installation yet (module `terrmap.io.ingest`).")
    st.stop()

st.caption(f"Into `{s.path}` · currently {fmt_int(queries.lead_count(s))} leads.")

uploaded = st.file_uploader("Lead file", type=["csv", "txt", "tsv", "gz", "parquet", "pq", "parq"], key="upload")
if uploaded is None:
    with st.expander("Which columns are understood?", icon=":material/help:"):
        st.dataframe(
            pd.DataFrame(
                [{"Field": f.label, "Required": "yes" if f.required else "", "Meaning": f.description}
                 for f in ingest.CANONICAL_FIELDS]
            ),
            hide_index=True, width="stretch",
        )
    st.stop()


def saved_upload(upload) -> str:
    """The upload as a file on disk (the importer reads paths): written once per upload, the previous one removed."""
    prev = st.session_state.get("_upload")
    if prev and prev[0] == upload.file_id and Path(prev[1]).exists():
        return prev[1]
    if prev:
        shutil.rmtree(Path(prev[1]).parent, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix="terrmap-upload-"))
    target = folder / (Path(upload.name).name or "upload.csv")
    upload.seek(0)
    with open(target, "wb") as out:
        shutil.copyfileobj(upload, out, length=1 << 20)
    st.session_state["_upload"] = (upload.file_id, str(target))
    return str(target)


path = saved_upload(uploaded)
try:
    preview = ingest.preview(path, n=50)
except ingest.ImportRejected as exc:  # the reasons, without the server's temporary path
    st.error(f"Could not read {ui.md(uploaded.name)}: " + "; ".join(ui.md(p.message) for p in exc.problems))
    st.stop()
except Exception as exc:  # unreadable file: say so, as text
    st.error(f"Could not read {ui.md(uploaded.name)}: {ui.md(str(exc).replace(path, uploaded.name))}")
    st.stop()

st.subheader("Preview")
st.caption(f"First {len(preview)} rows of {ui.md(uploaded.name)}.")
st.dataframe(preview, hide_index=True, width="stretch", height=min(260, 38 + 35 * max(len(preview), 1)))

st.subheader("Columns")
columns = [str(c) for c in preview.columns]
suggested = ingest.suggest_mapping(columns)
NOT_IN_FILE = None
mapping: dict[str, str | None] = {}
grid = st.columns(3)
for i, f in enumerate(ingest.CANONICAL_FIELDS):
    options = [NOT_IN_FILE, *columns]
    default = suggested.get(f.name)
    mapping[f.name] = grid[i % 3].selectbox(
        f.label + (" *" if f.required else ""),
        options,
        index=options.index(default) if default in options else 0,
        format_func=lambda c: "— not in the file —" if c is None else c,
        help=f.description,
        key=f"map_{uploaded.file_id}_{f.name}",
    )
missing = [f.label for f in ingest.CANONICAL_FIELDS if f.required and not mapping.get(f.name)]
if missing:
    st.warning("Required: " + ", ".join(missing) + ".", icon=":material/warning:")

if st.button("Import", type="primary", disabled=bool(missing), icon=":material/upload:"):
    bar = st.progress(0.0, text="Starting…")

    def progress(frac: float, msg: str) -> None:
        bar.progress(min(max(float(frac), 0.0), 1.0), text=str(msg))

    try:
        result = ingest.import_file(s, path, mapping=mapping, progress=progress)
    except ingest.ImportRejected as exc:
        bar.empty()
        problems = getattr(exc, "problems", []) or []
        st.error(
            f"Import rejected: {len(problems):,} problem(s). The database is unchanged. "
            "Fix the file (or the column choices) and try again.",
            icon=":material/error:",
        )
        if problems:
            table = pd.DataFrame(
                [{"Row": getattr(p, "row", None), "Column": getattr(p, "column", None),
                  "Problem": getattr(p, "message", str(p))} for p in problems]
            )
            # In file order (a problem of the whole file first), as the user fixes them; empty, not "None".
            table["Row"] = pd.array(table["Row"], dtype="Int64")
            table = table.sort_values(["Row", "Column"], na_position="first", kind="stable")
            table["Column"] = table["Column"].fillna("")
            table["Row"] = ["" if pd.isna(v) else f"{int(v):,}" for v in table["Row"]]
            st.dataframe(table, hide_index=True, width="stretch", column_config={
                "Row": st.column_config.TextColumn("Row", help="line of the file (1 = the header); empty: the "
                                                               "whole file")})
        else:
            st.code(str(exc).replace(path, uploaded.name), language=None)
    else:
        bar.progress(1.0, text="Done")
        ui.clear_caches()
        # Run the page again so that everything drawn before the import (the sidebar's lead count, "currently
        # N leads") shows the new data; the message waits in the session for that run.
        st.session_state[IMPORTED_KEY] = (
            f"Imported {fmt_int(result.get('rows'))} rows from {ui.md(uploaded.name)}: "
            f"{fmt_int(result.get('inserted'))} new, {fmt_int(result.get('updated'))} updated, "
            f"in {result.get('seconds', 0):.1f} s.")
        st.rerun()
