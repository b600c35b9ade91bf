"""Queries mean the same on SQLite and PostgreSQL, and the same in memory.

Issue 10: ``query("start > '2020-01-01'")`` returned ``[]`` on SQLite and a raw
SQL error on PostgreSQL; ``query("label > 3")`` on a text column was silent on
SQLite and a raw error on PostgreSQL.  Every expression below gets the same
answer (or the same error class) on both registries, through the run table
(``shelf.runs.query``), its ``where`` and ``Shelf.query``; the in-memory
``expr.evaluate`` agrees on the run table's rows.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

import labshelf
from _shelves import BACKENDS, make_shelf, require_postgres
from labshelf import expr
from labshelf.errors import QuerySyntaxError

UTC = dt.UTC
STARTS = [dt.datetime(2020, 1, 1, tzinfo=UTC), dt.datetime(2021, 6, 15, 12, tzinfo=UTC), dt.datetime(2024, 1, 1, tzinfo=UTC)]


@pytest.fixture(scope="module", params=BACKENDS)
def table_shelf(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[labshelf.Shelf]:
    """Three runs with known start times (run 3 still running), datasets and user columns of each kind.

    One per registry for the whole module: the tests only read it.
    """
    if request.param == "postgres":
        require_postgres()
    shelf = make_shelf(request.param, tmp_path_factory.mktemp("semantics"), request)
    for i in range(3):
        run = shelf.new_run(["scan", "ramsey", "scan"][i])
        run.put("temperature", 300.0 + i)
        run.put("label", f"l{i}")
        run.put("count", 10 + i)
        run.put("flag", i % 2 == 0)
        run.put("x", 1.0, data_id={"detector": i + 1})
        run.put("x", 2.0, data_id={"detector": "ab"[i % 2]})
        if i < 2:
            run.finish()
    shelf.annotate(1, tags=["good"], quality=0.5, n=2**53 + 1, ok=True, note="first")
    shelf.annotate(2, tags=["bad"], quality=1.5, n=3, ok=False, note="second")
    with shelf._registry.db.engine.begin() as conn:
        for number, start in enumerate(STARTS, start=1):
            ended = None if number == 3 else start.timestamp() + 60
            conn.execute(text("UPDATE runs SET started = :s, ended = :e WHERE number = :n"),
                         {"s": start.timestamp(), "e": ended, "n": number})
    yield shelf
    shelf.close()


ERROR = QuerySyntaxError
RUN_TABLE_CASES: list[tuple[str, Any]] = [
    # times: ISO strings (naive = UTC, Z, offsets, a space separator), seconds, each other
    ("start > '2020-01-01'", [2, 3]),
    ("start >= '2020-01-01'", [1, 2, 3]),
    ("start == '2020-01-01T00:00:00Z'", [1]),
    ("start > '2021-06-15T12:00:00Z'", [3]),
    ("start > '2021-06-15T14:00:00+02:00'", [3]),
    ("start < '2021-06-15 12:00:01'", [1, 2]),
    ("'2021-01-01' < start", [2, 3]),
    ("start in ['2020-01-01', '2024-01-01T00:00:00+00:00']", [1, 3]),
    ("start > 1577836800", [2, 3]),
    ("start > end", []),
    ("end > '2020-01-01'", [1, 2]),
    ("end is null", [3]),
    ("start > 'yesterday'", ERROR),
    ("start == ''", ERROR),
    ("start > True", ERROR),
    ("start < temperature", ERROR),
    ("start == label", ERROR),
    ("start contains '2020'", ERROR),
    # text against numbers, either way, in every form
    ("label > 3", ERROR),
    ("label == 3", ERROR),
    ("3 != label", ERROR),
    ("label in [1, 2]", ERROR),
    ("label in ['l0', 2]", ERROR),
    ("temperature > 'a'", ERROR),
    ("temperature == '300'", ERROR),
    ("temperature in ['300']", ERROR),
    ("temperature == label", ERROR),
    ("experiment > 2", ERROR),
    ("status == 1", ERROR),
    ("run == '1'", ERROR),
    ("note > 1", ERROR),
    ("quality == 'x'", ERROR),
    ("n != 'x'", ERROR),
    ("'a' < 3", ERROR),
    ("temperature contains '3'", ERROR),
    ("count contains '1'", ERROR),
    ("n contains '1'", ERROR),
    ("3 in tags", ERROR),
    ("temperature in tags", ERROR),
    # what does compare
    ("label contains 'l'", [1, 2, 3]),
    ("label > 'l0'", [2, 3]),
    ("label == experiment", []),
    ("experiment in tags", []),
    ("'good' in tags", [1]),
    ("temperature > 300.5", [2, 3]),
    ("count >= 11", [2, 3]),
    ("count == 11.0", [2]),
    ("flag == True", [1, 3]),
    ("flag == 1", [1, 3]),
    ("ok == True", [1]),
    ("ok != 1", [2]),
    ("n == 9007199254740993", [1]),
    ("n == 9007199254740992", []),
    ("n > 2.5", [1, 2]),
    ("quality < n", [1, 2]),
    ("note == 'first' or temperature > 301.5", [1, 3]),
    ("run > 1 and not end is null", [2]),
    ("1 < 2", [1, 2, 3]),
]


@pytest.mark.parametrize(("expression", "expected"), RUN_TABLE_CASES, ids=[c[0] for c in RUN_TABLE_CASES])
def test_run_table_queries(table_shelf: labshelf.Shelf, expression: str, expected: Any) -> None:
    if expected is ERROR:
        with pytest.raises(QuerySyntaxError) as caught:
            table_shelf.runs.query(expression).numbers()
        # One line naming what was wrong, never a raw database message.
        message = str(caught.value)
        assert "registry error" not in message and "\n" not in message
        assert any(word in message for word in ("holds", "not a time", "compared with times")), message
    else:
        assert table_shelf.runs.query(expression).numbers() == expected


def _rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The run table's rows as evaluate() takes them: NULLs as None, times as Timestamps."""
    rows = []
    for number, row in table.iterrows():
        values = {k: (None if not isinstance(v, list) and pd.isna(v) else v) for k, v in row.items()}
        rows.append({**values, "run": number})
    return rows


@pytest.mark.parametrize(("expression", "expected"), RUN_TABLE_CASES, ids=[c[0] for c in RUN_TABLE_CASES])
def test_evaluate_agrees_with_the_registry(table_shelf: labshelf.Shelf, expression: str, expected: Any) -> None:
    rows = _rows(table_shelf.runs.to_pandas())
    node = expr.parse(expression)
    if expected is ERROR:
        # Errors that depend on a column's declared kind (not on a row's values) are
        # only known to SQL; wherever evaluate() decides, it gives the same class.
        try:
            [expr.evaluate(node, row) for row in rows]
        except QuerySyntaxError:
            pass
        return
    assert [row["run"] for row in rows if expr.evaluate(node, row)] == expected


def test_evaluate_refuses_what_sql_refuses() -> None:
    row = {"label": "l0", "temperature": 300.0, "start": pd.Timestamp(STARTS[0])}
    for expression in ("label > 3", "temperature == '300'", "start > 'yesterday'", "temperature contains '3'",
                       "start < temperature"):
        with pytest.raises(QuerySyntaxError):
            expr.evaluate(expr.parse(expression), row)
    assert expr.evaluate(expr.parse("start >= '2020-01-01' and start < '2020-01-01T00:00:01'"), row)
    assert expr.evaluate(expr.parse("start == 1577836800"), row)


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ({"run": np.int64(2)}, [2]),
        ({"run": np.int32(1)}, [1]),
        ({"run": [np.int64(1), np.uint8(3)]}, [1, 3]),
        ({"run": slice(np.int64(2), None)}, [2, 3]),
        ({"run": 2**70}, []),
        ({"run": 0}, []),
        ({"run": -(2**70)}, []),
        ({"run": [2**40, 2]}, [2]),
        ({"run": slice(0, 2**40)}, [1, 2, 3]),
        ({"run": slice(2**40, None)}, []),
        ({"run": slice(None, -5)}, []),
        ({"run": range(2, 2**62)}, [2, 3]),
        ({"run": range(-(2**62), 2**62, 2)}, [2]),
        ({"run": range(2**62, 0, -2)}, [2]),
        ({"run": range(3, 2**40, 3)}, [3]),
        ({"run": range(5, 1)}, []),
        ({"start": slice("2021-01-01", None)}, [2, 3]),
        ({"start": slice(dt.datetime(2021, 1, 1), None)}, [2, 3]),
        ({"start": slice(pd.Timestamp("2021-01-01"), pd.Timestamp("2022-01-01", tz="Europe/Paris"))}, [2]),
        ({"start": slice(np.datetime64("2021-06-15T12:00"), None)}, [2, 3]),
        ({"start": dt.datetime(2020, 1, 1)}, [1]),
        ({"start": "2024-01-01T01:00:00+01:00"}, [3]),
        ({"start": [dt.date(2020, 1, 1), "2024-01-01"]}, [1, 3]),
        ({"start": STARTS[1].timestamp()}, [2]),
        ({"end": None}, [3]),
        ({"end": slice(None, "2022-01-01")}, [1, 2]),
        ({"experiment": "scan", "status": "running"}, [3]),
        ({"experiment": np.str_("ramsey")}, [2]),
    ],
)
def test_where_takes_what_pandas_hands_out(table_shelf: labshelf.Shelf, conditions: dict[str, Any], expected: list[int]) -> None:
    view = table_shelf.runs.where(**conditions)
    assert view.numbers() == expected
    assert list(view.to_pandas().index) == expected


@pytest.mark.parametrize(
    ("conditions", "phrase"),
    [
        ({"run": True}, "run numbers"),
        ({"run": "1"}, "run numbers"),
        ({"run": 1.0}, "run numbers"),
        ({"run": [1, np.bool_(True)]}, "run numbers"),
        ({"start": "yesterday"}, "not a time"),
        ({"start": pd.NaT}, "NaT"),
        ({"start": True}, "compared with times"),
        ({"start": [1, "x"]}, "not a time"),
        ({"experiment": 3}, "takes text"),
        ({"status": ["running", 1]}, "takes text"),
        ({"temperature": 3}, "use query"),
    ],
)
def test_where_refuses_values_of_another_kind(table_shelf: labshelf.Shelf, conditions: dict[str, Any], phrase: str) -> None:
    with pytest.raises(QuerySyntaxError, match=phrase):
        table_shelf.runs.where(**conditions).numbers()


def test_a_run_view_takes_numpy_run_numbers(table_shelf: labshelf.Shelf) -> None:
    view = table_shelf.runs
    numbers = view.to_pandas().index  # numpy int64 values
    assert view[numbers[1]].number == 2
    assert view.where(run=numbers[0]).numbers() == [1]
    with pytest.raises(labshelf.RunNotFound):
        view.where(run=slice(1, 2))[np.int64(3)]


SHELF_QUERY_CASES: list[tuple[str, Any]] = [
    ("start > '2021-01-01'", [(2, 2), (3, 3), (2, "b"), (3, "a")]),
    ("end is null", [(3, 3), (3, "a")]),
    ("detector > 2", [(3, 3)]),
    ("detector >= 1 and detector < 3", [(1, 1), (2, 2)]),
    ("detector < 'b'", [(1, "a"), (3, "a")]),
    ("detector == 'b'", [(2, "b")]),
    ("detector in [1, 'a']", ERROR),  # a dimension is compared with one type at a time
    ("detector in [1] or detector == 'a'", ERROR),
    ("detector in [1, 3]", [(1, 1), (3, 3)]),
    ("run == 2 and detector is not null", [(2, 2), (2, "b")]),
    ("run == 2 and detector is null", []),
    ("run == 2 and channel is null", [(2, 2), (2, "b")]),
    ("name contains 'x' and run == 1", [(1, 1), (1, "a")]),
    ("experiment == 'ramsey'", [(2, 2), (2, "b")]),
    ("experiment > 3", ERROR),
    ("name > 3", ERROR),
    ("run == 'x'", ERROR),
    ("start < 'soon'", ERROR),
    ("status contains 1", ERROR),
]


@pytest.mark.parametrize(("expression", "expected"), SHELF_QUERY_CASES, ids=[c[0] for c in SHELF_QUERY_CASES])
def test_shelf_query(table_shelf: labshelf.Shelf, expression: str, expected: Any) -> None:
    if expected is ERROR:
        with pytest.raises(QuerySyntaxError):
            table_shelf.query("x", where=expression)
        return
    found = [(ref.run, ref.data_id["detector"]) for ref in table_shelf.query("x", where=expression)]
    assert sorted(found, key=repr) == sorted(expected, key=repr)


def test_seconds_reads_every_kind_of_time() -> None:
    epoch = 1577836800.0
    for value in ("2020-01-01", "2020-01-01T00:00:00Z", "2020-01-01T01:00:00+01:00", "2020-01-01 00:00",
                  dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 1, tzinfo=UTC), dt.date(2020, 1, 1),
                  pd.Timestamp("2020-01-01"), pd.Timestamp("2020-01-01T01:00", tz="Europe/Paris"),
                  np.datetime64("2020-01-01"), np.datetime64("2020-01-01T00:00:00.000000000"), epoch,
                  int(epoch), np.int64(epoch), np.float32(2.0**20)):
        expected = 2.0**20 if isinstance(value, np.float32) else epoch
        assert expr.seconds(value) == expected, value
    for bad in ("yesterday", "", True, np.bool_(False), pd.NaT, np.datetime64("NaT"), math.nan, math.inf, [1], b"2020"):
        with pytest.raises(QuerySyntaxError):
            expr.seconds(bad)
