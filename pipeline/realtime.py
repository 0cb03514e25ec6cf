"""The realtime executor: documents in hand, bounded concurrent API calls, one row per document out.

Design. One preparation thread walks the input lazily (a folder or a manifest of any size), extracts
each document's text, hashes it and checks the done ledger; only documents that need work cross into
the event loop, through a bounded queue, so memory stays flat however long the input is. A pool of
`2 x concurrency` workers takes from the queue and hands each document to `RealtimeRun.process`
(`realtime_run.py`: every request passes the shared `RateLimiter` and the one retry layer, and every
finished document, ok or error, is handed to the `ResultWriter` at once). The limiter's
`concurrency` slots bound the requests in flight; the second half of the pool keeps them busy while
documents sleep out a `retry-after` or a backoff, which hold a worker, not a slot. Documents in hand
stay bounded: the workers' and the queue's.

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
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .clock import SYSTEM_CLOCK, Clock
from .config import RunConfig
from .errors import EnvironmentFailure, FatalRunError, ManifestError, PipelineError
from .handoff import DONE, Handoff
from .limits import RateLimiter
from .prepare import Preparer
from .progress import Progress
from .realtime_run import RealtimeRun
from .sources import DocumentRef
from .stopping import Stop, install_signals, restore_signals
from .summary import RunSummary, percentile
from .tracker import OverBudget
from .transport import POOL_MARGIN, OnFirstUse, TransportFactory, TransportOptions
from .writer import ResultWriter

__all__ = ["RealtimeRun", "execute", "run_realtime"]

PROGRESS_EVERY_S = 0.5
HANDOFF_MAX_BYTES = 64 * 2**20  # documents waiting for a worker: a folder of large files holds this much, not 2 x C
WORKERS_PER_SLOT = 2  # documents in hand per request in flight: the spare ones cover documents waiting to retry


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
        except OverBudget:  # requests in flight finish (they are reserved for); nothing new starts
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
