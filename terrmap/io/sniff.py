"""The one file sniffer of every import: encoding (BOM, UTF-8), CSV delimiter, header.

Lead import (:mod:`terrmap.io.read`) sniffs a file on disk from its first bytes;
alignment import (:mod:`terrmap.io.alignment`) sniffs bytes already in memory. Both
get the same answers and the same messages from here. A file that cannot be read
raises :class:`SniffError` (message and 1-based line, when one is known); each
caller turns it into its own rejection.

Conventions: UTF-8 only (a UTF-8 BOM is dropped, UTF-16 is refused); the delimiter
is whichever of ``,`` ``;`` tab ``|`` occurs most often outside quotes on the first
line (``,`` when none does); headers are compared with :func:`norm_header`.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DELIMITERS = (",", ";", "\t", "|")
UTF16_MESSAGE = "the file is not UTF-8 (it is UTF-16); export or save it as UTF-8"
EMPTY_MESSAGE = "the file is empty"
HEAD_BYTES = 1 << 20  # what the sniffer reads of a file on disk


class SniffError(ValueError):
    """The file cannot be read as UTF-8 text with a header; ``line`` is 1-based (None: the whole file)."""

    def __init__(self, message: str, line: int | None = None):
        self.message = message
        self.line = line
        super().__init__(message)


@dataclass(frozen=True)
class CsvHead:
    """What the sniffer found at the start of a CSV file."""

    delimiter: str
    header: list[str]  # the header's names as written, trimmed


def norm_header(name: str) -> str:
    """A column name compared ignoring case, spaces and punctuation ("Zip/Postal Code" = "zippostalcode")."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def find_columns(header: Sequence[str], names: dict[str, Sequence[str]]) -> dict[str, str | None]:
    """For each field of ``names`` (field -> the names files give it, in order of preference), the first column
    of ``header`` that matches one (ignoring case, spaces and punctuation) and no earlier field took."""
    by_norm: dict[str, str] = {}
    for col in header:
        by_norm.setdefault(norm_header(col), col)
    out: dict[str, str | None] = {}
    used: set[str] = set()
    for field, candidates in names.items():
        out[field] = None
        for n in candidates:
            col = by_norm.get(norm_header(n))
            if col is not None and col not in used:
                out[field] = col
                used.add(col)
                break
    return out


def open_bytes(path: Path):
    """The file's bytes, gunzipped when it ends in ``.gz``."""
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")


def not_utf8_message(offset: int, line: int, bad: bytes) -> str:
    shown = " ".join(f"0x{b:02X}" for b in bad[:4]) or "?"
    return (f"the file is not UTF-8: invalid byte sequence {shown} at byte offset {offset:,} (line {line}); "
            "export or save it as UTF-8 (in Excel: 'CSV UTF-8')")


def find_invalid_utf8(path: Path, start: int = 0) -> tuple[int, int, bytes] | None:
    """(byte offset, line, bad bytes) of the first invalid UTF-8 sequence at or after ``start``; None if valid."""
    chunk_size = 16 << 20
    newlines = 0
    base = 0
    carry = b""
    with open_bytes(path) as fh:
        if start:
            # Count the newlines before start, then decode from start.
            remaining = start
            while remaining > 0:
                block = fh.read(min(chunk_size, remaining))
                if not block:
                    break
                newlines += block.count(b"\n")
                remaining -= len(block)
            base = start
        while True:
            block = fh.read(chunk_size)
            data = carry + block
            if not data:
                return None
            try:
                data.decode("utf-8")
                carry = b""
            except UnicodeDecodeError as exc:
                if exc.reason == "unexpected end of data" and block and exc.start >= len(data) - 3:
                    carry = data[exc.start:]
                    data = data[: exc.start]
                else:
                    offset = base + exc.start
                    return offset, newlines + data[: exc.start].count(b"\n") + 1, data[exc.start: exc.end]
            newlines += data.count(b"\n")
            base += len(data)
            if not block:
                return None


def line_of_offset(path: Path, offset: int) -> int:
    """The 1-based line of the file on which byte ``offset`` lies."""
    newlines = 0
    with open_bytes(path) as fh:
        remaining = offset
        while remaining > 0:
            block = fh.read(min(16 << 20, remaining))
            if not block:
                break
            newlines += block.count(b"\n")
            remaining -= len(block)
    return newlines + 1


def strip_bom(head: bytes) -> bytes:
    """``head`` without a UTF-8 byte order mark; UTF-16 (by its BOM) is refused."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SniffError(UTF16_MESSAGE, 1)
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8):]
    return head


def decode_utf8(data: bytes) -> str:
    """Bytes in memory as text (BOM dropped); invalid UTF-8 is refused with its offset and line."""
    data = strip_bom(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SniffError(not_utf8_message(exc.start, line, data[exc.start: exc.end]), line) from None


def guess_delimiter(text: str) -> str:
    """The delimiter of the first line: the most frequent of :data:`DELIMITERS` outside quotes."""
    first = re.sub(r'"[^"]*"', "", text.split("\n", 1)[0])
    counts = {d: first.count(d) for d in DELIMITERS}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def read_header(text: str, delimiter: str) -> list[str]:
    """The header's names (trimmed) from the start of ``text``."""
    try:
        header = next(csv.reader(io.StringIO(text), delimiter=delimiter, quotechar='"', doublequote=True))
    except (StopIteration, csv.Error) as exc:
        raise SniffError(f"line 1: cannot read the header: {exc}", 1) from None
    return [h.strip() for h in header]


def sniff_text(text: str) -> CsvHead:
    """Delimiter and header of CSV text."""
    delimiter = guess_delimiter(text)
    return CsvHead(delimiter, read_header(text, delimiter))


def sniff_file(path: Path) -> CsvHead:
    """Delimiter and header of a CSV file on disk (gzipped or not), from its first :data:`HEAD_BYTES`."""
    with open_bytes(path) as fh:
        head = fh.read(HEAD_BYTES)
        more = bool(fh.read(1))
    head = strip_bom(head)
    if not head.strip():
        raise SniffError(EMPTY_MESSAGE)
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(head, final=not more)
    except UnicodeDecodeError:
        found = find_invalid_utf8(path)
        if found is not None:
            raise SniffError(not_utf8_message(*found), found[1]) from None
        raise
    return sniff_text(text)
