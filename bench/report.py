"""`docpipe report` over a large output: wall time, peak memory and the page's size.

A real offline run of the sample job gives one part; its rows are replicated under new document ids
(every field kept, created_at shifted) into an output of N rows, and `docpipe report` runs over it
in a fresh process, timed, with its peak RSS read from the kernel. The page's charts hold binned
counts, so its size should not grow with N; its tables are bounded (`--review`, `--errors`).

    python bench/report.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import TRIAGE_JOB

ROOT = Path(__file__).resolve().parent.parent


def _docpipe(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], env=env, capture_output=True, text=True,
                          timeout=1800, check=False)


def _build(out: Path, rows: int, env: dict[str, str]) -> None:
    """A real offline run over the sample corpus, its part then replicated to `rows` rows in one more part."""
    done = _docpipe("run", str(TRIAGE_JOB), str(ROOT / "sample_data" / "documents"), "--out", str(out), "--offline",
                    env=env)
    if done.returncode != 0:
        raise SystemExit(f"the sample run failed: {done.stderr[-1000:]}")
    [part] = sorted(out.glob("part-*.parquet"))
    seed = pq.read_table(part)
    copies = -(-rows // seed.num_rows)
    tables = []
    for copy in range(copies):
        ids = pc.binary_join_element_wise(seed.column("doc_id"), pa.scalar(f"#{copy}"), "")
        tables.append(seed.set_column(seed.schema.get_field_index("doc_id"), "doc_id", ids))
    big = pa.concat_tables(tables).slice(0, rows)
    pq.write_table(big, out / "part-99999999T000000Z-bench-00001.parquet", compression="zstd")
    part.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    env = dict(os.environ, DOCPIPE_PROGRESS="off")
    with tempfile.TemporaryDirectory(prefix="docpipe-bench-report-") as scratch:
        out = Path(scratch) / "out"
        _build(out, args.rows, env)
        page = Path(scratch) / "report.html"
        started = time.perf_counter()
        done = _docpipe("report", str(out), "--to", str(page), env=env)
        wall_s = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"docpipe report failed: {done.stderr[-1000:]}")
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(json.dumps({
            "rows": args.rows,
            "wall_s": round(wall_s, 2),
            "peak_rss_mib": round(peak_mib, 1),  # the largest child: the report's process (the run's was smaller)
            "page_mb": round(page.stat().st_size / 1e6, 2),
        }, indent=2))


if __name__ == "__main__":
    main()
