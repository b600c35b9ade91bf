"""Importing ARTIQ results: runs/s of ``labshelf.importers.artiq`` over a results folder.

The folder holds N files written as ARTIQ writes them (``group[key] = value``
with h5py, metadata as attributes, the expid as PYON text), each with 20
datasets: 17 scalars (floats, ints, a bool, a string), two small arrays of 100
points, one 512x512 uint16 camera image, plus two archived calibrations.

Figure: runs/s of ``artiq(shelf, folder, progress=False)`` into a new, empty
shelf (the whole import: walking the tree, checksums, plan, runs, puts,
thumbnails, the run ends).

Limit: a plain h5py read of the same files: open each, read every dataset of
``datasets/`` and ``archive/`` with its attributes, and the header (rid,
times, expid) — what any importer must read at least.  Both sides run
alternately (a, b, b, a), each round on a fresh shelf; medians.

Target: ratio <= 3 (issue 13).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import h5py
import numpy as np
from _common import Target, interleaved, main, median, note, report, scratch

import labshelf
from labshelf.importers import artiq

BENCH = "import_artiq"
FILES = int(os.environ.get("LABSHELF_BENCH_ARTIQ_FILES", "1000"))
ROUNDS = 3
START = 1_700_000_000.0


def write_tree(results: Path, count: int) -> int:
    """``count`` results files; returns their total size in bytes."""
    rng = np.random.default_rng(7)
    total = 0
    for rid in range(1, count + 1):
        start = START + 30.0 * rid
        local = time.localtime(start)
        folder = results / time.strftime("%Y-%m-%d", local) / time.strftime("%H", local)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{rid:09}-CameraScan.h5"
        expid = {"arguments": {"detuning": 0.1 * rid, "points": 100, "mode": "fine"}, "class_name": "CameraScan",
                 "file": "repository/camera_scan.py", "log_level": 30, "repo_rev": "deadbeef"}
        with h5py.File(path, "w") as f:
            datasets = f.create_group("datasets")
            for j in range(12):
                datasets[f"fit.param_{j:02d}"] = rid * 0.01 + j
            for j in range(3):
                datasets[f"counts.total_{j}"] = rid * 10 + j
            datasets["fit.converged"] = bool(rid % 3)
            datasets["label"] = f"scan {rid}"
            datasets["ndscan.points.axis_0"] = np.linspace(0, 1, 100)
            datasets["ndscan.points.channel_counts"] = rng.poisson(20, 100)
            datasets["camera.image"] = rng.poisson(50, (512, 512)).astype(np.uint16)
            datasets["fit.param_00"].attrs["unit"] = "MHz"
            datasets["fit.param_00"].attrs["scale"] = 1e6
            datasets["fit.param_00"].attrs["precision"] = 3
            archive = f.create_group("archive")
            archive["calib.pi_time"] = 1.2e-6
            archive["calib.freq"] = 1e6
            f["artiq_version"] = "8.0"
            f["rid"] = rid
            f["start_time"] = start
            f["run_time"] = start + 5.0
            f["expid"] = json.dumps(expid)
        total += path.stat().st_size
    return total


def plain_read(results: Path) -> int:
    """The limit: every value and attribute of every file, with h5py alone."""
    values = 0
    for path in sorted(results.rglob("*.h5")):
        with h5py.File(path, "r") as f:
            for key in ("rid", "start_time", "run_time", "expid", "artiq_version"):
                f[key][()]
            for group in ("datasets", "archive"):
                for node in f[group].values():
                    node[()]
                    dict(node.attrs)
                    values += 1
    return values


def body() -> None:
    with scratch(BENCH) as folder:
        results = folder / "results"
        size = write_tree(results, FILES)
        note(f"{FILES} ARTIQ files, 20 datasets + 2 archived each, one 512x512 uint16 image; {size / 2**20:.0f} MiB")
        shelves: list[Path] = []

        def fresh(i: int) -> Path:
            path = folder / f"import{i + 10}.shelf"
            labshelf.create(path).close()
            shelves.append(path)
            return path

        def imported(i: int, path: Path) -> None:
            with labshelf.open(path) as shelf:
                result = artiq(shelf, results, progress=False)
            assert len(result.runs) == FILES and not result.skipped, result

        times = interleaved(
            {"labshelf": imported, "h5py": lambda i: plain_read(results)},
            repeats=ROUNDS, warmup=1, prepare={"labshelf": fresh},
        )
        ours = FILES / median(times["labshelf"])
        limit = FILES / median(times["h5py"])
        report(BENCH, "ARTIQ import", ours, "runs/s", limit=("plain h5py read", limit),
               targets=[Target("ratio", "<=", 3.0)], files=FILES, rounds=ROUNDS)
        with labshelf.open(shelves[-1], mode="r") as shelf:
            note(f"last shelf: {len(shelf)} runs, {shelf.info().get('datasets', '?')} datasets")
        again_shelf = shelves[-1]
        with labshelf.open(again_shelf) as shelf:
            start = time.perf_counter()
            second = artiq(shelf, results, progress=False)
            again = time.perf_counter() - start
        assert not second.runs and second.already == FILES
        report(BENCH, "ARTIQ import again", FILES / again, "runs/s", files=FILES)
        note("import again: every file checksummed and planned, nothing written")


if __name__ == "__main__":
    main(BENCH, body)
