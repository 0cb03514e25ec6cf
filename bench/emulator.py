"""How fast is the emulator? Prints JSON.

The emulator runs as its own process (`docpipe emulator`, one event loop, so one core); a load
generator in this process drives it over loopback with aiohttp:

- `concurrent_connections`: that many requests held open at once (the emulator is given a
  latency so they overlap), all of which must succeed;
- `requests_per_s`: non-streaming `POST /v1/messages` requests answered per second at zero
  latency with a small body (a ~2 KB document and a three-field structured-output schema);
- `realistic_*`: the requests docpipe itself sends for the triage job (`jobs/triage.toml`: its
  system prompt, its seven-field schema) over distinct ~300-word documents, built by docpipe's own
  planner. `realistic_cpu_ms_per_request` is the emulator process's CPU time (user + system, from
  /proc) over the requests it answered, so `realistic_requests_per_core_s` does not depend on what
  else the machine runs; `realistic_requests_per_s` is wall-clock and does.

Targets: at least 1,000 concurrent connections, 1,500 small requests/s, and 1,000 realistic
requests/s on one core (`realistic_requests_per_core_s`).

    python bench/emulator.py [--requests 20000] [--connections 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import API_VERSION, TRIAGE_JOB, synthetic_text

from pipeline.jobs import load_job
from pipeline.payloads import TextPayload
from pipeline.plans import Planner

DOCUMENT = (
    "Invoice INV-2026-0142 from Northwind Logistics to Contoso Retail, dated 12 March 2026. "
    "Freight charges for 14 pallets shipped from Rotterdam to Leeds, total due EUR 4,250.00 within 30 days. "
) * 10
SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["invoice", "contract", "complaint", "other"],
                  "description": "- invoice: a bill\n- contract: an agreement\n- complaint: an unhappy customer"},
        "summary": {"type": "string", "description": "At most 30 words."},
        "confidence": {"type": "number"},
    },
    "required": ["label", "summary", "confidence"],
    "additionalProperties": False,
}
HEADERS = {"authorization": "Bearer sk-bench", "anthropic-version": API_VERSION, "content-type": "application/json"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_emulator(port: int, latency_ms: float) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "emulator", "--port", str(port), "--latency-ms", str(latency_ms)],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/stats", timeout=1).read()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("emulator did not start")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the emulator has not left within 10 s: a benchmark never hangs on it."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _body(index: int) -> bytes:
    return json.dumps({
        "model": "claude-haiku-5-5",
        "max_tokens": 300,
        "system": [{"type": "text", "text": "Classify the document."}],
        "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
        "messages": [{"role": "user", "content": f"Document {index}.\n{DOCUMENT}"}],
    }).encode()


def realistic_bodies(total: int, *, offset: int = 0) -> list[bytes]:
    """docpipe's own request bodies for the triage job over distinct ~300-word documents."""
    planner = Planner(load_job(TRIAGE_JOB))
    bodies = []
    for index in range(offset, offset + total):
        (spec,) = planner.plan(f"doc-{index:07d}", TextPayload(synthetic_text(index, paragraphs=9)))
        bodies.append(json.dumps(spec.params).encode())
    return bodies


def _cpu_s(pid: int) -> float:
    """User plus system CPU seconds of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _drive(url: str, total: int, concurrency: int, bodies: list[bytes] | None = None) -> tuple[int, float]:
    bodies = bodies if bodies is not None else [_body(i) for i in range(total)]
    ok = 0
    next_index = 0
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def worker() -> None:
            nonlocal ok, next_index
            while next_index < total:
                body = bodies[next_index]
                next_index += 1
                async with session.post(url, data=body, headers=HEADERS) as response:
                    await response.read()
                    ok += response.status == 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--realistic", type=int, default=5000, help="realistic requests to send")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))

    port = _free_port()
    emulator = _start_emulator(port, latency_ms=0)
    try:
        url = f"http://127.0.0.1:{port}/v1/messages"
        asyncio.run(_drive(url, 2000, args.concurrency))  # warm-up
        ok, elapsed = asyncio.run(_drive(url, args.requests, args.concurrency))
        asyncio.run(_drive(url, 500, args.concurrency, realistic_bodies(500, offset=10**6)))  # warm-up
        bodies = realistic_bodies(args.realistic)
        cpu_before = _cpu_s(emulator.pid)
        real_ok, real_elapsed = asyncio.run(_drive(url, len(bodies), args.concurrency, bodies))
        real_cpu_s = _cpu_s(emulator.pid) - cpu_before
    finally:
        _stop(emulator)

    port = _free_port()
    emulator = _start_emulator(port, latency_ms=1500)
    try:
        url = f"http://127.0.0.1:{port}/v1/messages"
        held_ok, held_elapsed = asyncio.run(_drive(url, args.connections, args.connections))
    finally:
        _stop(emulator)

    print(json.dumps({
        "benchmark": "emulator",
        "cpu_count": os.cpu_count(),
        "requests": args.requests,
        "requests_ok": ok,
        "requests_per_s": round(ok / elapsed, 1),
        "client_concurrency": args.concurrency,
        "concurrent_connections": args.connections,
        "concurrent_connections_ok": held_ok,
        "concurrent_wall_s": round(held_elapsed, 2),
        "realistic_requests": len(bodies),
        "realistic_requests_ok": real_ok,
        "realistic_body_bytes": round(sum(map(len, bodies)) / len(bodies)),
        "realistic_requests_per_s": round(real_ok / real_elapsed, 1),
        "realistic_cpu_ms_per_request": round(1000 * real_cpu_s / real_ok, 3),
        "realistic_requests_per_core_s": round(real_ok / real_cpu_s, 1),
        "targets": {"requests_per_s": 1500, "concurrent_connections": 1000, "realistic_requests_per_core_s": 1000},
        "meets_targets": ok / elapsed >= 1500
        and held_ok == args.connections
        and held_elapsed < 3.0
        and real_ok == len(bodies)
        and real_ok / real_cpu_s >= 1000,
    }, indent=2))


if __name__ == "__main__":
    main()
