"""Several processes write one shelf at once: nothing is lost or duplicated,
and no raw "database is locked" reaches a user.

The writers are real processes: four workers (this file run as a script,
with the venv's python) shared by the tests of this file, so that their
start-up is paid once.  For each task a worker opens the test's shelf, says
"ready", and all four start writing when the test sends "go", so their writes
overlap; then it closes the shelf and says "done" (or "error" and the
traceback).  They open the shelf in different ways (absolute and relative
folder, and on PostgreSQL the URL with its schema), as an experiment, a
notebook and a reprocessing job would.  Every value is a pure function of
(writer, step), so the test knows exactly what the shelf must hold.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any

import numpy as np

WRITERS = 4
PUTS = 500
APPENDS = 100
ROW = 5000  # float64 elements of one appended row of the file-backed array (40 KB)
MUTATES = 25
MUTATED_SHAPE = (WRITERS * MUTATES, 640)  # float64: 500 KiB, file-backed
END_OF_TASK = "--- end of task"


def plan(k: int, i: int) -> tuple[str, dict[str, int] | None]:
    """Name and data ID of writer ``k``'s put number ``i``."""
    if i % 10 == 9:
        return "shared/last", None  # every writer replaces the one same dataset
    if i % 10 == 4:
        return f"shared/y{i}", {"writer": k}  # same names, told apart by data ID
    return f"w{k}/x{i}", None


def put_value(k: int, i: int) -> Any:
    tag = k * 100_000 + i
    if i % 50 == 0:
        return np.arange(8192, dtype=np.float64) + tag  # 64 KiB: a data file
    return (tag, tag + 0.5, f"w{k}i{i}")[i % 3]


def append_row(kind: str, k: int, i: int) -> Any:
    tag = float(k * 1000 + i)
    if kind == "small":
        return tag
    return np.arange(ROW, dtype=np.float64) / 8192 + tag  # exact in float64


def same(got: Any, expected: Any) -> bool:
    if isinstance(expected, np.ndarray):
        return isinstance(got, np.ndarray) and got.dtype == expected.dtype and bool(np.array_equal(got, expected))
    return type(got) is type(expected) and got == expected


# -- the worker processes ------------------------------------------------------------


def put_task(shelf: Any, k: int, run: int) -> None:
    """PUTS puts; into run ``run``, or into a new run of its own if it is 0."""
    target = shelf.run(run) if run else shelf.new_run(experiment=f"writer{k}")
    print(f"run {target.number}", flush=True)
    versions = []
    for i in range(PUTS):
        name, data_id = plan(k, i)
        ref = target.put(name, put_value(k, i), data_id=data_id)
        if name == "shared/last":
            versions.append(ref.version)
    print("versions", *versions, flush=True)


def append_task(shelf: Any, k: int, run: int, kind: str) -> None:
    target = shelf.run(run)
    for i in range(APPENDS):
        target.append(kind, append_row(kind, k, i))
        # A small inline append takes well under a millisecond: without a
        # pause one writer can finish before the others are scheduled on
        # this 2-CPU machine, and the test would not test concurrent appends.
        time.sleep(0.001)


def mutate_task(shelf: Any, k: int, run: int) -> None:
    """Set row (k, i) of the shared array to k * 1000 + i, one mutate each."""
    target = shelf.run(run)
    for i in range(MUTATES):
        target.mutate("mutated", k * MUTATES + i, float(k * 1000 + i))


TASKS = {"put": put_task, "append": append_task, "mutate": mutate_task}


def worker_main() -> None:
    """Run tasks read from stdin, one JSON line each, until stdin closes."""
    import labshelf
    import labshelf.shelf  # noqa: F401 - pay the imports before the first task

    print("up", flush=True)
    while task_line := sys.stdin.readline():
        task = json.loads(task_line)
        try:
            os.chdir(task["cwd"])
            how = dict(task["open"])
            shelf = labshelf.open(how.pop("path"), **how)
            try:
                print("ready", flush=True)
                if sys.stdin.readline().strip() != "go":
                    return
                TASKS[task["do"]](shelf, **task["args"])
            finally:
                shelf.close()
        except Exception:
            print("error", json.dumps(traceback.format_exc()), flush=True)
        else:
            print("done", flush=True)
        print(END_OF_TASK, file=sys.stderr, flush=True)


if __name__ == "__main__":
    # A worker stops here, before importing pytest and the fixtures.
    worker_main()
    sys.exit(0)


# -- the tests (the parent side) ----------------------------------------------------

import contextlib  # noqa: E402
import itertools  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

import labshelf  # noqa: E402
from _children import Child, Spawn, spawner  # noqa: E402
from _shelves import make_shelf  # noqa: E402

pytestmark = pytest.mark.slow


class Workers:
    """WRITERS worker processes, started once for the tests of this file."""

    def __init__(self, spawn: Spawn):
        self._spawn = spawn
        self._children: list[Child] = []

    def run(self, do: str, specs: list[tuple[dict[str, Any], Path]], args: list[dict[str, Any]]) -> list[list[str]]:
        """Worker k opens the shelf as ``specs[k]`` says and does ``do`` with ``args[k]``, all at once.

        Returns what each printed.  Fails if one raised or wrote a lock error
        or a traceback to stderr; a failure replaces the workers.
        """
        try:
            if not self._children:
                self._children = [self._spawn("worker") for _ in range(WRITERS)]
                for child in self._children:
                    child.expect("up")
            for child, (how, cwd), kwargs in zip(self._children, specs, args, strict=True):
                child.send(json.dumps({"do": do, "open": how, "cwd": str(cwd), "args": kwargs}))
            for k, child in enumerate(self._children):
                said = child.wait_for(lambda line: line == "ready" or line.startswith("error "), "'ready'")
                assert said == "ready", f"writer {k} could not open the shelf:\n{json.loads(said[6:])}"
            for child in self._children:  # all at once: the writes overlap
                child.send("go")
            outputs = []
            for k, child in enumerate(self._children):
                lines = child.read_until(lambda line: line == "done" or line.startswith("error "), "the end", 180)
                err = child.stderr_until(END_OF_TASK, timeout=30)
                assert lines[-1] == "done", f"writer {k} failed:\n{json.loads(lines[-1][6:])}"
                assert "locked" not in err.lower() and "Traceback" not in err, f"writer {k} stderr:\n{err}"
                outputs.append(lines[:-1])
            return outputs
        except BaseException:
            self.stop()  # a worker may be stuck mid-task: the next test starts afresh
            raise

    def stop(self) -> None:
        for child in self._children:
            child.kill()
        for child in self._children:
            with contextlib.suppress(AssertionError):  # keep the error that brought us here
                child.finish(timeout=10)
        self._children = []


@pytest.fixture(scope="module")
def workers() -> Iterator[Workers]:
    with spawner(Path(__file__).resolve()) as spawn:
        yield Workers(spawn)


def open_specs(shelf: labshelf.Shelf) -> list[tuple[dict[str, Any], Path]]:
    """How writer k opens the shelf (arguments of open()), and its working directory.

    Absolute folder, relative folder, and on PostgreSQL the URL with schema:
    all must reach the same shelf, and be serialised with each other.
    """
    folder = shelf.root
    absolute = {"path": str(folder)}
    relative = {"path": folder.name}
    third = relative
    if shelf.info()["backend"] == "postgresql":
        marker = json.loads((folder / "labshelf.json").read_text())
        third = {"path": marker["registry"], "schema": marker["schema"], "root": str(folder)}
    return [(how, folder.parent) for how in (absolute, relative, third, absolute)][:WRITERS]


def reported_versions(lines: list[str]) -> list[int]:
    """The versions a writer's puts of shared/last returned."""
    line = next(line for line in lines if line.startswith("versions"))
    return [int(v) for v in line.split()[1:]]


def check_puts(found: list[tuple[Any, Any]], writers: list[int], versions: list[int]) -> None:
    """A run holds every put of ``writers``, once each, with the right value.

    ``found`` is (ref, value) of each dataset of the run.  (The checks never
    take a Shelf argument: pytest's report of a failure shows arguments, and
    a Shelf's repr queries the registry, after the shelf was closed.)
    """
    refs = [ref for ref, _ in found]
    keys = [(ref.name, json.dumps(dict(ref.data_id), sort_keys=True)) for ref in refs]
    assert len(set(keys)) == len(keys), "a dataset appears twice"
    expected: dict[tuple[str, str], list[Any]] = {}
    for k in writers:
        for i in range(PUTS):
            name, data_id = plan(k, i)
            expected.setdefault((name, json.dumps(data_id or {}, sort_keys=True)), []).append(put_value(k, i))
    assert set(keys) == set(expected), (
        f"missing {sorted(set(expected) - set(keys))[:5]}, unexpected {sorted(set(keys) - set(expected))[:5]}"
    )
    for (ref, value), key in zip(found, keys, strict=True):
        if ref.name == "shared/last":
            # The last put of one of the writers wins, and no put was lost:
            # every put made a new version.
            finals = [put_value(k, PUTS - 1) for k in writers]
            assert any(same(value, f) for f in finals), value
            puts = len(writers) * (PUTS // 10)
            assert ref.version == puts
            assert sorted(versions) == list(range(1, puts + 1)), "two puts got one version"
        else:
            (wanted,) = expected[key]
            assert same(value, wanted), key
            assert ref.version == 1


def test_writers_into_one_run(backend: str, tmp_path: Path, request: pytest.FixtureRequest, workers: Workers) -> None:
    with make_shelf(backend, tmp_path, request) as shelf:
        run = shelf.new_run(experiment="shared").number
        outputs = workers.run("put", open_specs(shelf), [{"k": k, "run": run} for k in range(WRITERS)])
    versions = [v for lines in outputs for v in reported_versions(lines)]
    with labshelf.open(tmp_path / "test.shelf") as shelf:
        assert [r.number for r in shelf] == [run]
        refs = shelf.datasets(run)  # in the order they were committed
        check_puts([(ref, shelf.read(ref)) for ref in refs], list(range(WRITERS)), versions)
        assert shelf.orphans(older_than=0) == []
    # The test did test something: the writers' puts interleaved (one after
    # the other they would change writer WRITERS - 1 times).
    writer_of = [ref.name.split("/")[0] for ref in refs if ref.name.startswith("w")]
    assert sum(a != b for a, b in itertools.pairwise(writer_of)) > WRITERS - 1


def test_writers_each_into_a_new_run(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, workers: Workers
) -> None:
    with make_shelf(backend, tmp_path, request) as shelf:
        outputs = workers.run("put", open_specs(shelf), [{"k": k, "run": 0} for k in range(WRITERS)])
    numbers = [int(next(line for line in lines if line.startswith("run ")).split()[1]) for lines in outputs]
    assert sorted(numbers) == list(range(1, WRITERS + 1)), f"run numbers {numbers}"
    with labshelf.open(tmp_path / "test.shelf") as shelf:
        assert {r.number: r.experiment for r in shelf} == {n: f"writer{k}" for k, n in enumerate(numbers)}
        for k, (number, lines) in enumerate(zip(numbers, outputs, strict=True)):
            found = [(ref, shelf.read(ref)) for ref in shelf.datasets(number)]
            check_puts(found, [k], reported_versions(lines))
        assert shelf.orphans(older_than=0) == []


@pytest.mark.parametrize("kind", ["small", "big"])
def test_appends_to_one_array(
    backend: str, kind: str, tmp_path: Path, request: pytest.FixtureRequest, workers: Workers
) -> None:
    """4 processes append to the same array: every row arrives once, whole.

    ``small`` stays inline in the registry; ``big`` (rows of 5,000 float64)
    moves to a data file on the first append and grows by segment files.
    """
    with make_shelf(backend, tmp_path, request) as shelf:
        run = shelf.new_run().number
        shelf.run(run).put(kind, np.empty((0,) if kind == "small" else (0, ROW), dtype=np.float64))
        workers.run("append", open_specs(shelf), [{"k": k, "run": run, "kind": kind} for k in range(WRITERS)])
    with labshelf.open(tmp_path / "test.shelf") as shelf:
        ref = shelf.find(kind, run=run)
        assert ref.version == 1 + WRITERS * APPENDS
        assert (ref.storage.inline is None) == (kind == "big")
        array = shelf.read(ref)
        if kind == "small":
            assert array.shape == (WRITERS * APPENDS,)
            tags = array
        else:
            assert array.shape == (WRITERS * APPENDS, ROW)
            tags = array[:, 0]
            assert np.array_equal(array, tags[:, None] + np.arange(ROW) / 8192), "a row is not whole"
        expected = [float(k * 1000 + i) for k in range(WRITERS) for i in range(APPENDS)]
        assert sorted(tags.tolist()) == expected, "rows lost or duplicated"
        for k in range(WRITERS):  # each writer's rows keep its order
            mine = tags[(tags >= k * 1000) & (tags < (k + 1) * 1000)]
            assert np.array_equal(mine, np.sort(mine))
        writer_of = (tags // 1000).tolist()
        assert sum(a != b for a, b in itertools.pairwise(writer_of)) > WRITERS - 1, "the appends did not interleave"
        assert shelf.orphans(older_than=0) == []


def test_mutates_of_one_array(backend: str, tmp_path: Path, request: pytest.FixtureRequest, workers: Workers) -> None:
    """4 processes mutate rows of one file-backed array: no mutate is lost.

    Each mutate reads the array, changes a row and writes it whole; one that
    raced with another must be redone on the newer version, never overwrite it.
    """
    with make_shelf(backend, tmp_path, request) as shelf:
        run = shelf.new_run().number
        shelf.run(run).put("mutated", np.zeros(MUTATED_SHAPE))
        workers.run("mutate", open_specs(shelf), [{"k": k, "run": run} for k in range(WRITERS)])
    expected = np.zeros(MUTATED_SHAPE)
    for k in range(WRITERS):
        for i in range(MUTATES):
            expected[k * MUTATES + i] = k * 1000 + i
    with labshelf.open(tmp_path / "test.shelf") as shelf:
        ref = shelf.find("mutated", run=run)
        assert ref.version == 1 + WRITERS * MUTATES
        assert same(shelf.read(ref), expected), "a mutate was lost"
        assert shelf.orphans(older_than=0) == []
