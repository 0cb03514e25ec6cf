"""`--max-cost USD`: no request is started that could take the run's spend past the budget.

As the rate limiter does with tokens: before a request goes out, its worst case is reserved (every
input token at the dearest input price, a cache write of the 1-hour kind, and `max_tokens` of
output, long-prompt tier and batch discount applied as they would be); when its answer comes back,
the reservation is settled at the answer's real cost. A request whose worst case does not fit what
is left is not sent: the run stops there, resumable (exit `EXIT_BUDGET`), and the next run with a
higher budget goes on. The budget is this run's: what earlier runs spent is in their own rows.
"""

from __future__ import annotations

import threading

from .pricing import model_prices

__all__ = ["Budget"]


class Budget:
    """A run's spending cap, reserved before each request and settled after."""

    def __init__(
        self, limit_usd: float | None, model: str, *, batch: bool = False, prices: tuple[tuple[str, float], ...] = ()
    ) -> None:
        self.limit_usd = limit_usd
        self.prices = prices
        self.model = model
        self.batch = batch
        self.spent_usd = 0.0
        self.reserved_usd = 0.0
        self.refused = False  # a request did not fit: the run stops
        self._lock = threading.Lock()  # the batch executor reserves from the preparation thread

    def worst_case_usd(self, input_tokens: int, max_output_tokens: int, *, batch: bool | None = None) -> float:
        """The most one request could cost; 0 for a model without known prices (nothing to cap against)."""
        spec = model_prices(self.model, self.prices)
        if spec is None:
            return 0.0
        threshold = spec.long_prompt_threshold_tokens
        multiplier = spec.long_prompt_multiplier if threshold is not None and input_tokens > threshold else 1.0
        if self.batch if batch is None else batch:
            multiplier *= spec.batch_discount
        per_input = max(spec.input_usd, spec.cache_write_5m_usd, spec.cache_write_1h_usd)
        return (input_tokens * per_input + max_output_tokens * spec.output_usd) * multiplier / 1_000_000

    def reserve(self, input_tokens: int, max_output_tokens: int, *, batch: bool | None = None) -> float | None:
        """Reserve one request's worst case (at the batch price or not, as the budget's unless `batch` says);
        None (and `refused`) when it does not fit the budget. Without a budget, nothing is computed: 0."""
        if self.limit_usd is None:
            return 0.0
        worst = self.worst_case_usd(input_tokens, max_output_tokens, batch=batch)
        with self._lock:
            if self.limit_usd is not None and self.spent_usd + self.reserved_usd + worst > self.limit_usd:
                self.refused = True
                return None
            self.reserved_usd += worst
        return worst

    @property
    def capped(self) -> bool:
        """Whether there is a budget to keep (else reserving and settling cost nothing on the hot path)."""
        return self.limit_usd is not None

    def settle(self, reserved: float, cost_usd: float | None) -> None:
        """The request is over: its reservation goes, its real cost (None: unknown or nothing) is spent."""
        with self._lock:
            self.reserved_usd = max(0.0, self.reserved_usd - reserved)
            self.spent_usd += cost_usd or 0.0

    def describe(self) -> str:
        assert self.limit_usd is not None
        return (
            f"the budget of ${self.limit_usd:.4f} (--max-cost) is reached: ${self.spent_usd:.4f} spent, and the "
            "next request could cost more than is left. Finished rows are kept: rerun with a higher --max-cost "
            "to go on"
        )
