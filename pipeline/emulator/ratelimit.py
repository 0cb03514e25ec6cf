"""Per-key token buckets for requests, input tokens and output tokens per minute.

Each bucket holds at most its per-minute limit and refills continuously at limit/60 per second, as
the real API's buckets do (`pipeline.buckets`, whose bucket the client's limiter uses too). A request
is admitted when every bucket can pay for it: one request, its uncached input tokens (cache reads
are free, cache writes are not), and its `max_tokens` of output, which is refunded down to the real
output when the response is complete. Otherwise it is answered 429 with a `retry-after` that says
when the short bucket will have enough.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from ..buckets import TokenBucket

__all__ = ["Limits", "RateLimiter"]

UNLIMITED = 1_000_000_000


@dataclass(frozen=True)
class Limits:
    """Per-minute limits; None means effectively unlimited (a very large advertised limit)."""

    rpm: int | None = None
    itpm: int | None = None
    otpm: int | None = None


class RateLimiter:
    """The three buckets of every API key."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._buckets: dict[str, tuple[TokenBucket, TokenBucket, TokenBucket]] = {}

    def clear(self) -> None:
        self._buckets.clear()

    def _get(self, key_id: str, now: float) -> tuple[TokenBucket, TokenBucket, TokenBucket]:
        buckets = self._buckets.get(key_id)
        if buckets is None:
            buckets = (
                TokenBucket(self.limits.rpm or UNLIMITED, now),
                TokenBucket(self.limits.itpm or UNLIMITED, now),
                TokenBucket(self.limits.otpm or UNLIMITED, now),
            )
            self._buckets[key_id] = buckets
        for bucket in buckets:
            bucket.refill(now)
        return buckets

    def admit(self, key_id: str, input_tokens: int, output_reserve: int, now: float) -> float:
        """Take the request's share and return 0.0, or return the seconds to wait (nothing taken)."""
        requests, inputs, outputs = self._get(key_id, now)
        output_reserve = int(min(output_reserve, outputs.capacity))
        wait_s = max(requests.wait_s(1), inputs.wait_s(input_tokens), outputs.wait_s(output_reserve))
        if wait_s > 0:
            return wait_s
        requests.level -= 1
        inputs.level -= min(input_tokens, inputs.capacity)
        outputs.level -= output_reserve
        return 0.0

    def settle(self, key_id: str, output_reserved: int, output_used: int, now: float) -> None:
        """Give back the reserved output tokens the response did not use."""
        outputs = self._get(key_id, now)[2]
        reserved = min(output_reserved, outputs.capacity)
        outputs.level = min(outputs.capacity, outputs.level + max(0.0, reserved - output_used))

    def headers(self, key_id: str, now: float, wall_now: float) -> dict[str, str]:
        """The `anthropic-ratelimit-*` headers describing this key's buckets right now."""
        requests, inputs, outputs = self._get(key_id, now)
        out: dict[str, str] = {}
        named = (("requests", requests), ("input-tokens", inputs), ("output-tokens", outputs))
        for name, bucket in named:
            out[f"anthropic-ratelimit-{name}-limit"] = str(int(bucket.capacity))
            out[f"anthropic-ratelimit-{name}-remaining"] = str(max(0, math.floor(bucket.level)))
            out[f"anthropic-ratelimit-{name}-reset"] = _rfc3339(wall_now + bucket.reset_s())
        # With no workspace limit, the `tokens-*` headers describe "the total tokens remaining, where total
        # is the sum of input and output tokens" (https://platform.claude.com/docs/en/api/rate-limits,
        # response headers): the two buckets added up, full again when both are.
        out["anthropic-ratelimit-tokens-limit"] = str(int(inputs.capacity) + int(outputs.capacity))
        remaining = max(0, math.floor(inputs.level)) + max(0, math.floor(outputs.level))
        out["anthropic-ratelimit-tokens-remaining"] = str(remaining)
        out["anthropic-ratelimit-tokens-reset"] = _rfc3339(wall_now + max(inputs.reset_s(), outputs.reset_s()))
        return out


def _rfc3339(timestamp: float) -> str:
    """The time as RFC 3339 in whole seconds, rounded up (a bucket is full again by then)."""
    return _rfc3339_second(math.ceil(timestamp))


@lru_cache(maxsize=256)
def _rfc3339_second(second: int) -> str:  # four headers a response, mostly the same few seconds
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
