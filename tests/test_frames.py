"""terrmap.frames.member and sorted_union against their plain definitions (a Python set lookup; sorted(set())),
for every kind of input they get."""
from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from terrmap.frames import member, sorted_union

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


@settings(max_examples=150, deadline=None)
@given(a=st.lists(zips, max_size=30), b=st.lists(zips, max_size=30),
       kind=st.sampled_from(["list", "series", "arrow series"]))
def test_sorted_union_is_sorted_set_of_the_present_values(a, b, kind):
    def as_kind(values):
        return {"list": values, "series": pd.Series(values, dtype=object),
                "arrow series": pd.Series(values, dtype="str")}[kind]
    got = sorted_union(as_kind(a), as_kind(b))
    assert got == sorted({v for v in a + b if v is not None})
    assert all(type(v) is str for v in got)
