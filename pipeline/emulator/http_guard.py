"""The last line of defence: an exception no handler expected becomes the API's own 500.

Every handler answers what it knows with `ApiError`; anything else escaping one would reach
aiohttp, which answers `500 text/plain "Server got itself in trouble"`, a body no SDK can read.
This middleware answers instead as the real API's 500 looks:
`{"type": "error", "error": {"type": "api_error", "message": "Internal server error"}, "request_id": ...}`
with a `request-id` header. A stream that has already started gets an `error` event and ends, as
the API ends a stream that fails mid-way. The exception is logged with its traceback, journalled
as a 500 and counted (`crashes` in the stats), so a test can tell that it happened: every such
500 is an emulator bug, never an answer to rely on.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .bodies import error_json
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
        except web.HTTPException:
            raise
        except Exception:
            request_id = state.new_id("req")
            LOG.exception("emulator crash on %s %s (%s)", request.method, request.path, request_id)
            state.journal.crashes += 1
            state.journal.record(
                {
                    "t": time.time(),
                    "method": request.method,
                    "path": request.path,
                    "endpoint": "crash",
                    "status": 500,
                    "request_id": request_id,
                    "error_type": "api_error",
                }
            )
            body = error_json("api_error", CRASH_MESSAGE, request_id)
            stream = request.get(OPEN_STREAM)
            if stream is not None:
                return await _end_stream(stream, body)
            headers = {"request-id": request_id, "anthropic-organization-id": "org-emulator"}
            return json_response(body, 500, headers)

    return guard


async def _end_stream(stream: web.StreamResponse, body: dict[str, object]) -> web.StreamResponse:
    """Close a started SSE response with an `error` event (or just close it, if the client has gone)."""
    try:
        await stream.write(encode_event("error", body))
        await stream.write_eof()
    except (ConnectionError, RuntimeError):
        pass  # the client left, or the stream had already ended: nothing more can be said on it
    return stream
