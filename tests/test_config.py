"""Run configuration: flag > DOCPIPE_* env > job file > default, the API key and its secrecy."""



from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.config import DEFAULT_CONCURRENCY, DEFAULT_GRACE_S, DEFAULT_UNREACHABLE_S, RunConfig, resolve_config
from pipeline.errors import ConfigError
from pipeline.jobs import Job, parse_job

KEY = "sk-ant-api03-secret-key-do-not-print-0123456789"
WITH_KEY = {"ANTHROPIC_API_KEY": KEY}


def _job(**limits: int) -> Job:
    data: dict[str, Any] = {
        "job": {"name": "t", "instructions": "Do it."},
        "fields": [{"name": "label", "type": "string"}],
    }
    if limits:
        data["limits"] = limits
    return parse_job(data)


def _resolve(tmp_path: Path, job: Job | None = None, env: dict[str, str] | None = None, **options: Any) -> RunConfig:
    return resolve_config(job or _job(), tmp_path, tmp_path / "out", env=WITH_KEY if env is None else env, **options)


@pytest.mark.parametrize("name", ["rpm", "itpm", "otpm"])
@pytest.mark.parametrize(
    ("flag", "env_value", "job_value", "expected"),
    [
        pytest.param(10, "20", 30, 10, id="flag-wins"),
        pytest.param(None, "20", 30, 20, id="env-over-job"),
        pytest.param(None, None, 30, 30, id="job-over-default"),
        pytest.param(None, "", 30, 30, id="empty-env-is-unset"),
        pytest.param(None, None, None, None, id="default-none"),
        pytest.param(10, None, None, 10, id="flag-alone"),
    ],
)
def test_rate_limit_precedence(
    tmp_path: Path, name: str, flag: int | None, env_value: str | None, job_value: int | None, expected: int | None
) -> None:
    """rpm/itpm/otpm: command-line flag, then DOCPIPE_<NAME>, then the job's [limits], then unset."""
    env = dict(WITH_KEY)
    if env_value is not None:
        env[f"DOCPIPE_{name.upper()}"] = env_value
    job = _job(**{name: job_value}) if job_value is not None else _job()
    config = _resolve(tmp_path, job, env, **{name: flag})
    assert expected == getattr(config, name)


@pytest.mark.parametrize(
    ("flag", "env_value", "expected"),
    [
        pytest.param(4, "8", 4, id="flag-wins"),
        pytest.param(None, "8", 8, id="env"),
        pytest.param(None, None, DEFAULT_CONCURRENCY, id="default"),
    ],
)
def test_concurrency_precedence(tmp_path: Path, flag: int | None, env_value: str | None, expected: int) -> None:
    """concurrency: flag, then DOCPIPE_CONCURRENCY, then the default of 16."""
    env = {**WITH_KEY, **({"DOCPIPE_CONCURRENCY": env_value} if env_value is not None else {})}
    assert expected == _resolve(tmp_path, env=env, concurrency=flag).concurrency


@pytest.mark.parametrize("concurrency", [0, -1, 4097])
def test_concurrency_out_of_range_is_refused(tmp_path: Path, concurrency: int) -> None:
    """A concurrency below 1 or above 4096 is a ConfigError, not silently the default."""
    with pytest.raises(ConfigError, match="--concurrency must be between 1 and 4096"):
        _resolve(tmp_path, concurrency=concurrency)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param({}, ("log", 5.0), id="env"),
        pytest.param({"progress": "off", "grace_s": 1.5}, ("off", 1.5), id="flags-win"),
        pytest.param({"env": WITH_KEY}, ("auto", DEFAULT_GRACE_S), id="defaults"),
    ],
)
def test_progress_and_grace_precedence(tmp_path: Path, options: dict[str, Any], expected: tuple[str, float]) -> None:
    """progress and grace_s: flag over DOCPIPE_PROGRESS / DOCPIPE_GRACE_S over the defaults."""
    options.setdefault("env", {**WITH_KEY, "DOCPIPE_PROGRESS": "log", "DOCPIPE_GRACE_S": "5"})
    config = _resolve(tmp_path, **options)
    assert expected == (config.progress, config.grace_s)


@pytest.mark.parametrize(
    ("name", "value", "field", "expected"),
    [
        ("DOCPIPE_GRACE_S", "0", "grace_s", 0.0),
        ("DOCPIPE_GRACE_S", "2.5", "grace_s", 2.5),
        ("DOCPIPE_LOG_EVERY_S", "5", "log_every_s", 5.0),
        ("DOCPIPE_UNREACHABLE_S", "2.5", "unreachable_s", 2.5),
        ("DOCPIPE_UNREACHABLE_S", "", "unreachable_s", DEFAULT_UNREACHABLE_S),
    ],
)
def test_float_settings_from_env(tmp_path: Path, name: str, value: str, field: str, expected: float) -> None:
    """DOCPIPE_GRACE_S (zero allowed: stop at once), DOCPIPE_LOG_EVERY_S and DOCPIPE_UNREACHABLE_S are seconds."""
    assert expected == getattr(_resolve(tmp_path, env={**WITH_KEY, name: value}), field)


def test_missing_api_key_names_the_variable_and_offline(tmp_path: Path) -> None:
    """Without a key and without --offline, a ConfigError says to set ANTHROPIC_API_KEY or use --offline."""
    with pytest.raises(ConfigError) as excinfo:
        _resolve(tmp_path, env={})
    assert "ANTHROPIC_API_KEY" in str(excinfo.value)
    assert "--offline" in str(excinfo.value)


@pytest.mark.parametrize("options", [{"offline": True}, {"dry_run": True}], ids=["offline", "dry-run"])
def test_offline_and_dry_run_need_no_key(tmp_path: Path, options: dict[str, Any]) -> None:
    """--offline (the emulator) and --dry-run (sends nothing) run without an API key."""
    config = _resolve(tmp_path, env={}, **options)
    assert config.api_key is None


def test_offline_ignores_the_real_key_and_base_url(tmp_path: Path) -> None:
    """Offline never hands the real key or base URL to the emulator run; backend is emulator."""
    config = _resolve(tmp_path, env={**WITH_KEY, "ANTHROPIC_BASE_URL": "https://gateway.example"}, offline=True)
    assert (None, None, "emulator") == (config.api_key, config.base_url, config.backend)


def test_online_takes_key_and_base_url_from_the_environment(tmp_path: Path) -> None:
    """Online, the SDK's own ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL are passed through; backend is api."""
    config = _resolve(tmp_path, env={**WITH_KEY, "ANTHROPIC_BASE_URL": "https://gateway.example"})
    assert (KEY, "https://gateway.example", "api") == (config.api_key, config.base_url, config.backend)


def test_auth_token_is_accepted_as_a_key(tmp_path: Path) -> None:
    """ANTHROPIC_AUTH_TOKEN (a gateway's bearer token) satisfies the key requirement."""
    assert "tok" == _resolve(tmp_path, env={"ANTHROPIC_AUTH_TOKEN": "tok"}).api_key


def test_repr_never_shows_the_key(tmp_path: Path) -> None:
    """repr() and str() of a RunConfig mask the key."""
    config = _resolve(tmp_path)
    for text in (repr(config), str(config), f"{config}", f"{config!r}", repr([config])):
        assert KEY not in text
        assert "api_key=***" in text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DOCPIPE_CONCURRENCY", "many"),
        ("DOCPIPE_CONCURRENCY", "0"),
        ("DOCPIPE_CONCURRENCY", "-4"),
        ("DOCPIPE_CONCURRENCY", "2.5"),
        ("DOCPIPE_RPM", "fast"),
        ("DOCPIPE_ITPM", "0"),
        ("DOCPIPE_OTPM", "1e5"),
        ("DOCPIPE_PROGRESS", "loud"),
        ("DOCPIPE_GRACE_S", "soon"),
        ("DOCPIPE_GRACE_S", "-1"),
        ("DOCPIPE_GRACE_S", "nan"),
        ("DOCPIPE_LOG_EVERY_S", "often"),
        ("DOCPIPE_LOG_EVERY_S", "0"),
        ("DOCPIPE_LOG_EVERY_S", "inf"),
        ("DOCPIPE_UNREACHABLE_S", "0"),
        ("DOCPIPE_UNREACHABLE_S", "a minute"),
    ],
)
def test_bad_env_values_are_config_errors(tmp_path: Path, name: str, value: str) -> None:
    """A malformed DOCPIPE_* value is a ConfigError quoting the bad value."""
    with pytest.raises(ConfigError, match=repr(value).replace(".", r"\.")):
        _resolve(tmp_path, env={**WITH_KEY, name: value})


def test_bad_env_value_message_names_the_variable(tmp_path: Path) -> None:
    """The error names the variable so the person knows where to look."""
    with pytest.raises(ConfigError, match="DOCPIPE_RPM='fast' is not an integer"):
        _resolve(tmp_path, env={**WITH_KEY, "DOCPIPE_RPM": "fast"})


def test_missing_input_is_a_config_error(tmp_path: Path) -> None:
    """An input path that does not exist is refused before anything starts."""
    with pytest.raises(ConfigError, match="input not found"):
        resolve_config(_job(), tmp_path / "absent", tmp_path / "out", env=WITH_KEY)


def test_out_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    """--out naming an existing file is refused."""
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a directory"):
        resolve_config(_job(), tmp_path, tmp_path / "file", env=WITH_KEY)


@pytest.mark.parametrize("limit", [0, -2])
def test_limit_below_one_is_refused(tmp_path: Path, limit: int) -> None:
    """--limit must be at least 1."""
    with pytest.raises(ConfigError, match="--limit"):
        _resolve(tmp_path, limit=limit)


def test_a_bad_value_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    """DOCPIPE_PROGRESS=sparkles: the error names the variable, not a flag the user never typed."""
    from pipeline.jobs import load_job

    triage = load_job(Path(__file__).parent.parent / "jobs" / "triage.toml")
    with pytest.raises(ConfigError, match="DOCPIPE_PROGRESS='sparkles': must be one of"):
        resolve_config(triage, tmp_path, tmp_path / "out", env={"DOCPIPE_PROGRESS": "sparkles"}, offline=True)


def test_every_run_option_reaches_resolve_config_by_name() -> None:
    """`docpipe run` hands its options to `resolve_config` by name: one without a keyword there would
    fail every run with a TypeError, so an option added to the command must be added there too."""
    import inspect

    import click

    from pipeline.cli import main

    command = main.commands["run"]
    assert isinstance(command, click.Command)
    handled_by_the_command = {"job_file", "input_path", "out_dir", "model", "dry_run", "no_wait", "help"}
    passed_through = {param.name for param in command.params} - handled_by_the_command
    keywords = set(inspect.signature(resolve_config).parameters)
    assert passed_through and passed_through <= keywords, sorted(passed_through - keywords)
