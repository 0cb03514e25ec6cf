"""The model table: one row per model the Claude API serves (or served), with where each figure came from.

Sources, cited by key in the rows below (all platform.claude.com/docs/en unless marked):
- SDK: the `anthropic` SDK's `types/model.py` (the ids), `_data/deprecated_models.py` (end-of-life
  dates), `types/model_info.py` and `types/model_capabilities.py` (what the Models API reports).
- OVERVIEW: /models/overview and each model's page /models/<model>/overview (context window, max
  output, prices, "Claude API alias": before the 4.6 generation an alias "resolves to the dated ID";
  from 4.6 on the dateless id is the snapshot itself).
- THINKING: /build-with-claude/thinking-troubleshooting, "Thinking support, defaults, and rejected
  configurations by model" (which `thinking.type` each model rejects, what it does when `thinking` is
  omitted; only Claude Sonnet 5.5 accepts `between_tools`), with the what's-new pages of Opus 5.5,
  Sonnet 5.5 and Haiku 5.5 (/models/<model>/whats-new-<model>) for the 5.5 generation.
- CACHING: /build-with-claude/prompt-caching, minimum cacheable prompt per model (as compiled in
  `shared/reference/anthropic-api.md` §5.2; the 5.5 models' 512 from their migration guides).
- PRICING: /about-claude/pricing (via the reference's §6 table).
- DEPRECATIONS: /about-claude/model-deprecations (lifecycle, deprecation and retirement dates).
Figures that no official page gave us are marked "unverified" on their row; `DOCPIPE_PRICES` can
override any price without a release (see `pricing.py`).
"""

from __future__ import annotations

from typing import Any

from .model_spec import ALL_EFFORTS, EFFORTS_UP_TO_MAX, Capabilities, ModelSpec, Prices

__all__ = ["MODEL_ROWS"]

_M = 1_000_000
_K128 = 128_000

# Thinking behaviours (THINKING). Claude 4.7 and later reject `enabled`; the 4.6 models accept every
# classic type; 4.5 and earlier know only extended thinking and reject `adaptive`.
_EXTENDED_ONLY: dict[str, Any] = {"thinking_default": "off", "thinking_types": frozenset({"enabled", "disabled"})}
_ADAPTIVE_OR_EXTENDED: dict[str, Any] = {
    "thinking_default": "off",
    "thinking_types": frozenset({"adaptive", "enabled", "disabled"}),
}
_ADAPTIVE_OFF: dict[str, Any] = {"thinking_default": "off", "thinking_types": frozenset({"adaptive", "disabled"})}
_ADAPTIVE_ON: dict[str, Any] = {"thinking_default": "on", "thinking_types": frozenset({"adaptive", "disabled"})}
_ALWAYS_ON: dict[str, Any] = {"thinking_default": "always", "thinking_types": frozenset({"adaptive"})}
# From Claude 4.7 on, thinking text is omitted unless `display: "summarized"` is asked for (THINKING,
# "The thinking field is empty in the response"; Opus 5.5 and Haiku 5.5 what's-new pages).
_NEW_GENERATION: dict[str, Any] = {
    "thinking_text_omitted_by_default": True,
    "rejects_sampling_params": True,  # "temperature is deprecated for this model" from Opus 4.7 on
    "efforts": ALL_EFFORTS,
}
# Mid-conversation `role: "system"` messages: from Claude Opus 4.8 on (/models/whats-new-claude-4-8,
# "Mid-conversation system messages"); earlier models answer `role 'system' is not supported on this model`.
_SYSTEM_MESSAGES: dict[str, Any] = {"accepts_system_messages": True}
_OLD_CAPABILITIES = Capabilities(compaction=False)


def _prices(input_usd: float, output_usd: float, cache_read_usd: float) -> Prices:
    """List prices with the standard cache-write multipliers: 1.25x input for 5 minutes, 2x for an hour."""
    return Prices(
        input_usd=input_usd,
        output_usd=output_usd,
        cache_read_usd=cache_read_usd,
        cache_write_5m_usd=round(input_usd * 1.25, 6),
        cache_write_1h_usd=round(input_usd * 2.0, 6),
    )


def _row(
    model_id: str,
    name: str,
    released: str,
    limits: tuple[int, int],
    prices: Prices,
    cache_min: int,
    *behaviours: dict[str, Any],
    **fields: Any,
) -> ModelSpec:
    """One row: `limits` is (context window, max output); behaviours and fields fill the rest."""
    merged: dict[str, Any] = {}
    for behaviour in behaviours:
        merged.update(behaviour)
    merged.update(fields)
    return ModelSpec(
        id=model_id,
        display_name=name,
        line=name.split()[1].lower(),  # type: ignore[arg-type]
        released=released,
        max_input_tokens=limits[0],
        max_output_tokens=limits[1],
        input_usd=prices.input_usd,
        output_usd=prices.output_usd,
        cache_write_5m_usd=prices.cache_write_5m_usd,
        cache_write_1h_usd=prices.cache_write_1h_usd,
        cache_read_usd=prices.cache_read_usd,
        cache_min_tokens=cache_min,
        **merged,
    )


MODEL_ROWS: tuple[ModelSpec, ...] = (
    # Fable 5.2: OVERVIEW (1M / 128K, $8 / $40, released 2026-11-09). Cache prices and minimum
    # unverified (Fable 5.1's multipliers assumed); thinking and forced-tool rules assumed as Fable 5.1.
    _row("claude-fable-5-2", "Claude Fable 5.2", "2026-11-09", (_M, _K128), _prices(8.0, 40.0, 0.20), 512,
         _ALWAYS_ON, _NEW_GENERATION, _SYSTEM_MESSAGES, rejects_forced_tool_use=True),
    # Mythos 5.2: invitation-only twin of Fable 5.2 (SDK lists the id); figures assumed as Fable 5.2, unverified.
    _row("claude-mythos-5-2", "Claude Mythos 5.2", "2026-11-09", (_M, _K128), _prices(8.0, 40.0, 0.20), 512,
         _ALWAYS_ON, _NEW_GENERATION, _SYSTEM_MESSAGES, rejects_forced_tool_use=True),
    # Haiku 5.5: OVERVIEW (1M / 128K, $0.10 / $0.50 up to 100K prompt tokens, 5x above); its what's-new
    # page: adaptive thinking with responses that may open with a thinking block, thinking text omitted
    # by default, manual extended thinking, non-default sampling parameters and prefill are errors.
    # Thinking can be turned off at effort high or lower (THINKING footnote 2, "Opus 5 and later").
    _row("claude-haiku-5-5", "Claude Haiku 5.5", "2026-10-07", (_M, _K128), _prices(0.10, 0.50, 0.01), 512,
         _ADAPTIVE_ON, _NEW_GENERATION, _SYSTEM_MESSAGES, thinking_off_needs_high_effort_or_less=True,
         long_prompt_threshold_tokens=100_000, long_prompt_multiplier=5.0),
    # Sonnet 5.5: OVERVIEW ($2 / $10, cache read $0.10 from 2026-10-07); what's-new: thinking on by default,
    # `disabled` refused in favour of `between_tools` (refused at effort xhigh/max), forced tool use refused.
    _row("claude-sonnet-5-5", "Claude Sonnet 5.5", "2026-09-28", (_M, _K128), _prices(2.0, 10.0, 0.10), 512,
         _NEW_GENERATION, _SYSTEM_MESSAGES, thinking_default="on",
         thinking_types=frozenset({"adaptive", "between_tools"}), thinking_off_needs_high_effort_or_less=True,
         rejects_forced_tool_use=True),
    # Fable 5.1 and Mythos 5.1: THINKING (adaptive only, always on); forced tool use refused (Opus 5.5
    # what's-new: "the first three also apply on Claude Fable 5.1"). Mythos 5.1 priced as Fable 5.1.
    _row("claude-fable-5-1", "Claude Fable 5.1", "2026-09-01", (_M, _K128), _prices(10.0, 50.0, 0.25), 512,
         _ALWAYS_ON, _NEW_GENERATION, _SYSTEM_MESSAGES, rejects_forced_tool_use=True),
    _row("claude-mythos-5-1", "Claude Mythos 5.1", "2026-09-01", (_M, _K128), _prices(10.0, 50.0, 0.25), 512,
         _ALWAYS_ON, _NEW_GENERATION, _SYSTEM_MESSAGES, rejects_forced_tool_use=True),
    # Opus 5.5: what's-new ("thinking can't be disabled", forced tool use refused), $4 / $20.
    _row("claude-opus-5-5", "Claude Opus 5.5", "2026-09-22", (_M, _K128), _prices(4.0, 20.0, 0.20), 512,
         _ALWAYS_ON, _NEW_GENERATION, _SYSTEM_MESSAGES, rejects_forced_tool_use=True),
    # Sonnet 5: THINKING (adaptive, on by default, rejects `enabled`). Released 2026-06-30 (retirement
    # "not sooner than June 30, 2027" on OVERVIEW, one year after release as for every other row).
    # No mid-conversation system turns, although newer than Opus 4.8: the mid-conversation-system-messages
    # page lists Sonnet 5 among the models without them, and so do proxies that gate on the API's answer
    # (gproxy-transform `claude_mid_conv_system.rs`; Claude Code 2.1.201 stopped sending them to Sonnet 5).
    _row("claude-sonnet-5", "Claude Sonnet 5", "2026-06-30", (_M, _K128), _prices(2.0, 10.0, 0.20), 1024,
         _ADAPTIVE_ON, _NEW_GENERATION),
    # Fable 5 and Mythos 5: THINKING (adaptive only, always on); forced tool use allowed.
    _row("claude-fable-5", "Claude Fable 5", "2026-06-09", (_M, _K128), _prices(10.0, 50.0, 1.0), 512,
         _ALWAYS_ON, _NEW_GENERATION, _SYSTEM_MESSAGES),
    _row("claude-mythos-5", "Claude Mythos 5", "2026-06-09", (_M, _K128), _prices(10.0, 50.0, 1.0), 512,
         _ALWAYS_ON, _NEW_GENERATION, _SYSTEM_MESSAGES),
    # Opus 5: THINKING (on by default, `disabled` only at effort high or lower, rejects `enabled`).
    _row("claude-opus-5", "Claude Opus 5", "2026-07-24", (_M, _K128), _prices(5.0, 25.0, 0.50), 512,
         _ADAPTIVE_ON, _NEW_GENERATION, _SYSTEM_MESSAGES, thinking_off_needs_high_effort_or_less=True),
    # Opus 4.8 and 4.7: THINKING (adaptive only, off by default). Release dates of the rows below
    # Sonnet 5 are the announcements' (Opus 4.8's as compiled before); `created_at` only.
    _row("claude-opus-4-8", "Claude Opus 4.8", "2026-05-01", (_M, _K128), _prices(5.0, 25.0, 0.50), 1024,
         _ADAPTIVE_OFF, _NEW_GENERATION, _SYSTEM_MESSAGES),
    _row("claude-opus-4-7", "Claude Opus 4.7", "2026-04-16", (_M, _K128), _prices(5.0, 25.0, 0.50), 2048,
         _ADAPTIVE_OFF, _NEW_GENERATION),
    # Mythos Preview: THINKING (adaptive and extended, always on, rejects `disabled`); SDK: deprecated,
    # end of life 2026-06-30 (overdue: the Models API's `lifecycle` is the retirement signal, and the
    # SDK still lists the id). Deprecated 2026-06-09 (DEPRECATIONS). Prices and limits unverified.
    _row("claude-mythos-preview", "Claude Mythos Preview", "2026-04-07", (_M, _K128), _prices(25.0, 125.0, 2.50),
         2048, thinking_default="always", thinking_types=frozenset({"adaptive", "enabled"}),
         efforts=EFFORTS_UP_TO_MAX, lifecycle="deprecated", deprecated_at="2026-06-09", retires_at="2026-06-30"),
    # Opus 4.6 and Sonnet 4.6: THINKING (adaptive and deprecated extended thinking, off by default).
    # OVERVIEW: Sonnet 4.6 is 1M / 128K (not 64K). Prefill refused from the 4.6 generation on.
    _row("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05", (_M, _K128), _prices(5.0, 25.0, 0.50), 4096,
         _ADAPTIVE_OR_EXTENDED, efforts=EFFORTS_UP_TO_MAX),
    _row("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17", (_M, _K128), _prices(3.0, 15.0, 0.30), 1024,
         _ADAPTIVE_OR_EXTENDED, efforts=EFFORTS_UP_TO_MAX),
    # Opus 4.5: dated id with the alias `claude-opus-4-5` (SDK, OVERVIEW); 200K / 64K; extended thinking
    # only; effort low/medium/high; prefill accepted. DEPRECATIONS: deprecated 2026-11-23, retires
    # 2027-01-22 (SDK: "January 22nd, 2027").
    _row("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-24", (200_000, 64_000), _prices(5.0, 25.0, 0.50),
         4096, _EXTENDED_ONLY, aliases=("claude-opus-4-5",), efforts=("low", "medium", "high"),
         supports_prefill=True, lifecycle="deprecated", deprecated_at="2026-11-23", retires_at="2027-01-22",
         capabilities=_OLD_CAPABILITIES),
    # Haiku 4.5: OVERVIEW (`claude-haiku-4-5-20251001`, alias `claude-haiku-4-5`, 200K / 64K, $1 / $5,
    # extended thinking, effort not supported); prefill accepted; no programmatic tool calling.
    _row("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15", (200_000, 64_000), _prices(1.0, 5.0, 0.10),
         4096, _EXTENDED_ONLY, aliases=("claude-haiku-4-5",), supports_prefill=True,
         capabilities=Capabilities(compaction=False, programmatic_tool_calling=False)),
    # Sonnet 4.5: retired on the Claude API on 2026-11-30 (SDK 2.12's DEPRECATED_MODELS; gone from the
    # SDK's model list since). Deprecated 2026-09-30 as DEPRECATIONS' status table was transcribed by
    # third parties (unverified). Requests to it are refused.
    _row("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29", (200_000, 64_000), _prices(3.0, 15.0, 0.30),
         1024, _EXTENDED_ONLY, aliases=("claude-sonnet-4-5",), supports_prefill=True, lifecycle="retired",
         deprecated_at="2026-09-30", retires_at="2026-11-30", capabilities=_OLD_CAPABILITIES),
)  # fmt: skip
