"""Crash points for the crash-safety tests.

``LABSHELF_CRASHPOINT=name`` makes the process kill itself with SIGKILL (the
same as ``kill -9``) when it reaches ``crashpoint(name)``.  Unset, a crash
point costs one comparison.
"""

from __future__ import annotations

import os
import signal

_ARMED = os.environ.get("LABSHELF_CRASHPOINT") or None


def crashpoint(name: str) -> None:
    if _ARMED is not None and _ARMED == name:
        os.kill(os.getpid(), signal.SIGKILL)
