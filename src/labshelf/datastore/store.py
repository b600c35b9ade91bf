"""Where data files go and how they appear there atomically.

Layout under the datastore root::

    data/000012/camera/image.3f2a9c1e0b7d.h5     one file per dataset version
    data/000012/peaks.8c1d2e3f4a5b.parquet       (or per segment of an array)
    tmp/                                         files being written

A file is written under ``tmp/``, closed (and fsynced on durable shelves),
then renamed into ``data/``; only after that does the registry commit the row
that points to it.  So a crash at any moment leaves at worst an unreferenced
file, never a visible half-written dataset, and files in ``data/`` are never
modified again: a new version is a new file.  ``Datastore.orphans`` finds
the unreferenced files that crashes leave behind.

A shelf may come from someone else, so nothing in it may lead labshelf
outside it.  Every path the datastore opens, creates, renames or deletes is
resolved, symbolic links included: data files must lie under ``data/`` and
temporary ones under the root; a link that leads elsewhere is refused with
:class:`~labshelf.errors.UnsafePath`.  And a file is deleted only if
labshelf named it (:func:`labshelf_named`): a registry row that names
``labshelf.json`` cannot make a put delete the marker.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .._faults import crashpoint
from ..errors import ReadOnlyShelf, UnsafePath


@dataclass(frozen=True, slots=True)
class Entry:
    """One thing found under ``data/`` or ``tmp/``, seen without following links.

    ``kind`` is ``file`` (a regular file), ``link`` (a symbolic link, never
    entered) or ``other`` (a FIFO, a socket, a device).
    """

    relative: str
    kind: str
    size: int
    mtime: float


class Datastore:
    """The data files of one shelf, under ``root``."""

    def __init__(self, root: Path, *, readonly: bool = False, durable: bool = False):
        self.root = Path(root).resolve()
        self._root_text = str(self.root)
        self._root_prefix = os.path.join(self._root_text, "")
        self.readonly = readonly
        self.durable = durable
        self._made_dirs: set[str] = set()

    # -- paths ---------------------------------------------------------------------

    def path(self, relative: str) -> Path:
        """The resolved path of the data file ``relative`` (as the registry names it).

        Raises UnsafePath if it is not under ``data/``, if a link on the way
        leads out of ``data/``, or if it is not a regular file (a FIFO would
        block a reader forever).  A missing file is returned as it is: the
        reader reports it.
        """
        _data_parts(relative)
        real, st, linked = self._resolve(relative)
        if linked and not self._in_data(real):
            raise UnsafePath(self._link_message(relative, f"the data file {relative!r}", real))
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise UnsafePath(f"the data file {relative!r} is not a regular file; labshelf's data files are plain files")
        return Path(real)

    def _resolve(self, relative: str) -> tuple[str, os.stat_result | None, bool]:
        """Where ``relative`` (checked parts, below the root) really is: (path, its stat or None, via a link?).

        One lstat per part below the (resolved) root, the last one telling
        what the path is; realpath(), which also stats every part of the
        root, only once a link is met.  A part that does not exist ends the
        walk: nothing below it can be a link.
        """
        path = self._root_text
        st = None
        for part in relative.split("/"):
            path = f"{path}{os.sep}{part}"
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                return os.path.join(self._root_text, relative), None, False
            if stat.S_ISLNK(st.st_mode):
                real = os.path.realpath(os.path.join(self._root_text, relative))
                try:
                    return real, os.stat(real), True
                except (FileNotFoundError, NotADirectoryError):
                    return real, None, True
        return path, st, False

    def _data_real(self) -> str:
        """Where ``data/`` really is; UnsafePath if it is a link out of the root."""
        real, _st, linked = self._resolve("data")
        if linked and not real.startswith(self._root_prefix):
            raise UnsafePath(self._link_message("data", "the data folder", real))
        return real

    def _in_data(self, real: str) -> bool:
        return real.startswith(os.path.join(self._data_real(), ""))

    def _link_message(self, relative: str, what: str, real: str) -> str:
        """Name the first link on the way to ``relative`` and say what is allowed."""
        path = self._root_text
        link, target = relative, real
        for part in relative.split("/"):
            path = os.path.join(path, part)
            if os.path.islink(path):
                link, target = os.path.relpath(path, self._root_text), os.readlink(path)
                break
        return (
            f"{link} in the shelf {self.root} is a symbolic link to {target}, so {what} would lie at {real}, "
            "outside the shelf's data/ folder; labshelf follows links in data/ and tmp/ only to places "
            "inside the shelf (move the files into the shelf, or mount the other disk at data/)"
        )

    def _tmp_dir(self) -> Path:
        """The temporary folder, made if missing; UnsafePath if it is a link out of the root."""
        real, _st, linked = self._resolve("tmp")
        if linked and not real.startswith(self._root_prefix):
            raise UnsafePath(self._link_message("tmp", "a temporary file", real))
        self._mkdir(real)
        return Path(real)

    def _data_dir(self, relative: str) -> Path:
        """The folder ``relative`` under ``data/``, checked, then made if missing.

        A link on the way is resolved (realpath() keeps the parts that do
        not exist yet), so one out of ``data/`` is refused before
        ``makedirs`` could create folders through it.
        """
        real, _st, linked = self._resolve(relative)
        if linked and not self._in_data(real):
            raise UnsafePath(self._link_message(relative, "a new data file", real))
        self._mkdir(real)
        return Path(real)

    def _mkdir(self, directory: str) -> None:
        if directory not in self._made_dirs:
            os.makedirs(directory, exist_ok=True)
            self._made_dirs.add(directory)

    # -- writing -------------------------------------------------------------------

    @contextlib.contextmanager
    def new_file(self, run: int, name: str, suffix: str) -> Iterator[tuple[Path, str]]:
        """Give a temporary path to write; on success move it into ``data/``.

        Yields ``(temporary_path, final_relative_path)``.  If the body
        raises, the temporary file is removed and nothing appears in ``data/``.
        """
        if self.readonly:
            raise ReadOnlyShelf(f"the datastore {self.root} is read-only")
        token = uuid.uuid4().hex[:12]
        relative = f"data/{run:06d}/{_file_stem(name)}.{token}{suffix}"
        folder, _, base = relative.rpartition("/")
        tmp = self._tmp_dir() / f"{token}{suffix}"
        try:
            yield tmp, relative
            crashpoint("datastore.written")
            if self.durable:
                _fsync_file(tmp)
            final_dir = self._data_dir(folder)
            os.replace(tmp, final_dir / base)
            if self.durable:
                _fsync_dir(final_dir)
            crashpoint("datastore.renamed")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def remove(self, relatives: Iterable[str], run: int, name: str) -> None:
        """Delete data files of dataset ``name`` of ``run`` no longer referenced (best effort).

        The file names come from registry rows, which may have been edited:
        only files labshelf named for that dataset (:func:`labshelf_named`), in
        a folder that really is under ``data/``, are deleted; anything else is
        left alone.  A link is deleted itself, never what it points to.
        """
        for relative in relatives:
            if not labshelf_named(relative, run, name):
                continue
            folder, _, base = relative.rpartition("/")
            with contextlib.suppress(OSError, UnsafePath):
                real, _st, linked = self._resolve(folder)
                if not linked or self._in_data(real):
                    os.unlink(os.path.join(real, base))

    # -- listing -------------------------------------------------------------------

    def entries(self, folder: str = "data") -> Iterator[Entry]:
        """Everything under ``data/`` (or ``tmp/``), relative to the root; links are listed, never entered.

        A ``data/`` or ``tmp/`` that is itself a link is entered only if it
        stays inside the shelf.
        """
        top = os.path.join(self._root_text, folder)
        try:
            st = os.lstat(top)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(top)
            if not real.startswith(self._root_prefix):
                yield Entry(folder, "link", st.st_size, st.st_mtime)
                return
            top = real
        yield from _walk(top, folder)

    def files(self) -> Iterator[str]:
        """Every regular data file under ``data/``, relative to the root."""
        return (e.relative for e in self.entries("data") if e.kind == "file")

    def orphans(self, referenced: Iterable[str], older_than: float = 3600.0) -> list[str]:
        """Data and temporary files nothing refers to, older than ``older_than`` s.

        The age limit spares files another process has just written and is
        about to commit.
        """
        known = set(referenced)
        limit = time.time() - older_than
        found = [e.relative for e in self.entries("data") if e.kind == "file" and e.relative not in known and e.mtime < limit]
        found += [e.relative for e in self.entries("tmp") if e.kind == "file" and e.mtime < limit]
        return sorted(found)


def _walk(top: str, relative: str) -> Iterator[Entry]:
    try:
        listing = list(os.scandir(top))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in listing:
        below = f"{relative}/{entry.name}"
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # removed meanwhile
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(entry.path, below)
        else:
            kind = "file" if stat.S_ISREG(st.st_mode) else "link" if stat.S_ISLNK(st.st_mode) else "other"
            yield Entry(below, kind, st.st_size, st.st_mtime)


def _data_parts(relative: str) -> list[str]:
    """The parts of a data file's relative path, or UnsafePath if it is not plainly under ``data/``."""
    parts = relative.split("/") if isinstance(relative, str) else []
    if len(parts) < 2 or parts[0] != "data" or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
        raise UnsafePath(
            f"the registry names the data file {relative!r}, which is not under data/; "
            "a dataset's files must lie under the shelf's data/ folder"
        )
    return parts


#: What follows the dataset name's stem in a file name labshelf made: the
#: component path of a composite's part (``.psf``), the random token, the suffix.
_OWN_TAIL = re.compile(r"(?:\.[\w]*)*\.[0-9a-f]{12}(?:\.[A-Za-z0-9]+)*\Z")


def labshelf_named(relative: str, run: int, name: str) -> bool:
    """Whether ``relative`` is a file :meth:`Datastore.new_file` would name for dataset ``name`` of ``run``.

    That is ``data/<run>/<name>.<12 hex digits><suffix>`` (or of a part
    ``name.<component>`` of a composite).
    """
    if not isinstance(relative, str) or "\0" in relative:
        return False
    prefix = f"data/{run:06d}/{_file_stem(name)}"
    if not relative.startswith(prefix):
        return False
    return _OWN_TAIL.match(relative, len(prefix)) is not None and ".." not in relative.split("/")


#: Longest part of a data file's path taken from a dataset name, in UTF-8
#: bytes: with ``.{token}{suffix}`` it stays under the 255 bytes most file
#: systems allow, while names may have parts of 255 multi-byte characters.
_MAX_PART_BYTES = 200


def _file_stem(name: str) -> str:
    """The dataset name as a relative path, each part cut to fit a file name.

    Cutting is safe: the registry records the exact file of each dataset, and
    the random token keeps the files of two long names apart.
    """
    parts = (part.encode()[:_MAX_PART_BYTES].decode(errors="ignore") for part in name.split("/"))
    return "/".join(parts)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
