"""Small column helpers that pandas lacks or makes slow."""
from __future__ import annotations

import numpy as np


def member(values, members) -> np.ndarray:
    """Which ``values`` (strings) are in ``members``, as a boolean array.

    pandas' ``isin`` on arrow strings builds one pyarrow scalar per member in Python: about 0.1 s
    for the 32k ZIPs of the country, 20-50x slower than a set lookup, and the editor did it on
    every open.
    """
    members = members if isinstance(members, (set, frozenset, dict)) else set(members)
    return np.fromiter((v in members for v in np.asarray(values, dtype=object)), dtype=bool, count=len(values))
