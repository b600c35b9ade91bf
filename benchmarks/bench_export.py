"""Exporting runs: runs/s of ``labshelf.export`` writing one HDF5 file per run.

The shelf holds N runs of 20 datasets each: 17 scalars (floats, ints, a bool,
a string), two arrays of 100 points, one 512x512 uint16 camera image (as
``bench_import_artiq.py``'s files), plus a comment and a user column.

Figure: runs/s of ``labshelf.export(shelf, out, progress=False)`` into an
empty folder (the whole export: run records, annotations, metadata, every
value read from the shelf and written with its attributes, the atomic
rename, the index).

Limit: the same values written with plain h5py from memory (one file per
run, one dataset per value, the run's metadata as a few attributes): what any
exporter must write at least.  Both sides run alternately (a, b, b, a), each
round into a fresh folder; medians.

Also: ``labshelf import labshelf`` of the export back into a new shelf (runs/s).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from _common import Target, interleaved, main, median, note, report, scratch

import labshelf
from labshelf.importers import labshelf_export

BENCH = "export"
RUNS = int(os.environ.get("LABSHELF_BENCH_EXPORT_RUNS", "200"))
ROUNDS = 3


def values(rng: np.random.Generator, number: int) -> dict[str, object]:
    out: dict[str, object] = {f"fit/param_{j:02d}": number * 0.01 + j for j in range(12)}
    out.update({f"counts/total_{j}": number * 10 + j for j in range(3)})
    out["fit/converged"] = bool(number % 3)
    out["label"] = f"scan {number}"
    out["scan/axis"] = np.linspace(0, 1, 100)
    out["scan/counts"] = rng.poisson(20, 100)
    out["camera/image"] = rng.poisson(50, (512, 512)).astype(np.uint16)
    return out


def build(path: Path) -> dict[int, dict[str, object]]:
    rng = np.random.default_rng(7)
    kept: dict[int, dict[str, object]] = {}
    with labshelf.create(path) as shelf:
        for number in range(1, RUNS + 1):
            with shelf.new_run("CameraScan", {"detuning": 0.1 * number}) as run:
                kept[number] = values(rng, number)
                for name, value in kept[number].items():
                    run.put(name, value)
        shelf.annotate(range(1, RUNS + 1), comment="bench", quality=1)
        shelf.describe("fit/param_00", unit="MHz", scale=1e6)
    return kept


def plain_write(out: Path, kept: dict[int, dict[str, object]]) -> None:
    """The limit: the values, from memory, with h5py alone."""
    out.mkdir()
    for number, found in kept.items():
        with h5py.File(out / f"run_{number}.h5", "w") as f:
            f.attrs["run"] = number
            f.attrs["experiment"] = "CameraScan"
            f.attrs["start_unix"] = time.time()
            for name, value in found.items():
                f[name] = value


def body() -> None:
    with scratch(BENCH) as folder:
        shelf_path = folder / "source.shelf"
        kept = build(shelf_path)
        note(f"{RUNS} runs of 20 datasets (17 scalars, 2 arrays of 100, one 512x512 uint16 image)")
        outs: list[Path] = []

        def fresh(side: str) -> Any:
            def made(i: int) -> Path:
                path = folder / f"{side}{i + 10}"
                shutil.rmtree(path, ignore_errors=True)
                if side == "labshelf":
                    outs.append(path)
                return path

            return made

        def exported(i: int, out: Path) -> None:
            with labshelf.open(shelf_path, mode="r") as shelf:
                result = labshelf.export(shelf, out, progress=False)
            assert len(result.runs) == RUNS and result.ok, result

        def plain(i: int, out: Path) -> None:
            plain_write(out, kept)

        times = interleaved(
            {"labshelf": exported, "h5py": plain},
            repeats=ROUNDS,
            warmup=1,
            prepare={"labshelf": fresh("labshelf"), "h5py": fresh("h5py")},
        )
        ours = RUNS / median(times["labshelf"])
        limit = RUNS / median(times["h5py"])
        report(
            BENCH,
            "export",
            ours,
            "runs/s",
            limit=("plain h5py write", limit),
            targets=[Target("ratio", "<=", 3.0)],
            runs=RUNS,
            rounds=ROUNDS,
        )
        exported_folder = outs[-1]
        size = sum(p.stat().st_size for p in exported_folder.iterdir())
        note(f"one export: {size / 2**20:.0f} MiB")
        with labshelf.create(folder / "back.shelf") as back:
            start = time.perf_counter()
            result = labshelf_export(back, exported_folder, progress=False)
            took = time.perf_counter() - start
        assert len(result.runs) == RUNS and result.ok, result
        report(BENCH, "import of the export", RUNS / took, "runs/s", runs=RUNS)


if __name__ == "__main__":
    main(BENCH, body)
