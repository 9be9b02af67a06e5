"""terrmap.app.folium_protocol against the installed streamlit-folium: its version, the keys st_folium
returns, and the iframe state the editor's script reads (checked in the component's source and build)."""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import re
from pathlib import Path

import streamlit_folium

from terrmap.app import folium_protocol as fp

PACKAGE = Path(streamlit_folium.__file__).parent


def _frontend_js() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in (PACKAGE / "frontend" / "build").rglob("*.js"))


def test_pinned_to_the_installed_version():
    installed = importlib.metadata.version("streamlit-folium")
    assert installed == fp.PINNED_VERSION, (
        f"streamlit-folium is {installed}, terrmap.app.folium_protocol is written for {fp.PINNED_VERSION}: "
        "check the returned keys and window.__GLOBAL_DATA__ fields against the new version (this test's "
        "other checks help), then update PINNED_VERSION"
    )


def test_return_keys_are_the_components_defaults():
    tree = ast.parse(inspect.getsource(streamlit_folium.st_folium))
    defaults = next(node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "_defaults" for t in node.targets))
    keys = {k.value for k in defaults.keys}
    # "center" is only sent by the frontend (not in the Python defaults)
    assert set(fp.RETURN_KEYS) - {"center"} == keys
    assert set(fp.EDITOR_RETURNED) <= keys


def test_return_keys_in_the_order_the_frontend_builds_them_from_its_state():
    js = _frontend_js()
    built = re.search(r"\{(last_clicked:[^;]*?selected_tags:[^}]*)\}", js)
    assert built, "the frontend no longer builds its return value as one object literal"
    entries = re.findall(r"(?:^|,)([a-z_]+):", built.group(1))
    assert tuple(entries) == fp.RETURN_KEYS
    for key, field in fp.STATE_FIELDS.items():
        assert re.search(rf"\b{key}:(?:\w+\()?e\.{field}\b", built.group(1)), (key, field)


def test_iframe_state_fields_exist_in_the_frontend():
    js = _frontend_js()
    assert f"window.{fp.GLOBAL_STATE}" in js
    for field in (fp.RETURNED_OBJECTS_FIELD, fp.PREVIOUS_DATA_FIELD, fp.WRAP_LONGITUDE_FIELD):
        assert re.search(rf"\b{field}\b", js), field


def test_show_map_passes_only_arguments_st_folium_takes():
    params = inspect.signature(streamlit_folium.st_folium).parameters
    for name in ("key", "height", "use_container_width", "returned_objects", "feature_group_to_add", "on_change"):
        assert name in params, name
    source = inspect.getsource(fp.show_map)
    passed = set(re.findall(r"(\w+)=", source.split("st_folium(", 1)[1]))
    assert passed <= set(params)


def test_browser_protocol_is_what_the_editor_script_reads():
    proto = fp.browser_protocol()
    script = (Path(__file__).resolve().parent.parent / "static" / "terrmap" / "editor.js").read_text()
    for field in ("order", "fields", "state", "returned", "previous", "wrap"):
        assert f"P.{field}" in script, field
    assert proto["order"] == list(fp.RETURN_KEYS)
