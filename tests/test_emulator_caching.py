"""Prompt caching under fan-out: an entry is readable only once the response that writes it has started.

The prompt-caching docs (concurrent requests): "a cache entry only becomes available after the first
response begins". These tests send identical requests together to an emulator whose time to first token
is long, so every one of them is admitted before any has started: the outcome does not depend on timing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import pytest

from pipeline.emulator import Emulator, LatencyModel, Limits
from pipeline.models import MODELS

MODEL = "claude-haiku-5-5"
INSTRUCTIONS = "You read business documents carefully and label each one with the right category. " * 40
APPENDIX = "Definitions: an invoice asks for payment; a contract binds two parties with terms. " * 30
FAN_OUT = 5
# Long enough that requests sent together are all admitted before the first one starts.
SLOW_START = LatencyModel(ttft_ms=1000)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def marked(*texts: str) -> list[dict[str, Any]]:
    """System blocks, each closing a cache breakpoint."""
    return [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}} for text in texts]


def cache_split(usage: Any) -> tuple[int, int]:
    return usage.cache_creation_input_tokens, usage.cache_read_input_tokens


async def _fan_out(sdk: anthropic.AsyncAnthropic, system: list[dict[str, Any]], *, stream: bool) -> list[Any]:
    """FAN_OUT requests sharing `system`, sent together; their usages."""

    async def one(index: int) -> Any:
        messages = user(f"Document {index}.")
        if not stream:
            return (await sdk.messages.create(model=MODEL, max_tokens=20, system=system, messages=messages)).usage
        async with sdk.messages.stream(model=MODEL, max_tokens=20, system=system, messages=messages) as events:
            return (await events.get_final_message()).usage

    return list(await asyncio.gather(*(one(index) for index in range(FAN_OUT))))


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_requests_sent_together_each_pay_the_write(make_emulator: Any, make_async_client: Any, stream: bool) -> None:
    """Five identical first requests sent together are five writes; a request sent after them reads."""
    emu = make_emulator(latency=SLOW_START)

    async def main() -> tuple[list[Any], Any]:
        async with make_async_client(emu) as sdk:
            together = await _fan_out(sdk, marked(INSTRUCTIONS), stream=stream)
            after = await sdk.messages.create(
                model=MODEL, max_tokens=20, system=marked(INSTRUCTIONS), messages=user("Later.")
            )
            return together, after.usage

    together, after = asyncio.run(main())
    written = together[0].cache_creation_input_tokens
    assert written >= MODELS[MODEL].cache_min_tokens
    assert [(written, 0)] * FAN_OUT == [cache_split(usage) for usage in together]
    assert (0, written) == cache_split(after)
    assert FAN_OUT * written == emu.control.stats()["tokens"]["cache_creation"]


def test_an_entry_is_readable_once_the_stream_has_sent_message_start(
    make_emulator: Any, make_async_client: Any
) -> None:
    """A stream's write is readable as soon as `message_start` is out, while its text is still to come."""
    emu = make_emulator(latency=LatencyModel(ttft_ms=0, per_token_ms=1000))  # seconds per text chunk

    async def main() -> tuple[Any, Any, bool]:
        async with make_async_client(emu) as sdk:
            async with sdk.messages.stream(  # room for the thinking block and text still to come
                model=MODEL, max_tokens=200, system=marked(INSTRUCTIONS), messages=user("First.")
            ) as events:
                first_event = await events.__anext__()
                assert first_event.type == "message_start"
                reader = await sdk.messages.create(
                    model=MODEL, max_tokens=0, system=marked(INSTRUCTIONS), messages=user("Second.")
                )
                journal = await asyncio.to_thread(emu.control.requests)
                stream_unfinished = [entry.get("stream") for entry in journal] == [False]  # only the reader's
            return first_event.message.usage, reader.usage, stream_unfinished  # leaving closes the stream

    writer, reader, stream_unfinished = asyncio.run(main())
    assert stream_unfinished
    assert writer.cache_creation_input_tokens > 0
    assert (0, writer.cache_creation_input_tokens) == cache_split(reader)


def test_a_partly_cached_prefix_reads_the_longest_readable_part_and_writes_the_rest(
    make_emulator: Any, make_async_client: Any
) -> None:
    """With the first breakpoint readable and the second only pending, requests read the first and write the rest."""
    emu = make_emulator(latency=SLOW_START)

    async def main() -> tuple[Any, list[Any], Any]:
        async with make_async_client(emu) as sdk:
            head = await sdk.messages.create(model=MODEL, max_tokens=0, system=marked(INSTRUCTIONS), messages=user("x"))
            together = await _fan_out(sdk, marked(INSTRUCTIONS, APPENDIX), stream=False)
            after = await sdk.messages.create(
                model=MODEL, max_tokens=0, system=marked(INSTRUCTIONS, APPENDIX), messages=user("x")
            )
            return head.usage, together, after.usage

    head, together, after = asyncio.run(main())
    head_tokens = head.cache_creation_input_tokens
    rest_tokens = together[0].cache_creation_input_tokens
    assert head_tokens > 0
    assert rest_tokens > 0
    assert [(rest_tokens, head_tokens)] * FAN_OUT == [cache_split(usage) for usage in together]
    assert (0, head_tokens + rest_tokens) == cache_split(after)


def test_a_request_abandoned_before_it_starts_leaves_no_entry(
    make_emulator: Any, make_client: Any, wait_until: Any
) -> None:
    """A client that leaves before the first token writes nothing: the next request pays the write again."""
    emu: Emulator = make_emulator(latency=LatencyModel(ttft_ms=800))
    impatient, patient = make_client(emu, timeout=0.2), make_client(emu)
    with pytest.raises(anthropic.APITimeoutError):
        impatient.messages.create(model=MODEL, max_tokens=20, system=marked(INSTRUCTIONS), messages=user("Doc."))
    # Its first token was due 0.8 s after arrival: the emulator journals the 499 at that moment.
    wait_until(lambda: [e["status"] for e in emu.control.requests()] == [499], what="the abandoned request's 499")
    usage = patient.messages.create(
        model=MODEL, max_tokens=20, system=marked(INSTRUCTIONS), messages=user("Doc.")
    ).usage
    assert usage.cache_creation_input_tokens > 0
    assert usage.cache_read_input_tokens == 0
    assert emu.control.stats()["messages_billed"] == 1


def test_a_refused_request_leaves_no_entry(make_emulator: Any, make_client: Any) -> None:
    """A request the rate limiter refuses (after its cache use was worked out) writes nothing: once the
    bucket has refilled, the next identical request writes the entry itself."""
    emu = make_emulator(limits=Limits(rpm=1))
    sdk = make_client(emu)
    sdk.messages.create(model=MODEL, max_tokens=20, messages=user("Takes the minute's one request."))
    with pytest.raises(anthropic.RateLimitError):
        sdk.messages.create(model=MODEL, max_tokens=20, system=marked(INSTRUCTIONS), messages=user("Doc."))
    emu.state.clock.advance(61)  # the requests bucket is full again
    usage = sdk.messages.create(model=MODEL, max_tokens=20, system=marked(INSTRUCTIONS), messages=user("Doc.")).usage
    assert (usage.cache_creation_input_tokens > 0, usage.cache_read_input_tokens) == (True, 0)


def test_entries_expire_after_their_ttl(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """A 5-minute entry is read within its TTL and written again once the emulator's clock is past it."""
    first = client.messages.create(model=MODEL, max_tokens=0, system=marked(INSTRUCTIONS), messages=user("x"))
    emulator.state.clock.advance(250)
    within = client.messages.create(model=MODEL, max_tokens=0, system=marked(INSTRUCTIONS), messages=user("x"))
    emulator.state.clock.advance(301)
    past = client.messages.create(model=MODEL, max_tokens=0, system=marked(INSTRUCTIONS), messages=user("x"))
    written = first.usage.cache_creation_input_tokens
    assert [(written, 0), (0, written), (written, 0)] == [cache_split(m.usage) for m in (first, within, past)]


def test_an_alias_and_its_dated_id_share_cache_entries(client: anthropic.Anthropic) -> None:
    """Entries belong to the model: written by `claude-haiku-4-5`, read by `claude-haiku-4-5-20251001`."""
    system = marked(INSTRUCTIONS * 6)  # over Haiku 4.5's 4,096-token minimum
    first = client.messages.create(model="claude-haiku-4-5", max_tokens=20, system=system, messages=user("A."))
    second = client.messages.create(
        model="claude-haiku-4-5-20251001", max_tokens=20, system=system, messages=user("B.")
    )
    written = first.usage.cache_creation_input_tokens
    assert written >= MODELS["claude-haiku-4-5-20251001"].cache_min_tokens
    assert (0, written) == cache_split(second.usage)


def test_two_blocks_never_read_the_entry_of_one_block_holding_both(client: anthropic.Anthropic) -> None:
    """Prefix identity is per block: one text holding what two blocks hold (even with the bytes that
    tag a text block) is another prompt, and writes its own entry."""
    one = client.messages.create(
        model=MODEL,
        max_tokens=0,
        system=marked(INSTRUCTIONS + "\x00text\x00" + APPENDIX),
        messages=user("x"),
    )
    two = client.messages.create(
        model=MODEL,
        max_tokens=0,
        system=[{"type": "text", "text": INSTRUCTIONS}, *marked(APPENDIX)],
        messages=user("x"),
    )
    assert one.usage.cache_creation_input_tokens > 0
    assert (two.usage.cache_creation_input_tokens > 0, two.usage.cache_read_input_tokens) == (True, 0)
