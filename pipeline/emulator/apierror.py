"""The error the emulator answers with: a status, the API's error type and its message.

Raised by validation (`validation.py`, `schemas.py`), by the endpoints and by fault rules; the HTTP
layer turns it into the real error body (`bodies.error_json`).
"""

from __future__ import annotations

from typing import Any

from ..errors import EmulatorError

__all__ = ["ApiError", "invalid"]


class ApiError(EmulatorError):
    """An error response the emulator answers with: status, the API's error type, its message."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = headers or {}
        self.details = details
        super().__init__(f"{status} {error_type}: {message}")


def invalid(message: str) -> ApiError:
    """A 400 `invalid_request_error` with `message`."""
    return ApiError(400, "invalid_request_error", message)
