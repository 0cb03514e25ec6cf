"""Rows from Message Batches results: the same record code as realtime, the batch price, the budget settled.

`BatchRows` turns one result line of a batch into the document's row (ok, or error), or says the
request is worth another try (errored of a kind that passes, expired, an answer failing the job's
schema) and what it has cost so far, carried into the row it finally gets. A manifest column whose
type changed while its documents were in a batch stops the run, named, before a row that could not
be written; a row already in the ledger (a collection cut short) is not written twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from .budget import Budget
from .errors import DocumentError, EnvironmentFailure, RequestError, ResponseError
from .jobs import Job
from .journal import encode_row
from .ledger import DoneLedger
from .prepare import Work
from .pricing import TokenUsage, cost_usd
from .records import RecordContext, error_row, ok_row
from .recovery import from_json
from .refs import DocumentRef
from .requests import parse_answer
from .submissions import DocEntry
from .summary import RunSummary
from .transport import BatchResult
from .writer import ResultWriter

__all__ = ["FOLLOW_UP_ROUNDS", "RETRIED_ERRORS", "BatchRows", "doc_entry"]

FOLLOW_UP_ROUNDS = 3  # follow-up batches for errored or expired requests, per document
RETRIED_ERRORS = frozenset({"api_error", "overloaded_error", "rate_limit_error", "timeout_error"})


def doc_entry(work: Work) -> DocEntry:
    metadata = json.loads(encode_row(work.ref.metadata)) if work.ref.metadata else {}
    return DocEntry(
        doc_id=work.ref.doc_id, source=work.ref.source, sha256=work.sha256, truncated=work.truncated,
        size=work.size, mtime_ns=work.mtime_ns, metadata=metadata, input_kind=work.input_kind, pages=work.pages,
    )


def _work(doc: DocEntry) -> Work:
    """The `Work` a row is written from, rebuilt from the record (no payload: it was sent)."""
    ref = DocumentRef(doc.doc_id, doc.source, None, None, doc.metadata)
    return Work(
        ref, None, doc.sha256, doc.truncated, doc.size, doc.mtime_ns, input_kind=doc.input_kind, pages=doc.pages
    )


class BatchRows:
    """Writes the rows of batch results, and the summary and budget that follow from them."""

    def __init__(
        self,
        job: Job,
        *,
        records: RecordContext,
        writer: ResultWriter,
        ledger: DoneLedger,
        summary: RunSummary,
        budget: Budget,
        input_path: Path,
        wall: Callable[[], datetime],
        on_row: Callable[[], None],
        settles: bool = True,
    ) -> None:
        self.job = job
        self.records = records
        self.writer = writer
        self.ledger = ledger
        self.summary = summary
        self.budget = budget
        self.input_path = input_path
        self.wall = wall
        self.on_row = on_row
        self.settles = settles  # False: the sender settles each attempt itself (batch_resend)

    def _check_metadata(self, doc: DocEntry) -> None:
        """A manifest column whose type changed while its documents were in a batch stops the run, named."""
        schema = self.writer.schema
        for name in doc.metadata:
            column = self.records.column(name)
            if column not in schema.names:  # the column left the manifest: the row goes without it
                continue
            kind = schema.field(column).type
            value = from_json({column: doc.metadata[name]}, schema)[column]
            try:
                pa.array([value], type=kind)
            except (pa.ArrowException, ValueError, TypeError, OverflowError):
                raise EnvironmentFailure(
                    f"manifest column {name!r} of document {doc.doc_id!r} was {value!r} when it was submitted in a "
                    f"batch, which does not fit the column's type now ({kind}): the manifest changed while the "
                    f"batch ran. Restore the column's type in {self.input_path} and rerun to collect it",
                    path=self.input_path,
                ) from None

    def cost(self, usage: TokenUsage) -> float:
        """What `usage` costs at this writer's price (the batch discount for batch rows)."""
        return cost_usd(self.job.model, usage, batch=self.records.mode == "batch", prices=self.job.prices) or 0.0

    def _settle(self, doc: DocEntry, row: dict[str, Any]) -> None:
        """A document has its row: its reservation (0 when none) is settled at what its last answer cost.

        Earlier answers (`doc.spent`) were settled when they were sent again; a row of another run's
        batch, reserved for by nobody here, still counts as this run's spending."""
        if not self.settles:
            return
        earlier = self.cost(TokenUsage(**doc.spent)) if doc.spent else 0.0
        self.budget.settle(doc.reserved, max(0.0, (row.get("cost_usd") or 0.0) - earlier))

    def write(self, row: dict[str, Any]) -> None:
        try:
            self.writer.add(from_json(row, self.writer.schema))
        except OSError as exc:
            raise EnvironmentFailure.from_os_error(
                exc, doing="record a finished row in", path=self.writer.out_dir
            ) from None
        self.summary.count(row)
        self.on_row()

    def error(self, doc: DocEntry, error: DocumentError, usage: TokenUsage) -> None:
        self._check_metadata(doc)
        when = self.wall()
        row = error_row(self.records, _work(doc), error, created_at=when, usage=usage, attempts=doc.attempts)
        self.write(row)
        self._settle(doc, row)


    def record(self, doc: DocEntry, result: BatchResult) -> TokenUsage | None:
        """Write the row one result makes; or, for a request worth another try, return what it has cost so far."""
        spent = TokenUsage(**doc.spent)
        can_retry = doc.attempts <= FOLLOW_UP_ROUNDS
        if result.kind == "succeeded":
            assert result.message is not None
            if doc.sha256 is not None and self.ledger.is_done(doc.doc_id, doc.sha256):
                return None  # written by a collection cut short
            usage = spent + TokenUsage.from_usage(result.message.get("usage") or {})
            try:
                answer = parse_answer(self.job, result.message, document_id=doc.doc_id, request_id=None)
            except ResponseError as exc:
                if exc.error_type == "schema_mismatch" and doc.attempts <= self.job.schema_retries:
                    return usage
                self.error(doc, exc, usage)
                return None
            self._check_metadata(doc)
            row = ok_row(
                self.records, _work(doc), answer.values, result.message, created_at=self.wall(),
                usage=usage, latency_ms=None, attempts=doc.attempts, request_id=None, streamed=False,
            )
            self.write(row)
            self._settle(doc, row)
            return None
        if result.kind in ("errored", "expired") and can_retry and (
            result.kind == "expired" or result.error_type in RETRIED_ERRORS
        ):
            return spent
        if result.kind == "errored":
            error = RequestError(
                f"{result.error_type}: {result.error_message}", error_type=result.error_type or "api_error",
                document_id=doc.doc_id, request_id=result.request_id,
            )
        elif result.kind == "canceled":
            error = RequestError("the batch was canceled before this request was processed; the next run sends it",
                                 error_type="canceled", document_id=doc.doc_id)
        else:
            error = RequestError(f"the request {result.kind} in its batch {FOLLOW_UP_ROUNDS + 1} times; the next run "
                                 "sends it again", error_type=result.kind, document_id=doc.doc_id)
        self.error(doc, error, spent)
        return None
