"""The same documents clean and under a standard fault profile: how much slower faults make a run.

Two emulator processes answer every request after `--latency-ms`; the second also applies the
standard fault profile: 10% of requests answered 429 with `retry-after: 2` while their
`anthropic-ratelimit-*` headers show the buckets far from empty (the emulator's buckets are
unlimited here, so the 429s contradict the headers), 5% answered 529, 3% answered 500. `docpipe run`
processes the same synthetic documents with the triage job against each, at the same concurrency.

The figures: each run's wall time as its summary reports it (interpreter start-up not included;
the process's wall time beside it), the fault run's time over the clean run's, the documents ok,
the requests and retries sent, the global pauses and concurrency decreases the run took, and the
retries the emulator saw come back before the `retry-after` their 429 gave them.

Targets: the fault run within 1.3x the clean run, every document ok, 0 retries before their
`retry-after`.

    python bench/faults.py [--documents 1000] [--concurrency 64] [--latency-ms 500] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import TRIAGE_JOB, EmulatorProcess, run_docpipe, write_manifest

FAULT_PROFILE = [
    {"kind": "rate_limit", "probability": 0.10, "retry_after_s": 2},
    {"kind": "overloaded", "probability": 0.05},
    {"kind": "server_error", "probability": 0.03, "statuses": [500]},
]
TARGET_RATIO = 1.3


def measure(mode: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    manifest = workdir / "manifest.jsonl"
    if not manifest.exists():
        write_manifest(manifest, args.documents)
    emulator_args = ["--latency-ms", str(args.latency_ms), "--seed", str(args.seed)]
    if mode == "faults":
        profile = workdir / "faults.json"
        profile.write_text(json.dumps({"seed": args.seed, "rules": FAULT_PROFILE}))
        emulator_args += ["--faults", str(profile)]
    out = workdir / f"out-{mode}"
    with EmulatorProcess(*emulator_args) as emulator:
        code, stderr, process_wall_s, _ = run_docpipe(
            ["run", str(TRIAGE_JOB), str(manifest), "--out", str(out), "--concurrency", str(args.concurrency)],
            base_url=emulator.base_url,
        )
        stats = emulator.stats()
    summaries = list((out / "_runs").glob("*.json"))
    if len(summaries) != 1:
        raise SystemExit(f"docpipe exited {code} without a run summary:\n{stderr[-2000:]}")
    summary = json.loads(summaries[0].read_text())
    by_status = stats["requests"]["by_status"]
    return {
        "run": mode,
        "exit_code": code,
        "run_wall_s": summary["wall_s"],
        "process_wall_s": round(process_wall_s, 2),
        "documents_ok": summary["ok"],
        "documents_error": summary["errors"],
        "requests_sent": summary["requests_sent"],
        "retries": summary["retries"],
        "answered_429": by_status.get("429", 0),
        "answered_529": by_status.get("529", 0),
        "answered_500": by_status.get("500", 0),
        "rate_limit_pauses": summary["rate_limit_pauses"],
        "concurrency_decreases": summary["concurrency_decreases"],
        "early_retries": stats["early_retries"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=500.0)
    parser.add_argument("--seed", type=int, default=7, help="Seed of the emulators and of the fault draws.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clean = measure("clean", args, Path(tmp))
        print(json.dumps(clean), file=sys.stderr)
        faults = measure("faults", args, Path(tmp))
        print(json.dumps(faults), file=sys.stderr)
    ratio = faults["run_wall_s"] / clean["run_wall_s"]
    print(json.dumps({
        "benchmark": "faults",
        "documents": args.documents,
        "concurrency": args.concurrency,
        "latency_ms": args.latency_ms,
        "fault_profile": FAULT_PROFILE,
        "results": [clean, faults],
        "fault_over_clean": round(ratio, 3),
        "fault_over_clean_with_interpreter_start": round(faults["process_wall_s"] / clean["process_wall_s"], 3),
        "target": TARGET_RATIO,
        "meets_target": (
            ratio <= TARGET_RATIO and faults["documents_ok"] == args.documents and faults["early_retries"] == 0
        ),
    }, indent=2))


if __name__ == "__main__":
    main()
