"""What one emulator remembers: caches, limits, journal, batches, fault counters, ids.

Every piece of mutable state lives on an `EmulatorState`, never in a module, so two emulators in
one process (one per test, say) keep apart, even when built from one configuration: the fault
plan in an `EmulatorConfig` is a template, and each state counts its scripted rules afresh.
`reset()` forgets it all but the configuration. No aiohttp here: the HTTP layer (`server.py` and
the `http_*` modules) works over this object.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .batches import BatchStore
from .bodies import message_json, usage_json
from .caching import PromptCache
from .canonical import canonical_json
from .clock import Clock
from .config import EmulatorConfig
from .engine import generate
from .faults import FaultPlan
from .files import FileStore
from .hashing import spelled_id, stable_hash
from .journal import Journal
from .ratelimit import RateLimiter
from .validation import ApiError, merge_output_format, validate_messages

__all__ = ["EmulatorState"]

# What a fault rule on `batch_requests` makes of a request's result (the error of its `errored` result).
BATCH_ERRORS = {
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "server_error": (500, "api_error", "Internal server error"),
    "rate_limit": (429, "rate_limit_error", "Rate limited"),
    "invalid_request": (400, "invalid_request_error", "Invalid request"),
}


class EmulatorState:
    """Everything the server remembers; `reset()` forgets it all but the configuration."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.faults = _unfired(config.faults)  # the configuration's plan is a template: it never counts
        self.clock = Clock()
        self.cache = PromptCache()
        self.limiter = RateLimiter(config.limits)
        self.journal = Journal(config.journal_size)
        self.batches = BatchStore(
            processing_s=config.batch_processing_s,
            expiry_s=config.batch_expiry_s,
            retention_s=config.batch_retention_s,
            seed=config.seed,
            run=self.run_batch_request,
            validate=self._validate_batch_params,
            new_request_id=lambda: self.new_id("req"),
            fault=self._batch_request_fault,
        )
        self.files = FileStore()
        self.seen: dict[int, int] = {}  # request body hash -> how many times it has arrived
        self.counter = 0

    def reset(self) -> None:
        self.clock.reset()
        self.cache.clear()
        self.limiter.clear()
        self.journal.clear()
        self.batches.clear()
        self.files.clear()
        self.seen.clear()
        self.counter = 0
        self.faults = _unfired(self.faults)

    def new_id(self, prefix: str, *salt: object) -> str:
        self.counter += 1
        number = stable_hash(self.config.seed, prefix, self.counter, *salt)
        return spelled_id(prefix, number << 64 | stable_hash(number))

    def _validate_batch_params(self, params: dict[str, Any], version: str, key: str) -> None:
        if "stream" in params:
            raise ApiError(400, "invalid_request_error", "stream: streaming is not supported in batches")
        self.files.resolve(params, key, time.time())  # files are read when the request is processed
        validate_messages(params, version, seed=self.config.seed, in_batch=True, lookup=self.config.model)

    def _batch_request_fault(self, params: dict[str, Any]) -> bool:
        """A fault rule for `batch_requests` that fires: an error kind makes the request's result `errored`
        with its error (raised); `malformed_output` answers text that is not the JSON asked for (True)."""
        if not self.faults.rules:
            return False
        text = canonical_json(params)
        body_hash = stable_hash("batch_requests", text)
        occurrence = self.seen.get(body_hash, 0)
        self.seen[body_hash] = occurrence + 1
        rule = self.faults.decide("batch_requests", text, body_hash, occurrence, stream=False)
        if rule is None:
            return False
        if rule.kind == "malformed_output":
            return True
        status, error_type, message = BATCH_ERRORS[rule.kind]
        raise ApiError(status, error_type, rule.message or message)

    def run_batch_request(
        self, params: dict[str, Any], key: str, at: float
    ) -> tuple[dict[str, Any], Callable[[], None]]:
        """One request of a batch, processed at wall time `at`: its message, and the publishing of its cache entries.

        Prompt caching works in batches as in Messages (the same cache, on the emulator's clock
        at `at`); the batch store publishes a wave's entries once the whole wave is accounted.
        """
        params = merge_output_format(params)
        spec = self.config.model(params["model"])
        if spec is None:  # validated before it runs; kept for the type checker
            raise ApiError(404, "not_found_error", f"model: {params['model']}")
        when = at - self.clock.wall() + self.clock.monotonic()
        split, pending = self.cache.account(params, key, spec, when)
        generation = generate(params, spec, self.config.seed)
        usage = usage_json(
            split.input_tokens, split.cache_read_tokens, split.cache_write_5m_tokens, split.cache_write_1h_tokens,
            generation.output_tokens, generation.thinking_tokens, "batch",
        )
        self.journal.bill(usage)
        message = message_json(
            self.new_id("msg"), spec.id, generation.content, generation.stop_reason, generation.stop_sequence, usage
        )
        return message, lambda: self.cache.publish(pending, when)


def _unfired(plan: FaultPlan) -> FaultPlan:
    """The same rules and seed, no rule fired yet."""
    return FaultPlan(rules=plan.rules, seed=plan.seed)
