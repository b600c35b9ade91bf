"""Ingest of a 1 GiB HDF5 file in place (``run.ingest``, ``import artiq --link``): no copy.

The benchmark writes a 1 GiB HDF5 file (1024 frames of 512x512 uint32,
chunked by frame, as a detector writes them) into a scratch folder and
deletes it afterwards.  Figures:

- **ingest (direct)**: ``run.ingest(name, file, dataset=...)``: open, check
  the member, fingerprint (size, mtime, sha256 of the first and last MiB),
  summary from a bounded sample (8 MiB of frames), thumbnail of the first
  frame, one registry row.  Limit: a plain h5py open of the file and a read
  of the dataset's metadata (shape, dtype, chunks, attributes), the least
  any tool must do to know what the file holds.  Target: <= 2 s (issue 13).
- **ingest (symlink)**: the same with a link in ``data/``.
- **copy, for reference**: a plain ``shutil.copyfile`` of the file (what
  ``transfer="copy"`` and an import without ``--link`` cost at least).
- **first slice read**: ``shelf.get(..., parameters={"slice": frame 500})``
  after ingest beside h5py reading that frame (every read checks the
  confirmation and the file's size and modification time; the first in a
  process also its checksum); **later frame reads**: other frames, each a
  new read (not from the cache), beside h5py opening the file and reading it.

The file was just written, so it is in the page cache: these are warm
figures (a cold file adds the disk's time to read 2 MiB for the fingerprint
and the 8 MiB sample, about 0.1 s on a 100 MB/s disk).
"""

from __future__ import annotations

import shutil

import h5py
import numpy as np
from _common import Target, interleaved, main, median, note, report, scratch, spread, timed

import labshelf

BENCH = "ingest"
FRAMES, SIDE = 1024, 512
MEMBER = "/entry/data/data"
REPEATS = 5


def write_source(path: object) -> int:
    """A 1 GiB detector file, written a block of frames at a time (never 1 GiB in memory)."""
    rng = np.random.default_rng(0)
    block = 64
    with h5py.File(path, "w") as f:
        ds = f.create_dataset(MEMBER, shape=(FRAMES, SIDE, SIDE), dtype="<u4", chunks=(1, SIDE, SIDE))
        ds.attrs["units"] = "counts"
        for start in range(0, FRAMES, block):
            ds[start : start + block] = rng.integers(0, 1000, (block, SIDE, SIDE), dtype=np.uint32)
        return int(ds.size * ds.dtype.itemsize)


def body() -> None:
    with scratch(BENCH) as tmp:
        source = tmp / "frames.h5"
        took = timed(lambda: write_source(source))
        size = source.stat().st_size
        note(
            f"source {FRAMES}x{SIDE}x{SIDE} uint32 chunked by frame, {size / 2**30:.2f} GiB, written in {took:.1f} s"
        )
        shelf = labshelf.create(tmp / "shelf")
        try:
            run = shelf.new_run("bench-ingest")

            def ingest_direct(i: int) -> None:
                run.ingest(f"direct/{i + 3}", source, dataset=MEMBER)

            def ingest_symlink(i: int) -> None:
                run.ingest(f"symlink/{i + 3}", source, dataset=MEMBER, transfer="symlink")

            def plain_metadata(i: int) -> None:
                with h5py.File(source, "r") as f:
                    ds = f[MEMBER]
                    (ds.shape, ds.dtype, ds.chunks, dict(ds.attrs))

            times = interleaved(
                {"direct": ingest_direct, "symlink": ingest_symlink, "h5py": plain_metadata},
                REPEATS,
                warmup=2,
            )
            ref = shelf.find("direct/3", run=run.number)
            assert ref.shape == (FRAMES, SIDE, SIDE) and isinstance(ref.summary, bytes), (
                "ingest registered another thing"
            )

            copy_to = tmp / "copy.h5"
            copy = timed(lambda: shutil.copyfile(source, copy_to))
            copy_to.unlink()

            shelf.cache.clear()
            from labshelf import ingest

            ingest._CHECKED.clear()  # the first read in a process also compares the checksum
            first = timed(lambda: shelf.get("direct/3", run=run.number, parameters={"slice": np.s_[500]}))
            got = shelf.get("direct/3", run=run.number, parameters={"slice": np.s_[500]})

            def plain_frame() -> None:
                with h5py.File(source, "r") as f:
                    f[MEMBER][500]

            plain = min(timed(plain_frame) for _ in range(5))

            def later_frame(i: int) -> None:
                shelf.get("direct/3", run=run.number, parameters={"slice": np.s_[100 + i]})

            def plain_later(i: int) -> None:
                with h5py.File(source, "r") as f:
                    f[MEMBER][100 + i]

            later = interleaved({"labshelf": later_frame, "h5py": plain_later}, 21, warmup=2)
            with h5py.File(source, "r") as f:
                assert np.array_equal(got, f[MEMBER][500]), "the slice read differs from the file"
            run.finish()
        finally:
            shelf.close()

    limit = ("h5py metadata", median(times["h5py"]))
    report(
        BENCH,
        "ingest 1 GiB direct",
        median(times["direct"]),
        "s",
        limit=limit,
        targets=[Target("value", "<=", 2.0, "s")],
        labshelf_range=spread(times["direct"]),
        limit_range=spread(times["h5py"]),
        repeats=REPEATS,
        nbytes=size,
    )
    report(
        BENCH,
        "ingest 1 GiB symlink",
        median(times["symlink"]),
        "s",
        limit=limit,
        targets=[Target("value", "<=", 2.0, "s")],
        labshelf_range=spread(times["symlink"]),
        repeats=REPEATS,
    )
    report(BENCH, "copy 1 GiB (reference)", copy, "s", limit=("ingest direct", median(times["direct"])))
    report(BENCH, "first frame read", first, "s", limit=("plain h5py", plain))
    report(
        BENCH,
        "later frame reads",
        median(later["labshelf"]),
        "s",
        limit=("plain h5py", median(later["h5py"])),
        labshelf_range=spread(later["labshelf"]),
    )


if __name__ == "__main__":
    main(BENCH, body)
