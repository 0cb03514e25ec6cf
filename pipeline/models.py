"""What docpipe knows about Claude models: limits, behaviours, lifecycle and list prices.

One table (`model_table.py`), shared by the cost calculation and the emulator, so that the two never
disagree. Each model is keyed by the id the API reports for it; the aliases the Claude API accepts
for models before the 4.6 generation (`claude-haiku-4-5` for `claude-haiku-4-5-20251001`) resolve to
the same row. `DOCPIPE_PRICES` can override any price without a release (see `pricing.py`).
"""

from __future__ import annotations

from .model_spec import Capabilities, ModelSpec, Prices
from .model_table import MODEL_ROWS

__all__ = ["ALIASES", "DEFAULT_MODEL", "MODELS", "Capabilities", "ModelSpec", "Prices", "get_model"]

DEFAULT_MODEL = "claude-haiku-5-5"

MODELS: dict[str, ModelSpec] = {spec.id: spec for spec in MODEL_ROWS}
ALIASES: dict[str, str] = {alias: spec.id for spec in MODEL_ROWS for alias in spec.aliases}


def get_model(model_id: str) -> ModelSpec | None:
    """The spec of `model_id` (an id or an alias), or None when docpipe does not know it."""
    return MODELS.get(ALIASES.get(model_id, model_id))
