"""A folder of documents, walked lazily: one sorted directory listing at a time, never the whole tree."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

from .errors import ConfigError, ExtractionError
from .extract import SUPPORTED_SUFFIXES
from .refs import DocumentRef, inside
from .surrogates import escape_surrogates, is_utf8

__all__ = ["SPECIAL_FILE", "walk_folder"]

SPECIAL_FILE = "(not a regular file)"  # how a folder walk counts FIFOs, sockets and devices it leaves out


def walk_folder(
    root: Path, *, include: Sequence[str] = (), exclude: Sequence[str] = (), skipped: Counter[str] | None = None
) -> Iterator[DocumentRef]:
    """Every regular, non-hidden file under `root`, depth first in sorted order, filtered by globs.

    `include` and `exclude` are glob patterns matched against a file's POSIX path relative to
    `root` and against its name: `*` stays within a folder, `**/` spans any number of folders
    (including none), so `*.pdf` and `**/*.pdf` both select PDFs at any depth. A folder matching
    an `exclude` pattern is not entered. Without `include`, only files of a supported type are taken
    (manifests, images, archives lying in the folder are not documents); a file an `include` pattern
    names is taken whatever its type, and an unsupported one then fails with a clear error row.
    Files left out for their type alone are counted by extension in `skipped`, when given, so a run
    can say what it did not read; FIFOs, sockets and devices are never read, and counted too.

    Symlinks are followed when they stay inside `root`: a linked file is yielded under the link's
    path, a linked folder is entered unless the walk reaches it anyway under its own name. Links
    that leave `root`, dangle or loop become error refs. No real folder is entered twice.
    """
    return _FolderWalk(root, include, exclude, skipped).refs()


class _FolderWalk:
    """One lazy walk: a stack of sorted directory listings, never the whole tree."""

    def __init__(
        self, root: Path, include: Sequence[str], exclude: Sequence[str], skipped: Counter[str] | None = None
    ) -> None:
        self.root = Path(os.path.abspath(root))
        self.skipped = skipped
        # A lone string is one pattern, not a sequence of one-character patterns.
        self.includes = [_glob_regex(pattern) for pattern in ((include,) if isinstance(include, str) else include)]
        self.excludes = [_glob_regex(pattern) for pattern in ((exclude,) if isinstance(exclude, str) else exclude)]
        self.real_root = ""
        self.followed: set[str] = set()  # real folders entered through a symlink

    def refs(self) -> Iterator[DocumentRef]:
        if not self.root.exists():
            raise ConfigError(f"input folder not found: {self.root}")
        if not self.root.is_dir():
            raise ConfigError(f"input is not a folder: {self.root}")
        self.real_root = os.path.realpath(self.root)
        stack: list[tuple[Iterator[os.DirEntry[str]], str]] = []
        listing = self._list(self.real_root, "")
        if isinstance(listing, DocumentRef):
            raise ConfigError(f"cannot read the input folder {self.root}: {listing.error}")
        stack.append((listing, ""))
        while stack:
            entries, prefix = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                continue
            if entry.name.startswith("."):
                continue
            rel = prefix + entry.name
            if entry.is_symlink():
                yield from self._symlink(entry, rel, stack)
            elif entry.is_dir(follow_symlinks=False):
                if not self._excluded_folder(rel, entry.name) and entry.path not in self.followed:
                    yield from self._enter(entry.path, rel, stack)
            elif entry.is_file(follow_symlinks=False):
                if self._selected(rel, entry.name):
                    shown = self._shown(rel)
                    yield DocumentRef(doc_id=shown, source=shown, path=Path(entry.path), text=None, metadata={})
                elif self.skipped is not None and self._left_for_its_type(rel, entry.name):
                    self.skipped[os.path.splitext(entry.name)[1].lower() or "(no extension)"] += 1
            elif self.skipped is not None and self._selected(rel, entry.name, any_type=True):
                self.skipped[SPECIAL_FILE] += 1  # a FIFO, socket or device: reading it could block the run

    def _enter(
        self, real_dir: str, rel: str, stack: list[tuple[Iterator[os.DirEntry[str]], str]]
    ) -> Iterator[DocumentRef]:
        listing = self._list(real_dir, rel)
        if isinstance(listing, DocumentRef):
            yield listing
        else:
            stack.append((listing, rel + "/"))

    def _list(self, real_dir: str, rel: str) -> Iterator[os.DirEntry[str]] | DocumentRef:
        try:
            with os.scandir(real_dir) as scan:
                return iter(sorted(scan, key=lambda entry: entry.name))
        except OSError as exc:
            reason = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))
            return self._error(rel or ".", f"cannot read folder {rel or '.'}: {reason}", real_dir)

    def _symlink(
        self, entry: os.DirEntry[str], rel: str, stack: list[tuple[Iterator[os.DirEntry[str]], str]]
    ) -> Iterator[DocumentRef]:
        try:
            target = os.stat(entry.path)
        except OSError as exc:
            if not self._selected(rel, entry.name, any_type=True):
                return
            if exc.errno == errno.ELOOP:
                yield self._error(rel, f"symlink loop: {rel} leads back to itself", entry.path)
            elif exc.errno in (errno.ENOENT, errno.ENOTDIR):
                yield self._error(
                    rel, f"broken symlink: {rel} points to {os.readlink(entry.path)}, which does not exist", entry.path
                )
            else:
                yield self._error(rel, f"cannot follow symlink {rel}: {exc.strerror or exc}", entry.path)
            return
        real = os.path.realpath(entry.path)
        is_folder = stat.S_ISDIR(target.st_mode)
        if is_folder and self._excluded_folder(rel, entry.name):
            return
        if not is_folder and not (stat.S_ISREG(target.st_mode) and self._selected(rel, entry.name, any_type=True)):
            return
        if (
            not is_folder
            and inside(real, self.real_root)
            and not (self._selected(rel, entry.name) or self._selected(rel, os.path.basename(real)))
        ):
            return
        if not inside(real, self.real_root):
            yield self._error(rel, f"symlink points outside the input folder: {rel} -> {real}", entry.path)
        elif not is_folder:
            shown = self._shown(rel)
            yield DocumentRef(doc_id=shown, source=shown, path=Path(real), text=None, metadata={})
        elif not self._walked_anyway(real):
            self.followed.add(real)
            yield from self._enter(real, rel, stack)

    def _walked_anyway(self, real_dir: str) -> bool:
        """True when the walk enters this folder under its own name, or already entered it via a link."""
        relative = PurePosixPath(Path(real_dir).relative_to(self.real_root).as_posix())
        if relative == PurePosixPath("."):
            return True
        ancestors = [self.real_root]
        prefix = ""
        normal = True
        for part in relative.parts:
            prefix = f"{prefix}/{part}" if prefix else part
            ancestors.append(os.path.join(ancestors[-1], part))
            if part.startswith(".") or self._excluded_folder(prefix, part):
                normal = False
        return normal or any(ancestor in self.followed for ancestor in ancestors)

    def _selected(self, rel: str, name: str, *, any_type: bool = False) -> bool:
        """Whether the globs select this file; without `include`, only supported types (unless `any_type`)."""
        if self.includes:
            if not _matches(self.includes, rel, name):
                return False
        elif not any_type and os.path.splitext(name)[1].lower() not in SUPPORTED_SUFFIXES:
            return False
        return not _matches(self.excludes, rel, name)

    def _left_for_its_type(self, rel: str, name: str) -> bool:
        """True when only its type kept this file out: no `include` given, no `exclude` matching."""
        return not self.includes and not _matches(self.excludes, rel, name)

    def _excluded_folder(self, rel: str, name: str) -> bool:
        return _matches(self.excludes, rel, name)

    def _error(self, rel: str, message: str, path: str) -> DocumentRef:
        shown = self._shown(rel)
        error = ExtractionError(message, document_id=shown, path=path)
        return DocumentRef(doc_id=shown, source=shown, path=None, text=None, metadata={}, error=error)

    def _shown(self, rel: str) -> str:
        """`rel` as a document id: each byte of a name that is not UTF-8 escaped (see the module docstring)."""
        if is_utf8(rel):
            return rel
        shown = escape_surrogates(rel)
        if os.path.lexists(os.path.join(self.root, shown)):  # a real file is named like the escape
            shown += "#" + hashlib.blake2b(rel.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()
        return shown


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob as a regex over POSIX paths: `*` and `?` stay within a folder, `**/` spans zero or more."""
    pattern = pattern.strip().removeprefix("./").lstrip("/")
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
            continue
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (close := pattern.find("]", index + 2)) != -1:
            body = pattern[index + 1 : close]
            negate = body.startswith("!")
            body = re.escape(body[1:] if negate else body).replace(r"\-", "-")
            out.append(f"[{'^' if negate else ''}{body}]")
            index = close + 1
            continue
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out))


def _matches(patterns: Sequence[re.Pattern[str]], rel: str, name: str) -> bool:
    return any(pattern.fullmatch(rel) or pattern.fullmatch(name) for pattern in patterns)
