"""Recovery: the journal read back as tables, and a killed run's rows published as parts.

Every finished row is first appended to a write-ahead journal segment (`journal.py`); a part is
published from a segment, and then the segment is deleted (`writer.py`). Recovery (`recover`)
publishes what a killed run left in the journal. A segment whose part exists is already published
and is deleted. In any other, every readable line is recovered: the torn last line of a killed
writer is dropped silently; any other unreadable line (not UTF-8, not JSON, a value that does not
fit the segment's schema) is reported with its segment and line number, and the segment is moved
to `_wal/quarantine/` once its readable rows are published, never deleted. A segment written
before headers existed is recovered under the current run's schema, provided its rows are the same
job's; rows that do not fit it are reported the same way.

The ledger reads segments through `read_segment_table` too, without recovering them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from .errors import ConfigError, EnvironmentFailure
from .journal import WAL_DIR, JournalDamage, quarantine, read_segment, segment_paths
from .parts import (
    CONVERSION_ERRORS,
    PART_PREFIX,
    Parts,
    first_line,
    header_schema,
    part_exists,
    rows_table,
    schema_job,
    schema_problem,
    write_part,
)

__all__ = ["SegmentTable", "check_journal_job", "from_json", "read_segment_table", "recover"]


def from_json(row: dict[str, Any], schema: pa.Schema) -> dict[str, Any]:
    """A row read back from JSON (the journal, a batch record): dates and timestamps from ISO 8601 text."""
    for field_ in schema:
        value = row.get(field_.name)
        if isinstance(value, str):
            if pa.types.is_date32(field_.type):
                row[field_.name] = date.fromisoformat(value)
            elif pa.types.is_timestamp(field_.type):
                row[field_.name] = datetime.fromisoformat(value)
    return row



@dataclass(slots=True)
class SegmentTable:
    """A journal segment read back: whose rows, under which schema, and the lines that were lost."""

    path: Path
    job: str | None  # None: no header and no readable row
    schema: pa.Schema
    table: pa.Table
    damage: list[JournalDamage]

    @property
    def name(self) -> str:
        return self.path.stem


def _row_problem(row: dict[str, Any], job: str | None, columns: frozenset[str]) -> str | None:
    """Why a parsed journal object is not a row of this segment, or None."""
    doc_id, status = row.get("doc_id"), row.get("status")
    if not isinstance(doc_id, str) or not doc_id:
        return "not a row: no doc_id"
    if status not in ("ok", "error"):
        return "not a row: no status"
    if row.get("job") != job:
        return f"a row of job {row.get('job')!r} in a journal of job {job!r}"
    unknown = [key for key in row if key not in columns]
    if unknown:
        return f"column {unknown[0]!r} is not in the segment's schema"
    return None


def read_segment_table(path: Path, current: pa.Schema) -> SegmentTable:
    """Every row of a segment that fits its schema (the header's; `current` for a headerless one)."""
    try:
        segment = read_segment(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        message = f"cannot read the journal segment {path}: {exc.strerror or exc}; make it readable"
        raise EnvironmentFailure(message, path=path) from None
    schema = header_schema(segment.header) if segment.header is not None else None
    if segment.header is not None and (schema is None or schema_problem(schema) is not None):
        segment.damaged(1, "the header's schema cannot be decoded")
        schema = None
    job = segment.header.job if segment.header is not None and schema is not None else None
    if job is None:  # written before headers, or a lost header: the rows say whose they are
        job = next((row["job"] for _, row in segment.rows if isinstance(row.get("job"), str)), None)
    schema = schema or current
    columns = frozenset(schema.names)
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, row in segment.rows:
        problem = _row_problem(row, job, columns)
        if problem is None:
            try:
                rows.append((number, from_json(row, schema)))
                continue
            except (TypeError, ValueError):
                problem = "a date or timestamp that cannot be read"
        segment.damaged(number, problem)
    table = _fitting_table(rows, schema, segment.damaged)
    damage = sorted(segment.damage, key=lambda d: d.line)
    return SegmentTable(path, job, schema, table, damage)


def _fitting_table(
    rows: list[tuple[int, dict[str, Any]]], schema: pa.Schema, damaged: Callable[[int, str], None]
) -> pa.Table:
    """The rows as a table; one whose values do not fit the schema is reported and left out."""
    try:
        return rows_table([row for _, row in rows], schema)
    except CONVERSION_ERRORS:
        pass  # find the culprits, one row at a time (only ever on a damaged journal)
    fitting = []
    for number, row in rows:
        try:
            rows_table([row], schema)
        except CONVERSION_ERRORS as exc:
            damaged(number, f"a value does not fit the schema: {first_line(exc)}")
        else:
            fitting.append(row)
    return rows_table(fitting, schema)


def check_journal_job(out_dir: Path, segment: SegmentTable, job: str) -> None:
    if segment.job is not None and segment.job != job:
        raise ConfigError(
            f"{out_dir} holds results of job {segment.job!r}, not {job!r} (in its journal, "
            f"{WAL_DIR}/{segment.path.name}, not yet published); give each job its own --out directory, "
            f"or run job {segment.job!r} on it once to publish them"
        )


def recover(
    out_dir: Path, schema: pa.Schema, *, damaged: list[JournalDamage] | None = None, parts: Parts | None = None
) -> int:
    """Turn write-ahead segments left by a killed run into parts (in `parts` when they live in object storage);
    return the rows recovered.

    Each segment is published under its own schema (`schema`, the current run's, only for a segment
    written before headers existed). Lines that cannot be recovered are appended to `damaged`, and
    their segment is moved to `_wal/quarantine/`. A segment of another job than `schema`'s raises
    `ConfigError` before anything is written.
    """
    job = schema_job(schema)
    segments = [read_segment_table(path, schema) for path in segment_paths(out_dir)]
    for segment in segments:
        check_journal_job(out_dir, segment, job)
    recovered = 0
    for segment in segments:
        if segment.table.num_rows and not part_exists(out_dir if parts is None else parts, segment.name):
            write_part(out_dir if parts is None else parts, segment.name, segment.table)
            recovered += segment.table.num_rows
        if segment.damage:
            quarantine(segment.path)
            if damaged is not None:
                damaged.extend(segment.damage)
        else:
            segment.path.unlink()
    for stale in out_dir.glob(f".{PART_PREFIX}*.parquet.tmp"):
        stale.unlink()
    return recovered

