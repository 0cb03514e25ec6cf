"""Object storage end to end: `--out` and INPUT in S3, against a real S3 server on loopback (moto in server
mode, started here), through the CLI and pyarrow's own S3 client. No client is mocked."""

from __future__ import annotations

import itertools
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow.fs as pafs
import pytest
from conftest import SEED
from moto.server import ThreadedMotoServer
from test_cli_run import SAMPLE, TRIAGE, _wait_for, billed, fork_run, invoke, message_requests

import pipeline
from pipeline.emulator import Emulator, EmulatorConfig, LatencyModel

S3_ENV = {"AWS_ACCESS_KEY_ID": "docpipe", "AWS_SECRET_ACCESS_KEY": "docpipe", "AWS_DEFAULT_REGION": "us-east-1"}
FIELDS = ["doc_sha256", "category", "summary", "confidence", "key_points", "needs_action", "status"]
_buckets = itertools.count()
LONG = "network_review_2026_full.md"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3 server on loopback for this module; pyarrow and boto3 reach it through AWS_ENDPOINT_URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {name: os.environ.get(name) for name in [*S3_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(S3_ENV, AWS_ENDPOINT_URL=endpoint)
    try:
        yield endpoint
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"docpipe-{os.getpid()}-{next(_buckets)}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


def _keys(bucket: str, prefix: str = "") -> list[str]:
    listing = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).list_objects_v2(
        Bucket=bucket, Prefix=prefix
    )
    return sorted(item["Key"] for item in listing.get("Contents", []))


def _upload(local: Path, bucket: str, prefix: str) -> None:
    s3, _ = pafs.FileSystem.from_uri(f"s3://{bucket}")
    pafs.copy_files(str(local), f"{bucket}/{prefix}", destination_filesystem=s3)


def _rows(out: str | Path) -> dict[str, dict[str, Any]]:
    frame = pipeline.load_results(out)
    return {row["doc_id"]: {name: row[name] for name in FIELDS} for row in frame.to_dict("records")}


def _normalised(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc_id: {**row, "key_points": list(row["key_points"])} for doc_id, row in rows.items()}


def test_a_run_writes_its_parts_to_the_bucket_and_its_journal_to_the_state_dir(
    bucket: str, tmp_path: Path
) -> None:
    """Parts and run summaries in the bucket, the journal and lock on the local disk; the rows are those of a
    local run, field for field; a rerun reads the ledger from the bucket and sends nothing."""
    out, state = f"s3://{bucket}/triage", tmp_path / "state"
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        first = invoke(["run", str(TRIAGE), str(SAMPLE / "emails"), "--out", out, "--state-dir", str(state)], emulator)
        assert 0 == first.exit_code, first.output
        assert f"results in {out}/" in first.output
        local = invoke(["run", str(TRIAGE), str(SAMPLE / "emails"), "--out", str(tmp_path / "local")], emulator)
        assert 0 == local.exit_code, local.output
        sent = message_requests(emulator)
        again = invoke(["run", str(TRIAGE), str(SAMPLE / "emails"), "--out", out, "--state-dir", str(state)], emulator)
        assert 0 == again.exit_code, again.output
        assert sent == message_requests(emulator)  # every document already done, as the bucket's parts say
    keys = _keys(bucket, "triage/")
    assert 1 == sum(key.startswith("triage/part-") and key.endswith(".parquet") for key in keys)
    assert 2 == sum(key.startswith("triage/_runs/") for key in keys)
    assert not list(state.glob("part-*")) and (state / "_wal").is_dir() and (state / ".lock").exists()
    assert {"out": out} == json.loads((state / "_out.json").read_text())
    assert _normalised(_rows(tmp_path / "local")) == _normalised(_rows(out))


def test_a_run_killed_mid_way_then_rerun_has_every_document_ok_exactly_once(bucket: str, tmp_path: Path) -> None:
    """SIGKILL of a real process writing to S3, then a rerun: one ok row per document, at most in-flight re-paid."""
    out, state, concurrency = f"s3://{bucket}/killed", tmp_path / "state", 2
    # One request per document: the long report, asked in pieces, is left out.
    documents = sorted(str(p.relative_to(SAMPLE)) for p in SAMPLE.rglob("*") if p.is_file() and LONG not in p.name)
    with Emulator(EmulatorConfig(seed=SEED, latency=LatencyModel(ttft_ms=120))) as emulator:
        process = fork_run(emulator, out, "--concurrency", str(concurrency), "--state-dir", str(state),
                           "--exclude", f"*{LONG}")
        _wait_for(lambda: (state / "_wal").is_dir() and _journal_rows(state) >= 8)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        paid_before = billed(emulator)
        result = invoke(["run", str(TRIAGE), str(SAMPLE), "--out", out, "--state-dir", str(state),
                         "--exclude", f"*{LONG}"], emulator)
        assert 0 == result.exit_code, result.output
        paid = billed(emulator)
    frame = pipeline.load_results(out, latest=False)
    ok = frame[frame.status == "ok"]
    assert len(documents) == len(ok) == ok.doc_id.nunique()
    assert paid - len(documents) <= concurrency and paid_before >= 8
    assert not list((state / "_wal").glob("*.jsonl"))


def _journal_rows(state: Path) -> int:
    lines = [line for p in (state / "_wal").glob("*.jsonl") for line in p.read_bytes().split(b"\n")[:-1]]
    return sum(not line.startswith(b'{"docpipe_journal"') for line in lines)


def test_a_missing_bucket_is_refused_before_anything_is_sent(s3_endpoint: str, tmp_path: Path) -> None:
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        result = invoke(["run", str(TRIAGE), str(SAMPLE / "emails"), "--out", "s3://no-such-bucket/x",
                         "--state-dir", str(tmp_path / "state")], emulator)
        assert 0 == message_requests(emulator)
    assert 2 == result.exit_code
    assert "there is no bucket 'no-such-bucket'" in result.output and "Traceback" not in result.output


def test_an_unreachable_store_is_an_environment_failure_naming_it(tmp_path: Path, bucket: str) -> None:
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        result = invoke(["run", str(TRIAGE), str(SAMPLE / "emails"), "--out", f"s3://{bucket}/x",
                         "--state-dir", str(tmp_path / "state")], emulator, AWS_ENDPOINT_URL="http://127.0.0.1:9")
        assert 0 == message_requests(emulator)
    assert 4 == result.exit_code
    assert f"cannot reach s3://{bucket}/x" in result.output and "check the credentials" in result.output


def test_a_state_dir_serves_one_output_and_is_not_a_local_output(bucket: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        emails = str(SAMPLE / "emails")
        assert 0 == invoke(["run", str(TRIAGE), emails, "--out", f"s3://{bucket}/a", "--state-dir", str(state)],
                           emulator).exit_code
        other = invoke(["run", str(TRIAGE), emails, "--out", f"s3://{bucket}/b", "--state-dir", str(state)], emulator)
        assert 0 == invoke(["run", str(TRIAGE), emails, "--out", str(tmp_path / "local")], emulator).exit_code
        local = invoke(["run", str(TRIAGE), emails, "--out", f"s3://{bucket}/c", "--state-dir",
                        str(tmp_path / "local")], emulator)
        local_flag = invoke(["run", str(TRIAGE), emails, "--out", str(tmp_path / "l2"), "--state-dir", str(state)],
                            emulator)
    assert (2, 2, 2) == (other.exit_code, local.exit_code, local_flag.exit_code)
    assert f"holds the journal and lock of --out s3://{bucket}/a" in other.output
    assert "is a local output directory" in local.output
    assert "--state-dir applies to an --out in object storage" in local_flag.output
    assert [] == _keys(bucket, "b/") + _keys(bucket, "c/")


def test_a_folder_in_the_bucket_is_mirrored_and_kept_up_to_date(bucket: str, tmp_path: Path) -> None:
    """INPUT s3://bucket/inbox: the rows are a local folder run's; a rerun fetches nothing; a changed object is
    fetched and asked again, a deleted one leaves the mirror."""
    _upload(SAMPLE / "emails", bucket, "inbox")
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        first = invoke(["run", str(TRIAGE), f"s3://{bucket}/inbox", "--out", str(out)], emulator)
        assert 0 == first.exit_code, first.output
        local = invoke(["run", str(TRIAGE), str(SAMPLE / "emails"), "--out", str(tmp_path / "local")], emulator)
        assert 0 == local.exit_code, local.output
        assert _normalised(_rows(tmp_path / "local")) == _normalised(_rows(out))
        again = invoke(["run", str(TRIAGE), f"s3://{bucket}/inbox", "--out", str(out)], emulator)
        s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
        s3.put_object(Bucket=bucket, Key="inbox/thank_you.txt", Body=b"Thank you for the quick delivery of PO 77.\n")
        s3.delete_object(Bucket=bucket, Key="inbox/meeting_followup.txt")
        before = message_requests(emulator)
        changed = invoke(["run", str(TRIAGE), f"s3://{bucket}/inbox", "--out", str(out)], emulator)
        assert 1 == message_requests(emulator) - before  # only the changed document is asked again
    count = len(list((SAMPLE / "emails").iterdir()))
    assert f"{count} objects, {count} fetched" in first.output
    assert f"{count} objects, 0 fetched" in again.output
    assert f"{count - 1} objects, 1 fetched" in changed.output and "1 removed" in changed.output
    changed_row, original_row = _rows(out)["thank_you.txt"], _rows(tmp_path / "local")["thank_you.txt"]
    assert changed_row["doc_sha256"] != original_row["doc_sha256"] and "ok" == changed_row["status"]
    mirrored = next((out / "_inputs").iterdir())
    assert not (mirrored / "meeting_followup.txt").exists()


def test_a_manifest_in_the_bucket_brings_the_files_its_rows_name(bucket: str, tmp_path: Path) -> None:
    """A manifest's `path`s are relative to its folder, in the bucket as on a disk."""
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(
        json.dumps({"id": "a", "path": "docs/complaint_late_delivery.txt", "customer": "Brightwater"}) + "\n"
        + json.dumps({"id": "b", "text": "Invoice 9 from Acme for 12 EUR.", "customer": "Acme"}) + "\n"
        + json.dumps({"id": "c", "path": "docs/missing.txt", "customer": "Nobody"}) + "\n"
    )
    _upload(manifest, bucket, "batch/manifest.jsonl")
    _upload(SAMPLE / "emails" / "complaint_late_delivery.txt", bucket, "batch/docs/complaint_late_delivery.txt")
    _upload(SAMPLE / "emails" / "thank_you.txt", bucket, "batch/docs/unlisted.txt")
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        result = invoke(["run", str(TRIAGE), f"s3://{bucket}/batch/manifest.jsonl", "--out", f"s3://{bucket}/out",
                         "--state-dir", str(tmp_path / "state")], emulator)
    assert 1 == result.exit_code, result.output  # c's file is missing: its row says so
    assert "2 objects, 2 fetched" in result.output  # the manifest and the one file it names that exists
    frame = pipeline.load_results(f"s3://{bucket}/out").set_index("doc_id")
    assert ("ok", "ok", "error") == tuple(frame.loc[["a", "b", "c"], "status"])
    assert "file not found: docs/missing.txt" in frame.loc["c", "error_message"]
    assert ["Brightwater", "Acme", "Nobody"] == list(frame.loc[["a", "b", "c"], "customer"])


def test_the_read_commands_take_the_uri(bucket: str, tmp_path: Path) -> None:
    """status, export, eval and report read a remote output: its runs from the bucket, its pending work from the
    state directory when this machine has one."""
    out, state = f"s3://{bucket}/triage", tmp_path / "state"
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        assert 0 == invoke(["run", str(TRIAGE), str(SAMPLE / "emails"), "--out", out, "--state-dir", str(state)],
                           emulator).exit_code
    count = len(list((SAMPLE / "emails").iterdir()))
    status = json.loads(invoke(["status", out, "--state-dir", str(state), "--json"]).output)
    assert (count, count, 1, []) == (status["documents"], status["ok"], len(status["runs"]), status["problems"])
    without_state = json.loads(invoke(["status", out, "--json"]).output)
    assert [f"no state directory for {out} on this machine"] == [p.split(": ")[0] for p in without_state["problems"]]
    exported = invoke(["export", out, "--format", "jsonl"]).output.splitlines()
    assert count == len(exported) and {"ok"} == {json.loads(line)["status"] for line in exported}
    report = invoke(["report", out, "--to", str(tmp_path / "report.html")])
    assert 0 == report.exit_code, report.output
    assert "complaint_late_delivery.txt" in (tmp_path / "report.html").read_text()
    nothing = invoke(["status", f"s3://{bucket}/nothing"])
    assert 2 == nothing.exit_code and "is not a docpipe output" in nothing.output


def test_a_filesystem_pyarrow_lacks_is_reached_through_fsspec(tmp_path: Path) -> None:
    """local:// is fsspec's (pyarrow has no such scheme): the same run, parts there, read back by load_results."""
    out = f"local://{tmp_path}/fsspec-out"
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        result = invoke(["run", str(TRIAGE), str(SAMPLE / "emails"), "--out", out, "--state-dir",
                         str(tmp_path / "state")], emulator)
    assert 0 == result.exit_code, result.output
    assert 1 == len(list((tmp_path / "fsspec-out").glob("part-*.parquet")))
    assert not list((tmp_path / "state").glob("part-*"))
    assert len(list((SAMPLE / "emails").iterdir())) == len(pipeline.load_results(out))


@pytest.mark.parametrize(("out", "message"), [
    ("memory://x/y", "lives in the run's process and is gone when it ends"),
    ("s3:/bucket/typo", "a URI needs two slashes (s3://bucket/typo)"),
])
def test_an_out_that_would_keep_nothing_is_refused_before_anything_is_sent(
    tmp_path: Path, out: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        result = invoke(["run", str(TRIAGE), str(SAMPLE / "emails"), "--out", out], emulator)
        assert 0 == message_requests(emulator)
    assert 2 == result.exit_code and message in result.output
    assert [] == list(tmp_path.iterdir())  # no folder named "s3:" left behind


def test_a_file_uri_is_the_local_directory_it_names(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        result = invoke(["run", str(TRIAGE), str(SAMPLE / "emails"), "--out", f"file://{out}"], emulator)
    assert 0 == result.exit_code, result.output
    assert 1 == len(list(out.glob("part-*.parquet")))
    assert len(list((SAMPLE / "emails").iterdir())) == len(pipeline.load_results(f"file://{out}"))


def test_an_output_follows_one_state_directory(bucket: str, tmp_path: Path) -> None:
    """A second state directory for one URI would pay again for what the first one's journal holds: refused,
    naming the first; the first goes on."""
    out, first, second = f"s3://{bucket}/one", tmp_path / "first", tmp_path / "second"
    emails = str(SAMPLE / "emails")
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        assert 0 == invoke(["run", str(TRIAGE), emails, "--out", out, "--state-dir", str(first)], emulator).exit_code
        sent = message_requests(emulator)
        other = invoke(["run", str(TRIAGE), emails, "--out", out, "--state-dir", str(second)], emulator)
        default = invoke(["run", str(TRIAGE), emails, "--out", out], emulator,
                         XDG_STATE_HOME=str(tmp_path / "xdg"))
        assert sent == message_requests(emulator)
        again = invoke(["run", str(TRIAGE), emails, "--out", out, "--state-dir", str(first)], emulator)
    assert (2, 2, 0) == (other.exit_code, default.exit_code, again.exit_code)
    assert f"follows the journal in {first}" in other.output and f"{out}/_state.json" in other.output
    assert not second.exists() or not list(second.glob("_wal/*"))


def test_keys_no_local_path_can_hold_are_left_out_with_a_warning(bucket: str, tmp_path: Path) -> None:
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    text = (SAMPLE / "emails" / "thank_you.txt").read_bytes()
    for key in ("in/ok.txt", "in//empty-segment.txt", "in/../../escape.txt", "in/clash", "in/clash/inner.txt"):
        s3.put_object(Bucket=bucket, Key=key, Body=text)
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        result = invoke(["run", str(TRIAGE), f"s3://{bucket}/in", "--out", str(out)], emulator)
    assert 0 == result.exit_code, result.output
    assert "3 object(s) under" in result.output and "left out" in result.output
    assert ["clash/inner.txt", "ok.txt"] == sorted(pipeline.load_results(out).doc_id)
    assert not (tmp_path / "escape.txt").exists()


def test_status_refuses_a_state_dir_of_another_output(bucket: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        assert 0 == invoke(["run", str(TRIAGE), str(SAMPLE / "emails"), "--out", f"s3://{bucket}/a", "--state-dir",
                            str(state)], emulator).exit_code
    result = invoke(["status", f"s3://{bucket}/b", "--state-dir", str(state)])
    assert 2 == result.exit_code and f"holds the journal of s3://{bucket}/a" in result.output


def test_check_and_estimate_read_an_input_in_the_bucket(bucket: str, tmp_path: Path) -> None:
    _upload(SAMPLE / "emails", bucket, "inbox")
    count = len(list((SAMPLE / "emails").iterdir()))
    checked = invoke(["check", str(TRIAGE), f"s3://{bucket}/inbox"])
    assert 0 == checked.exit_code, checked.output
    assert f"{count} objects, {count} fetched" in checked.output
    estimated = invoke(["estimate", str(TRIAGE), f"s3://{bucket}/inbox", "--json"])
    assert 0 == estimated.exit_code, estimated.output
    assert count == json.loads(estimated.stdout)["documents"]
