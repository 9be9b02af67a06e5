"""The Map page's territory lookup: a ZIP or "lat, lon" typed in a box gives the region, its territory, rep and
hierarchy path, and the region's outline drawn on the map. The answer is :func:`terrmap.io.assign.lookup`'s,
the same as ``python -m terrmap lookup`` and ``assign`` give."""

from __future__ import annotations

from dataclasses import dataclass

import folium
import shapely
import streamlit as st
from shapely.geometry import shape as to_shape

from terrmap.access import Viewer, lookup_answer_for
from terrmap.app.html_safe import esc
from terrmap.data.plans import PlanInfo
from terrmap.data.store import Store
from terrmap.geo import parse_layer
from terrmap.io.assign import lookup, parse_query

HIGHLIGHT_COLOR = "#111827"
SEARCH_HELP = ("Type a ZIP code (75001, or ZIP+4) or a point as latitude, longitude (32.9, -96.8). A ZIP is "
               "placed in its region ZIP (a PO box in the ZIP that holds it); a point in the region that contains "
               "it. The answer is the same as `python -m terrmap lookup` and `assign` give.")


@dataclass(frozen=True)
class Found:
    """A lookup's answer (:func:`terrmap.io.assign.lookup`) and the region's outline (GeoJSON; None: none)."""

    answer: dict
    shape: dict | None


def find(s: Store, plan: PlanInfo, text: str, who: Viewer) -> Found:
    """Look ``text`` up in ``plan`` as ``who`` may see it (:func:`terrmap.access.lookup_answer_for`: a rep learns
    whether a place is theirs, never whose it is). Raises ValueError with what to type when ``text`` is neither
    a ZIP nor a point."""
    answer = lookup_answer_for(who, lookup(s, plan, **parse_query(text)))
    region = answer["region"]
    shape = parse_layer(plan.layer).shapes(s, [region]).get(region) if region else None
    return Found(answer, shape)


def answer_markdown(answer: dict) -> str:
    """The answer as one line of Markdown: region, territory and rep, or why nothing owns the place."""
    region_word = "ZIP" if answer["layer"] == "zip" else "H3 cell"
    if answer["reason"] is not None:
        where = f"{region_word} **{answer['region']}**: " if answer["region"] else ""
        return f"{where}{answer['reason']}."
    rep = f"rep **{answer['rep_name']}** ({answer['rep_id']})" if answer["rep_id"] else "no rep yet"
    path = " › ".join(h["name"] for h in answer["hierarchy"])
    return (f"{region_word} **{answer['region']}** → territory **{answer['territory']}** · {rep}"
            + (f" · in {path}" if path else ""))


def search_box(s: Store, plan: PlanInfo, who: Viewer, container=None) -> Found | None:
    """The search box and its answer beside it; returns what was found (None: nothing typed, or not understood)."""
    where = container or st
    box, said = where.columns([1.3, 4], vertical_alignment="bottom")
    text = box.text_input("Find the owner of", key="lookup", placeholder="ZIP or lat, lon", help=SEARCH_HELP)
    if not text.strip():
        return None
    try:
        found = find(s, plan, text, who)
    except ValueError as exc:
        said.warning(str(exc), icon=":material/search_off:")
        return None
    said.markdown(answer_markdown(found.answer), help="How the place was found: "
                  + ("by its ZIP." if found.answer["located_by"] == "zip" else "by its coordinates."))
    return found


def highlight(m: folium.Map, found: Found) -> None:
    """Outline the found region on ``m`` (and mark a searched point), and open the map on it."""
    answer = found.answer
    query = answer["query"]
    label = esc(answer["territory"] or answer["reason"] or "")
    if found.shape is not None:
        folium.GeoJson(
            {"type": "Feature", "geometry": found.shape, "properties": {}},
            name="found region",
            style_function=lambda _: {"color": HIGHLIGHT_COLOR, "weight": 3.5, "fillOpacity": 0.0},
            tooltip=f"{esc(answer['region'])}: {label}",
        ).add_to(m)
    if "lat" in query:
        folium.CircleMarker([query["lat"], query["lon"]], radius=5, color=HIGHLIGHT_COLOR, fill=True,
                            fill_opacity=1.0, tooltip=label).add_to(m)
    # The map's own view (the area's bounds) gives way: two fitBounds in one script leave the first one's view.
    for name in [k for k in m._children if k.startswith("fit_bounds")]:
        del m._children[name]
    if found.shape is not None:
        west, south, east, north = shapely.bounds(to_shape(found.shape)).tolist()
        m.fit_bounds([[south, west], [north, east]], max_zoom=10, padding=(40, 40))
    elif "lat" in query:
        m.fit_bounds([[query["lat"], query["lon"]], [query["lat"], query["lon"]]], max_zoom=9)
