"""Where an output's Parquet parts live: a local directory, or a prefix in object storage.

`--out` is a local directory, or a URI that pyarrow's filesystems understand (`s3://bucket/prefix`,
`gs://bucket/prefix`, `hdfs://...`), or one fsspec does (`az://`, `abfs://`, `local://`...,
with fsspec and that filesystem's package installed). A `PartStore` is the one seam to it: list
the parts, read one, publish one, and keep small records (the run summaries) beside them.

What exactly-once means on an object store. A local part is written under a temporary name,
fsynced and renamed over its final name. An object store has no rename, and needs none: a part is
uploaded under its final name, which is unique (the run id and a sequence number, shared with its
journal segment), and an object becomes visible whole when its upload completes, or not at all (a
multipart upload cut short stays invisible; a bucket lifecycle rule `AbortIncompleteMultipartUpload`
reclaims its pieces). What needs a local disk's guarantees, the journal that makes a finished row
durable and the lock that keeps two runs apart, lives in a local state directory (`--state-dir`).
A run killed after a part's upload and before its segment's deletion finds the part by its name on
the next run and does not publish it twice; the ledger, read from the parts, decides what is done.
Since the lock is local, an output follows one state directory: the first run records it in the output
(`OWNER_RECORD`, its path and host), and a run from another is refused, as it would pay again for what
the first one's journal holds.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, EnvironmentFailure

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

__all__ = [
    "OWNER_RECORD",
    "STATE_MARKER",
    "OutputView",
    "PartStore",
    "RemotePart",
    "default_state_dir",
    "is_uri",
    "location",
    "open_output",
    "open_store",
    "served_by",
]

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_ONE_SLASH = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/(?!/)")  # s3:/bucket: a URI missing a slash
PROCESS_LOCAL_SCHEMES = frozenset({"memory"})  # gone when the run's process ends: no --out there
OWNER_RECORD = "_state.json"  # in a remote output: the state directory (and host) whose journal it follows
PYARROW_SCHEMES = frozenset({"s3", "gs", "gcs", "hdfs", "viewfs"})  # file:// is a local path (`location`)
BUCKET_SCHEMES = frozenset({"s3", "gs", "gcs"})
STATE_HOME = "docpipe"
FSSPEC_HINT = "pip install fsspec and the package of that filesystem (s3fs, gcsfs, adlfs...)"


def is_uri(text: str | os.PathLike[str]) -> bool:
    """Whether `--out` (or an input) names a filesystem by scheme (`s3://...`) rather than a local path."""
    return isinstance(text, str) and bool(_URI.match(text)) and not text.lower().startswith("file://")


def location(text: str | os.PathLike[str], *, what: str) -> str | Path:
    """A URI (a string), or the local path of a plain path or a `file://` URI. A path that reads as a URI missing
    a slash (`s3:/bucket/x`) is a `ConfigError`: it would be a local folder named `s3:`."""
    raw = os.fspath(text)
    if is_uri(raw):
        return raw
    if raw.lower().startswith("file://"):
        return Path(raw[len("file://"):] or "/")
    typo = _ONE_SLASH.match(raw)
    if typo and not Path(raw).exists():
        scheme = typo.group(1)
        raise ConfigError(f"{what} {raw}: a URI needs two slashes ({scheme}://{raw[len(scheme) + 2:]}); "
                          f"a local path here would make a folder named {scheme}:")
    return Path(raw)


def default_state_dir(uri: str, *, env: dict[str, str] | None = None) -> Path:
    """The local state directory of a remote output when `--state-dir` is not given: one per URI, under
    `$XDG_STATE_HOME/docpipe` (`~/.local/state/docpipe`; a relative XDG_STATE_HOME is ignored, as the XDG
    specification says), so that the next run on this machine finds it."""
    env = dict(os.environ) if env is None else env
    xdg = env.get("XDG_STATE_HOME") or ""
    home = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "state"
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", uri.split("://", 1)[1]).strip("_")[:80]
    digest = hashlib.sha256(uri.encode("utf-8")).hexdigest()[:10]
    return home / STATE_HOME / f"{readable}-{digest}"


@dataclass(frozen=True, slots=True)
class RemotePart:
    """A part in object storage, named as a local `Path` part is (`name`, `stem`, `str()` for messages)."""

    uri: str
    path: str  # the filesystem's path to it

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        return self.name.rsplit(".", 1)[0]

    @property
    def suffix(self) -> str:
        return "." + self.name.rsplit(".", 1)[-1]

    def __str__(self) -> str:
        return self.uri


class PartStore:
    """An output's parts in a pyarrow filesystem at `root` (a remote prefix). `uri` names it in messages."""

    def __init__(self, filesystem: pafs.FileSystem, root: str, *, uri: str, what: str = "--out") -> None:
        self.filesystem = filesystem
        self.root = root.rstrip("/")
        self.uri = uri.rstrip("/")
        self.what = what  # how the command line named it, for messages: --out, INPUT, OUT
        self._folders: set[str] = set()  # folders made, on a filesystem that has them

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"PartStore({self.uri!r})"

    def part(self, name: str) -> RemotePart:
        return RemotePart(f"{self.uri}/{name}", f"{self.root}/{name}")

    def names(self, prefix: str, suffix: str, *, folder: str = "") -> list[str]:
        """File names directly under the root (or its `folder`) with this prefix and suffix, sorted."""
        import pyarrow.fs as pafs

        base = f"{self.root}/{folder}".rstrip("/")
        try:
            infos = self.filesystem.get_file_info(pafs.FileSelector(base, allow_not_found=True))
        except OSError as exc:
            raise self.failure(exc, doing="list") from None
        names = (info.base_name for info in infos if info.type == pafs.FileType.File)
        return sorted(name for name in names if name.startswith(prefix) and name.endswith(suffix))

    def exists(self, name: str) -> bool:
        import pyarrow.fs as pafs

        try:
            return bool(self.filesystem.get_file_info(f"{self.root}/{name}").type == pafs.FileType.File)
        except OSError as exc:
            raise self.failure(exc, doing="look at") from None

    def _folder_for(self, name: str) -> None:
        """Make the folder of `name` where the filesystem has folders (a bucket's prefixes need none)."""
        folder = f"{self.root}/{name}".rsplit("/", 1)[0]
        if folder in self._folders or self.uri.split("://", 1)[0].lower() in BUCKET_SCHEMES:
            return
        self.filesystem.create_dir(folder, recursive=True)
        self._folders.add(folder)

    def write_table(self, name: str, table: pa.Table) -> None:
        """Upload a part under its final name: an object is visible whole or not at all (module docstring)."""
        import pyarrow.parquet as pq

        try:
            self._folder_for(name)
            if self.uri.split("://", 1)[0].lower() in BUCKET_SCHEMES:
                pq.write_table(table, f"{self.root}/{name}", filesystem=self.filesystem, compression="zstd")
            else:  # a filesystem with folders (hdfs://, local://...) has a rename: written whole, then moved
                folder, _, base = f"{self.root}/{name}".rpartition("/")
                temporary = f"{folder}/.{base}.tmp"
                pq.write_table(table, temporary, filesystem=self.filesystem, compression="zstd")
                self.filesystem.move(temporary, f"{self.root}/{name}")
        except OSError as exc:
            raise self.failure(exc, doing="write") from None

    def write_text(self, name: str, text: str) -> None:
        try:
            self._folder_for(name)
            with self.filesystem.open_output_stream(f"{self.root}/{name}") as stream:
                stream.write(text.encode("utf-8"))
        except OSError as exc:
            raise self.failure(exc, doing="write") from None

    def read_bytes(self, name: str) -> bytes:
        with self.filesystem.open_input_stream(f"{self.root}/{name}") as stream:
            data: bytes = stream.read()
        return data

    def open_input_file(self, path: str) -> Any:
        return self.filesystem.open_input_file(path)

    def owner(self) -> dict[str, str] | None:
        """The state directory this output follows (`OWNER_RECORD`: its path and host); None before a first run."""
        import json

        if not self.exists(OWNER_RECORD):
            return None
        try:
            value = json.loads(self.read_bytes(OWNER_RECORD))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.uri}/{OWNER_RECORD} cannot be read ({exc}); delete it to go on") from None
        return value if isinstance(value, dict) else None

    def check_bucket(self) -> None:
        """Before a run pays for anything: a bucket that does not exist is a `ConfigError`, one that cannot be
        reached (network, credentials) an `EnvironmentFailure`. Only for the schemes whose first segment is one."""
        import pyarrow.fs as pafs

        if self.uri.split("://", 1)[0].lower() not in BUCKET_SCHEMES:
            return
        bucket = self.root.split("/", 1)[0]
        try:
            found = self.filesystem.get_file_info(bucket).type != pafs.FileType.NotFound
        except OSError as exc:
            raise self.failure(exc, doing="reach") from None
        if not found:
            raise ConfigError(f"{self.what} {self.uri}: there is no bucket {bucket!r} (or these credentials cannot "
                              "see it); create it, or name another")

    def failure(self, exc: Exception, *, doing: str) -> EnvironmentFailure:
        return EnvironmentFailure(
            f"cannot {doing} {self.uri}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}; check "
            "the credentials (AWS_*, GOOGLE_APPLICATION_CREDENTIALS...), the bucket and the network, then run again",
            path=Path(self.uri),
        )


def open_store(uri: str, *, what: str = "--out") -> PartStore:
    """The store at a URI: pyarrow's filesystem for its scheme, else fsspec's (lazily imported). `what` names it
    in messages (`--out`, `INPUT`)."""
    scheme = uri.split("://", 1)[0].lower()
    if scheme in PYARROW_SCHEMES:
        import pyarrow as pa
        import pyarrow.fs as pafs

        try:
            filesystem, root = pafs.FileSystem.from_uri(uri)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise ConfigError(f"{what} {uri}: {exc}") from None
        return PartStore(filesystem, root, uri=uri, what=what)
    try:
        import fsspec
        import pyarrow.fs as pafs
    except ImportError:
        raise ConfigError(f"{what} {uri}: the {scheme}:// filesystem needs fsspec: {FSSPEC_HINT}") from None
    try:
        spec_fs, root = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"{what} {uri}: {exc} ({FSSPEC_HINT})") from None
    return PartStore(pafs.PyFileSystem(pafs.FSSpecHandler(spec_fs)), str(root), uri=uri, what=what)


@dataclass(frozen=True, slots=True)
class OutputView:
    """An output as the read-only commands see it (status, export, eval, compare, report): where its parts are,
    and its local state directory (journal, lock, batches), None when this machine has none for it."""

    parts: Path | PartStore
    state: Path | None


def open_output(out: str | os.PathLike[str], *, state_dir: Path | None = None) -> OutputView:
    """A local output directory, or a remote one by URI with its state directory on this machine if it has one
    (`--state-dir`, else the default one of the URI when it exists). A state directory that serves another
    output is a `ConfigError`."""
    where = location(out, what="OUT")
    if isinstance(where, Path):
        return OutputView(where, where)
    uri = where.rstrip("/")
    state = state_dir if state_dir is not None else default_state_dir(uri)
    served = served_by(state)
    if served is not None and served != uri:
        raise ConfigError(f"--state-dir {state} holds the journal of {served}, not {uri}")
    return OutputView(open_store(uri, what="OUT"), state if state.is_dir() else None)


STATE_MARKER = "_out.json"  # in a remote output's state directory: the --out it serves


def served_by(state_dir: Path) -> str | None:
    """The URI a state directory serves, from its marker; None when it has none (or is not one)."""
    import json

    marker = state_dir / STATE_MARKER
    try:
        value = json.loads(marker.read_text(encoding="utf-8")).get("out") if marker.is_file() else None
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{marker} cannot be read ({exc}); give another --state-dir") from None
    return value if isinstance(value, str) else None
