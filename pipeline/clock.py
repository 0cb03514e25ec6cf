"""Time as a run sees it, injectable: a monotonic clock, the wall clock, and sleep.

Every wait a run takes (the limiter's refill, a retry's backoff, the progress ticker, the
reachability watch) goes through `Clock.sleep`, and every duration through `Clock.monotonic`, so a
test drives time instead of patching `asyncio.sleep` or `time.monotonic` for the whole process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["SYSTEM_CLOCK", "Clock"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Clock:
    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = _utc_now
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)


SYSTEM_CLOCK = Clock()
