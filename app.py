"""terrmap: the Streamlit app (``streamlit run app.py -- --db PATH``).

Thin on purpose: pages live in ``pages/``, logic in the ``terrmap`` package.
The database is ``--db PATH`` after ``--``, else $TERRMAP_DB, else
data/terrmap.duckdb (see :func:`terrmap.app.ui.db_path`).
"""

from pathlib import Path

import streamlit as st

from terrmap.app import auth, ui

HERE = Path(__file__).resolve().parent

st.set_page_config(page_title="terrmap · territory planning", layout="wide")

# (file, title, url path). Pages of later milestones appear once their file exists.
# No page icons on purpose: a page icon becomes the tab's favicon, and Streamlit
# fetches ":material/...:" favicons from fonts.gstatic.com (the app must work offline).
SECTIONS = {
    "Overview": [
        ("pages/home.py", "Home", "home"),
        ("pages/map.py", "Map", "map"),
    ],
    "Planning": [
        ("pages/editor.py", "Editor", "editor"),
        ("pages/optimizer.py", "Optimizer", "optimizer"),
        ("pages/scenarios.py", "Scenarios", "scenarios"),
        ("pages/rep_view.py", "Rep view", "rep"),
        ("pages/structure.py", "Accounts & hierarchy", "structure"),
        ("pages/team.py", "Team", "team"),
    ],
    "Data": [
        ("pages/model.py", "Model", "model"),
        ("pages/import_data.py", "Import data", "import"),
    ],
}

# Only the pages the viewer's role may open (all of them without sign-in configured: terrmap.app.auth).
viewer, pages = auth.app_pages(ui.store(), {
    section: [entry for entry in entries if (HERE / entry[0]).exists()] for section, entries in SECTIONS.items()
})
nav = st.navigation(pages)
ui.page_style()
if viewer is not None and viewer.role is not None:
    ui.sidebar_footer(ui.store())
    auth.sidebar(viewer)
nav.run()
