"""The control plane, apart from `/v1/`: request journal, counters, reset, and the live fault rules.

Not part of the API: no authentication, no `request-id`, plain JSON bodies. `EmulatorControl`
(`control.py`) is its client.
"""

from __future__ import annotations

import json

from aiohttp import web

from ..errors import EmulatorError
from .faults import FaultPlan
from .http_base import Endpoint, json_response

__all__ = ["ControlEndpoint"]


class ControlEndpoint(Endpoint):
    """`/_emulator/stats`, `/_emulator/requests`, `/_emulator/reset` and `/_emulator/faults`."""

    async def control_stats(self, request: web.Request) -> web.Response:
        return json_response(self.state.journal.stats(), 200, {})

    async def control_requests(self, request: web.Request) -> web.Response:
        entries = list(self.state.journal.entries)
        limit = request.query.get("limit")
        if limit is not None:
            if not limit.isascii() or not limit.isdigit():
                return json_response({"error": f"limit must be a whole number, not {limit!r}"}, 400, {})
            entries = entries[-int(limit) :] if int(limit) else []
        return json_response({"data": entries}, 200, {})

    async def control_reset(self, request: web.Request) -> web.Response:
        self.state.reset()
        return json_response({"reset": True}, 200, {})

    async def control_faults_get(self, request: web.Request) -> web.Response:
        return json_response(self.state.faults.to_dict(), 200, {})

    async def control_faults_put(self, request: web.Request) -> web.Response:
        try:
            raw = json.loads(await request.read())
            self.state.faults = FaultPlan.from_dict(raw, seed=self.state.config.seed)
        except (ValueError, EmulatorError) as exc:
            return json_response({"error": str(exc)}, 400, {})
        return json_response(self.state.faults.to_dict(), 200, {})
