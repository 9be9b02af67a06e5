"""Browser-test support shared by every end-to-end module: the demo database, ``streamlit run``, Chromium.

The fixtures are registered once, in tests/conftest.py, so all modules share one server and one
Playwright instance (two sync Playwright instances cannot run in one process).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest

from terrmap.serve import CHROMIUM_ARGS, AppDidNotStart, find_chromium, running_app

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
EVIL = "<script>alert(1)</script>"
MAP_IFRAME = 'iframe[title="streamlit_folium.st_folium"]'
E2E_MAX_REGIONS = 6000  # the demo's 20,000 leads fill ~2,000 level-4 hexagons and far more level-9 ones


def chromium_path() -> str:
    path = find_chromium()
    if not path:
        pytest.fail("Chromium not found: install Debian chromium: apt-get install chromium", pytrace=False)
    return path


def _build_e2e_db(db: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "terrmap", "demo", "--db", str(db), "--leads", "20000"],
        cwd=ROOT, check=True, capture_output=True, timeout=120,
    )
    import duckdb

    con = duckdb.connect(str(db))
    con.execute("UPDATE territories SET name = ? WHERE territory_id = 1", [EVIL])
    con.close()
    from terrmap.data.store import Store

    store = Store(db)
    one_state_plan(store, SMALL_PLAN["state"], SMALL_PLAN["territories"])
    store.close()


@pytest.fixture(scope="session")
def e2e_built(tmp_path_factory) -> Path:
    """The end-to-end database as built (once per run, never opened after): copy this, not :func:`e2e_db`,
    which a server holds and writes (a copy of a file being checkpointed can be torn)."""
    from tests.db_support import built_once

    return built_once(tmp_path_factory, "e2e.duckdb", _build_e2e_db)


@pytest.fixture(scope="session")
def e2e_db(e2e_built, tmp_path_factory) -> Path:
    """This test process's copy of the end-to-end database (built once per run): its server holds the file."""
    from terrmap.data.store import Store

    db = tmp_path_factory.mktemp("e2e") / "e2e.duckdb"
    shutil.copy(e2e_built, db)
    store = Store(db, read_only=True)
    SMALL_PLAN["plan_id"] = int(store.scalar("SELECT plan_id FROM plans WHERE name = ?", [small_plan_name()]))
    store.close()
    return db


# A second plan in the end-to-end database: one state, few territories (what the editor must also draw well).
SMALL_PLAN = {"state": "OH", "territories": 5, "plan_id": None}


def small_plan_name(state_code: str = SMALL_PLAN["state"]) -> str:
    return f"{state_code} plan"


def one_state_plan(store, state_code: str, n: int) -> int:
    """A plan of ``n`` territories over one state's ZIPs (its area: that state), cut west to east."""
    import numpy as np

    from terrmap.plan import Territory, create_plan
    from terrmap.plan.colors import palette_color

    zips = store.cursor().execute("SELECT zip AS region_id, lon FROM zips WHERE state = ? AND zip = region_zip "
                                  "AND lon IS NOT NULL ORDER BY lon, zip", [state_code]).df()
    zips["territory_id"] = (np.arange(len(zips)) * n // len(zips)) + 1
    terrs = [Territory(t, f"{state_code} {t}", palette_color(t)) for t in range(1, n + 1)]
    return create_plan(store, small_plan_name(state_code), "zip", terrs, zips[["region_id", "territory_id"]],
                       area=[state_code])


@contextmanager
def serve_app(db: Path, log_path: Path, env: dict[str, str] | None = None, max_regions: int | None = E2E_MAX_REGIONS):
    """``python -m terrmap.serve`` (the README's ``./run app`` server) on ``db``; yields its URL.
    ``max_regions``: the map's cap (TERRMAP_MAX_REGIONS; None: the app's default); ``env``: more variables."""
    env = dict(env or {})
    if max_regions is not None:
        env["TERRMAP_MAX_REGIONS"] = str(max_regions)
    try:
        with running_app(db, log_path, env=env) as url:
            yield url
    except AppDidNotStart as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def app_url(e2e_db, tmp_path_factory):
    with serve_app(e2e_db, tmp_path_factory.mktemp("e2e-log") / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Recorder:
    """Every request of a browser context (all pages, all iframes) and every JS dialog."""

    def __init__(self, context):
        self.urls: list[str] = []
        self.dialogs: list[str] = []
        self.failed: list[str] = []  # the app's answers of 400 and above
        context.on("request", lambda req: self.urls.append(req.url))
        context.on("response", self._check)
        context.on("page", self._watch)

    def _check(self, response) -> None:
        # Every error answer fails the test, deep links' probes of /<page>/_stcore/health included (issue 14.13:
        # terrmap.serve tells the frontend where the server is, so it asks nothing under a page's URL).
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")

    def _watch(self, page):
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def remote(self) -> list[str]:
        out = []
        for url in self.urls:
            u = urlparse(url)
            if u.scheme in ("data", "blob", "about"):
                continue
            if u.scheme in ("http", "https", "ws", "wss") and u.hostname in ("127.0.0.1", "localhost"):
                continue
            out.append(url)
        return out


@pytest.fixture
def page(browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1440, "height": 1100})
    recorder = Recorder(context)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    pg.recorder = recorder
    yield pg
    context.close()
    assert not recorder.dialogs, f"a script ran in the page: {recorder.dialogs}"
    assert not recorder.remote(), f"requests left this machine: {recorder.remote()}"
    assert not recorder.failed, f"the app answered with errors: {recorder.failed}"


# -- waiting for the app, not for the clock ----------------------------------------------------------------------
# Streamlit marks its root with data-test-script-state ("running" while the page's script runs). A page observer
# counts the runs that end, so a test can wait for the run its own action caused, however short that run was.
_COUNT_FINISHED_RUNS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.__tmObserved) return;
  app.__tmObserved = true;
  window.__tmRunsDone = window.__tmRunsDone || 0;
  new MutationObserver(records => {
    for (const r of records) if (r.oldValue === 'running') window.__tmRunsDone += 1;
  }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state'], attributeOldValue: true});
}"""
_IDLE = """() => document.querySelector('[data-testid="stApp"]')?.getAttribute('data-test-script-state') === 'notRunning'"""


def wait_idle(page, timeout: float = 30_000) -> None:
    """Until the page's script is not running (nothing queued either)."""
    page.wait_for_function(_IDLE, timeout=timeout)


def rerun_after(page, action, timeout: float = 30_000):
    """Do ``action()`` and wait until a script run that ended after it leaves the page idle: what a widget change,
    a key press on a slider (sent after Streamlit's debounce) or a click caused has then been drawn."""
    page.wait_for_selector('[data-testid="stApp"]', state="attached", timeout=timeout)
    page.evaluate(_COUNT_FINISHED_RUNS)
    before = page.evaluate("() => window.__tmRunsDone")
    result = action()
    page.wait_for_function(f"n => window.__tmRunsDone > n && ({_IDLE})()", arg=before, timeout=timeout)
    return result


def settled_screenshot(page, path, **kwargs) -> None:
    """A screenshot once the page is idle and its fonts and images have loaded (what a person would see)."""
    wait_idle(page)
    page.wait_for_function("() => document.fonts.status === 'loaded' && [...document.images].every(i => i.complete)")
    page.screenshot(path=str(path), **kwargs)


def wait_still(locator, timeout: float = 10_000) -> None:
    """Until the element stops moving (an expander's or a chart's animation has ended): two frames apart, the
    same box."""
    locator.wait_for()
    locator.evaluate(
        """(el, timeout) => new Promise((resolve, reject) => {
          const t0 = performance.now();
          let last = JSON.stringify(el.getBoundingClientRect());
          const check = () => requestAnimationFrame(() => requestAnimationFrame(() => {
            const now = JSON.stringify(el.getBoundingClientRect());
            if (now === last) return resolve();
            if (performance.now() - t0 > timeout) return reject(new Error('still moving after ' + timeout + ' ms'));
            last = now;
            check();
          }));
          check();
        })""",
        timeout,
    )


# Editor regions whose centre (and 5 px around it) is visibly the region itself: safe to click.
CANDIDATES_JS = """(maxN) => {
    const E = window.tmEditor, rect = E.map.getContainer().getBoundingClientRect(), out = [];
    for (let i = 0; i < E.polys.length && out.length < maxN; i++) {
        const l = E.polys[i], c = E.map.latLngToContainerPoint(l.getBounds().getCenter());
        const x = rect.left + c.x, y = rect.top + c.y;
        if (x < rect.left + 60 || x > rect.right - 240 || y < rect.top + 20 || y > rect.bottom - 60) continue;
        const hits = [[0, 0], [5, 0], [-5, 0], [0, 5], [0, -5]].every(
            d => document.elementFromPoint(x + d[0], y + d[1]) === l._path);
        if (hits) out.push({i: i, x: x, y: y, fill: l._path.getAttribute('fill')});
    }
    return out;
}"""


# Regions of the editor's canvas whose centre lies inside them, at least ``minPx`` wide, away from the map's edges
# and the legend: a click there lands on the region itself (points in the map iframe's coordinates). Every
# ``step``-th region is tried. Shared by tests/test_e2e_national.py and bench/bench_national.py.
CANVAS_CANDIDATES_JS = """({maxN, step, minPx}) => {
    const E = window.tmEditor, size = E.map.getSize(), out = [];
    for (let i = 0; i < E.polys.length && out.length < maxN; i += step) {
        const l = E.polys[i], b = l._pxBounds;
        if (!b || b.max.x - b.min.x < minPx || b.max.y - b.min.y < minPx) continue;
        const p = E.map.latLngToLayerPoint(l.getBounds().getCenter()), c = E.map.layerPointToContainerPoint(p);
        if (c.x < 60 || c.x > size.x - 260 || c.y < 20 || c.y > size.y - 60 || !l._containsPoint(p)) continue;
        out.push({i: i, x: c.x, y: c.y, fill: l.options.fillColor.toLowerCase()});
    }
    return out;
}"""
