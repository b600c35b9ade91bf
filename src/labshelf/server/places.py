"""Which shelf folders the server may open: paths under its root_dir, checked before anything is opened.

A client names a shelf by a path relative to the server's ``root_dir``
(``data/2026/lab.shelf``).  The path is untrusted text from a URL, and the
folders under ``root_dir`` may hold links made by anyone who can write
there, so :func:`shelf_folder` refuses, before any file is opened:

- anything but ``/``-separated names ending in ``.shelf``: absolute paths,
  ``..`` and ``.`` parts, empty parts, backslashes, NUL and other control
  characters, percent escapes (``%2e%2e``, ``%2f``: a query parameter is
  decoded once, by the server; a path that still holds escapes was encoded
  twice to slip past a check);
- hidden folders (unless the server shows hidden files);
- a symbolic link, at any level, the shelf folder included, that leads
  outside ``root_dir``: each part is resolved in turn and must stay inside.

:func:`find_shelves` lists the ``*.shelf`` folders under ``root_dir`` with a
bounded walk (depth, folder count), never following links into other
folders, never descending into a shelf, skipping hidden folders and
``node_modules``.
"""

from __future__ import annotations

import os
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from ..errors import NotAShelf, UnsafePath

SUFFIX = ".shelf"
MARKER = "labshelf.json"
MAX_PATH = 1024
#: Folders a walk never enters (besides hidden ones): big, and never holding shelves.
SKIPPED = frozenset({"node_modules", "__pycache__", "site-packages"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def inside(root: Path, path: Path) -> bool:
    """Whether ``path`` (resolved) is ``root`` (resolved) or under it."""
    return path == root or root in path.parents


def shelf_folder(root: Path, text: object, *, allow_hidden: bool = False) -> Path:
    """The resolved shelf folder that ``text`` names under ``root`` (itself resolved).

    Raises UnsafePath (refused: it names something outside ``root``, or is
    not a plain relative path) or NotAShelf (nothing there is a shelf).
    """
    if not isinstance(text, str) or not text:
        raise NotAShelf(f"a shelf is a path under the server's root ending in {SUFFIX!r}, like 'data/lab.shelf'")
    shown = text[:80]
    if len(text) > MAX_PATH or _CONTROL.search(text):
        raise UnsafePath(f"{shown!r} is refused: a shelf path is at most {MAX_PATH} characters without control characters")
    if "\\" in text:
        raise UnsafePath(f"{shown!r} is refused: shelf paths use '/' between folders, never '\\'")
    if _ESCAPE.search(text):
        raise UnsafePath(
            f"{shown!r} is refused: it still holds percent escapes after decoding; send the path itself, "
            "URL-encoded once"
        )
    if text.startswith(("/", "~")) or re.match(r"[A-Za-z]:", text):
        raise UnsafePath(f"{shown!r} is refused: a shelf path is relative to the server's root, not absolute")
    parts = text.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafePath(f"{shown!r} is refused: a shelf path is folder names joined by '/', without '.', '..' or '//'")
    if not allow_hidden and any(part.startswith(".") for part in parts):
        raise UnsafePath(f"{shown!r} is refused: hidden folders are not served (ContentsManager.allow_hidden)")
    if not parts[-1].endswith(SUFFIX) or parts[-1] == SUFFIX:
        raise NotAShelf(f"{shown!r} is not a shelf: shelf folders end in {SUFFIX!r}")
    current = root
    for part in parts:
        step = current / part
        if step.is_symlink():
            step = Path(os.path.realpath(step))
            if not inside(root, step):
                raise UnsafePath(f"{shown!r} is refused: {part!r} is a link that leads outside the server's root")
        current = step
    resolved = Path(os.path.realpath(current))
    if not inside(root, resolved):  # pragma: no cover - every link was checked; a race could still get here
        raise UnsafePath(f"{shown!r} is refused: it leads outside the server's root")
    if not resolved.is_dir():
        raise NotAShelf(f"no shelf {shown!r} under the server's root")
    if not (resolved / MARKER).is_file():
        raise NotAShelf(f"{shown!r} is a folder but not a shelf (it has no {MARKER})")
    return resolved


@dataclass(frozen=True, slots=True)
class Found:
    """What a walk of root_dir found: shelf paths (relative, '/'-separated, sorted), and whether it stopped early."""

    shelves: tuple[str, ...]
    truncated: bool


def find_shelves(root: Path, *, depth: int = 4, folders: int = 2000, allow_hidden: bool = False) -> Found:
    """The ``*.shelf`` folders under ``root``, breadth first, at most ``depth`` levels down and ``folders`` folders read.

    ``truncated`` says the walk ran out of folders to read before it was
    done; shelves deeper than ``depth`` are not listed (they still open by
    path).  Links are not followed into folders; a linked shelf folder is
    listed when it leads inside ``root``.
    """
    found: list[str] = []
    queue: deque[tuple[Path, tuple[str, ...]]] = deque([(root, ())])
    read = 0
    truncated = False
    while queue:
        folder, parts = queue.popleft()
        if read >= folders:
            truncated = True
            break
        read += 1
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue  # unreadable: nothing to show there
        for entry in entries:
            name = entry.name
            if (name.startswith(".") and not allow_hidden) or name in SKIPPED:
                continue
            try:
                is_dir = entry.is_dir()  # follows a link, to see whether it is a folder
                link = entry.is_symlink()
            except OSError:
                continue
            if not is_dir:
                continue
            path = Path(entry.path)
            if name.endswith(SUFFIX) and name != SUFFIX:
                if link and not inside(root, Path(os.path.realpath(path))):
                    continue
                if (path / MARKER).is_file():
                    found.append("/".join((*parts, name)))
                continue  # never into a shelf
            if link:
                continue
            if len(parts) + 1 < depth:
                queue.append((path, (*parts, name)))
    return Found(tuple(sorted(found)), truncated)
