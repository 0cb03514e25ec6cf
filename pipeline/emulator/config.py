"""The emulator's configuration: seed, latency model, rate limits, faults, keys, batch timing."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..errors import EmulatorError
from ..model_spec import ModelSpec
from ..models import get_model
from .faults import FaultPlan
from .ratelimit import Limits

__all__ = ["MODELS_ENV", "EmulatorConfig", "LatencyModel", "served_models"]

MODELS_ENV = "DOCPIPE_EMULATOR_MODELS"  # ID=LIKE[,ID=LIKE...]: more models served, for --offline too

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
    models: tuple[ModelSpec, ...] = ()  # served besides docpipe's model table: a model released after it

    def model(self, model_id: str) -> ModelSpec | None:
        """The model an id or alias names, as this emulator serves it: its own `models` first, then the table."""
        return next((spec for spec in self.models if spec.id == model_id), None) or get_model(model_id)


def served_models(text: str, *, source: str = "--serve-model") -> tuple[ModelSpec, ...]:
    """`ID=LIKE[,ID=LIKE...]` as models: each a copy of the table's LIKE (limits, behaviour) under a new id, as a
    model released after docpipe's table would be served by the API. An `EmulatorError` names a bad entry and
    where it was given (`source`: the option, or the environment variable)."""
    models = []
    for entry in (part.strip() for part in text.split(",") if part.strip()):
        new_id, _, like = entry.partition("=")
        base = get_model(like.strip())
        if not new_id.strip() or base is None:
            raise EmulatorError(f"{source}: served model {entry!r}: write ID=LIKE, LIKE a model docpipe knows "
                                "(e.g. claude-sonnet-6=claude-sonnet-5-5)")
        if get_model(new_id.strip()) is not None:
            raise EmulatorError(
                f"{source}: served model {entry!r}: {new_id.strip()} is already in docpipe's model table"
            )
        models.append(dataclasses.replace(base, id=new_id.strip(), display_name=new_id.strip(), aliases=()))
    return tuple(models)
