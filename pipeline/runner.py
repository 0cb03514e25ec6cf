"""The job runner: documents in, bounded concurrent API calls, one row per document out.

Design. One preparation thread walks the input lazily (a folder or a manifest of any size), extracts
each document's text, hashes it and checks the done ledger; only documents that need work cross into
the event loop, through a bounded queue, so memory stays flat however long the input is. A pool of
`2 x concurrency` workers takes from the queue; every request passes the shared `RateLimiter` and
the one retry layer, and every finished document, ok or error, is handed to the `ResultWriter` at
once. The limiter's `concurrency` slots bound the requests in flight; the second half of the pool
keeps them busy while documents sleep out a `retry-after` or a backoff, which hold a worker, not a
slot. Documents in hand stay bounded: the workers' and the queue's.

Stopping. A fatal error (bad key, spend limit, unknown model) stops the run within seconds: the
queue is drained, in-flight requests are cancelled, finished rows are kept. So does an API that
gives no HTTP response at all for `unreachable_s` (`DOCPIPE_UNREACHABLE_S`, 60 s): from the first
failure to connect of an unbroken streak, with no response in between (see `limits.py`), the
documents still in hand are not written as error rows, and the next run sends them. SIGINT or
SIGTERM stops taking documents and lets requests in flight finish for `grace_s` seconds before
abandoning them; a second signal stops at once. Either way every finished row is flushed, and the
next run resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .api import ApiClient, ApiResponse
from .config import RunConfig
from .descriptors import descriptors_needed, reserve_descriptors
from .errors import (
    EXIT_DOCUMENT_ERRORS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    DocumentError,
    EnvironmentFailure,
    ExtractionError,
    FatalRunError,
    ManifestError,
    PipelineError,
    RequestError,
    ResponseError,
    TransientError,
)
from .extract import extract_text
from .jobs import Job
from .journal import JournalDamage
from .limits import RateLimiter
from .lock import OutputLock
from .output import DoneLedger, ResultWriter, load_ledger, metadata_column_names, output_schema, recover
from .pricing import TokenUsage, cost_usd
from .progress import Progress, Tally, make_progress
from .requests import (
    build_params,
    estimate_document_tokens,
    estimate_prefix_tokens,
    estimate_tokens,
    fit_document,
    parse_answer,
    should_stream,
    system_prompt,
)
from .retry import with_retries
from .sources import DocumentRef, manifest_metadata_columns, open_source

__all__ = ["RunSummary", "run"]

RUNS_DIR = "_runs"
OFFLINE_API_KEY = "sk-docpipe-offline"
POOL_MARGIN = 8  # connections beyond --concurrency: a slow close need not hold up the next request
JOURNAL_DAMAGE_LISTED = 20  # damaged journal lines named in the summary; all are counted
WORKERS_PER_SLOT = 2  # documents in hand per request in flight: the spare ones cover documents waiting to retry
_DONE = object()


@dataclass
class RunSummary:
    """What a run did, for people (printed) and monitoring (`<out>/_runs/<run_id>.json`)."""

    run_id: str
    job: str
    job_fingerprint: str
    backend: str
    started_at: str
    wall_s: float = 0.0
    documents: int = 0
    ok: int = 0
    errors: int = 0
    already_done: int = 0
    errors_unchanged: int = 0  # manifest rows failing as the last run recorded: still in error, not written again
    errors_by_type: dict[str, int] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    requests_sent: int = 0
    retries: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    rate_limit_pauses: int = 0
    concurrency_decreases: int = 0
    recovered_rows: int = 0
    journal_damaged_lines: int = 0  # journal lines recovery could not read (the first are in journal_damage)
    journal_damage: list[str] = field(default_factory=list)  # "<segment> line <n>: <why>"
    journal_quarantined: list[str] = field(default_factory=list)  # segments moved to _wal/quarantine/
    skipped_files: dict[str, int] = field(default_factory=dict)  # folder files not of a document type, by extension
    stopped: str | None = None  # "fatal", "environment", "interrupted" or None
    fatal_error: str | None = None
    exit_code: int = EXIT_OK
    saved_to: str | None = None  # where this summary was saved, None when the disk refused it
    unsaved_reason: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def describe(self) -> str:
        lines = [
            f"docpipe: run {self.run_id} of job {self.job!r} ({self.backend}) "
            f"{'stopped: ' + self.stopped if self.stopped else 'finished'} in {self.wall_s:.1f} s",
            f"  documents: {self.documents} seen, {self.ok} ok, {self.errors} errors, {self.already_done} already done"
            + (f", {self.errors_unchanged} errors unchanged (not written again)" if self.errors_unchanged else ""),
            f"  tokens: {self.input_tokens:,} input, {self.output_tokens:,} output, {self.cache_read_tokens:,} "
            f"cache read, {self.cache_write_tokens:,} cache write; cost ${self.cost_usd:.4f}",
            f"  requests: {self.requests_sent} sent, {self.retries} retried; latency p50 "
            f"{_ms(self.latency_p50_ms)}, p95 {_ms(self.latency_p95_ms)}",
        ]
        if self.errors_by_type:
            kinds = ", ".join(f"{kind}: {count}" for kind, count in sorted(self.errors_by_type.items()))
            lines.append(f"  errors by type: {kinds}")
        if self.skipped_files:
            lines.append(f"  {skipped_line(self.skipped_files)}")
        if self.recovered_rows:
            lines.append(f"  recovered {self.recovered_rows} rows from the journal of an interrupted run")
        if self.journal_damaged_lines:
            lines += [f"  {damage_line(self.journal_damaged_lines, self.journal_quarantined)}"]
            lines += [f"    {damage}" for damage in self.journal_damage]
        if self.saved_to is None and self.unsaved_reason:
            lines.append(f"  this summary could not be saved: {self.unsaved_reason}")
        return "\n".join(lines)


def skipped_line(skipped: Mapping[str, int]) -> str:
    """The files a folder walk left out for their type, and how to take them."""
    total = sum(skipped.values())
    kinds = ", ".join(f"{suffix}: {count}" for suffix, count in sorted(skipped.items()))
    files = f"{total} file{'s' if total != 1 else ''}"
    return f"skipped {files} docpipe does not read ({kinds}); --include takes a file of another type anyway"


def journal_line(rows: int) -> str:
    """What a dry run counted from the journal of an interrupted run (the next run publishes it)."""
    counted = f"{rows} row{'s' if rows != 1 else ''}"
    return f"{counted} in the journal of an interrupted run counted as written (the next run publishes them)"


def unchanged_line(errors: int) -> str:
    """Manifest rows that fail exactly as their last recorded row says."""
    counted = f"{errors} error{'s' if errors != 1 else ''}"
    return f"{counted} unchanged since last recorded (same manifest row, same job): not written again"


def damage_line(damaged_lines: int, quarantined: list[str]) -> str:
    """What recovery could not read, and where the damaged segments are kept."""
    segments = ", ".join(quarantined)
    return (
        f"journal: {damaged_lines} damaged line{'s' if damaged_lines != 1 else ''} could not be recovered "
        f"(the other lines were); kept for inspection in _wal/quarantine/: {segments}"
    )


def _report_damage(summary: RunSummary, damaged: list[JournalDamage]) -> None:
    """Journal damage goes into the summary and, at once, to stderr: a person should look."""
    summary.journal_damaged_lines = len(damaged)
    summary.journal_damage = [str(damage) for damage in damaged[:JOURNAL_DAMAGE_LISTED]]
    summary.journal_quarantined = sorted({damage.segment for damage in damaged})
    print(f"docpipe: warning: {damage_line(len(damaged), summary.journal_quarantined)}", file=sys.stderr)
    for damage in summary.journal_damage:
        print(f"docpipe: warning:   {damage}", file=sys.stderr)
    if len(damaged) > JOURNAL_DAMAGE_LISTED:
        print(f"docpipe: warning:   ... and {len(damaged) - JOURNAL_DAMAGE_LISTED} more", file=sys.stderr)


def _row_determined(error: DocumentError) -> bool:
    """Whether a ref's error follows from its manifest row and the job alone (see sources.py).

    A malformed row, a missing, bad or duplicate id, a column of the wrong type fail the same way
    until the manifest changes; a file that cannot be reached (an `ExtractionError`) may appear.
    """
    return not isinstance(error, ExtractionError)


def _ms(value: float | None) -> str:
    return f"{value:.0f} ms" if value is not None else "n/a"


@dataclass(slots=True)
class _Work:
    """A document ready for the API, or already failed before it."""

    ref: DocumentRef
    text: str | None = None
    sha256: str | None = None
    truncated: bool = False
    size: int | None = None
    mtime_ns: int | None = None
    error: DocumentError | None = None


@dataclass(slots=True)
class _Tracker:
    """What one document's attempts have cost so far."""

    attempts: int = 0
    spent: TokenUsage = field(default_factory=TokenUsage)
    request_id: str | None = None
    unreachable: bool = False  # the last attempt was sent to an API already unreachable: not the document's failure


class _NotSent(Exception):
    """A document admitted after a fatal error or a stop: no request, no row; the next run sends it."""


def new_run_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


class _Preparer:
    """Turns document refs into work, skipping what the ledger has (runs in its own thread)."""

    def __init__(self, job: Job, ledger: DoneLedger) -> None:
        self.job = job
        self.ledger = ledger
        self.already_done = 0
        self.errors_unchanged = 0

    @property
    def skipped(self) -> int:
        """Documents that need no new row: already done, or failing as already recorded."""
        return self.already_done + self.errors_unchanged

    def prepare(self, ref: DocumentRef) -> _Work | None:
        if ref.error is not None:
            error = ref.error
            if _row_determined(error) and self.ledger.same_error(ref.doc_id, error.error_type, error.message):
                self.errors_unchanged += 1
                return None
            return _Work(ref, error=error)
        size = mtime_ns = None
        if ref.path is not None:
            try:
                stat = ref.path.stat()
                size, mtime_ns = stat.st_size, stat.st_mtime_ns
            except OSError:
                pass  # extract_text reports it with a proper message
            if size is not None and mtime_ns is not None and self.ledger.unchanged_file(ref.doc_id, size, mtime_ns):
                self.already_done += 1
                return None
        try:
            text = ref.text if ref.text is not None else extract_text(ref.path, document_id=ref.doc_id)  # type: ignore[arg-type]
        except ExtractionError as exc:
            return _Work(ref, size=size, mtime_ns=mtime_ns, error=exc)
        content = text if isinstance(text, str) else text.text
        if not content.strip():
            return _Work(ref, error=ExtractionError("empty document", document_id=ref.doc_id, path=ref.source))
        sha256 = hashlib.sha256(content.encode("utf-8")).hexdigest()
        if self.ledger.is_done(ref.doc_id, sha256):
            self.already_done += 1
            return None
        fitted, truncated = fit_document(content, self.job)
        if truncated and self.job.too_long == "error":
            error = ExtractionError(
                f"document too long: about {estimate_tokens(content):,} tokens, over job.max_document_tokens "
                f'= {self.job.max_document_tokens:,}; set too_long = "truncate" or raise max_document_tokens',
                document_id=ref.doc_id,
                path=ref.source,
            )
            error.error_type = "document_too_long"
            return _Work(ref, sha256=sha256, size=size, mtime_ns=mtime_ns, error=error)
        return _Work(ref, fitted, sha256, truncated, size, mtime_ns)


class _Run:
    """One run's state: config, collaborators, tallies."""

    def __init__(
        self,
        config: RunConfig,
        client: ApiClient,
        limiter: RateLimiter,
        writer: ResultWriter,
        ledger: DoneLedger,
        progress: Progress,
        summary: RunSummary,
    ) -> None:
        self.config = config
        self.job = config.job
        self.client = client
        self.limiter = limiter
        self.writer = writer
        self.progress = progress
        self.summary = summary
        self.preparer = _Preparer(config.job, ledger)
        self.system = system_prompt(config.job)
        self.schema = config.job.output_schema()  # one dict shared by every request: nothing may mutate params
        self.fingerprint = config.job.fingerprint
        self.prefix_estimate = estimate_prefix_tokens(self.system, self.schema)
        self.stream = should_stream(config.job)
        self.metadata_columns: dict[str, str] = {}  # manifest column -> output column, filled as seen
        self.tally = Tally()
        self.latencies_ms: list[float] = []
        self.errors_by_type: Counter[str] = Counter()
        self.stop_taking = threading.Event()
        self.fatal: FatalRunError | EnvironmentFailure | None = None
        self.connection_failure: str | None = None  # the last request's failure to connect, for the fatal message

    # -- rows -----------------------------------------------------------------------------------

    def _base_row(self, work: _Work) -> dict[str, Any]:
        row: dict[str, Any] = {
            "doc_id": work.ref.doc_id,
            "source": work.ref.source,
            "doc_sha256": work.sha256,
            "job": self.job.name,
            "job_fingerprint": self.fingerprint,
            "run_id": self.summary.run_id,
            "backend": self.config.backend,
            "created_at": datetime.now(UTC),
            "truncated": work.truncated,
            "source_size": work.size,
            "source_mtime_ns": work.mtime_ns,
            "model": self.job.model,
        }
        for name, value in work.ref.metadata.items():
            column = self.metadata_columns.get(name)
            if column is None:
                column = self.metadata_columns[name] = metadata_column_names([name], self.job)[name]
            row[column] = value
        return row

    def _record(self, row: dict[str, Any], usage: TokenUsage, cost: float | None) -> None:
        try:
            self.writer.add(row)
        except OSError as exc:  # a full disk, a file system gone read-only: no row can be kept now
            raise EnvironmentFailure.from_os_error(
                exc, doing="record a finished row in", path=self.writer.out_dir
            ) from None
        self.summary.documents += 1
        self.tally.done += 1
        self.summary.input_tokens += usage.input_tokens
        self.summary.output_tokens += usage.output_tokens
        self.summary.cache_read_tokens += usage.cache_read_tokens
        self.summary.cache_write_tokens += usage.cache_write_tokens
        self.summary.cost_usd += cost or 0.0
        self.tally.tokens += usage.prompt_tokens + usage.output_tokens
        self.tally.cost_usd = self.summary.cost_usd
        if row["status"] == "ok":
            self.summary.ok += 1
            self.tally.ok += 1
        else:
            self.summary.errors += 1
            self.tally.errors += 1
            self.errors_by_type[str(row["error_type"])] += 1
        self.progress.update(self.tally)

    def record_error(
        self,
        work: _Work,
        error: DocumentError,
        *,
        usage: TokenUsage | None = None,
        attempts: int = 0,
        streamed: bool | None = None,
    ) -> None:
        usage = usage or TokenUsage()
        cost = cost_usd(self.job.model, usage) if usage.prompt_tokens or usage.output_tokens else None
        row = self._base_row(work) | {
            "status": "error",
            "error_type": getattr(error, "error_type", "document_error"),
            "error_message": error.message,
            "request_id": error.request_id,
            "attempts": attempts,
            "streamed": streamed,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "cost_usd": cost,
        }
        self._record(row, usage, cost)

    # -- one document ---------------------------------------------------------------------------

    async def process(self, work: _Work) -> None:
        if work.error is not None:
            self.record_error(work, work.error)
            return
        assert work.text is not None
        doc_id = work.ref.doc_id
        params = build_params(self.job, doc_id, work.text, system=self.system, schema=self.schema)
        estimate = self.prefix_estimate + estimate_document_tokens(doc_id, work.text)
        tracker = _Tracker()

        async def attempt(number: int) -> tuple[ApiResponse, Any, float]:
            permit = await self.limiter.acquire(estimate, self.job.max_tokens, retry=number > 1)
            # Nothing is sent after a fatal error, and no document is started after a stop: the next run sends it.
            if self.fatal is not None or (number == 1 and self.stop_taking.is_set()):
                self.limiter.release(permit)
                raise _NotSent(doc_id)
            tracker.attempts = number
            tracker.unreachable = False
            self.summary.requests_sent += 1
            if number > 1:
                self.summary.retries += 1
            started = time.perf_counter()
            try:
                response = await self.client.create(
                    params, stream=self.stream, timeout_s=self.job.timeout_s, document_id=doc_id
                )
            except TransientError as exc:
                self.limiter.release(permit)
                tracker.request_id = exc.request_id
                if exc.no_response:
                    tracker.unreachable = self.limiter.connection_failed(permit)
                    self.connection_failure = exc.message
                else:
                    self.limiter.responded()
                if exc.status == 429:
                    self.limiter.rate_limited(exc.retry_after_s, headers=exc.rate_limit_headers, permit=permit)
                elif exc.status == 529 or exc.error_type == "overloaded_error":
                    self.limiter.overloaded()
                raise
            except BaseException as exc:
                self.limiter.release(permit)
                if isinstance(exc, RequestError):
                    self.limiter.responded()
                    tracker.request_id = exc.request_id
                raise
            latency_ms = (time.perf_counter() - started) * 1000.0
            usage = TokenUsage.from_usage(response.message.get("usage") or {})
            self.limiter.release(
                permit,
                counted_input_tokens=usage.input_tokens + usage.cache_write_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                output_tokens=usage.output_tokens,
            )
            self.limiter.succeeded()
            tracker.spent = _add(tracker.spent, usage)
            tracker.request_id = response.request_id
            answer = parse_answer(self.job, response.message, document_id=doc_id, request_id=response.request_id)
            return response, answer, latency_ms

        try:
            (response, answer, latency_ms), attempts = await with_retries(
                attempt,
                settings=self.job.retry,
                schema_retries=self.job.schema_retries,
                spends_attempt=lambda failure: not tracker.unreachable,
            )
        except (RequestError, ResponseError) as exc:
            exc.request_id = exc.request_id or tracker.request_id
            self.record_error(work, exc, usage=tracker.spent, attempts=tracker.attempts, streamed=self.stream)
            return
        except _NotSent:
            return
        usage = tracker.spent
        cost = cost_usd(self.job.model, usage)
        message = response.message
        row = (
            self._base_row(work)
            | answer.values
            | {
                "status": "ok",
                "model": message.get("model") or self.job.model,
                "stop_reason": message.get("stop_reason"),
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_read_tokens": usage.cache_read_tokens,
                "cache_write_tokens": usage.cache_write_tokens,
                "cost_usd": cost,
                "latency_ms": round(latency_ms, 1),
                "attempts": attempts,
                "request_id": response.request_id,
                "streamed": response.streamed,
            }
        )
        self.latencies_ms.append(latency_ms)
        self._record(row, usage, cost)


def _add(a: TokenUsage, b: TokenUsage) -> TokenUsage:
    return TokenUsage(
        a.input_tokens + b.input_tokens,
        a.output_tokens + b.output_tokens,
        a.cache_read_tokens + b.cache_read_tokens,
        a.cache_write_5m_tokens + b.cache_write_5m_tokens,
        a.cache_write_1h_tokens + b.cache_write_1h_tokens,
    )


class _Stop:
    """Why and how the run is stopping: set from signal handlers, workers and the main task."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.reason: str | None = None
        self.signals = 0
        self.tasks: list[asyncio.Task[None]] = []

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.requested.set()

    def on_signal(self) -> None:
        self.signals += 1
        self.request("interrupted")
        if self.signals >= 2:  # a second Ctrl-C: stop now, finished rows are already safe
            for task in self.tasks:
                task.cancel()


class _Handoff:
    """The bounded queue between the preparation thread and the workers.

    The thread takes a slot (blocking while all `capacity` are taken) and hands the item over with
    `call_soon_threadsafe`, without waiting for the event loop to acknowledge it; a worker frees the
    slot when it takes the item. A round trip through the loop per document (as with
    `run_coroutine_threadsafe(queue.put(...))`) made a burst of hundreds of workers start one loop
    iteration apart.

    A thread that found the queue full sleeps until `refill` slots are free, then fills them in one
    go. Woken for every freed slot, it took the GIL from the loop at each of its system calls while
    the workers' first requests were going out, once per document.

    Once closed (`drain()`, on a stop) the handoff stays closed: every `get()` answers `_DONE`, and
    an item the thread was already handing over is dropped, so no document starts after a stop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int, refill: int = 1) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._refill = max(1, min(refill, capacity))
        self._free = capacity
        self._filling = True  # False while the thread sleeps until `refill` slots are free
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False

    def put(self, item: Any, stop_taking: threading.Event) -> bool:
        """From the thread: False when told to stop (while waiting for a slot or once it has one)."""
        with self._lock:
            while True:
                if stop_taking.is_set():
                    return False
                if self._filling and self._free > 0:
                    break
                if self._free == 0:
                    self._filling = False
                self._wake.wait(timeout=0.2)
            self._free -= 1
        return self._call(self._arrive, item)

    def finish(self) -> None:
        """From the thread: no more work (never blocks)."""
        self._call(self._arrive, _DONE)

    def _call(self, callback: Callable[[Any], None], item: Any) -> bool:
        try:
            self._loop.call_soon_threadsafe(callback, item)
        except RuntimeError:  # the loop is closed: the run is over, nobody will take it
            return False
        return True

    def _release(self) -> None:
        with self._lock:
            self._free += 1
            if not self._filling and self._free >= self._refill:
                self._filling = True
                self._wake.notify()

    def _arrive(self, item: Any) -> None:
        if not self._closed:
            self._queue.put_nowait(item)
        elif item is not _DONE:
            self._release()

    async def get(self) -> Any:
        if self._closed:
            return _DONE
        item = await self._queue.get()
        if item is _DONE:
            self._queue.put_nowait(_DONE)  # for the next worker
        else:
            self._release()
        return item

    def drain(self) -> None:
        """From the loop: drop the work not started (the next run picks it up) and end the workers."""
        self._closed = True
        dropped = 0
        while not self._queue.empty():
            if self._queue.get_nowait() is not _DONE:
                dropped += 1
        self._queue.put_nowait(_DONE)
        with self._lock:  # wake the thread whatever the count: it must see the stop and return
            self._free += dropped
            self._filling = True
            self._wake.notify()


def _produce(run: _Run, source: Iterator[DocumentRef], handoff: _Handoff, errors: list[BaseException]) -> None:
    """Preparation thread: hand work to the workers, blocking while the queue is full, until told to stop."""
    queued = 0
    read = 0
    try:
        for ref in source:
            read += 1
            if run.stop_taking.is_set():
                return
            work = run.preparer.prepare(ref)
            if work is None:
                continue
            if run.config.limit is not None and queued >= run.config.limit:
                break
            queued += 1
            if not handoff.put(work, run.stop_taking):
                return
    except (OSError, ManifestError) as exc:
        errors.append(_input_failure(run.config.input_path, exc, read))
    except BaseException as exc:  # handed to the event loop, which decides
        errors.append(exc)
    finally:
        handoff.finish()


def _input_failure(input_path: Path, exc: OSError | ManifestError, documents_read: int) -> PipelineError:
    """An input that fails once documents are under way is the environment's failure, not a usage error.

    Before the first document a bad manifest is a usage error (exit 2) as it was; after it, rows are
    paid for and written, and what remains needs a person to look at the input (exit 4).
    """
    if isinstance(exc, ManifestError):
        if documents_read == 0:
            return exc
        return EnvironmentFailure(
            f"{exc}; the input became unreadable after {documents_read} document(s): repair or replace it, "
            "then rerun: documents already done are not sent again",
            path=exc.path,
        )
    return EnvironmentFailure.from_os_error(
        exc,
        doing=f"read the input after {documents_read} document(s),",
        path=input_path,
        advice="check the input and its disk, then rerun: documents already done are not sent again",
    )


async def _worker(run: _Run, handoff: _Handoff, stop: _Stop) -> None:
    while True:
        work = await handoff.get()
        if work is _DONE:
            return
        try:
            await run.process(work)
        except (FatalRunError, EnvironmentFailure) as exc:
            run.fatal = run.fatal or exc
            stop.request("fatal" if isinstance(exc, FatalRunError) else "environment")
            return


async def _watch_reachability(run: _Run, stop: _Stop) -> None:
    """Stop the run (fatal) once every request has failed to connect for `unreachable_s`, no response in between."""
    bound_s = run.config.unreachable_s
    while (unreachable_s := run.limiter.unreachable_for_s()) < bound_s:
        await asyncio.sleep(bound_s - unreachable_s)
    run.fatal = run.fatal or FatalRunError(
        f"no response from the API at {run.client.base_url} for {unreachable_s:.0f} s: every request failed to "
        f"connect (last: {run.connection_failure}). Check ANTHROPIC_BASE_URL, the network and any proxy, then "
        "rerun: the documents not done are sent then (DOCPIPE_UNREACHABLE_S sets how long to wait)"
    )
    stop.request("fatal")


async def _ticker(run: _Run) -> None:
    while True:
        run.tally.skipped = run.preparer.skipped
        run.tally.done = run.summary.documents + run.preparer.skipped
        run.progress.update(run.tally)
        await asyncio.sleep(0.5)


def _install_signals(loop: asyncio.AbstractEventLoop, stop: _Stop) -> dict[int, Any]:
    """The run's own SIGINT/SIGTERM handlers; returns the handlers they replace, to put back after."""
    installed: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return installed
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(signum)
        try:
            loop.add_signal_handler(signum, stop.on_signal)
            installed[int(signum)] = previous
        except (NotImplementedError, RuntimeError):
            pass
    return installed


def _restore_signals(loop: asyncio.AbstractEventLoop, installed: Mapping[int, Any]) -> None:
    """Back to the handlers from before the run (the CLI's: a late signal still exits 130 cleanly)."""
    for signum, previous in installed.items():
        loop.remove_signal_handler(signum)
        if previous is not None:
            signal.signal(signum, previous)


async def _execute(run: _Run, source: Iterator[DocumentRef]) -> None:
    config = run.config
    loop = asyncio.get_running_loop()
    stop = _Stop()
    installed = _install_signals(loop, stop)
    handoff = _Handoff(loop, capacity=config.concurrency * 2, refill=config.concurrency // 4)
    producer_errors: list[BaseException] = []
    producer = threading.Thread(
        target=_produce, args=(run, source, handoff, producer_errors), name="docpipe-prepare", daemon=True
    )
    workers: list[asyncio.Task[None]] = []
    stop.tasks = workers
    ticker = asyncio.create_task(_ticker(run))
    watchdog = asyncio.create_task(_watch_reachability(run, stop))
    producer.start()
    try:
        for _ in range(config.concurrency * WORKERS_PER_SLOT):
            # One more worker per turn of the event loop: started all at once, hundreds of cold
            # requests advance in lockstep and the first reaches the wire only when the last does.
            if stop.requested.is_set():
                break
            workers.append(asyncio.create_task(_worker(run, handoff, stop)))
            await asyncio.sleep(0)
        all_done: asyncio.Future[list[Any]] = asyncio.gather(*workers, return_exceptions=True)
        stop_wait: asyncio.Future[Any] = asyncio.create_task(stop.requested.wait())
        waiters: list[asyncio.Future[Any]] = [all_done, stop_wait]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if stop.requested.is_set():
            run.stop_taking.set()
            handoff.drain()
            if stop.reason in ("fatal", "environment") or stop.signals >= 2:
                for task in workers:
                    task.cancel()
            else:
                _, pending = await asyncio.wait(workers, timeout=config.grace_s)
                for task in pending:  # past the grace period: abandon
                    task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        else:
            stop_wait.cancel()
        for result in await all_done:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result
    finally:
        run.stop_taking.set()
        ticker.cancel()
        watchdog.cancel()
        _restore_signals(loop, installed)
        await asyncio.to_thread(producer.join, 5.0)
    if producer_errors:  # a manifest that became unusable mid-run, or a bug: surface it
        raise producer_errors[0]
    run.summary.stopped = stop.reason


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 1)


def _write_summary(out_dir: Path, summary: RunSummary) -> None:
    """Save the summary as `_runs/<run_id>.json`; on a failing disk, say where it could not go instead."""
    runs = out_dir / RUNS_DIR
    final = runs / f"{summary.run_id}.json"
    temporary = runs / f".{summary.run_id}.json.tmp"
    summary.saved_to = str(final)
    try:
        runs.mkdir(parents=True, exist_ok=True)
        temporary.write_text(summary.to_json(), encoding="utf-8")
        os.replace(temporary, final)
    except OSError as exc:
        summary.saved_to = None
        summary.unsaved_reason = f"{exc.strerror or exc} ({exc.filename or runs})"
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)


async def _run_async(
    config: RunConfig, summary: RunSummary, progress: Progress, base_url: str | None, api_key: str | None
) -> None:
    job = config.job
    metadata_columns = manifest_metadata_columns(config.input_path)
    schema = output_schema(job, metadata_columns)
    try:
        # Read-only, and first: another job's rows or a column changing type refuse the run before
        # recovery or the writer touch anything. The ledger already counts the journal's rows.
        ledger = load_ledger(config.out_dir, job, schema=schema)
        damaged: list[JournalDamage] = []
        summary.recovered_rows = recover(config.out_dir, schema, damaged=damaged)
        if damaged:
            _report_damage(summary, damaged)
        writer = ResultWriter(config.out_dir, schema, summary.run_id, flush_rows=config.flush_rows)
    except OSError as exc:
        raise EnvironmentFailure.from_os_error(exc, doing="prepare the output directory", path=config.out_dir) from None
    limiter = RateLimiter(max_concurrency=config.concurrency, rpm=config.rpm, itpm=config.itpm, otpm=config.otpm)
    client = ApiClient(
        api_key=api_key,
        base_url=base_url,
        max_connections=config.concurrency + POOL_MARGIN,
        on_headers=limiter.observe_headers,
        on_connected=limiter.responded,
    )
    run = _Run(config, client, limiter, writer, ledger, progress, summary)
    skipped: Counter[str] = Counter()
    source = open_source(config.input_path, include=config.include, exclude=config.exclude, skipped=skipped)
    try:
        await _execute(run, source)
    finally:
        _close_writer(run)
        await client.aclose()
        summary.already_done = run.preparer.already_done
        summary.errors_unchanged = run.preparer.errors_unchanged
        summary.skipped_files = dict(skipped)
        summary.errors_by_type = dict(run.errors_by_type)
        summary.latency_p50_ms = _percentile(run.latencies_ms, 50)
        summary.latency_p95_ms = _percentile(run.latencies_ms, 95)
        summary.rate_limit_pauses = limiter.pauses
        summary.concurrency_decreases = limiter.decreases
        run.tally.skipped = run.preparer.skipped
        run.tally.done = summary.documents + run.preparer.skipped
        progress.close(run.tally)
        if run.fatal is not None:
            summary.fatal_error = str(run.fatal)
            summary.stopped = "fatal" if isinstance(run.fatal, FatalRunError) else "environment"


def _close_writer(run: _Run) -> None:
    """Publish what is left. On a failing disk, the rows stay in the journal for the next run's recovery."""
    try:
        run.writer.close()
    except OSError as exc:
        if run.fatal is None:  # the first failure is the one a person needs to read
            run.fatal = EnvironmentFailure.from_os_error(
                exc, doing="publish rows as Parquet in", path=run.writer.out_dir
            )


_EXIT_CODES = {
    "fatal": FatalRunError.exit_code,
    "environment": EnvironmentFailure.exit_code,
    "interrupted": EXIT_INTERRUPTED,
}


def run(config: RunConfig, *, progress: Progress | None = None) -> RunSummary:
    """Run a job over its input to completion (or a stop); return the summary, also saved under `_runs/`.

    Exit codes in `summary.exit_code`: 0 every document ok, 1 some documents in error, 3 a fatal
    error stopped the run, 4 the output directory, the disk or the input failed, 130 interrupted.
    A failure found before the run could start (a locked, foreign or unusable output directory, a
    usage error) is raised instead, and nothing is written.
    """
    from .emulator import Emulator, EmulatorConfig

    started = time.monotonic()
    reserve_descriptors(descriptors_needed(config.concurrency + POOL_MARGIN, offline=config.offline))
    summary = RunSummary(
        run_id=new_run_id(),
        job=config.job.name,
        job_fingerprint=config.job.fingerprint,
        backend=config.backend,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    try:
        config.out_dir.mkdir(parents=True, exist_ok=True)
        lock = OutputLock(config.out_dir, run_id=summary.run_id).acquire()
    except OSError as exc:
        raise EnvironmentFailure.from_os_error(
            exc, doing="create or lock the output directory", path=config.out_dir
        ) from None
    try:
        progress = progress or make_progress(
            config.progress,
            count_documents(config.input_path, include=config.include, exclude=config.exclude),
            log_every_s=config.log_every_s,
        )
        try:
            if config.offline:
                with Emulator(EmulatorConfig()) as emulator:
                    asyncio.run(_run_async(config, summary, progress, emulator.base_url, OFFLINE_API_KEY))
            else:
                asyncio.run(_run_async(config, summary, progress, config.base_url, config.api_key))
        except KeyboardInterrupt:  # a signal before the run's own handlers were in place
            summary.stopped = "interrupted"
        except (EnvironmentFailure, OSError) as exc:
            failure = (
                exc
                if isinstance(exc, EnvironmentFailure)
                else EnvironmentFailure.from_os_error(exc, doing="write the output directory", path=config.out_dir)
            )
            summary.stopped, summary.fatal_error = "environment", str(failure)
        summary.wall_s = round(time.monotonic() - started, 3)
        if summary.stopped is not None:
            summary.exit_code = _EXIT_CODES[summary.stopped]
        else:
            summary.exit_code = EXIT_DOCUMENT_ERRORS if summary.errors or summary.errors_unchanged else EXIT_OK
        _write_summary(config.out_dir, summary)
    finally:
        lock.release()
    return summary


def count_documents(input_path: Path, *, include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> int | None:
    """A quick count of the input's documents for the progress bar (None when unknown).

    JSONL and CSV manifests are counted by their line breaks (a CSV cell with a line break makes it
    an over-count): parsing them would cost as much as the run over done documents.
    """
    from .sources import count_documents as count

    try:
        suffix = input_path.suffix.lower()
        if input_path.is_file() and suffix in (".jsonl", ".ndjson", ".csv"):
            lines = 0
            with open(input_path, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    lines += chunk.count(b"\n")
            return max(0, lines - (1 if suffix == ".csv" else 0))
        total: int | None = count(input_path, include=include, exclude=exclude)
        return total
    except (OSError, PipelineError):
        return None


def dry_run(config: RunConfig, *, max_listed: int = 50) -> str:
    """What a run would send and what is already done, as text; sends nothing, writes nothing."""
    job = config.job
    schema = output_schema(job, manifest_metadata_columns(config.input_path))  # a bad manifest fails here too
    # The journal's rows count as done without being recovered: a dry run writes nothing.
    ledger = load_ledger(config.out_dir, job, schema=schema)
    preparer = _Preparer(job, ledger)
    prefix = estimate_prefix_tokens(system_prompt(job), job.output_schema())
    listed: list[str] = []
    to_send = errors = estimated_input = 0
    skipped: Counter[str] = Counter()
    for ref in open_source(config.input_path, include=config.include, exclude=config.exclude, skipped=skipped):
        work = preparer.prepare(ref)
        if work is None:
            continue
        if config.limit is not None and to_send + errors >= config.limit:
            break
        if work.error is not None:
            errors += 1
            line = f"  error  {work.ref.doc_id}: {work.error.message}"
        else:
            to_send += 1
            tokens = prefix + estimate_document_tokens(work.ref.doc_id, work.text or "")
            estimated_input += tokens
            line = f"  send   {work.ref.doc_id}  ~{tokens:,} input tokens{'  (truncated)' if work.truncated else ''}"
        if len(listed) < max_listed:
            listed.append(line)
    ceiling = cost_usd(job.model, TokenUsage(input_tokens=estimated_input, output_tokens=to_send * job.max_tokens))
    shown = f" (first {max_listed} listed)" if to_send + errors > max_listed else ""
    header = [
        f"docpipe: dry run of job {job.name!r} (fingerprint {job.fingerprint}) over {config.input_path}",
        f"  model {job.model}, max_tokens {job.max_tokens}, {'streamed' if should_stream(job) else 'non-streaming'}, "
        f"fields: {', '.join(f.name for f in job.fields)}",
        f"  would send {to_send} request(s), ~{estimated_input:,} input tokens before caching; "
        f"cost at most ${ceiling or 0:.4f} if every answer used max_tokens",
        f"  {preparer.already_done} already done (same content, same job fingerprint): not sent again",
        *([f"  {journal_line(ledger.journal_rows)}"] if ledger.journal_rows else []),
        *([f"  {unchanged_line(preparer.errors_unchanged)}"] if preparer.errors_unchanged else []),
        *([f"  {skipped_line(skipped)}"] if skipped else []),
        f"  {errors} would be error rows before any request{shown}:" if errors else f"  no input errors{shown}:",
    ]
    return "\n".join(header + listed)
