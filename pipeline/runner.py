"""The job runner: one run of a job over its input, from the output directory's lock to the exit code.

The run takes the lock first, so an overlapping run leaves at once, before it pays for the SDK.
Then it refuses another job's directory, recovers an interrupted run's journal, opens the writer
and hands the documents to the executor the configuration names (`realtime.py`, `batch_mode.py`
for Message Batches, or `ray_engine.py` for a Ray Data pipeline) with the transport it was given.
Whatever happens, what is finished is published and the summary is saved with an exit code that
says it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING

from .clock import SYSTEM_CLOCK, Clock
from .config import RunConfig, claim_state_dir
from .descriptors import descriptors_needed, reserve_descriptors
from .errors import (
    EXIT_BUDGET,
    EXIT_DOCUMENT_ERRORS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PENDING,
    ConfigError,
    EnvironmentFailure,
    FatalRunError,
)
from .lock import OutputLock
from .progress import Progress, make_progress
from .sources import count_documents
from .summary import RunSummary, new_run_id, report_damage, write_summary
from .transport import POOL_MARGIN, TransportFactory, transport_for

if TYPE_CHECKING:
    from .writer import ResultWriter

__all__ = ["RunSummary", "run"]

_EXIT_CODES = {
    "fatal": FatalRunError.exit_code,
    "environment": EnvironmentFailure.exit_code,
    "interrupted": EXIT_INTERRUPTED,
    "budget": EXIT_BUDGET,
}


def run(
    config: RunConfig,
    *,
    transport: TransportFactory | None = None,
    progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> RunSummary:
    """Run a job over its input to completion (or a stop); return the summary, also saved under `_runs/`.

    `transport` is where requests go (`transport_for(config)` when None); `clock` is time as the run
    sees it. Exit codes in `summary.exit_code`: 0 every document ok, 1 some documents in error, 3 a
    fatal error stopped the run, 4 the output directory, the disk or the input failed, 5 (batch
    mode without waiting) batches of an earlier run still in progress, 6 the --max-cost budget
    stopped the run (resumable), 130 interrupted. A failure
    found before the run could start (a locked, foreign or unusable output directory, a usage
    error) is raised instead, and nothing is written.
    """
    started = clock.monotonic()
    summary = RunSummary(
        run_id=new_run_id(),
        job=config.job.name,
        job_fingerprint=config.job.fingerprint,
        backend=config.backend,
        mode=config.mode,
        max_cost_usd=config.max_cost_usd,
        started_at=clock.wall().isoformat(timespec="seconds"),
        model=config.job.model,
        model_note=config.job.model_note,
    )
    reserve_descriptors(descriptors_needed(config.concurrency + POOL_MARGIN, offline=config.offline))
    try:
        config.out_dir.mkdir(parents=True, exist_ok=True)
        lock = OutputLock(config.out_dir, run_id=summary.run_id).acquire()
        claim_state_dir(config)
    except OSError as exc:
        raise EnvironmentFailure.from_os_error(
            exc, doing="create or lock the output directory", path=config.out_dir
        ) from None
    try:
        if progress is None:  # the total is counted only for a display that shows it
            total = None if config.progress == "off" else count_documents(
                config.input_path, include=config.include, exclude=config.exclude
            )
            progress = make_progress(config.progress, total, log_every_s=config.log_every_s)
        try:
            asyncio.run(_run_async(config, summary, progress, transport or transport_for(config), clock))
        except KeyboardInterrupt:  # a signal before the run's own handlers were in place
            summary.stopped = "interrupted"
        except (EnvironmentFailure, OSError) as exc:
            failure = (
                exc
                if isinstance(exc, EnvironmentFailure)
                else EnvironmentFailure.from_os_error(exc, doing="write the output directory", path=config.out_dir)
            )
            summary.stopped, summary.fatal_error = "environment", str(failure)
        summary.wall_s = round(clock.monotonic() - started, 3)
        if summary.stopped is not None:
            summary.exit_code = _EXIT_CODES[summary.stopped]
        elif summary.errors or summary.errors_unchanged:
            summary.exit_code = EXIT_DOCUMENT_ERRORS
        else:
            summary.exit_code = EXIT_PENDING if summary.batches_pending_from_earlier else EXIT_OK
        write_summary(config.out_dir, summary, store=config.store)
    finally:
        lock.release()
    return summary


async def _run_async(
    config: RunConfig, summary: RunSummary, progress: Progress, transport: TransportFactory, clock: Clock
) -> None:
    from .batch_mode import run_batches
    from .journal import JournalDamage
    from .ledger import load_ledger
    from .output import output_schema
    from .prepare import Preparer
    from .realtime import run_realtime
    from .recovery import recover
    from .sources import manifest_metadata_columns, open_source
    from .writer import ResultWriter

    job = config.job
    schema = output_schema(job, manifest_metadata_columns(config.input_path))
    try:
        # Read-only, and first: another job's rows or a column changing type refuse the run before
        # recovery or the writer touch anything. The ledger already counts the journal's rows.
        ledger = load_ledger(config.out_dir, job, schema=schema, parts=config.parts)
        pending = _pending_batches(config)  # also read-only: a realtime run over pending batches is refused
        damaged: list[JournalDamage] = []
        summary.recovered_rows = recover(config.out_dir, schema, damaged=damaged, parts=config.parts)
        if damaged:
            report_damage(summary, damaged)
        writer = ResultWriter(config.out_dir, schema, summary.run_id, flush_rows=config.flush_rows, parts=config.parts)
    except OSError as exc:
        raise EnvironmentFailure.from_os_error(exc, doing="prepare the output directory", path=config.out_dir) from None
    if config.mode == "auto":
        config = _choose_mode(config, summary, pending=pending)
    preparer = Preparer(job, ledger)
    skipped: Counter[str] = Counter()
    source = open_source(config.input_path, include=config.include, exclude=config.exclude, skipped=skipped)
    fatal: FatalRunError | EnvironmentFailure | None = None
    try:
        if config.engine == "ray":
            from .ray_engine import run_ray, run_ray_batches

            execute = run_ray_batches if config.mode == "batch" else run_ray
        else:
            execute = run_batches if config.mode == "batch" else run_realtime
        fatal = await execute(
            config, source, transport=transport, writer=writer, preparer=preparer,
            progress=progress, summary=summary, clock=clock,
        )
    finally:
        fatal = _close_writer(writer, fatal)
        summary.already_done = preparer.already_done
        summary.errors_unchanged = preparer.errors_unchanged
        summary.skipped_files = dict(skipped)
        progress.close(summary.tally(preparer.skipped))
        if fatal is not None:
            summary.fatal_error = str(fatal)
            summary.stopped = "fatal" if isinstance(fatal, FatalRunError) else "environment"


def _pending_batches(config: RunConfig) -> int:
    """Batches of this directory not yet collected; a realtime run would pay their documents twice, so it is refused."""
    from .submissions import SubmissionStore

    pending = sum(1 for submission in SubmissionStore(config.out_dir).load() if submission.pending)
    if pending and config.mode == "realtime":
        raise ConfigError(
            f"{config.out_dir} has {pending} message batch(es) not yet collected: run with --mode batch (or auto) to "
            f"collect them, or `docpipe batches {config.out_dir} --cancel` first; a realtime run would pay for "
            "their documents again"
        )
    return pending


def _choose_mode(config: RunConfig, summary: RunSummary, *, pending: int) -> RunConfig:
    """`--mode auto`: Message Batches when the input holds `batch_above` documents or more, else realtime.

    The input's size decides, not what is left to send: knowing that would mean preparing every
    document first. An output directory with batches not yet collected always takes batch mode.
    """
    import dataclasses

    total = count_documents(config.input_path, include=config.include, exclude=config.exclude)
    if pending:
        mode, reason = "batch", f"auto: {pending} batch(es) of this directory not yet collected"
    elif total is None:
        mode, reason = "realtime", "auto: the input's size is not known in advance"
    else:
        total = total if config.limit is None else min(total, config.limit)
        mode = "batch" if total >= config.batch_above else "realtime"
        compared = "at or above" if mode == "batch" else "under"
        reason = f"auto: the input holds about {total:,} documents, {compared} --batch-above {config.batch_above:,}"
    summary.mode, summary.mode_reason = mode, reason
    return dataclasses.replace(config, mode=mode)


def _close_writer(
    writer: ResultWriter, fatal: FatalRunError | EnvironmentFailure | None
) -> FatalRunError | EnvironmentFailure | None:
    """Publish what is left. On a failing disk, the rows stay in the journal for the next run's recovery.

    Returns the error that stopped the run: the first one, which is the one a person needs to read.
    """
    try:
        writer.close()
    except OSError as exc:
        if fatal is None:
            return EnvironmentFailure.from_os_error(exc, doing="publish rows as Parquet in", path=writer.out_dir)
    except EnvironmentFailure as exc:  # object storage failed (`stores`): the rows stay in the journal
        if fatal is None:
            return exc
    return fatal
