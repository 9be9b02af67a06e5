"""Per-process memo of costly pure results keyed by the content of their input frame.

Geometry derived from the built-in ZIP reference (Voronoi shapes, their shared borders) is the same for every
database built on it; computing it once per process makes a second database (a test's copy, a new demo) cheap.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from functools import wraps
from typing import TypeVar

import numpy as np
import pandas as pd

T = TypeVar("T")
KEEP = 2  # results kept per function: the built-in geography and one other


def content_digest(frame: pd.DataFrame) -> str:
    """A digest of the frame's column names and values (not its index)."""
    h = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    h.update(np.ascontiguousarray(pd.util.hash_pandas_object(frame, index=False).to_numpy()).tobytes())
    return h.hexdigest()


def memo_by_digest(fn: Callable[[pd.DataFrame], T]) -> Callable[[pd.DataFrame], T]:
    """``fn(frame)`` computed once per frame content (:func:`content_digest`). Callers must not mutate what
    it returns."""
    kept: OrderedDict[str, T] = OrderedDict()

    @wraps(fn)
    def wrapper(frame: pd.DataFrame) -> T:
        digest = content_digest(frame)
        if digest in kept:
            kept.move_to_end(digest)
            return kept[digest]
        result = fn(frame)
        kept[digest] = result
        while len(kept) > KEEP:
            kept.popitem(last=False)
        return result
    return wrapper
