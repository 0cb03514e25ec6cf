"""One rate limit for a whole cluster: the organisation's buckets, leased to API actors in chunks.

Design. The API's limits are the organisation's (requests, input tokens and output tokens per
minute), whatever number of processes send. Dividing them blindly (each of N actors takes 1/N)
wastes what an idle actor does not use; giving each actor the whole limit (what a per-actor limiter
does) overshoots N times and turns the overshoot into 429s. Here one owner holds the three buckets
(`ClusterBuckets`, in one named Ray actor: `ray_limiter.py`), and each API actor takes capacity from
it a *lease* at a time:

- a lease is granted only when every bucket can pay for the request that asked (one request, its
  estimated input tokens, its `max_tokens` of output); it then holds up to `LEASE_SHARE` of each
  bucket's capacity, so an actor asks once per handful of requests, not once per request;
- a lease lives `LEASE_TTL_S`: what its holder has not used by then goes back with its next ask
  (`returned`), and so do the tokens its answers did not use (the API refunds unused output the
  same way). An answer that used more than was estimated is a debt, returned as a negative amount;
- a 429 that an actor takes as "the allowance is spent" (`limits.RateLimiter.rate_limited`) is
  told to the owner, which pauses *every* lease until its `retry-after`: no actor is granted
  anything before then, and an actor's own lease ends at its next ask, within one `LEASE_TTL_S`;
- limits come from the job or the command line, and the `anthropic-ratelimit-*-limit` headers
  lower them (or set them, when none was given), as for a single process.

The bucket is debited when a lease is granted, before its requests are sent; the API debits when
they arrive. Both refill at the same rate, but a full bucket refills no further: while the API's
bucket sits full, waiting for requests already leased here, this one refills what it lent, and
the gap is the refill over the time between a lease and its request. So the owner keeps
`HEADROOM_SHARE` of each bucket back, never leased: a gap of that much (a second and more at any
limit) is absorbed, and only the first minute's burst is that much smaller, not the rate.

Pure: time is passed in (`now`, a monotonic clock in seconds), no Ray, no asyncio; the actor and
the client side (`ray_limiter.py`) are thin shells around it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from .buckets import TokenBucket

__all__ = [
    "BUCKET_NAMES",
    "HEADROOM_SHARE",
    "LEASE_SHARE",
    "LEASE_TTL_S",
    "Allowance",
    "ClusterBuckets",
    "Grant",
    "HeldLease",
]

LEASE_SHARE = 0.02  # of each bucket's capacity that one lease may hold: 12 requests of an RPM of 600
HEADROOM_SHARE = 0.02  # of each bucket's capacity never leased: what leases taken ahead of their requests refill
LEASE_TTL_S = 0.5  # how long a lease may be used: a pause reaches every actor within this
MIN_WAIT_S = 1e-6  # shorter waits are float round-off of a refill
BUCKET_NAMES = ("requests", "input-tokens", "output-tokens")


@dataclass(frozen=True, slots=True)
class Allowance:
    """An amount of each bucket; `math.inf` where a bucket has no limit. May be negative (a debt)."""

    requests: float = 0.0
    input_tokens: float = 0.0
    output_tokens: float = 0.0

    def __add__(self, other: Allowance) -> Allowance:
        return Allowance(
            _add(self.requests, other.requests),
            _add(self.input_tokens, other.input_tokens),
            _add(self.output_tokens, other.output_tokens),
        )

    def __sub__(self, other: Allowance) -> Allowance:
        return self + Allowance(-other.requests, -other.input_tokens, -other.output_tokens)

    def covers(self, need: Allowance) -> bool:
        return (
            self.requests >= need.requests
            and self.input_tokens >= need.input_tokens
            and self.output_tokens >= need.output_tokens
        )

    def amounts(self) -> tuple[float, float, float]:
        """In `BUCKET_NAMES` order."""
        return self.requests, self.input_tokens, self.output_tokens


def _add(left: float, right: float) -> float:
    if math.isinf(left) or math.isinf(right):  # unlimited stays unlimited; inf - inf is no amount
        return math.inf
    return left + right


NOTHING = Allowance()


@dataclass(frozen=True, slots=True)
class Grant:
    """The owner's answer to a lease request: capacity to use for `ttl_s`, or `wait_s` to wait first."""

    allowance: Allowance
    wait_s: float = 0.0  # > 0: nothing granted; ask again after this long
    ttl_s: float = LEASE_TTL_S
    paused: bool = False  # the wait is a pause after a 429, not a bucket refilling


class ClusterBuckets:
    """The organisation's three buckets and its pause, leased out in chunks (see the module docstring)."""

    def __init__(
        self,
        *,
        rpm: int | None,
        itpm: int | None,
        otpm: int | None,
        now: float,
        lease_share: float = LEASE_SHARE,
        headroom_share: float = HEADROOM_SHARE,
        ttl_s: float = LEASE_TTL_S,
    ) -> None:
        self.configured: dict[str, int | None] = dict(zip(BUCKET_NAMES, (rpm, itpm, otpm), strict=True))
        self.buckets: dict[str, TokenBucket | None] = {
            name: TokenBucket(float(limit), now) if limit else None for name, limit in self.configured.items()
        }
        self.lease_share = lease_share
        self.headroom_share = headroom_share
        self.ttl_s = ttl_s
        self.paused_until = -math.inf
        self.pauses = 0
        self.leases = 0
        self.waits = 0

    def limit(self, name: str) -> float | None:
        bucket = self.buckets[name]
        return bucket.capacity if bucket is not None else None

    def lease(self, need: Allowance, returned: Allowance, now: float) -> Grant:
        """Take back `returned`, then grant at least `need` and up to a lease's share, or say how long to wait."""
        self._take_back(returned, now)
        pause_s = self.paused_until - now
        wait_s = max(0.0, pause_s)
        for name, amount in zip(BUCKET_NAMES, need.amounts(), strict=True):
            bucket = self.buckets[name]
            if bucket is not None:
                bucket.refill(now)
                wait_s = max(wait_s, bucket.wait_s(min(amount, bucket.capacity) + self._headroom(bucket)))
        if wait_s > MIN_WAIT_S:
            self.waits += 1
            return Grant(NOTHING, wait_s=wait_s, ttl_s=self.ttl_s, paused=pause_s > MIN_WAIT_S)
        granted: list[float] = []
        for name, amount in zip(BUCKET_NAMES, need.amounts(), strict=True):
            bucket = self.buckets[name]
            if bucket is None:
                granted.append(math.inf)
                continue
            wanted = min(amount, bucket.capacity)  # as the API caps a request's share at the limit
            chunk = max(wanted, min(bucket.level - self._headroom(bucket), bucket.capacity * self.lease_share))
            bucket.level -= chunk
            granted.append(chunk)
        self.leases += 1
        return Grant(Allowance(*granted), ttl_s=self.ttl_s)

    def _headroom(self, bucket: TokenBucket) -> float:
        return bucket.capacity * self.headroom_share

    def give_back(self, returned: Allowance, now: float) -> None:
        """An actor's unused lease (or its debt) without asking for more: at its end, say."""
        self._take_back(returned, now)

    def _take_back(self, returned: Allowance, now: float) -> None:
        for name, amount in zip(BUCKET_NAMES, returned.amounts(), strict=True):
            bucket = self.buckets[name]
            if bucket is None or amount == 0 or math.isinf(amount):
                continue
            bucket.refill(now)
            bucket.level = min(bucket.capacity, bucket.level + amount)

    def rate_limited(self, retry_after_s: float, now: float) -> bool:
        """A 429 that spent the allowance: no lease is granted to anyone until `retry_after_s` from now.

        True when it lengthened the pause (a later 429 of the same burst does not count twice).
        """
        until = now + max(0.0, retry_after_s)
        if until <= self.paused_until:
            return False
        self.paused_until = until
        self.pauses += 1
        return True

    def observe_limits(self, limits: Mapping[str, float], now: float) -> None:
        """The `anthropic-ratelimit-*-limit` values an actor heard: lower a configured limit, or set a missing one."""
        for name, server_limit in limits.items():
            if name not in self.buckets or not server_limit > 0 or math.isinf(server_limit):
                continue
            configured = self.configured[name]
            limit = min(server_limit, configured) if configured else server_limit
            bucket = self.buckets[name]
            if bucket is None:
                self.buckets[name] = TokenBucket(limit, now)
            else:
                bucket.refill(now)
                bucket.resize(limit)


@dataclass(slots=True)
class HeldLease:
    """What one actor holds of a lease: taken a request at a time, topped up by its answers' refunds."""

    held: Allowance = NOTHING
    expires_at: float = -math.inf

    def take(self, need: Allowance, now: float) -> bool:
        """Take `need` from the lease when it is live and covers it."""
        if now >= self.expires_at or not self.held.covers(need):
            return False
        self.held = self.held - need
        return True

    def credit(self, amount: Allowance) -> None:
        """Tokens an answer did not use (positive) or used beyond its reservation (negative)."""
        self.held = self.held + amount

    def renew(self, grant: Grant, now: float) -> None:
        self.held = grant.allowance
        self.expires_at = now + grant.ttl_s

    def surrender(self) -> Allowance:
        """Everything held, to return to the owner; the lease is empty and expired after."""
        held, self.held, self.expires_at = self.held, NOTHING, -math.inf
        return held

    def drop(self) -> None:
        """Forget the lease without returning it: a 429 said its capacity is not there."""
        self.held, self.expires_at = NOTHING, -math.inf
