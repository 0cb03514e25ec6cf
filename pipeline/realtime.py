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
import contextlib
import dataclasses
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .budget import Budget
from .clock import SYSTEM_CLOCK, Clock
from .config import RunConfig
from .errors import (
    EnvironmentFailure,
    ExtractionError,
    FatalRunError,
    ManifestError,
    PipelineError,
    RequestError,
    ResponseError,
    TransientError,
)
from .fitting import fit, sendable_whole
from .handoff import DONE, Handoff
from .limits import Permit, RateLimiter
from .models import MODELS, get_model
from .payloads import BinaryPayload, ChunkedPayload, TextPayload
from .pieces import PieceAnswer, PieceJournal
from .plans import Planner, RequestSpec
from .prepare import Preparer, Work
from .pricing import TokenUsage, cost_usd
from .progress import Progress
from .records import RecordContext, error_row, ok_row
from .requests import Answer, estimate_document_tokens, parse_answer, with_file_source
from .retry import with_retries
from .sources import DocumentRef
from .stopping import Stop, install_signals, restore_signals
from .summary import RunSummary, percentile
from .transport import (
    POOL_MARGIN,
    ApiResponse,
    OnFirstUse,
    Transport,
    TransportFactory,
    TransportOptions,
    files_of,
)
from .uploads import FILES_ABOVE_BYTES, Uploads
from .warmup import Warmup
from .writer import ResultWriter, RowSink

__all__ = ["RealtimeRun", "execute", "run_realtime"]

PROGRESS_EVERY_S = 0.5
HANDOFF_MAX_BYTES = 64 * 2**20  # documents waiting for a worker: a folder of large files holds this much, not 2 x C
# No model has a smaller context window (the model table): a request within it fits whatever the API says.
SMALLEST_CONTEXT_TOKENS = min(spec.max_input_tokens for spec in MODELS.values())
WORKERS_PER_SLOT = 2  # documents in hand per request in flight: the spare ones cover documents waiting to retry


@dataclass(slots=True)
class _Tracker:
    """What one document's attempts have cost so far."""

    attempts: int = 0
    spent: TokenUsage = field(default_factory=TokenUsage)
    request_id: str | None = None
    unreachable: bool = False  # the last attempt was sent to an API already unreachable: not the document's failure
    last: TokenUsage | None = None  # what the last attempt's answer was billed
    last_cost: float | None = None  # and what that cost (None: no prices)
    streamed: bool | None = None
    cost: float | None = 0.0  # each answer priced on its own (a long-prompt tier is per request); None: no prices

    @property
    def cost_usd(self) -> float | None:
        """What its answers cost; None when nothing was paid for, or the model's prices are unknown."""
        return self.cost if self.spent.prompt_tokens or self.spent.output_tokens else None

    def add(self, other: _Tracker) -> None:
        """Fold another request's attempts into this one's (a chunked document's total)."""
        self.attempts += other.attempts
        self.spent = self.spent + other.spent
        self.cost = None if self.cost is None or other.cost is None else self.cost + other.cost
        self.request_id = other.request_id or self.request_id
        self.streamed = other.streamed if self.streamed is None else self.streamed


class _NotSent(Exception):
    """A document admitted after a fatal error or a stop: no request, no row; the next run sends it."""


class _OverBudget(_NotSent):
    """The request's worst case does not fit what is left of --max-cost: the run stops, resumable."""


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
        self._counting: bool | None = None  # False once count_tokens failed: the local estimate decides
        self._prefix_count: int | None = None  # count_tokens of a request around an empty document
        self._budget: asyncio.Future[int] | None = None  # a document's tokens at most (`_document_budget`)
        self._unknown_model = get_model(config.job.model) is None  # its limits are the API's: asked at once
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
        asks = self._unknown_model or self._may_not_fit(work)
        budget = await self._document_budget() if asks else self.job.max_document_tokens
        if budget < self.job.max_document_tokens:
            work = self._refit(work, budget)
            if work.error is not None:
                self.write(error_row(self.records, work, work.error, created_at=self.clock.wall()))
                return
        if work.whole is not None:
            work = await self._counted(work, budget)
        assert work.payload is not None
        ref = work.ref
        details = self.planner.details_for(ref.doc_id, ref.source, ref.metadata, work.size, work.mtime_ns)
        specs = self.planner.plan(work.ref.doc_id, work.payload, details=details)
        try:
            if specs[0].pieces:
                await self._process_chunked(work, specs, details)
            else:
                await self._process_one(work, specs[0])
        finally:  # a PDF uploaded for this document is deleted once nothing of it is in flight
            for spec in specs:
                if spec.document is not None:
                    await self.uploads.release(spec.document, holder=spec.document_id)

    async def _process_one(self, work: Work, spec: RequestSpec) -> None:
        tracker = _Tracker()
        try:
            response, answer, latency_ms, attempts = await self._ask(spec, tracker)
        except (RequestError, ResponseError) as exc:
            exc.request_id = exc.request_id or tracker.request_id
            row = error_row(
                self.records, work, exc, created_at=self.clock.wall(), usage=tracker.spent,
                attempts=tracker.attempts, streamed=tracker.streamed, requests=1 if tracker.attempts else None,
                cost_usd=tracker.cost_usd,
            )
            self.write(row)
            return
        except _OverBudget:
            self._write_refused(work, tracker)
            raise
        except _NotSent:
            return
        self.latencies_ms.append(latency_ms)
        row = ok_row(
            self.records, work, answer.values, response.message, created_at=self.clock.wall(),
            usage=tracker.spent, latency_ms=latency_ms, attempts=attempts,
            request_id=response.request_id, streamed=response.streamed, cost_usd=tracker.cost_usd,
        )
        self.write(row)

    async def _ask(self, spec: RequestSpec, tracker: _Tracker) -> tuple[ApiResponse, Answer, float, int]:
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

    def _may_not_fit(self, work: Work) -> bool:
        """Whether the document's request could be over a context window: over the smallest any model has."""
        whole = work.whole if work.whole is not None else work.payload
        assert whole is not None
        request = self.planner.prefix_estimate + estimate_document_tokens(work.ref.doc_id, whole) + self.job.max_tokens
        return request > SMALLEST_CONTEXT_TOKENS

    async def _document_budget(self) -> int:
        """The tokens a request's document may take: the job's budget, or less if the model's context says so.

        The model's context window comes from `GET /v1/models/{model}` where the API answers it (asked
        once a run, by the first document whose request could be over any model's window, or by the
        first document of a model the table does not know: others never wait for it), else the model
        table (or the job's `context_window`), which the job was checked against when it was loaded;
        the request's answer (max_tokens) and shared prefix take the rest. A model that cannot give
        max_tokens of output stops the run before anything is sent.
        """
        if self._budget is None:
            self._budget = asyncio.ensure_future(self._ask_budget())
        return await asyncio.shield(self._budget)

    async def _ask_budget(self) -> int:
        Limits = tuple[int, int | None]
        reader: Callable[[str], Awaitable[Limits]] | None = getattr(self.transport, "model_limits", None)
        if reader is None:
            return self.job.max_document_tokens
        try:
            window, max_output = await reader(self.job.model)
        except FatalRunError:
            raise  # a model the API does not serve (404), a bad key: nothing would be answered
        except PipelineError:
            return self.job.max_document_tokens
        if max_output is not None and self.job.max_tokens > max_output:
            raise FatalRunError(
                f"the job's max_tokens {self.job.max_tokens:,} exceeds {self.job.model}'s maximum output of "
                f"{max_output:,} tokens (GET /v1/models): every request would be refused; lower max_tokens"
            )
        room = window - self.job.max_tokens - self.planner.prefix_estimate
        if room < self.job.max_document_tokens:
            self.summary.budget_note = (
                f"{self.job.model}'s context window is {window:,} tokens (GET /v1/models): documents were cut to "
                f"{max(room, 1):,} tokens, under job.max_document_tokens = {self.job.max_document_tokens:,}"
            )
        return max(1, min(room, self.job.max_document_tokens))

    def _refit(self, work: Work, budget: int) -> Work:
        """The work fitted again to a budget smaller than the one the preparation used."""
        whole = work.whole if work.whole is not None else work.payload
        if not isinstance(whole, TextPayload | BinaryPayload):
            return work  # already in pieces: each within the job's budget; a smaller window is its own error
        try:
            fitted = fit(work.ref.doc_id, whole, dataclasses.replace(self.job, max_document_tokens=budget))
        except ExtractionError as exc:
            return dataclasses.replace(work, payload=None, whole=None, error=exc)
        if fitted.payload is whole:
            return work
        return dataclasses.replace(work, payload=fitted.payload, truncated=fitted.truncated, whole=whole)

    async def _counted(self, work: Work, budget: int) -> Work:
        """A document docpipe's local estimate put over the budget: sent whole if the API's count says it fits.

        The local estimate is deliberately high (`requests.BYTES_PER_TOKEN_ESTIMATE`), so a document
        just over the budget by it is counted by `count_tokens` (free) before it is cut: its document
        tokens are the request's count less the count of the same request around an empty document.
        Where counting fails (not offered, refused, rate limited), the local decision stands.
        """
        assert work.whole is not None
        count: Callable[[dict[str, Any]], Awaitable[int]] | None = getattr(self.transport, "count_tokens", None)
        if count is None or self._counting is False or not sendable_whole(work.whole):
            return work
        whole_params = self.planner.plan(work.ref.doc_id, work.whole)[0].params
        try:
            if self._prefix_count is None:
                self._prefix_count = await count(self.planner.plan(work.ref.doc_id, TextPayload(""))[0].params)
            counted = await count(whole_params) - self._prefix_count
        except RequestError:  # this request refused (a PDF the API cannot read, say): the local decision stands
            return work
        except PipelineError:  # not offered, rate limited, unreachable: the local estimate decides from now on
            self._counting = False
            return work
        if counted > budget:
            return work
        self.summary.fit_by_count += 1
        return dataclasses.replace(work, payload=work.whole, truncated=False, whole=None)

    def _write_refused(self, work: Work, tracker: _Tracker, *, requests: int | None = None) -> None:
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

    async def _process_chunked(
        self, work: Work, specs: list[RequestSpec], details: list[tuple[str, str]] | None = None
    ) -> None:
        """A document in pieces: each piece asked (unless an earlier run has its answer), then the reduce.

        Every piece's answer is journaled (`pieces.py`) as it comes, so a stop in the middle re-pays
        at most the pieces in flight. A piece that fails for good fails the document, with what its
        pieces cost; the answered ones are kept for the next run.
        """
        key = (work.ref.doc_id, work.sha256 or "", self.records.fingerprint)
        count = specs[0].pieces
        assert isinstance(work.payload, ChunkedPayload)
        hashes = [piece.sha256() for piece in work.payload.pieces]
        answers = dict(self.pieces.answered(key, hashes))
        started = self.clock.monotonic()

        async def ask_piece(spec: RequestSpec) -> None:
            tracker = _Tracker()
            try:
                response, answer, _, attempts = await self._ask(spec, tracker)
            except BaseException:
                lost.add(tracker)
                raise
            values = json.loads(json.dumps(answer.values, default=str))  # dates as ISO text, as the reduce reads them
            piece = PieceAnswer(
                part=spec.part, pieces=count, piece_sha256=hashes[spec.part - 1], values=values, usage=tracker.spent,
                cost_usd=tracker.cost_usd, request_id=response.request_id, attempts=attempts,
            )
            try:
                self.pieces.record(key, piece)
            except OSError as exc:
                lost.add(tracker)
                raise EnvironmentFailure.from_os_error(
                    exc, doing="record a piece's answer in", path=self.pieces.path
                ) from None
            answers[spec.part] = piece

        # What the document's row counts: its answered pieces (kept in the journal, this run's or an
        # earlier one's) and the combining request. What a failure costs beyond them (`lost`: attempts of
        # a piece that failed, a combination that failed) goes in an error row; the kept answers do
        # not, as the row of the answer that uses them counts them.
        lost = _Tracker()
        outcomes = await asyncio.gather(
            *(ask_piece(spec) for spec in specs if spec.part not in answers), return_exceptions=True
        )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            await self._fail_chunked(work, failures, lost, count, kept=len(answers))
            return
        answered = [answers[part].values for part in range(1, count + 1)]
        reduce_spec = self.planner.reduce(work.ref.doc_id, answered, details=details)
        tracker = _Tracker()
        try:
            response, answer, _, _ = await self._ask(reduce_spec, tracker)
        except BaseException as exc:
            lost.add(tracker)
            await self._fail_chunked(work, [exc], lost, count, kept=len(answers))
            return
        total = tracker
        for piece in answers.values():
            total.spent = total.spent + piece.usage
            total.attempts += piece.attempts
            total.cost = None if total.cost is None or piece.cost_usd is None else total.cost + piece.cost_usd
        latency_ms = (self.clock.monotonic() - started) * 1000.0
        self.latencies_ms.append(latency_ms)
        row = ok_row(
            self.records, work, answer.values, response.message, created_at=self.clock.wall(),
            usage=total.spent, latency_ms=latency_ms, attempts=total.attempts,
            request_id=response.request_id, streamed=response.streamed, requests=count + 1,
            cost_usd=total.cost_usd,
        )
        self.write(row)
        self.pieces.finished(key)

    async def _fail_chunked(
        self, work: Work, failures: list[BaseException], lost: _Tracker, count: int, *, kept: int
    ) -> None:
        """What ends a chunked document that did not get its answer: a stop, a fatal error, or an error row.

        The row counts only what the failure cost (`lost`); the `kept` answered pieces stay in the
        journal for the next run, whose row counts them.
        """
        for failure in failures:  # the run's own stops first: no row, the next run goes on from the journal
            if isinstance(failure, (asyncio.CancelledError, FatalRunError, EnvironmentFailure, _OverBudget)):
                if isinstance(failure, _OverBudget):
                    self._write_refused(work, lost, requests=count + 1)
                raise failure
        if any(isinstance(failure, _NotSent) for failure in failures):
            return
        failure = failures[0]
        if not isinstance(failure, (RequestError, ResponseError)):
            raise failure
        failure.request_id = failure.request_id or lost.request_id
        failure.message = (
            f"{failure.message} (one of its {count} pieces, or their combination; the answers of {kept} piece(s) "
            "are kept and the next run asks only the rest)"
        )
        row = error_row(
            self.records, work, failure, created_at=self.clock.wall(), usage=lost.spent,
            attempts=lost.attempts, streamed=lost.streamed, requests=count + 1, cost_usd=lost.cost_usd,
        )
        self.write(row)

    async def _attempt(
        self, spec: RequestSpec, number: int, tracker: _Tracker, on_started: Callable[[], None] | None = None
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
            raise _NotSent(spec.document_id)
        reserved = self.budget.reserve(spec.estimated_input_tokens, spec.max_output_tokens)
        if reserved is None:
            self.limiter.release(permit)
            if on_started is not None:  # a leader the budget refuses holds nobody back
                on_started()
            raise _OverBudget(spec.document_id)
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
        tracker: _Tracker,
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

    def _heard_failure(self, exc: TransientError, permit: Permit, tracker: _Tracker) -> None:
        if exc.no_response:
            tracker.unreachable = self.limiter.connection_failed(permit)
            self.connection_failure = exc.message
        else:
            self.limiter.responded()
        if exc.status == 429:
            self.limiter.rate_limited(exc.retry_after_s, headers=exc.rate_limit_headers, permit=permit)
        elif exc.status == 529 or exc.error_type == "overloaded_error":
            self.limiter.overloaded()


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
            if not handoff.put(work, run.stop_taking, size=work.nbytes):
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
        except _OverBudget:  # requests in flight finish (they are reserved for); nothing new starts
            run.stop_taking.set()
            stop.request("budget")
            return
        except (FatalRunError, EnvironmentFailure) as exc:
            run.fatal = run.fatal or exc
            stop.request("fatal" if isinstance(exc, FatalRunError) else "environment")
            return


async def _watch_reachability(run: RealtimeRun, stop: Stop) -> None:
    """Stop the run (fatal) once every request has failed to connect for `unreachable_s`, no response in between."""
    bound_s = run.config.unreachable_s
    while (unreachable_s := run.limiter.unreachable_for_s()) < bound_s:
        await run.clock.sleep(bound_s - unreachable_s)
    run.fatal = run.fatal or FatalRunError(
        f"no response from the API at {run.transport.base_url} for {unreachable_s:.0f} s: every request failed to "
        f"connect (last: {run.connection_failure}). Check ANTHROPIC_BASE_URL, the network and any proxy, then "
        "rerun: the documents not done are sent then (DOCPIPE_UNREACHABLE_S sets how long to wait)"
    )
    stop.request("fatal")


async def _ticker(run: RealtimeRun) -> None:
    while True:
        run.show_progress()
        await run.clock.sleep(PROGRESS_EVERY_S)


async def execute(run: RealtimeRun, source: Iterator[DocumentRef]) -> None:
    config = run.config
    loop = asyncio.get_running_loop()
    stop = Stop()
    installed = install_signals(loop, stop)
    handoff = Handoff(
        loop, capacity=config.concurrency * 2, refill=config.concurrency // 4, max_bytes=HANDOFF_MAX_BYTES
    )
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


def _batches_pending(out_dir: Path) -> bool:
    """Whether a batch of the directory may still read uploaded files (a batch run sends its chunked documents here)."""
    from .submissions import SubmissionStore

    return any(submission.pending for submission in SubmissionStore(out_dir).load())


async def run_realtime(
    config: RunConfig,
    source: Iterator[DocumentRef],
    *,
    transport: TransportFactory,
    writer: ResultWriter,
    preparer: Preparer,
    progress: Progress,
    summary: RunSummary,
    clock: Clock = SYSTEM_CLOCK,
) -> FatalRunError | EnvironmentFailure | None:
    """Send every document of `source` that needs it; return the error that stopped the run, if one did.

    Opens the transport on the first request (and closes it, whatever happens) with a limiter that hears its headers,
    and leaves in `summary` what the executor alone knows: latencies, pauses, why it stopped.
    """
    limiter = RateLimiter(
        max_concurrency=config.concurrency,
        rpm=config.rpm,
        itpm=config.itpm,
        otpm=config.otpm,
        clock=clock.monotonic,
        sleep=clock.sleep,
    )
    options = TransportOptions(
        max_connections=config.concurrency + POOL_MARGIN,
        on_headers=limiter.observe_headers,
        on_connected=limiter.responded,
    )
    run = RealtimeRun(
        config, transport=OnFirstUse(transport, options, clock=clock.monotonic),
        limiter=limiter, writer=writer, preparer=preparer,
        progress=progress, summary=summary, clock=clock,
    )
    summary.cache_note = run.planner.cache_note()
    try:
        if run.uploads.pending() and not _batches_pending(config.out_dir):  # a killed run's uploads go first
            with contextlib.suppress(PipelineError):
                summary.files_cleaned += await run.uploads.clean()
        await execute(run, source)
    finally:
        with contextlib.suppress(PipelineError):  # else the record keeps them, for the next run to delete
            await run.uploads.close()
        summary.files_uploaded += run.uploads.uploaded
        await run.transport.aclose()
        fingerprint, ledger = run.records.fingerprint, run.preparer.ledger
        with contextlib.suppress(OSError):  # else finished documents' pieces stay listed: nothing asks for them
            run.pieces.close(stale=lambda key: key[2] != fingerprint or ledger.is_done(key[0], key[1]))
        if isinstance(run.transport, OnFirstUse):
            summary.transport_open_s = round(run.transport.open_s, 3)
        summary.latency_p50_ms = percentile(run.latencies_ms, 50)
        summary.latency_p95_ms = percentile(run.latencies_ms, 95)
        if run.budget.refused:
            summary.stop_note = run.budget.describe()
        summary.rate_limit_pauses = limiter.pauses
        summary.concurrency_decreases = limiter.decreases
    return run.fatal
