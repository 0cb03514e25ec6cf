"""Client-side admission: the API's three rate-limit buckets, a shared pause, adaptive concurrency.

Design. Every request passes one FIFO gate before it is sent. The gate holds it until

1. no pause is in force: a 429 pauses *every* worker until its `retry-after`, not only the one
   that received it;
2. a concurrency slot is free: the limit starts at `--concurrency`, halves on a 529 (at most once
   per second, so one burst of overload counts once) and climbs back by one per success (AIMD);
3. the three token buckets can pay: one request, the estimated input tokens and `max_tokens` of
   output. Buckets hold one minute's worth and refill continuously, exactly like the API's. When the
   response arrives the reservation is settled against the real usage: unused output is given back
   (the API itself reserves `max_tokens` and adjusts afterwards), cache reads are given back (they do
   not count against the input limit), and an under-estimate is charged.

Limits come from the job or the command line; the `anthropic-ratelimit-*-limit` headers of every
response override them when lower and fill them in when absent, and `*-remaining` pulls a bucket
down when the server has seen more use than we counted (another client on the same key). So a job
with no limits configured converges on the account's limit by itself.

The estimate of input tokens is corrected too: a running ratio of counted to estimated prompt tokens
scales every later estimate.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["Permit", "RateLimiter"]

DECREASE_COOLDOWN_S = 1.0
DEFAULT_PAUSE_S = 1.0
ESTIMATE_SMOOTHING = 0.2
INITIAL_ESTIMATE_RATIO = 1.0
# Shorter waits are float round-off of a refill, not a shortfall: an exact clock would never satisfy them.
MIN_WAIT_S = 1e-6
SAFETY_MARGIN = 1.02


class _Bucket:
    """A per-minute allowance refilled continuously (capacity = one minute's worth)."""

    __slots__ = ("capacity", "level", "updated")

    def __init__(self, per_minute: float, now: float) -> None:
        self.capacity = per_minute
        self.level = per_minute
        self.updated = now

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.capacity / 60.0)
            self.updated = now

    def wait_s(self, amount: float) -> float:
        need = min(amount, self.capacity) - self.level
        return max(0.0, need * 60.0 / self.capacity)

    def resize(self, per_minute: float) -> None:
        if per_minute != self.capacity:
            self.level = min(self.level, per_minute)
            self.capacity = per_minute


@dataclass(slots=True)
class Permit:
    """What one admitted request reserved; settle it with `RateLimiter.release()`."""

    input_tokens: float
    output_tokens: float
    estimated_tokens: int
    released: bool = False


class RateLimiter:
    """Admission control shared by every worker of a run (see the module docstring)."""

    def __init__(
        self,
        *,
        max_concurrency: int,
        rpm: int | None = None,
        itpm: int | None = None,
        otpm: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_concurrency = max(1, max_concurrency)
        self.concurrency_limit = float(self.max_concurrency)
        self.in_flight = 0
        self.configured = {"requests": rpm, "input-tokens": itpm, "output-tokens": otpm}
        self._clock = clock
        now = clock()
        self._buckets: dict[str, _Bucket | None] = {
            name: _Bucket(float(limit), now) if limit else None for name, limit in self.configured.items()
        }
        self._gate = asyncio.Lock()
        self._released = asyncio.Event()  # a permit settled or a slot opened: waiters look again
        self._paused_until = 0.0
        self._last_decrease = -math.inf
        self.estimate_ratio = INITIAL_ESTIMATE_RATIO
        self.pauses = 0
        self.decreases = 0

    # -- admission ------------------------------------------------------------------------------

    def limit(self, name: str) -> float | None:
        """The per-minute limit in force for `requests`, `input-tokens` or `output-tokens`."""
        bucket = self._buckets[name]
        return bucket.capacity if bucket is not None else None

    def scaled_estimate(self, estimated_tokens: int) -> float:
        return estimated_tokens * self.estimate_ratio * SAFETY_MARGIN

    def _wait_s(self, needs: Mapping[str, float], now: float) -> float:
        wait = max(0.0, self._paused_until - now)
        for name, amount in needs.items():
            bucket = self._buckets[name]
            if bucket is not None:
                bucket.refill(now)
                wait = max(wait, bucket.wait_s(amount))
        return wait

    async def acquire(self, estimated_input_tokens: int, max_output_tokens: int) -> Permit:
        """Wait until the request may be sent, reserve its share, and return the permit."""
        input_tokens = self.scaled_estimate(estimated_input_tokens)
        needs = {"requests": 1.0, "input-tokens": input_tokens, "output-tokens": float(max_output_tokens)}
        async with self._gate:
            while self.in_flight >= int(self.concurrency_limit):
                self._released.clear()
                await self._released.wait()
            while (wait := self._wait_s(needs, self._clock())) > MIN_WAIT_S:
                await self._refill_or_release(wait)
            for name, amount in needs.items():
                bucket = self._buckets[name]
                if bucket is not None:
                    bucket.level -= min(amount, bucket.capacity)
            self.in_flight += 1
        return Permit(input_tokens, float(max_output_tokens), estimated_input_tokens)

    async def _refill_or_release(self, wait_s: float) -> None:
        """Sleep until the buckets' refill covers the need, or until a request gives back its reservation.

        A reservation holds the whole estimated prompt (cached prefix included) and `max_tokens` of
        output until its response settles it; the unused part coming back is usually far sooner than
        the refill, so the head of the queue must not sleep through it.
        """
        self._released.clear()
        refill = asyncio.ensure_future(asyncio.sleep(wait_s))
        released = asyncio.ensure_future(self._released.wait())
        try:
            await asyncio.wait((refill, released), return_when=asyncio.FIRST_COMPLETED)
        finally:
            refill.cancel()
            released.cancel()

    def release(
        self,
        permit: Permit,
        *,
        counted_input_tokens: int | None = None,
        cache_read_tokens: int = 0,
        output_tokens: int | None = None,
    ) -> None:
        """Settle a permit: give back what was not used, charge what was under-estimated.

        Without counts (the request failed before the API counted it) the whole token reservation
        is given back; the request itself stays spent.
        """
        if permit.released:
            return
        permit.released = True
        self.in_flight -= 1
        self._released.set()
        now = self._clock()
        inputs, outputs = self._buckets["input-tokens"], self._buckets["output-tokens"]
        if counted_input_tokens is None or output_tokens is None:
            if inputs is not None:
                inputs.refill(now)
                inputs.level = min(inputs.capacity, inputs.level + permit.input_tokens)
            if outputs is not None:
                outputs.refill(now)
                outputs.level = min(outputs.capacity, outputs.level + permit.output_tokens)
            return
        prompt_tokens = counted_input_tokens + cache_read_tokens
        if permit.estimated_tokens > 0 and prompt_tokens > 0:
            observed = prompt_tokens / permit.estimated_tokens
            self.estimate_ratio += ESTIMATE_SMOOTHING * (observed - self.estimate_ratio)
        if inputs is not None:
            inputs.refill(now)
            inputs.level = min(inputs.capacity, inputs.level + permit.input_tokens - counted_input_tokens)
        if outputs is not None:
            outputs.refill(now)
            outputs.level = min(outputs.capacity, outputs.level + permit.output_tokens - output_tokens)

    # -- feedback -------------------------------------------------------------------------------

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Learn limits and remaining allowance from `anthropic-ratelimit-*` response headers."""
        now = self._clock()
        for name in ("requests", "input-tokens", "output-tokens"):
            raw_limit = headers.get(f"anthropic-ratelimit-{name}-limit")
            if raw_limit is None:
                continue
            try:
                server_limit = float(raw_limit)
            except ValueError:
                continue
            configured = self.configured[name]
            limit = min(server_limit, configured) if configured else server_limit
            bucket = self._buckets[name]
            if bucket is None:
                bucket = _Bucket(limit, now)
                self._buckets[name] = bucket
            else:
                bucket.refill(now)
                bucket.resize(limit)
            raw_remaining = headers.get(f"anthropic-ratelimit-{name}-remaining")
            if raw_remaining is not None:
                with contextlib.suppress(ValueError):
                    bucket.level = min(bucket.level, float(raw_remaining))

    def rate_limited(self, retry_after_s: float | None) -> None:
        """A 429: pause every worker until the server's retry-after (or a default pause)."""
        pause_s = retry_after_s if retry_after_s is not None else DEFAULT_PAUSE_S
        until = self._clock() + pause_s
        if until > self._paused_until:
            self._paused_until = until
            self.pauses += 1

    def paused_for_s(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    def overloaded(self) -> None:
        """A 529: halve the concurrency limit (once per cooldown)."""
        now = self._clock()
        if now - self._last_decrease >= DECREASE_COOLDOWN_S:
            self._last_decrease = now
            lowered = max(1.0, self.concurrency_limit / 2)
            if lowered < self.concurrency_limit:
                self.concurrency_limit = lowered
                self.decreases += 1

    def succeeded(self) -> None:
        """A success: climb back towards the configured concurrency, one slot at a time."""
        if self.concurrency_limit < self.max_concurrency:
            self.concurrency_limit = min(float(self.max_concurrency), self.concurrency_limit + 1.0)
            self._released.set()
