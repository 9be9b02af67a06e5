"""Text and data that end up in the map's HTML and script, made safe.

Every string shown on a map (tooltips, legend) goes through :func:`esc` here in Python; the
browser side only concatenates these already escaped strings and numbers it formats itself.
Data is embedded with :func:`js_json`, so nothing can close the script element or open a
Jinja tag (folium/branca compile rendered output as templates).
"""

from __future__ import annotations

import html
import json
import math
import re

import pandas as pd

_MD_SPECIAL = "\\`*_{}[]<>()#+-.!|~$:"


def md(text) -> str:
    """Text from data for a markdown string (captions, messages): every markdown character escaped,
    so a name shows exactly as written. (Streamlit never renders HTML in markdown unless
    ``unsafe_allow_html``; this also keeps ``*``, ``[..](..)``, ``$`` etc. literal.)"""
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in str(text))


def plain(markdown: str) -> str:
    """The text of a string built from literal text and :func:`md` pieces, without md's escapes (for a log)."""
    return re.sub(r"\\(.)", r"\1", str(markdown))


def is_missing(value) -> bool:
    """None, NaN or pd.NA."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def esc(value) -> str:
    """Text -> HTML-safe text. None/NaN -> ''.

    Escapes ``< > & " '`` and also ``{ }`` (as HTML entities, displayed the
    same): folium/branca compile rendered output as Jinja templates, so a name
    like ``{{ 7*7 }}`` would otherwise be evaluated on the server.
    """
    if is_missing(value):
        return ""
    return html.escape(str(value), quote=True).replace("{", "&#123;").replace("}", "&#125;")


def js_json(obj) -> str:
    """Compact JSON safe inside an HTML <script> and inside a Jinja template.

    No ``<``, ``>``, ``&``, ``'`` literally (nothing can close the script), and
    no Jinja opener (``{{``, ``{%``, ``{#``): in compact JSON these can only
    occur inside strings, where the second character is written as a
    ``\\uXXXX`` escape (same string for the browser).
    """
    return (
        json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("'", "\\u0027")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
        .replace("{{", "{\\u007b")
        .replace("{%", "{\\u0025")
        .replace("{#", "{\\u0023")
    )

