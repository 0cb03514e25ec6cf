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

import binascii
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
from .parts import LEDGER_COLUMNS, PART_PREFIX, Part, Parts, check_types, part_files, read_part
from .recovery import check_journal_job, read_segment_table

__all__ = ["DoneLedger", "load_ledger"]

HASH_CHUNK_ROWS = 1 << 16  # keys turned into Python strings at a time while the index is built
_DONE_COLUMNS = ("doc_id", "doc_sha256", "source_size", "source_mtime_ns")
_ERROR_COLUMNS = ("doc_id", "error_type", "error_message")
_LAST = pc.ScalarAggregateOptions(skip_nulls=False)  # the latest row's value, null or not
_KINDS = {"source_size": pa.int64(), "source_mtime_ns": pa.int64(), "seq": pa.int64()}


def _hashes(values: Sequence[str] | pa.Array) -> np.ndarray[Any, np.dtype[np.int64]]:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        out = np.empty(len(values), dtype=np.int64)
        for start in range(0, len(values), HASH_CHUNK_ROWS):
            chunk = values.slice(start, HASH_CHUNK_ROWS).to_pylist()
            out[start : start + len(chunk)] = np.fromiter(map(hash, chunk), dtype=np.int64, count=len(chunk))
        return out
    return np.fromiter(map(hash, values), dtype=np.int64, count=len(values))


_HEX_TEXT = b"0123456789abcdef"
_HEX_DIGITS = np.frombuffer(_HEX_TEXT, dtype=np.uint8)
DIGEST = pa.binary(32)


def _digests(hexes: pa.Array) -> pa.Array | None:
    """SHA-256 hex digests as their 32 bytes (half the memory), or None when one value is not such a digest.

    Nulls stay null. A value of another form (a test's "sha-1", an upper-case digest) can never equal
    a digest computed here; the ledger then keeps the strings as they are.
    """
    valid = hexes.is_valid()
    whole = pc.fill_null(hexes, "0" * 64) if hexes.null_count else hexes
    if not pc.all(pc.equal(pc.binary_length(whole), 64)).as_py() and len(whole):
        return None
    offsets = np.frombuffer(whole.buffers()[1], dtype=np.int32)[whole.offset : whole.offset + len(whole) + 1]
    text = bytes(memoryview(whole.buffers()[2])[offsets[0] : offsets[-1]]) if len(whole) else b""
    if text.translate(None, _HEX_TEXT):  # a character that is no lower-case hex digit
        return None
    digests = pa.FixedSizeBinaryArray.from_buffers(DIGEST, len(whole), [None, pa.py_buffer(binascii.unhexlify(text))])
    return pc.if_else(valid, digests, pa.scalar(None, DIGEST)) if hexes.null_count else digests


def _hexes(digests: pa.Array | pa.ChunkedArray) -> pa.Array:
    """32-byte digests back to lower-case hex text: to compare with a digest computed here, or to show."""
    if isinstance(digests, pa.ChunkedArray):
        digests = digests.combine_chunks()
    whole = pc.fill_null(digests, pa.scalar(b"\0" * 32, DIGEST)) if digests.null_count else digests
    start = whole.offset * 32
    raw = np.frombuffer(whole.buffers()[1], dtype=np.uint8)[start : start + 32 * len(whole)].reshape(-1, 32)
    text = np.empty((len(raw), 64), dtype=np.uint8)
    text[:, 0::2], text[:, 1::2] = _HEX_DIGITS[raw >> 4], _HEX_DIGITS[raw & 15]
    offsets = pa.py_buffer(np.arange(0, 64 * len(raw) + 1, 64, dtype=np.int32).tobytes())
    strings = pa.StringArray.from_buffers(len(raw), offsets, pa.py_buffer(text.tobytes()))
    return pc.if_else(digests.is_valid(), strings, pa.scalar(None, pa.string()))


class _KeyIndex:
    """Unique string keys -> their row: sorted 64-bit hashes, searched in bulk, confirmed on the keys."""

    def __init__(self, keys: pa.ChunkedArray) -> None:
        self.keys = keys.combine_chunks()
        hashes = _hashes(self.keys)
        self.rows = np.argsort(hashes, kind="stable")
        self.hashes = hashes[self.rows]

    def __len__(self) -> int:
        return len(self.keys)

    def __reduce__(self) -> tuple[type[_KeyIndex], tuple[pa.ChunkedArray]]:
        """Pickled as its keys alone: `hash()` of a str is keyed per process (PYTHONHASHSEED), so a ledger sent
        to another process (a Ray worker) rebuilds its hashes there, or it would find nothing."""
        return (_KeyIndex, (pa.chunked_array([self.keys]),))

    def maybe_repeated(self) -> bool:
        """Whether two keys share a hash: the same key twice, or (rarely) two keys of one hash."""
        return bool(len(self) > 1 and np.any(self.hashes[1:] == self.hashes[:-1]))

    def find(self, doc_ids: Sequence[str]) -> np.ndarray[Any, np.dtype[np.int64]]:
        """The row of each id, or -1."""
        found = np.full(len(doc_ids), -1, dtype=np.int64)
        if not len(self) or not doc_ids:
            return found
        wanted = _hashes(doc_ids)
        order = np.argsort(wanted)  # needles in order: each binary search starts where the last ended, in cache
        slots = np.empty(len(wanted), dtype=np.int64)
        slots[order] = np.minimum(np.searchsorted(self.hashes, wanted[order]), len(self) - 1)
        hits = np.flatnonzero(self.hashes[slots] == wanted)
        if not len(hits):
            return found
        rows = self.rows[slots[hits]]
        same = pc.equal(self.keys.take(pa.array(rows)), pa.array([doc_ids[i] for i in hits.tolist()], pa.string()))
        confirmed = pc.fill_null(same, False).to_numpy(zero_copy_only=False)
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
        self,
        fingerprint: str,
        done: pa.Table | None = None,
        errors: pa.Table | None = None,
        *,
        journal_rows: int = 0,
        index: _KeyIndex | None = None,
    ) -> None:
        """`done` and `errors` hold one row per document, each column in one chunk; `index` is `done`'s, if built."""
        self.fingerprint = fingerprint
        self.journal_rows = journal_rows  # rows found in the journal, not yet published
        self._done = (done if done is not None else _empty(_DONE_COLUMNS)).combine_chunks()
        self._errors = (errors if errors is not None else _empty(_ERROR_COLUMNS)).combine_chunks()
        self._done_index = index if index is not None else _KeyIndex(self._done.column("doc_id"))
        self._error_index = _KeyIndex(self._errors.column("doc_id"))

    def __len__(self) -> int:
        return len(self._done_index)

    @property
    def done(self) -> dict[str, tuple[str, int | None, int | None]]:
        """doc_id -> (content hash, size, mtime), as a dict: for inspection and tests, never on a run's path."""
        hashes = self._done.column("doc_sha256")
        hashes = _hexes(hashes) if hashes.type == DIGEST else hashes
        columns = [hashes if name == "doc_sha256" else self._done.column(name) for name in _DONE_COLUMNS]
        doc_ids, *values = [column.to_pylist() for column in columns]
        return dict(zip(doc_ids, zip(*values, strict=True), strict=True))

    @property
    def errors(self) -> dict[str, tuple[str | None, str | None]]:
        """doc_id -> (error type, message) of each document whose latest row is an error."""
        columns = [self._errors.column(name).to_pylist() for name in _ERROR_COLUMNS]
        return {doc_id: (kind, message) for doc_id, kind, message in zip(*columns, strict=True)}

    def is_done(self, doc_id: str, sha256: str) -> bool:
        row = self._done_index.find_one(doc_id)
        if row < 0:
            return False
        stored = self._done.column("doc_sha256")[row].as_py()
        return (stored.hex() if isinstance(stored, bytes) else stored) == sha256

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
        return self._matches(doc_ids, {"doc_sha256": (sha256s, pa.string())}).tolist()  # type: ignore[no-any-return]

    def are_done_digests(self, doc_ids: Sequence[str], digests: Sequence[bytes]) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """`are_done` for SHA-256 digests as bytes (what a batch computes): compared as bytes when the ledger can."""
        if self._done.schema.field("doc_sha256").type == DIGEST:
            return self._matches(doc_ids, {"doc_sha256": (digests, DIGEST)})
        return self._matches(doc_ids, {"doc_sha256": ([digest.hex() for digest in digests], pa.string())})

    def unchanged_files(self, doc_ids: Sequence[str], sizes: Sequence[int], mtimes_ns: Sequence[int]) -> list[bool]:
        """`unchanged_file` for a batch."""
        wanted = {"source_size": (sizes, pa.int64()), "source_mtime_ns": (mtimes_ns, pa.int64())}
        return self._matches(doc_ids, wanted).tolist()  # type: ignore[no-any-return]

    def _matches(
        self, doc_ids: Sequence[str], wanted: dict[str, tuple[Sequence[Any], pa.DataType]]
    ) -> np.ndarray[Any, np.dtype[np.bool_]]:
        rows = self._done_index.find(doc_ids)
        result = np.zeros(len(doc_ids), dtype=bool)
        hits = np.flatnonzero(rows >= 0)
        if len(hits):
            taken = pa.array(rows[hits])
            picked = pa.array(hits)
            same = None
            for column, (values, kind) in wanted.items():
                stored = self._done.column(column).take(taken)
                if stored.type == DIGEST and kind != DIGEST:
                    stored = _hexes(stored)
                elif stored.type != kind:
                    stored = stored.cast(kind)  # a column of nulls
                equal = pc.equal(stored, pa.array(values, kind).take(picked))
                same = equal if same is None else pc.and_(same, equal)
            assert same is not None
            result[hits] = pc.fill_null(same, False).to_numpy(zero_copy_only=False)
        return result


def _empty(columns: Sequence[str]) -> pa.Table:
    # Not from empty lists: pyarrow imports pandas (about 0.2 s) the first time it converts any
    # Python value, to ask whether it is a pandas object, and this runs before the first request.
    return pa.table({name: pa.nulls(0, _KINDS.get(name, pa.string())) for name in columns})


class _Rows:
    """This fingerprint's rows, gathered in the order they were written: answers and errors apart.

    Each row keeps its position (`seq`), so that the latest row per document can be told when
    answers and errors are looked at apart.
    """

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.answers: list[pa.Table] = []  # the ok rows: the done columns and seq
        self.failures: list[pa.Table] = []  # the error rows: the error columns and seq
        self.seen = 0
        self.text_hashes = False

    def add(self, table: pa.Table) -> None:
        """Take in a table of rows written after every table taken so far."""
        status = table.column("status")
        if pa.types.is_dictionary(status.type):
            status = status.cast(pa.string())
        this_job = pc.equal(table.column("job_fingerprint"), self.fingerprint)
        seq = pa.array(np.arange(self.seen, self.seen + table.num_rows, dtype=np.int64))
        self.seen += table.num_rows
        table = table.append_column("seq", seq)
        ok = pc.and_(this_job, pc.equal(status, "ok"))
        answers = table.filter(ok).select([*_DONE_COLUMNS, "seq"])
        if answers.num_rows:
            self.answers.append(self._compact(answers))
        failed = pc.and_(this_job, pc.equal(status, "error"))
        if pc.any(failed).as_py():
            self.failures.append(table.filter(failed).select([*_ERROR_COLUMNS, "seq"]))

    def _compact(self, answers: pa.Table) -> pa.Table:
        """Hashes as 32 bytes when they are all digests, a column of nulls (no file sizes: inline text) as no data."""
        digests = _digests(answers.column("doc_sha256").combine_chunks())
        if digests is None:
            self.text_hashes = True
        else:
            answers = answers.set_column(1, "doc_sha256", digests)
        for index, name in enumerate(_DONE_COLUMNS):
            if name.startswith("source_") and answers.column(name).null_count == answers.num_rows:
                answers = answers.set_column(index, name, pa.nulls(answers.num_rows))
        return answers

    def ledger(self, *, journal_rows: int) -> DoneLedger:
        """The latest answer per document, and the documents whose latest row is an error."""
        if self.text_hashes:  # one part's hashes are not digests: all are kept as text
            for position, answers in enumerate(self.answers):
                if answers.schema.field("doc_sha256").type == DIGEST:
                    hexes = _hexes(answers.column("doc_sha256"))
                    self.answers[position] = answers.set_column(1, "doc_sha256", hexes)
        done = _one_chunk(self.answers) if self.answers else _empty([*_DONE_COLUMNS, "seq"])
        index = _KeyIndex(done.column("doc_id"))
        if index.maybe_repeated():  # answered more than once: the last answer counts
            done = _last_per_document(done, [*_DONE_COLUMNS[1:], "seq"])
            index = _KeyIndex(done.column("doc_id"))
        errors = _empty(_ERROR_COLUMNS)
        if self.failures:
            latest = _last_per_document(pa.concat_tables(self.failures), [*_ERROR_COLUMNS[1:], "seq"])
            answered = index.find(latest.column("doc_id").to_pylist())
            answer_seq = done.column("seq").to_numpy()[np.maximum(answered, 0)] if len(done) else answered
            standing = (answered < 0) | (latest.column("seq").to_numpy() > answer_seq)
            errors = latest.filter(pa.array(standing)).select(list(_ERROR_COLUMNS))
        return DoneLedger(self.fingerprint, done.drop_columns(["seq"]), errors, journal_rows=journal_rows, index=index)


def _one_chunk(tables: list[pa.Table]) -> pa.Table:
    """The tables as one, each column in one chunk (a take across chunks copies them all, at every take).

    Column by column, each letting go of its pieces once copied: the peak is the total plus one
    column, not twice the total. Empties `tables`.
    """
    table = pa.concat_tables(tables, promote_options="default")  # a column of nulls takes the others' type
    tables.clear()
    columns: dict[str, pa.Array] = {}
    for name in table.column_names:
        columns[name] = table.column(name).combine_chunks()
        table = table.drop_columns([name])
    return pa.table(columns)


def _last_per_document(rows: pa.Table, columns: Sequence[str]) -> pa.Table:
    """The last row of each doc_id (rows are in the order they were written), one chunk per column."""
    grouped = rows.group_by("doc_id", use_threads=False).aggregate([(name, "last", _LAST) for name in columns])
    last = {name: grouped.column(f"{name}_last") for name in columns}
    return pa.table({"doc_id": grouped.column("doc_id"), **last}).combine_chunks()


def load_ledger(out_dir: Path, job: Job, *, schema: pa.Schema | None = None, parts: Parts | None = None) -> DoneLedger:
    """The done ledger of `job` in `out_dir`, from its parts (in `parts` when they live in object storage)
    and its journal; reads, never writes.

    Refuses, before a run touches anything: a directory that holds another job's rows, in a part or
    in the journal (`ConfigError`); with `schema` (what this run will write), a column whose type it
    would change (`ConfigError`); a corrupt or foreign part (`EnvironmentFailure`).
    """
    parts = out_dir if parts is None else parts
    if not out_dir.is_dir() and isinstance(parts, Path):
        return DoneLedger(job.fingerprint)
    current = schema if schema is not None else output_schema(job)
    sources: list[tuple[str, Part]] = [(part.stem.removeprefix(PART_PREFIX), part) for part in part_files(parts)]
    published = {name for name, _ in sources}
    sources += [(path.stem, path) for path in segment_paths(out_dir) if path.stem not in published]
    rows = _Rows(job.fingerprint)
    journal_rows = 0
    for _, path in sorted(sources):
        if path.suffix == ".parquet":
            part_schema, table = read_part(parts, path, LEDGER_COLUMNS)
            assert table is not None
            jobs = set(table.column("job").unique().to_pylist())
            if jobs - {job.name}:
                raise ConfigError(
                    f"{parts} holds results of job {sorted(jobs - {job.name})[0]!r}, not {job.name!r}; "
                    "give each job its own --out directory"
                )
            if schema is not None:
                check_types(parts, path.name, part_schema, schema, job)
        else:
            assert isinstance(path, Path)
            try:
                segment = read_segment_table(path, current)
            except FileNotFoundError:
                continue  # published by a live run meanwhile (a dry run takes no lock)
            check_journal_job(out_dir, segment, job.name)
            if schema is not None:
                check_types(out_dir, f"{WAL_DIR}/{path.name}", segment.schema, schema, job)
            table = segment.table.select(LEDGER_COLUMNS)
            journal_rows += table.num_rows
        rows.add(table)
        del table
        # Hand the reader's scratch memory back at once: kept by the allocator, each part's added
        # tens of megabytes to the peak, and the run that follows allocates Python objects.
        pa.default_memory_pool().release_unused()
    ledger = rows.ledger(journal_rows=journal_rows)
    pa.default_memory_pool().release_unused()
    return ledger
