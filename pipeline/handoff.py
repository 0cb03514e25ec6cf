"""The bounded handoff from the preparation thread to the event loop's workers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["DONE", "Handoff"]

DONE = object()


class Handoff:
    """The bounded queue between the preparation thread and the workers.

    The thread takes a slot (blocking while all `capacity` are taken) and hands the item over with
    `call_soon_threadsafe`, without waiting for the event loop to acknowledge it; a worker frees the
    slot when it takes the item. A round trip through the loop per document (as with
    `run_coroutine_threadsafe(queue.put(...))`) made a burst of hundreds of workers start one loop
    iteration apart.

    A thread that found the queue full sleeps until `refill` slots are free, then fills them in one
    go. Woken for every freed slot, it took the GIL from the loop at each of its system calls while
    the workers' first requests were going out, once per document.

    The queue is bounded by bytes too (`max_bytes`, the sizes the thread gives with each item): a
    run of large documents holds `max_bytes` of them, not `capacity`. One item larger than the bound
    still passes when the queue is empty, so nothing waits forever.

    Once closed (`drain()`, on a stop) the handoff stays closed: every `get()` answers `DONE`, and
    an item the thread was already handing over is dropped, so no document starts after a stop.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, capacity: int, refill: int = 1, *, max_bytes: int | None = None
    ) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[tuple[Any, int]] = asyncio.Queue()
        self._refill = max(1, min(refill, capacity))
        self._free = capacity
        self._max_bytes = max_bytes
        self._bytes = 0  # the sizes of the items in the queue
        self._filling = True  # False while the thread sleeps until `refill` slots are free
        self._waiting_for_bytes = False  # the thread sleeps until the queue's bytes make room
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False

    @property
    def queued(self) -> int:
        """Items in the queue (the end marker included), for a look at the bound."""
        return self._queue.qsize()

    def put(self, item: Any, stop_taking: threading.Event, size: int = 0) -> bool:
        """From the thread: False when told to stop (while waiting for a slot or once it has one)."""
        with self._lock:
            while True:
                if stop_taking.is_set():
                    return False
                fits = self._max_bytes is None or self._bytes == 0 or self._bytes + size <= self._max_bytes
                if self._filling and self._free > 0 and fits:
                    break
                if self._free == 0:
                    self._filling = False
                self._waiting_for_bytes = not fits
                self._wake.wait(timeout=0.2)
            self._waiting_for_bytes = False
            self._free -= 1
            self._bytes += size
        return self._call(self._arrive, (item, size))

    def finish(self) -> None:
        """From the thread: no more work (never blocks)."""
        self._call(self._arrive, (DONE, 0))

    def _call(self, callback: Callable[[tuple[Any, int]], None], entry: tuple[Any, int]) -> bool:
        try:
            self._loop.call_soon_threadsafe(callback, entry)
        except RuntimeError:  # the loop is closed: the run is over, nobody will take it
            return False
        return True

    def _release(self, size: int) -> None:
        with self._lock:
            self._free += 1
            self._bytes -= size
            if not self._filling and self._free >= self._refill:
                self._filling = True
                self._wake.notify()
            elif self._waiting_for_bytes:
                self._wake.notify()

    def _arrive(self, entry: tuple[Any, int]) -> None:
        if not self._closed:
            self._queue.put_nowait(entry)
        elif entry[0] is not DONE:
            self._release(entry[1])

    async def get(self) -> Any:
        if self._closed:
            return DONE
        item, size = await self._queue.get()
        if item is DONE:
            self._queue.put_nowait((DONE, 0))  # for the next worker
        else:
            self._release(size)
        return item

    def drain(self) -> None:
        """From the loop: drop the work not started (the next run picks it up) and end the workers."""
        self._closed = True
        dropped = dropped_bytes = 0
        while not self._queue.empty():
            item, size = self._queue.get_nowait()
            if item is not DONE:
                dropped += 1
                dropped_bytes += size
        self._queue.put_nowait((DONE, 0))
        with self._lock:  # wake the thread whatever the count: it must see the stop and return
            self._free += dropped
            self._bytes -= dropped_bytes
            self._filling = True
            self._wake.notify()
