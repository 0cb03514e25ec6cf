"""The realtime executor: documents in hand, bounded concurrent API calls, one row per document out.

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
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .api import ApiClient, ApiResponse
from .config import RunConfig
from .errors import (
    DocumentError,
    EnvironmentFailure,
    FatalRunError,
    ManifestError,
    PipelineError,
    RequestError,
    ResponseError,
    TransientError,
)
from .handoff import DONE, Handoff
from .limits import RateLimiter
from .output import DoneLedger, ResultWriter, metadata_column_names
from .prepare import Preparer, Work
from .pricing import TokenUsage, cost_usd
from .progress import Progress, Tally
from .requests import (
    build_params,
    estimate_document_tokens,
    estimate_prefix_tokens,
    parse_answer,
    should_stream,
    system_prompt,
)
from .retry import with_retries
from .sources import DocumentRef
from .stopping import Stop, install_signals, restore_signals
from .summary import RunSummary

__all__ = ["RealtimeRun", "execute"]

WORKERS_PER_SLOT = 2  # documents in hand per request in flight: the spare ones cover documents waiting to retry


@dataclass(slots=True)
class _Tracker:
    """What one document's attempts have cost so far."""

    attempts: int = 0
    spent: TokenUsage = field(default_factory=TokenUsage)
    request_id: str | None = None
    unreachable: bool = False  # the last attempt was sent to an API already unreachable: not the document's failure


class _NotSent(Exception):
    """A document admitted after a fatal error or a stop: no request, no row; the next run sends it."""


class RealtimeRun:
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
        self.preparer = Preparer(config.job, ledger)
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

    def _base_row(self, work: Work) -> dict[str, Any]:
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
        work: Work,
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

    async def process(self, work: Work) -> None:
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
            tracker.spent = tracker.spent + usage
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


def _produce(run: RealtimeRun, source: Iterator[DocumentRef], handoff: Handoff, errors: list[BaseException]) -> None:
    """Preparation thread: hand work to the workers, blocking while the queue is full, until told to stop."""
    queued = 0
    try:
        for work in run.preparer.works(source, stop=run.stop_taking):
            if run.stop_taking.is_set():
                return
            if run.config.limit is not None and queued >= run.config.limit:
                break
            queued += 1
            if not handoff.put(work, run.stop_taking):
                return
    except (OSError, ManifestError) as exc:
        errors.append(_input_failure(run.config.input_path, exc, run.preparer.refs_read))
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


async def _worker(run: RealtimeRun, handoff: Handoff, stop: Stop) -> None:
    while True:
        work = await handoff.get()
        if work is DONE:
            return
        try:
            await run.process(work)
        except (FatalRunError, EnvironmentFailure) as exc:
            run.fatal = run.fatal or exc
            stop.request("fatal" if isinstance(exc, FatalRunError) else "environment")
            return


async def _watch_reachability(run: RealtimeRun, stop: Stop) -> None:
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


async def _ticker(run: RealtimeRun) -> None:
    while True:
        run.tally.skipped = run.preparer.skipped
        run.tally.done = run.summary.documents + run.preparer.skipped
        run.progress.update(run.tally)
        await asyncio.sleep(0.5)


async def execute(run: RealtimeRun, source: Iterator[DocumentRef]) -> None:
    config = run.config
    loop = asyncio.get_running_loop()
    stop = Stop()
    installed = install_signals(loop, stop)
    handoff = Handoff(loop, capacity=config.concurrency * 2, refill=config.concurrency // 4)
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
        restore_signals(loop, installed)
        await asyncio.to_thread(producer.join, 5.0)
    if producer_errors:  # a manifest that became unusable mid-run, or a bug: surface it
        raise producer_errors[0]
    run.summary.stopped = stop.reason
