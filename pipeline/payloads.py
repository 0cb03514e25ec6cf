"""Document payloads: what a prepared document gives its plan, typed by what it is.

A `TextPayload` is text (an inline manifest row, or what extraction read from a file); a
`BinaryPayload` is bytes with their media type (a PDF to send as a `document` block, as the model
would see the file itself). The payload is what a request carries and what the handoff's byte
bound counts; its hash is defined over the same thing (the text's UTF-8 bytes, or the bytes), so a
document's ledger key changes exactly when what would be sent changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["BinaryPayload", "Payload", "TextPayload"]


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

    @property
    def nbytes(self) -> int:
        return len(self.data)

    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


Payload: TypeAlias = TextPayload | BinaryPayload
