"""Files written whole or not at all: a process killed while writing one (issue 18.3) leaves the previous file, or
none, never a truncated one that reads as a complete export."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` whole or not at all: into ``<path>.part``, then renamed over ``path`` (a process
    killed while writing leaves the previous file, or none, never a truncated one). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
