"""429s, and an API that goes away, end to end: through the CLI, the real SDK and real HTTP to the emulator.

- A 429 whose `anthropic-ratelimit-*` headers show room pauses nobody, and a document sleeping out
  its `retry-after` does not keep the others from being sent; a 429 from a bucket really spent makes
  everyone wait. No retry is ever sent before its `retry-after`.
- An API that gives no HTTP response for `DOCPIPE_UNREACHABLE_S` stops the run with exit 3 and no
  error rows; one that comes back sooner is ridden through.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import anthropic
from conftest import SEED, TEST_KEY, ForkedRun
from test_cli_run import SAMPLE, TRIAGE, _rows_recorded, _wait_for, billed, invoke, sample_files

import pipeline
from pipeline.emulator import Emulator, EmulatorConfig, FaultPlan, LatencyModel, Limits

MARKER = "ZQX-WAITS-ITS-TURN"  # the one document whose first request is answered 429


def _manifest(path: Path, count: int, *, marked: int | None = None) -> Path:
    rows = []
    for index in range(count):
        text = f"Invoice {index} from Acme Ltd for {100 + 7 * index} EUR, due in 30 days."
        rows.append({"id": f"doc-{index:03d}", "text": f"{text} {MARKER}" if index == marked else text})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _doc_ids(count: int) -> list[str]:
    return [f"doc-{index:03d}" for index in range(count)]


def _summary(out: Path) -> dict[str, Any]:
    [path] = (out / "_runs").glob("*.json")
    return dict(json.loads(path.read_text()))


def _quick_retries_job(tmp_path: Path) -> Path:
    """The triage job with backoffs of at most 0.1 s and 4 attempts: an outage would burn them in a moment."""
    job = tmp_path / "triage-quick.toml"
    job.write_text(TRIAGE.read_text() + "\n[retry]\nmax_attempts = 4\ninitial_backoff_s = 0.02\nmax_backoff_s = 0.1\n")
    return job


def _closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- 429s ------------------------------------------------------------------------------------------


def test_429s_whose_headers_show_room_pause_nobody_and_every_document_ends_ok(tmp_path: Path) -> None:
    """30% of requests 429 while the headers show the buckets nearly full: no global pause, 0 early retries."""
    plan = FaultPlan.from_dict({"rules": [{"kind": "rate_limit", "probability": 0.3, "retry_after_s": 1}]}, seed=SEED)
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, faults=plan)) as emulator:
        result = invoke(["run", str(TRIAGE), str(SAMPLE), "--out", str(out), "--concurrency", "4"], emulator)
        stats = emulator.control.stats()
        journal = emulator.control.requests()
    assert 0 == result.exit_code, result.output
    assert sample_files() == sorted(pipeline.load_results(out).doc_id)
    summary = _summary(out)
    limited = [entry for entry in journal if entry["status"] == 429]
    assert limited and all(entry.get("fault") == "rate_limit" for entry in limited)
    assert (0, 0) == (summary["rate_limit_pauses"], stats["early_retries"])
    assert summary["concurrency_decreases"] >= 1  # the 429s still count as a signal to slow down


def test_a_document_waiting_out_a_retry_after_keeps_no_other_from_being_sent(tmp_path: Path) -> None:
    """--concurrency 1: while the first document sleeps out its 2 s retry-after, the others are sent and answered."""
    retry_after_s = 2.0
    rule = {"kind": "rate_limit", "match": MARKER, "times": 1, "retry_after_s": retry_after_s}
    plan = FaultPlan.from_dict({"rules": [rule]}, seed=SEED)
    manifest = _manifest(tmp_path / "docs.jsonl", 12, marked=0)
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, faults=plan)) as emulator:
        result = invoke(["run", str(TRIAGE), str(manifest), "--out", str(out), "--concurrency", "1"], emulator)
        stats = emulator.control.stats()
        journal = emulator.control.requests()
    assert 0 == result.exit_code, result.output
    assert _doc_ids(12) == sorted(pipeline.load_results(out).doc_id)
    [limited] = [entry for entry in journal if entry["status"] == 429]
    answered_meanwhile = [
        entry for entry in journal if entry["status"] == 200 and 0 < entry["t"] - limited["t"] < retry_after_s
    ]
    assert len(answered_meanwhile) >= 1, journal
    assert (0, 0) == (_summary(out)["rate_limit_pauses"], stats["early_retries"])


def test_429s_from_a_spent_bucket_make_everyone_wait(tmp_path: Path, make_client: Any) -> None:
    """Another client on the key has spent the requests bucket: the 429s show 0 remaining, and every worker pauses."""
    documents = 4  # one per worker: at 120 requests a minute, each waits out its own half second of refill
    manifest = _manifest(tmp_path / "docs.jsonl", documents)
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, limits=Limits(rpm=120))) as emulator:
        other = make_client(emulator)
        for _ in range(500):  # spend the bucket down to nothing
            try:
                other.messages.create(
                    model="claude-haiku-5-5", max_tokens=1, messages=[{"role": "user", "content": "ping"}]
                )
            except anthropic.RateLimitError:
                break
        before = emulator.control.stats()["requests"]["by_status"].get("429", 0)
        result = invoke(
            ["run", str(TRIAGE), str(manifest), "--out", str(out), "--concurrency", str(documents)], emulator
        )
        stats = emulator.control.stats()
    assert 0 == result.exit_code, result.output
    assert _doc_ids(documents) == sorted(pipeline.load_results(out).doc_id)
    summary = _summary(out)
    assert stats["requests"]["by_status"]["429"] > before
    assert (True, 0, 0) == (summary["rate_limit_pauses"] >= 1, summary["concurrency_decreases"], stats["early_retries"])


# -- an API that goes away -------------------------------------------------------------------------


def test_an_api_down_for_good_stops_the_run_with_exit_3_and_burns_no_document(tmp_path: Path) -> None:
    """Nothing listening: exit 3 once DOCPIPE_UNREACHABLE_S has passed, no error rows; a rerun does each one once."""
    documents, bound_s = 20, 2.0
    manifest = _manifest(tmp_path / "docs.jsonl", documents)
    out = tmp_path / "out"
    base_url = f"http://127.0.0.1:{_closed_port()}"
    args = ["run", str(TRIAGE), str(manifest), "--out", str(out), "--concurrency", "4"]
    started = time.monotonic()
    result = invoke(args, ANTHROPIC_BASE_URL=base_url, DOCPIPE_UNREACHABLE_S=str(bound_s))
    elapsed_s = time.monotonic() - started
    assert 3 == result.exit_code, result.output
    assert bound_s <= elapsed_s < bound_s + 10, f"exit 3 after {elapsed_s:.1f} s"
    summary = _summary(out)
    assert ("fatal", 3, 0, 0) == (summary["stopped"], summary["exit_code"], summary["ok"], summary["errors"])
    for fragment in (f"no response from the API at {base_url} for 2 s", "DOCPIPE_UNREACHABLE_S", "rerun"):
        assert fragment in summary["fatal_error"] and fragment in result.stderr
    assert f"docpipe: error: {summary['fatal_error']}" == result.stderr.splitlines()[-1]  # one line, last
    assert not list(out.glob("part-*.parquet"))
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        rerun = invoke(args, emulator)
        assert 0 == rerun.exit_code, rerun.output
        assert documents == billed(emulator)
    frame = pipeline.load_results(out, latest=False)
    assert _doc_ids(documents) == sorted(frame.doc_id)
    assert {"ok"} == set(frame.status)


def test_an_api_gone_for_a_moment_is_ridden_through(tmp_path: Path) -> None:
    """The emulator stops mid-run and a new one starts on its port 2 s later: every document ok once, none burned.

    The job's 4 attempts with backoffs of at most 0.1 s would all be spent within the outage if the
    failures to connect counted against the documents.
    """
    documents, concurrency = 30, 4  # 8 answered before the outage, the rest after it
    manifest = _manifest(tmp_path / "docs.jsonl", documents)
    out = tmp_path / "out"
    config = EmulatorConfig(seed=SEED, latency=LatencyModel(ttft_ms=300))
    first = Emulator(config).start()
    environment = dict(
        os.environ,
        ANTHROPIC_API_KEY=TEST_KEY,
        ANTHROPIC_BASE_URL=first.base_url,
        DOCPIPE_PROGRESS="off",
        DOCPIPE_UNREACHABLE_S="30",
    )
    command = ["run", str(_quick_retries_job(tmp_path)), str(manifest), "--out", str(out)]
    process = ForkedRun([*command, "--concurrency", str(concurrency)], environment, capture_stderr=True)
    try:
        _wait_for(lambda: _rows_recorded(out) >= 8)
        first.stop()
        outage_started = time.monotonic()
        time.sleep(2.0)  # the outage itself, not a synchronisation: nothing listens on the port meanwhile
        assert process.poll() is None
        with Emulator(config, port=first.port) as second:
            assert time.monotonic() - outage_started >= 2.0
            _, stderr = process.communicate(timeout=60)
            answered = first.state.journal.requests_total + second.state.journal.requests_total
            total_billed = first.state.journal.messages_billed + second.state.journal.messages_billed
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert 0 == process.returncode, stderr
    frame = pipeline.load_results(out, latest=False)
    assert _doc_ids(documents) == sorted(frame.doc_id)
    assert {"ok"} == set(frame.status)
    assert documents <= total_billed <= documents + concurrency  # at most the requests cut by the stop re-paid
    assert _summary(out)["requests_sent"] > answered  # requests were sent into the outage, and failed


def test_one_dropped_connection_among_slow_healthy_answers_is_no_outage(tmp_path: Path) -> None:
    """A single dropped connection, then answers that take longer than the bound: the run ends 0, not 3."""
    plan = FaultPlan.from_dict(
        {"rules": [{"kind": "disconnect", "times": 1}, {"kind": "hang", "seconds": 2}]}, seed=SEED
    )
    manifest = _manifest(tmp_path / "m.jsonl", 6)
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, faults=plan)) as emulator:
        args = ["run", str(TRIAGE), str(manifest), "--out", str(out), "--concurrency", "4"]
        result = invoke(args, emulator, DOCPIPE_UNREACHABLE_S="1")  # every answer takes twice the bound
        journal = emulator.control.requests()
    assert 0 == result.exit_code, result.output
    assert 1 == sum(entry.get("fault") == "disconnect" for entry in journal)
    assert _doc_ids(6) == sorted(pipeline.load_results(out).doc_id)
