"""Steady-state throughput against the API's rate limits, and the share of requests answered 429.

For each of the three limits (requests, input tokens, output tokens per minute) an emulator process
enforces that limit alone, tight enough to bind, and answers after a fixed latency. Three clients
process the same synthetic documents with the triage job at the same concurrency:

- `configured`: `docpipe run` with the limit given on the command line (`--rpm/--itpm/--otpm`);
- `learned`: `docpipe run` with no limit given: it must learn it from the response headers;
- `baseline`: what one would write by hand: `asyncio.gather` over the documents, an
  `asyncio.Semaphore` for concurrency, the official SDK with its retries off, and tenacity retrying
  429, 5xx and connection errors with jittered exponential backoff.

The emulator's journal gives every answered request (status, completion time, tokens). Buckets start
full, so the first minute's allowance goes out in a burst; the steady state is measured from 5 s
after the cumulative use first reached one minute's allowance until fewer than `concurrency`
documents are left unanswered (the tail, where no client can fill the limit). The figures: use of
the binding limit per minute in that window as a fraction of the limit; the run's time from its
first request to its last answer against the ideal (the first minute's allowance at once, the rest
at the limit's rate); and the share of all Messages requests of the run answered 429, with how
many requests came before the `retry-after` their key had been given.

Targets (issue 4): >= 0.95 of the limit and <= 0.5% of requests answered 429, configured and learned.

    python bench/ratelimit.py [--documents 2100] [--concurrency 64] [--latency-ms 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import anthropic
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import TRIAGE_JOB, EmulatorProcess, run_docpipe, synthetic_text, write_manifest

from pipeline.jobs import load_job
from pipeline.requests import build_params

# Each limit is set to about 20 requests a second for the synthetic documents (~149 uncached input
# tokens and ~236 output tokens each), far below what the concurrency and latency could send.
CASES: tuple[tuple[str, str, int], ...] = (
    ("requests", "--rpm", 1_200),
    ("input-tokens", "--itpm", 180_000),
    ("output-tokens", "--otpm", 285_000),
)
JOURNAL_FIELD = {"requests": None, "input-tokens": "input_tokens", "output-tokens": "output_tokens"}
SETTLE_S = 5.0
TARGET_FRACTION = 0.95
TARGET_429_SHARE = 0.005
BASELINE_KEY = "sk-bench-baseline"


def journal(emulator: EmulatorProcess) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{emulator.base_url}/_emulator/requests", timeout=30) as response:
        entries: list[dict[str, Any]] = json.loads(response.read())["data"]
    return [entry for entry in entries if entry.get("endpoint") == "messages"]


def steady_state(entries: list[dict[str, Any]], binding: str, limit: int, concurrency: int) -> dict[str, Any]:
    """Use of the binding limit per minute, after the first minute's allowance is spent.

    The window opens SETTLE_S after the cumulative use first reaches one minute's allowance, and
    closes when fewer than `concurrency` documents are left unanswered: past that point a client
    cannot fill the limit whatever it does (the tail), so every client is measured on the same terms.
    """
    field = JOURNAL_FIELD[binding]
    answered = sorted((e for e in entries if e["status"] == 200), key=lambda e: e["t"])
    use = [1 if field is None else int(e[field]) for e in answered]
    start = None
    cumulative = 0
    for entry, amount in zip(answered, use, strict=True):
        cumulative += amount
        if cumulative >= limit:
            start = entry["t"] + SETTLE_S
            break
    end = answered[-concurrency]["t"] if len(answered) > concurrency else 0.0
    if start is None or end - start < 10:
        raise SystemExit(f"{binding}: no steady state to measure; give more --documents")
    in_window = sum(amount for entry, amount in zip(answered, use, strict=True) if start < entry["t"] <= end)
    per_minute = in_window * 60.0 / (end - start)
    total = sum(use)
    run_s = answered[-1]["t"] - min(e["t"] for e in entries) if answered else 0.0
    ideal_s = max(0.0, total - limit) * 60.0 / limit  # the first minute's allowance at once, then the refill rate
    statuses = [e["status"] for e in entries]
    limited = statuses.count(429)
    return {
        "steady_window_s": round(end - start, 1),
        "steady_use_per_minute": round(per_minute),
        "fraction_of_limit": round(per_minute / limit, 3),
        "run_s": round(run_s, 1),
        "ideal_run_s": round(ideal_s, 1),
        "requests": len(statuses),
        "answered_ok": statuses.count(200),
        "answered_429": limited,
        "share_429": round(limited / len(statuses), 4) if statuses else 0.0,
        "retries_before_retry_after": sum(1 for e in entries if e.get("early")),
    }


async def baseline_client(base_url: str, documents: int, concurrency: int) -> int:
    """The hand-written client: gather + semaphore + tenacity. Returns the documents that failed."""
    job = load_job(TRIAGE_JOB)
    failed = 0
    semaphore = asyncio.Semaphore(concurrency)
    async with anthropic.AsyncAnthropic(api_key=BASELINE_KEY, base_url=base_url, max_retries=0) as client:

        async def one(index: int) -> None:
            nonlocal failed
            params = build_params(job, f"doc-{index:07d}", synthetic_text(index))
            async with semaphore:
                try:
                    async for attempt in AsyncRetrying(
                        retry=retry_if_exception_type(
                            (anthropic.RateLimitError, anthropic.InternalServerError, anthropic.APIConnectionError)
                        ),
                        wait=wait_random_exponential(multiplier=0.5, max=30),
                        stop=stop_after_attempt(10),
                        reraise=True,
                    ):
                        with attempt:
                            await client.messages.create(**params)
                except anthropic.APIError:
                    failed += 1

        await asyncio.gather(*(one(index) for index in range(documents)))
    return failed


def measure(binding: str, flag: str, limit: int, mode: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    manifest = workdir / "manifest.jsonl"
    if not manifest.exists():
        write_manifest(manifest, args.documents)
    out = workdir / f"out-{binding}-{mode}"
    with EmulatorProcess("--latency-ms", str(args.latency_ms), flag, str(limit)) as emulator:
        started = time.perf_counter()
        if mode == "baseline":
            failed = asyncio.run(baseline_client(emulator.base_url, args.documents, args.concurrency))
            code = 0 if failed == 0 else 1
        else:
            command = ["run", str(TRIAGE_JOB), str(manifest), "--out", str(out), "--concurrency", str(args.concurrency)]
            if mode == "configured":
                command += [flag, str(limit)]
            code, stderr, _, _ = run_docpipe(command, base_url=emulator.base_url)
            if code != 0:
                raise SystemExit(f"docpipe exited {code}:\n{stderr[-2000:]}")
            failed = 0
        wall_s = time.perf_counter() - started
        figures = steady_state(journal(emulator), binding, limit, args.concurrency)
    figures = {"binding": binding, "limit_per_minute": limit, "client": mode, "exit_code": code,
               "documents_failed": failed, "wall_s": round(wall_s, 1), **figures}
    if mode != "baseline":
        figures["meets_target"] = (
            figures["fraction_of_limit"] >= TARGET_FRACTION and figures["share_429"] <= TARGET_429_SHARE
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=2100)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--binding", choices=[case[0] for case in CASES], action="append",
                        help="Only this limit (repeatable; default: all three).")
    parser.add_argument("--client", choices=["configured", "learned", "baseline"], action="append",
                        help="Only this client (repeatable; default: all three).")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for binding, flag, limit in CASES:
            if args.binding and binding not in args.binding:
                continue
            for mode in args.client or ["configured", "learned", "baseline"]:
                results.append(measure(binding, flag, limit, mode, args, Path(tmp)))
                print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps({
        "benchmark": "ratelimit",
        "documents": args.documents,
        "concurrency": args.concurrency,
        "latency_ms": args.latency_ms,
        "targets": {"fraction_of_limit": TARGET_FRACTION, "share_429": TARGET_429_SHARE},
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
