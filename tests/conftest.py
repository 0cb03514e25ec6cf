"""Shared fixtures: an in-process emulator on loopback and SDK clients pointed at it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import anthropic
import pytest

from pipeline.emulator import Emulator, EmulatorConfig

TEST_KEY = "sk-ant-test-0123456789abcdef"
SEED = 1234

T = TypeVar("T")


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh emulator with default configuration (zero latency, no faults, seed 1234)."""
    with Emulator(EmulatorConfig(seed=SEED)) as emu:
        yield emu


@pytest.fixture
def client(emulator: Emulator) -> Iterator[anthropic.Anthropic]:
    """A strict-validation sync SDK client with SDK retries off."""
    with anthropic.Anthropic(
        api_key=TEST_KEY, base_url=emulator.base_url, max_retries=0, _strict_response_validation=True
    ) as sdk:
        yield sdk


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Emulator]]:
    """A factory of started emulators: `make_emulator(**EmulatorConfig fields)`, seed 1234 unless given."""
    started: list[Emulator] = []

    def make(**config: Any) -> Emulator:
        config.setdefault("seed", SEED)
        emu = Emulator(EmulatorConfig(**config)).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def make_client() -> Iterator[Callable[..., anthropic.Anthropic]]:
    """A factory of strict-validation sync SDK clients: `make_client(emulator, **client options)`.

    The key is TEST_KEY and SDK retries are off unless the options say otherwise.
    """
    clients: list[anthropic.Anthropic] = []

    def make(emu: Emulator, **options: Any) -> anthropic.Anthropic:
        options.setdefault("api_key", TEST_KEY)
        options.setdefault("max_retries", 0)
        sdk = anthropic.Anthropic(base_url=emu.base_url, _strict_response_validation=True, **options)
        clients.append(sdk)
        return sdk

    yield make
    for sdk in clients:
        sdk.close()


@pytest.fixture
def make_async_client() -> Callable[..., anthropic.AsyncAnthropic]:
    """Like `make_client`, for `anthropic.AsyncAnthropic`: call it inside the coroutine, use it with `async with`."""

    def make(emu: Emulator, **options: Any) -> anthropic.AsyncAnthropic:
        options.setdefault("api_key", TEST_KEY)
        options.setdefault("max_retries", 0)
        return anthropic.AsyncAnthropic(base_url=emu.base_url, _strict_response_validation=True, **options)

    return make


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    """`wait_until(condition, timeout_s=10)`: poll until `condition()` is truthy and return it; fail at the deadline."""

    def wait(condition: Callable[[], T], *, timeout_s: float = 10.0, what: str = "the condition") -> T:
        deadline = time.monotonic() + timeout_s
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
            time.sleep(0.02)

    return wait
