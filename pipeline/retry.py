"""The one retry layer, on tenacity.

Retried, by name: `TransientError` (429, 529, 5xx, dropped connections, timeouts, mid-stream
errors) and an answer that fails the job's schema (at most `schema_retries` more times). Nothing else:
a 400 or 413 will fail again, a refusal is deliberate, a 401 dooms the run. Attempts and total time
are both bounded (a wait that would end past `max_time_s` is not started), a server's `retry-after`
is obeyed exactly, other waits are exponential with full jitter, and the last error is re-raised as
it was.

`RetrySettings(initial_backoff_s=0)` gives the zero-wait test mode; `retry-after` is still obeyed,
since obeying it is a behaviour under test.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, stop_before_delay
from tenacity.stop import stop_base

from .errors import ResponseError, TransientError
from .jobs import RetrySettings

__all__ = ["is_retryable", "with_retries"]

T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    """True for the errors worth another attempt."""
    if isinstance(exc, TransientError):
        return True
    return isinstance(exc, ResponseError) and exc.error_type == "schema_mismatch"


def _wait(settings: RetrySettings) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, TransientError) and exc.retry_after_s is not None:
            return exc.retry_after_s
        if isinstance(exc, ResponseError):
            return 0.0  # a fresh answer, not a recovering server
        ceiling = min(settings.max_backoff_s, settings.initial_backoff_s * 2 ** (state.attempt_number - 1))
        return random.uniform(0.0, ceiling)

    return wait


class _SchemaBudget(stop_base):
    """Stop once the answer failed the schema more than `schema_retries` times."""

    def __init__(self, schema_retries: int) -> None:
        self.schema_retries = schema_retries
        self.failures = 0

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        if outcome is not None and isinstance(outcome.exception(), ResponseError):
            self.failures += 1
        return self.failures > self.schema_retries


async def with_retries(
    attempt: Callable[[int], Awaitable[T]],
    *,
    settings: RetrySettings,
    schema_retries: int,
) -> tuple[T, int]:
    """Run `attempt(attempt_number)` until it succeeds or the budget is spent; return (result, attempts)."""
    retrying = AsyncRetrying(
        retry=retry_if_exception(is_retryable),
        stop=stop_after_attempt(settings.max_attempts)
        | stop_before_delay(settings.max_time_s)
        | _SchemaBudget(schema_retries),
        wait=_wait(settings),
        reraise=True,
    )
    async for attempt_state in retrying:
        with attempt_state:
            number = attempt_state.retry_state.attempt_number
            result = await attempt(number)
        if attempt_state.retry_state.outcome is not None and not attempt_state.retry_state.outcome.failed:
            return result, number
    raise AssertionError("unreachable: tenacity either returns or re-raises")  # pragma: no cover
