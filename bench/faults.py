"""The same documents clean and under a standard fault profile: how much slower faults make a run.

Two emulator processes answer every request after `--latency-ms`; the second also applies the
standard fault profile: 10% of requests answered 429 with `retry-after: 2` while their
`anthropic-ratelimit-*` headers show the buckets far from empty (the emulator's buckets are
unlimited here, so the 429s contradict the headers), 5% answered 529, 3% answered 500. `docpipe run`
processes the same synthetic documents with the triage job against each, at the same concurrency.

The figures: each run's wall time as its summary reports it (interpreter start-up and the SDK's import,
at the first request, not included;
the process's wall time beside it), the fault run's time over the clean run's, the documents ok,
the requests and retries sent, the global pauses and concurrency decreases the run took, and the
retries the emulator saw come back before the `retry-after` their 429 gave them.

Targets: the fault run within 1.3x the clean run, every document ok, 0 retries before their
`retry-after`.

The floor. The fault draws are fixed per document and attempt (the emulator draws them from the
request body and how often it has seen it), so each document meets the same chain of answers in
every run: say a 429, then a 529, then a 200. No scheduler that obeys every `retry-after` can finish
a document sooner than its chain allows from its first send, and no scheduler can send the j-th
document sooner than its place allows (`j // concurrency` rounds of `latency`). `floor_s` is the
largest of those sums over the documents, read from the emulator's journal of the fault run, in the
order the documents were first sent; its ratio to the clean run's ideal (`ceil(n / concurrency)`
rounds) says how far any scheduler that keeps the waits this run took could get. The backoffs after
a 529 or 500 are this run's own (random, full jitter), so that floor moves a little between runs;
`floor_without_backoff_s` drops them (every 529 and 500 retried at once) and keeps only what no
scheduler may skip: each 429's `retry-after` and the latency of the answer that succeeds.

Two ratios bound what any client that obeys every `retry-after` could show. `floor_over_clean_ideal`
puts both runs on the same footing (no time of its own per request in either): a client whose own
overhead is the same share of both runs cannot do better. `floor_without_backoff_over_clean` is
kinder: the fault run at its bare floor, with no overhead at all, against this clean run with all of
its own; where even that is over the target, no such client meets it on these draws.
`--seeds 1,2,3` runs several seeds and prints each one's figures and their spread.

    python bench/faults.py [--documents 1000] [--concurrency 64] [--latency-ms 500] [--seed 7 | --seeds 1,2,3]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
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
        journal = emulator.requests() if mode == "faults" else []
    summaries = list((out / "_runs").glob("*.json"))
    if len(summaries) != 1:
        raise SystemExit(f"docpipe exited {code} without a run summary:\n{stderr[-2000:]}")
    summary = json.loads(summaries[0].read_text())
    by_status = stats["requests"]["by_status"]
    floor = {}
    if journal:
        lived, bare = floors_s(journal, args.concurrency, args.latency_ms / 1000.0)
        floor = {"floor_s": round(lived, 3), "floor_without_backoff_s": round(bare, 3)}
    return floor | {
        "run": mode,
        "exit_code": code,
        "run_wall_s": round(summary["wall_s"] - summary.get("transport_open_s", 0.0), 3),
        "transport_open_s": summary.get("transport_open_s", 0.0),
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


def floors_s(journal: list[dict[str, Any]], concurrency: int, latency_s: float) -> tuple[float, float]:
    """The soonest the fault run could end in the order it sent the documents (see the module docstring).

    Two floors: with each document's chain as this run lived it (its backoffs included), and with
    only what no scheduler may skip: each 429's `retry-after` and the latency of the answer that
    succeeded (every 529 and 500 retried at once). A 200 is journaled when its answer leaves,
    `latency_s` after it arrived; an error as it arrives.
    """
    retry_after_s = next(rule["retry_after_s"] for rule in FAULT_PROFILE if rule["kind"] == "rate_limit")
    chains: dict[str, list[float]] = {}  # body -> [first arrival, last answer, 429s]
    for entry in journal:
        if entry.get("endpoint") != "messages" or "body" not in entry:
            continue
        arrived = entry["t"] - (latency_s if entry["status"] == 200 else 0.0)
        done = entry["t"] if entry["status"] == 200 else entry["t"] + latency_s
        chain = chains.setdefault(entry["body"], [arrived, done, 0])
        chain[0], chain[1] = min(chain[0], arrived), max(chain[1], done)
        chain[2] += entry["status"] == 429
    by_first_send = sorted(chains.values())
    lived = max((place // concurrency) * latency_s + (done - arrived)
                for place, (arrived, done, _) in enumerate(by_first_send))
    bare = max((place // concurrency) * latency_s + told_to_wait * retry_after_s + latency_s
               for place, (_, _, told_to_wait) in enumerate(by_first_send))
    return lived, bare


def one_seed(args: argparse.Namespace) -> dict[str, Any]:
    """The clean run and the fault run of `args.seed`, and how they compare."""
    with tempfile.TemporaryDirectory() as tmp:
        clean = measure("clean", args, Path(tmp))
        print(json.dumps(clean), file=sys.stderr)
        faults = measure("faults", args, Path(tmp))
        print(json.dumps(faults), file=sys.stderr)
    ratio = faults["run_wall_s"] / clean["run_wall_s"]
    clean_ideal_s = math.ceil(args.documents / args.concurrency) * args.latency_ms / 1000.0
    return {
        "benchmark": "faults",
        "seed": args.seed,
        "documents": args.documents,
        "concurrency": args.concurrency,
        "latency_ms": args.latency_ms,
        "fault_profile": FAULT_PROFILE,
        "results": [clean, faults],
        "fault_over_clean": round(ratio, 3),
        "fault_over_clean_with_interpreter_start": round(faults["process_wall_s"] / clean["process_wall_s"], 3),
        "clean_ideal_s": clean_ideal_s,
        "floor_over_clean_ideal": round(faults["floor_s"] / clean_ideal_s, 3),
        "floor_without_backoff_over_clean_ideal": round(faults["floor_without_backoff_s"] / clean_ideal_s, 3),
        # the fault run at its bare floor, no overhead of its own, against this clean run (a bound, kind to the client)
        "floor_without_backoff_over_clean": round(faults["floor_without_backoff_s"] / clean["run_wall_s"], 3),
        "fault_over_floor": round(faults["run_wall_s"] / faults["floor_s"], 3),
        "target": TARGET_RATIO,
        "meets_target": (
            ratio <= TARGET_RATIO and faults["documents_ok"] == args.documents and faults["early_retries"] == 0
        ),
    }


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=500.0)
    parser.add_argument("--seed", type=int, default=7, help="Seed of the emulators and of the fault draws.")
    parser.add_argument("--seeds", help="Several seeds, comma-separated: one line of figures each, then their spread.")
    args = parser.parse_args()
    if not args.seeds:
        print(json.dumps(one_seed(args), indent=2))
        return
    keys = ("fault_over_clean", "floor_without_backoff_over_clean", "floor_over_clean_ideal", "fault_over_floor")
    lines = []
    for seed in (int(part) for part in args.seeds.split(",")):
        figures = one_seed(argparse.Namespace(**{**vars(args), "seed": seed}))
        faults = figures["results"][1]
        lines.append({"seed": seed, **{key: figures[key] for key in keys},
                      "documents_ok": faults["documents_ok"], "early_retries": faults["early_retries"],
                      "meets_target": figures["meets_target"]})
    print(json.dumps({
        "benchmark": "faults",
        "documents": args.documents,
        "concurrency": args.concurrency,
        "latency_ms": args.latency_ms,
        "target": TARGET_RATIO,
        "by_seed": lines,
        "spread": {key: _spread([line[key] for line in lines]) for key in keys},
        "seeds_meeting_target": sum(line["meets_target"] for line in lines),
        "seeds_whose_floor_allows_target": sum(
            line["floor_without_backoff_over_clean"] <= TARGET_RATIO for line in lines
        ),
    }, indent=2))


if __name__ == "__main__":
    main()
