"""Start-up: how long a person waits for the commands that should answer at once.

Three commands, each a fresh process, timed from its start to its exit (median of N runs):

- `python -c "import pipeline"`: the public surface alone, without the SDK or pyarrow;
- `docpipe --help`;
- an overlapping run: this process holds the output directory's lock (`pipeline.lock.OutputLock`,
  as a run holding it would), and `docpipe run JOB INPUT --out OUT` must refuse at once with exit 75.
  Nothing is ever sent: the API's address is a closed port, and the run is refused before any request.

Targets: under 0.2 s, 0.3 s and 0.5 s. Each figure includes the interpreter's own start-up, which
`python -c pass` gives (printed as `interpreter_s`), so a loaded machine moves all of them.

    python bench/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import TRIAGE_JOB, free_port

from pipeline.errors import OutputLockedError
from pipeline.lock import OutputLock

TARGETS_S = {"import pipeline": 0.2, "docpipe --help": 0.3, "overlapping run (exit 75)": 0.5}


def _docpipe() -> list[str]:
    """The `docpipe` executable installed beside this interpreter, or `python -m pipeline` without one."""
    script = shutil.which("docpipe", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "pipeline"]


def _time(command: list[str], *, env: dict[str, str], expected_exit: int) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    elapsed_s = time.perf_counter() - started
    if done.returncode != expected_exit:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}, not {expected_exit}: {done.stderr[-1000:]}")
    return elapsed_s


def _figures(name: str, samples_s: list[float], target_s: float | None) -> dict[str, Any]:
    median_s = statistics.median(samples_s)
    figures: dict[str, Any] = {
        "command": name,
        "median_s": round(median_s, 3),
        "min_s": round(min(samples_s), 3),
        "max_s": round(max(samples_s), 3),
    }
    if target_s is not None:
        figures |= {"target_s": target_s, "meets_target": median_s < target_s}
    return figures


def measure(runs: int, workdir: Path) -> list[dict[str, Any]]:
    env = dict(os.environ, DOCPIPE_PROGRESS="off")
    run_env = env | {"ANTHROPIC_API_KEY": "sk-bench-key", "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{free_port()}"}
    manifest = workdir / "manifest.jsonl"
    manifest.write_text('{"id": "doc-1", "text": "Invoice 7 from Acme Ltd for 400 EUR, due in 30 days."}\n')
    out = workdir / "out"
    commands = {
        "import pipeline": ([sys.executable, "-c", "import pipeline"], env, 0),
        "docpipe --help": ([*_docpipe(), "--help"], env, 0),
        "overlapping run (exit 75)": (
            [*_docpipe(), "run", str(TRIAGE_JOB), str(manifest), "--out", str(out)],
            run_env,
            OutputLockedError.exit_code,
        ),
    }
    samples_s: dict[str, list[float]] = {"interpreter": [], **{name: [] for name in commands}}
    with OutputLock(out, run_id="bench-startup-holder"):
        for _ in range(runs):  # interleaved, so that a change of the machine's load touches every command alike
            samples_s["interpreter"].append(_time([sys.executable, "-c", "pass"], env=env, expected_exit=0))
            for name, (command, command_env, expected_exit) in commands.items():
                samples_s[name].append(_time(command, env=command_env, expected_exit=expected_exit))
    return [_figures(name, samples, TARGETS_S.get(name)) for name, samples in samples_s.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="Runs of each command; the median is reported.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = measure(args.runs, Path(tmp))
    interpreter, *commands = results
    print(json.dumps({
        "benchmark": "startup",
        "runs": args.runs,
        "python": sys.version.split()[0],
        "load_average_1m": round(os.getloadavg()[0], 2),
        "interpreter_s": interpreter["median_s"],
        "results": commands,
        "meets_targets": all(result["meets_target"] for result in commands),
    }, indent=2))


if __name__ == "__main__":
    main()
