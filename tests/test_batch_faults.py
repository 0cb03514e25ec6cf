"""Batch mode under faults: a failed download, a lost follow-up, a deleted batch, a damaged record, another key."""

from __future__ import annotations

import json
from pathlib import Path

import anthropic
import pytest
from conftest import SEED, TEST_KEY
from test_batch_mode import DOCUMENTS, HOUR, MANIFEST, TRIAGE, ok_rows, run_batch, stats

import pipeline
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


@pytest.mark.parametrize("edit", [{"requests": "14"}, {"batch_id": None}, {"counts": {"succeeded": "x"}}])
def test_a_hand_edited_record_is_a_clear_error_not_a_traceback(tmp_path: Path, edit: dict) -> None:
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=HOUR)) as emulator:
        assert 0 == run_batch(out, emulator, "--no-wait").exit_code
        (path,) = (out / BATCH_DIR).glob("*.json")
        path.write_text(json.dumps(json.loads(path.read_text()) | edit))
        result = CliRunnerSafe.invoke(out, emulator)
    no_traceback(result)
    assert result.exit_code == 4 and str(path) in result.output, result.output


def test_a_record_with_a_text_recorded_at_is_a_clear_error(tmp_path: Path) -> None:
    """Two records, one hand-edited to "recorded_at": "yesterday": load() sorts outside its try -> TypeError."""
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=HOUR)) as emulator:
        assert 0 == run_batch(out, emulator, "--no-wait", "--limit", "7").exit_code
        assert 5 == run_batch(out, emulator, "--no-wait").exit_code  # 7 more submitted; the first batch pending
        path = sorted((out / BATCH_DIR).glob("*.json"))[0]
        path.write_text(json.dumps(json.loads(path.read_text()) | {"recorded_at": "yesterday"}))
        result = CliRunnerSafe.invoke(out, emulator)
    no_traceback(result)
    assert result.exit_code == 4 and str(path) in result.output, result.output


def test_a_manifest_column_changing_type_while_in_a_batch_is_not_a_traceback(tmp_path: Path) -> None:
    """DocEntry keeps the metadata of the run that submitted; the collecting run's schema says string:
    ArrowTypeError from the writer, a traceback on every later run, the rows quarantined."""
    from click.testing import CliRunner

    from pipeline.cli import main
    manifest, out = tmp_path / "m.jsonl", tmp_path / "out"

    def write(value: object) -> None:
        manifest.write_text("".join(json.dumps({"id": i, "text": f"invoice {i} for 100 EUR", "n": value}) + "\n"
                                    for i in ("a", "b")))

    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=HOUR)) as emulator:
        env = {"DOCPIPE_PROGRESS": "off", "ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": emulator.base_url,
               "DOCPIPE_BATCH_POLL_S": "0.05"}
        args = ["run", str(TRIAGE), str(manifest), "--out", str(out), "--mode", "batch"]
        write(1)
        assert 0 == CliRunner().invoke(main, [*args, "--no-wait"], env=env).exit_code
        write("x")
        emulator.state.clock.advance(HOUR)
        result = CliRunner().invoke(main, args, env=env, catch_exceptions=True)
    no_traceback(result)


def test_a_document_changed_while_in_a_batch_is_not_reported_ok_with_the_old_answer(tmp_path: Path) -> None:
    """Doc 'a' is edited while its batch runs. The collecting run writes the old text's answer, skips the new
    text because the id is 'claimed', and exits 0: the current text has no row until yet another run."""
    import hashlib

    from click.testing import CliRunner

    from pipeline.cli import main
    manifest, out = tmp_path / "m.jsonl", tmp_path / "out"

    def write(text_a: str) -> None:
        rows = [{"id": "a", "text": text_a}, {"id": "b", "text": "complaint about late delivery"}]
        manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))

    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=HOUR)) as emulator:
        env = {"DOCPIPE_PROGRESS": "off", "ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": emulator.base_url,
               "DOCPIPE_BATCH_POLL_S": "0.05"}
        args = ["run", str(TRIAGE), str(manifest), "--out", str(out), "--mode", "batch"]
        write("invoice for 100 EUR due soon")
        assert 0 == CliRunner().invoke(main, [*args, "--no-wait"], env=env).exit_code
        new_text = "a contract between two parties, signed"
        write(new_text)
        emulator.state.clock.advance(HOUR)
        emulator.state.batches.processing_s = 0.1
        result = CliRunner().invoke(main, args, env=env)
    frame = pipeline.load_results(out, latest=False)
    current = hashlib.sha256(new_text.encode()).hexdigest()
    has_current = bool(((frame.doc_id == "a") & (frame.doc_sha256 == current)).any())
    assert not (result.exit_code == 0 and not has_current), result.output


def test_a_deleted_params_file_does_not_block_the_directory_for_good(tmp_path: Path) -> None:
    """The params file of a pending batch is deleted; one request comes back overloaded, so a follow-up is
    needed. Every run then exits 4 ("check the path and its disk, then rerun") and nothing else progresses.
    The params can be rebuilt from the input (or the document released to the next run)."""
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=HOUR)) as emulator:
        assert 0 == run_batch(out, emulator, "--no-wait").exit_code
        (params,) = (out / BATCH_DIR).glob("*.params.jsonl")
        params.unlink()
        emulator.control.set_faults([{"kind": "overloaded", "endpoints": ["batch_requests"], "times": 1}])
        emulator.state.clock.advance(HOUR)
        emulator.state.batches.processing_s = 0.1
        codes = [run_batch(out, emulator).exit_code for _ in range(3)]
    assert codes[-1] == 0 and DOCUMENTS == len(ok_rows(out)), codes


def test_batches_report_of_a_hand_edited_record_is_not_a_traceback(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pipeline.cli import main
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=HOUR)) as emulator:
        assert 0 == run_batch(out, emulator, "--no-wait").exit_code
        (path,) = (out / BATCH_DIR).glob("*.json")
        path.write_text(json.dumps(json.loads(path.read_text()) | {"state": "collected", "cost_usd": "0.1"}))
        result = CliRunner().invoke(main, ["batches", str(out)], env={"ANTHROPIC_API_KEY": ""})
    no_traceback(result)


def test_another_directorys_batch_adopted_after_a_failed_create_is_given_back_when_read(tmp_path: Path) -> None:
    """B's create fails at the connection while A's batch of the same size is in progress on the same key.

    B may take A's batch for its own lost create; once it ends, none of its results carry B's custom_ids:
    B's record says so, B's documents go into a batch of their own, A's batch and rows are untouched,
    and no document of either directory is paid twice.
    """
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=HOUR)) as emulator:
        assert 0 == run_batch(tmp_path / "a", emulator, "--no-wait").exit_code
        (a_record,) = SubmissionStore(tmp_path / "a").load()
        emulator.control.set_faults(
            [{"kind": "disconnect", "endpoints": ["batches"], "match": "POST /v1/messages/batches\n", "times": 1}]
        )
        assert 0 == run_batch(tmp_path / "b", emulator, "--no-wait").exit_code
        emulator.control.set_faults([])
        emulator.state.clock.advance(HOUR)
        emulator.state.batches.processing_s = 0.1
        b_result = run_batch(tmp_path / "b", emulator)
        a_result = run_batch(tmp_path / "a", emulator)
        after = stats(emulator)
    assert 0 == b_result.exit_code, b_result.output
    assert 0 == a_result.exit_code, a_result.output
    assert DOCUMENTS == len(ok_rows(tmp_path / "a")) == len(ok_rows(tmp_path / "b"))
    assert 2 * DOCUMENTS == after["billed"] and 2 == after["batches_created"]
    b_records = SubmissionStore(tmp_path / "b").load()
    adopted = [r for r in b_records if r.batch_id == a_record.batch_id]
    assert 1 == len(adopted)  # within the clock skew allowed, the size matched: taken, then checked
    assert all(r.state == "abandoned" and "holds none of these requests" in (r.note or "") for r in adopted)


@pytest.mark.parametrize(
    "rule",
    [{"kind": "lost_response"}, {"kind": "hang", "endpoints": ["batch_requests"]}],
    ids=["lost-response-on-messages", "hang-on-batch-requests"],
)
def test_the_emulator_refuses_a_fault_rule_it_cannot_apply(emulator: Emulator, rule: dict) -> None:
    """A rule that would do nothing, or something else than it says, is refused when set (400), not accepted."""
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as refused:
        emulator.control.set_faults([rule])
    refused.value.close()  # the error holds the response's socket
    assert 400 == refused.value.code
    assert [] == emulator.control.faults()["rules"]


def test_answers_to_a_job_edited_while_its_batch_ran_are_recorded_under_the_job_that_asked(tmp_path: Path) -> None:
    """The job's instructions change between submit and collect: the rows carry the fingerprint of the job
    that built the requests, so they never count as done for the edited job, whose next run sends anew."""
    from pipeline.jobs import load_job

    job = tmp_path / "job.toml"
    job.write_text(TRIAGE.read_text())
    first_fingerprint = load_job(job).fingerprint
    out = tmp_path / "out"
    env = {"DOCPIPE_PROGRESS": "off", "ANTHROPIC_API_KEY": TEST_KEY, "DOCPIPE_BATCH_POLL_S": "0.05"}
    from click.testing import CliRunner

    from pipeline.cli import main

    args = ["run", str(job), str(MANIFEST), "--out", str(out), "--mode", "batch"]
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=HOUR)) as emulator:
        env["ANTHROPIC_BASE_URL"] = emulator.base_url
        assert 0 == CliRunner().invoke(main, [*args, "--no-wait"], env=env).exit_code
        job.write_text(TRIAGE.read_text().replace('instructions = """', 'instructions = """Be brief.\n', 1))
        edited_fingerprint = load_job(job).fingerprint
        emulator.state.clock.advance(HOUR)
        emulator.state.batches.processing_s = 0.1
        collected = CliRunner().invoke(main, args, env=env)
        assert 0 == collected.exit_code, collected.output
        rerun = CliRunner().invoke(main, args, env=env)
        assert 0 == rerun.exit_code, rerun.output
    assert first_fingerprint != edited_fingerprint
    rows = pipeline.load_results(out, latest=False)
    assert DOCUMENTS == int((rows.job_fingerprint == first_fingerprint).sum())
    assert DOCUMENTS == int((rows.job_fingerprint == edited_fingerprint).sum())


def test_a_kill_while_resending_at_once_never_pays_an_answered_request_twice(tmp_path: Path) -> None:
    """batch_retry = "realtime": two requests come back errored and are resent; one is answered and
    written, the other hangs; SIGKILL. The rerun collects the batch again and resends only the second."""
    import os
    import signal
    import time

    from click.testing import CliRunner
    from conftest import ForkedRun

    from pipeline.cli import main

    job = tmp_path / "resend.toml"
    job.write_text(TRIAGE.read_text().replace("[job]\n", '[job]\nbatch_retry = "realtime"\n', 1))
    out = tmp_path / "out"
    argv = ["run", str(job), str(MANIFEST), "--out", str(out), "--mode", "batch"]

    def journal_rows() -> int:
        lines = [line for p in (out / "_wal").glob("*.jsonl") for line in p.read_bytes().splitlines()]
        return sum(not line.startswith(b'{"docpipe_journal') for line in lines)

    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.1)) as emulator:
        emulator.control.set_faults([
            {"kind": "overloaded", "endpoints": ["batch_requests"], "times": 2},
            {"kind": "hang", "seconds": 60, "times": 1},
        ])
        env = dict(os.environ, ANTHROPIC_API_KEY=TEST_KEY, ANTHROPIC_BASE_URL=emulator.base_url,
                   DOCPIPE_PROGRESS="off", DOCPIPE_BATCH_POLL_S="0.05")
        process = ForkedRun(argv, env)
        deadline = time.monotonic() + 30
        while journal_rows() < DOCUMENTS - 1:  # 12 from the batch, 1 resent and answered
            assert time.monotonic() < deadline, "the resent answer was never written"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        emulator.control.set_faults([])
        before = emulator.control.stats()["requests"]["by_endpoint"].get("messages", 0)
        rerun = CliRunner().invoke(main, argv, env={k: env[k] for k in (
            "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "DOCPIPE_PROGRESS", "DOCPIPE_BATCH_POLL_S")})
        sent_by_rerun = emulator.control.stats()["requests"]["by_endpoint"].get("messages", 0) - before
    assert 0 == rerun.exit_code, rerun.output
    assert 1 == sent_by_rerun  # only the request that hung; the answered one is not asked again
    frame = pipeline.load_results(out)
    assert DOCUMENTS == int((frame.status == "ok").sum())


def test_cancel_leaves_alone_a_batch_adopted_after_a_lost_create(tmp_path: Path) -> None:
    """An adopted batch may be another directory's until its results say otherwise: --cancel names it, and
    leaves it running."""
    from click.testing import CliRunner

    from pipeline.cli import main

    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=HOUR)) as emulator:
        assert 0 == run_batch(tmp_path / "a", emulator, "--no-wait").exit_code
        emulator.control.set_faults(
            [{"kind": "disconnect", "endpoints": ["batches"], "match": "POST /v1/messages/batches\n", "times": 1}]
        )
        assert 0 == run_batch(tmp_path / "b", emulator, "--no-wait").exit_code
        env = {"ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": emulator.base_url}
        canceled = CliRunner().invoke(main, ["batches", str(tmp_path / "b"), "--cancel"], env=env)
        (a_record,) = SubmissionStore(tmp_path / "a").load()
        with anthropic.Anthropic(api_key=TEST_KEY, base_url=emulator.base_url, max_retries=0) as client:
            a_state = client.messages.batches.retrieve(a_record.batch_id).processing_status
    assert 0 == canceled.exit_code, canceled.output
    assert "not canceled: adopted from the batch list" in canceled.output
    assert "in_progress" == a_state
