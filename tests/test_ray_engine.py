"""`--engine ray` on a local 2-CPU Ray cluster, started once for the module: the same rows as one machine,
exactly once across a kill, one rate limit for every actor, failures as rows, resume.

Every test runs against a docpipe emulator on loopback through the real SDK; the cluster's actors
reach it there. Ray tests live here and in no other module, so a CI run starts at most one
cluster per xdist worker (two with `-n 2`: xdist's `loadgroup`, which would keep them on one,
marks tests through a node attribute pytest 9.2 no longer reads).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import RunConfig, resolve_config
from pipeline.emulator import Emulator, FaultPlan, LatencyModel, Limits
from pipeline.jobs import load_job
from pipeline.results import results_table
from pipeline.runner import run

ray = pytest.importorskip("ray")

pytestmark = [
    # Ray's own modules warn of their own deprecations (DataContext fields it sets itself): not docpipe's to fix.
    pytest.mark.filterwarnings(r"ignore::DeprecationWarning:ray\..*"),
    # Ray's advice when an input has fewer blocks than actors (five documents): true, and harmless here.
    pytest.mark.filterwarnings("ignore:The minimum number of concurrent actors:UserWarning"),
]

ROOT = Path(__file__).resolve().parent.parent
TRIAGE = ROOT / "jobs" / "triage.toml"
SAMPLE = ROOT / "sample_data" / "documents"
TEST_KEY = "sk-ant-test-0123456789abcdef"
# How a run went, not what it found: timing and ids; and which document wrote the shared prefix's cache
# (each actor's first request leads its own warm-up, streamed) and so what each one paid: scheduling.
HOW_COLUMNS = {
    "run_id", "created_at", "latency_ms", "request_id", "attempts", "streamed",
    "cache_read_tokens", "cache_write_tokens", "cost_usd",
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray cluster of 2 CPUs for the module; its address, for a `docpipe` process to join.

    Its driver is in a namespace of its own, as a notebook's is: the runs in this process find their
    limiter by name all the same.
    """
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


def _config(input_path: Path, out: Path, emulator: Emulator | None = None, **options: Any) -> RunConfig:
    env = {"ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": emulator.base_url} if emulator else {}
    options.setdefault("progress", "off")
    return resolve_config(load_job(TRIAGE), input_path, out, offline=emulator is None, env=env, **options)


def _manifest(path: Path, count: int, *, prefix: str = "doc") -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for index in range(count):
            text = (
                f"Invoice {index} from Northwind Logistics to Contoso Retail for freight in March 2026. "
                f"The total due is EUR {1000 + index}.00, payable within 30 days by bank transfer."
            )
            handle.write(json.dumps({"id": f"{prefix}-{index:04d}", "text": text, "department": "ops"}) + "\n")
    return path


def _prompt_tokens(row: dict[str, Any]) -> int:
    """What the request sent, however the cache split it."""
    return int(row["input_tokens"] + row["cache_read_tokens"] + row["cache_write_tokens"])


def _rows(out: Path) -> list[dict[str, Any]]:
    """Every row the output holds, the superseded ones included."""
    return list(results_table(out, latest=False).to_pylist())


@contextlib.contextmanager
def _ray_run_process(cluster: str, emulator: Emulator, manifest: Path, out: Path, stderr_path: Path) -> Iterator[Any]:
    """`docpipe run --engine ray` over `manifest` as a real process joining `cluster`; killed if still running."""
    env = dict(os.environ, ANTHROPIC_API_KEY=TEST_KEY, ANTHROPIC_BASE_URL=emulator.base_url, DOCPIPE_PROGRESS="off")
    argv = [
        sys.executable, "-m", "pipeline", "run", str(TRIAGE), str(manifest), "--out", str(out),
        "--engine", "ray", "--address", cluster, "--actors", "2", "--concurrency", "2",
    ]
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def _same_rows(expected_out: Path, actual_out: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Assert two outputs hold the same documents with the same rows, how they were run aside; the pairs."""
    expected = {row["doc_id"]: row for row in _rows(expected_out)}
    actual = {row["doc_id"]: row for row in _rows(actual_out)}
    assert expected.keys() == actual.keys()
    for doc_id, row in expected.items():
        compared = set(row) - HOW_COLUMNS
        assert {k: row[k] for k in compared} == {k: actual[doc_id][k] for k in compared}, doc_id
    return [(row, actual[doc_id]) for doc_id, row in expected.items()]


def test_the_sample_job_on_ray_gives_the_single_machine_rows(cluster: str, tmp_path: Path) -> None:
    """jobs/triage.toml over sample_data/documents, offline: the same rows on Ray as on one machine, field by field."""
    local = run(_config(SAMPLE, tmp_path / "local"))
    on_ray = run(_config(SAMPLE, tmp_path / "ray", engine="ray", ray_actors=2))
    assert (0, 0) == (local.exit_code, on_ray.exit_code)
    assert local.ok == on_ray.ok == 50
    for row, on_ray_row in _same_rows(tmp_path / "local", tmp_path / "ray"):
        assert _prompt_tokens(row) == _prompt_tokens(on_ray_row), row["doc_id"]
    assert on_ray.requests_sent == local.requests_sent


def test_an_output_in_object_storage_on_ray_holds_the_single_machine_rows(
    cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--engine ray --out s3://...: the driver's writer uploads the parts to a real S3 server on loopback, the
    journal stays in the state directory; the rows are one machine's, and a rerun sends nothing."""
    import boto3
    from moto.server import ThreadedMotoServer
    from test_object_storage import S3_ENV

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for name, value in {**S3_ENV, "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
            monkeypatch.setenv(name, value)  # for this test only: the module's other runs see no S3 settings
        bucket = f"docpipe-ray-{os.getpid()}"
        boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket=bucket)
        _an_output_in_the_bucket_on_ray(f"s3://{bucket}/triage", tmp_path)
    finally:
        server.stop()


def _an_output_in_the_bucket_on_ray(out: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    local = run(_config(SAMPLE / "emails", tmp_path / "local"))
    on_ray = run(_config(SAMPLE / "emails", out, engine="ray", ray_actors=2, state_dir=state))
    assert (0, 0) == (local.exit_code, on_ray.exit_code) and local.ok == on_ray.ok == 9
    _same_rows(tmp_path / "local", out)  # type: ignore[arg-type]  # a URI reads as a path does
    assert (state / "_wal").is_dir() and not list(state.glob("part-*"))
    again = run(_config(SAMPLE / "emails", out, engine="ray", ray_actors=2, state_dir=state))
    assert (0, 0, 9) == (again.exit_code, again.requests_sent, again.already_done)


def test_batch_mode_on_ray_gives_the_single_machine_batch_rows_and_a_rerun_sends_nothing(
    cluster: str, tmp_path: Path, make_emulator: Callable[..., Emulator]
) -> None:
    """--engine ray --mode batch: documents prepared on Ray, batches submitted and collected by the driver. The rows
    are one machine's batch-mode rows, field by field; a rerun finds every document done and sends nothing."""
    emulator = make_emulator(batch_processing_s=0.2)
    env = {"ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": emulator.base_url, "DOCPIPE_BATCH_POLL_S": "0.05"}

    def batch_config(out: Path, **options: Any) -> RunConfig:
        return resolve_config(load_job(TRIAGE), SAMPLE, out, mode="batch", progress="off", env=env, **options)

    local = run(batch_config(tmp_path / "local"))
    on_ray = run(batch_config(tmp_path / "ray", engine="ray"))
    assert (0, 0) == (local.exit_code, on_ray.exit_code)
    assert (1, 50, 50) == (on_ray.batches_submitted, local.ok, on_ray.ok)
    _same_rows(tmp_path / "local", tmp_path / "ray")
    before = dict(emulator.control.stats()["requests"]["by_endpoint"])
    again = run(batch_config(tmp_path / "ray", engine="ray"))
    assert (0, 50, 0) == (again.exit_code, again.already_done, again.batches_submitted)
    after = emulator.control.stats()["requests"]["by_endpoint"]
    assert (before.get("messages", 0), before.get("batches", 0)) == (after.get("messages", 0), after.get("batches", 0))


def test_a_killed_run_reruns_to_every_document_ok_exactly_once(
    cluster: str, tmp_path: Path, make_emulator: Callable[..., Emulator], wait_until: Callable[..., Any]
) -> None:
    """`docpipe run --engine ray` SIGKILLed once rows are journaled; the rerun finishes; one ok row per document."""
    slow = make_emulator(latency=LatencyModel(ttft_ms=250))  # the first run is still sending when it is killed
    manifest = _manifest(tmp_path / "docs.jsonl", 120)
    out = tmp_path / "out"
    with _ray_run_process(cluster, slow, manifest, out, tmp_path / "stderr.txt") as process:

        def journaled_rows() -> int:
            segments = list((out / "_wal").glob("*.jsonl")) if (out / "_wal").is_dir() else []
            return sum(max(0, len(segment.read_bytes().splitlines()) - 1) for segment in segments)  # the header

        wait_until(lambda: journaled_rows() >= 5 or process.poll() is not None, timeout_s=90, what="journaled rows")
        assert process.poll() is None, (tmp_path / "stderr.txt").read_text()[-2000:]
        process.send_signal(signal.SIGKILL)
        assert -signal.SIGKILL == process.wait(timeout=30)
    assert not list(out.glob("*.parquet")), "killed before a part was published: only the journal holds rows"
    assert journaled_rows() < 120

    emulator = make_emulator()
    rerun = run(_config(manifest, out, emulator, engine="ray", ray_actors=2, concurrency=8))
    assert 0 == rerun.exit_code
    assert rerun.recovered_rows >= 5
    rows = _rows(out)
    ok = Counter(row["doc_id"] for row in rows if row["status"] == "ok")
    assert {f"doc-{index:04d}" for index in range(120)} == set(ok)
    assert {1} == set(ok.values())
    assert rerun.ok == 120 - rerun.recovered_rows

    again = run(_config(manifest, out, emulator, engine="ray", ray_actors=2))
    assert (0, 0, 120) == (again.documents, again.requests_sent, again.already_done)
    assert len(rows) == len(_rows(out))


def test_sigterm_interrupts_a_ray_run_with_exit_130_and_its_rows_kept(
    cluster: str, tmp_path: Path, make_emulator: Callable[..., Emulator], wait_until: Callable[..., Any]
) -> None:
    """SIGTERM to `docpipe run --engine ray` (Ray installs a handler of its own): exit 130, rows and summary kept."""
    slow = make_emulator(latency=LatencyModel(ttft_ms=250))
    manifest = _manifest(tmp_path / "docs.jsonl", 120)
    out = tmp_path / "out"
    with _ray_run_process(cluster, slow, manifest, out, tmp_path / "stderr.txt") as process:
        wait_until(lambda: list(out.glob("_wal/*.jsonl")) or process.poll() is not None, timeout_s=90,
                   what="the journal")
        process.send_signal(signal.SIGTERM)
        assert 130 == process.wait(timeout=60), (tmp_path / "stderr.txt").read_text()[-2000:]
    summary = json.loads(next((out / "_runs").glob("*.json")).read_text())
    assert ("interrupted", 130) == (summary["stopped"], summary["exit_code"])
    assert summary["ok"] == len(_rows(out)) > 0


def test_four_actors_share_one_rate_limit(
    cluster: str, tmp_path: Path, make_emulator: Callable[..., Emulator]
) -> None:
    """The emulator enforcing RPM 300: 4 actors together send within the limit, and at most 0.5% get a 429."""
    rpm = 300
    emulator = make_emulator(limits=Limits(rpm=rpm, itpm=2_000_000, otpm=400_000))
    documents = 340  # a minute's worth at once (the bucket starts full), then 40 more at 5 a second
    manifest = _manifest(tmp_path / "docs.jsonl", documents)
    config = _config(
        manifest, tmp_path / "out", emulator, engine="ray", ray_actors=4, concurrency=8,
        rpm=rpm, itpm=2_000_000, otpm=400_000,
    )
    summary = run(config)
    assert (0, documents) == (summary.exit_code, summary.ok)
    stats = emulator.control.stats()
    sent = stats["requests"]["by_endpoint"]["messages"]
    rate_limited = stats["requests"]["by_status"].get("429", 0)
    assert rate_limited <= 0.005 * sent
    times = sorted(entry["t"] for entry in emulator.control.requests() if entry["endpoint"] == "messages")
    per_s = rpm / 60
    for first in range(len(times)):  # the bucket's bound over every window: a minute's worth, then the refill
        for last in range(first, len(times)):
            assert last - first + 1 <= rpm + per_s * (times[last] - times[first]) + 1
    assert times[-1] - times[0] >= (documents - rpm) / per_s - 2  # the limit held them back: it was reached


def test_bad_documents_are_error_rows_and_the_job_finishes(
    cluster: str, tmp_path: Path, make_emulator: Callable[..., Emulator]
) -> None:
    """An empty file, an unreadable PDF and a request the API refuses (400) are error rows; the rest are ok."""
    emulator = make_emulator(
        faults=FaultPlan.from_dict({"rules": [{"kind": "invalid_request", "match": "POISON"}]}, seed=1234)
    )
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "good.txt").write_text("Invoice 7 from Acme Ltd for 400 EUR, due 1 May 2026.")
    (folder / "also_good.txt").write_text("Our parcel 12 arrived late and damaged; we want a refund.")
    (folder / "empty.txt").write_text("")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\nthis is not a PDF body at all\n")
    (folder / "poison.txt").write_text("POISON: a document the API refuses.")
    summary = run(_config(folder, tmp_path / "out", emulator, engine="ray", ray_actors=2))
    assert 1 == summary.exit_code  # finished, some documents in error
    rows = {row["doc_id"]: row for row in _rows(tmp_path / "out")}
    assert {"good.txt": "ok", "also_good.txt": "ok", "empty.txt": "error", "broken.pdf": "error",
            "poison.txt": "error"} == {doc_id: row["status"] for doc_id, row in rows.items()}
    assert "empty document" in rows["empty.txt"]["error_message"]
    assert "invalid_request_error" == rows["poison.txt"]["error_type"]
    assert rows["broken.pdf"]["error_message"]
