"""PDFs as the API reads them: pages, each with its extracted text, parsed once per content.

The API turns every page of a PDF into an image and sends the page's extracted text with it
(https://platform.claude.com/docs/en/build-with-claude/pdf-support, "How PDF support works"), so
a page costs its text plus an image. `PdfPages` holds what the emulator needs of a PDF: how many
pages, the text of each, and its size; the token rule over it lives in `tokens.py`.

Parsing is the expensive step (pypdf, imported on the first PDF), and the same PDF comes back many
times: a fan-out sends one document with many prompts, a retry sends it again, and one request
reads it in validation, token counting, caching and generation. `read_base64_pdf` therefore
caches by content: its key is the base64 text itself (Python keeps a string's hash on the object,
so the same string is looked up in constant time), bounded by count and by total size. Refusals
are cached too: a corrupt PDF sent again is refused again without a second parse.
"""

from __future__ import annotations

import base64
import binascii
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass

from ..pdf_failures import PDF_PARSE_FAILURES

__all__ = [
    "MAX_PDF_PAGES",
    "MAX_PDF_REQUEST_BYTES",
    "PdfError",
    "PdfPages",
    "decode_base64",
    "read_base64_pdf",
    "read_pdf",
]

PDF_HEADER = b"%PDF-"
MAX_PDF_PAGES = 100  # per request, all PDFs together (pdf-support docs, "Check PDF requirements")
MAX_PDF_REQUEST_BYTES = 32 * 1024 * 1024  # per request, all PDFs together (same table)
ENCRYPTED = "The PDF specified is encrypted or password-protected, which is not supported."
CACHE_ENTRIES = 64
CACHE_CHARS = 128 * 1024 * 1024  # base64 text held as keys, at most



class PdfError(Exception):
    """Why the API would refuse a PDF: not base64, not a PDF, corrupt, or encrypted."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PdfPages:
    """A parsed PDF: the extracted text of each page, and the size of the file in bytes."""

    page_texts: tuple[str, ...]
    size_bytes: int

    @property
    def pages(self) -> int:
        return len(self.page_texts)

    @property
    def text(self) -> str:
        """The document's text, pages apart as paragraphs (what the generated answers draw from)."""
        return "\n\n".join(text for text in self.page_texts if text)


def decode_base64(data: str) -> bytes:
    """Strict standard base64 (padding required, no stray characters), or `PdfError`."""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PdfError(f"invalid base64 data ({exc})") from None


def read_pdf(raw: bytes) -> PdfPages:
    """Parse a PDF: its pages and their text, or `PdfError` when the API would refuse it."""
    if not raw.startswith(PDF_HEADER):
        raise PdfError("The PDF specified was not valid: the data does not start with %PDF-.")
    from ..extract_pdf import quiet_pypdf  # docpipe's own PDF reading: loaded with the first PDF

    with quiet_pypdf():
        return _parse(raw)


def _parse(raw: bytes) -> PdfPages:
    import pypdf  # paid by the first PDF, not by the emulator's import
    from pypdf.errors import DependencyError, PyPdfError

    failures: tuple[type[BaseException], ...] = (PyPdfError, *PDF_PARSE_FAILURES)
    try:
        reader = pypdf.PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            raise PdfError(ENCRYPTED)
        count = len(reader.pages)
        if count > MAX_PDF_PAGES:  # refused whatever its text: counting pages is cheap, extracting them is not
            return PdfPages(("",) * count, len(raw))
        texts = tuple(" ".join((page.extract_text() or "").split()) for page in reader.pages)
    except DependencyError:  # pypdf needs `cryptography` to open an AES-encrypted file at all
        raise PdfError(ENCRYPTED) from None
    except failures as exc:
        raise PdfError(f"The PDF specified was not valid: {type(exc).__name__}.") from None
    if not texts:
        raise PdfError("The PDF specified was not valid: it has no pages.")
    return PdfPages(texts, len(raw))


class _ContentCache:
    """Parse results (pages or the refusal) by base64 text, least recently used out first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, PdfPages | PdfError] = OrderedDict()
        self._chars = 0

    def get(self, data: str) -> PdfPages | PdfError | None:
        with self._lock:
            found = self._entries.get(data)
            if found is not None:
                self._entries.move_to_end(data)
            return found

    def put(self, data: str, result: PdfPages | PdfError) -> None:
        with self._lock:
            if data in self._entries:
                return
            self._entries[data] = result
            self._chars += len(data)
            while len(self._entries) > CACHE_ENTRIES or (self._chars > CACHE_CHARS and len(self._entries) > 1):
                evicted, _ = self._entries.popitem(last=False)
                self._chars -= len(evicted)


_CACHE = _ContentCache()
parses = 0  # how many PDFs were actually parsed in this process (tests read it to see the cache work)


def read_base64_pdf(data: str) -> PdfPages:
    """The pages of a base64 PDF, parsed once per content; `PdfError` when the API would refuse it."""
    global parses
    found = _CACHE.get(data)
    if found is None:
        parses += 1
        try:
            found = read_pdf(decode_base64(data))
        except PdfError as exc:
            found = exc
        _CACHE.put(data, found)
    if isinstance(found, PdfError):
        raise found
    return found
