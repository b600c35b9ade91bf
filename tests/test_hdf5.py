"""HDF5 storage options on arrays that grow (labshelf.datastore.hdf5).

A chunk shape is the whole growing array's: every ``append`` writes its rows
to a file of its own (and small tails are merged into one), so a file may
hold fewer rows than one chunk.  Such a file gets its chunks clipped to its
rows; options that do not fit the array's other axes are still refused at
put with ``InvalidOptions``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

import labshelf


def chunked_files(shelf: labshelf.Shelf, ref: Any) -> list[tuple[tuple[int, ...], tuple[int, ...] | None]]:
    """(shape, chunks) of the dataset in each data file of ``ref``."""
    out = []
    for relative in ref.storage.files:
        with h5py.File(shelf.root / relative, "r") as f:
            out.append((f[ref.name].shape, f[ref.name].chunks))
    return out


APPENDS = [10, 1, 0, 49, 50, 51, 120, 3]


@pytest.mark.parametrize("options", [{"chunks": (50,)}, {"chunks": (50,), "compression": "gzip", "shuffle": True}], ids=["chunks", "chunks-gzip"])
def test_appends_of_any_size_grow_a_chunked_array(shelf: labshelf.Shelf, options: dict[str, Any]) -> None:
    expected = [np.zeros(100)]
    with shelf.new_run() as run:
        run.put("trace", expected[0], hdf5_options=options)
        for i, rows in enumerate(APPENDS):
            block = np.arange(rows, dtype="f8") + 1000 * (i + 1)
            ref = run.append("trace", block)
            expected.append(block)
    whole = np.concatenate(expected)
    got = shelf.get("trace", run=run.number)
    np.testing.assert_array_equal(got, whole)
    assert ref.shape == whole.shape and {**ref.storage.options, "chunks": tuple(ref.storage.options["chunks"])} == options
    files = chunked_files(shelf, ref)
    assert sum(shape[0] for shape, _ in files) == whole.shape[0]
    for shape, chunks in files:
        # The user's chunks where the file holds that many rows, else one chunk of its rows.
        assert chunks is not None and chunks[0] == min(50, shape[0]), (shape, chunks)
    # Slices across the segments read like numpy.
    for selection in (np.s_[95:115], np.s_[::-13], np.s_[-130:]):
        np.testing.assert_array_equal(shelf.get("trace", run=run.number, parameters={"slice": selection}), whole[selection])


def test_many_small_appends_merge_into_clipped_chunks(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("rows", np.zeros((64, 8), "i4"), hdf5_options={"chunks": (32, 8), "compression": "lzf"})
        expected = [np.zeros((64, 8), "i4")]
        for i in range(20):  # more than the writer keeps unmerged
            block = np.full((2, 8), i, "i4")
            ref = run.append("rows", block)
            expected.append(block)
    whole = np.concatenate(expected)
    np.testing.assert_array_equal(shelf.get("rows", run=run.number), whole)
    files = chunked_files(shelf, ref)
    assert len(files) < 21  # merged
    assert all(chunks == (min(32, shape[0]), 8) for shape, chunks in files), files
    np.testing.assert_array_equal(shelf.get("rows", run=run.number, parameters={"slice": np.s_[-1]}), whole[-1])


def test_mutate_of_a_chunked_grown_array(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("x", np.zeros(100), hdf5_options={"chunks": (50,)})
        run.append("x", np.ones(10))
        ref = run.mutate("x", slice(95, 105), 7.0)
    expected = np.concatenate([np.zeros(100), np.ones(10)])
    expected[95:105] = 7.0
    np.testing.assert_array_equal(shelf.get("x", run=run.number), expected)
    assert chunked_files(shelf, ref) == [((110,), (50,))]


@pytest.mark.parametrize("rows", [0, 3])
def test_an_array_with_fewer_rows_than_a_chunk_grows_from_there(shelf: labshelf.Shelf, rows: int) -> None:
    options = {"chunks": (16, 64), "compression": "gzip"}
    with shelf.new_run() as run:
        first = run.put("frames", np.ones((rows, 64), "u2"), hdf5_options=options)
        assert first.storage.files  # options keep it in a file
        for _ in range(3):
            ref = run.append("frames", np.full((7, 64), 2, "u2"))
    want = np.concatenate([np.ones((rows, 64), "u2"), np.full((21, 64), 2, "u2")])
    np.testing.assert_array_equal(shelf.get("frames", run=run.number), want)
    for shape, chunks in chunked_files(shelf, ref):
        assert shape[0] == 0 or chunks == (min(16, shape[0]), 64), (shape, chunks)


BAD_CHUNKS = [
    pytest.param(np.zeros(100), {"chunks": (50, 3)}, "same rank", id="more-axes-than-the-array"),
    pytest.param(np.zeros((100, 8)), {"chunks": (5,)}, "same rank", id="fewer-axes-than-the-array"),
    pytest.param(np.zeros((100, 8)), {"chunks": (10, 9)}, "Chunk shape must not be greater", id="wider-than-the-rows"),
    pytest.param(np.zeros((100, 0)), {"chunks": (10, 1)}, "Chunk shape must not be greater", id="empty-axis"),
    pytest.param(np.zeros(100), {"chunks": (0,)}, "positive ints", id="zero"),
    pytest.param(np.zeros(100), {"chunks": (-5,)}, "positive ints", id="negative"),
    pytest.param(np.zeros(100), {"chunks": (2.5,)}, "positive ints", id="float"),
]


@pytest.mark.parametrize(("value", "options", "phrase"), BAD_CHUNKS)
def test_chunks_that_do_not_fit_the_array_are_refused_at_put(
    shelf: labshelf.Shelf, value: np.ndarray, options: dict[str, Any], phrase: str
) -> None:
    with shelf.new_run() as run:
        with pytest.raises(labshelf.InvalidOptions) as error:
            run.put("x", value, hdf5_options=options)
        assert isinstance(error.value, ValueError) and phrase in str(error.value)
        assert "x" not in run
    assert not [p for p in Path(shelf.root, "data").rglob("*") if p.is_file()]
