"""The shape of one row of the model table: limits, prices, lifecycle and per-model behaviours.

A row says what the real API does with a model, so that docpipe's cost figures and the emulator's
rules come from the same place. The rows themselves, each with the source it was read from, are in
`model_table.py`; `models.py` looks them up by id or alias.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ALL_EFFORTS",
    "EFFORTS_UP_TO_MAX",
    "Capabilities",
    "ModelSpec",
    "Prices",
    "ThinkingDefault",
    "ThinkingType",
]

ThinkingType = Literal["adaptive", "enabled", "disabled", "between_tools"]
# What a request that omits `thinking` gets: "off" (no thinking), "on" (adaptive thinking, may be
# turned off), "always" (adaptive thinking that cannot be turned off).
ThinkingDefault = Literal["off", "on", "always"]
Lifecycle = Literal["active", "deprecated", "retired"]
Line = Literal["haiku", "sonnet", "opus", "fable", "mythos"]

ALL_EFFORTS: tuple[str, ...] = ("low", "medium", "high", "xhigh", "max")
EFFORTS_UP_TO_MAX: tuple[str, ...] = ("low", "medium", "high", "max")  # the 4.6 generation: no `xhigh`


@dataclass(frozen=True, slots=True, kw_only=True)
class Prices:
    """A model's list prices in USD per million tokens, each by name (the names of `ModelSpec` and of
    `DOCPIPE_PRICES`), so that a price cannot land in another's place unseen."""

    input_usd: float
    output_usd: float
    cache_read_usd: float
    cache_write_5m_usd: float
    cache_write_1h_usd: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What `GET /v1/models` reports beyond thinking and effort (SDK `types/model_capabilities.py`)."""

    pdf_input: bool = True
    image_input: bool = True
    citations: bool = True
    structured_outputs: bool = True
    batch: bool = True
    web_search: bool = True
    code_execution_tool: bool = True
    programmatic_tool_calling: bool = True
    clear_tool_uses: bool = True
    clear_thinking: bool = True
    compaction: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """One model: limits, prices (USD per million tokens), lifecycle and how it treats a request."""

    id: str
    display_name: str
    line: Line
    released: str  # RFC 3339 date
    max_input_tokens: int
    max_output_tokens: int
    input_usd: float
    output_usd: float
    cache_write_5m_usd: float
    cache_write_1h_usd: float
    cache_read_usd: float
    cache_min_tokens: int
    aliases: tuple[str, ...] = ()
    lifecycle: Lifecycle = "active"
    deprecated_at: str | None = None  # RFC 3339 date
    retires_at: str | None = None  # RFC 3339 date
    thinking_default: ThinkingDefault = "off"
    thinking_types: frozenset[ThinkingType] = frozenset({"enabled", "disabled"})
    # Turning thinking off (`disabled`, `between_tools`) is refused together with effort xhigh or max.
    thinking_off_needs_high_effort_or_less: bool = False
    thinking_text_omitted_by_default: bool = False
    efforts: tuple[str, ...] = ()  # accepted `output_config.effort` values; empty: effort not supported
    rejects_sampling_params: bool = False  # non-default temperature / top_p / top_k, on every API version
    rejects_forced_tool_use: bool = False
    supports_prefill: bool = False
    accepts_system_messages: bool = False  # `role: "system"` turns after the first (mid-conversation)
    capabilities: Capabilities = Capabilities()
    # Haiku 5.5 bills the whole request at a higher tier when the prompt exceeds this many tokens.
    long_prompt_threshold_tokens: int | None = None
    long_prompt_multiplier: float = 1.0
    batch_discount: float = 0.5

    @property
    def thinks_by_default(self) -> bool:
        """Whether a request without `thinking` gets a response that may open with a thinking block."""
        return self.thinking_default != "off"
