"""The checks that depend on the model: each reads a field of the model table, never a model id.

The generic shape of a request (types, closed sets, ranges) is checked in `validation.py`; this
module decides what a well-formed request may ask of one model: which `thinking.type` values it
accepts (and whether thinking may be turned off at high effort), which effort levels it has,
whether it takes non-default sampling parameters, a final assistant turn (prefill), a
mid-conversation system turn, or a forced tool (never together with manual extended thinking).
Sources, per rule, are in `pipeline/model_table.py` and `docs/emulator.md`.

Pure functions: each answers the message of the API's 400 `invalid_request_error`, or None, and
`validation.py` raises it.
"""

from __future__ import annotations

from typing import Any

from ..model_spec import ModelSpec

__all__ = ["model_rule_violation"]

THINKING_OFF_TYPES = ("disabled", "between_tools")
HIGH_EFFORTS = ("xhigh", "max")  # too high to turn thinking off with, where the model restricts it
SAMPLING_DEFAULTS: dict[str, float | None] = {"temperature": 1.0, "top_p": 1.0, "top_k": None}
THINKING_HINT = 'Use "thinking.type.adaptive" and "output_config.effort" to control thinking behavior.'
FORCED_TOOL_WITH_THINKING_MESSAGE = "Thinking may not be enabled when tool_choice forces tool use."
PREFILL_MESSAGE = (
    "This model does not support assistant message prefill. The conversation must end with a user message."
)


def model_rule_violation(body: dict[str, Any], spec: ModelSpec) -> str | None:
    """What `spec`'s model refuses in an otherwise valid body (the 400's message), or None."""
    checks = (_check_thinking, _check_effort, _check_sampling, _check_prefill, _check_system_turns, _check_forced_tool)
    for check in checks:
        problem = check(body, spec)
        if problem is not None:
            return problem
    return None


def _thinking_type(body: dict[str, Any]) -> str | None:
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    return kind if isinstance(kind, str) else None


def _effort(body: dict[str, Any]) -> str | None:
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    return effort if isinstance(effort, str) else None


def _check_thinking(body: dict[str, Any], spec: ModelSpec) -> str | None:
    kind = _thinking_type(body)
    if kind is None:
        return None
    if kind in spec.thinking_types:
        effort = _effort(body)
        if kind in THINKING_OFF_TYPES and spec.thinking_off_needs_high_effort_or_less and effort in HIGH_EFFORTS:
            return (
                f'"thinking.type.{kind}" cannot be combined with effort "{effort}" on this model. '
                'Use effort "high" or lower, or leave thinking on.'
            )
        return None
    if kind == "adaptive":
        return "adaptive thinking is not supported on this model"
    if kind == "disabled" and "between_tools" in spec.thinking_types:
        return (
            '"thinking.type.disabled" is not supported for this model. '
            'Use "thinking.type.between_tools" to turn off up-front thinking.'
        )
    return f'"thinking.type.{kind}" is not supported for this model. {THINKING_HINT}'


def _check_effort(body: dict[str, Any], spec: ModelSpec) -> str | None:
    effort = _effort(body)
    if effort is None:
        return None
    if not spec.efforts:
        return "output_config.effort: effort is not supported on this model"
    if effort not in spec.efforts:
        return f"output_config.effort: '{effort}' is not supported on this model"
    return None


def _check_sampling(body: dict[str, Any], spec: ModelSpec) -> str | None:
    if not spec.rejects_sampling_params:
        return None
    for name, default in SAMPLING_DEFAULTS.items():
        if name in body and (default is None or body[name] != default):
            return f"`{name}` is deprecated for this model."
    return None


def _check_prefill(body: dict[str, Any], spec: ModelSpec) -> str | None:
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    if isinstance(last, dict) and last.get("role") == "assistant" and not spec.supports_prefill:
        return PREFILL_MESSAGE
    return None


def _check_system_turns(body: dict[str, Any], spec: ModelSpec) -> str | None:
    """Mid-conversation `role: "system"` turns, where the generic checks let them through."""
    messages = body.get("messages")
    turns = messages if isinstance(messages, list) else []
    if spec.accepts_system_messages:
        return None
    for index, turn in enumerate(turns):
        if isinstance(turn, dict) and turn.get("role") == "system":
            return f"messages.{index}: role 'system' is not supported on this model ({spec.id})"
    return None


def _check_forced_tool(body: dict[str, Any], spec: ModelSpec) -> str | None:
    tool_choice = body.get("tool_choice")
    forced = isinstance(tool_choice, dict) and tool_choice.get("type") in ("any", "tool")
    if forced and spec.rejects_forced_tool_use:
        return (
            f"tool_choice: forced tool use is not supported for {spec.id}; "
            'use tool_choice {"type": "auto"} or structured outputs (output_config.format)'
        )
    if forced and _thinking_type(body) == "enabled":  # manual extended thinking; adaptive allows it
        return FORCED_TOOL_WITH_THINKING_MESSAGE
    return None
