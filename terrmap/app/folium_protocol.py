"""streamlit-folium's return protocol, in one place: what ``st_folium`` returns and how its iframe
keeps it, for the maps and the editor (which reacts to clicks and drawings).

Pinned to the installed streamlit-folium (:data:`PINNED_VERSION`); tests/test_folium_protocol.py
fails when the version changes and checks these names against the component's source and build.

* ``st_folium`` returns a dict with :data:`RETURN_KEYS` (only those in ``returned_objects``);
  ``last_active_drawing`` is the clicked GeoJSON feature or a drawn shape, ``last_clicked`` the
  clicked point ``{"lat", "lng"}``, ``last_circle_radius`` a drawn circle's radius in km.
* In the iframe the component keeps its state in ``window.__GLOBAL_DATA__``; the editor's script
  (``tm.editorEvents``) reads :data:`STATE_FIELDS` there to report a click without the debounce.
* ``feature_group_to_add`` layers are updated in place (the base map is not rebuilt).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import folium
from streamlit_folium import st_folium

PINNED_VERSION = "0.27.4"

LAST_CLICKED = "last_clicked"
LAST_OBJECT_CLICKED_COUNT = "last_object_clicked_count"
LAST_ACTIVE_DRAWING = "last_active_drawing"
LAST_CIRCLE_RADIUS = "last_circle_radius"

# Every key of st_folium's return value, in the order the component builds it.
RETURN_KEYS = (
    LAST_CLICKED, "last_object_clicked", LAST_OBJECT_CLICKED_COUNT, "last_object_clicked_tooltip",
    "last_object_clicked_popup", "all_drawings", LAST_ACTIVE_DRAWING, "last_geocoder_result", "bounds", "zoom",
    LAST_CIRCLE_RADIUS, "last_circle_polygon", "center", "selected_layers", "selected_tags",
)

# What the editor needs back: a click (its count grows with every click on a region, so a second click
# on the very same point counts too), a drawing, a circle's radius. Panning and zooming do not rerun.
EDITOR_RETURNED = (LAST_CLICKED, LAST_OBJECT_CLICKED_COUNT, LAST_ACTIVE_DRAWING, LAST_CIRCLE_RADIUS)

# The component's state in its iframe: window[GLOBAL_STATE][field].
GLOBAL_STATE = "__GLOBAL_DATA__"
# Returned key -> the state field holding its value, for the keys the editor's script sends itself.
STATE_FIELDS = {
    LAST_CLICKED: "lat_lng_clicked",
    LAST_ACTIVE_DRAWING: "last_active_drawing",
    LAST_CIRCLE_RADIUS: "last_circle_radius",
    LAST_OBJECT_CLICKED_COUNT: "last_object_clicked_count",
}
RETURNED_OBJECTS_FIELD = "returned_objects"
PREVIOUS_DATA_FIELD = "previous_data"  # what the component sent last (it sends only changes)
WRAP_LONGITUDE_FIELD = "wrap_longitude"  # when set, the component rewrites points: leave it to the component


def browser_protocol() -> dict:
    """The protocol as the editor's script (``tm.editorEvents`` in static/terrmap/editor.js) takes it."""
    return {"order": list(RETURN_KEYS), "fields": STATE_FIELDS, "state": GLOBAL_STATE,
            "returned": RETURNED_OBJECTS_FIELD, "previous": PREVIOUS_DATA_FIELD, "wrap": WRAP_LONGITUDE_FIELD}


def show_map(m: folium.Map, *, key: str, height: int, returned_objects: Iterable[str] = (),
             feature_group_to_add: folium.FeatureGroup | None = None, on_change: Callable[[], None] | None = None):
    """``st_folium`` at the container's width; by default nothing comes back (no rerun on pan or zoom).

    ``on_change`` runs before the script reruns; the value is then ``st.session_state[key]``.
    """
    return st_folium(m, key=key, height=height, use_container_width=True, returned_objects=list(returned_objects),
                     feature_group_to_add=feature_group_to_add, on_change=on_change)
