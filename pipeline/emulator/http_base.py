"""What every HTTP endpoint of the emulator shares: authentication, the version header, bodies, errors.

`Endpoint` holds one `EmulatorState`; the endpoint modules (`http_messages.py`, `http_batches.py`,
`http_models.py`, `http_control.py`) subclass it. Every response carries `request-id`, every error
has the real body shape (`bodies.error_json`), and every API request leaves one journal entry.
Fault rules for the endpoints other than Messages are applied here, before the request is served.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .bodies import ERROR_TYPES, error_json
from .faults import FaultRule
from .hashing import stable_hash
from .journal import key_id
from .paging import page_limit
from .state import EmulatorState
from .validation import API_VERSIONS, ApiError

__all__ = ["Endpoint", "json_response", "page_limit"]

MAX_MESSAGES_BODY = 32 * 1024 * 1024
MAX_BATCH_BODY = 256 * 1024 * 1024
BODY_HASH = web.RequestKey("body_hash", int)  # the request body's hash, for the journal
HTML_413 = (
    "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
    "<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)
# Fault kinds that shape a generated answer, not the request: an endpoint without one ignores them.
ANSWER_FAULT_KINDS = ("stream_error", "stream_disconnect", "refusal", "malformed_output")
# A `\uD800`-`\uDFFF` escape: a surrogate, which only a well-formed pair turns into Unicode text.
# RFC 7493 (I-JSON) 2.1 forbids lone ones; the SDK cannot send one (its encoder writes UTF-8, which has none).
SURROGATE_ESCAPE_RE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


Action = Callable[[str, str], Awaitable[Any]]  # (key id, API version) -> a JSON payload or a response


def json_response(payload: Any, status: int, headers: dict[str, str]) -> web.Response:
    try:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (from a percent-decoded path, say) goes as its `\u` escape
        body = json.dumps(payload).encode("ascii")
    return web.Response(
        body=body,
        status=status,
        headers=headers,
        content_type="application/json",
    )


def _not_a_number(constant: str) -> Any:
    """`NaN`, `Infinity` and `-Infinity` are not JSON (RFC 8259 section 6); Python's parser accepts them unless told."""
    raise ValueError(f"{constant} is not a valid JSON value")


_DECODER = json.JSONDecoder(parse_constant=_not_a_number)  # one decoder: json.loads with options builds one a call


def _is_unicode(body: Any) -> bool:
    """Whether every string in a parsed body is Unicode text (a lone surrogate escape decodes to one that is not)."""
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


class Endpoint:
    """Route handlers over one `EmulatorState`, and the plumbing they share."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

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
            body = _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))  # as json.loads reads bytes
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "invalid_request_error", f"There was an error parsing the body: {exc}") from exc
        except RecursionError as exc:  # nesting deeper than the parser's stack
            raise ApiError(
                400, "invalid_request_error", "There was an error parsing the body: nested too deeply"
            ) from exc
        if b"\\u" in raw and SURROGATE_ESCAPE_RE.search(raw) and not _is_unicode(body):
            raise ApiError(
                400,
                "invalid_request_error",
                "There was an error parsing the body: a string holds a lone surrogate (a \\uD800-\\uDFFF escape "
                "outside a pair), which is not Unicode text",
            )
        return body, raw

    def _error_response(self, exc: ApiError, request_id: str) -> web.Response:
        headers = self._headers(request_id) | exc.headers
        if exc.status == 413 and exc.details == {"html": True}:
            return web.Response(text=HTML_413, status=413, headers=headers, content_type="text/html")
        return json_response(error_json(exc.error_type, exc.message, request_id, exc.details), exc.status, headers)

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
                headers=self.state.limiter.headers(key, self.state.clock.monotonic(), now_wall)
                | {"retry-after": retry_after(rule.retry_after_s), "x-should-retry": "true"},
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

    async def _endpoint_fault(self, request: web.Request, endpoint: str, key: str, raw: bytes) -> str | None:
        """Apply the fault rule that fires for a request to an endpoint other than Messages.

        Error kinds raise their `ApiError`; `hang` and `slow_first_byte` wait, then let the request
        through; the kinds that only make sense for a generated message do nothing. Returns
        "disconnect" when the connection was dropped and nothing must be served, "lost_response"
        when the request must be served and its answer lost, else None.
        """
        text = f"{request.method} {request.path_qs}\n" + raw.decode("utf-8", "replace")
        body_hash = stable_hash(endpoint, text)
        occurrence = self.state.seen.get(body_hash, 0)
        self.state.seen[body_hash] = occurrence + 1
        fault = self.state.faults.decide(endpoint, text, body_hash, occurrence, stream=False)
        if fault is None or fault.kind in ANSWER_FAULT_KINDS:
            return None
        if fault.kind == "disconnect":
            if request.transport is not None:
                request.transport.abort()
            return "disconnect"
        if fault.kind == "lost_response":
            return "lost_response"
        if fault.kind in ("hang", "slow_first_byte"):
            await asyncio.sleep(fault.seconds)
            return None
        raise self._fault_error(fault, key, body_hash, time.time())

    async def _call(self, request: web.Request, endpoint: str, action: Action) -> web.Response:
        """Serve a request to an endpoint other than Messages: authenticate, apply faults, run `action`, journal."""
        request_id = self.state.new_id("req")
        key: str | None = None
        try:
            key = self._authenticate(request)
            version = self._version(request)
            lost = False
            if self.state.faults.rules:
                small = request.content_length is None or request.content_length <= MAX_BATCH_BODY
                raw = await request.read() if request.can_read_body and small else b""
                fault = await self._endpoint_fault(request, endpoint, key, raw)
                if fault == "disconnect":
                    self._record(request, endpoint, 0, request_id, key, fault="disconnect")
                    return web.Response(status=500)
                lost = fault == "lost_response"
            payload = await action(key, version)
            if lost:  # served, and the answer never reaches the client
                self._record(request, endpoint, 0, request_id, key, fault="lost_response")
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)
            self._record(request, endpoint, 200, request_id, key)
            if isinstance(payload, web.Response):
                payload.headers.update(self._headers(request_id))
                return payload
            return json_response(payload, 200, self._headers(request_id))
        except ApiError as exc:
            self._record(request, endpoint, exc.status, request_id, key, error_type=exc.error_type)
            return self._error_response(exc, request_id)

    async def not_found(self, request: web.Request) -> web.Response:
        request_id = self.state.new_id("req")
        return json_response(
            error_json("not_found_error", f"Not Found: {request.method} {request.path}", request_id),
            404,
            self._headers(request_id),
        )
