"""The context files outside a shelf that this user confirmed it may run.

A shelf's folder and registry may come from someone else, so the context
file its registry records is not code its reader chose.  A context file
inside the shelf's folder runs only when the user asks for code to run
(``reprocess``); one *outside* the folder — an absolute path, a relative one
that climbs out with ``..``, a symlink leading out — runs only once this
user confirmed that this shelf may run that file.

The confirmation cannot be kept in the shelf (whoever wrote the shelf could
write it too), so it is kept per user: a small JSON list of (shelf folder,
context file) pairs in ``$XDG_CONFIG_HOME/labshelf/trusted-contexts.json``
(``~/.config/labshelf/...`` by default), written with mode 0600 and ignored
when another user owns it or may write it.  ``set_context`` (``labshelf
context set``) adds the pair: choosing the file is the confirmation.  For
one call without remembering, ``reprocess(trust_context=PATH)`` (``labshelf
reprocess --trust-context PATH``) names the file the caller accepts — a
path, not a yes: a script saying ``True`` would run whatever file the shelf
names next.
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

__all__ = ["allow_list", "confirmed", "confirm"]

_FILE = "trusted-contexts.json"


def allow_list() -> Path:
    """Where this user's confirmations are kept."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "labshelf" / _FILE


def _pairs() -> list[dict[str, Any]]:
    path = allow_list()
    try:
        with open(path, "rb") as f:
            status = os.fstat(f.fileno())
            # A list someone else could have written confirms nothing.
            if hasattr(os, "getuid") and (status.st_uid != os.getuid() or status.st_mode & 0o022):
                return []
            data = json.loads(f.read())
    except (OSError, ValueError):
        return []  # none yet, or unreadable: nothing is confirmed (and confirm() writes a new one)
    entries = data.get("confirmed") if isinstance(data, dict) else None
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def confirmed(shelf_root: Path, context: Path) -> bool:
    """Whether this user confirmed that the shelf in ``shelf_root`` may run ``context`` (both resolved)."""
    shelf, file = str(shelf_root), str(context)
    return any(e.get("shelf") == shelf and e.get("context") == file for e in _pairs())


def confirm(shelf_root: Path, context: Path) -> None:
    """Remember that the shelf in ``shelf_root`` may run ``context`` (both resolved); ContextError if it cannot."""
    if confirmed(shelf_root, context):
        return
    path = allow_list()
    entries = [*_pairs(), {"shelf": str(shelf_root), "context": str(context), "confirmed": time.time()}]
    text = json.dumps({"confirmed": entries}, indent=1)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Written aside and renamed: a reader never sees half a list.
        fd, tmp = tempfile.mkstemp(prefix=".trusted-", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise ContextError(
            f"cannot remember your confirmation of the context file {context} in {path}: "
            f"{exc.strerror or exc}; set XDG_CONFIG_HOME to a folder of yours, or pass trust_context= "
            "(--trust-context) when reprocessing",
            path=str(context),
        ) from None
