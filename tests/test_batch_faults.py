"""Batch mode under faults: a failed download, a lost follow-up, a deleted batch, a damaged record, another key."""

from __future__ import annotations

from pathlib import Path

import anthropic
from conftest import SEED, TEST_KEY
from test_batch_mode import DOCUMENTS, HOUR, MANIFEST, TRIAGE, ok_rows, run_batch, stats

from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.submissions import BATCH_DIR, SubmissionStore


def no_traceback(result) -> None:
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def test_a_transient_error_downloading_results_does_not_discard_paid_results(tmp_path: Path) -> None:
    """A 500 on GET .../results (TransientError) is caught as RequestError: every answer is written off as
    'unavailable', the batch marked collected, and the next run pays for all 14 documents again."""
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.1)) as emulator:
        emulator.control.set_faults(
            [{"kind": "server_error", "endpoints": ["batches"], "match": "/results", "times": 1}]
        )
        first = run_batch(out, emulator)
        second = run_batch(out, emulator)
        after = stats(emulator)
    assert DOCUMENTS == len(ok_rows(out))
    assert 1 == after["batches_created"], (first.output, second.output)  # the results were still there
    assert DOCUMENTS == after["billed"]


def test_a_follow_up_that_could_not_be_created_leaves_no_document_without_a_row(tmp_path: Path) -> None:
    """The follow-up's create fails 4 times (exit 3, follow-up `abandoned`, parent still `submitted`).
    The rerun collects the parent, sees a follow-up exists (the abandoned one), makes none, and exits 0
    with the 3 retryable documents having no row at all."""
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.1)) as emulator:
        assert 0 == run_batch(out, emulator, "--no-wait").exit_code
        emulator.control.set_faults([
            {"kind": "overloaded", "endpoints": ["batch_requests"], "times": 3},
            {"kind": "overloaded", "endpoints": ["batches"], "match": "POST /v1/messages/batches\n", "times": 4},
        ])
        failed = run_batch(out, emulator)
        assert 3 == failed.exit_code, failed.output
        emulator.control.set_faults([])
        rerun = run_batch(out, emulator)
        rows = len(ok_rows(out))
    assert not (rerun.exit_code == 0 and rows < DOCUMENTS), f"exit 0 with {rows}/{DOCUMENTS} ok rows\n{rerun.output}"
    assert DOCUMENTS == rows


def test_a_batch_deleted_at_the_api_is_not_reported_as_success(tmp_path: Path) -> None:
    """--no-wait, the batch ends and is deleted at the API: the next run marks it abandoned but keeps its
    documents claimed, sends nothing, writes nothing, and exits 0."""
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.1)) as emulator:
        assert 0 == run_batch(out, emulator, "--no-wait").exit_code
        (record,) = SubmissionStore(out).load()
        with anthropic.Anthropic(api_key=TEST_KEY, base_url=emulator.base_url, max_retries=0) as client:
            emulator.state.clock.advance(1.0)
            client.messages.batches.retrieve(record.batch_id)
            client.messages.batches.delete(record.batch_id)
        rerun = run_batch(out, emulator)
        rows = len(ok_rows(out)) if list(out.glob("part-*.parquet")) else 0
    assert not (rerun.exit_code == 0 and rows < DOCUMENTS), f"exit 0 with {rows}/{DOCUMENTS} ok rows\n{rerun.output}"


def test_a_truncated_docs_file_is_refused_not_resubmitted(tmp_path: Path) -> None:
    """docs.jsonl cut at a line boundary (7 of 14 lines): the other 7 documents are no longer claimed and
    are sent again in a new batch while the first batch (which holds them, paid) is still running."""
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=HOUR)) as emulator:
        assert 0 == run_batch(out, emulator, "--no-wait").exit_code
        (docs,) = (out / BATCH_DIR).glob("*.docs.jsonl")
        docs.write_text("".join(docs.read_text().splitlines(keepends=True)[:7]))
        result = run_batch(out, emulator, "--no-wait")
        created = stats(emulator)["batches_created"]
    no_traceback(result)
    assert 1 == created, result.output
    assert result.exit_code == 4 and str(docs) in result.output, result.output


class CliRunnerSafe:
    @staticmethod
    def invoke(out: Path, emulator: Emulator):
        from click.testing import CliRunner

        from pipeline.cli import main
        env = {"DOCPIPE_PROGRESS": "off", "ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": emulator.base_url,
               "DOCPIPE_BATCH_POLL_S": "0.05"}
        args = ["run", str(TRIAGE), str(MANIFEST), "--out", str(out), "--mode", "batch", "--no-wait"]
        return CliRunner().invoke(main, args, env=env, catch_exceptions=True)


def test_a_rerun_with_another_key_does_not_orphan_the_paid_batch(tmp_path: Path) -> None:
    """--no-wait with key A; the cron job's key is rotated to key B (another workspace): retrieve is a 404,
    the submission is marked `abandoned` for good, and the next run pays for every document again while
    key A's batch, answered and paid, is never collected."""
    from click.testing import CliRunner

    from pipeline.cli import main
    out = tmp_path / "out"
    other = "sk-ant-test-fedcba9876543210"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.1)) as emulator:
        assert 0 == run_batch(out, emulator, "--no-wait").exit_code
        emulator.state.clock.advance(1.0)
        env = {"DOCPIPE_PROGRESS": "off", "ANTHROPIC_API_KEY": other, "ANTHROPIC_BASE_URL": emulator.base_url,
               "DOCPIPE_BATCH_POLL_S": "0.05"}
        args = ["run", str(TRIAGE), str(MANIFEST), "--out", str(out), "--mode", "batch"]
        for _ in range(2):
            CliRunner().invoke(main, args, env=env)
        after = stats(emulator)
        records = [(r.state, r.note) for r in SubmissionStore(out).load()]
    assert records[0][0] != "abandoned", records  # a created (paid) batch must never be recorded as not created
    assert 1 == after["batches_created"], records

