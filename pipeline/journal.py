"""The write-ahead journal's format: one JSON line per finished row, read back line by line.

Design. A journal segment (`<out>/_wal/<run>-<seq>.jsonl`) opens with a header line naming the job,
its fingerprint and the exact Arrow schema its rows were written under (opaque here: `output.py`
encodes and decodes it), then holds one JSON object per row, each line written and flushed whole.

Reading is line by line, and every line stands alone:

- the last line without a newline is the one a killed process was writing: expected, and ignored
  without a word;
- any other line that is not UTF-8, not JSON or not an object is *damage*: counted with its segment
  and line number, skipped, and it never stops the lines after it from being read;
- a segment written before headers existed simply has none; its rows are read all the same.

What fits the schema is `output.py`'s question; this module knows bytes, lines and JSON only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "HEADER_KEY",
    "JOURNAL_VERSION",
    "QUARANTINE_DIR",
    "WAL_DIR",
    "JournalDamage",
    "JournalHeader",
    "JournalSegment",
    "encode_header",
    "encode_row",
    "quarantine",
    "read_segment",
    "segment_paths",
]

WAL_DIR = "_wal"
QUARANTINE_DIR = "quarantine"  # inside WAL_DIR: damaged segments, kept for a person, never read again
SEGMENT_SUFFIX = ".jsonl"
HEADER_KEY = "docpipe_journal"  # the header's marker key; a row never has it
JOURNAL_VERSION = 1


@dataclass(frozen=True, slots=True)
class JournalHeader:
    """What a segment's rows are: the job, its fingerprint and the schema (base64 of Arrow IPC)."""

    job: str
    job_fingerprint: str
    schema: str


@dataclass(frozen=True, slots=True)
class JournalDamage:
    """One journal line that could not be recovered, and why."""

    segment: str  # the segment's file name
    line: int  # 1-based
    reason: str

    def __str__(self) -> str:
        return f"{self.segment} line {self.line}: {self.reason}"


@dataclass(slots=True)
class JournalSegment:
    """A segment as read: its header (None when absent or unreadable), its rows, its damage."""

    path: Path
    header: JournalHeader | None = None
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (line number, parsed object)
    damage: list[JournalDamage] = field(default_factory=list)

    def damaged(self, line: int, reason: str) -> None:
        self.damage.append(JournalDamage(self.path.name, line, reason))


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def encode_row(row: dict[str, Any]) -> bytes:
    """One row as a journal line (dates and timestamps as ISO 8601 text)."""
    line = json.dumps({key: _to_json(value) for key, value in row.items()}, ensure_ascii=False) + "\n"
    return line.encode("utf-8")


def encode_header(header: JournalHeader) -> bytes:
    """A segment's first line."""
    fields = {
        HEADER_KEY: JOURNAL_VERSION,
        "job": header.job,
        "job_fingerprint": header.job_fingerprint,
        "schema": header.schema,
    }
    return (json.dumps(fields, ensure_ascii=False) + "\n").encode("utf-8")


def _header(value: dict[str, Any]) -> JournalHeader | None:
    job, fingerprint, schema = value.get("job"), value.get("job_fingerprint"), value.get("schema")
    if value.get(HEADER_KEY) != JOURNAL_VERSION:
        return None
    if not (isinstance(job, str) and isinstance(fingerprint, str) and isinstance(schema, str)):
        return None
    return JournalHeader(job, fingerprint, schema)


def read_segment(path: Path) -> JournalSegment:
    """Every readable line of a segment; the damaged ones are listed, never fatal.

    Raises OSError only when the file itself cannot be read.
    """
    segment = JournalSegment(path)
    lines = path.read_bytes().split(b"\n")
    lines.pop()  # after the last newline: nothing, or the torn line of a killed writer
    for number, raw in enumerate(lines, start=1):
        try:
            value = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            segment.damaged(number, "not valid UTF-8")
            continue
        except (ValueError, RecursionError):
            segment.damaged(number, "not valid JSON")
            continue
        if not isinstance(value, dict):
            segment.damaged(number, "not a JSON object")
        elif HEADER_KEY in value:
            header = _header(value)
            if number != 1 or header is None:
                segment.damaged(number, "an unreadable or misplaced journal header")
            else:
                segment.header = header
        else:
            segment.rows.append((number, value))
    return segment


def segment_paths(out_dir: Path) -> list[Path]:
    """The segments not yet quarantined, in name order (which is the order they were written)."""
    wal_dir = out_dir / WAL_DIR
    return sorted(wal_dir.glob(f"*{SEGMENT_SUFFIX}")) if wal_dir.is_dir() else []


def quarantine(path: Path) -> Path:
    """Move a damaged segment to `_wal/quarantine/`, where nothing reads it again; return the new path."""
    folder = path.parent / QUARANTINE_DIR
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    os.replace(path, target)
    return target
