"""What this user confirmed a shelf may do beyond its own folder: run a context file, read a file.

A shelf's folder and registry may come from someone else, so what its
registry names outside the folder is not what its reader chose:

- **context files** (``trusted-contexts.json``): a context file inside the
  shelf's folder runs only when the user asks for code to run
  (``reprocess``); one *outside* the folder — an absolute path, a relative
  one that climbs out with ``..``, a symlink leading out — runs only once
  this user confirmed that this shelf may run that file.  ``set_context``
  (``labshelf context set``) adds the pair: choosing the file is the
  confirmation.  For one call without remembering,
  ``reprocess(trust_context=PATH)`` (``labshelf reprocess --trust-context
  PATH``) names the file the caller accepts — a path, not a yes: a script
  saying ``True`` would run whatever file the shelf names next.
- **ingested files** (``trusted-data.json``): a file kept in place by
  ``run.ingest`` (``transfer="direct"`` or ``"symlink"``) lies outside the
  shelf, so it is read only where this user confirmed that this shelf may
  read it: the file itself, or a folder holding it.  ``run.ingest`` adds the
  (shelf, file) pair (choosing the file is the confirmation);
  ``labshelf.trust_data`` (``labshelf trust-data SHELF PATH``) adds one for
  another user of the shelf.

The confirmations cannot be kept in the shelf (whoever wrote the shelf could
write them too), so they are kept per user: small JSON lists of (shelf
folder, path) pairs in ``$XDG_CONFIG_HOME/labshelf/``
(``~/.config/labshelf/...`` by default), written with mode 0600 and ignored
when another user owns them or may write them.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import ContextError

__all__ = ["AllowList", "allow_list", "confirmed", "confirm", "CONTEXTS", "DATA"]


class AllowList:
    """One per-user list of (shelf folder, path) pairs, kept in ``$XDG_CONFIG_HOME/labshelf/<file>``.

    ``key`` names the path's field in the JSON entries (``context``, ``path``).
    Every method reads the file anew: another process (``labshelf
    trust-data``) may have added to it meanwhile.
    """

    def __init__(self, file: str, key: str):
        self.file = file
        self.key = key

    def path(self) -> Path:
        """Where this user's confirmations are kept."""
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
        return Path(base) / "labshelf" / self.file

    def entries(self) -> list[dict[str, Any]]:
        """The confirmed entries; none when the list is missing, unreadable or not this user's own."""
        try:
            with open(self.path(), "rb") as f:
                status = os.fstat(f.fileno())
                # A list someone else could have written confirms nothing.
                if hasattr(os, "getuid") and (status.st_uid != os.getuid() or status.st_mode & 0o022):
                    return []
                data = json.loads(f.read())
        except (OSError, ValueError):
            return []  # none yet, or unreadable: nothing is confirmed (and add() writes a new one)
        entries = data.get("confirmed") if isinstance(data, dict) else None
        return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []

    def has(self, shelf_root: Path, path: Path, *, below: bool = False) -> bool:
        """Whether the pair (``shelf_root``, ``path``) is confirmed (both resolved).

        ``below``: an entry naming a folder also confirms every path under it.
        """
        shelf, wanted = str(shelf_root), str(path)
        for entry in self.entries():
            if entry.get("shelf") != shelf:
                continue
            said = entry.get(self.key)
            if not isinstance(said, str):
                continue
            if said == wanted or (below and wanted.startswith(os.path.join(said, ""))):
                return True
        return False

    def add(self, shelf_root: Path, path: Path) -> None:
        """Remember the pair (both resolved); OSError if the list cannot be written."""
        if self.has(shelf_root, path):
            return
        target = self.path()
        entries = [*self.entries(), {"shelf": str(shelf_root), self.key: str(path), "confirmed": time.time()}]
        text = json.dumps({"confirmed": entries}, indent=1)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Written aside and renamed: a reader never sees half a list.
        fd, tmp = tempfile.mkstemp(prefix=".trusted-", dir=target.parent)  # mode 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


#: Context files outside a shelf that it may run.
CONTEXTS = AllowList("trusted-contexts.json", "context")
#: Ingested files (or folders of them) outside a shelf that it may read.
DATA = AllowList("trusted-data.json", "path")


def allow_list() -> Path:
    """Where this user's confirmations of context files are kept."""
    return CONTEXTS.path()


def confirmed(shelf_root: Path, context: Path) -> bool:
    """Whether this user confirmed that the shelf in ``shelf_root`` may run ``context`` (both resolved)."""
    return CONTEXTS.has(shelf_root, context)


def confirm(shelf_root: Path, context: Path) -> None:
    """Remember that the shelf in ``shelf_root`` may run ``context`` (both resolved); ContextError if it cannot."""
    try:
        CONTEXTS.add(shelf_root, context)
    except OSError as exc:
        raise ContextError(
            f"cannot remember your confirmation of the context file {context} in {CONTEXTS.path()}: "
            f"{exc.strerror or exc}; set XDG_CONFIG_HOME to a folder of yours, or pass trust_context= "
            "(--trust-context) when reprocessing",
            path=str(context),
        ) from None
