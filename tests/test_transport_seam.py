"""The run through its seams: a transport, a clock and a progress display handed in, nothing patched.

The transport here is a script: it answers each document's requests in the order the test wrote,
with the errors docpipe's real transport raises. The clock's sleep records every wait and returns
at once, so a 30 s retry-after costs nothing and is still checked.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.clock import Clock
from pipeline.config import resolve_config
from pipeline.errors import EXIT_DOCUMENT_ERRORS, RequestError, TransientError
from pipeline.jobs import load_job
from pipeline.progress import NullProgress
from pipeline.results import load_results
from pipeline.runner import run
from pipeline.transport import ApiResponse, Transport, TransportOptions

JOB = """
[job]
name = "seam"
model = "claude-haiku-5-5"
max_tokens = 256
instructions = "Label the document."

[[fields]]
name = "label"
type = "enum"
description = "What the document is."
values = { invoice = "A bill.", letter = "Anything else." }
"""


def _message(label: str) -> dict[str, Any]:
    return {
        "id": "msg_seam",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-5-5",
        "content": [{"type": "text", "text": json.dumps({"label": label})}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 100, "output_tokens": 10},
    }


Outcome = dict[str, Any] | BaseException


class ScriptedTransport:
    """Answers each document's attempts from a script keyed by document id."""

    def __init__(self, script: dict[str, list[Outcome]], options: TransportOptions) -> None:
        self.script = script
        self.options = options
        self.calls: dict[str, int] = defaultdict(int)
        self.closed = False

    @property
    def base_url(self) -> str:
        return "scripted://"

    async def create(
        self,
        params: dict[str, Any],
        *,
        stream: bool,
        timeout_s: float,
        document_id: str | None = None,
        on_started: Callable[[], None] | None = None,
    ) -> ApiResponse:
        assert document_id is not None
        assert document_id in params["messages"][0]["content"][-1]["text"]  # the request is this document's
        outcomes = self.script[document_id]
        outcome = outcomes[min(self.calls[document_id], len(outcomes) - 1)]
        self.calls[document_id] += 1
        await asyncio.sleep(0)
        if isinstance(outcome, BaseException):
            raise outcome
        if on_started is not None:
            on_started()
        return ApiResponse(outcome, f"req_{document_id}_{self.calls[document_id]}", stream)

    async def aclose(self) -> None:
        self.closed = True


class RecordingClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)

    def clock(self) -> Clock:
        return Clock(monotonic=self.monotonic, wall=lambda: datetime(2026, 12, 2, tzinfo=UTC), sleep=self.sleep)


def _factory(
    script: dict[str, list[Outcome]], opened: list[ScriptedTransport]
) -> Callable[[TransportOptions], Transport]:
    def open_transport(options: TransportOptions) -> Transport:
        transport = ScriptedTransport(script, options)
        opened.append(transport)
        return transport

    return open_transport


def test_a_run_sends_through_the_transport_it_is_given_and_waits_on_the_clock_it_is_given(tmp_path: Path) -> None:
    job_file = tmp_path / "seam.toml"
    job_file.write_text(JOB, encoding="utf-8")
    manifest = tmp_path / "m.jsonl"
    rows = [{"id": f"d{index}", "text": f"document number {index}"} for index in range(4)]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    limited = TransientError("429 rate_limit_error", error_type="rate_limit_error", status=429, retry_after_s=30.0)
    script: dict[str, list[Outcome]] = {
        "d0": [_message("invoice")],
        "d1": [limited, _message("letter")],
        "d2": [RequestError("400 invalid_request_error: too odd", error_type="invalid_request_error")],
        "d3": [_message("letter")],
    }
    config = resolve_config(
        load_job(job_file), manifest, tmp_path / "out", concurrency=2, env={"ANTHROPIC_API_KEY": "unused"}
    )
    opened: list[ScriptedTransport] = []
    fake = RecordingClock()

    started = time.monotonic()
    summary = run(config, transport=_factory(script, opened), progress=NullProgress(), clock=fake.clock())
    elapsed_s = time.monotonic() - started

    assert len(opened) == 1 and opened[0].closed
    assert opened[0].options.max_connections >= 2
    assert dict(opened[0].calls) == {"d0": 1, "d1": 2, "d2": 1, "d3": 1}
    assert 30.0 in fake.waits  # the retry-after was waited out on the given clock ...
    assert elapsed_s < 20  # ... not on the real one
    assert (summary.ok, summary.errors, summary.retries, summary.exit_code) == (3, 1, 1, EXIT_DOCUMENT_ERRORS)
    assert summary.started_at == "2026-12-02T00:00:00+00:00"
    results = load_results(tmp_path / "out").set_index("doc_id")
    assert results.loc["d0", "label"] == "invoice" and results.loc["d1", "label"] == "letter"
    assert results.loc["d1", "attempts"] == 2 and results.loc["d1", "request_id"] == "req_d1_2"
    assert results.loc["d2", "status"] == "error" and results.loc["d2", "error_type"] == "invalid_request_error"
    assert (results["input_tokens"].fillna(0).sum(), summary.input_tokens) == (300, 300)


@pytest.mark.parametrize("offline", [True, False])
def test_the_configuration_names_its_transport(tmp_path: Path, offline: bool) -> None:
    from pipeline.transport import transport_for

    job_file = tmp_path / "seam.toml"
    job_file.write_text(JOB, encoding="utf-8")
    (tmp_path / "m.jsonl").write_text('{"id": "a", "text": "t"}\n', encoding="utf-8")
    config = resolve_config(
        load_job(job_file), tmp_path / "m.jsonl", tmp_path / "out", offline=offline, env={"ANTHROPIC_API_KEY": "k"}
    )
    factory = transport_for(config)
    assert ("offline" in factory.__qualname__) == offline


def test_an_overlapping_run_leaves_with_75_before_it_imports_the_sdk_or_pyarrow(tmp_path: Path) -> None:
    """The lock comes first: a run that finds the directory locked has paid for no heavy import.

    A fresh interpreter is the point here (what a cron re-fire pays), so this runs as a subprocess.
    """
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    script = f"""
import sys
from pathlib import Path
from pipeline.lock import OutputLock
out = Path({str(tmp_path / "out")!r})
out.mkdir()
lock = OutputLock(out, run_id="holder").acquire()
from pipeline.cli import main
try:
    main(["run", {str(root / "jobs" / "triage.toml")!r}, {str(root / "sample_data" / "manifest.jsonl")!r},
          "--out", str(out)], standalone_mode=False)
    code = 0
except SystemExit as exc:
    code = exc.code
heavy = ("anthropic", "pyarrow", "pandas", "aiohttp", "httpx2", "tqdm", "pipeline.emulator")
heavy = [m for m in heavy if m in sys.modules]
print(code, heavy)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "ANTHROPIC_API_KEY": "k", "DOCPIPE_PROGRESS": "off"},
    )
    assert done.stdout.strip() == "75 []", done.stderr
    assert "in use by another docpipe run" in done.stderr


def test_a_run_with_nothing_to_send_never_opens_its_transport(tmp_path: Path) -> None:
    """A rerun over documents all done opens no connection (and so imports no SDK)."""
    job_file = tmp_path / "seam.toml"
    job_file.write_text(JOB, encoding="utf-8")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"id": "d0", "text": "document number 0"}\n', encoding="utf-8")
    config = resolve_config(load_job(job_file), manifest, tmp_path / "out", env={"ANTHROPIC_API_KEY": "unused"})
    first: list[ScriptedTransport] = []
    assert run(config, transport=_factory({"d0": [_message("invoice")]}, first), progress=NullProgress()).ok == 1
    again: list[ScriptedTransport] = []
    summary = run(config, transport=_factory({}, again), progress=NullProgress())
    assert (summary.already_done, summary.requests_sent, again) == (1, 0, [])
    assert len(first) == 1 and first[0].closed


class SmallWindowTransport(ScriptedTransport):
    """A transport whose model reports a context window smaller than the model table's."""

    window = 0

    async def model_limits(self, model: str) -> tuple[int, int | None]:
        return self.window, None


def test_a_context_window_smaller_than_the_job_assumed_cuts_documents_to_it(tmp_path: Path) -> None:
    """GET /v1/models says less than the table: documents are fitted to what the window leaves; the summary says so."""
    from pipeline.context_fit import SMALLEST_CONTEXT_TOKENS
    from pipeline.plans import Planner

    job_file = tmp_path / "seam.toml"
    job_file.write_text(JOB, encoding="utf-8")
    job = load_job(job_file)
    SmallWindowTransport.window = job.max_tokens + Planner(job).prefix_estimate + 100  # 100 tokens for a document
    manifest = tmp_path / "m.jsonl"
    # Only a request that could be over the smallest window any model has asks the API for the window.
    long_text = "long " + "pallet audit entry " * (SMALLEST_CONTEXT_TOKENS // 5 + 1000)
    rows = [{"id": "long", "text": long_text}, {"id": "short", "text": "short note"}]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    sent: list[str] = []

    def open_transport(options: TransportOptions) -> Transport:
        transport = SmallWindowTransport({"long": [_message("letter")], "short": [_message("letter")]}, options)
        original = transport.create

        async def create(params: dict[str, Any], **kwargs: Any) -> ApiResponse:
            sent.append(params["messages"][0]["content"][-1]["text"])
            return await original(params, **kwargs)

        transport.create = create  # type: ignore[method-assign]
        return transport

    config = resolve_config(job, manifest, tmp_path / "out", concurrency=1, env={"ANTHROPIC_API_KEY": "unused"})
    summary = run(config, transport=open_transport, progress=NullProgress(), clock=RecordingClock().clock())
    results = load_results(tmp_path / "out").set_index("doc_id")
    assert [True, False] == results.loc[["long", "short"], "truncated"].tolist()
    assert summary.budget_note is not None and "documents were cut to 100 tokens" in summary.budget_note
    long_sent = next(text for text in sent if 'id="long"' in text)
    assert len(long_sent) < 100 * 4 + 200  # the document cut to the window's room, with its fence
