"""ApiClient's connections: the TCP keepalive the SDK's httpx client would set, kept on the aiohttp transport."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pipeline.api import ApiClient
from pipeline.emulator import Emulator, EmulatorConfig

PROC_TCP = Path("/proc/self/net/tcp")
ESTABLISHED = "01"
KEEPALIVE_TIMER = "02"  # the `tr` column of /proc/net/tcp: 0 none, 1 retransmit, 2 keepalive


def _timers_to(port: int) -> list[str]:
    """The active timer of each established IPv4 connection of this process's network namespace to `port`."""
    timers = []
    for line in PROC_TCP.read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == port and fields[3] == ESTABLISHED:
            timers.append(fields[5].split(":")[0])
    return timers


@pytest.mark.skipif(not PROC_TCP.exists(), reason="reads /proc/self/net/tcp (Linux)")
def test_an_idle_pooled_connection_runs_a_keepalive_timer() -> None:
    async def scenario(base_url: str, port: int) -> list[str]:
        client = ApiClient(api_key="sk-test", base_url=base_url, max_connections=4)
        try:
            params = {"model": "claude-haiku-5-5", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}
            await client.create(params, stream=False, timeout_s=10)
            return _timers_to(port)  # the answered request's connection, idle in the pool
        finally:
            await client.aclose()

    with Emulator(EmulatorConfig()) as emulator:
        port = int(emulator.base_url.rsplit(":", 1)[1])
        timers = asyncio.run(scenario(emulator.base_url, port))
    assert [KEEPALIVE_TIMER] == timers
