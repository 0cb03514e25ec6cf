"""What prompt caching costs a fanned-out run: cache writes, reads and dollars. Prints JSON.

Runs a job (the triage job over `sample_data/documents` by default) at a given concurrency and
reads back the run's summary (`<out>/_runs/<run_id>.json`), its rows and the emulator's stats:

- with `--latency-ms 0`: `docpipe run ... --offline`, the README's command (an emulator with no
  latency, so every response has started before the next request is admitted);
- otherwise: against `docpipe emulator --latency-ms N` in its own process, so the first
  `concurrency` requests are in flight together, as they are against the real API, and the
  cache entry they all write is readable only once the first of them has started.

    python bench/cache_fanout.py [--concurrency 16] [--latency-ms 800] [--per-token-ms 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from _harness import ROOT, TRIAGE_JOB, EmulatorProcess, run_docpipe

SAMPLE = ROOT / "sample_data" / "documents"


def _run(args: argparse.Namespace, out: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    run_args = ["run", str(args.job), str(args.input), "--out", str(out), "--concurrency", str(args.concurrency)]
    if args.latency_ms == 0:
        code, stderr, _, _ = run_docpipe([*run_args, "--offline"], base_url="")
        stats = None
    else:
        latency = ["--latency-ms", str(args.latency_ms), "--per-token-ms", str(args.per_token_ms)]
        with EmulatorProcess(*latency) as emulator:
            code, stderr, _, _ = run_docpipe(run_args, base_url=emulator.base_url)
            stats = emulator.stats()
    if code != 0:
        raise SystemExit(f"docpipe exited {code}: {stderr[-2000:]}")
    summary = json.loads(next((out / "_runs").glob("*.json")).read_text())
    return summary, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--job", type=Path, default=TRIAGE_JOB)
    parser.add_argument("--input", type=Path, default=SAMPLE)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=800.0)
    parser.add_argument("--per-token-ms", type=float, default=2.0)
    args = parser.parse_args()

    import pipeline

    with tempfile.TemporaryDirectory(prefix="docpipe-cache-fanout-") as tmp:
        out = Path(tmp) / "out"
        summary, stats = _run(args, out)
        rows = pipeline.load_results(out)
        report = {
            "code": str(Path(pipeline.__file__).resolve().parent.parent),
            "concurrency": args.concurrency,
            "latency_ms": args.latency_ms,
            "per_token_ms": args.per_token_ms,
            "documents": summary["documents"],
            "ok": summary["ok"],
            "rows_writing_cache": int((rows.cache_write_tokens > 0).sum()),
            "rows_reading_cache": int((rows.cache_read_tokens > 0).sum()),
            "cache_write_tokens": summary["cache_write_tokens"],
            "cache_read_tokens": summary["cache_read_tokens"],
            "input_tokens": summary["input_tokens"],
            "output_tokens": summary["output_tokens"],
            "cost_usd": round(summary["cost_usd"], 6),
            "emulator_tokens": stats["tokens"] if stats else None,
        }
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
