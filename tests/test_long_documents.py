"""End to end, through the CLI and the emulator: long documents in pieces, native PDFs, PDFs over the API's limits."""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path
from typing import Any

import pypdf
import pytest
from conftest import SEED, TEST_KEY
from test_cli_run import TRIAGE, billed, invoke, message_requests
from test_extract import make_pdf

import pipeline
from pipeline.documents import PDF_PAGE_IMAGE_TOKENS
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.pieces import PIECES_FILE


def blank_pages(count: int) -> bytes:
    """A PDF of `count` pages with no text layer: what a scan looks like to an extractor."""
    writer = pypdf.PdfWriter()
    for _ in range(count):
        writer.add_blank_page(width=612, height=792)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def report(sections: int) -> str:
    """A long Markdown report: numbered sections of several paragraphs each."""
    return "# Fleet maintenance review 2026\n\n" + "\n\n".join(
        f"## {n}. Depot {n}\n\n"
        + "\n\n".join(
            f"Depot {n}, finding {p}: the brake inspection of trailer T-{n}{p:02d} was late by {p + 2} days, "
            "and the workshop logged the repair cost as 1,250 EUR." for p in range(5)
        )
        for n in range(1, sections + 1)
    )


def job_file(tmp_path: Path, **keys: str | int) -> Path:
    text = TRIAGE.read_text()
    for key in keys:  # the triage job sets some of these already: its own lines give way
        text = "\n".join(line for line in text.splitlines() if not line.startswith(f"{key} ="))
    settings = "".join(f"{key} = {value!r}\n".replace("'", '"') for key, value in keys.items())
    path = tmp_path / "job.toml"
    path.write_text(text.replace("[job]\n", "[job]\n" + settings, 1))
    return path


def rows_of(out: Path) -> Any:
    return pipeline.load_results(out).set_index("doc_id")


def test_a_long_report_is_answered_in_pieces_then_combined(emulator: Emulator, tmp_path: Path) -> None:
    """too_long = "chunk": pieces within the budget, one request combining them, one row counting them all."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "review.md").write_text(report(12))
    (docs / "note.txt").write_text("Invoice 5 from Acme for 40 EUR, due in 30 days.\n")
    job = job_file(tmp_path, too_long="chunk", max_document_tokens=600)
    out = tmp_path / "out"
    result = invoke(["run", str(job), str(docs), "--out", str(out)], emulator)
    assert 0 == result.exit_code, result.output
    rows = rows_of(out)
    assert ["ok", "ok"] == rows.status.tolist()
    requests = int(rows.loc["review.md", "request_count"])
    assert requests >= 4  # at least three pieces and the request that combines them
    assert 1 == rows.loc["note.txt", "request_count"]
    assert 1 + requests == billed(emulator)  # nothing asked twice
    assert rows.loc["review.md", "input_tokens"] + rows.loc["review.md", "cache_read_tokens"] > 2 * 600
    assert rows.loc["review.md", "cost_usd"] > rows.loc["note.txt", "cost_usd"]
    assert not (out / PIECES_FILE).exists()  # the document has its row: its pieces are no longer kept
    again = invoke(["run", str(job), str(docs), "--out", str(out)], emulator)
    assert 0 == again.exit_code and 1 + requests == billed(emulator)  # a rerun sends nothing


def test_a_kill_in_the_middle_of_a_chunked_document_re_pays_only_its_pieces_in_flight(tmp_path: Path) -> None:
    """SIGKILL while one piece hangs and the others are answered: the rerun asks that piece and the combination only."""
    from conftest import ForkedRun

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "review.md").write_text(report(12))
    job = job_file(tmp_path, too_long="chunk", max_document_tokens=600)
    out = tmp_path / "out"
    argv = ["run", str(job), str(docs), "--out", str(out), "--concurrency", "4"]
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        emulator.control.set_faults([{"kind": "hang", "seconds": 60, "match": 'part=\\"3 of'}])
        env = dict(os.environ, ANTHROPIC_API_KEY=TEST_KEY, ANTHROPIC_BASE_URL=emulator.base_url, DOCPIPE_PROGRESS="off")
        process = ForkedRun(argv, env)
        deadline = time.monotonic() + 30

        def journaled() -> int:
            path = out / PIECES_FILE
            return len(path.read_bytes().splitlines()) if path.exists() else 0

        pieces = 0
        while not pieces or journaled() < pieces - 1:  # every piece answered but the one that hangs
            assert time.monotonic() < deadline, "the pieces were never answered"
            if not pieces and message_requests(emulator):
                bodies = [e for e in emulator.control.requests() if e.get("endpoint") == "messages"]
                pieces = len(bodies) if len(bodies) > 3 else 0
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        answered = journaled()
        emulator.control.set_faults([])
        before = billed(emulator)
        rerun = invoke(argv, emulator)
        sent_by_rerun = billed(emulator) - before
    assert 0 == rerun.exit_code, rerun.output
    assert 2 == sent_by_rerun  # the piece that hung, and the request combining the pieces
    row = rows_of(out).loc["review.md"]
    assert ("ok", answered + 2) == (row.status, row.request_count)


def test_a_scan_is_sent_as_the_pdf_itself_and_billed_by_its_pages(emulator: Emulator, tmp_path: Path) -> None:
    """pdf = "auto": a PDF with no text layer gets an ok row, input_kind pdf, its pages billed as images."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "scan.pdf").write_bytes(blank_pages(3))
    (docs / "invoice.pdf").write_bytes(make_pdf(["Invoice 1042 from Acme Ltd for 400 EUR, due in 30 days. " * 5]))
    out = tmp_path / "out"
    result = invoke(["run", str(TRIAGE), str(docs), "--out", str(out)], emulator)
    assert 0 == result.exit_code, result.output
    rows = rows_of(out)
    assert ("ok", "pdf", 3) == tuple(rows.loc["scan.pdf", ["status", "input_kind", "input_pages"]])
    assert ("ok", "text", 1) == tuple(rows.loc["invoice.pdf", ["status", "input_kind", "input_pages"]])
    scan = rows.loc["scan.pdf"]
    assert scan.input_tokens + scan.cache_read_tokens + scan.cache_write_tokens >= 3 * PDF_PAGE_IMAGE_TOKENS


@pytest.mark.parametrize("too_long", ["chunk", "truncate", "error"])
def test_a_scan_over_100_pages_follows_the_too_long_policy(emulator: Emulator, tmp_path: Path, too_long: str) -> None:
    """A 130-page scan, over the API's 100 pages a request with no text to fall back to: page ranges, the
    first 100 pages, or an error row saying what to set."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "scan.pdf").write_bytes(blank_pages(130))
    job = job_file(tmp_path, too_long=too_long, max_document_tokens=200_000, model="claude-sonnet-5-5")
    out = tmp_path / "out"
    result = invoke(["run", str(job), str(docs), "--out", str(out)], emulator)
    row = rows_of(out).loc["scan.pdf"]
    if too_long == "error":
        assert 1 == result.exit_code, result.output
        assert ("error", "document_too_long") == (row.status, row.error_type)
        assert 'set too_long = "chunk"' in row.error_message
        assert 0 == billed(emulator)
        return
    assert 0 == result.exit_code, result.output
    assert ("ok", "pdf", 130) == (row.status, row.input_kind, row.input_pages)
    assert (3 if too_long == "chunk" else 1) == row.request_count == billed(emulator)
    assert row.truncated == (too_long == "truncate")


def test_a_text_pdf_over_100_pages_is_sent_as_its_text(emulator: Emulator, tmp_path: Path) -> None:
    """pdf = "native" over the page limit falls back to the text layer: one request, input_kind text."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "manual.pdf").write_bytes(make_pdf([f"Page {n}: loading bay procedure step {n}." for n in range(120)]))
    job = job_file(tmp_path, pdf="native")
    out = tmp_path / "out"
    result = invoke(["run", str(job), str(docs), "--out", str(out)], emulator)
    assert 0 == result.exit_code, result.output
    row = rows_of(out).loc["manual.pdf"]
    assert ("ok", "text", 120, 1) == (row.status, row.input_kind, row.input_pages, row.request_count)


def test_batch_mode_sends_a_chunked_document_through_messages(tmp_path: Path) -> None:
    """--mode batch: whole documents go in a batch; one in pieces goes through Messages, its row says realtime."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "review.md").write_text(report(12))
    (docs / "note.txt").write_text("Invoice 5 from Acme for 40 EUR, due in 30 days.\n")
    job = job_file(tmp_path, too_long="chunk", max_document_tokens=600)
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.1)) as emulator:
        result = invoke(
            ["run", str(job), str(docs), "--out", str(out), "--mode", "batch"], emulator, DOCPIPE_BATCH_POLL_S="0.05"
        )
    assert 0 == result.exit_code, result.output
    rows = rows_of(out)
    assert ["ok", "ok"] == rows.status.tolist()
    assert ("batch", 1) == tuple(rows.loc["note.txt", ["mode", "request_count"]])
    assert "realtime" == rows.loc["review.md", "mode"] and rows.loc["review.md", "request_count"] >= 4
