"""terrmap.frames.member against the plain definition (a Python set lookup), for every kind of input it gets."""
from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from terrmap.frames import member

zips = st.one_of(st.none(), st.sampled_from(["", "00501", "10001", "75001", "99950", "ü", "a b"]),
                 st.text(max_size=6))


@settings(max_examples=150, deadline=None)
@given(values=st.lists(zips, max_size=30), members=st.lists(zips, max_size=30),
       kind=st.sampled_from(["list", "series", "arrow series", "object array", "index"]),
       member_kind=st.sampled_from(["set", "list", "series", "dict"]))
def test_member_is_a_set_lookup(values, members, kind, member_kind):
    expected = np.array([v in set(members) for v in values], dtype=bool)
    vals = {"list": values, "series": pd.Series(values, dtype=object), "arrow series": pd.Series(values, dtype="str"),
            "object array": np.array(values, dtype=object), "index": pd.Index(values, dtype=object)}[kind]
    if kind == "arrow series":  # pandas turns None into its missing value: still no member unless None is
        expected = np.array([v in set(members) or (v is None and None in set(members)) for v in values], bool)
    mems = {"set": set(members), "list": members, "series": pd.Series(members, dtype=object),
            "dict": dict.fromkeys(members)}[member_kind]
    np.testing.assert_array_equal(member(vals, mems), expected)


def test_member_of_numbers_falls_back_to_a_set():
    np.testing.assert_array_equal(member([1, 2, 3], {2, 3}), [False, True, True])
    np.testing.assert_array_equal(member(pd.Series([1.5, np.nan]), [1.5]), [True, False])
