"""The emulator's configuration: seed, latency model, rate limits, faults, keys, batch timing."""

from __future__ import annotations

from dataclasses import dataclass, field

from .faults import FaultPlan
from .ratelimit import Limits

__all__ = ["EmulatorConfig", "LatencyModel"]

DEFAULT_BATCH_PROCESSING_S = 2.0
DEFAULT_BATCH_EXPIRY_S = 24 * 3600.0
# Results can be downloaded for 29 days after creation, then the batch is archived
# (https://platform.claude.com/docs/en/build-with-claude/batch-processing, batch limitations).
DEFAULT_BATCH_RETENTION_S = 29 * 24 * 3600.0
DEFAULT_JOURNAL_SIZE = 200_000


@dataclass(frozen=True)
class LatencyModel:
    """Time to first token plus a time per output token. Zero by default (tests)."""

    ttft_ms: float = 0.0
    per_token_ms: float = 0.0

    def first_token_s(self) -> float:
        return self.ttft_ms / 1000.0

    def tokens_s(self, output_tokens: int) -> float:
        return self.per_token_ms * output_tokens / 1000.0


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything that shapes the emulator's answers. One seed drives ids, content and faults."""

    seed: int = 0
    latency: LatencyModel = field(default_factory=LatencyModel)
    limits: Limits = field(default_factory=Limits)
    faults: FaultPlan = field(default_factory=FaultPlan)
    api_keys: frozenset[str] | None = None  # None: any non-empty key is accepted
    batch_processing_s: float = DEFAULT_BATCH_PROCESSING_S
    batch_expiry_s: float = DEFAULT_BATCH_EXPIRY_S
    batch_retention_s: float = DEFAULT_BATCH_RETENTION_S
    journal_size: int = DEFAULT_JOURNAL_SIZE
