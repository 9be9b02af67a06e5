"""Import data: upload a CSV or Parquet file of leads, map its columns, import all or nothing."""

import shutil
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from terrmap import mapview as mv
from terrmap import ui

ui.ensure_app_navigation()

st.title("Import leads")
st.caption(
    "Upload a CSV or Parquet export of your CRM. You choose which column holds what; "
    "the import is all or nothing: if any row has a problem, nothing changes and you get the list of problems. "
    "Re-importing a lead with the same id updates it."
)

try:
    from terrmap import ingest
except ImportError:
    st.info("The importer is not available in this installation yet (module `terrmap.ingest`).")
    st.stop()

s = ui.store()
st.caption(f"Into `{s.path}` · currently {mv.fmt_int(ui.lead_count(s))} leads.")

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
except Exception as exc:  # unreadable file: say so, as text
    st.error(f"Could not read {ui.md(uploaded.name)}: {ui.md(exc)}")
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
            st.dataframe(
                pd.DataFrame(
                    [{"Row": getattr(p, "row", None), "Column": getattr(p, "column", None),
                      "Problem": getattr(p, "message", str(p))} for p in problems]
                ),
                hide_index=True, width="stretch",
            )
        else:
            st.code(str(exc), language=None)
    else:
        bar.progress(1.0, text="Done")
        ui.clear_caches()
        st.success(
            f"Imported {mv.fmt_int(result.get('rows'))} rows from {ui.md(uploaded.name)}: "
            f"{mv.fmt_int(result.get('inserted'))} new, {mv.fmt_int(result.get('updated'))} updated, "
            f"in {result.get('seconds', 0):.1f} s.",
            icon=":material/check_circle:",
        )
        st.page_link("pages/home.py", label="See the overview", icon=":material/dashboard:")
