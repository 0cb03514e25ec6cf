"""The Parquet output: typed rows, written incrementally and atomically, exactly once.

Design. An output directory is a Parquet dataset that pandas, polars, DuckDB and
`pyarrow.dataset` read directly (`part-*.parquet`); docpipe's own bookkeeping lives in
`_`-prefixed names, which dataset readers skip.

- Every finished row is first appended to a write-ahead journal (`_wal/<run>-<seq>.jsonl`, one JSON
  line, flushed to the OS at once). A process killed with SIGKILL loses no finished row: the OS has
  the bytes. A torn last line (killed mid-write) is recognised and dropped.
- Every `flush_rows` rows (or `flush_s` seconds) the segment's rows become
  `part-<run>-<seq>.parquet`, written to a temporary name and renamed, so a part is either whole or
  absent; then the segment is deleted. A part and its segment share `<run>-<seq>`: on recovery a
  segment whose part exists is simply deleted, any other is converted. No row is ever written twice.
- The done ledger is read from the parts at start: for each document, its last `ok` row's content
  hash and job fingerprint. A document with the same hash under the same fingerprint is not sent
  again. Error rows are not in the ledger, so failed documents are retried on the next run.

This is the only module that imports pyarrow.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .errors import ConfigError
from .jobs import Job

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
WAL_DIR = "_wal"
DEFAULT_FLUSH_ROWS = 1000
DEFAULT_FLUSH_S = 30.0
LEDGER_COLUMNS = ["doc_id", "doc_sha256", "job_fingerprint", "status", "source_size", "source_mtime_ns", "job"]

FIELD_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "enum": pa.dictionary(pa.int32(), pa.string()),
    "number": pa.float64(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "list": pa.list_(pa.string()),
}
METADATA_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
}
TIMESTAMP = pa.timestamp("us", tz="UTC")

# (name, type, description) of the columns every row has, in order. Job fields and manifest
# metadata columns come between `doc_sha256` and `status`.
BASE_COLUMNS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("doc_id", pa.string(), "the document's id (manifest `id`, or path relative to the input folder)"),
    ("source", pa.string(), "where the document came from (relative path, or manifest:line for inline text)"),
    ("doc_sha256", pa.string(), "SHA-256 of the extracted text: what 'the same document' means"),
)
TRAILING_COLUMNS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("status", pa.dictionary(pa.int32(), pa.string()), "ok or error"),
    ("error_type", pa.string(), "why it failed: extraction_error, refusal, schema_mismatch, overloaded_error..."),
    ("error_message", pa.string(), "what went wrong and what to do, for a person"),
    ("model", pa.string(), "the model that answered"),
    ("stop_reason", pa.string(), "the API's stop_reason"),
    ("input_tokens", pa.int64(), "uncached input tokens billed"),
    ("output_tokens", pa.int64(), "output tokens billed (thinking included)"),
    ("cache_read_tokens", pa.int64(), "input tokens read from the prompt cache"),
    ("cache_write_tokens", pa.int64(), "input tokens written to the prompt cache"),
    ("cost_usd", pa.float64(), "list-price cost of the successful response"),
    ("latency_ms", pa.float64(), "wall time of the successful attempt"),
    ("attempts", pa.int32(), "attempts made, retries included"),
    ("request_id", pa.string(), "the API's request-id of the last attempt"),
    ("streamed", pa.bool_(), "whether the response was streamed"),
    ("truncated", pa.bool_(), "whether the document was cut to job.max_document_tokens"),
    ("job", pa.string(), "the job's name"),
    ("job_fingerprint", pa.string(), "hash of everything in the job that changes the answer"),
    ("run_id", pa.string(), "the run that wrote the row"),
    ("backend", pa.string(), "api or emulator"),
    ("created_at", TIMESTAMP, "when the row was written (UTC)"),
    ("source_size", pa.int64(), "size in bytes of the source file (quick change check)"),
    ("source_mtime_ns", pa.int64(), "modification time of the source file (quick change check)"),
)


def output_schema(job: Job, metadata_columns: Mapping[str, str] | None = None) -> pa.Schema:
    """The Parquet schema of a job's rows: base columns, metadata, the job's fields, bookkeeping."""
    fields: list[pa.Field] = [pa.field(name, kind) for name, kind, _ in BASE_COLUMNS]
    columns = metadata_column_names(metadata_columns or {}, job)
    for name, kind in (metadata_columns or {}).items():
        fields.append(pa.field(columns[name], METADATA_TYPES.get(kind, pa.string())))
    fields += [pa.field(field.name, FIELD_TYPES[field.type]) for field in job.fields]
    fields += [pa.field(name, kind) for name, kind, _ in TRAILING_COLUMNS]
    names = [field.name for field in fields]
    if len(set(names)) != len(names):  # readers refuse a Parquet file with two columns of one name
        twice = next(name for name in names if names.count(name) > 1)
        raise ConfigError(
            f"two output columns would be named {twice!r}: rename the manifest column that becomes it "
            "(a manifest column named like one of docpipe's or the job's is prefixed meta_)"
        )
    return pa.schema(fields, metadata={"docpipe.job": job.name, "docpipe.job_fingerprint": job.fingerprint})


def metadata_column_names(names: Iterable[str], job: Job) -> dict[str, str]:
    """Manifest metadata column -> output column (prefixed `meta_` when it clashes with ours)."""
    taken = {n for n, _, _ in BASE_COLUMNS + TRAILING_COLUMNS} | {f.name for f in job.fields}
    return {name: name if name not in taken else f"meta_{name}" for name in names}


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _from_json(row: dict[str, Any], schema: pa.Schema) -> dict[str, Any]:
    for field in schema:
        value = row.get(field.name)
        if isinstance(value, str):
            if pa.types.is_date32(field.type):
                row[field.name] = date.fromisoformat(value)
            elif pa.types.is_timestamp(field.type):
                row[field.name] = datetime.fromisoformat(value)
    return row


def _table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def _write_part(out_dir: Path, name: str, table: pa.Table) -> Path:
    final = out_dir / f"{PART_PREFIX}{name}.parquet"
    temporary = out_dir / f".{PART_PREFIX}{name}.parquet.tmp"
    pq.write_table(table, temporary, compression="zstd")
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    return final


def _read_wal(path: Path, schema: pa.Schema) -> list[dict[str, Any]]:
    rows = []
    with open(path, "rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                break  # torn final line: the process died while writing it
            try:
                rows.append(_from_json(json.loads(raw), schema))
            except ValueError:
                break
    return rows


def recover(out_dir: Path, schema: pa.Schema) -> int:
    """Turn write-ahead segments left by a killed run into parts; return the rows recovered."""
    wal_dir = out_dir / WAL_DIR
    if not wal_dir.is_dir():
        return 0
    recovered = 0
    for segment in sorted(wal_dir.glob("*.jsonl")):
        name = segment.stem
        if not (out_dir / f"{PART_PREFIX}{name}.parquet").exists():
            rows = _read_wal(segment, schema)
            if rows:
                _write_part(out_dir, name, _table(rows, schema))
                recovered += len(rows)
        segment.unlink()
    for stale in out_dir.glob(f".{PART_PREFIX}*.parquet.tmp"):
        stale.unlink()
    return recovered


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
    ) -> None:
        self.out_dir = out_dir
        self.schema = schema
        self.run_id = run_id
        self.flush_rows = flush_rows
        self.flush_s = flush_s
        self.rows_written = 0
        self._seq = 0
        self._rows: list[dict[str, Any]] = []
        self._wal: Any = None
        self._opened_at = time.monotonic()
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
            self._opened_at = time.monotonic()
        line = json.dumps({k: _to_json(v) for k, v in row.items()}, ensure_ascii=False) + "\n"
        self._wal.write(line.encode("utf-8"))
        self._wal.flush()
        self._rows.append(row)
        self.rows_written += 1
        if len(self._rows) >= self.flush_rows or time.monotonic() - self._opened_at >= self.flush_s:
            self._rotate()

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


@dataclass
class DoneLedger:
    """Documents already answered: doc_id -> (content hash, size, mtime) per fingerprint."""

    fingerprint: str
    done: dict[str, tuple[str, int | None, int | None]]

    def is_done(self, doc_id: str, sha256: str) -> bool:
        entry = self.done.get(doc_id)
        return entry is not None and entry[0] == sha256

    def unchanged_file(self, doc_id: str, size: int, mtime_ns: int) -> bool:
        """The quick check: the same file size and mtime as when it was last answered."""
        entry = self.done.get(doc_id)
        return entry is not None and entry[1] == size and entry[2] == mtime_ns

    def __len__(self) -> int:
        return len(self.done)


def _parts(out_dir: Path) -> list[Path]:
    return sorted(out_dir.glob(f"{PART_PREFIX}*.parquet")) if out_dir.is_dir() else []


def load_ledger(out_dir: Path, job: Job) -> DoneLedger:
    """The done ledger of `job` in `out_dir`; refuses a directory that holds another job's rows."""
    done: dict[str, tuple[str, int | None, int | None]] = {}
    fingerprint = job.fingerprint
    for part in _parts(out_dir):
        table = pq.read_table(part, columns=LEDGER_COLUMNS)
        jobs = set(table.column("job").unique().to_pylist())
        if jobs - {job.name}:
            raise ConfigError(
                f"{out_dir} holds results of job {sorted(jobs - {job.name})[0]!r}, not {job.name!r}; "
                "give each job its own --out directory"
            )
        ok = pc.and_(
            pc.equal(table.column("status").cast(pa.string()), "ok"),
            pc.equal(table.column("job_fingerprint"), fingerprint),
        )
        table = table.filter(ok)
        columns = [table.column(name).to_pylist() for name in LEDGER_COLUMNS[:2] + LEDGER_COLUMNS[4:6]]
        done.update(zip(columns[0], zip(columns[1], columns[2], columns[3], strict=True), strict=True))
    return DoneLedger(fingerprint, done)


def _unified_dataset(out_dir: Path) -> ds.Dataset | None:
    parts = _parts(out_dir)
    if not parts:
        return None
    schemas = [pq.read_schema(part) for part in parts]
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    return ds.dataset([str(p) for p in parts], schema=schema, format="parquet")


def load_results(out: str | os.PathLike[str], *, job: str | None = None, latest: bool = True) -> Any:
    """The output as a pandas DataFrame (a pyarrow Table without pandas): the latest row per document.

    `latest=False` returns every row ever written, errors and superseded answers included.
    """
    dataset = _unified_dataset(Path(out))
    if dataset is None:
        raise ConfigError(f"no results in {out}: run `docpipe run JOB INPUT --out {out}` first")
    table = dataset.to_table(filter=(ds.field("job") == job) if job else None)
    if latest and table.num_rows:
        table = table.sort_by([("doc_id", "ascending"), ("created_at", "descending")])
        doc_ids = table.column("doc_id").to_pylist()
        keep = [i for i, doc_id in enumerate(doc_ids) if i == 0 or doc_ids[i - 1] != doc_id]
        table = table.take(pa.array(keep, type=pa.int64()))
    try:
        import pandas  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return table
    return table.to_pandas()
