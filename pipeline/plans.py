"""Plans: a prepared document becomes the requests it needs, as plain data.

Pure: no I/O, no clock. Today every document needs exactly one Messages request, built from its
payload (`payloads.py`: text in a fenced text block, or bytes with a media type in a `document`
block). A long document split into pieces and a reduce step are plans of several specs; the
executors send whatever specs they are given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .jobs import Job
from .models import get_model
from .payloads import Payload
from .requests import build_params, estimate_document_tokens, estimate_prefix_tokens, should_stream, system_prompt

__all__ = ["Planner", "RequestSpec"]


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request to send: its params (shared parts are shared, never mutated) and what it may cost."""

    document_id: str
    params: dict[str, Any]
    estimated_input_tokens: int  # for the rate limiter and the dry run's estimate
    max_output_tokens: int
    stream: bool
    timeout_s: float


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
        """Input tokens one document's request is estimated to send, its shared prefix included."""
        return self.prefix_estimate + estimate_document_tokens(document_id, payload)

    def plan(self, document_id: str, payload: Payload) -> list[RequestSpec]:
        """The requests one document needs: today one, built from its payload."""
        params = build_params(
            self.job, document_id, payload, system=self.system, schema=self.schema, cache_ttl=self.cache_ttl
        )
        return [
            RequestSpec(
                document_id=document_id,
                params=params,
                estimated_input_tokens=self.estimate(document_id, payload),
                max_output_tokens=self.job.max_tokens,
                stream=self.stream,
                timeout_s=self.job.timeout_s,
            )
        ]
