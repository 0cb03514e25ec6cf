"""Documents per second on Ray Data with 1, 2 and 4 API actors, against the single-machine run.

For each engine: an emulator process answers every request after L seconds (time to first token,
no per-token time), and `docpipe run` processes N synthetic documents (a JSONL manifest of inline
text) with `--concurrency C`: the single machine holds C requests in flight, each Ray actor holds
C of its own. The figure is N / the run's wall time as its summary reports it (the Ray run's
includes starting a local cluster, its workers and actors: `ray.init` is part of the run), and
beside it N / the process's wall time. `ideal_docs_per_s` is what the requests in flight allow
(actors x C / L): the gap to it is what the machine could not do.

On this 2-core machine the cores are shared by the emulator, the driver, the preparation tasks and
the actors, so the figures say what the engine costs here, not what a cluster gains: see
docs/ray.md for what they mean where the API's rate limit, not the cores, is the bound.

    python bench/ray_throughput.py [--documents 2000] [--latency-s 0.5] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import TRIAGE_JOB, EmulatorProcess, run_docpipe, write_manifest

ACTORS = (1, 2, 4)


def measure(
    engine: str, actors: int | None, *, manifest: Path, documents: int, latency_s: float, concurrency: int,
    workdir: Path,
) -> dict[str, object]:
    name = f"{engine}-{actors or 1}"
    out = workdir / name
    args = ["run", str(TRIAGE_JOB), str(manifest), "--out", str(out), "--concurrency", str(concurrency)]
    if engine == "ray":
        args += ["--engine", "ray", "--actors", str(actors)]
    with EmulatorProcess("--latency-ms", str(latency_s * 1000)) as emulator:
        code, stderr, process_wall_s, peak_mb = run_docpipe(args, base_url=emulator.base_url)
        stats = emulator.stats()
    if code != 0:
        raise SystemExit(f"docpipe {name} exited {code}:\n{stderr[-3000:]}")
    summary = json.loads(next((out / "_runs").glob("*.json")).read_text())
    run_wall_s = summary["wall_s"]
    in_flight = concurrency * (actors or 1)
    return {
        "engine": engine,
        "actors": actors,
        "requests_in_flight": in_flight,
        "documents": documents,
        "ok": summary["ok"],
        "messages_billed": stats["messages_billed"],
        "rate_limited_429": stats["requests"]["by_status"].get("429", 0),
        "run_wall_s": round(run_wall_s, 2),
        "process_wall_s": round(process_wall_s, 2),
        "docs_per_s": round(documents / run_wall_s, 1),
        "docs_per_s_with_interpreter_start": round(documents / process_wall_s, 1),
        "ideal_docs_per_s": round(in_flight / latency_s, 1),
        "driver_peak_rss_mb": peak_mb,
        "latency_p50_ms": summary["latency_p50_ms"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--latency-s", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        manifest = write_manifest(workdir / "manifest.jsonl", args.documents)
        options = {
            "manifest": manifest, "documents": args.documents, "latency_s": args.latency_s,
            "concurrency": args.concurrency, "workdir": workdir,
        }
        results.append(measure("local", None, **options))  # type: ignore[arg-type]
        for actors in ACTORS:
            results.append(measure("ray", actors, **options))  # type: ignore[arg-type]
    local_rate = float(results[0]["docs_per_s"])  # type: ignore[arg-type]
    for figure in results:
        figure["vs_single_machine"] = round(float(figure["docs_per_s"]) / local_rate, 2)  # type: ignore[arg-type]
    print(json.dumps({
        "benchmark": "ray_throughput",
        "cpus": os.cpu_count(),
        "latency_s": args.latency_s,
        "concurrency_per_process": args.concurrency,
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
