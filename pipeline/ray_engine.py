"""The Ray Data engine (`--engine ray`): the same job as a Ray Data pipeline, written exactly once by the driver.

The pipeline::

    refs     a folder is listed by the driver (docpipe's walk: the same ids, the same files left out)
             and made a dataset; a manifest is read by Ray's own reader (`read_json`, `read_csv`,
             `read_parquet`), its rows made refs in parallel tasks (`ray_stages.refs_of_rows`)
    work     parallel tasks: extraction, hashing, the plan's fit, the ledger's anti-join
             (`ray_stages.prepare_refs`)
    rows     an actor pool (`map_batches` with `ray_stages.ApiCaller`, `concurrency=actors`): one
             async SDK client per actor and docpipe's own request code, the cluster's one limiter
             leased (`ray_limiter.py`)
    output   the driver: `iter_batches` over the streamed rows, each handed to docpipe's
             `ResultWriter`

Exactly once. The driver is the only writer, through the same `ResultWriter` as the single
machine: a row is appended to the journal (`_wal/`) and flushed before the next is taken, then
published as a Parquet part, and the runner around this executor holds the output's lock, recovers
a killed run's journal and loads the done ledger first (`runner.py`). So a run killed at any point
loses no row the driver took, and the next run's ledger skips every document with an ok row for
the same text hash and job fingerprint before it reaches an actor. What a kill can cost is the
answers in flight (paid, not yet journaled): they are asked again, as on one machine. Actors
writing parts of their own would need a second commit protocol (which part counts once an actor
is retried by Ray?); one writer needs none, and the driver's share of the work (a JSON line and a
part per thousand rows) is small next to extraction and the API.

The cluster. `ray.init(address=...)` joins a running cluster (`--address`, else `RAY_ADDRESS`,
else a local one is started and shut down after the run); a driver already connected (a notebook)
is used as it is and left connected. Files are read where the tasks run: on a cluster of several
machines, the input folder and the output directory must be on storage every node sees. With
`--offline`, the driver starts one emulator on loopback, which the actors of a one-machine
cluster reach, and which keeps one set of rate-limit buckets as the API would.

Not on Ray: `--mode batch` (Message Batches are one process's submissions; the docs say when to
use which) and `--max-cost` (its budget is one process's ledger).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .clock import SYSTEM_CLOCK, Clock
from .config import RunConfig
from .errors import EnvironmentFailure, FatalRunError, ManifestError, PipelineError
from .prepare import Preparer, Work
from .progress import Progress
from .ray_stages import StageCounts, envelope, opened, prepare_refs, refs_of_rows
from .sources import DocumentRef
from .summary import RunSummary, percentile
from .transport import TransportFactory
from .writer import ResultWriter

__all__ = [
    "ACTOR_BATCH_DOCUMENTS",
    "ACTOR_CPUS",
    "PREPARE_BATCH_DOCUMENTS",
    "run_on_ray",
    "run_ray",
]

PREPARE_BATCH_DOCUMENTS = 32  # refs a preparation task extracts at a time: a block's worth, over the cores
ACTOR_BATCH_DOCUMENTS = 16  # documents an actor takes at a time; several batches run at once per actor
ACTOR_BATCHES_IN_FLIGHT = 8  # batches an actor holds at once (its requests are bounded by --concurrency)
ACTOR_CPUS = 0.25  # an API actor waits on the network: the cores go to extraction
BLOCK_DOCUMENTS = 16  # refs per block of a listed folder: enough blocks to keep every actor busy
MAX_LISTED_BLOCKS = 10_000
RAY_NAMESPACE = "docpipe"


def run_on_ray(
    config: RunConfig,
    *,
    address: str | None = None,
    actors: int | None = None,
    transport: TransportFactory | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Run a job on Ray from a notebook or a script: `runner.run` with `--engine ray`.

    `address` is the cluster to join (else the one this process is connected to, else
    `RAY_ADDRESS`, else a new local one); `actors` the API actors (else the configuration's)::

        config = pipeline.resolve_config(pipeline.load_job(Path("jobs/triage.toml")), Path("inbox"), Path("out"))
        summary = pipeline.run_on_ray(config, actors=4)
    """
    import dataclasses

    from .config import check_engine
    from .runner import run

    check_engine("ray", max_cost_usd=config.max_cost_usd, ray_address=address, ray_actors=actors)
    ray_config = dataclasses.replace(
        config, engine="ray", ray_address=address or config.ray_address, ray_actors=actors or config.ray_actors
    )
    return run(ray_config, transport=transport, progress=progress)


async def run_ray(
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
    """Run the job on Ray; return the error that stopped it, if one did (as `realtime.run_realtime`).

    The executor's contract is the single machine's: `writer` takes every row, `preparer` holds the
    ledger (and gets the counts of documents skipped), `summary` gets what only the executor knows.
    `transport` goes to every actor (pickled); with `--offline` it is replaced by the driver's one
    emulator. The driver blocks on the dataset's stream: a signal interrupts it, and the runner
    publishes what was written.
    """
    import ray

    started = _connect(config)
    emulator: Any = None
    limiter: Any = None
    try:
        if config.offline:
            from .emulator import Emulator, EmulatorConfig
            from .offline import OFFLINE_API_KEY
            from .transport import api_transport

            emulator = Emulator(EmulatorConfig()).start()
            transport = api_transport(api_key=OFFLINE_API_KEY, base_url=emulator.base_url)
        from .ray_limiter import LIMITER_NAMESPACE, LimiterActor, limiter_name

        name = limiter_name(summary.run_id)
        limiter = ray.remote(LimiterActor).options(name=name, namespace=LIMITER_NAMESPACE, num_cpus=0).remote(
            config.rpm, config.itpm, config.otpm
        )
        ledger = ray.put(preparer.ledger)
        rows = _pipeline(config, source, transport=transport, limiter=name, run_id=summary.run_id, ledger=ledger)
        listed = config.input_path.is_dir() or _is_document(config.input_path)  # its ids are unique already
        return _drain(rows, writer=writer, preparer=preparer, progress=progress, summary=summary, unique=listed)
    finally:
        if limiter is not None:
            with contextlib.suppress(Exception):
                ray.kill(limiter)
        if emulator is not None:
            emulator.stop()
        if started:
            ray.shutdown()


async def run_ray_batches(
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
    """`--engine ray --mode batch`: documents prepared on Ray (extraction, hashing, fitting, the anti-join with
    the ledger, in parallel tasks), then batched, submitted and collected by this process's Message Batches
    executor, as on one machine. The batches do the waiting; Ray does the CPU-bound part. No actor calls
    the API, so no cluster limiter is started."""
    import ray

    from .batch_mode import run_batches

    started = _connect(config)
    try:
        ledger = ray.put(preparer.ledger)

        def prepared(refs: Iterator[DocumentRef], stop: threading.Event) -> Iterator[Work]:
            work = _prepared(config, refs, ledger=ledger)
            for batch in work.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
                for kind, item in opened(batch):
                    if kind == "work":
                        yield item
                    elif kind == "tally":
                        _fold(item, preparer, summary, [])
                if stop.is_set():
                    return

        return await run_batches(
            config, source, transport=transport, writer=writer, preparer=preparer, progress=progress,
            summary=summary, clock=clock, prepared=prepared,
        )
    finally:
        if started:
            ray.shutdown()


def _connect(config: RunConfig) -> bool:
    """Join the cluster the run names (or start a local one); True when this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    address = config.ray_address or os.environ.get("RAY_ADDRESS")
    own_sigterm = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(
            address=address, namespace=RAY_NAMESPACE, include_dashboard=False, log_to_driver=False,
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise FatalRunError(f"cannot join the Ray cluster at {address or '(a new local one)'}: {exc}") from None
    finally:
        # ray.init makes a driver's SIGTERM exit at once (code 15, no summary); docpipe's handler takes it
        # back: SIGTERM is an interruption (exit 130), what was written is published, the next run resumes.
        if threading.current_thread() is threading.main_thread() and own_sigterm is not None:
            signal.signal(signal.SIGTERM, own_sigterm)
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # docpipe's progress and summary say what happens
    return True


def _pipeline(
    config: RunConfig, source: Iterator[DocumentRef], *, transport: TransportFactory, limiter: str, run_id: str,
    ledger: Any,
) -> Any:
    """The dataset of envelopes the driver drains: refs, then work, then rows."""
    import ray.data

    from .ray_stages import ApiCaller

    work = _prepared(config, source, ledger=ledger).repartition(target_num_rows_per_block=ACTOR_BATCH_DOCUMENTS)
    return work.map_batches(
        ApiCaller,
        batch_size=ACTOR_BATCH_DOCUMENTS,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(
            size=config.ray_actors, max_concurrent_calls_per_actor=ACTOR_BATCHES_IN_FLIGHT
        ),
        num_cpus=ACTOR_CPUS,
        fn_constructor_kwargs={
            "config": config, "transport": transport, "limiter": limiter, "run_id": run_id,
        },
    )


def _prepared(config: RunConfig, source: Iterator[DocumentRef], *, ledger: Any) -> Any:
    """The dataset of work (and tallies): refs prepared in parallel tasks."""
    # Small blocks, streamed (not a shuffle): a manifest is one block to Ray's reader, and a block is one
    # task: without them, one task would prepare everything and one actor send it, its rows back at the end.
    refs = _refs(config, source).repartition(target_num_rows_per_block=PREPARE_BATCH_DOCUMENTS)
    return refs.map_batches(
        prepare_refs, batch_size=PREPARE_BATCH_DOCUMENTS, batch_format="numpy",
        fn_kwargs={"job": config.job, "ledger": ledger},
    )


def _refs(config: RunConfig, source: Iterator[DocumentRef]) -> Any:
    """The input as a dataset of refs: a folder (or one document) listed here, a manifest read by Ray's reader."""
    import ray.data

    path = config.input_path
    if path.is_dir() or _is_document(path):
        listed = envelope(("ref", ref) for ref in source)
        items = [{"kind": kind, "payload": payload} for kind, payload in zip(*listed.values(), strict=True)]
        # At least a block per actor, or Ray leaves actors idle (and says so in a warning).
        blocks = max(min(len(items), config.ray_actors), min(-(-len(items) // BLOCK_DOCUMENTS), MAX_LISTED_BLOCKS))
        return ray.data.from_items(items, override_num_blocks=max(1, blocks))
    return _manifest(path)


def _is_document(path: Path) -> bool:
    from .sources import is_document_file

    return is_document_file(path)


def _manifest(path: Path) -> Any:
    """A manifest read by Ray's reader at the types docpipe's own reader gives its columns, then made refs."""
    import pyarrow as pa
    import ray.data

    from .output import METADATA_TYPES
    from .refs import RESERVED_COLUMNS
    from .sources import manifest_metadata_columns

    kinds = manifest_metadata_columns(path)  # also checks the manifest is one (ManifestError)
    types = {name: pa.string() for name in RESERVED_COLUMNS} | {
        name: METADATA_TYPES.get(kind, pa.string()) for name, kind in kinds.items()
    }
    suffix = path.suffix.lower()
    rows: Any
    if suffix == ".csv":
        from pyarrow import csv

        rows = ray.data.read_csv(
            str(path), file_extensions=None,
            convert_options=csv.ConvertOptions(column_types=types, strings_can_be_null=True),
        )
    elif suffix == ".parquet":
        rows = ray.data.read_parquet(str(path), file_extensions=None)
    else:
        from pyarrow import json

        present = {name: kind for name, kind in types.items() if name in kinds or name == "id"}
        rows = ray.data.read_json(
            str(path), file_extensions=None,  # pyarrow reads JSON lines; `lines=True` would refuse the schema
            parse_options=json.ParseOptions(explicit_schema=pa.schema(present), unexpected_field_behavior="infer"),
        )
    return rows.map_batches(
        refs_of_rows, batch_size=PREPARE_BATCH_DOCUMENTS, batch_format="pyarrow",
        fn_kwargs={"manifest": str(path), "kinds": kinds},
    )


def _drain(
    rows: Any, *, writer: ResultWriter, preparer: Preparer, progress: Progress, summary: RunSummary, unique: bool
) -> FatalRunError | EnvironmentFailure | None:
    """Write every row the pipeline streams, once; fold its tallies; stop at a fatal error.

    Unless the input's ids are `unique` (a listed folder), the ids written are kept (8 bytes each, as
    a manifest reader keeps them) to catch an id a manifest repeats in another block.
    """
    import ray.exceptions

    latencies_ms: list[float] = []
    seen: set[int] = set()
    try:
        for batch in rows.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
            for kind, item in opened(batch):
                if kind == "row":
                    _write(writer, summary, item if unique else _unique(item, seen))
                elif kind == "tally":
                    _fold(item, preparer, summary, latencies_ms)
                elif kind == "fatal":
                    return item  # type: ignore[no-any-return]
            progress.update(summary.tally(preparer.skipped))
    except ray.exceptions.RayError as exc:
        cause = _cause(exc)
        if isinstance(cause, ManifestError):  # a manifest Ray's reader found unreadable once under way
            return EnvironmentFailure(str(cause))
        if isinstance(cause, EnvironmentFailure | FatalRunError):
            return cause
        return FatalRunError(f"the Ray pipeline failed: {_first_line(exc)}; rows written so far are kept, rerun")
    finally:
        summary.latency_p50_ms = percentile(latencies_ms, 50)
        summary.latency_p95_ms = percentile(latencies_ms, 95)
    return None


def _write(writer: ResultWriter, summary: RunSummary, row: dict[str, Any]) -> None:
    try:
        writer.add(row)
    except OSError as exc:
        raise EnvironmentFailure.from_os_error(exc, doing="record a finished row in", path=writer.out_dir) from None
    summary.count(row)


def _unique(row: dict[str, Any], seen: set[int]) -> dict[str, Any]:
    """The row, or, for an id this run already wrote (a manifest's repeated id in another block), an error row."""
    digest = int.from_bytes(hashlib.blake2b(row["doc_id"].encode("utf-8", "surrogatepass"), digest_size=8).digest())
    if digest not in seen:
        seen.add(digest)
        return row
    duplicate = f"{row['source']}#duplicate-of-{row['doc_id']}"
    return {name: None for name in row} | {
        "doc_id": duplicate,
        "source": row["source"],
        "job": row["job"],
        "job_fingerprint": row["job_fingerprint"],
        "run_id": row["run_id"],
        "backend": row["backend"],
        "created_at": row["created_at"],
        "model": row["model"],
        "mode": row["mode"],
        "status": "error",
        "error_type": "document_error",
        "error_message": f"duplicate id {row['doc_id']!r}: another row of the manifest has the same id",
    }


def _fold(tally: StageCounts, preparer: Preparer, summary: RunSummary, latencies_ms: list[float]) -> None:
    preparer.already_done += tally.already_done
    preparer.errors_unchanged += tally.errors_unchanged
    summary.requests_sent += tally.requests_sent
    summary.retries += tally.retries
    summary.rate_limit_pauses += tally.rate_limit_pauses
    summary.concurrency_decreases += tally.concurrency_decreases
    latencies_ms.extend(tally.latencies_ms)


def _cause(exc: BaseException) -> BaseException | None:
    """The docpipe error a Ray task failed with, when Ray kept it (its `cause`)."""
    cause = getattr(exc, "cause", None)
    while cause is not None and not isinstance(cause, PipelineError) and getattr(cause, "cause", None) is not None:
        cause = cause.cause
    return cause if isinstance(cause, BaseException) else None


_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours its task names


def _first_line(exc: BaseException) -> str:
    text = _TERMINAL_CODES.sub("", str(exc)).strip().splitlines()
    return text[0] if text else type(exc).__name__

