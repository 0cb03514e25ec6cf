"""Typed document payloads: text is fenced in a text block, bytes go as a `document` block, and the
plan, the estimate, the handoff's byte bound and the hash all read the same payload."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import anthropic
import pypdf
from test_output import _job

from pipeline.ledger import load_ledger
from pipeline.payloads import BinaryPayload, TextPayload
from pipeline.plans import Planner
from pipeline.prepare import Preparer
from pipeline.requests import build_params, fence_id
from pipeline.sources import DocumentRef


def _pdf(pages: int = 2) -> bytes:
    writer = pypdf.PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_text_payload_is_planned_as_the_plain_text_is() -> None:
    planner = Planner(_job())
    (spec,) = planner.plan("doc-1", TextPayload("Pay 10 EUR by Friday."))
    assert spec.params == build_params(planner.job, "doc-1", "Pay 10 EUR by Friday.")
    assert spec.estimated_input_tokens == planner.estimate("doc-1", TextPayload("Pay 10 EUR by Friday."))


def test_bytes_go_as_a_document_block_that_holds_them_exactly() -> None:
    planner = Planner(_job())
    data = _pdf()
    (spec,) = planner.plan("a" * 300, BinaryPayload(data, "application/pdf"))
    (block,) = spec.params["messages"][0]["content"]
    assert block["type"] == "document"
    assert block["title"] == fence_id("a" * 300)
    assert block["source"]["type"] == "base64"
    assert block["source"]["media_type"] == "application/pdf"
    assert base64.b64decode(block["source"]["data"], validate=True) == data
    text_spec = planner.plan("b", TextPayload("x"))[0]
    assert spec.params["system"] == text_spec.params["system"]  # the cached prefix is the same either way
    assert spec.params["output_config"] == text_spec.params["output_config"]


def test_the_estimate_of_bytes_grows_with_them() -> None:
    planner = Planner(_job())
    small = planner.estimate("d", BinaryPayload(b"%PDF-" + b"x" * 1_000, "application/pdf"))
    large = planner.estimate("d", BinaryPayload(b"%PDF-" + b"x" * 100_000, "application/pdf"))
    assert planner.prefix_estimate < small < large
    assert large - small >= 99_000 // 4


def test_a_payload_weighs_its_utf8_bytes_and_hashes_them() -> None:
    assert TextPayload("abc").nbytes == 3
    assert TextPayload("é€𝄞").nbytes == len("é€𝄞".encode()) == 9
    assert BinaryPayload(b"\x00\x01", "application/pdf").nbytes == 2
    assert TextPayload("é").sha256() == BinaryPayload("é".encode(), "text/plain").sha256()


def test_a_file_and_an_inline_row_of_the_same_text_hash_alike(tmp_path: Path) -> None:
    job = _job()
    path = tmp_path / "memo.txt"
    path.write_text("Same words, two sources.", encoding="utf-8")
    preparer = Preparer(job, load_ledger(tmp_path / "out", job))
    from_file = preparer.prepare(DocumentRef("memo.txt", "memo.txt", path, None, {}))
    inline = preparer.prepare(DocumentRef("m", "m.jsonl:1", None, "Same words, two sources.", {}))
    assert from_file is not None and inline is not None
    assert from_file.payload == inline.payload == TextPayload("Same words, two sources.")
    assert from_file.sha256 == inline.sha256 == TextPayload("Same words, two sources.").sha256()


def test_the_emulator_accepts_and_bills_a_planned_pdf(client: anthropic.Anthropic) -> None:
    """The planned params of a bytes payload are a request the API takes, billed for the document."""
    planner = Planner(_job())
    (pdf_spec,) = planner.plan("scan", BinaryPayload(_pdf(3), "application/pdf"))
    (text_spec,) = planner.plan("scan", TextPayload("A"))
    pdf_tokens = client.messages.count_tokens(**_countable(pdf_spec.params)).input_tokens
    text_tokens = client.messages.count_tokens(**_countable(text_spec.params)).input_tokens
    assert pdf_tokens > text_tokens
    message = client.messages.create(**pdf_spec.params)
    assert (
        message.usage.input_tokens
        + (message.usage.cache_creation_input_tokens or 0)
        + (message.usage.cache_read_input_tokens or 0)
        == pdf_tokens
    )


def _countable(params: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in params.items() if key != "max_tokens"}
