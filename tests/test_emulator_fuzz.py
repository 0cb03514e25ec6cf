"""Fuzzing every `/v1` endpoint of the emulator: whatever arrives, the answer is the API's, never a crash.

Bodies are generated two ways: structurally plausible ones built from the real field names with
wrong or odd values, and arbitrary JSON (or bytes that are not JSON at all). Query strings, path
ids and the authentication and version headers are generated too. Every answer must have a
`request-id` header, a documented status (200, 400, 401, 403, 404, 413, 429: no 500, since no
fault rule is in force), and a JSON body, except the documented non-JSON ones: a stream
(`text/event-stream`) and batch results (JSONL). Error bodies must have the API's shape.

The property is checked over raw HTTP (httpx2, the SDK's transport), so that the generated input
reaches the emulator as sent; one emulator serves the whole module. Hypothesis draws fixed examples
(conftest's profile) and every test has a fixed example budget, so the module runs in bounded time.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from conftest import SEED, TEST_KEY
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.models import MODELS

FUZZ = settings(
    max_examples=60,
    deadline=5000,  # ms; one request is a few ms, so only a hang or a runaway could reach it
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)
DOCUMENTED_STATUSES = {200, 400, 401, 403, 404, 413, 429}
VERSION = "2023-06-01"
MODEL = "claude-haiku-4-5"
HEADERS = {"x-api-key": TEST_KEY, "anthropic-version": VERSION, "content-type": "application/json"}

# -- strategies ------------------------------------------------------------------------------------

LONE_SURROGATES = ["\ud800", "\udfff", "a\udc00b"]
ODD_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "\x00", "null", "0", "-1", "1e999", "NaN", "ünïcode", "a" * 300, *LONE_SURROGATES]),
)
PRIMITIVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    ODD_TEXT,
)
ANY_JSON = st.recursive(
    PRIMITIVES,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(ODD_TEXT, children, max_size=3),
    max_leaves=8,
)


def mostly(common: st.SearchStrategy[Any], odd: st.SearchStrategy[Any] = ANY_JSON) -> st.SearchStrategy[Any]:
    """Usually a plausible value, sometimes any JSON at all."""
    return st.one_of(common, common, common, odd)


MODEL_IDS = mostly(st.sampled_from(sorted(MODELS)), st.sampled_from(["", "claude", "claude-3-opus-20240229"]))
CACHE_CONTROL = st.fixed_dictionaries(
    {}, optional={"type": mostly(st.just("ephemeral")), "ttl": mostly(st.sampled_from(["5m", "1h", "2h"]))}
)
SCHEMA_TYPES = st.sampled_from(["object", "array", "string", "integer", "number", "boolean", "null"])
STRING_FORMATS = st.sampled_from(["date", "date-time", "email", "uri", "uuid", "ipv4", "text", "regex"])
REFS = st.sampled_from(["#/$defs/A", "#/$defs/B", "#/definitions/A", "#", "#/$defs/missing", "http://x/s.json"])


def _schema_node(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {"type": mostly(SCHEMA_TYPES | st.lists(SCHEMA_TYPES, max_size=3))},
        optional={
            "properties": mostly(st.dictionaries(ODD_TEXT, children, max_size=3)),
            "required": mostly(st.lists(ODD_TEXT, max_size=3)),
            "additionalProperties": mostly(st.just(False)),
            "items": mostly(children),
            "anyOf": mostly(st.lists(children, max_size=3)),
            "allOf": mostly(st.lists(children, max_size=2)),
            "$ref": mostly(REFS),
            "$defs": mostly(st.dictionaries(st.sampled_from(["A", "B"]), children, max_size=2)),
            "enum": mostly(st.lists(PRIMITIVES, max_size=4)),
            "const": ANY_JSON,
            "format": mostly(STRING_FORMATS),
            "minItems": mostly(st.integers(-1, 3)),
            "description": mostly(ODD_TEXT),
            "minimum": ANY_JSON,
        },
    )


SCHEMAS = st.recursive(
    st.fixed_dictionaries({"type": mostly(SCHEMA_TYPES)}, optional={"format": STRING_FORMATS, "enum": ANY_JSON}),
    _schema_node,
    max_leaves=6,
)
# Schemas within the supported subset (nullable type arrays, enums, consts, anyOf, $defs), so that
# answers get generated: the generator must give valid JSON for each of them.
NAMES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=8) | st.sampled_from(
    ["summary", "date", "email", "amount", "confidence", "tags", "label"]
)
VALID_LEAVES = st.one_of(
    st.builds(lambda kind: {"type": kind}, st.sampled_from(["string", "integer", "number", "boolean", "null"])),
    st.builds(lambda kind: {"type": [kind, "null"]}, st.sampled_from(["string", "integer", "number", "boolean"])),
    st.builds(
        lambda fmt: {"type": "string", "format": fmt},
        st.sampled_from(["date", "date-time", "email", "uri", "uuid", "ipv4", "duration", "time", "hostname", "ipv6"]),
    ),
    st.builds(
        lambda values: {"enum": values},
        st.lists(
            st.none() | st.booleans() | st.integers() | st.text(max_size=6), min_size=1, max_size=4, unique_by=repr
        ),
    ),
    st.builds(lambda value: {"const": value}, PRIMITIVES.filter(lambda v: v == v)),
    st.builds(lambda text: {"type": "string", "description": text}, ODD_TEXT.filter(lambda t: t.isascii())),
)


def _valid_node(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    objects = st.dictionaries(NAMES, children, max_size=4).flatmap(
        lambda props: st.builds(
            lambda required, nullable: {
                "type": ["object", "null"] if nullable else "object",
                "properties": props,
                "required": required,
                "additionalProperties": False,
            },
            st.lists(st.sampled_from(sorted(props)), unique=True) if props else st.just([]),
            st.booleans(),
        )
    )
    arrays = st.builds(
        lambda items, min_items: {"type": "array", "items": items, "minItems": min_items},
        children,
        st.sampled_from([0, 1]),
    )
    unions = st.builds(lambda variants: {"anyOf": variants}, st.lists(children, min_size=1, max_size=3))
    return st.one_of(objects, arrays, unions)


VALID_NODES = st.recursive(VALID_LEAVES, _valid_node, max_leaves=8)
VALID_SCHEMAS = st.builds(
    lambda root, shared: {
        "type": "object",
        "properties": {"main": root, "shared": {"$ref": "#/$defs/Shared"}, "more": {"$ref": "#/definitions/More"}},
        "required": ["main", "shared"],
        "additionalProperties": False,
        "$defs": {"Shared": shared},
        "definitions": {"More": {"type": "array", "items": {"$ref": "#/$defs/Shared"}}},
    },
    VALID_NODES,
    VALID_NODES,
)
TEXTS = st.text(min_size=1, max_size=200).filter(str.strip) | st.sampled_from(
    ["Invoice 2026-03-01 from ACME (billing@acme.example) for 120.50 EUR.", "Short note. See https://example.com/x."]
)
VALID_MESSAGE_BODIES = st.fixed_dictionaries(
    {
        "model": st.sampled_from(sorted(MODELS)),
        "max_tokens": st.integers(1, 2048),
        "messages": st.builds(lambda text: [{"role": "user", "content": text}], TEXTS)
        | st.builds(lambda text: [{"role": "user", "content": [{"type": "text", "text": text}]}], TEXTS),
    },
    optional={
        "system": TEXTS,
        "output_config": st.builds(lambda schema: {"format": {"type": "json_schema", "schema": schema}}, VALID_SCHEMAS),
        "stream": st.booleans(),
        "stop_sequences": st.lists(st.text(min_size=1, max_size=3), max_size=2),
        "metadata": st.builds(lambda user: {"user_id": user}, st.text(max_size=10)),
        "tools": st.just([{"name": "lookup", "input_schema": {"type": "object", "properties": {}}}]),
    },
)

BLOCK_TYPES = st.sampled_from(["text", "image", "document", "tool_use", "tool_result", "thinking", "search_result"])
SOURCES = st.fixed_dictionaries(
    {"type": mostly(st.sampled_from(["base64", "text", "content", "url", "file"]))},
    optional={
        "media_type": mostly(
            st.sampled_from(["application/pdf", "text/plain", "image/png", "image/gif", "image/jpeg"])
        ),
        "data": mostly(
            st.sampled_from(
                ["JVBERi0xLjQK", "JVBERi0xLjQKJeLjz9MK", "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB", "R0lGODlh", "===="]
            )
            | st.binary(max_size=48).map(lambda raw: base64.b64encode(raw).decode()),
            ODD_TEXT,
        ),
        "url": ODD_TEXT,
        "file_id": ODD_TEXT,
    },
)
BLOCKS = st.fixed_dictionaries(
    {"type": mostly(BLOCK_TYPES)},
    optional={
        "text": mostly(ODD_TEXT),
        "source": mostly(SOURCES),
        "cache_control": mostly(CACHE_CONTROL),
        "citations": ANY_JSON,
        "id": ODD_TEXT,
        "name": ODD_TEXT,
        "input": ANY_JSON,
        "tool_use_id": ODD_TEXT,
        "content": ANY_JSON,
        "thinking": ODD_TEXT,
        "signature": ODD_TEXT,
    },
)
CONTENT = mostly(ODD_TEXT | st.lists(mostly(BLOCKS), max_size=3))
MESSAGES = st.lists(
    mostly(
        st.fixed_dictionaries(
            {"role": mostly(st.sampled_from(["user", "assistant"]), st.sampled_from(["system", "tool", ""]))},
            optional={"content": CONTENT},
        )
    ),
    max_size=3,
)
TOOLS = st.lists(
    mostly(
        st.fixed_dictionaries(
            {"name": mostly(ODD_TEXT)},
            optional={"input_schema": mostly(SCHEMAS), "description": ANY_JSON, "cache_control": CACHE_CONTROL},
        )
    ),
    max_size=2,
)
OUTPUT_CONFIG = st.fixed_dictionaries(
    {},
    optional={
        "effort": mostly(st.sampled_from(["low", "high", "max", "extreme"])),
        "format": mostly(
            st.fixed_dictionaries({"type": mostly(st.just("json_schema"))}, optional={"schema": mostly(SCHEMAS)})
        ),
    },
)
PROMPT_FIELDS = {
    "model": MODEL_IDS,
    "messages": mostly(MESSAGES),
}
OPTIONAL_FIELDS = {
    "system": mostly(ODD_TEXT | st.lists(mostly(BLOCKS), max_size=2)),
    "tools": mostly(TOOLS),
    "tool_choice": mostly(
        st.fixed_dictionaries(
            {"type": mostly(st.sampled_from(["auto", "any", "tool", "none"]))}, optional={"name": ODD_TEXT}
        )
    ),
    "thinking": mostly(
        st.fixed_dictionaries(
            {"type": mostly(st.sampled_from(["adaptive", "enabled", "disabled"]))},
            optional={"budget_tokens": mostly(st.integers(-1, 100_000))},
        )
    ),
    "output_config": mostly(OUTPUT_CONFIG),
    "cache_control": mostly(CACHE_CONTROL),
    "metadata": mostly(st.fixed_dictionaries({}, optional={"user_id": ANY_JSON})),
    "stop_sequences": mostly(st.lists(ODD_TEXT, max_size=3)),
    "temperature": mostly(st.floats(-1, 3)),
    "service_tier": mostly(st.sampled_from(["auto", "standard_only", "priority"])),
    "stream": mostly(st.booleans()),
    "speed": ANY_JSON,
}
MESSAGE_BODIES = st.fixed_dictionaries(
    {**PROMPT_FIELDS, "max_tokens": mostly(st.integers(-2, 70_000))}, optional=OPTIONAL_FIELDS
)
COUNT_BODIES = st.fixed_dictionaries(
    PROMPT_FIELDS,
    optional={key: value for key, value in OPTIONAL_FIELDS.items() if key not in ("stream", "metadata")},
)
BATCH_BODIES = st.fixed_dictionaries(
    {
        "requests": mostly(
            st.lists(
                mostly(
                    st.fixed_dictionaries(
                        {"custom_id": mostly(ODD_TEXT), "params": st.one_of(VALID_MESSAGE_BODIES, MESSAGE_BODIES)}
                    )
                ),
                max_size=3,
            )
        )
    }
)
VALID_BATCH_BODIES = st.builds(
    lambda params: {"requests": [{"custom_id": f"doc-{index}", "params": p} for index, p in enumerate(params)]},
    st.lists(st.one_of(VALID_MESSAGE_BODIES, MESSAGE_BODIES), min_size=1, max_size=3),
)
QUERY_KEYS = st.sampled_from(["limit", "after_id", "before_id", "beta", "limit[]"])
QUERY_VALUES = st.one_of(
    st.integers(-5, 2000).map(str),
    st.sampled_from(["abc", "", " 5", "1.5", "1e3", "٣", "9" * 40, "-0", "20 ", "0x10", "claude-haiku-4-5"]),
    st.text(max_size=10),
)
QUERIES = st.lists(st.tuples(QUERY_KEYS, QUERY_VALUES), max_size=3)
PATH_IDS = st.one_of(
    st.sampled_from(["msgbatch_000", "claude-haiku-4-5", "..", ".", "%", "a/b", "msgbatch_" + "9" * 200, " "]),
    st.text(min_size=1, max_size=20),
)
# Printable ASCII without surrounding blanks: anything else is refused by the client (h11) before it is sent.
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20).map(str.strip)
AUTH_HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "x-api-key": mostly(st.just(TEST_KEY), HEADER_TEXT),
        "authorization": st.one_of(st.just(f"Bearer {TEST_KEY}"), HEADER_TEXT, st.just("Bearer"), st.just("bearer  x")),
        "anthropic-version": mostly(st.sampled_from(["2023-06-01", "2026-10-21"]), HEADER_TEXT),
        "anthropic-beta": HEADER_TEXT,
    },
)
RAW_BODIES = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"", b"{", b"[]", b"null", b'{"a": NaN}', b"\xff\xfe", b"[" * 5000 + b"]" * 5000]),
)

# -- the property ----------------------------------------------------------------------------------


def _encode(body: Any) -> bytes:
    """JSON as a client would send it; a lone surrogate goes as its `\\u` escape, as `json.dumps` writes it."""
    return json.dumps(body).encode("utf-8")


def _for_count_tokens(body: dict[str, Any]) -> dict[str, Any]:
    """A Messages body without the fields count_tokens does not take."""
    return {key: value for key, value in body.items() if key not in ("max_tokens", "stream", "metadata")}


def check_answer(response: httpx2.Response, *, non_json_ok: str = "") -> None:
    """A documented status, a `request-id`, and a JSON body in the API's shape (or a documented non-JSON one)."""
    assert response.status_code in DOCUMENTED_STATUSES, (response.status_code, response.text[:500])
    assert response.headers.get("request-id", "").startswith("req_"), dict(response.headers)
    content_type = response.headers.get("content-type", "")
    if response.status_code == 200 and non_json_ok and content_type.startswith(non_json_ok):
        return
    assert content_type.startswith("application/json"), (content_type, response.text[:200])
    body = response.json()
    if response.status_code != 200:
        assert body["type"] == "error", body
        assert isinstance(body["error"]["type"], str) and isinstance(body["error"]["message"], str), body
        assert body["request_id"] == response.headers["request-id"], body


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    """One emulator for the whole module; batches end at once so their results can be read."""
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.0)) as emu:
        yield emu
        assert emu.control.stats()["crashes"] == 0


@pytest.fixture(scope="module")
def http(emulator: Emulator) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=emulator.base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def batch_id(http: httpx2.Client) -> str:
    """A real, ended batch, so the path-id tests reach the results and the other lookups too."""
    params = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi."}]}
    response = http.post(
        "/v1/messages/batches", json={"requests": [{"custom_id": "a", "params": params}]}, headers=HEADERS
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


@pytest.fixture(scope="module")
def file_id(http: httpx2.Client) -> str:
    """A real uploaded file (it is deleted by the path-id test at some point, which is one more case)."""
    headers = {k: v for k, v in HEADERS.items() if k != "content-type"}
    response = http.post("/v1/files", files={"file": ("a.txt", b"Hello.", "text/plain")}, headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


FILENAMES = st.one_of(ODD_TEXT, st.sampled_from(["a.pdf", "../x.txt", "a/b.png", "CON", "a\\b", "<x>.txt"]))
MEDIA_TYPES = st.one_of(
    st.sampled_from(["application/pdf", "text/plain", "image/png", "image/jpeg", "application/octet-stream", ""]),
    st.text(max_size=20),
)
UPLOAD_BYTES = st.one_of(
    st.binary(max_size=200), st.sampled_from([b"%PDF-1.4\n%%EOF\n", b"\x89PNG\r\n\x1a\n" + b"\0" * 20, b""])
)


@settings(FUZZ, max_examples=40)
@given(
    filename=FILENAMES,
    media_type=MEDIA_TYPES,
    data=UPLOAD_BYTES,
    field=st.sampled_from(["file", "files", "upload"]),
    extra=st.dictionaries(ODD_TEXT, ODD_TEXT, max_size=2),
)
def test_file_uploads_answer_any_form_with_a_documented_status(
    http: httpx2.Client, filename: str, media_type: str, data: bytes, field: str, extra: dict[str, str]
) -> None:
    """POST /v1/files: odd names, media types, bytes, form fields; an upload made is then used in a request."""
    headers = {k: v for k, v in HEADERS.items() if k != "content-type"}
    safe_name = filename.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    safe_extra = {_wire(key): _wire(value) for key, value in extra.items()}
    try:
        response = http.post(
            "/v1/files", files={field: (safe_name, data, media_type or None)}, data=safe_extra, headers=headers
        )
    except (UnicodeEncodeError, ValueError):
        return  # the client cannot put this name or type on the wire
    check_answer(response)
    if response.status_code == 200:
        kind = "image" if response.json()["mime_type"].startswith("image/") else "document"
        block = {"type": kind, "source": {"type": "file", "file_id": response.json()["id"]}}
        body = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": [block]}]}
        check_answer(http.post("/v1/messages", content=_encode(body), headers=HEADERS))


def _wire(text: str) -> str:
    """Text as a form can carry it: a lone surrogate replaced."""
    return text.encode("utf-8", "replace").decode()


@settings(FUZZ, max_examples=40)
@given(raw=RAW_BODIES, content_type=st.sampled_from(["application/json", "multipart/form-data", "text/plain", ""]))
def test_file_uploads_that_are_not_forms_get_a_documented_status(
    http: httpx2.Client, raw: bytes, content_type: str
) -> None:
    """A body that is no multipart form (or claims to be one without a boundary) gets a 400, not a crash."""
    headers = {k: v for k, v in HEADERS.items() if k != "content-type"} | {"content-type": content_type}
    check_answer(http.post("/v1/files", content=raw, headers=headers))


@FUZZ
@given(file_id=st.one_of(ODD_TEXT, PRIMITIVES), kind=st.sampled_from(["document", "image"]))
def test_file_references_answer_any_id_with_a_documented_status(http: httpx2.Client, file_id: Any, kind: str) -> None:
    """A `file` source naming any id (or no string at all) in Messages and count_tokens gets an API answer."""
    block = {"type": kind, "source": {"type": "file", "file_id": file_id}}
    body = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": [block]}]}
    check_answer(http.post("/v1/messages", content=_encode(body), headers=HEADERS))
    check_answer(http.post("/v1/messages/count_tokens", content=_encode(_for_count_tokens(body)), headers=HEADERS))


@FUZZ
@given(body=st.one_of(VALID_MESSAGE_BODIES, MESSAGE_BODIES, ANY_JSON))
@example(body={"\ud800": None})  # found: a lone surrogate echoed in the error message could not be encoded
@example(body={"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": [{"type": []}]}]})
def test_messages_answers_any_body_with_a_documented_status(http: httpx2.Client, body: Any) -> None:
    """POST /v1/messages: a plausible or arbitrary body gets an API answer (JSON, or SSE when streamed)."""
    check_answer(http.post("/v1/messages", content=_encode(body), headers=HEADERS), non_json_ok="text/event-stream")


@FUZZ
@given(schema=st.one_of(VALID_SCHEMAS, SCHEMAS), nested_in_tool=st.booleans())
@example(schema={"type": []}, nested_in_tool=False)  # found: an unhashable type array
def test_messages_answers_any_schema_with_a_documented_status(
    http: httpx2.Client, schema: Any, nested_in_tool: bool
) -> None:
    """Structured outputs and tools: any schema built from the JSON Schema keywords gets an API answer."""
    body: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 300,
        "messages": [{"role": "user", "content": "Invoice 2026-03-01 from ACME for 120.50 EUR, due in May."}],
    }
    if nested_in_tool:
        body["tools"] = [{"name": "record", "input_schema": schema}]
    else:
        body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    check_answer(http.post("/v1/messages", content=_encode(body), headers=HEADERS))


@FUZZ
@given(body=st.one_of(VALID_MESSAGE_BODIES.map(_for_count_tokens), COUNT_BODIES, ANY_JSON))
def test_count_tokens_answers_any_body_with_a_documented_status(http: httpx2.Client, body: Any) -> None:
    """POST /v1/messages/count_tokens: a plausible or arbitrary body gets an API answer."""
    check_answer(http.post("/v1/messages/count_tokens", content=_encode(body), headers=HEADERS))


@settings(FUZZ, max_examples=40)
@given(body=st.one_of(VALID_BATCH_BODIES, BATCH_BODIES, ANY_JSON))
def test_batch_create_answers_any_body_with_a_documented_status(http: httpx2.Client, body: Any) -> None:
    """POST /v1/messages/batches: a plausible or arbitrary body gets an API answer; a batch made reads back."""
    created = http.post("/v1/messages/batches", content=_encode(body), headers=HEADERS)
    check_answer(created)
    if created.status_code == 200:
        results = http.get(f"/v1/messages/batches/{created.json()['id']}/results", headers=HEADERS)
        check_answer(results, non_json_ok="application/x-jsonl")
        assert len(results.text.splitlines()) == len(body["requests"])


@settings(FUZZ, max_examples=40)
@given(raw=RAW_BODIES, path=st.sampled_from(["/v1/messages", "/v1/messages/count_tokens", "/v1/messages/batches"]))
def test_bodies_that_are_not_json_get_a_documented_status(http: httpx2.Client, raw: bytes, path: str) -> None:
    """Bytes that are not a JSON object (or too deeply nested to parse) get a 400, not a crash."""
    check_answer(http.post(path, content=raw, headers=HEADERS))


@FUZZ
@given(path=st.sampled_from(["/v1/models", "/v1/messages/batches", "/v1/files"]), query=QUERIES)
@example(path="/v1/models", query=[("limit", "abc")])  # found: int() of the limit raised
def test_list_endpoints_answer_any_query_with_a_documented_status(
    http: httpx2.Client, path: str, query: list[tuple[str, str]]
) -> None:
    """GET /v1/models, /v1/messages/batches and /v1/files: any query string gets an API answer."""
    check_answer(http.get(f"{path}?{urllib.parse.urlencode(query)}", headers=HEADERS))


@FUZZ
@given(
    template=st.sampled_from(
        [
            ("GET", "/v1/models/{}"),
            ("GET", "/v1/messages/batches/{}"),
            ("POST", "/v1/messages/batches/{}/cancel"),
            ("DELETE", "/v1/messages/batches/{}"),
            ("GET", "/v1/messages/batches/{}/results"),
            ("GET", "/v1/files/{}"),
            ("GET", "/v1/files/{}/content"),
            ("DELETE", "/v1/files/{}"),
        ]
    ),
    path_id=st.one_of(PATH_IDS, st.just("<batch>"), st.just("<file>")),
)
@example(template=("GET", "/v1/models/{}"), path_id="\n{")  # found: no route took it, aiohttp answered in plain text
def test_path_ids_get_a_documented_status(
    http: httpx2.Client, batch_id: str, file_id: str, template: tuple[str, str], path_id: str
) -> None:
    """Retrieve, cancel, delete, results, model and file lookups: any id in the path gets an API answer."""
    method, path = template
    known = {"<batch>": batch_id, "<file>": file_id}
    quoted = known.get(path_id) or urllib.parse.quote(path_id.encode("utf-8", "surrogatepass"), safe="")
    response = http.request(method, path.format(quoted), headers=HEADERS)
    check_answer(response, non_json_ok="application/x-jsonl")


@FUZZ
@given(
    headers=AUTH_HEADERS,
    route=st.sampled_from(
        [
            ("POST", "/v1/messages"),
            ("POST", "/v1/messages/count_tokens"),
            ("GET", "/v1/models"),
            ("GET", "/v1/messages/batches"),
            ("GET", "/v1/models/claude-haiku-4-5"),
            ("GET", "/v1/files"),
        ]
    ),
)
def test_odd_keys_and_versions_get_a_documented_status(
    http: httpx2.Client, headers: dict[str, str], route: tuple[str, str]
) -> None:
    """Missing, empty or odd API keys and versions get a 400 or 401 in the API's shape, or a 200."""
    method, path = route
    body = {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "Hi."}]}
    content = _encode(body) if method == "POST" else None
    response = http.request(method, path, content=content, headers={"content-type": "application/json", **headers})
    check_answer(response)
