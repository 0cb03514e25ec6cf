"""A document's room in the model's context window, and what a document over it becomes.

The job's `max_document_tokens` is the budget a document is prepared to (`fitting.py`). Two things
can make the room smaller or larger at run time, and this module holds both:

- the model's context window as the API reports it (`GET /v1/models/{model}`, asked once a run, by
  the first document whose request could be over the smallest window any model has, or at once for
  a model the table does not know): a document that does not fit is fitted again, smaller;
- the API's own count (`count_tokens`, free) of a document the local estimate put just over the
  budget: sent whole when the count says it fits.

The realtime executor asks it for each document (`RealtimeRun.process`); nothing here sends a
Messages request.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import ExtractionError, FatalRunError, PipelineError, RequestError
from .fitting import fit, sendable_whole
from .jobs import Job
from .models import MODELS, get_model
from .payloads import BinaryPayload, TextPayload
from .plans import Planner
from .prepare import Work
from .requests import estimate_document_tokens
from .summary import RunSummary
from .transport import Transport

__all__ = ["SMALLEST_CONTEXT_TOKENS", "ContextFit"]

# No model has a smaller context window (the model table): a request within it fits whatever the API says.
SMALLEST_CONTEXT_TOKENS = min(spec.max_input_tokens for spec in MODELS.values())


class ContextFit:
    """The budget of one run's documents against the model's context window, asked of `transport` once."""

    def __init__(self, job: Job, planner: Planner, transport: Transport, summary: RunSummary) -> None:
        self.job = job
        self.planner = planner
        self.transport = transport
        self.summary = summary
        self._counting: bool | None = None  # False once count_tokens failed: the local estimate decides
        self._prefix_count: int | None = None  # count_tokens of a request around an empty document
        self._budget: asyncio.Future[int] | None = None  # a document's tokens at most (`budget`)
        self._unknown_model = get_model(job.model) is None  # its limits are the API's: asked at once

    def must_ask(self, work: Work) -> bool:
        """Whether this document waits for the API's word on the model's context window."""
        return self._unknown_model or self._may_not_fit(work)

    def _may_not_fit(self, work: Work) -> bool:
        """Whether the document's request could be over a context window: over the smallest any model has."""
        whole = work.whole if work.whole is not None else work.payload
        assert whole is not None
        request = self.planner.prefix_estimate + estimate_document_tokens(work.ref.doc_id, whole) + self.job.max_tokens
        return request > SMALLEST_CONTEXT_TOKENS

    async def budget(self) -> int:
        """The tokens a request's document may take: the job's budget, or less if the model's context says so.

        The model's context window comes from `GET /v1/models/{model}` where the API answers it (asked
        once a run, by the first document whose request could be over any model's window, or by the
        first document of a model the table does not know: others never wait for it), else the model
        table (or the job's `context_window`), which the job was checked against when it was loaded;
        the request's answer (max_tokens) and shared prefix take the rest. A model that cannot give
        max_tokens of output stops the run before anything is sent.
        """
        if self._budget is None:
            self._budget = asyncio.ensure_future(self._ask_budget())
        return await asyncio.shield(self._budget)

    async def _ask_budget(self) -> int:
        Limits = tuple[int, int | None]
        reader: Callable[[str], Awaitable[Limits]] | None = getattr(self.transport, "model_limits", None)
        if reader is None:
            return self.job.max_document_tokens
        try:
            window, max_output = await reader(self.job.model)
        except FatalRunError:
            raise  # a model the API does not serve (404), a bad key: nothing would be answered
        except PipelineError:
            return self.job.max_document_tokens
        if max_output is not None and self.job.max_tokens > max_output:
            raise FatalRunError(
                f"the job's max_tokens {self.job.max_tokens:,} exceeds {self.job.model}'s maximum output of "
                f"{max_output:,} tokens (GET /v1/models): every request would be refused; lower max_tokens"
            )
        room = window - self.job.max_tokens - self.planner.prefix_estimate
        if room < self.job.max_document_tokens:
            self.summary.budget_note = (
                f"{self.job.model}'s context window is {window:,} tokens (GET /v1/models): documents were cut to "
                f"{max(room, 1):,} tokens, under job.max_document_tokens = {self.job.max_document_tokens:,}"
            )
        return max(1, min(room, self.job.max_document_tokens))

    def refit(self, work: Work, budget: int) -> Work:
        """The work fitted again to a budget smaller than the one the preparation used."""
        whole = work.whole if work.whole is not None else work.payload
        if not isinstance(whole, TextPayload | BinaryPayload):
            return work  # already in pieces: each within the job's budget; a smaller window is its own error
        try:
            fitted = fit(work.ref.doc_id, whole, dataclasses.replace(self.job, max_document_tokens=budget))
        except ExtractionError as exc:
            return dataclasses.replace(work, payload=None, whole=None, error=exc)
        if fitted.payload is whole:
            return work
        return dataclasses.replace(work, payload=fitted.payload, truncated=fitted.truncated, whole=whole)

    async def counted(self, work: Work, budget: int) -> Work:
        """A document docpipe's local estimate put over the budget: sent whole if the API's count says it fits.

        The local estimate is deliberately high (`requests.BYTES_PER_TOKEN_ESTIMATE`), so a document
        just over the budget by it is counted by `count_tokens` (free) before it is cut: its document
        tokens are the request's count less the count of the same request around an empty document.
        Where counting fails (not offered, refused, rate limited), the local decision stands.
        """
        assert work.whole is not None
        count: Callable[[dict[str, Any]], Awaitable[int]] | None = getattr(self.transport, "count_tokens", None)
        if count is None or self._counting is False or not sendable_whole(work.whole):
            return work
        whole_params = self.planner.plan(work.ref.doc_id, work.whole)[0].params
        try:
            if self._prefix_count is None:
                self._prefix_count = await count(self.planner.plan(work.ref.doc_id, TextPayload(""))[0].params)
            counted = await count(whole_params) - self._prefix_count
        except RequestError:  # this request refused (a PDF the API cannot read, say): the local decision stands
            return work
        except PipelineError:  # not offered, rate limited, unreachable: the local estimate decides from now on
            self._counting = False
            return work
        if counted > budget:
            return work
        self.summary.fit_by_count += 1
        return dataclasses.replace(work, payload=work.whole, truncated=False, whole=None)
