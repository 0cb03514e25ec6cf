"""The one retry layer: what is retried, how often, how long it waits, and what is re-raised."""



from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence

import pytest

from pipeline.errors import FatalRunError, PipelineError, RequestError, ResponseError, TransientError
from pipeline.jobs import RetrySettings
from pipeline.retry import is_retryable, with_retries

NO_WAIT = RetrySettings(max_attempts=8, max_time_s=600.0, initial_backoff_s=0.0, max_backoff_s=0.0)


def _transient(retry_after_s: float | None = None) -> TransientError:
    return TransientError(
        "529 overloaded_error", error_type="overloaded_error", status=529, retry_after_s=retry_after_s
    )


def _schema() -> ResponseError:
    return ResponseError("bad answer", error_type="schema_mismatch")


class Script:
    """An attempt function that raises the scripted errors in order, then returns "done"."""

    def __init__(self, outcomes: Sequence[BaseException | str]) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[int] = []
        self.raised: list[BaseException] = []

    async def __call__(self, number: int) -> str:
        self.calls.append(number)
        outcome = self.outcomes[min(len(self.calls), len(self.outcomes)) - 1]
        if isinstance(outcome, BaseException):
            self.raised.append(outcome)
            raise outcome
        return outcome


def _errors(factory: Callable[[], BaseException], count: int) -> list[BaseException | str]:
    return [factory() for _ in range(count)]


def _run(
    attempt: Callable[[int], Awaitable[str]],
    settings: RetrySettings = NO_WAIT,
    schema_retries: int = 2,
    *,
    sleeps: list[float] | None = None,
    jitter: Callable[[float, float], float] = random.uniform,
) -> tuple[str, int]:
    """Retry `attempt`; with `sleeps`, every wait is recorded there instead of slept."""

    async def record(seconds: float) -> None:
        assert sleeps is not None
        sleeps.append(seconds)

    sleep = record if sleeps is not None else asyncio.sleep
    return asyncio.run(
        with_retries(attempt, settings=settings, schema_retries=schema_retries, sleep=sleep, jitter=jitter)
    )


@pytest.fixture
def sleeps() -> list[float]:
    """The waits the retry layer asked for, handed in as its `sleep`, in order."""
    return []


@pytest.mark.parametrize("max_attempts", [1, 2, 5])
def test_transient_errors_are_retried_up_to_max_attempts(max_attempts: int) -> None:
    """A TransientError is retried until max_attempts, then the last error itself is re-raised."""
    script = Script(_errors(_transient, 20))
    settings = RetrySettings(max_attempts=max_attempts, initial_backoff_s=0.0)
    with pytest.raises(TransientError) as excinfo:
        _run(script, settings)
    assert list(range(1, max_attempts + 1)) == script.calls
    assert excinfo.value is script.raised[-1]


@pytest.mark.parametrize("failures", [0, 1, 3])
def test_returns_the_result_and_the_attempts_made(failures: int) -> None:
    """with_retries returns (result, attempts), attempts counting the successful one."""
    script = Script([*_errors(_transient, failures), "done"])
    assert ("done", failures + 1) == _run(script)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(
            RequestError("400 invalid_request_error", error_type="invalid_request_error", status=400), id="400"
        ),
        pytest.param(RequestError("413", error_type="request_too_large", status=413), id="413"),
        pytest.param(FatalRunError("401 authentication_error"), id="fatal"),
        pytest.param(ResponseError("declined", error_type="refusal"), id="refusal"),
        pytest.param(ResponseError("cut off", error_type="max_tokens"), id="max-tokens"),
        pytest.param(ValueError("a bug"), id="unexpected"),
    ],
)
def test_non_retryable_errors_are_raised_at_once(error: BaseException) -> None:
    """RequestError, FatalRunError, a refusal (anything but transient or schema_mismatch) is not retried."""
    script = Script([error, "done"])
    with pytest.raises(type(error)) as excinfo:
        _run(script)
    assert ([1], error) == (script.calls, excinfo.value)
    assert excinfo.value is error


@pytest.mark.parametrize("schema_retries", [0, 1, 2, 5])
def test_schema_mismatch_is_retried_schema_retries_times(schema_retries: int) -> None:
    """An answer failing the schema is asked again schema_retries times, then the last error is re-raised."""
    script = Script(_errors(_schema, 20))
    with pytest.raises(ResponseError) as excinfo:
        _run(script, schema_retries=schema_retries)
    assert schema_retries + 1 == len(script.calls)
    assert excinfo.value is script.raised[-1]


def test_schema_mismatch_then_a_good_answer_succeeds() -> None:
    """A schema failure followed by a good answer returns that answer on attempt 2."""
    assert ("done", 2) == _run(Script([_schema(), "done"]), schema_retries=1)


def test_transient_errors_do_not_spend_the_schema_budget() -> None:
    """Only schema failures count against schema_retries; transient ones count against max_attempts."""
    script = Script([_transient(), _transient(), _schema(), _transient(), _schema(), "done"])
    assert ("done", 6) == _run(script, schema_retries=2)


def test_max_attempts_bounds_schema_retries_too() -> None:
    """max_attempts stops a run of schema failures even when schema_retries would allow more."""
    script = Script(_errors(_schema, 20))
    with pytest.raises(ResponseError):
        _run(script, RetrySettings(max_attempts=3, initial_backoff_s=0.0), schema_retries=10)
    assert [1, 2, 3] == script.calls


def test_max_time_bounds_the_attempts() -> None:
    """max_time_s=0: the time budget is spent after the first attempt, so nothing is retried."""
    script = Script(_errors(_transient, 20))
    with pytest.raises(TransientError):
        _run(script, RetrySettings(max_attempts=10, max_time_s=0.0, initial_backoff_s=0.0))
    assert [1] == script.calls


def test_a_wait_past_the_time_budget_is_not_started(sleeps: list[float]) -> None:
    """A retry-after that would end past max_time_s ends the retries now instead of overrunning the budget."""
    script = Script([_transient(retry_after_s=2.0), _transient(retry_after_s=7.5), "done"])
    with pytest.raises(TransientError):
        _run(script, RetrySettings(max_attempts=10, max_time_s=5.0, initial_backoff_s=0.0), sleeps=sleeps)
    assert [1, 2] == script.calls
    assert [2.0] == sleeps


def test_zero_backoff_never_waits(sleeps: list[float]) -> None:
    """initial_backoff_s=0 is the test mode: every wait between attempts is zero."""
    script = Script([*_errors(_transient, 4), _schema(), "done"])
    assert ("done", 6) == _run(script, sleeps=sleeps)
    assert [0.0] * 5 == sleeps


def test_retry_after_is_the_wait(sleeps: list[float]) -> None:
    """A server's retry-after is obeyed exactly, even with long backoffs configured."""
    script = Script([_transient(retry_after_s=7.5), _transient(retry_after_s=0.25), "done"])
    settings = RetrySettings(max_attempts=5, initial_backoff_s=10.0, max_backoff_s=30.0)
    assert ("done", 3) == _run(script, settings, sleeps=sleeps)
    assert [7.5, 0.25] == sleeps


@pytest.mark.parametrize("retry_after_s", [0.0, 2.0, 45.0])
def test_wait_returns_retry_after_exactly(retry_after_s: float, sleeps: list[float]) -> None:
    """The wait after a TransientError with retry_after_s is that value, beyond max_backoff_s too."""
    script = Script([*_errors(_transient, 3), _transient(retry_after_s), "done"])
    settings = RetrySettings(max_attempts=10, max_time_s=600.0, initial_backoff_s=1.0, max_backoff_s=5.0)
    assert ("done", 5) == _run(script, settings, sleeps=sleeps, jitter=lambda low, high: high)
    assert [1.0, 2.0, 4.0, retry_after_s] == sleeps


@pytest.mark.parametrize(
    ("attempt_number", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (30, 30.0)]
)
def test_backoff_is_full_jitter_under_an_exponential_ceiling(
    attempt_number: int, ceiling: float, sleeps: list[float]
) -> None:
    """Without retry-after, the wait is uniform in [0, min(max_backoff, initial * 2**(n-1))]."""
    bounds: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        bounds.append((low, high))
        return high

    script = Script([*_errors(_transient, attempt_number), "done"])
    settings = RetrySettings(max_attempts=40, max_time_s=10_000.0, initial_backoff_s=0.5, max_backoff_s=30.0)
    _run(script, settings, sleeps=sleeps, jitter=uniform)
    assert ceiling == sleeps[attempt_number - 1]
    assert (0.0, ceiling) == bounds[attempt_number - 1]
    assert attempt_number == len(bounds)


def test_schema_mismatch_is_retried_without_waiting(sleeps: list[float]) -> None:
    """A failed answer is asked again at once: the server is fine, the answer was not."""
    script = Script([_transient(), _transient(), _schema(), "done"])
    settings = RetrySettings(max_attempts=10, max_time_s=600.0, initial_backoff_s=5.0, max_backoff_s=30.0)
    _run(script, settings, sleeps=sleeps, jitter=lambda low, high: high)
    assert [5.0, 10.0, 0.0] == sleeps


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_transient(), True),
        (TransientError("timeout", error_type="timeout"), True),
        (_schema(), True),
        (ResponseError("no", error_type="refusal"), False),
        (RequestError("400", error_type="invalid_request_error", status=400), False),
        (FatalRunError("401"), False),
        (PipelineError("other"), False),
        (KeyboardInterrupt(), False),
    ],
)
def test_is_retryable_names_the_allowlist(error: BaseException, expected: bool) -> None:
    """Only transient errors and schema mismatches are retryable."""
    assert expected == is_retryable(error)


def _unreachable() -> TransientError:
    return TransientError("connection to the API failed", error_type="connection_error", no_response=True)


def test_failures_that_spend_no_attempt_are_retried_past_max_attempts() -> None:
    """Failures the caller does not charge to the document (an unreachable API) leave max_attempts untouched."""
    script = Script([*_errors(_unreachable, 10), _transient(), _transient(), "done"])
    result = asyncio.run(
        with_retries(
            script,
            settings=RetrySettings(max_attempts=3, initial_backoff_s=0.0),
            schema_retries=2,
            spends_attempt=lambda failure: not (isinstance(failure, TransientError) and failure.no_response),
        )
    )
    assert ("done", 13) == result


def test_failures_that_spend_no_attempt_ignore_the_time_budget() -> None:
    """A spent time budget stops a charged failure at once, never an uncharged one."""
    script = Script([*_errors(_unreachable, 4), _transient(), "done"])
    with pytest.raises(TransientError, match="529"):
        asyncio.run(
            with_retries(
                script,
                settings=RetrySettings(max_attempts=10, max_time_s=0.0, initial_backoff_s=0.0),
                schema_retries=2,
                spends_attempt=lambda failure: not (isinstance(failure, TransientError) and failure.no_response),
            )
        )
    assert [1, 2, 3, 4, 5] == script.calls
