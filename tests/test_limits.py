"""The rate limiter: token buckets, settlement, learned limits, pauses and adaptive concurrency.

Time is a fake clock handed to the limiter with its sleep, which advances it: a wait is measured
exactly and costs nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from pipeline.limits import RateLimiter, bucket_exhausted

T = TypeVar("T")


class FakeClock:
    """A clock that only moves when told to; records every sleep the limiter asks for."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _run(clock: FakeClock, body: Callable[[RateLimiter], Awaitable[T]], **limits: Any) -> T:
    """Run `body(limiter)` on a fresh event loop with a limiter on the fake clock."""

    async def main() -> T:
        limits.setdefault("max_concurrency", 100)
        return await body(RateLimiter(clock=clock, sleep=clock.sleep, **limits))

    return asyncio.run(main())


def test_requests_bucket_depletes_then_waits_for_refill(clock: FakeClock) -> None:
    """rpm=2: two requests go at once, the third waits 30 s for one request's refill."""

    async def body(limiter: RateLimiter) -> None:
        await limiter.acquire(0, 0)
        await limiter.acquire(0, 0)
        assert [] == clock.sleeps
        await limiter.acquire(0, 0)

    _run(clock, body, rpm=2)
    assert pytest.approx(30.0) == sum(clock.sleeps)


def test_a_settled_reservation_wakes_the_queue_before_the_refill() -> None:
    """Real time: a response giving back most of its reservation admits the next request at once,
    not after the 50 s the refill alone would take (the head of the queue must not sleep through it)."""

    async def main() -> float:
        limiter = RateLimiter(max_concurrency=10, itpm=6_000)  # refills 100 tokens a second
        first = await limiter.acquire(5_000, 0)  # reserves 5,100 of 6,000
        loop = asyncio.get_running_loop()
        waiting = asyncio.create_task(limiter.acquire(5_000, 0))
        while not limiter.admitting:  # the second request is in the gate, waiting
            await asyncio.sleep(0)
        started = loop.time()
        limiter.release(first, counted_input_tokens=100, output_tokens=0)  # 5,000 come back
        await asyncio.wait_for(waiting, timeout=10)
        return loop.time() - started

    assert asyncio.run(main()) < 1.0


def test_input_bucket_reserves_the_scaled_estimate(clock: FakeClock) -> None:
    """An acquire reserves the input estimate times the 1.02 safety margin; the next waits for the rest."""

    async def body(limiter: RateLimiter) -> None:
        await limiter.acquire(1000, 0)  # reserves 1020 of 2040
        await limiter.acquire(1000, 0)
        assert [] == clock.sleeps
        await limiter.acquire(500, 0)  # needs 510: 510 / 2040 of a minute

    _run(clock, body, itpm=2040)
    assert pytest.approx(15.0) == sum(clock.sleeps)


def test_output_bucket_reserves_max_tokens(clock: FakeClock) -> None:
    """An acquire reserves max_tokens of output; otpm=600 refills 10 tokens a second."""

    async def body(limiter: RateLimiter) -> None:
        await limiter.acquire(0, 600)
        await limiter.acquire(0, 300)

    _run(clock, body, otpm=600)
    assert pytest.approx(30.0) == sum(clock.sleeps)


def test_a_request_larger_than_the_bucket_waits_for_a_full_bucket(clock: FakeClock) -> None:
    """A reservation above one minute's worth waits for a full bucket instead of forever."""

    async def body(limiter: RateLimiter) -> None:
        await limiter.acquire(0, 100)
        await limiter.acquire(0, 5000)

    _run(clock, body, otpm=600)
    assert pytest.approx(10.0) == sum(clock.sleeps)


def test_release_gives_back_unused_output(clock: FakeClock) -> None:
    """Settling a permit with the real output count returns the unused part of max_tokens."""

    async def body(limiter: RateLimiter) -> None:
        permit = await limiter.acquire(0, 1000)
        limiter.release(permit, counted_input_tokens=0, output_tokens=400)
        await limiter.acquire(0, 1000)  # 600 back: waits for 400 more, 24 s at 1000/min

    _run(clock, body, otpm=1000)
    assert pytest.approx(24.0) == sum(clock.sleeps)


def test_release_gives_back_cache_reads(clock: FakeClock) -> None:
    """Cache reads do not count against the input limit: only the uncached input stays charged."""

    async def body(limiter: RateLimiter) -> None:
        permit = await limiter.acquire(1000, 0)  # reserves 1020: the bucket is empty
        limiter.release(permit, counted_input_tokens=20, cache_read_tokens=980, output_tokens=0)
        await limiter.acquire(1000, 0)  # 1000 back: waits for 20 more

    _run(clock, body, itpm=1020)
    assert pytest.approx(20 * 60 / 1020) == sum(clock.sleeps)


def test_release_charges_an_under_estimate(clock: FakeClock) -> None:
    """Input counted above the reservation is charged, so even an empty request waits for the debt."""

    async def body(limiter: RateLimiter) -> None:
        permit = await limiter.acquire(1000, 0)  # reserves all 1020
        limiter.release(permit, counted_input_tokens=2040, output_tokens=0)  # 1020 more than reserved
        await limiter.acquire(0, 0)

    _run(clock, body, itpm=1020)
    assert pytest.approx(60.0) == sum(clock.sleeps)


def test_failed_request_release_returns_the_tokens(clock: FakeClock) -> None:
    """A release without counts (the request failed) gives the whole token reservation back."""

    async def body(limiter: RateLimiter) -> None:
        permit = await limiter.acquire(1000, 1000)
        limiter.release(permit)
        await limiter.acquire(1000, 1000)

    _run(clock, body, itpm=1020, otpm=1000)
    assert [] == clock.sleeps


def test_failed_request_release_keeps_the_request_spent(clock: FakeClock) -> None:
    """A failed request still counts against the requests-per-minute bucket."""

    async def body(limiter: RateLimiter) -> None:
        permit = await limiter.acquire(0, 0)
        limiter.release(permit)
        await limiter.acquire(0, 0)

    _run(clock, body, rpm=1)
    assert pytest.approx(60.0) == sum(clock.sleeps)


def test_release_twice_settles_once(clock: FakeClock) -> None:
    """Releasing a permit a second time changes nothing (no double refund, no negative in-flight)."""

    async def body(limiter: RateLimiter) -> int:
        first = await limiter.acquire(0, 1000)
        second = await limiter.acquire(0, 0)
        limiter.release(first)
        limiter.release(first)
        in_flight = limiter.in_flight
        limiter.release(second)
        await limiter.acquire(0, 1000)
        return in_flight

    assert 1 == _run(clock, body, otpm=1000)
    assert [] == clock.sleeps


def _headers(name: str, limit: int | str, remaining: int | str | None = None) -> dict[str, str]:
    headers = {f"anthropic-ratelimit-{name}-limit": str(limit)}
    if remaining is not None:
        headers[f"anthropic-ratelimit-{name}-remaining"] = str(remaining)
    return headers


@pytest.mark.parametrize("name", ["requests", "input-tokens", "output-tokens"])
def test_observe_headers_learns_limits_when_none_configured(clock: FakeClock, name: str) -> None:
    """With no limit configured, the response headers' limit becomes the limit in force."""
    limiter = RateLimiter(max_concurrency=1, clock=clock)
    assert limiter.limit(name) is None
    limiter.observe_headers(_headers(name, 5000))
    assert 5000.0 == limiter.limit(name)


@pytest.mark.parametrize(("configured", "server", "expected"), [(100, 50, 50.0), (50, 100, 50.0), (70, 70, 70.0)])
def test_observe_headers_keeps_the_lower_of_configured_and_server(
    clock: FakeClock, configured: int, server: int, expected: float
) -> None:
    """A configured limit is lowered to the server's, never raised above what was configured."""
    limiter = RateLimiter(max_concurrency=1, rpm=configured, clock=clock)
    limiter.observe_headers(_headers("requests", server))
    assert expected == limiter.limit("requests")


def test_observe_headers_follows_a_server_limit_back_up(clock: FakeClock) -> None:
    """A learned limit tracks the server's later headers, up as well as down."""
    limiter = RateLimiter(max_concurrency=1, clock=clock)
    limiter.observe_headers(_headers("output-tokens", 8000))
    limiter.observe_headers(_headers("output-tokens", 4000))
    assert 4000.0 == limiter.limit("output-tokens")
    limiter.observe_headers(_headers("output-tokens", 16000))
    assert 16000.0 == limiter.limit("output-tokens")


def test_remaining_pulls_the_level_down(clock: FakeClock) -> None:
    """`*-remaining` below our level (another client on the key) makes the next request wait."""

    async def body(limiter: RateLimiter) -> None:
        limiter.observe_headers(_headers("output-tokens", 6000, remaining=0))
        await limiter.acquire(0, 100)  # 100 tokens at 6000/min

    _run(clock, body, otpm=6000)
    assert pytest.approx(1.0) == sum(clock.sleeps)


def test_remaining_never_raises_the_level(clock: FakeClock) -> None:
    """`*-remaining` above our level leaves our (more cautious) count alone."""

    async def body(limiter: RateLimiter) -> None:
        await limiter.acquire(0, 6000)
        limiter.observe_headers(_headers("output-tokens", 6000, remaining=6000))
        await limiter.acquire(0, 100)

    _run(clock, body, otpm=6000)
    assert pytest.approx(1.0) == sum(clock.sleeps)


def test_learned_limit_starts_at_remaining(clock: FakeClock) -> None:
    """A limit learned from headers starts at the server's remaining allowance."""

    async def body(limiter: RateLimiter) -> None:
        limiter.observe_headers(_headers("requests", 60, remaining=0))
        await limiter.acquire(0, 0)

    _run(clock, body)
    assert pytest.approx(1.0) == sum(clock.sleeps)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"anthropic-ratelimit-requests-limit": "lots"}, 100.0),
        ({"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "?"}, 50.0),
        ({"anthropic-ratelimit-requests-remaining": "0"}, 100.0),
        ({"retry-after": "3"}, 100.0),
    ],
)
def test_malformed_or_partial_headers_are_ignored(clock: FakeClock, headers: dict[str, str], expected: float) -> None:
    """Unparseable values, or a remaining without its limit, are skipped without raising."""
    limiter = RateLimiter(max_concurrency=1, rpm=100, clock=clock)
    limiter.observe_headers(headers)
    assert expected == limiter.limit("requests")


def test_rate_limited_pauses_every_acquire_until_retry_after(clock: FakeClock) -> None:
    """A 429's retry-after pauses every later acquire, not only the worker that got it."""
    waits: list[float] = []

    async def body(limiter: RateLimiter) -> None:
        limiter.rate_limited(5.0)
        assert pytest.approx(5.0) == limiter.paused_for_s()
        clock.now += 2.0
        await limiter.acquire(0, 0)  # 3 s of the pause left
        waits.append(sum(clock.sleeps))
        await limiter.acquire(0, 0)  # the pause is over
        waits.append(sum(clock.sleeps))

    _run(clock, body)
    assert pytest.approx([3.0, 3.0]) == waits


def test_rate_limited_without_retry_after_pauses_one_second(clock: FakeClock) -> None:
    """A 429 without retry-after pauses for the default second."""

    async def body(limiter: RateLimiter) -> None:
        limiter.rate_limited(None)
        await limiter.acquire(0, 0)

    _run(clock, body)
    assert pytest.approx(1.0) == sum(clock.sleeps)


def test_a_shorter_pause_does_not_cut_a_longer_one(clock: FakeClock) -> None:
    """Overlapping 429s: the latest end wins, and only the extending one counts as a pause."""
    limiter = RateLimiter(max_concurrency=1, clock=clock)
    limiter.rate_limited(5.0)
    limiter.rate_limited(1.0)
    assert (5.0, 1) == (limiter.paused_for_s(), limiter.pauses)
    limiter.rate_limited(8.0)
    assert (8.0, 2) == (limiter.paused_for_s(), limiter.pauses)


def test_overloaded_halves_concurrency_at_most_once_per_second(clock: FakeClock) -> None:
    """529s halve the concurrency limit, once per second however many arrive, never below 1."""
    limiter = RateLimiter(max_concurrency=16, clock=clock)
    limits = []
    for step_s in (0.0, 0.0, 0.5, 0.5, 0.1, 1.0, 1.0, 1.0, 1.0):
        clock.now += step_s
        limiter.overloaded()
        limits.append(limiter.concurrency_limit)
    assert [8.0, 8.0, 8.0, 4.0, 4.0, 2.0, 1.0, 1.0, 1.0] == limits
    assert 4 == limiter.decreases


def test_succeeded_climbs_back_by_one_to_the_maximum(clock: FakeClock) -> None:
    """Each success adds one slot back, up to the configured concurrency and no further."""
    limiter = RateLimiter(max_concurrency=6, clock=clock)
    limiter.overloaded()
    clock.now += 1.0
    limiter.overloaded()  # 6 -> 3 -> 1.5
    limits = []
    for _ in range(6):
        limiter.succeeded()
        limits.append(limiter.concurrency_limit)
    assert [2.5, 3.5, 4.5, 5.5, 6.0, 6.0] == limits


async def _yield_to_other_tasks() -> None:
    """Let every ready task run until it blocks (no time passes: this is not a timed sleep)."""
    for _ in range(20):
        await asyncio.sleep(0)


def test_concurrency_limit_blocks_the_next_acquire_until_a_release() -> None:
    """With max_concurrency=2, a third acquire waits until one of the two permits is released."""

    async def main() -> list[int]:
        limiter = RateLimiter(max_concurrency=2)
        first = await limiter.acquire(0, 0)
        await limiter.acquire(0, 0)
        admitted = asyncio.Event()

        async def third() -> None:
            await limiter.acquire(0, 0)
            admitted.set()

        task = asyncio.create_task(third())
        await _yield_to_other_tasks()
        observed = [int(admitted.is_set()), limiter.in_flight]
        limiter.release(first)
        await asyncio.wait_for(admitted.wait(), timeout=5)
        await task
        return [*observed, limiter.in_flight]

    assert [0, 2, 2] == asyncio.run(main())


def test_concurrency_waiters_are_admitted_one_per_release() -> None:
    """Two waiters behind a full limit of 1 are admitted one release at a time, in order."""

    async def main() -> list[str]:
        limiter = RateLimiter(max_concurrency=1)
        holder = await limiter.acquire(0, 0)
        order: list[str] = []
        permits = {}

        async def worker(name: str) -> None:
            permits[name] = await limiter.acquire(0, 0)
            order.append(name)

        tasks = [asyncio.create_task(worker(name)) for name in ("a", "b")]
        await _yield_to_other_tasks()
        order.append("released holder")
        limiter.release(holder)
        await _yield_to_other_tasks()
        order.append("released a")
        limiter.release(permits["a"])
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
        return order

    assert ["released holder", "a", "released a", "b"] == asyncio.run(main())


def test_a_retry_enters_ahead_of_first_attempts_that_queued_before_it() -> None:
    """Behind a full limit of 1: two first attempts queue, then a retry; the retry is admitted first,
    and the first attempts keep their arrival order."""

    async def main() -> list[str]:
        limiter = RateLimiter(max_concurrency=1)
        held = await limiter.acquire(0, 0)
        order: list[str] = []

        async def worker(name: str, retry: bool) -> None:
            permit = await limiter.acquire(0, 0, retry=retry)
            order.append(name)
            await _yield_to_other_tasks()
            limiter.release(permit)

        tasks = []
        for name, retry in (("first-a", False), ("first-b", False), ("retry", True)):
            tasks.append(asyncio.create_task(worker(name, retry)))
            await _yield_to_other_tasks()
        limiter.release(held)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
        return order

    assert ["first-a", "retry", "first-b"] == asyncio.run(main())


def test_a_waiter_cancelled_in_the_queue_or_as_it_is_admitted_blocks_nobody() -> None:
    """A cancelled waiter is skipped; one cancelled in the instant it was handed the gate passes it on."""

    async def main() -> list[str]:
        limiter = RateLimiter(max_concurrency=1)
        held = await limiter.acquire(0, 0)
        order: list[str] = []

        async def worker(name: str, retry: bool = False) -> None:
            permit = await limiter.acquire(0, 0, retry=retry)
            order.append(name)
            limiter.release(permit)

        inside = asyncio.create_task(worker("inside"))  # takes the gate, waits for the slot
        await _yield_to_other_tasks()
        gone = asyncio.create_task(worker("gone", retry=True))
        handed = asyncio.create_task(worker("handed", retry=True))
        later = asyncio.create_task(worker("later"))
        await _yield_to_other_tasks()
        gone.cancel()  # cancelled while queued: skipped
        await _yield_to_other_tasks()
        inside.cancel()
        await asyncio.sleep(0)  # `inside` leaves the gate and hands it to `handed`, which has not run yet
        handed.cancel()  # cancelled holding the gate: must pass it on to `later`
        limiter.release(held)
        await asyncio.wait_for(later, timeout=5)
        for task in (gone, handed, inside):
            with pytest.raises(asyncio.CancelledError):
                await task
        await asyncio.wait_for(worker("after"), timeout=5)
        return order

    assert ["later", "after"] == asyncio.run(main())


def test_a_halved_limit_blocks_until_success_climbs_back() -> None:
    """After a 529 halves the limit below in-flight, a waiter is admitted once successes raise it."""

    async def main() -> list[object]:
        limiter = RateLimiter(max_concurrency=4)
        for _ in range(2):
            await limiter.acquire(0, 0)
        limiter.overloaded()  # 4 -> 2, with 2 in flight
        admitted = asyncio.Event()

        async def waiter() -> None:
            await limiter.acquire(0, 0)
            admitted.set()

        task = asyncio.create_task(waiter())
        await _yield_to_other_tasks()
        blocked = not admitted.is_set()
        limiter.succeeded()  # 2 -> 3: a slot opens without any release
        await asyncio.wait_for(admitted.wait(), timeout=5)
        await task
        return [blocked, limiter.in_flight]

    assert [True, 3] == asyncio.run(main())


def test_estimate_ratio_converges_to_observed_over_estimated(clock: FakeClock) -> None:
    """The input estimate is corrected by a running ratio of counted (cache reads included) to estimated."""

    async def body(limiter: RateLimiter) -> list[float]:
        ratios = []
        for _ in range(40):
            permit = await limiter.acquire(1000, 0)
            limiter.release(permit, counted_input_tokens=500, cache_read_tokens=1000, output_tokens=0)
            ratios.append(limiter.estimate_ratio)
        return ratios

    ratios = _run(clock, body)
    assert pytest.approx(1.1) == ratios[0]
    assert all(a < b for a, b in itertools.pairwise(ratios))
    assert pytest.approx(1.5, abs=1e-3) == ratios[-1]


def test_scaled_estimate_drives_the_reservation(clock: FakeClock) -> None:
    """After the ratio has learned 2x, an acquire reserves twice the raw estimate (times the margin)."""

    async def body(limiter: RateLimiter) -> None:
        limiter.estimate_ratio = 2.0
        await limiter.acquire(1000, 0)  # reserves 2040 of 2040
        await limiter.acquire(500, 0)  # needs 1020: half a minute

    _run(clock, body, itpm=2040)
    assert pytest.approx(30.0) == sum(clock.sleeps)


def _room(requests: int = 3_999, input_tokens: int = 1_999_000, output_tokens: int = 399_000) -> dict[str, str]:
    """A 429's rate-limit headers showing each bucket's remaining allowance (limits 4,000 / 2M / 400k)."""
    return {
        **_headers("requests", 4_000, remaining=requests),
        **_headers("input-tokens", 2_000_000, remaining=input_tokens),
        **_headers("output-tokens", 400_000, remaining=output_tokens),
    }


def test_a_429_whose_headers_show_room_pauses_nobody_and_lowers_concurrency(clock: FakeClock) -> None:
    """A 429 contradicted by its headers: no pause for the others, the concurrency limit halves as for a 529."""

    async def body(limiter: RateLimiter) -> tuple[bool, float, int, float, int]:
        permit = await limiter.acquire(1_000, 500)
        limiter.release(permit)
        paused = limiter.rate_limited(2.0, headers=_room(), permit=permit)
        await limiter.acquire(1_000, 500)
        return paused, limiter.paused_for_s(), limiter.pauses, limiter.concurrency_limit, limiter.decreases

    assert (False, 0.0, 0, 32.0, 1) == _run(clock, body, max_concurrency=64)
    assert [] == clock.sleeps


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(_room(requests=0), id="requests-at-0"),
        pytest.param(_room(input_tokens=1_000), id="input-below-the-request"),
        pytest.param(_room(output_tokens=499), id="output-below-max-tokens"),
        pytest.param({**_room(), **_headers("tokens", 400_000, remaining=0)}, id="tokens-at-0"),
        pytest.param({}, id="no-headers"),
    ],
)
def test_a_429_whose_headers_show_a_bucket_exhausted_pauses_everyone(
    clock: FakeClock, headers: dict[str, str]
) -> None:
    """A bucket too low for the request (or headers that say nothing): every acquire waits out the retry-after."""

    async def body(limiter: RateLimiter) -> tuple[bool, int, float]:
        permit = await limiter.acquire(1_000, 500)  # reserves 1,020 input tokens and 500 output tokens
        limiter.release(permit)
        paused = limiter.rate_limited(2.0, headers=headers, permit=permit)
        await limiter.acquire(1_000, 500)
        return paused, limiter.pauses, limiter.concurrency_limit

    assert (True, 1, 64.0) == _run(clock, body, max_concurrency=64)
    assert pytest.approx(2.0) == sum(clock.sleeps)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(_room(), False, id="room-everywhere"),
        pytest.param(_room(input_tokens=1_020), False, id="exactly-enough"),
        pytest.param(_room(input_tokens=1_019), True, id="one-token-short"),
        pytest.param(_headers("output-tokens", 300, remaining=300), False, id="a-request-larger-than-the-bucket"),
        pytest.param(_headers("requests", 4_000, remaining="lots"), None, id="unparseable"),
        pytest.param({"retry-after": "2"}, None, id="no-bucket-shown"),
    ],
)
def test_bucket_exhausted_compares_remaining_with_the_requests_share(
    clock: FakeClock, headers: dict[str, str], expected: bool | None
) -> None:
    """remaining below the request's share (capped at the bucket's limit) is exhausted; no bucket shown is unknown."""

    async def body(limiter: RateLimiter) -> bool | None:
        permit = await limiter.acquire(1_000, 500)
        return bucket_exhausted(headers, permit)

    assert expected == _run(clock, body)


def test_contradicted_429s_and_529s_share_one_decrease_per_second(clock: FakeClock) -> None:
    """A burst of 529s and contradicted 429s halves concurrency once per second, not once per answer."""
    limiter = RateLimiter(max_concurrency=64, clock=clock)
    limits = []
    for step_s in (0.0, 0.1, 0.1, 0.9, 0.1):
        clock.now += step_s
        limiter.overloaded()
        limiter.rate_limited(2.0, headers=_room())
        limits.append(limiter.concurrency_limit)
    assert ([32.0, 32.0, 32.0, 16.0, 16.0], 0) == (limits, limiter.pauses)


def test_a_failure_to_connect_starts_a_streak_that_any_response_ends(clock: FakeClock) -> None:
    """unreachable_for_s counts from the first failure to connect; a response (or a success) resets it."""

    async def body(limiter: RateLimiter) -> list[float]:
        seen = [limiter.unreachable_for_s()]
        permit = await limiter.acquire(0, 0)
        clock.now += 1.0
        limiter.connection_failed(permit)
        clock.now += 5.0
        limiter.connection_failed(await limiter.acquire(0, 0))
        seen.append(limiter.unreachable_for_s())
        limiter.responded()
        seen.append(limiter.unreachable_for_s())
        limiter.connection_failed(await limiter.acquire(0, 0))
        clock.now += 2.0
        seen.append(limiter.unreachable_for_s())
        limiter.succeeded()
        seen.append(limiter.unreachable_for_s())
        return seen

    assert [0.0, 5.0, 0.0, 2.0, 0.0] == _run(clock, body)


def test_only_a_request_sent_into_a_running_streak_fails_because_of_the_api(clock: FakeClock) -> None:
    """A failure that starts a streak, or of a request admitted before it, is the document's; later ones are not."""

    async def body(limiter: RateLimiter) -> list[bool]:
        before = await limiter.acquire(0, 0)
        clock.now += 0.5
        first = await limiter.acquire(0, 0)
        clock.now += 0.5
        verdicts = [limiter.connection_failed(first), limiter.connection_failed(before)]
        clock.now += 0.5
        sent_into_the_streak = await limiter.acquire(0, 0)
        verdicts.append(limiter.connection_failed(sent_into_the_streak))
        limiter.responded()
        verdicts.append(limiter.connection_failed(await limiter.acquire(0, 0)))
        return verdicts

    assert [False, False, True, False] == _run(clock, body)


def test_the_standard_fault_profile_keeps_concurrency_near_its_maximum(clock: FakeClock) -> None:
    """5% 529s and 10% contradicted 429s at C=64, 500 ms latency: over 30 s the limit averages above 85% of 64.

    Answers arrive one every latency / limit seconds. The limit halves at most once a second however
    many answers ask for it, and each success gives a slot back, so a halving is undone within a
    fraction of a second instead of collapsing concurrency.
    """
    limiter = RateLimiter(max_concurrency=64, clock=clock)
    draws = random.Random(7)
    elapsed_s = slot_seconds = 0.0
    while elapsed_s < 30.0:
        step_s = 0.5 / limiter.concurrency_limit
        slot_seconds += limiter.concurrency_limit * step_s
        elapsed_s += step_s
        clock.now += step_s
        draw = draws.random()
        if draw < 0.05:
            limiter.overloaded()
        elif draw < 0.15:
            limiter.rate_limited(2.0, headers=_room())
        else:
            limiter.succeeded()
    assert slot_seconds / elapsed_s > 0.85 * 64


@pytest.mark.parametrize("limit", ["0", "-5", "nan", "inf"])
def test_a_limit_header_that_allows_nothing_or_is_no_number_is_ignored(limit: str) -> None:
    """A requests limit of 0, below 0 or not finite says nothing usable: requests are admitted, nothing divides by 0."""

    async def admitted() -> float | None:
        limiter = RateLimiter(max_concurrency=4, clock=lambda: 100.0)
        limiter.observe_headers(
            {"anthropic-ratelimit-requests-limit": limit, "anthropic-ratelimit-requests-remaining": "0"}
        )
        await asyncio.wait_for(limiter.acquire(100, 100), timeout=1.0)
        return limiter.limit("requests")

    assert None is asyncio.run(admitted())


@pytest.mark.parametrize("remaining", ["nan", "NaN", "inf", "-inf"])
def test_a_429_whose_remaining_is_no_finite_number_shows_no_room(remaining: str) -> None:
    """`remaining: nan` is no evidence of room: the 429 is not judged contradicted on the strength of it."""
    headers = {"anthropic-ratelimit-requests-remaining": remaining, "anthropic-ratelimit-requests-limit": "50"}
    assert bucket_exhausted(headers, None) is None
