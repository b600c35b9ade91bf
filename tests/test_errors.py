"""The bad-input contract (labshelf.errors) through the public API.

Every refusal is checked three ways: the labshelf exception *and* the builtin
it stands for, a phrase of the message that says what was wrong or what to do,
and that the shelf still works afterwards (nothing half-written, no broken
connection).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import labshelf


def assert_usable(shelf: labshelf.Shelf) -> None:
    """The shelf still takes a new run, a put and a get."""
    value = np.arange(5000, dtype="f8")  # a data file, not only the registry
    with shelf.new_run() as run:
        run.put("still/works", value)
        run.put("still/scalar", "yes")
    np.testing.assert_array_equal(shelf.get("still/works", run=run.number), value)
    assert shelf.get("still/scalar", run=run.number) == "yes"


def data_files(shelf: labshelf.Shelf) -> set[str]:
    """Every file under data/ and tmp/ of the shelf (relative to the root)."""
    return {
        p.relative_to(shelf.root).as_posix()
        for folder in ("data", "tmp")
        for p in (shelf.root / folder).rglob("*")
        if p.is_file()
    }


def raises(
    exc_type: type[BaseException],
    builtin: type[BaseException],
    phrases: list[str],
    call: Callable[[], Any],
    case: str = "",
) -> BaseException:
    """``call()`` raises ``exc_type``, which is a ``builtin`` and says every phrase.

    ``case`` names the attempt in failure messages, for tests that loop over cases.
    """
    try:
        call()
    except exc_type as error:
        assert isinstance(error, builtin), f"{case}: {error!r} is no {builtin.__name__}"
        assert isinstance(error, labshelf.ShelfError), case
        for phrase in phrases:
            assert phrase in str(error), f"{case}: {phrase!r} not in {str(error)!r}"
        return error
    except Exception as error:
        raise AssertionError(f"{case}: expected {exc_type.__name__}, got {error!r}") from error
    raise AssertionError(f"{case}: {exc_type.__name__} was not raised")


# -- names ----------------------------------------------------------------------------------------

#: Data files are written at ``<root>/data/000001/<name>.<token>.h5``: three ``..``
#: lead next to the shelf (into tmp_path), four into tmp_path's parent.
ESCAPING_NAMES = [
    "../../../escaped",
    "../../../../escaped",
    "a/../../../../escaped",
    "..",
    "~/escaped",
    "..\\..\\..\\escaped",
    "a/./../escaped",
    "escaped\x00/../../../x",
]


def snapshot_outside(shelf: labshelf.Shelf, tmp_path: Path) -> set[str]:
    """Every path in tmp_path and its parent that is not inside the shelf root."""
    around = {str(p) for p in tmp_path.parent.iterdir()}
    inside_tmp = {str(p) for p in tmp_path.rglob("*") if not p.resolve().is_relative_to(shelf.root)}
    return around | inside_tmp


def test_names_that_try_to_escape_the_root_are_refused(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    before = snapshot_outside(shelf, tmp_path)
    big = np.zeros(5000)  # big enough for a data file, if the name got that far
    with shelf.new_run() as run:
        run.put("ok", np.arange(3))
        attempts: list[Callable[[str], Any]] = [
            lambda name: run.put(name, big),
            lambda name: run.put(name, 1),
            lambda name: run.append(name, big),
            lambda name: run.mutate(name, 0, 1),
            lambda name: shelf.get(name, run=run.number),
            lambda name: shelf.find(name, run=run.number),
        ]
        for name in [*ESCAPING_NAMES, str(tmp_path / "escaped")]:
            for attempt in attempts:
                error = raises(
                    labshelf.InvalidName, ValueError, ["dataset name"], lambda a=attempt, n=name: a(n)
                )
                assert repr(name) in str(error)
    assert snapshot_outside(shelf, tmp_path) == before
    assert [r.name for r in shelf.datasets(run.number)] == ["ok"]
    assert data_files(shelf) == set()
    assert_usable(shelf)


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("", "cannot be empty"),
        ("a.b", "reserved for components"),
        ("x" * 300, "the limit is 255"),
        (7, "must be a str"),
    ],
    ids=["empty", "dot", "long", "int"],
)
def test_invalid_name_in_put(shelf: labshelf.Shelf, name: Any, phrase: str) -> None:
    with shelf.new_run() as run:
        raises(labshelf.InvalidName, ValueError, [phrase], lambda: run.put(name, 1.0))
    assert shelf.datasets(run.number) == []
    assert_usable(shelf)


def test_invalid_data_id_in_put(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        raises(
            labshelf.InvalidDataId,
            ValueError,
            ["'gain'", "float"],
            lambda: run.put("x", 1, data_id={"gain": 1.5}),
        )
        raises(
            labshelf.InvalidDataId,
            ValueError,
            ["not an identifier"],
            lambda: run.put("x", 1, data_id={"a b": 1}),
        )
        raises(labshelf.InvalidDataId, ValueError, ["must be a dict"], lambda: run.put("x", 1, data_id=[1]))
    assert shelf.datasets(run.number) == []
    assert_usable(shelf)


# -- unsupported values --------------------------------------------------------------------------

KINDS = ["scalar", "ndarray", "image", "xarray", "pandas"]

UNSUPPORTED = [
    pytest.param(object(), ["builtins.object", "Supported kinds are", *KINDS], id="object"),
    pytest.param({"a": 1}, ["builtins.dict", "Supported kinds are", *KINDS], id="dict"),
    pytest.param({1, 2}, ["builtins.set", "Supported kinds are", *KINDS], id="set"),
    pytest.param(len, ["builtin_function_or_method", "Supported kinds are"], id="function"),
    pytest.param(
        np.ma.masked_array([1, 2], mask=[0, 1]), ["masked arrays are not stored", "mask"], id="masked"
    ),
    pytest.param(
        np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]), ["not supported", "use a numeric"], id="structured"
    ),
    pytest.param(
        np.zeros(1, dtype=[("a", "i4")])[0], ["numpy.void", "Supported kinds are"], id="structured-scalar"
    ),
    pytest.param(np.array([1, "a", None], dtype=object), ["every element is a str"], id="object-mixed"),
    pytest.param(
        np.array([np.zeros(2), np.ones(2)], dtype=object), ["every element is a str"], id="object-arrays"
    ),
    pytest.param([1, "a"], ["mixes strings with other values"], id="list-mixed"),
    pytest.param([b"a", "b"], ["mixes strings"], id="list-bytes-and-str"),
    pytest.param([[1, 2], [3]], ["not a regular array"], id="list-ragged"),
    pytest.param(np.zeros(3, dtype="V4"), ["not supported"], id="void-array"),
    pytest.param(pd.DataFrame({0: [1]}), ["column names must be str"], id="frame-int-columns"),
]


def test_unsupported_values_say_what_is_supported(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        for case in UNSUPPORTED:
            (value, phrases), label = case.values, case.id or ""
            raises(labshelf.UnsupportedValue, TypeError, phrases, lambda v=value: run.put("v", v), label)
            raises(
                labshelf.UnsupportedValue,
                TypeError,
                [],
                lambda v=value: run.put("v", v, persist=False),
                label,
            )
    assert shelf.datasets(run.number) == []
    assert data_files(shelf) == set()
    assert_usable(shelf)


def test_forced_kind_must_fit_the_value(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        raises(
            labshelf.UnsupportedValue,
            TypeError,
            ["cannot be stored as kind 'image'"],
            lambda: run.put("v", np.arange(5), kind="image"),
        )
        raises(
            labshelf.InvalidOptions,
            ValueError,
            ["'nope' is not a value kind", "ndarray"],
            lambda: run.put("v", np.arange(5), kind="nope"),
        )
    assert shelf.datasets(run.number) == []
    assert_usable(shelf)


# -- runs and datasets that are not there --------------------------------------------------------


def test_unknown_run(shelf: labshelf.Shelf) -> None:
    raises(labshelf.RunNotFound, KeyError, ["no run 5", "the shelf has no runs yet"], lambda: shelf.run(5))
    with shelf.new_run():
        pass
    raises(
        labshelf.RunNotFound, KeyError, ["no run 99", "runs go from 1 to 1"], lambda: shelf.get("x", run=99)
    )
    raises(labshelf.RunNotFound, KeyError, ["no run 99"], lambda: shelf[99])
    raises(labshelf.RunNotFound, KeyError, ["an int", "'1'"], lambda: shelf.run("1"))  # type: ignore[arg-type]
    raises(labshelf.RunNotFound, KeyError, ["run number"], lambda: shelf.get("x", run="1"))  # type: ignore[arg-type]
    assert 99 not in shelf
    assert_usable(shelf)


def test_unknown_dataset_suggests_close_names(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("temperature", 301.2)
        run.put("camera/image", np.zeros((32, 32), "u1"))
    raises(
        labshelf.DatasetNotFound,
        KeyError,
        ["no dataset 'temperatur'", "did you mean 'temperature'?"],
        lambda: shelf.get("temperatur", run=run.number),
    )
    raises(
        labshelf.DatasetNotFound,
        KeyError,
        ["did you mean 'camera/image'?"],
        lambda: shelf.get("camera/imag", run=run.number),
    )
    raises(labshelf.DatasetNotFound, KeyError, ["did you mean 'temperature'?"], lambda: run["temperatre"])
    error = raises(
        labshelf.DatasetNotFound, KeyError, ["no dataset 'zzz'"], lambda: shelf.get("zzz", run=run.number)
    )
    assert "did you mean" not in str(error)
    assert "temperatur" not in run
    assert shelf.get("temperature", run=run.number) == 301.2
    assert_usable(shelf)


def test_same_name_with_other_data_id_lists_the_data_ids(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("pmt", 1, data_id={"channel": 2})
        run.put("pmt", 2, data_id={"channel": 3, "band": "r"})
    for data_id in (None, {"channel": 4}):
        raises(
            labshelf.DatasetNotFound,
            KeyError,
            ["other data IDs", "channel=2", "band='r', channel=3"],
            lambda d=data_id: shelf.get("pmt", run=run.number, data_id=d),
        )
    raises(labshelf.DatasetNotFound, KeyError, ["use run.get('pmt', data_id=...)"], lambda: run["pmt"])
    assert shelf.get("pmt", run=run.number, data_id={"band": "r", "channel": 3}) == 2
    assert_usable(shelf)


def test_not_persisted_dataset_says_so(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        assert run.put("live/rate", 12.5, persist=False) is None
        assert run.put("live/frame", np.zeros(100_000), persist=False) is None
        for name in ("live/rate", "live/frame"):
            error = raises(
                labshelf.NotPersisted,
                KeyError,
                ["persist=False", "never stored"],
                lambda n=name: shelf.get(n, run=run.number),
            )
            assert isinstance(error, labshelf.DatasetNotFound)
        run.put("live/rate", 13.0)  # a later put that is kept reads back
    assert shelf.get("live/rate", run=run.number) == 13.0
    assert data_files(shelf) == set()
    assert_usable(shelf)


# -- writes that are not allowed -----------------------------------------------------------------


def test_read_only_shelf_refuses_every_write(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as finished:
        finished.put("x", np.arange(5000.0))
        finished.put("note", "kept")
    running = shelf.new_run()
    running.put("counts", np.arange(3))
    files, datasets = data_files(shelf), shelf.info()["datasets"]
    with labshelf.open(shelf.root, mode="r") as readonly:
        assert readonly.readonly
        run = readonly.run(running.number)
        for write in (
            lambda: readonly.new_run(),
            lambda: run.put("y", 1),
            lambda: run.put("counts", np.zeros(5000)),
            lambda: run.append("counts", 4),
            lambda: run.mutate("counts", 0, 9),
            lambda: run.finish(),
        ):
            raises(labshelf.ReadOnlyShelf, PermissionError, ["read-only", "mode='rw'"], write)
        # Reading works, and shows that nothing changed.
        np.testing.assert_array_equal(readonly.get("x", run=finished.number), np.arange(5000.0))
        np.testing.assert_array_equal(readonly.get("counts", run=running.number), np.arange(3))
        assert readonly.run(running.number).status == "running" and len(readonly) == 2
    assert data_files(shelf) == files and shelf.info()["datasets"] == datasets
    running.finish()
    assert_usable(shelf)


@pytest.mark.parametrize("status", ["finished", "failed"])
def test_ended_run_refuses_writes(shelf: labshelf.Shelf, status: str) -> None:
    with pytest.raises(ZeroDivisionError) if status == "failed" else contextlib.nullcontext():
        with shelf.new_run() as run:
            run.put("small", np.arange(3))
            run.put("big", np.arange(5000.0))
            run.put("note", "x")
            if status == "failed":
                1 / 0  # noqa: B018
    files = data_files(shelf)
    for write in (
        lambda: run.put("note", "changed"),
        lambda: run.put("new", 1),
        lambda: run.put("big", np.zeros(5000)),
        lambda: run.put("small", np.zeros(3000)),
        lambda: run.append("small", 3),
        lambda: run.append("big", 1.0),
        lambda: run.mutate("small", 0, 7),
        lambda: run.mutate("big", 0, 7.0),
        lambda: run.put("live", 1, persist=False),
    ):
        raises(labshelf.RunNotWritable, RuntimeError, [f"has ended ({status})", "shelf.new_run()"], write)
    raises(labshelf.RunNotWritable, RuntimeError, ["ended already"], lambda: run.finish())
    assert data_files(shelf) == files
    np.testing.assert_array_equal(shelf.get("small", run=run.number), np.arange(3))
    np.testing.assert_array_equal(shelf.get("big", run=run.number), np.arange(5000.0))
    assert shelf.get("note", run=run.number) == "x" and shelf.run(run.number).status == status
    assert_usable(shelf)


# -- opening and creating ------------------------------------------------------------------------


def test_opening_what_is_not_a_shelf(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    raises(
        labshelf.NotAShelf,
        FileNotFoundError,
        [str(missing), "does not exist", "labshelf.create"],
        lambda: labshelf.open(missing),
    )
    assert not missing.exists()  # opening never creates
    empty = tmp_path / "empty"
    empty.mkdir()
    raises(
        labshelf.NotAShelf,
        FileNotFoundError,
        ["is not a labshelf shelf", "labshelf.json"],
        lambda: labshelf.open(empty),
    )
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("not a shelf")
    raises(labshelf.NotAShelf, FileNotFoundError, ["is not a labshelf shelf"], lambda: labshelf.open(other))
    raises(
        labshelf.NotAShelf,
        FileNotFoundError,
        ["is not a labshelf shelf"],
        lambda: labshelf.open(other / "notes.txt"),
    )
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "labshelf.json").write_text("{not json")
    raises(labshelf.NotAShelf, FileNotFoundError, ["damaged"], lambda: labshelf.open(damaged))
    assert sorted(p.name for p in empty.iterdir()) == []
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_shelf_with_its_registry_missing(tmp_path: Path) -> None:
    path = tmp_path / "s.shelf"
    labshelf.create(path).close()
    (path / "registry.sqlite3").unlink()
    raises(labshelf.NotAShelf, FileNotFoundError, ["registry", "is missing"], lambda: labshelf.open(path))


def test_create_over_an_existing_shelf(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("x", 1)
    marker = (shelf.root / "labshelf.json").read_text()
    raises(
        labshelf.ShelfExists,
        FileExistsError,
        ["is a shelf already", "labshelf.open"],
        lambda: labshelf.create(shelf.root),
    )
    assert (shelf.root / "labshelf.json").read_text() == marker
    assert shelf.get("x", run=run.number) == 1
    assert_usable(shelf)


# -- storage options -----------------------------------------------------------------------------

BAD_OPTIONS = [
    pytest.param({"nope": 1}, ["unknown hdf5_options ['nope']", "allowed are"], id="unknown-key"),
    pytest.param({"compression": "gzip", "compression_opts": 12}, ["level 0-9", "12"], id="gzip-12"),
    pytest.param({"compression": "gzip", "compression_opts": "high"}, ["level 0-9"], id="gzip-str-level"),
    pytest.param({"chunks": (0, 10)}, ["chunks", "positive ints"], id="chunks-zero"),
    pytest.param({"chunks": "big"}, ["chunks", "positive ints"], id="chunks-str"),
    pytest.param({"chunks": (1.5, 2)}, ["positive ints"], id="chunks-float"),
    pytest.param({"chunks": (10,)}, ["HDF5 refused", "rank"], id="chunks-rank"),
    pytest.param({"chunks": (10, 10, 10)}, ["HDF5 refused"], id="chunks-rank-3"),
    pytest.param(
        {"compression": "nope"}, ["'nope' is not available", "'gzip'", "'lzf'"], id="compression-nope"
    ),
    pytest.param([("compression", "gzip")], ["must be a dict"], id="not-a-dict"),
]


def test_bad_hdf5_options(shelf: labshelf.Shelf) -> None:
    frame = np.zeros((64, 64), "u2")
    with shelf.new_run() as run:
        for kind in ("ndarray", "image"):
            for case in BAD_OPTIONS:
                (options, phrases), label = case.values, f"{kind} {case.id}"
                put = functools.partial(run.put, "frame", frame, hdf5_options=options, kind=kind)
                raises(labshelf.InvalidOptions, ValueError, phrases, put, label)
        assert "frame" not in run
    assert data_files(shelf) == set()  # no data file, and nothing left under tmp/
    assert_usable(shelf)


def test_options_that_do_not_apply(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        raises(
            labshelf.InvalidOptions,
            ValueError,
            ["do not apply to scalar values"],
            lambda: run.put("x", 1.5, hdf5_options={"compression": "gzip"}),
        )
        raises(
            labshelf.InvalidOptions,
            ValueError,
            ["Parquet", "compression"],
            lambda: run.put("t", pd.DataFrame({"a": [1]}), hdf5_options={"compression": "lzf"}),
        )
        raises(
            labshelf.InvalidOptions,
            ValueError,
            ["HDF5 refused", "Scalar datasets"],
            lambda: run.put("z", np.array(1.0), hdf5_options={"compression": "gzip"}),
        )
    assert shelf.datasets(run.number) == [] and data_files(shelf) == set()
    assert_usable(shelf)


# -- append and mutate ---------------------------------------------------------------------------

BAD_APPENDS = [
    pytest.param(
        np.zeros(3, "i8"),
        np.zeros((2, 2), "i8"),
        ["shape (2, 2)", "give a scalar or a 1-D array"],
        id="1d-block",
    ),
    pytest.param(np.zeros((2, 3), "i8"), [1, 2], ["shape (2,)", "one row of shape (3,)"], id="2d-row-length"),
    pytest.param(
        np.zeros((2, 3), "i8"), np.zeros((2, 4), "i8"), ["block of shape (k, 3)"], id="2d-block-width"
    ),
    pytest.param(np.zeros(3, "i8"), 1.5, ["float64", "without changing them"], id="float-into-int"),
    pytest.param(np.zeros(3, "i8"), "a", ["<U1", "int64"], id="str-into-int"),
    pytest.param(np.zeros(3, "i1"), 300, ["do not fit", "int8"], id="int8-overflow"),
    pytest.param(np.zeros(3, "u1"), -1, ["do not fit"], id="uint8-negative"),
    pytest.param(np.zeros(3, "f8"), 1j, ["complex128", "without changing them"], id="complex-into-float"),
    pytest.param(np.array([True]), 2, ["int64", "bool"], id="int-into-bool"),
    pytest.param(np.array(["2024-01-01"], "datetime64[s]"), 5, ["datetime64[s]"], id="int-into-datetime"),
    pytest.param(np.zeros(5000), np.zeros((2, 2)), ["shape (2, 2)"], id="file-backed-shape"),
    pytest.param(np.zeros(5000), "x", ["without changing them"], id="file-backed-dtype"),
    # numpy's "same_kind" casting would store these changed; the writer refuses.
    pytest.param(np.array(["a"]), 12345, ["int64", "without changing them"], id="int-into-str"),
    pytest.param(np.array(["a"]), b"xy", ["without changing them"], id="bytes-into-str"),
    pytest.param(np.zeros(3, "f4"), 1e300, ["overflow", "float32"], id="float32-overflow"),
]


def test_bad_append_leaves_the_dataset_as_it_was(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        for case in BAD_APPENDS:
            (start, values, phrases), name = case.values, case.id or ""
            before = run.put(name, start)
            files = data_files(shelf)
            append = functools.partial(run.append, name, values)
            raises(labshelf.InvalidValue, ValueError, [repr(name), *phrases], append, name)
            assert shelf.find(name, run=run.number).version == before.version, name
            np.testing.assert_array_equal(shelf.get(name, run=run.number), start, err_msg=name)
            assert data_files(shelf) == files, name
    assert_usable(shelf)


def test_append_and_mutate_refuse_values_that_are_no_arrays(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("note", "text")
        run.put("table", pd.DataFrame({"a": [1]}))
        run.put("grid", xr.DataArray(np.zeros(3), dims="x"))
        for name in ("note", "table", "grid"):
            raises(
                labshelf.UnsupportedValue,
                TypeError,
                ["append and mutate work on arrays", "Put the whole new value"],
                lambda n=name: run.append(n, 1),
            )
            raises(
                labshelf.UnsupportedValue,
                TypeError,
                ["append and mutate work on arrays"],
                lambda n=name: run.mutate(n, 0, 1),
            )
        raises(
            labshelf.UnsupportedValue,
            TypeError,
            ["masked arrays"],
            lambda: run.append("new", np.ma.masked_array([1], mask=[1])),
        )
        assert "new" not in run
    assert_usable(shelf)


BAD_MUTATIONS = [
    pytest.param(
        10, 1, labshelf.InvalidIndex, IndexError, ["index 10 is outside", "shape (10,)"], id="past-the-end"
    ),
    pytest.param(-11, 1, labshelf.InvalidIndex, IndexError, ["outside"], id="before-the-start"),
    pytest.param((1, 2), 1, labshelf.InvalidIndex, IndexError, ["too many indices"], id="too-many-indices"),
    pytest.param(1.5, 1, labshelf.InvalidIndex, IndexError, ["not float"], id="float-index"),
    pytest.param(True, 1, labshelf.InvalidIndex, IndexError, ["cannot be a bool"], id="bool-index"),
    pytest.param([1, 2], 1, labshelf.InvalidIndex, IndexError, ["not list"], id="list-index"),
    pytest.param(
        slice(0, 2.5), 1, labshelf.InvalidIndex, IndexError, ["slice bounds must be ints"], id="float-slice"
    ),
    pytest.param(slice(0, 2), [1, 2, 3], labshelf.InvalidValue, ValueError, ["shape (3,)"], id="value-shape"),
    pytest.param(0, "x", labshelf.InvalidValue, ValueError, ["without changing them"], id="value-dtype"),
]


@pytest.mark.parametrize("size", [10, 5000], ids=["inline", "file"])
def test_bad_mutate_leaves_the_dataset_as_it_was(shelf: labshelf.Shelf, size: int) -> None:
    start = np.arange(size, dtype="i8")
    with shelf.new_run() as run:
        before = run.put("m", start)
        files = data_files(shelf)
        for case in BAD_MUTATIONS:
            (index, value, error, builtin, phrases), label = case.values, case.id or ""
            if size != 10:  # the same mistakes, scaled to the file-backed size
                phrases = [
                    p.replace("(10,)", f"({size},)").replace("index 10 ", f"index {size} ") for p in phrases
                ]
                index = {"10": size, "-11": -size - 1}.get(repr(index), index)
            raises(error, builtin, phrases, functools.partial(run.mutate, "m", index, value), label)
            assert shelf.find("m", run=run.number).version == before.version, label
            np.testing.assert_array_equal(shelf.get("m", run=run.number), start, err_msg=label)
            assert data_files(shelf) == files, label
    assert_usable(shelf)


def test_mutate_of_a_missing_dataset(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        raises(
            labshelf.DatasetNotFound,
            KeyError,
            ["no dataset 'ghost'", "put it first"],
            lambda: run.mutate("ghost", 0, 1),
        )
    assert_usable(shelf)


# -- damaged data files --------------------------------------------------------------------------


def put_one_of_each(shelf: labshelf.Shelf) -> tuple[int, dict[str, Any]]:
    values: dict[str, Any] = {
        "array": np.arange(5000.0),
        "other/array": np.arange(6000, dtype="i4"),
        "image": np.arange(64 * 64, dtype="u2").reshape(64, 64),
        "table": pd.DataFrame({"a": np.arange(50)}),
        "grid": xr.DataArray(np.arange(10.0), dims="x", name="grid"),
        "inline": 4.5,
    }
    with shelf.new_run() as run:
        for name, value in values.items():
            run.put(name, value)
        run.put("segmented", np.zeros(3000))
        run.append("segmented", np.ones(3000))
    values["segmented"] = np.concatenate([np.zeros(3000), np.ones(3000)])
    return run.number, values


def assert_reads(shelf: labshelf.Shelf, run: int, values: dict[str, Any], skip: str) -> None:
    for name, value in values.items():
        if name == skip:
            continue
        got = shelf.get(name, run=run)
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got, value)
        elif isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(got, value)
        elif isinstance(value, xr.DataArray):
            assert got.identical(value)
        else:
            assert got == value


def truncate(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)


def scribble(path: Path) -> None:
    path.write_bytes(b"this is not what was written " * 100)


def zero_out(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("target", ["array", "image", "table", "grid", "segmented"])
def test_damaged_data_file_is_a_corrupt_dataset_naming_the_file(shelf: labshelf.Shelf, target: str) -> None:
    for damage in (truncate, scribble, zero_out):
        run, values = put_one_of_each(shelf)
        path = shelf.root / shelf.find(target, run=run).storage.files[-1]
        damage(path)
        get = functools.partial(shelf.get, target, run=run)
        error = raises(
            labshelf.CorruptDataset, OSError, [str(path), repr(target), "damaged"], get, damage.__name__
        )
        assert "Other datasets are not affected" in str(error)
        assert_reads(shelf, run, values, skip=target)
    assert_usable(shelf)


@pytest.mark.parametrize("target", ["array", "table", "grid", "segmented"])
def test_deleted_data_file_is_a_corrupt_dataset_naming_the_file(shelf: labshelf.Shelf, target: str) -> None:
    run, values = put_one_of_each(shelf)
    path = shelf.root / shelf.find(target, run=run).storage.files[0]
    path.unlink()
    raises(labshelf.CorruptDataset, OSError, [str(path), "missing"], lambda: shelf.get(target, run=run))
    assert_reads(shelf, run, values, skip=target)
    assert_usable(shelf)


def test_registry_row_pointing_outside_the_root_is_refused(
    sqlite_shelf: labshelf.Shelf, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.h5"
    outside.write_bytes(b"secret")
    with sqlite_shelf.new_run() as run:
        run.put("array", np.arange(5000.0))
    relative = os.path.relpath(outside, sqlite_shelf.root)
    with sqlite3.connect(sqlite_shelf.root / "registry.sqlite3") as db:
        db.execute("UPDATE datasets SET location = ? WHERE name = 'array'", (json.dumps([relative]),))
    db.close()
    # The row is damaged, not the caller's name: CorruptDataset naming the dataset.
    raises(
        labshelf.CorruptDataset,
        OSError,
        ["dataset 'array' of run 1", "not under data/"],
        lambda: sqlite_shelf.get("array", run=run.number),
    )
    assert outside.read_bytes() == b"secret"
    assert_usable(sqlite_shelf)
