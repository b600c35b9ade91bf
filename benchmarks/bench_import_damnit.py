"""Importing DAMNIT: runs/s of ``labshelf.importers.damnit`` over a DAMNIT folder.

The folder (written by ``tests/_damnit.py`` in DAMNIT's format 4 layout)
holds N runs of 25 variables each: 18 scalars (floats, ints), 2 strings, a
complex number, two 1-D arrays of 100 points, a 128x128 float32 image and a
small xarray DataArray with coordinates; ``runs.sqlite`` has their summaries
(the image's as a PNG thumbnail), titles, units and tags.

Figure: runs/s of ``damnit(shelf, folder, progress=False)`` into a new,
empty shelf (the whole import: the database read, checksums, runs, puts,
thumbnails, derived bookkeeping, run ends).

Limit: a plain read of the same data with sqlite3 and h5py: every
``run_info``, ``run_variables`` and ``variables`` row, and every dataset of
every run file (xarray groups read as their HDF5 datasets) — what any
importer must read at least.  Both sides run alternately, each labshelf
round on a fresh shelf; medians.

Target: ratio <= 3 (issue 13).
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from pathlib import Path

import h5py
import numpy as np
from _common import REPO, Target, interleaved, main, median, note, report, scratch

import labshelf
from labshelf.importers import damnit

sys.path.insert(0, str(REPO / "tests"))
from _damnit import Var, write_damnit  # noqa: E402

BENCH = "import_damnit"
RUNS = int(os.environ.get("LABSHELF_BENCH_DAMNIT_RUNS", "1000"))
ROUNDS = 3


def write_folder(folder: Path, count: int) -> int:
    """``count`` runs of 25 variables; returns the folder's size in bytes."""
    import xarray as xr

    rng = np.random.default_rng(11)
    runs = {}
    for run in range(1, count + 1):
        values = {f"scalar_{j:02d}": Var(np.float64(run * 0.1 + j)) for j in range(14)}
        values.update({f"count_{j}": Var(np.int64(run * 10 + j)) for j in range(4)})
        values["sample"] = Var(f"sample {run % 7}")
        values["mode"] = Var("fine" if run % 2 else "coarse")
        values["iq"] = Var(np.complex128(run + 0.5j))
        values["spectrum"] = Var(rng.normal(size=100))
        values["positions"] = Var(np.arange(100, dtype=np.int32) + run)
        values["camera"] = Var(rng.poisson(50, (128, 128)).astype(np.float32))
        values["trace"] = Var(
            xr.DataArray(
                rng.normal(size=20),
                dims="t",
                coords={"t": np.arange(20) * 0.1},
                attrs={"units": "V"},
                name="trace",
            )
        )
        runs[run] = values
    variables = {
        "scalar_00": {"title": "Beam/XGM mean", "attributes": {"units": "uJ"}},
        "camera": {"title": "Camera/frame", "description": "mean frame"},
    }
    write_damnit(
        folder,
        runs,
        variables=variables,
        tags={"scalar_00": ["beam"]},
        comments=[(1_700_000_000.0 + 3600.0 * k, f"shift {k}") for k in range(5)],
    )
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def plain_read(folder: Path) -> int:
    """The limit: every row of the database and every dataset of every run file."""
    values = 0
    connection = sqlite3.connect(f"file:{folder / 'runs.sqlite'}?mode=ro", uri=True)
    try:
        runs = connection.execute("SELECT proposal, run, start_time, added_at FROM run_info").fetchall()
        values += len(connection.execute("SELECT * FROM run_variables").fetchall())
        connection.execute("SELECT * FROM variables").fetchall()
    finally:
        connection.close()
    for proposal, run, _start, _added in runs:
        with h5py.File(folder / "extracted_data" / f"p{proposal}_r{run}.h5", "r") as f:

            def read(_name: str, node: object) -> None:
                nonlocal values
                if isinstance(node, h5py.Dataset):
                    node[()]
                    dict(node.attrs)
                    values += 1

            f.visititems(read)
    return values


def body() -> None:
    with scratch(BENCH) as folder:
        source = folder / "damnit"
        start = time.perf_counter()
        size = write_folder(source, RUNS)
        note(
            f"{RUNS} DAMNIT runs x 25 variables (a 128x128 image, an xarray, 2 arrays, 21 scalars): "
            f"{size / 2**20:.0f} MiB, written in {time.perf_counter() - start:.0f} s"
        )
        shelves: list[Path] = []

        def fresh(i: int) -> Path:
            path = folder / f"import{i + 10}.shelf"
            labshelf.create(path).close()
            shelves.append(path)
            return path

        def imported(i: int, path: Path) -> None:
            with labshelf.open(path) as shelf:
                result = damnit(shelf, source, progress=False)
            assert len(result.runs) == RUNS and not result.skipped, result

        times = interleaved(
            {"labshelf": imported, "plain": lambda i: plain_read(source)},
            repeats=ROUNDS,
            warmup=1,
            prepare={"labshelf": fresh},
        )
        ours = RUNS / median(times["labshelf"])
        limit = RUNS / median(times["plain"])
        report(
            BENCH,
            "DAMNIT import",
            ours,
            "runs/s",
            limit=("plain sqlite3 + h5py read", limit),
            targets=[Target("ratio", "<=", 3.0)],
            runs=RUNS,
            rounds=ROUNDS,
        )
        with labshelf.open(shelves[-1]) as shelf:
            start = time.perf_counter()
            second = damnit(shelf, source, progress=False)
            again = time.perf_counter() - start
        assert not second.runs and second.already == RUNS, second
        report(BENCH, "DAMNIT import again", RUNS / again, "runs/s", runs=RUNS)
        note(
            "import again: every run file checksummed and listed, compared with the derived rows, nothing written"
        )


if __name__ == "__main__":
    main(BENCH, body)
