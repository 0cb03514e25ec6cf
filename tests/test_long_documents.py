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
from test_cli_run import TRIAGE, billed, invoke
from test_extract import assemble_pdf, make_pdf

import pipeline
from pipeline.documents import PDF_PAGE_IMAGE_TOKENS
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.fitting import fit
from pipeline.jobs import load_job
from pipeline.payloads import ChunkedPayload, TextPayload
from pipeline.pieces import PIECES_FILE
from pipeline.requests import estimate_tokens


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
    fitted = fit("review.md", TextPayload((docs / "review.md").read_text()), load_job(job))
    assert isinstance(fitted.payload, ChunkedPayload)
    pieces = len(fitted.payload.pieces)
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        emulator.control.set_faults([{"kind": "hang", "seconds": 60, "match": 'part=\\"3 of'}])
        env = dict(os.environ, ANTHROPIC_API_KEY=TEST_KEY, ANTHROPIC_BASE_URL=emulator.base_url, DOCPIPE_PROGRESS="off")
        process = ForkedRun(argv, env)
        deadline = time.monotonic() + 30

        def journaled() -> int:
            path = out / PIECES_FILE
            return len(path.read_bytes().splitlines()) if path.exists() else 0

        while journaled() < pieces - 1:  # every piece answered but the one that hangs
            assert time.monotonic() < deadline, "the pieces were never answered"
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
    assert (pieces - 1, "ok", pieces + 1) == (answered, row.status, row.request_count)


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


def quick_retries(tmp_path: Path) -> Path:
    """The triage job with no wait before a retry."""
    path = tmp_path / "quick.toml"
    path.write_text(TRIAGE.read_text() + "\n[retry]\ninitial_backoff_s = 0\nmax_backoff_s = 0.1\n")
    return path


def files_left(emulator: Emulator) -> list[str]:
    import anthropic

    client = anthropic.Anthropic(api_key=TEST_KEY, base_url=emulator.base_url, max_retries=0)
    try:
        return [stored.filename for stored in client.files.list()]
    finally:
        client.close()


def test_a_pdf_sent_again_goes_through_the_files_api_and_is_deleted_after(emulator: Emulator, tmp_path: Path) -> None:
    """A native PDF whose first attempt failed is uploaded once, named by file_id, and deleted once answered."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "scan.pdf").write_bytes(blank_pages(2))
    emulator.control.set_faults([{"kind": "overloaded", "times": 1}])
    out = tmp_path / "out"
    result = invoke(["run", str(quick_retries(tmp_path)), str(docs), "--out", str(out)], emulator)
    assert 0 == result.exit_code, result.output
    row = rows_of(out).loc["scan.pdf"]
    assert ("ok", "pdf", 2) == (row.status, row.input_kind, row.attempts)
    by_endpoint = emulator.control.stats()["requests"]["by_endpoint"]
    assert 1 == by_endpoint.get("files", 0) - 1  # one upload and one delete
    assert [] == files_left(emulator)
    assert not (out / "_files.jsonl").exists()
    assert "1 PDF(s) uploaded through the Files API" in result.output


def test_a_kill_with_a_pdf_uploaded_leaves_it_recorded_and_the_next_run_deletes_it(tmp_path: Path) -> None:
    """SIGKILL while the upload's request hangs: the record names the file; the rerun deletes it, then answers."""
    from conftest import ForkedRun

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "scan.pdf").write_bytes(blank_pages(2))
    out = tmp_path / "out"
    argv = ["run", str(quick_retries(tmp_path)), str(docs), "--out", str(out)]
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        emulator.control.set_faults(
            [{"kind": "overloaded", "times": 1}, {"kind": "hang", "seconds": 60, "match": '"type":"file"'}]
        )
        env = dict(os.environ, ANTHROPIC_API_KEY=TEST_KEY, ANTHROPIC_BASE_URL=emulator.base_url, DOCPIPE_PROGRESS="off")
        process = ForkedRun(argv, env)
        record = out / "_files.jsonl"
        deadline = time.monotonic() + 30
        while not (record.exists() and b'"uploaded"' in record.read_bytes()):
            assert time.monotonic() < deadline, "the PDF was never uploaded"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert 1 == len(files_left(emulator))  # uploaded, and the run that did it is gone
        emulator.control.set_faults([])
        rerun = invoke(argv, emulator)
        assert 0 == rerun.exit_code, rerun.output
        assert [] == files_left(emulator)
    assert "1 file(s) left by a killed run deleted" in rerun.output
    assert "ok" == rows_of(out).loc["scan.pdf", "status"]
    assert not record.exists()


def test_batch_mode_sends_native_pdfs_by_file_id_and_deletes_them_once_collected(tmp_path: Path) -> None:
    """--mode batch: a scan is uploaded before its batch, the batch names it by file_id, and it is deleted after."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "scan.pdf").write_bytes(blank_pages(2))
    (docs / "note.txt").write_text("Invoice 5 from Acme for 40 EUR, due in 30 days.\n")
    out = tmp_path / "out"
    argv = ["run", str(TRIAGE), str(docs), "--out", str(out), "--mode", "batch"]
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=3600)) as emulator:
        pending = invoke([*argv, "--no-wait"], emulator)
        assert 0 == pending.exit_code, pending.output
        assert 1 == len(files_left(emulator))  # the batch will read it: kept
        params = (next((out / "_batches").glob("*.params.jsonl"))).read_text()
        assert '"type": "file"' in params or '"type":"file"' in params
        assert "base64" not in params
        emulator.state.clock.advance(3600)
        collected = invoke(argv, emulator, DOCPIPE_BATCH_POLL_S="0.05")
        assert 0 == collected.exit_code, collected.output
        assert [] == files_left(emulator)
    rows = rows_of(out)
    assert ("ok", "pdf", "batch") == tuple(rows.loc["scan.pdf", ["status", "input_kind", "mode"]])
    assert not (out / "_files.jsonl").exists()


def test_a_document_over_the_budget_only_by_the_local_estimate_is_counted_and_sent_whole(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The local estimate is high on purpose; count_tokens decides: within the budget, the document goes whole."""
    docs = tmp_path / "docs"
    docs.mkdir()
    text = "The night shift checked every pallet in bay 7 and signed the log. " * 55  # ~3,700 bytes
    (docs / "log.txt").write_text(text)
    job = job_file(tmp_path, too_long="truncate", max_document_tokens=1000)
    assert 1000 < estimate_tokens(text.strip())  # cut by the local estimate...
    out = tmp_path / "out"
    result = invoke(["run", str(job), str(docs), "--out", str(out)], emulator)
    assert 0 == result.exit_code, result.output
    row = rows_of(out).loc["log.txt"]
    assert (False, 1) == (row.truncated, row.request_count)  # ...but the API's count fits it: sent whole
    assert "1 sent whole (count_tokens" in result.output
    counted = emulator.control.stats()["requests"]["by_endpoint"].get("count_tokens", 0)
    assert 2 == counted  # the document's request, and once a run the same request around an empty document


def test_a_long_output_streams_and_a_stream_that_keeps_failing_writes_no_partial_answer(
    emulator: Emulator, tmp_path: Path
) -> None:
    """max_tokens 32,000 streams; a stream cut after its first deltas, every time, is an error row, no half answer."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Invoice 5 from Acme for 40 EUR, due in 30 days.\n")
    (docs / "b.txt").write_text("Complaint: the pallets from order 7781 arrived broken; we want a refund.\n")
    job = job_file(tmp_path, max_tokens=32000)
    job.write_text(job.read_text() + "\n[retry]\nmax_attempts = 2\ninitial_backoff_s = 0\nmax_backoff_s = 0.1\n")
    emulator.control.set_faults([{"kind": "stream_disconnect", "match": "Complaint"}])
    out = tmp_path / "out"
    result = invoke(["run", str(job), str(docs), "--out", str(out)], emulator)
    assert 1 == result.exit_code, result.output
    rows = rows_of(out)
    assert rows.streamed.all()
    assert ("ok", "error") == (rows.loc["a.txt", "status"], rows.loc["b.txt", "status"])
    failed = rows.loc["b.txt"]
    assert 2 == failed.attempts
    assert failed[["category", "summary", "confidence", "key_points"]].isna().all()  # nothing of the partial text


def test_the_estimate_prices_a_chunked_document_at_the_realtime_price_in_batch_mode(
    emulator: Emulator, tmp_path: Path
) -> None:
    """`docpipe estimate`: a document in pieces goes through Messages even in batch mode, so its batch price is
    the realtime one; the pieces and the combining request are all counted."""
    import json

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "review.md").write_text(report(12))
    job = job_file(tmp_path, too_long="chunk", max_document_tokens=600)
    fitted = fit("review.md", TextPayload((docs / "review.md").read_text()), load_job(job))
    assert isinstance(fitted.payload, ChunkedPayload)
    result = invoke(["estimate", str(job), str(docs), "--json"], emulator)
    assert 0 == result.exit_code, result.output
    realtime, batch = json.loads(result.output)["projections"]
    assert len(fitted.payload.pieces) + 1 == realtime["documents"] == batch["documents"]  # requests, in fact
    assert realtime["expected_usd"] == batch["expected_usd"] > 0


def large_scan(size_bytes: int) -> bytes:
    """One page that is one large image (incompressible bytes), as a high-resolution scan is."""
    import random

    image = random.Random(SEED).randbytes(size_bytes)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /Im 5 0 R >> >> "
        b"/Contents 4 0 R >>",
        b"<< /Length 29 >>\nstream\nq 612 0 0 792 0 0 cm /Im Do Q\nendstream",
        b"<< /Type /XObject /Subtype /Image /Width 1000 /Height %d /ColorSpace /DeviceRGB /BitsPerComponent 8 "
        b"/Length %d >>\nstream\n%s\nendstream" % (size_bytes // 3000, size_bytes, image),
    ]
    return assemble_pdf(objects)


def test_a_large_pdf_goes_through_the_files_api_from_its_first_attempt(tmp_path: Path) -> None:
    """A native PDF over 4 MB is uploaded before it is sent, even offline (one file as INPUT), and deleted after."""
    from pipeline.uploads import FILES_ABOVE_BYTES

    scan = tmp_path / "big_scan.pdf"
    scan.write_bytes(large_scan(FILES_ABOVE_BYTES + 200_000))
    out = tmp_path / "out"
    result = invoke(["run", str(TRIAGE), str(scan), "--out", str(out), "--offline"], ANTHROPIC_API_KEY="")
    assert 0 == result.exit_code, result.output
    row = rows_of(out).loc["big_scan.pdf"]
    assert ("ok", "pdf", 1) == (row.status, row.input_kind, row.attempts)
    assert "1 PDF(s) uploaded through the Files API" in result.output
    assert not (out / "_files.jsonl").exists()  # uploaded, used, deleted: nothing left to clean


def test_every_token_paid_for_a_chunked_document_is_in_exactly_one_row(emulator: Emulator, tmp_path: Path) -> None:
    """A piece that fails its schema once and a combination that fails for good: the error row counts what
    was lost, the answered pieces wait in the journal, and the rerun's ok row counts them; every row summed
    is what the API billed, nothing counted twice."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "review.md").write_text(report(12))
    job = job_file(tmp_path, too_long="chunk", max_document_tokens=600)
    job.write_text(job.read_text() + "\n[retry]\ninitial_backoff_s = 0\nmax_backoff_s = 0.1\n")
    out = tmp_path / "out"
    argv = ["run", str(job), str(docs), "--out", str(out)]
    emulator.control.set_faults([
        {"kind": "malformed_output", "match": 'part=\\"2 of', "times": 1},  # paid for, asked again
        {"kind": "malformed_output", "match": 'parts=\\"'},  # the combination never parses: an error row
    ])
    first = invoke(argv, emulator)
    assert 1 == first.exit_code, first.output
    error = rows_of(out).loc["review.md"]
    assert "error" == error.status and "are kept and the next run asks only the rest" in error.error_message
    emulator.control.set_faults([])
    again = invoke(argv, emulator)
    assert 0 == again.exit_code, again.output
    every_row = pipeline.load_results(out, latest=False)
    billed_tokens = emulator.control.stats()["tokens"]
    counted = every_row[["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"]].sum()
    assert (billed_tokens["input"], billed_tokens["output"], billed_tokens["cache_read"],
            billed_tokens["cache_creation"]) == tuple(int(n) for n in counted)
    ok = rows_of(out).loc["review.md"]
    assert "ok" == ok.status and ok.request_count >= 4
