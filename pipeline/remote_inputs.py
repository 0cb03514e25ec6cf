"""Inputs in object storage: a manifest or a folder at a URI, mirrored on the local disk before a run reads it.

`docpipe run JOB s3://bucket/inbox --out ...` fetches the objects under the prefix into the
output's state directory (`_inputs/<uri>/`, a `_` name that dataset readers skip) and runs on that
copy, so every reader, extractor and quick-change check works on a local file as it does for a
local folder. The mirror is kept between runs and brought up to date like `aws s3 sync`: an object
is fetched again only when its size or modification time changed (the local copy takes the
object's time), and a file whose object is gone is removed. Each object is fetched to a temporary
name and renamed, so a killed fetch leaves no half file; a lock on the mirror keeps two fetches of
it apart. Document ids are paths relative to the prefix, as for a local folder.

The cost is a local copy of the input, fetched 8 objects at a time: an input larger than the
disk does not fit (reading objects straight from the bucket is not built).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, EnvironmentFailure
from .stores import PartStore, open_store

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = ["INPUTS_DIR", "fetch_input"]

INPUTS_DIR = "_inputs"
FETCH_THREADS = 8
PROGRESS_EVERY = 200  # objects between two progress lines
_CHUNK = 1 << 20


def _mirror_dir(state_dir: Path, uri: str) -> Path:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", uri.split("://", 1)[1]).strip("_")[:60]
    return state_dir / INPUTS_DIR / f"{readable}-{hashlib.sha256(uri.encode('utf-8')).hexdigest()[:10]}"


def _fetch(store: PartStore, source: str, target: Path, mtime_ns: int | None) -> int:
    """One object to `target`, whole or not at all; returns its size."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.fetching")
    size = 0
    with store.filesystem.open_input_stream(source) as stream, open(temporary, "wb") as handle:
        while chunk := stream.read(_CHUNK):
            handle.write(chunk)
            size += len(chunk)
    if mtime_ns is not None:  # a filesystem that gives no time: the object is fetched again each run
        os.utime(temporary, ns=(mtime_ns, mtime_ns))
    os.replace(temporary, target)
    return size


def _unchanged(target: Path, info: pafs.FileInfo) -> bool:
    try:
        local = target.stat()
    except OSError:
        return False
    return bool(local.st_size == info.size and local.st_mtime_ns == info.mtime_ns)


def fetch_input(uri: str, state_dir: Path, *, echo: Callable[[str], None]) -> Path:
    """The local mirror of the input at `uri` (a manifest or document object, or a prefix of documents), brought
    up to date; `echo` hears one line per `PROGRESS_EVERY` objects fetched and a last one."""
    import pyarrow as pa

    uri = uri.rstrip("/")
    store = open_store(uri, what="INPUT")
    store.check_bucket()
    mirror = _mirror_dir(state_dir, uri)
    try:
        mirror.mkdir(parents=True, exist_ok=True)
        lock = open(mirror.parent / f".{mirror.name}.lock", "w")  # noqa: SIM115
    except OSError as exc:
        raise EnvironmentFailure.from_os_error(exc, doing="create the input mirror", path=mirror) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        prefetched: list[int] = []  # the manifest, fetched first to be read
        local, objects, skipped = _objects(store, uri, mirror, prefetched)
        if skipped:
            shown = ", ".join(repr(key) for key in skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3
                                                                   else "")
            echo(f"docpipe: warning: {len(skipped)} object(s) under {uri} have keys no local path can hold (an empty "
                 f"or '..' segment, or a key that is also a folder), left out: {shown}")
        wanted = dict(objects)
        stale = [path for path in mirror.rglob("*") if path.is_file() and path not in wanted]
        todo = [(target, found) for target, found in objects if not _unchanged(target, found)]
        fetched, fetched_bytes = len(prefetched), sum(prefetched)
        try:
            for path in stale:
                path.unlink()
            with ThreadPoolExecutor(max_workers=FETCH_THREADS, thread_name_prefix="docpipe-fetch") as pool:
                for size in pool.map(lambda job: _fetch(store, job[1].path, job[0], job[1].mtime_ns), todo):
                    fetched, fetched_bytes = fetched + 1, fetched_bytes + size
                    if fetched % PROGRESS_EVERY == 0:
                        echo(f"docpipe: fetched {fetched:,} of {len(todo):,} changed objects from {uri}")
        except (OSError, pa.ArrowException) as exc:
            if isinstance(exc, OSError) and exc.filename and str(exc.filename).startswith(str(mirror)):
                raise EnvironmentFailure.from_os_error(exc, doing="write the input mirror in", path=mirror) from None
            raise store.failure(exc, doing="fetch from") from None
        echo(f"docpipe: input {uri}: {len(objects):,} objects, {fetched:,} fetched ({fetched_bytes / 1e6:.1f} MB), "
             f"{len(stale):,} removed; mirrored in {mirror}")
    return local


def _objects(
    store: PartStore, uri: str, mirror: Path, prefetched: list[int]
) -> tuple[Path, list[tuple[Path, pafs.FileInfo]], list[str]]:
    """The local input (the mirror, or the manifest's or document's copy) and what it is made of, as (local
    target, object): the objects under a prefix; or one object, and when it is a manifest, the objects its `path`
    column names (relative to its folder, as for a local manifest). A manifest is fetched here, to be read (its
    size goes to `prefetched`). Third: the keys left out, which no local path can hold."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    try:
        info = store.filesystem.get_file_info(store.root)
        if info.type != pafs.FileType.File:
            selector = pafs.FileSelector(store.root, recursive=True, allow_not_found=True)
            found = [item for item in store.filesystem.get_file_info(selector) if item.type == pafs.FileType.File]
            if not found:
                raise ConfigError(f"input not found: {uri} (no object at that key, nor under that prefix)")
            kept, skipped = _local_keys([item.path[len(store.root) + 1:] for item in found])
            by_key = {item.path[len(store.root) + 1:]: item for item in found}
            return mirror, [(mirror / key, by_key[key]) for key in kept], skipped
        name = store.root.rsplit("/", 1)[-1]
        manifest = mirror / name
        if not _unchanged(manifest, info):
            prefetched.append(_fetch(store, store.root, manifest, info.mtime_ns))
        folder = store.root.rsplit("/", 1)[0]
        named = _referenced(manifest)
        infos = store.filesystem.get_file_info([f"{folder}/{relative}" for relative in named]) if named else []
    except (OSError, pa.ArrowException) as exc:
        raise store.failure(exc, doing="read") from None
    referenced = [(mirror / relative, item) for relative, item in zip(named, infos, strict=True)
                  if item.type == pafs.FileType.File]  # a missing one is its document's error row in the run
    return manifest, [(manifest, info), *referenced], []


def _local_keys(keys: list[str]) -> tuple[list[str], list[str]]:
    """The keys that can be paths under the mirror, and those that cannot: an empty, `.` or `..` segment (object
    stores allow `a//b` and `../x`), or a key that is also the folder of another (`a` and `a/b`)."""
    kept = [key for key in keys if all(part not in ("", ".", "..") for part in key.split("/"))]
    folders = {key.rsplit("/", 1)[0] for key in kept if "/" in key}
    folders |= {folder.rsplit("/", i)[0] for folder in list(folders) for i in range(1, folder.count("/") + 1)}
    kept = [key for key in kept if key not in folders]
    left = set(kept)
    return kept, [key for key in keys if key not in left]


def _referenced(manifest: Path) -> list[str]:
    """The relative paths a manifest's rows name inside its folder (none for a document file or a manifest of
    inline text). Read from the local copy, where a row's file is not yet: its ref is then a 'not found' error
    that still names the file."""
    from .sources import is_document_file, read_manifest

    if is_document_file(manifest):
        return []
    named: set[str] = set()
    try:
        for ref in read_manifest(manifest):
            where = ref.path if ref.path is not None else getattr(ref.error, "path", None)
            if where is None:
                continue
            relative = os.path.relpath(where, manifest.parent)
            if not relative.startswith(os.pardir) and not os.path.isabs(relative):
                named.add(Path(relative).as_posix())
    except ConfigError:
        return []  # the run reports the manifest's problem, naming it
    named.discard(manifest.name)
    return sorted(named)
