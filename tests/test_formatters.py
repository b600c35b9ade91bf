"""Value kinds (labshelf.datastore formatters): exact round trips through the public API.

Every value goes in with ``run.put`` and comes back with ``shelf.get``; the
test then checks type, dtype, shape and every bit of the value, where it was
stored (inline in the registry or in a data file), and its summary as the
registry keeps it.  Append and mutate are covered at the end.

The round-trip cases share one shelf per backend (``kept_shelf``): each puts
into a run of its own, and creating a shelf per case would cost most of the
run time of this file.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

import labshelf
from _shelves import BACKENDS, make_shelf, require_postgres
from labshelf.registry.records import DatasetRef

INLINE_MAX_BYTES = 16 * 1024
TEXT_SUMMARY_CHARS = 200
THUMBNAIL_SIZE = 128


@pytest.fixture(scope="module", params=BACKENDS)
def kept_shelf(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[labshelf.Shelf]:
    """One shelf per backend for the whole module."""
    if request.param == "postgres":
        require_postgres()
    shelf = make_shelf(request.param, tmp_path_factory.mktemp("formatters"), request)
    yield shelf
    shelf.close()


def round_trip(
    shelf: labshelf.Shelf, value: Any, name: str = "value", **options: Any
) -> tuple[DatasetRef, Any]:
    """Put ``value`` in a new run; return the registry's ref and the value read back."""
    with shelf.new_run() as run:
        run.put(name, value, **options)
    return shelf.find(name, run=run.number), shelf.get(name, run=run.number)


def assert_same_array(got: Any, expected: np.ndarray) -> None:
    """Same type, dtype (byte order included), shape and bytes."""
    assert type(got) is np.ndarray
    assert got.dtype == expected.dtype and got.dtype.str == expected.dtype.str
    assert got.shape == expected.shape
    if expected.dtype.kind == "O":
        assert got.tolist() == expected.tolist()
        assert all(type(x) is str for x in got.flat)
    else:
        # Bytes compare NaN payloads, -0.0 and NaT exactly.
        assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(expected).tobytes()


def file_path(shelf: labshelf.Shelf, ref: DatasetRef) -> Path:
    """The (one) data file of ``ref``."""
    (relative,) = ref.storage.files
    return shelf.root / relative


def files_of(shelf: labshelf.Shelf, run: int, name: str) -> set[str]:
    """The data files on disk for dataset ``name`` of ``run`` (relative to the root)."""
    folder = shelf.root / "data" / f"{run:06d}"
    return {p.relative_to(shelf.root).as_posix() for p in folder.glob(f"{name}.*")}


# -- Python scalars ---------------------------------------------------------------------------

PYTHON_SCALARS = [
    pytest.param(True, id="true"),
    pytest.param(False, id="false"),
    pytest.param(0, id="int-zero"),
    pytest.param(-7, id="int-negative"),
    pytest.param(2**70 + 3, id="int-huge"),
    pytest.param(-(2**70) - 3, id="int-huge-negative"),
    pytest.param(2**64, id="int-2**64"),
    pytest.param(301.2, id="float"),
    pytest.param(math.nan, id="nan"),
    pytest.param(math.inf, id="inf"),
    pytest.param(-math.inf, id="-inf"),
    pytest.param(-0.0, id="-0.0"),
    pytest.param(1e-300, id="1e-300"),
    pytest.param(5e-324, id="subnormal"),
    pytest.param(1 / 3, id="float-all-digits"),
    pytest.param(1.5 - 2.25j, id="complex"),
    pytest.param(complex(math.nan, -math.inf), id="complex-nan-inf"),
    pytest.param("héllo wörld ✓ 日本語 🧪", id="str-unicode"),
    pytest.param("", id="str-empty"),
    pytest.param("line\nbreak\ttab \x00 nul", id="str-control"),
    pytest.param("λ" * 300, id="str-long"),
    pytest.param(b"", id="bytes-empty"),
    pytest.param(b"\xff\xfe\x00\x80 not utf-8", id="bytes-not-utf8"),
    pytest.param(None, id="none"),
]


@pytest.mark.parametrize("value", PYTHON_SCALARS)
def test_python_scalar_round_trip_is_exact(kept_shelf: labshelf.Shelf, value: Any) -> None:
    ref, got = round_trip(kept_shelf, value)
    assert type(got) is type(value)
    # repr tells -0.0 from 0.0 and shows every digit; NaN == NaN is False.
    assert repr(got) == repr(value)
    assert ref.kind == "scalar" and ref.shape is None
    assert ref.storage.inline is not None and ref.storage.files == ()


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        12,
        -(2**70) - 3,
        2**64,
        301.2,
        math.inf,
        -math.inf,
        1e-300,
        1.5 - 2.25j,
        "short text",
        None,
    ],
    ids=repr,
)
def test_scalar_summary_is_the_value_itself(kept_shelf: labshelf.Shelf, value: Any) -> None:
    ref, _ = round_trip(kept_shelf, value)
    assert ref.summary == value and type(ref.summary) is type(value)


def test_nan_summary_is_none(kept_shelf: labshelf.Shelf) -> None:
    ref, got = round_trip(kept_shelf, math.nan)
    assert math.isnan(got)
    assert ref.summary is None


@pytest.mark.parametrize("value", ["x" * 201, "é" * 1000])
def test_long_string_summary_is_truncated_to_200_characters(kept_shelf: labshelf.Shelf, value: str) -> None:
    ref, got = round_trip(kept_shelf, value)
    assert got == value
    assert len(ref.summary) == TEXT_SUMMARY_CHARS
    assert value.startswith(ref.summary[:-1])


def test_string_of_exactly_200_characters_is_its_own_summary(kept_shelf: labshelf.Shelf) -> None:
    ref, _ = round_trip(kept_shelf, "y" * TEXT_SUMMARY_CHARS)
    assert ref.summary == "y" * TEXT_SUMMARY_CHARS


@pytest.mark.parametrize("value", ["a\x00b", np.str_("a\x00b")], ids=["str", "numpy-str"])
def test_nul_in_a_string_shows_as_a_symbol_in_the_summary(kept_shelf: labshelf.Shelf, value: str) -> None:
    ref, got = round_trip(kept_shelf, value)
    assert got == value and type(got) is type(value)
    assert ref.summary == "a\u2400b"


def test_bytes_summary_is_a_short_text(kept_shelf: labshelf.Shelf) -> None:
    ref, got = round_trip(kept_shelf, b"\xff" * 500)
    assert got == b"\xff" * 500
    assert isinstance(ref.summary, str) and len(ref.summary) == TEXT_SUMMARY_CHARS


# -- numpy scalars ------------------------------------------------------------------------------

NUMPY_SCALARS = [
    np.float32(1.5),
    np.float32(np.nan),
    np.float16(-0.0),
    np.float64(1 / 3),
    np.float64(-0.0),
    np.longdouble(1) / 3,
    np.int8(-128),
    np.int64(-(2**63)),
    np.uint8(255),
    np.uint64(2**64 - 1),
    np.bool_(True),
    np.bool_(False),
    np.complex64(1 + 2j),
    np.complex128(complex(math.nan, 1)),
    np.datetime64("2024-05-06T07:08:09.123456789", "ns"),
    np.datetime64("NaT", "ns"),
    np.datetime64("2024-05-06", "D"),
    np.timedelta64(-5, "s"),
    np.str_("ünïcödé ✓"),
    np.str_(""),
    np.str_("trailing nul\x00"),
    np.bytes_(b"\xff"),
    np.bytes_(b"\xff\x00"),
    np.bytes_(b""),
]


@pytest.mark.parametrize("value", NUMPY_SCALARS, ids=lambda v: f"{v.dtype}-{v!r}")
def test_numpy_scalar_keeps_its_exact_numpy_type(kept_shelf: labshelf.Shelf, value: np.generic) -> None:
    ref, got = round_trip(kept_shelf, value)
    assert type(got) is type(value)
    assert got.dtype == value.dtype and got.dtype.str == value.dtype.str
    assert got.tobytes() == value.tobytes()
    assert ref.kind == "scalar" and ref.storage.inline is not None


@pytest.mark.parametrize(
    "value",
    [np.float32(1.5), np.int8(-128), np.uint64(2**64 - 1), np.bool_(True), np.complex64(1 + 2j)],
    ids=repr,
)
def test_numpy_scalar_summary_is_its_python_value(kept_shelf: labshelf.Shelf, value: np.generic) -> None:
    ref, _ = round_trip(kept_shelf, value)
    assert ref.summary == value.item() and type(ref.summary) is type(value.item())


# -- numpy arrays -------------------------------------------------------------------------------

STRINGS = ["", "a", "ünï", "日本", "xyzzy", "q r", "✓✓"]


def array_of(dtype: str, n: int) -> np.ndarray:
    """``n`` values of ``dtype`` that include its awkward ones (NaN, -0.0, NaT, extremes, '')."""
    dt = np.dtype(dtype)
    index = np.arange(n)
    if dt.kind == "f":
        out = (index * 0.37 - 5).astype(dt)
        out[:4] = [np.nan, np.inf, -np.inf, -0.0]
        return out
    if dt.kind == "c":
        out = (index * 0.5 - 1j * index).astype(dt)
        out[:2] = [complex(np.nan, 1), complex(-0.0, np.inf)]
        return out
    if dt.kind == "b":
        return index % 3 == 0
    if dt.kind in "iu":
        info = np.iinfo(dt)
        out = (index % 100).astype(dt)
        out[:2] = [info.min, info.max]
        return out
    if dt.kind == "U":
        return np.array([STRINGS[i % len(STRINGS)] for i in range(n)], dtype=dt)
    if dt.kind == "S":
        return np.array([[b"", b"\xff", b"abc", b"a\x00b"][i % 4] for i in range(n)], dtype=dt)
    if dt.kind in "Mm":
        out = (index * 86_400_123 - 10**9).astype(dt)
        out[0] = np.datetime64("NaT") if dt.kind == "M" else np.timedelta64("NaT")
        return out
    if dt.kind == "O":
        out = np.empty(n, dtype=object)
        out[:] = [STRINGS[i % len(STRINGS)] * (i % 3 + 1) for i in range(n)]
        return out
    raise AssertionError(f"no test values for {dtype}")


ARRAY_DTYPES = [
    "float64",
    "float32",
    "float16",
    "complex128",
    "complex64",
    "bool",
    "int8",
    "int64",
    "uint8",
    "uint64",
    "<U5",
    "S3",
    "datetime64[ms]",
    "datetime64[ns]",
    "timedelta64[s]",
    ">i4",
    ">f8",
    ">c16",
    "O",
]

#: Inline in the registry: 2x3x4 = 24 elements.  In a data file: 20x10x100 = 20000 elements,
#: more than 16 KiB for every dtype above; 3-D, so that no case is taken for an image.
SMALL, LARGE = (2, 3, 4), (20, 10, 100)


@pytest.mark.parametrize("dtype", ARRAY_DTYPES)
@pytest.mark.parametrize("shape", [(24,), SMALL], ids=["1d", "3d"])
def test_small_array_is_inline_and_exact(
    kept_shelf: labshelf.Shelf, dtype: str, shape: tuple[int, ...]
) -> None:
    value = array_of(dtype, math.prod(shape)).reshape(shape)
    ref, got = round_trip(kept_shelf, value)
    assert_same_array(got, value)
    assert ref.kind == "ndarray" and ref.shape == shape
    assert ref.storage.inline is not None and ref.storage.files == ()


@pytest.mark.parametrize("dtype", ARRAY_DTYPES)
@pytest.mark.parametrize("shape", [(20_000,), LARGE], ids=["1d", "3d"])
def test_large_array_is_in_one_hdf5_file_and_exact(
    kept_shelf: labshelf.Shelf, dtype: str, shape: tuple[int, ...]
) -> None:
    value = array_of(dtype, math.prod(shape)).reshape(shape)
    assert value.nbytes > INLINE_MAX_BYTES
    ref, got = round_trip(kept_shelf, value)
    assert_same_array(got, value)
    assert ref.kind == "ndarray" and ref.shape == shape
    assert ref.storage.inline is None and len(ref.storage.files) == 1
    assert h5py.is_hdf5(file_path(kept_shelf, ref))


@pytest.mark.parametrize("dtype", ["float64", "int8", "<U5", "S3", "datetime64[ms]", "O", "bool"])
@pytest.mark.parametrize("shape", [(0,), (0, 3), (3, 0, 2)], ids=str)
def test_empty_array_keeps_dtype_and_shape(
    kept_shelf: labshelf.Shelf, dtype: str, shape: tuple[int, ...]
) -> None:
    value = np.empty(shape, dtype=dtype)
    ref, got = round_trip(kept_shelf, value)
    assert_same_array(got, value)
    assert ref.summary is None


@pytest.mark.parametrize(
    "value",
    [np.array(2.5), np.array(-3, dtype="i1"), np.array("ünï"), np.array(True), np.array("x" * 5000)],
    ids=["float", "int8", "str", "bool", "str-in-a-file"],
)
def test_zero_dimensional_array_stays_an_array(kept_shelf: labshelf.Shelf, value: np.ndarray) -> None:
    ref, got = round_trip(kept_shelf, value)
    assert_same_array(got, value)
    assert ref.kind == "ndarray" and ref.shape == ()
    assert (ref.storage.inline is None) == (value.nbytes > INLINE_MAX_BYTES)


def test_non_contiguous_array_round_trips(kept_shelf: labshelf.Shelf) -> None:
    base = np.arange(60_000, dtype="f8").reshape(20, 30, 100)
    value = base[::2, ::-1, 1::3]
    _, got = round_trip(kept_shelf, value)
    assert_same_array(got, np.ascontiguousarray(value))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([1, 2, 3], np.array([1, 2, 3])),
        ([1.5, 2], np.array([1.5, 2.0])),
        ((4, 5), np.array([4, 5])),
        ([[1, 2], [3, 4]], np.array([[1, 2], [3, 4]])),
        ([True, False], np.array([True, False])),
        (["a", "bé"], np.array(["a", "bé"])),
        ([], np.array([])),
    ],
    ids=["ints", "floats", "tuple", "nested", "bools", "strs", "empty"],
)
def test_list_is_stored_as_an_ndarray(kept_shelf: labshelf.Shelf, value: Any, expected: np.ndarray) -> None:
    ref, got = round_trip(kept_shelf, value)
    assert ref.kind == "ndarray"
    assert_same_array(got, expected)


@pytest.mark.parametrize(
    "value",
    [
        np.arange(10, dtype="i8"),
        np.linspace(-1, 3, 5000),
        np.arange(20_000, dtype="u8") + 2**60,
        np.array([True, False, False, True]),
        np.arange(24, dtype="f4").reshape(SMALL),
    ],
    ids=["int", "float-file", "uint64-file", "bool", "3d"],
)
def test_array_summary_is_the_mean(kept_shelf: labshelf.Shelf, value: np.ndarray) -> None:
    ref, _ = round_trip(kept_shelf, value)
    assert ref.summary == pytest.approx(float(np.mean(value, dtype=np.float64)), rel=1e-12)


@pytest.mark.parametrize(
    "value",
    [
        np.array([], dtype="f8"),
        np.array([1.0, np.nan]),
        np.array(["a"]),
        np.array([1j]),
        array_of("datetime64[ms]", 5),
    ],
    ids=["empty", "nan", "str", "complex", "datetime"],
)
def test_array_without_a_mean_has_no_summary(kept_shelf: labshelf.Shelf, value: np.ndarray) -> None:
    ref, _ = round_trip(kept_shelf, value)
    assert ref.summary is None


# -- images -----------------------------------------------------------------------------------


def gradient(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Dark on the left, bright on the right, so a thumbnail shows which way it is."""
    width = shape[1]
    top = np.iinfo(dtype).max if np.dtype(dtype).kind in "iu" else 1.0
    row = (np.arange(width) / (width - 1) * top).astype(dtype)
    return np.broadcast_to(row.reshape((1, width) + (1,) * (len(shape) - 2)), shape).copy()


def decode_png(data: Any) -> Image.Image:
    assert isinstance(data, bytes) and data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


IMAGES = [
    pytest.param((16, 16), "uint16", "L", id="gray-16x16-uint16"),
    pytest.param((300, 200), "uint16", "L", id="gray-300x200-uint16"),
    pytest.param((1000, 1000), "float32", "L", id="gray-1000x1000-float32"),
    pytest.param((20, 500), "uint8", "L", id="gray-20x500-uint8"),
    pytest.param((256, 384, 3), "uint8", "RGB", id="rgb-256x384"),
    pytest.param((64, 48, 4), "uint8", "RGBA", id="rgba-64x48"),
    pytest.param((200, 150, 4), "uint8", "RGBA", id="rgba-200x150"),
]


@pytest.mark.parametrize(("shape", "dtype", "mode"), IMAGES)
def test_image_round_trip_and_thumbnail(
    kept_shelf: labshelf.Shelf, shape: tuple[int, ...], dtype: str, mode: str
) -> None:
    value = gradient(shape, dtype)
    ref, got = round_trip(kept_shelf, value, "camera/image")
    assert ref.kind == "image"
    assert_same_array(got, value)
    assert ref.storage.inline is None and len(ref.storage.files) == 1
    thumb = decode_png(ref.summary)
    assert thumb.mode == mode
    height, width = shape[:2]
    if max(height, width) > THUMBNAIL_SIZE:
        assert max(thumb.size) == THUMBNAIL_SIZE
        assert thumb.width / thumb.height == pytest.approx(width / height, rel=0.05)
    else:
        assert thumb.size == (width, height)
    pixels = np.asarray(thumb.convert("L"), dtype=float)
    assert pixels[:, : pixels.shape[1] // 4].mean() < pixels[:, -pixels.shape[1] // 4 :].mean()


@pytest.mark.parametrize(
    ("shape", "subclass"),
    [((32, 48), b"IMAGE_GRAYSCALE"), ((32, 48, 3), b"IMAGE_TRUECOLOR"), ((32, 48, 4), b"IMAGE_TRUECOLOR")],
)
def test_image_file_carries_the_hdf5_image_class(
    kept_shelf: labshelf.Shelf, shape: tuple[int, ...], subclass: bytes
) -> None:
    ref, _ = round_trip(kept_shelf, gradient(shape, "uint8"), "img")
    with h5py.File(file_path(kept_shelf, ref), "r") as f:
        attrs = f["img"].attrs
        assert attrs["CLASS"] == b"IMAGE"
        assert attrs["IMAGE_SUBCLASS"] == subclass
        assert attrs["IMAGE_VERSION"] == b"1.2"


def test_image_with_nan_has_a_thumbnail(kept_shelf: labshelf.Shelf) -> None:
    value = gradient((64, 64), "float32")
    value[:10] = np.nan
    ref, got = round_trip(kept_shelf, value)
    assert_same_array(got, value)
    assert decode_png(ref.summary).size == (64, 64)


@pytest.mark.parametrize(
    "value",
    [
        np.zeros((15, 100), "u2"),
        np.zeros((32, 32, 2), "u1"),
        np.zeros((32, 32), bool),
        np.zeros((32, 32), complex),
    ],
    ids=["side-15", "2-channels", "bool", "complex"],
)
def test_arrays_that_are_no_images_are_ndarrays(kept_shelf: labshelf.Shelf, value: np.ndarray) -> None:
    ref, got = round_trip(kept_shelf, value)
    assert ref.kind == "ndarray"
    assert_same_array(got, value)


def test_kind_ndarray_forces_an_image_shaped_array_to_be_an_array(kept_shelf: labshelf.Shelf) -> None:
    value = gradient((64, 64), "uint16")
    ref, got = round_trip(kept_shelf, value, kind="ndarray")
    assert ref.kind == "ndarray" and ref.summary == pytest.approx(value.mean())
    assert_same_array(got, value)


# -- HDF5 storage options ------------------------------------------------------------------------

HDF5_OPTIONS = [
    pytest.param(
        {"compression": "gzip", "compression_opts": 4, "chunks": (16, 100)},
        {"compression": "gzip", "compression_opts": 4, "chunks": (16, 100), "shuffle": False},
        id="gzip-4-chunks",
    ),
    pytest.param({"compression": "lzf"}, {"compression": "lzf", "shuffle": False}, id="lzf"),
    pytest.param(
        {"compression": "gzip", "shuffle": True}, {"compression": "gzip", "shuffle": True}, id="gzip-shuffle"
    ),
    pytest.param({"shuffle": True, "chunks": (8, 8)}, {"shuffle": True, "chunks": (8, 8)}, id="shuffle-only"),
    pytest.param({"fletcher32": True}, {"fletcher32": True}, id="fletcher32"),
]


@pytest.mark.parametrize("kind", ["image", "ndarray"])
@pytest.mark.parametrize(("options", "expected"), HDF5_OPTIONS)
def test_hdf5_options_are_visible_in_the_stored_file(
    kept_shelf: labshelf.Shelf, kind: str, options: dict[str, Any], expected: dict[str, Any]
) -> None:
    value = (np.arange(64 * 1000) % 1000).astype("u2").reshape(64, 1000)
    ref, got = round_trip(kept_shelf, value, "camera/frame", hdf5_options=options, kind=kind)
    assert ref.kind == kind
    assert_same_array(got, value)
    assert dict(ref.storage.options) == {
        k: list(v) if isinstance(v, tuple) else v for k, v in options.items()
    }
    with h5py.File(file_path(kept_shelf, ref), "r") as f:
        ds = f["camera/frame"]
        for attribute, wanted in expected.items():
            assert getattr(ds, attribute) == wanted, attribute
        assert ds.chunks is not None


def test_small_array_with_options_goes_to_a_file(kept_shelf: labshelf.Shelf) -> None:
    value = np.arange(100, dtype="i4")
    ref, got = round_trip(kept_shelf, value, hdf5_options={"compression": "gzip", "compression_opts": 9})
    assert ref.storage.inline is None and len(ref.storage.files) == 1
    assert_same_array(got, value)
    with h5py.File(file_path(kept_shelf, ref), "r") as f:
        assert f["value"].compression == "gzip" and f["value"].compression_opts == 9


# -- xarray -------------------------------------------------------------------------------------


def dtypes(value: xr.DataArray | xr.Dataset) -> dict[Any, np.dtype]:
    """The dtype of every variable (and of a DataArray's own values, under None)."""
    variables = {**value.coords, None: value} if isinstance(value, xr.DataArray) else value.variables
    return {k: v.dtype for k, v in variables.items()}


def assert_same_xarray(got: Any, expected: Any) -> None:
    """``identical``, and what it does not check: every variable's dtype (datetime units)."""
    assert type(got) is type(expected)
    assert got.identical(expected)
    assert dtypes(got) == dtypes(expected)
    assert not any(str(k).startswith("labshelf") for k in got.attrs)


def temperature(name: str | None = "temperature") -> xr.DataArray:
    return xr.DataArray(
        np.arange(12.0).reshape(4, 3) - 0.5,
        dims=("time", "x"),
        coords={
            "time": pd.date_range("2024-01-01", periods=4, freq="h"),
            "x": [10, 20, 30],
            "label": ("x", ["a", "bé", "c"]),
            "shot_time": (
                "x",
                np.array(["2024-01-01T00:00:00.001", "NaT", "2024-01-02"], dtype="datetime64[ns]"),
            ),
        },
        attrs={
            "units": "K",
            "calibrated": True,
            "broken": False,
            "gain": 1.5,
            "count": 3,
            "window": [1, 2, 3],
        },
        name=name,
    )


XARRAYS = [
    pytest.param(temperature(), id="named"),
    pytest.param(temperature(None), id="unnamed"),
    pytest.param(xr.DataArray(np.arange(5, dtype="i2"), dims="n"), id="int16-no-coords"),
    pytest.param(xr.DataArray(np.array([1 + 2j, -1j]), dims="n", attrs={"phase": 1 + 1j}), id="complex"),
    pytest.param(xr.DataArray(np.array([True, False]), dims="n", name="mask"), id="bool"),
    pytest.param(
        xr.DataArray(np.array([1, 2], dtype="timedelta64[ms]"), dims="t", name="delay"), id="timedelta-values"
    ),
    pytest.param(
        xr.DataArray(
            [1.0, 2.0], dims="t", coords={"t": np.array(["2300-01-01", "2300-06-01"], dtype="datetime64[s]")}
        ),
        id="datetime-s-coord",
    ),
    pytest.param(
        xr.Dataset(
            {
                "temperature": temperature(),
                "ok": ("x", np.array([True, False, True])),
                "note": ("time", np.array(["p", "q", "ré", "s"])),
                "gain": ((), 3.5),
                "counts": (("time", "x"), np.arange(12, dtype="u4").reshape(4, 3), {"units": "1"}),
            },
            attrs={"title": "scan", "flag": False, "version": 2},
        ),
        id="dataset",
    ),
    pytest.param(xr.Dataset(), id="empty-dataset"),
]


@pytest.mark.parametrize("value", XARRAYS)
def test_xarray_round_trip_is_identical(kept_shelf: labshelf.Shelf, value: Any) -> None:
    ref, got = round_trip(kept_shelf, value)
    assert ref.kind == "xarray"
    assert_same_xarray(got, value)
    assert ref.storage.inline is None and len(ref.storage.files) == 1


def test_xarray_summaries(kept_shelf: labshelf.Shelf) -> None:
    ref, _ = round_trip(kept_shelf, temperature())
    assert ref.summary == pytest.approx(5.0)
    ref, _ = round_trip(kept_shelf, xr.Dataset({"a": ("n", [1]), "b": ("n", [2])}))
    assert isinstance(ref.summary, str) and "a" in ref.summary and "b" in ref.summary


# -- pandas -------------------------------------------------------------------------------------


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "int": np.array([1, -2, 2**62], dtype="i8"),
            "uint8": np.array([0, 255, 7], dtype="u1"),
            "float": [1.5, np.nan, -0.0],
            "str": ["a", "ünï", None],
            "object_str": pd.Series(["x", "y", "z"], dtype=object),
            "bool": [True, False, True],
            "when": pd.to_datetime(
                ["2024-01-01 00:00:00", "2024-06-01 12:00:00", "2024-12-31 23:59:59.123456"], format="ISO8601"
            ),
            "when_tz": pd.date_range("2024-03-30", periods=3, freq="D", tz="Europe/Zurich"),
            "category": pd.Categorical(["lo", "hi", "lo"], categories=["lo", "mid", "hi"], ordered=True),
            "nullable": pd.array([1, None, 3], dtype="Int64"),
        },
        index=pd.Index([10, 20, 30], name="shot"),
    )


FRAMES = [
    pytest.param(frame(), id="many-dtypes"),
    pytest.param(pd.DataFrame({"a": [1, 2]}), id="range-index"),
    pytest.param(pd.DataFrame({"v": [1.0, 2.0]}, index=pd.Index(["p", "q"], name="k")), id="str-index"),
    pytest.param(
        pd.DataFrame({"v": [1, 2]}, index=pd.MultiIndex.from_tuples([(1, "a"), (2, "b")], names=["n", "s"])),
        id="multi-index",
    ),
    pytest.param(pd.DataFrame({"x": pd.Series([], dtype="f8")}), id="no-rows"),
    pytest.param(pd.DataFrame(np.arange(30_000.0).reshape(10_000, 3), columns=["a", "b", "c"]), id="large"),
]


@pytest.mark.parametrize("value", FRAMES)
def test_dataframe_round_trip_is_exact(kept_shelf: labshelf.Shelf, value: pd.DataFrame) -> None:
    ref, got = round_trip(kept_shelf, value)
    assert ref.kind == "pandas"
    pd.testing.assert_frame_equal(got, value, check_exact=True)
    assert ref.storage.inline is None and len(ref.storage.files) == 1
    rows, columns = value.shape
    assert (
        isinstance(ref.summary, str) and f"{rows} rows" in ref.summary and f"{columns} columns" in ref.summary
    )


SERIES = [
    pytest.param(
        pd.Series([1.5, -0.0, np.nan], name="v", index=pd.Index(["a", "b", "c"], name="k")), id="named"
    ),
    pytest.param(pd.Series([1, 2, 3]), id="unnamed"),
    pytest.param(pd.Series(["x", None, "ü"], name="text"), id="str"),
    pytest.param(pd.Series(pd.date_range("2024-01-01", periods=3, tz="UTC"), name="t"), id="datetime-tz"),
    pytest.param(pd.Series(pd.Categorical(["a", "b", "a"]), name=7), id="categorical-int-name"),
]


@pytest.mark.parametrize("value", SERIES)
def test_series_round_trip_is_exact(kept_shelf: labshelf.Shelf, value: pd.Series) -> None:
    ref, got = round_trip(kept_shelf, value)
    assert ref.kind == "pandas"
    assert type(got) is pd.Series
    pd.testing.assert_series_equal(got, value, check_exact=True)
    assert got.name == value.name
    assert isinstance(ref.summary, str) and f"{len(value)} rows" in ref.summary


# -- append -------------------------------------------------------------------------------------


@pytest.fixture
def run(kept_shelf: labshelf.Shelf) -> Iterator[labshelf.Run]:
    with kept_shelf.new_run() as run:
        yield run


def test_append_to_an_empty_array(kept_shelf: labshelf.Shelf, run: labshelf.Run) -> None:
    run.put("x", np.array([], dtype="f4"))
    run.append("x", [1.5, 2.5])
    run.append("x", np.float32(3.5))
    assert_same_array(kept_shelf.get("x", run=run.number), np.array([1.5, 2.5, 3.5], dtype="f4"))


def test_append_scalars_creates_the_dataset(kept_shelf: labshelf.Shelf, run: labshelf.Run) -> None:
    for i in (1, 2, 3):
        ref = run.append("counts", i)
    assert ref.kind == "ndarray" and ref.shape == (3,) and ref.summary == pytest.approx(2.0)
    assert_same_array(kept_shelf.get("counts", run=run.number), np.array([1, 2, 3]))


def test_append_rows_and_blocks_to_a_2d_array(kept_shelf: labshelf.Shelf, run: labshelf.Run) -> None:
    run.put("rows", np.zeros((0, 3), dtype="i4"))
    run.append("rows", [1, 2, 3])
    ref = run.append("rows", np.array([[4, 5, 6], [7, 8, 9]], dtype="i4"))
    assert ref.shape == (3, 3)
    assert_same_array(kept_shelf.get("rows", run=run.number), np.arange(1, 10, dtype="i4").reshape(3, 3))


def test_append_grows_an_inline_array_into_a_file(kept_shelf: labshelf.Shelf, run: labshelf.Run) -> None:
    first = np.arange(2000, dtype="f8")  # 16000 bytes: still inline
    assert run.put("grow", first).storage.inline is not None
    ref = run.append("grow", np.arange(2000, 2100, dtype="f8"))
    assert ref.storage.inline is None and len(ref.storage.files) == 1
    found = kept_shelf.find("grow", run=run.number)
    assert found.shape == (2100,) and found.storage.files == ref.storage.files
    assert_same_array(kept_shelf.get("grow", run=run.number), np.arange(2100, dtype="f8"))


def test_many_appends_to_a_file_backed_array_keep_few_files(
    kept_shelf: labshelf.Shelf, run: labshelf.Run
) -> None:
    expected = [np.arange(3000, dtype="i8")]
    run.put("trace", expected[0])
    for i in range(25):
        block = np.arange(1000, dtype="i8") * (i + 1)
        expected.append(block)
        ref = run.append("trace", block)
        assert len(ref.storage.files) <= 10
    whole = np.concatenate(expected)
    assert_same_array(kept_shelf.get("trace", run=run.number), whole)
    ref = kept_shelf.find("trace", run=run.number)
    assert ref.shape == whole.shape and ref.summary == pytest.approx(whole.mean(), rel=1e-12)
    # Merged segments are deleted: only the files the registry names are left.
    assert files_of(kept_shelf, run.number, "trace") == set(ref.storage.files)


@pytest.mark.parametrize("size", [2, 5000], ids=["inline", "file"])
def test_appending_longer_strings_widens_the_dtype(
    kept_shelf: labshelf.Shelf, run: labshelf.Run, size: int
) -> None:
    start = np.array(["ab"] * size)
    run.put("names", start)
    run.append("names", "ünïcode")
    ref = run.append("names", np.array(["x", "yz"]))
    got = kept_shelf.get("names", run=run.number)
    assert_same_array(got, np.array([*start, "ünïcode", "x", "yz"], dtype="<U7"))
    assert ref.dtype == "<U7"


def test_append_to_an_image_updates_its_thumbnail(kept_shelf: labshelf.Shelf, run: labshelf.Run) -> None:
    image = np.zeros((32, 64), dtype="u1")
    first = run.put("img", image)
    ref = run.append("img", np.full((32, 64), 255, dtype="u1"))
    assert ref.kind == "image" and ref.shape == (64, 64)
    assert_same_array(kept_shelf.get("img", run=run.number), np.vstack([image, np.full((32, 64), 255, "u1")]))
    assert decode_png(ref.summary).size == (64, 64) and ref.summary != first.summary


# -- mutate -------------------------------------------------------------------------------------

MUTATIONS = [
    pytest.param(3, 99, id="int"),
    pytest.param(-1, -5, id="negative-int"),
    pytest.param(slice(0, 4, 2), [7, 8, 9, 10, 11], id="slice"),
    pytest.param((1, slice(None)), 4, id="tuple-row"),
    pytest.param((slice(0, 2), 3), [1, 2], id="tuple-column"),
    pytest.param((2, 3), 42, id="tuple-element"),
    pytest.param(Ellipsis, 0, id="ellipsis"),
]


@pytest.mark.parametrize("rows", [4, 1000], ids=["inline", "file"])
@pytest.mark.parametrize(("index", "new"), MUTATIONS)
def test_mutate_sets_like_numpy(
    kept_shelf: labshelf.Shelf, run: labshelf.Run, rows: int, index: Any, new: Any
) -> None:
    value = np.arange(rows * 5, dtype="i4").reshape(rows, 5)
    first = run.put("grid", value)
    assert (first.storage.inline is None) == (value.nbytes > INLINE_MAX_BYTES)
    expected = value.copy()
    expected[index] = new
    ref = run.mutate("grid", index, new)
    assert ref.version == first.version + 1
    assert_same_array(kept_shelf.get("grid", run=run.number), expected)


def test_mutate_of_a_file_backed_array_writes_a_new_file_and_deletes_the_old(
    kept_shelf: labshelf.Shelf, run: labshelf.Run
) -> None:
    value = np.arange(5000, dtype="f8")
    first = run.put("wave", value)
    old = file_path(kept_shelf, first)
    assert old.exists()
    ref = run.mutate("wave", 0, -1.0)
    assert ref.storage.files != first.storage.files
    assert not old.exists() and file_path(kept_shelf, ref).exists()
    expected = value.copy()
    expected[0] = -1.0
    assert_same_array(kept_shelf.get("wave", run=run.number), expected)
    assert ref.summary == pytest.approx(expected.mean())


def test_mutate_of_a_segmented_array_leaves_one_file(kept_shelf: labshelf.Shelf, run: labshelf.Run) -> None:
    run.put("seg", np.zeros(3000, dtype="i8"))
    before = run.append("seg", np.ones(3000, dtype="i8"))
    assert len(before.storage.files) == 2
    ref = run.mutate("seg", slice(2990, 3010), 5)
    assert len(ref.storage.files) == 1
    assert files_of(kept_shelf, run.number, "seg") == set(ref.storage.files)
    expected = np.concatenate([np.zeros(3000, "i8"), np.ones(3000, "i8")])
    expected[2990:3010] = 5
    assert_same_array(kept_shelf.get("seg", run=run.number), expected)


def test_mutate_with_a_longer_string_widens(kept_shelf: labshelf.Shelf, run: labshelf.Run) -> None:
    run.put("labels", np.array(["ab", "cd"]))
    run.mutate("labels", 0, "longer")
    assert_same_array(kept_shelf.get("labels", run=run.number), np.array(["longer", "cd"]))


def test_long_and_multibyte_names_fit_the_file_system(kept_shelf: labshelf.Shelf) -> None:
    value = np.arange(5000, dtype="f8")
    for name in ("a" * 255, "é" * 255, "ü" * 127 + "/" + "日" * 127):
        ref, got = round_trip(kept_shelf, value, name)
        assert ref.name == name and ref.storage.files
        assert_same_array(got, value)


def test_values_are_independent_of_what_the_caller_does_later(kept_shelf: labshelf.Shelf) -> None:
    value = np.arange(10.0)
    with kept_shelf.new_run() as run:
        run.put("snapshot", value)
        value[:] = -1
    got = kept_shelf.get("snapshot", run=run.number)
    assert_same_array(got, np.arange(10.0))
    # Arrays come from the shared read cache read-only; copy=True gives one to change.
    with pytest.raises(ValueError, match="read-only"):
        got[:] = 5
    mine = kept_shelf.get("snapshot", run=run.number, copy=True)
    mine[:] = 5
    assert_same_array(kept_shelf.get("snapshot", run=run.number), np.arange(10.0))
