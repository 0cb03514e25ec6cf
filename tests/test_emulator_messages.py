"""The emulator's Messages, count_tokens and Models endpoints, driven through the official SDK."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, Literal

import anthropic
import httpx2
import pydantic
import pytest
from conftest import SEED, TEST_KEY
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.errors import EmulatorError
from pipeline.models import MODELS

MODEL = "claude-haiku-5-5"
THINKING_MODEL = "claude-opus-5-5"
NON_THINKING_MODEL = "claude-sonnet-4-6"  # thinks only when asked
VERSION = "2026-10-21"

INVOICE = (
    "INVOICE No. 2026-0142\n"
    "Northwind Logistics Ltd, 12 Harbour Road, Leeds.\n"
    "Bill to: Contoso Retail.\n"
    "Date of issue: 12 March 2026.\n"
    "Freight charges for 14 pallets shipped from Rotterdam. Amount due: EUR 4,250.00, payment within 30 days. "
    "Please pay the invoice total to the account below.\n"
    "Questions: billing@northwind.example"
)
CONTRACT = (
    "SERVICE AGREEMENT\n"
    "This agreement is made between Contoso Retail and Fabrikam Services on 1 April 2026. "
    "The parties agree to the following terms. Fabrikam shall provide cleaning services under this contract "
    "for 24 months. Either party may terminate the agreement with 90 days written notice."
)
COMPLAINT = (
    "To whom it may concern, I am writing to complain about the blender I bought last week. "
    "It stopped working after two days and your support line never answered. "
    "I am very disappointed and unhappy with this product. I expect a full refund."
)
LONG_TEXT = (
    "The committee met on Monday to review the quarterly figures for the northern region. "
    "Sales rose by a modest margin while costs stayed flat across every site. "
    "Two new depots opened in the spring and both reached their targets early. "
    "The board asked for a fuller report on staffing before the next meeting. "
    "Everyone agreed that the winter plan needs more detail on deliveries."
)
LABEL_DESCRIPTION = (
    "What kind of document this is.\n"
    "- invoice: a bill requesting payment for goods or services\n"
    "- contract: an agreement between parties with obligations and terms\n"
    "- complaint: a customer expressing dissatisfaction with a product or service\n"
    "- other: anything else"
)
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "label": {
            "type": "string",
            "enum": ["invoice", "contract", "complaint", "other"],
            "description": LABEL_DESCRIPTION,
        },
        "summary": {"type": "string", "description": "A summary of the document in at most 12 words."},
        "total": {"type": "number", "description": "The total amount due."},
        "pages": {"type": "integer"},
        "issued_on": {"type": "string", "format": "date"},
        "urgent": {"type": "boolean"},
        "parties": {"type": "array", "items": {"type": "string"}},
        "contact": {"anyOf": [{"type": "string", "format": "email"}, {"type": "null"}]},
        "confidence": {"type": "number"},
    },
    "required": ["label", "summary", "total", "pages", "issued_on", "urgent", "parties", "contact", "confidence"],
    "additionalProperties": False,
}
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TYPE_CHECKS: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def schema_errors(value: Any, schema: dict[str, Any], path: str = "$", defs: dict[str, Any] | None = None) -> list[str]:
    """The ways `value` breaks `schema`, for the JSON Schema subset structured outputs accept."""
    defs = schema.get("$defs", defs or {})
    if "$ref" in schema:
        return schema_errors(value, defs[schema["$ref"].removeprefix("#/$defs/")], path, defs)
    if "anyOf" in schema:
        if any(not schema_errors(value, variant, path, defs) for variant in schema["anyOf"]):
            return []
        return [f"{path}: matches no anyOf variant"]
    if "enum" in schema:
        return [] if value in schema["enum"] else [f"{path}: {value!r} not in enum"]
    if "const" in schema:
        return [] if value == schema["const"] else [f"{path}: {value!r} is not the const"]
    kind = schema.get("type")
    if kind is None:
        return []
    if not TYPE_CHECKS[kind](value):
        return [f"{path}: {value!r} is not of type {kind}"]
    errors: list[str] = []
    if kind == "object":
        properties = schema.get("properties", {})
        errors += [f"{path}: missing {name}" for name in schema.get("required", []) if name not in value]
        if schema.get("additionalProperties") is False:
            errors += [f"{path}: unexpected {name}" for name in value if name not in properties]
        for name, sub in properties.items():
            if name in value:
                errors += schema_errors(value[name], sub, f"{path}.{name}", defs)
    elif kind == "array":
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path}: fewer than minItems")
        for index, item in enumerate(value):
            errors += schema_errors(item, schema.get("items", {}), f"{path}[{index}]", defs)
    elif kind == "string" and schema.get("format") == "date" and not DATE_RE.match(value):
        errors.append(f"{path}: {value!r} is not a date")
    elif kind == "string" and schema.get("format") == "email" and not EMAIL_RE.match(value):
        errors.append(f"{path}: {value!r} is not an e-mail address")
    return errors


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def structured(schema: dict[str, Any]) -> dict[str, Any]:
    return {"format": {"type": "json_schema", "schema": schema}}


def text_of(message: Any) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


class Party(pydantic.BaseModel):
    name: str
    role: Literal["issuer", "recipient"]


class Extraction(pydantic.BaseModel):
    label: Literal["invoice", "contract", "complaint", "other"] = pydantic.Field(description=LABEL_DESCRIPTION)
    summary: str = pydantic.Field(description="At most 10 words.")
    total: float
    parties: list[Party]


# -- the server ---------------------------------------------------------------------------------


def test_emulator_binds_loopback_on_a_free_port() -> None:
    """Two in-process emulators each bind 127.0.0.1 on their own free port."""
    with Emulator(EmulatorConfig(seed=SEED)) as first, Emulator(EmulatorConfig(seed=SEED)) as second:
        assert (first.host, second.host) == ("127.0.0.1", "127.0.0.1")
        assert first.port > 0
        assert second.port > 0
        assert first.port != second.port
        assert f"http://127.0.0.1:{first.port}" == first.base_url


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "example.com"])
def test_emulator_refuses_non_loopback_hosts(host: str) -> None:
    """The in-process emulator refuses to bind anything but a loopback address."""
    with pytest.raises(EmulatorError, match="loopback"):
        Emulator(EmulatorConfig(), host=host)


# -- messages.create ----------------------------------------------------------------------------


def test_create_returns_an_extractive_text_message(client: anthropic.Anthropic) -> None:
    """A plain request is answered with a well-formed message whose text comes from the document."""
    message = client.messages.create(model=MODEL, max_tokens=500, messages=user(LONG_TEXT))
    assert (message.type, message.role, message.model) == ("message", "assistant", MODEL)
    assert message.id.startswith("msg_")
    assert [block.type for block in message.content] == ["thinking", "text"]  # Haiku 5.5 thinks unasked
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert text_of(message)
    assert text_of(message) in " ".join(LONG_TEXT.split())


def test_async_create_returns_the_same_message_content(
    emulator: Emulator, make_async_client: Any, client: anthropic.Anthropic
) -> None:
    """The async client gets the same content for the same request as the sync client."""

    async def main() -> Any:
        async with make_async_client(emulator) as sdk:
            return await sdk.messages.create(model=MODEL, max_tokens=500, messages=user(LONG_TEXT))

    async_message = asyncio.run(main())
    sync_message = client.messages.create(model=MODEL, max_tokens=500, messages=user(LONG_TEXT))
    assert sync_message.content == async_message.content
    assert async_message.id != sync_message.id


@pytest.mark.parametrize(
    ("document", "expected_label"), [(INVOICE, "invoice"), (CONTRACT, "contract"), (COMPLAINT, "complaint")]
)
def test_structured_output_validates_and_labels_from_the_document(
    client: anthropic.Anthropic, document: str, expected_label: str
) -> None:
    """`output_config.format` gives JSON valid against the schema, with the label the document's words support."""
    message = client.messages.create(
        model=MODEL, max_tokens=2000, messages=user(document), output_config=structured(SCHEMA)
    )
    data = json.loads(text_of(message))
    assert schema_errors(data, SCHEMA) == []
    assert expected_label == data["label"]
    assert len(data["summary"].split()) <= 12


def test_enum_value_is_chosen_through_its_description_lines(client: anthropic.Anthropic) -> None:
    """A document that never names a label still gets it when the `- value: description` line matches its words."""
    document = (
        "Please remit the amount due for the goods delivered last month. "
        "The bill is attached and payment is expected within thirty days."
    )
    label = SCHEMA["properties"]["label"]
    described = {"type": "object", "properties": {"label": label}, "required": ["label"], "additionalProperties": False}
    bare = {**described, "properties": {"label": {"type": "string", "enum": label["enum"]}}}
    answers = [
        json.loads(
            text_of(
                client.messages.create(
                    model=MODEL, max_tokens=100, messages=user(document), output_config=structured(schema)
                )
            )
        )
        for schema in (described, bare)
    ]
    assert answers == [{"label": "invoice"}, {"label": "other"}]


@pytest.mark.parametrize("max_words", [3, 8, 20])
def test_summary_respects_the_word_limit_in_its_description(client: anthropic.Anthropic, max_words: int) -> None:
    """A string field described "at most N words" holds between 1 and N words."""
    schema = {
        "type": "object",
        "properties": {"summary": {"type": "string", "description": f"Summarise in at most {max_words} words."}},
        "required": ["summary"],
        "additionalProperties": False,
    }
    message = client.messages.create(
        model=MODEL, max_tokens=500, messages=user(LONG_TEXT), output_config=structured(schema)
    )
    words = json.loads(text_of(message))["summary"].split()
    assert 1 <= len(words) <= max_words


@pytest.mark.parametrize("max_items", [1, 2, 4])
def test_list_respects_the_item_limit_in_its_description(client: anthropic.Anthropic, max_items: int) -> None:
    """An array field described "At most N items." (docpipe's list fields) holds between 1 and N strings."""
    schema = {
        "type": "object",
        "properties": {
            "points": {"type": "array", "items": {"type": "string"}, "description": f"At most {max_items} items."}
        },
        "required": ["points"],
        "additionalProperties": False,
    }
    message = client.messages.create(
        model=MODEL, max_tokens=1000, messages=user(LONG_TEXT), output_config=structured(schema)
    )
    points = json.loads(text_of(message))["points"]
    assert 1 <= len(points) <= max_items
    assert all(isinstance(point, str) and point for point in points)


def test_parse_populates_parsed_output(client: anthropic.Anthropic) -> None:
    """`messages.parse(output_format=Model)` sends a schema the emulator accepts and parses its answer."""
    message = client.messages.parse(model=MODEL, max_tokens=2000, messages=user(INVOICE), output_format=Extraction)
    parsed = message.parsed_output
    assert isinstance(parsed, Extraction)
    assert parsed.label == "invoice"
    assert len(parsed.summary.split()) <= 10
    assert parsed.parties
    assert all(party.role in ("issuer", "recipient") for party in parsed.parties)


def test_async_parse_populates_parsed_output(emulator: Emulator, make_async_client: Any) -> None:
    """The async client's `messages.parse` gets the same parsed output as the sync one would."""

    async def main() -> Any:
        async with make_async_client(emulator) as sdk:
            return await sdk.messages.parse(
                model=MODEL, max_tokens=2000, messages=user(COMPLAINT), output_format=Extraction
            )

    parsed = asyncio.run(main()).parsed_output
    assert isinstance(parsed, Extraction)
    assert parsed.label == "complaint"


def test_same_request_and_seed_give_the_same_message_on_fresh_emulators(make_emulator: Any, make_client: Any) -> None:
    """Content and ids are a function of seed and request sequence; another seed changes the ids only."""
    answers = []
    for seed in (SEED, SEED, SEED + 1):
        sdk = make_client(make_emulator(seed=seed))
        message = sdk.messages.create(
            model=MODEL, max_tokens=2000, messages=user(INVOICE), output_config=structured(SCHEMA)
        )
        answers.append(message)
    first, again, other_seed = answers
    assert first.content == again.content
    assert first.id == again.id
    assert first.usage == again.usage
    assert first.id != other_seed.id


def test_max_tokens_truncates_with_stop_reason_max_tokens(client: anthropic.Anthropic) -> None:
    """A response longer than max_tokens is cut to a prefix of the full answer, stop_reason "max_tokens"."""
    full = client.messages.create(model=MODEL, max_tokens=1000, messages=user(LONG_TEXT))
    cut = client.messages.create(model=MODEL, max_tokens=5, messages=user(LONG_TEXT))
    assert (full.stop_reason, cut.stop_reason) == ("end_turn", "max_tokens")
    assert cut.stop_sequence is None
    assert 0 < cut.usage.output_tokens <= 5
    assert text_of(full).startswith(text_of(cut))
    assert len(text_of(cut)) < len(text_of(full))


def test_stop_sequence_ends_the_text_before_it(client: anthropic.Anthropic) -> None:
    """A stop sequence found in the answer cuts the text there and is reported back."""
    full = text_of(client.messages.create(model=MODEL, max_tokens=1000, messages=user(LONG_TEXT)))
    message = client.messages.create(
        model=MODEL, max_tokens=1000, messages=user(LONG_TEXT), stop_sequences=["never-there", "Two new"]
    )
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "Two new")
    assert full[: full.index("Two new")] == text_of(message)


def test_stop_sequence_absent_from_the_answer_changes_nothing(client: anthropic.Anthropic) -> None:
    """A stop sequence that does not occur leaves the answer whole with stop_reason "end_turn"."""
    message = client.messages.create(
        model=MODEL, max_tokens=1000, messages=user(LONG_TEXT), stop_sequences=["zebra crossing"]
    )
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)


@pytest.mark.parametrize("model", [MODEL, THINKING_MODEL])
def test_max_tokens_zero_gives_empty_content(client: anthropic.Anthropic, model: str) -> None:
    """`max_tokens=0` (cache pre-warm) answers with no content and stop_reason "max_tokens"."""
    message = client.messages.create(model=model, max_tokens=0, messages=user(LONG_TEXT))
    assert (message.content, message.stop_reason, message.usage.output_tokens) == ([], "max_tokens", 0)
    assert message.usage.input_tokens > 0


@pytest.mark.parametrize(
    ("model", "block_types"),
    [(THINKING_MODEL, ["thinking", "text"]), (MODEL, ["thinking", "text"]), (NON_THINKING_MODEL, ["text"])],
)
def test_adaptive_thinking_model_starts_with_a_thinking_block(
    client: anthropic.Anthropic, model: str, block_types: list[str]
) -> None:
    """Opus 5.5 and Haiku 5.5 think unasked: content opens with a signed thinking block, billed as output."""
    message = client.messages.create(model=model, max_tokens=1000, messages=user(LONG_TEXT))
    assert block_types == [block.type for block in message.content]
    thinking_tokens = message.usage.output_tokens_details.thinking_tokens
    if model != NON_THINKING_MODEL:
        assert message.content[0].signature
        assert 0 < thinking_tokens < message.usage.output_tokens
    else:
        assert thinking_tokens == 0


def test_usage_has_every_field_of_the_real_api(client: anthropic.Anthropic) -> None:
    """The usage object carries the real API's fields, with zero cache counters when nothing is cached."""
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=500, messages=user(LONG_TEXT))
    usage = raw.http_response.json()["usage"]
    expected_fields = {
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "cache_creation",
        "output_tokens_details",
        "server_tool_use",
        "service_tier",
        "inference_geo",
        "speed",
    }
    assert expected_fields == set(usage)
    assert usage["cache_creation"] == {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
    assert (
        usage["cache_creation_input_tokens"],
        usage["cache_read_input_tokens"],
        usage["service_tier"],
    ) == (0, 0, "standard")
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] > 0


def test_request_id_header_equals_the_message_request_id(client: anthropic.Anthropic) -> None:
    """The `request-id` header is what the SDK exposes as `message._request_id`."""
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=50, messages=user(LONG_TEXT))
    message = raw.parse()
    assert raw.headers["request-id"] == message._request_id
    assert re.fullmatch(r"req_01[0-9A-Za-z]{22}", raw.headers["request-id"])


def test_request_ids_are_unique(client: anthropic.Anthropic) -> None:
    """Every response gets its own request id, even for identical requests."""
    ids = {
        client.messages.create(model=MODEL, max_tokens=5, messages=user("Same request every time."))._request_id
        for _ in range(5)
    }
    assert len(ids) == 5


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/messages", {"model": MODEL, "max_tokens": 5, "messages": user("hello there")}, 200),
        ("POST", "/v1/messages", {"model": MODEL, "messages": user("no max_tokens")}, 400),
        ("POST", "/v1/messages/count_tokens", {"model": MODEL, "messages": user("hello")}, 200),
        ("GET", "/v1/models", None, 200),
        ("GET", "/v1/models/claude-nope-1", None, 404),
        ("GET", "/v1/messages/batches", None, 200),
        ("GET", "/v1/messages/batches/msgbatch_missing", None, 404),
        ("GET", "/v1/no-such-endpoint", None, 404),
    ],
)
def test_every_response_carries_a_request_id(
    emulator: Emulator, method: str, path: str, body: dict[str, Any] | None, status: int
) -> None:
    """Successes and errors on every route carry `request-id`; error bodies repeat it as `request_id`."""
    headers = {"x-api-key": TEST_KEY, "anthropic-version": VERSION}
    response = httpx2.request(method, emulator.base_url + path, json=body, headers=headers)
    assert status == response.status_code
    assert response.headers["request-id"].startswith("req_")
    if status >= 400:
        assert response.headers["request-id"] == response.json()["request_id"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"x-api-key": TEST_KEY}, 200),
        ({"authorization": f"Bearer {TEST_KEY}"}, 200),
        ({"x-api-key": TEST_KEY, "authorization": "Bearer sk-wrong"}, 200),
        ({"x-api-key": "sk-wrong", "authorization": f"Bearer {TEST_KEY}"}, 401),
        ({"x-api-key": "sk-wrong"}, 401),
        ({"authorization": "Bearer sk-wrong"}, 401),
        ({"authorization": f"Basic {TEST_KEY}"}, 401),
        ({}, 401),
    ],
)
def test_api_key_by_x_api_key_or_bearer(make_emulator: Any, headers: dict[str, str], status: int) -> None:
    """Raw clients may send `x-api-key` or `Authorization: Bearer`; x-api-key wins when both are sent."""
    emu = make_emulator(api_keys=frozenset({TEST_KEY}))
    response = httpx2.post(
        emu.base_url + "/v1/messages",
        json={"model": MODEL, "max_tokens": 5, "messages": user("hello there")},
        headers={"anthropic-version": VERSION, **headers},
    )
    assert status == response.status_code
    if status == 401:
        assert response.json()["error"]["type"] == "authentication_error"


def test_sdk_default_bearer_auth_is_checked_against_the_key_list(make_emulator: Any, make_client: Any) -> None:
    """SDK 2.x sends the key as `Authorization: Bearer`; a listed key is accepted, any other refused."""
    emu = make_emulator(api_keys=frozenset({TEST_KEY}))
    message = make_client(emu).messages.create(model=MODEL, max_tokens=5, messages=user("hello there"))
    assert message.id.startswith("msg_")
    with pytest.raises(anthropic.AuthenticationError):
        make_client(emu, api_key="sk-ant-someone-else").messages.create(
            model=MODEL, max_tokens=5, messages=user("hello there")
        )


# -- count_tokens -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_body",
    [
        {"messages": user(LONG_TEXT)},
        {"messages": user(INVOICE), "system": "You label business documents."},
        {"messages": user(INVOICE), "system": [{"type": "text", "text": "You label business documents."}]},
        {"messages": user(INVOICE), "output_config": structured(SCHEMA)},
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "First part."}, {"type": "text", "text": "Two."}],
                },
                {"role": "assistant", "content": "An earlier answer."},
                {"role": "user", "content": CONTRACT},
            ]
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": CONTRACT},
                        },
                        {"type": "text", "text": "Label this document."},
                    ],
                }
            ]
        },
    ],
    ids=["plain", "system-string", "system-blocks", "structured", "multi-turn", "document-block"],
)
def test_count_tokens_matches_usage_input_tokens(client: anthropic.Anthropic, request_body: dict[str, Any]) -> None:
    """count_tokens answers exactly the input_tokens the same request is billed (nothing cached)."""
    counted = client.messages.count_tokens(model=MODEL, **request_body)
    message = client.messages.create(model=MODEL, max_tokens=300, **request_body)
    assert counted.input_tokens == message.usage.input_tokens
    assert counted.input_tokens >= len(json.dumps(request_body["messages"])) // 8


def test_count_tokens_grows_with_the_prompt(client: anthropic.Anthropic) -> None:
    """About four characters make a token: 4,000 more characters add about 1,000 tokens."""
    short = client.messages.count_tokens(model=MODEL, messages=user("x"))
    long = client.messages.count_tokens(model=MODEL, messages=user("x" + "abcd" * 1000))
    assert long.input_tokens - short.input_tokens == 1000


# -- models -------------------------------------------------------------------------------------


def test_models_list_auto_paginates_over_every_model(client: anthropic.Anthropic) -> None:
    """`models.list` pages (limit 3) through every model the emulator knows, newest first, no repeats."""
    models = list(client.models.list(limit=3, lifecycle=["active", "deprecated", "retired"]))
    ids = [model.id for model in models]
    assert sorted(MODELS) == sorted(ids)
    assert len(ids) == len(set(ids))
    released = [model.created_at for model in models]
    assert sorted(released, reverse=True) == released


def test_models_retrieve_describes_the_model(client: anthropic.Anthropic) -> None:
    """`models.retrieve` gives id, display name and token limits of one model."""
    model = client.models.retrieve("claude-haiku-5-5")
    spec = MODELS["claude-haiku-5-5"]
    assert (model.type, model.id, model.display_name) == ("model", "claude-haiku-5-5", "Claude Haiku 5.5")
    assert (spec.max_input_tokens, spec.max_output_tokens) == (model.max_input_tokens, model.max_tokens)
    assert model.lifecycle == "active"


def test_models_retrieve_unknown_model_is_not_found(client: anthropic.Anthropic) -> None:
    """An unknown model id gives 404 not_found_error."""
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.models.retrieve("claude-nonexistent-9")
    assert caught.value.type == "not_found_error"


def test_large_documents_are_analysed_without_being_kept() -> None:
    """The analysis cache keeps texts up to ANALYSIS_CACHE_MAX_CHARS: a run of megabyte documents would
    otherwise hold hundreds of them (and their sentences) for the emulator's lifetime."""
    from pipeline.emulator import document

    big = "An invoice from ACME asks for payment within thirty days. " * 20_000
    before = document._analyse_cached.cache_info()
    assert document.analyse(big).sentences[0] == "An invoice from ACME asks for payment within thirty days."
    assert document.analyse(big).sentences[0] == "An invoice from ACME asks for payment within thirty days."
    after = document._analyse_cached.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)  # never looked up, never stored
    short = "A short note that fits the cache, in four words or more."
    document.analyse(short)
    document.analyse(short)
    last = document._analyse_cached.cache_info()
    assert (last.hits - after.hits, last.misses - after.misses) == (1, 1)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["a", " ", ".", "!", "?", "\n", "\n\n", "-", "1", "\t", "x. ", "\u00a0", "\r\n", "#"])))
def test_sentences_split_where_the_plain_pattern_splits_them(pieces: list[str]) -> None:
    """The split pattern leads with a look-ahead for speed; it must split exactly where the plain one does."""
    from pipeline.emulator.document import SENTENCE_SPLIT_RE

    text = "".join(pieces)
    assert SENTENCE_SPLIT_RE.split(text) == re.split(r"(?<=[.!?])\s+|\n{2,}|\n(?=[-*#\d])", text)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_ids_spell_their_number_a_base62_digit_at_a_time(number: int) -> None:
    """Ids are spelled two digits a step for speed: the same characters as one digit a step."""
    from pipeline.emulator.hashing import BASE62, ID_DIGITS, spelled_id

    rest, digits = number, []
    for _ in range(ID_DIGITS):
        rest, digit = divmod(rest, 62)
        digits.append(BASE62[digit])
    assert spelled_id("msg", number) == "msg_01" + "".join(digits)
