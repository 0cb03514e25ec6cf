"""The one retry layer, on tenacity.

Retried, by name: `TransientError` (429, 529, 5xx, dropped connections, timeouts, mid-stream
errors) and an answer that fails the job's schema (at most `schema_retries` more times). Nothing else:
a 400 or 413 will fail again, a refusal is deliberate, a 401 dooms the run. Attempts and total time
are both bounded (a wait that would end past `max_time_s` is not started), a server's `retry-after`
is obeyed exactly, other waits are exponential with full jitter, and the last error is re-raised as
it was.

A failure the caller says the document does not answer for (`spends_attempt`: the runner's
verdict on a request sent to an API already unreachable) is retried without spending an attempt or
the time budget; the caller's own bound must end that (the runner's on an unreachable API).

`RetrySettings(initial_backoff_s=0)` gives the zero-wait test mode; `retry-after` is still obeyed,
since obeying it is a behaviour under test.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_before_delay
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


def _wait(settings: RetrySettings, jitter: Callable[[float, float], float]) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, TransientError) and exc.retry_after_s is not None:
            return exc.retry_after_s
        if isinstance(exc, ResponseError):
            return 0.0  # a fresh answer, not a recovering server
        ceiling = min(settings.max_backoff_s, settings.initial_backoff_s * 2 ** (state.attempt_number - 1))
        return jitter(0.0, ceiling)

    return wait


class _Budget(stop_base):
    """Stop once the document has spent `max_attempts`, `max_time_s`, or more than `schema_retries` bad answers.

    A failure for which `spends_attempt` is false spends nothing and never stops.
    """

    def __init__(
        self, settings: RetrySettings, schema_retries: int, spends_attempt: Callable[[BaseException], bool]
    ) -> None:
        self.max_attempts = settings.max_attempts
        self.out_of_time = stop_before_delay(settings.max_time_s)
        self.schema_retries = schema_retries
        self.spends_attempt = spends_attempt
        self.attempts = 0
        self.schema_failures = 0

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None else None
        if failure is not None and not self.spends_attempt(failure):
            return False
        self.attempts += 1
        if isinstance(failure, ResponseError):
            self.schema_failures += 1
        return (
            self.attempts >= self.max_attempts
            or self.schema_failures > self.schema_retries
            or bool(self.out_of_time(retry_state))
        )


def _every_failure(failure: BaseException) -> bool:
    return True


async def with_retries(
    attempt: Callable[[int], Awaitable[T]],
    *,
    settings: RetrySettings,
    schema_retries: int,
    spends_attempt: Callable[[BaseException], bool] = _every_failure,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    jitter: Callable[[float, float], float] = random.uniform,
) -> tuple[T, int]:
    """Run `attempt(attempt_number)` until it succeeds or the budget is spent; return (result, attempts).

    `attempts` counts every attempt made, those that spent nothing of the budget included. `sleep`
    takes every wait and `jitter(low, high)` draws every backoff: a test passes its own.
    """
    retrying = AsyncRetrying(
        retry=retry_if_exception(is_retryable),
        stop=_Budget(settings, schema_retries, spends_attempt),
        wait=_wait(settings, jitter),
        sleep=sleep,
        reraise=True,
    )
    async for attempt_state in retrying:
        with attempt_state:
            number = attempt_state.retry_state.attempt_number
            result = await attempt(number)
        if attempt_state.retry_state.outcome is not None and not attempt_state.retry_state.outcome.failed:
            return result, number
    raise AssertionError("unreachable: tenacity either returns or re-raises")  # pragma: no cover
