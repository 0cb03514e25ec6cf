"""`docpipe emulator` as a real subprocess: it starts, answers the SDK, stops cleanly, refuses bad setups."""

from __future__ import annotations

import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anthropic
import pytest
from conftest import TEST_KEY

from pipeline.emulator import Emulator, EmulatorConfig

MODEL = "claude-haiku-5-5"
READY_RE = re.compile(r"docpipe emulator listening on (http://127\.0\.0\.1:\d+) \(seed (\d+)\)")
START_TIMEOUT_S = 20.0
COMMAND = [sys.executable, "-m", "pipeline", "emulator"]
StartCli = Callable[..., tuple[subprocess.Popen[str], str]]


def read_ready_line(process: subprocess.Popen[str]) -> str:
    """Wait (bounded) for the emulator's ready line on stderr and return the base URL it names."""
    assert process.stderr is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    seen = []
    while time.monotonic() < deadline:
        readable, _, _ = select.select([process.stderr], [], [], deadline - time.monotonic())
        if not readable:
            break
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        match = READY_RE.search(line)
        if match:
            return match.group(1)
    process.kill()
    pytest.fail(f"the emulator did not report ready within {START_TIMEOUT_S} s; stderr: {''.join(seen)!r}")


@pytest.fixture
def start_cli() -> Iterator[StartCli]:
    """Start `docpipe emulator --port 0 ARGS...`; return the process and its base URL. Killed after the test."""
    processes: list[subprocess.Popen[str]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen([*COMMAND, "--port", "0", *args], stderr=subprocess.PIPE, text=True)
        processes.append(process)
        return process, read_ready_line(process)

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `docpipe emulator ARGS...` to completion (it must exit by itself)."""
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=30, check=False)


def sdk_for(base_url: str, *, api_key: str = TEST_KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=0, _strict_response_validation=True)


def test_cli_emulator_answers_the_sdk_and_stops_on_ctrl_c(
    start_cli: StartCli,
) -> None:
    """The command serves the Messages API on loopback and exits 0, without a traceback, on SIGINT."""
    process, base_url = start_cli("--seed", "7")
    with sdk_for(base_url) as sdk:
        message = sdk.messages.create(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Hello from a real subprocess."}]
        )
    assert [block.text for block in message.content if block.type == "text"] == ["Hello from a real subprocess."]
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0
    assert process.stderr is not None
    assert "Traceback" not in process.stderr.read()


def test_cli_seed_matches_the_in_process_emulator(start_cli: StartCli) -> None:
    """`--seed 7` gives the same ids and content as `Emulator(EmulatorConfig(seed=7))`."""
    _, base_url = start_cli("--seed", "7")
    request = {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "Seeded request."}]}
    with sdk_for(base_url) as sdk:
        from_cli = sdk.messages.create(**request)
    with Emulator(EmulatorConfig(seed=7)) as emu, sdk_for(emu.base_url) as sdk:
        in_process = sdk.messages.create(**request)
    assert (in_process.id, in_process._request_id, in_process.content) == (
        from_cli.id,
        from_cli._request_id,
        from_cli.content,
    )


def test_cli_options_reach_the_emulator(start_cli: StartCli, tmp_path: Path) -> None:
    """`--faults` (TOML), `--rpm` and `--api-key` shape the running emulator."""
    faults = tmp_path / "faults.toml"
    faults.write_text('[[rules]]\nkind = "overloaded"\nmatch = "ACME"\n', encoding="utf-8")
    _, base_url = start_cli("--faults", str(faults), "--rpm", "1", "--api-key", TEST_KEY)
    with sdk_for(base_url) as sdk, sdk_for(base_url, api_key="sk-ant-not-listed") as stranger:
        with pytest.raises(anthropic.OverloadedError):
            sdk.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "ACME invoice"}])
        sdk.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "Contoso invoice"}])
        with pytest.raises(anthropic.RateLimitError):
            sdk.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "Third request"}])
        with pytest.raises(anthropic.AuthenticationError):
            stranger.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "Hello"}])


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_cli_refuses_a_non_loopback_host(host: str) -> None:
    """`--host 0.0.0.0` (or any non-loopback address) is refused with exit 2 and a one-line error."""
    result = run_cli("--host", host, "--port", "0")
    assert result.returncode == 2
    assert f"docpipe: error: the emulator binds loopback addresses only, not '{host}'\n" == result.stderr


def test_cli_port_in_use_is_a_clear_error() -> None:
    """A port another process listens on gives exit 2 and says so."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("--port", str(port))
    assert result.returncode == 2
    assert result.stderr.startswith(f"docpipe: error: the emulator could not listen on 127.0.0.1:{port}")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("faults.json", '{"rules": [', "is not valid json"),
        ("faults.toml", "[[rules]\nkind = 1\n", "is not valid toml"),
        ("faults.json", '{"rules": [{"kind": "meteor_strike"}]}', "fault rule 1: kind must be one of"),
        ("faults.toml", '[[rules]]\nkind = "hang"\nduration = 3\n', "fault rule 1: unknown field(s) duration"),
        ("faults.json", '{"rules": [{"kind": "overloaded", "times": "twice"}]}', "times must be a whole number"),
        ("faults.json", '{"rules": [{"kind": "overloaded", "probability": null}]}', "probability must be a number"),
        ("faults.json", '{"rules": ["overloaded"]}', "fault rule 1: a rule must be a table of fields"),
        ("faults.json", '{"rules": {"kind": "overloaded"}}', "'rules' must be a list"),
    ],
    ids=[
        "bad-json",
        "bad-toml",
        "unknown-kind",
        "unknown-field",
        "times-type",
        "probability-null",
        "rule-type",
        "rules",
    ],
)
def test_cli_bad_fault_profile_is_a_clear_error(tmp_path: Path, name: str, content: str, fragment: str) -> None:
    """A fault profile that cannot be used stops the command with exit 2 and one error line, no traceback."""
    profile = tmp_path / name
    profile.write_text(content, encoding="utf-8")
    result = run_cli("--port", "0", "--faults", str(profile))
    assert result.returncode == 2
    assert result.stderr.startswith("docpipe: error: ")
    assert fragment in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_cli_missing_fault_profile_is_a_usage_error(tmp_path: Path) -> None:
    """A `--faults` path that does not exist is a usage error (exit 2)."""
    result = run_cli("--port", "0", "--faults", str(tmp_path / "absent.toml"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_importing_the_emulator_loads_no_server_and_pipeline_loads_no_emulator() -> None:
    """`import pipeline` leaves the emulator unloaded; `import pipeline.emulator` leaves aiohttp and pypdf unloaded."""
    code = (
        "import sys, pipeline; "
        "print(any(m.startswith('pipeline.emulator') for m in sys.modules)); "
        "import pipeline.emulator; "
        "print(sorted(m for m in ('aiohttp', 'asyncio', 'pypdf', 'pipeline.emulator.server') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert ["False", "[]"] == loaded.split()
