"""--max-cost under schema retries in batches, and price overrides the budget trusts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import pytest
from click.testing import CliRunner
from conftest import SEED, TEST_KEY

import pipeline
from pipeline.budget import Budget
from pipeline.cli import main
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "sample_data" / "manifest.jsonl"
TRIAGE = ROOT / "jobs" / "triage.toml"
# Input at one price (cache writes and reads included), output free: a request's real cost is close to
# its reservation, so a second answer per document shows up as spend past the budget.
FLAT_PRICES = (
    "\n[prices]\ninput_usd = 10\ncache_write_5m_usd = 10\ncache_write_1h_usd = 10\ncache_read_usd = 10\n"
    "output_usd = 0\n"
)


def test_a_batch_schema_retry_is_reserved_for_before_its_follow_up_is_submitted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every first answer fails the schema: each follow-up request is reserved for before it is
    submitted, so two answers per document never run past the budget."""
    job = tmp_path / "flat.toml"
    job.write_text(TRIAGE.read_text() + FLAT_PRICES)
    budget = 0.25  # the 14 worst cases are about $0.215 here: all fit once, not twice
    env = {"DOCPIPE_PROGRESS": "off", "ANTHROPIC_API_KEY": TEST_KEY, "DOCPIPE_BATCH_POLL_S": "0.05"}
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.1)) as emulator:
        emulator.control.set_faults([{"kind": "malformed_output", "endpoints": ["batch_requests"], "times": 14}])
        env["ANTHROPIC_BASE_URL"] = emulator.base_url
        args = ["run", str(job), str(MANIFEST), "--out", str(tmp_path / "out"), "--mode", "batch",
                "--max-cost", str(budget)]
        result = CliRunner().invoke(main, args, env=env)
    frame = pipeline.load_results(tmp_path / "out")
    assert frame.cost_usd.sum() <= budget, (frame.cost_usd.sum(), result.exit_code, result.output)


@pytest.mark.parametrize("price", ["NaN", "-5"])
def test_a_prices_file_cannot_switch_the_budget_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, price: str
) -> None:
    """A NaN price would make every reservation NaN (never over the limit), a negative one room for more:
    such a prices file is refused, naming itself."""
    prices = tmp_path / "prices.json"
    prices.write_text(f'{{"claude-haiku-5-5": {{"output_usd": {price}}}}}')
    monkeypatch.setenv("DOCPIPE_PRICES", str(prices))
    budget = Budget(0.001, "claude-haiku-5-5")
    with pytest.raises(ConfigError, match="prices must be numbers >= 0"):  # the file is refused, naming itself
        budget.reserve(100_000, 64_000)


def test_a_paid_answer_refused_its_schema_retry_is_not_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Realtime: every answer fails the schema and is paid; once a retry does not fit the budget the
    document still gets its row, carrying what its answers cost: what was paid has its row."""
    env = {"DOCPIPE_PROGRESS": "off", "ANTHROPIC_API_KEY": TEST_KEY}
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        emulator.control.set_faults([{"kind": "malformed_output"}])
        env["ANTHROPIC_BASE_URL"] = emulator.base_url
        args = ["run", str(TRIAGE), str(MANIFEST), "--out", str(tmp_path / "out"), "--concurrency", "1",
                "--max-cost", "0.0015"]
        result = CliRunner().invoke(main, args, env=env)
        billed = emulator.control.stats()["messages_billed"]
    assert 6 == result.exit_code, result.output
    try:
        written_attempts = int(pipeline.load_results(tmp_path / "out").attempts.sum())
    except pipeline.errors.ConfigError:  # no rows at all
        written_attempts = 0
    assert billed == written_attempts, (billed, written_attempts, result.output)


def test_follow_ups_of_an_earlier_runs_batch_count_against_this_runs_budget(
    tmp_path: Path, wait_until: Callable[..., Any]
) -> None:
    """Run 1 submits (--no-wait, no budget); every request errors (overloaded). Run 2, --max-cost $0.0001
    (under any one request's worst case), collects them: the follow-up batch is reserved for, so nothing
    is sent past the budget."""
    out = tmp_path / "out"
    env = {"DOCPIPE_PROGRESS": "off", "ANTHROPIC_API_KEY": TEST_KEY, "DOCPIPE_BATCH_POLL_S": "0.05"}
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.1)) as emulator:
        env["ANTHROPIC_BASE_URL"] = emulator.base_url
        base = ["run", str(TRIAGE), str(MANIFEST), "--out", str(out), "--mode", "batch"]
        emulator.control.set_faults([{"kind": "overloaded", "endpoints": ["batch_requests"], "times": 14}])
        assert 0 == CliRunner().invoke(main, [*base, "--no-wait"], env=env).exit_code
        with anthropic.Anthropic(api_key=TEST_KEY, base_url=emulator.base_url, max_retries=0) as client:
            # the batch ends, every request errored (nothing billed)
            wait_until(lambda: all(b.processing_status == "ended" for b in client.messages.batches.list()),
                       what="the first run's batch to end")
        billed_before = emulator.control.stats()["messages_billed"]
        second = CliRunner().invoke(main, [*base, "--max-cost", "0.0001"], env=env)
        billed = emulator.control.stats()["messages_billed"] - billed_before
    frame = pipeline.load_results(out)
    spent = frame.cost_usd.sum()
    assert billed == 0 or spent <= 0.0001, (billed, spent, second.exit_code, second.output)
