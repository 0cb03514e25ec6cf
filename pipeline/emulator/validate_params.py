"""Checks on the request's scalar parameters: closed sets, ranges, and what `max_tokens: 0` allows.

Each rule names its source (the SDK file that types the field, or the docs page); `docs/emulator.md`
("Rules and their sources") lists them all. Messages follow the real API's wording where it is known.
Pure functions over the parsed body; every failure raises `invalid(...)`.
"""

from __future__ import annotations

import json
from typing import Any

from .api_errors import invalid, refuse_extra

__all__ = [
    "check_metadata",
    "check_prewarm",
    "check_sampling",
    "check_service_options",
    "check_thinking_shape",
    "merge_output_format",
]

SERVICE_TIERS = ("auto", "standard_only")  # SDK types/message_create_params.py
SPEEDS = ("standard", "fast")  # SDK types/message_create_params.py
INFERENCE_GEOS = ("global", "us")  # docs: build-with-claude/data-residency
THINKING_DISPLAYS = ("summarized", "omitted")  # SDK types/thinking_config_{adaptive,enabled}_param.py
THINKING_FIELDS = {
    "adaptive": {"type", "display"},
    "enabled": {"type", "budget_tokens", "display"},
    "disabled": {"type"},
    "between_tools": {"type"},
}
MIN_BUDGET_TOKENS = 1024  # SDK types/thinking_config_enabled_param.py: "Must be >=1024"
MAX_USER_ID_CHARS = 512  # API reference, Messages: metadata.user_id maxLength 512 (256 before late 2026)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_service_options(body: dict[str, Any]) -> None:
    """`service_tier`, `speed` and `inference_geo` take only their documented values."""
    if "service_tier" in body and body["service_tier"] not in SERVICE_TIERS:
        raise invalid("service_tier: Input should be 'auto' or 'standard_only'")
    if body.get("speed") is not None and body["speed"] not in SPEEDS:
        raise invalid("speed: Input should be 'standard' or 'fast'")
    geo = body.get("inference_geo")
    if geo is not None:
        if not isinstance(geo, str):
            raise invalid("inference_geo: Input should be a valid string")
        if geo not in INFERENCE_GEOS:
            raise invalid("inference_geo: must be one of ['global', 'us']")


def check_sampling(body: dict[str, Any]) -> None:
    """`temperature` and `top_p` are numbers in 0..1, `top_k` an integer of at least 0.

    Only reachable under `2023-06-01`: the `2026-10-21` version refuses the fields outright.
    Source: API reference, Messages (`temperature`/`top_p` minimum 0, maximum 1; `top_k` minimum 0).
    """
    for name in ("temperature", "top_p"):
        if name in body:
            value = body[name]
            if not _is_number(value):
                raise invalid(f"{name}: Input should be a valid number")
            if not 0.0 <= value <= 1.0:
                raise invalid(f"{name}: range: 0..1")
    if "top_k" in body:
        value = body["top_k"]
        if not _is_integer(value):
            raise invalid("top_k: Input should be a valid integer")
        if value < 0:
            raise invalid("top_k: Input should be greater than or equal to 0")


def check_metadata(metadata: Any) -> None:
    """`metadata` holds only `user_id`, a string (or null) of at most MAX_USER_ID_CHARS characters."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise invalid("metadata: Input should be a valid dictionary")
    refuse_extra(metadata, ("user_id",), "metadata.")
    user_id = metadata.get("user_id")
    if user_id is None:
        return
    if not isinstance(user_id, str):
        raise invalid("metadata.user_id: Input should be a valid string")
    if len(user_id) > MAX_USER_ID_CHARS:
        raise invalid(f"metadata.user_id: String should have at most {MAX_USER_ID_CHARS} characters")


def check_thinking_shape(thinking: Any, max_tokens: int | None) -> None:
    """A known `thinking` variant with only its own fields; `budget_tokens` >= 1024 and < `max_tokens`.

    Which variants a model accepts is a per-model rule, checked elsewhere. `max_tokens` is None for
    count_tokens, which has no output limit to compare the budget with.
    """
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if not isinstance(thinking, dict) or kind not in THINKING_FIELDS:
        raise invalid("thinking.type: Input should be 'adaptive', 'enabled', 'disabled' or 'between_tools'")
    refuse_extra(thinking, THINKING_FIELDS[kind], f"thinking.{kind}.")
    if thinking.get("display") is not None and thinking["display"] not in THINKING_DISPLAYS:
        raise invalid(f"thinking.{kind}.display: Input should be 'summarized' or 'omitted'")
    if kind != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if budget is None:
        raise invalid("thinking.enabled.budget_tokens: Field required")
    if not _is_integer(budget):
        raise invalid("thinking.enabled.budget_tokens: Input should be a valid integer")
    if budget < MIN_BUDGET_TOKENS:
        raise invalid(f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_BUDGET_TOKENS}")
    if max_tokens is not None and max_tokens > 0 and budget >= max_tokens:
        raise invalid("max_tokens must be greater than thinking.budget_tokens")


def check_prewarm(body: dict[str, Any], *, in_batch: bool) -> None:
    """`max_tokens: 0` (cache pre-warm) is valid only alone.

    Refused with streaming, a structured-output format, thinking turned on, a forced tool, or inside
    a Message Batch (docs: prompt-caching, "Pre-warming the cache"; anthropics/skills
    `shared/prompt-caching.md`). Call after `merge_output_format`.
    """
    if body.get("max_tokens") != 0:
        return
    reason = _prewarm_conflict(body, in_batch=in_batch)
    if reason is not None:
        raise invalid(f"max_tokens: 0 (cache pre-warm) cannot be used {reason}")


def _prewarm_conflict(body: dict[str, Any], *, in_batch: bool) -> str | None:
    if in_batch:
        return "inside a Message Batch"
    if body.get("stream") is True:
        return "with stream: true"
    config = body.get("output_config")
    if isinstance(config, dict) and config.get("format") is not None:
        return "with output_config.format"
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        return f"with thinking.type '{thinking['type']}'"
    tool_choice = body.get("tool_choice")
    if isinstance(tool_choice, dict) and tool_choice.get("type") in ("any", "tool"):
        return f"with a forced tool_choice ('{tool_choice['type']}')"
    return None


def merge_output_format(body: dict[str, Any]) -> dict[str, Any]:
    """The body with the deprecated top-level `output_format` moved into `output_config.format`.

    Structured outputs docs: "The `output_format` parameter has moved to `output_config.format` ...
    [it] will continue working for a transition period." A body that gives both, differently, is
    ambiguous and refused; the same format twice is accepted. Bodies without `output_format` are
    returned as they are, so callers may apply this to every body.
    """
    if "output_format" not in body:
        return body
    legacy = body["output_format"]
    merged = {key: value for key, value in body.items() if key != "output_format"}
    if legacy is None:
        return merged
    config = body.get("output_config")
    if config is not None and not isinstance(config, dict):
        return merged  # `output_config` itself is refused by its own check
    current = (config or {}).get("format")
    if current is not None and _canonical(current) != _canonical(legacy):
        raise invalid(
            "output_format: cannot be combined with a different output_config.format; "
            "output_format is deprecated, send output_config.format only"
        )
    merged["output_config"] = {**(config or {}), "format": legacy}
    return merged


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
