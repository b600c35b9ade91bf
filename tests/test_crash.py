"""Crash safety: a kill -9 at any moment of a put never damages datasets
already committed and never leaves a half-written dataset visible.

Every writer here is a real process (this file run as a script, with the
venv's python) that is killed with SIGKILL, by the test at a random moment or
by itself at a named crash point (``LABSHELF_CRASHPOINT``, see
``labshelf._faults``).  The test then opens the shelf afresh and checks every
dataset against a deterministic generator: the value of a dataset is a pure
function of its name and version (or of its round and step), so whatever
moment the kill hit, the state found must be one the generator explains.

The parent closes its own connections before a writer starts, so on SQLite
the killed writer is the only process that had the registry open: the fresh
open afterwards must recover the WAL it left behind.
"""

from __future__ import annotations

import hashlib
import itertools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

# -- the deterministic generator (used by the writer and by the checks) --------------

BIG_N = 131072  # float64 elements: 1 MiB, always file-backed
ROW_N = 2048  # elements of one appended row of grow/big (16 KiB)
B1_OPTIONS = {"compression": "lzf", "chunks": (16384,)}

#: Datasets of the shared run, each changed in place round after round; the
#: value of version v is shared_value(name, v).
SHARED = ("scalar/s0", "big/b0", "big/b1", "grow/small", "grow/big", "mut/big", "mut/small")
#: One writer step after the other, cycling; "once" puts a new dataset of the
#: round's own run, whose value is once_value(round, step).
OPS = ("once", "scalar/s0", "big/b0", "once", "grow/small", "grow/big", "once", "mut/big", "big/b1", "mut/small")


def big_array(seed: int, n: int = BIG_N) -> np.ndarray:
    return np.arange(n, dtype=np.float64) * 0.5 + seed


def grow_row(version: int) -> np.ndarray:
    return np.arange(ROW_N, dtype=np.float64) + version * 1e5


def shared_value(name: str, version: int) -> Any:
    if name == "scalar/s0":  # replacing puts that change type: int, float, str
        return (version * 7, version + 0.25, f"v{version}")[version % 3]
    if name == "big/b0":  # replacing puts alternating file-backed and inline
        return big_array(version) if version % 2 else np.arange(8, dtype=np.int64) + version
    if name == "big/b1":  # replacing puts of a compressed, chunked file
        return big_array(1000 + version)
    if name == "grow/small":  # inline appends that outgrow the registry (16 KiB) into a file at v10
        return np.concatenate([np.arange(2040, dtype=np.float64), 10.0 * np.arange(2, version + 1)])
    if name == "grow/big":  # appends of segment files (merged when small ones pile up)
        head = np.arange(4 * ROW_N, dtype=np.float64).reshape(4, ROW_N)
        return np.vstack([head, *(grow_row(v) for v in range(2, version + 1))])
    if name == "mut/big":  # mutates of a file-backed array: each a new 1 MiB file
        array = big_array(0).reshape(128, 1024)
        for v in range(2, version + 1):
            array[v % 128] = v
        return array
    if name == "mut/small":  # mutates of an inline array
        small = np.zeros(64, dtype=np.int64)
        for v in range(2, version + 1):
            small[v % 64] = v
        return small
    raise AssertionError(f"unexpected dataset {name!r} in the shared run")


def once_value(round_no: int, step: int) -> Any:
    kind = step % 3
    if kind == 0:
        return round_no * 100_000 + step
    if kind == 1:
        return f"r{round_no}s{step}"
    return big_array(round_no * 1000 + step, n=32768)  # 256 KiB: a new data file


def apply_shared(run: Any, name: str, version: int) -> None:
    """The writer's step that makes version ``version`` of shared dataset ``name``."""
    if version == 1 or name in ("scalar/s0", "big/b0", "big/b1"):
        run.put(name, shared_value(name, version), hdf5_options=B1_OPTIONS if name == "big/b1" else None)
    elif name == "grow/small":
        run.append(name, 10.0 * version)
    elif name == "grow/big":
        run.append(name, grow_row(version))
    elif name == "mut/big":
        run.mutate(name, version % 128, float(version))
    elif name == "mut/small":
        run.mutate(name, version % 64, version)
    else:
        raise AssertionError(name)


def same(got: Any, expected: Any) -> bool:
    """Exactly equal: same type, dtype, shape and values."""
    if isinstance(expected, np.ndarray):
        return (
            isinstance(got, np.ndarray)
            and got.dtype == expected.dtype
            and got.shape == expected.shape
            and bool(np.array_equal(got, expected))
        )
    return type(got) is type(expected) and got == expected


def digest(value: Any) -> str:
    h = hashlib.sha256()
    if isinstance(value, np.ndarray):
        h.update(f"{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    else:
        h.update(f"{type(value).__name__}:{value!r}".encode())
    return h.hexdigest()


# -- the processes ------------------------------------------------------------------


def writer_main(root: str, round_no: int, shared_run: int) -> None:
    """Write until killed: one step after the other, each acknowledged on stdout."""
    import labshelf

    print("loaded", flush=True)
    if sys.stdin.readline().strip() != "go":
        return  # the test went away
    shelf = labshelf.open(root)
    shared = shelf.run(shared_run)
    print("ready", flush=True)
    run = shelf.new_run(experiment=f"round{round_no}")
    print(f"run {run.number}", flush=True)
    deadline = time.monotonic() + 30  # never outlive a test that forgot us
    for step in itertools.count():
        if time.monotonic() > deadline:
            print("timeout", flush=True)
            return
        op = OPS[step % len(OPS)]
        if op == "once":
            name = f"once/s{step}"
            run.put(name, once_value(round_no, step))
            print(f"ok {run.number} {name} 1", flush=True)
        else:
            try:
                version = shelf.find(op, run=shared_run).version + 1
            except labshelf.DatasetNotFound:
                version = 1
            apply_shared(shared, op, version)
            print(f"ok {shared_run} {op} {version}", flush=True)


#: The one write of the crash-point test: (value before, how to write, value after).
CRASH_OPS = {
    "put-new": (None, lambda run, n: run.put(n, big_array(7)), big_array(7)),
    "put-replace": (big_array(1), lambda run, n: run.put(n, big_array(2)), big_array(2)),
    "append": (
        big_array(3).reshape(128, 1024),
        lambda run, n: run.append(n, big_array(4, n=64 * 1024).reshape(64, 1024)),
        np.concatenate([big_array(3), big_array(4, n=64 * 1024)]).reshape(192, 1024),
    ),
    "mutate": (
        big_array(5).reshape(128, 1024),
        lambda run, n: run.mutate(n, slice(10, 20), -1.0),
        np.where(np.arange(128)[:, None] // 10 == 1, -1.0, big_array(5).reshape(128, 1024)),
    ),
    # Inline array that outgrows the registry: the file is written inside the
    # registry transaction (only the datastore crash points lie on this path).
    "append-grow": (
        np.arange(2000, dtype=np.float64),
        lambda run, n: run.append(n, np.arange(100, dtype=np.float64) + 5000),
        np.concatenate([np.arange(2000, dtype=np.float64), np.arange(100, dtype=np.float64) + 5000]),
    ),
}
CRASH_POINTS = ("datastore.written", "datastore.renamed", "registry.before-commit", "registry.committed")
BEFORE_COMMIT = CRASH_POINTS[:3]
#: Every write at both sides of the commit.  The datastore crash points lie in
#: the one Datastore.new_file that every file write goes through: they are
#: taken by a put and by the append that moves an inline array to a file
#: inside its registry transaction (a process each costs a second).
CRASH_CASES = [
    *((op, point) for op in ("put-replace", "append-grow") for point in CRASH_POINTS[:2]),
    *((op, point) for op in ("put-new", "put-replace", "append", "mutate") for point in CRASH_POINTS[2:]),
]
#: On PostgreSQL, only the cases where the kill hits inside or right after a
#: registry transaction: the others run exactly the SQLite code.
PG_CRASH_CASES = [(op, point) for op, point in CRASH_CASES if op == "append-grow" or point.startswith("registry.")]


def crash_name(op: str, point: str) -> str:
    return f"{op}/{point.replace('.', '_')}"


def crashpoint_main(root: str, run_no: int, op: str, name: str) -> None:
    import labshelf

    shelf = labshelf.open(root)
    run = shelf.run(run_no)
    print("writing", flush=True)
    CRASH_OPS[op][1](run, name)
    print("survived", flush=True)  # the crash point was never reached


def verify_main(root: str) -> None:
    """Print a digest of every dataset, as a separate process reads them."""
    import labshelf

    with labshelf.open(root, mode="r") as shelf:
        for run in shelf:
            for ref in shelf.datasets(run.number):
                print(run.number, ref.name, ref.version, digest(shelf.read(ref)), flush=True)


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "writer":
        writer_main(args[0], int(args[1]), int(args[2]))
    elif command == "crashpoint":
        crashpoint_main(args[0], int(args[1]), args[2], args[3])
    elif command == "verify":
        verify_main(args[0])
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    # A child process stops here, before importing pytest and the fixtures:
    # that would add a third of a second to each of the many processes.
    main(sys.argv[1:])
    sys.exit(0)


# -- the tests (the parent side) ----------------------------------------------------

import json  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
from collections import Counter  # noqa: E402

import pytest  # noqa: E402

import labshelf  # noqa: E402
from _children import Spawn, spawn_fixture  # noqa: E402
from _shelves import make_shelf  # noqa: E402

pytestmark = pytest.mark.slow
spawn = spawn_fixture(__file__)

#: Kill rounds per backend: each round is one writer process killed at a random moment.
ROUNDS = {"sqlite": 25, "postgres": 8}
#: The kill comes a random time (up to MAX_DELAY_S) after the writer acknowledged
#: a random number of steps (up to MAX_STEPS): anchored to progress rather
#: than to the clock, so a slow or loaded machine still gets as much done.
MAX_STEPS = 24
MAX_DELAY_S = 0.05
#: The most files one interrupted operation can leave behind: an append that
#: merges small segments and is killed after its commit leaves the 8 segments
#: it replaced plus its own new one.
MAX_LEFTOVERS_PER_KILL = 9
WAL = "registry.sqlite3-wal"


def probe_value(round_no: int) -> np.ndarray:
    return np.arange(5000, dtype=np.float64) + round_no  # 40 KB: file-backed


def signature(refs: list[Any]) -> list[tuple[Any, ...]]:
    """What the registry says of the datasets of a run: must not change once committed."""
    return [
        (ref.name, json.dumps(dict(ref.data_id), sort_keys=True), ref.version, ref.storage.inline, ref.storage.files)
        for ref in refs
    ]


class Model:
    """What the test knows is committed, round after round."""

    def __init__(self, root: Path, shared_run: int, probe_run: int):
        self.root = root
        self.shared_run = shared_run
        self.probe_run = probe_run
        self.versions: dict[str, int] = {}  # shared dataset -> committed version
        self.frozen: dict[int, list[tuple[Any, ...]]] = {}  # run of a past round -> signature
        self.round_of: dict[int, int] = {}  # run -> round
        self.acks = 0
        self.leftovers = 0
        self.unacked_commits = 0


def check_round(model: Model, round_no: int, lines: list[str]) -> None:
    """After the kill of round ``round_no``'s writer (which printed ``lines``).

    Opens the shelf afresh: the first connection since the kill.  (The shelf
    is a local, never an argument, of the checks: pytest's report of a failure
    shows arguments, and a Shelf's repr queries the registry after close.)
    """
    acked_run: int | None = None
    acked_shared: dict[str, int] = {}
    acked_once: set[str] = set()
    for line in lines:
        word, *rest = line.split()
        if word == "run":
            acked_run = int(rest[0])
        elif word == "ok":
            run, name, version = int(rest[0]), rest[1], int(rest[2])
            model.acks += 1
            if run == model.shared_run:
                acked_shared[name] = max(version, acked_shared.get(name, 0))
            else:
                assert run == acked_run, line
                acked_once.add(name)
        else:
            assert word in ("loaded", "ready"), f"unexpected writer output {line!r}"

    with labshelf.open(model.root) as shelf:
        # A killed client's COMMIT may still be on its way through its
        # PostgreSQL backend: taking the shelf's write lock waits for that
        # transaction to end, so the orphans counted below are really
        # unreferenced (deleting a file a late commit then references would
        # be this test's doing, not the writer's).
        with shelf._registry.db.write():
            pass
        # The runs: the writer made at most one, and no other process wrote.
        experiments = {run.number: run.experiment for run in shelf}
        mine = [n for n, e in experiments.items() if e == f"round{round_no}"]
        assert len(mine) <= 1, experiments
        if acked_run is not None:
            assert mine == [acked_run]
        assert set(experiments) == {model.shared_run, model.probe_run, *model.frozen, *mine}

        # Leftovers are unreferenced files only, at most one operation's worth;
        # every referenced file is there.  Removing the leftovers loses nothing:
        # all values are read (below and at the end) after they are gone.
        referenced = {f for run in experiments for ref in shelf.datasets(run) for f in ref.storage.files}
        missing = sorted(f for f in referenced if not (shelf.root / f).is_file())
        assert not missing, f"round {round_no}: the registry refers to missing files {missing}"
        leftovers = shelf.orphans(older_than=0)
        assert not set(leftovers) & referenced
        assert all(f.startswith(("data/", "tmp/")) for f in leftovers), leftovers
        assert len(leftovers) <= MAX_LEFTOVERS_PER_KILL, f"round {round_no} left {leftovers}"
        for f in leftovers:
            (shelf.root / f).unlink()
        model.leftovers += len(leftovers)

        # The shared run: each dataset is at the version acknowledged last, or
        # one further (the step in flight committed before the kill, unacknowledged),
        # and reads back exactly as the generator says for that version.
        unacked: list[str] = []
        refs = shelf.datasets(model.shared_run)
        by_name = {ref.name: ref for ref in refs}
        assert len(by_name) == len(refs), "a dataset of the shared run appears twice"
        assert set(by_name) <= set(SHARED)
        for name in SHARED:
            floor = max(model.versions.get(name, 0), acked_shared.get(name, 0))
            ref = by_name.get(name)
            version = 0 if ref is None else ref.version
            assert floor <= version <= floor + 1, (
                f"round {round_no}: {name} is at version {version}; committed/acknowledged was {floor}"
            )
            if version > floor:
                unacked.append(f"{name} v{version}")
            if ref is not None:
                value = shelf.read(ref)  # raises CorruptDataset for a damaged file
                assert same(value, shared_value(name, version)), f"round {round_no}: {name} v{version} differs"
                model.versions[name] = version

        # The round's own run: every acknowledged new dataset, plus at most the
        # one in flight, each complete.
        if mine:
            refs = shelf.datasets(mine[0])
            names = [ref.name for ref in refs]
            assert len(set(names)) == len(names), "a dataset of the round's run appears twice"
            for ref in refs:
                step = int(ref.name.removeprefix("once/s"))
                assert ref.name == f"once/s{step}" and ref.version == 1
                assert same(shelf.read(ref), once_value(round_no, step)), f"round {round_no}: {ref.name} differs"
            assert acked_once <= set(names), f"acknowledged puts lost: {sorted(acked_once - set(names))}"
            unacked += sorted(set(names) - acked_once)
        else:
            assert not acked_once
        assert len(unacked) <= 1, f"round {round_no}: more than the one step in flight committed: {unacked}"
        model.unacked_commits += len(unacked)

        # Runs of earlier rounds: exactly as committed.
        for run, committed in model.frozen.items():
            assert signature(shelf.datasets(run)) == committed, f"run {run} (round {model.round_of[run]}) changed"
        if mine:
            model.frozen[mine[0]] = signature(shelf.datasets(mine[0]))
            model.round_of[mine[0]] = round_no

        # The shelf still takes writes (a file-backed one, so the datastore too).
        shelf.run(model.probe_run).put(f"probe/r{round_no}", probe_value(round_no))
        assert same(shelf.get(f"probe/r{round_no}", run=model.probe_run), probe_value(round_no))


def expected_value(model: Model, run: int, ref: Any) -> Any:
    if run == model.shared_run:
        return shared_value(ref.name, ref.version)
    if run == model.probe_run:
        return probe_value(int(ref.name.removeprefix("probe/r")))
    return once_value(model.round_of[run], int(ref.name.removeprefix("once/s")))


def test_kill_at_random_moments_never_damages_committed_data(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, spawn: Spawn
) -> None:
    rounds = ROUNDS[backend]
    rng = random.Random(0x5EED)
    with make_shelf(backend, tmp_path, request) as shelf:
        root = shelf.root
        model = Model(shelf.root, shelf.new_run(experiment="shared").number, shelf.new_run(experiment="probe").number)
    wal = root / WAL

    # The next writer is started while the current one runs, so its start-up
    # (imports) overlaps: it waits for "go" before it opens the shelf.
    upcoming = spawn("writer", root, 1, model.shared_run)
    for round_no in range(1, rounds + 1):
        writer = upcoming
        writer.expect("loaded")
        if backend == "sqlite":
            # The test's own connections are closed: the writer is about to be
            # the only process with the registry open.
            assert not wal.exists(), "the last connection to close should have checkpointed the WAL"
        writer.send("go")
        writer.expect("ready")
        if round_no < rounds:
            upcoming = spawn("writer", root, round_no + 1, model.shared_run)
        for _ in range(rng.randint(0, MAX_STEPS)):
            writer.wait_for(lambda line: line.startswith("ok "), "an acknowledged step")
        time.sleep(rng.uniform(0.0, MAX_DELAY_S))  # the random moment of the kill, not a synchronisation
        writer.kill()
        rc = writer.finish(timeout=30)
        assert rc == -signal.SIGKILL, f"writer of round {round_no} ended by itself (rc {rc}):\n{writer.stderr}"
        if backend == "sqlite":
            # The killed writer left its WAL (with the commits it acknowledged
            # in it): the open below must recover it.
            assert wal.exists()
            assert wal.stat().st_size > 0 or not any(line.startswith("ok ") for line in writer.lines)
        check_round(model, round_no, writer.lines)

    # Every dataset of every run, read once more after all the kills.
    digests: dict[tuple[int, str, int], str] = {}
    with labshelf.open(root) as shelf:
        for run in shelf:
            for ref in shelf.datasets(run.number):
                value = shelf.read(ref)
                assert same(value, expected_value(model, run.number, ref)), f"run {run.number} {ref.name}"
                digests[(run.number, ref.name, ref.version)] = digest(value)
        with shelf.new_run(experiment="after") as run:
            run.put("big", big_array(42))
        assert same(shelf.get("big", run=run.number), big_array(42))
    # ... and another process reads the same.
    reader = spawn("verify", root)
    assert reader.finish(timeout=60) == 0, reader.stderr
    seen = {(int(r), n, int(v)): d for r, n, v, d in (line.split() for line in reader.lines)}
    del seen[(run.number, "big", 1)]
    assert seen == digests

    # The test did what it claims: every kind of write, many times.
    assert min(model.versions.get(name, 0) for name in SHARED) >= 3, model.versions
    print(
        f"{rounds} kills, {model.acks} acknowledged steps, {model.unacked_commits} unacknowledged commits, "
        f"{model.leftovers} leftover files, versions {model.versions}"
    )


def test_crash_points(backend: str, tmp_path: Path, request: pytest.FixtureRequest, spawn: Spawn) -> None:
    """Each crash point of the write path, for each kind of big write.

    Before the commit the new value is invisible and the old one intact; after
    it the new one is complete.  All cases run at once on one shelf, so the
    kills also land while other writers wait for the registry.
    """
    cases = CRASH_CASES if backend == "sqlite" else PG_CRASH_CASES
    names = {case: crash_name(*case) for case in cases}
    with make_shelf(backend, tmp_path, request) as shelf:
        root = shelf.root
        run = shelf.new_run(experiment="crash points")
        old_files = {}
        for (op, _point), name in names.items():
            before = CRASH_OPS[op][0]
            if before is not None:
                old_files[name] = run.put(name, before).storage.files
    wal = root / WAL
    if backend == "sqlite":
        assert not wal.exists()

    children = {
        case: spawn("crashpoint", root, run.number, case[0], name, env={"LABSHELF_CRASHPOINT": case[1]})
        for case, name in names.items()
    }
    for (op, point), child in children.items():
        rc = child.finish(timeout=120)
        assert "writing" in child.lines and "survived" not in child.lines, (op, point, child.lines, child.stderr)
        assert rc == -signal.SIGKILL, f"{op} at {point}: rc {rc}\n{child.stderr}"
    if backend == "sqlite":
        # Commits of the killed writers live only in the WAL they left.
        assert wal.exists() and wal.stat().st_size > 0

    def check_values() -> None:  # reads ``shelf`` below; no Shelf argument (see check_round)
        for (op, point), name in names.items():
            before, _write, after = CRASH_OPS[op]
            if point in BEFORE_COMMIT and before is None:
                with pytest.raises(labshelf.DatasetNotFound):
                    shelf.find(name, run=run.number)
            elif point in BEFORE_COMMIT:
                ref = shelf.find(name, run=run.number)
                assert ref.version == 1 and ref.storage.files == old_files[name], (op, point)
                assert same(shelf.read(ref), before), (op, point)
            else:
                ref = shelf.find(name, run=run.number)
                assert ref.version == (1 if before is None else 2), (op, point)
                assert same(shelf.read(ref), after), (op, point)

    with labshelf.open(root) as shelf:
        with shelf._registry.db.write():  # a killed client's commit has landed or failed (see check_round)
            pass
        check_values()
        # Leftovers: the temporary file of a kill before the rename; the new
        # file of a kill after it but before the commit; the replaced file of
        # a kill after the commit.  Nothing else, and nothing referenced.
        leftovers = shelf.orphans(older_than=0)
        assert sum(f.startswith("tmp/") for f in leftovers) == sum(p == "datastore.written" for _, p in cases)
        left = Counter(next(n for n in names.values() if f"/{n}." in f) for f in leftovers if f.startswith("data/"))
        expected = Counter(
            name
            for (op, point), name in names.items()
            if point in ("datastore.renamed", "registry.before-commit")
            or (point == "registry.committed" and op in ("put-replace", "mutate"))
        )
        assert left == expected, leftovers
        for (op, point), name in names.items():
            if point == "registry.committed" and op in ("put-replace", "mutate"):
                assert [f for f in leftovers if f"/{name}." in f] == list(old_files[name])
        referenced = {f for ref in shelf.datasets(run.number) for f in ref.storage.files}
        assert not set(leftovers) & referenced
        for f in leftovers:
            (shelf.root / f).unlink()
        check_values()
        # The shelf takes writes to every one of these datasets again.
        writable = shelf.run(run.number)
        for name in names.values():
            writable.put(name, big_array(99))
            assert same(shelf.get(name, run=run.number), big_array(99))
