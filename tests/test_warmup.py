"""The cache warm-up: one cold request leads, the fan-out starts as its response begins, in input order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SEED, TEST_KEY

import pipeline
from pipeline.cli import main
from pipeline.emulator import Emulator, EmulatorConfig, LatencyModel
from pipeline.warmup import Warmup

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "sample_data" / "manifest.jsonl"
TRIAGE = ROOT / "jobs" / "triage.toml"


def run(out: Path, emulator: Emulator, *extra: str) -> None:
    """`docpipe run` of the sample manifest, which must exit 0."""
    env = {"DOCPIPE_PROGRESS": "off", "ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": emulator.base_url}
    result = CliRunner().invoke(main, ["run", str(TRIAGE), str(MANIFEST), "--out", str(out), *extra], env=env)
    assert 0 == result.exit_code, result.output


def _recorder(warmup: Warmup) -> tuple[list[str], Callable[[str], Awaitable[None]]]:
    """A request that enters the warm-up and records its name once let through, and the record."""
    order: list[str] = []

    async def request(name: str) -> None:
        await warmup.enter()
        order.append(name)

    return order, request


def test_a_cold_fan_out_pays_one_cache_write_not_one_per_request(tmp_path: Path) -> None:
    """14 documents at --concurrency 8 on a cold cache: the leader writes the prefix, all 13 others read it."""
    with Emulator(EmulatorConfig(seed=SEED, latency=LatencyModel(ttft_ms=100))) as emulator:
        run(tmp_path / "out", emulator, "--concurrency", "8")
    frame = pipeline.load_results(tmp_path / "out")
    assert 14 == len(frame) and {"ok"} == set(frame.status)
    writers = frame[frame.cache_write_tokens > 0]
    assert 1 == len(writers) and bool(writers.streamed.iloc[0])  # the leader, streamed
    assert 13 == int((frame.cache_read_tokens > 0).sum())


def test_one_request_at_a_time_needs_no_leader(tmp_path: Path) -> None:
    """At --concurrency 1 nothing fans out: no request is streamed for the warm-up's sake."""
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        run(tmp_path / "out", emulator, "--concurrency", "1")
    frame = pipeline.load_results(tmp_path / "out")
    assert not frame.streamed.any() and 1 == int((frame.cache_write_tokens > 0).sum())


def test_followers_keep_their_order_and_a_silent_leader_holds_them_only_max_wait_s() -> None:
    async def scenario() -> tuple[list[str], float]:
        warmup = Warmup(enabled=True, max_wait_s=0.05)
        order, request = _recorder(warmup)

        assert await warmup.enter()  # the leader, which never reports its response starting
        loop = asyncio.get_running_loop()
        started = loop.time()
        followers = [asyncio.create_task(request(f"f{i}")) for i in range(3)]
        await asyncio.sleep(0.06)
        late = asyncio.create_task(request("late"))
        await asyncio.gather(*followers, late)
        return order, loop.time() - started

    order, waited = asyncio.run(scenario())
    assert ["f0", "f1", "f2", "late"] == order
    assert waited == pytest.approx(0.06, abs=0.05)


def test_a_disabled_warmup_lets_everyone_through_at_once() -> None:
    async def scenario() -> list[bool]:
        warmup = Warmup(enabled=False)
        return [await warmup.enter() for _ in range(3)]

    assert [False, False, False] == asyncio.run(scenario())


def test_a_request_arriving_as_the_fan_out_starts_goes_after_the_ones_that_waited() -> None:
    """The leader's worker takes its next document the moment the leader's response begins: it goes last."""

    async def scenario() -> list[str]:
        warmup = Warmup(enabled=True)
        order, request = _recorder(warmup)

        assert await warmup.enter()
        followers = [asyncio.create_task(request(f"f{i}")) for i in range(3)]
        await asyncio.sleep(0)  # the followers are waiting
        warmup.started()
        await request("next")  # in the same turn as the start: the woken followers have not run yet
        await asyncio.gather(*followers)
        return order

    assert ["f0", "f1", "f2", "next"] == asyncio.run(scenario())


def test_a_follower_cancelled_before_the_fan_out_lets_nobody_go_early() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        warmup = Warmup(enabled=True)
        order, request = _recorder(warmup)

        assert await warmup.enter()
        first, second = asyncio.create_task(request("first")), asyncio.create_task(request("second"))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        before = list(order)  # nobody may pass while the leader has not started
        warmup.started()
        await second
        return before, order

    before, order = asyncio.run(scenario())
    assert [] == before and ["second"] == order


def test_a_job_can_turn_the_warmup_off_and_then_a_cold_fan_out_pays_a_write_per_request(tmp_path: Path) -> None:
    job = tmp_path / "no-warmup.toml"
    job.write_text(TRIAGE.read_text().replace("[job]\n", "[job]\ncache_warmup = false\n", 1))
    env = {"DOCPIPE_PROGRESS": "off", "ANTHROPIC_API_KEY": TEST_KEY}
    with Emulator(EmulatorConfig(seed=SEED, latency=LatencyModel(ttft_ms=100))) as emulator:
        env["ANTHROPIC_BASE_URL"] = emulator.base_url
        args = ["run", str(job), str(MANIFEST), "--out", str(tmp_path / "out"), "--concurrency", "8"]
        result = CliRunner().invoke(main, args, env=env)
    assert 0 == result.exit_code, result.output
    frame = pipeline.load_results(tmp_path / "out")
    assert not frame.streamed.any() and 8 == int((frame.cache_write_tokens > 0).sum())


def test_a_leader_whose_attempt_fails_hands_the_lead_to_the_first_waiting_request() -> None:
    """The leader's first attempt fails before its response begins (a 529): one request leads in its place,
    the others still wait; they go when the new leader's response begins."""

    async def scenario() -> tuple[list[str], list[str]]:
        warmup = Warmup(enabled=True)
        order: list[str] = []
        leaders: list[str] = []

        async def request(name: str) -> None:
            if await warmup.enter():
                leaders.append(name)
            order.append(name)

        assert await warmup.enter()
        followers = [asyncio.create_task(request(f"f{i}")) for i in range(3)]
        for _ in range(3):
            await asyncio.sleep(0)
        warmup.handover()
        for _ in range(3):
            await asyncio.sleep(0)
        held = list(order)
        warmup.started()
        await asyncio.gather(*followers)
        return leaders, held

    leaders, held = asyncio.run(scenario())
    assert ["f0"] == leaders and ["f0"] == held  # f0 leads at once; f1 and f2 wait for its response


def test_a_leader_that_fails_at_a_cold_fan_out_still_leaves_one_cache_write(tmp_path: Path) -> None:
    """The first request is answered 529: the next request leads, and the fan-out still pays one write."""
    env = {"DOCPIPE_PROGRESS": "off", "ANTHROPIC_API_KEY": TEST_KEY}
    with Emulator(EmulatorConfig(seed=SEED, latency=LatencyModel(ttft_ms=100))) as emulator:
        emulator.control.set_faults([{"kind": "overloaded", "times": 1}])
        env["ANTHROPIC_BASE_URL"] = emulator.base_url
        args = ["run", str(TRIAGE), str(MANIFEST), "--out", str(tmp_path / "out"), "--concurrency", "8"]
        result = CliRunner().invoke(main, args, env=env)
    assert 0 == result.exit_code, result.output
    frame = pipeline.load_results(tmp_path / "out")
    assert 14 == int((frame.status == "ok").sum()) and 1 == int((frame.cache_write_tokens > 0).sum())


def test_a_request_arriving_while_the_last_follower_is_released_still_goes_after_it() -> None:
    """The last waiting request has been let go but has not resumed yet: a newcomer still goes after it."""

    async def scenario() -> list[str]:
        warmup = Warmup(enabled=True)
        order, request = _recorder(warmup)
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
