"""``python -m terrmap.serve [streamlit options] [-- app options]``: ``streamlit run app.py`` for terrmap.

Streamlit starts in its legacy "pages/ directory" mode whenever a ``pages/`` folder sits next to the
main script, until app.py has called ``st.navigation`` once. Until then a deep link such as
``/rep?rep=R07`` (a rep's bookmark) is an unknown page: the browser shows "Page not found" over the
right page. Switching the mode off before the server starts removes that first-visit glitch
(:func:`terrmap.ui.ensure_app_navigation` still covers a plain ``streamlit run app.py``).
"""

from __future__ import annotations

import sys

from terrmap.store import PROJECT_ROOT


def main(argv: list[str] | None = None) -> None:
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web.cli import main as streamlit_main

    PagesManager.uses_pages_directory = False
    args = list(sys.argv[1:] if argv is None else argv)
    sys.argv = ["streamlit", "run", str(PROJECT_ROOT / "app.py"), *args]
    streamlit_main()


if __name__ == "__main__":
    main()
