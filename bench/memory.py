"""Memory over a huge manifest, and the start of a rerun over a million finished documents. Prints JSON.

1. `peak_rss_mb`: `docpipe run --limit 20000` over a 1,000,000-row JSONL manifest (inline text),
   against a zero-latency emulator process; the peak RSS of the docpipe process (`wait4`).
   Target: under 300 MB.
2. `rerun_s`, `rerun_peak_rss_mb`: the done state of all 1,000,000 documents is written through
   docpipe's own `ResultWriter` (same text hashes, same job fingerprint), then `docpipe run` over
   the same manifest is timed end to end, and its peak RSS taken: it must find every document done
   and send nothing. Targets: under 5 s, under 400 MB.

    python bench/memory.py [--rows 1000000] [--limit 20000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import TRIAGE_JOB, EmulatorProcess, run_docpipe, synthetic_text, write_manifest

from pipeline.jobs import load_job
from pipeline.output import output_schema
from pipeline.sources import manifest_metadata_columns
from pipeline.writer import ResultWriter

TARGETS = {"peak_rss_mb": 300, "rerun_s": 5, "rerun_peak_rss_mb": 400}


def prepare_done_state(manifest: Path, out: Path, rows: int) -> None:
    """Write an ok row for every manifest document, through docpipe's own writer."""
    job = load_job(TRIAGE_JOB)
    schema = output_schema(job, manifest_metadata_columns(manifest))
    writer = ResultWriter(out, schema, "prepared", flush_rows=100_000)
    now = datetime.now(UTC)
    for index in range(rows):
        text = synthetic_text(index)
        writer.add({
            "doc_id": f"doc-{index:07d}", "source": f"{manifest.name}:{index + 1}",
            "doc_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "department": ["ops", "finance", "legal", "support"][index % 4], "priority": index % 3 + 1,
            "category": "report", "summary": "prepared", "confidence": 0.9, "key_points": [],
            "needs_action": False, "status": "ok", "job": job.name, "job_fingerprint": job.fingerprint,
            "run_id": "prepared", "backend": "emulator", "created_at": now, "attempts": 1,
        })
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--limit", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        manifest = write_manifest(workdir / "manifest.jsonl", args.rows)
        manifest_mb = manifest.stat().st_size / 1e6
        generate_s = time.perf_counter() - started
        with EmulatorProcess() as emulator:
            code, stderr, limited_s, peak_mb = run_docpipe(
                ["run", str(TRIAGE_JOB), str(manifest), "--out", str(workdir / "out"), "--limit", str(args.limit),
                 "--concurrency", "64"],
                base_url=emulator.base_url,
            )
            if code != 0:
                raise SystemExit(f"docpipe exited {code}:\n{stderr[-2000:]}")
            billed = emulator.stats()["messages_billed"]

            done = workdir / "done"
            prepare_done_state(manifest, done, args.rows)
            before = emulator.stats()["requests"]["total"]
            code, stderr, rerun_s, rerun_peak_mb = run_docpipe(
                ["run", str(TRIAGE_JOB), str(manifest), "--out", str(done)], base_url=emulator.base_url
            )
            sent = emulator.stats()["requests"]["total"] - before
        if code != 0:
            raise SystemExit(f"rerun exited {code}:\n{stderr[-2000:]}")
    print(json.dumps({
        "benchmark": "memory",
        "manifest_rows": args.rows,
        "manifest_mb": round(manifest_mb, 1),
        "manifest_generate_s": round(generate_s, 1),
        "limited_run_documents": args.limit,
        "limited_run_messages_billed": billed,
        "limited_run_s": round(limited_s, 1),
        "peak_rss_mb": peak_mb,
        "rerun_documents_done": args.rows,
        "rerun_requests_sent": sent,
        "rerun_s": round(rerun_s, 2),
        "rerun_peak_rss_mb": rerun_peak_mb,
        "targets": TARGETS,
        "meets_targets": (
            peak_mb < TARGETS["peak_rss_mb"]
            and rerun_s < TARGETS["rerun_s"]
            and rerun_peak_mb < TARGETS["rerun_peak_rss_mb"]
            and sent == 0
        ),
    }, indent=2))


if __name__ == "__main__":
    main()
