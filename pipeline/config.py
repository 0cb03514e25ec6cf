"""A run's configuration, resolved once with a visible precedence.

    command-line flag  >  DOCPIPE_* environment variable  >  job file  >  default

The SDK's own `ANTHROPIC_API_KEY`, `ANTHROPIC_AUTH_TOKEN` and `ANTHROPIC_BASE_URL` are left to the
SDK: they are how a gateway, a proxy or an emulator is reached.
"""

from __future__ import annotations

import json
import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError
from .jobs import Job
from .progress import DEFAULT_LOG_EVERY_S
from .stores import (
    OWNER_RECORD,
    PROCESS_LOCAL_SCHEMES,
    STATE_MARKER,
    PartStore,
    default_state_dir,
    location,
    open_store,
    served_by,
)

if TYPE_CHECKING:
    from .parts import Parts

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_GRACE_S",
    "DEFAULT_UNREACHABLE_S",
    "STATE_MARKER",
    "RunConfig",
    "check_engine",
    "claim_state_dir",
    "resolve_config",
    "resolve_output",
]

DEFAULT_CONCURRENCY = 16
MAX_CONCURRENCY = 4096
DEFAULT_GRACE_S = 30.0
# How long every request may fail to connect, with no HTTP response in between, before the run stops (exit 3).
DEFAULT_UNREACHABLE_S = 60.0
DEFAULT_BATCH_POLL_S = 2.0
PROGRESS_MODES = ("auto", "bar", "log", "off")
MODES = ("realtime", "batch", "auto")
DEFAULT_BATCH_ABOVE = 1000  # --mode auto: documents to send from which a run goes through Message Batches
ENGINES = ("local", "ray")
DEFAULT_RAY_ACTORS = 2  # API actors of --engine ray; each holds one client and --concurrency requests


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Everything a run needs, resolved. `api_key` is never printed (see `__repr__`)."""

    job: Job
    input_path: Path
    out_dir: Path
    concurrency: int = DEFAULT_CONCURRENCY
    limit: int | None = None
    dry_run: bool = False
    offline: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    rpm: int | None = None
    itpm: int | None = None
    otpm: int | None = None
    api_key: str | None = None
    base_url: str | None = None
    progress: str = "auto"
    log_every_s: float = DEFAULT_LOG_EVERY_S
    grace_s: float = DEFAULT_GRACE_S
    unreachable_s: float = DEFAULT_UNREACHABLE_S
    flush_rows: int = 1000
    mode: str = "realtime"  # or "batch": the Message Batches API at half price
    wait: bool = True  # batch mode: wait for the batches to end (False: submit, and the next run collects)
    batch_poll_s: float = DEFAULT_BATCH_POLL_S  # batch mode: the first wait between polls (it grows to a minute)
    max_cost_usd: float | None = None  # --max-cost: no request starts that could take the run past it
    batch_above: int = DEFAULT_BATCH_ABOVE  # --mode auto: batch from this many documents to send
    store: PartStore | None = None  # --out in object storage: the parts go there; out_dir is the state directory
    engine: str = "local"  # or "ray": the same job as a Ray Data pipeline (ray_engine.py)
    ray_address: str | None = None  # --address: the Ray cluster to join (else RAY_ADDRESS, else a local one)
    ray_actors: int = DEFAULT_RAY_ACTORS  # --actors: API actors of the Ray pipeline

    @property
    def parts(self) -> Parts:
        """Where the parts go: the output directory, or the object store of a remote --out."""
        return self.out_dir if self.store is None else self.store

    @property
    def out_label(self) -> str:
        """--out as the user gave it: the directory, or the URI of a remote output."""
        return str(self.out_dir) if self.store is None else self.store.uri

    def __repr__(self) -> str:
        return (
            f"RunConfig(job={self.job.name!r}, input_path={str(self.input_path)!r}, out_dir={str(self.out_dir)!r}, "
            f"concurrency={self.concurrency}, offline={self.offline}, api_key={'***' if self.api_key else None})"
        )

    @property
    def backend(self) -> str:
        return "emulator" if self.offline else "api"


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be positive")
    return value


def _env_float(env: Mapping[str, str], name: str, *, allow_zero: bool) -> float | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name}={raw!r} must be a {'non-negative' if allow_zero else 'positive'} number of seconds")
    return value


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def _first_float(*values: float | None) -> float:
    return next(v for v in values if v is not None)


def resolve_output(out: str | Path, state_dir: Path | None, *, env: Mapping[str, str]) -> tuple[Path, PartStore | None]:
    """--out and --state-dir resolved: (the local directory of the journal and the lock, the object store of the
    parts or None). A remote --out without --state-dir gets one per URI (`stores.default_state_dir`). A state
    directory serves one --out only (`STATE_MARKER`), and a remote output follows one state directory
    (`OWNER_RECORD`): two would each ask again what the other's journal holds."""
    where = location(out, what="--out")
    if isinstance(where, Path):
        if state_dir is not None:
            raise ConfigError(f"--state-dir applies to an --out in object storage (s3://...), not to {out}: "
                              "a local output directory keeps its own journal and lock")
        return where, None
    uri = where.rstrip("/")
    if uri.split("://", 1)[0].lower() in PROCESS_LOCAL_SCHEMES:
        raise ConfigError(f"--out {uri}: that filesystem lives in the run's process and is gone when it ends; "
                          "write to a directory or to object storage")
    store = open_store(uri)
    state = (state_dir if state_dir is not None else default_state_dir(uri, env=dict(env))).absolute()
    recorded = served_by(state)
    if recorded is not None and recorded != uri:
        raise ConfigError(f"--state-dir {state} holds the journal and lock of --out {recorded}, not {uri}: "
                          "give each output its own state directory")
    if state.exists() and not state.is_dir():
        raise ConfigError(f"--state-dir {state} exists and is not a directory")
    if any(state.glob("part-*.parquet")):
        raise ConfigError(f"--state-dir {state} is a local output directory (it holds parts): give the state of "
                          f"{uri} a directory of its own")
    store.check_bucket()
    owner = store.owner()
    if owner is not None and owner != _owner_of(state):
        raise ConfigError(
            f"--out {uri} follows the journal in {owner.get('state_dir')} on {owner.get('host')}, not {state} on "
            f"{socket.gethostname()}: a second state directory would pay again for what that journal holds. Run "
            f"there, or with --state-dir {owner.get('state_dir')}; if that directory is gone for good (and its "
            f"unpublished rows with it), delete {uri}/{OWNER_RECORD}"
        )
    return state, store


def _owner_of(state: Path) -> dict[str, str]:
    return {"state_dir": str(state), "host": socket.gethostname()}


def claim_state_dir(config: RunConfig) -> None:
    """Record, once, which --out a remote output's state directory serves, and in the output which state
    directory (and host) it follows."""
    if config.store is None:
        return
    marker = config.out_dir / STATE_MARKER
    if not marker.exists():
        config.out_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"out": config.store.uri}) + "\n", encoding="utf-8")
    if config.store.owner() is None:
        config.store.write_text(OWNER_RECORD, json.dumps(_owner_of(config.out_dir)) + "\n")


def resolve_config(
    job: Job,
    input_path: Path,
    out_dir: Path | str,
    *,
    state_dir: Path | None = None,
    concurrency: int | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    offline: bool = False,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    rpm: int | None = None,
    itpm: int | None = None,
    otpm: int | None = None,
    progress: str | None = None,
    grace_s: float | None = None,
    mode: str = "realtime",
    wait: bool = True,
    max_cost_usd: float | None = None,
    batch_above: int | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    ray_actors: int | None = None,
    env: Mapping[str, str] | None = None,
) -> RunConfig:
    """Resolve flags, environment, job file and defaults into one frozen RunConfig."""
    env = os.environ if env is None else env
    if not input_path.exists():
        raise ConfigError(f"input not found: {input_path}")
    out_dir, store = resolve_output(out_dir, state_dir, env=env)
    if store is None and out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} exists and is not a directory")
    resolved_concurrency = _concurrency(concurrency, env)
    resolved_progress = _progress(progress, env)
    _check_run_flags(job, limit=limit, mode=mode, wait=wait, max_cost_usd=max_cost_usd, batch_above=batch_above)
    check_engine(engine, max_cost_usd=max_cost_usd, ray_address=ray_address, ray_actors=ray_actors)
    _check_details(job, input_path)
    api_key = _api_key(env, needed=not offline and not dry_run)
    return RunConfig(
        job=job,
        input_path=input_path,
        out_dir=out_dir,
        concurrency=resolved_concurrency,
        limit=limit,
        dry_run=dry_run,
        offline=offline,
        include=include,
        exclude=exclude,
        rpm=_first(rpm, _env_int(env, "DOCPIPE_RPM"), job.rpm),
        itpm=_first(itpm, _env_int(env, "DOCPIPE_ITPM"), job.itpm),
        otpm=_first(otpm, _env_int(env, "DOCPIPE_OTPM"), job.otpm),
        api_key=None if offline else api_key,
        base_url=None if offline else env.get("ANTHROPIC_BASE_URL"),
        progress=resolved_progress,
        log_every_s=_first_float(_env_float(env, "DOCPIPE_LOG_EVERY_S", allow_zero=False), DEFAULT_LOG_EVERY_S),
        grace_s=_first_float(grace_s, _env_float(env, "DOCPIPE_GRACE_S", allow_zero=True), DEFAULT_GRACE_S),
        unreachable_s=_first_float(_env_float(env, "DOCPIPE_UNREACHABLE_S", allow_zero=False), DEFAULT_UNREACHABLE_S),
        mode=mode,
        wait=wait,
        max_cost_usd=max_cost_usd,
        batch_above=_first(batch_above, job.batch_above) or DEFAULT_BATCH_ABOVE,
        batch_poll_s=_first_float(_env_float(env, "DOCPIPE_BATCH_POLL_S", allow_zero=False), DEFAULT_BATCH_POLL_S),
        store=store,
        engine=engine,
        ray_address=ray_address,
        ray_actors=ray_actors or DEFAULT_RAY_ACTORS,
    )


def _api_key(env: Mapping[str, str], *, needed: bool) -> str | None:
    api_key = env.get("ANTHROPIC_API_KEY") or env.get("ANTHROPIC_AUTH_TOKEN")
    if needed and not api_key:
        raise ConfigError(
            "no API key: set ANTHROPIC_API_KEY (export ANTHROPIC_API_KEY=sk-ant-...), "
            "or add --offline to run against docpipe's built-in API emulator"
        )
    return api_key


def _concurrency(concurrency: int | None, env: Mapping[str, str]) -> int:
    """--concurrency, else DOCPIPE_CONCURRENCY, else the default; within 1 and MAX_CONCURRENCY."""
    env_concurrency = _env_int(env, "DOCPIPE_CONCURRENCY")
    resolved = concurrency if concurrency is not None else (env_concurrency or DEFAULT_CONCURRENCY)
    if not 1 <= resolved <= MAX_CONCURRENCY:
        raise ConfigError(f"--concurrency must be between 1 and {MAX_CONCURRENCY}, not {resolved}")
    return resolved


def _progress(progress: str | None, env: Mapping[str, str]) -> str:
    """--progress, else DOCPIPE_PROGRESS, else auto; one of PROGRESS_MODES."""
    resolved = progress or env.get("DOCPIPE_PROGRESS") or "auto"
    if resolved not in PROGRESS_MODES:
        source = "--progress" if progress else "DOCPIPE_PROGRESS"
        raise ConfigError(f"{source}={resolved!r}: must be one of {', '.join(PROGRESS_MODES)}")
    return resolved


def _check_run_flags(
    job: Job, *, limit: int | None, mode: str, wait: bool, max_cost_usd: float | None, batch_above: int | None
) -> None:
    """The flags of a run that only make sense together, or within a range."""
    if limit is not None and limit < 1:
        raise ConfigError("--limit must be at least 1")
    if mode not in MODES:
        raise ConfigError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    if max_cost_usd is not None and not (math.isfinite(max_cost_usd) and max_cost_usd > 0):
        raise ConfigError(f"--max-cost must be a positive number of US dollars, not {max_cost_usd!r}")
    if max_cost_usd is not None:
        from .pricing import model_prices

        if model_prices(job.model, job.prices) is None:
            if job.prices_for:  # the job's [prices] price its own model, not the one --model named
                where = f"a DOCPIPE_PRICES file (the job's [prices] are for its own model, {job.prices_for})"
            else:
                where = "the job's [prices] (input_usd, output_usd) or in a DOCPIPE_PRICES file"
            raise ConfigError(f"--max-cost needs {job.model}'s prices, and docpipe has none: give them in {where}")
    if not wait and mode == "realtime":
        raise ConfigError("--no-wait applies to --mode batch (or auto) only: a realtime run waits for its answers")
    if batch_above is not None and mode != "auto":
        raise ConfigError("--batch-above applies to --mode auto only")


def check_engine(engine: str, *, max_cost_usd: float | None, ray_address: str | None, ray_actors: int | None) -> None:
    """`--engine ray` takes what a Ray pipeline can honour; its flags mean nothing on one machine."""
    if engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if engine == "local":
        if ray_address is not None or ray_actors is not None:
            raise ConfigError("--address and --actors apply to --engine ray only")
        return
    if ray_actors is not None and ray_actors < 1:
        raise ConfigError("--actors must be at least 1")
    if max_cost_usd is not None:
        raise ConfigError("--max-cost is a single machine's budget: it does not apply to --engine ray")
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ConfigError("--engine ray needs Ray Data: pip install 'docpipe[ray]'")


def _check_details(job: Job, input_path: Path) -> None:
    """Refuse a document detail the job's instructions name that the input cannot give (`details.py`)."""
    from .details import check, placeholders

    if not placeholders(job.instructions):
        return
    from .sources import manifest_metadata_columns

    columns = manifest_metadata_columns(input_path)
    kind = "the folder" if input_path.is_dir() else f"the manifest {input_path.name}"
    check(job.instructions, columns, input_name=kind)
