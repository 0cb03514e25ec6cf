"""Prepared documents gathered into batches within the API's limits (runs in the preparation thread).

A batch holds at most 100,000 requests and 256 MB (https://platform.claude.com/docs/en/build-with-claude/
batch-processing, batch limitations); each request is counted at the size the SDK sends (ASCII JSON)
plus room for its envelope. A document already in a batch of the directory is skipped (claimed by id
and text hash), a document failed before any request travels as a row to write, and under
`--max-cost` each request's worst case is reserved here: the first that does not fit ends the input.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from .batch_rows import doc_entry
from .budget import Budget
from .payloads import BinaryPayload
from .plans import Planner
from .prepare import Work
from .submissions import DocEntry
from .summary import RunSummary

__all__ = ["MAX_BATCH_BYTES", "MAX_BATCH_REQUESTS", "Chunk", "gather"]

MAX_BATCH_REQUESTS = 100_000  # the API's limit per batch
MAX_BATCH_BYTES = 250_000_000  # under the API's 256 MB per create body, with room for the envelope
ENVELOPE_BYTES = 96  # a request's custom_id and the JSON around its params


@dataclass(slots=True)
class Chunk:
    """Requests gathered for one batch."""

    docs: list[DocEntry] = field(default_factory=list)
    params: list[bytes] = field(default_factory=list)
    bytes: int = 0
    failed: list[Work] = field(default_factory=list)  # prepared in error: a row, no request
    chunked: list[Work] = field(default_factory=list)  # in pieces: sent through Messages, not in a batch
    documents: list[BinaryPayload | None] = field(default_factory=list)  # each request's native PDF, to upload


def gather(
    works: Iterator[Work],
    *,
    planner: Planner,
    budget: Budget,
    claimed: set[tuple[str, str | None]],
    limit: int | None,
    stop: threading.Event,
    summary: RunSummary,
    max_requests: int = MAX_BATCH_REQUESTS,
    max_bytes: int = MAX_BATCH_BYTES,
) -> Iterator[Chunk]:
    """The batches `works` make, in order; the last one may be short."""
    chunk, taken = Chunk(), 0
    for work in works:
        if (work.ref.doc_id, work.sha256) in claimed:
            summary.already_in_batches += 1
            continue
        if limit is not None and taken >= limit:
            break
        taken += 1
        if work.error is not None or work.payload is None:
            chunk.failed.append(work)
            continue
        details = planner.details_for(work.ref.doc_id, work.ref.source, work.ref.metadata, work.size, work.mtime_ns)
        specs = planner.plan(work.ref.doc_id, work.payload, details=details)
        if len(specs) > 1:  # its reduce needs its pieces' answers: one batch cannot hold both
            chunk.chunked.append(work)
            continue
        (spec,) = specs
        reserved = budget.reserve(spec.estimated_input_tokens, spec.max_output_tokens)
        if reserved is None:  # --max-cost: nothing more is submitted; what is, is collected
            stop.set()
            break
        line = json.dumps(spec.params).encode("utf-8")  # ASCII, as the SDK sends it: the size is what is sent
        size = len(line) + ENVELOPE_BYTES
        if chunk.docs and (len(chunk.docs) >= max_requests or chunk.bytes + size > max_bytes):
            yield chunk
            chunk = Chunk()
        chunk.docs.append(dataclasses.replace(doc_entry(work), reserved=reserved))
        chunk.params.append(line)
        chunk.documents.append(spec.document)
        chunk.bytes += size
    if chunk.docs or chunk.failed or chunk.chunked:
        yield chunk
