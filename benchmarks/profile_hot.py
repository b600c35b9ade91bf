"""Profile the hot paths the benchmarks time, to see where a MISSED figure goes.

    .venv/bin/python benchmarks/profile_hot.py small_put     # cProfile, top functions
    .venv/bin/python benchmarks/profile_hot.py big_put --stages
    .venv/bin/python benchmarks/profile_hot.py all

Workloads: small_put, small_get, new_run, big_put, big_get, run_table.
``--stages`` prints a hand-timed breakdown instead of cProfile: cProfile
only sees the main thread (a big put summarises on a worker thread) and its
per-call overhead inflates paths made of many tiny calls.

Not run by run_all.py (not a bench_*.py): it measures nothing against a
limit and has no target; it is a tool for the one who fixes a miss.
"""

from __future__ import annotations

import cProfile
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_big_array
import bench_run_table
import bench_small
from _common import scratch

import labshelf

TOP = 25


def profile(label: str, fn: Callable[[], Any]) -> None:
    fn()  # warm: imports, compiled statements, caches
    prof = cProfile.Profile()
    start = time.perf_counter()
    prof.enable()
    fn()
    prof.disable()
    print(f"\n## {label}: {time.perf_counter() - start:.3f} s under cProfile")
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(TOP)
    stats.sort_stats("cumtime").print_stats(TOP)


def stage(label: str, fn: Callable[[int], Any], n: int = 25) -> float:
    times = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    ms = statistics.median(times) * 1e3
    print(f"{ms:9.3f} ms  {label}")
    return ms


def small(tmp: Path, what: str, stages: bool) -> None:
    shelf = labshelf.create(tmp / "shelf")
    counter = iter(range(1, 10**9))

    def runs(n: int) -> None:
        for _ in range(n):
            r = next(counter)
            with shelf.new_run(experiment="profile", params={"i": r}) as run:
                for j, name in enumerate(bench_small.NAMES):
                    run.put(name, bench_small.value(r, j))

    runs(50)
    if what == "small_put":
        profile("100 runs x 20 scalar puts", lambda: runs(100))
    elif what == "new_run":
        def empty() -> None:
            for _ in range(200):
                shelf.new_run(experiment="profile", params={"i": 1}).finish()
        profile("200 x new_run + finish", empty)
    else:
        rng = random.Random(1)
        look = [(rng.randint(1, 50), bench_small.NAMES[rng.randrange(20)]) for _ in range(5000)]

        def gets() -> None:
            for r, name in look:
                shelf.get(name, run=r)

        profile("5,000 small gets", gets)
    if stages:
        print("(no --stages breakdown for small workloads: cProfile above is representative)")
    shelf.close()


def big(tmp: Path, what: str, stages: bool) -> None:
    from labshelf import writer
    from labshelf.datastore import formatters, hdf5

    image = bench_big_array.beam_image()
    shelf = labshelf.create(tmp / "shelf")
    run = shelf.new_run(experiment="profile")
    counter = iter(range(10**9))
    names: list[str] = []

    def put(_: int = 0) -> None:
        names.append(f"camera/frame{next(counter)}")
        run.put(names[-1], image)

    for _ in range(3):
        put()
    if what == "big_put" and not stages:
        profile("20 big puts (main thread only)", lambda: [put() for _ in range(20)])
    elif what == "big_put":
        fmt = formatters.pick(image)
        print("big put, stage by stage (median of 25):")
        stage("run.put, whole", put)
        stage("  formatter.write (HDF5 file + image attributes)", lambda i: fmt.write(tmp / f"w{i}.h5", "x", image, {}))
        stage("  formatter.summarise (mean + thumbnail), alone", lambda i: fmt.summarise(image))
        from labshelf.datastore import image as image_mod

        stage("    array_mean", lambda i: image_mod.array_mean(image))
        stage("    thumbnail_png", lambda i: image_mod.thumbnail_png(image))
        stage("  write || summarise, as put does it (worker thread)", lambda i: writer._write_and_summarise(
            fmt, image, fmt.describe(image), lambda: fmt.write(tmp / f"o{i}.h5", "x", image, {})))
        stage("  write then summarise, one thread", lambda i: (fmt.write(tmp / f"s{i}.h5", "x", image, {}),
                                                               fmt.summarise(image)))
        stage("  plain h5py new file (the limit)", lambda i: _plain_write(tmp / f"p{i}.h5", image))
    elif what == "big_get" and not stages:
        profile("50 big gets", lambda: [shelf.get(names[i % len(names)], run=run.number) for i in range(50)])
    else:
        ref = shelf.find(names[0], run=run.number)
        path = shelf._datastore.path(ref.storage.files[0])
        print("big get, stage by stage (median of 25):")
        stage("shelf.get, whole", lambda i: shelf.get(names[0], run=run.number))
        stage("  shelf.find (registry)", lambda i: shelf.find(names[0], run=run.number))
        stage("  datastore.path", lambda i: shelf._datastore.path(ref.storage.files[0]))
        stage("  hdf5.read_array", lambda i: hdf5.read_array(path, names[0]))
        stage("  plain h5py read of the same file", lambda i: _plain_read(path, names[0]))
    run.finish()
    shelf.close()


def _plain_write(path: Path, image: Any) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=image)


def _plain_read(path: Path, name: str) -> Any:
    import h5py

    with h5py.File(path, "r") as f:
        return f[name][()]


def run_table(tmp: Path, stages: bool) -> None:
    old = bench_run_table.RUNS
    values = bench_run_table.Values(old)
    folder = tmp / "shelf"
    problems, _learned, fixed = bench_run_table.validate(folder, values)
    assert not problems, problems
    bench_run_table.fill(folder, values, fixed)
    shelf = labshelf.open(folder, mode="r")
    profile(f"run table of {old:,} runs", lambda: shelf.runs.to_pandas())
    shelf.close()


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    stages = "--stages" in sys.argv
    everything = ["small_put", "small_get", "new_run", "big_put", "big_get", "run_table"]
    wanted = everything if not args or args == ["all"] else args
    for what in wanted:
        if what not in everything:
            sys.exit(f"unknown workload {what!r}; choose from {', '.join(everything)} or all")
        print(f"\n# {what}")
        with scratch(f"profile-{what}") as tmp:
            if what in ("small_put", "small_get", "new_run"):
                small(tmp, what, stages)
            elif what in ("big_put", "big_get"):
                big(tmp, what, stages)
            else:
                run_table(tmp, stages)


if __name__ == "__main__":
    main()
