"""Progress of a long DuckDB query, reported from the calling thread (Streamlit only allows that)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from terrmap.data.sqltext import sql_literal

Progress = Callable[[float, str], None]


def run_with_progress(cur, work: Callable[[], object], progress: Progress | None, lo: float, hi: float, message: str):
    """Run ``work()`` (one DuckDB query on ``cur``); meanwhile report DuckDB's progress mapped onto [lo, hi].

    The query runs in a worker thread so that ``progress`` is always called from the calling thread
    (Streamlit only allows that).
    """
    if progress is None:
        return work()
    settings = {}
    # Restored in this order: setting progress_bar_time switches the bar on as a side effect.
    for name in ("progress_bar_time", "enable_progress_bar_print", "enable_progress_bar"):
        try:
            settings[name] = cur.execute(f"SELECT current_setting('{name}')").fetchall()[0][0]
        except Exception:
            pass
    # Never print DuckDB's own bar (print off before the bar is switched on).
    cur.execute("SET enable_progress_bar_print = false")
    cur.execute("SET progress_bar_time = 0")
    cur.execute("SET enable_progress_bar = true")
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = work()
        except BaseException as exc:  # re-raised in the calling thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="terrmap-import", daemon=True)
    worker.start()
    try:
        last = -1.0
        while worker.is_alive():
            worker.join(0.25)
            try:
                pct = cur.query_progress()
            except Exception:
                pct = -1
            if pct is not None and pct >= 0 and pct / 100 > last + 0.01:
                last = pct / 100
                progress(lo + (hi - lo) * min(last, 1.0), message)
    except BaseException:
        cur.interrupt()
        worker.join()
        raise
    finally:
        for name, value in settings.items():
            try:
                cur.execute(f"SET {name} = {sql_literal(value) if isinstance(value, str) else value}")
            except Exception:
                pass
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
