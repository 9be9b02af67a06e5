"""What a planner did on the editor's map, decoded from what the map component reports.

The map (streamlit-folium, see :mod:`terrmap.app.folium_protocol`) reports its *latest* click and
*latest* drawing on every change, not events. :func:`decode` turns one report into at most one new
gesture: a :class:`Click` on a region or a drawn :class:`Shape` (rectangle, polygon/lasso, circle),
remembering in :class:`Seen` what was already handled for the map instance shown. Pure functions:
the app hands over the component's values as a :class:`MapReturn`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from typing import Literal


@dataclass(frozen=True)
class MapReturn:
    """The values of the map's report the editor uses (absent: None)."""

    clicked: dict | None = None  # {"lat": .., "lng": ..} of the latest click
    click_count: int | None = None  # grows with every click on a region (a second click on the same point too)
    drawing: dict | None = None  # the latest drawn shape, a GeoJSON feature
    circle_radius_km: float | None = None  # the latest drawn circle's radius


@dataclass(frozen=True)
class Click:
    """A click at (lat, lng) on ``region_id`` (None: no region of the plan there)."""

    region_id: str | None
    lat: float
    lng: float
    label = "click"


@dataclass(frozen=True)
class Shape:
    """A drawn shape: a GeoJSON feature; a circle is a Point with ``properties.radius`` in metres."""

    kind: Literal["circle", "drawing"]  # "drawing": a rectangle or a polygon (lasso)
    feature: dict

    @property
    def label(self) -> str:
        return self.kind


Gesture = Click | Shape


@dataclass(frozen=True)
class Seen:
    """What was handled already for the map instance ``base`` (its latest click and drawing, as keys)."""

    base: Hashable | None = None
    click: str | None = None
    drawing: str | None = None


def click_key(ret: MapReturn) -> str | None:
    """The latest click as a key: the point and the click count (the same point clicked again is new)."""
    c = ret.clicked
    return f"{c['lat']:.7f},{c['lng']:.7f},{ret.click_count}" if c else None


def drawing_key(ret: MapReturn) -> str | None:
    return json.dumps(ret.drawing, sort_keys=True) if ret.drawing else None


def shape_of(ret: MapReturn) -> Shape:
    """The drawn shape; a circle gets its radius (metres) from the report when the feature lacks it."""
    feature = dict(ret.drawing or {})
    geometry = feature.get("geometry") or {}
    props = dict(feature.get("properties") or {})
    if geometry.get("type") == "Point" and not props.get("radius") and ret.circle_radius_km:
        props["radius"] = float(ret.circle_radius_km) * 1000  # km -> m
        feature["properties"] = props
    return Shape("circle" if geometry.get("type") == "Point" else "drawing", feature)


def decode(ret: MapReturn, seen: Seen, base: Hashable,
           locate: Callable[[float, float], str | None]) -> tuple[Gesture | None, Seen]:
    """The new gesture in ``ret`` (None: nothing new) and what is seen after it.

    A new map instance (``base`` differs from ``seen.base``) reports afresh. A new drawing wins over a
    click arriving with it (the click is part of drawing it). ``locate(lat, lng)`` names the region
    under a click.
    """
    if seen.base != base:
        seen = Seen(base)
    dkey, ckey = drawing_key(ret), click_key(ret)
    if dkey and dkey != seen.drawing:
        return shape_of(ret), replace(seen, drawing=dkey, click=ckey)
    if ckey and ckey != seen.click:
        lat, lng = float(ret.clicked["lat"]), float(ret.clicked["lng"])
        return Click(locate(lat, lng), lat, lng), replace(seen, click=ckey)
    return None, seen
