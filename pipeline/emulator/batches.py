"""Message Batches with the real lifecycle.

A batch is `in_progress` from creation until its processing time has passed, then `ended`.
Its requests are processed at an even pace over that time, which is what cancellation and expiry
cut short: `cancel` moves it to `canceling`, and a moment later to `ended` with the requests not
yet processed `canceled`; a batch whose processing time runs past `expires_at` ends with the rest
`expired`. `request_counts` stay at zero but for `processing` until the batch ends, as on the real
API. Params are validated per request when processed: bad ones are `errored` results, never a 400
on create, each with the `request_id` of its attempt. Results come back in a seeded shuffled order,
one JSON object per `\\n`-terminated line. Results can be downloaded for `retention_s` (29 days on
the real API) after creation; then the batch is archived: it can still be retrieved and listed,
with `archived_at` set, but its results are gone.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .hashing import stable_hash
from .validation import ApiError

__all__ = ["MALFORMED_TEXT", "Batch", "BatchStore"]

MALFORMED_TEXT = 'Here is the JSON you asked for: {"label": '  # a cut-off preamble, as the Messages fault answers

CANCEL_DELAY_S = 0.2
# Requests of a batch processed at once. They are accounted for prompt caching before any of them
# publishes its cache entries, so a cold batch sharing a prefix pays this many writes, not one: the
# docs say batches are processed with "high throughput and concurrent processing"
# (https://platform.claude.com/docs/en/build-with-claude/batch-processing, batch limitations), and
# recommend the 1-hour cache TTL "for better cache hit rates" since processing may take over 5 minutes.
BATCH_WAVE = 16

# Runs one request's params (key, wall time it is processed at): the message, and a callable that
# publishes the cache entries it wrote (its response has started). Raises ApiError.
RunRequest = Callable[[dict[str, Any], str, float], tuple[dict[str, Any], Callable[[], None]]]


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Batch:
    id: str
    key: str
    version: str
    requests: list[dict[str, Any]]
    created_at: float
    processing_s: float
    expires_at: float
    archives_at: float  # when its results stop being available
    cancel_initiated_at: float | None = None
    ended_at: float | None = None
    outcomes: dict[str, str] = field(default_factory=dict)  # custom_id -> result type
    errors: dict[str, tuple[ApiError, str]] = field(default_factory=dict)  # custom_id -> (error, request id)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # custom_id -> the Message, once ended

    def archived(self, now: float) -> bool:
        return now >= self.archives_at

    @property
    def status(self) -> str:
        if self.ended_at is not None:
            return "ended"
        return "canceling" if self.cancel_initiated_at is not None else "in_progress"


class BatchStore:
    """All batches, newest first, with lazy state transitions driven by the clock."""

    def __init__(
        self,
        *,
        processing_s: float,
        expiry_s: float,
        retention_s: float,
        seed: int,
        run: RunRequest,
        validate: Callable[[dict[str, Any], str, str], None],  # (params, API version, key)
        new_request_id: Callable[[], str],
        # Raises the ApiError a fault rule decides; True for a `malformed_output` answer.
        fault: Callable[[dict[str, Any]], bool] = lambda params: False,
    ) -> None:
        self.processing_s = processing_s
        self.expiry_s = expiry_s
        self.retention_s = retention_s
        self._new_request_id = new_request_id
        self.seed = seed
        self._run = run
        self._validate = validate
        self._fault = fault
        self._batches: dict[str, Batch] = {}
        self._order: list[str] = []  # oldest first

    def clear(self) -> None:
        self._batches.clear()
        self._order.clear()

    def create(self, batch_id: str, key: str, version: str, requests: list[dict[str, Any]], now: float) -> Batch:
        # Whole microseconds, as RFC 3339 carries them: otherwise created_at and expires_at round
        # separately and their difference is off by a microsecond about one time in twenty.
        now = round(now, 6)
        batch = Batch(
            batch_id, key, version, requests, now, self.processing_s, now + self.expiry_s, now + self.retention_s
        )
        self._batches[batch_id] = batch
        self._order.append(batch_id)
        return batch

    def get(self, batch_id: str, key: str, now: float) -> Batch:
        batch = self._batches.get(batch_id)
        if batch is None or batch.key != key:
            raise ApiError(404, "not_found_error", f"batch {batch_id} not found")
        self._advance(batch, now)
        return batch

    def _processed_count(self, batch: Batch, at: float) -> int:
        if batch.processing_s <= 0:
            return len(batch.requests)
        done = (at - batch.created_at) / batch.processing_s
        return min(len(batch.requests), int(len(batch.requests) * max(0.0, done)))

    def _advance(self, batch: Batch, now: float) -> None:
        if batch.ended_at is not None:
            return
        if batch.cancel_initiated_at is not None:
            if now >= batch.cancel_initiated_at + CANCEL_DELAY_S:
                self._finish(
                    batch,
                    self._processed_count(batch, batch.cancel_initiated_at),
                    "canceled",
                    batch.cancel_initiated_at + CANCEL_DELAY_S,
                )
            return
        end = batch.created_at + batch.processing_s
        if end > batch.expires_at and now >= batch.expires_at:
            self._finish(batch, self._processed_count(batch, batch.expires_at), "expired", batch.expires_at)
        elif now >= end:
            self._finish(batch, len(batch.requests), "", end)

    def _finish(self, batch: Batch, processed: int, rest: str, ended_at: float) -> None:
        """Run the processed requests in waves of BATCH_WAVE, at an even pace over the processing time."""
        total = len(batch.requests)
        for start in range(0, total, BATCH_WAVE):
            at = batch.created_at + batch.processing_s * start / max(1, total)
            publish: list[Callable[[], None]] = []
            for index in range(start, min(total, start + BATCH_WAVE)):
                request = batch.requests[index]
                custom_id = request["custom_id"]
                if index >= processed:
                    batch.outcomes[custom_id] = rest
                    continue
                try:
                    self._validate(request["params"], batch.version, batch.key)
                    malformed = self._fault(request["params"])
                except ApiError as exc:
                    batch.outcomes[custom_id] = "errored"
                    batch.errors[custom_id] = (exc, self._new_request_id())
                    continue
                # Run (and bill) each request once, when the batch ends: every download gets the same results.
                batch.messages[custom_id], started = self._run(request["params"], batch.key, at)
                if malformed:  # the `malformed_output` fault: billed, and its text is not the JSON asked for
                    message = batch.messages[custom_id]
                    message["content"] = [b for b in message["content"] if b["type"] != "text"] + [
                        {"type": "text", "text": MALFORMED_TEXT, "citations": None}
                    ]
                publish.append(started)
                batch.outcomes[custom_id] = "succeeded"
            for started in publish:
                started()
        batch.ended_at = ended_at

    def cancel(self, batch_id: str, key: str, now: float) -> Batch:
        batch = self.get(batch_id, key, now)
        if batch.ended_at is None and batch.cancel_initiated_at is None:
            batch.cancel_initiated_at = now
        return batch

    def delete(self, batch_id: str, key: str, now: float) -> None:
        batch = self.get(batch_id, key, now)
        if batch.ended_at is None:
            raise ApiError(
                400,
                "invalid_request_error",
                f"Batch {batch_id} cannot be deleted while it is still processing. Cancel it first.",
            )
        del self._batches[batch_id]
        self._order.remove(batch_id)

    def page(
        self, key: str, now: float, *, after_id: str | None, before_id: str | None, limit: int
    ) -> tuple[list[Batch], bool]:
        """A page of the key's batches, newest first, with `has_more`."""
        ids = [b for b in reversed(self._order) if self._batches[b].key == key]
        for name, cursor in (("after_id", after_id), ("before_id", before_id)):
            if cursor is not None and cursor not in ids:
                # A cursor is "ID of the object to use as a cursor" (docs: List Message Batches): one that
                # names no batch of this key is refused, not read as the end of the list.
                raise ApiError(400, "invalid_request_error", f"{name}: no message batch with id {cursor!r}")
        if after_id is not None:
            ids = ids[ids.index(after_id) + 1 :]
        if before_id is not None:
            ids = ids[: ids.index(before_id)]
            selected = ids[-limit:]
            has_more = len(ids) > limit
        else:
            selected = ids[:limit]
            has_more = len(ids) > limit
        batches = [self._batches[b] for b in selected]
        for batch in batches:
            self._advance(batch, now)
        return batches, has_more

    def results(self, batch: Batch) -> list[dict[str, Any]]:
        """The result lines of an ended batch, in a seeded shuffled order."""
        lines = []
        for request in batch.requests:
            custom_id = request["custom_id"]
            outcome = batch.outcomes.get(custom_id, "expired")
            if outcome == "succeeded":
                result: dict[str, Any] = {"type": "succeeded", "message": batch.messages[custom_id]}
            elif outcome == "errored":
                error, request_id = batch.errors[custom_id]
                result = {
                    "type": "errored",
                    "error": {
                        "type": "error",
                        "error": {"type": error.error_type, "message": error.message},
                        "request_id": request_id,
                    },
                }
            else:
                result = {"type": outcome}
            lines.append({"custom_id": custom_id, "result": result})
        random.Random(stable_hash(self.seed, batch.id)).shuffle(lines)
        return lines

    def to_json(self, batch: Batch, base_url: str, now: float) -> dict[str, Any]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if batch.ended_at is None:
            counts["processing"] = len(batch.requests)
        else:
            for outcome in batch.outcomes.values():
                counts[outcome] += 1
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": batch.status,
            "request_counts": counts,
            "created_at": _iso(batch.created_at),
            "expires_at": _iso(batch.expires_at),
            "ended_at": _iso(batch.ended_at),
            "cancel_initiated_at": _iso(batch.cancel_initiated_at),
            "archived_at": _iso(batch.archives_at) if batch.archived(now) else None,
            "results_url": f"{base_url}/v1/messages/batches/{batch.id}/results" if batch.ended_at else None,
        }
