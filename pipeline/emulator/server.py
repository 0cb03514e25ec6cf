"""The emulator's HTTP server: the Messages API contract on aiohttp.

aiohttp is the server because it gives what a faithful emulator needs and a framework would hide:
raw control of the response (SSE flushed event by event, a connection dropped without a reply,
a status line delayed), no automatic 422 bodies, and one event loop that holds thousands of idle
connections cheaply.

This module builds the application: every route, and the handler that serves it. The handlers
live by concept: `http_messages.py` (the Messages endpoint: answer, streaming, faults),
`http_batches.py` (Message Batches), `http_models.py` (Models and count_tokens), `http_files.py`
(the Files API), `http_control.py` (the `/_emulator/*` control plane), over the shared plumbing of
`http_base.py` (auth, version, error bodies, headers, journal entries). What they remember is one
`EmulatorState` (`state.py`). Every response carries `request-id`; every error has the real body
shape, an unexpected exception included (`http_guard.py` answers it as the API's 500 `api_error`).
"""

from __future__ import annotations

from aiohttp import web

from .http_base import MAX_BATCH_BODY, Endpoint
from .http_batches import BatchesEndpoint
from .http_control import ControlEndpoint
from .http_files import MULTIPART_OVERHEAD_BYTES, FilesEndpoint
from .http_guard import crash_guard
from .http_messages import MessagesEndpoint
from .http_models import ModelsEndpoint
from .state import EmulatorState

__all__ = ["EmulatorState", "build_app"]


def build_app(state: EmulatorState) -> web.Application:
    """The aiohttp application serving the API and the control plane over `state`."""
    messages = MessagesEndpoint(state)
    batches = BatchesEndpoint(state)
    models = ModelsEndpoint(state)
    control = ControlEndpoint(state)
    files = FilesEndpoint(state)
    body_limit = max(MAX_BATCH_BODY + 1024, state.files.max_file_bytes + MULTIPART_OVERHEAD_BYTES)
    # each route checks its own, smaller limit
    app = web.Application(client_max_size=body_limit, middlewares=[crash_guard(state)])
    app.router.add_post("/v1/messages", messages.messages)
    app.router.add_post("/v1/messages/count_tokens", models.count_tokens)
    app.router.add_post("/v1/messages/batches", batches.batch_create)
    app.router.add_get("/v1/messages/batches", batches.batch_list)
    app.router.add_get("/v1/messages/batches/{batch_id:[^/]+}", batches.batch_retrieve)
    app.router.add_post("/v1/messages/batches/{batch_id:[^/]+}/cancel", batches.batch_cancel)
    app.router.add_delete("/v1/messages/batches/{batch_id:[^/]+}", batches.batch_delete)
    app.router.add_get("/v1/messages/batches/{batch_id:[^/]+}/results", batches.batch_results)
    app.router.add_get("/v1/models", models.models_list)
    app.router.add_get("/v1/models/{model_id:[^/]+}", models.models_get)
    app.router.add_post("/v1/files", files.files_upload)
    app.router.add_get("/v1/files", files.files_list)
    app.router.add_get("/v1/files/{file_id}", files.files_retrieve)
    app.router.add_delete("/v1/files/{file_id}", files.files_delete)
    app.router.add_get("/v1/files/{file_id}/content", files.files_download)
    app.router.add_get("/_emulator/stats", control.control_stats)
    app.router.add_get("/_emulator/requests", control.control_requests)
    app.router.add_post("/_emulator/reset", control.control_reset)
    app.router.add_get("/_emulator/faults", control.control_faults_get)
    app.router.add_put("/_emulator/faults", control.control_faults_put)
    app.router.add_route("*", "/{tail:[\\s\\S]*}", Endpoint(state).not_found)
    return app
