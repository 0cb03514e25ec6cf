"""Dollars per 1,000 documents of the sample job, four ways, from the rows' own cost; and the estimate's error.

Each way runs `docpipe run` over the same N synthetic documents against its own emulator process
(a cold prompt cache, latency L), at --concurrency C:

1. realtime, no caching          (`cache_ttl = "off"`)
2. realtime, caching             (`cache_warmup = false`: a cold fan-out pays a write per request)
3. realtime, caching and warm-up (the default)
4. batch, caching                (`--mode batch`: the batch discount, the prefix cached for 1 h)

Before each run `docpipe estimate --json` projects it (count_tokens against the same emulator,
answer lengths assumed, as for a first run); the figure is the estimate over the rows' summed cost.
Targets (issue 12): batch with caching at most 0.45 of realtime without caching; every estimate
within 15% of its run.

    python bench/cost.py [--documents 500] [--concurrency 16] [--latency-ms 200]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import TRIAGE_JOB, EmulatorProcess, run_docpipe, write_manifest

import pipeline

TARGET_BATCH_SHARE = 0.45
TARGET_ESTIMATE_ERROR = 0.15
WAYS = (
    ("realtime_no_cache", 'cache_ttl = "off"\n', ()),
    ("realtime_cache", "cache_warmup = false\n", ()),
    ("realtime_cache_warmup", "", ()),
    ("batch_cache", "", ("--mode", "batch")),
)


def _estimate(job: Path, manifest: Path, out: Path, concurrency: str, base_url: str) -> dict[str, object]:
    """`docpipe estimate --json` against the emulator (its stdout is the estimate)."""
    env = dict(os.environ, ANTHROPIC_API_KEY="sk-bench-key", ANTHROPIC_BASE_URL=base_url, DOCPIPE_PROGRESS="off")
    argv = [sys.executable, "-m", "pipeline", "estimate", str(job), str(manifest), "--out", str(out), "--json",
            "--concurrency", concurrency]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"docpipe estimate exited {done.returncode}:\n{done.stderr[-2000:]}")
    return dict(json.loads(done.stdout))


def measure(name: str, job_lines: str, flags: tuple[str, ...], args: argparse.Namespace, workdir: Path,
            manifest: Path) -> dict[str, object]:
    job = workdir / f"{name}.toml"
    job.write_text(TRIAGE_JOB.read_text().replace("[job]\n", f"[job]\n{job_lines}", 1))
    out = workdir / f"out-{name}"
    mode = "batch" if "batch" in flags else "realtime"
    with EmulatorProcess("--latency-ms", str(args.latency_ms), "--batch-seconds", "1") as emulator:
        estimate = _estimate(job, manifest, out, str(args.concurrency), emulator.base_url)
        code, stderr, wall_s, _ = run_docpipe(
            ["run", str(job), str(manifest), "--out", str(out), "--concurrency", str(args.concurrency), *flags],
            base_url=emulator.base_url,
            env_extra={"DOCPIPE_BATCH_POLL_S": "0.5"},
        )
        if code != 0:
            raise SystemExit(f"docpipe run ({name}) exited {code}:\n{stderr[-2000:]}")
    rows = pipeline.load_results(out)
    spent = float(rows.cost_usd.sum())
    projected = next(p for p in estimate["projections"] if p["mode"] == mode)  # type: ignore[attr-defined]
    return {
        "way": name,
        "documents": len(rows),
        "usd_per_1000_documents": round(spent / len(rows) * 1000, 4),
        "spent_usd": round(spent, 6),
        "estimated_usd": projected["expected_usd"],
        "estimate_error": round(projected["expected_usd"] / spent - 1, 3),
        "cache_write_tokens": int(rows.cache_write_tokens.sum()),
        "cache_read_tokens": int(rows.cache_read_tokens.sum()),
        "output_tokens": int(rows.output_tokens.sum()),
        "wall_s": round(wall_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        manifest = write_manifest(workdir / "manifest.jsonl", args.documents)
        results = [measure(name, lines, flags, args, workdir, manifest) for name, lines, flags in WAYS]
    by_way = {str(r["way"]): r for r in results}
    batch_share = float(by_way["batch_cache"]["spent_usd"]) / float(by_way["realtime_no_cache"]["spent_usd"])
    worst_error = max(abs(float(r["estimate_error"])) for r in results)
    print(json.dumps({
        "benchmark": "cost",
        "documents": args.documents,
        "concurrency": args.concurrency,
        "results": results,
        "batch_cache_share_of_realtime_no_cache": round(batch_share, 3),
        "worst_estimate_error": round(worst_error, 3),
        "targets": {"batch_cache_share": TARGET_BATCH_SHARE, "estimate_error": TARGET_ESTIMATE_ERROR},
        "meets_targets": batch_share <= TARGET_BATCH_SHARE and worst_error <= TARGET_ESTIMATE_ERROR,
    }, indent=2))


if __name__ == "__main__":
    main()
