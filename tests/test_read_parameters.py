"""Read parameters of arrays and images: ``slice`` is numpy's basic indexing, ``downsample`` a block size.

A slice read from files must give exactly ``value[slice]``, whatever the
steps (negative ones too), across the segments ``append`` makes and on
arrays kept inline; what numpy's basic indexing does not take is an
``InvalidParameter`` saying what is allowed, never a "damaged file".  About
a thousand random slices, from a seeded generator, are compared with numpy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import labshelf
from _shelves import BACKENDS, make_shelf, require_postgres
from labshelf import InvalidParameter

#: Random slices tried on each array.
TRIES = 1000
SHAPE = (60, 40, 20)  # 6,400 bytes a row: 20 rows make a file, 8 an appended segment


@pytest.fixture(scope="module", params=BACKENDS)
def arrays(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[labshelf.Shelf, int, dict[str, np.ndarray]]]:
    """A shelf with the same kind of array stored three ways: inline, in one file, in segments."""
    if request.param == "postgres":
        require_postgres()
    shelf = make_shelf(request.param, tmp_path_factory.mktemp("slices"), request)
    full = np.random.default_rng(5).standard_normal(SHAPE)
    small = full[:6, :5, :4]
    with shelf.new_run() as run:
        assert run.put("inline", small).storage.inline is not None
        assert len(run.put("file", full).storage.files) == 1
        run.put("segments", full[:20])
        for start in range(20, SHAPE[0], 8):
            ref = run.append("segments", full[start : start + 8])
        assert len(ref.storage.files) == 6
    yield shelf, run.number, {"inline": small, "file": full, "segments": full}
    shelf.close()


def random_item(rng: np.random.Generator, length: int) -> Any:
    """One index of a selection: mostly valid ones, some that numpy refuses or we do."""
    roll = rng.integers(0, 20)
    if roll < 5:
        return int(rng.integers(-length - 2, length + 2))  # a few out of range
    if roll < 14:
        def bound() -> Any:
            return None if rng.integers(0, 4) == 0 else int(rng.integers(-length - 3, length + 3))

        step = [None, 1, -1, 2, -2, 3, -3, 7, -9, 0][rng.integers(0, 10)]  # 0 is invalid
        return slice(bound(), bound(), step)
    if roll == 14:
        return None
    if roll == 15:
        return Ellipsis
    if roll == 16:
        return np.int64(rng.integers(-length, length))
    if roll == 17:
        return slice(np.int32(1), np.int64(length), np.int16(2))
    # What numpy takes but is no region (fancy and boolean indices), and what it refuses.
    return [[0, 1], np.array([1, 0]), True, np.bool_(False), 1.5, slice(0.5, 3), "1"][rng.integers(0, 7)]


def expected(value: np.ndarray, selection: tuple[Any, ...]) -> np.ndarray | None:
    """``value[selection]``, or None where the slice parameter must refuse it."""
    for item in selection:
        if isinstance(item, (list, np.ndarray, bool, np.bool_)):
            return None  # numpy would index, but a region is ints, slices, ... and None only
    try:
        return value[selection]
    except (IndexError, ValueError, TypeError):
        return None


@pytest.mark.parametrize("name", ["inline", "file", "segments"])
def test_random_slices_give_what_numpy_gives(arrays: tuple[labshelf.Shelf, int, dict[str, np.ndarray]], name: str) -> None:
    shelf, run, values = arrays
    value = values[name]
    rng = np.random.default_rng({"inline": 1, "file": 2, "segments": 3}[name])
    refused = 0
    for _ in range(TRIES):
        selection = tuple(random_item(rng, value.shape[0]) for _ in range(rng.integers(0, 5)))
        want = expected(value, selection)
        if want is None:
            with pytest.raises(InvalidParameter) as error:
                shelf.get(name, run=run, parameters={"slice": selection})
            assert "slice" in str(error.value), selection
            refused += 1
            continue
        got = shelf.get(name, run=run, parameters={"slice": selection})
        assert type(got) is type(want), selection  # a numpy scalar for an int on every axis, as numpy gives
        assert got.shape == want.shape and got.dtype == want.dtype, selection
        np.testing.assert_array_equal(got, want, err_msg=repr(selection))
    # Both kinds were tried, and plenty of each.
    assert TRIES // 10 < refused < TRIES // 2


READ_BACKWARDS = [
    np.s_[::-1],
    np.s_[::-7],
    np.s_[-1:0:-3],
    np.s_[50:10:-2, ::-1],
    np.s_[..., ::-5],
    np.s_[25:15:-1, 3],
    np.s_[None, ::-1, None, 2],
    np.s_[21:18:-1],  # across the first segment's end
    np.s_[-2, -1, -1],
    np.s_[5:5:-1],
]


@pytest.mark.parametrize("name", ["inline", "file", "segments"])
@pytest.mark.parametrize("selection", READ_BACKWARDS, ids=repr)
def test_negative_steps_and_new_axes(
    arrays: tuple[labshelf.Shelf, int, dict[str, np.ndarray]], name: str, selection: Any
) -> None:
    shelf, run, values = arrays
    want = values[name][selection]
    got = shelf.get(name, run=run, parameters={"slice": selection})
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


BAD_SLICES = [
    pytest.param(np.s_[::0], "step", id="step-zero"),
    pytest.param(np.s_[1.5], "not 1.5", id="float-index"),
    pytest.param(np.s_[0.5:3], "bad slice", id="float-bound"),
    pytest.param(np.s_[[0, 2]], "fancy and boolean", id="list"),
    pytest.param(np.s_[np.array([0, 2])], "fancy and boolean", id="int-array"),
    pytest.param(np.s_[np.array([True] * 60)], "fancy and boolean", id="bool-mask"),
    pytest.param(np.s_[True], "fancy and boolean", id="bool"),
    pytest.param(np.s_[np.bool_(True)], "fancy and boolean", id="numpy-bool"),
    pytest.param("1", "not '1'", id="str"),
    pytest.param(np.s_[0, 0, 0, 0], "4 indices but the array has 3 dimensions", id="too-many-indices"),
    pytest.param(np.s_[..., 0, ...], "more than one ...", id="two-ellipses"),
    pytest.param(np.s_[60], "the slice's index 60 is out of range for axis 0 of length 60", id="past-the-end"),
    pytest.param(np.s_[:, -41], "index -41 is out of range for axis 1", id="before-the-start"),
]


@pytest.mark.parametrize("name", ["file", "segments"])
@pytest.mark.parametrize(("selection", "phrase"), BAD_SLICES)
def test_a_bad_slice_says_what_is_allowed(
    arrays: tuple[labshelf.Shelf, int, dict[str, np.ndarray]], name: str, selection: Any, phrase: str
) -> None:
    shelf, run, values = arrays
    with pytest.raises(InvalidParameter) as error:
        shelf.get(name, run=run, parameters={"slice": selection})
    assert isinstance(error.value, ValueError)
    assert phrase in str(error.value) and "\n" not in str(error.value)
    # The array still reads whole and unchanged.
    np.testing.assert_array_equal(shelf.get(name, run=run), values[name])


# -- images: downsample ------------------------------------------------------------------------


@pytest.fixture
def image(shelf: labshelf.Shelf) -> np.ndarray:
    picture = np.random.default_rng(9).integers(0, 4096, (64, 48), dtype="u2")
    with shelf.new_run() as run:
        assert run.put("camera/image", picture).kind == "image"
    return picture


@pytest.mark.parametrize(
    "factor", [0, -1, 1.5, 2.0, "2", True, np.bool_(True), None, 65, 10**30], ids=repr
)
def test_a_bad_downsample_says_what_is_allowed(shelf: labshelf.Shelf, image: np.ndarray, factor: Any) -> None:
    with pytest.raises(InvalidParameter) as error:
        shelf.get("camera/image", run=1, parameters={"downsample": factor})
    assert "downsample" in str(error.value)


@pytest.mark.parametrize("factor", [1, 2, np.int64(3), 48])
def test_downsample_is_the_block_mean(shelf: labshelf.Shelf, image: np.ndarray, factor: Any) -> None:
    f = int(factor)
    h, w = image.shape[0] // f, image.shape[1] // f
    want = image[: h * f, : w * f].reshape(h, f, w, f).mean(axis=(1, 3)) if f > 1 else image
    got = shelf.get("camera/image", run=1, parameters={"downsample": factor})
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_downsample_after_a_slice(shelf: labshelf.Shelf, image: np.ndarray) -> None:
    got = shelf.get("camera/image", run=1, parameters={"slice": np.s_[::-1, 8:40], "downsample": 4})
    np.testing.assert_allclose(got, image[::-1, 8:40].reshape(16, 4, 8, 4).mean(axis=(1, 3)), rtol=1e-6)
    for selection in (np.s_[3], np.s_[:, 5], np.s_[None]):  # no longer an image
        with pytest.raises(InvalidParameter, match="downsample"):
            shelf.get("camera/image", run=1, parameters={"slice": selection, "downsample": 2})
    with pytest.raises(InvalidParameter, match="larger than the image"):
        shelf.get("camera/image", run=1, parameters={"slice": np.s_[:3], "downsample": 4})
