"""What the emulator saw: a bounded request journal and running counters.

The journal is what tests and benchmarks use as evidence: how many requests were sent, which were
retries (`x-stainless-retry-count`), which came back before the `retry-after` they were given.
Keys are never stored, only a short hash of them.
"""

from __future__ import annotations

import hashlib
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Journal", "key_id"]


def key_id(api_key: str) -> str:
    """A short, stable, non-reversible name for an API key."""
    return "key_" + hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:12]


@dataclass
class Journal:
    """Request journal, per-status counters, tokens billed and retry-after bookkeeping."""

    size: int
    entries: deque[dict[str, Any]] = field(init=False)
    by_status: Counter[str] = field(default_factory=Counter)
    by_endpoint: Counter[str] = field(default_factory=Counter)
    tokens: Counter[str] = field(default_factory=Counter)
    messages_billed: int = 0
    batches_created: int = 0
    early_retries: int = 0
    crashes: int = 0  # unexpected exceptions answered as 500 by the crash guard: each one is a bug
    requests_total: int = 0
    _not_before: dict[tuple[str, int], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.entries = deque(maxlen=self.size)

    def clear(self) -> None:
        self.entries.clear()
        self.by_status.clear()
        self.by_endpoint.clear()
        self.tokens.clear()
        self.messages_billed = self.batches_created = self.early_retries = self.requests_total = self.crashes = 0
        self._not_before.clear()

    def check_early(self, key: str, body_hash: int, now: float) -> bool:
        """True when this body comes back before the retry-after its last 429 gave it."""
        not_before = self._not_before.get((key, body_hash))
        if not_before is None:
            return False
        if now < not_before - 0.005:  # 5 ms of clock granularity
            self.early_retries += 1
            return True
        return False

    def told_to_wait(self, key: str, body_hash: int, until: float) -> None:
        self._not_before[(key, body_hash)] = until

    def record(self, entry: dict[str, Any]) -> None:
        self.requests_total += 1
        self.by_status[str(entry["status"])] += 1
        self.by_endpoint[str(entry["endpoint"])] += 1
        self.entries.append(entry)

    def bill(self, usage: dict[str, Any]) -> None:
        self.messages_billed += 1
        self.tokens["input"] += int(usage.get("input_tokens") or 0)
        self.tokens["output"] += int(usage.get("output_tokens") or 0)
        self.tokens["cache_read"] += int(usage.get("cache_read_input_tokens") or 0)
        self.tokens["cache_creation"] += int(usage.get("cache_creation_input_tokens") or 0)

    def stats(self) -> dict[str, Any]:
        return {
            "requests": {
                "total": self.requests_total,
                "by_status": dict(self.by_status),
                "by_endpoint": dict(self.by_endpoint),
            },
            "messages_billed": self.messages_billed,
            "batches_created": self.batches_created,
            "early_retries": self.early_retries,
            "crashes": self.crashes,
            "tokens": {k: self.tokens.get(k, 0) for k in ("input", "output", "cache_read", "cache_creation")},
        }
