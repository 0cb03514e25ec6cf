"""The cluster's one rate limiter without Ray: leasing, taking back, pausing on a 429, learning limits.

`ClusterBuckets` is pure (time passed in); `LeasedLimiter` is driven with an in-process owner over
the same buckets and a fake clock whose sleep advances it, so waits are exact and cost nothing.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

import pytest
from test_limits import FakeClock

from pipeline.cluster_limits import LEASE_SHARE, Allowance, ClusterBuckets, Grant, HeldLease
from pipeline.ray_limiter import LeasedLimiter, LimiterActor

ONE_REQUEST = Allowance(1, 100, 50)


class LocalOwner:
    """The owner as an actor reaches it, in process: the actor's class itself, on the fake clock."""

    def __init__(self, actor: LimiterActor) -> None:
        self.actor = actor
        self.told: list[dict[str, float]] = []
        self.asks = 0

    async def lease(self, need: Allowance, returned: Allowance) -> Grant:
        self.asks += 1
        return self.actor.lease(need, returned)

    def give_back(self, returned: Allowance) -> None:
        self.actor.give_back(returned)

    def rate_limited(self, retry_after_s: float) -> None:
        self.actor.rate_limited(retry_after_s)

    def observe_limits(self, limits: dict[str, float]) -> None:
        self.told.append(limits)
        self.actor.observe_limits(limits)


def test_a_lease_holds_at_least_the_request_and_up_to_its_share() -> None:
    """A lease is the asking request's need or a share of the bucket, whichever is more; the bucket pays it."""
    buckets = ClusterBuckets(rpm=1000, itpm=100_000, otpm=50_000, now=0.0)
    grant = buckets.lease(ONE_REQUEST, Allowance(), now=0.0)
    assert 0.0 == grant.wait_s
    assert Allowance(1000 * LEASE_SHARE, 100_000 * LEASE_SHARE, 50_000 * LEASE_SHARE) == grant.allowance
    assert 1000 * (1 - LEASE_SHARE) == buckets.buckets["requests"].level  # type: ignore[union-attr]
    big = buckets.lease(Allowance(1, 5000, 50), Allowance(), now=0.0)
    assert 5000 == big.allowance.input_tokens


def test_a_bucket_that_cannot_pay_grants_nothing_and_says_how_long() -> None:
    """rpm=60 leased dry: the next lease waits one request's refill (1 s) and takes nothing."""
    buckets = ClusterBuckets(rpm=60, itpm=None, otpm=None, now=0.0, headroom_share=0.0)
    granted = 0.0
    while (grant := buckets.lease(ONE_REQUEST, Allowance(), now=0.0)).wait_s == 0:
        granted += grant.allowance.requests
    assert 60 == granted
    assert grant.wait_s == pytest.approx(1.0)
    assert Allowance() == grant.allowance
    assert not grant.paused
    assert 1.0 == buckets.lease(ONE_REQUEST, Allowance(), now=1.0).allowance.requests


def test_a_headroom_of_each_bucket_is_never_leased() -> None:
    """rpm=1000 with 2% headroom: 980 requests are leased at once, then the next waits for the refill."""
    buckets = ClusterBuckets(rpm=1000, itpm=None, otpm=None, now=0.0, headroom_share=0.02)
    granted = 0.0
    while (grant := buckets.lease(ONE_REQUEST, Allowance(), now=0.0)).wait_s == 0:
        granted += grant.allowance.requests
    assert granted == pytest.approx(980)
    assert grant.wait_s == pytest.approx(60 / 1000)  # one request's refill: the rate is the limit's
    assert 20 == pytest.approx(buckets.buckets["requests"].level)  # type: ignore[union-attr]


def test_unlimited_buckets_lease_without_bound() -> None:
    """A bucket with no limit (none configured, none heard) grants an unlimited amount."""
    buckets = ClusterBuckets(rpm=None, itpm=None, otpm=10_000, now=0.0)
    grant = buckets.lease(ONE_REQUEST, Allowance(), now=0.0)
    assert math.isinf(grant.allowance.requests) and math.isinf(grant.allowance.input_tokens)
    assert 10_000 * LEASE_SHARE == grant.allowance.output_tokens


def test_returned_capacity_goes_back_and_a_debt_is_charged() -> None:
    """What a lease did not use returns to the bucket (capped at capacity); an overshoot is taken from it."""
    buckets = ClusterBuckets(rpm=100, itpm=10_000, otpm=None, now=0.0)
    grant = buckets.lease(Allowance(1, 100, 0), Allowance(), now=0.0)
    inputs = buckets.buckets["input-tokens"]
    assert inputs is not None
    assert 10_000 - grant.allowance.input_tokens == inputs.level
    buckets.give_back(Allowance(0, grant.allowance.input_tokens, 0), now=0.0)
    assert 10_000 == inputs.level
    buckets.give_back(Allowance(0, 5_000, 0), now=0.0)
    assert 10_000 == inputs.level  # never above one minute's worth
    buckets.give_back(Allowance(0, -3_000, 0), now=0.0)
    assert 7_000 == inputs.level


def test_a_429_pauses_every_lease_until_its_retry_after() -> None:
    """After a 429 with retry-after 7 s no lease is granted to anyone for 7 s; a shorter one does not shorten it."""
    buckets = ClusterBuckets(rpm=1000, itpm=None, otpm=None, now=0.0)
    assert buckets.rate_limited(7.0, now=10.0)
    assert not buckets.rate_limited(2.0, now=11.0)
    grant = buckets.lease(ONE_REQUEST, Allowance(), now=12.0)
    assert grant.paused
    assert grant.wait_s == pytest.approx(5.0)
    assert Allowance() == grant.allowance
    assert 0.0 == buckets.lease(ONE_REQUEST, Allowance(), now=17.0).wait_s
    assert 1 == buckets.pauses


def test_heard_limits_lower_a_configured_one_and_fill_a_missing_one() -> None:
    """`*-limit` headers: a lower server limit wins over the configured one; an unconfigured bucket is created."""
    buckets = ClusterBuckets(rpm=1000, itpm=None, otpm=None, now=0.0)
    buckets.observe_limits({"requests": 400.0, "input-tokens": 80_000.0, "output-tokens": math.inf}, now=0.0)
    assert 400 == buckets.limit("requests")
    assert 80_000 == buckets.limit("input-tokens")
    assert buckets.limit("output-tokens") is None
    buckets.observe_limits({"requests": 5000.0}, now=1.0)
    assert 1000 == buckets.limit("requests")  # the configured limit stays the ceiling


def test_a_held_lease_is_taken_from_until_spent_or_expired() -> None:
    """A lease serves requests while it covers them and lives; credits top it up; surrender empties it."""
    lease = HeldLease()
    assert not lease.take(ONE_REQUEST, now=0.0)
    lease.renew(Grant(Allowance(2, 1000, 1000), ttl_s=0.5), now=0.0)
    assert lease.take(ONE_REQUEST, now=0.1)
    assert lease.take(ONE_REQUEST, now=0.2)
    assert not lease.take(ONE_REQUEST, now=0.3)  # no request left
    lease.credit(Allowance(1, 0, 0))
    assert not lease.take(ONE_REQUEST, now=0.6)  # expired
    assert Allowance(1, 800, 900) == lease.surrender()
    assert Allowance() == lease.held


def _run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(body())


def test_actors_sharing_the_owner_stay_within_the_limit_together() -> None:
    """Four limiters on one owner (rpm=60): 120 requests take at least the 60 s the limit allows, not 15."""
    clock = FakeClock()
    owner = LocalOwner(LimiterActor(60, None, None, clock=clock))
    limiters = [LeasedLimiter(owner, max_concurrency=100, clock=clock, sleep=clock.sleep) for _ in range(4)]
    admitted: list[float] = []

    async def send(limiter: LeasedLimiter, count: int) -> None:
        for _ in range(count):
            permit = await limiter.acquire(10, 10)
            admitted.append(clock.now)
            limiter.release(permit, counted_input_tokens=10, output_tokens=10)

    async def body() -> None:
        await asyncio.gather(*(send(limiter, 30) for limiter in limiters))

    _run(body)
    assert 120 == len(admitted)
    start = 1000.0
    for index, at in enumerate(sorted(admitted)):  # the bucket's bound: a minute's worth, then 1 a second
        assert index + 1 <= 60 + (at - start) + 1e-6
    assert max(admitted) - start >= 59.0


def test_a_429_heard_by_one_actor_pauses_the_others() -> None:
    """One limiter's 429 (retry-after 20 s) reaches the owner: another limiter admits nothing for 20 s."""
    clock = FakeClock()
    owner = LocalOwner(LimiterActor(6000, None, None, clock=clock))
    first = LeasedLimiter(owner, max_concurrency=10, clock=clock, sleep=clock.sleep)
    second = LeasedLimiter(owner, max_concurrency=10, clock=clock, sleep=clock.sleep)

    async def body() -> None:
        permit = await first.acquire(10, 10)
        first.release(permit)
        assert first.rate_limited(20.0, headers={"anthropic-ratelimit-requests-remaining": "0"})
        clock.now += 1.0
        admitted_at = clock.now
        permit = await second.acquire(10, 10)
        assert clock.now - admitted_at == pytest.approx(19.0)
        second.release(permit)

    _run(body)


def test_unused_tokens_go_back_into_the_lease() -> None:
    """An answer that used 10 of 1,000 reserved output tokens leaves 990 for the next request, with no new ask."""
    clock = FakeClock()
    owner = LocalOwner(LimiterActor(None, None, 50_000, clock=clock))  # a lease holds 1,000 output tokens
    limiter = LeasedLimiter(owner, max_concurrency=10, clock=clock, sleep=clock.sleep)

    async def body() -> None:
        permit = await limiter.acquire(10, 1000)
        limiter.release(permit, counted_input_tokens=10, output_tokens=10)
        permit = await limiter.acquire(10, 900)
        limiter.release(permit, counted_input_tokens=10, output_tokens=900)

    _run(body)
    assert 1 == owner.asks


def test_heard_limits_are_told_to_the_owner_once_each() -> None:
    """Every response carries the limits; the owner hears them when they change, and no actor keeps a bucket."""
    clock = FakeClock()
    owner = LocalOwner(LimiterActor(None, None, None, clock=clock))
    limiter = LeasedLimiter(owner, max_concurrency=10, clock=clock, sleep=clock.sleep)
    headers = {"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-input-tokens-limit": "nan"}
    limiter.observe_headers(headers)
    limiter.observe_headers(headers)
    limiter.observe_headers({"anthropic-ratelimit-requests-limit": "40"})
    assert [{"requests": 50.0}, {"requests": 40.0}] == owner.told
    assert limiter.limit("requests") is None
