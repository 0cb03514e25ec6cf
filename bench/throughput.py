"""Documents per second against emulator latency L and concurrency C, as a fraction of the ideal C/L.

For each (C, L, N): an emulator process answers every request after L seconds (time to first token,
no per-token time), `docpipe run` processes N synthetic documents with `--concurrency C`, and the
figure is (N / the run's wall time, as its run summary reports it: ledger, start-up of the worker
pool and the tail included, interpreter start-up and the SDK's import at the first request not)
/ (C / L). The figure with interpreter start-up included is printed beside it. N/C rounds of L
seconds bound the figure below 1.0.

Targets (issue 3): >= 0.95 at C=128, L=1 s, 2,000 documents; >= 0.90 at C=512, L=2 s. They are
the executor's: the job runs with `cache_warmup = false`. With the warm-up (the default), the first
request goes alone and the fan-out starts when its response begins, one time to first token (here L)
a run: `fraction_of_ideal_with_warmup` shows what that costs on a run this short.

Each case also runs a bare SDK client against the same emulator, requests and latency: C tasks,
each sending its next request as soon as its last answer came, through `AsyncAnthropic` on the
SDK's aiohttp transport with retries off, the raw body decoded as JSON; nothing recorded, no
preparation, timed in this process from its first request to its last answer. No client of the
SDK does less, so its figure (`bare_sdk_fraction`) is about the best this machine allows one on the
day: on two cores, with the emulator on one, the client's core is spent mostly inside the SDK at
C=512, and the figure moves with the host's speed. `fraction_of_bare_sdk` is docpipe's over it.

    python bench/throughput.py [--documents 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import TRIAGE_JOB, EmulatorProcess, run_docpipe, synthetic_text, write_manifest

CASES = ((128, 1.0, 0.95), (512, 2.0, 0.90))


def _run_wall_s(job: Path, concurrency: int, latency_s: float, manifest: Path, out: Path) -> tuple[float, float]:
    """(the run's wall time without opening the transport, the process's wall time)."""
    with EmulatorProcess("--latency-ms", str(latency_s * 1000)) as emulator:
        code, stderr, wall_s, _ = run_docpipe(
            ["run", str(job), str(manifest), "--out", str(out), "--concurrency", str(concurrency)],
            base_url=emulator.base_url,
        )
    if code != 0:
        raise SystemExit(f"docpipe exited {code}:\n{stderr[-2000:]}")
    summary = json.loads(next((out / "_runs").glob("*.json")).read_text())
    return summary["wall_s"] - summary.get("transport_open_s", 0.0), wall_s


async def _bare_sdk_s(base_url: str, concurrency: int, documents: int) -> float:
    """Seconds from the first request to the last answer of the bare SDK client (see above)."""
    import anthropic
    import httpx2

    from pipeline.jobs import load_job
    from pipeline.requests import build_params

    job = load_job(TRIAGE_JOB)
    requests = iter([build_params(job, f"doc-{index:07d}", synthetic_text(index)) for index in range(documents)])
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    http = anthropic.DefaultAioHttpClient(limits=limits)
    async with anthropic.AsyncAnthropic(api_key="sk-bench-key", base_url=base_url, max_retries=0,
                                        http_client=http) as client:

        async def sender() -> None:
            for params in requests:
                raw = await client.messages.with_raw_response.create(**params)
                json.loads(await raw.read())

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return time.perf_counter() - started


def bare_sdk_fraction(concurrency: int, latency_s: float, documents: int) -> float:
    with EmulatorProcess("--latency-ms", str(latency_s * 1000)) as emulator:
        wall_s = asyncio.run(_bare_sdk_s(emulator.base_url, concurrency, documents))
        billed = emulator.stats()["messages_billed"]
    if billed != documents:
        raise SystemExit(f"the bare SDK client got {billed} of {documents} answers")
    return documents / wall_s / (concurrency / latency_s)


def measure(concurrency: int, latency_s: float, documents: int, workdir: Path) -> dict[str, object]:
    manifest = write_manifest(workdir / f"manifest-{concurrency}.jsonl", documents)
    no_warmup = workdir / "triage-no-warmup.toml"
    no_warmup.write_text(TRIAGE_JOB.read_text().replace("[job]\n", "[job]\ncache_warmup = false\n", 1))
    with_warmup_s, _ = _run_wall_s(TRIAGE_JOB, concurrency, latency_s, manifest, workdir / f"warm-{concurrency}")
    out = workdir / f"out-{concurrency}"
    with EmulatorProcess("--latency-ms", str(latency_s * 1000)) as emulator:
        code, stderr, wall_s, _ = run_docpipe(
            ["run", str(no_warmup), str(manifest), "--out", str(out), "--concurrency", str(concurrency)],
            base_url=emulator.base_url,
        )
        billed = emulator.stats()["messages_billed"]
    if code != 0:
        raise SystemExit(f"docpipe exited {code}:\n{stderr[-2000:]}")
    summary = json.loads(next((out / "_runs").glob("*.json")).read_text())
    ideal = concurrency / latency_s
    run_wall_s = summary["wall_s"] - summary.get("transport_open_s", 0.0)  # the SDK's import left out, as before
    rate = documents / run_wall_s
    bare = bare_sdk_fraction(concurrency, latency_s, documents)
    return {
        "concurrency": concurrency,
        "latency_s": latency_s,
        "documents": documents,
        "messages_billed": billed,
        "process_wall_s": round(wall_s, 2),
        "run_wall_s": round(run_wall_s, 3),
        "transport_open_s": summary.get("transport_open_s", 0.0),
        "docs_per_s": round(rate, 1),
        "ideal_docs_per_s": ideal,
        "fraction_of_ideal": round(rate / ideal, 3),
        "bare_sdk_fraction": round(bare, 3),
        "fraction_of_bare_sdk": round(rate / ideal / bare, 3),
        "fraction_of_ideal_with_interpreter_start": round(documents / wall_s / ideal, 3),
        "fraction_of_ideal_with_warmup": round(documents / with_warmup_s / ideal, 3),
        "latency_p50_ms": summary["latency_p50_ms"],
        "latency_p95_ms": summary["latency_p95_ms"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=2000)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for concurrency, latency_s, target in CASES:
            figure = measure(concurrency, latency_s, args.documents, Path(tmp))
            figure["target"] = target
            figure["meets_target"] = figure["fraction_of_ideal"] >= target  # type: ignore[operator]
            results.append(figure)
    print(json.dumps({"benchmark": "throughput", "results": results}, indent=2))


if __name__ == "__main__":
    main()
