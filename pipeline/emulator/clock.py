"""The emulator's clock: the system's clocks, plus an offset a test can move forward.

What depends on time over days (a batch's retention, its expiry, prompt-cache TTLs) reads this
clock, so a test can move past 29 days with `advance()` instead of waiting. The offset only grows,
and both readings move together, so every interval the emulator measures stays consistent.
"""

from __future__ import annotations

import time

__all__ = ["Clock"]


class Clock:
    """`time.time()` and `time.monotonic()`, each plus the same offset."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def wall(self) -> float:
        """Unix time, as the API reports it in `created_at`, `ended_at`, ..."""
        return time.time() + self.offset_s

    def monotonic(self) -> float:
        """For intervals: cache expiry."""
        return time.monotonic() + self.offset_s

    def advance(self, seconds: float) -> None:
        """Move the emulator's time forward (never back)."""
        if seconds < 0:
            raise ValueError("the emulator's clock only moves forward")
        self.offset_s += seconds

    def reset(self) -> None:
        self.offset_s = 0.0
