"""The Message Batches API through the official SDK (`client.messages.batches`), as plain data.

`SdkBatches` implements `transport.BatchApi` over one `AsyncAnthropic` client of `api.ApiClient`,
which imports the SDK; errors are translated by `api.translate_error`, as for a Messages request,
except that a batch the API does not know (404) is a `RequestError` of type `not_found_error`
naming the batch: it says nothing about the model or the key, unlike a 404 from Messages.
The SDK's own retries are off here too: the batch executor decides what to try again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import anthropic

from .api import translate_error
from .errors import PipelineError, RequestError
from .transport import BatchInfo, BatchResult

__all__ = ["SdkBatches"]

LIST_PAGE = 100  # batches asked for a page at a time when the list is searched
TIMEOUT_S = 600.0  # a 256 MB create or a large results file may take minutes to move


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def batch_info(batch: Any) -> BatchInfo:
    """The SDK's `MessageBatch` as docpipe's `BatchInfo`."""
    counts = batch.request_counts
    return BatchInfo(
        id=batch.id,
        processing_status=batch.processing_status,
        counts={
            "processing": counts.processing,
            "succeeded": counts.succeeded,
            "errored": counts.errored,
            "canceled": counts.canceled,
            "expired": counts.expired,
        },
        created_at=_iso(batch.created_at) or "",
        ended_at=_iso(batch.ended_at),
        expires_at=_iso(batch.expires_at),
        archived_at=_iso(batch.archived_at),
    )


def batch_result(item: Any) -> BatchResult:
    """One `MessageBatchIndividualResponse` as docpipe's `BatchResult`."""
    result = item.result
    if result.type == "succeeded":
        return BatchResult(item.custom_id, "succeeded", message=result.message.model_dump(mode="json"))
    if result.type == "errored":
        response = result.error  # ErrorResponse: {"type": "error", "error": {...}, "request_id"}
        inner = getattr(response, "error", None)
        return BatchResult(
            item.custom_id,
            "errored",
            error_type=getattr(inner, "type", None) or "api_error",
            error_message=getattr(inner, "message", None) or "the request failed in the batch",
            request_id=getattr(response, "request_id", None),
        )
    return BatchResult(item.custom_id, str(result.type))


def _translated(exc: Exception, batch_id: str | None = None) -> PipelineError:
    if isinstance(exc, PipelineError):
        return exc
    if isinstance(exc, anthropic.NotFoundError) and batch_id is not None:
        return RequestError(
            f"message batch {batch_id} not found (404): it was deleted, or belongs to another workspace or key",
            error_type="not_found_error",
            status=404,
            request_id=exc.request_id,
        )
    return translate_error(exc)


class SdkBatches:
    """`transport.BatchApi` through one SDK client."""

    def __init__(self, client: anthropic.AsyncAnthropic) -> None:
        self._batches = client.messages.batches

    async def create(self, requests: list[dict[str, Any]]) -> BatchInfo:
        try:
            return batch_info(await self._batches.create(requests=requests, timeout=TIMEOUT_S))  # type: ignore[arg-type]
        except Exception as exc:
            raise _translated(exc) from None

    async def retrieve(self, batch_id: str) -> BatchInfo:
        try:
            return batch_info(await self._batches.retrieve(batch_id))
        except Exception as exc:
            raise _translated(exc, batch_id) from None

    async def list(self) -> AsyncIterator[BatchInfo]:
        try:
            async for batch in self._batches.list(limit=LIST_PAGE):
                yield batch_info(batch)
        except Exception as exc:
            raise _translated(exc) from None

    async def cancel(self, batch_id: str) -> BatchInfo:
        try:
            return batch_info(await self._batches.cancel(batch_id))
        except Exception as exc:
            raise _translated(exc, batch_id) from None

    async def results(self, batch_id: str) -> AsyncIterator[BatchResult]:
        try:
            async for item in await self._batches.results(batch_id, timeout=TIMEOUT_S):
                yield batch_result(item)
        except Exception as exc:
            raise _translated(exc, batch_id) from None
