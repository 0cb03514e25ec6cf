"""The stages of a run on Ray Data: manifest rows to refs, refs to work, work to rows.

Each stage is docpipe's own code run where Ray puts it:

- `refs_of_rows` (a task): a block of manifest rows, as Ray's reader read them, becomes document
  refs through the rules of `refs.ManifestRows` (the id, exactly one of `path` and `text`, a path
  inside the manifest's folder, valid Unicode, a metadata value of its column's type);
- `prepare_refs` (a task): refs become work through `prepare.Preparer`: extraction, hashing, the
  fit to the job's budget, and the done ledger's anti-join (a document with an ok row for the same
  text hash under this job's fingerprint is skipped: it never reaches an actor);
- `ApiCaller` (an actor pool): each actor holds one async SDK client and one
  `realtime_run.RealtimeRun`, whose `process` is the single machine's request code: planning,
  counting, chunking, the one retry layer, the limiter (here leased from the cluster's one,
  `ray_limiter.py`) and the rows of `records.py`, ok or error.

What crosses between stages is an envelope of two columns, `kind` and `payload` (pickled:
docpipe's objects as they are, on a cluster that runs one docpipe): `ref`, `work`, `row`, `tally`
(documents skipped and requests counted, summed by the driver) and `fatal` (a bad key, an API
unreachable: the driver stops the run). A document never raises out of a stage: what fails for one
document is its error row.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import pickle
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import RunConfig
from .errors import EnvironmentFailure, FatalRunError
from .jobs import Job
from .ledger import DoneLedger
from .prepare import Preparer, Work
from .progress import NullProgress
from .refs import KIND_NAMES, RESERVED_COLUMNS, DocumentRef, ManifestRows, type_name
from .summary import RunSummary
from .transport import POOL_MARGIN, OnFirstUse, TransportFactory, TransportOptions

__all__ = [
    "ApiCaller",
    "Envelope",
    "StageCounts",
    "envelope",
    "opened",
    "prepare_refs",
    "refs_of_rows",
]

UNREACHABLE_CHECK_S = 1.0  # how often an actor looks at how long the API has been unreachable
Envelope = dict[str, list[Any]]  # the columns a stage hands on: kind, payload


@dataclass(slots=True)
class StageCounts:
    """What a stage counted that is not a row: summed by the driver into the run's summary."""

    already_done: int = 0
    errors_unchanged: int = 0
    requests_sent: int = 0
    retries: int = 0
    rate_limit_pauses: int = 0
    concurrency_decreases: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def __bool__(self) -> bool:
        counts = (self.already_done, self.errors_unchanged, self.requests_sent, self.retries, self.rate_limit_pauses)
        return any(counts) or bool(self.concurrency_decreases or self.latencies_ms)


def envelope(items: Iterable[tuple[str, Any]]) -> Envelope:
    """A batch of (kind, object) as a stage hands it on."""
    kinds: list[str] = []
    payloads: list[bytes] = []
    for kind, item in items:
        kinds.append(kind)
        payloads.append(pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))
    return {"kind": kinds, "payload": payloads}


def opened(batch: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """The (kind, object) pairs of a batch a stage handed on."""
    for kind, payload in zip(batch["kind"], batch["payload"], strict=True):
        yield str(kind), pickle.loads(payload)


# -- manifest rows to refs -----------------------------------------------------------------------


def refs_of_rows(batch: Any, *, manifest: str, kinds: Mapping[str, str]) -> Envelope:
    """A block of manifest rows (a pyarrow table, as Ray's reader gave it) as refs.

    Ray's readers do not keep line numbers: a row whose id cannot name it is named by a hash of its
    content (`<manifest>:<n>`), the same in every run. Ids repeated across blocks are caught by
    the driver (`ray_engine.py`), as one block does not see another.
    """
    rows = ManifestRows(Path(manifest), "row")
    refs: list[tuple[str, DocumentRef]] = []
    for fields in batch.to_pylist():
        metadata = {name: value for name, value in fields.items() if name not in RESERVED_COLUMNS}
        problem = next(
            (
                f"column {name!r}: expected {KIND_NAMES[kind]}, got {type_name(metadata[name])}"
                for name, kind in kinds.items()
                if metadata.get(name) is not None and not _fits(metadata[name], kind)
            ),
            None,
        )
        refs.append(("ref", rows.ref(_row_number(fields), fields, metadata, problem)))
    return envelope(refs)


def _fits(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int64":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float64":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


def _row_number(fields: Mapping[str, Any]) -> int:
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode("utf-8", "surrogatepass"))
    return int.from_bytes(digest.digest()[:4], "big")


# -- refs to work --------------------------------------------------------------------------------


def prepare_refs(batch: Mapping[str, Any], *, job: Job, ledger: Any) -> Envelope:
    """Refs to work: extracted, hashed, fitted; those the ledger has done are counted, not handed on.

    `ledger` is the driver's `DoneLedger`, or a Ray object reference to it (read once per worker).
    """
    preparer = Preparer(job, _ledger(ledger))
    refs = [item for kind, item in opened(batch) if kind == "ref"]
    out: list[tuple[str, Any]] = [("work", work) for work in preparer.works(refs)]
    tally = StageCounts(already_done=preparer.already_done, errors_unchanged=preparer.errors_unchanged)
    if tally:
        out.append(("tally", tally))
    return envelope(out)


_LEDGERS: dict[str, DoneLedger] = {}


def _ledger(ledger: Any) -> DoneLedger:
    if isinstance(ledger, DoneLedger):
        return ledger
    import ray

    key = ledger.hex()
    if key not in _LEDGERS:
        _LEDGERS.clear()  # one run's ledger per worker process at a time
        _LEDGERS[key] = ray.get(ledger)
    return _LEDGERS[key]


# -- work to rows --------------------------------------------------------------------------------


_batch_rows: contextvars.ContextVar[list[dict[str, Any]]] = contextvars.ContextVar("docpipe_batch_rows")


class _BatchRows:
    """The `RowSink` of an actor's run: each row goes back with the batch whose document it is."""

    def __init__(self, out_dir: Path) -> None:
        self._out_dir = out_dir

    @property
    def out_dir(self) -> Path:
        return self._out_dir

    def add(self, row: dict[str, Any]) -> None:
        _batch_rows.get().append(row)


class ApiCaller:
    """One actor of the API pool: one async SDK client, one `RealtimeRun`, the cluster's limiter leased.

    `__call__` is a coroutine: Ray runs it on the actor's event loop, several batches at once,
    and the run's limiter bounds the requests in flight (`config.concurrency` per actor).
    """

    def __init__(
        self,
        *,
        config: RunConfig,
        transport: TransportFactory,
        limiter: str,
        run_id: str,
    ) -> None:
        """`limiter` names the run's limiter actor; the preparation's ledger is not needed here: the work is."""
        import ray

        from .ray_limiter import LIMITER_NAMESPACE, LeasedLimiter, RayLeaseOwner
        from .realtime_run import RealtimeRun

        owner = RayLeaseOwner(ray.get_actor(limiter, namespace=LIMITER_NAMESPACE))
        self.limiter = LeasedLimiter(owner, max_concurrency=config.concurrency)
        options = TransportOptions(
            max_connections=config.concurrency + POOL_MARGIN,
            on_headers=self.limiter.observe_headers,
            on_connected=self.limiter.responded,
        )
        self.summary = RunSummary(
            run_id=run_id, job=config.job.name, job_fingerprint=config.job.fingerprint, backend=config.backend,
            started_at="",
        )
        self.run = RealtimeRun(
            config, transport=OnFirstUse(transport, options), limiter=self.limiter,
            writer=_BatchRows(config.out_dir), preparer=Preparer(config.job, DoneLedger(config.job.fingerprint)),
            progress=NullProgress(), summary=self.summary,
        )
        self._reported = StageCounts()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._fatal_told = False

    async def __call__(self, batch: Mapping[str, Any]) -> Envelope:
        if self._watchdog is None:
            self._watchdog = asyncio.create_task(self._watch_reachability())
            # Opened before the first request is admitted: the SDK's import takes seconds on a busy node, and a
            # lease taken that long before its request is sent would be refilled here before the API counts it.
            _ = self.run.transport.base_url
        rows: list[dict[str, Any]] = []
        passed: list[tuple[str, Any]] = []
        works: list[Work] = []
        for kind, item in opened(batch):
            if kind == "work":
                works.append(item)
            else:  # the preparation's tallies go on to the driver
                passed.append((kind, item))
        if self.run.fatal is None:
            context = contextvars.copy_context()
            context.run(_batch_rows.set, rows)
            tasks = [asyncio.create_task(self._process(work), context=context) for work in works]
            self._in_flight.update(tasks)
            try:
                outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            finally:
                self._in_flight.difference_update(tasks)
            for outcome in outcomes:  # a bug, not a document's failure (those are rows): Ray reports it
                if isinstance(outcome, Exception):
                    raise outcome
        out: list[tuple[str, Any]] = [*passed, *(("row", row) for row in rows)]
        if (tally := self._tally()):
            out.append(("tally", tally))
        if self.run.fatal is not None and not self._fatal_told:
            self._fatal_told = True
            out.append(("fatal", self.run.fatal))
        return envelope(out)

    async def _process(self, work: Work) -> None:
        try:
            await self.run.process(work)
        except (FatalRunError, EnvironmentFailure) as exc:  # dooms every document: no row, the driver stops
            self.run.fatal = self.run.fatal or exc
            self.run.stop_taking.set()

    async def _watch_reachability(self) -> None:
        """As the single machine's watchdog: an API that gave no response for `unreachable_s` stops the run."""
        bound_s = self.run.config.unreachable_s
        while self.limiter.unreachable_for_s() < bound_s:
            await asyncio.sleep(UNREACHABLE_CHECK_S)
        self.run.fatal = self.run.fatal or FatalRunError(
            f"no response from the API for {self.limiter.unreachable_for_s():.0f} s: every request failed to connect "
            f"(last: {self.run.connection_failure}). Check ANTHROPIC_BASE_URL, the network and any proxy, then rerun"
        )
        self.run.stop_taking.set()
        for task in list(self._in_flight):  # the documents in hand have no row: the next run sends them
            task.cancel()

    def _tally(self) -> StageCounts:
        """What this actor counted since its last report (each count reported once: one event loop)."""
        summary, limiter, reported = self.summary, self.limiter, self._reported
        tally = StageCounts(
            requests_sent=summary.requests_sent - reported.requests_sent,
            retries=summary.retries - reported.retries,
            rate_limit_pauses=limiter.pauses - reported.rate_limit_pauses,
            concurrency_decreases=limiter.decreases - reported.concurrency_decreases,
            latencies_ms=self.run.latencies_ms,
        )
        self.run.latencies_ms = []
        reported.requests_sent, reported.retries = summary.requests_sent, summary.retries
        reported.rate_limit_pauses, reported.concurrency_decreases = limiter.pauses, limiter.decreases
        return tally
