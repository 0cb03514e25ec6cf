"""Chaos: a run SIGKILLed at 20 random moments in a row, then finished. Nothing lost, nothing paid twice.

After every kill the output directory must be readable by pandas and DuckDB as it is, and at the end
every document has exactly one ok row, with at most the requests in flight at each kill paid again.

Two kills in four land once answers are coming, in a process forked from an interpreter that has
imported docpipe already (`ForkedRun`): a fresh interpreter's start-up would otherwise be most of the
test's time. The other two land in a fresh interpreter, where its start-up is in play: at a random
moment from its birth, and from the moment it holds the lock.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
from pathlib import Path

import duckdb
import pandas as pd
from conftest import SEED
from test_cli_run import TRIAGE, _wait_for, billed, fork_run, invoke, spawn_run

import pipeline
from pipeline.emulator import Emulator, EmulatorConfig, LatencyModel

KILLS = 20
DOCUMENTS = 600
CONCURRENCY = 8


def _manifest(tmp_path: Path) -> Path:
    manifest = tmp_path / "manifest.jsonl"
    with manifest.open("w") as handle:
        for n in range(DOCUMENTS):
            text = f"Invoice NWL-{n:04d} from Ridgeline Pallet Co.: {100 + n} EUR for pallets, due in 30 days."
            handle.write(json.dumps({"id": f"doc-{n:04d}", "text": text, "batch": n % 7}) + "\n")
    return manifest


def _holds_the_lock(out: Path, process: subprocess.Popen[str]) -> bool:
    """Whether this process holds the output directory's lock (its first act, before the SDK is imported)."""
    if process.poll() is not None:
        return True
    try:
        return bool(json.loads((out / ".lock").read_text())["pid"] == process.pid)
    except (FileNotFoundError, ValueError, KeyError):
        return False


def _readable_everywhere(out: Path) -> int:
    """The ok rows as pandas and DuckDB both read the directory right now (no duplicate ok row)."""
    parts = sorted(out.glob("part-*.parquet"))
    if not parts:
        return 0
    frame = pd.read_parquet(out)
    ok = frame[frame.status == "ok"]
    assert not ok.doc_id.duplicated().any()
    counted = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{out}/*.parquet', union_by_name = true) WHERE status = 'ok'"
    ).fetchall()
    assert [(len(ok),)] == counted
    return len(ok)


def test_twenty_kills_at_random_moments_lose_nothing_and_pay_at_most_what_was_in_flight(tmp_path: Path) -> None:
    """SIGKILL 20 times at seeded random moments; after each the output reads; at the end every document ok once."""
    manifest = _manifest(tmp_path)
    out = tmp_path / "out"
    moments = random.Random(SEED)
    ok_seen = 0
    killed_while_sending = kills_landed = 0
    with Emulator(EmulatorConfig(seed=SEED, latency=LatencyModel(ttft_ms=200))) as emulator:
        for kill in range(KILLS):
            paid_before = billed(emulator)
            arguments = (emulator, out, "--concurrency", str(CONCURRENCY))
            if kill % 4 in (2, 3):  # two kills in four: a random moment once answers are coming (or the end)
                process = fork_run(*arguments, input_path=manifest)
                _wait_for(
                    lambda process=process, paid=paid_before: process.poll() is not None or billed(emulator) > paid,
                    timeout_s=30,
                )
            else:  # a fresh interpreter, its start-up in play
                process = spawn_run(*arguments, input_path=manifest)
                if kill % 4 == 1:  # a random moment from the lock on: start-up after it, recovery, the first requests
                    _wait_for(lambda process=process: _holds_the_lock(out, process), timeout_s=30)
            try:  # the fourth: a random moment from the process's birth, start-up included
                process.wait(timeout=moments.uniform(0.0, 2.0))
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)
                kills_landed += process.returncode == -signal.SIGKILL
                killed_while_sending += billed(emulator) > paid_before
            ok_now = _readable_everywhere(out)
            assert ok_now >= ok_seen  # an answer once published is never lost
            ok_seen = ok_now
        result = invoke(["run", str(TRIAGE), str(manifest), "--out", str(out)], emulator)
        assert 0 == result.exit_code, result.output
        re_paid = billed(emulator) - DOCUMENTS
    print(json.dumps({"kills": KILLS, "killed_while_sending": killed_while_sending, "re_paid": re_paid}))
    frame = pipeline.load_results(out, latest=False)
    ok = frame[frame.status == "ok"]
    assert [f"doc-{n:04d}" for n in range(DOCUMENTS)] == sorted(ok.doc_id)
    assert not ok.doc_id.duplicated().any()
    assert KILLS == kills_landed  # no run ended on its own before its kill: the corpus outlasts the 20 kills
    assert re_paid <= KILLS * CONCURRENCY
    assert killed_while_sending >= KILLS // 4  # not a test of start-up alone: kills landed amid requests
    assert _readable_everywhere(out) == DOCUMENTS
