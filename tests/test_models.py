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
