"""Document payloads: what a prepared document gives its plan, typed by what it is.

A `TextPayload` is text (an inline manifest row, or what extraction read from a file); a
`BinaryPayload` is bytes with their media type (a PDF to send as a `document` block, as the model
would see the file itself); a `ChunkedPayload` is a document too long for one request, as the
pieces it is sent in (text, or page ranges of a PDF), whose answers one reduce request combines.
The payload is what a request carries and what the handoff's byte bound counts; the hash of a text
or binary payload is defined over the same thing (the text's UTF-8 bytes, or the bytes), so a
document's ledger key changes exactly when what would be sent changes. A chunked document keeps the
hash of the whole it was cut from (`Work.sha256`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["BinaryPayload", "ChunkedPayload", "Payload", "Piece", "TextPayload"]


@dataclass(frozen=True, slots=True)
class TextPayload:
    """A document as text."""

    text: str

    @property
    def nbytes(self) -> int:
        """Its size in UTF-8 bytes (what it weighs in the handoff)."""
        return len(self.text) if self.text.isascii() else len(self.text.encode("utf-8", "surrogatepass"))

    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class BinaryPayload:
    """A document as bytes with their media type (`application/pdf`), sent as they are."""

    data: bytes
    media_type: str
    pages: int | None = None  # a PDF's page count
    page_tokens: tuple[int, ...] = ()  # a PDF's estimated input tokens, page by page (`pdf_tokens.py`)
    first_page: int = 1  # where a page range cut from a longer PDF starts, for the prompt and the row

    @property
    def nbytes(self) -> int:
        return len(self.data)

    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


Piece: TypeAlias = TextPayload | BinaryPayload


@dataclass(frozen=True, slots=True)
class ChunkedPayload:
    """A document sent in pieces, each within the job's budget, in the document's order."""

    pieces: tuple[Piece, ...]

    @property
    def nbytes(self) -> int:
        return sum(piece.nbytes for piece in self.pieces)


Payload: TypeAlias = TextPayload | BinaryPayload | ChunkedPayload
