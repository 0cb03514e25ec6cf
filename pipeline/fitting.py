"""A document against the job's budget per request: sent whole, refused, truncated, or cut into pieces.

The budget is the job's `max_document_tokens` (checked against the model's context window, with
`max_tokens`, when the job is loaded), counted by docpipe's conservative local estimate: text at
`requests.BYTES_PER_TOKEN_ESTIMATE` bytes a token, a native PDF page by page as the API bills it
(its text plus a page image, `documents.py`), and the API's own per-request limits on PDFs.
A document within it is sent whole. One over it meets the job's `too_long` policy:

- `error`: an error row that says how far over it is and what to set;
- `truncate`: the head of the document (or its head and its tail, `truncate = "head_and_tail"`),
  marked where it was cut, the row flagged `truncated`; a native PDF keeps whole pages;
- `chunk`: pieces that each fit (`chunking.py`: sections, paragraphs, pages), sent with the job's
  fields each, whose answers one reduce request combines (`plans.py`).

Pure but for cutting pages out of a PDF (pypdf), and run in the preparation thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .chunking import page_ranges, split_text
from .documents import MAX_PDF_BYTES, MAX_PDF_PAGES
from .errors import ExtractionError
from .jobs import Job
from .payloads import BinaryPayload, ChunkedPayload, Payload, TextPayload
from .requests import BYTES_PER_TOKEN_ESTIMATE, estimate_tokens

__all__ = ["HEAD_AND_TAIL_MARK", "TRUNCATION_MARK", "Fitted", "fit", "sendable_whole"]

TRUNCATION_MARK = "\n\n[... document truncated by docpipe ...]"
HEAD_AND_TAIL_MARK = "\n\n[... the middle of the document was left out by docpipe ...]\n\n"


@dataclass(frozen=True, slots=True)
class Fitted:
    """What is sent for a document, and whether it had to be cut to fit."""

    payload: Payload
    truncated: bool = False


def fit(
    document_id: str, payload: TextPayload | BinaryPayload, job: Job, *, path: Path | str | None = None
) -> Fitted:
    """The payload within the job's budget, by its `too_long` policy; `ExtractionError` for `error`."""
    if isinstance(payload, BinaryPayload):
        return _fit_pdf(document_id, payload, job, path)
    budget = job.max_document_tokens
    tokens = estimate_tokens(payload.text)
    if tokens <= budget:
        return Fitted(payload)
    if job.too_long == "error":
        raise _too_long(f"about {tokens:,} tokens, over job.max_document_tokens = {budget:,}", document_id, path)
    if job.too_long == "chunk":
        pieces = split_text(payload.text, budget, estimate_tokens)
        return Fitted(ChunkedPayload(tuple(TextPayload(piece) for piece in pieces)))
    return Fitted(TextPayload(_truncated_text(payload.text, budget, job.truncate)), truncated=True)


def sendable_whole(payload: TextPayload | BinaryPayload) -> bool:
    """Whether the API takes the payload in one request at all, whatever its tokens: a PDF within its limits."""
    if isinstance(payload, TextPayload):
        return True
    return len(payload.page_tokens) <= MAX_PDF_PAGES and payload.nbytes <= MAX_PDF_BYTES


def _truncated_text(text: str, budget_tokens: int, keep: str) -> str:
    data = text.encode("utf-8")
    if keep == "head_and_tail" and budget_tokens > estimate_tokens(HEAD_AND_TAIL_MARK):
        half = int((budget_tokens - estimate_tokens(HEAD_AND_TAIL_MARK)) * BYTES_PER_TOKEN_ESTIMATE) // 2
        head = data[:half].decode("utf-8", "ignore")
        tail = data[len(data) - half :].decode("utf-8", "ignore") if half else ""
        return head + HEAD_AND_TAIL_MARK + tail
    # A budget smaller than the mark itself keeps no text, and the mark says why.
    keep_bytes = max(0, int((budget_tokens - estimate_tokens(TRUNCATION_MARK)) * BYTES_PER_TOKEN_ESTIMATE))
    return data[:keep_bytes].decode("utf-8", "ignore") + TRUNCATION_MARK


def _fit_pdf(document_id: str, payload: BinaryPayload, job: Job, path: Path | str | None) -> Fitted:
    from .extract_pdf import pdf_subset

    budget = job.max_document_tokens
    page_tokens = payload.page_tokens
    tokens = sum(page_tokens)
    pages = len(page_tokens)
    if tokens <= budget and pages <= MAX_PDF_PAGES and payload.nbytes <= MAX_PDF_BYTES:
        return Fitted(payload)
    if pages > MAX_PDF_PAGES or payload.nbytes > MAX_PDF_BYTES:
        over = (
            f"a PDF of {pages:,} pages and {payload.nbytes / 2**20:.1f} MB with no text layer to send instead, "
            f"over the API's {MAX_PDF_PAGES} pages and {MAX_PDF_BYTES // 2**20} MB per request"
        )
    else:
        over = f"a PDF of about {tokens:,} tokens ({pages} pages), over job.max_document_tokens = {budget:,}"
    if job.too_long == "error":
        raise _too_long(over, document_id, path)

    def fail(message: str) -> ExtractionError:
        return ExtractionError(message, document_id=document_id, path=path)

    def piece(indexes: list[int]) -> BinaryPayload:
        subset = BinaryPayload(
            pdf_subset(payload.data, indexes, fail), payload.media_type, pages=len(indexes),
            page_tokens=tuple(page_tokens[i] for i in indexes), first_page=indexes[0] + 1,
        )
        if subset.nbytes > MAX_PDF_BYTES:
            raise fail(
                f"pages {indexes[0] + 1}-{indexes[-1] + 1} of this PDF are still {subset.nbytes / 2**20:.1f} MB, over "
                f"the API's {MAX_PDF_BYTES // 2**20} MB per request; reduce the PDF's image resolution"
            )
        return subset

    # Ranges by tokens and pages, and by size as far as the average page tells (a piece is checked once cut).
    max_pages = max(1, min(MAX_PDF_PAGES, int(pages * MAX_PDF_BYTES / max(payload.nbytes, 1))))
    if job.too_long == "chunk":
        ranges = page_ranges(page_tokens, budget, max_pages=max_pages)
        return Fitted(ChunkedPayload(tuple(piece(list(pages_of)) for pages_of in ranges)))
    if job.truncate != "head_and_tail" or pages < 3:
        return Fitted(piece(list(page_ranges(page_tokens, budget, max_pages=max_pages)[0])), truncated=True)
    tail_count = len(page_ranges(page_tokens[::-1], budget // 2, max_pages=max(1, max_pages // 2))[0])
    tail = list(range(pages - tail_count, pages))
    head_budget = budget - sum(page_tokens[i] for i in tail)
    head = list(page_ranges(page_tokens[: tail[0]], max(head_budget, 1), max_pages=max(1, max_pages - tail_count))[0])
    return Fitted(piece(head + tail), truncated=True)


def _too_long(over: str, document_id: str, path: Path | str | None) -> ExtractionError:
    error = ExtractionError(
        f'document too long: {over}; set too_long = "chunk" (pieces, then one request to combine their answers) '
        'or "truncate" in the job, or raise max_document_tokens',
        document_id=document_id,
        path=path,
    )
    error.error_type = "document_too_long"
    return error
