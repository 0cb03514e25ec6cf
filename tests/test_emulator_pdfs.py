"""PDF documents on the emulator: checked, read and billed per page as the API does, through the official SDK."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import pytest
from test_extract import encrypted_pdf, make_pdf

from pipeline.emulator import Emulator, Limits, pdf
from pipeline.emulator.tokens import BLOCK_OVERHEAD_TOKENS, PDF_PAGE_IMAGE_TOKENS, count_text_tokens

MODEL = "claude-haiku-5-5"
INVOICE_PAGES = [
    "Invoice 4471 from Rotterdam Freight BV for the harbour storage of 40 containers.",
    "Payment of 12,400 euros is due on 2026-03-01 to the account named on the first page.",
]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def padded_pdf() -> bytes:
    """A valid PDF whose base64 ends in padding (trailing bytes after %%EOF are allowed)."""
    data = make_pdf(["Hello"])
    return data + b"\n" * ((1 - len(data)) % 3)


def pdf_block(data: bytes | str, **extra: Any) -> dict[str, Any]:
    encoded = data if isinstance(data, str) else b64(data)
    return {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": encoded}, **extra}


def ask(*blocks: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [*blocks, {"type": "text", "text": "Summarise this document."}]}]


def pages(count: int, start: int = 0) -> list[str]:
    return [f"Page {start + index + 1} of the annual report of the Rotterdam depot." for index in range(count)]


def refused(client: anthropic.Anthropic, messages: list[dict[str, Any]]) -> anthropic.APIStatusError:
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model=MODEL, max_tokens=100, messages=messages)
    return caught.value


def test_pdf_is_read_and_the_answer_comes_from_its_text(client: anthropic.Anthropic) -> None:
    """A base64 PDF is accepted and the answer is drawn from its extracted text."""
    message = client.messages.create(model=MODEL, max_tokens=300, messages=ask(pdf_block(make_pdf(INVOICE_PAGES))))
    text = next(block.text for block in message.content if block.type == "text")
    assert "Invoice 4471 from Rotterdam Freight BV" in text


def test_each_page_costs_its_text_plus_a_page_image(client: anthropic.Anthropic) -> None:
    """A 90-page PDF costs, per page, the page's text tokens plus 1,600 image tokens, on top of the prompt."""
    texts = pages(90)
    with_pdf = client.messages.count_tokens(model=MODEL, messages=ask(pdf_block(make_pdf(texts))))
    without = client.messages.count_tokens(model=MODEL, messages=ask())
    expected = sum(count_text_tokens(text) + PDF_PAGE_IMAGE_TOKENS for text in texts) + BLOCK_OVERHEAD_TOKENS
    assert expected == with_pdf.input_tokens - without.input_tokens
    assert with_pdf.input_tokens > 90 * 1_600


def test_count_tokens_agrees_with_the_billed_usage(client: anthropic.Anthropic) -> None:
    """count_tokens answers exactly the input tokens the same PDF request is billed."""
    messages = ask(pdf_block(make_pdf(pages(12))))
    counted = client.messages.count_tokens(model=MODEL, messages=messages)
    billed = client.messages.create(model=MODEL, max_tokens=50, messages=messages)
    assert counted.input_tokens == billed.usage.input_tokens


def test_a_cached_pdf_is_written_then_read_at_its_page_cost(client: anthropic.Anthropic) -> None:
    """A PDF behind a cache breakpoint is written once and read the next time, with the same token count."""
    messages = ask(pdf_block(make_pdf(pages(3)), cache_control={"type": "ephemeral"}))
    first = client.messages.create(model=MODEL, max_tokens=20, messages=messages)
    second = client.messages.create(model=MODEL, max_tokens=20, messages=messages)
    assert first.usage.cache_creation_input_tokens >= 3 * 1_600
    assert first.usage.cache_creation_input_tokens == second.usage.cache_read_input_tokens


def test_rate_limits_take_the_pdf_at_its_page_cost(make_emulator: Any, make_client: Any) -> None:
    """The input-token bucket is charged the PDF's billed tokens: a second 5-page request right after is a 429."""
    sdk = make_client(make_emulator(limits=Limits(itpm=10_000)))
    messages = ask(pdf_block(make_pdf(pages(5))))
    raw = sdk.messages.with_raw_response.create(model=MODEL, max_tokens=20, messages=messages)
    billed = raw.parse().usage.input_tokens
    assert billed > 5 * PDF_PAGE_IMAGE_TOKENS
    assert int(raw.headers["anthropic-ratelimit-input-tokens-remaining"]) <= 10_000 - billed + 10
    with pytest.raises(anthropic.RateLimitError):
        sdk.messages.create(model=MODEL, max_tokens=20, messages=messages)


def test_the_context_window_check_counts_pdf_pages(client: anthropic.Anthropic) -> None:
    """A 100-page PDF plus 50,000 tokens of text passes Claude Haiku 4.5's 200K window: `prompt is too long`."""
    notes = {"type": "text", "text": "Context for the report. " * 8_400}
    client.messages.count_tokens(model="claude-haiku-4-5", messages=ask(notes))
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model="claude-haiku-4-5", max_tokens=20, messages=ask(pdf_block(make_pdf(pages(100))), notes)
        )
    assert caught.value.api_message.startswith("prompt is too long: ")


def test_a_pdf_is_parsed_once_however_often_it_is_sent(client: anthropic.Anthropic) -> None:
    """Repeated requests with the same PDF (a fan-out, a retry) do not parse it again."""
    messages = ask(pdf_block(make_pdf(["A document parsed only once by the emulator, whatever comes."])))
    client.messages.create(model=MODEL, max_tokens=20, messages=messages)
    parsed = pdf.parses
    for _ in range(3):
        client.messages.count_tokens(model=MODEL, messages=messages)
        client.messages.create(model=MODEL, max_tokens=20, messages=messages)
    assert parsed == pdf.parses


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b64(make_pdf(["Hello"]))[:-2] + "!!", "invalid base64 data"),
        (b64(padded_pdf()).rstrip("="), "invalid base64 data"),
        (b64(b"Hello, this is plain text and not a PDF at all."), "does not start with %PDF-"),
        (b64(make_pdf(["Hello world", "Second page"])[:300]), "The PDF specified was not valid"),
        (b64(encrypted_pdf("secret")), "encrypted or password-protected"),
    ],
    ids=["bad-character", "no-padding", "not-a-pdf", "corrupt", "encrypted"],
)
def test_a_pdf_the_api_cannot_read_is_refused(client: anthropic.Anthropic, data: str, fragment: str) -> None:
    """Undecodable base64, data that is not a PDF, a corrupt PDF and an encrypted one are each a 400."""
    error = refused(client, ask(pdf_block(data)))
    assert (400, "invalid_request_error") == (error.status_code, error.type)
    assert error.api_message.startswith("messages.0.content.0.pdf.source.base64.data: ")
    assert fragment in error.api_message


def test_count_tokens_refuses_a_bad_pdf_too(client: anthropic.Anthropic) -> None:
    """count_tokens checks PDFs as Messages does: a corrupt one is a 400, not a count."""
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.count_tokens(model=MODEL, messages=ask(pdf_block(make_pdf(["Hello world"])[:200])))
    assert "messages.0.content.0.pdf.source.base64.data" in caught.value.api_message


def test_more_than_100_pages_in_one_pdf_is_refused(client: anthropic.Anthropic) -> None:
    """A 101-page PDF is a 400 with the API's own message; 100 pages are accepted."""
    client.messages.count_tokens(model=MODEL, messages=ask(pdf_block(make_pdf(pages(100)))))
    error = refused(client, ask(pdf_block(make_pdf(pages(101)))))
    assert (400, "invalid_request_error") == (error.status_code, error.type)
    assert "messages.0.content.0.pdf.source.base64.data: A maximum of 100 PDF pages may be provided." == (
        error.api_message
    )


def test_the_page_limit_counts_every_pdf_of_the_request(client: anthropic.Anthropic) -> None:
    """Two PDFs of 60 and 50 pages pass the limit together: the second one is named."""
    error = refused(client, ask(pdf_block(make_pdf(pages(60))), pdf_block(make_pdf(pages(50, start=60)))))
    assert error.status_code == 400
    assert error.api_message.startswith("messages.0.content.1.pdf.source.base64.data: A maximum of 100 PDF pages")


def test_the_size_limit_counts_every_pdf_of_the_request(
    client: anthropic.Anthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PDFs that together pass the per-request size limit (32 MB, lowered here) are a 413 naming the last one."""
    first, second = make_pdf(pages(1)), make_pdf(pages(1, start=1))
    monkeypatch.setattr("pipeline.emulator.attachments.MAX_PDF_REQUEST_BYTES", len(first) + len(second) - 1)
    client.messages.count_tokens(model=MODEL, messages=ask(pdf_block(first)))
    error = refused(client, ask(pdf_block(first), pdf_block(second)))
    assert (413, "request_too_large") == (error.status_code, error.type)
    assert error.api_message.startswith("messages.0.content.1.pdf.source.base64.data: the PDFs of a request")


def test_a_base64_document_must_say_it_is_a_pdf(client: anthropic.Anthropic) -> None:
    """A base64 document source with another media type is a 400 naming `source.media_type`."""
    block = pdf_block(make_pdf(["Hello"]))
    block["source"]["media_type"] = "application/msword"
    error = refused(client, ask(block))
    assert error.status_code == 400
    assert error.api_message.startswith("messages.0.content.0.source.media_type: ")


def test_url_sources_are_refused_because_the_emulator_has_no_network(client: anthropic.Anthropic) -> None:
    """A URL document is a 400 naming `source.url`: the emulator never pretends to have fetched it."""
    block = {"type": "document", "source": {"type": "url", "url": "https://example.com/report.pdf"}}
    error = refused(client, ask(block))
    assert error.status_code == 400
    assert error.api_message.startswith("messages.0.content.0.source.url: the emulator has no network")


@pytest.mark.parametrize(
    "source",
    [
        {"type": "text", "media_type": "text/plain", "data": "Invoice 88 from the Delft printing works."},
        {"type": "content", "content": [{"type": "text", "text": "Invoice 88 from the Delft printing works."}]},
        {"type": "content", "content": "Invoice 88 from the Delft printing works."},
    ],
    ids=["text", "content-blocks", "content-string"],
)
def test_text_and_content_documents_keep_working(client: anthropic.Anthropic, source: dict[str, Any]) -> None:
    """Plain-text and custom-content documents are accepted and count as they are billed."""
    messages = ask({"type": "document", "source": source})
    counted = client.messages.count_tokens(model=MODEL, messages=messages)
    billed = client.messages.create(model=MODEL, max_tokens=50, messages=messages)
    assert counted.input_tokens == billed.usage.input_tokens


def test_a_pdf_in_a_batch_is_billed_as_in_messages(make_emulator: Any, make_client: Any) -> None:
    """A batch request with a PDF succeeds with the input tokens count_tokens gives; a bad PDF is errored."""
    emulator: Emulator = make_emulator(batch_processing_s=0)
    sdk = make_client(emulator)
    good = ask(pdf_block(make_pdf(INVOICE_PAGES)))
    bad = ask(pdf_block(make_pdf(pages(101))))
    batch = sdk.messages.batches.create(
        requests=[
            {"custom_id": "good", "params": {"model": MODEL, "max_tokens": 50, "messages": good}},
            {"custom_id": "bad", "params": {"model": MODEL, "max_tokens": 50, "messages": bad}},
        ]
    )
    assert sdk.messages.batches.retrieve(batch.id).processing_status == "ended"
    results = {result.custom_id: result.result for result in sdk.messages.batches.results(batch.id)}
    assert results["good"].type == "succeeded"
    counted = sdk.messages.count_tokens(model=MODEL, messages=good)
    assert counted.input_tokens == results["good"].message.usage.input_tokens
    assert results["bad"].type == "errored"
    assert "A maximum of 100 PDF pages may be provided." in results["bad"].error.error.message


def test_a_pdf_over_the_page_limit_is_refused_before_its_pages_are_read() -> None:
    """Counting pages is cheap and reading them is not: a PDF already over the limit has no text read."""
    read = pdf.read_pdf(make_pdf(pages(pdf.MAX_PDF_PAGES + 1)))
    assert read.pages == pdf.MAX_PDF_PAGES + 1
    assert set(read.page_texts) == {""}
    within = pdf.read_pdf(make_pdf(pages(3)))
    assert all(within.page_texts)  # at the limit or under it, every page is read
