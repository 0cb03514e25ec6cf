"""The job runner: one run of a job over its input, from the output directory's lock to the exit code.

The run takes the lock, refuses another job's directory, recovers an interrupted run's journal,
opens the writer, and hands the documents to the realtime executor (`realtime.py`); whatever
happens, what is finished is published and the summary is saved with an exit code that says it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime

from .api import ApiClient
from .config import RunConfig
from .descriptors import descriptors_needed, reserve_descriptors
from .errors import EXIT_DOCUMENT_ERRORS, EXIT_INTERRUPTED, EXIT_OK, EnvironmentFailure, FatalRunError
from .journal import JournalDamage
from .limits import RateLimiter
from .lock import OutputLock
from .output import ResultWriter, load_ledger, output_schema, recover
from .progress import Progress, make_progress
from .realtime import RealtimeRun, execute
from .sources import count_documents, manifest_metadata_columns, open_source
from .summary import RunSummary, new_run_id, percentile, report_damage, write_summary

__all__ = ["RunSummary", "run"]

OFFLINE_API_KEY = "sk-docpipe-offline"
POOL_MARGIN = 8  # connections beyond --concurrency: a slow close need not hold up the next request


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
            report_damage(summary, damaged)
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
    run = RealtimeRun(config, client, limiter, writer, ledger, progress, summary)
    skipped: Counter[str] = Counter()
    source = open_source(config.input_path, include=config.include, exclude=config.exclude, skipped=skipped)
    try:
        await execute(run, source)
    finally:
        _close_writer(run)
        await client.aclose()
        summary.already_done = run.preparer.already_done
        summary.errors_unchanged = run.preparer.errors_unchanged
        summary.skipped_files = dict(skipped)
        summary.errors_by_type = dict(run.errors_by_type)
        summary.latency_p50_ms = percentile(run.latencies_ms, 50)
        summary.latency_p95_ms = percentile(run.latencies_ms, 95)
        summary.rate_limit_pauses = limiter.pauses
        summary.concurrency_decreases = limiter.decreases
        run.tally.skipped = run.preparer.skipped
        run.tally.done = summary.documents + run.preparer.skipped
        progress.close(run.tally)
        if run.fatal is not None:
            summary.fatal_error = str(run.fatal)
            summary.stopped = "fatal" if isinstance(run.fatal, FatalRunError) else "environment"


def _close_writer(run: RealtimeRun) -> None:
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
        write_summary(config.out_dir, summary)
    finally:
        lock.release()
    return summary
