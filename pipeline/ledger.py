"""The done ledger: which documents a rerun skips, held as Arrow columns and asked a batch at a time.

Design. The ledger is read from the parts, then from the journal segments not yet published, in the
order they were written; the latest row per document wins. For each document it holds, under this
job's fingerprint:

- its last `ok` row's content hash, file size and mtime: a document with the same hash is not sent
  again (`is_done`), and a file of the same size and mtime is not even read (`unchanged_file`);
- when its latest row is an error, that error's type and message: a manifest row that fails in the
  same way is not recorded again (`same_error`).

A rerun over a million done documents asks a million questions, so the answers are two Arrow tables
(done, errors) and, for each, a compact index: the 64-bit `hash()` of every key, sorted, with the
row each came from (16 bytes a document, against some 200 in a dict of tuples). A batch of
questions is one `searchsorted` over that array and one vectorised comparison of the rows found;
a single question costs a few microseconds. A hash match is always checked against the key itself.

Loading checks the directory first, read-only: rows of another job, in a part or in the journal,
refuse the run (`ConfigError`); with `schema=`, a column whose type this run would change refuses it
too, naming the column, both types and what to do (`parts.check_types`). A part that is not
readable Parquet, or not a docpipe part, is an `EnvironmentFailure`. The journal is read without
being recovered, so `--dry-run` stays read-only and still counts the rows a killed run finished.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import ConfigError
from .jobs import Job
from .journal import WAL_DIR, segment_paths
from .output import output_schema
from .parts import LEDGER_COLUMNS, PART_PREFIX, check_types, part_files, read_part
from .recovery import check_journal_job, read_segment_table

__all__ = ["DoneLedger", "load_ledger"]

HASH_CHUNK_ROWS = 1 << 16  # keys turned into Python strings at a time while the index is built
_DONE_COLUMNS = ("doc_id", "doc_sha256", "source_size", "source_mtime_ns")
_ERROR_COLUMNS = ("doc_id", "error_type", "error_message")
_LAST = pc.ScalarAggregateOptions(skip_nulls=False)  # the latest row's value, null or not


def _hashes(values: Sequence[str] | pa.Array) -> np.ndarray[Any, np.dtype[np.int64]]:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        out = np.empty(len(values), dtype=np.int64)
        for start in range(0, len(values), HASH_CHUNK_ROWS):
            chunk = values.slice(start, HASH_CHUNK_ROWS).to_pylist()
            out[start : start + len(chunk)] = np.fromiter(map(hash, chunk), dtype=np.int64, count=len(chunk))
        return out
    return np.fromiter(map(hash, values), dtype=np.int64, count=len(values))


class _KeyIndex:
    """Unique string keys -> their row: sorted 64-bit hashes, searched in bulk, confirmed on the keys."""

    def __init__(self, keys: pa.ChunkedArray) -> None:
        self.keys = keys.combine_chunks() if keys.num_chunks != 1 else keys.chunk(0)
        hashes = _hashes(self.keys)
        self.rows = np.argsort(hashes, kind="stable")
        self.hashes = hashes[self.rows]

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, doc_ids: Sequence[str]) -> np.ndarray[Any, np.dtype[np.int64]]:
        """The row of each id, or -1."""
        found = np.full(len(doc_ids), -1, dtype=np.int64)
        if not len(self) or not doc_ids:
            return found
        wanted = _hashes(doc_ids)
        slots = np.minimum(np.searchsorted(self.hashes, wanted), len(self) - 1)
        hits = np.flatnonzero(self.hashes[slots] == wanted)
        if not len(hits):
            return found
        rows = self.rows[slots[hits]]
        same = pc.equal(self.keys.take(pa.array(rows)), pa.array([doc_ids[i] for i in hits.tolist()], pa.string()))
        confirmed = same.to_numpy(zero_copy_only=False)
        found[hits[confirmed]] = rows[confirmed]
        for index in hits[~confirmed].tolist():  # two keys of one hash: look along their run
            found[index] = self.find_one(doc_ids[index])
        return found

    def find_one(self, doc_id: str) -> int:
        """The row of one id, or -1."""
        wanted = hash(doc_id)
        slot = int(np.searchsorted(self.hashes, wanted))
        while slot < len(self) and self.hashes[slot] == wanted:
            row = int(self.rows[slot])
            if self.keys[row].as_py() == doc_id:
                return row
            slot += 1
        return -1


class DoneLedger:
    """Documents already answered under one job fingerprint, and documents whose latest row is an error."""

    def __init__(
        self, fingerprint: str, done: pa.Table | None = None, errors: pa.Table | None = None, *, journal_rows: int = 0
    ) -> None:
        self.fingerprint = fingerprint
        self.journal_rows = journal_rows  # rows found in the journal, not yet published
        # One chunk per column: a take across many chunks costs microseconds an index.
        self._done = (done if done is not None else _empty(_DONE_COLUMNS)).combine_chunks()
        self._errors = (errors if errors is not None else _empty(_ERROR_COLUMNS)).combine_chunks()
        self._done_index = _KeyIndex(self._done.column("doc_id"))
        self._error_index = _KeyIndex(self._errors.column("doc_id"))

    def __len__(self) -> int:
        return len(self._done_index)

    @property
    def done(self) -> dict[str, tuple[str, int | None, int | None]]:
        """doc_id -> (content hash, size, mtime), as a dict: for inspection and tests, never on a run's path."""
        doc_ids, *values = [self._done.column(name).to_pylist() for name in _DONE_COLUMNS]
        return dict(zip(doc_ids, zip(*values, strict=True), strict=True))

    @property
    def errors(self) -> dict[str, tuple[str | None, str | None]]:
        """doc_id -> (error type, message) of each document whose latest row is an error."""
        columns = [self._errors.column(name).to_pylist() for name in _ERROR_COLUMNS]
        return {doc_id: (kind, message) for doc_id, kind, message in zip(*columns, strict=True)}

    def is_done(self, doc_id: str, sha256: str) -> bool:
        row = self._done_index.find_one(doc_id)
        return row >= 0 and self._done.column("doc_sha256")[row].as_py() == sha256

    def unchanged_file(self, doc_id: str, size: int, mtime_ns: int) -> bool:
        """The quick check: the same file size and mtime as when it was last answered."""
        row = self._done_index.find_one(doc_id)
        return (
            row >= 0
            and self._done.column("source_size")[row].as_py() == size
            and self._done.column("source_mtime_ns")[row].as_py() == mtime_ns
        )

    def same_error(self, doc_id: str, error_type: str, message: str) -> bool:
        """Whether the document's latest row under this fingerprint is this very error."""
        row = self._error_index.find_one(doc_id)
        return (
            row >= 0
            and self._errors.column("error_type")[row].as_py() == error_type
            and self._errors.column("error_message")[row].as_py() == message
        )

    def are_done(self, doc_ids: Sequence[str], sha256s: Sequence[str]) -> list[bool]:
        """`is_done` for a batch: one search and one comparison for all of them."""
        return self._matches(doc_ids, {"doc_sha256": (sha256s, pa.string())})

    def unchanged_files(self, doc_ids: Sequence[str], sizes: Sequence[int], mtimes_ns: Sequence[int]) -> list[bool]:
        """`unchanged_file` for a batch."""
        return self._matches(doc_ids, {"source_size": (sizes, pa.int64()), "source_mtime_ns": (mtimes_ns, pa.int64())})

    def _matches(self, doc_ids: Sequence[str], wanted: dict[str, tuple[Sequence[Any], pa.DataType]]) -> list[bool]:
        rows = self._done_index.find(doc_ids)
        result = np.zeros(len(doc_ids), dtype=bool)
        hits = np.flatnonzero(rows >= 0)
        if len(hits):
            taken = pa.array(rows[hits])
            picked = pa.array(hits)
            same = None
            for column, (values, kind) in wanted.items():
                equal = pc.equal(self._done.column(column).take(taken), pa.array(values, kind).take(picked))
                same = equal if same is None else pc.and_(same, equal)
            assert same is not None
            result[hits] = pc.fill_null(same, False).to_numpy(zero_copy_only=False)
        return result.tolist()


def _empty(columns: Sequence[str]) -> pa.Table:
    kinds = {"source_size": pa.int64(), "source_mtime_ns": pa.int64()}
    return pa.table({name: pa.array([], kinds.get(name, pa.string())) for name in columns})


def _this_jobs_rows(table: pa.Table, fingerprint: str) -> pa.Table:
    """The ok and error rows of this fingerprint, in order: doc_id, ok, then the columns the ledger keeps."""
    status = table.column("status")
    if pa.types.is_dictionary(status.type):
        status = status.cast(pa.string())
    ok = pc.equal(status, "ok")
    keep = pc.and_(pc.equal(table.column("job_fingerprint"), fingerprint), pc.or_(ok, pc.equal(status, "error")))
    kept = table.filter(keep)
    columns = {"doc_id": kept.column("doc_id"), "ok": ok.filter(keep)}
    for name in (*_DONE_COLUMNS[1:], *_ERROR_COLUMNS[1:]):
        columns[name] = kept.column(name)
    return pa.table(columns)


def _latest(rows: pa.Table, columns: Sequence[str]) -> pa.Table:
    """The last row of each doc_id (rows are in the order they were written)."""
    if not rows.num_rows or pc.count_distinct(rows.column("doc_id")).as_py() == rows.num_rows:
        return rows.select(["doc_id", *columns])
    grouped = rows.group_by("doc_id", use_threads=False).aggregate([(name, "last", _LAST) for name in columns])
    return pa.table({"doc_id": grouped.column("doc_id"), **{name: grouped.column(f"{name}_last") for name in columns}})


def ledger_from_rows(fingerprint: str, rows: pa.Table, *, journal_rows: int = 0) -> DoneLedger:
    """The ledger of rows in the order they were written (the output of `_this_jobs_rows`, concatenated)."""
    done = _latest(rows.filter(rows.column("ok")), _DONE_COLUMNS[1:])
    errors = _empty(_ERROR_COLUMNS)
    if not pc.all(rows.column("ok")).as_py() and rows.num_rows:
        latest = _latest(rows, ["ok", *_ERROR_COLUMNS[1:]])
        errors = latest.filter(pc.invert(latest.column("ok"))).select(list(_ERROR_COLUMNS))
    return DoneLedger(fingerprint, done, errors, journal_rows=journal_rows)


def load_ledger(out_dir: Path, job: Job, *, schema: pa.Schema | None = None) -> DoneLedger:
    """The done ledger of `job` in `out_dir`, from its parts and its journal; reads, never writes.

    Refuses, before a run touches anything: a directory that holds another job's rows, in a part or
    in the journal (`ConfigError`); with `schema` (what this run will write), a column whose type it
    would change (`ConfigError`); a corrupt or foreign part (`EnvironmentFailure`).
    """
    if not out_dir.is_dir():
        return DoneLedger(job.fingerprint)
    current = schema if schema is not None else output_schema(job)
    sources = [(part.stem.removeprefix(PART_PREFIX), part) for part in part_files(out_dir)]
    published = {name for name, _ in sources}
    sources += [(path.stem, path) for path in segment_paths(out_dir) if path.stem not in published]
    tables: list[pa.Table] = []
    journal_rows = 0
    for _, path in sorted(sources):
        if path.suffix == ".parquet":
            part_schema, table = read_part(out_dir, path, LEDGER_COLUMNS)
            assert table is not None
            jobs = set(table.column("job").unique().to_pylist())
            if jobs - {job.name}:
                raise ConfigError(
                    f"{out_dir} holds results of job {sorted(jobs - {job.name})[0]!r}, not {job.name!r}; "
                    "give each job its own --out directory"
                )
            if schema is not None:
                check_types(out_dir, path.name, part_schema, schema, job)
        else:
            try:
                segment = read_segment_table(path, current)
            except FileNotFoundError:
                continue  # published by a live run meanwhile (a dry run takes no lock)
            check_journal_job(out_dir, segment, job.name)
            if schema is not None:
                check_types(out_dir, f"{WAL_DIR}/{path.name}", segment.schema, schema, job)
            table = segment.table.select(LEDGER_COLUMNS)
            journal_rows += table.num_rows
        tables.append(_this_jobs_rows(table, job.fingerprint))
    rows = pa.concat_tables(tables) if tables else _this_jobs_rows(_empty(LEDGER_COLUMNS), job.fingerprint)
    return ledger_from_rows(job.fingerprint, rows, journal_rows=journal_rows)
