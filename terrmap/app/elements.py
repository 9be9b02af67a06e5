"""The folium elements terrmap's maps are made of: each is a few lines of script calling a function of
``static/terrmap/*.js`` with its data, and lists the static files it needs the way folium plugins do
(``default_js`` / ``default_css``; paths under ``static/``, made URLs by :func:`terrmap.app.assets.localize`).

Rendered scripts are inserted as text (:class:`RawMacroElement`): branca would compile megabytes
of payload as a Jinja template. Payloads are embedded as JS *string* literals for ``JSON.parse``
(parses faster than an object literal of megabytes).
"""

from __future__ import annotations

from pathlib import Path

import folium.elements
from branca.element import Element
from folium.elements import MacroElement
from folium.template import Template

from terrmap.app.assets import STATIC_DIR
from terrmap.app.geometry import outline_payload
from terrmap.app.html_safe import js_json
from terrmap.app.map_colors import LAND_COLOR, safe_color
from terrmap.measures import formats_js

# Files under static/ (served at /app/static/), by what needs them.
FORMATS_JS = ("tm_formats", "terrmap/formats.js")
REGIONS_JS = ("tm_regions", "terrmap/regions.js")
EDITOR_JS = ("tm_editor", "terrmap/editor.js")
REP_JS = ("tm_rep", "terrmap/rep.js")
MAP_CSS = ("tm_map_css", "terrmap/map.css")
EDITOR_CSS = ("tm_editor_css", "terrmap/editor.css")
REP_CSS = ("tm_rep_css", "terrmap/rep.css")


def formats_script() -> str:
    """The text of static/terrmap/formats.js: ``tm.money`` generated from :func:`terrmap.measures.formats_js`
    (a test checks the file equals this; rewrite it with :func:`write_formats_script`)."""
    body = "\n".join("    " + line if line else line for line in formats_js().splitlines())
    return (
        "// Generated from terrmap.measures.formats_js() by terrmap.app.elements.write_formats_script(): "
        "do not edit.\n"
        "(function() {\n"
        "    var nf = new Intl.NumberFormat('en-US');\n"
        f"{body}\n"
        "    var tm = window.tm = window.tm || {};\n"
        "    tm.money = money;\n"
        "})();\n"
    )


def write_formats_script(static_dir: Path | None = None) -> Path:
    path = (static_dir or STATIC_DIR) / FORMATS_JS[1]
    path.write_text(formats_script(), encoding="utf-8")
    return path


class _Raw(Element):
    """Already rendered text, inserted as it is (never compiled as a template)."""

    _template = Template("{{ this.text }}")

    def __init__(self, text: str):
        super().__init__()
        self._name = "Raw"
        self.text = text


class RawMacroElement(MacroElement):
    """A MacroElement whose rendered parts are inserted as text.

    branca's MacroElement.render wraps each rendered macro in ``Element(text)``,
    which *compiles the text as a Jinja template*: slow for megabytes of GeoJSON
    (~0.5 s per 4 MB) and a template injection if the data holds ``{{ ... }}``.
    streamlit-folium calls the same macros directly, so both paths give the same script.
    """

    def render(self, **kwargs):
        figure = self.get_root()
        module = self._template.module
        for part, target in (("header", figure.header), ("html", figure.html), ("script", figure.script)):
            macro = module.__dict__.get(part)
            if macro is not None:
                target.add_child(_Raw(str(macro(self, kwargs))), name=self.get_name())
        for child in self._children.values():
            child.render(**kwargs)


class StaticAssets(folium.elements.JSCSSMixin, RawMacroElement):
    """An element whose only job is to make the map load static files (its ``default_js``/``default_css``)."""

    _template = Template("{% macro script(this, kwargs) %}{% endmacro %}")

    def __init__(self):
        super().__init__()
        self._name = type(self).__name__


class MapStyle(StaticAssets):
    """The map's stylesheet (legend, tooltips, water background)."""

    default_css = [MAP_CSS]


class EditorStyle(StaticAssets):
    default_css = [EDITOR_CSS]


class ScriptSource(StaticAssets):
    """Makes the map load one more script by URL (before the map's own script runs)."""

    def __init__(self, url: str, name: str = "tm_data"):
        super().__init__()
        self.default_js = [(name, url)]


class _BoundedLayer(folium.elements.JSCSSMixin, RawMacroElement):
    """A layer of a :class:`terrmap.app.map_data.MapData` (its bounds are the map's)."""

    def _get_self_bounds(self):
        b = self.data.bounds
        return b if b else [[None, None], [None, None]]


class RegionLayer(_BoundedLayer):
    """All regions as one feature group built from the compact payload, one tooltip and hover highlight
    (``tm.drawRegions`` in static/terrmap/regions.js)."""

    default_js = [FORMATS_JS, REGIONS_JS]
    default_css = [MAP_CSS]
    _template = Template(
        "{% macro script(this, kwargs) %}"
        "var {{ this.get_name() }} = tm.drawRegions({{ this._parent.get_name() }}, JSON.parse({{ this.payload }}), "
        "{{ this.options_js }});"
        "{% endmacro %}"
    )

    def __init__(self, data, fill_opacity: float = 0.78, weight: float = 0.5):
        super().__init__()
        self._name = "RegionLayer"
        self.data = data
        self.payload = data.payload_literal()
        self.options_js = js_json({"fillOpacity": float(fill_opacity), "weight": float(weight)})


class OutlineLayer(folium.elements.JSCSSMixin, RawMacroElement):
    """Offline base layer: state shapes filled as land under the regions, their borders drawn on top
    (``tm.drawOutlines``). Not interactive (no tooltips, clicks pass through to the regions).

    ``payload``: a JS expression giving the outlines' payload string (default: inline).
    """

    default_js = [REGIONS_JS]
    _template = Template(
        "{% macro script(this, kwargs) %}"
        "tm.drawOutlines({{ this._parent.get_name() }}, JSON.parse({{ this.payload }}), {{ this.options_js }});"
        "{% endmacro %}"
    )

    def __init__(self, geojson: dict, decimals: int = 3, land: bool = True):
        super().__init__()
        self._name = "OutlineLayer"
        self.payload = outline_payload(geojson, decimals)
        self.options_js = js_json({"land": bool(land), "landColor": safe_color(LAND_COLOR)})


class HtmlControl(folium.elements.JSCSSMixin, RawMacroElement):
    """A Leaflet control showing fixed HTML (the legend). The HTML must already be escaped."""

    default_js = [REGIONS_JS]
    default_css = [MAP_CSS]
    _template = Template(
        "{% macro script(this, kwargs) %}"
        "tm.htmlControl({{ this._parent.get_name() }}, {{ this.position_js }}, {{ this.css_js }}, {{ this.html_js }});"
        "{% endmacro %}"
    )

    def __init__(self, html_text: str, position: str = "bottomright", css_class: str = "tm-legend"):
        super().__init__()
        self._name = "HtmlControl"
        if position not in {"topleft", "topright", "bottomleft", "bottomright"}:
            raise ValueError(position)
        self.html = html_text
        self.html_js = js_json(html_text)
        self.position_js = js_json(position)
        self.css_js = js_json(css_class)


# -- the editor's map (terrmap.app.editor_map) ----------------------------------------------------------

class EditorRegionLayer(_BoundedLayer):
    """The regions of :class:`RegionLayer` plus what the editor needs in the browser
    (``tm.editorRegions`` in static/terrmap/editor.js: ``window.tmRegions``, ``window.tmEditor.apply``).

    ``source``: a JS expression giving the payload string (default: the payload inline).
    """

    default_js = [FORMATS_JS, REGIONS_JS, EDITOR_JS]
    default_css = [MAP_CSS, EDITOR_CSS]
    _template = Template(
        "{% macro script(this, kwargs) %}"
        "var {{ this.get_name() }} = tm.editorRegions({{ this._parent.get_name() }}, JSON.parse({{ this.source }}), "
        "{{ this.options_js }});"
        "{% endmacro %}"
    )

    def __init__(self, data, source: str | None = None, fill_opacity: float = 0.8, weight: float = 0.5):
        super().__init__()
        self._name = "EditorRegionLayer"
        self.data = data
        self.source = source or data.payload_literal()
        self.options_js = js_json({"fillOpacity": float(fill_opacity), "weight": float(weight)})


class EditorEvents(folium.elements.JSCSSMixin, RawMacroElement):
    """Browser-side helpers of the editor map (``tm.editorEvents``): report clicks and drawings at once,
    swallow the click ending a drag, forward undo/redo keys. ``protocol``: see
    :func:`terrmap.app.folium_protocol.browser_protocol`."""

    default_js = [EDITOR_JS]
    _template = Template(
        "{% macro script(this, kwargs) %}"
        "tm.editorEvents({{ this._parent.get_name() }}, {{ this.protocol_js }});"
        "{% endmacro %}"
    )

    def __init__(self, protocol: dict):
        super().__init__()
        self._name = "EditorEvents"
        self.protocol_js = js_json(protocol)


class EditorOverlay(RawMacroElement):
    """The script that applies one overlay (see :func:`terrmap.app.editor_map.editor_overlay`) to the drawn map."""

    _template = Template(
        "{% macro script(this, kwargs) %}"
        "window.tmEditor && window.tmEditor.apply && window.tmEditor.apply({{ this.overlay_js }});"
        "{% endmacro %}"
    )

    def __init__(self, overlay: dict):
        super().__init__()
        self._name = "EditorOverlay"
        self.overlay_js = js_json(overlay)


class NaiveEditorTracker(folium.elements.JSCSSMixin, RawMacroElement):
    """For the naive baseline map: ``window.tmEditor`` with only the edit counter (no restyling)."""

    default_js = [EDITOR_JS]
    _template = Template(
        "{% macro script(this, kwargs) %}tm.naiveEditorTracker({{ this._parent.get_name() }});{% endmacro %}"
    )

    def __init__(self):
        super().__init__()
        self._name = "NaiveEditorTracker"
