"""A document in pieces, in the realtime executor: each piece asked, then the request that combines them.

A document too long for one request under `too_long = "chunk"` is planned as pieces plus a reduce
step (`plans.py`). Its pieces are asked concurrently, through the same admission, retry layer and
row code as any request (`realtime_run.RealtimeRun.ask`); every piece's answer is journaled
(`pieces.py`) as it comes, so a stop in the middle re-pays at most the pieces in flight, and the
next run asks only the rest. The row counts every piece's tokens and cost and the combination's.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from .errors import EnvironmentFailure, FatalRunError, RequestError, ResponseError
from .payloads import ChunkedPayload
from .pieces import PieceAnswer
from .plans import RequestSpec
from .prepare import Work
from .records import error_row, ok_row
from .tracker import NotSent, OverBudget, Tracker

if TYPE_CHECKING:
    from .realtime_run import RealtimeRun

__all__ = ["process_chunked"]


class _Pieces:
    """One chunked document's pieces: the answers kept so far, and what failures cost beyond them.

    What the document's row counts: its answered pieces (kept in the journal, this run's or an
    earlier one's) and the combining request. What a failure costs beyond them (`lost`: attempts of
    a piece that failed, a combination that failed) goes in an error row; the kept answers do not,
    as the row of the answer that uses them counts them.
    """

    def __init__(self, run: RealtimeRun, work: Work, count: int) -> None:
        assert isinstance(work.payload, ChunkedPayload)
        self.run, self.count = run, count
        self.key = (work.ref.doc_id, work.sha256 or "", run.records.fingerprint)
        self.hashes = [piece.sha256() for piece in work.payload.pieces]
        self.answers = dict(run.pieces.answered(self.key, self.hashes))
        self.lost = Tracker()

    async def ask(self, spec: RequestSpec) -> None:
        """One piece asked, its answer journaled as it comes."""
        run, tracker = self.run, Tracker()
        try:
            response, answer, _, attempts = await run.ask(spec, tracker)
        except BaseException:
            self.lost.add(tracker)
            raise
        values = json.loads(json.dumps(answer.values, default=str))  # dates as ISO text, as the reduce reads them
        piece = PieceAnswer(
            part=spec.part, pieces=self.count, piece_sha256=self.hashes[spec.part - 1], values=values,
            usage=tracker.spent, cost_usd=tracker.cost_usd, request_id=response.request_id, attempts=attempts,
        )
        try:
            run.pieces.record(self.key, piece)
        except OSError as exc:
            self.lost.add(tracker)
            raise EnvironmentFailure.from_os_error(
                exc, doing="record a piece's answer in", path=run.pieces.path
            ) from None
        self.answers[spec.part] = piece

    def total(self, combined: Tracker) -> Tracker:
        """The combining request's cost with every piece's."""
        for piece in self.answers.values():
            combined.spent = combined.spent + piece.usage
            combined.attempts += piece.attempts
            combined.cost = None if combined.cost is None or piece.cost_usd is None else combined.cost + piece.cost_usd
        return combined


async def process_chunked(
    run: RealtimeRun, work: Work, specs: list[RequestSpec], details: list[tuple[str, str]] | None = None
) -> None:
    """A document in pieces: each piece asked (unless an earlier run has its answer), then the reduce.

    Every piece's answer is journaled (`pieces.py`) as it comes, so a stop in the middle re-pays
    at most the pieces in flight. A piece that fails for good fails the document, with what its
    pieces cost; the answered ones are kept for the next run.
    """
    count = specs[0].pieces
    pieces = _Pieces(run, work, count)
    started = run.clock.monotonic()
    outcomes = await asyncio.gather(
        *(pieces.ask(spec) for spec in specs if spec.part not in pieces.answers), return_exceptions=True
    )
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if failures:
        await _fail(run, work, failures, pieces.lost, count, kept=len(pieces.answers))
        return
    answered = [pieces.answers[part].values for part in range(1, count + 1)]
    reduce_spec = run.planner.reduce(work.ref.doc_id, answered, details=details)
    tracker = Tracker()
    try:
        response, answer, _, _ = await run.ask(reduce_spec, tracker)
    except BaseException as exc:
        pieces.lost.add(tracker)
        await _fail(run, work, [exc], pieces.lost, count, kept=len(pieces.answers))
        return
    total = pieces.total(tracker)
    latency_ms = (run.clock.monotonic() - started) * 1000.0
    run.latencies_ms.append(latency_ms)
    row = ok_row(
        run.records, work, answer.values, response.message, created_at=run.clock.wall(),
        usage=total.spent, latency_ms=latency_ms, attempts=total.attempts,
        request_id=response.request_id, streamed=response.streamed, requests=count + 1,
        cost_usd=total.cost_usd,
    )
    run.write(row)
    run.pieces.finished(pieces.key)


async def _fail(
    run: RealtimeRun, work: Work, failures: list[BaseException], lost: Tracker, count: int, *, kept: int
) -> None:
    """What ends a chunked document that did not get its answer: a stop, a fatal error, or an error row.

    The row counts only what the failure cost (`lost`); the `kept` answered pieces stay in the
    journal for the next run, whose row counts them.
    """
    for failure in failures:  # the run's own stops first: no row, the next run goes on from the journal
        if isinstance(failure, (asyncio.CancelledError, FatalRunError, EnvironmentFailure, OverBudget)):
            if isinstance(failure, OverBudget):
                run.write_refused(work, lost, requests=count + 1)
            raise failure
    if any(isinstance(failure, NotSent) for failure in failures):
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
        run.records, work, failure, created_at=run.clock.wall(), usage=lost.spent,
        attempts=lost.attempts, streamed=lost.streamed, requests=count + 1, cost_usd=lost.cost_usd,
    )
    run.write(row)
