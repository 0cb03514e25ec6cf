"""End to end: `docpipe run` through the CLI, the real SDK and real HTTP to the emulator."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result
from conftest import SEED, TEST_KEY, ForkedRun

import pipeline
from pipeline.cli import main
from pipeline.emulator import Emulator, EmulatorConfig, LatencyModel

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "documents"
MANIFEST = ROOT / "sample_data" / "manifest.jsonl"
TRIAGE = ROOT / "jobs" / "triage.toml"


def sample_files() -> list[str]:
    suffixes = {".txt", ".md", ".html", ".json", ".csv", ".pdf", ".docx", ".xlsx", ".eml"}
    return sorted(
        p.relative_to(SAMPLE).as_posix()
        for p in SAMPLE.rglob("*")
        if p.is_file() and p.suffix in suffixes
    )


def invoke(args: list[str], emulator: Emulator | None = None, **env: str) -> Result:
    environment = {"DOCPIPE_PROGRESS": "off", "ANTHROPIC_API_KEY": TEST_KEY, **env}
    if emulator is not None:
        environment["ANTHROPIC_BASE_URL"] = emulator.base_url
    return CliRunner().invoke(main, args, env=environment, catch_exceptions=False)


def billed(emulator: Emulator) -> int:
    return int(emulator.control.stats()["messages_billed"])


def message_requests(emulator: Emulator) -> int:
    return int(emulator.control.stats()["requests"]["by_endpoint"].get("messages", 0))


def test_sample_run_offline_writes_one_typed_row_per_document(tmp_path: Path) -> None:
    """The README's main command: every sample document gets one ok row, typed, from the emulator."""
    out = tmp_path / "out"
    result = invoke(["run", str(TRIAGE), str(SAMPLE), "--out", str(out), "--offline"], ANTHROPIC_API_KEY="")
    assert 0 == result.exit_code, result.output
    frame = pipeline.load_results(out)
    assert 50 == len(frame)  # the corpus, and only the corpus: no README, no manifest, no scripts
    assert sample_files() == sorted(frame.doc_id)
    assert {"ok"} == set(frame.status)
    by_id = frame.set_index("doc_id")
    assert ("pdf", 1) == tuple(by_id.loc["pdfs/scan_delivery_note.pdf", ["input_kind", "input_pages"]])  # a scan
    assert {"text"} == set(by_id.drop("pdfs/scan_delivery_note.pdf").input_kind)
    assert {"emulator"} == set(frame.backend)
    assert set(frame.category) <= {
        "invoice",
        "contract",
        "support_request",
        "complaint",
        "report",
        "marketing",
        "hr",
        "legal_notice",
        "other",
    }
    assert isinstance(frame.category.dtype, pd.CategoricalDtype)
    assert frame.summary.map(lambda s: len(s.split()) <= 61).all()
    markup = ("<document", "</document>", "<\\/document>")
    answers = frame.summary.tolist() + [point for points in frame.key_points for point in points]
    assert [] == [answer for answer in answers if any(tag in answer for tag in markup)]  # placeholders, never our fence
    assert (frame.cost_usd > 0).all()
    assert frame.needs_action.dtype == bool
    invoices = frame[frame.doc_id.str.startswith("invoices/")]
    assert "invoice" == invoices.category.mode()[0]


def test_in_process_cli_leaves_the_host_garbage_collector_alone(emulator: Emulator, tmp_path: Path) -> None:
    """Only the `docpipe` process tunes the collector; a test runner or notebook calling `main` keeps its own."""
    import gc

    before = gc.get_threshold(), gc.get_freeze_count()
    result = invoke(["run", str(TRIAGE), str(SAMPLE / "emails"), "--out", str(tmp_path / "out")], emulator)
    assert 0 == result.exit_code, result.output
    assert before == (gc.get_threshold(), gc.get_freeze_count())


def test_files_of_other_types_in_a_folder_are_counted_and_named(emulator: Emulator, tmp_path: Path) -> None:
    """A folder walk reads document types only; what it left out is said, by extension, not silently dropped."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "note.txt").write_text("Please call the supplier about invoice 7.")
    for name in ("scan.png", "offer.pptx", "contract.pptx", "Makefile"):
        (inbox / name).write_bytes(b"\x00not a document")
    os.mkfifo(inbox / "pipe.txt")  # never opened: reading a FIFO would block the run
    out = tmp_path / "out"
    result = invoke(["run", str(TRIAGE), str(inbox), "--out", str(out)], emulator)
    assert 0 == result.exit_code, result.output
    assert ["note.txt"] == list(pipeline.load_results(out).doc_id)
    summary = json.loads(next((out / "_runs").glob("*.json")).read_text())
    assert {".pptx": 2, ".png": 1, "(no extension)": 1, "(not a regular file)": 1} == summary["skipped_files"]
    expected = "skipped 5 files docpipe does not read ((no extension): 1, (not a regular file): 1, .png: 1, .pptx: 2)"
    assert expected in result.output
    dry = invoke(["run", str(TRIAGE), str(inbox), "--out", str(out), "--dry-run"], emulator)
    assert "skipped 5 files" in dry.output
    taken = invoke(["run", str(TRIAGE), str(inbox), "--out", str(out), "--include", "*.pptx"], emulator)
    assert 1 == taken.exit_code, taken.output  # named, they are taken, and fail with a reason each
    assert "skipped" not in taken.output  # the FIFO does not match *.pptx


def test_prompt_prefix_is_read_from_cache_after_first_request(emulator: Emulator, tmp_path: Path) -> None:
    """The shared system prefix is written once and read by every later request."""
    out = tmp_path / "out"
    result = invoke(["run", str(TRIAGE), str(SAMPLE), "--out", str(out), "--concurrency", "1"], emulator)
    assert 0 == result.exit_code, result.output
    frame = pipeline.load_results(out)
    assert 1 == (frame.cache_write_tokens > 0).sum()
    assert len(frame) - 1 == (frame.cache_read_tokens > 0).sum()


def test_rerun_sends_zero_requests(emulator: Emulator, tmp_path: Path) -> None:
    """A rerun over finished documents sends nothing and writes no new row."""
    out = tmp_path / "out"
    first = invoke(["run", str(TRIAGE), str(SAMPLE), "--out", str(out)], emulator)
    assert 0 == first.exit_code, first.output
    sent = message_requests(emulator)
    assert pipeline.load_results(out).request_count.sum() == sent  # one a document; the long report's pieces too
    second = invoke(["run", str(TRIAGE), str(SAMPLE), "--out", str(out)], emulator)
    assert 0 == second.exit_code, second.output
    assert sent == message_requests(emulator)
    assert f"{len(sample_files())} already done" in second.output
    assert len(sample_files()) == len(pipeline.load_results(out, latest=False))


def test_job_edit_reprocesses_every_document(emulator: Emulator, tmp_path: Path) -> None:
    """Changing the instructions changes the fingerprint, so every document is asked again."""
    out = tmp_path / "out"
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLE / "emails", docs)
    assert 0 == invoke(["run", str(TRIAGE), str(docs), "--out", str(out)], emulator).exit_code
    edited = tmp_path / "triage.toml"
    edited.write_text(TRIAGE.read_text().replace("You triage documents", "You carefully triage documents"))
    before = message_requests(emulator)
    result = invoke(["run", str(edited), str(docs), "--out", str(out)], emulator)
    assert 0 == result.exit_code, result.output
    assert 9 == message_requests(emulator) - before  # the 9 e-mails of sample_data/documents/emails
    rows = pipeline.load_results(out, latest=False)
    assert 2 == rows.job_fingerprint.nunique()
    assert 9 == len(pipeline.load_results(out))


def test_changed_document_is_reprocessed(emulator: Emulator, tmp_path: Path) -> None:
    """A document whose content changed is sent again; the others are not."""
    out = tmp_path / "out"
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLE / "emails", docs)
    assert 0 == invoke(["run", str(TRIAGE), str(docs), "--out", str(out)], emulator).exit_code
    before = message_requests(emulator)
    target = docs / "thank_you.txt"
    target.write_text(target.read_text() + "\nP.S. The second shipment arrived today as well.\n")
    assert 0 == invoke(["run", str(TRIAGE), str(docs), "--out", str(out)], emulator).exit_code
    assert 1 == message_requests(emulator) - before


def test_manifest_metadata_passes_through_typed(emulator: Emulator, tmp_path: Path) -> None:
    """Manifest metadata columns reach the output with their types; inline text rows work."""
    out = tmp_path / "out"
    result = invoke(["run", str(TRIAGE), str(MANIFEST), "--out", str(out)], emulator)
    assert 0 == result.exit_code, result.output
    frame = pipeline.load_results(out)
    rows = [json.loads(line) for line in (MANIFEST).read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(frame.doc_id)
    assert "int64" == str(frame.priority.dtype)
    by_id = frame.set_index("doc_id")
    for row in rows:
        assert row["department"] == by_id.loc[row["id"], "department"]


def test_dry_run_sends_nothing_and_lists_work(emulator: Emulator, tmp_path: Path) -> None:
    """--dry-run lists what would be sent and what is done, without a request or a file."""
    out = tmp_path / "out"
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLE / "emails", docs)
    result = invoke(["run", str(TRIAGE), str(docs), "--out", str(out), "--dry-run"], emulator)
    assert 0 == result.exit_code, result.output
    assert "would send 9 document(s) in 9 request(s)" in result.output
    assert 0 == message_requests(emulator)
    assert not out.exists()
    assert 0 == invoke(["run", str(TRIAGE), str(docs), "--out", str(out)], emulator).exit_code
    again = invoke(["run", str(TRIAGE), str(docs), "--out", str(out), "--dry-run"], emulator)
    assert "would send 0 document(s) in 0 request(s)" in again.output
    assert "9 already done" in again.output


def test_limit_processes_at_most_n_new_documents(emulator: Emulator, tmp_path: Path) -> None:
    """--limit N sends at most N documents; the next run continues with the rest."""
    out = tmp_path / "out"
    assert 0 == invoke(["run", str(TRIAGE), str(SAMPLE), "--out", str(out), "--limit", "5"], emulator).exit_code
    first = pipeline.load_results(out)
    assert (5, first.request_count.sum()) == (len(first), message_requests(emulator))
    assert 0 == invoke(["run", str(TRIAGE), str(SAMPLE), "--out", str(out)], emulator).exit_code
    every = pipeline.load_results(out, latest=False)
    assert (len(sample_files()), every.request_count.sum()) == (len(every), message_requests(emulator))


def test_streamed_jobs_give_the_same_rows(emulator: Emulator, tmp_path: Path) -> None:
    """stream = "always" goes through messages.stream and yields the same fields, marked streamed."""
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLE / "invoices", docs)
    streamed_job = tmp_path / "streamed.toml"
    streamed_job.write_text(TRIAGE.read_text().replace("timeout_s = 60", 'timeout_s = 60\nstream = "always"'))
    assert 0 == invoke(["run", str(streamed_job), str(docs), "--out", str(tmp_path / "a")], emulator).exit_code
    assert 0 == invoke(["run", str(TRIAGE), str(docs), "--out", str(tmp_path / "b")], emulator).exit_code
    streamed = pipeline.load_results(tmp_path / "a").set_index("doc_id")
    plain = pipeline.load_results(tmp_path / "b").set_index("doc_id")
    assert streamed.streamed.all()
    assert 1 == plain.streamed.sum()  # the cache warm-up's leader, streamed so the fan-out starts as it begins
    assert plain.category.tolist() == streamed.category.tolist()
    assert plain.summary.tolist() == streamed.summary.tolist()


def test_large_max_tokens_switches_to_streaming(emulator: Emulator, tmp_path: Path) -> None:
    """Above the SDK's non-streaming cap (21,333), stream = "auto" streams."""
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLE / "invoices", docs)
    job = tmp_path / "big.toml"
    job.write_text(TRIAGE.read_text().replace("max_tokens = 1024", "max_tokens = 32000"))
    assert 0 == invoke(["run", str(job), str(docs), "--out", str(tmp_path / "o")], emulator).exit_code
    assert pipeline.load_results(tmp_path / "o").streamed.all()


def test_no_api_key_without_offline_is_a_usage_error(tmp_path: Path) -> None:
    """Without a key and without --offline: exit 2 and a message saying how to fix it."""
    result = invoke(
        ["run", str(TRIAGE), str(SAMPLE), "--out", str(tmp_path / "o")], ANTHROPIC_API_KEY="", ANTHROPIC_AUTH_TOKEN=""
    )
    assert 2 == result.exit_code
    assert "ANTHROPIC_API_KEY" in result.output and "--offline" in result.output


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda t: t.replace('model = "claude-haiku-5-5"', 'model = ""'), "[job.model]"),
        (lambda t: t.replace("max_tokens = 1024", 'max_tokens = "lots"'), "[job.max_tokens]"),
        (lambda t: t.replace('type = "enum"', 'type = "colour"'), "[fields[0].type]"),
        (lambda t: t.replace("[job]", "[jobb]"), "[jobb]"),
        (lambda t: t + "\nthis is not toml\n", "not valid TOML"),
    ],
)
def test_bad_job_file_is_a_clear_usage_error(tmp_path: Path, mutate: Callable[[str], str], expected: str) -> None:
    """A broken job file: exit 2, naming the file and the key."""
    job = tmp_path / "broken.toml"
    job.write_text(mutate(TRIAGE.read_text()))
    result = invoke(["run", str(job), str(SAMPLE), "--out", str(tmp_path / "o"), "--offline"])
    assert 2 == result.exit_code
    assert str(job) in result.output and expected in result.output


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("m.jsonl", "", "empty"),
        ("m.csv", "name,path\nx,y\n", "id"),
        ("m.tsv", "id\n", "manifest"),  # a .txt is one document now (test_cli_formats.py)
    ],
)
def test_unusable_manifest_is_a_clear_usage_error(tmp_path: Path, name: str, content: str, expected: str) -> None:
    """A manifest that cannot be used at all: exit 2 with its path, before any request."""
    manifest = tmp_path / name
    manifest.write_text(content)
    result = invoke(["run", str(TRIAGE), str(manifest), "--out", str(tmp_path / "o"), "--offline"])
    assert 2 == result.exit_code, result.output
    assert name in result.output and expected in result.output.lower()


def test_bad_manifest_rows_become_error_rows_and_the_rest_completes(emulator: Emulator, tmp_path: Path) -> None:
    """Missing paths, duplicate ids and malformed lines are error rows; exit code 1; the rest ok."""
    (tmp_path / "a.txt").write_text("Invoice 12 from Acme for 400 EUR, due in 30 days.")
    lines = [
        json.dumps({"id": "a", "path": "a.txt", "priority": 1}),
        json.dumps({"id": "b", "path": "missing.txt", "priority": 2}),
        json.dumps({"id": "a", "text": "duplicate id", "priority": 3}),
        "{not json",
        json.dumps({"id": "c", "text": "Please reset my password, I am locked out.", "priority": "high"}),
        json.dumps({"id": "d", "text": "Please reset my password, I am locked out.", "priority": 2}),
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    result = invoke(["run", str(TRIAGE), str(manifest), "--out", str(tmp_path / "o")], emulator)
    assert 1 == result.exit_code, result.output
    rows = pipeline.load_results(tmp_path / "o", latest=False)
    assert ["ok", "ok"] == rows[rows.doc_id.isin(["a", "d"])].status.tolist()
    errors = rows[rows.status == "error"]
    assert 4 == len(errors)
    messages = " | ".join(errors.error_message)
    assert "file not found" in messages and "duplicate id" in messages
    assert "line 4" in messages and "priority" in messages
    assert 2 == message_requests(emulator)


def test_fatal_authentication_error_stops_the_run_with_exit_3(tmp_path: Path) -> None:
    """A rejected key stops the run at once (exit 3), not after trying every document."""
    with Emulator(EmulatorConfig(seed=SEED, api_keys=frozenset({"sk-the-right-key"}))) as emulator:
        result = invoke(["run", str(TRIAGE), str(SAMPLE), "--out", str(tmp_path / "o"), "--concurrency", "2"], emulator)
        sent = message_requests(emulator)
    assert 3 == result.exit_code, result.output
    assert "401" in result.output and "ANTHROPIC_API_KEY" in result.output
    assert sent <= 4
    assert TEST_KEY not in result.output


def spawn_run(
    emulator: Emulator,
    out: Path,
    *extra: str,
    input_path: Path = SAMPLE,
    env: dict[str, str] | None = None,
    stderr: int = subprocess.DEVNULL,
) -> subprocess.Popen[str]:
    """`docpipe run` of the triage job as a real subprocess against `emulator` (for signals and kills)."""
    environment = dict(
        os.environ, ANTHROPIC_API_KEY=TEST_KEY, ANTHROPIC_BASE_URL=emulator.base_url, DOCPIPE_PROGRESS="off"
    )
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", str(TRIAGE), str(input_path), "--out", str(out), *extra],
        env=environment | (env or {}),
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )


def fork_run(
    emulator: Emulator,
    out: Path | str,
    *extra: str,
    input_path: Path = SAMPLE,
    env: dict[str, str] | None = None,
    stderr: int = subprocess.DEVNULL,
) -> ForkedRun:
    """Like `spawn_run`, in a process forked from an interpreter with docpipe imported: for kills and signals
    in the run proper, without paying seconds of interpreter and import start-up each time."""
    environment = dict(
        os.environ, ANTHROPIC_API_KEY=TEST_KEY, ANTHROPIC_BASE_URL=emulator.base_url, DOCPIPE_PROGRESS="off"
    )
    argv = ["run", str(TRIAGE), str(input_path), "--out", str(out), *extra]
    return ForkedRun(argv, environment | (env or {}), capture_stderr=stderr == subprocess.PIPE)


def _wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def _journal_rows(out: Path) -> int:
    """Rows in the journal, its segments' header lines left out."""
    lines = [line for p in sorted((out / "_wal").glob("*.jsonl")) for line in p.read_bytes().splitlines()]
    return sum(not line.startswith(b'{"docpipe_journal"') for line in lines)


def _rows_recorded(out: Path) -> int:
    published = len(pipeline.load_results(out, latest=False)) if list(out.glob("part-*.parquet")) else 0
    return _journal_rows(out) + published


def test_sigkill_mid_run_then_rerun_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    """Killed with SIGKILL mid-run, a rerun finishes: one ok row per document, at most in-flight re-paid."""
    out = tmp_path / "out"
    concurrency = 3
    with Emulator(EmulatorConfig(seed=SEED, latency=LatencyModel(ttft_ms=150))) as emulator:
        process = fork_run(emulator, out, "--concurrency", str(concurrency))
        _wait_for(lambda: _rows_recorded(out) >= 10)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        billed_before = billed(emulator)
        rows_before = _rows_recorded(out)
        assert 10 <= rows_before < len(sample_files())
        result = invoke(["run", str(TRIAGE), str(SAMPLE), "--out", str(out)], emulator)
        assert 0 == result.exit_code, result.output
        total_billed = billed(emulator)
    frame = pipeline.load_results(out, latest=False)
    ok = frame[frame.status == "ok"]
    assert sample_files() == sorted(ok.doc_id)
    assert not ok.doc_id.duplicated().any()
    assert total_billed - len(sample_files()) <= concurrency
    assert billed_before >= rows_before
    assert not list(out.glob(".*.tmp")) and not list((out / "_wal").glob("*.jsonl"))


def test_overlapping_run_exits_75(tmp_path: Path) -> None:
    """While one run holds --out, another exits at once with 75 and says why."""
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, latency=LatencyModel(ttft_ms=300))) as emulator:
        first = fork_run(emulator, out, "--concurrency", "1")
        _wait_for(lambda: (out / ".lock").exists() and (out / ".lock").read_text().strip() != "")
        second = invoke(["run", str(TRIAGE), str(SAMPLE), "--out", str(out)], emulator)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert 75 == second.exit_code, second.output
        assert "in use by another docpipe run" in second.output
        third = invoke(["run", str(TRIAGE), str(SAMPLE), "--out", str(out)], emulator)
        assert 0 == third.exit_code, third.output
