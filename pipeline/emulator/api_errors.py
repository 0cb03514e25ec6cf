"""The error the emulator answers with, and the helper every validation module raises through.

Kept apart from `validation.py` so that the modules it is split into (`validate_params.py`,
`validate_content.py`, `validate_cache.py`, `validate_tools.py`) can raise without importing the
entry points. `validation.py` re-exports both names, which is where the HTTP layer imports them from.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import Any

from ..errors import EmulatorError

__all__ = ["ApiError", "invalid", "refuse_extra"]


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


def refuse_extra(fields: Iterable[str], allowed: Container[str], where: str = "") -> None:
    """The 400 for the first of `fields` not `allowed`: `<where><field>: Extra inputs are not permitted`."""
    for field in fields:
        if field not in allowed:
            raise invalid(f"{where}{field}: Extra inputs are not permitted")
