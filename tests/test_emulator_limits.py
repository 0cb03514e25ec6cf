"""The emulator's rate limits, prompt caching, fault rules and control plane (`/_emulator/...`)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import anthropic
import httpx2
import pytest
from conftest import SEED, TEST_KEY

from pipeline.emulator import Emulator, EmulatorConfig, FaultPlan, Limits
from pipeline.models import MODELS

MODEL = "claude-haiku-5-5"
OTHER_KEY = "sk-ant-test-another-key-fedcba9876"
INSTRUCTIONS = "You read business documents carefully and label each one with the right category. " * 40
RATE_LIMIT_HEADERS = [
    f"anthropic-ratelimit-{bucket}-{part}"
    for bucket in ("requests", "tokens", "input-tokens", "output-tokens")
    for part in ("limit", "remaining", "reset")
]
RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def cached_system(text: str = INSTRUCTIONS, ttl: str | None = None) -> list[dict[str, Any]]:
    control = {"type": "ephemeral"} | ({"ttl": ttl} if ttl else {})
    return [{"type": "text", "text": text, "cache_control": control}]


def outcome(sdk: anthropic.Anthropic, text: str) -> int:
    """The status a request for `text` gets: 200 or the error status."""
    try:
        sdk.messages.create(model=MODEL, max_tokens=20, messages=user(text))
    except anthropic.APIStatusError as error:
        return error.status_code
    return 200


# -- rate limits --------------------------------------------------------------------------------


def test_rate_limit_headers_on_every_success(client: anthropic.Anthropic) -> None:
    """A success carries every `anthropic-ratelimit-*` header, with RFC 3339 reset times."""
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=20, messages=user("Hello there."))
    assert [name for name in RATE_LIMIT_HEADERS if name not in raw.headers] == []
    assert all(RFC3339_RE.match(raw.headers[name]) for name in RATE_LIMIT_HEADERS if name.endswith("-reset"))


def test_requests_per_minute_count_down_then_429(make_emulator: Any, make_client: Any) -> None:
    """With rpm=3 the remaining count goes 2, 1, 0 and the fourth request is a 429 with retry-after."""
    sdk = make_client(make_emulator(limits=Limits(rpm=3)))
    remaining = []
    for index in range(3):
        raw = sdk.messages.with_raw_response.create(model=MODEL, max_tokens=20, messages=user(f"Note {index}."))
        assert raw.headers["anthropic-ratelimit-requests-limit"] == "3"
        remaining.append(raw.headers["anthropic-ratelimit-requests-remaining"])
    assert remaining == ["2", "1", "0"]
    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk.messages.create(model=MODEL, max_tokens=20, messages=user("Note 3."))
    headers = caught.value.response.headers
    assert int(headers["retry-after"]) >= 1
    assert (headers["anthropic-ratelimit-requests-remaining"], headers["x-should-retry"]) == ("0", "true")
    assert caught.value.type == "rate_limit_error"


def test_rate_limits_are_per_api_key(make_emulator: Any, make_client: Any) -> None:
    """One key's exhausted bucket does not limit another key."""
    emu = make_emulator(limits=Limits(rpm=1))
    first, second = make_client(emu), make_client(emu, api_key=OTHER_KEY)
    assert [outcome(first, "One."), outcome(first, "Two."), outcome(second, "Three.")] == [200, 429, 200]


def test_input_tokens_per_minute(make_emulator: Any, make_client: Any) -> None:
    """With itpm=100 a 58-token prompt leaves 42 and an identical second one gets a 429."""
    sdk = make_client(make_emulator(limits=Limits(itpm=100)))
    prompt = user("word " * 40)
    input_tokens = sdk.messages.count_tokens(model=MODEL, messages=prompt).input_tokens
    raw = sdk.messages.with_raw_response.create(model=MODEL, max_tokens=20, messages=prompt)
    assert raw.parse().usage.input_tokens == input_tokens
    assert 100 - input_tokens == int(raw.headers["anthropic-ratelimit-input-tokens-remaining"])
    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk.messages.create(model=MODEL, max_tokens=20, messages=prompt)
    assert int(caught.value.response.headers["retry-after"]) >= 1


def test_output_tokens_reserve_max_tokens_and_refund_the_unused(make_emulator: Any, make_client: Any) -> None:
    """otpm=1000: max_tokens is reserved at admission, and what the answer did not use is given back."""
    sdk = make_client(make_emulator(limits=Limits(otpm=1000)))
    raw = sdk.messages.with_raw_response.create(model=MODEL, max_tokens=1000, messages=user("A short note."))
    used = raw.parse().usage.output_tokens
    assert 0 < used < 100
    assert 1000 - used == int(raw.headers["anthropic-ratelimit-output-tokens-remaining"])
    with pytest.raises(anthropic.RateLimitError):
        sdk.messages.create(model=MODEL, max_tokens=1000, messages=user("Another short note."))
    message = sdk.messages.create(model=MODEL, max_tokens=900, messages=user("Another short note."))
    assert message.usage.output_tokens < 100


def test_tokens_headers_are_input_and_output_combined(make_emulator: Any, make_client: Any) -> None:
    """`tokens-*` add the input and output buckets up (rate-limit docs: total = input + output), not the tighter."""
    sdk = make_client(make_emulator(limits=Limits(itpm=80_000, otpm=16_000)))
    raw = sdk.messages.with_raw_response.create(model=MODEL, max_tokens=1000, messages=user("A short note."))
    headers = raw.headers
    assert "96000" == headers["anthropic-ratelimit-tokens-limit"]
    input_left = int(headers["anthropic-ratelimit-input-tokens-remaining"])
    output_left = int(headers["anthropic-ratelimit-output-tokens-remaining"])
    assert 80_000 > input_left > 79_000
    assert 16_000 > output_left > 15_000
    assert input_left + output_left == int(headers["anthropic-ratelimit-tokens-remaining"])
    resets = [headers[f"anthropic-ratelimit-{name}-reset"] for name in ("input-tokens", "output-tokens", "tokens")]
    assert max(resets[:2]) == resets[2]


def test_cache_reads_do_not_count_against_input_tokens_per_minute(make_emulator: Any, make_client: Any) -> None:
    """A cache write spends the input bucket, a cache read does not."""
    sdk = make_client(make_emulator(limits=Limits(itpm=1000)))
    first = sdk.messages.create(model=MODEL, max_tokens=20, system=cached_system(), messages=user("First."))
    second = sdk.messages.create(model=MODEL, max_tokens=20, system=cached_system(), messages=user("Second."))
    assert first.usage.cache_creation_input_tokens > 500
    assert first.usage.cache_creation_input_tokens == second.usage.cache_read_input_tokens
    with pytest.raises(anthropic.RateLimitError):
        sdk.messages.create(model=MODEL, max_tokens=20, system=cached_system("Different. " * 200), messages=user("x"))


# -- prompt caching ---------------------------------------------------------------------------


def test_cache_write_then_read_with_a_different_user_message(client: anthropic.Anthropic) -> None:
    """A cached system prefix above the minimum is written once, then read by the next request."""
    first = client.messages.create(model=MODEL, max_tokens=20, system=cached_system(), messages=user("Doc one."))
    second = client.messages.create(model=MODEL, max_tokens=20, system=cached_system(), messages=user("Doc two."))
    written = first.usage.cache_creation_input_tokens
    assert written >= MODELS[MODEL].cache_min_tokens
    assert (0, written) == (first.usage.cache_read_input_tokens, first.usage.cache_creation.ephemeral_5m_input_tokens)
    assert (written, 0) == (second.usage.cache_read_input_tokens, second.usage.cache_creation_input_tokens)
    total = client.messages.count_tokens(model=MODEL, system=cached_system(), messages=user("Doc two."))
    assert total.input_tokens == second.usage.input_tokens + second.usage.cache_read_input_tokens


@pytest.mark.parametrize(
    ("model", "system_text"),
    [(MODEL, "Label the document. " * 20), ("claude-haiku-4-5", INSTRUCTIONS)],
    ids=["short-prefix", "model-minimum-4096"],
)
def test_prefix_below_the_model_minimum_is_not_cached(
    client: anthropic.Anthropic, model: str, system_text: str
) -> None:
    """A prefix shorter than the model's minimum silently caches nothing: both counters stay 0."""
    for text in ("Doc one.", "Doc two."):
        usage = client.messages.create(
            model=model, max_tokens=20, system=cached_system(system_text), messages=user(text)
        ).usage
        assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)


def test_one_hour_ttl_is_reported_separately(client: anthropic.Anthropic) -> None:
    """A `ttl: "1h"` breakpoint's write is reported under ephemeral_1h_input_tokens."""
    usage = client.messages.create(
        model=MODEL, max_tokens=20, system=cached_system(ttl="1h"), messages=user("Doc.")
    ).usage
    assert usage.cache_creation_input_tokens > 0
    assert (0, usage.cache_creation_input_tokens) == (
        usage.cache_creation.ephemeral_5m_input_tokens,
        usage.cache_creation.ephemeral_1h_input_tokens,
    )


def test_cache_is_keyed_on_the_exact_prefix_and_the_api_key(emulator: Emulator, make_client: Any) -> None:
    """A changed prefix or another API key misses the cache and writes again."""
    sdk, other = make_client(emulator), make_client(emulator, api_key=OTHER_KEY)
    sdk.messages.create(model=MODEL, max_tokens=20, system=cached_system(), messages=user("Doc."))
    changed = sdk.messages.create(
        model=MODEL, max_tokens=20, system=cached_system(INSTRUCTIONS + "!"), messages=user("Doc.")
    )
    other_key = other.messages.create(model=MODEL, max_tokens=20, system=cached_system(), messages=user("Doc."))
    for usage in (changed.usage, other_key.usage):
        assert usage.cache_read_input_tokens == 0
        assert usage.cache_creation_input_tokens > 0


def test_max_tokens_zero_prewarms_the_cache(client: anthropic.Anthropic) -> None:
    """A `max_tokens=0` request writes the cache, so the first real request reads it."""
    warm = client.messages.create(model=MODEL, max_tokens=0, system=cached_system(), messages=user("Warm."))
    real = client.messages.create(model=MODEL, max_tokens=20, system=cached_system(), messages=user("Doc."))
    assert warm.content == []
    assert warm.usage.cache_creation_input_tokens == real.usage.cache_read_input_tokens
    assert real.usage.cache_read_input_tokens > 0


def test_top_level_cache_control_caches_the_whole_prompt(client: anthropic.Anthropic) -> None:
    """Automatic caching (top-level `cache_control`) caches up to the last block; a repeat reads it all."""
    prompt = user(INSTRUCTIONS)
    first = client.messages.create(model=MODEL, max_tokens=20, messages=prompt, cache_control={"type": "ephemeral"})
    again = client.messages.create(model=MODEL, max_tokens=20, messages=prompt, cache_control={"type": "ephemeral"})
    assert first.usage.cache_creation_input_tokens > 0
    assert first.usage.cache_creation_input_tokens == again.usage.cache_read_input_tokens


# -- fault rules --------------------------------------------------------------------------------


def test_fault_outcomes_are_deterministic_per_seed(make_emulator: Any, make_client: Any) -> None:
    """Same seed and same requests give the same faults; another fault seed gives others."""
    rules = [{"kind": "overloaded", "probability": 0.3}]
    texts = [f"Document number {index} for the determinism check." for index in range(40)]
    runs = []
    for seed in (SEED, SEED, SEED + 1):
        emu = make_emulator(seed=seed)
        emu.control.set_faults(rules)
        sdk = make_client(emu)
        runs.append([outcome(sdk, text) for text in texts])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert {200, 529} == set(runs[0])


@pytest.mark.parametrize("probability", [0.0, 0.1, 0.25, 0.5, 1.0])
def test_fault_probability_is_roughly_honoured(
    emulator: Emulator, client: anthropic.Anthropic, probability: float
) -> None:
    """Over 400 distinct requests a rule with probability p fires 400p times, give or take 4 standard deviations."""
    emulator.control.set_faults([{"kind": "server_error", "probability": probability}])
    fired = sum(outcome(client, f"Request {index} of the probability run.") == 500 for index in range(400))
    expected = 400 * probability
    margin = 4 * math.sqrt(400 * probability * (1 - probability))
    assert expected - margin <= fired <= expected + margin


def test_a_retried_request_gets_a_fresh_draw(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """Draws depend on how often a body was seen, so resending the same body can succeed."""
    emulator.control.set_faults([{"kind": "overloaded", "probability": 0.5}])
    outcomes = {outcome(client, "Always the very same request body.") for _ in range(30)}
    assert {200, 529} == outcomes


def test_times_limits_how_often_a_rule_fires(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """A rule with `times = 3` fails exactly the first three requests."""
    emulator.control.set_faults([{"kind": "overloaded", "times": 3}])
    assert [outcome(client, f"Request {index}.") for index in range(5)] == [529, 529, 529, 200, 200]


def test_emulators_from_one_configuration_count_fault_rules_apart(make_client: Any) -> None:
    """Two emulators built from one configuration each fire a `times = 1` rule once: the counts are per emulator."""
    plan = FaultPlan.from_dict({"rules": [{"kind": "overloaded", "times": 1}]}, seed=SEED)
    config = EmulatorConfig(seed=SEED, faults=plan)
    for _ in range(2):
        with Emulator(config) as emulator:
            client = make_client(emulator)
            assert [outcome(client, f"Request {index}.") for index in range(2)] == [529, 200]


def test_match_limits_a_rule_to_matching_requests(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """A rule with `match` only hits requests whose body contains the string."""
    emulator.control.set_faults([{"kind": "permission", "match": "ACME"}])
    texts = ["Invoice from ACME Corp.", "Invoice from Contoso.", "ACME again.", "Nobody."]
    assert [outcome(client, text) for text in texts] == [403, 200, 403, 200]


def test_first_matching_rule_decides(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """Rules are tried in order: an exhausted scripted rule hands over to the next."""
    emulator.control.set_faults([{"kind": "overloaded", "times": 1}, {"kind": "server_error", "statuses": [503]}])
    assert [outcome(client, f"Request {index}.") for index in range(3)] == [529, 503, 503]


def test_refusal_fault_answers_a_refusal(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """A `refusal` fault gives a 200 with stop_reason "refusal", no content and refusal stop_details."""
    emulator.control.set_faults([{"kind": "refusal"}])
    message = client.messages.create(model=MODEL, max_tokens=20, messages=user("Doc."))
    assert (message.stop_reason, message.content) == ("refusal", [])
    assert message.stop_details is not None
    assert message.stop_details.type == "refusal"


def test_malformed_output_fault_breaks_the_json(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """A `malformed_output` fault answers structured-output requests with text that is not JSON."""
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string"}},
        "required": ["label"],
        "additionalProperties": False,
    }
    emulator.control.set_faults([{"kind": "malformed_output"}])
    message = client.messages.create(
        model=MODEL,
        max_tokens=50,
        messages=user("Doc."),
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    with pytest.raises(json.JSONDecodeError):
        json.loads(message.content[-1].text)


def test_endpoints_choose_which_api_a_rule_hits(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """Rules hit Messages by default; `endpoints` points them at count_tokens, batches or models instead."""
    emulator.control.set_faults(
        [
            {"kind": "overloaded", "endpoints": ["count_tokens"]},
            {"kind": "permission", "endpoints": ["batches"]},
            {"kind": "server_error", "statuses": [503], "endpoints": ["models"]},
        ]
    )
    assert client.messages.create(model=MODEL, max_tokens=20, messages=user("Doc.")).id.startswith("msg_")
    with pytest.raises(anthropic.OverloadedError):
        client.messages.count_tokens(model=MODEL, messages=user("Doc."))
    with pytest.raises(anthropic.PermissionDeniedError):
        client.messages.batches.create(
            requests=[{"custom_id": "a", "params": {"model": MODEL, "max_tokens": 5, "messages": user("Doc.")}}]
        )
    with pytest.raises(anthropic.ServiceUnavailableError):
        client.models.retrieve(MODEL)
    assert emulator.control.stats()["batches_created"] == 0


def test_faults_can_be_changed_at_run_time(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """`PUT /_emulator/faults` replaces the rules of a running emulator; an empty list clears them."""
    before = outcome(client, "Doc.")
    plan = emulator.control.set_faults([{"kind": "overloaded"}], seed=99)
    during = outcome(client, "Doc.")
    emulator.control.set_faults([])
    after = outcome(client, "Doc.")
    assert [before, during, after] == [200, 529, 200]
    assert (plan["seed"], [rule["kind"] for rule in plan["rules"]]) == (99, ["overloaded"])
    assert emulator.control.faults() == {"seed": SEED, "rules": []}


def test_fault_rules_read_back_with_their_defaults(emulator: Emulator) -> None:
    """`GET /_emulator/faults` shows every field of each rule, defaults filled in."""
    emulator.control.set_faults([{"kind": "rate_limit", "match": "X"}])
    expected = {
        "kind": "rate_limit",
        "probability": 1.0,
        "match": "X",
        "times": None,
        "statuses": [500],
        "seconds": 5.0,
        "retry_after_s": 1.0,
        "endpoints": ["messages"],
        "message": None,
    }
    assert [expected] == emulator.control.faults()["rules"]


@pytest.mark.parametrize(
    ("rules", "fragment"),
    [
        ([{"kind": "meteor_strike"}], "kind must be one of"),
        ([{"kind": "overloaded", "odds": 0.5}], "unknown field(s) odds"),
        ([{"kind": "overloaded", "probability": 1.5}], "probability must be between 0 and 1"),
        ([{"kind": "overloaded", "probability": None}], "probability must be a number"),
        ([{"kind": "hang", "seconds": 601}], "seconds must be between 0 and 600"),
        ([{"kind": "overloaded", "times": "twice"}], "times must be a whole number"),
        ([{"kind": "server_error", "statuses": [200]}], "statuses must be a non-empty list of 5xx"),
        ([{"kind": "overloaded", "match": 5}], "match must be a string"),
        ([{"kind": "overloaded", "endpoints": ["admin"]}], "endpoints must be a list among"),
        (["overloaded"], "a rule must be a table of fields"),
    ],
)
def test_invalid_fault_rules_are_refused_and_the_old_ones_kept(
    emulator: Emulator, rules: list[Any], fragment: str
) -> None:
    """A bad rule set is a 400 naming the problem; the rules in force do not change."""
    emulator.control.set_faults([{"kind": "overloaded", "match": "KEEP"}])
    response = httpx2.put(emulator.base_url + "/_emulator/faults", json={"rules": rules})
    assert response.status_code == 400
    assert fragment in response.json()["error"]
    assert [rule["match"] for rule in emulator.control.faults()["rules"]] == ["KEEP"]


# -- control plane ------------------------------------------------------------------------------


def test_stats_count_statuses_billing_and_batches(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """`/_emulator/stats` counts requests by status and endpoint, billed messages and their tokens, batches."""
    usages = [client.messages.create(model=MODEL, max_tokens=20, messages=user(f"Doc {n}.")).usage for n in range(3)]
    emulator.control.set_faults([{"kind": "overloaded", "times": 1}])
    assert outcome(client, "Doc 4.") == 529
    client.messages.batches.create(
        requests=[{"custom_id": "a", "params": {"model": MODEL, "max_tokens": 5, "messages": user("Doc.")}}]
    )
    stats = emulator.control.stats()
    assert stats["requests"] == {
        "total": 5,
        "by_status": {"200": 4, "529": 1},
        "by_endpoint": {"messages": 4, "batches": 1},
    }
    assert (stats["messages_billed"], stats["batches_created"], stats["early_retries"]) == (3, 1, 0)
    assert sum(usage.input_tokens for usage in usages) == stats["tokens"]["input"]
    assert sum(usage.output_tokens for usage in usages) == stats["tokens"]["output"]


def test_journal_records_requests_without_the_api_key(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """The journal names keys by a short hash; the key itself appears nowhere in the control plane."""
    client.messages.create(model=MODEL, max_tokens=20, messages=user("Doc."))
    with client.messages.stream(model=MODEL, max_tokens=20, messages=user("Doc.")) as stream:
        stream.until_done()
    client.messages.count_tokens(model=MODEL, messages=user("Doc."))
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="claude-nope-1", max_tokens=20, messages=user("Doc."))
    client.models.list()
    journal_text = httpx2.get(emulator.base_url + "/_emulator/requests").text
    stats_text = httpx2.get(emulator.base_url + "/_emulator/stats").text
    assert TEST_KEY not in journal_text
    assert TEST_KEY not in stats_text
    entries = json.loads(journal_text)["data"]
    assert [entry["status"] for entry in entries] == [200, 200, 200, 404, 200]
    assert len({entry["key"] for entry in entries}) == 1
    assert re.fullmatch(r"key_[0-9a-f]{12}", entries[0]["key"])
    assert [entry["request_id"] for entry in entries] == [entry["request_id"] for entry in emulator.control.requests()]


def test_journal_limit_and_bounded_size(make_emulator: Any, make_client: Any) -> None:
    """`?limit=N` returns the newest N entries; the journal keeps at most `journal_size`, stats count all."""
    emu = make_emulator(journal_size=3)
    sdk = make_client(emu)
    ids = [sdk.messages.create(model=MODEL, max_tokens=5, messages=user(f"Doc {n}."))._request_id for n in range(5)]
    assert ids[-3:] == [entry["request_id"] for entry in emu.control.requests()]
    assert ids[-2:] == [entry["request_id"] for entry in emu.control.requests(limit=2)]
    assert emu.control.stats()["requests"]["total"] == 5


def test_reset_forgets_everything_but_the_configuration(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """`/_emulator/reset` clears the journal, counters, batches, cache and rule counts; the rules stay."""
    emulator.control.set_faults([{"kind": "overloaded", "times": 1, "match": "FLAKY"}])
    assert [outcome(client, "FLAKY doc."), outcome(client, "FLAKY doc.")] == [529, 200]
    client.messages.create(model=MODEL, max_tokens=20, system=cached_system(), messages=user("Doc."))
    batch = client.messages.batches.create(
        requests=[{"custom_id": "a", "params": {"model": MODEL, "max_tokens": 5, "messages": user("Doc.")}}]
    )
    emulator.control.reset()
    assert emulator.control.requests() == []
    assert emulator.control.stats()["requests"] == {"total": 0, "by_status": {}, "by_endpoint": {}}
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)
    again = client.messages.create(model=MODEL, max_tokens=20, system=cached_system(), messages=user("Doc."))
    assert (again.usage.cache_read_input_tokens, again.usage.cache_creation_input_tokens > 0) == (0, True)
    assert outcome(client, "FLAKY doc.") == 529


def test_early_retries_are_counted(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """A body sent again before the retry-after its 429 gave is counted as an early retry; others are not."""
    emulator.control.set_faults([{"kind": "rate_limit", "retry_after_s": 30, "times": 1}])
    assert outcome(client, "Patience is a virtue.") == 429
    assert outcome(client, "A different body.") == 200
    assert emulator.control.stats()["early_retries"] == 0
    assert outcome(client, "Patience is a virtue.") == 200
    assert emulator.control.stats()["early_retries"] == 1
    assert [entry["early"] for entry in emulator.control.requests()[1:]] == [False, True]
