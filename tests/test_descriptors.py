"""File descriptors: the soft limit raised for --concurrency, a clear refusal past the hard limit, the table grown once.

Limits are changed in child processes only, so the test process keeps its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

resource = pytest.importorskip("resource")
ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")


def _python(code: str, *, soft: int, hard: int) -> subprocess.CompletedProcess[str]:
    """Run `code` in a child whose RLIMIT_NOFILE is (soft, hard)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=limit, cwd=ROOT, timeout=60
    )


def test_the_soft_limit_is_raised_to_what_the_run_needs() -> None:
    child = _python(
        "import resource\n"
        "from pipeline.descriptors import descriptors_needed, reserve_descriptors\n"
        "reserve_descriptors(descriptors_needed(520, offline=True))\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])",
        soft=256,
        hard=4096,
    )
    assert 0 == child.returncode, child.stderr
    assert str(2 * 520 + 64) == child.stdout.strip()


def test_a_hard_limit_too_low_refuses_the_run_before_any_request(tmp_path: Path) -> None:
    """Through the CLI: exit 2 with what is needed and what to do, and nothing written."""
    manifest = tmp_path / "docs.jsonl"
    manifest.write_text('{"id": "a", "text": "An invoice for 10 EUR."}\n', encoding="utf-8")
    out = tmp_path / "out"
    env = dict(os.environ, ANTHROPIC_API_KEY="sk-test", ANTHROPIC_BASE_URL="http://127.0.0.1:9")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))

    child = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "jobs/triage.toml", str(manifest), "--out", str(out),
         "--concurrency", "512"],
        capture_output=True, text=True, preexec_fn=limit, cwd=ROOT, env=env, timeout=60,
    )  # fmt: skip
    assert 2 == child.returncode, child.stderr
    assert "584 open files" in child.stderr
    assert "only 300" in child.stderr
    assert "Lower --concurrency" in child.stderr
    assert not out.exists() or not list(out.glob("part-*.parquet"))


def test_the_descriptor_table_is_grown_in_one_step() -> None:
    """After the reservation the kernel's table (FDSize) already holds every descriptor the run needs."""
    child = _python(
        "import threading\n"
        "from pipeline.descriptors import reserve_descriptors\n"
        "def fdsize():\n"
        "    line = next(l for l in open('/proc/self/status') if l.startswith('FDSize:'))\n"
        "    return int(line.split()[1])\n"
        "before = fdsize()\n"
        "reserve_descriptors(1500)\n"
        "for thread in threading.enumerate():\n"
        "    if thread.name == 'docpipe-descriptors':\n"
        "        thread.join()\n"
        "print(before, fdsize())",
        soft=4096,
        hard=4096,
    )
    assert 0 == child.returncode, child.stderr
    before, after = map(int, child.stdout.split())
    assert before < 1500 <= after
