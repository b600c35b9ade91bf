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
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from .._faults import crashpoint
from ..errors import InvalidName, ReadOnlyShelf


class Datastore:
    """The data files of one shelf, under ``root``."""

    def __init__(self, root: Path, *, readonly: bool = False, durable: bool = False):
        self.root = Path(root).resolve()
        self._root_text = str(self.root)
        self._root_prefix = os.path.join(self._root_text, "")
        self.readonly = readonly
        self.durable = durable
        self._made_dirs: set[Path] = set()

    def path(self, relative: str) -> Path:
        """Absolute path of a data file, refusing anything outside the root."""
        # A textual check (no resolve(), which stats every path component on
        # every read): relative paths come from the registry and from
        # validated names, which never hold links of their own.
        path = os.path.normpath(os.path.join(self._root_text, relative))
        if not path.startswith(self._root_prefix):
            raise InvalidName(f"data file {relative!r} would lie outside the shelf root {self.root}")
        return Path(path)

    def _mkdir(self, directory: Path) -> None:
        if directory not in self._made_dirs:
            directory.mkdir(parents=True, exist_ok=True)
            self._made_dirs.add(directory)

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
        final = self.path(relative)
        tmp_dir = self.root / "tmp"
        self._mkdir(tmp_dir)
        tmp = tmp_dir / f"{token}{suffix}"
        try:
            yield tmp, relative
            crashpoint("datastore.written")
            if self.durable:
                _fsync_file(tmp)
            self._mkdir(final.parent)
            os.replace(tmp, final)
            if self.durable:
                _fsync_dir(final.parent)
            crashpoint("datastore.renamed")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def remove(self, relatives: Iterable[str]) -> None:
        """Delete data files no longer referenced (best effort)."""
        for relative in relatives:
            with contextlib.suppress(OSError):
                self.path(relative).unlink()

    def files(self) -> Iterator[str]:
        """Every data file under ``data/``, relative to the root."""
        data = self.root / "data"
        if not data.exists():
            return
        for dirpath, _dirs, names in os.walk(data):
            for name in names:
                yield (Path(dirpath) / name).relative_to(self.root).as_posix()

    def orphans(self, referenced: Iterable[str], older_than: float = 3600.0) -> list[str]:
        """Data and temporary files nothing refers to, older than ``older_than`` s.

        The age limit spares files another process has just written and is
        about to commit.
        """
        known = set(referenced)
        limit = time.time() - older_than
        found = [f for f in self.files() if f not in known and self.path(f).stat().st_mtime < limit]
        tmp = self.root / "tmp"
        if tmp.exists():
            found += [
                p.relative_to(self.root).as_posix() for p in tmp.iterdir() if p.stat().st_mtime < limit
            ]
        return sorted(found)


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
