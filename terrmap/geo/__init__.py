"""Region layers: the geographic units a planner moves (H3 cells or ZIP codes).

Every layer answers the same few questions (see :class:`Layer`): which SQL
expression puts a lead in a region, how a region id is spelt, and what a
region looks like. :func:`parse_layer` turns a layer key (``"h3:6"``,
``"zip"``) into a layer.
"""

from __future__ import annotations

from terrmap.geo.base import Layer
from terrmap.geo.h3layer import H3_RESOLUTIONS, H3Layer
from terrmap.geo.ziplayer import ZipLayer

__all__ = ["Layer", "H3Layer", "ZipLayer", "parse_layer", "LAYER_KEYS", "H3_RESOLUTIONS"]

LAYER_KEYS = [f"h3:{r}" for r in H3_RESOLUTIONS] + ["zip"]


def parse_layer(key: str) -> Layer:
    """``"h3:<res>"`` or ``"zip"`` -> the layer; raises ValueError naming what is accepted."""
    key = key.strip().lower()
    if key == "zip":
        return ZipLayer()
    if key.startswith("h3:"):
        try:
            res = int(key[3:])
        except ValueError:
            res = -1
        if res in H3_RESOLUTIONS:
            return H3Layer(res)
    raise ValueError(f"unknown layer {key!r}: use one of {', '.join(LAYER_KEYS)}")
