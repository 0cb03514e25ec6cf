"""Streaming from the emulator: SSE on the wire as the real API sends it, and the SDK's stream helpers."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import struct
import time
import urllib.request
from typing import Any, Literal

import anthropic
import httpx2
import pydantic
import pytest
from conftest import TEST_KEY

from pipeline.emulator import Emulator, LatencyModel

MODEL = "claude-sonnet-4-6"  # thinks only when asked: its answers are one text block
THINKING_MODEL = "claude-opus-5-5"
DOCUMENT = (
    "The committee met on Monday to review the quarterly figures for the northern region. "
    "Sales rose by a modest margin while costs stayed flat across every site. "
    "Two new depots opened in the spring and both reached their targets early. "
    "The board asked for a fuller report on staffing before the next meeting."
)
MESSAGES = [{"role": "user", "content": DOCUMENT}]


def raw_stream(emu: Emulator, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """POST a streaming request with urllib; return the (event name, data) pairs, checking the framing."""
    request = urllib.request.Request(
        emu.base_url + "/v1/messages",
        data=json.dumps({**body, "stream": True}).encode(),
        headers={"x-api-key": TEST_KEY, "anthropic-version": "2026-10-21", "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["request-id"].startswith("req_")
        text = response.read().decode("utf-8")
    assert text.endswith("\n\n")
    events = []
    for chunk in text.removesuffix("\n\n").split("\n\n"):
        lines = chunk.split("\n")
        assert len(lines) == 2, chunk
        assert lines[0].startswith("event: "), chunk
        assert lines[1].startswith("data: "), chunk
        events.append((lines[0].removeprefix("event: "), json.loads(lines[1].removeprefix("data: "))))
    return events


def collapsed(names: list[str]) -> list[str]:
    """Event names with runs of content_block_delta folded into one."""
    return [name for name, _ in itertools.groupby(names)]


def test_text_stream_and_final_message_match_the_non_streamed_answer(
    emulator: Emulator, client: anthropic.Anthropic
) -> None:
    """`messages.stream` yields text in several chunks whose join is the final message's text."""
    expected = client.messages.create(model=MODEL, max_tokens=500, messages=MESSAGES)
    with client.messages.stream(model=MODEL, max_tokens=500, messages=MESSAGES) as stream:
        chunks = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(chunks) > 1
    assert expected.content[0].text == "".join(chunks)
    assert [block.text for block in expected.content] == [block.text for block in final.content]
    assert (final.stop_reason, final.usage.output_tokens) == ("end_turn", expected.usage.output_tokens)
    assert emulator.control.requests()[-1]["request_id"] == stream.request_id


def test_async_text_stream_and_final_message(emulator: Emulator, make_async_client: Any) -> None:
    """The async stream helper yields the same text and final message as the sync one."""

    async def main() -> tuple[list[str], Any]:
        async with (
            make_async_client(emulator) as sdk,
            sdk.messages.stream(model=THINKING_MODEL, max_tokens=500, messages=MESSAGES) as stream,
        ):
            chunks = [text async for text in stream.text_stream]
            return chunks, await stream.get_final_message()

    chunks, final = asyncio.run(main())
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[1].text == "".join(chunks)
    assert final.stop_reason == "end_turn"


def test_stream_truncated_by_max_tokens(client: anthropic.Anthropic) -> None:
    """A streamed answer cut by max_tokens ends with stop_reason "max_tokens" in the final message."""
    with client.messages.stream(model=MODEL, max_tokens=6, messages=MESSAGES) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert 0 < final.usage.output_tokens <= 6


def test_stream_with_output_format_parses_the_final_text(client: anthropic.Anthropic) -> None:
    """`messages.stream(output_format=Model)` parses the streamed JSON into `parsed_output`."""

    class Report(pydantic.BaseModel):
        kind: Literal["report", "invoice", "other"]
        summary: str = pydantic.Field(description="At most 6 words.")

    with client.messages.stream(model=MODEL, max_tokens=500, messages=MESSAGES, output_format=Report) as stream:
        final = stream.get_final_message()
    assert isinstance(final.parsed_output, Report)
    assert len(final.parsed_output.summary.split()) <= 6


@pytest.mark.parametrize(
    ("model", "expected_order"),
    [
        (
            MODEL,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ],
        ),
        (
            THINKING_MODEL,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ],
        ),
    ],
)
def test_raw_sse_events_come_named_and_in_the_real_order(
    emulator: Emulator, client: anthropic.Anthropic, model: str, expected_order: list[str]
) -> None:
    """Every SSE event has an `event:` line equal to its JSON type, in the real API's order."""
    body = {"model": model, "max_tokens": 500, "messages": MESSAGES}
    events = raw_stream(emulator, body)
    names = [name for name, _ in events]
    assert names == [data["type"] for _, data in events]
    assert expected_order == collapsed(names)
    assert names.count("content_block_delta") > collapsed(names).count("content_block_delta")
    expected = client.messages.create(**body)
    text = "".join(
        data["delta"]["text"] for name, data in events if name == "content_block_delta" and "text" in data["delta"]
    )
    assert expected.content[-1].text == text


def test_content_block_indexes_are_consistent(emulator: Emulator) -> None:
    """Each block's start, deltas and stop carry the same index, counting up from 0."""
    events = raw_stream(emulator, {"model": THINKING_MODEL, "max_tokens": 500, "messages": MESSAGES})
    indexes = [(name, data["index"]) for name, data in events if name.startswith("content_block")]
    starts = [index for name, index in indexes if name == "content_block_start"]
    assert starts == [0, 1]
    current = None
    for name, index in indexes:
        if name == "content_block_start":
            current = index
        assert current == index


def test_message_delta_usage_is_cumulative(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """message_start opens with the input usage; message_delta carries the whole response's usage."""
    body = {"model": MODEL, "max_tokens": 500, "messages": MESSAGES}
    events = dict(raw_stream(emulator, body))
    expected = client.messages.create(**body).usage
    start_usage = events["message_start"]["message"]["usage"]
    delta_usage = events["message_delta"]["usage"]
    assert expected.input_tokens == start_usage["input_tokens"]
    assert expected.output_tokens > start_usage["output_tokens"]
    assert (expected.input_tokens, expected.output_tokens) == (
        delta_usage["input_tokens"],
        delta_usage["output_tokens"],
    )
    assert (events["message_start"]["message"]["content"], events["message_start"]["message"]["stop_reason"]) == (
        [],
        None,
    )
    assert events["message_delta"]["delta"]["stop_reason"] == "end_turn"


def test_sdk_raw_stream_yields_the_events_without_pings(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """`messages.create(stream=True)` yields the wire events, typed, minus the pings."""
    body = {"model": MODEL, "max_tokens": 500, "messages": MESSAGES}
    wire = [name for name, _ in raw_stream(emulator, body) if name != "ping"]
    with client.messages.create(**body, stream=True) as stream:
        types = [event.type for event in stream]
    assert wire == types


def test_events_are_flushed_as_they_are_generated(make_emulator: Any) -> None:
    """With a per-token latency, message_start reaches the client long before message_stop."""
    emu = make_emulator(latency=LatencyModel(per_token_ms=10))
    arrivals: dict[str, float] = {}
    with httpx2.stream(
        "POST",
        emu.base_url + "/v1/messages",
        json={"model": MODEL, "max_tokens": 500, "messages": MESSAGES, "stream": True},
        headers={"x-api-key": TEST_KEY, "anthropic-version": "2026-10-21"},
    ) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                arrivals.setdefault(line.removeprefix("event: "), time.monotonic())
    assert arrivals["message_stop"] - arrivals["message_start"] > 0.2


def test_stream_error_surfaces_as_api_status_error_mid_stream(emulator: Emulator, make_client: Any) -> None:
    """A `stream_error` fault sends `event: error` after the first text; the SDK raises it and does not retry."""
    emulator.control.set_faults([{"kind": "stream_error"}])
    sdk = make_client(emulator, max_retries=2)
    chunks: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        sdk.messages.stream(model=MODEL, max_tokens=500, messages=MESSAGES) as stream,
    ):
        for text in stream.text_stream:
            chunks.append(text)
    assert chunks
    assert (caught.value.status_code, caught.value.type) == (200, "overloaded_error")
    assert len([entry for entry in emulator.control.requests() if entry["endpoint"] == "messages"]) == 1


def test_stream_error_on_the_wire_replaces_the_end_of_the_stream(emulator: Emulator) -> None:
    """On the wire the error is a named `error` event after a delta, and no message_stop follows."""
    emulator.control.set_faults([{"kind": "stream_error"}])
    names = [name for name, _ in raw_stream(emulator, {"model": MODEL, "max_tokens": 500, "messages": MESSAGES})]
    assert names[-2:] == ["content_block_delta", "error"]
    assert "message_stop" not in names


def test_stream_error_only_hits_streamed_requests(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """The `stream_error` kind leaves non-streamed requests alone."""
    emulator.control.set_faults([{"kind": "stream_error"}])
    message = client.messages.create(model=MODEL, max_tokens=500, messages=MESSAGES)
    assert message.stop_reason == "end_turn"


def test_async_stream_error_surfaces_as_api_status_error(emulator: Emulator, make_async_client: Any) -> None:
    """The async stream raises the mid-stream error as APIStatusError too."""
    emulator.control.set_faults([{"kind": "stream_error"}])

    async def main() -> list[str]:
        chunks: list[str] = []
        async with (
            make_async_client(emulator) as sdk,
            sdk.messages.stream(model=MODEL, max_tokens=500, messages=MESSAGES) as stream,
        ):
            async for text in stream.text_stream:
                chunks.append(text)
        return chunks

    with pytest.raises(anthropic.APIStatusError) as caught:
        asyncio.run(main())
    assert caught.value.type == "overloaded_error"


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "plain"])
def test_a_client_gone_as_soon_as_it_sent_is_never_a_crash_nor_billed_unanswered(
    emulator: Emulator, wait_until: Any, stream: bool
) -> None:
    """Requests whose connection is reset right after sending: each ends as a 499 (nothing billed, nothing
    cached) or, when the answer won the race, as a 200 that is billed; never a 500."""
    host, port = emulator.base_url.removeprefix("http://").rstrip("/").split(":")
    for index in range(20):
        body = json.dumps(
            {"model": "claude-sonnet-4-6", "max_tokens": 50, "stream": stream,
             "messages": [{"role": "user", "content": f"Document {index}: the quarterly invoice is attached."}]}
        ).encode()  # fmt: skip
        head = (
            f"POST /v1/messages HTTP/1.1\r\nHost: {host}\r\nx-api-key: {TEST_KEY}\r\nanthropic-version: 2023-06-01\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(head.encode() + body)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
    def all_journaled() -> list[dict[str, Any]] | None:
        entries = emulator.control.requests()
        return entries if len(entries) == 20 else None

    journal = wait_until(all_journaled, what="the 20 requests in the journal")
    statuses = [entry["status"] for entry in journal]
    assert set(statuses) <= {200, 499}, statuses
    stats = emulator.control.stats()
    assert stats["crashes"] == 0
    assert stats["messages_billed"] == statuses.count(200)
