"""The Parquet output: typed rows, written incrementally and atomically, exactly once.

Design. An output directory is a Parquet dataset that pandas, polars, DuckDB and
`pyarrow.dataset` read directly (`part-*.parquet`); docpipe's own bookkeeping lives in
`_`-prefixed names, which dataset readers skip.

- Every finished row is first appended to a write-ahead journal (`_wal/<run>-<seq>.jsonl`, one JSON
  line, flushed to the OS at once). A process killed with SIGKILL loses no finished row: the OS has
  the bytes. Each segment opens with a header naming the job, its fingerprint and the exact Arrow
  schema of its rows (`journal.py`), so a segment is only ever published under the schema it was
  written with, whatever the run that recovers it would write.
- A part is published from a segment when the segment holds `flush_rows` rows, or when its oldest
  row has waited `flush_s` seconds; that wait then doubles for the rest of the run, up to
  `max_flush_s` (30 s, 1, 2, 4, 8 minutes, then every 10). The journal already makes rows durable,
  so publishing only decides when a reader sees them: a run's first rows show within 30 s, and a
  slow, rate-limited run makes a part every ten minutes instead of a part of a handful of rows
  every 30 s. A part is written to a temporary name and renamed, so it is either whole or absent;
  then the segment is deleted. A part and its segment share `<run>-<seq>`.
- Recovery (`recover`) publishes what a killed run left in the journal. A segment whose part exists
  is already published and is deleted. In any other, every readable line is recovered: the torn
  last line of a killed writer is dropped silently; any other unreadable line (not UTF-8, not JSON,
  a value that does not fit the segment's schema) is reported with its segment and line number, and
  the segment is moved to `_wal/quarantine/` once its readable rows are published, never deleted.
  A segment written before headers existed is recovered under the current run's schema, provided
  its rows are the same job's; rows that do not fit it are reported the same way.
- Before anything is recovered or written, the directory is checked (`load_ledger(..., schema=)`,
  read-only): rows of another job, in a part or in the journal, refuse the run (`ConfigError`); a
  column whose type this run would change (a manifest's `priority` that was int64 and is now a
  string, a job field whose type was edited) refuses it too, naming the column, both types and what
  to do. A column keeps one type per output directory because readers cannot unify two types of one
  column (pandas, DuckDB and `load_results` all fail), and casting values behind the user's back
  could turn "high" into an error row or a null. A part that is not readable Parquet, or not a
  docpipe part, is an `EnvironmentFailure` naming it and the command that sets it aside.
- The ledger is read from the parts, then from the journal segments not yet published, in the order
  they were written: for each document, its last `ok` row's content hash under this job's
  fingerprint (a document with the same hash is not sent again), and, when its last row under this
  fingerprint is an error, that error (a manifest row that fails in the same way is not recorded
  again). The journal is read without being recovered, so `--dry-run` stays read-only and still
  counts the rows a killed run finished.

This is the only module that imports pyarrow.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from . import columns as row_columns
from .errors import ConfigError, EnvironmentFailure
from .jobs import Job
from .journal import (
    WAL_DIR,
    JournalDamage,
    JournalHeader,
    encode_header,
    encode_row,
    quarantine,
    read_segment,
    segment_paths,
)

__all__ = [
    "BASE_COLUMNS",
    "DoneLedger",
    "ResultWriter",
    "load_ledger",
    "load_results",
    "output_schema",
    "recover",
]

PART_PREFIX = "part-"
PARTS_QUARANTINE_DIR = "_quarantine"  # where a person sets aside a corrupt part; readers skip `_` names
DEFAULT_FLUSH_ROWS = 1000
DEFAULT_FLUSH_S = 30.0
DEFAULT_MAX_FLUSH_S = 600.0
LEDGER_COLUMNS = [
    "doc_id",
    "doc_sha256",
    "job_fingerprint",
    "status",
    "source_size",
    "source_mtime_ns",
    "job",
    "error_type",
    "error_message",
]
JOB_KEY, FINGERPRINT_KEY = b"docpipe.job", b"docpipe.job_fingerprint"
# What a reader may raise on a file that is not (whole) Parquet, or on a row that does not fit.
_ARROW_ERRORS = (pa.ArrowException, OSError)
_CONVERSION_ERRORS = (pa.ArrowException, TypeError, ValueError, OverflowError)

METADATA_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
}
_COMPOSITE_TYPE = re.compile(r"^(list|dictionary)<(.+)>$")
_TIMESTAMP_TYPE = re.compile(r"^timestamp\[(\w+), tz=([\w/+-]+)\]$")


@cache
def arrow_type(name: str) -> pa.DataType:
    """The Arrow type named in `columns.py` or `fields.py`: a pyarrow alias (`string`, `int64`, `date32`...),
    `list<T>`, `dictionary<T>` (int32 indices) or `timestamp[unit, tz=Z]`."""
    if composite := _COMPOSITE_TYPE.match(name):
        outer, inner = composite.groups()
        return pa.list_(arrow_type(inner)) if outer == "list" else pa.dictionary(pa.int32(), arrow_type(inner))
    if timestamp := _TIMESTAMP_TYPE.match(name):
        return pa.timestamp(timestamp.group(1), tz=timestamp.group(2))
    return pa.type_for_alias(name)


# (name, type, description) of the columns every row has, in order (`columns.py`). Job fields and
# manifest metadata columns come between `doc_sha256` and `status`.
BASE_COLUMNS: tuple[tuple[str, pa.DataType, str], ...] = tuple(
    (name, arrow_type(kind), text) for name, kind, text in row_columns.BASE_COLUMNS
)
TRAILING_COLUMNS: tuple[tuple[str, pa.DataType, str], ...] = tuple(
    (name, arrow_type(kind), text) for name, kind, text in row_columns.TRAILING_COLUMNS
)
# A docpipe part has at least these columns, of these types: how a foreign Parquet file is told apart.
_PART_COLUMN_TYPES: dict[str, pa.DataType] = {
    name: kind for name, kind, _ in BASE_COLUMNS + TRAILING_COLUMNS if name in LEDGER_COLUMNS
}


def output_schema(job: Job, metadata_columns: Mapping[str, str] | None = None) -> pa.Schema:
    """The Parquet schema of a job's rows: base columns, metadata, the job's fields, bookkeeping."""
    fields: list[pa.Field] = [pa.field(name, kind) for name, kind, _ in BASE_COLUMNS]
    columns = metadata_column_names(metadata_columns or {}, job)
    for name, kind in (metadata_columns or {}).items():
        fields.append(pa.field(columns[name], METADATA_TYPES.get(kind, pa.string())))
    fields += [pa.field(field.name, arrow_type(field.arrow_type)) for field in job.fields]
    fields += [pa.field(name, kind) for name, kind, _ in TRAILING_COLUMNS]
    names = [field.name for field in fields]
    if len(set(names)) != len(names):  # readers refuse a Parquet file with two columns of one name
        twice = next(name for name in names if names.count(name) > 1)
        raise ConfigError(
            f"two output columns would be named {twice!r}: rename the manifest column that becomes it "
            "(a manifest column named like one of docpipe's or the job's is prefixed meta_)"
        )
    return pa.schema(fields, metadata={JOB_KEY: job.name, FINGERPRINT_KEY: job.fingerprint})


def metadata_column_names(names: Iterable[str], job: Job) -> dict[str, str]:
    """Manifest metadata column -> output column (prefixed `meta_` when it clashes with ours)."""
    taken = {n for n, _, _ in BASE_COLUMNS + TRAILING_COLUMNS} | {f.name for f in job.fields}
    return {name: name if name not in taken else f"meta_{name}" for name in names}


def _schema_job(schema: pa.Schema) -> str:
    job: bytes = (schema.metadata or {}).get(JOB_KEY, b"")
    return job.decode("utf-8")


def _journal_header(schema: pa.Schema) -> JournalHeader:
    metadata = schema.metadata or {}
    encoded = base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")
    return JournalHeader(_schema_job(schema), metadata.get(FINGERPRINT_KEY, b"").decode("utf-8"), encoded)


def _header_schema(header: JournalHeader) -> pa.Schema | None:
    try:
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(header.schema, validate=True)))
    except (ValueError, pa.ArrowException):
        return None


def _from_json(row: dict[str, Any], schema: pa.Schema) -> dict[str, Any]:
    for field_ in schema:
        value = row.get(field_.name)
        if isinstance(value, str):
            if pa.types.is_date32(field_.type):
                row[field_.name] = date.fromisoformat(value)
            elif pa.types.is_timestamp(field_.type):
                row[field_.name] = datetime.fromisoformat(value)
    return row


def _table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def _part_path(out_dir: Path, name: str) -> Path:
    return out_dir / f"{PART_PREFIX}{name}.parquet"


def _write_part(out_dir: Path, name: str, table: pa.Table) -> Path:
    final = _part_path(out_dir, name)
    temporary = out_dir / f".{PART_PREFIX}{name}.parquet.tmp"
    pq.write_table(table, temporary, compression="zstd")
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    return final


# -- the journal, as tables ------------------------------------------------------------------------


@dataclass(slots=True)
class _Segment:
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


def _read_segment(path: Path, current: pa.Schema) -> _Segment:
    """Every row of a segment that fits its schema (the header's; `current` for a headerless one)."""
    try:
        segment = read_segment(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        message = f"cannot read the journal segment {path}: {exc.strerror or exc}; make it readable"
        raise EnvironmentFailure(message, path=path) from None
    schema = _header_schema(segment.header) if segment.header is not None else None
    if segment.header is not None and (schema is None or _schema_problem(schema) is not None):
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
                rows.append((number, _from_json(row, schema)))
                continue
            except (TypeError, ValueError):
                problem = "a date or timestamp that cannot be read"
        segment.damaged(number, problem)
    table = _fitting_table(rows, schema, segment.damaged)
    damage = sorted(segment.damage, key=lambda d: d.line)
    return _Segment(path, job, schema, table, damage)


def _fitting_table(
    rows: list[tuple[int, dict[str, Any]]], schema: pa.Schema, damaged: Callable[[int, str], None]
) -> pa.Table:
    """The rows as a table; one whose values do not fit the schema is reported and left out."""
    try:
        return _table([row for _, row in rows], schema)
    except _CONVERSION_ERRORS:
        pass  # find the culprits, one row at a time (only ever on a damaged journal)
    fitting = []
    for number, row in rows:
        try:
            _table([row], schema)
        except _CONVERSION_ERRORS as exc:
            damaged(number, f"a value does not fit the schema: {_first_line(exc)}")
        else:
            fitting.append(row)
    return _table(fitting, schema)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_journal_job(out_dir: Path, segment: _Segment, job: str) -> None:
    if segment.job is not None and segment.job != job:
        raise ConfigError(
            f"{out_dir} holds results of job {segment.job!r}, not {job!r} (in its journal, "
            f"{WAL_DIR}/{segment.path.name}, not yet published); give each job its own --out directory, "
            f"or run job {segment.job!r} on it once to publish them"
        )


def recover(out_dir: Path, schema: pa.Schema, *, damaged: list[JournalDamage] | None = None) -> int:
    """Turn write-ahead segments left by a killed run into parts; return the rows recovered.

    Each segment is published under its own schema (`schema`, the current run's, only for a segment
    written before headers existed). Lines that cannot be recovered are appended to `damaged`, and
    their segment is moved to `_wal/quarantine/`. A segment of another job than `schema`'s raises
    `ConfigError` before anything is written.
    """
    job = _schema_job(schema)
    segments = [_read_segment(path, schema) for path in segment_paths(out_dir)]
    for segment in segments:
        _check_journal_job(out_dir, segment, job)
    recovered = 0
    for segment in segments:
        if not _part_path(out_dir, segment.name).exists() and segment.table.num_rows:
            _write_part(out_dir, segment.name, segment.table)
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


# -- the writer ------------------------------------------------------------------------------------


class ResultWriter:
    """Appends rows durably (journal first) and publishes them as Parquet parts."""

    def __init__(
        self,
        out_dir: Path,
        schema: pa.Schema,
        run_id: str,
        *,
        flush_rows: int = DEFAULT_FLUSH_ROWS,
        flush_s: float = DEFAULT_FLUSH_S,
        max_flush_s: float = DEFAULT_MAX_FLUSH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out_dir = out_dir
        self.schema = schema
        self.run_id = run_id
        self.flush_rows = flush_rows
        self.flush_s = flush_s
        self.max_flush_s = max(max_flush_s, flush_s)
        self.rows_written = 0
        self._clock = clock
        self._wait_s = flush_s  # how long a row may wait for its part; doubles at each timed publish
        self._header = encode_header(_journal_header(schema))
        self._seq = 0
        self._rows: list[dict[str, Any]] = []
        self._wal: IO[bytes] | None = None
        self._opened_at = clock()
        self._publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="docpipe-publish")
        self._pending: Future[None] | None = None
        (out_dir / WAL_DIR).mkdir(parents=True, exist_ok=True)

    def _segment_name(self) -> str:
        return f"{self.run_id}-{self._seq:05d}"

    def add(self, row: dict[str, Any]) -> None:
        """Record one finished row; it survives a SIGKILL from the moment this returns."""
        if self._wal is None:
            self._seq += 1
            self._wal = open(self.out_dir / WAL_DIR / f"{self._segment_name()}.jsonl", "ab")  # noqa: SIM115
            self._wal.write(self._header)
            self._opened_at = self._clock()
        self._wal.write(encode_row(row))
        self._wal.flush()
        self._rows.append(row)
        self.rows_written += 1
        if len(self._rows) >= self.flush_rows:
            self._rotate()
        elif self._clock() - self._opened_at >= self._wait_s:
            self._rotate()
            self._wait_s = min(self._wait_s * 2, self.max_flush_s)

    def flush(self) -> None:
        """Publish every row added so far as part files; return once they are on disk."""
        self._rotate()
        self._wait()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._publisher.shutdown(wait=True)

    def _rotate(self) -> None:
        """Close the current segment and publish its rows on the publishing thread.

        Building, compressing and fsyncing a part takes tens of milliseconds, which on the event
        loop would hold back every response that arrives meanwhile. The rows are safe in their
        closed segment until the part exists. This segment is queued before the previous one is
        waited for: at most two segments' rows are in memory, and a previous publish's failure,
        raised here, does not keep this one from being published.
        """
        if self._wal is None:
            return
        self._wal.close()
        self._wal = None
        # The rows leave memory first: if the part cannot be written, the closed segment still holds
        # them for recover(), and a later flush must not publish them a second time.
        rows, self._rows = self._rows, []
        previous = self._pending
        self._pending = self._publisher.submit(_publish, self.out_dir, self._segment_name(), rows, self.schema)
        if previous is not None:
            previous.result()

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()


def _publish(out_dir: Path, name: str, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
    """A closed segment's rows as a part file; then the segment goes (see the module docstring)."""
    if rows:
        _write_part(out_dir, name, _table(rows, schema))
    (out_dir / WAL_DIR / f"{name}.jsonl").unlink()


# -- reading parts ---------------------------------------------------------------------------------


def _parts(out_dir: Path) -> list[Path]:
    return sorted(out_dir.glob(f"{PART_PREFIX}*.parquet")) if out_dir.is_dir() else []


def _unreadable_part(out_dir: Path, part: Path, cause: str) -> EnvironmentFailure:
    """The one-line error for a file that sits among the parts but is not one: what, why, what to do."""
    aside = out_dir / PARTS_QUARANTINE_DIR
    command = f"mkdir -p {shlex.quote(str(aside))} && mv {shlex.quote(str(part))} {shlex.quote(str(aside))}/"
    return EnvironmentFailure(
        f"{part} is not a readable docpipe part: {cause}. Nothing was changed; set it aside (dataset "
        f"readers skip `_` names) and run again: {command}",
        path=part,
    )


def _schema_problem(schema: pa.Schema) -> str | None:
    """Why a schema is not one of docpipe's rows (a column missing or of another type), or None."""
    for name, kind in _PART_COLUMN_TYPES.items():
        index = schema.get_field_index(name)
        if index < 0:
            return f"it has no column {name!r}"
        actual = schema.field(index).type
        if actual != kind and not (name == "status" and actual == pa.string()):
            return f"its column {name!r} is {actual}, not {kind}"
    return None


def _read_part(out_dir: Path, part: Path, columns: list[str] | None) -> tuple[pa.Schema, pa.Table | None]:
    """A part's schema and the given columns; EnvironmentFailure for a corrupt or foreign file."""
    try:
        with pq.ParquetFile(part) as parquet:
            schema = parquet.schema_arrow
            problem = _schema_problem(schema)
            if problem is not None:
                raise _unreadable_part(out_dir, part, problem)
            return schema, parquet.read(columns=columns) if columns is not None else None
    except _ARROW_ERRORS as exc:
        raise _unreadable_part(out_dir, part, _first_line(exc)) from None


def _check_types(out_dir: Path, where: str, existing: pa.Schema, schema: pa.Schema, job: Job) -> None:
    """Refuse a run that would write a column of the directory with another type (see the docstring)."""
    fields = {f.name for f in job.fields}
    ours = {name for name, _, _ in BASE_COLUMNS + TRAILING_COLUMNS}
    for column in schema:
        index = existing.get_field_index(column.name)
        if index < 0 or existing.field(index).type == column.type:
            continue
        before, after = existing.field(index).type, column.type
        if column.name in fields:
            advice = f"set field {column.name!r} of job {job.name!r} back to its earlier type"
        elif column.name in ours:
            advice = "run the docpipe version that wrote it"
        else:
            advice = (
                f"give the manifest's {column.name!r} {before} values again (a CSV manifest gives "
                "strings only; a JSONL one takes each column's type from its first value)"
            )
        raise ConfigError(
            f"{out_dir} holds column {column.name!r} as {before} ({where}), but this run would write it as "
            f"{after}; a column keeps one type in an output directory. Nothing was changed: {advice}, "
            "or write this run to a new --out directory"
        )


# -- the ledger ------------------------------------------------------------------------------------


def _error_key(error_type: str | None, message: str | None) -> int:
    return hash((error_type, message))


@dataclass
class DoneLedger:
    """Documents already answered: doc_id -> (content hash, size, mtime) per fingerprint.

    `errors` holds, for each document whose latest row under this fingerprint is an error, a key of
    that error's type and message: what `same_error` compares a new error with.
    """

    fingerprint: str
    done: dict[str, tuple[str, int | None, int | None]]
    errors: dict[str, int] = field(default_factory=dict)
    journal_rows: int = 0  # rows found in the journal, not yet published

    def is_done(self, doc_id: str, sha256: str) -> bool:
        entry = self.done.get(doc_id)
        return entry is not None and entry[0] == sha256

    def unchanged_file(self, doc_id: str, size: int, mtime_ns: int) -> bool:
        """The quick check: the same file size and mtime as when it was last answered."""
        entry = self.done.get(doc_id)
        return entry is not None and entry[1] == size and entry[2] == mtime_ns

    def same_error(self, doc_id: str, error_type: str, message: str) -> bool:
        """Whether the document's latest row under this fingerprint is this very error."""
        key = self.errors.get(doc_id)
        return key is not None and key == _error_key(error_type, message)

    def __len__(self) -> int:
        return len(self.done)

    def add(self, table: pa.Table) -> None:
        """Take in a table of rows written after every table taken so far."""
        status = table.column("status")
        if pa.types.is_dictionary(status.type):
            status = status.cast(pa.string())
        this_job = pc.equal(table.column("job_fingerprint"), self.fingerprint)
        ok = table.filter(pc.and_(pc.equal(status, "ok"), this_job))
        columns = [ok.column(name).to_pylist() for name in ("doc_id", "doc_sha256", "source_size", "source_mtime_ns")]
        if self.errors:  # an answer supersedes an earlier error
            for doc_id in columns[0]:
                self.errors.pop(doc_id, None)
        self.done.update(zip(columns[0], zip(columns[1], columns[2], columns[3], strict=True), strict=True))
        failed = table.filter(pc.and_(pc.equal(status, "error"), this_job))
        if failed.num_rows:
            doc_ids = failed.column("doc_id").to_pylist()
            kinds, messages = failed.column("error_type").to_pylist(), failed.column("error_message").to_pylist()
            keys = [_error_key(kind, message) for kind, message in zip(kinds, messages, strict=True)]
            self.errors.update(zip(doc_ids, keys, strict=True))


def load_ledger(out_dir: Path, job: Job, *, schema: pa.Schema | None = None) -> DoneLedger:
    """The done ledger of `job` in `out_dir`, from its parts and its journal; reads, never writes.

    Refuses, before a run touches anything: a directory that holds another job's rows, in a part or
    in the journal (`ConfigError`); with `schema` (what this run will write), a column whose type it
    would change (`ConfigError`); a corrupt or foreign part (`EnvironmentFailure`).
    """
    ledger = DoneLedger(job.fingerprint, {})
    if not out_dir.is_dir():
        return ledger
    current = schema if schema is not None else output_schema(job)
    sources = [(part.stem.removeprefix(PART_PREFIX), part) for part in _parts(out_dir)]
    published = {name for name, _ in sources}
    sources += [(path.stem, path) for path in segment_paths(out_dir) if path.stem not in published]
    for _, path in sorted(sources):
        if path.suffix == ".parquet":
            part_schema, table = _read_part(out_dir, path, LEDGER_COLUMNS)
            assert table is not None
            jobs = set(table.column("job").unique().to_pylist())
            if jobs - {job.name}:
                raise ConfigError(
                    f"{out_dir} holds results of job {sorted(jobs - {job.name})[0]!r}, not {job.name!r}; "
                    "give each job its own --out directory"
                )
            if schema is not None:
                _check_types(out_dir, path.name, part_schema, schema, job)
        else:
            try:
                segment = _read_segment(path, current)
            except FileNotFoundError:
                continue  # published by a live run meanwhile (a dry run takes no lock)
            _check_journal_job(out_dir, segment, job.name)
            if schema is not None:
                _check_types(out_dir, f"{WAL_DIR}/{path.name}", segment.schema, schema, job)
            table = segment.table.select(LEDGER_COLUMNS)
            ledger.journal_rows += table.num_rows
        ledger.add(table)
    return ledger


# -- the readers -----------------------------------------------------------------------------------


def _unified_dataset(out_dir: Path) -> ds.Dataset | None:
    parts = _parts(out_dir)
    if not parts:
        return None
    schema: pa.Schema | None = None
    for part in parts:
        part_schema, _ = _read_part(out_dir, part, None)
        try:
            schema = pa.unify_schemas([schema or part_schema, part_schema], promote_options="permissive")
        except _CONVERSION_ERRORS as exc:
            cause = f"its columns clash with the other parts': {_first_line(exc)}"
            raise _unreadable_part(out_dir, part, cause) from None
    return ds.dataset([str(p) for p in parts], schema=schema, format="parquet")


def _dataset_table(out_dir: Path, dataset: ds.Dataset, job: str | None) -> pa.Table:
    """The dataset's rows; a part whose data is damaged past its footer is named."""
    try:
        return dataset.to_table(filter=(ds.field("job") == job) if job else None)
    except _ARROW_ERRORS as exc:
        for part in _parts(out_dir):
            try:
                pq.read_table(part)
            except _ARROW_ERRORS as part_exc:
                raise _unreadable_part(out_dir, part, _first_line(part_exc)) from None
        raise EnvironmentFailure(f"{out_dir} cannot be read: {_first_line(exc)}", path=out_dir) from None


def load_results(out: str | os.PathLike[str], *, job: str | None = None, latest: bool = True) -> Any:
    """The output as a pandas DataFrame (pandas, a dependency, is imported here only): the latest row per document.

    `latest=False` returns every row ever written, errors and superseded answers included. A part
    that is corrupt or not docpipe's raises `EnvironmentFailure` naming it.
    """
    dataset = _unified_dataset(Path(out))
    if dataset is None:
        raise ConfigError(f"no results in {out}: run `docpipe run JOB INPUT --out {out}` first")
    table = _dataset_table(Path(out), dataset, job)
    if latest and table.num_rows:
        table = table.sort_by([("doc_id", "ascending"), ("created_at", "descending")])
        doc_ids = table.column("doc_id").to_pylist()
        keep = [i for i, doc_id in enumerate(doc_ids) if i == 0 or doc_ids[i - 1] != doc_id]
        table = table.take(pa.array(keep, type=pa.int64()))
    return table.to_pandas()
