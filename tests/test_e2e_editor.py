"""The map editor (pages/editor.py) end to end in Debian's Chromium, plus its server-side pieces.

Browser tests reuse the shared end-to-end fixtures of tests/e2e_support.py (a demo database, ``streamlit run app.py``, Chromium
that fails the test if any request leaves this machine or any script dialog opens). The map is checked
inside its iframe: Leaflet paths' ``fill`` attributes, ``window.map`` (zoom), ``window.tmEditor``.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from playwright.sync_api import expect

from tests.e2e_support import ARTIFACTS, CANDIDATES_JS, EVIL, MAP_IFRAME, SMALL_PLAN, rerun_after

REV = '[data-testid="tm-edit-rev"]'
# Keyed containers of terrmap.app.editor_panel (Streamlit gives a keyed container the class st-key-<key>);
# the table's text is the data grid's accessible copy of its cells.
TABLE = ".st-key-tm-balance-table"
KPIS = ".st-key-tm-kpis"
AREA = "NM"  # a few hundred ZIP regions: quick to draw, polygons big enough to click


# -- helpers ---------------------------------------------------------------------------------------------

def _map_frame(page):
    return page.locator(MAP_IFRAME).element_handle().content_frame()


def _rev(page) -> int:
    return int(page.locator(REV).get_attribute("data-rev"))


def _wait_rev(page, n: int, timeout: float = 20_000) -> None:
    page.wait_for_function(
        f"() => {{ const e = document.querySelector('{REV}'); return e && +e.dataset.rev >= {n}; }}", timeout=timeout)


def _table_text(page) -> str:
    """The balance table's cells as text (the data grid draws on a canvas; its accessible copy holds the text)."""
    return page.locator(TABLE).text_content()


def _iframe_origin(page) -> tuple[float, float]:
    return page.locator(MAP_IFRAME).evaluate(
        "e => { const r = e.getBoundingClientRect(); return [r.left + e.clientLeft, r.top + e.clientTop]; }")


def _candidates(frame, n: int = 30) -> list[dict]:
    """Regions whose centre (and 5 px around it) is visibly the region itself: safe to click."""
    return frame.evaluate(CANDIDATES_JS, n)


def _fill(frame, i: int) -> str:
    return frame.evaluate("i => window.tmEditor.polys[i]._path.getAttribute('fill')", i)


def _active_color(page) -> str:
    style = page.locator('div[title="colour of the territory you paint with"]').get_attribute("style")
    return re.search(r"background:\s*(#[0-9a-fA-F]{6})", style).group(1).lower()


def _open_editor(page, app_url, area: str = AREA) -> object:
    page.goto(f"{app_url}/editor?area={area}")
    page.frame_locator(MAP_IFRAME).locator("path.leaflet-interactive").first.wait_for(state="attached",
                                                                                    timeout=60_000)
    page.locator(REV).wait_for(state="attached", timeout=30_000)
    frame = _map_frame(page)
    frame.wait_for_function("() => window.tmEditor && window.tmEditor.n >= 0 && window.map", timeout=30_000)
    expect(page.locator(KPIS)).to_contain_text("Max deviation")
    cut_short = page.locator(f"{KPIS} [data-testid='stMetricLabel']").evaluate_all(
        "els => els.filter(e => [e, ...e.querySelectorAll('*')].some(x => x.scrollWidth > x.clientWidth + 1))"
        ".map(e => e.innerText)")
    assert not cut_short, f"KPI labels cut short: {cut_short}"
    # The demo's national plan has territories joined only across water (keys, islands, the Straits of Mackinac).
    expect(page.locator(KPIS)).to_contain_text(re.compile(r"In pieces by water: .+ \(\d+: \S+ ↔ \S+ across water, "
                                                          r"[\d,]+ km\)"))
    expect(page.locator(TABLE)).to_contain_text(EVIL)  # the malicious territory name, shown as text
    return frame


# -- browser ---------------------------------------------------------------------------------------------

def test_editor_click_undo_zoom_and_rectangle(page, app_url):
    t_start = time.time()
    frame = _open_editor(page, app_url)
    active = _active_color(page)
    ox, oy = _iframe_origin(page)
    table0, kpis0 = _table_text(page), page.locator(KPIS).inner_text()
    assert EVIL in table0  # the malicious territory name is shown as text (the page fixture fails on a dialog)

    # 1. click a region of another territory: it takes the active colour, the balance follows
    cand = next(c for c in _candidates(frame) if c["fill"].lower() != active)
    rev = _rev(page)
    page.mouse.click(ox + cand["x"], oy + cand["y"])
    _wait_rev(page, rev + 1)
    frame.wait_for_function(f"() => window.tmEditor.n >= {rev + 1}")
    assert _fill(frame, cand["i"]).lower() == active
    # the data grid paints after the edit counter: wait for its new numbers
    expect(page.locator(TABLE)).not_to_have_text(table0)  # the balance table changed after the click
    assert "1 region" in page.get_by_text(re.compile(r"Edit \d+ ·")).first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "editor_click.png"), full_page=True)

    # 2. undo restores the colour and the numbers
    rev = _rev(page)
    page.get_by_role("button", name=re.compile("^Undo")).click()
    _wait_rev(page, rev + 1)
    frame.wait_for_function(f"() => window.tmEditor.n >= {rev + 1}")
    assert _fill(frame, cand["i"]).lower() == cand["fill"].lower()
    expect(page.locator(TABLE)).to_have_text(table0)
    expect(page.locator(KPIS)).to_have_text(kpis0, use_inner_text=True)

    # 3. zoom in, edit: zoom and centre stay, the iframe is not reloaded
    zoom0 = frame.evaluate("() => window.map.getZoom()")
    frame.evaluate("() => { window.__tmMoved = false; window.map.once('moveend', () => { window.__tmMoved = true; }); }")
    frame.locator("a.leaflet-control-zoom-in").click()
    frame.wait_for_function(f"() => window.__tmMoved && window.map.getZoom() > {zoom0} && !window.map._animatingZoom")
    zoom1 = frame.evaluate("() => window.map.getZoom()")
    center1 = frame.evaluate("() => window.map.getCenter()")
    frame.evaluate("() => { window.__tmTestMark = 42; }")
    ox, oy = _iframe_origin(page)
    cand2 = next(c for c in _candidates(frame) if c["fill"].lower() != active)
    rev = _rev(page)
    page.mouse.click(ox + cand2["x"], oy + cand2["y"])
    _wait_rev(page, rev + 1)
    frame.wait_for_function(f"() => window.tmEditor.n >= {rev + 1}")
    assert _fill(frame, cand2["i"]).lower() == active
    assert frame.evaluate("() => window.__tmTestMark") == 42, "the map iframe was reloaded by the edit"
    assert frame.evaluate("() => window.map.getZoom()") == zoom1
    center2 = frame.evaluate("() => window.map.getCenter()")
    assert abs(center2["lat"] - center1["lat"]) < 1e-9 and abs(center2["lng"] - center1["lng"]) < 1e-9

    # 4. draw a rectangle (Leaflet.draw): every region with its centre inside moves
    table_before = _table_text(page)
    boxes = frame.evaluate("""() => { const r = window.map.getContainer().getBoundingClientRect();
        return [0.1, 0.2, 0.3, 0.4].flatMap(x => [0.15, 0.3, 0.45].map(y => ({
            x0: r.left + r.width * x, y0: r.top + r.height * y,
            x1: r.left + r.width * (x + 0.25), y1: r.top + r.height * (y + 0.3)}))); }""")
    inside_js = """(b) => { const E = window.tmEditor, r = E.map.getContainer().getBoundingClientRect(); let n = 0, same = 0;
        E.polys.forEach(l => { const c = E.map.latLngToContainerPoint(l.getBounds().getCenter());
            const x = r.left + c.x, y = r.top + c.y;
            if (x > b.x0 + 3 && x < b.x1 - 3 && y > b.y0 + 3 && y < b.y1 - 3) { n++;
                if (l._path.getAttribute('fill').toLowerCase() === b.color) same++; } });
        return [n, same]; }"""
    # where the rectangle takes the most regions of other territories (the palette paints with the territory
    # that holds most of the area shown)
    counts = [frame.evaluate(inside_js, {**b, "color": active}) for b in boxes]
    best = max(range(len(boxes)), key=lambda k: counts[k][0] - counts[k][1])
    box, (n_in, same_before) = boxes[best], counts[best]
    assert n_in - same_before >= 2, f"no rectangle takes two regions of other territories: {counts}"
    assert n_in >= 3, f"only {n_in} regions under the rectangle"
    frame.locator("a.leaflet-draw-draw-rectangle").click()
    rev = _rev(page)
    page.mouse.move(ox + box["x0"], oy + box["y0"])
    page.mouse.down()
    page.mouse.move(ox + (box["x0"] + box["x1"]) / 2, oy + (box["y0"] + box["y1"]) / 2, steps=5)
    page.mouse.move(ox + box["x1"], oy + box["y1"], steps=5)
    page.mouse.up()
    _wait_rev(page, rev + 1)
    frame.wait_for_function(f"() => window.tmEditor.n >= {rev + 1}")
    n_in2, same_after = frame.evaluate(inside_js, {**box, "color": active})
    assert same_after > same_before and same_after >= n_in - 2, (n_in, same_before, same_after)
    assert frame.evaluate("() => window.drawnItems.getLayers().length") == 0  # the drawn shape is cleared
    expect(page.locator(TABLE)).not_to_have_text(table_before)
    assert "regions" in page.get_by_text(re.compile(r"Edit \d+ ·")).first.inner_text()
    assert frame.evaluate("() => window.map.getZoom()") == zoom1
    assert frame.evaluate("() => window.__tmTestMark") == 42
    page.screenshot(path=str(ARTIFACTS / "editor_rectangle.png"), full_page=True)

    # 5. Ctrl+Z (keyboard shortcut of the Undo button) undoes the rectangle
    rev = _rev(page)
    page.locator("h1").first.click()  # focus the app, not the map
    page.keyboard.press("Control+z")
    _wait_rev(page, rev + 1)
    frame.wait_for_function(f"() => window.tmEditor.n >= {rev + 1}")
    assert frame.evaluate(inside_js, {**box, "color": active})[1] == same_before

    # 6. lock mode: a click locks the region (dark dashed outline); a second click on the same point unlocks it
    page.get_by_text("Lock mode").click()
    expect(page.get_by_text("Click a region to lock or unlock it")).to_be_visible()
    cand3 = _candidates(frame)[-1]
    for expected, dash in (("Locked 1 region", "4 3"), ("Unlocked 1 region", None)):
        rev = _rev(page)
        page.mouse.click(ox + cand3["x"], oy + cand3["y"])
        _wait_rev(page, rev + 1)
        frame.wait_for_function(f"() => window.tmEditor.n >= {rev + 1}")
        assert expected in page.get_by_text(re.compile(r"Edit \d+ ·")).first.inner_text()
        page.mouse.move(ox + 5, oy + 300)  # off the region: no hover style
        at = frame.evaluate("([x, y]) => document.elementFromPoint(x, y).getAttribute('stroke-dasharray')",
                            [cand3["x"], cand3["y"]])
        assert at == dash, (expected, at)
    print(f"editor flow took {time.time() - t_start:.1f} s")


def _save(page) -> str:
    rev = _rev(page)
    page.get_by_role("button", name=re.compile("^Save$")).click()
    _wait_rev(page, rev + 1)
    return page.get_by_text(re.compile(r"Edit \d+ ·")).first.inner_text()


def _click_other_region(page, frame) -> None:
    active = _active_color(page)
    ox, oy = _iframe_origin(page)
    cand = [c for c in _candidates(frame, 60) if c["fill"].lower() != active][-1]
    rev = _rev(page)
    page.mouse.click(ox + cand["x"], oy + cand["y"])
    _wait_rev(page, rev + 1)


def test_a_small_plan_opens_on_its_state_with_a_readable_balance_chart(page, app_url):
    """A 5-territory Ohio plan: the editor shows Ohio (not the largest state that fits), paints with one of the
    plan's territories, and the balance chart gives each territory its own row."""
    page.goto(f"{app_url}/editor?plan={SMALL_PLAN['plan_id']}")
    frame_ready = page.frame_locator(MAP_IFRAME).locator("path.leaflet-interactive").first
    frame_ready.wait_for(state="attached", timeout=60_000)
    expect(page.locator('[data-testid="stMultiSelect"]').filter(has_text="Area")).to_contain_text("Ohio")
    painted = page.locator('[data-testid="stSelectbox"]').filter(has_text="Paint with").evaluate("e => e.outerHTML")
    assert re.search(r"OH \d", painted), painted
    chart = page.locator('[data-testid="stVegaLiteChart"] svg').first
    chart.wait_for()
    labels = chart.evaluate("""svg => [...svg.querySelectorAll('.role-axis-label text')]
        .map(t => ({text: t.textContent, y: t.getBoundingClientRect().top}))""")
    rows = sorted((lab["y"], lab["text"]) for lab in labels if lab["text"].startswith("OH "))
    assert [t for _, t in sorted(rows, key=lambda r: r[1])] == [f"OH {k}" for k in range(1, 6)], labels
    gaps = np.diff([y for y, _ in rows])
    assert gaps.min() >= 16, f"balance chart rows overlap: {rows}"  # each label on its own line
    page.locator('[data-testid="stVegaLiteChart"]').first.screenshot(path=str(ARTIFACTS / "editor_small_chart.png"))


def test_area_chips_wrap_so_every_chosen_state_shows(page, app_url):
    states = "NY,NJ,CT,MA,RI,VT,NH,ME,PA"
    page.goto(f"{app_url}/editor?area={states}")
    tags = page.locator('[data-testid="stMultiSelect"] [data-tag]')
    expect(tags).to_have_count(len(states.split(",")), timeout=60_000)
    box = page.locator('[data-testid="stMultiSelect"] [data-testid="stMultiSelectTagsContainer"]').bounding_box()
    hidden = [t["label"] for t in tags.evaluate_all(
        "els => els.map(e => ({label: e.getAttribute('aria-label'), right: e.getBoundingClientRect().right}))")
        if t["right"] > box["x"] + box["width"] + 1]
    assert not hidden, f"chosen states scrolled out of sight: {hidden}"


def test_editor_save_conflict_offers_reload_or_merge(page, app_url, browser):
    """Two planners on the same plan: the second save meets a clear conflict and merges without losing edits."""
    frame_a = _open_editor(page, app_url)
    context_b = browser.new_context(viewport={"width": 1440, "height": 1000})
    try:
        page_b = context_b.new_page()
        page_b.set_default_timeout(30_000)
        frame_b = _open_editor(page_b, app_url)
        _click_other_region(page, frame_a)
        _click_other_region(page_b, frame_b)
        page_b.get_by_role("textbox", name="Your name").fill("Bea")
        rerun_after(page_b, lambda: page_b.get_by_role("textbox", name="Your name").press("Enter"))
        assert "Saved" in _save(page_b)
        text = _save(page)
        assert "Bea saved" in text  # the saver's name, not "someone else"
        banner = page.get_by_text("was saved by Bea")
        banner.wait_for()
        assert page.get_by_role("button", name=re.compile("Reload theirs")).is_visible()
        page.screenshot(path=str(ARTIFACTS / "editor_conflict.png"), full_page=True)
        rev = _rev(page)
        page.get_by_role("button", name=re.compile("Merge mine into theirs")).click()
        _wait_rev(page, rev + 1)
        assert "Merged your edits into their version and saved" in page.get_by_text(
            re.compile(r"Edit \d+ ·")).first.inner_text()
        assert page.get_by_text("was saved by Bea").count() == 0
    finally:
        context_b.close()


# -- server side -------------------------------------------------------------------------------------------

def test_overlay_sends_only_what_changed(demo_store):
    from terrmap.app.editor_map import editor_overlay
    from terrmap.app.html_safe import js_json
    from terrmap.app.map_colors import UNASSIGNED_COLOR, territory_palette
    from terrmap.data.zip_groups import regions_in
    from terrmap.plan.editor import EditorSession

    ses = EditorSession.open(demo_store)
    ri = [r for r in regions_in(demo_store, ses.layer, states=["RI"]) if r in ses.index]
    rows = ses.region_indices(ri)
    _, _, colors = territory_palette(ses.terr)
    pal = np.array(colors + [UNASSIGNED_COLOR], dtype=object)
    base_t = ses.plan.assignment[rows].copy()
    base_c = pal[np.where(base_t >= 0, base_t, len(colors))]

    def overlay(n):
        return editor_overlay(rows, base_t, base_c, ses.plan.assignment, ses.plan.locked, ses.terr, n)

    assert overlay(0)["ch"] == [] and overlay(0)["lk"] == []
    target = int(ses.terr["territory_id"].iloc[-1])
    moved = ses.assign(ri[:3], target).regions
    ses.set_locked(ri[5:7], True)
    o = overlay(1)
    assert o["ch"] == [[ses.territory_index(target), sorted(ri.index(r) for r in moved)]]
    assert o["lk"] == [5, 6] and o["n"] == 1 and o["clear"]
    ses.undo()
    assert overlay(2)["ch"] == []  # cumulative against the base: back to nothing
    ses.update_territory(target, color="#000000")  # a recolour travels for every region of that colour
    t_idx = ses.territory_index(target)
    changed = {i for g in overlay(3)["ch"] for i in g[1]}
    assert changed == set(np.flatnonzero(base_t == t_idx).tolist())
    assert len(js_json(overlay(3))) < 4000


def test_region_locator_and_territory_edits(demo_store):
    import h3

    from terrmap.app.editor_map import RegionLocator
    from terrmap.data.zip_groups import regions_in
    from terrmap.plan.editor import EditorSession

    ses = EditorSession.open(demo_store)
    ri = [r for r in regions_in(demo_store, ses.layer, states=["RI"]) if r in ses.index]
    shapes = ses.layer.shapes(demo_store, ri)
    loc = RegionLocator("zip", ri, shapes)
    import shapely
    from shapely.geometry import shape

    for r in ri[:10]:
        p = shapely.make_valid(shape(shapes[r])).representative_point()
        assert loc.locate(p.y, p.x) == r
    assert loc.locate(0.0, 0.0) is None
    cell = h3.latlng_to_cell(41.8, -71.4, 5)
    assert RegionLocator("h3:5", [cell]).locate(41.8, -71.4) == cell

    tid = int(ses.terr["territory_id"].iloc[0])
    ses.update_territory(tid, name="Renamed", color="#123456", tolerance=0.2, target=1e6)
    row = ses.terr.iloc[0]
    assert (row["name"], row["color"], row["tolerance"], row["target"]) == ("Renamed", "#123456", 0.2, 1e6)
    with pytest.raises(ValueError):
        ses.update_territory(tid, name=" ")

    n_before = len(ses.terr)
    report = ses.delete_territory(tid)
    assert len(ses.terr) == n_before - 1 and tid not in ses.terr["territory_id"].tolist()
    assert report.regions and all(ses.assignment_of(report.regions)[r] is None for r in report.regions)
    p = ses.plan
    snap = (p.totals.copy(), p.region_counts.copy(), p.cut_edges, p.perimeter.copy(), dict(p._pieces))
    p._recompute()  # incremental tallies after the delete match a full recomputation
    np.testing.assert_allclose(snap[0], p.totals)
    assert (snap[1] == p.region_counts).all() and snap[2] == p.cut_edges and snap[4] == p._pieces
    np.testing.assert_allclose(snap[3], p.perimeter)
    assert ses.balance_table().shape[0] == n_before - 1
