"""Request validation with the real API's statuses, error types and messages: the entry points.

`validate_messages`, `validate_count_tokens` and `validate_batch_create` check a whole body; the
rules live in modules named after what they check: `validate_params.py` (closed sets, ranges,
`max_tokens: 0`, the deprecated `output_format`), `validate_content.py` (roles, blocks, images,
thinking signatures), `validate_cache.py` (cache_control markers) and `validate_tools.py` (tools,
tool_choice). Every check raises `ApiError` (from `api_errors.py`, re-exported here), which the
server turns into the real error body `{"type": "error", "error": {"type": ..., "message": ...},
"request_id": ...}`. Messages follow the real API's wording where it is known
(`temperature: Extra inputs are not permitted`, `model: <id>` for an unknown model).

Structured-output schemas are checked against the subset the API accepts in `schemas.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..models import ModelSpec, get_model
from .api_errors import ApiError, invalid, refuse_extra
from .model_rules import model_rule_violation
from .schemas import check_output_schema
from .tokens import count_request_tokens
from .validate_cache import MAX_CACHE_BREAKPOINTS, check_cache_markers
from .validate_content import check_messages, check_system
from .validate_params import (
    check_metadata,
    check_prewarm,
    check_sampling,
    check_service_options,
    check_thinking_shape,
    merge_output_format,
)
from .validate_tools import check_tool_choice, check_tools

__all__ = [
    "API_VERSIONS",
    "MAX_CACHE_BREAKPOINTS",
    "ApiError",
    "invalid",
    "merge_output_format",
    "validate_batch_create",
    "validate_count_tokens",
    "validate_messages",
]

API_VERSIONS = ("2023-06-01", "2026-10-21")
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
MAX_BATCH_REQUESTS = 100_000
CUSTOM_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

MESSAGE_FIELDS = frozenset(
    {
        "model", "max_tokens", "messages", "system", "stop_sequences", "tools", "tool_choice", "metadata",
        "cache_control", "thinking", "output_config", "service_tier", "speed", "inference_geo", "container",
        "diagnostics", "stream", "output_format",
    }
)  # fmt: skip
COUNT_TOKENS_FIELDS = frozenset(
    {
        "model", "messages", "system", "tools", "tool_choice", "thinking", "cache_control", "output_config",
        "output_format", "speed",
    }
)  # fmt: skip


def _check_fields(body: dict[str, Any], allowed: frozenset[str], version: str) -> None:
    for key in body:
        if key in allowed:
            continue
        if key in SAMPLING_PARAMS and version == "2023-06-01":
            continue
        raise invalid(f"{key}: Extra inputs are not permitted")


def _check_model(body: dict[str, Any], lookup: Callable[[str], ModelSpec | None]) -> ModelSpec:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model: Field required")
    spec = lookup(model)
    if spec is None or spec.lifecycle == "retired":
        raise ApiError(404, "not_found_error", f"model: {model}")
    return spec


def _check_output_config(config: Any) -> None:
    if not isinstance(config, dict):
        raise invalid("output_config: Input should be a valid dictionary")
    refuse_extra(config, ("effort", "format"), "output_config.")
    if "effort" in config and config["effort"] not in ("low", "medium", "high", "xhigh", "max"):
        raise invalid("output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'")
    fmt = config.get("format")
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise invalid("output_config.format.type: Input should be 'json_schema'")
    check_output_schema(fmt.get("schema"), "output_config.format.schema")


def _check_prompt(body: dict[str, Any], spec: ModelSpec, version: str, *, seed: int, max_tokens: int | None) -> None:
    """Checks shared by Messages and count_tokens: messages, system, tools, thinking, caching, format, and
    the model's own rules (`model_rules.py`)."""
    check_messages(body.get("messages"), version, seed=seed)
    from .attachments import check_attachments  # imports this module: loaded once it is complete

    check_attachments(body["messages"])
    check_system(body.get("system"))
    tool_names = check_tools(body.get("tools"))
    check_cache_markers(body)
    check_tool_choice(body.get("tool_choice"), tool_names)
    thinking = body.get("thinking")
    if thinking is not None:
        check_thinking_shape(thinking, max_tokens)
    check_service_options(body)
    if "output_config" in body:
        _check_output_config(body["output_config"])
    problem = model_rule_violation(body, spec)
    if problem is not None:
        raise invalid(problem)


def _check_max_tokens(body: dict[str, Any], spec: ModelSpec) -> int:
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise invalid("max_tokens: Field required")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
        raise invalid("max_tokens: Input should be a valid integer greater than or equal to 0")
    if max_tokens > spec.max_output_tokens:
        raise invalid(
            f"max_tokens: {max_tokens} > {spec.max_output_tokens}, which is the maximum allowed "
            f"number of output tokens for {spec.id}"
        )
    return max_tokens


def validate_messages(
    body: Any, version: str, *, seed: int, in_batch: bool = False, lookup: Callable[[str], ModelSpec | None] = get_model
) -> ModelSpec:
    """Validate a `POST /v1/messages` body (or, `in_batch`, a batch request's `params`); return the model.

    `seed` is the emulator's: thinking blocks sent back must carry the signature it issued. `lookup`
    finds a model as the emulator serves it (`EmulatorConfig.model`).
    """
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object")
    _check_fields(body, MESSAGE_FIELDS, version)
    spec = _check_model(body, lookup)
    max_tokens = _check_max_tokens(body, spec)
    if "stream" in body and not isinstance(body["stream"], bool):
        raise invalid("stream: Input should be a valid boolean")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise invalid("stop_sequences: Input should be a valid list of strings")
    check_metadata(body.get("metadata"))
    check_sampling(body)
    body = merge_output_format(body)
    _check_prompt(body, spec, version, seed=seed, max_tokens=max_tokens)
    check_prewarm(body, in_batch=in_batch)
    prompt_tokens = count_request_tokens(body)
    if prompt_tokens > spec.max_input_tokens:
        raise invalid(f"prompt is too long: {prompt_tokens} tokens > {spec.max_input_tokens} maximum")
    return spec


def validate_count_tokens(
    body: Any, version: str, *, seed: int, lookup: Callable[[str], ModelSpec | None] = get_model
) -> ModelSpec:
    """Validate a `POST /v1/messages/count_tokens` body; return the model."""
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object")
    _check_fields(body, COUNT_TOKENS_FIELDS, version)
    spec = _check_model(body, lookup)
    check_sampling(body)
    body = merge_output_format(body)
    _check_prompt(body, spec, version, seed=seed, max_tokens=None)
    return spec


def validate_batch_create(body: Any) -> list[dict[str, Any]]:
    """Validate the envelope of `POST /v1/messages/batches`; params are checked per request later."""
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object")
    refuse_extra(body, ("requests",))
    requests = body.get("requests")
    if not isinstance(requests, list):
        raise invalid("requests: Field required")
    if not requests:
        raise invalid("requests: List should have at least 1 item after validation, not 0")
    if len(requests) > MAX_BATCH_REQUESTS:
        raise invalid(f"requests: List should have at most {MAX_BATCH_REQUESTS} items after validation")
    seen: set[str] = set()
    for index, request in enumerate(requests):
        if not isinstance(request, dict) or not isinstance(request.get("params"), dict):
            raise invalid(f"requests.{index}.params: Field required")
        custom_id = request.get("custom_id")
        if not isinstance(custom_id, str) or not CUSTOM_ID_RE.match(custom_id):
            raise invalid(f"requests.{index}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
        if custom_id in seen:
            raise invalid(f"requests.{index}.custom_id: duplicate custom_id '{custom_id}' in batch")
        seen.add(custom_id)
    return requests
