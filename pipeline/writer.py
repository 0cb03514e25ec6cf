"""The writer: finished rows appended durably, then published as Parquet parts, exactly once.

Design. Every finished row is first appended to a write-ahead journal (`_wal/<run>-<seq>.jsonl`,
one JSON line, flushed to the OS at once). A process killed with SIGKILL loses no finished row: the
OS has the bytes. Each segment opens with a header naming the job, its fingerprint and the exact
Arrow schema of its rows (`journal.py`), so a segment is only ever published under the schema it
was written with, whatever the run that recovers it would write (`recovery.py`).

A part is published from a segment when the segment holds `flush_rows` rows, or when its oldest
row has waited `flush_s` seconds; that wait then doubles for the rest of the run, up to
`max_flush_s` (30 s, 1, 2, 4, 8 minutes, then every 10). The journal already makes rows durable,
so publishing only decides when a reader sees them: a run's first rows show within 30 s, and a
slow, rate-limited run makes a part every ten minutes instead of a part of a handful of rows every
30 s. A part is written to a temporary name and renamed, so it is either whole or absent; then the
segment is deleted. A part and its segment share `<run>-<seq>`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Protocol

import pyarrow as pa

from .journal import WAL_DIR, encode_header, encode_row
from .parts import Parts, journal_header, rows_table, write_part

__all__ = ["DEFAULT_FLUSH_ROWS", "DEFAULT_FLUSH_S", "DEFAULT_MAX_FLUSH_S", "ResultWriter", "RowSink"]

DEFAULT_FLUSH_ROWS = 1000
DEFAULT_FLUSH_S = 30.0
DEFAULT_MAX_FLUSH_S = 600.0


class RowSink(Protocol):
    """Where an executor hands finished rows: the `ResultWriter`, or a Ray actor's batch on its way to the
    driver's writer (`ray_stages.py`). `out_dir` holds what the executor keeps beside rows (pieces, uploads)."""

    @property
    def out_dir(self) -> Path: ...

    def add(self, row: dict[str, Any]) -> None: ...


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
        parts: Parts | None = None,
    ) -> None:
        self.out_dir = out_dir
        self.parts: Parts = out_dir if parts is None else parts  # where parts go: here, or object storage
        self.schema = schema
        self.run_id = run_id
        self.flush_rows = flush_rows
        self.flush_s = flush_s
        self.max_flush_s = max(max_flush_s, flush_s)
        self.rows_written = 0
        self._clock = clock
        self._wait_s = flush_s  # how long a row may wait for its part; doubles at each timed publish
        self._header = encode_header(journal_header(schema))
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
        if self._pending is not None and self._pending.done() and self._pending.exception() is not None:
            self._wait()  # a part could not be published: stop now (this row is safe in the journal)
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
        self._pending = self._publisher.submit(
            _publish, self.out_dir, self.parts, self._segment_name(), rows, self.schema
        )
        if previous is not None:
            previous.result()

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()


def _publish(out_dir: Path, parts: Parts, name: str, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
    """A closed segment's rows as a part file; then the segment goes (see the module docstring)."""
    if rows:
        write_part(parts, name, rows_table(rows, schema))
    (out_dir / WAL_DIR / f"{name}.jsonl").unlink()
