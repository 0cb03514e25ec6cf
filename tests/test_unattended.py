"""Unattended safety, end to end: fault storms, signals, and the API key never leaking."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from conftest import SEED
from test_cli_run import SAMPLE, TRIAGE, _rows_recorded, _wait_for, fork_run, invoke, sample_files

import pipeline
from pipeline.emulator import Emulator, EmulatorConfig, FaultPlan, LatencyModel

FAULT_PROFILE = [
    {"kind": "rate_limit", "probability": 0.10, "retry_after_s": 1},
    {"kind": "overloaded", "probability": 0.05},
    {"kind": "server_error", "probability": 0.03, "statuses": [500, 502, 503]},
    {"kind": "disconnect", "probability": 0.01},
    {"kind": "hang", "probability": 0.01, "seconds": 3},
    {"kind": "stream_error", "probability": 0.05},
]


def _resilient_job(tmp_path: Path, *, stream: str) -> Path:
    job = tmp_path / f"triage-{stream}.toml"
    text = TRIAGE.read_text().replace("timeout_s = 60", f'timeout_s = 1\nstream = "{stream}"')
    job.write_text(text + "\n[retry]\nmax_attempts = 25\ninitial_backoff_s = 0.02\nmax_backoff_s = 0.2\n")
    return job


def test_fault_storm_every_document_ends_ok_and_retry_after_is_obeyed(tmp_path: Path) -> None:
    """429s, 529s, 5xx, drops, hangs and mid-stream errors: all documents ok, no retry before its retry-after."""
    plan = FaultPlan.from_dict({"rules": FAULT_PROFILE}, seed=SEED)
    with Emulator(EmulatorConfig(seed=SEED, faults=plan)) as emulator:
        for stream in ("never", "always"):
            out = tmp_path / stream
            result = invoke(
                [
                    "run",
                    str(_resilient_job(tmp_path, stream=stream)),
                    str(SAMPLE),
                    "--out",
                    str(out),
                    "--concurrency",
                    "8",
                ],
                emulator,
            )
            assert 0 == result.exit_code, result.output
            frame = pipeline.load_results(out)
            assert sample_files() == sorted(frame.doc_id)
            assert {"ok"} == set(frame.status)
        stats = emulator.control.stats()
        journal = emulator.control.requests()
    assert 0 == stats["early_retries"]
    faults = {entry.get("fault") for entry in journal}
    assert {"rate_limit", "overloaded", "server_error", "stream_error"} <= faults
    assert (frame.attempts > 1).any()


def test_sigterm_lets_in_flight_requests_finish_then_the_rerun_resumes(tmp_path: Path) -> None:
    """SIGTERM: stop taking documents, finish in-flight requests, flush, exit 130; a rerun completes exactly once."""
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, latency=LatencyModel(ttft_ms=400))) as emulator:
        process = fork_run(emulator, out, "--concurrency", "3", stderr=subprocess.PIPE)
        _wait_for(lambda: _rows_recorded(out) >= 3)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
        assert 130 == process.returncode, stderr
        assert "stopped: interrupted" in stderr
        billed_at_stop = emulator.control.stats()["messages_billed"]
        rows = pipeline.load_results(out, latest=False)
        pieces = out / "_pieces.jsonl"  # the answered pieces of a document cut into pieces, if one was under way
        journaled = len(pieces.read_bytes().splitlines()) if pieces.exists() else 0
        assert billed_at_stop == rows.request_count.sum() + journaled  # every request paid for is kept
        assert len(rows) < len(sample_files())
        result = invoke(["run", str(TRIAGE), str(SAMPLE), "--out", str(out)], emulator)
        assert 0 == result.exit_code, result.output
        every_row = pipeline.load_results(out, latest=False)
        assert len(sample_files()) == len(every_row)
        assert every_row.request_count.sum() == emulator.control.stats()["messages_billed"]
    frame = pipeline.load_results(out, latest=False)
    assert not frame[frame.status == "ok"].doc_id.duplicated().any()


def test_api_key_never_appears_in_any_output(tmp_path: Path) -> None:
    """Rows, journal, run summaries, lock file and printed messages never contain the key, even on errors."""
    key = "sk-ant-api03-SECRET-0123456789-abcdefghij"
    out = tmp_path / "out"
    (tmp_path / "bad.jsonl").write_text('{"id": "x", "path": "nope.txt"}\n{"id": "y", "text": "Invoice 7, 90 EUR."}\n')
    with Emulator(EmulatorConfig(seed=SEED, api_keys=frozenset({key}))) as emulator:
        good = invoke(
            ["run", str(TRIAGE), str(tmp_path / "bad.jsonl"), "--out", str(out)], emulator, ANTHROPIC_API_KEY=key
        )
        bad = invoke(
            ["run", str(TRIAGE), str(SAMPLE), "--out", str(tmp_path / "other")],
            emulator,
            ANTHROPIC_API_KEY=key + "-revoked",
        )
        journal = str(emulator.control.requests())
    assert 1 == good.exit_code and 3 == bad.exit_code
    for text in (good.output, bad.output, journal):
        assert "SECRET" not in text
    for path in [*out.rglob("*"), *(tmp_path / "other").rglob("*")]:
        if path.is_file():
            assert b"SECRET" not in path.read_bytes(), path


def test_a_stream_cut_mid_response_is_retried(tmp_path: Path) -> None:
    """A connection cut after the first deltas (an httpx2 error, not an SDK one) is retried like any drop."""
    plan = FaultPlan.from_dict({"rules": [{"kind": "stream_disconnect", "times": 1}]}, seed=SEED)
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, faults=plan)) as emulator:
        job = _resilient_job(tmp_path, stream="always")
        result = invoke(["run", str(job), str(SAMPLE), "--out", str(out)], emulator)
        journal = emulator.control.requests()
    assert 0 == result.exit_code, result.output
    frame = pipeline.load_results(out)
    assert sample_files() == sorted(frame.doc_id)
    assert {"ok"} == set(frame.status)
    assert 1 == sum(entry.get("fault") == "stream_disconnect" for entry in journal)
    retried = frame.attempts > frame.request_count  # a chunked document makes one attempt per request
    assert [1] == (frame.attempts - frame.request_count)[retried].tolist()
    assert frame.streamed.all()
