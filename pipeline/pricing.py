"""What a response cost, in USD, from its usage and the model's list prices.

Prices come from `models.py`; `DOCPIPE_PRICES` may name a JSON file that overrides any of them, and a
job's `[prices]` table overrides both for that job,
e.g. `{"claude-haiku-5-5": {"input_usd": 0.12}}`, so a price change needs no release. A model the
table does not know (released after this docpipe) is priced from those two alone, given at least
its input and output prices; its cache prices default to the API's multipliers of the input price
(writes 1.25x for 5 minutes and 2x for 1 hour, reads 0.1x:
https://platform.claude.com/docs/en/build-with-claude/prompt-caching) and its batch discount to 50%.
Without them it has no price: `cost_usd` is None, never a guess. The file is
read again whenever the variable names another file or the file changes (its modification time,
size or inode), so a price edited in a notebook applies to the next cost computed, without a restart.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .models import ModelSpec, get_model

__all__ = ["PriceSheet", "TokenUsage", "cost_usd", "model_prices"]

PRICES_ENV = "DOCPIPE_PRICES"
PRICE_FIELDS = ("input_usd", "output_usd", "cache_write_5m_usd", "cache_write_1h_usd", "cache_read_usd")


# Cache prices as multiples of the input price, for a model only a prices file or a job prices (docs above).
CACHE_MULTIPLIERS = {"cache_write_5m_usd": 1.25, "cache_write_1h_usd": 2.0, "cache_read_usd": 0.1}


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceSheet:
    """What one request of a model costs, per million tokens, and the tiers and discounts that apply."""

    input_usd: float
    output_usd: float
    cache_read_usd: float
    cache_write_5m_usd: float
    cache_write_1h_usd: float
    long_prompt_threshold_tokens: int | None = None  # a prompt over this is billed at the multiplier
    long_prompt_multiplier: float = 1.0
    batch_discount: float = 0.5

    @classmethod
    def of(cls, spec: ModelSpec) -> PriceSheet:
        return cls(
            input_usd=spec.input_usd, output_usd=spec.output_usd, cache_read_usd=spec.cache_read_usd,
            cache_write_5m_usd=spec.cache_write_5m_usd, cache_write_1h_usd=spec.cache_write_1h_usd,
            long_prompt_threshold_tokens=spec.long_prompt_threshold_tokens,
            long_prompt_multiplier=spec.long_prompt_multiplier, batch_discount=spec.batch_discount,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """The token counts that are billed, as the API reports them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_5m_tokens + other.cache_write_5m_tokens,
            self.cache_write_1h_tokens + other.cache_write_1h_tokens,
        )

    @classmethod
    def from_usage(cls, usage: Mapping[str, object]) -> TokenUsage:
        def number(value: object) -> int:
            return int(value) if isinstance(value, (int, float)) else 0

        creation = usage.get("cache_creation")
        total_write = number(usage.get("cache_creation_input_tokens"))
        if isinstance(creation, Mapping):
            write_5m = number(creation.get("ephemeral_5m_input_tokens"))
            write_1h = number(creation.get("ephemeral_1h_input_tokens"))
            write_5m += max(0, total_write - write_5m - write_1h)
        else:
            write_5m, write_1h = total_write, 0
        return cls(
            input_tokens=number(usage.get("input_tokens")),
            output_tokens=number(usage.get("output_tokens")),
            cache_read_tokens=number(usage.get("cache_read_input_tokens")),
            cache_write_5m_tokens=write_5m,
            cache_write_1h_tokens=write_1h,
        )


# The last overrides read: the file's identity when it was read (path, mtime, size, inode), and its prices.
_last_read: tuple[tuple[str, int, int, int], dict[str, dict[str, float]]] | None = None


def _overrides(path: str) -> dict[str, dict[str, float]]:
    """The overrides in the file at `path`, read again when the path or the file has changed since the last read."""
    global _last_read
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"{PRICES_ENV}={path}: cannot read price overrides: {exc}") from None
    identity = (path, stat.st_mtime_ns, stat.st_size, stat.st_ino)
    last = _last_read
    if last is not None and last[0] == identity:
        return last[1]
    prices = _read_overrides(path)
    _last_read = (identity, prices)
    return prices


def _read_overrides(path: str) -> dict[str, dict[str, float]]:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{PRICES_ENV}={path}: cannot read price overrides: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{PRICES_ENV}={path}: expected an object of model -> prices")
    result: dict[str, dict[str, float]] = {}
    for model, prices in raw.items():
        if not isinstance(prices, dict) or not set(prices) <= set(PRICE_FIELDS):
            raise ConfigError(f"{PRICES_ENV}={path}: {model}: price keys must be among {', '.join(PRICE_FIELDS)}")
        if not all(
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
            for value in prices.values()
        ):
            raise ConfigError(f"{PRICES_ENV}={path}: {model}: prices must be numbers >= 0 (USD per million tokens)")
        result[model] = {key: float(value) for key, value in prices.items()}
    return result


def model_prices(model: str, job_prices: Iterable[tuple[str, float]] = ()) -> PriceSheet | None:
    """The model's prices (`model` an id or an alias) with any `DOCPIPE_PRICES` overrides applied, then the job's.

    An override may name the model by the id the job uses or by the model's own id. A model the
    table does not know has prices only if the overrides give at least its input and output prices.
    """
    spec = get_model(model)
    path = os.environ.get(PRICES_ENV)
    overrides = _overrides(path) if path else {}
    given = dict(overrides.get(model) or (overrides.get(spec.id) if spec is not None else None) or {})
    given.update(dict(job_prices))
    if spec is not None:
        return dataclasses.replace(PriceSheet.of(spec), **given) if given else PriceSheet.of(spec)  # type: ignore[arg-type]
    if "input_usd" not in given or "output_usd" not in given:
        return None
    cache = {name: given["input_usd"] * multiple for name, multiple in CACHE_MULTIPLIERS.items()}
    return PriceSheet(**(cache | given))  # type: ignore[arg-type]  # price fields only (PRICE_FIELDS)


def cost_usd(
    model: str, usage: TokenUsage, *, batch: bool = False, prices: Iterable[tuple[str, float]] = ()
) -> float | None:
    """USD cost of one response; None when the model's prices are unknown. `prices`: the job's own."""
    spec = model_prices(model, prices)
    if spec is None:
        return None
    multiplier = 1.0
    threshold = spec.long_prompt_threshold_tokens
    if threshold is not None and usage.prompt_tokens > threshold:
        multiplier = spec.long_prompt_multiplier
    if batch:
        multiplier *= spec.batch_discount
    total = (
        usage.input_tokens * spec.input_usd
        + usage.output_tokens * spec.output_usd
        + usage.cache_read_tokens * spec.cache_read_usd
        + usage.cache_write_5m_tokens * spec.cache_write_5m_usd
        + usage.cache_write_1h_tokens * spec.cache_write_1h_usd
    )
    return total * multiplier / 1_000_000
