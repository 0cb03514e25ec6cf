"""A message as the API streams it: named server-sent events, in the real order.

`message_start` (the message without content, one output token so far), `ping`, then per content
block a `content_block_start`, its deltas and a `content_block_stop`, then `message_delta` (stop
reason and final usage) and `message_stop`. A thinking block arrives as one `thinking_delta` and a
`signature_delta`; text arrives in `text_delta` chunks. This module only spells the events; the
Messages endpoint paces them, injects mid-stream faults between them and writes them out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

__all__ = ["Event", "encode_event", "is_text_delta", "message_events"]

STREAM_CHUNK_CHARS = 48

Event = tuple[str, dict[str, Any]]  # (event name, data)


def encode_event(name: str, data: dict[str, Any]) -> bytes:
    """One event on the wire."""
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def is_text_delta(event: Event) -> bool:
    """Whether `event` carries a chunk of text (the events a stream is paced by, and broken after)."""
    _, data = event
    return bool(data["type"] == "content_block_delta" and data["delta"]["type"] == "text_delta")


def message_events(message: dict[str, Any], *, chunk_chars: int = STREAM_CHUNK_CHARS) -> Iterator[Event]:
    """Every event of `message`'s stream, first to last."""
    usage = message["usage"]
    start = dict(
        message,
        content=[],
        stop_reason=None,
        stop_sequence=None,
        stop_details=None,
        usage=dict(usage, output_tokens=1),
    )
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(message["content"]):
        if block["type"] == "thinking":
            yield from _thinking_events(index, block)
        else:
            yield from _text_events(index, block["text"], chunk_chars)
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": message["stop_reason"],
                "stop_sequence": message["stop_sequence"],
                "stop_details": message["stop_details"],
            },
            "usage": {
                "input_tokens": usage["input_tokens"],
                "output_tokens": usage["output_tokens"],
                "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                "cache_read_input_tokens": usage["cache_read_input_tokens"],
            },
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _thinking_events(index: int, block: dict[str, Any]) -> Iterator[Event]:
    yield (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": index,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
    )
    yield (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "thinking_delta", "thinking": block["thinking"]},
        },
    )
    yield (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "signature_delta", "signature": block["signature"]},
        },
    )


def _text_events(index: int, text: str, chunk_chars: int) -> Iterator[Event]:
    yield (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": index,
            "content_block": {"type": "text", "text": "", "citations": None},
        },
    )
    for offset in range(0, len(text), chunk_chars):
        chunk = text[offset : offset + chunk_chars]
        yield (
            "content_block_delta",
            {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": chunk}},
        )
