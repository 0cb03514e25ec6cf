"""--max-cost: no request starts that could take the run past the budget; the run stops resumable (exit 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import SEED, TEST_KEY

import pipeline
from pipeline.budget import Budget
from pipeline.cli import main
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.errors import EXIT_BUDGET

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "sample_data" / "manifest.jsonl"
TRIAGE = ROOT / "jobs" / "triage.toml"
DOCUMENTS = 14
BUDGET = "0.002"  # a worst case is about $0.0008 a request here: a few requests, not fourteen


def run(out: Path, emulator: Emulator, *extra: str) -> Result:
    env = {
        "DOCPIPE_PROGRESS": "off", "ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": emulator.base_url,
        "DOCPIPE_BATCH_POLL_S": "0.05",
    }
    return CliRunner().invoke(main, ["run", str(TRIAGE), str(MANIFEST), "--out", str(out), *extra], env=env)


@pytest.mark.parametrize("mode", ["realtime", "batch"])
def test_the_budget_stops_the_run_resumable_and_a_higher_one_finishes_it(tmp_path: Path, mode: str) -> None:
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.1)) as emulator:
        stopped = run(out, emulator, "--mode", mode, "--max-cost", BUDGET, "--concurrency", "2")
        billed_first = emulator.control.stats()["messages_billed"]
        finished = run(out, emulator, "--mode", mode, "--max-cost", "1")
        billed = emulator.control.stats()["messages_billed"]
    assert EXIT_BUDGET == stopped.exit_code, stopped.output
    assert "docpipe: stopped: the budget of $0.0020 (--max-cost) is reached" in stopped.output
    saved = sorted((out / "_runs").glob("*.json"), key=lambda path: path.stat().st_mtime_ns)
    summaries = [json.loads(path.read_text()) for path in saved]
    rows = pipeline.load_results(out, latest=False)
    first = rows[rows.run_id == summaries[0]["run_id"]]
    assert 0 < len(first) < DOCUMENTS and first.cost_usd.sum() <= float(BUDGET)
    assert billed_first == len(first)  # what was paid has its row; nothing else was sent
    assert 0 == finished.exit_code, finished.output
    frame = pipeline.load_results(out)
    assert DOCUMENTS == int((frame.status == "ok").sum()) and DOCUMENTS == billed  # each document paid once
    assert ["budget", None] == [summary["stopped"] for summary in summaries]
    assert [EXIT_BUDGET, 0] == [summary["exit_code"] for summary in summaries]


def test_a_reservation_is_the_worst_case_and_settling_frees_it() -> None:
    budget = Budget(0.001, "claude-haiku-5-5")
    worst = budget.worst_case_usd(1000, 1000)
    assert worst == pytest.approx((1000 * 0.20 + 1000 * 0.50) / 1e6)  # 1-hour cache write price, full output
    reserved = budget.reserve(1000, 1000)
    assert reserved == worst and budget.reserve(1000, 1000) is None and budget.refused
    budget.settle(reserved, 0.0001)
    assert budget.spent_usd == pytest.approx(0.0001) and 0 == budget.reserved_usd
    assert budget.reserve(1000, 1000) is not None  # the real cost was lower: room again


def test_the_long_prompt_tier_is_reserved_only_above_its_threshold() -> None:
    budget = Budget(1, "claude-haiku-5-5")
    assert budget.worst_case_usd(200_000, 0) > 2 * budget.worst_case_usd(100_000, 0)


def test_a_batch_reservation_carries_the_discount() -> None:
    assert Budget(1, "claude-haiku-5-5", batch=True).worst_case_usd(1000, 1000) == pytest.approx(
        Budget(1, "claude-haiku-5-5").worst_case_usd(1000, 1000) / 2
    )

