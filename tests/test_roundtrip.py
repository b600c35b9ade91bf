"""Exactly what was put comes back, or put refuses it (issue 10, section 2).

Each value is one row of a table and one parametrised test: it goes in with
``run.put`` and comes back with ``shelf.get``, and the test compares value
*and* type, dtype (byte order included), index, names, attrs and flags.
Arrays run at two sizes, one kept inline in the registry and one in a data
file, as both paths must be exact.  Values that cannot come back exactly
are refused at put with a labshelf error naming what is wrong, and leave
nothing behind.  ``append`` and ``mutate`` take a value only if the array's
dtype holds it exactly (the casting table at the end).

The cases share one shelf per registry (``kept_shelf``), each in a run of
its own: a shelf per case would cost most of this file's run time.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import functools
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import xarray as xr

import labshelf
from _shelves import BACKENDS, make_shelf, require_postgres
from labshelf.registry.records import DatasetRef

INLINE_MAX_BYTES = 16 * 1024
#: Rows of the small (inline) and big (file-backed) variant of each array case.
SIZES = {"inline": 4, "file": 20_000}


@pytest.fixture(scope="module", params=BACKENDS)
def kept_shelf(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[labshelf.Shelf]:
    """One shelf per registry for the whole module."""
    if request.param == "postgres":
        require_postgres()
    shelf = make_shelf(request.param, tmp_path_factory.mktemp("roundtrip"), request)
    yield shelf
    shelf.close()


def put_and_get(shelf: labshelf.Shelf, value: Any) -> tuple[DatasetRef, Any]:
    """Put ``value`` in a new run; return its ref and the value read back."""
    with shelf.new_run() as run:
        run.put("value", value)
    return shelf.find("value", run=run.number), shelf.get("value", run=run.number)


def data_files(shelf: labshelf.Shelf) -> set[Path]:
    return {p for folder in ("data", "tmp") for p in (shelf.root / folder).rglob("*") if p.is_file()}


# -- how "exactly" is checked ------------------------------------------------------------------


def assert_same_scalar(got: Any, value: Any) -> None:
    assert type(got) is type(value)
    if isinstance(value, np.generic):
        assert got.dtype == value.dtype and got.dtype.str == value.dtype.str
        assert got.tobytes() == value.tobytes()  # trailing NULs, NaN payloads, -0.0
    else:
        assert repr(got) == repr(value)


def assert_same_array(got: Any, value: np.ndarray) -> None:
    assert type(got) is np.ndarray
    assert got.dtype == value.dtype and got.dtype.str == value.dtype.str
    assert got.shape == value.shape
    if value.dtype.kind == "O":
        assert got.tolist() == value.tolist()
        assert [type(x) for x in got.flat] == [type(x) for x in value.flat]
    else:
        assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(value).tobytes()


def assert_same_objects(got: Any, value: Any, what: str) -> None:
    """Object values element by element: type and repr (None is not NaN, bytes are not str)."""
    assert [type(x) for x in got] == [type(x) for x in value], what
    assert [repr(x) for x in got] == [repr(x) for x in value], what


def assert_same_index(got: pd.Index, value: pd.Index) -> None:
    pd.testing.assert_index_equal(got, value, exact=True, check_exact=True)
    assert type(got) is type(value)
    assert got.dtype == value.dtype, (got.dtype, value.dtype)
    assert list(got.names) == list(value.names)
    assert [type(n) for n in got.names] == [type(n) for n in value.names]
    if isinstance(value, pd.MultiIndex):
        assert [level.dtype for level in got.levels] == [level.dtype for level in value.levels]
    elif value.dtype == object:
        assert_same_objects(got, value, "index")
    if isinstance(value, pd.RangeIndex):
        assert (got.start, got.stop, got.step) == (value.start, value.stop, value.step)
    assert getattr(got, "freq", None) == getattr(value, "freq", None)


def assert_same_pandas(got: Any, value: Any) -> None:
    assert type(got) is type(value)
    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(
            got, value, check_exact=True, check_freq=True, check_flags=True,
            check_index_type=True, check_column_type=True,
        )
        # pandas 3 compares an object column of str equal to a str column: dtypes are checked apart.
        assert list(got.dtypes) == list(value.dtypes)
        assert_same_index(got.columns, value.columns)
        columns = [(c, got[c], value[c]) for c in value.columns]
    else:
        pd.testing.assert_series_equal(got, value, check_exact=True, check_freq=True, check_flags=True, check_index_type=True)
        assert got.dtype == value.dtype
        assert type(got.name) is type(value.name) and got.name == value.name
        columns = [("values", got, value)]
    for what, back, put in columns:
        if put.dtype == object:
            assert_same_objects(back, put, what)
    assert_same_index(got.index, value.index)
    assert got.attrs == value.attrs
    assert got.flags.allows_duplicate_labels == value.flags.allows_duplicate_labels


def xarray_dtypes(value: Any) -> dict[Any, np.dtype]:
    variables = {**value.coords, None: value} if isinstance(value, xr.DataArray) else value.variables
    return {k: v.dtype for k, v in variables.items()}


def assert_same_xarray(got: Any, value: Any) -> None:
    assert type(got) is type(value)
    xr.testing.assert_identical(got, value)
    # identical() sees neither byte order nor datetime units, nor str objects becoming numpy str.
    assert {k: d.str for k, d in xarray_dtypes(got).items()} == {k: d.str for k, d in xarray_dtypes(value).items()}
    variables = {**value.coords, None: value} if isinstance(value, xr.DataArray) else value.variables
    for key, variable in variables.items():
        if variable.dtype == object:
            back = got if key is None else got[key]
            assert_same_objects(back.values.ravel(), variable.values.ravel(), str(key))


# -- scalars (always inline) -------------------------------------------------------------------

SCALARS = [
    pytest.param(np.bytes_(b"a\x00"), id="bytes_-trailing-nul"),
    pytest.param(np.bytes_(b"\x00\x00"), id="bytes_-only-nuls"),
    pytest.param(np.bytes_(b""), id="bytes_-empty"),
    pytest.param(np.str_("a\x00"), id="str_-trailing-nul"),
    pytest.param(np.str_("é\x00\x00"), id="str_-non-ascii-trailing-nuls"),
    pytest.param(np.str_(""), id="str_-empty"),
    pytest.param(np.longdouble(1) / 3, id="longdouble"),
    pytest.param(np.clongdouble(1 + 2j) / 3, id="clongdouble"),
    pytest.param(np.float16(0.1), id="float16"),
    pytest.param(np.uint64(2**64 - 1), id="uint64-max"),
    pytest.param(np.int64(-(2**63)), id="int64-min"),
    pytest.param(np.datetime64("2024-01-01T00:00:01", "s"), id="datetime64-s"),
    pytest.param(np.timedelta64(5, "ms"), id="timedelta64-ms"),
    pytest.param(np.datetime64("NaT", "ns"), id="nat"),
    pytest.param(np.bool_(True), id="numpy-bool"),
    pytest.param("a\x00", id="str-trailing-nul"),
    pytest.param(b"a\x00", id="bytes-trailing-nul"),
    pytest.param(2**100, id="int-beyond-64-bits"),
]


@pytest.mark.parametrize("value", SCALARS)
def test_scalar_comes_back_exactly(kept_shelf: labshelf.Shelf, value: Any) -> None:
    ref, got = put_and_get(kept_shelf, value)
    assert ref.kind == "scalar" and ref.storage.inline is not None
    assert_same_scalar(got, value)


# -- arrays, inline and in files ---------------------------------------------------------------


def numbers(dtype: str) -> Callable[[int], np.ndarray]:
    return lambda n: (np.arange(n * 3) - n).astype(dtype)


def strings(dtype: str, *items: Any) -> Callable[[int], np.ndarray]:
    return lambda n: np.array([*items] * n, dtype=dtype)


ARRAYS = [
    pytest.param(numbers(">f4"), id="big-endian-float32"),
    pytest.param(numbers(">f8"), id="big-endian-float64"),
    pytest.param(numbers(">i2"), id="big-endian-int16"),
    pytest.param(numbers(">u8"), id="big-endian-uint64"),
    pytest.param(lambda n: numbers(">c16")(n) * (1 - 2j), id="big-endian-complex128"),
    pytest.param(numbers(">f2"), id="big-endian-float16"),
    pytest.param(numbers("<f2"), id="float16"),
    pytest.param(lambda n: numbers("longdouble")(n) / 3, id="longdouble"),
    pytest.param(lambda n: numbers("clongdouble")(n) / 3j, id="clongdouble"),
    pytest.param(numbers(">M8[s]"), id="big-endian-datetime64-s"),
    pytest.param(numbers(">m8[ms]"), id="big-endian-timedelta64-ms"),
    pytest.param(numbers("M8[D]"), id="datetime64-days"),
    pytest.param(lambda n: numbers(">i4")(n).reshape(n, 3), id="big-endian-2d"),
    pytest.param(strings("S2", b"a\x00", b"\x00\x00", b"xy", b""), id="bytes-trailing-nuls"),
    pytest.param(strings("U2", "a\x00", "\x00\x00", "é", ""), id="str-trailing-nuls"),
    pytest.param(strings("U3", "a\x00b", "\x00é", "xyz"), id="str-inner-nuls"),
    pytest.param(strings("S3", b"a\x00b", b"\x00\xff", b"xyz"), id="bytes-inner-nuls"),
    pytest.param(strings(">U3", "ab", "é\x00", "xyz"), id="big-endian-str"),
    pytest.param(strings(object, "a", "", "ünï", "xy"), id="object-str"),
    pytest.param(strings(object, "a", "", "ü\x00ï", "x\x00"), id="object-str-nuls"),
    pytest.param(lambda n: np.arange(n * 3) % 3 == 0, id="bool"),
]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("make", ARRAYS)
def test_array_comes_back_exactly(kept_shelf: labshelf.Shelf, make: Callable[[int], np.ndarray], size: str) -> None:
    value = make(SIZES[size])
    assert (value.nbytes <= INLINE_MAX_BYTES) == (size == "inline")  # the case is what it says
    ref, got = put_and_get(kept_shelf, value)
    assert ref.kind == "ndarray"
    assert (ref.storage.inline is not None) == (size == "inline")
    assert_same_array(got, value)


IMAGES = [
    pytest.param(np.arange(32 * 48, dtype=">u2").reshape(32, 48), id="big-endian-uint16"),
    pytest.param(np.linspace(0, 1, 20 * 20 * 3, dtype=">f4").reshape(20, 20, 3), id="big-endian-rgb-float32"),
    pytest.param(np.arange(16 * 16, dtype=">i8").reshape(16, 16), id="big-endian-int64"),
]


@pytest.mark.parametrize("value", IMAGES)
def test_image_keeps_its_dtype_exactly(kept_shelf: labshelf.Shelf, value: np.ndarray) -> None:
    ref, got = put_and_get(kept_shelf, value)
    assert ref.kind == "image" and ref.storage.files
    assert_same_array(got, value)


# -- pandas ------------------------------------------------------------------------------------


def frame_with(**columns: Callable[[int], Any]) -> Callable[[int], pd.DataFrame]:
    return lambda n: pd.DataFrame({name: make(n) for name, make in columns.items()})


def with_attrs(make: Callable[[int], Any], **attrs: Any) -> Callable[[int], Any]:
    def made(n: int) -> Any:
        value = make(n)
        value.attrs.update(attrs)
        return value

    return made


def cycle(*items: Any, dtype: Any = None) -> Callable[[int], Any]:
    """``n`` values repeating ``items``: a list (pandas infers its dtype) or an array of ``dtype``."""
    if dtype is None:
        return lambda n: [items[i % len(items)] for i in range(n)]
    return lambda n: pd.array([items[i % len(items)] for i in range(n)], dtype=dtype)


def objects(*items: Any) -> Callable[[int], pd.Series]:
    return lambda n: pd.Series([items[i % len(items)] for i in range(n)], dtype=object)


FRAMES = [
    pytest.param(frame_with(a=np.arange), id="default-range-index"),
    pytest.param(lambda n: pd.DataFrame({"a": np.arange(n)}, index=pd.RangeIndex(5, 5 + 3 * n, 3, name="r")), id="range-index-start-step-name"),
    pytest.param(lambda n: pd.Series(np.arange(n) * 0.5, index=pd.RangeIndex(2, 2 + n, name="r"), name="s"), id="series-range-index"),
    pytest.param(lambda n: pd.DataFrame({"a": np.arange(n)}, index=pd.date_range("2024", periods=n, freq="D", name="day")), id="datetime-index-freq"),
    pytest.param(lambda n: pd.Series(np.arange(n), index=pd.bdate_range("2024-01-01", periods=n)), id="business-day-freq"),
    pytest.param(lambda n: pd.Series(np.arange(n), index=pd.timedelta_range(0, periods=n, freq="15min")), id="timedelta-index-freq"),
    pytest.param(lambda n: pd.Series(np.arange(n), index=pd.date_range("2024", periods=n, freq="s", unit="s")), id="seconds-index-freq"),
    pytest.param(frame_with(t=lambda n: np.arange(n).astype("datetime64[s]")), id="datetime64-s"),
    pytest.param(frame_with(t=lambda n: np.arange(n).astype("datetime64[ms]")), id="datetime64-ms"),
    pytest.param(frame_with(t=lambda n: pd.date_range("2024", periods=n, unit="s", tz="UTC")), id="datetime64-s-utc"),
    pytest.param(frame_with(t=lambda n: pd.date_range("2024-03-30", periods=n, freq="h", tz="Europe/Zurich")), id="datetime-zurich"),
    pytest.param(frame_with(t=lambda n: pd.date_range("2024", periods=n, tz=datetime.timezone(datetime.timedelta(hours=-3)))), id="datetime-fixed-offset"),
    pytest.param(frame_with(d=lambda n: pd.to_timedelta(np.arange(n), unit="s")), id="timedelta"),
    pytest.param(frame_with(d=lambda n: np.arange(n).astype("timedelta64[s]")), id="timedelta64-s"),
    pytest.param(frame_with(c=lambda n: pd.Categorical(cycle("lo", "hi")(n), categories=["lo", "mid", "hi"], ordered=True)), id="categorical-ordered-unused"),
    pytest.param(frame_with(i=cycle(1, None, -(2**63), dtype="Int64")), id="nullable-Int64"),
    pytest.param(frame_with(u=cycle(255, None, dtype="UInt8")), id="nullable-UInt8"),
    pytest.param(frame_with(f=cycle(1.5, None, dtype="Float32")), id="nullable-Float32"),
    pytest.param(frame_with(b=cycle(True, None, False, dtype="boolean")), id="nullable-boolean"),
    pytest.param(frame_with(s=cycle("a", None, "é", dtype="string")), id="string"),
    pytest.param(frame_with(s=cycle("a", None, dtype="string[python]")), id="string-python"),
    pytest.param(frame_with(s=cycle("a", None, "é")), id="str-default"),
    pytest.param(frame_with(s=objects("a", None, "é")), id="object-str-none"),
    pytest.param(frame_with(s=objects("a", np.nan)), id="object-str-nan"),
    pytest.param(frame_with(s=objects(b"a\x00", None)), id="object-bytes"),
    pytest.param(frame_with(s=objects(None)), id="object-all-none"),
    pytest.param(frame_with(s=objects(np.nan)), id="object-all-nan"),
    pytest.param(frame_with(p=lambda n: pd.period_range("2024-01", periods=n, freq="M")), id="period"),
    pytest.param(frame_with(v=lambda n: pd.interval_range(0, n, closed="left")), id="interval"),
    pytest.param(frame_with(h=lambda n: np.arange(n).astype("f2"), u=lambda n: np.full(n, 2**64 - 1, "u8")), id="float16-uint64"),
    pytest.param(frame_with(a=lambda n: pd.Series(np.arange(n), dtype=pd.ArrowDtype(pa.int64()))), id="arrow-int64"),
    pytest.param(lambda n: pd.Series(np.arange(n), name=("a", 1)), id="series-tuple-name"),
    pytest.param(lambda n: pd.Series(np.arange(n), name=7), id="series-int-name"),
    pytest.param(lambda n: pd.Series(np.arange(n), name=np.int64(7)), id="series-numpy-int-name"),
    pytest.param(lambda n: pd.Series(np.arange(n), name=2.5), id="series-float-name"),
    pytest.param(lambda n: pd.Series(np.arange(n), name=b"raw"), id="series-bytes-name"),
    pytest.param(lambda n: pd.Series(objects("x", None)(n), name="o"), id="series-object-str"),
    pytest.param(lambda n: pd.DataFrame({"a": np.arange(n)}, index=pd.Index(np.arange(n), name=3)), id="index-int-name"),
    pytest.param(lambda n: pd.DataFrame({"a": np.arange(n)}, index=pd.Index(np.arange(n), name=("k", 2))), id="index-tuple-name"),
    pytest.param(lambda n: pd.DataFrame({"a": np.arange(n)}, index=pd.Index([f"r{i}" for i in range(n)], dtype=object)), id="index-object-str"),
    pytest.param(lambda n: pd.DataFrame({"a": np.arange(n)}, index=pd.Index(np.arange(n).astype("datetime64[s]"))), id="index-datetime64-s"),
    pytest.param(lambda n: pd.DataFrame({"a": np.arange(n)}, index=pd.CategoricalIndex(cycle("p", "q")(n))), id="index-categorical"),
    pytest.param(
        lambda n: pd.DataFrame(
            {"a": np.arange(n)},
            index=pd.MultiIndex.from_arrays(
                [pd.Index([f"k{i}" for i in range(n)], dtype=object), np.arange(n).astype("datetime64[s]")], names=[0, ("t", 1)]
            ),
        ),
        id="multi-index-object-seconds-odd-names",
    ),
    pytest.param(lambda n: pd.DataFrame({"a": np.arange(n)}).rename_axis(columns="quantity"), id="columns-name"),
    pytest.param(lambda n: pd.DataFrame({"a": np.arange(n)}, columns=pd.Index(["a"], dtype=object)), id="columns-object-dtype"),
    pytest.param(lambda n: pd.DataFrame(index=pd.RangeIndex(n)), id="no-columns"),
    pytest.param(lambda n: pd.DataFrame(), id="empty"),
    pytest.param(lambda n: pd.DataFrame({"a": np.arange(n)}).set_flags(allows_duplicate_labels=False), id="flags"),
    pytest.param(lambda n: pd.Series(np.arange(n)).set_flags(allows_duplicate_labels=False), id="series-flags"),
    pytest.param(with_attrs(frame_with(a=np.arange), source="scan", n=3, x=0.5, ok=True, none=None, nested={"k": [1, "two", None]}), id="attrs"),
    pytest.param(with_attrs(lambda n: pd.Series(np.arange(n)), unit="V"), id="series-attrs"),
]


@pytest.mark.parametrize("rows", [3, 5000], ids=["small", "big"])
@pytest.mark.parametrize("make", FRAMES)
def test_pandas_value_comes_back_exactly(kept_shelf: labshelf.Shelf, make: Callable[[int], Any], rows: int) -> None:
    value = make(rows)
    ref, got = put_and_get(kept_shelf, value)
    assert ref.kind == "pandas" and ref.storage.files
    assert_same_pandas(got, value)


def test_a_column_and_the_index_read_alone_come_back_exactly(kept_shelf: labshelf.Shelf) -> None:
    value = pd.DataFrame(
        {"s": pd.Series(["a", None], dtype=object), "t": np.array([0, 1], "datetime64[s]")},
        index=pd.RangeIndex(3, 7, 2, name="r"),
    )
    with kept_shelf.new_run() as run:
        run.put("table", value)
    for column in value.columns:
        got = kept_shelf.get(f"table.columns.{column}", run=run.number)
        pd.testing.assert_series_equal(got, value[column], check_exact=True, check_index_type=True)
        assert got.dtype == value[column].dtype
    assert_same_objects(kept_shelf.get("table.columns.s", run=run.number), value["s"], "s")
    assert_same_index(kept_shelf.get("table.index", run=run.number), value.index)


# -- xarray ------------------------------------------------------------------------------------


def data_array(dtype: str, **coords: Any) -> Callable[[int], xr.DataArray]:
    return lambda n: xr.DataArray((np.arange(n) - 2).astype(dtype), dims="x", coords={k: ("x", make(n)) for k, make in coords.items()}, name="v")


XARRAYS = [
    pytest.param(data_array(">f4"), id="big-endian-float32"),
    pytest.param(data_array(">i8", x=lambda n: np.arange(n, dtype=">i2")), id="big-endian-values-and-coord"),
    pytest.param(data_array("f8", x=lambda n: np.array([f"p{i}" for i in range(n)], dtype=object)), id="object-str-index-coord"),
    pytest.param(data_array("f8", label=lambda n: np.array([("ab", "", "é")[i % 3] for i in range(n)], dtype=object)), id="object-str-coord"),
    pytest.param(data_array("f8", label=lambda n: np.array([("a\x00", "", "xy")[i % 3] for i in range(n)], "U3")), id="str-coord-trailing-nul"),
    pytest.param(data_array("f8", raw=lambda n: np.array([(b"a\x00", b"", b"x\x00y")[i % 3] for i in range(n)], "S3")), id="bytes-coord-nuls"),
    pytest.param(data_array("f8", raw=lambda n: np.array([(b"a", b"", b"xy")[i % 3] for i in range(n)], "S5")), id="bytes-coord-wider-than-longest"),
    pytest.param(
        lambda n: xr.Dataset({"note": ("x", np.array([("a", "bc")[i % 2] for i in range(n)], "U6"))}), id="str-variable-wider-than-longest"
    ),
    pytest.param(data_array("f2", t=lambda n: np.arange(n).astype(">M8[s]")), id="float16-big-endian-datetime-coord"),
    pytest.param(data_array("timedelta64[ms]"), id="timedelta-ms"),
    pytest.param(
        lambda n: xr.Dataset(
            {
                "note": ("x", np.array([("ok", "bad")[i % 2] for i in range(n)], dtype=object)),
                "level": ("x", np.arange(n, dtype=">u2"), {"units": "counts", "gain": 2.5}),
                "when": ("x", np.arange(n).astype("datetime64[s]")),
            },
            coords={"x": np.array([f"s{i}" for i in range(n)], dtype=object)},
            attrs={"title": "scan", "version": 3, "flags": [1, 2]},
        ),
        id="dataset-object-str-big-endian-seconds",
    ),
]


@pytest.mark.parametrize("rows", [3, 5000], ids=["small", "big"])
@pytest.mark.parametrize("make", XARRAYS)
def test_xarray_value_comes_back_exactly(kept_shelf: labshelf.Shelf, make: Callable[[int], Any], rows: int) -> None:
    value = make(rows)
    ref, got = put_and_get(kept_shelf, value)
    assert ref.kind == "xarray" and ref.storage.files
    assert_same_xarray(got, value)


def test_an_xarray_variable_read_alone_keeps_its_dtype(kept_shelf: labshelf.Shelf) -> None:
    value = XARRAYS[-1].values[0](4)
    with kept_shelf.new_run() as run:
        run.put("scan", value)
    for key in ("note", "level"):
        got = kept_shelf.get(f"scan.{key}", run=run.number)
        xr.testing.assert_identical(got, value[key])
        assert got.dtype == value[key].dtype and got.x.dtype == value.x.dtype


# -- refused at put ----------------------------------------------------------------------------


class Tagged(np.ndarray):
    """An ndarray subclass that adds something (as units or masks do)."""


def unsupported(value: Any, *phrases: str, case: str) -> Any:
    return pytest.param(value, labshelf.UnsupportedValue, TypeError, phrases, id=case)


def invalid(value: Any, *phrases: str, case: str) -> Any:
    return pytest.param(value, labshelf.InvalidValue, ValueError, phrases, id=case)


def matrix() -> np.matrix:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # numpy's advice, not ours to act on
        return np.matrix([[1, 2]])


def dataframe_attrs(**attrs: Any) -> pd.DataFrame:
    frame = pd.DataFrame({"a": [1]})
    frame.attrs.update(attrs)
    return frame


SURROGATE = "\ud800"
UNICODE = "not valid Unicode"

class Level(enum.IntEnum):
    HIGH = 2


class Label(str):
    """A str subclass, as some libraries hand out."""


REFUSED = [
    # scalars of a subclass of a plain type would come back as the plain type
    unsupported(Level.HIGH, "Level", "subclass of int", "int(value)", case="int-enum"),
    unsupported(Label("x"), "Label", "subclass of str", case="str-subclass"),
    # numpy
    unsupported(matrix(), "numpy.matrix", "np.asarray", case="matrix"),
    unsupported(np.zeros(3).view(Tagged), "Tagged", "np.asarray", case="ndarray-subclass"),
    unsupported([2**70, 1], "64-bit range", case="list-int-beyond-64-bits"),
    invalid([2**53 + 1, 0.5], "9007199254740993", "float64", case="list-int-rounded-by-floats"),
    invalid([np.int64(2**60 + 1), 1j], "complex128", case="list-numpy-int-rounded-by-complex"),
    # pandas
    unsupported(pd.DataFrame({"o": [{"a": 1}, {"b": 2}]}), "column 'o'", "dict", "str or bytes", case="frame-dicts"),
    unsupported(pd.DataFrame({"o": [[1], [2, 3]]}), "column 'o'", "list", case="frame-lists"),
    unsupported(pd.DataFrame({"o": pd.Series([1, "a"], dtype=object)}), "column 'o'", "mixed-integer", case="frame-mixed"),
    unsupported(pd.DataFrame({"o": pd.Series([1, 2], dtype=object)}), "integer", case="frame-object-ints"),
    unsupported(pd.DataFrame({"o": pd.Series(["a", b"b"], dtype=object)}), "mixed", case="frame-str-and-bytes"),
    unsupported(pd.DataFrame({"o": pd.Series([decimal.Decimal(1)], dtype=object)}), "decimal", case="frame-decimals"),
    unsupported(pd.DataFrame({"o": pd.Series(["a", None, np.nan], dtype=object)}), "column 'o'", "None or all with float NaN", case="frame-mixed-missing"),
    unsupported(pd.DataFrame({"o": pd.Series(["a", pd.NA], dtype=object)}), "pd.NA", case="frame-pd-na-in-object"),
    unsupported(pd.DataFrame({"c": np.array([1j])}), "column 'c'", "complex128", case="frame-complex"),
    unsupported(pd.DataFrame({"c": np.array([1.0], ">f8")}), "column 'c'", ">f8", case="frame-big-endian"),
    unsupported(pd.DataFrame({"c": np.array([1.0], "longdouble")}), "column 'c'", "64 bits", case="frame-longdouble"),
    unsupported(pd.DataFrame({"c": pd.arrays.SparseArray([0, 1])}), "sparse", case="frame-sparse"),
    unsupported(pd.DataFrame({"c": pd.Categorical([1, 2])}), "categories of dtype int64", case="frame-int-categories"),
    unsupported(pd.DataFrame({"c": pd.Categorical(pd.Index(["a"], dtype=object))}), "categories of dtype object", case="frame-object-categories"),
    unsupported(pd.DataFrame({"t": pd.date_range("2024", periods=2, tz="dateutil/Europe/Zurich")}), "column 't'", "tzfile", case="frame-dateutil-tz"),
    unsupported(pd.DataFrame({"c": pd.Series([[1]], dtype=pd.ArrowDtype(pa.list_(pa.int64())))}), "column 'c'", "list<item: int64>", "would not read back", case="frame-arrow-list"),
    unsupported(pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "y")])), "MultiIndex columns", case="frame-multiindex-columns"),
    unsupported(pd.DataFrame([[1, 2]], columns=["a", "a"]), "unique", "'a'", case="frame-duplicate-columns"),
    unsupported(pd.DataFrame([[1, 2]], columns=[0, 1]), "column names must be str", case="frame-int-columns"),
    unsupported(pd.DataFrame({"a": [1]}).rename_axis(columns=5), "df.columns.name", case="frame-columns-int-name"),
    unsupported(pd.Series([1], name=frozenset()), "Series' name", "frozenset", case="series-set-name"),
    unsupported(pd.Series([1], index=pd.Index([1], name=frozenset({1}))), "index names", case="index-set-name"),
    unsupported(dataframe_attrs(x=np.int64(1)), "attrs['x']", "int64", case="frame-attrs-numpy"),
    unsupported(dataframe_attrs(x=(1, 2)), "tuple", case="frame-attrs-tuple"),
    unsupported(dataframe_attrs(x={1: 2}), "str keys", case="frame-attrs-int-key"),
    # xarray
    unsupported(xr.DataArray(np.array([{"a": 1}], dtype=object), dims="x"), "the DataArray", "dict", case="xarray-dicts"),
    unsupported(xr.Dataset({"v": ("x", np.array([1, 2], dtype=object))}), "variable 'v'", "int", case="xarray-object-ints"),
    unsupported(xr.DataArray(np.zeros(2, "clongdouble"), dims="x"), "complex256", case="xarray-complex256"),
    unsupported(xr.Dataset({"c": ("x", pd.Categorical(["a"]))}), "variable 'c'", "category", case="xarray-categorical"),
    unsupported(xr.Dataset(coords=xr.Coordinates.from_pandas_multiindex(pd.MultiIndex.from_tuples([(1, "a")], names=["n", "s"]), "z")), "variable 'z'", case="xarray-multiindex"),
    unsupported(xr.DataArray([1], dims="x", name=3), "name", "int", case="xarray-int-name"),
    unsupported(xr.DataArray([1], dims="x", name=("a", 1)), "name", "tuple", case="xarray-tuple-name"),
    unsupported(xr.DataArray([1], dims="x", attrs={"d": None}), "attribute 'd'", "NoneType", case="xarray-attr-none"),
    unsupported(xr.DataArray([1], dims="x", attrs={"d": {"a": 1}}), "attribute 'd'", "dict", case="xarray-attr-dict"),
    unsupported(xr.DataArray([1], dims="x", attrs={"d": b"xy"}), "attribute 'd'", "bytes", case="xarray-attr-bytes"),
    unsupported(xr.DataArray([1], dims="x", attrs={"d": [1, "b"]}), "attribute 'd'", case="xarray-attr-mixed-list"),
    unsupported(xr.DataArray([1], dims="x", attrs={"d": np.eye(2)}), "attribute 'd'", "1-D", case="xarray-attr-2d"),
    unsupported(xr.Dataset({"v": ("x", [1], {1: 2})}), "attribute names must be str", case="xarray-attr-int-name"),
    unsupported(xr.DataArray([1.0], dims="x", attrs={"_FillValue": -1.0}), "'_FillValue'", "rename it", case="xarray-attr-fillvalue"),
    unsupported(xr.DataArray([1.0], dims="x", attrs={"units": "days since 2000-01-01"}), "datetime64", "'units'", case="xarray-attr-time-units"),
    unsupported(xr.DataArray([1.0], dims="x", attrs={"scale_factor": 2.0}), "'scale_factor'", case="xarray-attr-scale-factor"),
    unsupported(xr.Dataset({"s": ("x", np.array(["a\x00b"]))}), "variable 's'", "NUL", "dtype S", case="xarray-str-inner-nul"),
    unsupported(xr.Dataset({"s": ("x", np.array(["a\x00b"], dtype=object))}), "variable 's'", "NUL", case="xarray-object-str-nul"),
    unsupported(xr.Dataset(attrs={"a": "x\x00y"}), "attribute 'a'", "NUL", case="xarray-attr-nul"),
    # text that is not valid Unicode, wherever it is
    invalid(SURROGATE, UNICODE, "UTF-8", case="str"),
    invalid(np.str_("a" + SURROGATE), UNICODE, case="numpy-str"),
    invalid(np.array(["a", SURROGATE]), UNICODE, case="str-array-inline"),
    invalid(np.array(["a", SURROGATE] * 5000), UNICODE, case="str-array-file"),
    invalid(np.array(["a", SURROGATE], dtype=object), UNICODE, case="object-str-array"),
    invalid(["a", "b" + SURROGATE], UNICODE, case="list-of-str"),
    invalid(pd.DataFrame({"c": pd.Series(["a", SURROGATE], dtype=object)}), UNICODE, "column 'c'", case="frame-object-column"),
    invalid(pd.DataFrame({"c": pd.array(["a", SURROGATE], dtype="string[python]")}), UNICODE, "column 'c'", case="frame-string-python"),
    invalid(pd.DataFrame([[1]], columns=pd.Index([SURROGATE], dtype=object)), UNICODE, "column name", case="frame-column-name"),
    invalid(pd.DataFrame({"c": [1]}, index=pd.Index([SURROGATE], dtype=object)), UNICODE, "the index", case="frame-index"),
    invalid(pd.Series([1], name=SURROGATE), UNICODE, case="series-name"),
    invalid(pd.Series([SURROGATE], dtype=object), UNICODE, "the Series", case="series-values"),
    invalid(dataframe_attrs(note=SURROGATE), UNICODE, "attrs", case="frame-attrs"),
    invalid(xr.DataArray([1], dims="x", attrs={"note": SURROGATE}), UNICODE, "attribute 'note'", case="xarray-attr"),
    invalid(xr.DataArray([1], dims="x", attrs={"notes": ["a", SURROGATE]}), UNICODE, case="xarray-attr-list"),
    invalid(xr.Dataset(attrs={"title": SURROGATE}), UNICODE, case="xarray-dataset-attr"),
    invalid(xr.Dataset({"v": ("x", np.array([SURROGATE]))}), UNICODE, "variable 'v'", case="xarray-str-variable"),
    invalid(xr.Dataset({SURROGATE: ("x", [1])}), UNICODE, case="xarray-variable-name"),
]


@pytest.mark.parametrize(("value", "error", "builtin", "phrases"), REFUSED)
def test_what_cannot_come_back_exactly_is_refused_at_put(
    kept_shelf: labshelf.Shelf, value: Any, error: type[Exception], builtin: type[Exception], phrases: tuple[str, ...]
) -> None:
    before = data_files(kept_shelf)
    with kept_shelf.new_run() as run:
        with pytest.raises(error) as raised:
            run.put("value", value)
        assert isinstance(raised.value, builtin)
        message = str(raised.value)
        for phrase in phrases:
            assert phrase in message, (phrase, message)
        assert "\n" not in message  # one line
        assert "value" not in run
    assert kept_shelf.datasets(run.number) == []
    assert data_files(kept_shelf) == before  # nothing left behind, not even under tmp/


# -- append and mutate: the casting table ------------------------------------------------------

#: (array dtype, value given, whether the array's dtype holds it exactly).
CASTS = [
    # integers into floats: as long as the float holds them exactly
    pytest.param("f8", np.int64(2**53), True, id="int64-2**53-into-float64"),
    pytest.param("f8", np.int64(2**53 + 1), False, id="int64-2**53+1-into-float64"),
    pytest.param("f8", np.int64(2**63 - 1), False, id="int64-max-into-float64"),
    pytest.param("f8", np.int64(-(2**63)), True, id="int64-min-into-float64"),
    pytest.param("f8", np.uint64(2**64 - 1), False, id="uint64-max-into-float64"),
    pytest.param("f8", 7, True, id="python-int-into-float64"),
    pytest.param("f8", 2**53 + 1, False, id="python-int-rounded-into-float64"),
    pytest.param("f8", np.int32(2**31 - 1), True, id="int32-into-float64"),
    pytest.param("f4", np.int32(2**24), True, id="int32-2**24-into-float32"),
    pytest.param("f4", np.int32(2**24 + 1), False, id="int32-2**24+1-into-float32"),
    pytest.param("f4", np.int16(-32768), True, id="int16-into-float32"),
    pytest.param("c16", np.int64(2**53 + 1), False, id="int64-rounded-into-complex128"),
    pytest.param("c8", np.int64(3), True, id="int64-into-complex64"),
    pytest.param("f8", True, True, id="bool-into-float64"),
    # floats into narrower floats: only values they hold exactly
    pytest.param("f8", np.longdouble(1) / 3, False, id="longdouble-third-into-float64"),
    pytest.param("f8", np.longdouble(1) / 2, True, id="longdouble-half-into-float64"),
    pytest.param("f8", np.longdouble("inf"), True, id="longdouble-inf-into-float64"),
    pytest.param("f8", np.longdouble("nan"), True, id="longdouble-nan-into-float64"),
    pytest.param("c16", np.clongdouble(1) / 3, False, id="clongdouble-third-into-complex128"),
    pytest.param("c16", np.clongdouble(0.5 + 0.25j), True, id="clongdouble-exact-into-complex128"),
    pytest.param("f4", 0.1, False, id="float64-0.1-into-float32"),
    pytest.param("f4", 0.5, True, id="float64-0.5-into-float32"),
    pytest.param("f4", 1e300, False, id="float64-overflow-into-float32"),
    pytest.param("f4", -np.inf, True, id="float64-inf-into-float32"),
    pytest.param("f2", np.float32(65504), True, id="float32-max-half-into-float16"),
    pytest.param("f2", np.float32(70000), False, id="float32-overflow-into-float16"),
    pytest.param("c8", 0.1, False, id="float64-0.1-into-complex64"),
    pytest.param("c16", 0.1, True, id="float64-into-complex128"),
    pytest.param("f8", np.float32(0.1), True, id="float32-into-float64"),
    # never down a kind
    pytest.param("i8", 1.0, False, id="float-into-int64"),
    pytest.param("f8", 1j, False, id="complex-into-float64"),
    pytest.param("?", 1, False, id="int-into-bool"),
    # integers between integer dtypes: only those in range
    pytest.param("i8", np.uint64(2**63 - 1), True, id="uint64-fitting-into-int64"),
    pytest.param("i8", np.uint64(2**63), False, id="uint64-big-into-int64"),
    pytest.param("u8", np.int64(-1), False, id="negative-into-uint64"),
    pytest.param("u8", np.int64(2**62), True, id="int64-into-uint64"),
    pytest.param("i1", 300, False, id="int-overflow-into-int8"),
    pytest.param("u1", 255, True, id="int-max-into-uint8"),
    pytest.param("i8", True, True, id="bool-into-int64"),
    # times: same kind, no lost precision
    pytest.param("M8[ms]", np.datetime64("2024-01-01T00:00:01", "s"), True, id="seconds-into-ms"),
    pytest.param("M8[s]", np.datetime64("2024-01-01T00:00:00.5", "ms"), False, id="half-second-into-seconds"),
    pytest.param("M8[s]", np.datetime64("2024-01-01T00:00:01.000", "ms"), True, id="whole-second-ms-into-seconds"),
    pytest.param("m8[s]", np.datetime64("2024-01-01", "s"), False, id="datetime-into-timedelta"),
    pytest.param("M8[s]", 5, False, id="int-into-datetime"),
    # strings: only into strings of their own kind
    pytest.param("U2", "longer", True, id="str-widens"),
    pytest.param("S2", b"longer", True, id="bytes-widen"),
    pytest.param("U2", b"xy", False, id="bytes-into-str"),
    pytest.param("U2", 12345, False, id="int-into-str"),
    pytest.param("i8", "1", False, id="str-into-int"),
]


def holds(element: Any, expected: np.ndarray) -> bool:
    """Whether the stored ``element`` is exactly the value ``expected`` (given in its own dtype)."""
    element = np.asarray(element)
    if element.dtype.kind == "c" and expected.dtype.kind != "c":
        if element.imag != 0:
            return False
        element = element.real
    with np.errstate(invalid="ignore"):
        back = element.astype(expected.dtype)
    return bool(back == expected) or bool(np.isnan(expected) and np.isnan(back))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("how", ["append", "mutate"])
@pytest.mark.parametrize(("dtype", "given", "exact"), CASTS)
def test_append_and_mutate_take_only_values_the_array_holds_exactly(
    kept_shelf: labshelf.Shelf, dtype: str, given: Any, exact: bool, how: str, size: str
) -> None:
    start = np.zeros(SIZES[size], dtype=dtype)
    with kept_shelf.new_run() as run:
        first = run.put("array", start)
        assert (first.storage.inline is not None) == (start.nbytes <= INLINE_MAX_BYTES)
        change = functools.partial(run.append, "array", given) if how == "append" else functools.partial(run.mutate, "array", 0, given)
        if not exact:
            with pytest.raises(labshelf.InvalidValue) as refused:
                change()
            assert isinstance(refused.value, ValueError) and "'array'" in str(refused.value)
            assert kept_shelf.find("array", run=run.number).version == first.version
            assert_same_array(kept_shelf.get("array", run=run.number), start)
            return
        change()
    got = kept_shelf.get("array", run=run.number)
    expected = np.asarray(given)
    # What was given comes back: the element equals it, in the array's dtype (widened for strings).
    element = got[-1] if how == "append" else got[0]
    if expected.dtype.kind in "US":
        assert element == expected[()] and got.dtype.kind == expected.dtype.kind
    else:
        assert got.dtype == np.dtype(dtype)
        assert holds(element, expected), (element, given)
    assert got.shape == ((start.shape[0] + 1,) if how == "append" else start.shape)


def test_a_tuple_series_name_written_by_an_older_labshelf_reads_back(kept_shelf: labshelf.Shelf) -> None:
    """Older files hold a tuple name as a JSON list (then unreadable); it reads back as the tuple."""
    import json

    import pyarrow.parquet as pq

    value = pd.Series([1.5, 2.5], name="placeholder")
    with kept_shelf.new_run() as run:
        ref = run.put("old", value)
    (relative,) = ref.storage.files
    table = pa.Table.from_pandas(value.to_frame(name="__series__"), preserve_index=True)  # as older versions wrote it
    metadata = {**table.schema.metadata, b"labshelf": json.dumps({"class": "Series", "name": ["a", 1]}).encode()}
    pq.write_table(table.replace_schema_metadata(metadata), kept_shelf.root / relative)
    got = kept_shelf.get("old", run=run.number)
    assert got.name == ("a", 1)
    np.testing.assert_array_equal(got.to_numpy(), value.to_numpy())
