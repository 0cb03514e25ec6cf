"""A document against the job's budget: whole, refused, truncated (head, or head and tail), or in pieces."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pypdf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_extract import make_pdf
from test_long_documents import blank_pages

from pipeline.chunking import page_ranges, split_text
from pipeline.documents import MAX_PDF_PAGES, PDF_PAGE_IMAGE_TOKENS, load_document, pdf_payload
from pipeline.errors import ExtractionError
from pipeline.fitting import HEAD_AND_TAIL_MARK, TRUNCATION_MARK, fit
from pipeline.jobs import Job, parse_job
from pipeline.payloads import BinaryPayload, ChunkedPayload, TextPayload
from pipeline.requests import estimate_tokens


def _job(**job: Any) -> Job:
    table = {"name": "t", "model": "claude-haiku-5-5", "instructions": "Classify."} | job
    return parse_job({"job": table, "fields": [{"name": "label", "type": "string", "description": "A label."}]})


def words(text: str) -> list[str]:
    return text.split()


# -- text ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["a" * 350, "a" * 10, "é" * 175])
def test_a_document_within_the_budget_is_sent_whole(text: str) -> None:
    """Within max_document_tokens, the payload is sent as it is and not marked."""
    payload = TextPayload(text)
    fitted = fit("d", payload, _job(max_document_tokens=100))
    assert (payload, False) == (fitted.payload, fitted.truncated)


@pytest.mark.parametrize("text", ["a" * 351, "b" * 10_000, "é" * 176, "a" + "é" * 200])
def test_truncate_keeps_the_head_within_the_budget_mark_included(text: str) -> None:
    """Over the budget, truncate keeps the head, cut on a character boundary, marked, and within the budget."""
    fitted = fit("d", TextPayload(text), _job(max_document_tokens=100, too_long="truncate"))
    assert isinstance(fitted.payload, TextPayload) and fitted.truncated
    kept = fitted.payload.text
    assert kept.endswith(TRUNCATION_MARK)
    assert text.startswith(kept.removesuffix(TRUNCATION_MARK))
    assert estimate_tokens(kept) <= 100


def test_head_and_tail_keeps_both_ends_and_marks_the_middle() -> None:
    """truncate = "head_and_tail" keeps the start and the end (where conclusions and signatures are)."""
    text = "START " + "middle words " * 2000 + " END"
    fitted = fit("d", TextPayload(text), _job(max_document_tokens=300, too_long="truncate", truncate="head_and_tail"))
    assert isinstance(fitted.payload, TextPayload) and fitted.truncated
    head, tail = fitted.payload.text.split(HEAD_AND_TAIL_MARK)
    assert text.startswith(head) and text.endswith(tail) and head.startswith("START") and tail.endswith("END")
    assert estimate_tokens(fitted.payload.text) <= 300


def test_error_policy_names_the_size_the_budget_and_what_to_set() -> None:
    """too_long = "error" refuses the document with a message that says what to change."""
    with pytest.raises(ExtractionError) as caught:
        fit("long.txt", TextPayload("x" * 3500), _job(max_document_tokens=100, too_long="error"))
    assert "document_too_long" == caught.value.error_type
    assert "about 1,000 tokens, over job.max_document_tokens = 100" in caught.value.message
    assert 'set too_long = "chunk"' in caught.value.message


def test_chunk_cuts_a_long_report_at_its_sections() -> None:
    """Sections that fit a piece are never split: every piece starts with a section heading."""
    paragraphs = ["\n\n".join(f"Paragraph {n}.{p}: " + "word " * 40 for p in range(6)) for n in range(8)]
    sections = [f"## Section {n}\n\n{text}" for n, text in enumerate(paragraphs)]
    text = "\n\n".join(sections)
    fitted = fit("r", TextPayload(text), _job(max_document_tokens=700, too_long="chunk"))
    assert isinstance(fitted.payload, ChunkedPayload) and not fitted.truncated
    pieces = [piece.text for piece in fitted.payload.pieces if isinstance(piece, TextPayload)]
    assert len(pieces) == len(fitted.payload.pieces) > 1
    assert all(estimate_tokens(piece) <= 700 for piece in pieces)
    assert all(piece.startswith("## Section") for piece in pieces)
    assert words(text) == [word for piece in pieces for word in words(piece)]


def test_chunk_splits_on_pages_of_a_pdf_text() -> None:
    """PDF text (pages joined by form feeds) is cut at page breaks once a piece is well filled."""
    pages = [f"Page {n} " + "clause " * 150 for n in range(10)]
    pieces = split_text("\n\f\n".join(pages), 500, estimate_tokens)
    assert len(pieces) > 1
    assert all(re.match(r"Page \d+ ", piece) for piece in pieces)


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from("ab é.\n\f#1"), max_size=3000),
    budget=st.integers(min_value=2, max_value=300),
)
def test_pieces_fit_and_lose_nothing(text: str, budget: int) -> None:
    """Any text: every piece within the budget, and the pieces hold every character but whitespace, in order."""
    pieces = split_text(text, budget, estimate_tokens)
    assert all(estimate_tokens(piece) <= budget for piece in pieces)
    assert "".join(text.split()) == "".join("".join(pieces).split())


@settings(max_examples=200, deadline=None)
@given(
    pages=st.lists(st.integers(min_value=1, max_value=5000), max_size=300),
    budget=st.integers(min_value=1, max_value=20_000),
    max_pages=st.integers(min_value=1, max_value=100),
)
def test_page_ranges_cover_every_page_once_within_both_limits(pages: list[int], budget: int, max_pages: int) -> None:
    """Consecutive ranges cover the pages once; each within the page limit, and within the budget unless one page."""
    ranges = page_ranges(pages, budget, max_pages=max_pages)
    assert list(range(len(pages))) == [index for pages_of in ranges for index in pages_of]
    for pages_of in ranges:
        assert len(pages_of) <= max_pages
        assert len(pages_of) == 1 or sum(pages[i] for i in pages_of) <= budget


# -- PDFs ------------------------------------------------------------------------------------------


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_auto_sends_a_scan_as_the_pdf_itself_and_prose_as_its_text(tmp_path: Path) -> None:
    """pdf = "auto": no text layer goes natively (pages counted as images); a page of prose goes as text."""
    scan = load_document(write(tmp_path, "scan.pdf", blank_pages(3)), pdf="auto")
    assert ("pdf", 3) == (scan.input_kind, scan.pages)
    assert isinstance(scan.payload, BinaryPayload)
    assert (PDF_PAGE_IMAGE_TOKENS,) * 3 == tuple(token - estimate_tokens("") for token in scan.payload.page_tokens)
    prose = load_document(write(tmp_path, "prose.pdf", make_pdf(["Invoice 1042 for 400 EUR. " * 12])), pdf="auto")
    assert ("text", 1) == (prose.input_kind, prose.pages)
    assert isinstance(prose.payload, TextPayload) and "Invoice 1042" in prose.payload.text


def test_native_sends_even_a_text_pdf_as_the_pdf_and_text_never_does(tmp_path: Path) -> None:
    """pdf = "native" sends the file; pdf = "text" refuses a scan and says what to set."""
    path = write(tmp_path, "prose.pdf", make_pdf(["Invoice 1042 for 400 EUR. " * 12]))
    assert "pdf" == load_document(path, pdf="native").input_kind
    with pytest.raises(ExtractionError, match='set pdf = "auto" or "native"'):
        load_document(write(tmp_path, "scan.pdf", blank_pages(1)), pdf="text")


def test_a_pdf_over_the_page_limit_falls_back_to_its_text(tmp_path: Path) -> None:
    """Over 100 pages, a PDF with a text layer is sent as its text, natively refused by the API."""
    path = write(tmp_path, "long.pdf", make_pdf([f"Page {n} of the fleet manual." for n in range(MAX_PDF_PAGES + 1)]))
    loaded = load_document(path, pdf="native")
    assert ("text", MAX_PDF_PAGES + 1) == (loaded.input_kind, loaded.pages)


@pytest.mark.parametrize("too_long", ["chunk", "truncate", "error"])
def test_a_long_scan_meets_the_too_long_policy_in_page_ranges(tmp_path: Path, too_long: str) -> None:
    """A 130-page scan (no text to fall back to): page ranges of at most 100 pages, the first ones, or an error."""
    loaded = load_document(write(tmp_path, "scan.pdf", blank_pages(130)), pdf="auto")
    assert isinstance(loaded.payload, BinaryPayload)
    job = _job(too_long=too_long, max_document_tokens=200_000, model="claude-sonnet-5-5")
    if too_long == "error":
        with pytest.raises(ExtractionError, match="over the API's 100 pages and 32 MB per request"):
            fit("scan.pdf", loaded.payload, job)
        return
    fitted = fit("scan.pdf", loaded.payload, job)
    if too_long == "truncate":
        assert isinstance(fitted.payload, BinaryPayload) and fitted.truncated
        assert (100, 1) == (fitted.payload.pages, fitted.payload.first_page)
        assert 100 == len(pypdf.PdfReader(io.BytesIO(fitted.payload.data)).pages)
        return
    assert isinstance(fitted.payload, ChunkedPayload)
    pieces = [piece for piece in fitted.payload.pieces if isinstance(piece, BinaryPayload)]
    assert [(1, 100), (101, 30)] == [(piece.first_page, piece.pages) for piece in pieces]
    assert [100, 30] == [len(pypdf.PdfReader(io.BytesIO(piece.data)).pages) for piece in pieces]


def test_a_scan_over_the_token_budget_is_cut_by_pages_within_it() -> None:
    """A native PDF within the API's limits but over max_document_tokens is chunked by its page tokens."""
    payload = pdf_payload(blank_pages(10), [""] * 10)
    fitted = fit("scan.pdf", payload, _job(too_long="chunk", max_document_tokens=5_000))
    assert isinstance(fitted.payload, ChunkedPayload)
    assert all(sum(piece.page_tokens) <= 5_000 for piece in fitted.payload.pieces if isinstance(piece, BinaryPayload))
    assert 10 == sum(piece.pages or 0 for piece in fitted.payload.pieces if isinstance(piece, BinaryPayload))
