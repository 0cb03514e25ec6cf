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

    Once closed (`drain()`, on a stop) the handoff stays closed: every `get()` answers `DONE`, and
    an item the thread was already handing over is dropped, so no document starts after a stop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int, refill: int = 1) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._refill = max(1, min(refill, capacity))
        self._free = capacity
        self._filling = True  # False while the thread sleeps until `refill` slots are free
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False

    def put(self, item: Any, stop_taking: threading.Event) -> bool:
        """From the thread: False when told to stop (while waiting for a slot or once it has one)."""
        with self._lock:
            while True:
                if stop_taking.is_set():
                    return False
                if self._filling and self._free > 0:
                    break
                if self._free == 0:
                    self._filling = False
                self._wake.wait(timeout=0.2)
            self._free -= 1
        return self._call(self._arrive, item)

    def finish(self) -> None:
        """From the thread: no more work (never blocks)."""
        self._call(self._arrive, DONE)

    def _call(self, callback: Callable[[Any], None], item: Any) -> bool:
        try:
            self._loop.call_soon_threadsafe(callback, item)
        except RuntimeError:  # the loop is closed: the run is over, nobody will take it
            return False
        return True

    def _release(self) -> None:
        with self._lock:
            self._free += 1
            if not self._filling and self._free >= self._refill:
                self._filling = True
                self._wake.notify()

    def _arrive(self, item: Any) -> None:
        if not self._closed:
            self._queue.put_nowait(item)
        elif item is not DONE:
            self._release()

    async def get(self) -> Any:
        if self._closed:
            return DONE
        item = await self._queue.get()
        if item is DONE:
            self._queue.put_nowait(DONE)  # for the next worker
        else:
            self._release()
        return item

    def drain(self) -> None:
        """From the loop: drop the work not started (the next run picks it up) and end the workers."""
        self._closed = True
        dropped = 0
        while not self._queue.empty():
            if self._queue.get_nowait() is not DONE:
                dropped += 1
        self._queue.put_nowait(DONE)
        with self._lock:  # wake the thread whatever the count: it must see the stop and return
            self._free += dropped
            self._filling = True
            self._wake.notify()
