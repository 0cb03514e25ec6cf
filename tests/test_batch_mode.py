"""Batch mode end to end: `docpipe run --mode batch` through the CLI, the real SDK and real HTTP to the emulator.

The emulator processes a batch in `batch_processing_s` of its clock; a test that needs a batch to stay
in progress for a while gives it an hour and moves the emulator's clock past it (`clock.advance`).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import anthropic
import pandas as pd
import pytest
from click.testing import CliRunner, Result
from conftest import SEED, TEST_KEY, ForkedRun

import pipeline
from pipeline.cli import main
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.jobs import load_job
from pipeline.pricing import TokenUsage, cost_usd
from pipeline.submissions import BATCH_DIR, SubmissionStore, valid_custom_id

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "sample_data" / "manifest.jsonl"
TRIAGE = ROOT / "jobs" / "triage.toml"
DOCUMENTS = 14  # rows of the sample manifest
HOUR = 3600.0


def invoke(args: list[str], emulator: Emulator, **env: str) -> Result:
    environment = {
        "DOCPIPE_PROGRESS": "off", "ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": emulator.base_url,
        "DOCPIPE_BATCH_POLL_S": "0.05", **env,
    }
    return CliRunner().invoke(main, args, env=environment, catch_exceptions=False)


def run_batch(out: Path, emulator: Emulator, *extra: str) -> Result:
    return invoke(["run", str(TRIAGE), str(MANIFEST), "--out", str(out), "--mode", "batch", *extra], emulator)


def fork_run(emulator: Emulator, out: Path, *extra: str) -> ForkedRun:
    environment = dict(
        os.environ, ANTHROPIC_API_KEY=TEST_KEY, ANTHROPIC_BASE_URL=emulator.base_url, DOCPIPE_PROGRESS="off",
        DOCPIPE_BATCH_POLL_S="0.05",
    )
    argv = ["run", str(TRIAGE), str(MANIFEST), "--out", str(out), "--mode", "batch", *extra]
    return ForkedRun(argv, environment)


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def stats(emulator: Emulator) -> dict[str, int]:
    raw = emulator.control.stats()
    return {"batches_created": raw["batches_created"], "billed": raw["messages_billed"],
            "messages": raw["requests"]["by_endpoint"].get("messages", 0)}


def states(out: Path) -> list[str]:
    return [s.state for s in SubmissionStore(out).load()]


def ok_rows(out: Path) -> pd.DataFrame:
    frame = pipeline.load_results(out, latest=False)
    return frame[frame.status == "ok"]


def test_a_batch_run_writes_the_realtime_rows_at_the_batch_price(tmp_path: Path) -> None:
    """Same job, same documents: every job field equal to the realtime run's, priced at the batch discount.

    Each run has an emulator of its own (same seed), so each pays its own cache writes: 5-minute ones
    in realtime, 1-hour ones in the batch (the TTL batch mode gives the shared prefix).
    """
    job = load_job(TRIAGE)
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        realtime = invoke(["run", str(TRIAGE), str(MANIFEST), "--out", str(tmp_path / "rt")], emulator)
        assert 0 == realtime.exit_code, realtime.output
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.1)) as emulator:
        batch = run_batch(tmp_path / "batch", emulator)
        assert 0 == batch.exit_code, batch.output
        after = stats(emulator)
    assert 1 == after["batches_created"] and 0 == after["messages"] and DOCUMENTS == after["billed"]
    assert "batches: 1 submitted (14 requests), 1 collected" in batch.output
    rt = pipeline.load_results(tmp_path / "rt").set_index("doc_id").sort_index()
    bt = pipeline.load_results(tmp_path / "batch").set_index("doc_id").sort_index()
    assert list(rt.index) == list(bt.index) and len(bt) == DOCUMENTS
    for field in job.fields:
        assert rt[field.name].astype(str).tolist() == bt[field.name].astype(str).tolist(), field.name
    assert set(rt["mode"]) == {"realtime"} and set(bt["mode"]) == {"batch"}
    assert bt["latency_ms"].isna().all() and not bt["streamed"].any()
    assert rt.cache_write_tokens.sum() > 0 and bt.cache_write_tokens.sum() > 0
    for frame, batch_mode in ((rt, False), (bt, True)):
        for row in frame.itertuples():
            writes = (0, row.cache_write_tokens) if batch_mode else (row.cache_write_tokens, 0)
            usage = TokenUsage(row.input_tokens, row.output_tokens, row.cache_read_tokens, *writes)
            assert row.cost_usd == pytest.approx(cost_usd(job.model, usage, batch=batch_mode))
    (record,) = SubmissionStore(tmp_path / "batch").load()
    assert record.state == "collected" and record.counts == {"succeeded": DOCUMENTS}
    assert record.cost_usd == pytest.approx(bt.cost_usd.sum(), abs=1e-6)
    assert not (tmp_path / "batch" / BATCH_DIR / f"{record.tag}.params.jsonl").exists()  # not needed again


def test_a_run_killed_right_after_create_is_resumed_by_polling_the_same_batch(tmp_path: Path) -> None:
    """SIGKILL once the batch id is recorded; the rerun creates nothing and collects that batch."""
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=HOUR)) as emulator:
        process = fork_run(emulator, out)
        wait_for(lambda: "submitted" in states(out))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert 1 == stats(emulator)["batches_created"] and 0 == stats(emulator)["billed"]
        emulator.state.clock.advance(HOUR)
        result = run_batch(out, emulator)
        after = stats(emulator)
    assert 0 == result.exit_code, result.output
    assert 1 == after["batches_created"] and DOCUMENTS == after["billed"]
    ok = ok_rows(out)
    assert DOCUMENTS == len(ok) and not ok.doc_id.duplicated().any()
    assert ["collected"] == states(out)


def test_a_create_whose_answer_is_lost_is_found_in_the_batch_list_not_created_again(tmp_path: Path) -> None:
    """The connection drops after the API created the batch: docpipe adopts it from the list."""
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.1)) as emulator:
        emulator.control.set_faults(
            [{"kind": "lost_response", "endpoints": ["batches"], "match": "POST /v1/messages/batches\n", "times": 1}]
        )
        result = run_batch(out, emulator)
        after = stats(emulator)
    assert 0 == result.exit_code, result.output
    assert 1 == after["batches_created"] and DOCUMENTS == after["billed"]
    assert DOCUMENTS == len(ok_rows(out))
    (record,) = SubmissionStore(out).load()
    assert record.note is not None and "batch list" in record.note


def test_errored_requests_go_into_a_follow_up_batch(tmp_path: Path) -> None:
    """Three requests come back `errored` (overloaded): a follow-up batch of those three answers them."""
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.1)) as emulator:
        emulator.control.set_faults([{"kind": "overloaded", "endpoints": ["batch_requests"], "times": 3}])
        result = run_batch(out, emulator)
        after = stats(emulator)
    assert 0 == result.exit_code, result.output
    assert 2 == after["batches_created"] and DOCUMENTS == after["billed"]
    ok = ok_rows(out)
    assert DOCUMENTS == len(ok) and 3 == int((ok.attempts == 2).sum())
    first, follow_up = SubmissionStore(out).load()
    assert first.counts == {"succeeded": DOCUMENTS - 3, "errored": 3}
    assert follow_up.parent == first.tag and follow_up.requests == 3 and follow_up.round == 1
    assert "3 of them resubmitted" in result.output


def test_expired_requests_are_resubmitted_then_recorded_and_the_next_run_sends_them(tmp_path: Path) -> None:
    """Batches expiring half-way: follow-ups at most three times, then an `expired` error row; a rerun finishes."""
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.4, batch_expiry_s=0.2)) as emulator:
        result = run_batch(out, emulator)
        assert 1 == result.exit_code, result.output
        assert 4 == stats(emulator)["batches_created"]  # 14 -> 7 expired -> 4 -> 2 -> 1 left
        frame = pipeline.load_results(out)
        assert DOCUMENTS - 1 == int((frame.status == "ok").sum())
        (expired,) = frame[frame.status == "error"].itertuples()
        assert "expired" == expired.error_type and 4 == expired.attempts
        emulator.state.batches.expiry_s = HOUR
        rerun = run_batch(out, emulator)
        assert 0 == rerun.exit_code, rerun.output
        assert 5 == stats(emulator)["batches_created"] and DOCUMENTS == stats(emulator)["billed"]
    assert DOCUMENTS == len(ok_rows(out))


def test_no_wait_submits_and_the_next_runs_collect(tmp_path: Path) -> None:
    """--no-wait exits 0 at once; a run while the batch is in progress exits 5 and creates nothing; then 0."""
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=HOUR)) as emulator:
        first = run_batch(out, emulator, "--no-wait")
        assert 0 == first.exit_code, first.output
        assert "1 still in progress: rerun to collect them" in first.output
        assert not list(out.glob("part-*.parquet"))
        second = run_batch(out, emulator, "--no-wait")
        assert 5 == second.exit_code, second.output
        assert "14 documents not sent again: already in this directory's batches" in second.output
        assert 1 == stats(emulator)["batches_created"]
        emulator.state.clock.advance(HOUR)
        third = run_batch(out, emulator, "--no-wait")
        assert 0 == third.exit_code, third.output
        assert 1 == stats(emulator)["batches_created"] and DOCUMENTS == stats(emulator)["billed"]
    assert DOCUMENTS == len(ok_rows(out))
    saved = sorted((out / "_runs").glob("*.json"), key=lambda path: path.stat().st_mtime_ns)
    summaries = [json.loads(path.read_text()) for path in saved]
    assert [s["exit_code"] for s in summaries] == [0, 5, 0]


def test_batches_lists_and_cancels_and_the_next_run_records_the_canceled(tmp_path: Path) -> None:
    """`docpipe batches OUT` shows the batch live; --cancel cancels it; canceled requests are error rows, then sent."""
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=HOUR)) as emulator:
        assert 0 == run_batch(out, emulator, "--no-wait").exit_code
        (record,) = SubmissionStore(out).load()
        listing = invoke(["batches", str(out)], emulator)
        assert 0 == listing.exit_code, listing.output
        assert record.batch_id in listing.output and "API: in_progress" in listing.output
        assert "processing 14" in listing.output
        canceled = invoke(["batches", str(out), "--cancel"], emulator)
        assert 0 == canceled.exit_code and "asked the API to cancel 1 batch" in canceled.output
        collected = run_batch(out, emulator)
        assert 1 == collected.exit_code, collected.output
        frame = pipeline.load_results(out)
        assert {"canceled"} == set(frame.error_type) and DOCUMENTS == len(frame)
        emulator.state.batches.processing_s = 0.1
        again = run_batch(out, emulator)
        assert 0 == again.exit_code, again.output
        assert 2 == stats(emulator)["batches_created"]
    assert DOCUMENTS == len(pipeline.load_results(out).query("status == 'ok'"))


def test_batches_of_a_directory_without_any_says_so(tmp_path: Path, emulator: Emulator) -> None:
    result = invoke(["batches", str(tmp_path)], emulator)
    assert 0 == result.exit_code and "no message batches" in result.output
    missing = invoke(["batches", str(tmp_path / "nowhere")], emulator)
    assert 2 == missing.exit_code and "no output directory" in missing.output


def test_no_wait_without_batch_mode_is_a_usage_error(tmp_path: Path, emulator: Emulator) -> None:
    result = invoke(["run", str(TRIAGE), str(MANIFEST), "--out", str(tmp_path / "o"), "--no-wait"], emulator)
    assert 2 == result.exit_code and "--no-wait applies to --mode batch (or auto) only" in result.output


def test_custom_ids_follow_the_api_rules_whatever_the_document_ids(tmp_path: Path) -> None:
    """Document ids with spaces, slashes and non-ASCII letters: the custom_ids sent are the API's pattern."""
    manifest = tmp_path / "m.jsonl"
    ids = ["a b/c", "ünïcode", "x" * 200, "dup.1"]
    manifest.write_text("".join(json.dumps({"id": i, "text": f"document {n} about invoices"}) + "\n"
                                for n, i in enumerate(ids)))
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.1)) as emulator:
        result = invoke(["run", str(TRIAGE), str(manifest), "--out", str(out), "--mode", "batch"], emulator)
        with anthropic.Anthropic(api_key=TEST_KEY, base_url=emulator.base_url, max_retries=0) as client:
            (batch,) = client.messages.batches.list()
            custom_ids = [line.custom_id for line in client.messages.batches.results(batch.id)]
    assert 0 == result.exit_code, result.output
    assert len(set(custom_ids)) == len(ids) and all(valid_custom_id(c) for c in custom_ids)
    assert sorted(ids) == sorted(ok_rows(out).doc_id)


SHORT_JOB = """
[job]
name = "short"
instructions = "Label the document."

[[fields]]
name = "label"
type = "enum"
values = ["a", "b"]
"""


def test_a_prefix_too_short_to_cache_is_named_in_the_summary_and_the_dry_run(tmp_path: Path) -> None:
    """A shared prefix under the model's minimum is never cached: the run and the dry run say so."""
    job_path = tmp_path / "short.toml"
    job_path.write_text(SHORT_JOB)
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.1)) as emulator:
        dry = invoke(["run", str(job_path), str(MANIFEST), "--out", str(tmp_path / "o"), "--dry-run"], emulator)
        run = invoke(["run", str(job_path), str(MANIFEST), "--out", str(tmp_path / "o")], emulator)
        triage = invoke(["run", str(TRIAGE), str(MANIFEST), "--out", str(tmp_path / "t")], emulator)
    note = "minimum of 512 cacheable tokens"
    assert note in dry.output and note in run.output and note not in triage.output
    assert 0 == pipeline.load_results(tmp_path / "o").cache_write_tokens.sum()  # what the note warns of
    summary = json.loads(next((tmp_path / "o" / "_runs").glob("*.json")).read_text())
    assert note in summary["cache_note"]


def test_auto_mode_batches_a_large_run_and_sends_a_small_one_at_once(tmp_path: Path) -> None:
    """--mode auto: batch when the input holds --batch-above documents (--limit counts), realtime under it."""
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=HOUR)) as emulator:
        small = invoke(["run", str(TRIAGE), str(MANIFEST), "--out", str(out), "--mode", "auto", "--limit", "7",
                        "--batch-above", "10"], emulator)
        assert 0 == small.exit_code, small.output
        assert "mode: realtime (auto: the input holds about 7 documents, under --batch-above 10)" in small.output
        assert 0 == stats(emulator)["batches_created"]
        large = invoke(["run", str(TRIAGE), str(MANIFEST), "--out", str(out), "--mode", "auto",
                        "--batch-above", "10", "--no-wait"], emulator)
        assert 0 == large.exit_code, large.output
        assert "mode: batch (auto: the input holds about 14 documents, at or above --batch-above 10)" in large.output
        assert 1 == stats(emulator)["batches_created"]
        # A batch not yet collected: auto takes batch mode whatever the size, realtime is refused.
        pending = invoke(["run", str(TRIAGE), str(MANIFEST), "--out", str(out), "--mode", "auto", "--limit", "1",
                          "--no-wait"], emulator)
        assert 5 == pending.exit_code and "auto: 1 batch(es) of this directory not yet collected" in pending.output
        realtime = invoke(["run", str(TRIAGE), str(MANIFEST), "--out", str(out)], emulator)
        assert 2 == realtime.exit_code and "not yet collected: run with --mode batch" in realtime.output
        emulator.state.clock.advance(HOUR)
        rest = invoke(["run", str(TRIAGE), str(MANIFEST), "--out", str(out), "--mode", "auto"], emulator)
        assert 0 == rest.exit_code, rest.output
        assert 1 == stats(emulator)["batches_created"] and DOCUMENTS == stats(emulator)["billed"]
    frame = pipeline.load_results(out)
    assert 7 == int((frame["mode"] == "realtime").sum()) and 7 == int((frame["mode"] == "batch").sum())
    saved = sorted((out / "_runs").glob("*.json"), key=lambda path: path.stat().st_mtime_ns)
    summary = json.loads(saved[1].read_text())
    assert ("batch", "auto: the input holds about 14 documents, at or above --batch-above 10") == (
        summary["mode"], summary["mode_reason"])


def test_batch_above_without_auto_is_a_usage_error(tmp_path: Path, emulator: Emulator) -> None:
    result = invoke(["run", str(TRIAGE), str(MANIFEST), "--out", str(tmp_path / "o"), "--batch-above", "5"], emulator)
    assert 2 == result.exit_code and "--batch-above applies to --mode auto only" in result.output


def test_a_job_may_send_what_a_batch_left_unanswered_at_once_instead_of_in_a_follow_up(tmp_path: Path) -> None:
    """batch_retry = "realtime": three overloaded results go out as Messages requests; their rows say realtime."""
    job = tmp_path / "resend.toml"
    job.write_text(TRIAGE.read_text().replace("[job]\n", '[job]\nbatch_retry = "realtime"\n', 1))
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.1)) as emulator:
        emulator.control.set_faults([{"kind": "overloaded", "endpoints": ["batch_requests"], "times": 3}])
        result = invoke(["run", str(job), str(MANIFEST), "--out", str(out), "--mode", "batch"], emulator)
        after = stats(emulator)
    assert 0 == result.exit_code, result.output
    assert 1 == after["batches_created"] and 3 == after["messages"] and DOCUMENTS == after["billed"]
    frame = pipeline.load_results(out)
    assert DOCUMENTS == int((frame.status == "ok").sum())
    resent = frame[frame["mode"] == "realtime"]
    assert 3 == len(resent) and (resent.attempts == 2).all()
    for row in resent.itertuples():  # priced as realtime: no batch discount
        usage = TokenUsage(row.input_tokens, row.output_tokens, row.cache_read_tokens, row.cache_write_tokens)
        assert row.cost_usd == pytest.approx(cost_usd(load_job(job).model, usage))


def test_requests_are_gathered_into_batches_within_the_request_and_byte_limits(tmp_path: Path) -> None:
    """gather() closes a batch at max_requests or before max_bytes; every document is in exactly one."""
    import threading

    from pipeline.batch_chunks import ENVELOPE_BYTES, gather
    from pipeline.budget import Budget
    from pipeline.payloads import TextPayload
    from pipeline.plans import Planner
    from pipeline.prepare import Work
    from pipeline.refs import DocumentRef
    from pipeline.summary import RunSummary

    job = load_job(TRIAGE)
    works = [
        Work(DocumentRef(f"d{i}", f"m:{i}", None, "x" * (50 * i), {}), TextPayload("x" * (50 * i)), f"{i:064d}")
        for i in range(1, 26)
    ]
    summary = RunSummary(run_id="r", job=job.name, job_fingerprint="f", backend="emulator", started_at="")
    sizes = [len(json.dumps(Planner(job).plan(w.ref.doc_id, w.payload)[0].params)) + ENVELOPE_BYTES for w in works]
    max_bytes = max(sizes) * 3 + 1  # three of the largest always fit; four of the smaller may too
    chunks = list(gather(iter(works), planner=Planner(job, mode="batch"), budget=Budget(None, job.model),
                         claimed={("d3", f"{3:064d}")}, limit=None, stop=threading.Event(), summary=summary,
                         max_requests=4, max_bytes=max_bytes))
    ids = [doc.doc_id for chunk in chunks for doc in chunk.docs]
    assert ids == [f"d{i}" for i in range(1, 26) if i != 3] and 1 == summary.already_in_batches
    assert all(len(chunk.docs) <= 4 and chunk.bytes <= max_bytes for chunk in chunks)
    assert any(len(chunk.docs) < 4 for chunk in chunks[:-1])  # some closed by bytes, not by count
