"""Preparation: document refs become work for the API, error rows, or nothing (already done).

Runs in the preparation thread: extraction, hashing and the ledger's checks stay off the event loop.

Design. Refs are prepared a batch at a time, so that the ledger is asked once per batch (an
anti-join of the batch's keys with its columns, `ledger.py`) instead of once per document. Order and
laziness are kept: work comes out in the order its refs came in, a batch is cut short when its first
ref has waited `BATCH_MAX_WAIT_S` (a slow folder walk), batches grow from one ref (the first
document reaches the API without waiting for others) up to `BATCH_MAX_REFS` refs or
`BATCH_MAX_CHARS` of inline text, and a file is extracted only when its work is taken. An input
that fails midway still has the refs read before the failure prepared, then the failure is raised.

A reader's own batch is taken as it comes (`batches.DocumentBatch`: a block of a JSONL manifest).
Its inline rows are asked about by their id and text hash, read from the block's columns, and the
ref of one is built only when it needs work: a rerun over a million finished rows builds none.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .batches import DocumentBatch, DocumentStream
from .documents import load_document
from .errors import DocumentError, ExtractionError
from .fitting import fit
from .jobs import Job
from .ledger import DoneLedger
from .payloads import BinaryPayload, Payload, TextPayload
from .sources import DocumentRef

__all__ = ["BATCH_MAX_CHARS", "BATCH_MAX_REFS", "BATCH_MAX_WAIT_S", "Preparer", "Work", "row_determined"]

BATCH_MAX_REFS = 4096
BATCH_MAX_WAIT_S = 0.05
BATCH_MAX_CHARS = 1 << 23  # inline text a batch may hold: the refs of a batch are all in memory at once
SMALL_BATCH_REFS = 8  # below this, the ledger's single lookups beat its batch machinery


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
    payload: Payload | None = None  # what the plan sends; None when the work failed before it
    sha256: str | None = None  # over what was read: the document's text, or its bytes
    truncated: bool = False
    size: int | None = None
    mtime_ns: int | None = None
    error: DocumentError | None = None
    input_kind: str | None = None  # "text" or "pdf" (the file itself); None when it failed before
    pages: int | None = None  # a PDF's pages
    whole: TextPayload | BinaryPayload | None = None  # what the local estimate cut: the API's count may send it whole

    @property
    def nbytes(self) -> int:
        """What the work holds in memory, as the handoff's byte bound counts it."""
        held = self.payload.nbytes if self.payload is not None else 0
        return held + (self.whole.nbytes if self.whole is not None else 0)


class Preparer:
    """Turns document refs into work, skipping what the ledger has (runs in its own thread)."""

    def __init__(self, job: Job, ledger: DoneLedger, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.job = job
        self.ledger = ledger
        self.already_done = 0
        self.errors_unchanged = 0
        self.refs_read = 0  # refs taken from the input, prepared or about to be
        self._clock = clock

    @property
    def skipped(self) -> int:
        """Documents that need no new row: already done, or failing as already recorded."""
        return self.already_done + self.errors_unchanged

    def works(self, refs: Iterable[DocumentRef], *, stop: threading.Event | None = None) -> Iterator[Work]:
        """The work of `refs`, in their order, lazily; ends early once `stop` is set.

        From a `DocumentStream`, the reader's own batches are taken as they come (a JSONL block's
        inline rows are checked without their ref being built).
        """
        pieces = refs.pieces() if isinstance(refs, DocumentStream) else iter(refs)
        if self.job.attachments == "documents":
            from .attachments import expand_attachments  # an e-mail's attachments: refs of their own

            pieces = expand_attachments(pieces)
        for batch in self._batches(pieces):
            if stop is not None and stop.is_set():
                return
            yield from self._prepare_batch(batch)

    def prepare(self, ref: DocumentRef) -> Work | None:
        """The work of one ref, or None when it needs no new row."""
        return next(self._prepare_batch(DocumentBatch([ref])), None)

    def _batches(self, pieces: Iterator[DocumentRef | DocumentBatch]) -> Iterator[DocumentBatch]:
        """Refs in batches of 1, 2, 4... up to BATCH_MAX_REFS, each cut short after BATCH_MAX_WAIT_S.

        A batch the reader made (a JSONL block) is passed on as it is.
        """
        size = 1
        while True:
            batch: list[DocumentRef | None] = []
            started = self._clock()
            chars = 0
            given: DocumentBatch | None = None
            try:
                for piece in pieces:
                    if isinstance(piece, DocumentBatch):
                        given = piece
                        break
                    batch.append(piece)
                    chars += len(piece.text) if piece.text is not None else 0
                    if len(batch) >= size or chars >= BATCH_MAX_CHARS or self._clock() - started >= BATCH_MAX_WAIT_S:
                        break
            except Exception:
                self.refs_read += len(batch)
                if batch:  # what was read before the input failed is prepared first
                    yield DocumentBatch(batch)
                raise
            if batch:
                self.refs_read += len(batch)
                yield DocumentBatch(batch)
                size = min(size * 2, BATCH_MAX_REFS)
            if given is not None:
                self.refs_read += len(given)
                yield given
            elif not batch:
                return

    def _prepare_batch(self, batch: DocumentBatch) -> Iterator[Work]:
        """The batch's work: the ledger asked once for all, then only the refs it does not have looked at."""
        digests: list[bytes | None] = [None] * len(batch)
        stats: list[tuple[int, int] | None] = [None] * len(batch)
        doc_ids = [""] * len(batch)
        inline = batch.inline_rows()
        for index, doc_id, inline_digest in zip(
            inline, batch.inline_ids(inline), batch.inline_sha256(inline), strict=True
        ):
            doc_ids[index], digests[index] = doc_id, inline_digest
        for index, ref in enumerate(batch.refs) if len(inline) < len(batch) else ():
            if ref is None:
                continue
            doc_ids[index] = ref.doc_id
            if ref.error is not None:
                continue
            if ref.text is not None:
                if ref.text.strip():
                    digests[index] = hashlib.sha256(ref.text.encode("utf-8")).digest()
            elif ref.path is not None:
                try:
                    stat = ref.path.stat()
                    stats[index] = (stat.st_size, stat.st_mtime_ns)
                except OSError:
                    pass  # extract_text reports it with a proper message
        done = self._answered(doc_ids, digests, stats)
        previous = -1
        for index in np.flatnonzero(~done).tolist():
            self.already_done += index - previous - 1  # the refs skipped since the last one, counted in order
            previous = index
            digest = digests[index]
            work = self._prepare_one(batch.ref(index), digest.hex() if digest is not None else None, stats[index])
            if work is not None:
                yield work
        self.already_done += len(batch) - previous - 1

    def _answered(
        self, doc_ids: Sequence[str], digests: Sequence[bytes | None], stats: Sequence[tuple[int, int] | None]
    ) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """Which documents the ledger has: the same content hash, or a file of the same size and mtime."""
        done = np.zeros(len(doc_ids), dtype=bool)
        hashed = [index for index, digest in enumerate(digests) if digest is not None]
        if len(hashed) < SMALL_BATCH_REFS:
            for index in hashed:
                done[index] = self.ledger.is_done(doc_ids[index], digests[index].hex())  # type: ignore[union-attr]
        else:
            ids, values = [doc_ids[i] for i in hashed], [digests[i] for i in hashed]
            done[hashed] = self.ledger.are_done_digests(ids, values)  # type: ignore[arg-type]
        stated = [index for index, stat in enumerate(stats) if stat is not None]
        if len(stated) < SMALL_BATCH_REFS:
            for index in stated:
                size, mtime_ns = stats[index]  # type: ignore[misc]
                done[index] = self.ledger.unchanged_file(doc_ids[index], size, mtime_ns)
        else:
            ids = [doc_ids[i] for i in stated]
            sizes, mtimes = [stats[i][0] for i in stated], [stats[i][1] for i in stated]  # type: ignore[index]
            done[stated] = self.ledger.unchanged_files(ids, sizes, mtimes)
        return done

    def _prepare_one(self, ref: DocumentRef, sha256: str | None, stat: tuple[int, int] | None) -> Work | None:
        """A ref the batch's checks did not skip: extracted when it is a file, checked, fitted."""
        if ref.error is not None:
            error = ref.error
            if row_determined(error) and self.ledger.same_error(ref.doc_id, error.error_type, error.message):
                self.errors_unchanged += 1
                return None
            return Work(ref, error=error)
        size, mtime_ns = stat if stat is not None else (None, None)
        try:
            if ref.text is not None:
                payload: TextPayload | BinaryPayload = TextPayload(ref.text)
                input_kind, pages = "text", None
            else:
                loaded = load_document(
                    ref.path, pdf=self.job.pdf, document_id=ref.doc_id, part=ref.part  # type: ignore[arg-type]
                )
                payload, input_kind, pages = loaded.payload, loaded.input_kind, loaded.pages
        except ExtractionError as exc:
            return Work(ref, size=size, mtime_ns=mtime_ns, error=exc)
        if isinstance(payload, TextPayload) and not payload.text.strip():
            return Work(ref, error=ExtractionError(ExtractionError.EMPTY, document_id=ref.doc_id, path=ref.source))
        if sha256 is None:  # a file, read just now
            sha256 = payload.sha256()
            if self.ledger.is_done(ref.doc_id, sha256):
                self.already_done += 1
                return None
        try:
            fitted = fit(ref.doc_id, payload, self.job, path=ref.source)
        except ExtractionError as exc:
            return Work(ref, sha256=sha256, size=size, mtime_ns=mtime_ns, error=exc, input_kind=input_kind, pages=pages)
        whole = payload if fitted.payload is not payload else None
        return Work(
            ref, fitted.payload, sha256, fitted.truncated, size, mtime_ns,
            input_kind=input_kind, pages=pages, whole=whole,
        )
