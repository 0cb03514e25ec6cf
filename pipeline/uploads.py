"""PDFs through the Files API: uploaded once, referenced by `file_id`, deleted when no longer needed.

A native PDF goes inline (base64) in its request, except when it is large (over
`FILES_ABOVE_BYTES`) or about to be sent again (a retry): then it is uploaded once and every
request names it by `file_id` (https://platform.claude.com/docs/en/build-with-claude/files), so a
retry resends a few bytes instead of megabytes. File operations are free; the tokens of the PDF
are billed when a request reads it, as inline.

Nothing is left uploaded and unrecorded. Every step is appended to `OUT/_files.jsonl` (flushed and
fsynced) before the next one starts:

    {"sha256": ..., "filename": ..., "state": "uploading"}                 before the upload call
    {"sha256": ..., "filename": ..., "state": "uploaded", "file_id": ...}  after it
    {"sha256": ..., "file_id": ..., "state": "deleted"}                    after the delete

A file is deleted once no document of the run needs it, and at the end of the run whatever is left.
A run that finds files recorded and not deleted (an earlier run was killed) deletes them first; a
file recorded as `uploading` with no id (killed during the upload) is looked for by its name, which
is unique to the output directory and the content, in the Files API's list. Each upload also asks
the API to expire the file (`expires_in_seconds`), a bound on what no later run comes back to clean.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import PipelineError
from .payloads import BinaryPayload
from .pieces import append_line
from .transport import FilesApi

__all__ = ["FILES_ABOVE_BYTES", "FILES_RECORD", "Uploads"]

FILES_RECORD = "_files.jsonl"
FILES_ABOVE_BYTES = 4 * 1024 * 1024  # larger PDFs are uploaded even before a retry
EXPIRES_IN_S = 6 * 3600  # a realtime run needs a file for the minutes its document is in flight


def _filename(out_dir: Path, sha256: str) -> str:
    directory = hashlib.sha256(str(out_dir.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"docpipe-{directory}-{sha256[:24]}.pdf"


class Uploads:
    """The files one output directory's runs uploaded, and who still needs each."""

    def __init__(self, out_dir: Path, files: Callable[[], FilesApi], *, expires_in_s: int = EXPIRES_IN_S) -> None:
        self.out_dir = out_dir
        self.path = out_dir / FILES_RECORD
        self._files = files
        self._expires_in_s = expires_in_s
        self._uploads: dict[str, asyncio.Future[str]] = {}  # sha256 -> its file id, once uploaded
        self._holders: dict[str, set[str]] = {}  # sha256 -> documents that may still send it
        self.uploaded = 0
        self.deleted = 0
        self._undeleted = 0  # deletes that failed: their files stay recorded

    def pending(self) -> bool:
        """Whether an earlier run left files recorded and not deleted."""
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    async def clean(self) -> int:
        """Delete what earlier runs recorded and did not delete; how many files that was."""
        entries: dict[str, dict[str, Any]] = {}
        for line in self._read():
            entries[line["sha256"]] = entries.get(line["sha256"], {}) | line
        left = [entry for entry in entries.values() if entry.get("state") != "deleted"]
        if not left:
            self.path.unlink(missing_ok=True)
            return 0
        api = self._files()
        if any(entry.get("file_id") is None for entry in left):  # killed during an upload: look for it by name
            wanted = {entry["filename"]: entry for entry in left if entry.get("file_id") is None}
            async for stored in api.list():
                if stored.filename in wanted:
                    wanted.pop(stored.filename)["file_id"] = stored.id
                    if not wanted:
                        break
        count = 0
        for entry in left:
            if entry.get("file_id") is not None:
                await api.delete(entry["file_id"])
                count += 1
        self.path.unlink(missing_ok=True)
        return count

    async def file_id(self, payload: BinaryPayload, *, holder: str) -> str:
        """The payload's `file_id`, uploading it on first use; `holder` (a document id) needs it until released."""
        sha256 = payload.sha256()
        self._holders.setdefault(sha256, set()).add(holder)
        upload = self._uploads.get(sha256)
        if upload is None or (upload.done() and upload.exception() is not None):
            upload = self._uploads[sha256] = asyncio.ensure_future(self._upload(payload, sha256))
        return await asyncio.shield(upload)

    async def _upload(self, payload: BinaryPayload, sha256: str) -> str:
        filename = _filename(self.out_dir, sha256)
        self._append({"sha256": sha256, "filename": filename, "state": "uploading"})
        file_id = await self._files().upload(
            payload.data, filename=filename, media_type=payload.media_type, expires_in_s=self._expires_in_s
        )
        self._append({"sha256": sha256, "filename": filename, "state": "uploaded", "file_id": file_id})
        self.uploaded += 1
        return file_id

    async def release(self, payload: BinaryPayload, *, holder: str) -> None:
        """`holder` no longer needs the payload's file: delete it once nobody does."""
        if not self._holders:
            return  # nothing uploaded: no need to hash the payload
        sha256 = payload.sha256()
        holders = self._holders.get(sha256)
        if holders is None:
            return
        holders.discard(holder)
        if not holders:
            await self._delete(sha256)

    async def close(self) -> None:
        """Delete every file this run uploaded and has not deleted yet; the record goes once all are."""
        for sha256 in list(self._uploads):
            await self._delete(sha256)
        if self._undeleted:
            return  # a delete failed: the record stays for the next run
        if self.path.exists() and all(entry.get("state") == "deleted" for entry in self._latest().values()):
            self.path.unlink(missing_ok=True)

    async def _delete(self, sha256: str) -> None:
        # Forgotten before the delete call: a document with the same content from now on uploads it anew,
        # never naming a file that is being deleted.
        upload = self._uploads.pop(sha256, None)
        self._holders.pop(sha256, None)
        if upload is None:
            return
        try:
            file_id = await asyncio.shield(upload)
        except (PipelineError, OSError):
            return  # never uploaded: nothing to delete (its record says uploading, and the next run looks)
        try:
            await self._files().delete(file_id)
        except PipelineError:
            self._undeleted += 1
            return  # recorded as uploaded: the next run deletes it
        self._append({"sha256": sha256, "file_id": file_id, "state": "deleted"})
        self.deleted += 1

    def _latest(self) -> dict[str, dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for line in self._read():
            latest[line["sha256"]] = latest.get(line["sha256"], {}) | line
        return latest

    def _read(self) -> list[dict[str, Any]]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        lines = []
        for text in raw.splitlines():
            try:
                line = json.loads(text)
            except ValueError:
                continue  # a torn last line: its step did not happen, or is found by name
            if isinstance(line, dict) and isinstance(line.get("sha256"), str):
                lines.append(line)
        return lines

    def _append(self, line: dict[str, Any]) -> None:
        append_line(self.path, (json.dumps(line) + "\n").encode("utf-8"))
