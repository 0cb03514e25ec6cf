"""Records: the output row of a document, from what it is, what was asked, and what came back.

Pure functions over plain data, shared by every executor: a realtime run, a batch and a distributed
engine write the same rows through here. The row's columns are the output schema's
(`output.output_schema`); the run summary is folded from the rows (`RunSummary.count`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import DocumentError
from .jobs import Job
from .output import metadata_column_names
from .prepare import Work
from .pricing import TokenUsage
from .pricing import cost_usd as price

__all__ = ["RecordContext", "error_row", "ok_row"]


@dataclass
class RecordContext:
    """What every row of a run shares."""

    job: Job
    run_id: str
    backend: str
    metadata_columns: dict[str, str] = field(default_factory=dict)  # manifest column -> output column, as seen
    mode: str = "realtime"  # or "batch": priced at the batch discount
    fingerprint: str = field(init=False)  # the job's, hashed once a run rather than once a row

    def __post_init__(self) -> None:
        self.fingerprint = self.job.fingerprint

    def column(self, name: str) -> str:
        column = self.metadata_columns.get(name)
        if column is None:
            column = self.metadata_columns[name] = metadata_column_names([name], self.job)[name]
        return column


def _base_row(context: RecordContext, work: Work, created_at: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {
        "doc_id": work.ref.doc_id,
        "source": work.ref.source,
        "doc_sha256": work.sha256,
        "job": context.job.name,
        "job_fingerprint": context.fingerprint,
        "run_id": context.run_id,
        "backend": context.backend,
        "created_at": created_at,
        "truncated": work.truncated,
        "input_kind": work.input_kind,
        "input_pages": work.pages,
        "source_size": work.size,
        "source_mtime_ns": work.mtime_ns,
        "model": context.job.model,
        "mode": context.mode,
    }
    for name, value in work.ref.metadata.items():
        row[context.column(name)] = value
    return row


def _cost(context: RecordContext, usage: TokenUsage) -> float | None:
    return price(context.job.model, usage, batch=context.mode == "batch", prices=context.job.prices)


def _usage_columns(usage: TokenUsage, cost: float | None) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cost_usd": cost,
    }


def error_row(
    context: RecordContext,
    work: Work,
    error: DocumentError,
    *,
    created_at: datetime,
    usage: TokenUsage | None = None,
    attempts: int = 0,
    streamed: bool | None = None,
    requests: int | None = None,
    cost_usd: float | None = None,
) -> dict[str, Any]:
    """The row of a document that ended in error; tokens it spent on the way are billed to it.

    A chunked document's row gives the requests it was planned to take (`requests`) and the cost of
    those it paid for, priced request by request (`cost_usd`).
    """
    usage = usage or TokenUsage()
    spent = usage.prompt_tokens or usage.output_tokens
    cost = cost_usd if cost_usd is not None else _cost(context, usage) if spent else None
    return (
        _base_row(context, work, created_at)
        | {
            "status": "error",
            "error_type": getattr(error, "error_type", "document_error"),
            "error_message": error.message,
            "request_id": error.request_id,
            "attempts": attempts,
            "streamed": streamed,
            "request_count": requests,
        }
        | _usage_columns(usage, cost)
    )


def ok_row(
    context: RecordContext,
    work: Work,
    values: Mapping[str, Any],
    message: Mapping[str, Any],
    *,
    created_at: datetime,
    usage: TokenUsage,
    latency_ms: float | None,
    attempts: int,
    request_id: str | None,
    streamed: bool,
    requests: int = 1,
    cost_usd: float | None = None,
) -> dict[str, Any]:
    """The row of an answered document: the job's fields, the answer's provenance, its tokens and cost.

    A chunked document's row counts every request it took (`requests`) and their tokens; its cost
    is priced request by request (`cost_usd`), as a long-prompt tier applies per request.
    """
    return (
        _base_row(context, work, created_at)
        | dict(values)
        | {
            "status": "ok",
            "model": message.get("model") or context.job.model,
            "stop_reason": message.get("stop_reason"),
            "latency_ms": round(latency_ms, 1) if latency_ms is not None else None,
            "attempts": attempts,
            "request_id": request_id,
            "streamed": streamed,
            "request_count": requests,
        }
        | _usage_columns(usage, cost_usd if cost_usd is not None else _cost(context, usage))
    )
