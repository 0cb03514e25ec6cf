"""The Models endpoints and token counting: `GET /v1/models[/{id}]`, `POST /v1/messages/count_tokens`.

Both answer from fixed data (the model table in `pipeline/models.py`, the emulator's one token count
in `tokens.py`), so neither touches the limiter, the cache or the journal's billing.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ..models import MODELS, ModelSpec
from .http_base import MAX_MESSAGES_BODY, Endpoint, json_response, page_limit
from .tokens import count_request_tokens
from .validation import ApiError, merge_output_format, validate_count_tokens

__all__ = ["ModelsEndpoint"]


class ModelsEndpoint(Endpoint):
    """`/v1/models`, `/v1/models/{model_id}` and `/v1/messages/count_tokens`."""

    async def count_tokens(self, request: web.Request) -> web.Response:
        request_id = self.state.new_id("req")
        key: str | None = None
        try:
            key = self._authenticate(request)
            version = self._version(request)
            body, raw = await self._read_json(request, MAX_MESSAGES_BODY)
            if await self._endpoint_fault(request, "count_tokens", key, raw):
                self._record(request, "count_tokens", 0, request_id, key, fault="disconnect")
                return web.Response(status=500)
            self.state.files.resolve(body, key, time.time())
            validate_count_tokens(body, version, seed=self.state.config.seed)
            self._record(request, "count_tokens", 200, request_id, key)
            input_tokens = count_request_tokens(merge_output_format(body))
            return json_response({"input_tokens": input_tokens}, 200, self._headers(request_id))
        except ApiError as exc:
            self._record(request, "count_tokens", exc.status, request_id, key, error_type=exc.error_type)
            return self._error_response(exc, request_id)

    @staticmethod
    def _model_json(spec: ModelSpec) -> dict[str, Any]:
        return {
            "type": "model",
            "id": spec.id,
            "display_name": spec.display_name,
            "created_at": f"{spec.released}T00:00:00Z",
            "line": spec.line,
            "lifecycle": spec.lifecycle,
            "deprecated_at": None,
            "retires_at": None,
            "max_input_tokens": spec.max_input_tokens,
            "max_tokens": spec.max_output_tokens,
        }

    async def models_list(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            specs = sorted(MODELS.values(), key=lambda s: (s.released, s.id), reverse=True)
            ids = [s.id for s in specs]
            after, before = request.query.get("after_id"), request.query.get("before_id")
            limit = page_limit(request.query)
            if after in ids:
                specs = specs[ids.index(after) + 1 :]
            elif before in ids:
                specs = specs[: ids.index(before)][-limit:]
            page = specs[:limit]
            data = [self._model_json(s) for s in page]
            return {
                "data": data,
                "has_more": len(specs) > limit,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }

        return await self._call(request, "models", action)

    async def models_get(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            spec = MODELS.get(request.match_info["model_id"])
            if spec is None:
                raise ApiError(404, "not_found_error", f"model: {request.match_info['model_id']}")
            return self._model_json(spec)

        return await self._call(request, "models", action)
