"""Errors from the emulator: real statuses, bodies and headers, and how the official SDK meets them."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import anthropic
import httpx2
import pytest
from conftest import TEST_KEY

from pipeline.emulator import Emulator

MODEL = "claude-haiku-5-5"
MESSAGES = [{"role": "user", "content": "Please label this short note about the quarterly budget review."}]
OBJECT_SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["budget", "other"]}},
    "required": ["label"],
    "additionalProperties": False,
}


def error_of(call: Any) -> anthropic.APIStatusError:
    """Run `call`, which must raise an APIStatusError, and return it."""
    with pytest.raises(anthropic.APIStatusError) as caught:
        call()
    return caught.value


def assert_error_body(error: anthropic.APIStatusError, error_type: str) -> None:
    """The body is exactly the real error shape, its request_id the `request-id` header."""
    body = error.body
    assert isinstance(body, dict)
    assert {"type", "error", "request_id"} == set(body)
    assert body["type"] == "error"
    assert {"type", "message"} <= set(body["error"]) <= {"type", "message", "details"}
    assert error_type == body["error"]["type"]
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert error.response.headers["request-id"] == body["request_id"]
    assert error.request_id == body["request_id"]


@pytest.mark.parametrize(
    ("rule", "status", "error_class", "error_type"),
    [
        ({"kind": "invalid_request"}, 400, anthropic.BadRequestError, "invalid_request_error"),
        ({"kind": "authentication"}, 401, anthropic.AuthenticationError, "authentication_error"),
        ({"kind": "permission"}, 403, anthropic.PermissionDeniedError, "permission_error"),
        ({"kind": "rate_limit"}, 429, anthropic.RateLimitError, "rate_limit_error"),
        ({"kind": "spend_limit"}, 429, anthropic.EnforcedSpendLimitReachedError, "rate_limit_error"),
        ({"kind": "server_error", "statuses": [500]}, 500, anthropic.InternalServerError, "api_error"),
        ({"kind": "server_error", "statuses": [502]}, 502, anthropic.InternalServerError, "api_error"),
        ({"kind": "server_error", "statuses": [503]}, 503, anthropic.ServiceUnavailableError, "api_error"),
        ({"kind": "server_error", "statuses": [504]}, 504, anthropic.GatewayTimeoutError, "timeout_error"),
        ({"kind": "overloaded"}, 529, anthropic.OverloadedError, "overloaded_error"),
    ],
    ids=lambda value: str(value.get("statuses", [value["kind"]])[0]) if isinstance(value, dict) else None,
)
def test_each_fault_status_maps_to_its_sdk_class(
    emulator: Emulator,
    client: anthropic.Anthropic,
    rule: dict[str, Any],
    status: int,
    error_class: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    """Each error fault answers the real status and body, which the SDK raises as exactly its class."""
    emulator.control.set_faults([rule])
    error = error_of(lambda: client.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES))
    assert error_class is type(error)
    assert (error.status_code, error.type) == (status, error_type)
    assert_error_body(error, error_type)


def test_async_client_raises_the_same_classes(emulator: Emulator, make_async_client: Any) -> None:
    """The async client meets a 529 as OverloadedError with the same body."""
    emulator.control.set_faults([{"kind": "overloaded"}])

    async def main() -> None:
        async with make_async_client(emulator) as sdk:
            await sdk.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES)

    error = error_of(lambda: asyncio.run(main()))
    assert anthropic.OverloadedError is type(error)
    assert_error_body(error, "overloaded_error")


def test_request_too_large_is_an_html_413(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """The `request_too_large` fault answers 413 with the edge proxy's HTML page, not JSON."""
    emulator.control.set_faults([{"kind": "request_too_large"}])
    error = error_of(lambda: client.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES))
    assert anthropic.ContentTooLargeError is type(error)
    assert anthropic.RequestTooLargeError is anthropic.ContentTooLargeError
    assert error.status_code == 413
    assert isinstance(error.body, str)
    assert "413 Request Entity Too Large" in error.body
    assert error.response.headers["content-type"].startswith("text/html")
    assert error.type is None
    assert error.response.headers["request-id"].startswith("req_")


def test_rate_limit_fault_sends_retry_after(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """A 429 rate_limit_error carries `retry-after` (whole seconds, rounded up), `x-should-retry: true`
    and, as the real API's do, the key's `anthropic-ratelimit-*` headers."""
    emulator.control.set_faults([{"kind": "rate_limit", "retry_after_s": 2.5}])
    error = error_of(lambda: client.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES))
    headers = error.response.headers
    assert (headers["retry-after"], headers["x-should-retry"]) == ("3", "true")
    for name in ("requests", "input-tokens", "output-tokens", "tokens"):
        assert {"limit", "remaining", "reset"} <= {
            key.rsplit("-", 1)[1] for key in headers if key.startswith(f"anthropic-ratelimit-{name}-")
        }


def test_spend_limit_has_an_error_code_and_no_retry_after(emulator: Emulator, make_client: Any) -> None:
    """The spend-limit 429 has details.error_code, no retry-after, and the SDK does not retry it."""
    emulator.control.set_faults([{"kind": "spend_limit"}])
    sdk = make_client(emulator, max_retries=2)
    error = error_of(lambda: sdk.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES))
    assert isinstance(error.body, dict)
    assert error.body["error"]["details"] == {"error_code": "enforced_spend_limit_reached"}
    assert error.error_code == "enforced_spend_limit_reached"
    assert "retry-after" not in error.response.headers
    assert error.response.headers["x-should-retry"] == "false"
    assert len(emulator.control.requests()) == 1


def test_overloaded_says_it_should_be_retried(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """A 529 carries `x-should-retry: true` and the real "Overloaded" message."""
    emulator.control.set_faults([{"kind": "overloaded"}])
    error = error_of(lambda: client.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES))
    assert (error.response.headers["x-should-retry"], error.api_message) == ("true", "Overloaded")


def test_fault_message_overrides_the_default(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """A rule's `message` becomes the error message."""
    emulator.control.set_faults([{"kind": "permission", "message": "Workspace archived."}])
    error = error_of(lambda: client.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES))
    assert error.api_message == "Workspace archived."


def test_unknown_api_key_is_an_authentication_error(make_emulator: Any, make_client: Any) -> None:
    """With a configured key list, any other key gets 401 authentication_error."""
    emu = make_emulator(api_keys=frozenset({"sk-ant-the-only-good-key"}))
    error = error_of(lambda: make_client(emu).messages.create(model=MODEL, max_tokens=50, messages=MESSAGES))
    assert anthropic.AuthenticationError is type(error)
    assert_error_body(error, "authentication_error")


@pytest.mark.parametrize(("name", "value"), [("temperature", 0.2), ("top_p", 0.9), ("top_k", 40), ("temperature", 1)])
def test_sampling_parameters_are_refused_under_2026_10_21(client: anthropic.Anthropic, name: str, value: float) -> None:
    """Under the SDK's default API version, sampling parameters are a 400 even at default values."""
    error = error_of(
        lambda: client.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES, extra_body={name: value})
    )
    assert anthropic.BadRequestError is type(error)
    assert f"{name}: Extra inputs are not permitted" == error.api_message
    assert_error_body(error, "invalid_request_error")


def test_sampling_parameters_are_refused_by_count_tokens_too(client: anthropic.Anthropic) -> None:
    """count_tokens applies the same 2026-10-21 rule."""
    error = error_of(lambda: client.messages.count_tokens(model=MODEL, messages=MESSAGES, extra_body={"top_k": 5}))
    assert error.api_message == "top_k: Extra inputs are not permitted"


@pytest.mark.parametrize(("name", "value"), [("temperature", 0.5), ("top_p", 0.5), ("top_k", 5)])
def test_sampling_parameters_are_accepted_under_2023_06_01(
    emulator: Emulator, make_client: Any, name: str, value: float
) -> None:
    """Pinning `anthropic-version: 2023-06-01` makes the sampling parameters acceptable again."""
    sdk = make_client(emulator, default_headers={"anthropic-version": "2023-06-01"})
    message = sdk.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES, extra_body={name: value})
    assert message.stop_reason == "end_turn"


@pytest.mark.parametrize(
    ("version", "message"),
    [(None, "anthropic-version: header is required"), ("2024-01-01", "'2024-01-01' is not a valid version")],
)
def test_api_version_header_is_checked(emulator: Emulator, version: str | None, message: str) -> None:
    """A missing or unknown `anthropic-version` is a 400 invalid_request_error."""
    headers = {"x-api-key": TEST_KEY} | ({"anthropic-version": version} if version else {})
    response = httpx2.post(
        emulator.base_url + "/v1/messages",
        json={"model": MODEL, "max_tokens": 5, "messages": MESSAGES},
        headers=headers,
    )
    assert (response.status_code, response.json()["error"]["type"]) == (400, "invalid_request_error")
    assert message in response.json()["error"]["message"]


def test_unparseable_body_is_a_400(emulator: Emulator) -> None:
    """A body that is not JSON gets 400 invalid_request_error in the real shape."""
    response = httpx2.post(
        emulator.base_url + "/v1/messages",
        content=b'{"model": "claude-haiku-5-5", "max_tokens": ',
        headers={"x-api-key": TEST_KEY, "anthropic-version": "2026-10-21", "content-type": "application/json"},
    )
    body = response.json()
    assert (response.status_code, body["error"]["type"]) == (400, "invalid_request_error")
    assert {"type", "error", "request_id"} == set(body)


def test_unknown_model_is_not_found(client: anthropic.Anthropic) -> None:
    """An unknown model gives 404 not_found_error naming the model."""
    error = error_of(lambda: client.messages.create(model="claude-nope-1", max_tokens=50, messages=MESSAGES))
    assert anthropic.NotFoundError is type(error)
    assert error.api_message == "model: claude-nope-1"
    assert_error_body(error, "not_found_error")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/nothing-here"),
        ("POST", "/v1/complete"),
        ("GET", "/v1/messages"),
        ("DELETE", "/v1/messages"),
        ("PUT", "/v1/messages/batches"),
        ("GET", "/"),
    ],
)
def test_unknown_route_is_a_json_404_in_the_error_shape(emulator: Emulator, method: str, path: str) -> None:
    """Unknown paths and methods get the API's 404 body, never a framework `{"detail": ...}`."""
    response = httpx2.request(method, emulator.base_url + path, headers={"x-api-key": TEST_KEY})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert {"type", "error", "request_id"} == set(body)
    assert (body["type"], body["error"]["type"]) == ("error", "not_found_error")
    assert response.headers["request-id"] == body["request_id"]
    assert "detail" not in body


@pytest.mark.parametrize(
    "tool_choice", [{"type": "any"}, {"type": "tool", "name": "record_label"}], ids=["any", "tool"]
)
def test_forced_tool_choice_is_refused_on_opus_5_5(client: anthropic.Anthropic, tool_choice: dict[str, Any]) -> None:
    """Claude Opus 5.5 refuses forced tool use with a 400."""
    tools = [{"name": "record_label", "input_schema": {"type": "object", "properties": {}}}]
    error = error_of(
        lambda: client.messages.create(
            model="claude-opus-5-5", max_tokens=50, messages=MESSAGES, tools=tools, tool_choice=tool_choice
        )
    )
    assert anthropic.BadRequestError is type(error)
    assert "forced tool use is not supported" in (error.api_message or "")


def test_auto_tool_choice_is_accepted_on_opus_5_5(client: anthropic.Anthropic) -> None:
    """`tool_choice: auto` is fine on Claude Opus 5.5."""
    tools = [{"name": "record_label", "input_schema": {"type": "object", "properties": {}}}]
    message = client.messages.create(
        model="claude-opus-5-5", max_tokens=200, messages=MESSAGES, tools=tools, tool_choice={"type": "auto"}
    )
    assert message.id.startswith("msg_")


PREFILL = [*MESSAGES, {"role": "assistant", "content": "The label is"}]


def test_prefill_is_refused_on_haiku_5_5(client: anthropic.Anthropic) -> None:
    """A final assistant turn is a 400 on a model without prefill support."""
    error = error_of(lambda: client.messages.create(model=MODEL, max_tokens=50, messages=PREFILL))
    expected = "This model does not support assistant message prefill. The conversation must end with a user message."
    assert expected == error.api_message


def test_prefill_is_accepted_where_the_model_supports_it(client: anthropic.Anthropic) -> None:
    """Claude Haiku 4.5 still takes a prefilled assistant turn."""
    message = client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=PREFILL)
    assert message.id.startswith("msg_")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]},
        {**OBJECT_SCHEMA, "additionalProperties": True},
        {
            **OBJECT_SCHEMA,
            "properties": {"party": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "required": ["party"],
        },
        {
            "type": "object",
            "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {}}}},
            "additionalProperties": False,
        },
    ],
    ids=["root-missing", "root-true", "nested-object", "array-items"],
)
def test_schema_objects_must_forbid_additional_properties(client: anthropic.Anthropic, schema: dict[str, Any]) -> None:
    """Every object in an output_config schema must say `additionalProperties: false`."""
    error = error_of(
        lambda: client.messages.create(
            model=MODEL,
            max_tokens=50,
            messages=MESSAGES,
            output_config={"format": {"type": "json_schema", "schema": schema}},
        )
    )
    assert anthropic.BadRequestError is type(error)
    assert "'additionalProperties' must be explicitly set to false" in (error.api_message or "")


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ({**OBJECT_SCHEMA, "minProperties": 1}, "'minProperties' is not supported"),
        (
            {**OBJECT_SCHEMA, "properties": {"n": {"type": "integer", "minimum": 0}}, "required": ["n"]},
            "'minimum' is not supported",
        ),
        (
            {**OBJECT_SCHEMA, "properties": {"s": {"type": "string", "format": "credit-card"}}, "required": ["s"]},
            "string format 'credit-card' is not supported",
        ),
        ({**OBJECT_SCHEMA, "properties": {"x": {"$ref": "#/$defs/Missing"}}, "required": ["x"]}, "unresolvable"),
    ],
    ids=["minProperties", "minimum", "format", "ref"],
)
def test_schema_keywords_outside_the_supported_subset_are_refused(
    client: anthropic.Anthropic, schema: dict[str, Any], fragment: str
) -> None:
    """Keywords structured outputs do not support are a 400 naming the keyword."""
    error = error_of(
        lambda: client.messages.create(
            model=MODEL,
            max_tokens=50,
            messages=MESSAGES,
            output_config={"format": {"type": "json_schema", "schema": schema}},
        )
    )
    assert fragment in (error.api_message or "")


def cached_text(number: int) -> dict[str, Any]:
    return {"type": "text", "text": f"Shared instructions, part {number}.", "cache_control": {"type": "ephemeral"}}


def with_breakpoints(count: int) -> dict[str, Any]:
    """Request arguments with `count` cache_control blocks spread over tools, system and the user turn."""
    tool = {
        "name": "record_label",
        "input_schema": {"type": "object", "properties": {}},
        "cache_control": {"type": "ephemeral"},
    }
    content = [cached_text(n) for n in range(2, count)] + [{"type": "text", "text": "The document."}]
    return {"tools": [tool], "system": [cached_text(1)], "messages": [{"role": "user", "content": content}]}


def test_four_cache_breakpoints_are_accepted(client: anthropic.Anthropic) -> None:
    """Four cache_control blocks, counted over tools, system and messages together, are fine."""
    assert client.messages.create(model=MODEL, max_tokens=50, **with_breakpoints(4)).id.startswith("msg_")


def test_a_fifth_cache_breakpoint_is_refused(client: anthropic.Anthropic) -> None:
    """A fifth cache_control block is a 400 saying how many were found."""
    error = error_of(lambda: client.messages.create(model=MODEL, max_tokens=50, **with_breakpoints(5)))
    assert anthropic.BadRequestError is type(error)
    assert error.api_message == "A maximum of 4 blocks with cache_control may be provided. Found 5."


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"max_tokens": -1}, "max_tokens: Input should be a valid integer greater than or equal to 0"),
        ({"max_tokens": 128_001}, "128000, which is the maximum allowed number of output tokens"),
        ({"messages": []}, "messages: at least one message is required"),
        ({"messages": [{"role": "assistant", "content": "Hi"}]}, 'first message must use the "user" role'),
        ({"messages": [{"role": "robot", "content": "Hi"}]}, "messages.0.role: Input should be 'user' or 'assistant'"),
        (
            {"messages": [{"role": "user", "content": ""}]},
            "messages.0.content: user messages must have non-empty content",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
            "messages.0.content.0.text: text content blocks must be non-empty",
        ),
        ({"metadata": {"user_id": "u1", "team": "x"}}, "metadata.team: Extra inputs are not permitted"),
        ({"best_of": 2}, "best_of: Extra inputs are not permitted"),
        ({"stream": "yes"}, "stream: Input should be a valid boolean"),
        ({"model": "claude-opus-5-5", "thinking": {"type": "disabled"}}, '"thinking.type.disabled" is not supported'),
    ],
)
def test_invalid_bodies_are_400_with_the_field_named(
    emulator: Emulator, changes: dict[str, Any], fragment: str
) -> None:
    """Bad Messages bodies get 400 invalid_request_error whose message names the field."""
    body = {"model": MODEL, "max_tokens": 50, "messages": MESSAGES} | changes
    body = {key: value for key, value in body.items() if value is not None}
    response = httpx2.post(
        emulator.base_url + "/v1/messages",
        json=body,
        headers={"x-api-key": TEST_KEY, "anthropic-version": "2026-10-21"},
    )
    assert (response.status_code, response.json()["error"]["type"]) == (400, "invalid_request_error")
    assert fragment in response.json()["error"]["message"]


# -- the SDK's own retries meet the emulator's faults ---------------------------------------------


def test_sdk_retries_scripted_overloads_and_the_journal_counts_them(emulator: Emulator, make_client: Any) -> None:
    """Two scripted 529s then success: with max_retries=2 the call succeeds on its third attempt."""
    emulator.control.set_faults([{"kind": "overloaded", "match": "XYZZY", "times": 2}])
    sdk = make_client(emulator, max_retries=2)
    message = sdk.messages.create(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Report XYZZY for the auditors."}]
    )
    assert message.stop_reason == "end_turn"
    journal = [(entry["retry_count"], entry["status"]) for entry in emulator.control.requests()]
    assert journal == [("0", 529), ("1", 529), ("2", 200)]


def test_sdk_honours_retry_after(emulator: Emulator, make_client: Any) -> None:
    """After a 429 with `retry-after: 1` the SDK's second attempt arrives at least a second later, not early."""
    emulator.control.set_faults([{"kind": "rate_limit", "retry_after_s": 1, "times": 1}])
    sdk = make_client(emulator, max_retries=1)
    sdk.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES)
    first, second = emulator.control.requests()
    assert (first["status"], second["status"]) == (429, 200)
    assert second["t"] - first["t"] >= 0.95
    assert (second["early"], emulator.control.stats()["early_retries"]) == (False, 0)


@pytest.mark.parametrize("kind", ["hang", "slow_first_byte"])
def test_a_hang_ends_in_a_client_timeout(emulator: Emulator, client: anthropic.Anthropic, kind: str) -> None:
    """A 3 s hang against a 0.5 s client timeout raises APITimeoutError after about half a second."""
    emulator.control.set_faults([{"kind": kind, "seconds": 3}])
    started = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        client.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES, timeout=0.5)
    assert 0.4 < time.monotonic() - started < 2.0


def test_a_short_hang_then_answers_normally(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """A hang is bounded: after `seconds` the request is answered as usual."""
    emulator.control.set_faults([{"kind": "hang", "seconds": 0.3}])
    started = time.monotonic()
    message = client.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES)
    assert message.stop_reason == "end_turn"
    assert time.monotonic() - started >= 0.3


def test_async_hang_ends_in_a_client_timeout(emulator: Emulator, make_async_client: Any) -> None:
    """The async client times out on a hang just the same."""
    emulator.control.set_faults([{"kind": "hang", "seconds": 3}])

    async def main() -> None:
        async with make_async_client(emulator, timeout=0.5) as sdk:
            await sdk.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES)

    started = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        asyncio.run(main())
    assert time.monotonic() - started < 2.0


def test_dropped_connection_is_a_connection_error(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """A `disconnect` fault closes the socket without an answer: APIConnectionError, not a timeout."""
    emulator.control.set_faults([{"kind": "disconnect"}])
    with pytest.raises(anthropic.APIConnectionError) as caught:
        client.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES)
    assert not isinstance(caught.value, anthropic.APITimeoutError)
    assert [(entry["status"], entry["fault"]) for entry in emulator.control.requests()] == [(0, "disconnect")]


def test_sdk_retries_a_dropped_connection(emulator: Emulator, make_client: Any) -> None:
    """One dropped connection, then the SDK's retry gets the answer."""
    emulator.control.set_faults([{"kind": "disconnect", "times": 1}])
    message = make_client(emulator, max_retries=1).messages.create(model=MODEL, max_tokens=50, messages=MESSAGES)
    assert message.stop_reason == "end_turn"
    assert [entry["status"] for entry in emulator.control.requests()] == [0, 200]


def test_stopping_the_emulator_cuts_a_hanging_request(make_emulator: Any, make_client: Any) -> None:
    """A request held by a long hang does not hold up `stop()`: it is cut after a short grace period."""
    before = set(threading.enumerate())
    emu = make_emulator()
    (server_thread,) = set(threading.enumerate()) - before
    emu.control.set_faults([{"kind": "hang", "seconds": 60}])
    with pytest.raises(anthropic.APITimeoutError):
        make_client(emu, timeout=0.2).messages.create(model=MODEL, max_tokens=50, messages=MESSAGES)
    started = time.monotonic()
    emu.stop()
    assert time.monotonic() - started < 3.0
    assert not server_thread.is_alive()
