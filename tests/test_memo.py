"""The geometry memo: per process, then on disk keyed by input content and the geometry code."""

from __future__ import annotations

import pandas as pd

from terrmap.geo import memo


def _counting():
    calls = []

    def area(frame: pd.DataFrame) -> pd.DataFrame:
        calls.append(len(frame))
        return frame.assign(double=frame["x"] * 2)

    return calls, area


def test_a_new_process_reads_the_disk_copy_and_bad_files_are_recomputed(tmp_path, monkeypatch):
    monkeypatch.setenv(memo.CACHE_ENV_VAR, str(tmp_path))
    frame = pd.DataFrame({"x": [1, 2, 3]})
    calls, fn = _counting()
    first = memo.memo_by_digest(fn)(frame)
    assert calls == [3] and len(list(tmp_path.glob("*.pkl"))) == 1
    # "Another process": a fresh wrapper around a fresh function of the same name reads the file.
    calls2, fn2 = _counting()
    again = memo.memo_by_digest(fn2)(frame)
    assert calls2 == [] and again.equals(first)
    # Other content: computed.
    memo.memo_by_digest(fn2)(pd.DataFrame({"x": [4]}))
    assert calls2 == [1]
    # A damaged file is recomputed (and rewritten), never an error.
    for path in tmp_path.glob("*.pkl"):
        path.write_bytes(b"not a pickle")
    calls3, fn3 = _counting()
    assert memo.memo_by_digest(fn3)(frame).equals(first) and calls3 == [3]


def test_an_unwritable_cache_is_skipped(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv(memo.CACHE_ENV_VAR, str(blocker / "cache"))  # a directory under a file cannot exist
    calls, fn = _counting()
    assert memo.memo_by_digest(fn)(pd.DataFrame({"x": [1]}))["double"].tolist() == [2] and calls == [1]


def test_disk_memo_computes_once_per_key_across_processes(tmp_path, monkeypatch):
    monkeypatch.setenv(memo.CACHE_ENV_VAR, str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return {"x": [1, 2]}

    key = memo.disk_key("stamp", 6, "TX")
    assert memo.disk_memo("t.f", key, compute) == {"x": [1, 2]} and calls == [1]
    assert memo.disk_memo("t.f", key, compute) == {"x": [1, 2]} and calls == [1]  # read back
    assert memo.disk_memo("t.f", memo.disk_key("stamp", 6, "NM"), compute) and calls == [1, 1]  # another key
    assert memo.disk_key("a", "b") != memo.disk_key("ab") != memo.disk_key("a\x1fb", "")
