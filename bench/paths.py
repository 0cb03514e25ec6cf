"""How the sample documents reach the model, and what each way costs: the main job over `sample_data/`.

Copies `sample_data/documents` to a scratch folder, adds the 140-page manual that
`sample_data/scripts/pdfs.py` generates (over the API's 100 pages a request), and runs the triage job
over it against a fresh emulator, in realtime and in batch mode. From the rows it prints, as JSON,
each path a document took (one text request, the PDF itself, in pieces, truncated), with how many
documents, requests, pages and dollars; and from the run summary, the PDFs that went through the
Files API.

    python bench/paths.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import ROOT, TRIAGE_JOB, EmulatorProcess, run_docpipe

import pipeline


def _path(row: dict[str, object]) -> str:
    if (row["request_count"] or 1) > 1:  # type: ignore[operator]
        return "chunked_pdf_pages" if row["input_kind"] == "pdf" else "chunked_text"
    if row["truncated"]:
        return "truncated"
    if row["input_kind"] == "pdf":
        return "pdf_native"
    pages = row["input_pages"]
    return "pdf_as_text" if pages == pages and pages else "text"  # NaN: not a PDF


def measure(mode: str, documents: Path, workdir: Path) -> dict[str, object]:
    out = workdir / f"out-{mode}"
    flags = ["--mode", mode] if mode == "batch" else []
    with EmulatorProcess("--batch-seconds", "0.5") as emulator:
        code, stderr, wall_s, _ = run_docpipe(
            ["run", str(TRIAGE_JOB), str(documents), "--out", str(out), *flags],
            base_url=emulator.base_url, env_extra={"DOCPIPE_BATCH_POLL_S": "0.2"},
        )
    if code != 0:
        raise SystemExit(f"docpipe run ({mode}) exited {code}:\n{stderr[-3000:]}")
    frame = pipeline.load_results(out)
    paths: dict[str, dict[str, object]] = {}
    for row in frame.to_dict("records"):
        way = {"documents": 0, "requests": 0, "pages": 0, "cost_usd": 0.0, "ids": []}
        path = paths.setdefault(_path(row), way)
        path["documents"] += 1  # type: ignore[operator]
        path["requests"] += int(row["request_count"] or 1)  # type: ignore[operator]
        pages = row["input_pages"]
        path["pages"] += int(pages) if pages == pages and pages else 0  # type: ignore[operator]  # NaN: not a PDF
        path["cost_usd"] += float(row["cost_usd"] or 0.0)  # type: ignore[operator]
        if _path(row) not in ("text", "pdf_as_text") or (row["input_pages"] or 0) > 100:  # worth naming
            path["ids"].append(row["doc_id"])  # type: ignore[union-attr]
    for path in paths.values():
        path["cost_usd"] = round(float(path["cost_usd"]), 6)  # type: ignore[arg-type]
    summary = json.loads(max((out / "_runs").glob("*.json")).read_text())
    return {
        "mode": mode, "documents": len(frame), "ok": int((frame.status == "ok").sum()), "wall_s": round(wall_s, 1),
        "cost_usd": round(float(frame.cost_usd.sum()), 6), "files_uploaded": summary["files_uploaded"],
        "fit_by_count": summary["fit_by_count"], "paths": paths,
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="docpipe-paths-") as scratch:
        workdir = Path(scratch)
        documents = workdir / "documents"
        shutil.copytree(ROOT / "sample_data" / "documents", documents)
        subprocess.run(
            [sys.executable, str(ROOT / "sample_data" / "scripts" / "pdfs.py"), "manual",
             str(documents / "pdfs" / "fleet_manual_140_pages.pdf")], check=True,
        )
        results = [measure(mode, documents, workdir) for mode in ("realtime", "batch")]
    print(json.dumps({"job": TRIAGE_JOB.name, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
