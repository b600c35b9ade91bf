"""Child processes for the crash and concurrency tests.

A test file that needs real writer processes runs *itself* as a script with
the venv's python (``python tests/test_crash.py writer ...``): the same file
holds the code of the child and the checks of the parent, so both use one
deterministic generator.  :class:`Child` starts such a process and reads its
stdout line by line on a thread, so the test can wait for a line (a real
signal, never a sleep) with a bounded timeout.
"""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest


class Child:
    """A script process; stdout lines are collected as they come."""

    def __init__(self, script: Path, args: list[str], *, env: Mapping[str, str] | None = None):
        child_env = {k: v for k, v in os.environ.items() if k != "LABSHELF_CRASHPOINT"}
        child_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        self._errors: queue.Queue[str | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._pump_stdout, daemon=True),
            threading.Thread(target=self._pump_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                line = line.rstrip("\n")
                self.lines.append(line)
                self._queue.put(line)
        self._queue.put(None)

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        with self.proc.stderr:
            for line in self.proc.stderr:
                self._stderr.append(line)
                self._errors.put(line)
        self._errors.put(None)

    @property
    def stderr(self) -> str:
        """What the process wrote to stderr (complete once it has ended)."""
        return "".join(self._stderr)

    def expect(self, word: str, timeout: float = 60.0) -> None:
        """Wait for the stdout line ``word``; fail at EOF or after ``timeout`` s."""
        self.read_until(lambda line: line == word, repr(word), timeout)

    def wait_for(self, match: Callable[[str], bool], what: str, timeout: float = 60.0) -> str:
        """Wait for a stdout line that ``match``es (lines before it are skipped); return it."""
        return self.read_until(match, what, timeout)[-1]

    def read_until(self, match: Callable[[str], bool], what: str, timeout: float = 60.0) -> list[str]:
        """The stdout lines up to and including the first that ``match``es.

        Fails at EOF or after ``timeout`` s, showing stderr.
        """
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {what} from {self.proc.args} within {timeout} s") from None
            if line is None:
                self.finish(timeout=10)
                raise AssertionError(
                    f"{self.proc.args} ended (rc {self.proc.returncode}) before {what}:\n{self.stderr}"
                )
            seen.append(line)
            if match(line):
                return seen

    def stderr_until(self, marker: str, timeout: float = 60.0) -> str:
        """Wait for the stderr line ``marker``; return what came before it since the last call."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            try:
                line = self._errors.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {marker!r} on stderr of {self.proc.args} within {timeout} s") from None
            if line is None or line.rstrip("\n") == marker:
                return "".join(seen)
            seen.append(line)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        """SIGKILL, as ``kill -9`` would."""
        if self.proc.poll() is None:
            self.proc.kill()

    def finish(self, timeout: float = 60.0) -> int:
        """Wait (bounded) for the process and all its output; return its exit code."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError(f"{self.proc.args} did not end within {timeout} s; killed it") from None
        for thread in self._threads:
            thread.join(timeout=10)
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):  # the pipe breaks when the reader died
                self.proc.stdin.close()
        return self.proc.returncode


Spawn = Callable[..., Child]


@contextlib.contextmanager
def spawner(script: Path) -> Iterator[Spawn]:
    """Start children of ``script``; on exit kill and reap every one of them."""
    started: list[Child] = []

    def spawn(*args: object, env: Mapping[str, str] | None = None) -> Child:
        child = Child(script, [str(a) for a in args], env=env)
        started.append(child)
        return child

    try:
        yield spawn
    finally:
        for child in started:
            child.kill()
        for child in started:
            with contextlib.suppress(AssertionError):
                child.finish(timeout=10)


def spawn_fixture(script: str) -> Callable[[], Iterator[Spawn]]:
    """A pytest fixture ``spawn`` for the test file ``script`` (its ``__file__``)."""

    @pytest.fixture
    def spawn() -> Iterator[Spawn]:
        with spawner(Path(script).resolve()) as start:
            yield start

    return spawn
