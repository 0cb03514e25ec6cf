"""The Models API's answers, built from the model table: `ModelInfo` objects and their pages.

Pure functions over the table and a query; `http_models.py` does the HTTP. Every field the SDK's
`types/model_info.py` declares is filled, `capabilities` included (SDK `types/model_capabilities.py`
and the types it references: "Keys are always present for all known capabilities").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..model_spec import ALL_EFFORTS, ModelSpec
from ..models import MODELS, get_model
from .paging import page_limit
from .validation import ApiError, invalid

__all__ = ["LIFECYCLES", "model_info", "model_page", "retrieve_model"]

LIFECYCLES = ("active", "deprecated", "retired")
DEFAULT_LIFECYCLES = frozenset({"active", "deprecated"})  # `retired` only when asked for (SDK model_list_params.py)
THINKING_TYPES = ("adaptive", "between_tools", "disabled", "enabled")


def _supported(flag: bool) -> dict[str, bool]:
    return {"supported": flag}


def _timestamp(date: str | None) -> str | None:
    return None if date is None else f"{date}T00:00:00Z"


def capabilities(spec: ModelSpec) -> dict[str, Any]:
    """The `capabilities` object of `spec`: thinking and effort from its rules, the rest from its row."""
    caps = spec.capabilities
    thinking_types = {kind: _supported(kind in spec.thinking_types) for kind in THINKING_TYPES}
    effort = {level: _supported(level in spec.efforts) for level in ALL_EFFORTS}
    context_strategies = {
        "clear_thinking_20251015": _supported(caps.clear_thinking),
        "clear_tool_uses_20250919": _supported(caps.clear_tool_uses),
        "compact_20260112": _supported(caps.compaction),
    }
    return {
        "batch": _supported(caps.batch),
        "citations": _supported(caps.citations),
        "code_execution": _supported(caps.programmatic_tool_calling),
        "context_management": {
            "supported": any(strategy["supported"] for strategy in context_strategies.values()),
            **context_strategies,
        },
        "effort": {"supported": bool(spec.efforts), **effort},
        "image_input": _supported(caps.image_input),
        "pdf_input": _supported(caps.pdf_input),
        "server_tools": {
            "supported": caps.web_search or caps.code_execution_tool,
            "code_execution": _supported(caps.code_execution_tool),
            "web_search": _supported(caps.web_search),
        },
        "structured_outputs": _supported(caps.structured_outputs),
        "thinking": {"supported": bool(spec.thinking_types - {"disabled"}), "types": thinking_types},
    }


def model_info(spec: ModelSpec) -> dict[str, Any]:
    """One `ModelInfo` object, every field the SDK declares filled in."""
    return {
        "type": "model",
        "id": spec.id,
        "display_name": spec.display_name,
        "created_at": _timestamp(spec.released),
        "line": spec.line,
        "lifecycle": spec.lifecycle,
        "deprecated_at": _timestamp(spec.deprecated_at),
        "retires_at": _timestamp(spec.retires_at),
        "max_input_tokens": spec.max_input_tokens,
        "max_tokens": spec.max_output_tokens,
        "capabilities": capabilities(spec),
    }


def retrieve_model(model_id: str, *, lookup: Callable[[str], ModelSpec | None] = get_model) -> dict[str, Any]:
    """`GET /v1/models/{model_id}`: an id or an alias; an alias answers with the model it names."""
    spec = lookup(model_id)
    if spec is None:
        raise ApiError(404, "not_found_error", f"model: {model_id}")
    return model_info(spec)


def _lifecycles(values: Sequence[str]) -> frozenset[str]:
    if not values:
        return DEFAULT_LIFECYCLES
    if len(values) > len(LIFECYCLES):
        raise invalid(f"lifecycle: List should have at most {len(LIFECYCLES)} items")
    for value in values:
        if value not in LIFECYCLES:
            raise invalid("lifecycle: Input should be 'active', 'deprecated' or 'retired'")
    return frozenset(values)


def model_page(
    query: Mapping[str, str], lifecycle: Sequence[str], *, served: Sequence[ModelSpec] = ()
) -> dict[str, Any]:
    """`GET /v1/models`: newest first, filtered by lifecycle, one page after `after_id` or before `before_id`;
    `served` are the models the emulator serves besides the table's."""
    limit = page_limit(query)
    wanted = _lifecycles(lifecycle)
    specs = sorted(
        (spec for spec in (*MODELS.values(), *served) if spec.lifecycle in wanted),
        key=lambda spec: (spec.released, spec.id),
        reverse=True,
    )
    ids = [spec.id for spec in specs]
    after, before = query.get("after_id"), query.get("before_id")
    if after in ids:
        specs = specs[ids.index(after) + 1 :]
    elif before in ids:
        specs = specs[: ids.index(before)][-limit:]
    data = [model_info(spec) for spec in specs[:limit]]
    return {
        "data": data,
        "has_more": len(specs) > limit,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
