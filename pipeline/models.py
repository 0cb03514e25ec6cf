"""What docpipe knows about Claude models: limits, behaviours and list prices.

One table, shared by the cost calculation and the emulator, so that the two never disagree.
Prices are USD per million tokens on the Claude API (first party), as compiled in
`shared/reference/anthropic-api.md` (November 2026). Figures marked unverified there (Fable 5.2 cache
prices, Haiku 5.5's cache minimum) are our best reading; `DOCPIPE_PRICES` can override any row
without a release (see `pricing.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_MODEL", "MODELS", "ModelSpec", "get_model"]

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
    lifecycle: str = "active"
    # Haiku 5.5 bills the whole request at a higher tier when the prompt exceeds this many tokens.
    long_prompt_threshold_tokens: int | None = None
    long_prompt_multiplier: float = 1.0
    batch_discount: float = 0.5


def _spec(
    model_id: str,
    name: str,
    line: str,
    released: str,
    context: int,
    max_out: int,
    prices: tuple[float, float, float, float, float],
    cache_min: int,
    **flags: object,
) -> ModelSpec:
    input_usd, output_usd, write_5m, write_1h, read = prices
    return ModelSpec(
        id=model_id,
        display_name=name,
        line=line,
        released=released,
        max_input_tokens=context,
        max_output_tokens=max_out,
        input_usd=input_usd,
        output_usd=output_usd,
        cache_write_5m_usd=write_5m,
        cache_write_1h_usd=write_1h,
        cache_read_usd=read,
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
            (8.0, 40.0, 10.0, 16.0, 0.20),
            512,
            adaptive_thinking=True,
            rejects_forced_tool_use=True,
        ),
        _spec(
            "claude-fable-5-1",
            "Claude Fable 5.1",
            "fable",
            "2026-09-01",
            _M,
            128_000,
            (10.0, 50.0, 12.5, 20.0, 0.25),
            512,
            adaptive_thinking=True,
            rejects_forced_tool_use=True,
        ),
        _spec(
            "claude-fable-5",
            "Claude Fable 5",
            "fable",
            "2026-06-09",
            _M,
            128_000,
            (10.0, 50.0, 12.5, 20.0, 1.0),
            512,
            adaptive_thinking=True,
        ),
        _spec(
            "claude-opus-5-5",
            "Claude Opus 5.5",
            "opus",
            "2026-09-22",
            _M,
            128_000,
            (4.0, 20.0, 5.0, 8.0, 0.20),
            512,
            adaptive_thinking=True,
            rejects_forced_tool_use=True,
        ),
        _spec("claude-opus-5", "Claude Opus 5", "opus", "2026-07-24", _M, 128_000, (5.0, 25.0, 6.25, 10.0, 0.50), 512),
        _spec(
            "claude-opus-4-8", "Claude Opus 4.8", "opus", "2026-05-01", _M, 128_000, (5.0, 25.0, 6.25, 10.0, 0.50), 1024
        ),
        _spec(
            "claude-sonnet-5-5",
            "Claude Sonnet 5.5",
            "sonnet",
            "2026-09-28",
            _M,
            128_000,
            (2.0, 10.0, 2.5, 4.0, 0.10),
            512,
            rejects_forced_tool_use=True,
        ),
        _spec(
            "claude-sonnet-5", "Claude Sonnet 5", "sonnet", "2026-06-01", _M, 128_000, (2.0, 10.0, 2.5, 4.0, 0.20), 1024
        ),
        _spec(
            "claude-sonnet-4-6",
            "Claude Sonnet 4.6",
            "sonnet",
            "2026-02-17",
            _M,
            64_000,
            (3.0, 15.0, 3.75, 6.0, 0.30),
            1024,
        ),
        _spec(
            "claude-haiku-5-5",
            "Claude Haiku 5.5",
            "haiku",
            "2026-10-07",
            _M,
            128_000,
            (0.10, 0.50, 0.125, 0.20, 0.01),
            512,
            long_prompt_threshold_tokens=100_000,
            long_prompt_multiplier=5.0,
        ),
        _spec(
            "claude-haiku-4-5",
            "Claude Haiku 4.5",
            "haiku",
            "2025-10-15",
            200_000,
            64_000,
            (1.0, 5.0, 1.25, 2.0, 0.10),
            4096,
            supports_prefill=True,
        ),
    )
}


def get_model(model_id: str) -> ModelSpec | None:
    """The spec of `model_id`, or None when docpipe does not know it."""
    return MODELS.get(model_id)
