"""Documents a batch at a time: what the preparation thread takes from an input.

A `DocumentStream` is an iterator of refs, as every input has always been; its `pieces()` hand
over what the reader made: single refs, and `DocumentBatch`es of consecutive refs, some of which
may be *inline rows*: manifest rows with inline text known to make a valid ref, whose id and text
hash come straight from the reader's columns (`manifest_jsonl_blocks.py`). The ledger is asked about
those without their ref being built; it is built only for a document that needs work, which on a
rerun over finished documents is almost never.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .refs import DocumentRef

__all__ = ["DocumentBatch", "DocumentStream"]


class DocumentBatch:
    """Consecutive documents of one input: `refs[i]` is a ref, or None for an inline row.

    This base class holds refs only (its inline methods answer for no row); a reader that hands
    over inline rows subclasses it.
    """

    def __init__(self, refs: list[DocumentRef | None]) -> None:
        self.refs = refs

    def __len__(self) -> int:
        return len(self.refs)

    def ref(self, index: int) -> DocumentRef:
        """The ref of any row (an inline row's is built now)."""
        ref = self.refs[index]
        return ref if ref is not None else self.inline_ref(index)

    def inline_rows(self) -> list[int]:
        """The indexes of the inline rows, in order."""
        return []

    def inline_ids(self, indexes: Sequence[int]) -> list[str]:
        """The doc_ids of these inline rows (a new list)."""
        return []

    def inline_sha256(self, indexes: Sequence[int]) -> list[bytes]:
        """The SHA-256 digests of these inline rows' text, as its ref would carry it (a new list)."""
        return []

    def inline_ref(self, index: int) -> DocumentRef:
        raise NotImplementedError


class DocumentStream(Iterator[DocumentRef]):
    """The documents of an input: an iterator of refs, whose `pieces()` keep the reader's batches.

    A whole-input problem (a missing manifest, no `id` column) is raised by the first `next()` or
    by `pieces()`' first item, as the reader raises it.
    """

    def __init__(self, pieces: Iterator[DocumentRef | DocumentBatch]) -> None:
        self._pieces = pieces
        self._batch: DocumentBatch | None = None
        self._next_index = self._batch_size = 0

    def __next__(self) -> DocumentRef:
        while self._batch is None:
            piece = next(self._pieces)
            if isinstance(piece, DocumentRef):
                return piece
            if len(piece):
                self._batch, self._next_index, self._batch_size = piece, 0, len(piece)
        index = self._next_index
        ref = self._batch.ref(index)
        self._next_index = index + 1
        if self._next_index == self._batch_size:
            self._batch = None
        return ref

    def pieces(self) -> Iterator[DocumentRef | DocumentBatch]:
        """The rest of the input as the reader yields it: refs, and batches that may hold inline rows."""
        if self._batch is not None:  # the rest of a batch `next()` started
            batch, start, self._batch = self._batch, self._next_index, None
            yield from (batch.ref(index) for index in range(start, len(batch)))
        yield from self._pieces
