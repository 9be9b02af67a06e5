"""Why a lead file is rejected: :class:`Problem` (row, column, message) and :class:`ImportRejected`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from terrmap.io.sniff import not_utf8_message

MAX_ROWS_PER_PROBLEM = 20


@dataclass(frozen=True)
class Problem:
    """One reason to reject a file.

    ``row``: for CSV the line of the file where the record starts (header = line 1),
    for Parquet the 1-based data row; None for problems of the whole file or a column.
    ``column``: the column of the *file* concerned, if any. ``message`` is complete
    on its own (it names the line/row and the column too).
    """

    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        return self.message


class ImportRejected(Exception):
    """The file was not imported; the database is unchanged. ``problems`` says why."""

    def __init__(self, problems: list[Problem], file: str | None = None, convention: str | None = None):
        self.problems = list(problems)
        self.file = file
        self.convention = convention
        super().__init__(str(self))

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''}"
        if self.file:
            head += f" in {self.file}"
        if self.convention:
            head += f" ({self.convention})"
        return head + ":\n" + "\n".join(f"  - {p.message}" for p in self.problems)


def not_utf8_problem(path: Path | None, offset: int, line: int, bad: bytes) -> Problem:
    return Problem(line, None, not_utf8_message(offset, line, bad))
