"""The documents a request attaches, checked as the API checks them: PDFs, plain text, custom content, URLs.

A base64 document source must hold a PDF (`media_type: application/pdf`, SDK
`types/base64_pdf_source_param.py`) in strict base64 that opens as an unencrypted PDF. All the PDFs
of one request together may have at most 100 pages and 32 MB: "both limits are on the entire
request payload" (https://platform.claude.com/docs/en/build-with-claude/pdf-support). Past the page
limit the API answers `<path>.pdf.source.base64.data: A maximum of 100 PDF pages may be provided.`
(a captured 400, anthropics/claude-code#6231), and the emulator uses the same path shape for every
PDF refusal. URL sources are refused: the emulator has no network, and answering as if it had read
a page it never fetched would be a lie. File sources (`{"type": "file", "file_id": ...}`) are
replaced by their content before validation (`files.py`), so they reach these checks as the base64
or text sources they stand for.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .pdf import MAX_PDF_PAGES, MAX_PDF_REQUEST_BYTES, PdfError, read_base64_pdf
from .validation import ApiError, invalid

__all__ = ["check_attachments", "document_blocks"]

PDF_DATA = ".pdf.source.base64.data"  # how the API's messages name a PDF's data (see the module doc)
URL_REFUSED = (
    "the emulator has no network and cannot fetch URL sources; send the file as base64 data or upload it "
    "with the Files API and reference its file_id"
)


def document_blocks(messages: list[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every document and image block of the user turns, with its path, tool results included."""
    for index, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for position, block in enumerate(content):
            if not isinstance(block, dict):
                continue
            where = f"messages.{index}.content.{position}"
            if block.get("type") in ("document", "image"):
                yield where, block
            elif block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                for inner, nested in enumerate(block["content"]):
                    if isinstance(nested, dict) and nested.get("type") in ("document", "image"):
                        yield f"{where}.content.{inner}", nested


def _check_text_source(source: dict[str, Any], where: str) -> None:
    if not isinstance(source.get("data"), str):
        raise invalid(f"{where}.source.data: Field required")
    if source.get("media_type") != "text/plain":  # required (SDK `types/plain_text_source_param.py`)
        raise invalid(f"{where}.source.media_type: Input should be 'text/plain'")


def _check_pdf_source(source: dict[str, Any], where: str) -> tuple[int, int]:
    """Check one base64 PDF source; return its pages and bytes."""
    if source.get("media_type") != "application/pdf":
        raise invalid(f"{where}.source.media_type: Input should be 'application/pdf'")
    data = source.get("data")
    if not isinstance(data, str):
        raise invalid(f"{where}.source.data: Field required")
    try:
        pages = read_base64_pdf(data)
    except PdfError as exc:
        raise invalid(f"{where}{PDF_DATA}: {exc.reason}") from None
    return pages.pages, pages.size_bytes


def check_attachments(messages: list[Any]) -> None:
    """Refuse the request's documents the API would refuse, and PDFs past the per-request limits."""
    total_pages = total_bytes = 0
    for where, block in document_blocks(messages):
        source = block.get("source")
        if not isinstance(source, dict) or block.get("type") != "document":
            continue
        kind = source.get("type")
        if kind == "url":
            raise invalid(f"{where}.source.url: {URL_REFUSED}")
        if kind == "text":
            _check_text_source(source, where)
        elif kind == "base64":
            pages, size = _check_pdf_source(source, where)
            total_pages += pages
            total_bytes += size
            if total_pages > MAX_PDF_PAGES:
                raise invalid(f"{where}{PDF_DATA}: A maximum of {MAX_PDF_PAGES} PDF pages may be provided.")
            if total_bytes > MAX_PDF_REQUEST_BYTES:
                raise ApiError(
                    413,
                    "request_too_large",
                    f"{where}{PDF_DATA}: the PDFs of a request may total at most 32 MB ({total_bytes} bytes).",
                )
