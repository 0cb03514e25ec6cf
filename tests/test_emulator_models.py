"""Per-model behaviour on the emulator, parametrized over docpipe's model table, through the official SDK.

Each rule reads one field of the table (`pipeline/model_table.py`); the tests ask the emulator, as a
client would, and compare its answer with that field. Sources are in `docs/emulator.md`, "Rules and
their sources", "Models and per-model behaviour".
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import anthropic
import httpx2
import pytest
from anthropic.types import ModelInfo
from conftest import SEED, TEST_KEY

from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.emulator.model_rules import model_rule_violation
from pipeline.model_spec import ALL_EFFORTS
from pipeline.models import ALIASES, MODELS, ModelSpec, get_model

T = TypeVar("T")

DOCUMENT = "The depot in Leeds shipped 14 pallets on Monday. The invoice for the freight is due in 30 days."
MESSAGES = [{"role": "user", "content": DOCUMENT}]
SERVED = [spec for spec in MODELS.values() if spec.lifecycle != "retired"]
RETIRED = [spec for spec in MODELS.values() if spec.lifecycle == "retired"]
SERVED_IDS = [spec.id for spec in SERVED]
THINKING_TYPES = ["adaptive", "enabled", "disabled", "between_tools"]
ENABLED_BUDGET = 1024
TOOL = {"name": "record", "description": "Record a fact.", "input_schema": {"type": "object", "properties": {}}}
VERSION_2023 = {"anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def shared_emulator() -> Iterator[Emulator]:
    """One emulator for the module: these tests only read, and there are several hundred of them."""
    with Emulator(EmulatorConfig(seed=SEED)) as emu:
        yield emu


@pytest.fixture(scope="module")
def sdk(shared_emulator: Emulator) -> Iterator[anthropic.Anthropic]:
    """A strict-validation client, SDK retries off, with a timeout (so large `max_tokens` need no stream)."""
    with anthropic.Anthropic(
        api_key=TEST_KEY,
        base_url=shared_emulator.base_url,
        max_retries=0,
        timeout=30,
        _strict_response_validation=True,
    ) as client:
        yield client


def quietly(call: Callable[[], T]) -> T:
    """Run an SDK call without its client-side warnings (deprecated models, `thinking.enabled` on 4.6)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call()


def create(sdk: anthropic.Anthropic, model: str, **params: Any) -> anthropic.types.Message:
    params.setdefault("max_tokens", 2048)
    params.setdefault("messages", MESSAGES)
    return quietly(lambda: sdk.messages.create(model=model, **params))


def refusal(sdk: anthropic.Anthropic, model: str, **params: Any) -> anthropic.BadRequestError:
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(sdk, model, **params)
    assert caught.value.type == "invalid_request_error"
    return caught.value


def thinking_param(kind: str) -> dict[str, Any]:
    return {"type": kind, "budget_tokens": ENABLED_BUDGET} if kind == "enabled" else {"type": kind}


# --- ids, aliases, lifecycle ---------------------------------------------------------------------


@pytest.mark.parametrize(("alias", "model_id"), sorted(ALIASES.items()))
def test_an_alias_resolves_to_one_model_and_the_answer_names_its_id(
    sdk: anthropic.Anthropic, alias: str, model_id: str
) -> None:
    """A model named by its alias is that model: the Models API and a Messages answer give its dated id."""
    assert get_model(alias) is MODELS[model_id]
    assert model_id == quietly(lambda: sdk.models.retrieve(alias)).id
    if MODELS[model_id].lifecycle != "retired":
        assert model_id == create(sdk, alias).model


@pytest.mark.parametrize("model_id", SERVED_IDS)
def test_a_served_model_answers_with_its_own_id(sdk: anthropic.Anthropic, model_id: str) -> None:
    """Active and deprecated models answer; the message names the model it came from."""
    assert model_id == create(sdk, model_id).model


@pytest.mark.parametrize("name", [name for spec in RETIRED for name in (spec.id, *spec.aliases)])
def test_a_retired_model_is_refused_as_not_found(sdk: anthropic.Anthropic, name: str) -> None:
    """Requests to a retired model fail with 404 not_found_error "model: <id>", by id or by alias."""
    with pytest.raises(anthropic.NotFoundError) as caught:
        create(sdk, name)
    assert (caught.value.type, caught.value.api_message) == ("not_found_error", f"model: {name}")


def test_the_table_covers_every_model_the_sdk_names() -> None:
    """Every id in the SDK's `Model` literal is a row or an alias of one (`types/model.py`)."""
    from typing import get_args

    from anthropic.types import Model

    literal = next(arg for arg in get_args(Model) if get_args(arg))
    missing = [model for model in get_args(literal) if get_model(model) is None]
    assert [] == missing


# --- the Models API ------------------------------------------------------------------------------


def test_models_list_hides_retired_models_unless_asked(sdk: anthropic.Anthropic) -> None:
    """By default the list holds active and deprecated models; `lifecycle=["retired"]` gives the retired ones."""
    listed = [model.id for model in sdk.models.list(limit=1000)]
    assert sorted(SERVED_IDS) == sorted(listed)
    retired = [model.id for model in sdk.models.list(lifecycle=["retired"])]
    assert sorted(spec.id for spec in RETIRED) == sorted(retired)


@pytest.mark.parametrize("model_id", list(MODELS))
def test_model_info_has_every_field_filled_from_the_table(
    shared_emulator: Emulator, sdk: anthropic.Anthropic, model_id: str
) -> None:
    """`models.retrieve` answers every ModelInfo field, `capabilities` never null, lifecycle dates from the table."""
    spec = MODELS[model_id]
    raw = httpx2.get(
        f"{shared_emulator.base_url}/v1/models/{model_id}",
        headers={"x-api-key": TEST_KEY, "anthropic-version": "2026-10-21"},
    ).json()
    assert set(ModelInfo.model_fields) == set(raw)
    info = sdk.models.retrieve(model_id)
    assert info.capabilities is not None
    dates = (info.deprecated_at, info.retires_at)
    expected_dates = (spec.deprecated_at, spec.retires_at)
    assert expected_dates == tuple(None if date is None else date.date().isoformat() for date in dates)
    assert (info.lifecycle, info.line, info.max_input_tokens, info.max_tokens) == (
        spec.lifecycle,
        spec.line,
        spec.max_input_tokens,
        spec.max_output_tokens,
    )


@pytest.mark.parametrize("model_id", list(MODELS))
def test_capabilities_say_what_the_emulator_enforces(sdk: anthropic.Anthropic, model_id: str) -> None:
    """The thinking types and effort levels the Models API reports are the ones requests are held to."""
    spec = MODELS[model_id]
    capabilities = sdk.models.retrieve(model_id).capabilities
    assert capabilities is not None
    types = capabilities.thinking.types
    reported = {kind for kind in THINKING_TYPES if getattr(types, kind).supported}
    assert set(spec.thinking_types) == reported
    levels = {level: getattr(capabilities.effort, level) for level in ALL_EFFORTS}  # `xhigh` may be None
    efforts = {level for level, support in levels.items() if support is not None and support.supported}
    assert (set(spec.efforts), bool(spec.efforts)) == (efforts, capabilities.effort.supported)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=ten", "limit: Input should be a valid integer, got 'ten'"),
        ("limit=0", "limit: Input should be between 1 and 1000"),
        ("limit=1001", "limit: Input should be between 1 and 1000"),
        ("lifecycle[]=legacy", "lifecycle: Input should be 'active', 'deprecated' or 'retired'"),
    ],
)
def test_models_list_refuses_bad_queries(shared_emulator: Emulator, query: str, message: str) -> None:
    """A `limit` outside 1-1000 or not a number, or an unknown lifecycle, is a 400 in the API's error shape."""
    client = anthropic.Anthropic(api_key=TEST_KEY, base_url=shared_emulator.base_url, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.get(f"/v1/models?{query}", cast_to=object)
    assert caught.value.api_message == message


# --- thinking ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", SERVED_IDS)
def test_models_that_think_by_default_open_with_a_thinking_block(sdk: anthropic.Anthropic, model_id: str) -> None:
    """Without `thinking`, the answer opens with a signed thinking block exactly when the model thinks by
    default; its tokens are billed as output."""
    spec = MODELS[model_id]
    message = create(sdk, model_id)
    types = [block.type for block in message.content]
    thinking_tokens = message.usage.output_tokens_details.thinking_tokens
    if spec.thinks_by_default:
        assert ["thinking", "text"] == types
        assert 0 < thinking_tokens < message.usage.output_tokens
    else:
        assert (["text"], 0) == (types, thinking_tokens)


@pytest.mark.parametrize("model_id", [spec.id for spec in SERVED if spec.thinks_by_default])
def test_thinking_tokens_count_against_max_tokens(sdk: anthropic.Anthropic, model_id: str) -> None:
    """A `max_tokens` the thinking uses up leaves no room for text: stop_reason "max_tokens"."""
    thinking_tokens = create(sdk, model_id).usage.output_tokens_details.thinking_tokens
    message = create(sdk, model_id, max_tokens=thinking_tokens)
    assert (["thinking"], "max_tokens") == ([block.type for block in message.content], message.stop_reason)
    assert thinking_tokens == message.usage.output_tokens


@pytest.mark.parametrize("model_id", [spec.id for spec in SERVED if spec.thinks_by_default])
def test_thinking_text_is_omitted_where_the_model_omits_it(sdk: anthropic.Anthropic, model_id: str) -> None:
    """From Claude 4.7 on the thinking text is empty unless `display: "summarized"` is asked for."""
    spec = MODELS[model_id]
    default = create(sdk, model_id).content[0]
    summarized = create(sdk, model_id, thinking={"type": "adaptive", "display": "summarized"}).content[0]
    assert default.type == summarized.type == "thinking"
    assert (default.thinking == "") is spec.thinking_text_omitted_by_default
    assert summarized.thinking


@pytest.mark.parametrize("kind", THINKING_TYPES)
@pytest.mark.parametrize("model_id", SERVED_IDS)
def test_thinking_types_are_held_to_what_the_model_accepts(sdk: anthropic.Anthropic, model_id: str, kind: str) -> None:
    """Each `thinking.type` is accepted exactly on the models whose row lists it; otherwise a 400 naming it."""
    spec = MODELS[model_id]
    thinking = thinking_param(kind)
    if kind in spec.thinking_types:
        message = create(sdk, model_id, thinking=thinking)
        thinks = kind in ("adaptive", "enabled")
        assert thinks == (message.content[0].type == "thinking")
        return
    error = refusal(sdk, model_id, thinking=thinking)
    if kind == "adaptive":
        assert "adaptive thinking is not supported on this model" == error.api_message
    else:
        assert error.api_message.startswith(f'"thinking.type.{kind}" is not supported for this model.')


@pytest.mark.parametrize("effort", ["xhigh", "max"])
@pytest.mark.parametrize(
    ("model_id", "kind"),
    [
        (spec.id, kind)
        for spec in SERVED
        if spec.thinking_off_needs_high_effort_or_less
        for kind in ("disabled", "between_tools")
        if kind in spec.thinking_types
    ],
)
def test_thinking_off_needs_effort_high_or_lower(
    sdk: anthropic.Anthropic, model_id: str, kind: str, effort: str
) -> None:
    """Where the row says so, turning thinking off is refused at effort xhigh or max and accepted at high."""
    error = refusal(sdk, model_id, thinking={"type": kind}, output_config={"effort": effort})
    assert error.api_message.startswith(f'"thinking.type.{kind}" cannot be combined with effort "{effort}"')
    message = create(sdk, model_id, thinking={"type": kind}, output_config={"effort": "high"})
    assert ["text"] == [block.type for block in message.content]


# --- effort, sampling, prefill, forced tools, max_tokens -----------------------------------------


@pytest.mark.parametrize("effort", ALL_EFFORTS)
@pytest.mark.parametrize("model_id", SERVED_IDS)
def test_effort_levels_are_held_to_what_the_model_has(sdk: anthropic.Anthropic, model_id: str, effort: str) -> None:
    """`output_config.effort` is accepted at the levels the row lists; elsewhere a 400."""
    spec = MODELS[model_id]
    if effort in spec.efforts:
        assert create(sdk, model_id, output_config={"effort": effort}).stop_reason == "end_turn"
        return
    error = refusal(sdk, model_id, output_config={"effort": effort})
    assert error.api_message.startswith("output_config.effort:")


@pytest.mark.parametrize("model_id", SERVED_IDS)
def test_non_default_sampling_parameters_are_refused_where_the_model_dropped_them(
    sdk: anthropic.Anthropic, model_id: str
) -> None:
    """Under 2023-06-01 (which allows them), a non-default temperature is a 400 on models that dropped
    sampling parameters; the default value (1.0) is accepted everywhere."""
    spec = MODELS[model_id]
    pinned = sdk.with_options(default_headers=VERSION_2023)
    assert create(pinned, model_id, extra_body={"temperature": 1.0}).stop_reason == "end_turn"
    if not spec.rejects_sampling_params:
        assert create(pinned, model_id, extra_body={"temperature": 0.2}).stop_reason == "end_turn"
        return
    for name, value in (("temperature", 0.2), ("top_p", 0.9), ("top_k", 5)):
        error = refusal(pinned, model_id, extra_body={name: value})
        assert f"`{name}` is deprecated for this model." == error.api_message


@pytest.mark.parametrize("model_id", SERVED_IDS)
def test_prefill_is_refused_where_the_model_has_none(sdk: anthropic.Anthropic, model_id: str) -> None:
    """A final assistant turn is continued by models that support prefill and refused by the others."""
    spec = MODELS[model_id]
    messages = [*MESSAGES, {"role": "assistant", "content": "The depot"}]
    if spec.supports_prefill:
        assert create(sdk, model_id, messages=messages).stop_reason == "end_turn"
        return
    error = refusal(sdk, model_id, messages=messages)
    assert "does not support assistant message prefill" in error.api_message


@pytest.mark.parametrize("tool_choice", [{"type": "any"}, {"type": "tool", "name": "record"}])
@pytest.mark.parametrize("model_id", SERVED_IDS)
def test_forced_tool_use_is_refused_where_the_model_refuses_it(
    sdk: anthropic.Anthropic, model_id: str, tool_choice: dict[str, Any]
) -> None:
    """`tool_choice` any or tool is a 400 on the models whose row says so; `auto` is accepted everywhere."""
    spec = MODELS[model_id]
    assert create(sdk, model_id, tools=[TOOL], tool_choice={"type": "auto"}).stop_reason == "end_turn"
    if not spec.rejects_forced_tool_use:
        assert create(sdk, model_id, tools=[TOOL], tool_choice=tool_choice).stop_reason == "end_turn"
        return
    error = refusal(sdk, model_id, tools=[TOOL], tool_choice=tool_choice)
    assert error.api_message.startswith("tool_choice: forced tool use is not supported")


@pytest.mark.parametrize("model_id", [spec.id for spec in SERVED if "enabled" in spec.thinking_types])
def test_forced_tool_use_is_refused_with_manual_extended_thinking(sdk: anthropic.Anthropic, model_id: str) -> None:
    """`thinking.type: "enabled"` and a forced tool cannot go together; `auto` with it is accepted."""
    thinking = thinking_param("enabled")
    assert create(sdk, model_id, tools=[TOOL], tool_choice={"type": "auto"}, thinking=thinking).content
    error = refusal(sdk, model_id, tools=[TOOL], tool_choice={"type": "any"}, thinking=thinking)
    assert "Thinking may not be enabled when tool_choice forces tool use." == error.api_message


@pytest.mark.parametrize("model_id", SERVED_IDS)
def test_mid_conversation_system_turns_are_held_to_the_models_that_take_them(model_id: str) -> None:
    """A `role: "system"` turn after the first is refused on models before Claude Opus 4.8 (the per-model
    half of the rule: which turns the roles check lets through is the generic validation's)."""
    spec = MODELS[model_id]
    turns = [*MESSAGES, {"role": "assistant", "content": "Noted."}, {"role": "system", "content": "Be brief."}]
    body = {"model": model_id, "max_tokens": 100, "messages": [*turns, *MESSAGES]}
    refused = f"messages.{len(turns) - 1}: role 'system' is not supported on this model ({model_id})"
    expected = None if spec.accepts_system_messages else refused
    assert expected == model_rule_violation(body, spec)


@pytest.mark.parametrize("model_id", SERVED_IDS)
def test_max_tokens_is_bounded_by_the_model_output_limit(sdk: anthropic.Anthropic, model_id: str) -> None:
    """`max_tokens` up to the row's max output is accepted; one more is a 400 naming the limit."""
    spec: ModelSpec = MODELS[model_id]
    assert create(sdk, model_id, max_tokens=spec.max_output_tokens).stop_reason == "end_turn"
    error = refusal(sdk, model_id, max_tokens=spec.max_output_tokens + 1)
    assert f"{spec.max_output_tokens}, which is the maximum allowed" in error.api_message
