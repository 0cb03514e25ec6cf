"""What one document's requests cost so far, and the two ways a document admitted is not sent.

Kept apart from the request code (`realtime_run.py`) so that the code for documents in pieces
(`realtime_chunked.py`) can count with it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .pricing import TokenUsage

__all__ = ["NotSent", "OverBudget", "Tracker"]


@dataclass(slots=True)
class Tracker:
    """What one document's attempts have cost so far."""

    attempts: int = 0
    spent: TokenUsage = field(default_factory=TokenUsage)
    request_id: str | None = None
    unreachable: bool = False  # the last attempt was sent to an API already unreachable: not the document's failure
    last: TokenUsage | None = None  # what the last attempt's answer was billed
    last_cost: float | None = None  # and what that cost (None: no prices)
    streamed: bool | None = None
    cost: float | None = 0.0  # each answer priced on its own (a long-prompt tier is per request); None: no prices

    @property
    def cost_usd(self) -> float | None:
        """What its answers cost; None when nothing was paid for, or the model's prices are unknown."""
        return self.cost if self.spent.prompt_tokens or self.spent.output_tokens else None

    def add(self, other: Tracker) -> None:
        """Fold another request's attempts into this one's (a chunked document's total)."""
        self.attempts += other.attempts
        self.spent = self.spent + other.spent
        self.cost = None if self.cost is None or other.cost is None else self.cost + other.cost
        self.request_id = other.request_id or self.request_id
        self.streamed = other.streamed if self.streamed is None else self.streamed


class NotSent(Exception):
    """A document admitted after a fatal error or a stop: no request, no row; the next run sends it."""


class OverBudget(NotSent):
    """The request's worst case does not fit what is left of --max-cost: the run stops, resumable."""
