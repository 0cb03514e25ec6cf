"""What docpipe knows about Claude models: limits, behaviours and list prices.

One table, shared by the cost calculation and the emulator, so that the two never disagree.
Prices are USD per million tokens on the Claude API (first party), as compiled in
`shared/reference/anthropic-api.md` (November 2026). Figures marked unverified there (Fable 5.2 cache
prices, Haiku 5.5's cache minimum) are our best reading; `DOCPIPE_PRICES` can override any row
without a release (see `pricing.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_MODEL", "MODELS", "ModelSpec", "Prices", "get_model"]

DEFAULT_MODEL = "claude-haiku-5-5"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model's limits, behaviours and prices (USD per million tokens)."""

    id: str
    display_name: str
    line: str
    released: str  # RFC 3339 date
    max_input_tokens: int
    max_output_tokens: int
    input_usd: float
    output_usd: float
    cache_write_5m_usd: float
    cache_write_1h_usd: float
    cache_read_usd: float
    cache_min_tokens: int
    adaptive_thinking: bool = False  # always thinks: responses may start with a `thinking` block
    rejects_forced_tool_use: bool = False
    supports_prefill: bool = False
    # Accepts mid-conversation `role: "system"` messages. Opus 4.8 introduced them; Opus 5/5.5, Fable
    # 5/5.1, Sonnet 5.5 and Haiku 5.5 have them; Sonnet 5, Sonnet 4.6 and Haiku 4.5 do not
    # (https://platform.claude.com/docs/en/build-with-claude/mid-conversation-system-messages).
    # Fable 5.2 is newer than the lists we could read: set as one of the "later Opus/Fable models".
    mid_conversation_system: bool = False
    lifecycle: str = "active"
    # Haiku 5.5 bills the whole request at a higher tier when the prompt exceeds this many tokens.
    long_prompt_threshold_tokens: int | None = None
    long_prompt_multiplier: float = 1.0
    batch_discount: float = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class Prices:
    """A model's list prices in USD per million tokens, each by name (the names of `ModelSpec` and of
    `DOCPIPE_PRICES`), so that a price cannot land in another's place unseen."""

    input_usd: float
    output_usd: float
    cache_read_usd: float
    cache_write_5m_usd: float
    cache_write_1h_usd: float


def _spec(
    model_id: str,
    name: str,
    line: str,
    released: str,
    context: int,
    max_out: int,
    prices: Prices,
    cache_min: int,
    **flags: object,
) -> ModelSpec:
    return ModelSpec(
        id=model_id,
        display_name=name,
        line=line,
        released=released,
        max_input_tokens=context,
        max_output_tokens=max_out,
        input_usd=prices.input_usd,
        output_usd=prices.output_usd,
        cache_write_5m_usd=prices.cache_write_5m_usd,
        cache_write_1h_usd=prices.cache_write_1h_usd,
        cache_read_usd=prices.cache_read_usd,
        cache_min_tokens=cache_min,
        **flags,  # type: ignore[arg-type]
    )


_M = 1_000_000
MODELS: dict[str, ModelSpec] = {
    spec.id: spec
    for spec in (
        _spec(
            "claude-fable-5-2",
            "Claude Fable 5.2",
            "fable",
            "2026-11-09",
            _M,
            128_000,
            Prices(
                input_usd=8.0, output_usd=40.0, cache_read_usd=0.20, cache_write_5m_usd=10.0, cache_write_1h_usd=16.0
            ),
            512,
            adaptive_thinking=True,
            rejects_forced_tool_use=True,
            mid_conversation_system=True,
        ),
        _spec(
            "claude-fable-5-1",
            "Claude Fable 5.1",
            "fable",
            "2026-09-01",
            _M,
            128_000,
            Prices(
                input_usd=10.0, output_usd=50.0, cache_read_usd=0.25, cache_write_5m_usd=12.5, cache_write_1h_usd=20.0
            ),
            512,
            adaptive_thinking=True,
            rejects_forced_tool_use=True,
            mid_conversation_system=True,
        ),
        _spec(
            "claude-fable-5",
            "Claude Fable 5",
            "fable",
            "2026-06-09",
            _M,
            128_000,
            Prices(
                input_usd=10.0, output_usd=50.0, cache_read_usd=1.0, cache_write_5m_usd=12.5, cache_write_1h_usd=20.0
            ),
            512,
            adaptive_thinking=True,
            mid_conversation_system=True,
        ),
        _spec(
            "claude-opus-5-5",
            "Claude Opus 5.5",
            "opus",
            "2026-09-22",
            _M,
            128_000,
            Prices(input_usd=4.0, output_usd=20.0, cache_read_usd=0.20, cache_write_5m_usd=5.0, cache_write_1h_usd=8.0),
            512,
            adaptive_thinking=True,
            rejects_forced_tool_use=True,
            mid_conversation_system=True,
        ),
        _spec(
            "claude-opus-5",
            "Claude Opus 5",
            "opus",
            "2026-07-24",
            _M,
            128_000,
            Prices(
                input_usd=5.0, output_usd=25.0, cache_read_usd=0.50, cache_write_5m_usd=6.25, cache_write_1h_usd=10.0
            ),
            512,
            mid_conversation_system=True,
        ),
        _spec(
            "claude-opus-4-8",
            "Claude Opus 4.8",
            "opus",
            "2026-05-01",
            _M,
            128_000,
            Prices(
                input_usd=5.0, output_usd=25.0, cache_read_usd=0.50, cache_write_5m_usd=6.25, cache_write_1h_usd=10.0
            ),
            1024,
            mid_conversation_system=True,
        ),
        _spec(
            "claude-sonnet-5-5",
            "Claude Sonnet 5.5",
            "sonnet",
            "2026-09-28",
            _M,
            128_000,
            Prices(input_usd=2.0, output_usd=10.0, cache_read_usd=0.10, cache_write_5m_usd=2.5, cache_write_1h_usd=4.0),
            512,
            rejects_forced_tool_use=True,
            mid_conversation_system=True,
        ),
        _spec(
            "claude-sonnet-5",
            "Claude Sonnet 5",
            "sonnet",
            "2026-06-01",
            _M,
            128_000,
            Prices(input_usd=2.0, output_usd=10.0, cache_read_usd=0.20, cache_write_5m_usd=2.5, cache_write_1h_usd=4.0),
            1024,
        ),
        _spec(
            "claude-sonnet-4-6",
            "Claude Sonnet 4.6",
            "sonnet",
            "2026-02-17",
            _M,
            64_000,
            Prices(
                input_usd=3.0, output_usd=15.0, cache_read_usd=0.30, cache_write_5m_usd=3.75, cache_write_1h_usd=6.0
            ),
            1024,
        ),
        _spec(
            "claude-haiku-5-5",
            "Claude Haiku 5.5",
            "haiku",
            "2026-10-07",
            _M,
            128_000,
            Prices(
                input_usd=0.10, output_usd=0.50, cache_read_usd=0.01, cache_write_5m_usd=0.125, cache_write_1h_usd=0.20
            ),
            512,
            long_prompt_threshold_tokens=100_000,
            long_prompt_multiplier=5.0,
            mid_conversation_system=True,
        ),
        _spec(
            "claude-haiku-4-5",
            "Claude Haiku 4.5",
            "haiku",
            "2025-10-15",
            200_000,
            64_000,
            Prices(input_usd=1.0, output_usd=5.0, cache_read_usd=0.10, cache_write_5m_usd=1.25, cache_write_1h_usd=2.0),
            4096,
            supports_prefill=True,
        ),
    )
}


def get_model(model_id: str) -> ModelSpec | None:
    """The spec of `model_id`, or None when docpipe does not know it."""
    return MODELS.get(model_id)
