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

from collections.abc import Callable, Iterator
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


# -- counts, sizes, offsets and run numbers beyond the Shelf (issue 12) ----------------------------
#
# The index of ``to_pandas()`` holds numpy int64, and so does anything computed
# from it (``len(df) // 2``, ``df.index.max()``): every entry point that takes a
# number of runs, a page, a size in pixels or a run number takes numpy integers
# as the ints they hold, and refuses numpy bools as it refuses bools.


@pytest.fixture
def pictured(shelf: labshelf.Shelf) -> Iterator[labshelf.Shelf]:
    for i in range(3):
        with shelf.new_run("scan") as run:
            run.put("temperature", 300.0 + i)
            run.put("image", np.arange(64 * 48, dtype=np.uint16).reshape(64, 48) + i)
    (shelf.root / "context.py").write_text(
        "from labshelf.derived import variable\n\n@variable()\ndef warm(run, t='temperature'):\n    return t + 1\n"
    )
    yield shelf
    for widget in MADE:
        widget.close()
    MADE.clear()


MADE: list[Any] = []


def _made(widget: Any) -> Any:
    MADE.append(widget)
    return widget


def _image_node(shelf: labshelf.Shelf) -> str:
    from labshelf.browse import Browser

    return next(n.id for n in Browser(shelf).children("run/2").nodes if n.name == "image")


def _widget(kind: str) -> Any:
    import labshelf.widgets as widgets

    return getattr(widgets, kind)


#: entry point -> f(shelf, k), where k(n) gives n in the type under test.
COUNTED: dict[str, Callable[[labshelf.Shelf, Callable[[int], Any]], Any]] = {
    "view.head": lambda s, k: s.runs.head(k(2)).numbers(),
    "view.tail": lambda s, k: s.runs.tail(k(2)).numbers(),
    "view.latest": lambda s, k: s.runs.latest(k(1)).numbers(),
    "view.page": lambda s, k: list(s.runs.page(k(1), k(1)).index),
    "shelf.datasets run=": lambda s, k: [r.name for r in s.datasets(run=k(2))],
    "shelf.reprocess runs= jobs=": lambda s, k: s.reprocess(runs=k(2), jobs=k(1), progress=False, force=True).computed,
    "open cache_bytes=": lambda s, k: _cache_limit(s, k(4096)),
    "browser.run_node": lambda s, k: _browser(s).run_node(k(2)).id,
    "browser.children": lambda s, k: [n.id for n in _browser(s).children("", k(1), k(1)).nodes],
    "browser.search": lambda s, k: [n.id for n in _browser(s).search("temp", k(0), k(2)).nodes],
    "browser.runs": lambda s, k: list(_browser(s).runs(offset=k(1), limit=k(1)).runs),
    "browser.names run=": lambda s, k: _browser(s).names("", run=k(2), limit=k(5)),
    "browser.run_numbers": lambda s, k: _browser(s).run_numbers("", limit=k(2)),
    "browser.labels": lambda s, k: _browser(s).labels(k(2), k(5)),
    "browser.first_datasets": lambda s, k: [r.name for r in _browser(s).first_datasets(k(2), k(1))[0]],
    "browser.latest_runs": lambda s, k: [r.number for r in _browser(s).latest_runs(k(1))[0]],
    "browser.data_ids": lambda s, k: _browser(s).data_ids("temperature", k(1)),
    "browser.thumbnails": lambda s, k: sorted(_browser(s).thumbnails("image", None, [k(2), k(3)])),
    "browser.preview size=": lambda s, k: _browser(s).preview(_image_node(s), size=k(32)).to_json(),
    "browser.pixel": lambda s, k: _browser(s).pixel(_image_node(s), k(1), k(2)).value,
    "browser.annotate": lambda s, k: _browser(s).annotate(k(2), comment="c")["comment"],
    "Gallery page_size=": lambda s, k: _made(_widget("Gallery")(s, "image", page_size=k(2))).page_size,
    "DatasetTree page_size=": lambda s, k: _made(_widget("DatasetTree")(s, page_size=k(2))).page_size,
    "RunTable page_size=": lambda s, k: _made(_widget("RunTable")(s.runs, page_size=k(2))).page_size,
    "LivePlot": lambda s, k: (
        lambda w: (w._mode, w._max_points)
    )(_made(_widget("LivePlot")(s, "temperature", run=k(2), max_points=k(3), width=k(300), height=k(200)))),
    "LiveImage size=": lambda s, k: _made(_widget("LiveImage")(s, "image", run=k(2), size=(k(32), k(48))))._size,
    "BigNumber digits=": lambda s, k: _made(_widget("BigNumber")(s, "temperature", run=k(2), digits=k(3)))._digits,
}


def _cache_limit(shelf: labshelf.Shelf, limit: Any) -> int:
    with labshelf.open(shelf.root, mode="r", cache_bytes=limit) as again:
        return again.cache.limit


def _browser(shelf: labshelf.Shelf) -> Any:
    from labshelf.browse import Browser

    return Browser(shelf)


@pytest.mark.parametrize("entry", COUNTED)
@pytest.mark.parametrize("kind", [np.int64, np.int32, np.uint16], ids=lambda t: t.__name__)
def test_numpy_integers_count_like_ints(pictured: labshelf.Shelf, entry: str, kind: type) -> None:
    expected = COUNTED[entry](pictured, int)
    got = COUNTED[entry](pictured, kind)
    assert got == expected
    assert expected not in (None, [], ()), expected  # the entry did something to compare


@pytest.mark.parametrize("entry", [e for e in COUNTED if e not in ("browser.annotate",)])
@pytest.mark.parametrize("flag", [True, np.bool_(True)], ids=["bool", "numpy bool"])
def test_bools_are_no_counts(pictured: labshelf.Shelf, entry: str, flag: Any) -> None:
    import traitlets

    before = pictured.runs.to_pandas(thumbnails=False)
    with pytest.raises((labshelf.ShelfError, ValueError, TypeError, traitlets.TraitError)):
        COUNTED[entry](pictured, lambda n: flag)
    assert pictured.runs.to_pandas(thumbnails=False).equals(before)
