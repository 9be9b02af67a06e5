"""The map's scripts (static/terrmap/*.js) against their Python definitions: the money formatter generated
from terrmap.measures, the ring decoder, the value formats; run in node (the browser tests run them in Chromium)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from terrmap.app.assets import STATIC_DIR
from terrmap.app.elements import FORMATS_JS, REGIONS_JS, formats_script
from terrmap.app.geometry import decode_ring, encode_ring
from terrmap.measures import fmt_int, fmt_money, fmt_pct

SCRIPTS = STATIC_DIR / "terrmap"
MONEY_VALUES = [0, 0.4, 7, 950, 999, 999.4, 1000, 1234, 9994, 9999, 12_345, 99_940, 123_456, 999_000,
                1e6, 4_560_000, 45_600_000, 183_493_606, 1e9, 2.5e9, 75.26e9, 999e9,
                -1, -950, -12_345, -4_560_000, -2.5e9]
# Where the two disagree today (terrmap.measures owns the rule): just under the next unit Python writes
# "$1,000K" and JavaScript "$1000K" (both should say "$1.00M"); halves round to even in Python, up in JS.
KNOWN_DIFFERENCES = [999_999, 999_999_999, 950.5, 75.25e9]


def run_node(files: list[str], expr: str):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (the browser tests still run these scripts)")
    source = "var window = {}; var L = {};\n" + "\n".join((STATIC_DIR / f).read_text() for f in files)
    source += f"\nprocess.stdout.write(JSON.stringify((function(tm) {{ return {expr}; }})(window.tm)));"
    out = subprocess.run([node, "-e", source], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_formats_file_is_generated_from_the_measures():
    assert (STATIC_DIR / FORMATS_JS[1]).read_text() == formats_script(), (
        "static/terrmap/formats.js is stale: run "
        "python -c 'from terrmap.app.elements import write_formats_script; write_formats_script()'"
    )


def test_js_money_agrees_with_python():
    got = run_node([FORMATS_JS[1]], f"{json.dumps(MONEY_VALUES)}.map(tm.money)")
    assert got == [fmt_money(v) for v in MONEY_VALUES]


@pytest.mark.xfail(strict=True, reason="known: see KNOWN_DIFFERENCES; fix in terrmap.measures, then drop this mark")
def test_js_money_agrees_with_python_at_unit_boundaries_and_halves():
    got = run_node([FORMATS_JS[1]], f"{json.dumps(KNOWN_DIFFERENCES)}.map(tm.money)")
    assert got == [fmt_money(v) for v in KNOWN_DIFFERENCES]


def test_js_values_agree_with_python():
    # the payload's compact values: ints; money in dollars; scores in per mille; -1 missing
    cases = [(0, "int"), (7, "int"), (1234567, "int"), (-1, "int"), (123, "pct"), (4, "pct"), (996, "pct"), (-1, "pct"),
             (12_345, "money"), (0, "money")]
    expr = f"{json.dumps(cases)}.map(function(c) {{ return tm.value(c[0], c[1]); }})"
    got = run_node([FORMATS_JS[1], REGIONS_JS[1]], expr)
    want = [fmt_int(v) if k == "int" and v >= 0 else fmt_pct(v / 1000) if k == "pct" and v >= 0
            else fmt_money(v) if k == "money" else fmt_int(None) for v, k in cases]
    assert got == want


def test_js_ring_decoder_inverts_the_python_encoder():
    scale = 1000
    polys = [[[[-71.4, 41.8], [-71.3, 41.8], [-71.3, 41.9], [-71.4, 41.8]]],
             [[[10.001, -5.5], [10.5, -5.5], [10.5, -5.0], [10.001, -5.0], [10.001, -5.5]]]]
    encoded = [[encode_ring(r, scale) for r in poly] for poly in polys]
    got = run_node([REGIONS_JS[1]], f"tm.decodeGeometry({json.dumps(encoded)}, {scale})")
    # Leaflet wants [lat, lng]; the Python decoder gives [lng, lat] rings closed again
    want = [[[[y, x] for x, y in decode_ring(r, scale)[:-1]] for r in poly] for poly in encoded]
    assert got == want


def test_one_ring_decoder_for_every_map():
    decoders = {p.name: len(re.findall(r"function ring\(", p.read_text())) for p in SCRIPTS.glob("*.js")}
    assert sum(decoders.values()) == 1 and decoders["regions.js"] == 1, decoders
