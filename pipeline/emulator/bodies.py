"""The JSON bodies the API answers with: a message, its usage, an error.

Pure builders over plain values, shared by the Messages endpoint, the SSE stream and the batch
results, so a message looks the same whichever way it is delivered.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ERROR_TYPES", "error_json", "message_json", "usage_json"]

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def usage_json(
    input_tokens: int, read: int, write_5m: int, write_1h: int, output: int, thinking: int, tier: str
) -> dict[str, Any]:
    """A message's `usage`: input, cache reads and writes (by TTL), output and thinking tokens."""
    return {
        "input_tokens": input_tokens,
        "output_tokens": output,
        "cache_creation_input_tokens": write_5m + write_1h,
        "cache_read_input_tokens": read,
        "cache_creation": {"ephemeral_5m_input_tokens": write_5m, "ephemeral_1h_input_tokens": write_1h},
        "output_tokens_details": {"thinking_tokens": thinking},
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
        "service_tier": tier,
        "inference_geo": "global",
        "speed": "standard",
    }


def message_json(
    msg_id: str,
    model: str,
    content: list[dict[str, Any]],
    stop_reason: str | None,
    stop_sequence: str | None,
    usage: dict[str, Any],
    stop_details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A whole assistant message, as `POST /v1/messages` returns it."""
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "stop_details": stop_details,
        "container": None,
        "diagnostics": None,
        "usage": usage,
    }


def error_json(error_type: str, message: str, request_id: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The API's error body: `{"type": "error", "error": {...}, "request_id": ...}`."""
    return {
        "type": "error",
        "error": {"type": error_type, "message": message, "details": details},
        "request_id": request_id,
    }
