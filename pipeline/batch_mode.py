"""The batch executor: the same documents, plans and rows as a realtime run, through Message Batches at half price.

Design. A run in batch mode does, in order:

1. **Reconcile.** A submission recorded but not known to be created (`submitting`: the run died or
   the connection dropped during the create call) is looked for in the API's batch list (created
   after it was recorded, with as many requests, not claimed by another submission). Found, it is
   adopted; not found, it is `abandoned` and its documents are sent again. A batch is never
   created twice for the same documents without looking first.
2. **Collect** every earlier batch that has ended: results are streamed and matched by `custom_id`
   (they come in any order), each written as a row through `records.py` the moment it is read.
3. **Submit** the documents of the input that need work and are in no earlier batch: planned by
   `plans.py` as for realtime, recorded in `OUT/_batches/` (`submissions.py`) before each create call,
   the batch id right after; split to stay within 100,000 requests and 256 MB a batch.
4. **Wait** (unless `--no-wait`): poll with backoff (`DOCPIPE_BATCH_POLL_S`, 2 s, growing 1.5 times
   a poll to a minute), collect each batch as it
   ends. `errored` results of a kind worth retrying, `expired` ones and answers that fail the job's
   schema go into a follow-up batch (at most `FOLLOW_UP_ROUNDS` times), built from the params the
   record kept; `canceled` ones and the rest become error rows, which the next run retries.

Collecting twice writes nothing twice: an ok row already in the ledger is not written again, and a
follow-up batch is recorded with its parent, so a collection cut short never resubmits twice.
A signal stops the run at once: what is recorded is consistent at every step, and the next run
resumes from it.

A document too long for one request under `too_long = "chunk"` is not batched: the request that
combines its pieces' answers can only be built once they are answered. Such documents go through
the realtime executor after the batches (at the realtime price, `mode = realtime` in their rows).

At about 530 lines this module is over the 400 the style asks for: its four steps share one state
(the submissions, the claims, the budget, the counts), and apart they would pass it all around. What
stands alone lives beside it: gathering requests into batches (`batch_chunks.py`), rows from results
(`batch_rows.py`), resending at once (`batch_resend.py`), the record (`submissions.py`).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import datetime

from .batch_chunks import Chunk, gather
from .batch_resend import resend_realtime
from .batch_rows import BatchRows
from .budget import Budget
from .clock import SYSTEM_CLOCK, Clock
from .config import RunConfig
from .errors import EnvironmentFailure, FatalRunError, PipelineError, RequestError, TransientError
from .models import get_model
from .payloads import BinaryPayload
from .plans import Planner
from .prepare import Preparer, Work
from .pricing import TokenUsage
from .progress import Progress
from .records import RecordContext, error_row
from .refs import DocumentRef
from .requests import estimate_tokens, with_file_source
from .retry import with_retries
from .stopping import Stop, install_signals, restore_signals
from .submissions import BATCH_DIR, DocEntry, Submission, SubmissionStore, custom_id, request_index
from .summary import RunSummary
from .transport import (
    POOL_MARGIN,
    BatchApi,
    BatchInfo,
    OnFirstUse,
    TransportFactory,
    TransportOptions,
    batches_of,
    files_of,
)
from .uploads import Uploads
from .writer import ResultWriter

__all__ = ["BatchRun", "run_batches"]

POLL_MAX_S = 60.0
POLL_GROWTH = 1.5
CREATE_ATTEMPTS = 4
# A batch may take 24 h, its follow-ups as long again; the files its requests name must outlive them.
BATCH_FILES_EXPIRE_S = 7 * 24 * 3600
ADOPT_SKEW_S = 60.0  # clock skew allowed when a lost create is looked for in the batch list


def _created_at(info: BatchInfo) -> float:
    try:
        return datetime.fromisoformat(info.created_at).timestamp()
    except ValueError:
        return 0.0


# A source's documents as work, lazily, ending early once the event is set.
PreparedWorks = Callable[[Iterator[DocumentRef], threading.Event], Iterator[Work]]


class BatchRun:
    """One batch-mode run: its collaborators, its submissions and what it has written."""

    def __init__(
        self,
        config: RunConfig,
        *,
        transport: OnFirstUse,
        writer: ResultWriter,
        preparer: Preparer,
        progress: Progress,
        summary: RunSummary,
        clock: Clock = SYSTEM_CLOCK,
        prepared: PreparedWorks | None = None,
    ) -> None:
        self.config = config
        self.job = config.job
        self.transport = transport
        # Where the documents' work comes from: this process's preparer, or another stage (Ray's tasks).
        self.prepared: PreparedWorks = prepared or (lambda source, stop: preparer.works(source, stop=stop))
        self.writer = writer
        self.preparer = preparer
        self.progress = progress
        self.summary = summary
        self.clock = clock
        self.store = SubmissionStore(config.out_dir)
        self.planner = Planner(config.job, mode="batch")
        self.records = RecordContext(config.job, summary.run_id, config.backend, mode="batch")
        self.submissions: list[Submission] = []
        # (doc_id, text hash) of the documents in this directory's batches not collected when the run began,
        # and in the batches it creates: never submitted again. A document edited meanwhile is new work.
        self.claimed: set[tuple[str, str | None]] = set()
        self.in_batches = 0  # requests submitted and not yet collected
        self.chunked: list[DocumentRef] = []  # documents in pieces, sent through Messages once the batches are done
        self.uploads = Uploads(config.out_dir, lambda: files_of(self.transport), expires_in_s=BATCH_FILES_EXPIRE_S)
        self.stop_preparing = threading.Event()
        self.budget = Budget(config.max_cost_usd, config.job.model, batch=True, prices=config.job.prices)
        self.rows = BatchRows(
            config.job, records=self.records, writer=writer, ledger=preparer.ledger, summary=summary,
            budget=self.budget, input_path=config.input_path, wall=clock.wall, on_row=self.show_progress,
        )
        self.realtime_rows = BatchRows(  # rows of requests resent at once (job batch_retry = "realtime")
            config.job, records=RecordContext(config.job, summary.run_id, config.backend), writer=writer,
            ledger=preparer.ledger, summary=summary, budget=self.budget, input_path=config.input_path,
            wall=clock.wall, on_row=self.show_progress, settles=False,
        )
        self._created = 0

    @property
    def api(self) -> BatchApi:
        return batches_of(self.transport)

    def show_progress(self) -> None:
        tally = self.summary.tally(self.preparer.skipped)
        tally.in_batches = self.in_batches
        self.progress.update(tally)

    # -- 1. reconcile --------------------------------------------------------------------------

    async def find_created(self, submission: Submission) -> bool:
        """Adopt the batch a `submitting` record's create made, if the API lists one (True).

        A candidate was created after the record was written (`ADOPT_SKEW_S` of clock skew allowed),
        holds as many requests, and is no other record's. Another directory's batch on the same key
        could match as well: the adoption is checked when the batch's results are read (`collect`).
        """
        known = {s.batch_id for s in self.submissions if s.batch_id}
        async for info in self.api.list():
            if _created_at(info) < submission.recorded_at - ADOPT_SKEW_S:
                break  # newest first: every batch from here on was created before the record was written
            if info.id not in known and info.total == submission.requests:
                submission.batch_id, submission.state, submission.adopted = info.id, "submitted", True
                submission.note = "found in the API's batch list after an interrupted create"
                self.store.save(submission)
                return True
        return False

    async def reconcile(self, submission: Submission) -> bool:
        """A `submitting` record of an earlier run: adopt its batch, or mark it abandoned when the list has none."""
        if await self.find_created(submission):
            return True
        submission.state, submission.note = "abandoned", "no batch was created: its documents are sent again"
        self.store.save(submission)
        return False

    # -- 2. collect ----------------------------------------------------------------------------

    async def collect(self, submission: Submission) -> None:
        """Write the rows of an ended batch; put what is worth another try in a follow-up batch."""
        assert submission.batch_id is not None
        answered_under = submission.job_fingerprint or self.records.fingerprint
        if answered_under != self.records.fingerprint:  # the job changed since: its rows say which job answered
            stale = copy.copy(self.records)
            stale.fingerprint = answered_under
            self.rows.records = stale
        try:
            await self._collect(submission)
        finally:
            self.rows.records = self.records

    async def _collect(self, submission: Submission) -> None:
        assert submission.batch_id is not None
        docs = self.store.docs(submission)
        if submission.run_id != self.summary.run_id:  # reserved for by another run's budget, not this one's
            docs = [dataclasses.replace(doc, reserved=0.0) for doc in docs]
        seen = bytearray(len(docs))
        counts: Counter[str] = Counter()
        again: dict[int, TokenUsage] = {}  # request -> what its answers cost so far
        cost_before = self.summary.cost_usd
        try:
            async for result in self.api.results(submission.batch_id):
                index = request_index(submission.tag, result.custom_id)
                if index is None or index >= len(docs) or seen[index]:
                    continue  # not one of this submission's requests
                seen[index] = 1
                counts[result.kind] += 1
                spent = self.rows.record(docs[index], result)
                if spent is not None:
                    again[index] = spent
        except TransientError:
            return  # a 5xx or a connection cut mid-download: collected again at the next poll, nothing lost
        except RequestError as exc:  # results gone (archived after 29 days) or the batch deleted
            for index, doc in enumerate(docs):
                if not seen[index]:
                    counts["unavailable"] += 1
                    error = RequestError(f"the batch's results are unavailable: {exc.message}",
                                         error_type="batch_results_unavailable", document_id=doc.doc_id)
                    self.rows.error(doc, error, TokenUsage(**doc.spent))
        if submission.adopted and not any(seen):  # another directory's batch: ours was never created
            submission.state = "abandoned"
            submission.note = f"batch {submission.batch_id} was adopted, but holds none of these requests: sent again"
            self.store.save(submission)
            await self._follow_up(submission, docs, {index: TokenUsage() for index in range(len(docs))})
            self.in_batches -= submission.requests
            return
        for index in range(len(docs)):
            if not seen[index] and "unavailable" not in counts:
                counts["missing"] += 1
                again[index] = TokenUsage()
        if again and self.job.batch_retry == "realtime":
            await self._resend(submission, docs, again)
        elif again and not any(s.parent == submission.tag and s.state != "abandoned" for s in self.submissions):
            await self._follow_up(submission, docs, again)
        self.writer.flush()  # the rows are in parts before the record says collected
        submission.state, submission.counts = "collected", dict(counts)
        submission.cost_usd = round(self.summary.cost_usd - cost_before, 6)
        self.store.save(submission)
        self.store.discard_params(submission)
        self.in_batches -= submission.requests
        self.summary.batches_collected += 1
        self.show_progress()

    async def _resend(self, parent: Submission, docs: list[DocEntry], again: dict[int, TokenUsage]) -> None:
        """`batch_retry = "realtime"`: what the batch left unanswered goes out now as Messages requests."""
        requests = []
        for index, line in self.store.params(parent, set(again)):
            doc, total = docs[index], again.pop(index)
            earlier = self.rows.cost(TokenUsage(**doc.spent)) if doc.spent else 0.0
            self.budget.settle(doc.reserved, max(0.0, self.rows.cost(total) - earlier))  # its batch answer
            if doc.sha256 is not None and self.preparer.ledger.is_done(doc.doc_id, doc.sha256):
                continue  # answered by the resend of a collection that was cut short: not paid twice
            requests.append((dataclasses.replace(doc, spent=asdict(total), reserved=0.0), line))
        self._params_gone(parent, docs, again)
        self.summary.batch_requests_resubmitted += len(requests)
        await resend_realtime(
            requests, job=self.job, transport=self.transport, rows=self.realtime_rows, budget=self.budget,
            stream=self.planner.stream, concurrency=self.config.concurrency, sleep=self.clock.sleep,
        )

    def _params_gone(self, parent: Submission, docs: list[DocEntry], missing: dict[int, TokenUsage]) -> None:
        """Requests whose params are gone from the record: an error row each; the next run sends them anew."""
        for index, spent_usage in missing.items():
            error = RequestError(
                f"could not be sent again: the params of batch {parent.tag} are gone from {self.store.folder}; "
                "the next run sends this document anew", error_type="batch_record_incomplete",
                document_id=docs[index].doc_id,
            )
            self.rows.error(docs[index], error, spent_usage)

    async def _follow_up(self, parent: Submission, docs: list[DocEntry], again: dict[int, TokenUsage]) -> None:
        chunk = Chunk()
        for index, line in self.store.params(parent, set(again)):
            doc, total = docs[index], again.pop(index)
            earlier = self.rows.cost(TokenUsage(**doc.spent)) if doc.spent else 0.0
            self.budget.settle(doc.reserved, max(0.0, self.rows.cost(total) - earlier))  # its last answer
            doc = dataclasses.replace(doc, spent=asdict(total), reserved=0.0)
            reserved = self.budget.reserve(estimate_tokens(line.decode("utf-8")), self.job.max_tokens)
            if reserved is None:  # --max-cost: not sent again; what it cost has its row, the next run sends it
                error = RequestError("--max-cost leaves no room to send it again; the next run sends it",
                                     error_type="budget", document_id=doc.doc_id)
                self.rows.error(doc, error, total)
                continue
            chunk.docs.append(dataclasses.replace(doc, attempts=doc.attempts + 1, reserved=reserved))
            chunk.params.append(line)
            chunk.bytes += len(line)
        self._params_gone(parent, docs, again)
        self.summary.batch_requests_resubmitted += len(chunk.docs)
        await self.submit(chunk, round_=parent.round + 1, parent=parent.tag, fingerprint=parent.job_fingerprint)

    # -- 3. submit -----------------------------------------------------------------------------

    async def submit(
        self, chunk: Chunk, *, round_: int = 0, parent: str | None = None, fingerprint: str | None = None
    ) -> None:
        """Record a batch, create it, record its id: a crash at any point leaves a record the next run reads."""
        for work in chunk.failed:
            assert work.error is not None
            self.rows.write(error_row(self.records, work, work.error, created_at=self.clock.wall()))
        self.chunked.extend(work.ref for work in chunk.chunked)
        if not chunk.docs:
            return
        await self._upload_documents(chunk)
        self._created += 1
        submission = Submission(
            tag=f"{self.summary.run_id}-{self._created:03d}", state="submitting", requests=len(chunk.docs),
            bytes=chunk.bytes, recorded_at=self.clock.wall().timestamp(), run_id=self.summary.run_id,
            round=round_, parent=parent, job_fingerprint=fingerprint or self.records.fingerprint,
        )
        self.store.record(submission, chunk.docs, [line + b"\n" for line in chunk.params])
        self.submissions.append(submission)
        self.claimed.update((doc.doc_id, doc.sha256) for doc in chunk.docs)
        requests = [
            {"custom_id": custom_id(submission.tag, index), "params": json.loads(line)}
            for index, line in enumerate(chunk.params)
        ]
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                info = await self.api.create(requests)
            except TransientError as exc:
                # The batch may exist though its answer was lost; a create still under way may be listed
                # only a moment later. Wait, then look, and only then create again.
                await self.clock.sleep(min(POLL_MAX_S, self.config.batch_poll_s * 2**attempt))
                if await self.find_created(submission):
                    break
                if attempt == CREATE_ATTEMPTS:
                    submission.state, submission.note = "abandoned", f"no batch was created: {exc.message}"
                    self.store.save(submission)
                    raise FatalRunError(
                        f"could not create a message batch after {attempt} attempts ({exc.message}); none was "
                        "created (the API's batch list was checked): rerun to try again"
                    ) from None
                continue
            except RequestError as exc:
                submission.state, submission.note = "abandoned", f"the API refused the batch: {exc.message}"
                self.store.save(submission)
                raise FatalRunError(f"the API refused a message batch: {exc.message}") from None
            submission.batch_id, submission.state = info.id, "submitted"
            self.store.save(submission)
            break
        self.in_batches += submission.requests
        self.summary.batches_submitted += 1
        self.summary.batch_requests += submission.requests
        self.show_progress()

    async def _upload_documents(self, chunk: Chunk) -> None:
        """Native PDFs go in a batch by `file_id`: uploaded (and recorded) before the batch is, kept until collected.

        The params recorded for follow-up batches name the same files, so files are deleted only once
        no batch of the directory is pending (`_delete_files`).
        """
        for index, document in enumerate(chunk.documents):
            if document is None:
                continue
            upload = functools.partial(self._upload, document)
            file_id, _ = await with_retries(upload, settings=self.job.retry, schema_retries=0, sleep=self.clock.sleep)
            chunk.params[index] = json.dumps(with_file_source(json.loads(chunk.params[index]), file_id)).encode()

    async def _upload(self, document: BinaryPayload, attempt: int) -> str:
        return await self.uploads.file_id(document, holder="batch")

    async def _delete_files(self) -> None:
        """Once no batch of the directory is pending, no request can name an uploaded file: delete them all."""
        self.summary.files_uploaded += self.uploads.uploaded
        if any(s.state in ("submitted", "submitting") for s in self.submissions):
            return
        await self.uploads.close()
        if self.uploads.pending():
            self.summary.files_cleaned += await self.uploads.clean()

    async def check_model(self) -> None:
        """A model docpipe's table does not know: asked of the API before a batch names it (as a realtime run does).

        One the API does not serve either (404), or that cannot give max_tokens of output, stops the
        run before anything is submitted; where the API cannot say, the batch's own answers will.
        """
        if get_model(self.job.model) is not None:
            return
        reader = getattr(self.transport, "model_limits", None)
        if reader is None:
            return
        try:
            _, max_output = await reader(self.job.model)
        except FatalRunError:
            raise
        except PipelineError:
            return
        if max_output is not None and self.job.max_tokens > max_output:
            raise FatalRunError(
                f"the job's max_tokens {self.job.max_tokens:,} exceeds {self.job.model}'s maximum output of "
                f"{max_output:,} tokens (GET /v1/models): every request would be refused; lower max_tokens"
            )

    async def submit_input(self, source: Iterator[DocumentRef]) -> None:
        await self.check_model()
        chunks = gather(
            self.prepared(source, self.stop_preparing), planner=self.planner, budget=self.budget,
            claimed=self.claimed, limit=self.config.limit, stop=self.stop_preparing, summary=self.summary,
        )
        while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
            await self.submit(chunk)

    # -- 4. wait -------------------------------------------------------------------------------

    def pending(self) -> list[Submission]:
        return [s for s in self.submissions if s.state == "submitted"]

    async def collect_ended(self) -> int:
        """Collect every pending batch that has ended; return how many are still in progress (follow-ups included)."""
        for submission in self.pending():
            assert submission.batch_id is not None
            try:
                info = await self.api.retrieve(submission.batch_id)
            except TransientError:
                continue  # asked again at the next poll
            except RequestError as exc:  # deleted, or another workspace's key: never dropped unseen
                raise FatalRunError(
                    f"{exc.message}. Its record is {self.store.folder / (submission.tag + '.json')}: run with the key "
                    "of the workspace that created it; if the batch is truly gone, move that record (and its "
                    ".docs.jsonl and .params.jsonl) out of the directory and rerun to send its documents again"
                ) from None
            if info.ended:
                await self.collect(submission)
        return len(self.pending())

    async def wait(self) -> None:
        """Poll with backoff until every batch has ended and is collected (a signal cancels the wait)."""
        delay = self.config.batch_poll_s
        while await self.collect_ended():
            self.show_progress()  # the display's clock moves while the batches run
            await self.clock.sleep(delay)
            delay = min(POLL_MAX_S, delay * POLL_GROWTH)

    async def run(self, source: Iterator[DocumentRef]) -> None:
        self.submissions = self.store.load()
        earlier = [s for s in self.submissions if s.pending]
        for submission in earlier:
            self.claimed.update((doc.doc_id, doc.sha256) for doc in self.store.docs(submission))
            if submission.state == "submitted":
                self.in_batches += submission.requests
        for submission in [s for s in earlier if s.state == "submitting"]:
            if await self.reconcile(submission):
                self.in_batches += submission.requests
            else:
                self.claimed.difference_update((doc.doc_id, doc.sha256) for doc in self.store.docs(submission))
        await self.collect_ended()
        await self.submit_input(source)
        if self.config.wait:
            await self.wait()
        await self._delete_files()
        if self.budget.refused:
            self.summary.stopped, self.summary.stop_note = "budget", self.budget.describe()
        earlier_tags = {s.tag for s in earlier}
        self.summary.batches_pending = sum(1 for s in self.submissions if s.state == "submitted")
        self.summary.batches_pending_from_earlier = sum(
            1 for s in self.submissions if s.state == "submitted" and s.tag in earlier_tags
        )


async def run_batches(
    config: RunConfig,
    source: Iterator[DocumentRef],
    *,
    transport: TransportFactory,
    writer: ResultWriter,
    preparer: Preparer,
    progress: Progress,
    summary: RunSummary,
    clock: Clock = SYSTEM_CLOCK,
    prepared: PreparedWorks | None = None,
) -> FatalRunError | EnvironmentFailure | None:
    """Run `source` through Message Batches; return the error that stopped the run, if one did.

    `prepared` turns the source into work elsewhere than in this process (`ray_engine`: Ray's tasks);
    the batches are submitted and collected here all the same."""
    run = BatchRun(
        config, transport=OnFirstUse(
            transport, TransportOptions(max_connections=config.concurrency + POOL_MARGIN), clock=clock.monotonic
        ),
        writer=writer, preparer=preparer, progress=progress, summary=summary, clock=clock, prepared=prepared,
    )
    summary.cache_note = run.planner.cache_note()
    loop = asyncio.get_running_loop()
    stop = Stop()
    installed = install_signals(loop, stop)
    task = asyncio.create_task(run.run(source))
    stop_wait = asyncio.create_task(stop.requested.wait())
    fatal: FatalRunError | EnvironmentFailure | None = None
    try:
        await asyncio.wait([task, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        if not task.done():  # a signal: every step is recorded, so stopping now loses nothing
            run.stop_preparing.set()
            task.cancel()
            summary.stopped = "interrupted"
        try:
            await task
        except asyncio.CancelledError:
            pass
        except (FatalRunError, EnvironmentFailure) as exc:
            fatal = exc
        except RequestError as exc:  # the Batches API failed (a 5xx while listing, say): every step is recorded
            fatal = FatalRunError(
                f"the Message Batches API failed: {exc.message}. Every batch is recorded in "
                f"{config.out_dir / BATCH_DIR}: rerun to go on from where this run stopped"
            )
    finally:
        stop_wait.cancel()
        run.stop_preparing.set()
        restore_signals(loop, installed)
        await run.transport.aclose()
        summary.transport_open_s = round(run.transport.open_s, 3)
    if run.chunked and fatal is None and summary.stopped is None:
        # A document in pieces needs their answers before the request that combines them: it goes through
        # Messages, under the realtime executor's own signals, limits and pieces journal, at the realtime price.
        from .realtime import run_realtime

        if config.max_cost_usd is not None:  # what the batches spent or hold reserved is not the pieces' to spend
            left = config.max_cost_usd - run.budget.spent_usd - run.budget.reserved_usd
            config = dataclasses.replace(config, max_cost_usd=max(0.0, left))
        fatal = await run_realtime(
            config, iter(run.chunked), transport=transport, writer=writer, preparer=preparer, progress=progress,
            summary=summary, clock=clock,
        )
    return fatal
