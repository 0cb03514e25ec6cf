"""Faults around long documents, native PDFs and the Files API, found by attacking them: each test failed once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from conftest import SEED
from test_cli_run import TRIAGE, billed, invoke
from test_long_documents import blank_pages, files_left, job_file, report, rows_of

from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.fitting import fit
from pipeline.jobs import load_job
from pipeline.payloads import TextPayload
from pipeline.pieces import PIECES_FILE, PieceAnswer, PieceJournal
from pipeline.pricing import TokenUsage
from pipeline.requests import estimate_tokens


def test_truncate_on_a_budget_under_the_marks_size_keeps_no_more_than_the_budget() -> None:
    """A budget smaller than the truncation mark keeps no text, never (by a negative cut) nearly all of it."""
    job = dataclasses.replace(load_job(TRIAGE), max_document_tokens=10, too_long="truncate")
    text = "x" * 10_000
    for keep in ("head", "head_and_tail"):
        fitted = fit("d", TextPayload(text), dataclasses.replace(job, truncate=keep))
        assert fitted.truncated
        assert isinstance(fitted.payload, TextPayload)
        assert estimate_tokens(fitted.payload.text) <= 10 * 2, (keep, estimate_tokens(fitted.payload.text))


def test_a_piece_appended_after_a_torn_line_is_read_by_the_next_run(tmp_path: Path) -> None:
    """A torn last line (a kill mid-append) is ended before the next piece is appended, so that piece is read back."""
    (tmp_path / PIECES_FILE).write_bytes(b'{"doc_id": "a", "doc_sha')  # killed mid-append
    key = ("a", "s", "f")
    journal = PieceJournal(tmp_path)
    hashes = ["h1", "h2", "h3"]
    assert {} == journal.answered(key, hashes)
    answer = PieceAnswer(1, 3, "h1", {"x": 1}, TokenUsage(10, 5), 0.1, "req_1", 1)
    journal.record(key, answer)  # paid for, and (the run believes) kept
    # the process is killed again before the document's row: the next run reads the journal
    assert {1: answer} == PieceJournal(tmp_path).answered(key, hashes)


def test_a_journal_left_after_the_row_was_written_is_compacted_by_the_next_run(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Pieces left by a kill between a chunked document's row and the journal's compaction go at the next run's end."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "review.md").write_text(report(12))
    job = job_file(tmp_path, too_long="chunk", max_document_tokens=600)
    out = tmp_path / "out"
    argv = ["run", str(job), str(docs), "--out", str(out)]
    emulator.control.set_faults([{"kind": "invalid_request", "match": 'parts=\\"', "times": 1}])
    first = invoke(argv, emulator)  # the reduce fails: an error row, the pieces kept
    assert 1 == first.exit_code, first.output
    kept = (out / PIECES_FILE).read_bytes()
    again = invoke(argv, emulator)  # the pieces are reused, the row written, the journal compacted
    assert 0 == again.exit_code, again.output
    assert not (out / PIECES_FILE).exists()
    (out / PIECES_FILE).write_bytes(kept)  # the state of a kill between the row and the compaction
    later = invoke(argv, emulator)
    assert 0 == later.exit_code, later.output
    assert not (out / PIECES_FILE).exists(), "the finished document's pieces are kept for ever"


def test_max_cost_in_batch_mode_covers_the_chunked_documents_too(tmp_path: Path) -> None:
    """--mode batch --max-cost: the chunked documents sent through Messages after the batches get only what is left."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(6):
        (docs / f"note{i}.txt").write_text(f"Invoice {i} from Acme for 40 EUR, due in 30 days. " * 800)
    (docs / "review.md").write_text(report(200))
    job = job_file(tmp_path, too_long="chunk", max_document_tokens=20000, max_tokens=512)
    job.write_text(
        job.read_text() + "\n[prices]\ninput_usd = 10\noutput_usd = 10\ncache_write_5m_usd = 10\n"
        "cache_write_1h_usd = 10\ncache_read_usd = 10\n"
    )
    out = tmp_path / "out"
    cap = 0.6
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.1)) as emulator:
        result = invoke(
            ["run", str(job), str(docs), "--out", str(out), "--mode", "batch", "--max-cost", str(cap)],
            emulator, DOCPIPE_BATCH_POLL_S="0.05",
        )
    spent = float(rows_of(out).cost_usd.sum())
    assert spent <= cap, f"--max-cost {cap} but the run spent {spent:.4f} (exit {result.exit_code})"


def test_one_pdf_over_100_pages_leaves_count_tokens_on_for_the_other_documents(tmp_path: Path) -> None:
    """A PDF no count can send whole is not counted; count_tokens still sends the other documents whole."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "0_scan.pdf").write_bytes(blank_pages(130))
    text = "The night shift checked every pallet in bay 7 and signed the log. " * 55
    for i in range(4):
        (docs / f"log_{i}.txt").write_text(text)
    job = job_file(tmp_path, too_long="truncate", max_document_tokens=1000)
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        result = invoke(["run", str(job), str(docs), "--out", str(out), "--concurrency", "1"], emulator)
    assert 0 == result.exit_code, result.output
    rows = rows_of(out)
    logs = rows[rows.index.str.startswith("log_")]
    assert not logs.truncated.any(), "fit by count_tokens when run alone; truncated after the scan"


def test_two_documents_with_the_same_pdf_one_retrying_while_the_others_file_is_deleted(tmp_path: Path) -> None:
    """The same PDF in two documents: one's retry never names the file being deleted for the other; both end ok."""
    docs = tmp_path / "docs"
    docs.mkdir()
    scan = blank_pages(2)
    (docs / "alpha.pdf").write_bytes(scan)
    (docs / "bravo.pdf").write_bytes(scan)
    job = tmp_path / "job.toml"
    job.write_text(
        TRIAGE.read_text().replace("timeout_s = 60", "timeout_s = 2.5\ncache_warmup = false")
        + "\n[retry]\ninitial_backoff_s = 0\nmax_backoff_s = 0.1\n"
    )
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        emulator.control.set_faults([
            {"kind": "overloaded", "match": "alpha.pdf", "times": 1},  # alpha is retried, by file_id
            {"kind": "slow_first_byte", "seconds": 0, "match": "alpha.pdf"},
            {"kind": "hang", "seconds": 60, "match": "bravo.pdf", "times": 1},  # bravo's first attempt times out
            {"kind": "slow_first_byte", "seconds": 1, "match": "bravo.pdf"},
            {"kind": "slow_first_byte", "seconds": 3, "match": "DELETE", "endpoints": ["files"]},  # a slow delete
        ])
        result = invoke(["run", str(job), str(docs), "--out", str(out)], emulator)
        left = files_left(emulator)
    assert 0 == result.exit_code, result.output
    assert ["ok", "ok"] == rows_of(out).status.tolist()
    assert [] == left


def test_a_schema_retry_of_one_piece_is_priced_request_by_request(emulator: Emulator, tmp_path: Path) -> None:
    """A piece asked twice is priced attempt by attempt: two 78k-token requests are not one 156k-token one."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "review.md").write_text(report(1300))
    job = job_file(tmp_path, too_long="chunk", max_document_tokens=90000, cache_ttl="off")
    job.write_text(job.read_text() + "\n[retry]\ninitial_backoff_s = 0\nmax_backoff_s = 0.1\n")
    out = tmp_path / "out"
    emulator.control.set_faults([{"kind": "malformed_output", "match": 'part=\\"1 of', "times": 1}])
    result = invoke(["run", str(job), str(docs), "--out", str(out)], emulator)
    assert 0 == result.exit_code, result.output
    row = rows_of(out).loc["review.md"]
    assert row.request_count == 4 and row.attempts == 5 and billed(emulator) == 5
    # every request was under 100k prompt tokens: the base price, $0.10 / $0.50 per million
    expected = (row.input_tokens * 0.10 + row.output_tokens * 0.50) / 1e6
    assert abs(row.cost_usd - expected) < 1e-6, (row.cost_usd, expected)


def test_an_attachment_id_that_is_also_a_file_id_is_an_error_row_and_nothing_is_paid_again(
    emulator: Emulator, tmp_path: Path
) -> None:
    """An attachment id another document also has: an error row for the later one, and reruns send nothing."""
    from test_extract import make_pdf

    docs = tmp_path / "docs"
    docs.mkdir()
    sample = Path(__file__).parent.parent / "sample_data/documents/emails/invoice_with_pdf_NWL-INV-2026-0188.eml"
    (docs / "mail.eml").write_bytes(sample.read_bytes())
    (docs / "mail.eml#1-invoice_NWL-INV-2026-0188.pdf").write_bytes(
        make_pdf(["A complaint: the pallets from order 7781 arrived broken; we want a refund. " * 5])
    )
    job = job_file(tmp_path, attachments="documents")
    argv = ["run", str(job), str(docs), "--out", str(tmp_path / "out")]
    first = invoke(argv, emulator)
    assert first.exit_code in (0, 1), first.output
    paid = billed(emulator)
    for _ in range(2):
        invoke(argv, emulator)
    assert paid == billed(emulator), "a rerun of an unchanged folder pays again"
    rows = rows_of(tmp_path / "out")
    attachment = "mail.eml#1-invoice_NWL-INV-2026-0188.pdf"
    assert "ok" == rows.loc[attachment, "status"]  # the attachment's answer, shadowed by no error row
    duplicate = rows.loc[f"{attachment} (duplicate id)"]
    assert ("document_error", attachment) == (duplicate.error_type, duplicate.source)
    assert "duplicate id" in duplicate.error_message
