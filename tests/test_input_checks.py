"""Run numbers and text at every entry point: one rule on both registries, errors a person can read.

Issue 10: ``where(run=np.int64(1))`` found nothing and ``annotate(np.int64(1))``
raised TypeError although pandas hands out numpy integers; ``annotate(True)``
annotated run 1; ``datasets(-1)`` returned ``[]``; PostgreSQL refused run
numbers >= 2**31 where SQLite took 2**62, and >= 2**63 raised OverflowError;
lone surrogates raised UnicodeEncodeError and NUL was stored by SQLite only;
data-ID dimensions ``run`` and ``name`` were accepted but no query could reach
them.  Every refusal is a labshelf error that is also the matching builtin,
and leaves the shelf as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import labshelf
from labshelf.names import MAX_RUN, RESERVED_DIMENSIONS

NUMPY_TWO = [np.int64(2), np.int32(2), np.uint16(2), np.int8(2)]
NOT_RUN_NUMBERS = [True, False, np.bool_(True), 2.0, "2", -1, 0, MAX_RUN + 1, 2**62, 2**63, 2**200, -(2**63)]


@pytest.fixture
def two_runs(shelf: labshelf.Shelf) -> labshelf.Shelf:
    for i in range(2):
        with shelf.new_run("scan") as run:
            run.put("temperature", 300.0 + i)
    return shelf


READERS: dict[str, Callable[[labshelf.Shelf, Any], Any]] = {
    "run": lambda s, n: s.run(n).number,
    "getitem": lambda s, n: s[n].number,
    "datasets": lambda s, n: [r.run for r in s.datasets(n)],
    "get": lambda s, n: s.get("temperature", run=n),
    "find": lambda s, n: s.find("temperature", run=n).run,
    "history": lambda s, n: s.history(n),
    "derived_status": lambda s, n: s.derived_status(n),
    # (annotating twice changes nothing the second time: the history says which run changed)
    "annotate": lambda s, n: (s.annotate(n, comment="c"), [h["field"] for h in s.history(2)])[1],
    "annotate list": lambda s, n: (s.annotate([n], tags=["x"]), [h["field"] for h in s.history(2)])[1],
    "view getitem": lambda s, n: s.runs[n].number,
    "where": lambda s, n: s.runs.where(run=n).numbers(),
}


@pytest.mark.parametrize("entry", READERS)
@pytest.mark.parametrize("number", NUMPY_TWO, ids=lambda n: type(n).__name__)
def test_numpy_run_numbers_are_run_numbers(two_runs: labshelf.Shelf, entry: str, number: Any) -> None:
    assert READERS[entry](two_runs, number) == READERS[entry](two_runs, 2)
    assert number in two_runs


@pytest.mark.parametrize("entry", [e for e in READERS if e not in ("where", "view getitem")])
@pytest.mark.parametrize("number", NOT_RUN_NUMBERS, ids=repr)
def test_what_is_no_run_number_is_refused_alike(two_runs: labshelf.Shelf, entry: str, number: Any) -> None:
    with pytest.raises(labshelf.RunNotFound) as caught:
        READERS[entry](two_runs, number)
    assert isinstance(caught.value, KeyError)
    message = str(caught.value)
    assert "\n" not in message and ("from 1 to 2147483647" in message or "no run" in message), message
    assert number not in two_runs
    # Nothing was annotated on the way.
    assert two_runs.history(1) == [] and two_runs.history(2) == []


@pytest.mark.parametrize("number", [MAX_RUN + 1, 2**62, 2**63, 2**200])
def test_run_numbers_beyond_the_range(shelf: labshelf.Shelf, number: int) -> None:
    with pytest.raises(labshelf.InvalidValue, match="run numbers go from 1 to 2147483647"):
        shelf.new_run(number=number)
    assert len(shelf) == 0
    for bad in (True, 1.0, "3", np.bool_(True), 0, -5):
        with pytest.raises(labshelf.InvalidValue, match="run number"):
            shelf.new_run(number=bad)
    # The largest run number works on both registries, and is the last one.
    with shelf.new_run(number=np.int64(MAX_RUN)) as run:
        run.put("x", 1)
    assert shelf.get("x", run=MAX_RUN) == 1 and shelf.runs.where(run=MAX_RUN).numbers() == [MAX_RUN]
    with pytest.raises(labshelf.InvalidValue, match="no run number is left"):
        shelf.new_run()
    assert [r.number for r in shelf] == [MAX_RUN]


def test_annotate_takes_runs_and_run_lists_in_every_form(two_runs: labshelf.Shelf) -> None:
    shelf = two_runs
    index = shelf.runs.to_pandas().index  # what pandas hands out
    assert shelf.annotate(index, tags=["all"]) == 2
    assert shelf.annotate(index[0], comment="first") == 1
    assert shelf.annotate(shelf.run(2), comment="second") == 1
    assert shelf.annotate((np.int64(1), shelf.run(2)), quality=1) == 2
    assert shelf.runs.query("'all' in tags and quality == 1").numbers() == [1, 2]
    with pytest.raises(labshelf.RunNotFound):
        shelf.annotate([1, True], comment="x")
    with pytest.raises(labshelf.RunNotFound):
        shelf.annotate("12", comment="x")
    assert shelf.run(1).record.number == 1 and len(shelf.history(1)) == 3


def test_a_missing_run_in_range_is_not_found(two_runs: labshelf.Shelf) -> None:
    with pytest.raises(labshelf.RunNotFound, match="no run 99 .*runs go from 1 to 2"):
        two_runs.datasets(99)
    with two_runs.new_run() as run:
        assert two_runs.datasets(run.number) == []  # an empty run is no error


@pytest.mark.parametrize(("runs", "expected"), [
    (np.int64(2), [2]), ([np.int32(1), 2], [1, 2]), (range(1, 2**40), [1, 2]), ("1-99999999999", [1, 2]),
    ("2", [2]), (range(2**62, 2**62 + 3), None), (np.arange(1, 3), [1, 2]),
])
def test_reprocess_run_selection(two_runs: labshelf.Shelf, runs: Any, expected: list[int] | None) -> None:
    from labshelf.derived import select_runs

    existing = two_runs._registry.run_numbers()
    if expected is None:
        with pytest.raises(labshelf.RunNotFound, match="no run matches"):
            select_runs(runs, existing)
    else:
        assert select_runs(runs, existing) == expected
    for bad in (True, [1, True], 2.0, [2**63]):
        with pytest.raises((labshelf.RunNotFound, labshelf.InvalidOptions)):
            select_runs(bad, existing)


def test_subscribe_and_changes_take_numpy_run_numbers(two_runs: labshelf.Shelf) -> None:
    subscription = two_runs.subscribe("temperature", lambda update: None, run=np.int64(2))
    subscription.close()
    for bad in (True, -1, 2**63, "last"):
        with pytest.raises(labshelf.InvalidOptions, match="run= takes a run number"):
            two_runs.subscribe("temperature", lambda update: None, run=bad)
    with pytest.raises(labshelf.RunNotFound):
        two_runs.changes(["temperature"], since=0, run=True)


@pytest.mark.parametrize(
    ("call", "error", "phrase"),
    [
        (lambda s: s.new_run("scan\x00"), labshelf.InvalidValue, "NUL"),
        (lambda s: s.new_run("scan\ud800"), labshelf.InvalidValue, "lone surrogate"),
        (lambda s: s.new_run(5), labshelf.InvalidValue, "experiment must be a str"),
        (lambda s: s.new_run("x" * 256), labshelf.InvalidValue, "at most 255"),
        (lambda s: s.new_run("ok", {"k": "\udcff"}), labshelf.InvalidValue, "lone surrogate"),
        (lambda s: s.new_run("ok", {"\ud800": 1}), labshelf.InvalidValue, "lone surrogate"),
        (lambda s: s.new_run("ok", {"k": object()}), labshelf.InvalidValue, "JSON-compatible"),
        (lambda s: s.new_run("ok", [("k", 1)]), labshelf.InvalidValue, "dict of JSON-compatible"),
        (lambda s: s.run(1).put("x", 1, data_id={"det": "a\x00"}), labshelf.InvalidDataId, "NUL"),
        (lambda s: s.run(1).put("x", 1, data_id={"det": "\ud800"}), labshelf.InvalidDataId, "lone surrogate"),
        (lambda s: s.run(1).put("x", 1, data_id={"det": 2**63}), labshelf.InvalidDataId, "64-bit"),
        (lambda s: s.run(1).put("x\ud800", 1), labshelf.InvalidName, "not allowed"),
        (lambda s: s.run(1).append("x", [1.0], data_id={"name": "a"}), labshelf.InvalidDataId, "reserved"),
        (lambda s: s.run(1).finish("done"), labshelf.InvalidValue, "a run ends as one of"),
        (lambda s: s.run(1).finish("failed", error=5), labshelf.InvalidValue, "error= takes a message"),
    ],
)
def test_text_and_arguments_every_registry_takes(shelf: labshelf.Shelf, call: Any, error: type, phrase: str) -> None:
    with shelf.new_run("first") as run:
        run.put("seed", 1.0)
        with pytest.raises(error, match=phrase) as caught:
            call(shelf)
    assert isinstance(caught.value, labshelf.ShelfError) and isinstance(caught.value, (ValueError, KeyError))
    assert [r.name for r in shelf.datasets(1)] == ["seed"] and len(shelf) == 1
    assert shelf.run(1).status == "finished"


@pytest.mark.parametrize("dimension", RESERVED_DIMENSIONS)
def test_dimensions_queries_cannot_reach_are_refused_at_put(shelf: labshelf.Shelf, dimension: str) -> None:
    with shelf.new_run() as run:
        with pytest.raises(labshelf.InvalidDataId, match=f"'{dimension}' is reserved: queries read end, experiment, name"):
            run.put("x", 1.0, data_id={dimension: 1})
        run.put("x", 1.0, data_id={f"{dimension}_id": 1})
    (ref,) = shelf.query("x", where=f"{dimension}_id == 1")
    assert ref.data_id == {f"{dimension}_id": 1}


def test_params_with_nul_round_trip_on_both(shelf: labshelf.Shelf) -> None:
    # Params are JSON text: NUL is stored as the escape \\u0000, which both registries keep.
    with shelf.new_run("p", {"k": "a\x00b", "nested": ["\x00"]}) as run:
        pass
    assert dict(shelf.run(run.number).params) == {"k": "a\x00b", "nested": ["\x00"]}


def test_an_error_message_is_kept_whatever_it_holds(shelf: labshelf.Shelf) -> None:
    with pytest.raises(RuntimeError), shelf.new_run() as run:
        raise RuntimeError("bad \x00 byte and \ud800 surrogate")
    error = shelf.run(run.number).record.error
    assert shelf.run(run.number).status == "failed"
    assert error == "RuntimeError: bad \u2400 byte and \\ud800 surrogate"
    other = shelf.new_run()
    other.finish("aborted", error="stopped \x00")
    assert shelf.run(other.number).record.error == "stopped \u2400"
