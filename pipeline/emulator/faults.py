"""Fault injection from declarative, seeded rules.

A fault profile is a list of rules, read from JSON or TOML (`--faults FILE`) or set at run time
through `PUT /_emulator/faults`::

    [[rules]]                      # 10% of requests answered 429 with retry-after: 1
    kind = "rate_limit"
    probability = 0.10
    retry_after_s = 1

    [[rules]]                      # the first 3 requests whose prompt contains ACME get 529
    kind = "overloaded"
    match = "ACME"
    times = 3

Each request is checked against the rules in order; the first that fires decides the fault. Draws
are a pure function of (seed, rule, request body, how many times that body was seen), never of
arrival order, so a concurrent run meets the same faults on every replay and a retried request
gets a fresh draw.
"""

from __future__ import annotations

import json
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EmulatorError
from .hashing import stable_hash

__all__ = ["FAULT_KINDS", "FaultPlan", "FaultRule", "load_fault_plan"]

STREAM_ONLY_KINDS = frozenset({"stream_error", "stream_disconnect"})

FAULT_KINDS = frozenset(
    {
        "rate_limit",  # 429 rate_limit_error with retry-after
        "overloaded",  # 529 overloaded_error with x-should-retry: true
        "server_error",  # 500/502/503/504 (statuses = [...])
        "disconnect",  # the connection is closed without a response
        "hang",  # no answer for `seconds`, then the normal response
        "slow_first_byte",  # `seconds` before the status line, then the normal response
        "stream_error",  # streamed requests: `event: error` after the first deltas
        "stream_disconnect",  # streamed requests: the connection is cut after the first deltas
        "request_too_large",  # 413 with an HTML body, as the edge proxy sends it
        "refusal",  # 200 with stop_reason "refusal"
        "malformed_output",  # 200 whose text is not valid JSON
        "spend_limit",  # 429 enforced_spend_limit_reached, no retry-after
        "authentication",  # 401 authentication_error
        "permission",  # 403 permission_error
        "invalid_request",  # 400 invalid_request_error
        "lost_response",  # endpoints but Messages: the request is served (a batch created), then the connection cut
    }
)
# "batch_requests": each request of a batch as it is processed; an error kind makes its result `errored`.
BATCH_REQUEST_KINDS = frozenset({"overloaded", "server_error", "rate_limit", "invalid_request", "malformed_output"})
ENDPOINTS = frozenset({"messages", "count_tokens", "batches", "models", "files", "batch_requests"})
MAX_HANG_S = 600.0
RULE_FIELDS = frozenset(
    {"kind", "probability", "match", "times", "statuses", "seconds", "retry_after_s", "endpoints", "message"}
)


def _number(raw: dict[str, Any], name: str, default: float, where: str) -> float:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EmulatorError(f"{where}: {name} must be a number, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class FaultRule:
    """One rule: what happens, to which requests, how often."""

    kind: str
    probability: float = 1.0
    match: str | None = None
    times: int | None = None
    statuses: tuple[int, ...] = (500,)
    seconds: float = 5.0
    retry_after_s: float = 1.0
    endpoints: frozenset[str] = frozenset({"messages"})
    message: str | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any], index: int) -> FaultRule:
        where = f"fault rule {index + 1}"
        if not isinstance(raw, dict):
            raise EmulatorError(f"{where}: a rule must be a table of fields, not {type(raw).__name__}")
        unknown = set(raw) - RULE_FIELDS
        if unknown:
            raise EmulatorError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        kind = raw.get("kind")
        if kind not in FAULT_KINDS:
            raise EmulatorError(f"{where}: kind must be one of {', '.join(sorted(FAULT_KINDS))}, not {kind!r}")
        probability = _number(raw, "probability", 1.0, where)
        if not 0.0 <= probability <= 1.0:
            raise EmulatorError(f"{where}: probability must be between 0 and 1")
        seconds = _number(raw, "seconds", 5.0, where)
        if not 0.0 <= seconds <= MAX_HANG_S:
            raise EmulatorError(f"{where}: seconds must be between 0 and {MAX_HANG_S:g}")
        retry_after_s = _number(raw, "retry_after_s", 1.0, where)
        if retry_after_s < 0:
            raise EmulatorError(f"{where}: retry_after_s must not be negative")
        endpoints_raw = raw.get("endpoints", ["messages"])
        if not isinstance(endpoints_raw, list) or not all(isinstance(e, str) and e in ENDPOINTS for e in endpoints_raw):
            raise EmulatorError(f"{where}: endpoints must be a list among {', '.join(sorted(ENDPOINTS))}")
        if kind == "lost_response" and "messages" in endpoints_raw:
            raise EmulatorError(f"{where}: lost_response applies to endpoints other than messages; name them")
        if "batch_requests" in endpoints_raw and kind not in BATCH_REQUEST_KINDS:
            raise EmulatorError(
                f"{where}: on batch_requests only {', '.join(sorted(BATCH_REQUEST_KINDS))} apply (an errored result)"
            )
        times = raw.get("times")
        if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 0):
            raise EmulatorError(f"{where}: times must be a whole number >= 0")
        statuses = raw.get("statuses", [500])
        if (
            not isinstance(statuses, list)
            or not statuses
            or not all(isinstance(s, int) and not isinstance(s, bool) and 500 <= s <= 599 for s in statuses)
        ):
            raise EmulatorError(f"{where}: statuses must be a non-empty list of 5xx status codes")
        for name in ("match", "message"):
            if raw.get(name) is not None and not isinstance(raw[name], str):
                raise EmulatorError(f"{where}: {name} must be a string")
        return cls(
            kind=kind,
            probability=probability,
            match=raw.get("match"),
            times=times,
            statuses=tuple(statuses),
            seconds=seconds,
            retry_after_s=retry_after_s,
            endpoints=frozenset(endpoints_raw),
            message=raw.get("message"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "probability": self.probability,
            "match": self.match,
            "times": self.times,
            "statuses": list(self.statuses),
            "seconds": self.seconds,
            "retry_after_s": self.retry_after_s,
            "endpoints": sorted(self.endpoints),
            "message": self.message,
        }


@dataclass
class FaultPlan:
    """The active rules and how many times each scripted rule has fired."""

    rules: tuple[FaultRule, ...] = ()
    seed: int = 0
    _fired: dict[int, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | list[Any], *, seed: int = 0) -> FaultPlan:
        rules_raw = raw.get("rules", []) if isinstance(raw, dict) else raw
        if not isinstance(rules_raw, list):
            raise EmulatorError("fault profile: 'rules' must be a list")
        rules = tuple(FaultRule.from_dict(rule, i) for i, rule in enumerate(rules_raw))
        plan_seed = raw.get("seed", seed) if isinstance(raw, dict) else seed
        if not isinstance(plan_seed, int) or isinstance(plan_seed, bool):
            raise EmulatorError(f"fault profile: seed must be a whole number, not {plan_seed!r}")
        return cls(rules=rules, seed=plan_seed)

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "rules": [rule.to_dict() for rule in self.rules]}

    def decide(
        self, endpoint: str, body_text: str, body_hash: int, occurrence: int, *, stream: bool
    ) -> FaultRule | None:
        """The rule that fires for this request, if any."""
        for index, rule in enumerate(self.rules):
            if endpoint not in rule.endpoints:
                continue
            if rule.kind in STREAM_ONLY_KINDS and not stream:
                continue
            if rule.match is not None and rule.match not in body_text:
                continue
            if rule.probability < 1.0:
                draw = stable_hash(self.seed, index, body_hash, occurrence) / 2.0**64
                if draw >= rule.probability:
                    continue
            with self._lock:
                fired = self._fired.get(index, 0)
                if rule.times is not None and fired >= rule.times:
                    continue
                self._fired[index] = fired + 1
            return rule
        return None


def load_fault_plan(path: Path, *, seed: int = 0) -> FaultPlan:
    """Read a fault profile from a JSON or TOML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EmulatorError(f"cannot read fault profile {path}: {exc.strerror}") from exc
    try:
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise EmulatorError(f"fault profile {path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from exc
    return FaultPlan.from_dict(raw, seed=seed)
