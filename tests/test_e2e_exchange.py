"""End to end: the alignment import section of the Import page in Chromium (read-only: no scenario is created,
so the shared end-to-end database stays as other modules expect it)."""

from __future__ import annotations

from tests.e2e_support import ARTIFACTS, EVIL

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
