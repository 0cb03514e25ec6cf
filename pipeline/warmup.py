"""The cache warm-up: a cold fan-out's first request goes alone, the rest once its response has begun.

A prompt-cache entry is readable only once the first response that writes it has started
(https://platform.claude.com/docs/en/build-with-claude/prompt-caching). Sent all at once, the first
C requests of a run sharing a cacheable prefix all find the cache cold and each pay the write (1.25x
or 2x the input price) where one write and C-1 reads (0.1x) would do. So the first request is the
leader: it is streamed, and the others wait until its response has begun, or its first attempt has
ended, or `MAX_WAIT_S` has passed: a leader that hangs or retries must not hold the run. What it
costs is the leader's time to first token, once a run.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["MAX_WAIT_S", "Warmup"]

MAX_WAIT_S = 5.0  # past this, the fan-out starts without the leader: a cache write each costs less than a stall


class Warmup:
    """Who leads, and when the fan-out may start; a disabled warm-up lets every request through at once.

    The waiting requests are let go one per turn of the event loop, in the order they came: released
    all at once, hundreds of them would advance in lockstep and the first would reach the wire only
    when the last does. A request that comes while they are being let go queues behind them, so
    documents still reach the API in input order.
    """

    def __init__(self, *, enabled: bool, max_wait_s: float = MAX_WAIT_S) -> None:
        self._max_wait_s = max_wait_s
        self._open = not enabled
        self._led = False
        self._queue: deque[asyncio.Future[None]] = deque()
        self._released = 0  # turns let go whose requests have not resumed yet: a newcomer still queues behind them
        self._promote = False  # the next turn let go before the fan-out leads (the leader failed)
        self._timer: asyncio.TimerHandle | None = None

    @property
    def done(self) -> bool:
        return self._open and not self._queue and not self._released

    async def enter(self) -> bool:
        """True for the one request that leads; every other waits its turn until the leader's response has begun."""
        if self.done:
            return False
        if not self._open and not self._led:
            self._led = True
            if self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self._max_wait_s, self.started)
            return True
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(turn)
        try:
            await turn
        finally:
            if turn.done() and not turn.cancelled():
                self._released -= 1
            # Open: this request's turn came (or it was cancelled during the fan-out), the next one's comes.
            # A cancelled request that was to lead passes the lead on to the one after it.
            if self._open or (self._promote and turn.cancelled()):
                self._next()
        if not self._open and self._promote:
            self._promote = False
            return True
        return False

    def started(self) -> None:
        """The leader's response has begun, or its attempt ended: the fan-out starts (idempotent)."""
        if not self._open:
            self._open = True
            self._promote = False
            if self._timer is not None:
                self._timer.cancel()
            self._next()

    def handover(self) -> None:
        """The leader's attempt failed before its response began: the first waiting request leads instead.

        With nobody waiting, the next request to come leads. `MAX_WAIT_S` still bounds the whole wait.
        """
        if self._open:
            return
        if self._queue:
            self._promote = True
            self._next()
        else:
            self._led = False

    def _next(self) -> None:
        """Let the first waiting request go (at the next turn of the loop it goes on to let the one after it go)."""
        while self._queue:
            turn = self._queue.popleft()
            if not turn.done():
                turn.set_result(None)
                self._released += 1
                return
