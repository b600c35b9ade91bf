"""Put and get of one 2048x2048 uint16 image: labshelf against plain h5py.

The limit is what a user would write by hand without labshelf: a new HDF5
file per image with one dataset, and reading it back whole::

    with h5py.File(p, "w") as f: f.create_dataset("x", data=a)
    with h5py.File(p, "r") as f: a = f["x"][()]

Both write to the same filesystem (the shelf folder and the plain files are
siblings under one scratch folder).  Every labshelf put is a new dataset name
(a new file, as the plain side creates one), never a replacement.  The two
sides are timed alternately, many times, and the medians compared.

Targets: put ratio <= 1.25, get ratio <= 1.15.
"""

from __future__ import annotations

import h5py
import numpy as np
from _common import Target, interleaved, main, median, note, report, scratch, spread

import labshelf

BENCH = "big_array"
SIDE = 2048
REPEATS = 31
WARMUP = 3


def beam_image(seed: int = 0) -> np.ndarray:
    """A realistic detector frame: an elliptical Gaussian beam spot on a dark
    background, with a hot pixel column, shot noise and read noise (uint16)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    cy, cx, sy, sx = 1100.0, 970.0, 180.0, 120.0
    spot = 20000.0 * np.exp(-(((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2) / 2)
    mean = 120.0 + spot
    mean[:, 1500] += 3000.0  # a hot column
    counts = rng.poisson(mean).astype(np.float32) + rng.normal(0.0, 4.0, mean.shape).astype(np.float32)
    return np.clip(counts, 0, 65535).astype(np.uint16)


def body() -> None:
    image = beam_image()
    note(f"image {image.shape} {image.dtype}, {image.nbytes / 2**20:.1f} MiB, mean {image.mean():.1f}, "
         f"max {image.max()}; {REPEATS} timed repeats (+{WARMUP} warm-up) per side, interleaved, median")
    with scratch(BENCH) as tmp:
        plain_dir = tmp / "plain"
        plain_dir.mkdir()
        shelf = labshelf.create(tmp / "shelf")
        try:
            run = shelf.new_run(experiment="bench-big-array")
            names: list[str] = []
            plain_files = []

            def put_labshelf(i: int) -> None:
                name = f"camera/frame{i + WARMUP:03d}"
                run.put(name, image)
                names.append(name)

            def put_plain(i: int) -> None:
                p = plain_dir / f"frame{i + WARMUP:03d}.h5"
                with h5py.File(p, "w") as f:
                    f.create_dataset("x", data=image)
                plain_files.append(p)

            put = interleaved({"labshelf": put_labshelf, "h5py": put_plain}, REPEATS, WARMUP)

            got = shelf.get(names[0], run=run.number)
            assert got.dtype == image.dtype and np.array_equal(got, image), "labshelf gave back another array"

            def get_labshelf(i: int) -> None:
                shelf.get(names[i % len(names)], run=run.number)

            def get_plain(i: int) -> None:
                with h5py.File(plain_files[i % len(plain_files)], "r") as f:
                    f["x"][()]

            get = interleaved({"labshelf": get_labshelf, "h5py": get_plain}, REPEATS, WARMUP)
            run.finish()
        finally:
            shelf.close()

    report(
        BENCH, "big array put", median(put["labshelf"]), "s",
        limit=("plain h5py", median(put["h5py"])),
        targets=[Target("ratio", "<=", 1.25)],
        labshelf_range=spread(put["labshelf"]), limit_range=spread(put["h5py"]), repeats=REPEATS,
    )
    report(
        BENCH, "big array get", median(get["labshelf"]), "s",
        limit=("plain h5py", median(get["h5py"])),
        targets=[Target("ratio", "<=", 1.15)],
        labshelf_range=spread(get["labshelf"]), limit_range=spread(get["h5py"]), repeats=REPEATS,
    )
    mib = image.nbytes / 2**20
    note(f"throughput: put {mib / median(put['labshelf']):,.0f} MiB/s (h5py {mib / median(put['h5py']):,.0f}), "
         f"get {mib / median(get['labshelf']):,.0f} MiB/s (h5py {mib / median(get['h5py']):,.0f})")


if __name__ == "__main__":
    main(BENCH, body)
