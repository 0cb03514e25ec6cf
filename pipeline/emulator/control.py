"""A small client for the emulator's control plane (`/_emulator/...`), for tests and benchmarks."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["EmulatorControl"]


class EmulatorControl:
    """Reads stats and the journal, resets state and sets fault rules over HTTP."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        import urllib.request  # with its http.client and ssl: paid by the first control call, not the import

        data = json.dumps(payload).encode("utf-8") if payload is not None else None
        request = urllib.request.Request(
            f"{self.base_url}{path}", data=data, method=method, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        return dict(self._call("GET", "/_emulator/stats"))

    def requests(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        suffix = f"?limit={limit}" if limit is not None else ""
        return list(self._call("GET", f"/_emulator/requests{suffix}")["data"])

    def reset(self) -> None:
        self._call("POST", "/_emulator/reset", {})

    def set_faults(self, rules: list[dict[str, Any]], *, seed: int | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"rules": rules}
        if seed is not None:
            payload["seed"] = seed
        return dict(self._call("PUT", "/_emulator/faults", payload))

    def faults(self) -> dict[str, Any]:
        return dict(self._call("GET", "/_emulator/faults"))
