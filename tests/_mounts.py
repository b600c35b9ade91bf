"""Real file-system conditions for tests: read-only places and full disks, and folder snapshots.

A read-only place is made the way it happens to users.  As root (CI), a
small tmpfs is mounted and then remounted read-only: root ignores permission
bits, so chmod would simulate nothing.  As another user, the files and
folders lose their write bits, which that user cannot bypass.  A full disk
is a tiny tmpfs filled to the last block (root only).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

AS_ROOT = os.geteuid() == 0


def _run(*args: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()}")


@contextlib.contextmanager
def tmpfs(where: Path, size: str = "32m") -> Iterator[Path]:
    """A fresh tmpfs mounted at ``where`` (made here), always unmounted and removed after."""
    where.mkdir()
    try:
        _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "labshelf-test", str(where))
    except RuntimeError as exc:
        where.rmdir()
        pytest.fail(f"running as root but cannot mount a tmpfs for a real read-only/full place: {exc}")
    try:
        yield where
    finally:
        try:
            _run("umount", str(where))
        except RuntimeError:
            # Something still holds a file open (a failed test's shelf):
            # detach now, the kernel frees it when the last user goes.
            _run("umount", "-l", str(where))
        where.rmdir()


@contextlib.contextmanager
def writable_place(where: Path) -> Iterator[Path]:
    """A folder to fill, that :func:`make_read_only` can turn read-only; cleaned up after."""
    if AS_ROOT:
        with tmpfs(where) as mounted:
            yield mounted
        return
    where.mkdir()
    try:
        yield where
    finally:
        # Give the write bits back so pytest can remove tmp_path.
        for dirpath, dirs, files in os.walk(where):
            for name in [*dirs, *files]:
                path = Path(dirpath) / name
                if not path.is_symlink():
                    path.chmod(path.stat().st_mode | stat.S_IWUSR)
        where.chmod(where.stat().st_mode | stat.S_IWUSR)


def make_read_only(where: Path) -> None:
    """Make a place from :func:`writable_place` read-only for this process, for real."""
    if AS_ROOT:
        _run("mount", "-o", "remount,ro", str(where))
    else:
        for dirpath, dirs, files in os.walk(where, topdown=False):
            for name in [*files, *dirs]:
                path = Path(dirpath) / name
                if not path.is_symlink():
                    path.chmod(path.stat().st_mode & ~0o222)
        where.chmod(where.stat().st_mode & ~0o222)
    probe = where / ".probe"
    with pytest.raises(OSError):
        probe.write_text("x")


@contextlib.contextmanager
def full_disk(where: Path) -> Iterator[Path]:
    """A tiny tmpfs at ``where`` with every block taken: the next write fails with ENOSPC."""
    if not AS_ROOT:
        pytest.skip("a full disk is made by mounting a tiny tmpfs, which needs root (CI runs as root)")
    with tmpfs(where, size="256k") as mounted:
        # Unbuffered, so the write that fails is ours and closing has nothing left to flush.
        fd = os.open(mounted / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)
        yield mounted


def snapshot(folder: Path) -> dict[str, tuple[str, str]]:
    """Every entry under ``folder``: kind and content (file bytes' hash, link target), by relative path."""
    found: dict[str, tuple[str, str]] = {}
    for dirpath, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            path = Path(dirpath) / name
            relative = path.relative_to(folder).as_posix()
            if path.is_symlink():
                found[relative] = ("link", os.readlink(path))
            elif path.is_dir():
                found[relative] = ("dir", "")
            else:
                found[relative] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    return found
