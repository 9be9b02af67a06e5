"""The Optimizer page end to end in Chromium: a long search started, stopped with the Stop button, and the
best plans so far shown; hard limits entered in the page reach the optimizer.

Reuses the shared fixtures of tests/e2e_support.py (demo database, ``streamlit run app.py``, Chromium that
fails the test if a request leaves this machine).
"""

from __future__ import annotations

import re
import time

from tests.e2e_support import ARTIFACTS, MAP_IFRAME, rerun_after, wait_still


def _choose(page, label: str, option) -> None:
    """Pick ``option`` in the Streamlit selectbox labelled ``label``, and wait for the script run it causes (an
    edit made while that run is in flight, e.g. in the limits grid, is lost when the run redraws the page)."""
    page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.locator("input").click()
    options = page.get_by_role("option")
    options.first.wait_for()
    assert options.filter(has_text=option).count(), options.all_inner_texts()
    # A new layer's run loads its region graph: a second when quiet, far longer beside the other browser tests;
    # the wait is for that run's end (up to 90 s), not for a fixed moment.
    rerun_after(page, lambda: options.filter(has_text=option).first.click(), timeout=90_000)


def _open(page, app_url) -> None:
    page.goto(f"{app_url}/optimizer")
    page.get_by_role("heading", name="Territory optimizer").first.wait_for(timeout=60_000)
    _choose(page, "Regions", re.compile(r"^Hexagons, level 4 "))  # ~1-2k regions: the graph loads in a second


def _slide(page, label: str, key: str, times: int = 1) -> None:
    thumb = page.locator('[data-testid="stSlider"]').filter(has_text=label).get_by_role("slider")
    thumb.focus()

    def press():
        for _ in range(times):
            thumb.press(key)

    rerun_after(page, press)  # the slider reports its value after a debounce, then the page reruns


def _add_to_multiselect(page, label: str, option: str) -> None:
    page.locator('[data-testid="stMultiSelect"]').filter(has_text=label).first.locator("input").click()
    # The page's run after a new measure recomputes the instance's totals: seconds on a loaded machine, so the
    # wait is for that run's end, however long it takes (up to 90 s), not for a fixed moment.
    rerun_after(page, lambda: page.get_by_role("option", name=option, exact=True).first.click(), timeout=90_000)
    page.keyboard.press("Escape")


def test_stop_keeps_the_best_plans_so_far(page, app_url):
    _open(page, app_url)
    # Three measures within 1% on ~2k hexagons: out of reach, so the search uses its whole time (60 s).
    _add_to_multiselect(page, "Balance on", "Leads")
    _add_to_multiselect(page, "Balance on", "Customers")
    _slide(page, "Tolerance", "Home")
    _slide(page, "Time (s)", "End")
    page.get_by_role("button", name="Optimize").click()
    stop = page.get_by_role("button", name="Stop")
    stop.wait_for(timeout=30_000)
    # Stop once the search has run a while (its own clock, in the progress bar), so it has plans to keep.
    page.locator('[data-testid="stProgress"]').filter(has_text=re.compile(r"· ([3-9]|\d{2,}) s")).wait_for(timeout=60_000)
    t_started = time.perf_counter()
    stop.click()
    page.get_by_text("Stopped: the best plans found so far.").wait_for(timeout=30_000)
    waited = time.perf_counter() - t_started
    assert waited < 30, f"the search ran {waited:.0f} s after Stop (time limit 60 s)"
    page.get_by_role("heading", name="Candidates").wait_for()
    caption = page.get_by_text(re.compile(r"regions into \d+ territories in [\d.]+ s")).first.inner_text()
    seconds = float(re.search(r"in ([\d.]+) s", caption).group(1))
    assert seconds < 55, caption  # ended by Stop, not by its 60 s limit
    page.get_by_role("button", name=re.compile("Save")).first.wait_for()  # the best plan so far can be saved
    # The recommended candidate on the map: one shape per territory, each in the legend with its region count.
    k = int(re.search(r"into (\d+) territories", caption).group(1))
    frame = page.frame_locator(MAP_IFRAME)
    frame.locator("path.leaflet-interactive").first.wait_for(state="attached", timeout=60_000)
    assert frame.locator("path.leaflet-interactive").count() == k
    counts = [int(t.replace(",", "")) for t in frame.locator(".tm-legend .tm-n").all_inner_texts()]
    regions = int(re.search(r"([\d,]+) regions into", caption).group(1).replace(",", ""))
    assert len(counts) == k and sum(counts) == regions, (counts, caption)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "optimizer_stopped.png"), full_page=True)


def test_hard_limit_from_the_page_is_reported_infeasible(page, app_url):
    _open(page, app_url)
    page.get_by_text("Hard limits per territory (optional)").click()
    grid = page.locator('[data-testid="stDataFrame"]').filter(has_text="Minimum").first
    grid.wait_for()
    wait_still(grid)  # the expander's opening animation moves the grid
    # Glide's grid is a canvas: click the "Minimum" cell of the first row (potential: header and rows 35 px),
    # then type into it. Ask every territory for more potential than all of them hold together.
    box = grid.bounding_box()
    page.mouse.dblclick(box["x"] + box["width"] * 0.5, box["y"] + 35 + 17)  # opens the cell's editor
    page.locator(".gdg-input").first.wait_for()
    page.keyboard.type("1000000000000", delay=30)
    assert page.locator(".gdg-input").first.input_value() == "1000000000000"
    rerun_after(page, lambda: page.keyboard.press("Enter"))  # the edit reaches the script
    page.get_by_role("button", name="Optimize").click()
    page.get_by_text(re.compile("Cannot optimize")).wait_for(timeout=60_000)
    message = page.locator('[data-testid="stAlert"]').filter(has_text="Cannot optimize").first.inner_text()
    assert re.search(r"minimum \$1,000,000,000,000 potential per territory .* exceeds the total", message), message
