"""``python -m terrmap.serve [streamlit options] [-- app options]``: ``streamlit run app.py`` for terrmap.

Streamlit starts in its legacy "pages/ directory" mode whenever a ``pages/`` folder sits next to the
main script, until app.py has called ``st.navigation`` once. Until then a deep link such as
``/rep?rep=R07`` (a rep's bookmark) is an unknown page: the browser shows "Page not found" over the
right page. Switching the mode off before the server starts removes that first-visit glitch
(:func:`terrmap.app.ui.ensure_app_navigation` still covers a plain ``streamlit run app.py``).

Opened on a page's URL (``/map``), Streamlit's frontend guesses where the server sits by asking
``/map/_stcore/health`` first and falling back to ``/_stcore/health`` on its 404 (streamlit#7074): every
deep link logs two failed requests in the browser's console. The frontend skips the guess when the page
says where the server is (``window.__streamlit.BACKEND_BASE_URL``, the hook Streamlit offers hosts that
embed it), so this server hands out Streamlit's own static files with an ``index.html`` that says so
(:func:`static_dir_with_server_base`).

:func:`running_app` starts this server in a child process for the browser tests and the benchmarks, which
drive it with the system Chromium (:func:`find_chromium`, :data:`CHROMIUM_ARGS`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from terrmap.data.store import PROJECT_ROOT

# Headless Chromium in a container: no sandbox or GPU, and none of the background traffic (updates,
# sync, metrics) that would leave localhost.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
]


class AppDidNotStart(RuntimeError):
    pass


def find_chromium() -> str | None:
    """The system Chromium (Debian's ``chromium`` package), or None."""
    return shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(db: str | os.PathLike, log_path: Path | None = None, env: dict[str, str] | None = None,
                timeout: float = 60.0, script: Path | None = None) -> Iterator[str]:
    """This server on ``db`` in a child process (its own process group, stopped on exit); yields its URL.
    ``script``: another Streamlit script served the same way (the benchmarks' baselines).

    Raises AppDidNotStart, with the end of the server's log, if it is not healthy within ``timeout`` seconds.
    """
    port = free_port()
    log = log_path.open("w") if log_path else subprocess.DEVNULL
    serve = ["-m", "terrmap.serve"] if script is None else ["-m", "streamlit", "run", str(script)]
    proc = subprocess.Popen(
        [sys.executable, *serve, "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--", "--db", str(db)],
        cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                tail = ""
                if log_path:
                    log.flush()
                    tail = ":\n" + log_path.read_text()[-3000:]
                raise AppDidNotStart(f"the app server ({script or 'terrmap.serve'}) did not start{tail}")
            time.sleep(0.25)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if log_path:
            log.close()


# Before Streamlit's bundle runs: the server's base URL, from the page's origin and the server's baseUrlPath.
_BASE_SCRIPT = ('<script>window.__streamlit = Object.assign({{}}, window.__streamlit, '
                '{{BACKEND_BASE_URL: window.location.origin + {base}}});</script>')


def static_dir_with_server_base(static_dir: str, base_url_path: str, cache_root: str | None = None) -> str:
    """A folder serving what ``static_dir`` (Streamlit's frontend) holds, but whose ``index.html`` tells the
    frontend the server's base URL (see the module's doc). Its other entries are links to the originals; made
    once per Streamlit build and base path, under ``cache_root`` (default: the system's temporary folder)."""
    index = Path(static_dir) / "index.html"
    html = index.read_text(encoding="utf-8")
    base = "/" + "/".join(p for p in base_url_path.split("/") if p)
    script = _BASE_SCRIPT.format(base=json.dumps(base.rstrip("/") + "/"))
    marker = '<script type="module"'
    if marker not in html:  # another frontend build: serve it as it is rather than guess
        return static_dir
    digest = hashlib.sha256((str(index.resolve()) + html + script).encode()).hexdigest()[:16]
    out = Path(cache_root or tempfile.gettempdir()) / f"terrmap-streamlit-static-{digest}"
    if (out / "index.html").is_file():
        return str(out)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    for entry in Path(static_dir).iterdir():
        if entry.name != "index.html":
            (tmp / entry.name).symlink_to(entry.resolve())
    (tmp / "index.html").write_text(html.replace(marker, script + "\n    " + marker, 1), encoding="utf-8")
    try:
        tmp.rename(out)
    except OSError:  # another server made it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return str(out)


def main(argv: list[str] | None = None) -> None:
    # lazy: running_app() (tests, benchmarks) starts a server process without importing Streamlit here
    from streamlit import config, file_util
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web.cli import main as streamlit_main

    PagesManager.uses_pages_directory = False
    streamlit_static_dir = file_util.get_static_dir
    # Called when the server mounts the frontend, once the options (baseUrlPath) are read.
    file_util.get_static_dir = lambda: static_dir_with_server_base(
        streamlit_static_dir(), config.get_option("server.baseUrlPath") or "")
    sys.argv = streamlit_argv(list(sys.argv[1:] if argv is None else argv))
    streamlit_main()


def streamlit_argv(args: list[str]) -> list[str]:
    """``streamlit run app.py ARGS``, listening on this machine only (127.0.0.1) unless ARGS name an address:
    without sign-in configured (README, "Sign-in and roles") every visitor may do everything, so opening it to a
    network is a choice (``--server.address 0.0.0.0``)."""
    ours = args[:args.index("--")] if "--" in args else args
    if not any(a == "--server.address" or a.startswith("--server.address=") for a in ours):
        args = ["--server.address", "127.0.0.1", *args]
    return ["streamlit", "run", str(PROJECT_ROOT / "app.py"), *args]


if __name__ == "__main__":
    main()
