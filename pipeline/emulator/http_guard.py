"""The last line of defence: an exception no handler expected becomes the API's own 500.

Every handler answers what it knows with `ApiError`; anything else escaping one would reach
aiohttp, which answers `500 text/plain "Server got itself in trouble"`, a body no SDK can read.
This middleware answers instead as the real API's 500 looks:
`{"type": "error", "error": {"type": "api_error", "message": "Internal server error"}, "request_id": ...}`
with a `request-id` header. A stream that has already started gets an `error` event and ends, as
the API ends a stream that fails mid-way. The exception is logged with its traceback, journalled
as a 500 and counted (`crashes` in the stats), so a test can tell that it happened: every such
500 is an emulator bug, never an answer to rely on. aiohttp's own error answers (a body over its
size limit, a path no route takes) get the API's JSON shape and a `request-id` too.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .bodies import ERROR_TYPES, error_json
from .http_base import json_response
from .state import EmulatorState
from .streaming import encode_event

__all__ = ["OPEN_STREAM", "crash_guard"]

LOG = logging.getLogger("pipeline.emulator")
CRASH_MESSAGE = "Internal server error"
OPEN_STREAM = web.RequestKey("open_stream", web.StreamResponse)  # set once an SSE response has started


def crash_guard(state: EmulatorState) -> Middleware:
    """An aiohttp middleware turning unexpected exceptions into the API's 500 `api_error`."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:  # aiohttp's own answers (a body over its size limit, say): in the API's shape
            if exc.status < 400:
                raise
            error_type = ERROR_TYPES.get(exc.status, "invalid_request_error")
            body, headers = _journalled_error(state, request, exc.status, error_type, exc.reason, endpoint="http")
            return json_response(body, exc.status, headers)
        except Exception:
            state.journal.crashes += 1
            body, headers = _journalled_error(state, request, 500, "api_error", CRASH_MESSAGE, endpoint="crash")
            LOG.exception("emulator crash on %s %s (%s)", request.method, request.path, headers["request-id"])
            stream = request.get(OPEN_STREAM)
            if stream is not None:
                return await _end_stream(stream, body)
            return json_response(body, 500, headers)

    return guard


def _journalled_error(
    state: EmulatorState, request: web.Request, status: int, error_type: str, message: str, *, endpoint: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """The API's error body and headers for a new request id, with the journal entry that records it."""
    request_id = state.new_id("req")
    entry = {"t": time.time(), "method": request.method, "path": request.path, "endpoint": endpoint}
    state.journal.record(entry | {"status": status, "request_id": request_id, "error_type": error_type})
    headers = {"request-id": request_id, "anthropic-organization-id": "org-emulator"}
    return error_json(error_type, message, request_id), headers


async def _end_stream(stream: web.StreamResponse, body: dict[str, Any]) -> web.StreamResponse:
    """Close a started SSE response with an `error` event (or just close it, if the client has gone)."""
    try:
        await stream.write(encode_event("error", body))
        await stream.write_eof()
    except (ConnectionError, RuntimeError):
        pass  # the client left, or the stream had already ended: nothing more can be said on it
    return stream
