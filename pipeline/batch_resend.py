"""Requests a batch did not answer, sent again at once through Messages (job `batch_retry = "realtime"`).

When a job would rather not wait for a follow-up batch, the requests a batch left unanswered
(errored of a kind worth retrying, expired, or an answer failing the job's schema) go out as
ordinary Messages requests, at most `concurrency` at a time, through the one retry layer. Each row
says `mode = realtime` and is priced so; what the document's batch answers cost is carried into it.
The budget reserves each attempt's worst case at the realtime price. A kill meanwhile re-pays at most
the requests in flight: the batch stays uncollected, and answers already written are not asked again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from .batch_rows import BatchRows
from .budget import Budget
from .errors import RequestError, TransientError
from .jobs import Job
from .pricing import TokenUsage, cost_usd
from .requests import estimate_tokens
from .retry import with_retries
from .submissions import DocEntry
from .transport import ApiResponse, BatchResult, Transport

__all__ = ["resend_realtime"]


class _OverBudget(RequestError):
    """The attempt's worst case does not fit what is left of --max-cost."""


async def resend_realtime(
    requests: list[tuple[DocEntry, bytes]],
    *,
    job: Job,
    transport: Transport,
    rows: BatchRows,
    budget: Budget,
    stream: bool,
    concurrency: int,
    sleep: Callable[[float], Awaitable[None]],
) -> None:
    """Send each (document, params line) now; write its row through `rows` (realtime records)."""
    slots = asyncio.Semaphore(concurrency)

    async def attempt(
        params: dict[str, Any], estimated: int, doc: DocEntry, spent: list[TokenUsage], number: int
    ) -> ApiResponse:
        reserved = budget.reserve(estimated, job.max_tokens, batch=False)
        if reserved is None:
            raise _OverBudget("--max-cost reached: not sent again", error_type="budget", document_id=doc.doc_id)
        rows.summary.requests_sent += 1
        rows.summary.retries += number > 1
        usage: TokenUsage | None = None
        try:
            response = await transport.create(params, stream=stream, timeout_s=job.timeout_s, document_id=doc.doc_id)
            usage = TokenUsage.from_usage(response.message.get("usage") or {})
            spent[0] = spent[0] + usage
            return response
        finally:
            budget.settle(reserved, cost_usd(job.model, usage, prices=job.prices) if usage else None)

    async def one(doc: DocEntry, line: bytes) -> None:
        params, estimated = json.loads(line), estimate_tokens(line.decode("utf-8"))
        async with slots:
            while True:
                spent = [TokenUsage(**doc.spent)]
                send = functools.partial(attempt, params, estimated, doc, spent)
                try:
                    response, attempts = await with_retries(
                        send, settings=job.retry, schema_retries=0, sleep=sleep
                    )
                except _OverBudget:
                    return  # no row: the document is not done, and the next run sends it
                except (TransientError, RequestError) as exc:
                    rows.error(doc, exc, spent[0])
                    return
                doc = dataclasses.replace(doc, attempts=doc.attempts + attempts)
                result = BatchResult(doc.doc_id, "succeeded", message={**response.message, "usage": {}})
                again = rows.record(dataclasses.replace(doc, spent=asdict(spent[0])), result)
                if again is None:
                    return
                doc = dataclasses.replace(doc, spent=asdict(again))  # an answer failing the schema: asked again

    results = await asyncio.gather(*(one(doc, line) for doc, line in requests), return_exceptions=True)
    for outcome in results:  # a fatal error, a failing disk: the first one stops the run
        if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
            raise outcome
