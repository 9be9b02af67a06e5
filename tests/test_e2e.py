"""End to end: the real app (streamlit run) in Debian's Chromium, with no request leaving this machine.

A small demo database is built once; one territory gets the name
``<script>alert(1)</script>`` to check that names are displayed as text.
Screenshots go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
EVIL = "<script>alert(1)</script>"
MAP_IFRAME = 'iframe[title="streamlit_folium.st_folium"]'
E2E_MAX_REGIONS = 6000  # the demo's 20,000 leads fill ~2,000 level-4 hexagons and far more level-9 ones
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


def chromium_path() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if not path:
        pytest.fail("Chromium not found: install Debian chromium: apt-get install chromium", pytrace=False)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def e2e_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("e2e") / "e2e.duckdb"
    subprocess.run(
        [sys.executable, "-m", "terrmap", "demo", "--db", str(db), "--leads", "20000"],
        cwd=ROOT, check=True, capture_output=True, timeout=120,
    )
    import duckdb

    con = duckdb.connect(str(db))
    con.execute("UPDATE territories SET name = ? WHERE territory_id = 1", [EVIL])
    con.close()
    return db


@pytest.fixture(scope="session")
def app_url(e2e_db, tmp_path_factory):
    port = _free_port()
    log = (tmp_path_factory.mktemp("e2e-log") / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--", "--db", str(e2e_db)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "TERRMAP_MAX_REGIONS": str(E2E_MAX_REGIONS)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                log.flush()
                pytest.fail(f"streamlit did not start:\n{Path(log.name).read_text()[-3000:]}")
            time.sleep(0.25)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


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
        context.on("request", lambda req: self.urls.append(req.url))
        context.on("page", self._watch)

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


def _paths(page) -> int:
    return page.frame_locator(MAP_IFRAME).locator("path.leaflet-interactive").count()


def test_home_shows_kpis_table_and_chart(page, app_url):
    page.goto(app_url + "/")
    page.get_by_role("heading", name="Territory overview").wait_for()
    metrics = page.locator('[data-testid="stMetric"]')
    metrics.first.wait_for()
    text = " ".join(metrics.all_inner_texts())
    for label in ("Leads", "Open leads", "Customers", "Won revenue", "Total potential", "Territories", "Reps"):
        assert label in text
    assert "20,000" in text  # the demo's leads

    table = page.locator('[data-testid="stDataFrame"]').first
    table.wait_for()
    box = table.bounding_box()
    assert box and box["height"] > 300  # all 20 territories, not a stub

    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    chart.wait_for()
    chart.locator("canvas, svg").first.wait_for()
    cbox = chart.bounding_box()
    assert cbox and cbox["height"] > 250 and cbox["width"] > 400
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "home.png"), full_page=True)
    chart.scroll_into_view_if_needed()
    chart.screenshot(path=str(ARTIFACTS / "home_chart.png"))


def test_map_draws_regions_offline_and_names_as_text(page, app_url):
    t0 = time.time()
    page.goto(app_url + "/map")
    frame = page.frame_locator(MAP_IFRAME)
    frame.locator("path.leaflet-interactive").first.wait_for(state="attached", timeout=45_000)
    page.wait_for_function(
        f"""() => {{ const f = document.querySelector('{MAP_IFRAME}');
                    return f && f.contentDocument &&
                           f.contentDocument.querySelectorAll('path.leaflet-interactive').length > 200; }}""",
        timeout=30_000,
    )
    seconds = time.time() - t0
    n = _paths(page)
    assert n > 200, f"only {n} regions drawn"

    # Leaflet and its CSS came from this server
    assert any(u.endswith("/app/static/vendor/leaflet/leaflet.js") for u in page.recorder.urls)
    assert any(u.endswith("/app/static/vendor/leaflet/leaflet.css") for u in page.recorder.urls)
    # the legend shows the malicious territory name literally
    legend = frame.locator(".tm-legend")
    legend.wait_for()
    assert EVIL in legend.inner_text()
    assert frame.locator(".tm-legend script").count() == 0

    # a tooltip with the region's numbers on hover
    frame.locator("path.leaflet-interactive").nth(n // 2).hover(force=True)
    tip = frame.locator(".leaflet-tooltip")
    tip.wait_for(timeout=5_000)
    tip_text = tip.inner_text()
    for label in ("Leads", "Open leads", "Potential"):
        assert label in tip_text
    page.screenshot(path=str(ARTIFACTS / "map.png"), full_page=True)
    print(f"map with {n} regions drawn {seconds:.2f} s after navigation")


def test_map_choropleth_of_a_state_and_zip_layer(page, app_url):
    page.goto(app_url + "/map?layer=zip&color=potential&area=CA")
    frame = page.frame_locator(MAP_IFRAME)
    frame.locator("path.leaflet-interactive").first.wait_for(state="attached", timeout=45_000)
    legend = frame.locator(".tm-legend")
    legend.wait_for()
    assert "Potential" in legend.inner_text() and "quantiles" in legend.inner_text()
    assert _paths(page) > 100
    page.screenshot(path=str(ARTIFACTS / "map_zip_ca_potential.png"), full_page=True)


def test_too_many_regions_get_a_clear_message(page, app_url):
    # the app under test caps the map at E2E_MAX_REGIONS (TERRMAP_MAX_REGIONS); level-9 hexagons exceed it
    page.goto(app_url + "/map?layer=h3:9")
    page.get_by_text("too many to draw at once").wait_for(timeout=30_000)
    assert page.locator(MAP_IFRAME).count() == 0


GOOD_CSV = """Record ID,Company Name,Industry,Number of Employees,Lead Status,Amount,Postal Code
E2E-1,<script>alert(1)</script> Corp,Software,50,Open,,94103
E2E-2,Acme,Retail,12,Closed Won,12000,10001
"""
BAD_CSV = """Record ID,Company Name,Lead Status,Postal Code
E2E-3,Bad Co,Open,99999
E2E-4,Bad Two,Weird,94103
"""


def _upload_and_import(page, app_url, path: Path) -> str:
    page.goto(app_url + "/import")
    page.get_by_text("Lead file").first.wait_for()
    page.locator('input[type="file"]').set_input_files(str(path))
    page.get_by_role("heading", name="Columns").wait_for()
    button = page.get_by_role("button", name="Import")
    button.wait_for()
    page.wait_for_timeout(500)
    button.click()
    alert = page.locator('[data-testid="stAlert"]').filter(has_text="Import")
    alert.first.wait_for(timeout=30_000)
    return alert.first.inner_text()


def test_import_page_rejects_then_imports(page, app_url, tmp_path):
    """Runs last: it adds two leads to the session's database."""
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD_CSV)
    text = _upload_and_import(page, app_url, bad)
    assert "rejected" in text and "unchanged" in text
    good = tmp_path / "good.csv"
    good.write_text(GOOD_CSV)
    text = _upload_and_import(page, app_url, good)
    assert "Imported 2 rows" in text
    page.screenshot(path=str(ARTIFACTS / "import.png"), full_page=True)
