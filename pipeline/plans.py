"""Plans: a prepared document becomes the requests it needs, as plain data.

Pure: no I/O, no clock. A document needs one Messages request, built from its payload
(`payloads.py`: text in a fenced text block, or bytes with a media type in a `document` block),
except a chunked one: one request per piece, each marked with its part, then one reduce request,
planned once the pieces are answered (`reduce`), that combines their answers into the document's
fields. The executors send whatever specs they are given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .details import details, placeholders
from .jobs import Job
from .models import get_model
from .payloads import BinaryPayload, ChunkedPayload, Payload
from .requests import (
    build_params,
    details_content,
    estimate_document_tokens,
    estimate_prefix_tokens,
    estimate_tokens,
    reduce_content,
    should_stream,
    system_prompt,
)

__all__ = ["REDUCE_ANSWER_SHARE", "Planner", "RequestSpec"]

REDUCE_ANSWER_SHARE = 0.25  # of max_tokens: a piece's answer, as a combining request's estimate counts it


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request to send: its params (shared parts are shared, never mutated) and what it may cost."""

    document_id: str
    params: dict[str, Any]
    estimated_input_tokens: int  # for the rate limiter and the dry run's estimate
    max_output_tokens: int
    stream: bool
    timeout_s: float
    part: int = 0  # a chunked document's piece: 1..pieces; 0 for a whole document or a reduce
    pieces: int = 0  # how many pieces its document was cut into; 0 when it was not
    document: BinaryPayload | None = None  # the PDF it sends natively: may go through the Files API instead


class Planner:
    """The requests a job needs per document; what every request shares is built once."""

    def __init__(self, job: Job, *, mode: str = "realtime") -> None:
        self.job = job
        # Batches may take over 5 minutes to process: the docs advise the 1-hour TTL for a shared prefix
        # (https://platform.claude.com/docs/en/build-with-claude/batch-processing).
        self.cache_ttl = job.cache_ttl or ("1h" if mode == "batch" else "5m")
        self.system = system_prompt(job)
        self.schema = job.output_schema()  # one dict shared by every request: nothing may mutate params
        self.prefix_estimate = estimate_prefix_tokens(self.system, self.schema)
        self.stream = should_stream(job)
        self.detail_names = placeholders(job.instructions)  # document details the instructions name (`details.py`)

    def details_for(
        self, document_id: str, source: str, metadata: Mapping[str, Any], size: int | None, mtime_ns: int | None
    ) -> list[tuple[str, str]] | None:
        """The values of the details the job names, for one document; None when it names none."""
        if not self.detail_names:
            return None
        return details(
            self.detail_names, doc_id=document_id, source=source, metadata=metadata, size=size, mtime_ns=mtime_ns
        )

    def cache_minimum(self) -> int | None:
        """The model's minimum cacheable prefix, in tokens; None for a model docpipe does not know."""
        spec = get_model(self.job.model)
        return spec.cache_min_tokens if spec is not None else None

    def prefix_cacheable(self) -> bool:
        """Whether the shared prefix is cached: caching on, and long enough for the model (as far as docpipe knows)."""
        if self.cache_ttl == "off":
            return False
        minimum = self.cache_minimum()
        return minimum is None or self.prefix_estimate >= minimum

    def cache_note(self) -> str | None:
        """A line for the summary and the dry run when the shared prefix is too short to be cached."""
        if self.cache_ttl == "off" or self.prefix_cacheable():
            return None
        return (
            f"the shared prefix (about {self.prefix_estimate:,} tokens) is under {self.job.model}'s minimum of "
            f"{self.cache_minimum():,} cacheable tokens: it is sent, and paid, in full with every request"
        )

    def estimate(self, document_id: str, payload: Payload) -> int:
        """Input tokens one document's requests are estimated to send, shared prefixes included (not a reduce)."""
        requests = len(payload.pieces) if isinstance(payload, ChunkedPayload) else 1
        return self.prefix_estimate * requests + estimate_document_tokens(document_id, payload)

    def request_estimates(self, document_id: str, payload: Payload) -> list[int]:
        """Input tokens of each request the document will take, its shared prefix included, without building them.

        A chunked document's combining request is estimated from its pieces' answers at
        `REDUCE_ANSWER_SHARE` of max_tokens each: they are not known until the pieces are answered.
        """
        if not isinstance(payload, ChunkedPayload):
            return [self.estimate(document_id, payload)]
        pieces = [self.estimate(document_id, piece) for piece in payload.pieces]
        return [*pieces, self.prefix_estimate + round(len(pieces) * self.job.max_tokens * REDUCE_ANSWER_SHARE)]

    def plan(
        self, document_id: str, payload: Payload, *, details: list[tuple[str, str]] | None = None
    ) -> list[RequestSpec]:
        """The requests one document needs now: one, or one per piece (whose answers `reduce` combines).

        `details` (`details_for`) go with every request of the document.
        """
        extra = _details_tokens(details)
        if not isinstance(payload, ChunkedPayload):
            params = build_params(
                self.job, document_id, payload, system=self.system, schema=self.schema, cache_ttl=self.cache_ttl,
                details=details,
            )
            document = payload if isinstance(payload, BinaryPayload) else None
            return [self._spec(document_id, params, self.estimate(document_id, payload) + extra, document=document)]
        count = len(payload.pieces)
        return [
            self._spec(
                document_id,
                build_params(
                    self.job, document_id, piece, system=self.system, schema=self.schema, cache_ttl=self.cache_ttl,
                    part=(number, count), details=details,
                ),
                self.estimate(document_id, piece) + extra,
                part=number,
                pieces=count,
                document=piece if isinstance(piece, BinaryPayload) else None,
            )
            for number, piece in enumerate(payload.pieces, 1)
        ]

    def reduce(
        self, document_id: str, answers: list[dict[str, Any]], *, details: list[tuple[str, str]] | None = None
    ) -> RequestSpec:
        """The request that combines the answers of a chunked document's pieces into its fields."""
        content = reduce_content(document_id, answers)
        params = build_params(
            self.job, document_id, "", system=self.system, schema=self.schema, cache_ttl=self.cache_ttl,
            content=content, details=details,
        )
        estimate = self.prefix_estimate + sum(estimate_tokens(block["text"]) for block in content)
        estimate += _details_tokens(details)
        return self._spec(document_id, params, estimate, pieces=len(answers))

    def _spec(
        self, document_id: str, params: dict[str, Any], estimate: int, *, part: int = 0, pieces: int = 0,
        document: BinaryPayload | None = None,
    ) -> RequestSpec:
        return RequestSpec(
            document_id=document_id,
            params=params,
            estimated_input_tokens=estimate,
            max_output_tokens=self.job.max_tokens,
            stream=self.stream,
            timeout_s=self.job.timeout_s,
            part=part,
            pieces=pieces,
            document=document,
        )


def _details_tokens(details: list[tuple[str, str]] | None) -> int:
    return sum(estimate_tokens(block["text"]) for block in details_content(details))
