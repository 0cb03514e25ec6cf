"""The output directory across runs, end to end: what a killed run left, another job's rows, a manifest
whose column changed type, a damaged journal, corrupt parts, and reruns that must not grow the output.

Every test drives `docpipe run` through the CLI against the emulator; a kill is a real SIGKILL of a
real subprocess.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import SEED
from test_cli_run import ROOT, SAMPLE, TRIAGE, _wait_for, fork_run, invoke, message_requests, sample_files
from test_output import CORRUPTIONS, _corrupt

import pipeline
from pipeline.emulator import Emulator, EmulatorConfig, LatencyModel

CONTRACT_REVIEW = ROOT / "jobs" / "contract_review.toml"
CONCURRENCY = 2


def _snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `out` but the lock (which every run takes) and the run summaries: bytes and mtime."""
    return {
        str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in out.rglob("*")
        if p.is_file() and p.name != ".lock" and p.parent.name != "_runs"
    }


def _whole_journal_rows(out: Path) -> int:
    """Rows in the journal that a recovery can read: complete lines, headers left out."""
    lines = [line for p in (out / "_wal").glob("*.jsonl") for line in p.read_bytes().split(b"\n")[:-1]]
    return sum(not line.startswith(b'{"docpipe_journal"') for line in lines)


def _kill_with_rows_in_the_journal(emulator: Emulator, out: Path, rows: int, input_path: Path = SAMPLE) -> int:
    """Start a run, SIGKILL it once `rows` rows are in its journal (none yet in a part); return the rows left."""
    process = fork_run(emulator, out, "--concurrency", str(CONCURRENCY), input_path=input_path)
    _wait_for(lambda: (out / "_wal").is_dir() and _whole_journal_rows(out) >= rows)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert [] == list(out.glob("part-*.parquet"))
    return _whole_journal_rows(out)


def _latest_summary(out: Path, before: set[Path]) -> dict[str, Any]:
    """The run summary written since `before` was listed."""
    [written] = set((out / "_runs").glob("*.json")) - before
    summary: dict[str, Any] = json.loads(written.read_text())
    return summary


def _slow_emulator() -> Emulator:
    return Emulator(EmulatorConfig(seed=SEED, latency=LatencyModel(ttft_ms=250)))


def _manifest(path: Path, count: int, *, priority_as_text: bool = False) -> Path:
    rows = [
        {"id": f"doc-{i:02d}", "text": f"Invoice {i} from Acme Ltd for {100 + i} EUR.", "priority": i % 3}
        for i in range(count)
    ]
    if priority_as_text:
        for row in rows:
            row["priority"] = f"p{row['priority']}"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# -- 1. the directory's identity is checked before anything is recovered or written ----------------


def test_another_job_is_refused_before_it_touches_a_killed_runs_journal(tmp_path: Path) -> None:
    """Job B on job A's --out after a kill: exit 2 naming A, nothing changed; A's rerun keeps every answer's fields."""
    out = tmp_path / "out"
    with _slow_emulator() as emulator:
        left = _kill_with_rows_in_the_journal(emulator, out, rows=4)
        before = _snapshot(out)
        refused = invoke(["run", str(CONTRACT_REVIEW), str(SAMPLE), "--out", str(out)], emulator)
        assert 2 == refused.exit_code, refused.output
        assert "holds results of job 'triage', not 'contract_review'" in refused.output
        assert before == _snapshot(out)
        resumed = invoke(["run", str(TRIAGE), str(SAMPLE), "--out", str(out)], emulator)
    assert 0 == resumed.exit_code, resumed.output
    assert f"recovered {left} rows from the journal" in resumed.output
    frame = pipeline.load_results(out, latest=False)
    assert sample_files() == sorted(frame.doc_id)
    assert {"ok"} == set(frame.status)
    assert frame.category.notna().all() and frame.summary.notna().all()


def test_a_metadata_column_changing_type_after_a_kill_is_refused_then_resumes(tmp_path: Path) -> None:
    """priority int64 in a killed run's journal, a string in the new manifest: exit 2 naming both, nothing touched."""
    out = tmp_path / "out"
    manifest = _manifest(tmp_path / "m.jsonl", 30)
    changed = _manifest(tmp_path / "changed.jsonl", 30, priority_as_text=True)
    with _slow_emulator() as emulator:
        _kill_with_rows_in_the_journal(emulator, out, rows=4, input_path=manifest)
        before = _snapshot(out)
        refused = invoke(["run", str(TRIAGE), str(changed), "--out", str(out)], emulator)
        assert 2 == refused.exit_code, refused.output
        assert "column 'priority' as int64" in refused.output and "write it as string" in refused.output
        assert "new --out directory" in refused.output
        assert before == _snapshot(out)
        resumed = invoke(["run", str(TRIAGE), str(manifest), "--out", str(out)], emulator)
    assert 0 == resumed.exit_code, resumed.output
    frame = pipeline.load_results(out, latest=False)
    assert [f"doc-{i:02d}" for i in range(30)] == sorted(frame.doc_id)
    assert "int64" == str(frame.priority.dtype)


def test_a_metadata_column_changing_type_over_published_parts_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    """A finished run wrote priority as int64; a manifest giving strings is refused (exit 2); the output still reads."""
    out = tmp_path / "out"
    manifest = _manifest(tmp_path / "m.jsonl", 5)
    assert 0 == invoke(["run", str(TRIAGE), str(manifest), "--out", str(out)], emulator).exit_code
    before = _snapshot(out)
    changed = _manifest(tmp_path / "changed.jsonl", 5, priority_as_text=True)
    refused = invoke(["run", str(TRIAGE), str(changed), "--out", str(out)], emulator)
    assert 2 == refused.exit_code, refused.output
    assert "column 'priority' as int64" in refused.output and "write it as string" in refused.output
    assert before == _snapshot(out)
    assert "int64" == str(pipeline.load_results(out).priority.dtype)


# -- 2. a damaged journal loses only its damaged lines ---------------------------------------------


def test_a_garbled_journal_line_loses_that_line_only_and_is_reported(tmp_path: Path) -> None:
    """One garbled line after a kill: every other row is recovered, the line is named, the segment kept aside."""
    out = tmp_path / "out"
    with _slow_emulator() as emulator:
        left = _kill_with_rows_in_the_journal(emulator, out, rows=6)
        segment = next((out / "_wal").glob("*.jsonl"))
        lines = segment.read_bytes().split(b"\n")
        lines[2] = b'{"doc_id": "garbled' + bytes(range(128, 160))  # line 3: the second row
        segment.write_bytes(b"\n".join(lines))
        garbled = segment.read_bytes()
        result = invoke(["run", str(TRIAGE), str(SAMPLE), "--out", str(out)], emulator)
    assert 0 == result.exit_code, result.output
    assert f"recovered {left - 1} rows from the journal" in result.output
    assert "journal: 1 damaged line could not be recovered" in result.stderr
    assert f"{segment.name} line 3: not valid UTF-8" in result.stderr
    summary = _latest_summary(out, set())
    assert (1, [segment.name]) == (summary["journal_damaged_lines"], summary["journal_quarantined"])
    assert [f"{segment.name} line 3: not valid UTF-8"] == summary["journal_damage"]
    assert garbled == (out / "_wal" / "quarantine" / segment.name).read_bytes()
    frame = pipeline.load_results(out, latest=False)
    assert sample_files() == sorted(frame.doc_id) and {"ok"} == set(frame.status)
    assert (left - 1, len(sample_files()) - (left - 1)) == (summary["already_done"], summary["documents"])


# -- 3. --dry-run counts what the journal holds, and writes nothing ---------------------------------


def test_dry_run_after_a_kill_counts_the_journal_rows_as_done_and_touches_nothing(tmp_path: Path) -> None:
    """After a kill, --dry-run would send only what the journal does not hold, and leaves every file as it was."""
    out = tmp_path / "out"
    with _slow_emulator() as emulator:
        left = _kill_with_rows_in_the_journal(emulator, out, rows=5)
        before = {**_snapshot(out), ".lock": ((out / ".lock").read_bytes(), (out / ".lock").stat().st_mtime_ns)}
        dry = invoke(["run", str(TRIAGE), str(SAMPLE), "--out", str(out), "--dry-run"], emulator)
        after = {**_snapshot(out), ".lock": ((out / ".lock").read_bytes(), (out / ".lock").stat().st_mtime_ns)}
        assert 0 == dry.exit_code, dry.output
        assert f"would send {len(sample_files()) - left} document(s)" in dry.output
        assert f"{left} already done" in dry.output
        assert f"{left} rows in the journal of an interrupted run counted" in dry.output
        assert before == after
        assert 0 == invoke(["run", str(TRIAGE), str(SAMPLE), "--out", str(out)], emulator).exit_code
    summary = _latest_summary(out, set())
    assert (left, len(sample_files()) - left) == (summary["already_done"], summary["documents"])


# -- 4. reruns add no row for an outcome that cannot have changed ----------------------------------


def test_a_rerun_records_unchanged_manifest_errors_once(emulator: Emulator, tmp_path: Path) -> None:
    """Duplicate ids and a malformed line are recorded once; a missing file is recorded again; the exit code stays 1."""
    lines = [json.dumps({"id": "a", "text": "Invoice 1 from Acme for 10 EUR."})]
    lines += [json.dumps({"id": "a", "text": f"copy {i}"}) for i in range(300)]
    lines += ["{not json", json.dumps({"id": "m", "path": "missing.txt"}), json.dumps({"id": "b", "text": "Hello."})]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    first = invoke(["run", str(TRIAGE), str(manifest), "--out", str(out)], emulator)
    assert 1 == first.exit_code, first.output
    assert 304 == len(pipeline.load_results(out, latest=False))
    parts = len(list(out.glob("part-*.parquet")))
    dry = invoke(["run", str(TRIAGE), str(manifest), "--out", str(out), "--dry-run"], emulator)
    assert "301 errors unchanged since last recorded" in dry.output
    sent, summaries = message_requests(emulator), set((out / "_runs").glob("*.json"))
    second = invoke(["run", str(TRIAGE), str(manifest), "--out", str(out)], emulator)
    assert 1 == second.exit_code, second.output
    assert "1 errors, 2 already done, 301 errors unchanged (not written again)" in second.output
    rows = pipeline.load_results(out, latest=False)
    assert 305 == len(rows)  # the missing file's error only: it may appear by the next run
    assert ["m", "m"] == rows[rows.error_message.str.contains("missing.txt", na=False)].doc_id.tolist()
    assert (parts + 1, sent) == (len(list(out.glob("part-*.parquet"))), message_requests(emulator))
    summary = _latest_summary(out, summaries)
    assert (1, 301) == (summary["errors"], summary["errors_unchanged"])


# -- 5. a corrupt or foreign part stops the run with exit 4, naming it, touching nothing -------------


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_a_corrupt_or_foreign_part_is_exit_4_naming_it_and_touching_nothing(
    emulator: Emulator, tmp_path: Path, kind: str
) -> None:
    """Exit 4 and one line: the file, the cause, the command that sets it aside; after it, the rerun completes."""
    out, docs = tmp_path / "out", SAMPLE / "emails"
    assert 0 == invoke(["run", str(TRIAGE), str(docs), "--out", str(out)], emulator).exit_code
    bad = out / "part-20260101T000000Z-bad-00001.parquet"
    bad.write_bytes(_corrupt(next(out.glob("part-*.parquet")).read_bytes(), kind))
    before = _snapshot(out)
    sent = message_requests(emulator)
    command = f"mkdir -p {out}/_quarantine && mv {bad} {out}/_quarantine/"
    for extra in ([], ["--dry-run"]):
        result = invoke(["run", str(TRIAGE), str(docs), "--out", str(out), *extra], emulator)
        assert 4 == result.exit_code, result.output
        line = result.stderr.splitlines()[-1]  # after the run's summary, when it could be written
        assert "Traceback" not in result.stderr
        assert line.startswith(f"docpipe: error: {bad} is not a readable docpipe part: ") and line.endswith(command)
    assert (before, sent) == (_snapshot(out), message_requests(emulator))
    subprocess.run(["sh", "-c", command], check=True)
    rerun = invoke(["run", str(TRIAGE), str(docs), "--out", str(out)], emulator)
    assert 0 == rerun.exit_code, rerun.output
    assert (sent, 9) == (message_requests(emulator), len(pipeline.load_results(out)))
