"""Serve every map asset from this app: no CDN, no internet needed.

folium elements list the scripts and stylesheets they need in ``default_js`` /
``default_css`` (pairs of name and URL, CDN URLs by default). streamlit-folium
walks the element tree, collects those URLs and has its iframe load them. This
module rewrites them, per element instance (never folium's class attributes),
to the vendored copies in ``static/vendor/`` that Streamlit serves at
``/app/static/...`` (``[server] enableStaticServing = true``), makes terrmap's own
files (paths under ``static/``, e.g. ``terrmap/regions.js``: see
:mod:`terrmap.app.elements`) URLs under the same prefix, and drops the
ones a map of GeoJSON regions, tooltips, controls and Leaflet.draw does not use:

* jQuery: only folium's Popup-with-HTML-element, ``objects_to_stay_in_front``
  and ``GeoJson(embed=False)`` use it; terrmap uses none of them;
* Bootstrap JS/CSS, glyphicons, Font Awesome, Leaflet.awesome-markers and its
  rotate CSS: marker icons only.

An asset that is neither known nor droppable makes :func:`localize` raise, so a
new plugin cannot silently bring a CDN back; vendor it under ``static/vendor``
and add it to :data:`LOCAL_ASSETS`.

Usage::

    m = LocalMap(location=..., static_base=static_base())   # or any folium.Map
    ...                                                      # add layers, plugins
    localize(m)                                              # after adding everything
    assert all(u.startswith("/") for u in asset_urls(m))
"""

from __future__ import annotations

from collections.abc import Iterator

import folium
import folium.elements

from terrmap.data.store import PROJECT_ROOT

STATIC_DIR = PROJECT_ROOT / "static"
# Where Streamlit serves STATIC_DIR (the app's ``static/`` folder) when the
# server has no baseUrlPath; see :func:`static_base`.
DEFAULT_STATIC_BASE = "/app/static"

# Asset name (as folium names it) -> file under static/.
LOCAL_ASSETS: dict[str, str] = {
    "leaflet": "vendor/leaflet/leaflet.js",
    "leaflet_css": "vendor/leaflet/leaflet.css",
    "leaflet_draw_js": "vendor/leaflet-draw/leaflet.draw.js",
    "leaflet_draw_css": "vendor/leaflet-draw/leaflet.draw.css",
}

# Known URL fragments -> asset name, for elements that name their assets differently.
_URL_HINTS: list[tuple[str, str]] = [
    ("leaflet.draw.js", "leaflet_draw_js"),
    ("leaflet.draw.css", "leaflet_draw_css"),
    ("/leaflet.js", "leaflet"),
    ("/leaflet.css", "leaflet_css"),
]

# Asset names not needed for GeoJSON regions, tooltips, controls and drawing.
DROPPABLE: frozenset[str] = frozenset(
    {
        "jquery",
        "bootstrap",
        "awesome_markers",
        "bootstrap_css",
        "glyphicons_css",
        "awesome_markers_font_css",
        "awesome_markers_css",
        "awesome_rotate_css",
    }
)
_DROPPABLE_HINTS = ("jquery", "bootstrap", "awesome-markers", "awesome.rotate", "fontawesome", "glyphicons")


class RemoteAssetError(ValueError):
    """A map element needs a remote asset that is not vendored."""


def static_base(base_url_path: str | None = None) -> str:
    """URL prefix of the app's static folder, honouring Streamlit's ``server.baseUrlPath``."""
    base = (base_url_path or "").strip("/")
    return f"/{base}/app/static" if base else DEFAULT_STATIC_BASE


def local_url(relative: str, base: str = DEFAULT_STATIC_BASE) -> str:
    """URL of a file under ``static/``; raises if the file is missing (a broken vendor dir)."""
    if not (STATIC_DIR / relative).is_file():
        raise FileNotFoundError(f"vendored asset missing: {STATIC_DIR / relative}")
    return f"{base.rstrip('/')}/{relative}"


def _is_remote(url: str) -> bool:
    return url.startswith(("http://", "https://", "//"))


def _asset_name(name: str, url: str) -> str | None:
    if name in LOCAL_ASSETS or name in DROPPABLE:
        return name
    for hint, asset in _URL_HINTS:
        if hint in url:
            return asset
    if any(h in url.lower() for h in _DROPPABLE_HINTS):
        return "jquery" if "jquery" in url.lower() else "bootstrap"
    return None


def localize_links(links: list[tuple[str, str]], base: str = DEFAULT_STATIC_BASE) -> list[tuple[str, str]]:
    """``default_js``/``default_css`` pairs with remote URLs made local or dropped, and paths under
    ``static/`` made URLs."""
    out: list[tuple[str, str]] = []
    for name, url in links:
        if not _is_remote(url):
            out.append((name, url if url.startswith("/") else local_url(url, base)))
            continue
        asset = _asset_name(name, url)
        if asset in DROPPABLE:
            continue
        if asset is None:
            raise RemoteAssetError(
                f"map asset {name!r} would load from {url}; vendor it under static/vendor/ "
                "and register it in terrmap.app.assets.LOCAL_ASSETS"
            )
        out.append((name, local_url(LOCAL_ASSETS[asset], base)))
    # the same file twice (e.g. two names for leaflet) loads once
    seen: set[str] = set()
    return [(n, u) for n, u in out if not (u in seen or seen.add(u))]


def walk(element) -> Iterator:
    """The element and all its descendants (the traversal streamlit-folium does)."""
    yield element
    for child in getattr(element, "_children", {}).values():
        yield from walk(child)


def localize(element, base: str = DEFAULT_STATIC_BASE):
    """Rewrite the assets of ``element`` and all its descendants in place; returns ``element``.

    Call it after the last layer/plugin is added. Instance attributes shadow the
    class lists, so other maps in the process keep folium's defaults.
    """
    for el in walk(element):
        if isinstance(el, folium.elements.JSCSSMixin):
            el.default_js = localize_links(list(el.default_js), base)
            el.default_css = localize_links(list(el.default_css), base)
    return element


def asset_urls(element) -> list[str]:
    """Every script/stylesheet URL the element tree asks the browser to load, in order."""
    urls: list[str] = []
    for el in walk(element):
        urls += [u for _, u in getattr(el, "default_js", [])]
        urls += [u for _, u in getattr(el, "default_css", [])]
    return list(dict.fromkeys(urls))


class LocalMap(folium.Map):
    """A folium Map that loads only the vendored Leaflet (no tiles unless given)."""

    def __init__(self, *args, static_base: str = DEFAULT_STATIC_BASE, **kwargs):
        kwargs.setdefault("tiles", None)
        super().__init__(*args, **kwargs)
        self.static_base = static_base
        self.default_js = [("leaflet", local_url(LOCAL_ASSETS["leaflet"], static_base))]
        self.default_css = [("leaflet_css", local_url(LOCAL_ASSETS["leaflet_css"], static_base))]

    def render(self, **kwargs):
        localize(self, self.static_base)  # plugins added after __init__
        super().render(**kwargs)

