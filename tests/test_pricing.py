"""Cost of a response from its usage and the model's list prices."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pipeline.pricing
from pipeline.errors import ConfigError
from pipeline.pricing import TokenUsage, cost_usd, model_prices


@pytest.fixture(autouse=True)
def _fresh_overrides(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No DOCPIPE_PRICES from the environment, and no overrides remembered from another test."""
    monkeypatch.delenv("DOCPIPE_PRICES", raising=False)
    monkeypatch.setattr(pipeline.pricing, "_last_read", None)
    yield


def test_haiku_5_5_cost_by_hand() -> None:
    """Haiku 5.5: $0.10 in, $0.50 out, $0.01 cache read, $0.125 5m write, $0.20 1h write per million."""
    usage = TokenUsage(
        input_tokens=1_000,
        output_tokens=500,
        cache_read_tokens=2_000,
        cache_write_5m_tokens=400,
        cache_write_1h_tokens=100,
    )
    # 1000*0.10 + 500*0.50 + 2000*0.01 + 400*0.125 + 100*0.20 = 100 + 250 + 20 + 50 + 20 = 440 micro-dollars
    assert pytest.approx(440e-6) == cost_usd("claude-haiku-5-5", usage)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        pytest.param(TokenUsage(input_tokens=100_000), 0.01, id="input"),
        pytest.param(TokenUsage(output_tokens=1_000_000), 0.50, id="output"),
        pytest.param(TokenUsage(cache_read_tokens=1_000_000), 0.01 * 5, id="cache-read-over-threshold"),
        pytest.param(TokenUsage(cache_read_tokens=100_000), 0.001, id="cache-read"),
        pytest.param(TokenUsage(cache_write_5m_tokens=100_000), 0.0125, id="write-5m"),
        pytest.param(TokenUsage(cache_write_1h_tokens=100_000), 0.02, id="write-1h"),
    ],
)
def test_each_price_is_applied(usage: TokenUsage, expected: float) -> None:
    """Each token class is billed at its own Haiku 5.5 price (the long-prompt tier applies over 100K)."""
    assert pytest.approx(expected) == cost_usd("claude-haiku-5-5", usage)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        pytest.param(TokenUsage(input_tokens=100_000, output_tokens=1_000), (10_000 + 500) / 1e6, id="at-threshold"),
        pytest.param(TokenUsage(input_tokens=100_001, output_tokens=1_000), (10_000.1 + 500) * 5 / 1e6, id="above"),
        pytest.param(
            TokenUsage(input_tokens=50_000, cache_read_tokens=40_000, cache_write_5m_tokens=10_001),
            (5_000 + 400 + 1_250.125) * 5 / 1e6,
            id="cache-tokens-count-toward-threshold",
        ),
    ],
)
def test_long_prompt_tier_multiplies_the_whole_request(usage: TokenUsage, expected: float) -> None:
    """Haiku 5.5 bills the whole request (output too) at 5x when the prompt exceeds 100K tokens."""
    assert pytest.approx(expected) == cost_usd("claude-haiku-5-5", usage)


def test_other_models_have_no_long_prompt_tier() -> None:
    """Sonnet 5.5 bills a 200K-token prompt at its flat $2 per million."""
    assert pytest.approx(0.4) == cost_usd("claude-sonnet-5-5", TokenUsage(input_tokens=200_000))


@pytest.mark.parametrize(
    ("model", "usage", "expected"),
    [
        ("claude-haiku-5-5", TokenUsage(input_tokens=1_000, output_tokens=500), 350e-6 * 0.5),
        ("claude-haiku-5-5", TokenUsage(input_tokens=200_000), 0.02 * 5 * 0.5),
        ("claude-opus-5", TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000), 30.0 * 0.5),
    ],
)
def test_batch_discount_halves_the_cost(model: str, usage: TokenUsage, expected: float) -> None:
    """batch=True applies the Message Batches discount (50%) on top of any tier."""
    assert pytest.approx(expected) == cost_usd(model, usage, batch=True)


def test_unknown_model_has_no_cost() -> None:
    """A model docpipe has no prices for costs None, not zero."""
    assert cost_usd("claude-unknown-1", TokenUsage(input_tokens=10)) is None


def _prices_file(tmp_path: Path, content: Any) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def test_docpipe_prices_overrides_named_prices_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DOCPIPE_PRICES=file.json replaces the prices it names and keeps the others."""
    path = _prices_file(tmp_path, {"claude-haiku-5-5": {"input_usd": 1.0, "cache_write_1h_usd": 3}})
    monkeypatch.setenv("DOCPIPE_PRICES", str(path))
    usage = TokenUsage(input_tokens=1_000, output_tokens=1_000, cache_write_1h_tokens=1_000)
    # 1000*1.0 + 1000*0.50 + 1000*3.0 micro-dollars
    assert pytest.approx(4_500e-6) == cost_usd("claude-haiku-5-5", usage)
    assert pytest.approx(2.0) == cost_usd("claude-sonnet-5-5", TokenUsage(input_tokens=1_000_000))
    spec = model_prices("claude-haiku-5-5")
    assert spec is not None
    assert (1.0, 0.5, 3.0) == (spec.input_usd, spec.output_usd, spec.cache_write_1h_usd)


def test_an_edited_price_file_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DOCPIPE_PRICES file edited during the process (a notebook) applies to the next cost, not a stale copy."""
    path = _prices_file(tmp_path, {"claude-sonnet-5-5": {"input_usd": 1.0}})
    monkeypatch.setenv("DOCPIPE_PRICES", str(path))
    usage = TokenUsage(input_tokens=1_000_000)
    assert pytest.approx(1.0) == cost_usd("claude-sonnet-5-5", usage)
    modified_ns = path.stat().st_mtime_ns
    _prices_file(tmp_path, {"claude-sonnet-5-5": {"input_usd": 2.0}})
    os.utime(path, ns=(modified_ns, modified_ns + 1_000_000_000))  # however coarse the file system's clock
    assert pytest.approx(2.0) == cost_usd("claude-sonnet-5-5", usage)
    _prices_file(tmp_path, {"claude-sonnet-5-5": {"input_usd": 30.0}})
    os.utime(path, ns=(modified_ns, modified_ns + 1_000_000_000))  # same mtime, another size
    assert pytest.approx(30.0) == cost_usd("claude-sonnet-5-5", usage)


def test_another_price_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pointing DOCPIPE_PRICES at another file, or unsetting it, takes effect at the next cost."""
    first = _prices_file(tmp_path, {"claude-sonnet-5-5": {"input_usd": 1.0}})
    second = tmp_path / "other.json"
    second.write_text(json.dumps({"claude-sonnet-5-5": {"input_usd": 4.0}}), encoding="utf-8")
    usage = TokenUsage(input_tokens=1_000_000)
    monkeypatch.setenv("DOCPIPE_PRICES", str(first))
    assert pytest.approx(1.0) == cost_usd("claude-sonnet-5-5", usage)
    monkeypatch.setenv("DOCPIPE_PRICES", str(second))
    assert pytest.approx(4.0) == cost_usd("claude-sonnet-5-5", usage)
    monkeypatch.delenv("DOCPIPE_PRICES")
    assert pytest.approx(2.0) == cost_usd("claude-sonnet-5-5", usage)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("{not json", id="invalid-json"),
        pytest.param([1, 2], id="not-an-object"),
        pytest.param({"claude-haiku-5-5": {"input": 1.0}}, id="unknown-price-key"),
        pytest.param({"claude-haiku-5-5": 1.0}, id="prices-not-an-object"),
        pytest.param({"claude-haiku-5-5": {"input_usd": "cheap"}}, id="price-not-a-number"),
        pytest.param({"claude-haiku-5-5": {"input_usd": None}}, id="price-null"),
        pytest.param({"claude-haiku-5-5": {"input_usd": True}}, id="price-bool"),
    ],
)
def test_bad_price_overrides_are_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: Any) -> None:
    """An unreadable or malformed DOCPIPE_PRICES file is a ConfigError naming the variable and the file."""
    path = _prices_file(tmp_path, content)
    monkeypatch.setenv("DOCPIPE_PRICES", str(path))
    with pytest.raises(ConfigError, match=f"DOCPIPE_PRICES={path}"):
        cost_usd("claude-haiku-5-5", TokenUsage(input_tokens=1))


def test_missing_price_file_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DOCPIPE_PRICES naming a file that does not exist is a ConfigError."""
    monkeypatch.setenv("DOCPIPE_PRICES", str(tmp_path / "absent.json"))
    with pytest.raises(ConfigError, match="cannot read price overrides"):
        cost_usd("claude-haiku-5-5", TokenUsage(input_tokens=1))


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        pytest.param(
            {"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 40},
            TokenUsage(10, 20, 30, 40, 0),
            id="no-breakdown",
        ),
        pytest.param(
            {
                "input_tokens": 10,
                "output_tokens": 20,
                "cache_read_input_tokens": 30,
                "cache_creation_input_tokens": 40,
                "cache_creation": {"ephemeral_5m_input_tokens": 15, "ephemeral_1h_input_tokens": 25},
            },
            TokenUsage(10, 20, 30, 15, 25),
            id="breakdown",
        ),
        pytest.param(
            {
                "input_tokens": 1,
                "output_tokens": 2,
                "cache_creation_input_tokens": 40,
                "cache_creation": {"ephemeral_1h_input_tokens": 25},
            },
            TokenUsage(1, 2, 0, 15, 25),
            id="breakdown-short-of-total",
        ),
        pytest.param(
            {
                "input_tokens": 5,
                "output_tokens": 6,
                "cache_read_input_tokens": None,
                "cache_creation_input_tokens": None,
                "cache_creation": None,
            },
            TokenUsage(5, 6, 0, 0, 0),
            id="nulls",
        ),
        pytest.param({}, TokenUsage(), id="empty"),
    ],
)
def test_token_usage_from_api_usage(usage: dict[str, Any], expected: TokenUsage) -> None:
    """TokenUsage reads the API's usage object, with or without the cache_creation breakdown."""
    actual = TokenUsage.from_usage(usage)
    assert expected == actual
    assert expected.cache_write_5m_tokens + expected.cache_write_1h_tokens == actual.cache_write_tokens


def test_prompt_tokens_sum_every_input_class() -> None:
    """prompt_tokens counts uncached input, cache reads and both kinds of cache writes."""
    assert 1 + 3 + 4 + 5 == TokenUsage(1, 2, 3, 4, 5).prompt_tokens


def test_an_alias_costs_what_its_model_costs() -> None:
    """A job naming `claude-haiku-4-5` is priced as `claude-haiku-4-5-20251001`, the model the alias names."""
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert pytest.approx(6.0) == cost_usd("claude-haiku-4-5", usage)
    assert cost_usd("claude-haiku-4-5", usage) == cost_usd("claude-haiku-4-5-20251001", usage)


@pytest.mark.parametrize("named", ["claude-haiku-4-5", "claude-haiku-4-5-20251001"])
def test_a_price_override_may_name_the_alias_or_the_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, named: str
) -> None:
    """DOCPIPE_PRICES applies to a job on the alias whether the file names the alias or the model's id."""
    monkeypatch.setenv("DOCPIPE_PRICES", str(_prices_file(tmp_path, {named: {"input_usd": 2.0}})))
    spec = model_prices("claude-haiku-4-5")
    assert spec is not None
    assert 2.0 == spec.input_usd


def test_a_jobs_prices_replace_the_table_and_a_prices_file(tmp_path, monkeypatch) -> None:
    """[prices] in a job: the rows' cost uses them, over DOCPIPE_PRICES and the model table."""
    from pipeline.jobs import load_job
    from pipeline.pricing import TokenUsage, cost_usd

    prices_file = tmp_path / "prices.json"
    prices_file.write_text('{"claude-haiku-5-5": {"input_usd": 7.0, "output_usd": 9.0}}')
    monkeypatch.setenv("DOCPIPE_PRICES", str(prices_file))
    job_path = tmp_path / "job.toml"
    job_path.write_text(
        '[job]\ninstructions = "Label it."\n[[fields]]\nname = "label"\ntype = "string"\n'
        "[prices]\ninput_usd = 1.0\n"
    )
    job = load_job(job_path)
    usage = TokenUsage(input_tokens=10_000, output_tokens=10_000)  # under Haiku 5.5's long-prompt threshold
    expected = (10_000 * 1.0 + 10_000 * 9.0) / 1e6  # the job's input price, the file's output price
    assert cost_usd(job.model, usage, prices=job.prices) == pytest.approx(expected)
    assert cost_usd(job.model, usage, prices=job.prices, batch=True) == pytest.approx(expected / 2)


def test_a_bad_price_in_a_job_names_its_key(tmp_path) -> None:
    from pipeline.errors import JobError
    from pipeline.jobs import load_job

    job_path = tmp_path / "job.toml"
    head = '[job]\ninstructions = "x"\n[[fields]]\nname = "a"\ntype = "string"\n'
    job_path.write_text(head + "[prices]\ninput_usd = -1\n")
    with pytest.raises(JobError, match=r"prices\.input_usd"):
        load_job(job_path)
    job_path.write_text(head + "[prices]\nfoo = 1\n")
    with pytest.raises(JobError, match="prices"):
        load_job(job_path)
