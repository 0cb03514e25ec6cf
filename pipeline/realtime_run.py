"""One realtime run's documents, each from its prepared work to its row: the request code of the executor.

`RealtimeRun.process` takes one document: its room in the model's context (`context_fit.py`), its
plan (`plans.py`: one request, or pieces and a reduce, `realtime_chunked.py`), then each request
through the warm-up (`warmup.py`), the one retry layer (`retry.py`) and, per attempt, admission by
the rate limiter, the --max-cost reservation and the transport; what each outcome tells the limiter
(a 429, a 529, no response at all) is told to it here. Every finished document, ok or error, is one
row handed to the writer at once (`records.py`). The executor around it (`realtime.py`) and, on
Ray, the actor pool (`ray_stages.py`) call the same `process`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from .budget import Budget
from .clock import SYSTEM_CLOCK, Clock
from .config import RunConfig
from .context_fit import ContextFit
from .errors import EnvironmentFailure, FatalRunError, RequestError, ResponseError, TransientError
from .limits import Permit, RateLimiter
from .pieces import PieceJournal
from .plans import Planner, RequestSpec
from .prepare import Preparer, Work
from .pricing import TokenUsage, cost_usd
from .progress import Progress
from .realtime_chunked import process_chunked
from .records import RecordContext, error_row, ok_row
from .requests import Answer, parse_answer, with_file_source
from .retry import with_retries
from .summary import RunSummary
from .tracker import NotSent, OverBudget, Tracker
from .transport import ApiResponse, Transport, files_of
from .uploads import FILES_ABOVE_BYTES, Uploads
from .warmup import Warmup
from .writer import RowSink

__all__ = ["RealtimeRun"]


class RealtimeRun:
    """One realtime run's state: its collaborators, what it has spent, and whether it must stop."""

    def __init__(
        self,
        config: RunConfig,
        *,
        transport: Transport,
        limiter: RateLimiter,
        writer: RowSink,
        preparer: Preparer,
        progress: Progress,
        summary: RunSummary,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.config = config
        self.job = config.job
        self.transport = transport
        self.limiter = limiter
        self.writer = writer
        self.preparer = preparer
        self.progress = progress
        self.summary = summary
        self.clock = clock
        self.planner = Planner(config.job)
        self.budget = Budget(config.max_cost_usd, config.job.model, prices=config.job.prices)
        self.warmup = Warmup(
            enabled=config.job.cache_warmup and config.concurrency > 1 and self.planner.prefix_cacheable()
        )
        self.records = RecordContext(config.job, summary.run_id, config.backend)
        self.pieces = PieceJournal(writer.out_dir)
        self.uploads = Uploads(writer.out_dir, lambda: files_of(self.transport))
        self.fit = ContextFit(config.job, self.planner, transport, summary)
        self.latencies_ms: list[float] = []
        self.stop_taking = threading.Event()
        self.fatal: FatalRunError | EnvironmentFailure | None = None
        self.connection_failure: str | None = None  # the last request's failure to connect, for the fatal message

    def show_progress(self) -> None:
        self.progress.update(self.summary.tally(self.preparer.skipped))

    def write(self, row: dict[str, Any]) -> None:
        try:
            self.writer.add(row)
        except OSError as exc:  # a full disk, a file system gone read-only: no row can be kept now
            raise EnvironmentFailure.from_os_error(
                exc, doing="record a finished row in", path=self.writer.out_dir
            ) from None
        self.summary.count(row)
        self.show_progress()

    # -- one document ---------------------------------------------------------------------------

    async def process(self, work: Work) -> None:
        if work.error is not None:
            self.write(error_row(self.records, work, work.error, created_at=self.clock.wall()))
            return
        budget = await self.fit.budget() if self.fit.must_ask(work) else self.job.max_document_tokens
        if budget < self.job.max_document_tokens:
            work = self.fit.refit(work, budget)
            if work.error is not None:
                self.write(error_row(self.records, work, work.error, created_at=self.clock.wall()))
                return
        if work.whole is not None:
            work = await self.fit.counted(work, budget)
        assert work.payload is not None
        ref = work.ref
        details = self.planner.details_for(ref.doc_id, ref.source, ref.metadata, work.size, work.mtime_ns)
        specs = self.planner.plan(work.ref.doc_id, work.payload, details=details)
        try:
            if specs[0].pieces:
                await process_chunked(self, work, specs, details)
            else:
                await self._process_one(work, specs[0])
        finally:  # a PDF uploaded for this document is deleted once nothing of it is in flight
            for spec in specs:
                if spec.document is not None:
                    await self.uploads.release(spec.document, holder=spec.document_id)

    async def _process_one(self, work: Work, spec: RequestSpec) -> None:
        tracker = Tracker()
        try:
            response, answer, latency_ms, attempts = await self.ask(spec, tracker)
        except (RequestError, ResponseError) as exc:
            exc.request_id = exc.request_id or tracker.request_id
            row = error_row(
                self.records, work, exc, created_at=self.clock.wall(), usage=tracker.spent,
                attempts=tracker.attempts, streamed=tracker.streamed, requests=1 if tracker.attempts else None,
                cost_usd=tracker.cost_usd,
            )
            self.write(row)
            return
        except OverBudget:
            self.write_refused(work, tracker)
            raise
        except NotSent:
            return
        self.latencies_ms.append(latency_ms)
        row = ok_row(
            self.records, work, answer.values, response.message, created_at=self.clock.wall(),
            usage=tracker.spent, latency_ms=latency_ms, attempts=attempts,
            request_id=response.request_id, streamed=response.streamed, cost_usd=tracker.cost_usd,
        )
        self.write(row)

    async def ask(self, spec: RequestSpec, tracker: Tracker) -> tuple[ApiResponse, Answer, float, int]:
        """One request to its answer, through the warm-up and the one retry layer."""
        leads = await self.warmup.enter()
        if leads and self.job.stream != "never":  # streamed: the fan-out starts as its response begins
            spec = dataclasses.replace(spec, stream=True)
        tracker.streamed = spec.stream
        (response, answer, latency_ms), attempts = await with_retries(
            lambda number: self._attempt(spec, number, tracker, self.warmup.started if leads else None),
            settings=self.job.retry,
            schema_retries=self.job.schema_retries,
            spends_attempt=lambda failure: not tracker.unreachable,
            sleep=self.clock.sleep,
        )
        return response, answer, latency_ms, attempts

    def write_refused(self, work: Work, tracker: Tracker, *, requests: int | None = None) -> None:
        """A document --max-cost stopped after some of its answers were paid for: their cost gets a row."""
        if tracker.spent.prompt_tokens or tracker.spent.output_tokens:
            error = RequestError(
                "an answer failed the job's schema and --max-cost leaves no room to ask again; the next run "
                "sends it", error_type="budget", document_id=work.ref.doc_id, request_id=tracker.request_id,
            )
            self.write(error_row(
                self.records, work, error, created_at=self.clock.wall(),
                usage=tracker.spent, attempts=tracker.attempts, streamed=tracker.streamed, requests=requests,
                cost_usd=tracker.cost_usd,
            ))

    async def _attempt(
        self, spec: RequestSpec, number: int, tracker: Tracker, on_started: Callable[[], None] | None = None
    ) -> tuple[ApiResponse, Answer, float]:
        """One attempt at one request: admission, the call, and what its outcome tells the limiter.

        `on_started` (the warm-up's leader) is called as the response begins, or once the attempt has
        ended; an attempt that fails and is worth another hands the lead to the next request instead.
        """
        # A leader that failed handed the lead on: its retry waits for the new leader like any other.
        if on_started is not None and number > 1 and not self.warmup.done and not await self.warmup.enter():
            on_started = None
        permit = await self.limiter.acquire(spec.estimated_input_tokens, spec.max_output_tokens, retry=number > 1)
        # Nothing is sent after a fatal error, and no document is started after a stop: the next run sends it.
        if self.fatal is not None or (number == 1 and self.stop_taking.is_set()):
            self.limiter.release(permit)
            if on_started is not None:
                on_started()
            raise NotSent(spec.document_id)
        reserved = self.budget.reserve(spec.estimated_input_tokens, spec.max_output_tokens)
        if reserved is None:
            self.limiter.release(permit)
            if on_started is not None:  # a leader the budget refuses holds nobody back
                on_started()
            raise OverBudget(spec.document_id)
        try:
            if spec.document is not None and (number > 1 or spec.document.nbytes > FILES_ABOVE_BYTES):
                try:  # sent again, or large: uploaded once, named by file_id from now on
                    file_id = await self.uploads.file_id(spec.document, holder=spec.document_id)
                except BaseException as exc:
                    self.limiter.release(permit)
                    if on_started is not None and isinstance(exc, TransientError):
                        self.warmup.handover()  # as for the call itself: a failure worth a retry hands the lead on
                    elif on_started is not None:
                        on_started()
                    raise
                spec = dataclasses.replace(spec, params=with_file_source(spec.params, file_id))
            return await self._send(spec, number, tracker, permit, on_started)
        finally:
            if self.budget.capped:  # settled at what the answer cost, priced once in _send
                self.budget.settle(reserved, tracker.last_cost if tracker.last else None)

    async def _send(
        self,
        spec: RequestSpec,
        number: int,
        tracker: Tracker,
        permit: Permit,
        on_started: Callable[[], None] | None,
    ) -> tuple[ApiResponse, Answer, float]:
        """The call itself, once admitted and reserved for: what its outcome tells the limiter."""
        tracker.last = None
        tracker.attempts = number
        tracker.unreachable = False
        self.summary.requests_sent += 1
        if number > 1:
            self.summary.retries += 1
        started = self.clock.monotonic()
        try:
            response = await self.transport.create(
                spec.params, stream=spec.stream, timeout_s=spec.timeout_s, document_id=spec.document_id,
                on_started=on_started,
            )
        except TransientError as exc:
            self.limiter.release(permit)
            tracker.request_id = exc.request_id
            self._heard_failure(exc, permit, tracker)
            if on_started is not None:  # the leader failed before its response began: the next request leads
                self.warmup.handover()
            raise
        except BaseException as exc:
            self.limiter.release(permit)
            if isinstance(exc, RequestError):
                self.limiter.responded()
                tracker.request_id = exc.request_id
            if on_started is not None:  # refused for itself, or stopped: the others go
                on_started()
            raise
        if on_started is not None:
            on_started()
        latency_ms = (self.clock.monotonic() - started) * 1000.0
        usage = TokenUsage.from_usage(response.message.get("usage") or {})
        self.limiter.release(
            permit,
            counted_input_tokens=usage.input_tokens + usage.cache_write_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            output_tokens=usage.output_tokens,
        )
        self.limiter.succeeded()
        tracker.spent = tracker.spent + usage
        tracker.last = usage
        price = tracker.last_cost = cost_usd(self.job.model, usage, prices=self.job.prices)
        tracker.cost = None if tracker.cost is None or price is None else tracker.cost + price
        tracker.request_id = response.request_id
        answer = parse_answer(self.job, response.message, document_id=spec.document_id, request_id=response.request_id)
        return response, answer, latency_ms

    def _heard_failure(self, exc: TransientError, permit: Permit, tracker: Tracker) -> None:
        if exc.no_response:
            tracker.unreachable = self.limiter.connection_failed(permit)
            self.connection_failure = exc.message
        else:
            self.limiter.responded()
        if exc.status == 429:
            self.limiter.rate_limited(exc.retry_after_s, headers=exc.rate_limit_headers, permit=permit)
        elif exc.status == 529 or exc.error_type == "overloaded_error":
            self.limiter.overloaded()
