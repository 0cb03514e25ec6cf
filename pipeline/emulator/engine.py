"""The emulator's deterministic "model": content as a pure function of the request and the seed.

It emulates the contract, not intelligence. Structured-output requests get JSON that validates
against their schema, built from the document itself (`structured.py`). Plain requests get an
extractive summary of the document (`document.py`). Thinking, when asked for or when the model
thinks by default (`ModelSpec.thinking_default`), adds a short signed thinking block first, billed
as output and counted against `max_tokens`; its text is empty when `display` is "omitted" or the
model omits it by default. `max_tokens` and `stop_sequences` are honoured exactly as the API does
(truncation gives `stop_reason: "max_tokens"`), under the emulator's one token count (`tokens.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..models import ModelSpec
from .document import analyse, document_text, extract, instructions_text, length_limit
from .hashing import stable_hash
from .signing import sign_thinking
from .structured import structured_text
from .tokens import count_text_tokens

__all__ = ["Generation", "document_text", "generate", "stable_hash"]

DEFAULT_TEXT_SENTENCES = 3


@dataclass(frozen=True)
class Generation:
    """What the model "said": content blocks, stop reason and output token counts."""

    content: list[dict[str, Any]]
    stop_reason: str
    stop_sequence: str | None
    output_tokens: int
    thinking_tokens: int


def _plain_text(body: dict[str, Any], document: str) -> str:
    doc = analyse(document)
    limit, unit = length_limit(instructions_text(body), document[:500], default_words=0)
    if limit == 0:
        limit, unit = DEFAULT_TEXT_SENTENCES, "sentences"
    text = extract(doc, limit, unit)
    return text or "I received an empty message."


def _truncate(text: str, max_tokens: int) -> str:
    """The longest prefix of `text` that fits in `max_tokens` under the token approximation."""
    if count_text_tokens(text) <= max_tokens:
        return text
    low, high = 0, min(len(text), max_tokens * 4)
    while low < high:
        mid = (low + high + 1) // 2
        if count_text_tokens(text[:mid]) <= max_tokens:
            low = mid
        else:
            high = mid - 1
    return text[:low]


def _thinks(thinking: dict[str, Any], spec: ModelSpec) -> bool:
    """Whether the answer opens with a thinking block: as asked, or the model's default when not asked.

    `between_tools` thinks only between tool calls, which the emulator never makes.
    """
    kind = thinking.get("type")
    if kind is None:
        return spec.thinks_by_default
    return kind in ("adaptive", "enabled")


def _omits_text(thinking: dict[str, Any], spec: ModelSpec) -> bool:
    """Whether the thinking block comes back without its text (still billed in full)."""
    display = thinking.get("display")
    if display is None:
        return spec.thinking_text_omitted_by_default
    return bool(display == "omitted")


def generate(body: dict[str, Any], spec: ModelSpec, seed: int) -> Generation:
    """The response content for a validated Messages request."""
    max_tokens: int = body["max_tokens"]
    if max_tokens == 0:
        return Generation([], "max_tokens", None, 0, 0)
    config = body.get("output_config") or {}
    fmt = config.get("format") if isinstance(config, dict) else None
    document = document_text(body)
    if isinstance(fmt, dict):
        text = structured_text(body, document, fmt["schema"], seed)
    else:
        text = _plain_text(body, document)
    content: list[dict[str, Any]] = []
    budget = max_tokens
    thinking_tokens = 0
    thinking = body.get("thinking") or {}
    if _thinks(thinking, spec):
        words = len(document.split())
        thought = f"The request asks for a response about a document of about {words} words. I will answer from it."
        thinking_tokens = min(budget, count_text_tokens(thought) + 8)
        shown = "" if _omits_text(thinking, spec) else thought
        content.append({"type": "thinking", "thinking": shown, "signature": sign_thinking(seed, shown)})
        budget -= thinking_tokens
    stop_reason, stop_sequence = "end_turn", None
    for sequence in body.get("stop_sequences") or []:
        position = text.find(sequence) if sequence else -1
        if position >= 0:
            text, stop_reason, stop_sequence = text[:position], "stop_sequence", sequence
    if count_text_tokens(text) > budget:
        text, stop_reason, stop_sequence = _truncate(text, budget), "max_tokens", None
    output_tokens = thinking_tokens + count_text_tokens(text)
    if text:
        content.append({"type": "text", "text": text, "citations": None})
    return Generation(content, stop_reason, stop_sequence, output_tokens, thinking_tokens)
