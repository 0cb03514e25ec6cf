"""One rate limit shared by 4 Ray actors, against 4 senders each limited on its own and Ray's own HTTP stage.

An emulator process enforces an RPM (and answers after a fixed latency); the same N synthetic
documents are sent three ways, from a fresh emulator each:

- `shared`: `docpipe run --engine ray --actors 4 --rpm R`: the actors lease the organisation's
  buckets from one limiter actor and a 429 pauses them all (docs/ray.md);
- `per_sender`: 4 `docpipe run` processes at once, a quarter of the documents each, each told
  `--rpm R`: what a limit kept per actor amounts to (Ray's HTTP request stage keeps a `qps` per
  actor). Each is docpipe's single-machine limiter, so it still obeys `retry-after` and reads the
  headers' `remaining`, which Ray's stage does not: the figure is a floor on what per-actor limits
  cost;
- `ray_http_stage`: Ray Data LLM's own HTTP request stage (`ray.data.llm.HttpRequestProcessorConfig`)
  sending the same request bodies (docpipe's plan of each document) with 4 actors, `qps` a quarter of
  the RPM each, and retries (`--ray-max-retries`, backoff 1 s doubling) that never read `retry-after`.
  A request still refused after its retries raises and ends the whole dataset; the figure says so.

Reported from the emulator's journal: requests sent, the share answered 429, requests sent before
the `retry-after` they were given, and the time from the first request to the last against the
ideal (a minute's worth at once, as the buckets start full, then the rest at R per minute); the
process's wall time beside it (the Ray run's includes starting its cluster); and the requests
answered with any other error status, so that "no document lost" is checked, not assumed.

    python bench/ray_ratelimit.py [--documents 1600] [--rpm 1200] [--latency-ms 200]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import API_VERSION, TRIAGE_JOB, EmulatorProcess, write_manifest

from pipeline.jobs import load_job
from pipeline.payloads import TextPayload
from pipeline.plans import Planner
from pipeline.ray_engine import ACTOR_CPUS

SENDERS = 4


def _docpipe(args: list[str], base_url: str, stderr: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, ANTHROPIC_API_KEY="sk-bench-key", ANTHROPIC_BASE_URL=base_url, DOCPIPE_PROGRESS="off")
    with open(stderr, "wb") as err:
        return subprocess.Popen([sys.executable, "-m", "pipeline", *args], env=env, stdout=subprocess.DEVNULL,
                                stderr=err)


def _figures(emulator: EmulatorProcess, documents: int, rpm: int, wall_s: float) -> dict[str, object]:
    stats = emulator.stats()
    entries = [entry for entry in emulator.requests() if entry["endpoint"] == "messages"]
    sent = len(entries)
    limited = sum(1 for entry in entries if entry["status"] == 429)
    other_errors = sum(1 for entry in entries if entry["status"] >= 400 and entry["status"] != 429)
    times = [entry["t"] for entry in entries]
    ideal_s = max(0, documents - rpm) / (rpm / 60)
    return {
        "requests_sent": sent,
        "answered_429": limited,
        "share_429": round(limited / sent, 4) if sent else None,
        "answered_other_errors": other_errors,
        "early_retries": stats["early_retries"],
        "messages_billed": stats["messages_billed"],
        "wall_s": round(wall_s, 1),  # the process's: the Ray run's includes starting its cluster and actors
        "first_to_last_request_s": round(max(times) - min(times), 1),
        "ideal_s_after_the_first_minutes_burst": round(ideal_s, 1),
    }


def shared(
    manifest: Path, documents: int, rpm: int, latency_ms: float, concurrency: int, workdir: Path
) -> dict[str, object]:
    with EmulatorProcess("--latency-ms", str(latency_ms), "--rpm", str(rpm)) as emulator:
        started = time.perf_counter()
        process = _docpipe(
            ["run", str(TRIAGE_JOB), str(manifest), "--out", str(workdir / "shared"), "--engine", "ray",
             "--actors", str(SENDERS), "--concurrency", str(concurrency), "--rpm", str(rpm)],
            emulator.base_url, workdir / "shared.err",
        )
        code = process.wait()
        wall_s = time.perf_counter() - started
        if code != 0:
            raise SystemExit(f"docpipe --engine ray exited {code}:\n{(workdir / 'shared.err').read_text()[-3000:]}")
        return {"client": "shared: --engine ray, 4 actors, one limiter"} | _figures(emulator, documents, rpm, wall_s)


def per_sender(
    manifest: Path, documents: int, rpm: int, latency_ms: float, concurrency: int, workdir: Path
) -> dict[str, object]:
    lines = manifest.read_text().splitlines(keepends=True)
    parts = []
    for index in range(SENDERS):
        part = workdir / f"part-{index}.jsonl"
        part.write_text("".join(lines[index::SENDERS]))
        parts.append(part)
    with EmulatorProcess("--latency-ms", str(latency_ms), "--rpm", str(rpm)) as emulator:
        started = time.perf_counter()
        processes = [
            _docpipe(
                ["run", str(TRIAGE_JOB), str(part), "--out", str(workdir / f"out-{index}"),
                 "--concurrency", str(concurrency), "--rpm", str(rpm)],
                emulator.base_url, workdir / f"part-{index}.err",
            )
            for index, part in enumerate(parts)
        ]
        codes = [process.wait() for process in processes]
        wall_s = time.perf_counter() - started
        if any(code not in (0, 1) for code in codes):  # 1: finished with documents in error, a figure of its own
            raise SystemExit(f"a sender exited {codes}:\n{(workdir / 'part-0.err').read_text()[-3000:]}")
        errors: dict[str, int] = {}
        for index in range(SENDERS):
            summary = json.loads(next((workdir / f"out-{index}" / "_runs").glob("*.json")).read_text())
            for kind, count in summary["errors_by_type"].items():
                errors[kind] = errors.get(kind, 0) + count
        return {"client": "per_sender: 4 processes, each limited to the whole RPM",
                "documents_in_error": errors} | _figures(emulator, documents, rpm, wall_s)


def ray_http_stage(manifest: Path, documents: int, rpm: int, latency_ms: float, max_retries: int) -> dict[str, object]:
    """The same documents through Ray's HttpRequestProcessorConfig against the same emulator."""
    import ray
    from ray.data.llm import HttpRequestProcessorConfig, build_processor

    planner = Planner(load_job(TRIAGE_JOB))
    payloads = []
    for line in manifest.read_text().splitlines():
        row = json.loads(line)
        (spec,) = planner.plan(row["id"], TextPayload(row["text"]))
        payloads.append({"id": row["id"], "payload": spec.params})
    with EmulatorProcess("--latency-ms", str(latency_ms), "--rpm", str(rpm)) as emulator:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            config = HttpRequestProcessorConfig(
                url=f"{emulator.base_url}/v1/messages",
                headers={"Authorization": "Bearer sk-bench-key", "anthropic-version": API_VERSION},
                # (n, n): a fixed pool of n actors from the start; an int n is an autoscaling pool from 1
                qps=max(1, rpm // 60 // SENDERS), concurrency=(SENDERS, SENDERS), batch_size=16,
                max_retries=max_retries, base_retry_wait_time_in_s=1,
                http_request_stage={"num_cpus": ACTOR_CPUS},  # as docpipe's API actors: 4 fit on 2 cores
            )
            processor = build_processor(config)
            started = time.perf_counter()
            failure = None
            try:
                answered = processor(ray.data.from_items(payloads)).count()
            except Exception as exc:  # what Ray does with a request refused after its retries: the dataset ends
                answered, failure = None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            wall_s = time.perf_counter() - started
        finally:
            ray.shutdown()
        return {"client": f"ray_http_stage: Ray Data LLM's HTTP stage, {SENDERS} actors, qps {config.qps} each",
                "rows_out": answered, "dataset_failed": failure} | _figures(emulator, documents, rpm, wall_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=1600)
    parser.add_argument("--rpm", type=int, default=1200)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--ray-max-retries", type=int, default=8, help="retries of Ray's HTTP stage per request")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        manifest = write_manifest(workdir / "manifest.jsonl", args.documents)
        options = (manifest, args.documents, args.rpm, args.latency_ms, args.concurrency, workdir)
        results = [shared(*options), per_sender(*options),
                   ray_http_stage(manifest, args.documents, args.rpm, args.latency_ms, args.ray_max_retries)]
    print(json.dumps({
        "benchmark": "ray_ratelimit",
        "documents": args.documents,
        "rpm": args.rpm,
        "latency_ms": args.latency_ms,
        "concurrency_per_sender": args.concurrency,
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
