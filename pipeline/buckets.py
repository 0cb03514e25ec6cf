"""The token bucket of the API's rate limits, shared by the client's limiter and the emulator.

A bucket holds at most one minute's worth of its per-minute limit and refills continuously at
limit/60 per second, as the real API's buckets do. Callers take from `level` themselves (a request
may be admitted only when several buckets can pay), and may drive it below zero when they learn of
use they did not count. Time is passed in (`now`, seconds on a monotonic clock), never read here.
"""

from __future__ import annotations

__all__ = ["TokenBucket"]

SECONDS_PER_MINUTE = 60.0


class TokenBucket:
    """A per-minute allowance refilled continuously (capacity = one minute's worth)."""

    __slots__ = ("capacity", "level", "rate_per_s", "updated")

    def __init__(self, per_minute: float, now: float) -> None:
        self.capacity = float(per_minute)
        self.level = float(per_minute)
        self.rate_per_s = per_minute / SECONDS_PER_MINUTE
        self.updated = now

    def refill(self, now: float) -> None:
        """Add what the time since the last refill brought, up to the capacity."""
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate_per_s)
            self.updated = now

    def wait_s(self, amount: float) -> float:
        """Seconds until the bucket holds `amount` (capped at its capacity); 0.0 when it does now."""
        need = min(amount, self.capacity) - self.level
        return max(0.0, need / self.rate_per_s)

    def reset_s(self) -> float:
        """Seconds until the bucket is full again."""
        return (self.capacity - self.level) / self.rate_per_s

    def resize(self, per_minute: float) -> None:
        """Take a new limit; the level is kept, down to the new capacity."""
        if per_minute != self.capacity:
            self.level = min(self.level, per_minute)
            self.capacity = float(per_minute)
            self.rate_per_s = per_minute / SECONDS_PER_MINUTE
