"""Request validation as strict as the real API's, rule by rule, through the official SDK.

Each rule's source is in docs/emulator.md, "Rules and their sources". A refused request must be a 400
`invalid_request_error` in the real error shape whose message names the offending field; the
requests next to the limit must still pass.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import anthropic
import pytest

from pipeline.emulator import Emulator
from pipeline.models import MODELS

MODEL = "claude-haiku-5-5"  # forced tools, no prefill, mid-conversation system messages
LEGACY_MODEL = "claude-haiku-4-5"  # manual extended thinking, no mid-conversation system messages
THINKING_MODEL = "claude-opus-5-5"  # always thinks
TEXT = "Please label this short note about the quarterly budget review of the northern office."
MESSAGES = [{"role": "user", "content": TEXT}]
OBJECT_SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["budget", "other"]}},
    "required": ["label"],
    "additionalProperties": False,
}
FORMAT = {"type": "json_schema", "schema": OBJECT_SCHEMA}
TOOL = {"name": "lookup", "description": "Look a word up.", "input_schema": {"type": "object", "properties": {}}}
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
IMAGE_HEADS = {
    "image/png": PNG,
    "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
    "image/gif": b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff",
    "image/webp": b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00",
}


def refused(call: Any, fragment: str) -> anthropic.BadRequestError:
    """Run `call`; it must raise a 400 invalid_request_error, in the real shape, naming `fragment`."""
    with pytest.raises(anthropic.BadRequestError) as caught:
        call()
    error = caught.value
    body = error.body
    assert isinstance(body, dict)
    assert ("error", "invalid_request_error") == (body["type"], body["error"]["type"])
    assert error.response.headers["request-id"] == body["request_id"]
    assert fragment in str(error.api_message)
    return error


def create(client: anthropic.Anthropic, **fields: Any) -> Any:
    """`messages.create` with the test's defaults; `fields` replace them, `extra` goes to `extra_body`."""
    extra = fields.pop("extra", None)
    request: dict[str, Any] = {"model": MODEL, "max_tokens": 200, "messages": MESSAGES} | fields
    return client.messages.create(**request, extra_body=extra)


def image(media_type: str, data: bytes | str) -> dict[str, Any]:
    encoded = data if isinstance(data, str) else base64.b64encode(data).decode()
    source = {"type": "base64", "media_type": media_type, "data": encoded}
    return {"role": "user", "content": [{"type": "image", "source": source}, {"type": "text", "text": TEXT}]}


def text_of(message: Any) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


# -- closed sets and ranges ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"service_tier": "priority"}, "service_tier: Input should be 'auto' or 'standard_only'"),
        ({"extra": {"service_tier": None}}, "service_tier: Input should be 'auto' or 'standard_only'"),
        ({"speed": "turbo"}, "speed: Input should be 'standard' or 'fast'"),
        ({"inference_geo": "mars"}, "inference_geo: must be one of ['global', 'us']"),
        ({"extra": {"inference_geo": 7}}, "inference_geo: Input should be a valid string"),
        ({"metadata": {"user_id": 7}}, "metadata.user_id: Input should be a valid string"),
        ({"metadata": {"user_id": "u" * 513}}, "metadata.user_id: String should have at most 512 characters"),
    ],
    ids=["tier", "tier-null", "speed", "geo", "geo-type", "user-id-type", "user-id-length"],
)
def test_closed_sets_and_lengths_are_enforced(
    client: anthropic.Anthropic, fields: dict[str, Any], fragment: str
) -> None:
    """`service_tier`, `speed`, `inference_geo` and `metadata.user_id` take only what the API types allow."""
    refused(lambda: create(client, **fields), fragment)


@pytest.mark.parametrize(
    "fields",
    [
        {"service_tier": "auto"},
        {"service_tier": "standard_only"},
        {"speed": "fast"},
        {"speed": None},
        {"inference_geo": "us"},
        {"inference_geo": "global"},
        {"metadata": {"user_id": "u" * 512}},
        {"metadata": {"user_id": None}},
    ],
)
def test_values_inside_the_sets_are_accepted(client: anthropic.Anthropic, fields: dict[str, Any]) -> None:
    """The documented values, and a user_id at the length limit, are answered."""
    assert create(client, **fields).stop_reason == "end_turn"


def test_speed_is_checked_by_count_tokens_too(client: anthropic.Anthropic) -> None:
    """count_tokens takes `speed` and applies the same closed set."""
    refused(lambda: client.messages.count_tokens(model=MODEL, messages=MESSAGES, speed="turbo"), "speed:")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("temperature", 1.5, "temperature: range: 0..1"),
        ("temperature", -0.1, "temperature: range: 0..1"),
        ("temperature", "hot", "temperature: Input should be a valid number"),
        ("top_p", 1.01, "top_p: range: 0..1"),
        ("top_p", True, "top_p: Input should be a valid number"),
        ("top_k", -1, "top_k: Input should be greater than or equal to 0"),
        ("top_k", 2.5, "top_k: Input should be a valid integer"),
    ],
)
def test_sampling_parameters_out_of_range_are_refused_under_2023_06_01(
    emulator: Emulator, make_client: Any, name: str, value: Any, fragment: str
) -> None:
    """Where the sampling parameters are accepted at all, they must be in range."""
    sdk = make_client(emulator, default_headers={"anthropic-version": "2023-06-01"})
    refused(lambda: create(sdk, extra={name: value}), fragment)


@pytest.mark.parametrize(("name", "value"), [("temperature", 0), ("temperature", 1), ("top_p", 0.0), ("top_k", 0)])
def test_sampling_parameters_at_their_bounds_are_accepted(
    emulator: Emulator, make_client: Any, name: str, value: float
) -> None:
    """The bounds themselves are in range."""
    sdk = make_client(emulator, default_headers={"anthropic-version": "2023-06-01"})
    assert create(sdk, extra={name: value}).stop_reason == "end_turn"


@pytest.mark.parametrize(
    ("thinking", "max_tokens", "fragment"),
    [
        ({"type": "sometimes"}, 4000, "thinking.type: Input should be"),
        ({"type": "enabled"}, 4000, "thinking.enabled.budget_tokens: Field required"),
        (
            {"type": "enabled", "budget_tokens": 512},
            4000,
            "budget_tokens: Input should be greater than or equal to 1024",
        ),
        ({"type": "enabled", "budget_tokens": "2000"}, 4000, "budget_tokens: Input should be a valid integer"),
        ({"type": "enabled", "budget_tokens": 4000}, 4000, "max_tokens must be greater than thinking.budget_tokens"),
        ({"type": "adaptive", "display": "full"}, 4000, "thinking.adaptive.display: Input should be"),
        ({"type": "disabled", "budget_tokens": 2000}, 4000, "thinking.disabled.budget_tokens: Extra inputs"),
    ],
    ids=["type", "no-budget", "small-budget", "budget-type", "budget-over-max", "display", "extra-field"],
)
def test_thinking_objects_have_the_documented_shape(
    client: anthropic.Anthropic, thinking: dict[str, Any], max_tokens: int, fragment: str
) -> None:
    """A known thinking variant with its own fields only, and a budget of 1024 up to below max_tokens."""
    refused(lambda: create(client, model=LEGACY_MODEL, max_tokens=max_tokens, thinking=thinking), fragment)


def test_a_budget_just_below_max_tokens_is_accepted(client: anthropic.Anthropic) -> None:
    """`budget_tokens` 1024 with `max_tokens` 1025 is the smallest valid manual-thinking request."""
    message = create(client, model=LEGACY_MODEL, max_tokens=1025, thinking={"type": "enabled", "budget_tokens": 1024})
    assert "thinking" == message.content[0].type


# -- max_tokens: 0 is valid only alone -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"stream": True}, "with stream: true"),
        ({"output_config": {"format": FORMAT}}, "with output_config.format"),
        ({"extra": {"output_format": FORMAT}}, "with output_config.format"),
        (
            {"model": LEGACY_MODEL, "thinking": {"type": "enabled", "budget_tokens": 1024}},
            "with thinking.type 'enabled'",
        ),
        ({"model": THINKING_MODEL, "thinking": {"type": "adaptive"}}, "with thinking.type 'adaptive'"),
        ({"tools": [TOOL], "tool_choice": {"type": "any"}}, "with a forced tool_choice ('any')"),
        ({"tools": [TOOL], "tool_choice": {"type": "tool", "name": "lookup"}}, "with a forced tool_choice ('tool')"),
    ],
    ids=["stream", "format", "legacy-format", "thinking-enabled", "thinking-adaptive", "tool-any", "tool-named"],
)
def test_max_tokens_zero_is_refused_with_anything_that_generates(
    client: anthropic.Anthropic, fields: dict[str, Any], fragment: str
) -> None:
    """A cache pre-warm cannot stream, format, think or be forced to call a tool."""
    refused(lambda: create(client, max_tokens=0, **fields), f"max_tokens: 0 (cache pre-warm) cannot be used {fragment}")


@pytest.mark.parametrize("fields", [{}, {"tools": [TOOL], "tool_choice": {"type": "auto"}}, {"stream": False}])
def test_max_tokens_zero_alone_pre_warms(client: anthropic.Anthropic, fields: dict[str, Any]) -> None:
    """Without them, `max_tokens: 0` answers with no content."""
    assert [] == create(client, max_tokens=0, **fields).content


def test_max_tokens_zero_inside_a_batch_is_an_errored_result(make_emulator: Any, make_client: Any) -> None:
    """In a Message Batch a pre-warm is an errored result; the other requests succeed."""
    sdk = make_client(make_emulator(batch_processing_s=0.0))
    requests = [
        {"custom_id": "warm", "params": {"model": MODEL, "max_tokens": 0, "messages": MESSAGES}},
        {"custom_id": "real", "params": {"model": MODEL, "max_tokens": 100, "messages": MESSAGES}},
    ]
    created = sdk.messages.batches.create(requests=requests)
    assert "ended" == sdk.messages.batches.retrieve(created.id).processing_status
    results = {line.custom_id: line.result for line in sdk.messages.batches.results(created.id)}
    assert ("errored", "succeeded") == (results["warm"].type, results["real"].type)
    error = results["warm"].error.error
    assert ("invalid_request_error", True) == (error.type, "inside a Message Batch" in error.message)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"service_tier": "priority"}, "service_tier: Input should be 'auto' or 'standard_only'"),
        ({"tools": [{"name": "lookup"}]}, "tools.0.custom.input_schema: Field required"),
        ({"system": [{"type": "text", "text": " "}]}, "system.0.text: text content blocks must contain non-whitespace"),
        ({"output_format": FORMAT}, None),
    ],
    ids=["service-tier", "tool-schema", "blank-system", "output-format-accepted"],
)
def test_batch_params_are_held_to_the_same_rules(
    make_emulator: Any, make_client: Any, extra: dict[str, Any], fragment: str | None
) -> None:
    """Each request of a batch is checked when processed: a bad one is errored, a good one succeeds."""
    sdk = make_client(make_emulator(batch_processing_s=0.0))
    params = {"model": MODEL, "max_tokens": 100, "messages": MESSAGES} | extra
    created = sdk.messages.batches.create(requests=[{"custom_id": "only", "params": params}])
    assert "ended" == sdk.messages.batches.retrieve(created.id).processing_status
    (line,) = list(sdk.messages.batches.results(created.id))
    if fragment is None:
        assert json.loads(text_of(line.result.message))["label"] in ("budget", "other")
    else:
        assert ("errored", "invalid_request_error") == (line.result.type, line.result.error.error.type)
        assert fragment in line.result.error.error.message


# -- the deprecated top-level output_format --------------------------------------------------------------


def test_output_format_is_treated_as_output_config_format(client: anthropic.Anthropic) -> None:
    """The pre-GA field still works: the answer is JSON of the schema, billed as with output_config."""
    legacy = create(client, extra={"output_format": FORMAT})
    current = create(client, output_config={"format": FORMAT})
    assert json.loads(text_of(legacy))["label"] in ("budget", "other")
    assert (text_of(current), current.usage.input_tokens) == (text_of(legacy), legacy.usage.input_tokens)
    counted = client.messages.count_tokens(model=MODEL, messages=MESSAGES, extra_body={"output_format": FORMAT})
    assert current.usage.input_tokens == counted.input_tokens


def test_output_format_equal_to_output_config_format_is_accepted(client: anthropic.Anthropic) -> None:
    """Giving the same format twice is not a conflict."""
    message = create(client, output_config={"format": FORMAT, "effort": "low"}, extra={"output_format": FORMAT})
    assert json.loads(text_of(message))["label"] in ("budget", "other")


def test_output_format_different_from_output_config_format_is_refused(client: anthropic.Anthropic) -> None:
    """Two different formats are ambiguous: 400 naming output_format."""
    other = {"type": "json_schema", "schema": OBJECT_SCHEMA | {"required": []}}
    refused(lambda: create(client, output_config={"format": FORMAT}, extra={"output_format": other}), "output_format:")


def test_output_format_schema_is_checked_like_output_config(client: anthropic.Anthropic) -> None:
    """A schema outside the supported subset is refused through either field."""
    open_schema = {"type": "json_schema", "schema": {"type": "object", "properties": {}}}
    refused(lambda: create(client, extra={"output_format": open_schema}), "additionalProperties")


# -- content ---------------------------------------------------------------------------------------------

TOOL_TURNS = [
    {"role": "user", "content": TEXT},
    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}]},
]


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"system": [{"type": "text", "text": ""}]}, "system.0.text: text content blocks must be non-empty"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "", "cache_control": {"type": "ephemeral"}}]}
                ]
            },
            "messages.0.content.0.text: text content blocks must be non-empty",
        ),
        (
            {
                "tools": [TOOL],
                "messages": [
                    *TOOL_TURNS,
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": ""}]}
                        ],
                    },
                ],
            },
            "messages.2.content.0.content.0.text: text content blocks must be non-empty",
        ),
        (
            {"system": [{"type": "text", "text": " \n\t"}]},
            "system.0.text: text content blocks must contain non-whitespace",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "   "}]}]},
            "messages.0.content.0.text: text content blocks must contain non-whitespace text",
        ),
        ({"messages": [{"role": "user", "content": "  \n "}]}, "messages.0.content: text content blocks must contain"),
        (
            {"messages": [MESSAGES[0], {"role": "assistant", "content": []}, MESSAGES[0]]},
            "messages.1: all messages must have non-empty content except for the optional final assistant message",
        ),
    ],
    ids=[
        "system-block",
        "cached-message-block",
        "tool-result-block",
        "blank-system-block",
        "blank-message-block",
        "blank-string",
        "empty-assistant-turn",
    ],
)
def test_empty_text_blocks_are_refused_anywhere(
    client: anthropic.Anthropic, fields: dict[str, Any], fragment: str
) -> None:
    """An empty or blank text block is a 400 in the system prompt, in a message, inside a tool result."""
    refused(lambda: create(client, **fields), fragment)


def test_only_a_final_assistant_turn_may_be_empty(client: anthropic.Anthropic) -> None:
    """An empty prefill is the one empty turn the API takes (on a model that takes prefill)."""
    messages = [MESSAGES[0], {"role": "assistant", "content": ""}]
    assert create(client, model=LEGACY_MODEL, messages=messages).stop_reason == "end_turn"


@pytest.mark.parametrize("media_type", sorted(IMAGE_HEADS))
def test_images_of_the_four_formats_are_accepted(client: anthropic.Anthropic, media_type: str) -> None:
    """JPEG, PNG, GIF and WebP images whose bytes match their media type are answered."""
    assert create(client, messages=[image(media_type, IMAGE_HEADS[media_type])]).stop_reason == "end_turn"


@pytest.mark.parametrize(
    ("media_type", "data", "fragment"),
    [
        ("image/bmp", PNG, "image.source.base64.media_type: Input should be 'image/jpeg', 'image/png'"),
        ("image/png", "not base64 at all!", "image.source.base64.data: The image data is not valid base64"),
        (
            "image/png",
            b"plain text, no image",
            "image.source.base64.data: Image does not match the provided media type",
        ),
        ("image/jpeg", PNG, "the image/jpeg media type, but the image appears to be a image/png image"),
        ("image/png", "A" * (5 * 1024 * 1024 + 4), "image exceeds 5 MB maximum: 5242884 bytes > 5242880 bytes"),
    ],
    ids=["media-type", "bad-base64", "not-an-image", "wrong-format", "too-large"],
)
def test_bad_images_are_refused(client: anthropic.Anthropic, media_type: str, data: bytes | str, fragment: str) -> None:
    """Unsupported media types, undecodable data, mislabelled bytes and images over 5 MB are 400s."""
    error = refused(lambda: create(client, messages=[image(media_type, data)]), fragment)
    assert str(error.api_message).startswith("messages.0.content.0.")


def png_header(width: int, height: int) -> bytes:
    """The first bytes of a PNG of this size: all the emulator reads of an image."""
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" + width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x06"


def many_images(count: int, width: int) -> list[dict[str, Any]]:
    blocks = [image("image/png", png_header(width, 10))["content"][0] for _ in range(count)]
    return [{"role": "user", "content": [*blocks, {"type": "text", "text": TEXT}]}]


@pytest.mark.parametrize(("width", "height"), [(8001, 10), (10, 8001)])
def test_an_image_over_8000_pixels_is_refused(client: anthropic.Anthropic, width: int, height: int) -> None:
    """Either side over 8000 pixels is a 400 naming the image's data."""
    refused(
        lambda: create(client, messages=[image("image/png", png_header(width, height))]),
        "messages.0.content.0.image.source.base64.data: At least one of the image dimensions exceed max allowed "
        "size: 8000 pixels",
    )


@pytest.mark.parametrize(("count", "width"), [(1, 8000), (20, 2001), (21, 2000)])
def test_images_within_the_pixel_limits_are_accepted(client: anthropic.Anthropic, count: int, width: int) -> None:
    """8000 pixels for up to 20 images; 2000 pixels once there are more."""
    assert create(client, messages=many_images(count, width)).stop_reason == "end_turn"


def test_more_than_20_images_must_each_be_at_most_2000_pixels(client: anthropic.Anthropic) -> None:
    """With 21 images in the request, a 2001-pixel one is refused."""
    refused(
        lambda: create(client, messages=many_images(21, 2001)),
        "image.source.base64.data: At least one of the image dimensions exceed max allowed size for many-image "
        "requests: 2000 pixels",
    )


def thinking_turns(client: anthropic.Anthropic) -> list[dict[str, Any]]:
    """A conversation whose assistant turn is an answer of the always-thinking model, sent back as it came."""
    answer = create(client, model=THINKING_MODEL)
    blocks = [block.model_dump(exclude={"citations"}, exclude_none=True) for block in answer.content]
    return [MESSAGES[0], {"role": "assistant", "content": blocks}, {"role": "user", "content": "And in one word?"}]


def test_thinking_blocks_sent_back_unchanged_are_accepted(client: anthropic.Anthropic) -> None:
    """The signature the emulator issued verifies when the block comes back untouched."""
    turns = thinking_turns(client)
    assert "thinking" == turns[1]["content"][0]["type"]
    assert create(client, model=THINKING_MODEL, messages=turns).stop_reason == "end_turn"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"signature": "forged"}, "messages.1.content.0: Invalid `signature` in `thinking` block"),
        ({"thinking": "A different thought."}, "messages.1.content.0: Invalid `signature` in `thinking` block"),
        ({"signature": None}, "messages.1.content.0.signature: Field required"),
        (
            {"cache_control": {"type": "ephemeral"}},
            "messages.1.content.0.cache_control: Extra inputs are not permitted",
        ),
    ],
    ids=["forged-signature", "edited-text", "no-signature", "cache-control"],
)
def test_thinking_blocks_must_come_back_as_issued(
    client: anthropic.Anthropic, change: dict[str, Any], fragment: str
) -> None:
    """A forged, missing or stale signature, or a cache marker on the block, is a 400."""
    turns = thinking_turns(client)
    block = {key: value for key, value in (turns[1]["content"][0] | change).items() if value is not None}
    turns[1]["content"][0] = block
    refused(lambda: create(client, model=THINKING_MODEL, messages=turns), fragment)


def test_a_signature_from_another_seed_is_refused(
    client: anthropic.Anthropic, make_emulator: Any, make_client: Any
) -> None:
    """Signatures are bound to the emulator that issued them, as the real API's are to their deployment."""
    turns = thinking_turns(client)
    other = make_client(make_emulator(seed=99))
    refused(lambda: create(other, model=THINKING_MODEL, messages=turns), "Invalid `signature` in `thinking` block")


def test_redacted_thinking_the_emulator_never_issued_is_refused(client: anthropic.Anthropic) -> None:
    """The emulator issues no redacted_thinking blocks, so none sent back can be genuine."""
    turns = [
        MESSAGES[0],
        {
            "role": "assistant",
            "content": [{"type": "redacted_thinking", "data": "EmwKAh"}, {"type": "text", "text": "Budget."}],
        },
        {"role": "user", "content": "Why?"},
    ]
    refused(lambda: create(client, model=THINKING_MODEL, messages=turns), "Invalid `data` in `redacted_thinking` block")


# -- cache_control ---------------------------------------------------------------------------------------

FIVE_MIN = {"type": "ephemeral"}
ONE_HOUR = {"type": "ephemeral", "ttl": "1h"}


def cached_text(text: str, control: dict[str, Any]) -> dict[str, Any]:
    return {"type": "text", "text": text, "cache_control": control}


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        (
            {
                "system": [cached_text("Rules one.", FIVE_MIN)],
                "messages": [{"role": "user", "content": [cached_text(TEXT, ONE_HOUR)]}],
            },
            "messages.0.content.0.cache_control.ttl: a 1h cache_control cannot come after the 5m one on system.0",
        ),
        (
            {"tools": [TOOL | {"cache_control": FIVE_MIN}], "system": [cached_text("Rules one.", ONE_HOUR)]},
            "system.0.cache_control.ttl: a 1h cache_control cannot come after the 5m one on tools.0",
        ),
        (
            {"system": [cached_text("Rules one.", FIVE_MIN)], "cache_control": ONE_HOUR},
            "cache_control.ttl: a 1h cache_control cannot come after the 5m one on system.0",
        ),
    ],
    ids=["message-after-system", "system-after-tool", "automatic-after-system"],
)
def test_one_hour_entries_after_five_minute_ones_are_refused(
    client: anthropic.Anthropic, fields: dict[str, Any], fragment: str
) -> None:
    """In render order (tools, system, messages) a 1h breakpoint cannot follow a 5m one."""
    refused(lambda: create(client, **fields), fragment)


def test_one_hour_entries_before_five_minute_ones_are_accepted(client: anthropic.Anthropic) -> None:
    """1h then 5m, automatic caching included, is the documented way to mix TTLs."""
    fields = {"tools": [TOOL | {"cache_control": ONE_HOUR}], "system": [cached_text("Rules one.", ONE_HOUR)]}
    assert create(client, cache_control=FIVE_MIN, **fields).stop_reason == "end_turn"


@pytest.mark.parametrize(("automatic", "explicit"), [(ONE_HOUR, FIVE_MIN), (FIVE_MIN, ONE_HOUR)])
def test_automatic_caching_whose_ttl_contradicts_the_last_block_is_refused(
    client: anthropic.Anthropic, automatic: dict[str, Any], explicit: dict[str, Any]
) -> None:
    """The automatic breakpoint lands on the last block; a marker there with another TTL is a 400."""
    messages = [{"role": "user", "content": [cached_text(TEXT, explicit)]}]
    refused(
        lambda: create(client, messages=messages, cache_control=automatic),
        "cache_control.ttl: automatic caching uses ttl",
    )


def test_automatic_caching_with_the_same_ttl_as_the_last_block_is_accepted(client: anthropic.Anthropic) -> None:
    """An explicit marker on the last block with the same TTL makes automatic caching a no-op."""
    messages = [{"role": "user", "content": [cached_text(TEXT, ONE_HOUR)]}]
    assert create(client, messages=messages, cache_control=ONE_HOUR).stop_reason == "end_turn"


@pytest.mark.parametrize(("explicit", "accepted"), [(3, True), (4, False)])
def test_automatic_caching_takes_one_of_the_four_slots(
    client: anthropic.Anthropic, explicit: int, accepted: bool
) -> None:
    """Top-level cache_control plus three explicit markers is fine; plus four is a fifth breakpoint."""
    system = [cached_text(f"Rule number {n}.", FIVE_MIN) for n in range(explicit)]
    if accepted:
        assert create(client, system=system, cache_control=FIVE_MIN).stop_reason == "end_turn"
    else:
        refused(
            lambda: create(client, system=system, cache_control=FIVE_MIN),
            "A maximum of 4 blocks with cache_control may be provided. Found 5.",
        )


# -- tools -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tools", "fragment"),
    [
        ([{"name": "lookup"}], "tools.0.custom.input_schema: Field required"),
        (
            [{"name": "lookup", "input_schema": {"type": "string"}}],
            "tools.0.custom.input_schema.type: Input should be 'object'",
        ),
        ([{"input_schema": {"type": "object"}}], "tools.0.custom.name: Field required"),
        ([TOOL | {"name": "has space"}], "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'"),
        ([TOOL | {"name": ""}], "tools.0.custom.name: String should match pattern"),
        ([TOOL | {"name": "dotted.name"}], "tools.0.custom.name: String should match pattern"),
        ([TOOL | {"name": "n" * 129}], "tools.0.custom.name: String should match pattern"),
        ([TOOL, TOOL | {"description": "Again."}], "tools: Tool names must be unique."),
    ],
    ids=["no-schema", "schema-not-object", "no-name", "space", "empty", "dot", "too-long", "duplicate"],
)
def test_bad_tool_definitions_are_refused(
    client: anthropic.Anthropic, tools: list[dict[str, Any]], fragment: str
) -> None:
    """A custom tool needs an object input_schema and a unique name matching the documented pattern."""
    refused(lambda: create(client, tools=tools), fragment)


def test_tool_names_up_to_128_characters_are_accepted(client: anthropic.Anthropic) -> None:
    """The longest name the pattern allows, with dashes and underscores, is fine."""
    name = "a-b_" + "c" * 124
    assert create(client, tools=[TOOL | {"name": name}], tool_choice={"type": "tool", "name": name}).id


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"tools": [TOOL], "tool_choice": {"type": "tool", "name": "nope"}}, "Tool 'nope' not found in provided tools"),
        ({"tool_choice": {"type": "tool", "name": "lookup"}}, "Tool 'lookup' not found in provided tools"),
        ({"tools": [TOOL], "tool_choice": {"type": "tool"}}, "tool_choice.tool.name: Field required"),
        ({"tool_choice": {"type": "any"}}, "tool_choice.any may only be specified while providing tools"),
        (
            {"tools": [TOOL], "tool_choice": {"type": "auto", "disable_parallel_tool_use": "yes"}},
            "tool_choice.auto.disable_parallel_tool_use: Input should be a valid boolean",
        ),
        (
            {"tools": [TOOL], "tool_choice": {"type": "none", "disable_parallel_tool_use": True}},
            "tool_choice.none.disable_parallel_tool_use: Extra inputs are not permitted",
        ),
    ],
    ids=["unknown-tool", "tool-without-tools", "tool-without-name", "any-without-tools", "parallel-type", "none-extra"],
)
def test_tool_choice_must_agree_with_the_tools(
    client: anthropic.Anthropic, fields: dict[str, Any], fragment: str
) -> None:
    """A named tool must exist, `any` needs tools, and each variant has only its own typed fields."""
    refused(lambda: create(client, **fields), fragment)


# -- mid-conversation system messages --------------------------------------------------------------------

SYSTEM_NOTE = {"role": "system", "content": "From now on, answer in one word."}


MID_CONVERSATION_SYSTEM = {
    "claude-opus-4-8": True,
    "claude-opus-5": True,
    "claude-opus-5-5": True,
    "claude-fable-5": True,
    "claude-fable-5-1": True,
    "claude-fable-5-2": True,
    "claude-sonnet-5-5": True,
    "claude-haiku-5-5": True,
    "claude-sonnet-5": False,
    "claude-sonnet-4-6": False,
    "claude-haiku-4-5": False,
}


@pytest.mark.parametrize(("model", "supported"), sorted(MID_CONVERSATION_SYSTEM.items()))
def test_the_models_with_mid_conversation_system_messages_are_the_documented_ones(model: str, supported: bool) -> None:
    """Opus 4.8 and later Opus and Fable models, Sonnet 5.5 and Haiku 5.5; not Sonnet 5, Sonnet 4.6, Haiku 4.5."""
    assert supported is MODELS[model].mid_conversation_system


@pytest.mark.parametrize("model", sorted(MODELS))
def test_mid_conversation_system_messages_follow_the_model_table(client: anthropic.Anthropic, model: str) -> None:
    """A system message after a user turn is answered where the model supports it, else refused."""
    messages = [MESSAGES[0], SYSTEM_NOTE]
    if MODELS[model].mid_conversation_system:
        assert create(client, model=model, messages=messages).stop_reason == "end_turn"
    else:
        refused(lambda: create(client, model=model, messages=messages), "messages.1: role 'system' is not supported")


@pytest.mark.parametrize(
    "messages",
    [
        [MESSAGES[0], SYSTEM_NOTE, {"role": "assistant", "content": "Understood."}, {"role": "user", "content": TEXT}],
        [MESSAGES[0], SYSTEM_NOTE, SYSTEM_NOTE | {"content": [{"type": "text", "text": "Be brief."}]}],
    ],
    ids=["before-assistant", "run-at-the-end"],
)
def test_system_messages_in_their_documented_places_are_accepted(
    client: anthropic.Anthropic, messages: list[dict[str, Any]]
) -> None:
    """After a user turn, ending the list or followed by an assistant turn (a run counts as one)."""
    assert create(client, messages=messages).stop_reason == "end_turn"


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        ([SYSTEM_NOTE, MESSAGES[0]], "messages.0: use the top-level 'system' parameter"),
        ([MESSAGES[0], SYSTEM_NOTE, MESSAGES[0]], "messages.1: role 'system' must precede an 'assistant' message"),
        (
            [MESSAGES[0], {"role": "assistant", "content": "Hi."}, SYSTEM_NOTE],
            "messages.2: role 'system' must follow a 'user' message",
        ),
        ([MESSAGES[0], SYSTEM_NOTE | {"content": "   "}], "messages.1: system text blocks must contain non-whitespace"),
        ([MESSAGES[0], SYSTEM_NOTE | {"content": []}], "messages.1: system content must contain at least one block"),
        (
            [MESSAGES[0], SYSTEM_NOTE | {"content": image("image/png", PNG)["content"]}],
            "messages.1: role 'system' supports text blocks only",
        ),
    ],
    ids=["first", "before-user", "after-assistant", "blank", "empty", "image"],
)
def test_misplaced_or_empty_system_messages_are_refused(
    client: anthropic.Anthropic, messages: list[dict[str, Any]], fragment: str
) -> None:
    """Never first, right after a user turn, before an assistant turn or at the end, and never blank."""
    refused(lambda: create(client, messages=messages), fragment)


# -- count_tokens applies the same prompt rules ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"system": [{"type": "text", "text": ""}]}, "system.0.text: text content blocks must be non-empty"),
        ({"tool_choice": {"type": "any"}}, "tool_choice.any may only be specified while providing tools"),
        ({"tools": [{"name": "lookup"}]}, "tools.0.custom.input_schema: Field required"),
        (
            {"system": [cached_text("Rules one.", FIVE_MIN)], "cache_control": ONE_HOUR},
            "cache_control.ttl: a 1h cache_control cannot come after",
        ),
        ({"model": LEGACY_MODEL, "messages": [MESSAGES[0], SYSTEM_NOTE]}, "role 'system' is not supported"),
        ({"messages": [image("image/gif", PNG)]}, "but the image appears to be a image/png image"),
    ],
    ids=["empty-system-block", "any-without-tools", "no-schema", "ttl-order", "system-role", "image"],
)
def test_count_tokens_refuses_what_messages_refuses(
    client: anthropic.Anthropic, fields: dict[str, Any], fragment: str
) -> None:
    """count_tokens takes the same prompt and checks it the same way."""
    request: dict[str, Any] = {"model": MODEL, "messages": MESSAGES} | fields
    refused(lambda: client.messages.count_tokens(**request), fragment)


def test_count_tokens_accepts_a_mid_conversation_system_message(client: anthropic.Anthropic) -> None:
    """On a model that supports it, the system message is counted like any other turn."""
    alone = client.messages.count_tokens(model=MODEL, messages=MESSAGES).input_tokens
    with_note = client.messages.count_tokens(model=MODEL, messages=[MESSAGES[0], SYSTEM_NOTE]).input_tokens
    assert with_note > alone
