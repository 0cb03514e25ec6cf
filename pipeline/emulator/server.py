"""The emulator's HTTP server: the Messages API contract on aiohttp.

aiohttp is the server because it gives what a faithful emulator needs and a framework would hide:
raw control of the response (SSE flushed event by event, a connection dropped without a reply,
a status line delayed), no automatic 422 bodies, and one event loop that holds thousands of idle
connections cheaply.

Request flow for `POST /v1/messages`: authenticate, check the API version, read and parse the
body, consult the fault plan, validate, account prompt caching, admit through the rate limiter,
generate, wait out the latency model, answer (JSON or SSE). Every response carries `request-id`;
every error has the real body shape.
"""

from __future__ import annotations

import asyncio
import json
import math
import string
import time
from typing import Any

from aiohttp import web

from ..models import MODELS, ModelSpec
from .batches import BatchStore
from .caching import PromptCache
from .config import EmulatorConfig
from .engine import generate, stable_hash
from .faults import FaultPlan, FaultRule
from .journal import Journal, key_id
from .ratelimit import RateLimiter
from .tokens import count_request_tokens
from .validation import API_VERSIONS, ApiError, validate_batch_create, validate_count_tokens, validate_messages

__all__ = ["EmulatorState", "build_app"]

MAX_MESSAGES_BODY = 32 * 1024 * 1024
MAX_BATCH_BODY = 256 * 1024 * 1024
STREAM_CHUNK_CHARS = 48
BODY_HASH = web.RequestKey("body_hash", int)  # the request body's hash, for the journal
HTML_413 = (
    "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
    "<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class EmulatorState:
    """Everything the server remembers; `reset()` forgets it all but the configuration."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.faults: FaultPlan = config.faults
        self.cache = PromptCache()
        self.limiter = RateLimiter(config.limits)
        self.journal = Journal(config.journal_size)
        self.batches = BatchStore(
            processing_s=config.batch_processing_s,
            expiry_s=config.batch_expiry_s,
            seed=config.seed,
            run=self.run_batch_request,
            validate=lambda params, version: self._validate_batch_params(params, version),
        )
        self.seen: dict[int, int] = {}
        self.counter = 0

    def reset(self) -> None:
        self.cache.clear()
        self.limiter.clear()
        self.journal.clear()
        self.batches.clear()
        self.seen.clear()
        self.counter = 0
        self.faults = FaultPlan(rules=self.faults.rules, seed=self.faults.seed)

    def new_id(self, prefix: str, *salt: object) -> str:
        self.counter += 1
        number = stable_hash(self.config.seed, prefix, self.counter, *salt)
        number = number << 64 | stable_hash(number)
        chars = []
        for _ in range(22):
            number, digit = divmod(number, 62)
            chars.append(BASE62[digit])
        return f"{prefix}_01{''.join(chars)}"

    @staticmethod
    def _validate_batch_params(params: dict[str, Any], version: str) -> None:
        if "stream" in params:
            raise ApiError(400, "invalid_request_error", "stream: streaming is not supported in batches")
        validate_messages(params, version)

    def run_batch_request(self, params: dict[str, Any], key: str) -> dict[str, Any]:
        spec = MODELS[params["model"]]
        generation = generate(params, spec, self.config.seed)
        tokens = count_request_tokens(params)
        usage = _usage(tokens, 0, 0, 0, generation.output_tokens, generation.thinking_tokens, "batch")
        self.journal.bill(usage)
        return _message(
            self.new_id("msg"), spec.id, generation.content, generation.stop_reason, generation.stop_sequence, usage
        )


def _usage(
    input_tokens: int, read: int, write_5m: int, write_1h: int, output: int, thinking: int, tier: str
) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output,
        "cache_creation_input_tokens": write_5m + write_1h,
        "cache_read_input_tokens": read,
        "cache_creation": {"ephemeral_5m_input_tokens": write_5m, "ephemeral_1h_input_tokens": write_1h},
        "output_tokens_details": {"thinking_tokens": thinking},
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
        "service_tier": tier,
        "inference_geo": "global",
        "speed": "standard",
    }


def _message(
    msg_id: str,
    model: str,
    content: list[dict[str, Any]],
    stop_reason: str | None,
    stop_sequence: str | None,
    usage: dict[str, Any],
    stop_details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "stop_details": stop_details,
        "container": None,
        "diagnostics": None,
        "usage": usage,
    }


def _error_body(
    error_type: str, message: str, request_id: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message, "details": details},
        "request_id": request_id,
    }


def _json_response(payload: Any, status: int, headers: dict[str, str]) -> web.Response:
    return web.Response(
        body=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
        status=status,
        headers=headers,
        content_type="application/json",
    )


class _Api:
    """Route handlers over one `EmulatorState`."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    # -- plumbing -----------------------------------------------------------------------------

    def _headers(self, request_id: str) -> dict[str, str]:
        return {"request-id": request_id, "anthropic-organization-id": "org-emulator"}

    def _authenticate(self, request: web.Request) -> str:
        api_key = request.headers.get("x-api-key")
        if not api_key:
            authorization = request.headers.get("authorization", "")
            if authorization.lower().startswith("bearer "):
                api_key = authorization[7:].strip()
        if not api_key:
            raise ApiError(401, "authentication_error", "x-api-key header is required")
        allowed = self.state.config.api_keys
        if allowed is not None and api_key not in allowed:
            raise ApiError(401, "authentication_error", "invalid x-api-key")
        return key_id(api_key)

    @staticmethod
    def _version(request: web.Request) -> str:
        version = request.headers.get("anthropic-version")
        if not version:
            raise ApiError(400, "invalid_request_error", "anthropic-version: header is required")
        if version not in API_VERSIONS:
            raise ApiError(400, "invalid_request_error", f"anthropic-version: '{version}' is not a valid version")
        return version

    @staticmethod
    async def _read_json(request: web.Request, limit: int) -> tuple[Any, bytes]:
        if request.content_length is not None and request.content_length > limit:
            raise ApiError(413, "request_too_large", "Request exceeds the maximum allowed number of bytes.")
        raw = await request.read()
        if len(raw) > limit:
            raise ApiError(413, "request_too_large", "Request exceeds the maximum allowed number of bytes.")
        try:
            return json.loads(raw), raw
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "invalid_request_error", f"There was an error parsing the body: {exc}") from exc

    def _error_response(self, exc: ApiError, request_id: str) -> web.Response:
        headers = self._headers(request_id) | exc.headers
        if exc.status == 413 and exc.details == {"html": True}:
            return web.Response(text=HTML_413, status=413, headers=headers, content_type="text/html")
        return _json_response(_error_body(exc.error_type, exc.message, request_id, exc.details), exc.status, headers)

    def _record(
        self, request: web.Request, endpoint: str, status: int, request_id: str, key: str | None, **extra: Any
    ) -> None:
        entry = {
            "t": time.time(),
            "method": request.method,
            "path": request.path,
            "endpoint": endpoint,
            "status": status,
            "retry_count": request.headers.get("x-stainless-retry-count"),
            "key": key,
            "request_id": request_id,
        }
        if BODY_HASH in request:  # the same document's attempts share it: a benchmark follows one document
            entry["body"] = f"{request[BODY_HASH] & 0xFFFFFFFFFFFF:012x}"
        entry.update(extra)
        self.state.journal.record(entry)

    def _fault_error(self, rule: FaultRule, key: str, body_hash: int, now_wall: float) -> ApiError:
        kind = rule.kind
        if kind == "rate_limit":
            self.state.journal.told_to_wait(key, body_hash, now_wall + rule.retry_after_s)
            return ApiError(
                429,
                "rate_limit_error",
                rule.message or "Number of request tokens has exceeded your per-minute rate limit",
                headers=self.state.limiter.headers(key, time.monotonic(), now_wall)
                | {"retry-after": _retry_after(rule.retry_after_s), "x-should-retry": "true"},
            )
        if kind == "overloaded":
            return ApiError(529, "overloaded_error", rule.message or "Overloaded", headers={"x-should-retry": "true"})
        if kind == "server_error":
            status = rule.statuses[stable_hash(body_hash, "status") % len(rule.statuses)]
            return ApiError(
                status,
                ERROR_TYPES.get(status, "api_error"),
                rule.message or "Internal server error",
                headers={"x-should-retry": "true"},
            )
        if kind == "request_too_large":
            return ApiError(413, "request_too_large", "Request Entity Too Large", details={"html": True})
        if kind == "spend_limit":
            return ApiError(
                429,
                "rate_limit_error",
                rule.message or "Your organization has reached its monthly spend limit.",
                headers={"x-should-retry": "false"},
                details={"error_code": "enforced_spend_limit_reached"},
            )
        if kind == "authentication":
            return ApiError(401, "authentication_error", rule.message or "invalid x-api-key")
        if kind == "permission":
            return ApiError(
                403,
                "permission_error",
                rule.message or "Your API key does not have permission to use the specified resource.",
            )
        return ApiError(400, "invalid_request_error", rule.message or "Invalid request")

    async def _endpoint_fault(self, request: web.Request, endpoint: str, key: str, raw: bytes) -> bool:
        """Apply the fault rule that fires for a request to an endpoint other than Messages.

        Error kinds raise their `ApiError`; `hang` and `slow_first_byte` wait, then let the request
        through; the kinds that only make sense for a generated message do nothing. True when the
        connection was dropped (`disconnect`) and nothing must be answered.
        """
        text = f"{request.method} {request.path_qs}\n" + raw.decode("utf-8", "replace")
        body_hash = stable_hash(endpoint, text)
        occurrence = self.state.seen.get(body_hash, 0)
        self.state.seen[body_hash] = occurrence + 1
        fault = self.state.faults.decide(endpoint, text, body_hash, occurrence, stream=False)
        if fault is None or fault.kind in ("stream_error", "stream_disconnect", "refusal", "malformed_output"):
            return False
        if fault.kind == "disconnect":
            if request.transport is not None:
                request.transport.abort()
            return True
        if fault.kind in ("hang", "slow_first_byte"):
            await asyncio.sleep(fault.seconds)
            return False
        raise self._fault_error(fault, key, body_hash, time.time())

    # -- Messages -----------------------------------------------------------------------------

    async def messages(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        arrived = time.monotonic()  # the latency model counts from here: the emulator's own work is inside it
        request_id = state.new_id("req")
        key: str | None = None
        fault: FaultRule | None = None
        early = False
        try:
            key = self._authenticate(request)
            version = self._version(request)
            body, raw = await self._read_json(request, MAX_MESSAGES_BODY)
            body_hash = stable_hash(raw)
            request[BODY_HASH] = body_hash
            occurrence = state.seen.get(body_hash, 0)
            state.seen[body_hash] = occurrence + 1
            now_wall = time.time()
            early = state.journal.check_early(key, body_hash, now_wall)
            stream = isinstance(body, dict) and body.get("stream") is True
            fault = (
                state.faults.decide("messages", raw.decode("utf-8", "replace"), body_hash, occurrence, stream=stream)
                if state.faults.rules
                else None
            )
            if fault is not None:
                if fault.kind == "disconnect":
                    self._record(request, "messages", 0, request_id, key, fault="disconnect", early=early)
                    if request.transport is not None:
                        request.transport.abort()
                    return web.Response(status=500)
                if fault.kind in ("hang", "slow_first_byte"):
                    await asyncio.sleep(fault.seconds)
                    if request.transport is None or request.transport.is_closing():
                        self._record(request, "messages", 499, request_id, key, fault=fault.kind, early=early)
                        return web.Response(status=499)
                    arrived = time.monotonic()
                elif fault.kind not in ("stream_error", "stream_disconnect", "refusal", "malformed_output"):
                    raise self._fault_error(fault, key, body_hash, now_wall)
            spec = validate_messages(body, version)
            return await self._answer(request, body, spec, key, request_id, fault, body_hash, early, arrived)
        except ApiError as exc:
            self._record(
                request,
                "messages",
                exc.status,
                request_id,
                key,
                fault=fault.kind if fault else None,
                error_type=exc.error_type,
                early=early,
            )
            return self._error_response(exc, request_id)

    async def _answer(
        self,
        request: web.Request,
        body: dict[str, Any],
        spec: ModelSpec,
        key: str,
        request_id: str,
        fault: FaultRule | None,
        body_hash: int,
        early: bool,
        arrived: float,
    ) -> web.StreamResponse:
        state = self.state
        now = time.monotonic()
        usage_split, writes = state.cache.account(body, key, spec.cache_min_tokens, now)
        reserve = int(body["max_tokens"])
        wait_s = state.limiter.admit(key, usage_split.input_tokens + usage_split.cache_creation_tokens, reserve, now)
        if wait_s > 0:
            retry_after = max(1, math.ceil(wait_s))
            state.journal.told_to_wait(key, body_hash, time.time() + retry_after)
            headers = state.limiter.headers(key, now, time.time()) | {
                "retry-after": str(retry_after),
                "x-should-retry": "true",
            }
            raise ApiError(
                429,
                "rate_limit_error",
                "This request would exceed your organization's rate limit. Please retry after the "
                "time given in the retry-after header.",
                headers=headers,
            )
        state.cache.commit(writes)
        if fault is not None and fault.kind == "refusal":
            content: list[dict[str, Any]] = []
            stop_reason, stop_sequence, output_tokens, thinking_tokens = "refusal", None, 1, 0
            stop_details: dict[str, Any] | None = {
                "type": "refusal",
                "category": None,
                "explanation": "The request was declined by the safety system.",
            }
        else:
            generation = generate(body, spec, state.config.seed)
            content = generation.content
            if fault is not None and fault.kind == "malformed_output":
                content = [b for b in content if b["type"] != "text"] + [
                    {"type": "text", "text": 'Here is the JSON you asked for: {"label": ', "citations": None}
                ]
            stop_reason, stop_sequence = generation.stop_reason, generation.stop_sequence
            output_tokens, thinking_tokens = generation.output_tokens, generation.thinking_tokens
            stop_details = None
        state.limiter.settle(key, reserve, output_tokens, time.monotonic())
        usage = _usage(
            usage_split.input_tokens,
            usage_split.cache_read_tokens,
            usage_split.cache_write_5m_tokens,
            usage_split.cache_write_1h_tokens,
            output_tokens,
            thinking_tokens,
            "standard",
        )
        message = _message(
            state.new_id("msg", body_hash), spec.id, content, stop_reason, stop_sequence, usage, stop_details
        )
        headers = self._headers(request_id) | state.limiter.headers(key, time.monotonic(), time.time())
        latency = state.config.latency
        if body.get("stream"):
            return await self._stream(request, message, headers, key, request_id, fault, early, arrived)
        delay = arrived + latency.first_token_s() + latency.tokens_s(output_tokens) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
            if request.transport is None or request.transport.is_closing():
                self._record(request, "messages", 499, request_id, key, early=early)
                return web.Response(status=499)
        self._completed(request, usage, request_id, key, fault, early, stream=False)
        return _json_response(message, 200, headers)

    def _completed(
        self,
        request: web.Request,
        usage: dict[str, Any],
        request_id: str,
        key: str,
        fault: FaultRule | None,
        early: bool,
        *,
        stream: bool,
    ) -> None:
        """A response delivered whole: bill it and journal a 200."""
        self.state.journal.bill(usage)
        self._record(
            request,
            "messages",
            200,
            request_id,
            key,
            fault=fault.kind if fault else None,
            early=early,
            stream=stream,
            input_tokens=usage["input_tokens"],
            output_tokens=usage["output_tokens"],
        )

    async def _stream(
        self,
        request: web.Request,
        message: dict[str, Any],
        headers: dict[str, str],
        key: str,
        request_id: str,
        fault: FaultRule | None,
        early: bool,
        arrived: float,
    ) -> web.StreamResponse:
        latency = self.state.config.latency
        response = web.StreamResponse(
            status=200,
            headers=headers | {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"},
        )
        first_token_in = arrived + latency.first_token_s() - time.monotonic()
        if first_token_in > 0:
            await asyncio.sleep(first_token_in)
        await response.prepare(request)

        async def send(event: str, data: dict[str, Any]) -> None:
            await response.write(f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode())

        usage = message["usage"]
        start = dict(
            message,
            content=[],
            stop_reason=None,
            stop_sequence=None,
            stop_details=None,
            usage=dict(usage, output_tokens=1),
        )
        try:
            await send("message_start", {"type": "message_start", "message": start})
            await send("ping", {"type": "ping"})
            for index, block in enumerate(message["content"]):
                if block["type"] == "thinking":
                    await send(
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": index,
                            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                        },
                    )
                    await send(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "thinking_delta", "thinking": block["thinking"]},
                        },
                    )
                    await send(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "signature_delta", "signature": block["signature"]},
                        },
                    )
                else:
                    await send(
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": index,
                            "content_block": {"type": "text", "text": "", "citations": None},
                        },
                    )
                    text = block["text"]
                    for offset in range(0, len(text), STREAM_CHUNK_CHARS):
                        chunk = text[offset : offset + STREAM_CHUNK_CHARS]
                        if latency.per_token_ms > 0:
                            await asyncio.sleep(latency.tokens_s(max(1, len(chunk) // 4)))
                        await send(
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": index,
                                "delta": {"type": "text_delta", "text": chunk},
                            },
                        )
                        if fault is not None and fault.kind == "stream_error":
                            await send(
                                "error",
                                {
                                    "type": "error",
                                    "error": {"type": "overloaded_error", "message": "Overloaded"},
                                    "request_id": request_id,
                                },
                            )
                            self._record(request, "messages", 200, request_id, key, fault="stream_error", early=early)
                            await response.write_eof()
                            return response
                        if fault is not None and fault.kind == "stream_disconnect":
                            self._record(
                                request, "messages", 200, request_id, key, fault="stream_disconnect", early=early
                            )
                            if request.transport is not None:
                                request.transport.abort()
                            return response
                await send("content_block_stop", {"type": "content_block_stop", "index": index})
            await send(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": message["stop_reason"],
                        "stop_sequence": message["stop_sequence"],
                        "stop_details": message["stop_details"],
                    },
                    "usage": {
                        "input_tokens": usage["input_tokens"],
                        "output_tokens": usage["output_tokens"],
                        "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                        "cache_read_input_tokens": usage["cache_read_input_tokens"],
                    },
                },
            )
            await send("message_stop", {"type": "message_stop"})
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            self._record(request, "messages", 499, request_id, key, early=early)
            return response
        self._completed(request, usage, request_id, key, fault, early, stream=True)
        return response

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
            validate_count_tokens(body, version)
            self._record(request, "count_tokens", 200, request_id, key)
            return _json_response({"input_tokens": count_request_tokens(body)}, 200, self._headers(request_id))
        except ApiError as exc:
            self._record(request, "count_tokens", exc.status, request_id, key, error_type=exc.error_type)
            return self._error_response(exc, request_id)

    # -- Batches ------------------------------------------------------------------------------

    def _base_url(self, request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    async def _batch_call(self, request: web.Request, endpoint: str, action: Any) -> web.Response:
        request_id = self.state.new_id("req")
        key: str | None = None
        try:
            key = self._authenticate(request)
            version = self._version(request)
            if self.state.faults.rules:
                small = request.content_length is None or request.content_length <= MAX_BATCH_BODY
                raw = await request.read() if request.can_read_body and small else b""
                if await self._endpoint_fault(request, endpoint, key, raw):
                    self._record(request, endpoint, 0, request_id, key, fault="disconnect")
                    return web.Response(status=500)
            payload = await action(key, version)
            self._record(request, endpoint, 200, request_id, key)
            if isinstance(payload, web.Response):
                payload.headers.update(self._headers(request_id))
                return payload
            return _json_response(payload, 200, self._headers(request_id))
        except ApiError as exc:
            self._record(request, endpoint, exc.status, request_id, key, error_type=exc.error_type)
            return self._error_response(exc, request_id)

    async def batch_create(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            body, _ = await self._read_json(request, MAX_BATCH_BODY)
            requests = validate_batch_create(body)
            batch = self.state.batches.create(self.state.new_id("msgbatch"), key, version, requests, time.time())
            self.state.journal.batches_created += 1
            return self.state.batches.to_json(batch, self._base_url(request))

        return await self._batch_call(request, "batches", action)

    async def batch_retrieve(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            batch = self.state.batches.get(request.match_info["batch_id"], key, time.time())
            return self.state.batches.to_json(batch, self._base_url(request))

        return await self._batch_call(request, "batches", action)

    async def batch_list(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            try:
                limit = int(request.query.get("limit", "20"))
            except ValueError as exc:
                raise ApiError(400, "invalid_request_error", "limit: Input should be a valid integer") from exc
            if not 1 <= limit <= 1000:
                raise ApiError(400, "invalid_request_error", "limit: Input should be between 1 and 1000")
            batches, has_more = self.state.batches.page(
                key,
                time.time(),
                after_id=request.query.get("after_id"),
                before_id=request.query.get("before_id"),
                limit=limit,
            )
            data = [self.state.batches.to_json(b, self._base_url(request)) for b in batches]
            return {
                "data": data,
                "has_more": has_more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }

        return await self._batch_call(request, "batches", action)

    async def batch_cancel(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            batch = self.state.batches.cancel(request.match_info["batch_id"], key, time.time())
            return self.state.batches.to_json(batch, self._base_url(request))

        return await self._batch_call(request, "batches", action)

    async def batch_delete(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            batch_id = request.match_info["batch_id"]
            self.state.batches.delete(batch_id, key, time.time())
            return {"id": batch_id, "type": "message_batch_deleted"}

        return await self._batch_call(request, "batches", action)

    async def batch_results(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            batch = self.state.batches.get(request.match_info["batch_id"], key, time.time())
            if batch.ended_at is None:
                raise ApiError(
                    400,
                    "invalid_request_error",
                    f"Batch {batch.id} is still processing; results are available once it has ended.",
                )
            lines = self.state.batches.results(batch)
            text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
            return web.Response(body=text.encode("utf-8"), headers={"content-type": "application/x-jsonl"})

        return await self._batch_call(request, "batches", action)

    # -- Models -------------------------------------------------------------------------------

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
            limit = max(1, min(1000, int(request.query.get("limit", "20"))))
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

        return await self._batch_call(request, "models", action)

    async def models_get(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            spec = MODELS.get(request.match_info["model_id"])
            if spec is None:
                raise ApiError(404, "not_found_error", f"model: {request.match_info['model_id']}")
            return self._model_json(spec)

        return await self._batch_call(request, "models", action)

    # -- Control plane ------------------------------------------------------------------------

    async def control_stats(self, request: web.Request) -> web.Response:
        return _json_response(self.state.journal.stats(), 200, {})

    async def control_requests(self, request: web.Request) -> web.Response:
        entries = list(self.state.journal.entries)
        limit = request.query.get("limit")
        if limit is not None:
            entries = entries[-int(limit) :]
        return _json_response({"data": entries}, 200, {})

    async def control_reset(self, request: web.Request) -> web.Response:
        self.state.reset()
        return _json_response({"reset": True}, 200, {})

    async def control_faults_get(self, request: web.Request) -> web.Response:
        return _json_response(self.state.faults.to_dict(), 200, {})

    async def control_faults_put(self, request: web.Request) -> web.Response:
        from ..errors import EmulatorError

        try:
            raw = json.loads(await request.read())
            self.state.faults = FaultPlan.from_dict(raw, seed=self.state.config.seed)
        except (ValueError, EmulatorError) as exc:
            return _json_response({"error": str(exc)}, 400, {})
        return _json_response(self.state.faults.to_dict(), 200, {})

    async def not_found(self, request: web.Request) -> web.Response:
        request_id = self.state.new_id("req")
        return _json_response(
            _error_body("not_found_error", f"Not Found: {request.method} {request.path}", request_id),
            404,
            self._headers(request_id),
        )


def _retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def build_app(state: EmulatorState) -> web.Application:
    """The aiohttp application serving the API and the control plane over `state`."""
    api = _Api(state)
    app = web.Application(client_max_size=MAX_BATCH_BODY + 1024)
    app.router.add_post("/v1/messages", api.messages)
    app.router.add_post("/v1/messages/count_tokens", api.count_tokens)
    app.router.add_post("/v1/messages/batches", api.batch_create)
    app.router.add_get("/v1/messages/batches", api.batch_list)
    app.router.add_get("/v1/messages/batches/{batch_id}", api.batch_retrieve)
    app.router.add_post("/v1/messages/batches/{batch_id}/cancel", api.batch_cancel)
    app.router.add_delete("/v1/messages/batches/{batch_id}", api.batch_delete)
    app.router.add_get("/v1/messages/batches/{batch_id}/results", api.batch_results)
    app.router.add_get("/v1/models", api.models_list)
    app.router.add_get("/v1/models/{model_id}", api.models_get)
    app.router.add_get("/_emulator/stats", api.control_stats)
    app.router.add_get("/_emulator/requests", api.control_requests)
    app.router.add_post("/_emulator/reset", api.control_reset)
    app.router.add_get("/_emulator/faults", api.control_faults_get)
    app.router.add_put("/_emulator/faults", api.control_faults_put)
    app.router.add_route("*", "/{tail:.*}", api.not_found)
    return app
