"""What a document file is sent as: its extracted text, or (a PDF) the file itself as the model sees it.

A job's `pdf` key decides for PDFs. `text` sends the text layer, as every other format is sent.
`native` sends the PDF in a `document` block: the API shows the model each page as an image with
its text (https://platform.claude.com/docs/en/build-with-claude/pdf-support), so layout, tables,
stamps and scanned pages reach it. `auto` sends natively what extraction cannot serve well, a PDF
with no text layer or less than `MIN_TEXT_CHARS_PER_PAGE` characters of it per page (a scan, a
form, a slide deck), and the text of the rest, at a fraction of the tokens.

A native PDF over the API's limits per request (`MAX_PDF_PAGES` pages, `MAX_PDF_BYTES` bytes), or
encrypted (even with an empty password, which docpipe can open and the API refuses), is sent as
its text when it has a text layer; one without is left to the job's `too_long` policy,
which can send it in page ranges (`fitting.py`). A PDF nobody can read (corrupt, encrypted) is an
`ExtractionError`, as with text extraction.

A native PDF's input tokens are estimated per page as the API bills them: its text plus one page
image (`PDF_PAGE_IMAGE_TOKENS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ExtractionError
from .extract import extract_bytes, read_file
from .payloads import BinaryPayload, TextPayload
from .requests import estimate_tokens
from .surrogates import utf8_problem

__all__ = [
    "MAX_PDF_BYTES",
    "MAX_PDF_PAGES",
    "MIN_TEXT_CHARS_PER_PAGE",
    "PDF_PAGE_IMAGE_TOKENS",
    "Loaded",
    "load_document",
    "pdf_payload",
]

PDF_MEDIA_TYPE = "application/pdf"
MAX_PDF_PAGES = 100  # per request (pdf-support docs, "PDF support requirements")
MAX_PDF_BYTES = 32 * 1024 * 1024  # per request, the PDF included (same table)
# A page is also sent as an image, scaled to at most about 1.15 megapixels: about 1,600 tokens
# (https://platform.claude.com/docs/en/build-with-claude/vision, "Calculate image costs"); with its text, a page of
# prose costs 1,500-3,000 tokens (pdf-support docs, "Estimate your costs").
PDF_PAGE_IMAGE_TOKENS = 1_600
MIN_TEXT_CHARS_PER_PAGE = 200  # auto: under this much text a page, the text layer misses what the page shows
ENCRYPTED_NO_TEXT = (
    "encrypted PDF: the API does not take encrypted PDFs and this one has no text layer to send instead; "
    "save an unprotected copy to process it"
)


@dataclass(frozen=True, slots=True)
class Loaded:
    """A document file read for sending: its payload, and how it will be sent."""

    payload: TextPayload | BinaryPayload
    input_kind: str  # "text" or "pdf" (the file itself, in a `document` block)
    pages: int | None = None  # a PDF's page count, however it is sent


def load_document(
    path: Path, *, pdf: str = "auto", document_id: str | None = None, part: int | None = None
) -> Loaded:
    """Read a document file and decide what to send; `ExtractionError` when it cannot be sent at all.

    `part` names a part of an e-mail (`extract.extract_text`), always sent as its text.
    """
    data = read_file(path, document_id=document_id)
    if path.suffix.lower() != ".pdf" or pdf == "text" or part is not None:
        extracted = extract_bytes(data, path.suffix, document_id=document_id, path=str(path), part=part)
        return Loaded(TextPayload(extracted.text), "text", extracted.pages)
    return _load_pdf(data, pdf, document_id=document_id, path=path)


def _load_pdf(data: bytes, pdf: str, *, document_id: str | None, path: Path) -> Loaded:
    from .extract_pdf import pdf_pages

    def fail(message: str) -> ExtractionError:
        return ExtractionError(message, document_id=document_id, path=path)

    if not data.strip():
        raise fail(ExtractionError.EMPTY)
    texts, encrypted = pdf_pages(data, fail)  # corrupt, or a password wanted: refused by the API too
    text_chars = sum(len(text) for text in texts)
    if encrypted and not text_chars:
        raise fail(ENCRYPTED_NO_TEXT)
    over_limits = encrypted or len(texts) > MAX_PDF_PAGES or len(data) > MAX_PDF_BYTES
    if text_chars and (over_limits or (pdf == "auto" and text_chars >= MIN_TEXT_CHARS_PER_PAGE * len(texts))):
        text = "\n\f\n".join(texts)
        problem = utf8_problem(text)
        if problem is not None:
            raise fail(f"undecodable text: it holds {problem}; re-save the file with valid text")
        return Loaded(TextPayload(text), "text", len(texts))
    return Loaded(pdf_payload(data, texts), "pdf", len(texts))


def pdf_payload(data: bytes, page_texts: list[str] | tuple[str, ...], *, first_page: int = 1) -> BinaryPayload:
    """A PDF as a native payload, with its tokens estimated page by page."""
    return BinaryPayload(
        data,
        PDF_MEDIA_TYPE,
        pages=len(page_texts),
        page_tokens=tuple(estimate_tokens(text) + PDF_PAGE_IMAGE_TOKENS for text in page_texts),
        first_page=first_page,
    )
