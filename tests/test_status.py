"""`docpipe status OUT` end to end: runs through the CLI against the emulator, then the report read back."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SEED
from test_cli_run import MANIFEST, SAMPLE, TRIAGE, invoke
from test_recovery import _kill_with_rows_in_the_journal, _slow_emulator

from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.status import group_errors, latest_rows, one_line


def _folder_with_a_bad_file(tmp_path: Path) -> Path:
    """Four sample invoices and one empty .txt (an extraction_error row)."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for path in sorted((SAMPLE / "invoices").glob("*.txt"))[:3]:
        shutil.copy(path, folder / path.name)
    (folder / "empty.txt").write_bytes(b"")
    return folder


def _run_triage(emulator: Emulator, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    result = invoke(["run", str(TRIAGE), str(_folder_with_a_bad_file(tmp_path)), "--out", str(out)], emulator)
    assert 1 == result.exit_code, result.output
    return out


def _snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}


def test_status_shows_the_run_the_counts_and_the_bad_document(emulator: Emulator, tmp_path: Path) -> None:
    """After a run with one empty file: the run, 3 ok / 1 error, the document's id and message; nothing changed."""
    out = _run_triage(emulator, tmp_path)
    before = _snapshot(out)
    result = invoke(["status", str(out)])
    assert 0 == result.exit_code, result.output
    assert before == _snapshot(out)
    lines = result.output.splitlines()
    assert "runs: 1, newest last" in lines
    [run_line] = [line for line in lines if "finished (exit 1)" in line]
    assert "3 ok, 1 errors, 0 already done" in run_line
    assert "documents: 4 (latest row each): 3 ok, 1 error" in lines
    assert "  extraction_error: 1" in lines
    assert "    empty.txt: empty document" in lines
    assert ["pending:", "  nothing"] == lines[lines.index("pending:") : lines.index("pending:") + 2]


def test_status_json_parses_and_says_the_same(emulator: Emulator, tmp_path: Path) -> None:
    """--json: one object with the run, the counts and the error group."""
    out = _run_triage(emulator, tmp_path)
    result = invoke(["status", str(out), "--json"])
    assert 0 == result.exit_code, result.output
    report = json.loads(result.output)
    assert (4, 3, 1) == (report["documents"], report["ok"], report["error"])
    [run] = report["runs"]
    assert ("triage", "finished", 1, 3, 1) == (run["job"], run["stopped"], run["exit_code"], run["ok"], run["errors"])
    assert run["tokens"] > 0 and run["cost_usd"] > 0
    expected_group = {
        "error_type": "extraction_error",
        "count": 1,
        "documents": [{"doc_id": "empty.txt", "error_message": "empty document"}],
        "more": 0,
    }
    assert [expected_group] == report["errors"]
    assert (0, []) == (report["pending"]["journal_rows"], report["pending"]["batches"])


def test_a_second_run_is_listed_after_the_first_with_its_documents_already_done(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Two runs, newest last; the second retries the error and skips the 3 done documents."""
    out = _run_triage(emulator, tmp_path)
    again = invoke(["run", str(TRIAGE), str(tmp_path / "docs"), "--out", str(out)], emulator)
    assert 1 == again.exit_code, again.output
    report = json.loads(invoke(["status", str(out), "--json"]).output)
    assert [3, 0] == [run["ok"] for run in report["runs"]]
    assert [0, 3] == [run["already_done"] for run in report["runs"]]
    assert report["runs"][0]["started_at"] <= report["runs"][1]["started_at"]
    assert (4, 1) == (report["documents"], report["error"])


def test_a_killed_run_shows_its_journal_rows_as_pending(tmp_path: Path) -> None:
    """SIGKILL with rows in the journal: status counts them as pending, and recovers nothing."""
    out = tmp_path / "out"
    with _slow_emulator() as emulator:
        left = _kill_with_rows_in_the_journal(emulator, out, rows=3)
    before = _snapshot(out)
    result = invoke(["status", str(out), "--json"])
    assert 0 == result.exit_code, result.output
    assert before == _snapshot(out)
    report = json.loads(result.output)
    assert left == report["pending"]["journal_rows"] >= 3
    assert (0, []) == (report["documents"], report["runs"])  # a killed run saves no summary, publishes no part
    assert report["lock_holder"] is not None  # the killed run's lock file still names it
    text = invoke(["status", str(out)]).output
    assert f"  journal: {left} rows in 1 segment(s) not yet published (the next run publishes them)" in text


def test_a_batch_submitted_with_no_wait_is_pending_with_its_id(tmp_path: Path) -> None:
    """--mode batch --no-wait: status lists the batch, its id and state, and the run as finished (exit 0)."""
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=3600)) as emulator:
        submitted = invoke(
            ["run", str(TRIAGE), str(MANIFEST), "--out", str(out), "--mode", "batch", "--no-wait"], emulator
        )
        assert 0 == submitted.exit_code, submitted.output
        report = json.loads(invoke(["status", str(out), "--json"]).output)
        [batch] = report["pending"]["batches"]
        assert "submitted" == batch["state"] and batch["batch_id"].startswith("msgbatch_")
        assert [("batch", "finished")] == [(run["mode"], run["stopped"]) for run in report["runs"]]
        assert 0 == report["documents"]
        text = invoke(["status", str(out)]).output
        assert f"  batch {batch['tag']}  {batch['batch_id']}  submitted  {batch['requests']:,} requests" in text


def test_an_unreadable_part_is_a_problem_not_a_crash(emulator: Emulator, tmp_path: Path) -> None:
    """A garbled part: exit 0, the runs still shown, the part named under problems, no counts claimed."""
    out = _run_triage(emulator, tmp_path)
    (out / "part-zzz.parquet").write_bytes(b"garbage")
    result = invoke(["status", str(out)])
    assert 0 == result.exit_code, result.output
    assert "runs: 1, newest last" in result.output
    assert "documents: the rows cannot be read (see problems)" in result.output
    assert "part-zzz.parquet is not a readable docpipe part" in result.output


def test_pending_batches_pieces_and_uploads_are_listed(tmp_path: Path) -> None:
    """Records a batch run, a chunked run, a PDF upload and a damaged journal left behind are all shown."""
    out = tmp_path / "out"
    (out / "_batches").mkdir(parents=True)
    submission = {
        "tag": "b1", "state": "submitted", "requests": 7, "bytes": 100, "recorded_at": 1.0, "run_id": "r1",
        "batch_id": "msgbatch_01abc",
    }  # fmt: skip
    (out / "_batches" / "b1.json").write_text(json.dumps(submission))
    pieces = [{"doc_id": "long.txt", "part": 0}, {"doc_id": "long.txt", "part": 1}, {"doc_id": "other.txt", "part": 0}]
    (out / "_pieces.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pieces) + '{"doc_id": "torn')
    uploads = [
        {"sha256": "a", "state": "uploading"}, {"sha256": "a", "state": "uploaded", "file_id": "file_1"},
        {"sha256": "b", "state": "uploaded", "file_id": "file_2"}, {"sha256": "b", "state": "deleted"},
    ]  # fmt: skip
    (out / "_files.jsonl").write_text("".join(json.dumps(u) + "\n" for u in uploads))
    (out / "_wal" / "quarantine").mkdir(parents=True)
    (out / "_wal" / "quarantine" / "r1-00001.jsonl").write_bytes(b"garbled\n")
    report = json.loads(invoke(["status", str(out), "--json"]).output)
    pending = report["pending"]
    assert [("b1", "msgbatch_01abc", "submitted", 7)] == [
        (b["tag"], b["batch_id"], b["state"], b["requests"]) for b in pending["batches"]
    ]
    assert (3, 2, 1) == (pending["pieces_answers"], pending["pieces_documents"], pending["uploads_not_deleted"])
    text = invoke(["status", str(out)]).output
    assert "  batch b1  msgbatch_01abc  submitted  7 requests" in text
    assert "  pieces: 3 answered pieces of 2 chunked document(s)" in text
    assert "  uploads: 1 file(s) recorded and not deleted" in text
    assert "  journal: 1 damaged segment(s) kept in _wal/quarantine/" in text
    assert (0, 1) == (pending["journal_rows"], pending["journal_quarantined"])


def test_only_the_last_runs_are_listed_with_a_count_of_the_older(tmp_path: Path) -> None:
    """25 summaries: the newest 20, oldest of them first, and '5 older not shown'."""
    runs = tmp_path / "out" / "_runs"
    runs.mkdir(parents=True)
    for i in range(25):
        summary = {"run_id": f"run-{i:02d}", "started_at": f"2026-01-{i + 1:02d}T00:00:00+00:00", "exit_code": 0}
        (runs / f"run-{i:02d}.json").write_text(json.dumps(summary))
    (runs / "broken.json").write_text("{")
    report = json.loads(invoke(["status", str(tmp_path / "out"), "--json"]).output)
    assert [f"run-{i:02d}" for i in range(5, 25)] == [run["run_id"] for run in report["runs"]]
    assert 5 == report["older_runs"]
    assert ["run summary _runs/broken.json unreadable"] == [p.split(":")[0] for p in report["problems"]]
    assert "runs: 25, newest last (5 older not shown)" in invoke(["status", str(tmp_path / "out")]).output


def test_a_run_at_an_unknown_price_shows_its_cost_as_unknown_not_zero(tmp_path: Path) -> None:
    """A summary's null cost (a model with no known price) is 'cost unknown' and null in JSON, never $0."""
    runs = tmp_path / "out" / "_runs"
    runs.mkdir(parents=True)
    summary = {"run_id": "r", "exit_code": 0, "ok": 3, "input_tokens": 900, "output_tokens": 90, "cost_usd": None}
    (runs / "r.json").write_text(json.dumps(summary))
    [run] = json.loads(invoke(["status", str(tmp_path / "out"), "--json"]).output)["runs"]
    assert (None, 990, 900) == (run["cost_usd"], run["tokens"], run["input_tokens"])
    assert "990 tokens, cost unknown" in invoke(["status", str(tmp_path / "out")]).output


@pytest.mark.parametrize(
    ("summary", "stopped"),
    [
        ({"exit_code": 0}, "finished"),
        ({"exit_code": 1}, "finished"),
        ({"exit_code": 3, "stopped": "fatal", "fatal_error": "bad key"}, "fatal"),
        ({"exit_code": 130, "stopped": "interrupted"}, "interrupted"),
        ({"exit_code": 6, "stop_note": "--max-cost reached"}, "budget"),
        ({"exit_code": 5}, "waiting"),
    ],
)
def test_how_a_run_stopped_is_read_from_its_summary(tmp_path: Path, summary: dict[str, object], stopped: str) -> None:
    """finished, fatal, interrupted, budget, waiting: one word per run."""
    runs = tmp_path / "out" / "_runs"
    runs.mkdir(parents=True)
    (runs / "r.json").write_text(json.dumps({"run_id": "r", **summary}))
    [run] = json.loads(invoke(["status", str(tmp_path / "out"), "--json"]).output)["runs"]
    assert stopped == run["stopped"]


def test_errors_are_grouped_by_type_with_the_first_n_and_a_count_of_the_rest() -> None:
    """--errors N: N ids per type (sorted), '... and K more'; messages on one line."""
    rows = [{"doc_id": f"d{i}", "status": "error", "error_type": "request_error", "error_message": f"bad\n  {i}",
             "created_at": 1} for i in range(7)]  # fmt: skip
    rows.append({"doc_id": "d0", "status": "ok", "error_type": None, "error_message": None, "created_at": 2})
    rows.append({"doc_id": "x", "status": "error", "error_type": "extraction_error", "error_message": "empty",
                 "created_at": 1})  # fmt: skip
    groups = group_errors(latest_rows(rows), listed=2)
    assert [("request_error", 6, 4), ("extraction_error", 1, 0)] == [(g.error_type, g.count, g.more) for g in groups]
    first_two = [{"doc_id": "d1", "error_message": "bad 1"}, {"doc_id": "d2", "error_message": "bad 2"}]
    assert first_two == groups[0].documents


def test_the_errors_option_limits_the_listed_documents(emulator: Emulator, tmp_path: Path) -> None:
    """`--errors 0` names no document of a group and says how many more there are."""
    out = _run_triage(emulator, tmp_path)
    result = invoke(["status", str(out), "--errors", "0"])
    assert 0 == result.exit_code, result.output
    lines = result.output.splitlines()
    assert ["  extraction_error: 1", "    ... and 1 more"] == lines[-2:]


def test_a_long_message_is_cut_to_one_line() -> None:
    """Whitespace folded, cut with an ellipsis."""
    assert "a b c" == one_line("a\n b\t\tc ")
    assert 20 == len(one_line("x" * 100, limit=20)) and one_line("x" * 100, limit=20).endswith("...")


@pytest.mark.parametrize("command", ["status", "export"])
def test_a_missing_out_is_exit_2_naming_it(tmp_path: Path, command: str) -> None:
    """No such directory: exit 2, one line naming the path, no traceback."""
    missing = tmp_path / "nowhere"
    extra = ["--format", "csv"] if command == "export" else []
    result = invoke([command, str(missing), *extra])
    assert 2 == result.exit_code
    assert f"docpipe: error: no output directory at {missing}\n" == result.stderr


@pytest.mark.parametrize("command", ["status", "export"])
def test_a_directory_that_is_not_docpipes_is_exit_2(tmp_path: Path, command: str) -> None:
    """A folder of other files: exit 2 saying it is not a docpipe output directory."""
    (tmp_path / "notes.txt").write_text("hello")
    extra = ["--format", "csv"] if command == "export" else []
    result = invoke([command, str(tmp_path), *extra])
    assert 2 == result.exit_code
    assert f"{tmp_path} is not a docpipe output directory" in result.stderr
    assert "Traceback" not in result.output


def test_status_imports_neither_the_sdk_nor_writes(emulator: Emulator, tmp_path: Path) -> None:
    """In a fresh interpreter, `docpipe status` on a real output never imports anthropic."""
    out = _run_triage(emulator, tmp_path)
    code = (
        "import sys; from pipeline.cli import main\n"
        f"try: main([ 'status', {str(out)!r}])\n"
        "except SystemExit: pass\n"
        "assert 'anthropic' not in sys.modules, 'anthropic imported'\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert 0 == completed.returncode, completed.stderr
    assert "documents: 4 (latest row each)" in completed.stdout
