"""The Message Batches endpoints: create, list, retrieve, cancel, delete, and the results file.

The batch lifecycle itself (processing, ending, expiry, shuffled results) is `batches.py`; these
handlers put it on the wire with the real status codes and bodies. Results come back as JSONL.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .http_base import MAX_BATCH_BODY, Endpoint, page_limit
from .validation import ApiError, validate_batch_create

__all__ = ["BatchesEndpoint"]


class BatchesEndpoint(Endpoint):
    """`/v1/messages/batches` and the routes under it."""

    def _base_url(self, request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    async def batch_create(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            body, _ = await self._read_json(request, MAX_BATCH_BODY)
            requests = validate_batch_create(body)
            now = self.state.clock.wall()
            batch = self.state.batches.create(self.state.new_id("msgbatch"), key, version, requests, now)
            self.state.journal.batches_created += 1
            return self.state.batches.to_json(batch, self._base_url(request), now)

        return await self._call(request, "batches", action)

    async def batch_retrieve(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            now = self.state.clock.wall()
            batch = self.state.batches.get(request.match_info["batch_id"], key, now)
            return self.state.batches.to_json(batch, self._base_url(request), now)

        return await self._call(request, "batches", action)

    async def batch_list(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            limit = page_limit(request.query)
            now = self.state.clock.wall()
            batches, has_more = self.state.batches.page(
                key,
                now,
                after_id=request.query.get("after_id"),
                before_id=request.query.get("before_id"),
                limit=limit,
            )
            data = [self.state.batches.to_json(b, self._base_url(request), now) for b in batches]
            return {
                "data": data,
                "has_more": has_more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }

        return await self._call(request, "batches", action)

    async def batch_cancel(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            now = self.state.clock.wall()
            batch = self.state.batches.cancel(request.match_info["batch_id"], key, now)
            return self.state.batches.to_json(batch, self._base_url(request), now)

        return await self._call(request, "batches", action)

    async def batch_delete(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            batch_id = request.match_info["batch_id"]
            self.state.batches.delete(batch_id, key, self.state.clock.wall())
            return {"id": batch_id, "type": "message_batch_deleted"}

        return await self._call(request, "batches", action)

    async def batch_results(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            now = self.state.clock.wall()
            batch = self.state.batches.get(request.match_info["batch_id"], key, now)
            if batch.ended_at is None:
                raise ApiError(
                    400,
                    "invalid_request_error",
                    f"Batch {batch.id} is still processing; results are available once it has ended.",
                )
            if batch.archived(now):
                # Archived: "its results became unavailable" (MessageBatch.archived_at); the batch itself stays.
                raise ApiError(
                    404,
                    "not_found_error",
                    f"Batch {batch.id} has been archived; its results are no longer available.",
                )
            lines = self.state.batches.results(batch)
            text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
            return web.Response(body=text.encode("utf-8"), headers={"content-type": "application/x-jsonl"})

        return await self._call(request, "batches", action)
