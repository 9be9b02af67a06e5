"""Small column helpers that pandas lacks or makes slow."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def _strings(values) -> pa.Array | None:
    """``values`` as an arrow string array without a Python loop where pandas already holds arrow strings
    (None: not strings, e.g. numbers or a mix)."""
    if isinstance(values, (set, frozenset, dict)):
        values = list(values)
    try:
        if isinstance(values, (pd.Series, pd.Index)):
            arr = pa.Array.from_pandas(values)
        else:
            arr = pa.array(np.asarray(values, dtype=object) if not isinstance(values, list) else values,
                           from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return None
    if pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.string())
    return arr if pa.types.is_string(arr.type) or pa.types.is_null(arr.type) else None


def member(values, members) -> np.ndarray:
    """Which ``values`` (strings) are in ``members``, as a boolean array.

    pandas' ``isin`` on arrow strings builds one pyarrow scalar per member in Python: about 0.1 s
    for the 32k ZIPs of the country; arrow's hash lookup answers in about 1 ms (a Python set: 3-12 ms).
    """
    v, m = _strings(values), _strings(members)
    if v is not None and m is not None:
        if pa.types.is_null(m.type):
            m = m.cast(pa.string())
        if pa.types.is_null(v.type):
            v = v.cast(pa.string())
        return pc.is_in(v, value_set=m).to_numpy(zero_copy_only=False)
    members = members if isinstance(members, (set, frozenset, dict)) else set(members)
    return np.fromiter((v in members for v in np.asarray(values, dtype=object)), dtype=bool, count=len(values))


def sorted_union(*columns) -> list[str]:
    """The distinct strings of ``columns`` (missing values left out), sorted as ``sorted()`` sorts them, as a
    list: arrow's unique and sort instead of a Python set over 30,000 ZIPs (~25 ms, a quarter of an editor open)."""
    arrays = [_strings(c) for c in columns]
    if any(a is None for a in arrays):
        return sorted({v for c in columns for v in c if not pd.isna(v)})
    joined = pc.unique(pa.chunked_array([a.cast(pa.string()) for a in arrays], type=pa.string()).drop_null())
    # arrow orders strings by their UTF-8 bytes: Python's code-point order for every string
    return joined.take(pc.sort_indices(joined)).to_pylist()
