"""Taking turns on one database file between processes: the app, a second app process, command-line jobs.

DuckDB lets one process at a time open a database file for writing, and holds the file from the moment it is
opened until it is closed. terrmap's processes therefore *take turns*: each holds the file only while it has
work for it, and a process that is waiting says so, so that the holder lets go at its next quiet moment (see
:mod:`terrmap.data.connection`).

Two lock files beside the database carry this, with ``flock`` (released by the kernel when a process dies,
even by SIGKILL, so a crash never leaves the file locked):

- ``<db>.turn``: held exclusively by the process whose turn it is. It also holds a line saying who that is
  (process id, program, since when), for the message a job prints when it gives up waiting.
- ``<db>.queue``: every process waiting for its turn holds a shared lock on it while it waits; the holder
  probes for one with a non-blocking exclusive lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PASS_WAIT_S = 0.5  # how long a process that passed its turn lets the waiter go first
SLOW_WAIT_S = 1.0  # a wait longer than this is worth telling the user about


@dataclass(frozen=True)
class Holder:
    """Who holds a database's turn (as the holder wrote it)."""

    pid: int | None
    program: str
    since: float  # time.time() when its turn began

    def describe(self, now: float | None = None) -> str:
        held = (now or time.time()) - self.since
        who = f"process {self.pid}" if self.pid else "another process"
        return f"{who} ({self.program}), holding it for {held:.1f} s" if held < 10 else \
            f"{who} ({self.program}), holding it for {held:.0f} s"


class TurnTimeout(TimeoutError):
    def __init__(self, path: Path, holder: Holder | None, waited: float):
        self.path, self.holder, self.waited = path, holder, waited
        super().__init__(f"no turn on {path} within {waited:.1f} s")


def program_name() -> str:
    """What a holder calls itself: ``terrmap app`` or ``terrmap <command>`` (else the script's name)."""
    argv = sys.argv or [""]
    name = Path(argv[0]).name
    if "streamlit" in name or any(a.endswith("app.py") for a in argv[:3]):
        return "terrmap app"
    if name in ("__main__.py", "-m", "-c", "cli.py") and len(argv) > 1:
        return "terrmap " + argv[1]
    return name or "python"


class FileTurn:
    """One process's side of the turn-taking on one database file."""

    def __init__(self, db_path: Path):
        self.db_path = Path(db_path)
        self._turn_path = self.db_path.with_name(self.db_path.name + ".turn")
        self._queue_path = self.db_path.with_name(self.db_path.name + ".queue")
        self._turn_fd: int | None = None
        self._probe_fd: int | None = None
        self._passed = False  # the turn was last given to a waiting process (it goes first)

    @property
    def held(self) -> bool:
        return self._turn_fd is not None

    def acquire(self, timeout: float, on_slow: Callable[[Holder | None], None] | None = None) -> None:
        """Wait (up to ``timeout`` seconds) for this process's turn, saying meanwhile that it waits; then
        :class:`TurnTimeout` naming the holder. ``on_slow(holder)`` is told once when the wait passes
        :data:`SLOW_WAIT_S` (the app shows who it waits for)."""
        if self.held:
            return
        if self._passed:
            self._let_waiter_go_first(min(timeout, PASS_WAIT_S))
        fd = os.open(self._turn_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            if not _try_lock(fd, fcntl.LOCK_EX):
                self._wait_in_queue(fd, timeout, on_slow)
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "program": program_name(), "since": time.time()}).encode(), 0)
        self._turn_fd = fd

    def _wait_in_queue(self, fd: int, timeout: float, on_slow: Callable[[Holder | None], None] | None) -> None:
        queue = os.open(self._queue_path, os.O_RDWR | os.O_CREAT, 0o666)
        start = time.monotonic()
        pause = 0.005
        try:
            fcntl.flock(queue, fcntl.LOCK_SH)  # "someone waits": the holder's probe sees it
            while not _try_lock(fd, fcntl.LOCK_EX):
                waited = time.monotonic() - start
                if waited >= timeout:
                    raise TurnTimeout(self.db_path, self.holder(), waited)
                if on_slow is not None and waited >= SLOW_WAIT_S:
                    on_slow(self.holder())
                    on_slow = None
                time.sleep(min(pause, timeout - waited))
                pause = min(pause * 1.5, 0.02)
        finally:
            os.close(queue)  # closing drops the shared lock

    def release(self, passed: bool = False) -> None:
        """Give up the turn; ``passed``: to a process that waits for it, which then goes first."""
        if self._turn_fd is None:
            return
        fd, self._turn_fd = self._turn_fd, None
        self._passed = passed
        os.close(fd)  # closing drops the lock

    def _let_waiter_go_first(self, wait: float) -> None:
        """After passing the turn, wait until the waiter has written itself down as the holder (or ``wait``
        seconds): otherwise this process, asking again at once, could take the turn straight back."""
        self._passed = False
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            holder = self.holder()
            if holder is None or holder.pid != os.getpid():
                return
            time.sleep(0.005)

    def others_waiting(self) -> bool:
        """Whether another process waits for its turn (a shared lock on the queue file blocks this probe)."""
        if self._probe_fd is None:
            self._probe_fd = os.open(self._queue_path, os.O_RDWR | os.O_CREAT, 0o666)
        if _try_lock(self._probe_fd, fcntl.LOCK_EX):
            fcntl.flock(self._probe_fd, fcntl.LOCK_UN)
            return False
        return True

    def holder(self) -> Holder | None:
        """Who holds the turn now, as it wrote itself down (None: nobody, or unreadable)."""
        try:
            text = self._turn_path.read_text()
            info = json.loads(text) if text.strip() else None
        except (OSError, ValueError):
            return None
        if not isinstance(info, dict):
            return None
        return Holder(info.get("pid"), str(info.get("program", "?")), float(info.get("since", time.time())))

    def close(self) -> None:
        self.release()
        if self._probe_fd is not None:
            os.close(self._probe_fd)
            self._probe_fd = None


def _try_lock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
