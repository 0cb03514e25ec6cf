"""Failures end to end: permanent errors, run-dooming errors and a double Ctrl-C, through the CLI and the emulator.

Each test drives `docpipe run` (in-process with CliRunner, or as a subprocess for signals) over real
HTTP to the emulator, with the emulator's fault rules deciding what goes wrong. A rule's `match` is a
marker written into the text of the documents it must hit, so the other documents are untouched.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import SEED, TEST_KEY
from test_cli_run import TRIAGE, billed, fork_run, invoke, message_requests

import pipeline
from pipeline.emulator import Emulator, EmulatorConfig, FaultPlan
from pipeline.jobs import load_job
from pipeline.model_spec import ModelSpec

MARKER = "ZQX-FAULTY-DOCUMENT"  # the permanent-error rule matches the one document holding it
SLOW_MARKER = "ZQX-SLOW-LANE"  # documents whose requests hang while the run is stopped
FATAL_MARKER = "ZQX-ACCOUNT-CUT"  # documents whose requests meet a run-dooming error

TEXTS = [
    "Invoice {n} from Acme Ltd for {amount} EUR, due in 30 days. Pay to account 4471.",
    "Please reset my password for the portal, ticket {n}. I have been locked out since Monday.",
    "This agreement {n} between Foo Ltd and Bar plc starts on 1 March and runs for two years.",
    "Quarterly report {n}: revenue grew {amount} thousand EUR while shipping costs fell slightly.",
    "Complaint {n}: the pallet arrived damaged and nobody answered my calls about it.",
]


def _text(index: int, marker: str = "") -> str:
    text = TEXTS[index % len(TEXTS)].format(n=index, amount=100 + 7 * index)
    return f"{text} {marker}".strip()


def _manifest(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": f"doc-{i:03d}", "text": t}) + "\n" for i, t in enumerate(texts)))
    return path


def _doc_ids(count: int, start: int = 0) -> list[str]:
    return [f"doc-{i:03d}" for i in range(start, start + count)]


def _fault_journal(emulator: Emulator, kind: str) -> list[dict[str, Any]]:
    journal = emulator.control.requests()
    return [entry for entry in journal if entry["endpoint"] == "messages" and entry.get("fault") == kind]


def _arrived(emulator: Emulator) -> int:
    """Messages requests the emulator has received, finished or not.

    The journal and the stats record a request when it ends; a request held by a `hang` fault is in
    neither until then. The emulator counts every request body it reads on arrival (`state.seen`,
    which drives the fault draws), so arrivals minus journaled requests are the ones in flight.
    """
    return sum(list(emulator.state.seen.values()))


def _in_flight(emulator: Emulator) -> int:
    return _arrived(emulator) - message_requests(emulator)


def _run_summaries(out: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted((out / "_runs").glob("*.json"))]


# -- 1. errors that will not go away: one error row, no retry -------------------------------------


@pytest.mark.parametrize(
    ("kind", "error_type", "expected_in_message", "retries_schema"),
    [
        pytest.param(
            "invalid_request",
            "invalid_request_error",
            ["400", "invalid_request_error", "messages.0.content.0.text: text content blocks must be non-empty"],
            False,
            id="400",
        ),
        pytest.param(
            "request_too_large",
            "request_too_large",
            ["413", "Request Entity Too Large", "max_document_tokens"],
            False,
            id="413",
        ),
        pytest.param("refusal", "refusal", ["declined", "declined by the safety system"], False, id="refusal"),
        pytest.param("malformed_output", "schema_mismatch", ["not valid JSON", "Here is the JSON"], True, id="schema"),
    ],
)
def test_permanent_error_gives_one_error_row_and_is_not_retried(
    tmp_path: Path, kind: str, error_type: str, expected_in_message: list[str], retries_schema: bool
) -> None:
    """400, 413, a refusal or an answer failing the schema: one actionable error row, no retry, the rest ok, exit 1."""
    job = tmp_path / "triage.toml"
    job.write_text(TRIAGE.read_text().replace("timeout_s = 60", "timeout_s = 60\nschema_retries = 3"))
    schema_retries = load_job(job).schema_retries
    assert 3 == schema_retries
    expected_attempts = 1 + schema_retries if retries_schema else 1
    texts = [_text(i, MARKER if i == 2 else "") for i in range(5)]
    manifest = _manifest(tmp_path / "docs.jsonl", texts)
    rule: dict[str, Any] = {"kind": kind, "match": MARKER}
    if kind == "invalid_request":  # the API names what it refused; docpipe must pass that on
        rule["message"] = "messages.0.content.0.text: text content blocks must be non-empty"
    out = tmp_path / "out"
    plan = FaultPlan.from_dict({"rules": [rule]}, seed=SEED)
    with Emulator(EmulatorConfig(seed=SEED, faults=plan)) as emulator:
        result = invoke(["run", str(job), str(manifest), "--out", str(out), "--concurrency", "2"], emulator)
        first_run = pipeline.load_results(out, latest=False)
        faulted = _fault_journal(emulator, kind)
        sent = message_requests(emulator)
        emulator.control.set_faults([])
        rerun = invoke(["run", str(job), str(manifest), "--out", str(out)], emulator)
        sent_by_rerun = message_requests(emulator) - sent

    assert 1 == result.exit_code, result.output
    assert _doc_ids(5) == sorted(first_run.doc_id)  # one row per document, no more
    errors = first_run[first_run.status == "error"]
    assert ["doc-002"] == errors.doc_id.tolist()
    error = errors.iloc[0]
    assert error_type == error.error_type
    for fragment in expected_in_message:
        assert fragment in error.error_message, error.error_message
    assert "<" not in error.error_message and "\r" not in error.error_message
    assert expected_attempts == error.attempts
    assert error.request_id and error.request_id.startswith("req_")
    assert {"ok"} == set(first_run[first_run.doc_id != "doc-002"].status)
    assert f"{error_type}: 1" in result.stderr
    # The emulator saw the faulty document's request exactly as often as expected, and nothing else repeated.
    assert expected_attempts == len(faulted)
    assert {0} == {int(entry["retry_count"] or 0) for entry in faulted}  # the SDK's own retries stay off
    assert 4 + expected_attempts == sent
    # The error row is retried by the next run; the ok rows are not paid for again.
    assert 0 == rerun.exit_code, rerun.output
    assert 1 == sent_by_rerun
    latest = pipeline.load_results(out)
    assert {"ok"} == set(latest.status) and 5 == len(latest)


# -- 2. errors that doom the run: stop at once, exit 3 --------------------------------------------

FAST_DOCUMENTS = 5
SLOW_DOCUMENTS = 3
DOCUMENTS = 200
CONCURRENCY = 4
HANG_S = 20.0


@pytest.mark.parametrize(
    ("kind", "expected_in_message"),
    [
        pytest.param("authentication", ["401", "authentication_error", "Check ANTHROPIC_API_KEY"], id="401"),
        pytest.param("permission", ["403", "permission", "workspace"], id="403"),
        pytest.param("spend_limit", ["429", "spend limit", "Raise the limit", "rerun"], id="spend-limit-429"),
        pytest.param("model_not_found", ["404", "claude-haiku-5-5", "model name", "GET /v1/models"], id="404-model"),
    ],
)
def test_fatal_error_stops_the_run_within_seconds_with_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, expected_in_message: list[str]
) -> None:
    """401, 403, a spend-limit 429 or a model the API does not serve: exit 3 at once, in-flight requests abandoned.

    200 documents: 5 plain ones, 3 whose requests hang for 20 s, then 192 that meet the fatal error
    (for the 404, every request meets it: the 3 hung ones first, then the rest, nothing plain).
    With 4 workers, the fatal error arrives while three requests hang: the run must stop without
    waiting for them, write no error row (the untouched documents are simply not done) and record
    the fatal error in its summary; a rerun without the fault finishes exactly the rest.

    A model neither docpipe nor the API knows stops the run at GET /v1/models, before any message (see
    `test_a_model_neither_docpipe_nor_the_api_knows_stops_the_run_before_any_message`). A model docpipe
    knows but the API does not serve (retired since the job was written, or not enabled for the key) is the 404 case
    here. The emulator serves the models of docpipe's own table and answers `404 not_found_error`
    "model: <id>" for a retired one, so for the first run the test has the emulator's lookup see the
    job's model as retired (docpipe's own table is left alone: it refuses a job on a retired model).
    """
    texts = [
        _text(i, "" if i < FAST_DOCUMENTS else SLOW_MARKER if i < FAST_DOCUMENTS + SLOW_DOCUMENTS else FATAL_MARKER)
        for i in range(DOCUMENTS)
    ]
    if kind == "model_not_found":  # every request is refused: no document gets through first
        texts = [_text(i, SLOW_MARKER if i < SLOW_DOCUMENTS else "") for i in range(DOCUMENTS)]
    fast = 0 if kind == "model_not_found" else FAST_DOCUMENTS
    manifest = _manifest(tmp_path / "docs.jsonl", texts)
    rules: list[dict[str, Any]] = [{"kind": "hang", "match": SLOW_MARKER, "seconds": HANG_S}]
    if kind != "model_not_found":
        rules.append({"kind": kind, "match": FATAL_MARKER})
    out = tmp_path / "out"
    args = ["run", str(TRIAGE), str(manifest), "--out", str(out), "--concurrency", str(CONCURRENCY)]
    with Emulator(EmulatorConfig(seed=SEED, faults=FaultPlan.from_dict({"rules": rules}, seed=SEED))) as emulator:
        with monkeypatch.context() as patch:
            if kind == "model_not_found":  # retired for the API only: docpipe itself refuses a job on a retired model
                model, served = load_job(TRIAGE).model, EmulatorConfig.model

                def as_the_api_sees_it(config: EmulatorConfig, name: str) -> ModelSpec | None:
                    spec = served(config, name)
                    return dataclasses.replace(spec, lifecycle="retired") if spec and spec.id == model else spec

                patch.setattr(EmulatorConfig, "model", as_the_api_sees_it)
            started = time.monotonic()
            result = invoke(args, emulator)
            elapsed_s = time.monotonic() - started
        arrived = _arrived(emulator)
        billed_before = billed(emulator)
        parts = list(out.glob("part-*.parquet"))
        rows = pipeline.load_results(out, latest=False) if parts else None
        summaries = _run_summaries(out)
        emulator.control.set_faults([])
        rerun = invoke([*args[:-1], "16"], emulator)
        billed_by_rerun = billed(emulator) - billed_before

    assert 3 == result.exit_code, result.output
    assert elapsed_s < HANG_S / 2, f"the run took {elapsed_s:.1f} s: it waited for the hung requests"
    for fragment in expected_in_message:
        assert fragment in result.stderr, result.stderr
    assert "stopped: fatal" in result.stderr
    assert TEST_KEY not in result.output
    # The fast documents, then at most one request per worker (the hung ones and the fatal one), not one more.
    assert fast + 1 <= arrived <= fast + CONCURRENCY, result.output
    assert _doc_ids(fast) == ([] if rows is None else sorted(rows.doc_id))
    assert rows is None or {"ok"} == set(rows.status)
    assert fast == billed_before
    [summary] = summaries
    assert ("fatal", 3, fast, 0) == (summary["stopped"], summary["exit_code"], summary["ok"], summary["errors"])
    assert expected_in_message[0] in summary["fatal_error"]
    assert TEST_KEY not in json.dumps(summary)
    # The documents the fatal error kept from being sent are done by the next run, once each.
    assert 0 == rerun.exit_code, rerun.output
    assert DOCUMENTS - fast == billed_by_rerun
    everything = pipeline.load_results(out, latest=False)
    assert _doc_ids(DOCUMENTS) == sorted(everything.doc_id)
    assert {"ok"} == set(everything.status)


def test_a_model_neither_docpipe_nor_the_api_knows_stops_the_run_before_any_message(tmp_path: Path) -> None:
    """A model docpipe's table does not know runs if the API serves it; one the API does not serve either stops
    the run (exit 3) at the first document's GET /v1/models, naming the model, before any Messages request."""
    job = tmp_path / "job.toml"
    job.write_text(TRIAGE.read_text().replace('model = "claude-haiku-5-5"', 'model = "claude-haiku-9-9"'))
    manifest = _manifest(tmp_path / "docs.jsonl", [_text(i) for i in range(20)])
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        result = invoke(["run", str(job), str(manifest), "--out", str(out)], emulator)
        by_endpoint = emulator.control.stats()["requests"]["by_endpoint"]
    assert 3 == result.exit_code, result.output
    assert "docpipe: warning: model 'claude-haiku-9-9' is not in docpipe's model table" in result.stderr
    assert "not found (404)" in result.stderr and "claude-haiku-9-9" in result.stderr
    assert (0, 1) == (by_endpoint.get("messages", 0), by_endpoint.get("models", 0))
    assert [] == list(out.glob("part-*.parquet"))


# -- 3. a second Ctrl-C exits at once, and nothing is corrupt -------------------------------------


def _signal_pending(pid: int, signum: int) -> bool:
    """Whether `signum` is still waiting to be delivered to `pid` (Linux): two pending SIGINTs would merge into one."""
    bit = 1 << (signum - 1)
    status = Path(f"/proc/{pid}/status").read_text()
    masks = [int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("SigPnd:", "ShdPnd:"))]
    return any(mask & bit for mask in masks)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads signal state from /proc")
def test_second_sigint_exits_at_once_and_the_rerun_completes_exactly_once(
    tmp_path: Path, wait_until: Callable[..., Any]
) -> None:
    """Two SIGINTs with requests in flight: exit 130 at once, not after the grace period; nothing torn; rerun clean."""
    fast, documents, concurrency, grace_s, hang_s = 8, 30, 4, 60.0, 60.0
    texts = [_text(i, "" if i < fast else SLOW_MARKER) for i in range(documents)]
    manifest = _manifest(tmp_path / "docs.jsonl", texts)
    out = tmp_path / "out"
    plan = FaultPlan.from_dict({"rules": [{"kind": "hang", "match": SLOW_MARKER, "seconds": hang_s}]}, seed=SEED)
    with Emulator(EmulatorConfig(seed=SEED, faults=plan)) as emulator:
        process = fork_run(
            emulator,
            out,
            "--concurrency",
            str(concurrency),
            input_path=manifest,
            env={"DOCPIPE_GRACE_S": str(grace_s)},
            stderr=subprocess.PIPE,
        )
        try:
            # Ready: the plain documents answered, and every worker holds a request the emulator is sitting on.
            wait_until(
                lambda: message_requests(emulator) == fast and _in_flight(emulator) == concurrency,
                timeout_s=15,
                what=f"{fast} documents done and {concurrency} requests in flight",
            )
            interrupted = time.monotonic()
            process.send_signal(signal.SIGINT)
            wait_until(lambda: not _signal_pending(process.pid, signal.SIGINT), what="the first SIGINT delivered")
            assert process.poll() is None  # the first Ctrl-C waits for the requests in flight
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stopped_s = time.monotonic() - interrupted
        assert 130 == process.returncode, stderr
        assert stopped_s < 10, f"exited {stopped_s:.1f} s after the first SIGINT"
        assert "stopped: interrupted" in stderr
        billed_at_stop = billed(emulator)

        # Nothing torn: every part is a readable Parquet file, no temporary is left, no document is ok twice.
        parts = sorted(out.glob("part-*.parquet"))
        assert parts
        assert fast == sum(pq.read_table(part).num_rows for part in parts)
        assert not list(out.rglob("*.tmp")) and not list((out / "_wal").glob("*.jsonl"))
        stopped = pipeline.load_results(out, latest=False)
        assert _doc_ids(fast) == sorted(stopped.doc_id) and {"ok"} == set(stopped.status)
        assert fast == billed_at_stop  # the abandoned requests were never answered, so never billed

        emulator.control.set_faults([])
        result = invoke(["run", str(TRIAGE), str(manifest), "--out", str(out)], emulator)
        assert 0 == result.exit_code, result.output
        total_billed = billed(emulator)
    frame = pipeline.load_results(out, latest=False)
    ok = frame[frame.status == "ok"]
    assert _doc_ids(documents) == sorted(ok.doc_id)  # each document exactly one ok row
    assert len(frame) == len(ok)
    assert documents == total_billed  # the abandoned requests were never answered, so never billed


def test_an_integer_answer_beyond_64_bits_is_one_error_row_run_after_run(emulator: Emulator, tmp_path: Path) -> None:
    """An answer whose integer no int64 column can hold: a schema_mismatch row, never a crash or a re-paid loop."""
    job = tmp_path / "invoice_total.toml"
    job.write_text(
        '[job]\nname = "invoice_total"\nmodel = "claude-haiku-5-5"\nmax_tokens = 256\nschema_retries = 0\n'
        'instructions = "Extract the invoice total."\n\n[[fields]]\nname = "total"\ntype = "integer"\n'
        'description = "The amount due, in whole units."\n'
    )
    manifest = tmp_path / "m.jsonl"
    amounts = ["99999999999999999999999" if n == 7 else str(100 + n) for n in range(10)]
    manifest.write_text(
        "".join(
            json.dumps({"id": f"inv-{n}", "text": f"Invoice number {chr(65 + n)}. Total due: {a} EUR."}) + "\n"
            for n, a in enumerate(amounts)
        )
    )
    out = tmp_path / "out"
    for _ in range(2):
        result = invoke(["run", str(job), str(manifest), "--out", str(out)], emulator)
        assert 1 == result.exit_code, result.output
        assert "Traceback" not in result.output
    rows = pipeline.load_results(out)
    assert ["inv-7"] == rows[rows.status == "error"].doc_id.tolist()
    [message] = rows[rows.status == "error"].error_message.tolist()
    assert "field 'total' is an integer outside the 64-bit range" in message
    assert 11 == billed(emulator)  # ten documents, and inv-7 once more on the rerun: errors are retried
