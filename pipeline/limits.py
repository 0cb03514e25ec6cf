"""Client-side admission: the API's three rate-limit buckets, a shared pause, adaptive concurrency.

Design. Every request passes one gate before it is sent: retries of documents already started
enter before first attempts, and each class in arrival order, so a document that has been told to
wait does not queue again behind every fresh document (a run's tail is its longest chain of
retries). The gate holds a request until

1. no pause is in force. A 429 whose `anthropic-ratelimit-*` headers show a bucket too low for the
   request (or show no bucket at all) pauses *every* worker until its `retry-after`: the account's
   allowance is spent, for everyone. A 429 whose headers show room in every bucket contradicts
   itself (a limit the headers do not describe, an overloaded edge): only its own request waits
   out the `retry-after` (the retry layer does that), and concurrency is lowered as for a 529;
2. a concurrency slot is free: the limit starts at `--concurrency`, halves on a 529 or a
   contradicted 429 (at most once per second, so one burst counts once) and climbs back by one per
   success (AIMD). Slots, not the runner's workers, bound the requests in flight: a document
   sleeping out its `retry-after` holds no slot;
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

Reachability. A request that gets no HTTP response at all (connection refused or reset, a connect
timeout) starts a streak of unreachability, if none is running; any HTTP response, error or not,
ends it, and so does any new connection the API accepts (`responded()` is called for both): one
dropped connection among requests whose answers take minutes is not an outage. A request admitted
while a streak was already running, that fails to connect too, failed because of the API, not of
its document: `connection_failed()` says so, and such a failure spends none of the document's
attempts. The runner ends the run once a streak has lasted its bound (`unreachable_for_s()`,
`DOCPIPE_UNREACHABLE_S`): an API down for good stops the run (exit 3) without burning the
documents as error rows, and a shorter outage is ridden through.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from .buckets import TokenBucket

__all__ = ["Permit", "RateLimiter", "bucket_exhausted"]

DECREASE_COOLDOWN_S = 1.0
FIRST_PRIORITY = 0
RETRY_PRIORITY = 1
DEFAULT_PAUSE_S = 1.0
ESTIMATE_SMOOTHING = 0.2
INITIAL_ESTIMATE_RATIO = 1.0
# Shorter waits are float round-off of a refill, not a shortfall: an exact clock would never satisfy them.
MIN_WAIT_S = 1e-6
SAFETY_MARGIN = 1.02


@dataclass(slots=True)
class Permit:
    """What one admitted request reserved, and when; settle it with `RateLimiter.release()`."""

    input_tokens: float
    output_tokens: float
    estimated_tokens: int
    admitted_at: float
    released: bool = False


class _PriorityGate:
    """A lock whose waiters enter by priority (higher first), then in arrival order.

    `asyncio.Lock` is arrival order only. Release hands the lock straight to the best live waiter,
    so it is never free while someone waits; a waiter cancelled in the queue is skipped, and one
    cancelled just after being handed the lock passes it on.
    """

    def __init__(self) -> None:
        self._held = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    def locked(self) -> bool:
        return self._held

    @asynccontextmanager
    async def entry(self, priority: int) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        if not self._held:
            self._held = True
            return
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (-priority, next(self._arrivals), handed))
        try:
            await handed
        except asyncio.CancelledError:
            if handed.done() and not handed.cancelled():
                self._release()
            raise

    def _release(self) -> None:
        while self._waiters:
            _, _, handed = heapq.heappop(self._waiters)
            if not handed.done():
                handed.set_result(None)
                return
        self._held = False


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
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`clock` and `sleep` are time as the limiter sees it: a test passes its own and drives them."""
        self.max_concurrency = max(1, max_concurrency)
        self.concurrency_limit = float(self.max_concurrency)
        self.in_flight = 0
        self.configured = {"requests": rpm, "input-tokens": itpm, "output-tokens": otpm}
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self._buckets: dict[str, TokenBucket | None] = {
            name: TokenBucket(float(limit), now) if limit else None for name, limit in self.configured.items()
        }
        self._gate = _PriorityGate()
        self._released = asyncio.Event()  # a permit settled or a slot opened: waiters look again
        self._paused_until = 0.0
        self._last_decrease = -math.inf
        self._unreachable_since: float | None = None
        self.estimate_ratio = INITIAL_ESTIMATE_RATIO
        self.pauses = 0
        self.decreases = 0

    # -- admission ------------------------------------------------------------------------------

    @property
    def admitting(self) -> bool:
        """Whether a request is in the gate now, waiting for a slot or for the buckets."""
        return self._gate.locked()

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

    async def acquire(self, estimated_input_tokens: int, max_output_tokens: int, *, retry: bool = False) -> Permit:
        """Wait until the request may be sent, reserve its share, and return the permit.

        `retry`: the document has been sent before; it enters ahead of every first attempt waiting.
        """
        input_tokens = self.scaled_estimate(estimated_input_tokens)
        needs = {"requests": 1.0, "input-tokens": input_tokens, "output-tokens": float(max_output_tokens)}
        async with self._gate.entry(RETRY_PRIORITY if retry else FIRST_PRIORITY):
            while self.in_flight >= int(self.concurrency_limit):
                self._released.clear()
                await self._released.wait()
            await self._admit(needs)
            self.in_flight += 1
        return Permit(input_tokens, float(max_output_tokens), estimated_input_tokens, self._clock())

    async def _admit(self, needs: Mapping[str, float]) -> None:
        """Wait out any pause and until the buckets can pay for `needs`, then take it (a slot is free).

        The seam of a limiter shared beyond this process: `ray_limiter.LeasedLimiter` also takes
        `needs` from capacity leased from the cluster's one limiter here, inside the gate.
        """
        while (wait := self._wait_s(needs, self._clock())) > MIN_WAIT_S:
            await self._refill_or_release(wait)
        for name, amount in needs.items():
            bucket = self._buckets[name]
            if bucket is not None:
                bucket.level -= min(amount, bucket.capacity)

    async def _refill_or_release(self, wait_s: float) -> None:
        """Sleep until the buckets' refill covers the need, or until a request gives back its reservation.

        A reservation holds the whole estimated prompt (cached prefix included) and `max_tokens` of
        output until its response settles it; the unused part coming back is usually far sooner than
        the refill, so the head of the queue must not sleep through it.
        """
        self._released.clear()
        refill = asyncio.ensure_future(self._sleep(wait_s))
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
            server_limit = _header_number(headers, f"anthropic-ratelimit-{name}-limit")
            if server_limit is None or server_limit <= 0:  # a limit of nothing would stall every request
                continue
            configured = self.configured[name]
            limit = min(server_limit, configured) if configured else server_limit
            bucket = self._buckets[name]
            if bucket is None:
                bucket = TokenBucket(limit, now)
                self._buckets[name] = bucket
            else:
                bucket.refill(now)
                bucket.resize(limit)
            remaining = _header_number(headers, f"anthropic-ratelimit-{name}-remaining")
            if remaining is not None:
                bucket.level = min(bucket.level, remaining)

    def rate_limited(
        self, retry_after_s: float | None, *, headers: Mapping[str, str] | None = None, permit: Permit | None = None
    ) -> bool:
        """A 429: pause every worker until its retry-after (or a default pause), unless its headers contradict it.

        The pause is taken when the headers show a bucket that cannot pay for the request
        (`permit`), or show no bucket at all. When every bucket they show has room, nobody is
        paused and concurrency is lowered instead, as for a 529. True when a pause was taken.
        """
        if bucket_exhausted(headers or {}, permit) is False:
            self._decrease()
            return False
        pause_s = retry_after_s if retry_after_s is not None else DEFAULT_PAUSE_S
        until = self._clock() + pause_s
        if until > self._paused_until:
            self._paused_until = until
            self.pauses += 1
        return True

    def paused_for_s(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    def overloaded(self) -> None:
        """A 529: halve the concurrency limit (once per cooldown)."""
        self._decrease()

    def _decrease(self) -> None:
        now = self._clock()
        if now - self._last_decrease >= DECREASE_COOLDOWN_S:
            self._last_decrease = now
            lowered = max(1.0, self.concurrency_limit / 2)
            if lowered < self.concurrency_limit:
                self.concurrency_limit = lowered
                self.decreases += 1

    def succeeded(self) -> None:
        """A success: the API is reachable; climb back towards the configured concurrency, one slot at a time."""
        self.responded()
        if self.concurrency_limit < self.max_concurrency:
            self.concurrency_limit = min(float(self.max_concurrency), self.concurrency_limit + 1.0)
            self._released.set()

    # -- reachability ---------------------------------------------------------------------------

    def responded(self) -> None:
        """An HTTP response or an accepted connection: the API is reachable, any streak of failures is over."""
        self._unreachable_since = None

    def connection_failed(self, permit: Permit) -> bool:
        """A request got no HTTP response at all; a streak of unreachability starts, if none is running.

        True when the streak was already running when the request was admitted: it was sent to an
        API known to be unreachable, and the failure is the run's, not the document's.
        """
        if self._unreachable_since is None:
            self._unreachable_since = self._clock()
            return False
        return self._unreachable_since <= permit.admitted_at

    def unreachable_for_s(self) -> float:
        """How long every request has failed to connect, with no response in between (0 when one came last)."""
        if self._unreachable_since is None:
            return 0.0
        return max(0.0, self._clock() - self._unreachable_since)


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    """A header's finite number; None when absent or not one (`nan`, `inf` and garbage say nothing)."""
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def bucket_exhausted(headers: Mapping[str, str], permit: Permit | None) -> bool | None:
    """Whether a 429's `anthropic-ratelimit-*` headers show a bucket that cannot pay for the request.

    A bucket cannot pay when its `remaining` is 0, or below the request's share (one request, the
    reserved input and output tokens; capped at the bucket's limit, as the API caps it). The
    combined `tokens` bucket is judged on 0 alone. None when the headers show no bucket.
    """
    needs = {"requests": 1.0, "input-tokens": 0.0, "output-tokens": 0.0, "tokens": 0.0}
    if permit is not None:
        needs["input-tokens"], needs["output-tokens"] = permit.input_tokens, permit.output_tokens
    shown = False
    for name, need in needs.items():
        remaining = _header_number(headers, f"anthropic-ratelimit-{name}-remaining")
        if remaining is None:
            continue
        shown = True
        limit = _header_number(headers, f"anthropic-ratelimit-{name}-limit")
        if remaining <= 0 or remaining < (min(need, limit) if limit is not None else need):
            return True
    return False if shown else None
