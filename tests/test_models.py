"""The model table: every model's prices keep the ratios the API's price list has, so a swap shows."""

from __future__ import annotations

import pytest

from pipeline.models import MODELS, ModelSpec, get_model

# Cache reads cost 0.1x input on older models and less on newer ones (0.05x, 0.025x), never more.
CACHE_READ_MAX_RATIO = 0.1
CACHE_WRITE_5M_RATIO = 1.25
CACHE_WRITE_1H_RATIO = 2.0


@pytest.mark.parametrize("spec", MODELS.values(), ids=list(MODELS))
def test_prices_keep_the_price_list_ratios(spec: ModelSpec) -> None:
    """5-minute writes cost 1.25x input, 1-hour writes 2x, reads at most 0.1x, output more than input."""
    assert pytest.approx(CACHE_WRITE_5M_RATIO * spec.input_usd) == spec.cache_write_5m_usd
    assert pytest.approx(CACHE_WRITE_1H_RATIO * spec.input_usd) == spec.cache_write_1h_usd
    assert 0 < spec.cache_read_usd <= CACHE_READ_MAX_RATIO * spec.input_usd + 1e-12
    assert spec.output_usd > spec.input_usd


@pytest.mark.parametrize(
    ("model", "cache_read_usd"),
    [
        ("claude-fable-5-1", 0.25),
        ("claude-fable-5", 1.0),
        ("claude-opus-5-5", 0.20),
        ("claude-sonnet-5-5", 0.10),
        ("claude-haiku-5-5", 0.01),
        ("claude-haiku-4-5", 0.10),
    ],
)
def test_cache_read_prices_are_the_listed_ones(model: str, cache_read_usd: float) -> None:
    """Cache reads, whose ratio to input varies by model, are pinned to the price list."""
    spec = get_model(model)
    assert spec is not None
    assert cache_read_usd == spec.cache_read_usd


def test_every_alias_names_one_row() -> None:
    """An alias is never also a row's id, and names exactly one row, whose spec it resolves to."""
    ids = [spec.id for spec in MODELS.values()]
    aliases = [alias for spec in MODELS.values() for alias in spec.aliases]
    assert len(aliases) == len(set(aliases))
    assert set() == set(aliases) & set(ids)
    for spec in MODELS.values():
        for alias in spec.aliases:
            assert get_model(alias) is spec
            assert alias == spec.id.rsplit("-", 1)[0]  # the dated id without its date


@pytest.mark.parametrize(
    ("model", "max_input_tokens", "max_output_tokens"),
    [
        ("claude-sonnet-4-6", 1_000_000, 128_000),
        ("claude-haiku-5-5", 1_000_000, 128_000),
        ("claude-opus-5-5", 1_000_000, 128_000),
        ("claude-haiku-4-5", 200_000, 64_000),
        ("claude-opus-4-5", 200_000, 64_000),
    ],
)
def test_output_limits_are_the_documented_ones(model: str, max_input_tokens: int, max_output_tokens: int) -> None:
    """Context windows and output limits as the models overview and model pages give them."""
    spec = get_model(model)
    assert spec is not None
    assert (max_input_tokens, max_output_tokens) == (spec.max_input_tokens, spec.max_output_tokens)


def test_lifecycle_dates_are_consistent() -> None:
    """Deprecated and retired rows carry both dates, deprecation first; active rows carry none."""
    for spec in MODELS.values():
        dated = (spec.deprecated_at, spec.retires_at)
        if spec.lifecycle == "active":
            assert (None, None) == dated, spec.id
        else:
            assert spec.deprecated_at is not None and spec.retires_at is not None, spec.id
            assert spec.deprecated_at < spec.retires_at, spec.id


def test_always_thinking_models_cannot_turn_thinking_off() -> None:
    """A model whose thinking is always on accepts neither `disabled` nor `between_tools`; one that never
    thinks unasked knows nothing of `between_tools`."""
    for spec in MODELS.values():
        if spec.thinking_default == "always":
            assert not {"disabled", "between_tools"} & spec.thinking_types, spec.id
        if spec.thinking_default == "off":
            assert "between_tools" not in spec.thinking_types, spec.id
