"""Preparation: a document ref becomes work for the API, an error row, or nothing (already done).

Runs in the preparation thread: extraction, hashing and the ledger's checks stay off the event loop.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .errors import DocumentError, ExtractionError
from .extract import extract_text
from .jobs import Job
from .output import DoneLedger
from .requests import estimate_tokens, fit_document
from .sources import DocumentRef

__all__ = ["Preparer", "Work", "row_determined"]


def row_determined(error: DocumentError) -> bool:
    """Whether a ref's error follows from its manifest row and the job alone (see sources.py).

    A malformed row, a missing, bad or duplicate id, a column of the wrong type fail the same way
    until the manifest changes; a file that cannot be reached (an `ExtractionError`) may appear.
    """
    return not isinstance(error, ExtractionError)


@dataclass(slots=True)
class Work:
    """A document ready for the API, or already failed before it."""

    ref: DocumentRef
    text: str | None = None
    sha256: str | None = None
    truncated: bool = False
    size: int | None = None
    mtime_ns: int | None = None
    error: DocumentError | None = None


class Preparer:
    """Turns document refs into work, skipping what the ledger has (runs in its own thread)."""

    def __init__(self, job: Job, ledger: DoneLedger) -> None:
        self.job = job
        self.ledger = ledger
        self.already_done = 0
        self.errors_unchanged = 0

    @property
    def skipped(self) -> int:
        """Documents that need no new row: already done, or failing as already recorded."""
        return self.already_done + self.errors_unchanged

    def prepare(self, ref: DocumentRef) -> Work | None:
        if ref.error is not None:
            error = ref.error
            if row_determined(error) and self.ledger.same_error(ref.doc_id, error.error_type, error.message):
                self.errors_unchanged += 1
                return None
            return Work(ref, error=error)
        size = mtime_ns = None
        if ref.path is not None:
            try:
                stat = ref.path.stat()
                size, mtime_ns = stat.st_size, stat.st_mtime_ns
            except OSError:
                pass  # extract_text reports it with a proper message
            if size is not None and mtime_ns is not None and self.ledger.unchanged_file(ref.doc_id, size, mtime_ns):
                self.already_done += 1
                return None
        try:
            text = ref.text if ref.text is not None else extract_text(ref.path, document_id=ref.doc_id)  # type: ignore[arg-type]
        except ExtractionError as exc:
            return Work(ref, size=size, mtime_ns=mtime_ns, error=exc)
        content = text if isinstance(text, str) else text.text
        if not content.strip():
            return Work(ref, error=ExtractionError("empty document", document_id=ref.doc_id, path=ref.source))
        sha256 = hashlib.sha256(content.encode("utf-8")).hexdigest()
        if self.ledger.is_done(ref.doc_id, sha256):
            self.already_done += 1
            return None
        fitted, truncated = fit_document(content, self.job)
        if truncated and self.job.too_long == "error":
            error = ExtractionError(
                f"document too long: about {estimate_tokens(content):,} tokens, over job.max_document_tokens "
                f'= {self.job.max_document_tokens:,}; set too_long = "truncate" or raise max_document_tokens',
                document_id=ref.doc_id,
                path=ref.source,
            )
            error.error_type = "document_too_long"
            return Work(ref, sha256=sha256, size=size, mtime_ns=mtime_ns, error=error)
        return Work(ref, fitted, sha256, truncated, size, mtime_ns)
