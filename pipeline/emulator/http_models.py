"""The Models endpoints and token counting: `GET /v1/models[/{id}]`, `POST /v1/messages/count_tokens`.

Both answer from fixed data (the model table through `model_catalog.py`, the emulator's one token
count in `tokens.py`), so neither touches the limiter, the cache or the journal's billing.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from .canonical import request_scope
from .http_base import MAX_MESSAGES_BODY, Endpoint, json_response
from .model_catalog import model_page, retrieve_model
from .tokens import count_request_tokens
from .validation import ApiError, merge_output_format, validate_count_tokens

__all__ = ["ModelsEndpoint"]


class ModelsEndpoint(Endpoint):
    """`/v1/models`, `/v1/models/{model_id}` and `/v1/messages/count_tokens`."""

    async def count_tokens(self, request: web.Request) -> web.Response:
        with request_scope():  # the request's canonical JSON, computed once (`canonical.py`)
            return await self._count_tokens(request)

    async def _count_tokens(self, request: web.Request) -> web.Response:
        request_id = self.state.new_id("req")
        key: str | None = None
        try:
            key = self._authenticate(request)
            version = self._version(request)
            body, raw = await self._read_json(request, MAX_MESSAGES_BODY)
            if await self._endpoint_fault(request, "count_tokens", key, raw):  # counting has no effect to keep
                if request.transport is not None:
                    request.transport.abort()
                self._record(request, "count_tokens", 0, request_id, key, fault="disconnect")
                return web.Response(status=500)
            self.state.files.resolve(body, key, time.time())
            validate_count_tokens(body, version, seed=self.state.config.seed, lookup=self.state.config.model)
            self._record(request, "count_tokens", 200, request_id, key)
            input_tokens = count_request_tokens(merge_output_format(body))
            return json_response({"input_tokens": input_tokens}, 200, self._headers(request_id))
        except ApiError as exc:
            self._record(request, "count_tokens", exc.status, request_id, key, error_type=exc.error_type)
            return self._error_response(exc, request_id)

    async def models_list(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            lifecycle = request.query.getall("lifecycle[]", []) + request.query.getall("lifecycle", [])
            return model_page(request.query, lifecycle, served=self.state.config.models)

        return await self._call(request, "models", action)

    async def models_get(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            return retrieve_model(request.match_info["model_id"], lookup=self.state.config.model)

        return await self._call(request, "models", action)
