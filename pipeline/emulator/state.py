"""What one emulator remembers: caches, limits, journal, batches, fault counters, ids.

Every piece of mutable state lives on an `EmulatorState`, never in a module, so two emulators in
one process (one per test, say) keep apart, even when built from one configuration: the fault
plan in an `EmulatorConfig` is a template, and each state counts its scripted rules afresh.
`reset()` forgets it all but the configuration. No aiohttp here: the HTTP layer (`server.py` and
the `http_*` modules) works over this object.
"""

from __future__ import annotations

import time
from typing import Any

from ..models import MODELS
from .batches import BatchStore
from .bodies import message_json, usage_json
from .caching import PromptCache
from .clock import Clock
from .config import EmulatorConfig
from .engine import generate
from .faults import FaultPlan
from .files import FileStore
from .hashing import spelled_id, stable_hash
from .journal import Journal
from .ratelimit import RateLimiter
from .tokens import count_request_tokens
from .validation import ApiError, merge_output_format, validate_messages

__all__ = ["EmulatorState"]


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
        validate_messages(params, version, seed=self.config.seed, in_batch=True)

    def run_batch_request(self, params: dict[str, Any], key: str) -> dict[str, Any]:
        params = merge_output_format(params)
        spec = MODELS[params["model"]]
        generation = generate(params, spec, self.config.seed)
        tokens = count_request_tokens(params)
        usage = usage_json(tokens, 0, 0, 0, generation.output_tokens, generation.thinking_tokens, "batch")
        self.journal.bill(usage)
        return message_json(
            self.new_id("msg"), spec.id, generation.content, generation.stop_reason, generation.stop_sequence, usage
        )


def _unfired(plan: FaultPlan) -> FaultPlan:
    """The same rules and seed, no rule fired yet."""
    return FaultPlan(rules=plan.rules, seed=plan.seed)
