"""Issue 18.1, 18.2 and 18.6: command-line jobs run beside the app on the same database file while pages are open
in Chromium (an editor session live), and the app shows their data on its next run without a restart; two app
processes share one file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import duckdb
import pandas as pd
import pytest
from playwright.sync_api import expect

from tests.e2e_support import ROOT, Recorder, rerun_after, serve_app, wait_idle
from tests.test_e2e_editor import (
    KPIS,
    TABLE,
    _active_color,
    _candidates,
    _click_other_region,
    _iframe_origin,
    _open_editor,
    _rev,
    _save,
    _wait_rev,
)


def _terrmap(db, *args) -> subprocess.CompletedProcess:
    """The real ``python -m terrmap`` (its own process, as a cron job would run it)."""
    env = {**os.environ, "TERRMAP_LOCK_WAIT": "120"}
    return subprocess.run([sys.executable, "-m", "terrmap", *map(str, args), "--db", str(db)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _leads_metric(page) -> str:
    metric = page.locator('[data-testid="stMetric"]').filter(has_text=re.compile(r"^Leads")).first
    return metric.locator('[data-testid="stMetricValue"]').inner_text()


def test_commands_read_and_write_while_pages_are_open_and_the_app_shows_the_new_leads(e2e_built, browser, tmp_path):
    db = tmp_path / "beside.duckdb"
    shutil.copy(e2e_built, db)
    with serve_app(db, tmp_path / "streamlit.log") as url:
        context = browser.new_context(viewport={"width": 1440, "height": 1100})
        recorder = Recorder(context)
        try:
            home = context.new_page()
            home.goto(url + "/")
            home.get_by_role("heading", name="Territory overview").wait_for()
            assert _leads_metric(home) == "20,000"
            editor = context.new_page()
            frame = _open_editor(editor, url)  # pages open, an editor session live
            with pytest.raises(duckdb.IOException, match="lock"):  # the app holds the file (as it did before)
                duckdb.connect(str(db), read_only=True).close()

            # Reads, each in its own process, while the app keeps the file.
            regions = _terrmap(db, "regions", "--layer", "zip", "--out", tmp_path / "regions.csv")
            assert regions.returncode == 0, regions.stderr
            assert len(pd.read_csv(tmp_path / "regions.csv")) > 1000
            export = _terrmap(db, "export", "--format", "accounts", "--out", tmp_path / "accounts.csv")
            assert export.returncode == 0, export.stderr
            lookup = _terrmap(db, "lookup", "--zip", "87501")
            assert lookup.returncode == 0, lookup.stderr
            assert json.loads(lookup.stdout)["territory"]

            # A write: 25 new leads in New Mexico.
            new = pd.DataFrame({"Id": [f"NEW{i:03d}" for i in range(25)], "Status": "Open", "Zip": "87501"})
            new.to_csv(tmp_path / "new.csv", index=False)
            routed = _terrmap(db, "assign", tmp_path / "new.csv", "--out", tmp_path / "routed.csv")
            assert routed.returncode == 0, routed.stderr
            assert pd.read_csv(tmp_path / "routed.csv")["territory"].notna().all()
            imported = _terrmap(db, "import", tmp_path / "new.csv")
            assert imported.returncode == 0, imported.stderr

            # The app, never restarted, shows them on its next run, and the editor session goes on.
            home.reload()
            home.get_by_role("heading", name="Territory overview").wait_for()
            expect(home.locator('[data-testid="stMetric"]').filter(has_text=re.compile(r"^Leads")).first
                   .locator('[data-testid="stMetricValue"]')).to_have_text("20,025")
            active = _active_color(editor)
            ox, oy = _iframe_origin(editor)
            table0 = editor.locator(TABLE).text_content()
            cand = next(c for c in _candidates(frame) if c["fill"].lower() != active)
            rev = _rev(editor)
            editor.mouse.click(ox + cand["x"], oy + cand["y"])
            _wait_rev(editor, rev + 1)
            expect(editor.locator(TABLE)).not_to_have_text(table0)
            expect(editor.locator(KPIS)).to_contain_text("Max deviation")
            wait_idle(editor)
            assert not editor.locator('[data-testid="stException"]').count()
            assert not home.locator('[data-testid="stException"]').count()
        finally:
            context.close()
        assert not recorder.failed, recorder.failed
        assert not recorder.remote(), recorder.remote()


# Pages reading different parts of the file (every page is opened on one server by the other browser tests).
PAGES = ("/", "/scenarios", "/team")


def test_two_app_processes_on_one_database_serve_pages_and_detect_conflicting_saves(e2e_db, app_url, browser,
                                                                                   tmp_path):
    """Two servers on one file (as behind a load balancer): the browser tests' server and a second one on its
    database both draw pages, both save, and the second save of the same plan version meets the conflict screen
    as it would within one process (test_e2e_editor saves this plan the same way)."""
    url_one = app_url
    with serve_app(e2e_db, tmp_path / "two.log") as url_two:
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        recorder = Recorder(context)
        try:
            page_a, page_b = context.new_page(), context.new_page()
            for pg in (page_a, page_b):
                pg.set_default_timeout(45_000)
            frame_a = _open_editor(page_a, url_one)
            frame_b = _open_editor(page_b, url_two)
            for path in PAGES:  # the second server draws pages while the first holds an editor session
                other = context.new_page()
                other.goto(url_two + path)
                other.locator('[data-testid="stMainBlockContainer"] h1').first.wait_for()
                wait_idle(other, 60_000)
                assert not other.locator('[data-testid="stException"]').count(), path
                other.close()
            _click_other_region(page_a, frame_a)
            _click_other_region(page_b, frame_b)
            page_b.get_by_role("textbox", name="Your name").fill("Bea")
            rerun_after(page_b, lambda: page_b.get_by_role("textbox", name="Your name").press("Enter"))
            assert "Saved" in _save(page_b)
            assert "Bea saved" in _save(page_a)  # the other process's save, found in the file
            page_a.get_by_text("was saved by Bea").wait_for()
        finally:
            context.close()
        assert not recorder.failed, recorder.failed
