"""Structured-output schemas through the SDK: what the API supports is answered, the rest is a 400 naming the keyword.

The rules are the docs' "JSON Schema limitations" and "Schema complexity limits"
(https://platform.claude.com/docs/en/build-with-claude/structured-outputs); `pipeline/emulator/schemas.py`
implements them. Also here: list limits on `GET /v1/models`, what a body that is not JSON gets, and the
crash guard that turns an unexpected exception into the API's JSON 500.
"""

from __future__ import annotations

import json
import re
from typing import Any

import anthropic
import httpx2
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.emulator import Emulator, structured

MODEL = "claude-haiku-4-5"
DOCUMENT = "Invoice INV-7 from ACME, dated 2026-03-01, for 120.50 EUR. Contact billing@acme.example."
WHERE = "output_config.format.schema"


class Node(pydantic.BaseModel):
    """A self-referencing model: its JSON schema is recursive (`children.items` refers back to `Node`)."""

    name: str
    children: list[Node]


class Invoice(pydantic.BaseModel):
    number: str
    due: str | None  # pydantic spells a nullable field `anyOf: [{type: string}, {type: null}]`


def _create(client: anthropic.Anthropic, schema: dict[str, Any], *, max_tokens: int = 400) -> Any:
    return client.messages.create(
        model=MODEL,
        max_tokens=max_tokens,
        messages=[{"role": "user", "content": DOCUMENT}],
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )


def _closed(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
        **extra,
    }


def _refused(client: anthropic.Anthropic, schema: dict[str, Any]) -> str:
    """The message of the 400 `invalid_request_error` the schema gets."""
    with pytest.raises(anthropic.BadRequestError) as excinfo:
        _create(client, schema)
    error = excinfo.value.body["error"]  # type: ignore[index]
    assert "invalid_request_error" == error["type"]
    assert excinfo.value.response.headers["request-id"].startswith("req_")
    return str(error["message"])


# -- supported: answered with JSON that fits ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["string", "integer", "number", "boolean"])
def test_a_nullable_type_array_is_answered_with_a_value_of_one_of_its_types(
    client: anthropic.Anthropic, kind: str
) -> None:
    """`"type": [kind, "null"]` (a type array: a union the docs count among union-typed parameters) gets a 200."""
    python_types: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "number": (int, float)}
    message = _create(client, _closed({"value": {"type": [kind, "null"]}}))
    value = json.loads(message.content[0].text)["value"]
    assert value is None or isinstance(value, python_types.get(kind, (bool,)))
    assert not isinstance(value, bool) or kind == "boolean"


def test_a_nullable_object_in_a_type_array_is_checked_as_an_object(client: anthropic.Anthropic) -> None:
    """`"type": ["object", "null"]` still needs `additionalProperties: false`, and is answered with an object."""
    inner = {"type": ["object", "null"], "properties": {"city": {"type": "string"}}, "required": ["city"]}
    message = _refused(client, _closed({"address": inner}))
    assert f"{WHERE}.properties.address: For 'object' type, 'additionalProperties' must be explicitly set" in message
    answer = json.loads(_create(client, _closed({"address": {**inner, "additionalProperties": False}})).content[0].text)
    assert isinstance(answer["address"]["city"], str)


@pytest.mark.parametrize("kind", [[], ["string", "string"], ["string", "text"], [1]])
def test_a_type_array_of_no_types_or_unknown_ones_is_refused(client: anthropic.Anthropic, kind: list[Any]) -> None:
    """A type array must list distinct known types: otherwise a 400 naming `type`."""
    assert f"{WHERE}.properties.value.type: Input should be one of" in _refused(
        client, _closed({"value": {"type": kind}})
    )


def test_parse_with_an_optional_field_gets_a_parsed_answer(client: anthropic.Anthropic) -> None:
    """`messages.parse(output_format=Model)` with an `X | None` field (an `anyOf` with null) parses."""
    message = client.messages.parse(
        model=MODEL, max_tokens=400, messages=[{"role": "user", "content": DOCUMENT}], output_format=Invoice
    )
    assert isinstance(message.parsed_output, Invoice)


def test_definitions_are_a_place_for_refs_as_defs_are(client: anthropic.Anthropic) -> None:
    """`$ref` into `definitions` resolves as into `$defs` (docs: "`$ref`, `$def`, and `definitions`")."""
    schema = _closed(
        {"total": {"$ref": "#/definitions/Amount"}, "tax": {"$ref": "#/$defs/Amount"}},
        definitions={"Amount": {"type": "number"}},
        **{"$defs": {"Amount": {"type": "string", "format": "date"}}},
    )
    answer = json.loads(_create(client, schema).content[0].text)
    assert isinstance(answer["total"], int | float) and isinstance(answer["tax"], str)


# -- not supported: a 400 naming the keyword ----------------------------------------------------------


def test_parse_with_a_self_referencing_model_is_refused_as_recursive(client: anthropic.Anthropic) -> None:
    """The SDK's own `messages.parse(output_format=Node)` sends a recursive schema: a 400 naming `$ref`."""
    with pytest.raises(anthropic.BadRequestError) as excinfo:
        client.messages.parse(
            model=MODEL, max_tokens=400, messages=[{"role": "user", "content": DOCUMENT}], output_format=Node
        )
    message = excinfo.value.body["error"]["message"]  # type: ignore[index]
    assert f"{WHERE}.$defs.Node.$ref: recursive schemas are not supported" in message
    assert "#/$defs/Node -> #/$defs/Node" in message


def test_mutually_recursive_definitions_are_refused(client: anthropic.Anthropic) -> None:
    """A cycle through two definitions is recursive too, and the message shows the cycle."""
    schema = _closed(
        {"a": {"$ref": "#/$defs/A"}},
        **{
            "$defs": {
                "A": _closed({"b": {"anyOf": [{"$ref": "#/$defs/B"}, {"type": "null"}]}}),
                "B": _closed({"items": {"type": "array", "items": {"$ref": "#/$defs/A"}}}),
            }
        },
    )
    assert "recursive schemas are not supported ($ref cycle: #/$defs/A -> #/$defs/B -> #/$defs/A)" in _refused(
        client, schema
    )


def test_a_ref_to_the_root_is_refused_as_recursive(client: anthropic.Anthropic) -> None:
    """`{"$ref": "#"}` refers to the whole schema: recursive."""
    message = _refused(client, _closed({"child": {"$ref": "#"}}))
    assert f"{WHERE}.properties.child.$ref: recursive schemas are not supported" in message


def test_shared_but_not_recursive_definitions_are_answered(client: anthropic.Anthropic) -> None:
    """A definition used twice, or one definition using another, is not recursion."""
    schema = _closed(
        {"billing": {"$ref": "#/$defs/Party"}, "shipping": {"$ref": "#/$defs/Party"}},
        **{"$defs": {"Party": _closed({"name": {"$ref": "#/$defs/Name"}}), "Name": {"type": "string"}}},
    )
    answer = json.loads(_create(client, schema).content[0].text)
    assert isinstance(answer["billing"]["name"], str) and isinstance(answer["shipping"]["name"], str)


@pytest.mark.parametrize("value", [{"code": 1}, ["a", "b"]])
def test_an_enum_with_a_complex_value_is_refused(client: anthropic.Anthropic, value: Any) -> None:
    """Enum values must be strings, numbers, booleans or null (docs: "Complex types within enums")."""
    message = _refused(client, _closed({"status": {"enum": ["open", value]}}))
    assert f"{WHERE}.properties.status.enum.1: complex types within enums are not supported" in message


def test_an_enum_of_mixed_primitives_is_answered_with_one_of_them(client: anthropic.Anthropic) -> None:
    """Strings, numbers, booleans and null may be mixed in one enum."""
    values = ["open", 3, 2.5, True, None]
    answer = json.loads(_create(client, _closed({"status": {"enum": values}})).content[0].text)
    assert answer["status"] in values


def test_an_external_ref_is_refused(client: anthropic.Anthropic) -> None:
    """`$ref` to another document is not supported: a 400 naming `$ref`."""
    message = _refused(client, _closed({"x": {"$ref": "https://example.com/schema.json"}}))
    assert f"{WHERE}.properties.x.$ref: external references are not supported" in message


def test_all_of_with_a_ref_is_refused(client: anthropic.Anthropic) -> None:
    """Docs: "`anyOf` and `allOf` (with limitations - `allOf` with `$ref` not supported)"."""
    schema = _closed({"x": {"allOf": [{"$ref": "#/$defs/A"}]}}, **{"$defs": {"A": {"type": "string"}}})
    assert f"{WHERE}.properties.x.allOf.0.$ref: allOf with $ref is not supported" in _refused(client, schema)


def test_seventeen_union_typed_parameters_are_refused_and_sixteen_answered(client: anthropic.Anthropic) -> None:
    """At most 16 parameters may use `anyOf` or a type array (docs: "Schema complexity limits")."""

    def schema(count: int) -> dict[str, Any]:
        return _closed({f"p{index}": {"type": ["string", "null"]} for index in range(count)})

    assert _create(client, schema(16), max_tokens=4000).stop_reason == "end_turn"
    assert "too many parameters with union types (17 parameters with type arrays or anyOf)" in _refused(
        client, schema(17)
    )


def test_twenty_five_optional_parameters_are_refused_and_twenty_four_answered(client: anthropic.Anthropic) -> None:
    """At most 24 parameters may be left out of `required` (docs: "Schema complexity limits")."""

    def schema(count: int) -> dict[str, Any]:
        return {**_closed({f"p{index}": {"type": "string"} for index in range(count)}), "required": []}

    assert _create(client, schema(24), max_tokens=4000).stop_reason == "end_turn"
    assert "too many optional parameters (25 parameters not listed in 'required')" in _refused(client, schema(25))


def test_a_schema_nested_too_deep_is_refused_not_crashed_on(client: anthropic.Anthropic) -> None:
    """A schema nested past 64 levels is "too complex" (a 400), however it nests: directly or through `$ref`s."""
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(70):
        deep = {"type": "array", "items": deep}
    assert "Schema is too complex: nested deeper than 64 levels" in _refused(client, _closed({"x": deep}))
    chain = {f"D{index}": _closed({"next": {"$ref": f"#/$defs/D{index + 1}"}}) for index in range(70)}
    chain["D70"] = {"type": "string"}
    assert "Schema is too complex" in _refused(client, _closed({"x": {"$ref": "#/$defs/D0"}}, **{"$defs": chain}))


def test_deeply_nested_arrays_are_answered_with_a_bounded_answer(client: anthropic.Anthropic) -> None:
    """40 nested arrays are within the limits; the answer stays small (arrays shrink to `minItems` past a budget)."""
    deep: dict[str, Any] = {"type": "integer"}
    for _ in range(40):
        deep = {"type": "array", "items": deep, "minItems": 1}
    text = _create(client, _closed({"x": deep}), max_tokens=4000).content[0].text
    value = json.loads(text)["x"]
    for _ in range(40):
        assert isinstance(value, list) and len(value) >= 1
        value = value[0]
    assert isinstance(value, int)
    assert len(text) < 20_000


def test_definitions_that_double_at_each_step_are_refused_as_too_complex(client: anthropic.Anthropic) -> None:
    """Each definition using the next twice expands to 2**20 nodes: "Schema is too complex", not an endless answer."""
    defs = {
        f"D{i}": _closed({"a": {"$ref": f"#/$defs/D{i + 1}"}, "b": {"$ref": f"#/$defs/D{i + 1}"}}) for i in range(20)
    }
    defs["D20"] = {"type": "string"}
    message = _refused(client, _closed({"x": {"$ref": "#/$defs/D0"}}, **{"$defs": defs}))
    assert "Schema is too complex" in message and "once its $refs are expanded" in message


# -- list limits, bodies that are not JSON, and the crash guard ---------------------------------------


@pytest.mark.parametrize("limit", ["abc", "1.5", "", "0", "1001", "-3"])
def test_models_list_refuses_a_limit_that_is_not_1_to_1000(client: anthropic.Anthropic, limit: str) -> None:
    """`GET /v1/models?limit=...` takes an integer from 1 to 1000 (SDK `model_list_params.py`), else a 400 naming it."""
    with pytest.raises(anthropic.BadRequestError) as excinfo:
        client.models.list(limit=limit)  # type: ignore[arg-type]
    assert excinfo.value.body["error"]["message"].startswith("limit: Input should be")  # type: ignore[index]
    assert excinfo.value.response.headers["request-id"].startswith("req_")


@pytest.mark.parametrize("limit", ["abc", "0"])
def test_batches_list_refuses_a_limit_that_is_not_1_to_1000(client: anthropic.Anthropic, limit: str) -> None:
    """`GET /v1/messages/batches?limit=...` follows the same rule (SDK `messages/batch_list_params.py`)."""
    with pytest.raises(anthropic.BadRequestError) as excinfo:
        client.messages.batches.list(limit=limit)  # type: ignore[arg-type]
    assert excinfo.value.body["error"]["message"].startswith("limit: Input should be")  # type: ignore[index]


def test_models_list_takes_the_limit_it_is_given(client: anthropic.Anthropic) -> None:
    """A valid limit pages as asked."""
    assert 2 == len(client.models.list(limit=2).data)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b'{"model": "claude-haiku-4-5", "max_tokens": NaN}', "NaN is not a valid JSON value", id="nan"),
        pytest.param(b'{"model": "\\ud800"}', "lone surrogate", id="lone-surrogate"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, "nested too deeply", id="deep"),
    ],
)
def test_bodies_the_sdk_cannot_send_are_parse_errors(emulator: Emulator, raw: bytes, expected: str) -> None:
    """NaN, a lone surrogate escape and runaway nesting are a 400 parse error (raw HTTP: the SDK never sends them)."""
    response = httpx2.post(
        f"{emulator.base_url}/v1/messages",
        content=raw,
        headers={"x-api-key": "sk-test", "anthropic-version": "2023-06-01", "content-type": "application/json"},
    )
    assert 400 == response.status_code
    assert "invalid_request_error" == response.json()["error"]["type"]
    assert expected in response.json()["error"]["message"]


def test_a_surrogate_pair_escape_is_text_not_an_error(client: anthropic.Anthropic, emulator: Emulator) -> None:
    """`\\ud83d\\ude00` is a well-formed pair (an emoji), as a client writing ASCII-only JSON sends it."""
    body = {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "Hi \U0001f600"}]}
    response = httpx2.post(
        f"{emulator.base_url}/v1/messages",
        content=json.dumps(body, ensure_ascii=True).encode(),
        headers={"x-api-key": "sk-test", "anthropic-version": "2023-06-01", "content-type": "application/json"},
    )
    assert 200 == response.status_code, response.text


def test_an_unexpected_exception_is_the_apis_json_500(
    client: anthropic.Anthropic, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in a handler answers 500 `api_error` in the API's body with a `request-id`, and is counted."""

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the emulator")

    monkeypatch.setattr("pipeline.emulator.http_messages.generate", broken)
    with pytest.raises(anthropic.InternalServerError) as excinfo:
        client.messages.create(model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "Hi."}])
    assert 500 == excinfo.value.status_code
    assert {"type": "api_error", "message": "Internal server error", "details": None} == excinfo.value.body["error"]  # type: ignore[index]
    request_id = excinfo.value.response.headers["request-id"]
    assert request_id == excinfo.value.body["request_id"]  # type: ignore[index]
    assert 1 == emulator.control.stats()["crashes"]
    assert {"status": 500, "request_id": request_id} == {
        key: emulator.control.requests()[-1][key] for key in ("status", "request_id")
    }


def test_an_unexpected_exception_mid_stream_ends_the_stream_with_an_error_event(
    client: anthropic.Anthropic, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a stream has started, a bug ends it with an `error` event (`api_error`), which the SDK raises."""
    from pipeline.emulator import streaming

    def broken_events(message: dict[str, Any]) -> Any:
        events = streaming.message_events(message)
        yield next(events)
        raise RuntimeError("a bug in the emulator")

    monkeypatch.setattr("pipeline.emulator.http_messages.message_events", broken_events)
    stream = client.messages.stream(model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "Hi."}])
    with pytest.raises(anthropic.APIStatusError) as excinfo, stream as events:
        for _ in events:
            pass
    assert "api_error" == excinfo.value.body["error"]["type"]  # type: ignore[index]
    assert 1 == emulator.control.stats()["crashes"]


# -- nothing beside a $ref, an enum, a const or variants passes unchecked --------------------------


@pytest.mark.parametrize(
    ("node", "fragment"),
    [
        (
            {"$ref": "#/$defs/A", "additionalProperties": False, "properties": {"y": {"minimum": 1}}},
            "'minimum'",
        ),
        ({"enum": ["a"], "type": "object", "properties": {"q": {"type": "string"}}}, "additionalProperties"),
        ({"anyOf": [{"type": "string"}], "maxLength": 3}, "'maxLength'"),
        ({"const": "a", "minimum": 1}, "'minimum'"),
        (
            {
                "anyOf": [{"type": "string"}],
                "type": "object",
                "additionalProperties": False,
                "properties": {"z": {"type": "string", "format": "bogus"}},
            },
            "bogus",
        ),
    ],
    ids=["beside-ref", "beside-enum", "beside-anyof", "beside-const", "format-beside-anyof"],
)
def test_keywords_beside_a_ref_enum_const_or_variants_are_checked(
    client: anthropic.Anthropic, node: dict[str, Any], fragment: str
) -> None:
    schema = _closed({"x": node}, **{"$defs": {"A": {"type": "string"}}})
    assert fragment in _refused(client, schema)


def test_a_typed_enum_and_a_ref_with_a_description_are_answered(client: anthropic.Anthropic) -> None:
    """What jobs send (a string enum with its type) and a described `$ref` stay valid."""
    schema = _closed(
        {"kind": {"type": "string", "enum": ["invoice", "memo"]}, "who": {"$ref": "#/$defs/A", "description": "x"}},
        **{"$defs": {"A": {"type": "string"}}},
    )
    answer = json.loads(_create(client, schema).content[-1].text)
    assert answer["kind"] in ("invoice", "memo") and isinstance(answer["who"], str)


def test_an_enum_of_thousands_of_described_values_picks_the_described_one(client: anthropic.Anthropic) -> None:
    """A large taxonomy, each value described on its own line: answered at once, by the description."""
    names = [f"category_{index:04d}" for index in range(3000)]
    lines = [f"- {name}: filler topic number {index}" for index, name in enumerate(names)]
    lines[1234] = f"- {names[1234]}: an invoice from ACME asking for payment"
    schema = _closed({"label": {"type": "string", "enum": names, "description": "\n".join(lines)}})
    answer = json.loads(_create(client, schema).content[-1].text)
    assert answer["label"] == names[1234]


def _described_by_pattern(description: str, names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The rule as first written, a pattern per name and line: the reference the fast lookup must match."""
    found: dict[str, str] = {}
    for line in description.splitlines():
        line = line.strip().lstrip("-*• ").strip()
        for name in names:
            if re.match(rf"{re.escape(name)}\s*[:—–=-]", line):
                found[name] = re.split(r"[:—–=-]", line, maxsplit=1)[1]
    return tuple(found.items())


PIECES = st.sampled_from(
    ["a", "b", "ab", "a-b", "in", "invoice", " ", ":", "-", "—", "=", "x y", "é", "\u00a0", "", "•"]
)


@settings(max_examples=300, deadline=None)
@given(
    names=st.lists(st.tuples(PIECES, PIECES).map("".join), max_size=5),
    lines=st.lists(st.lists(PIECES, max_size=6).map("".join), max_size=5),
)
def test_enum_descriptions_are_read_as_the_pattern_per_name_reads_them(names: list[str], lines: list[str]) -> None:
    description = "\n".join(lines)
    assert _described_by_pattern(description, tuple(names)) == structured._described_values.__wrapped__(
        description, tuple(names)
    )


def test_equal_but_different_enum_values_are_not_taken_for_each_other() -> None:
    """`[1, 0]` and `[True, False]` are equal tuples; their names ("1", "True") are not, and the enum's
    cached terms follow the names."""
    from pipeline.emulator.document import analyse

    doc = analyse("The claim is false. False, false and false again, whatever it says.")
    structured._choice_plan.cache_clear()
    alone = structured._choose([True, False], {}, doc)
    structured._choice_plan.cache_clear()
    structured._choose([1, 0], {}, doc)
    assert alone[0] is False
    assert structured._choose([True, False], {}, doc) == alone
