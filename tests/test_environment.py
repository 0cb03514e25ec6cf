"""Failures of the environment, end to end: a full disk, a read-only or non-writable output directory,
an input that becomes unreadable mid-run, and signals during start-up. Each ends with exit 4 (130 for
a signal), one line naming the path, the cause and what to do, and nothing already done lost."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SEED, TEST_KEY
from test_cli_run import SAMPLE, TRIAGE, _wait_for, billed, fork_run, invoke, sample_files, spawn_run

import pipeline
from pipeline.emulator import Emulator, EmulatorConfig, LatencyModel


def _mount(args: list[str]) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a size-limited file system here: {done.stderr.strip()}")


@pytest.fixture
def small_disk() -> Iterator[Callable[..., Path]]:
    """`small_disk(path, size, read_only=False)`: a tmpfs of that size mounted at `path` (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited file system needs root")
    mounted: list[Path] = []

    def mount(path: Path, size: str, *, read_only: bool = False) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        _mount(["-t", "tmpfs", "-o", f"size={size}{',ro' if read_only else ''}", "tmpfs", str(path)])
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def _remount(path: Path, options: str) -> None:
    _mount(["-o", f"remount,{options}", str(path)])


def _last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def test_a_full_disk_stops_the_run_with_exit_4_and_the_rerun_completes(
    tmp_path: Path, small_disk: Callable[..., Path]
) -> None:
    """Out of space mid-run: exit 4 and one line saying so; with space freed, the rerun ends every document ok once."""
    out = small_disk(tmp_path / "out", "48k")
    concurrency = 4
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        process = fork_run(emulator, out, "--concurrency", str(concurrency), stderr=subprocess.PIPE)
        _, stderr = process.communicate(timeout=60)
        assert 4 == process.returncode, stderr
        assert "Traceback" not in stderr
        last = _last_line(stderr)
        assert last.startswith(f"docpipe: error: cannot record a finished row in {out}"), last
        assert "No space left on device; free space on its disk, then rerun" in last
        paid_before = billed(emulator)
        assert 0 < paid_before < len(sample_files())
        _remount(out, "size=20m")
        result = invoke(["run", str(TRIAGE), str(SAMPLE), "--out", str(out)], emulator)
        assert 0 == result.exit_code, result.output
        paid = billed(emulator)
    frame = pipeline.load_results(out, latest=False)
    ok = frame[frame.status == "ok"]
    assert sample_files() == sorted(ok.doc_id)
    assert not ok.doc_id.duplicated().any()
    re_paid = paid - ok.request_count.sum()  # a document's requests: one, or its pieces and their combination
    assert re_paid <= concurrency  # at most what was in flight when the disk filled


def test_a_read_only_output_directory_is_exit_4_and_sends_nothing(
    tmp_path: Path, small_disk: Callable[..., Path]
) -> None:
    """An output directory whose file system went read-only: exit 4 before any request, the old results intact."""
    out = small_disk(tmp_path / "out", "10m")
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        assert 0 == invoke(["run", str(TRIAGE), str(SAMPLE / "invoices"), "--out", str(out)], emulator).exit_code
        before = pipeline.load_results(out, latest=False)
        paid = billed(emulator)
        _remount(out, "ro")
        result = invoke(["run", str(TRIAGE), str(SAMPLE), "--out", str(out)], emulator)
        assert paid == billed(emulator)
    assert 4 == result.exit_code, result.output
    assert "Read-only file system; its file system is read-only: remount it read-write, or give another --out" in (
        result.output
    )
    assert str(out) in result.output and "Traceback" not in result.output
    assert before.equals(pipeline.load_results(out, latest=False))


def test_an_output_directory_this_user_may_not_write_is_exit_4(tmp_path: Path) -> None:
    """A directory the run may not write (root without its override of file modes): exit 4, the path, what to do."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and util-linux's setpriv to run without the power to ignore file modes")
    out = tmp_path / "out"
    out.mkdir(mode=0o555)
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        env = dict(os.environ, ANTHROPIC_API_KEY=TEST_KEY, ANTHROPIC_BASE_URL=emulator.base_url)
        command = [sys.executable, "-m", "pipeline", "run", str(TRIAGE), str(SAMPLE / "invoices"), "--out", str(out)]
        done = subprocess.run(
            [setpriv, "--bounding-set=-dac_override,-dac_read_search", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert 0 == billed(emulator)
    assert 4 == done.returncode, done.stderr
    last = _last_line(done.stderr)
    assert "Permission denied; this user may not write there: fix its permissions, or give another --out" in last
    assert str(out) in last and "Traceback" not in done.stderr
    assert [] == list(out.iterdir())


def _parquet_manifest_corrupt_after_first_row_group(tmp_path: Path, rows_per_group: int) -> Path:
    texts = [f"Invoice {n}: 1,200 EUR for pallets, due in 30 days. Payment reference NWL-{n:04d}." for n in range(15)]
    table = pa.table({"id": [f"inv-{n}" for n in range(15)], "text": texts})
    manifest = tmp_path / "manifest.parquet"
    pq.write_table(table, manifest, row_group_size=rows_per_group, compression="zstd")
    second = pq.ParquetFile(manifest).metadata.row_group(1)
    start = min(second.column(i).data_page_offset for i in range(second.num_columns))
    data = bytearray(manifest.read_bytes())
    for offset in range(start, start + second.total_byte_size):
        data[offset] ^= 0x5A
    manifest.write_bytes(bytes(data))
    return manifest


def test_an_input_unreadable_mid_run_is_exit_4_with_the_summary_saved(tmp_path: Path) -> None:
    """A Parquet manifest corrupt after its first row group: the rows before it are done, then exit 4, summary saved."""
    manifest = _parquet_manifest_corrupt_after_first_row_group(tmp_path, rows_per_group=5)
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        result = invoke(["run", str(TRIAGE), str(manifest), "--out", str(out), "--concurrency", "2"], emulator)
    assert 4 == result.exit_code, result.output
    last = _last_line(result.output)
    assert last.startswith(f"docpipe: error: {manifest}: cannot read the Parquet file after row 5"), last
    assert "the input became unreadable after 5 document(s): repair or replace it, then rerun" in last
    assert "Traceback" not in result.output
    assert [f"inv-{n}" for n in range(5)] == sorted(pipeline.load_results(out).doc_id)
    summary = json.loads(next((out / "_runs").glob("*.json")).read_text())
    assert ("environment", 4, 5) == (summary["stopped"], summary["exit_code"], summary["ok"])
    assert last.removeprefix("docpipe: error: ") == summary["fatal_error"]


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (bit 15 of SigCgt in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True  # already gone: communicate() will tell
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) >> (signal.SIGTERM - 1) & 1)


def test_an_interrupt_inside_exec_code_still_exits_130(tmp_path: Path) -> None:
    """Ctrl-C landing in code built by `exec` (a dataclass's `__init__` being made while a module
    imports) is handled like any other: exit 130 and one line, not death by SIGINT on the way out."""
    script = tmp_path / "interrupted_in_exec.py"
    script.write_text(
        "from pipeline import cli\n"
        "def interrupted(**_):\n"
        "    exec('raise KeyboardInterrupt')\n"
        "cli.main.main = interrupted\n"
        "cli.entry()\n"
    )
    # as `python -m`, like `python -m pipeline`: the interpreter's own exit path, not the file runner's
    done = subprocess.run(
        [sys.executable, "-m", script.stem], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert (130, "docpipe: interrupted; finished rows are kept, rerun to resume\n") == (done.returncode, done.stderr)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the signal mask from /proc")
def test_a_signal_at_any_moment_of_start_up_exits_130_without_a_traceback(tmp_path: Path) -> None:
    """SIGINT or SIGTERM from the CLI's first instruction on: exit 130 and one line, then the rerun completes."""
    out = tmp_path / "out"
    moments = random.Random(SEED)
    landed_before_the_run = 0
    with Emulator(EmulatorConfig(seed=SEED, latency=LatencyModel(ttft_ms=300))) as emulator:
        for attempt in range(6):
            process = spawn_run(emulator, out, "--concurrency", "2", stderr=subprocess.PIPE)
            _wait_for(lambda process=process: _catches_sigterm(process.pid), timeout_s=20)
            delay_s = 0.0 if attempt == 0 else moments.uniform(0.0, 1.5)
            if delay_s:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=delay_s)  # a random moment of start-up (or of the run)
            process.send_signal(signal.SIGINT if attempt % 2 else signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
            assert 130 == process.returncode, (delay_s, stderr)
            assert "Traceback" not in stderr, stderr
            landed_before_the_run += "docpipe: run " not in stderr
        assert landed_before_the_run >= 1  # the first signal, sent as soon as docpipe's handler is in place
        result = invoke(["run", str(TRIAGE), str(SAMPLE), "--out", str(out)], emulator)
        assert 0 == result.exit_code, result.output
    frame = pipeline.load_results(out, latest=False)
    ok = frame[frame.status == "ok"]
    assert sample_files() == sorted(ok.doc_id)
    assert not ok.doc_id.duplicated().any()
