"""Request validation with the real API's statuses, error types and messages.

Every check raises `ApiError`, which the server turns into the real error body
`{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}`. Messages follow the
real API's wording where it is known (`temperature: Extra inputs are not permitted`,
`model: <id>` for an unknown model).

Structured-output schemas are checked against the subset the API accepts in `schemas.py`.
"""

from __future__ import annotations

import re
from typing import Any

from ..models import ModelSpec, get_model
from .apierror import ApiError, invalid
from .schemas import check_output_schema
from .tokens import count_request_tokens

__all__ = [
    "API_VERSIONS",
    "ApiError",
    "validate_batch_create",
    "validate_count_tokens",
    "validate_messages",
]

API_VERSIONS = ("2023-06-01", "2026-10-21")
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
MAX_CACHE_BREAKPOINTS = 4
MAX_BATCH_REQUESTS = 100_000
CUSTOM_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

MESSAGE_FIELDS = frozenset(
    {
        "model", "max_tokens", "messages", "system", "stop_sequences", "tools", "tool_choice", "metadata",
        "cache_control", "thinking", "output_config", "service_tier", "speed", "inference_geo", "container",
        "diagnostics", "stream",
    }
)  # fmt: skip
COUNT_TOKENS_FIELDS = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "cache_control", "output_config", "speed"}
)
INPUT_BLOCK_TYPES = frozenset(
    {
        "text", "image", "document", "tool_use", "tool_result", "search_result", "thinking",
        "redacted_thinking", "server_tool_use", "web_search_tool_result", "container_upload",
    }
)  # fmt: skip


def _check_fields(body: dict[str, Any], allowed: frozenset[str], version: str) -> None:
    for key in body:
        if key in allowed:
            continue
        if key in SAMPLING_PARAMS and version == "2023-06-01":
            continue
        raise invalid(f"{key}: Extra inputs are not permitted")


def _check_model(body: dict[str, Any]) -> ModelSpec:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model: Field required")
    spec = get_model(model)
    if spec is None or spec.lifecycle == "retired":
        raise ApiError(404, "not_found_error", f"model: {model}")
    return spec


def _count_cache_control(block: Any) -> int:
    if isinstance(block, dict) and block.get("cache_control") is not None:
        cc = block["cache_control"]
        if not isinstance(cc, dict) or cc.get("type") != "ephemeral":
            raise invalid("cache_control.type: Input should be 'ephemeral'")
        if cc.get("ttl", "5m") not in ("5m", "1h"):
            raise invalid("cache_control.ttl: Input should be '5m' or '1h'")
        return 1
    return 0


def _check_blocks(content: Any, where: str, role: str, version: str) -> int:
    """Validate one message's content; return how many cache breakpoints it carries."""
    if isinstance(content, str):
        if not content and role == "user":
            raise invalid(f"{where}.content: user messages must have non-empty content")
        return 0
    if not isinstance(content, list):
        raise invalid(f"{where}.content: Input should be a valid string or list of content blocks")
    if not content and role == "user":
        raise invalid(f"{where}.content: user messages must have non-empty content")
    breakpoints = 0
    for index, block in enumerate(content):
        at = f"{where}.content.{index}"
        if not isinstance(block, dict):
            raise invalid(f"{at}: Input should be a valid dictionary")
        kind = block.get("type")
        if not isinstance(kind, str) or kind not in INPUT_BLOCK_TYPES:
            raise invalid(f"{at}.type: Input tag '{kind}' found using 'type' does not match any of the expected tags")
        if kind == "text" and not isinstance(block.get("text"), str):
            raise invalid(f"{at}.text: Field required")
        if kind == "text" and block.get("text") == "":
            raise invalid(f"{at}.text: text content blocks must be non-empty")
        if version == "2026-10-21":
            if kind == "document" and role == "assistant":
                raise invalid(f"{at}: document blocks are not permitted in assistant messages")
            if kind == "text" and role == "user" and block.get("citations"):
                raise invalid(f"{at}.citations: citations are not permitted on text blocks in user messages")
        if kind == "document":
            source = block.get("source")
            if not isinstance(source, dict) or source.get("type") not in ("base64", "text", "content", "url", "file"):
                raise invalid(f"{at}.source: Input should be a valid document source")
        breakpoints += _count_cache_control(block)
    return breakpoints


def _check_output_config(config: Any) -> None:
    if not isinstance(config, dict):
        raise invalid("output_config: Input should be a valid dictionary")
    for key in config:
        if key not in ("effort", "format"):
            raise invalid(f"output_config.{key}: Extra inputs are not permitted")
    if "effort" in config and config["effort"] not in ("low", "medium", "high", "xhigh", "max"):
        raise invalid("output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'")
    fmt = config.get("format")
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise invalid("output_config.format.type: Input should be 'json_schema'")
    check_output_schema(fmt.get("schema"), "output_config.format.schema")


def _check_prompt(body: dict[str, Any], spec: ModelSpec, version: str) -> None:
    """Checks shared by Messages and count_tokens: messages, system, tools, thinking, caching."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise invalid("messages: Field required")
    if not messages:
        raise invalid("messages: at least one message is required")
    breakpoints = _count_cache_control(body) if "cache_control" in body else 0
    breakpoints += _check_messages(messages, spec, version)
    breakpoints += _check_system(body.get("system"))
    breakpoints += _check_tools(body.get("tools"))
    if breakpoints > MAX_CACHE_BREAKPOINTS:
        raise invalid(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {breakpoints}."
        )
    _check_tool_choice(body.get("tool_choice"), spec)
    thinking = body.get("thinking")
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind not in ("adaptive", "enabled", "disabled", "between_tools"):
            raise invalid("thinking.type: Input should be 'adaptive', 'enabled', 'disabled' or 'between_tools'")
        if spec.adaptive_thinking and kind in ("enabled", "disabled"):
            raise invalid(f'"thinking.type.{kind}" is not supported for this model.')
    if "output_config" in body:
        _check_output_config(body["output_config"])


def _check_messages(messages: list[Any], spec: ModelSpec, version: str) -> int:
    """Check the turns; return how many cache breakpoints they carry."""
    breakpoints = 0
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            raise invalid(f"{where}: Input should be a valid dictionary")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise invalid(f"{where}.role: Input should be 'user' or 'assistant'")
        if index == 0 and role != "user":
            raise invalid('messages: first message must use the "user" role')
        if "content" not in message:
            raise invalid(f"{where}.content: Field required")
        breakpoints += _check_blocks(message["content"], where, role, version)
    if messages[-1].get("role") == "assistant" and not spec.supports_prefill:
        raise invalid(
            "This model does not support assistant message prefill. The conversation must end with a user message."
        )
    return breakpoints


def _check_system(system: Any) -> int:
    """Check the system prompt; return how many cache breakpoints it carries."""
    breakpoints = 0
    if system is not None:
        if isinstance(system, list):
            for index, block in enumerate(system):
                if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
                    raise invalid(f"system.{index}: system blocks must be text blocks")
                breakpoints += _count_cache_control(block)
        elif not isinstance(system, str):
            raise invalid("system: Input should be a valid string or list of text blocks")
    return breakpoints


def _check_tools(tools: Any) -> int:
    """Check the tool definitions; return how many cache breakpoints they carry."""
    breakpoints = 0
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid("tools: Input should be a valid list")
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise invalid(f"tools.{index}.name: Field required")
            breakpoints += _count_cache_control(tool)
    return breakpoints


def _check_tool_choice(tool_choice: Any, spec: ModelSpec) -> None:
    if tool_choice is not None:
        if not isinstance(tool_choice, dict) or tool_choice.get("type") not in ("auto", "any", "tool", "none"):
            raise invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
        if tool_choice["type"] in ("any", "tool") and spec.rejects_forced_tool_use:
            raise invalid(
                f"tool_choice: forced tool use is not supported for {spec.id}; "
                'use tool_choice {"type": "auto"} or structured outputs (output_config.format)'
            )


def validate_messages(body: Any, version: str) -> ModelSpec:
    """Validate a `POST /v1/messages` body (or a batch request's `params`); return the model."""
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object")
    _check_fields(body, MESSAGE_FIELDS, version)
    spec = _check_model(body)
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
    if "stream" in body and not isinstance(body["stream"], bool):
        raise invalid("stream: Input should be a valid boolean")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise invalid("stop_sequences: Input should be a valid list of strings")
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or set(metadata) - {"user_id"}):
        raise invalid("metadata: only 'user_id' is permitted")
    _check_prompt(body, spec, version)
    prompt_tokens = count_request_tokens(body)
    if prompt_tokens > spec.max_input_tokens:
        raise invalid(f"prompt is too long: {prompt_tokens} tokens > {spec.max_input_tokens} maximum")
    return spec


def validate_count_tokens(body: Any, version: str) -> ModelSpec:
    """Validate a `POST /v1/messages/count_tokens` body; return the model."""
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object")
    _check_fields(body, COUNT_TOKENS_FIELDS, version)
    spec = _check_model(body)
    _check_prompt(body, spec, version)
    return spec


def validate_batch_create(body: Any) -> list[dict[str, Any]]:
    """Validate the envelope of `POST /v1/messages/batches`; params are checked per request later."""
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object")
    for key in body:
        if key != "requests":
            raise invalid(f"{key}: Extra inputs are not permitted")
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
