"""Progress on resume: documents done by earlier runs are not progress, so they never skew the ETA."""

from __future__ import annotations

import io
from pathlib import Path

from test_cli_run import TRIAGE, invoke

from pipeline.emulator import Emulator
from pipeline.progress import LogProgress, Tally, TqdmProgress


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_log_eta_counts_only_this_runs_documents() -> None:
    """80 of 100 done before, 10 done in 10 s by this run: 10 left at 1 per second is 10 s, not 1 s."""
    clock = _Clock()
    stream = io.StringIO()
    progress = LogProgress(100, every_s=5.0, stream=stream, clock=clock)
    clock.now += 10.0
    progress.update(Tally(done=90, ok=10, skipped=80))
    assert "docpipe: progress 90/100 docs" in stream.getvalue()
    assert stream.getvalue().rstrip().endswith("elapsed=10s eta=10s")


def test_log_gives_no_eta_before_this_run_has_done_anything() -> None:
    """Only documents done before: no rate yet, so no ETA rather than a made-up one."""
    clock = _Clock()
    stream = io.StringIO()
    progress = LogProgress(100, every_s=5.0, stream=stream, clock=clock)
    clock.now += 6.0
    progress.update(Tally(done=80, skipped=80))
    assert "eta=" not in stream.getvalue()


def test_bar_counts_this_runs_documents_out_of_what_is_left() -> None:
    """The bar's count and total leave out documents done before; they are shown as done_before."""
    stream = io.StringIO()
    progress = TqdmProgress(100, stream=stream)
    progress.update(Tally(done=85, ok=5, skipped=80))
    assert (5, 20) == (progress._bar.n, progress._bar.total)
    progress.close(Tally(done=100, ok=20, skipped=80))
    assert "20/20" in stream.getvalue() and "done_before=80" in stream.getvalue()


def test_an_unknown_price_shows_as_unknown_never_as_free() -> None:
    """Rows of a model priced nowhere: "$?" when nothing is priced, the known part and "+?" when some are."""
    stream = io.StringIO()
    progress = LogProgress(10, stream=stream, clock=_Clock())
    progress.close(Tally(done=3, ok=3, tokens=900, unpriced=3))
    progress.close(Tally(done=5, ok=5, tokens=1500, cost_usd=0.0123, unpriced=3))
    progress.close(Tally(done=5, ok=5, tokens=1500, cost_usd=0.0123))
    first, mixed, priced = stream.getvalue().splitlines()
    assert " $?" in first and "$0.0000" not in first
    assert " $0.0123+? " in mixed and " $0.0123 " in priced


def test_progress_total_honours_include_and_exclude(emulator: Emulator, tmp_path: Path) -> None:
    """The total is what the globs select: 3 of a folder's 5 documents, not 5."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("a1.txt", "a2.txt", "a3.txt", "b1.txt", "b2.txt"):
        (inbox / name).write_text(f"Invoice {name}: 120 EUR for pallets, due in 30 days.")
    args = ["run", str(TRIAGE), str(inbox), "--out", str(tmp_path / "out"), "--include", "a*", "--progress", "log"]
    result = invoke(args, emulator)
    assert 0 == result.exit_code, result.output
    assert "docpipe: progress 3/3 docs" in result.output
