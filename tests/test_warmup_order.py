"""The warm-up's ordering promise."""

from __future__ import annotations

import asyncio

from pipeline.warmup import Warmup


def test_a_request_arriving_while_the_last_follower_is_released_still_goes_after_it() -> None:
    """The last waiting request has been let go but has not resumed yet: a newcomer still goes after it."""

    async def scenario() -> list[str]:
        warmup = Warmup(enabled=True)
        order: list[str] = []

        async def request(name: str) -> None:
            await warmup.enter()
            order.append(name)

        assert await warmup.enter()
        followers = [asyncio.create_task(request(f"f{i}")) for i in range(3)]
        await asyncio.sleep(0)
        warmup.started()  # f0's turn is set
        await asyncio.sleep(0)  # f0 runs, sets f1's turn
        await asyncio.sleep(0)  # f1 runs, sets f2's turn: the queue is empty, f2 has not run
        await request("late")
        await asyncio.gather(*followers)
        return order

    assert ["f0", "f1", "f2", "late"] == asyncio.run(scenario())
