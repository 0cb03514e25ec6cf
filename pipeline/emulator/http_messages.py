"""The Messages endpoint, `POST /v1/messages`: the answer, JSON or streamed, and the faults around it.

Request flow: authenticate, check the API version, read and parse the body, consult the fault plan,
validate, account prompt caching, admit through the rate limiter, generate, wait out the latency
model, answer (JSON or SSE). The latency model counts from the request's arrival, so the
emulator's own work is inside it. The response "starts" after the time to first token (when a
stream sends `message_start`): only then do its prompt-cache writes become readable to other
requests, so identical requests sent together each pay the write, as on the real API. A fault rule
may act before validation (errors, a dropped connection, a hang), shape the answer (a refusal,
malformed JSON), or break the stream after its first text chunk (an `error` event, or a dropped
connection).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..models import ModelSpec
from .batches import MALFORMED_TEXT
from .bodies import message_json, usage_json
from .caching import CacheUsage, PendingWrite
from .canonical import request_scope
from .engine import Generation, generate
from .faults import FaultRule
from .hashing import bytes_hash
from .http_base import ANSWER_FAULT_KINDS, BODY_HASH, MAX_MESSAGES_BODY, Endpoint, json_response
from .http_guard import OPEN_STREAM
from .streaming import encode_event, is_text_delta, message_events
from .validation import ApiError, merge_output_format, validate_messages

__all__ = ["MessagesEndpoint"]

REFUSAL_DETAILS = {
    "type": "refusal",
    "category": None,
    "explanation": "The request was declined by the safety system.",
}


@dataclass(slots=True)
class _Exchange:
    """One Messages request in flight: what its journal entries and its answer need."""

    request: web.Request
    arrived: float  # monotonic; the latency model counts from here
    request_id: str
    key: str | None = None
    body_hash: int = 0
    arrived_wall: float = 0.0
    early: bool = False  # back before the retry-after its last 429 gave it
    fault: FaultRule | None = None


class MessagesEndpoint(Endpoint):
    """`POST /v1/messages`."""

    async def messages(self, request: web.Request) -> web.StreamResponse:
        with request_scope():  # the request's canonical JSON, computed once (`canonical.py`)
            return await self._messages(request)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        call = _Exchange(request, arrived=time.monotonic(), request_id=self.state.new_id("req"))
        try:
            call.key = key = self._authenticate(request)
            version = self._version(request)
            body, raw = await self._read_json(request, MAX_MESSAGES_BODY)
            self._arrive(call, key, body, raw)
            if call.fault is not None:
                cut = await self._fault_before_answer(call, key, call.fault)
                if cut is not None:
                    return cut
            self.state.files.resolve(body, key, call.arrived_wall)
            spec = validate_messages(body, version, seed=self.state.config.seed, lookup=self.state.config.model)
            return await self._answer(call, key, merge_output_format(body), spec)
        except ApiError as exc:
            self._record(
                request,
                "messages",
                exc.status,
                call.request_id,
                call.key,
                fault=call.fault.kind if call.fault else None,
                error_type=exc.error_type,
                early=call.early,
            )
            return self._error_response(exc, call.request_id)

    def _arrive(self, call: _Exchange, key: str, body: Any, raw: bytes) -> None:
        """Count the body's arrival, note an early retry, and draw the fault rule that fires, if any."""
        state = self.state
        call.body_hash = body_hash = bytes_hash(raw)
        call.request[BODY_HASH] = body_hash
        occurrence = state.seen.get(body_hash, 0)
        state.seen[body_hash] = occurrence + 1
        call.arrived_wall = time.time()
        call.early = state.journal.check_early(key, body_hash, call.arrived_wall)
        stream = isinstance(body, dict) and body.get("stream") is True
        call.fault = (
            state.faults.decide("messages", raw.decode("utf-8", "replace"), body_hash, occurrence, stream=stream)
            if state.faults.rules
            else None
        )

    async def _fault_before_answer(self, call: _Exchange, key: str, fault: FaultRule) -> web.Response | None:
        """Act on a fault that strikes before validation: a response when the request ends here."""
        request = call.request
        if fault.kind == "disconnect":
            self._record(request, "messages", 0, call.request_id, key, fault="disconnect", early=call.early)
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        if fault.kind in ("hang", "slow_first_byte"):
            await asyncio.sleep(fault.seconds)
            if request.transport is None or request.transport.is_closing():
                self._record(request, "messages", 499, call.request_id, key, fault=fault.kind, early=call.early)
                return web.Response(status=499)
            call.arrived = time.monotonic()
        elif fault.kind not in ANSWER_FAULT_KINDS:
            raise self._fault_error(fault, key, call.body_hash, call.arrived_wall)
        return None

    async def _answer(self, call: _Exchange, key: str, body: dict[str, Any], spec: ModelSpec) -> web.StreamResponse:
        state = self.state
        usage_split, reserve, pending = self._admit(call, key, body, spec)
        generation, stop_details = self._generate(call.fault, body, spec)
        state.limiter.settle(key, reserve, generation.output_tokens, state.clock.monotonic())
        usage = usage_json(
            usage_split.input_tokens,
            usage_split.cache_read_tokens,
            usage_split.cache_write_5m_tokens,
            usage_split.cache_write_1h_tokens,
            generation.output_tokens,
            generation.thinking_tokens,
            "standard",
        )
        message = message_json(
            state.new_id("msg", call.body_hash),
            spec.id,
            generation.content,
            generation.stop_reason,
            generation.stop_sequence,
            usage,
            stop_details,
        )
        headers = self._headers(call.request_id) | state.limiter.headers(
            key, state.clock.monotonic(), state.clock.wall()
        )
        latency = state.config.latency
        if body.get("stream"):
            return await self._stream(call, message, headers, pending)
        if not await self._first_token(call):
            return self._left(call)
        state.cache.publish(pending, state.clock.monotonic())  # the response has begun
        delay = call.arrived + latency.first_token_s() + latency.tokens_s(generation.output_tokens) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
            if _gone(call.request):
                return self._left(call)
        self._completed(call, usage, stream=False)
        return json_response(message, 200, headers)

    async def _first_token(self, call: _Exchange) -> bool:
        """Wait until the latency model's time to first token; False if the client left meanwhile."""
        wait_s = call.arrived + self.state.config.latency.first_token_s() - time.monotonic()
        if wait_s > 0:
            await asyncio.sleep(wait_s)
        return not _gone(call.request)  # with no wait too: a client gone already is billed nothing

    def _left(self, call: _Exchange) -> web.Response:
        """A client that left before its answer: journal a 499, bill nothing."""
        self._record(call.request, "messages", 499, call.request_id, call.key, early=call.early)
        return web.Response(status=499)

    def _admit(
        self, call: _Exchange, key: str, body: dict[str, Any], spec: ModelSpec
    ) -> tuple[CacheUsage, int, PendingWrite]:
        """Account prompt caching and admit through the rate limiter, or raise its 429.

        Returns how the prompt splits between cache and input, the output tokens reserved, and the
        cache entries to publish once the response starts.
        """
        state = self.state
        now = state.clock.monotonic()  # rate limits, like the cache, run on the emulator's clock
        usage_split, pending = state.cache.account(body, key, spec, now)
        reserve = int(body["max_tokens"])
        wait_s = state.limiter.admit(key, usage_split.input_tokens + usage_split.cache_creation_tokens, reserve, now)
        if wait_s > 0:
            retry_after = max(1, math.ceil(wait_s))
            state.journal.told_to_wait(key, call.body_hash, time.time() + retry_after)
            headers = state.limiter.headers(key, now, state.clock.wall()) | {
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
        return usage_split, reserve, pending

    def _generate(
        self, fault: FaultRule | None, body: dict[str, Any], spec: ModelSpec
    ) -> tuple[Generation, dict[str, Any] | None]:
        """The model's answer, as a fault that shapes it leaves it, and the refusal's `stop_details`."""
        if fault is not None and fault.kind == "refusal":
            return Generation([], "refusal", None, 1, 0), dict(REFUSAL_DETAILS)
        generation = generate(body, spec, self.state.config.seed)
        if fault is not None and fault.kind == "malformed_output":
            content = [b for b in generation.content if b["type"] != "text"] + [
                {"type": "text", "text": MALFORMED_TEXT, "citations": None}
            ]
            generation = dataclasses.replace(generation, content=content)
        return generation, None

    def _completed(self, call: _Exchange, usage: dict[str, Any], *, stream: bool) -> None:
        """A response delivered whole: bill it and journal a 200."""
        self.state.journal.bill(usage)
        self._record(
            call.request,
            "messages",
            200,
            call.request_id,
            call.key,
            fault=call.fault.kind if call.fault else None,
            early=call.early,
            stream=stream,
            input_tokens=usage["input_tokens"],
            output_tokens=usage["output_tokens"],
        )

    async def _stream(
        self, call: _Exchange, message: dict[str, Any], headers: dict[str, str], pending: PendingWrite
    ) -> web.StreamResponse:
        """Send `message` as server-sent events, paced by the latency model; a stream fault breaks it.

        The prompt-cache entries become readable as `message_start`, the first event, goes out.
        """
        request, latency, fault = call.request, self.state.config.latency, call.fault
        response = web.StreamResponse(
            status=200,
            headers=headers | {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"},
        )
        if not await self._first_token(call):
            return self._left(call)
        try:
            await response.prepare(request)
        except (ConnectionResetError, ConnectionError):  # gone as the status line went out: nothing started
            return self._left(call)
        request[OPEN_STREAM] = response
        self.state.cache.publish(pending, self.state.clock.monotonic())
        try:
            for event in message_events(message):
                text_delta = is_text_delta(event)
                if text_delta and latency.per_token_ms > 0:
                    await asyncio.sleep(latency.tokens_s(max(1, len(event[1]["delta"]["text"]) // 4)))
                await response.write(encode_event(*event))
                if text_delta and fault is not None and fault.kind in ("stream_error", "stream_disconnect"):
                    await self._break_stream(call, fault, response)
                    return response
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            self._record(request, "messages", 499, call.request_id, call.key, early=call.early)
            return response
        self._completed(call, message["usage"], stream=True)
        return response

    async def _break_stream(self, call: _Exchange, fault: FaultRule, response: web.StreamResponse) -> None:
        """End a stream after its first text chunk: an overloaded `error` event, or a dropped connection."""
        request = call.request
        if fault.kind == "stream_error":
            await response.write(
                encode_event(
                    "error",
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                        "request_id": call.request_id,
                    },
                )
            )
            self._record(request, "messages", 200, call.request_id, call.key, fault="stream_error", early=call.early)
            await response.write_eof()
            return
        self._record(request, "messages", 200, call.request_id, call.key, fault="stream_disconnect", early=call.early)
        if request.transport is not None:
            request.transport.abort()


def _gone(request: web.Request) -> bool:
    """Whether the client has closed its connection."""
    return request.transport is None or request.transport.is_closing()
