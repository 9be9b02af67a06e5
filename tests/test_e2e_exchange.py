"""End to end: the alignment import section of the Import page in Chromium (read-only: no scenario is created,
so the shared end-to-end database stays as other modules expect it)."""

from __future__ import annotations

import shutil

from tests.e2e_support import ARTIFACTS, EVIL, serve_app

UPLOAD = 'input[type="file"][accept*=".gpkg"]'  # the territory-file uploader (the lead uploader takes no .gpkg)


def _open_alignment(page, app_url):
    # The home page first: on a fresh server the first deep link shows a transient "Page not found" dialog.
    page.goto(app_url + "/")
    page.get_by_role("heading", name="Territory overview").wait_for()
    page.goto(app_url + "/import")
    page.get_by_text("What does your file hold?").first.wait_for()
    page.locator('[data-testid="stButtonGroup"]').get_by_text("Alignment (territory file)").click()
    page.locator(UPLOAD).wait_for(state="attached")


def test_alignment_problems_listed_literally(page, app_url, tmp_path):
    bad = tmp_path / "bad alignment.csv"
    bad.write_text(f"zip,territory\n99999,East\n02134,{EVIL}\n02134,West\n")
    _open_alignment(page, app_url)
    page.locator(UPLOAD).set_input_files(str(bad))
    alert = page.locator('[data-testid="stAlert"]').filter(has_text="problem(s)")
    alert.first.wait_for(timeout=60_000)
    assert "2 problem(s)" in alert.first.inner_text() and "unchanged" in alert.first.inner_text()
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert "line 2: unknown ZIP 99999" in body
    assert f"region 02134 is given different territories: '{EVIL}' (line 3), 'West' (line 4)" in body
    assert page.get_by_role("button", name="Create scenario").count() == 0
    page.screenshot(path=str(ARTIFACTS / "import_alignment_rejected.png"), full_page=True)


def test_alignment_preview_of_a_good_file(page, app_url, tmp_path):
    good = tmp_path / "crm territories.csv"
    good.write_text("Zip Code,Territory Name,Locked\n2134,East,yes\n10001,West,no\n10002,West,\n")
    _open_alignment(page, app_url)
    page.locator(UPLOAD).set_input_files(str(good))
    page.get_by_role("heading", name="Preview").wait_for(timeout=60_000)
    page.get_by_role("button", name="Create scenario").wait_for()
    metrics = " ".join(" ".join(t.split()) for t in page.locator('[data-testid="stMetric"]').all_inner_texts())
    assert "Layer ZIP codes" in metrics and "Territories 2" in metrics and "Regions assigned 3" in metrics
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
    assert page.get_by_role("textbox", name="Scenario name").input_value() == "Imported: crm territories"
    page.screenshot(path=str(ARTIFACTS / "import_alignment_preview.png"), full_page=True)


LEADS_UPLOAD = 'input[type="file"]:not([accept*=".gpkg"])'


def _open_leads_import(page, app_url):
    page.goto(app_url + "/")
    page.get_by_role("heading", name="Territory overview").wait_for()
    page.goto(app_url + "/import")
    page.get_by_text("What does your file hold?").first.wait_for()
    page.locator(LEADS_UPLOAD).first.wait_for(state="attached")


def test_an_empty_lead_file_says_so_without_the_servers_paths(page, app_url, tmp_path):
    """Issue 14.13: the reason, named by the user's file name, not the upload's temporary path."""
    empty = tmp_path / "my leads.csv"
    empty.write_text("")
    _open_leads_import(page, app_url)
    page.locator(LEADS_UPLOAD).first.set_input_files(str(empty))
    alert = page.locator('[data-testid="stAlert"]').filter(has_text="Could not read")
    alert.first.wait_for(timeout=60_000)
    text = alert.first.inner_text()
    assert "my leads.csv" in text and "empty" in text and "terrmap-upload" not in text and "/tmp" not in text


def test_lead_problems_are_listed_in_file_order_with_no_none_cells(page, app_url, tmp_path):
    """Issue 14.13: problems sorted by line (not by column), empty cells empty."""
    bad = tmp_path / "bad leads.csv"
    bad.write_text("Lead ID,Company,Lead Status,PostalCode,Amount\nA1,Acme,Open,02134,not a number\n"
                   "A2,Beta,Weird,02134,10\nA3,Gamma,Open,02134,also bad\n")
    _open_leads_import(page, app_url)
    page.locator(LEADS_UPLOAD).first.set_input_files(str(bad))
    page.get_by_role("button", name="Import").wait_for(timeout=60_000)
    page.get_by_role("button", name="Import").click()
    page.locator('[data-testid="stAlert"]').filter(has_text="Import rejected").first.wait_for(timeout=60_000)
    grid = page.locator('[data-testid="stDataFrame"]').filter(has_text="Problem").last
    grid.wait_for()
    # glide grid cells are canvas: read them via the copy the grid exposes to assistive tech (Row, Column, Problem)
    texts = [c.inner_text().strip() for c in grid.locator('[role="gridcell"]').all()]
    lines = [int(t.replace(",", "")) for t in texts[0::3] if t]
    assert len(lines) >= 3 and lines == sorted(lines), texts
    assert "None" not in texts and "<NA>" not in texts


def test_after_an_import_the_page_counts_the_new_leads(page, e2e_built, tmp_path):
    """Issue 14.13: right after an import, the sidebar's lead count and "currently N leads" include it (on a
    private copy of the database: the shared one keeps its leads for the other browser tests)."""
    db = tmp_path / "import.duckdb"
    shutil.copy(e2e_built, db)
    new = tmp_path / "new leads.csv"
    new.write_text("Lead ID,Company,Lead Status,PostalCode\nNEW-1,New One,Open,02134\nNEW-2,New Two,Open,10001\n")
    with serve_app(db, tmp_path / "streamlit.log") as url:
        _open_leads_import(page, url)
        page.get_by_text("currently 20,000 leads").wait_for()
        page.locator(LEADS_UPLOAD).first.set_input_files(str(new))
        page.get_by_role("button", name="Import").click()
        page.get_by_text("Imported 2 rows from new leads.csv").wait_for(timeout=60_000)
        page.get_by_text("currently 20,002 leads").wait_for()
        assert "20,002 leads" in page.locator('[data-testid="stSidebar"]').inner_text()
