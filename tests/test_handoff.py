"""The handoff between the preparation thread and the workers: bounded, and closed for good on a stop."""

from __future__ import annotations

import asyncio
import threading
import time

from pipeline.handoff import DONE, Handoff


async def _wait_for(condition: object, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def test_items_flow_in_order_and_the_queue_is_bounded() -> None:
    async def scenario() -> tuple[list[int], int]:
        handoff = Handoff(asyncio.get_running_loop(), capacity=3)
        stop = threading.Event()

        def produce() -> None:
            for index in range(10):
                handoff.put(index, stop)
            handoff.finish()

        producer = threading.Thread(target=produce)
        producer.start()
        await _wait_for(lambda: handoff.queued == 3)
        await asyncio.sleep(0.05)  # give a producer that ignored the bound the time to overrun it
        held = handoff.queued
        taken = []
        while (item := await handoff.get()) is not DONE:
            taken.append(item)
        await asyncio.to_thread(producer.join)
        return taken, held

    taken, held = asyncio.run(scenario())
    assert list(range(10)) == taken
    assert 3 == held


def test_no_document_starts_after_a_stop() -> None:
    """A producer blocked on a full queue when the run stops hands over nothing more, and workers get DONE."""

    async def scenario() -> list[object]:
        handoff = Handoff(asyncio.get_running_loop(), capacity=2)
        stop = threading.Event()

        def produce() -> None:
            for index in range(10):
                if not handoff.put(index, stop):
                    break
            handoff.finish()

        producer = threading.Thread(target=produce)
        producer.start()
        await _wait_for(lambda: handoff.queued == 2)  # full: the producer waits for a slot
        stop.set()
        handoff.drain()  # frees the two slots: the producer wakes holding one
        await asyncio.to_thread(producer.join)
        for _ in range(3):
            await asyncio.sleep(0)  # let any hand-over the producer scheduled arrive
        return [await handoff.get() for _ in range(3)]

    assert [DONE, DONE, DONE] == asyncio.run(scenario())


def test_a_full_queue_is_refilled_in_batches() -> None:
    """Once the queue is full, the thread hands over nothing until `refill` slots are free, then fills them."""

    async def scenario() -> tuple[int, int, int]:
        handoff = Handoff(asyncio.get_running_loop(), capacity=4, refill=2)
        stop = threading.Event()

        def produce() -> None:
            for index in range(10):
                if not handoff.put(index, stop):
                    return
            handoff.finish()

        producer = threading.Thread(target=produce)
        producer.start()
        await _wait_for(lambda: handoff.queued == 4 and not handoff._filling)  # full, the thread asleep
        await handoff.get()
        await asyncio.sleep(0.05)  # give a producer that refilled one slot at a time the time to do it
        after_one = handoff.queued
        await handoff.get()
        await _wait_for(lambda: handoff.queued == 4)
        refilled = handoff.queued
        stop.set()
        handoff.drain()
        await asyncio.to_thread(producer.join)
        return after_one, refilled, handoff._free

    after_one, refilled, free = asyncio.run(scenario())
    assert 3 == after_one
    assert 4 == refilled
    assert 4 == free  # drain gave back every slot


def test_the_queue_is_bounded_by_bytes_and_an_item_over_the_bound_still_passes_alone() -> None:
    """max_bytes=100: items of 60 wait for the one before to be taken; an item of 500 goes into an empty queue."""

    async def scenario() -> tuple[list[int], list[int]]:
        handoff = Handoff(asyncio.get_running_loop(), capacity=10, max_bytes=100)
        stop = threading.Event()
        sizes = [60, 60, 500, 30, 30, 30]

        def produce() -> None:
            for index, size in enumerate(sizes):
                handoff.put(index, stop, size=size)
            handoff.finish()

        producer = threading.Thread(target=produce)
        producer.start()
        held: list[int] = []
        taken: list[int] = []
        while True:
            await _wait_for(lambda: handoff.queued > 0)
            await asyncio.sleep(0.02)  # give a producer that ignored the bound the time to overrun it
            held.append(handoff.queued)
            item = await handoff.get()
            if item is DONE:
                break
            taken.append(item)
        await asyncio.to_thread(producer.join)
        return taken, held

    taken, held = asyncio.run(scenario())
    assert list(range(6)) == taken
    assert [1, 1, 1] == held[:3]  # 60 + 60 > 100, and 500 alone: one at a time
    assert max(held) <= 4  # then the three of 30 fit together, with the end marker
