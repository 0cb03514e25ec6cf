"""Shared pieces of the benchmarks: an emulator subprocess, synthetic manifests, a docpipe subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TRIAGE_JOB = ROOT / "jobs" / "triage.toml"
API_VERSION = "2026-10-21"  # the `anthropic-version` a bench's own raw HTTP requests send, as the SDK does

PARAGRAPHS = [
    "Invoice {n} from Northwind Logistics to Contoso Retail for freight services in March 2026. "
    "The total due is EUR {amount}.00, payable within 30 days by bank transfer.",
    "Dear support team, our shipment {n} is three days late and the tracking page shows no update. "
    "This is the second late delivery this month and we are very unhappy with the service.",
    "This Master Services Agreement is made between Northwind Logistics Ltd and Brightwater Home Goods. "
    "The agreement renews automatically for successive one-year terms unless terminated.",
    "Quarterly operations report: on-time delivery reached 94.2 percent, warehouse utilisation 81 percent, "
    "and claims fell by 12 percent compared with the previous quarter {n}.",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmulatorProcess:
    """`docpipe emulator` in its own process (its own core), stopped on exit."""

    def __init__(self, *extra_args: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "pipeline", "emulator", "--port", str(self.port), *extra_args]
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> EmulatorProcess:
        self.process = subprocess.Popen(self.args, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.stats()
                return self
            except OSError:
                time.sleep(0.05)
        self.process.kill()
        _, stderr = self.process.communicate()
        raise SystemExit(f"the emulator did not start: {stderr[-1000:]}")

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base_url}/_emulator/stats", timeout=5) as response:
            return dict(json.loads(response.read()))

    def requests(self) -> list[dict[str, Any]]:
        """The emulator's request journal, oldest first."""
        with urllib.request.urlopen(f"{self.base_url}/_emulator/requests", timeout=30) as response:
            return list(json.loads(response.read())["data"])

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # SIGKILL rather than a benchmark that hangs or dies on it
                self.process.kill()
                self.process.wait()


def synthetic_text(index: int, *, paragraphs: int = 3) -> str:
    parts = [PARAGRAPHS[(index + k) % len(PARAGRAPHS)].format(n=index, amount=1000 + index % 9000)
             for k in range(paragraphs)]
    return f"Document {index}.\n\n" + "\n\n".join(parts)


def write_manifest(path: Path, count: int, *, paragraphs: int = 3) -> Path:
    """A JSONL manifest of `count` inline-text documents with two metadata columns."""
    with open(path, "w", encoding="utf-8") as handle:
        for index in range(count):
            row = {"id": f"doc-{index:07d}", "text": synthetic_text(index, paragraphs=paragraphs),
                   "department": ["ops", "finance", "legal", "support"][index % 4], "priority": index % 3 + 1}
            handle.write(json.dumps(row) + "\n")
    return path


def run_docpipe(args: list[str], *, base_url: str, env_extra: dict[str, str] | None = None,
                timeout_s: float = 1800) -> tuple[int, str, float, int]:
    """Run `docpipe` as a subprocess against `base_url`: (exit code, stderr, wall seconds, peak RSS in MB).

    The peak RSS is the child's own (`wait4`), not the benchmark's.
    """
    env = dict(os.environ, ANTHROPIC_API_KEY="sk-bench-key", ANTHROPIC_BASE_URL=base_url,
               DOCPIPE_PROGRESS="off", **(env_extra or {}))
    with tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "pipeline", *args], env=env,
                                   stdout=subprocess.DEVNULL, stderr=err, text=True)
        deadline = started + timeout_s
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                raise SystemExit(f"docpipe {' '.join(args)} took over {timeout_s} s")
            time.sleep(0.02)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return process.returncode, err.read(), wall, int(usage.ru_maxrss / 1024)
