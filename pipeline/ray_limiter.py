"""The cluster's one rate limiter on Ray: a named actor owning the buckets, and each API actor's side of it.

Design. `LimiterActor` is a thin shell around `cluster_limits.ClusterBuckets`: one per run, named
`docpipe-limiter-<run id>` (`limiter_name`), created by the driver with no CPU of its own and
found by name by every API actor. Its methods are quick and run one at a time, so the buckets
need no lock.

`LeasedLimiter` is the single-machine `limits.RateLimiter` with one step added inside its gate
(`_admit`): a request that passed the actor's own pause and concurrency slots takes its share from
the actor's lease, asking the owner for a new one when the lease is spent or expired (the only
remote call, once per handful of requests). Everything else is the single machine's: priority of
retries, adaptive concurrency after 529s, reachability, the estimate's correction. What differs:

- the actor keeps no buckets of its own: headers' `*-limit` values go to the owner (when they
  change), never into a per-actor bucket that would let each actor send the whole limit;
- a 429 that pauses the actor (its headers show a spent bucket, or none) is told to the owner,
  which pauses every actor until its `retry-after`;
- a settled answer's unused tokens go back into the lease (or its overshoot is charged to it).

Ray's own HTTP request stage (`ray/llm/_internal/batch/stages/http_request_stage.py`) does none
of this: its `qps` is a per-actor (per-batch) request rate, and a 429 is retried after
`base_retry_wait_time_in_s * 2**n` whatever the `retry-after` says (docs/ray.md).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from .cluster_limits import BUCKET_NAMES, Allowance, ClusterBuckets, Grant, HeldLease
from .limits import Permit, RateLimiter

__all__ = ["LIMITER_NAMESPACE", "LeaseOwner", "LeasedLimiter", "LimiterActor", "RayLeaseOwner", "limiter_name"]

LIMITER_PREFIX = "docpipe-limiter-"
LIMITER_NAMESPACE = "docpipe"  # where the limiter is named, whatever namespace the driver (a notebook) is in


def limiter_name(run_id: str) -> str:
    """The named actor of a run's limiter."""
    return f"{LIMITER_PREFIX}{run_id}"


class LimiterActor:
    """The owner of the cluster's buckets (wrapped by `ray.remote` where it is created)."""

    def __init__(
        self, rpm: int | None, itpm: int | None, otpm: int | None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._buckets = ClusterBuckets(rpm=rpm, itpm=itpm, otpm=otpm, now=clock())

    def lease(self, need: Allowance, returned: Allowance) -> Grant:
        return self._buckets.lease(need, returned, self._clock())

    def give_back(self, returned: Allowance) -> None:
        self._buckets.give_back(returned, self._clock())

    def rate_limited(self, retry_after_s: float) -> bool:
        return self._buckets.rate_limited(retry_after_s, self._clock())

    def observe_limits(self, limits: dict[str, float]) -> None:
        self._buckets.observe_limits(limits, self._clock())

    def stats(self) -> dict[str, Any]:
        """Counters and limits in force, for the run's summary and for tests."""
        buckets = self._buckets
        return {
            "leases": buckets.leases,
            "waits": buckets.waits,
            "pauses": buckets.pauses,
            "limits": {name: buckets.limit(name) for name in BUCKET_NAMES},
        }


class LeaseOwner(Protocol):
    """The limiter's owner as an API actor reaches it: a Ray actor handle, or the buckets themselves in tests."""

    def lease(self, need: Allowance, returned: Allowance) -> Awaitable[Grant]: ...

    def give_back(self, returned: Allowance) -> None: ...

    def rate_limited(self, retry_after_s: float) -> None: ...

    def observe_limits(self, limits: dict[str, float]) -> None: ...


class RayLeaseOwner:
    """A `LeaseOwner` over the named actor: leases are awaited, the rest is sent without waiting."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def lease(self, need: Allowance, returned: Allowance) -> Grant:
        grant: Grant = await self._handle.lease.remote(need, returned)
        return grant

    def give_back(self, returned: Allowance) -> None:
        self._handle.give_back.remote(returned)

    def rate_limited(self, retry_after_s: float) -> None:
        self._handle.rate_limited.remote(retry_after_s)

    def observe_limits(self, limits: dict[str, float]) -> None:
        self._handle.observe_limits.remote(limits)


class LeasedLimiter(RateLimiter):
    """An API actor's limiter: the single machine's admission, with the buckets leased from the cluster's owner."""

    def __init__(
        self,
        owner: LeaseOwner,
        *,
        max_concurrency: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(max_concurrency=max_concurrency, clock=clock, sleep=sleep)
        self._owner = owner
        self._lease = HeldLease()
        self._limits_told: dict[str, float] = {}
        self.lease_waits = 0  # asks the owner answered with a wait (a bucket refilling, or a pause)

    async def _admit(self, needs: Mapping[str, float]) -> None:
        await super()._admit(needs)  # this actor's own pause; it holds no buckets
        need = Allowance(*(needs[name] for name in BUCKET_NAMES))
        while not self._lease.take(need, self._clock()):
            grant = await self._owner.lease(need, self._lease.surrender())
            if grant.wait_s > 0:
                self.lease_waits += 1
                await self._sleep(grant.wait_s)
                continue
            self._lease.renew(grant, self._clock())

    def release(
        self,
        permit: Permit,
        *,
        counted_input_tokens: int | None = None,
        cache_read_tokens: int = 0,
        output_tokens: int | None = None,
    ) -> None:
        if permit.released:
            return
        super().release(
            permit,
            counted_input_tokens=counted_input_tokens,
            cache_read_tokens=cache_read_tokens,
            output_tokens=output_tokens,
        )
        if counted_input_tokens is None or output_tokens is None:  # not counted: the tokens were not spent
            self._lease.credit(Allowance(0.0, permit.input_tokens, permit.output_tokens))
        else:
            self._lease.credit(
                Allowance(0.0, permit.input_tokens - counted_input_tokens, permit.output_tokens - output_tokens)
            )

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Tell the owner the `*-limit` values the API gives, when they change; keep no bucket here."""
        changed: dict[str, float] = {}
        for name in BUCKET_NAMES:
            raw = headers.get(f"anthropic-ratelimit-{name}-limit")
            try:
                value = float(raw) if raw is not None else math.nan
            except ValueError:
                continue
            if math.isfinite(value) and value > 0 and self._limits_told.get(name) != value:
                changed[name] = self._limits_told[name] = value
        if changed:
            self._owner.observe_limits(changed)

    def rate_limited(
        self, retry_after_s: float | None, *, headers: Mapping[str, str] | None = None, permit: Permit | None = None
    ) -> bool:
        paused = super().rate_limited(retry_after_s, headers=headers, permit=permit)
        if paused:  # the allowance is spent for everyone: the owner pauses every lease
            self._lease.drop()
            self._owner.rate_limited(self.paused_for_s())
        return paused

    def close(self) -> None:
        """Give back what the lease still holds (an actor that is done)."""
        self._owner.give_back(self._lease.surrender())
