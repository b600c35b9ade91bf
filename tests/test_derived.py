"""Derived variables on real shelves: results, bookkeeping, staleness, errors, workers, CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import labshelf
from labshelf.derived import ReprocessReport
from labshelf.errors import ContextError, InvalidOptions, ReadOnlyShelf, RunNotFound

HEADER = "from labshelf.derived import variable\n"

CONTEXT = """
import numpy as np

@variable(title="Mean intensity", unit="counts")
def mean_intensity(run, image="camera/image"):
    return float(image.mean())

@variable(title="Contrast")
def contrast(run, m="var:mean_intensity", bg="background"):
    return m / bg

@variable(summary="max")
def profile(run, image="camera/image"):
    return image.sum(axis=0)

@variable()
def scaled_contrast(run, c="var:contrast"):
    return 10 * c
"""


def write_context(shelf: labshelf.Shelf, body: str) -> Path:
    path = shelf.root / "context.py"
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def image(i: int) -> np.ndarray:
    """Run i's frame: a 4x6 ramp plus i, so every statistic differs per run."""
    return np.arange(24, dtype=np.float64).reshape(4, 6) + i


def fill(shelf: labshelf.Shelf, n: int, *, without_background: tuple[int, ...] = (), keep_open: int | None = None) -> dict[int, labshelf.Run]:
    """Runs 1..n with camera/image and background (2.0); ``keep_open`` stays running."""
    opened = {}
    for i in range(1, n + 1):
        run = shelf.new_run("scan", {"i": i})
        run.put("camera/image", image(i), kind="ndarray")
        if i not in without_background:
            run.put("background", 2.0)
        if i == keep_open:
            opened[i] = run
        else:
            run.finish()
    return opened


def reprocess(shelf: labshelf.Shelf, *args: Any, **kwargs: Any) -> ReprocessReport:
    kwargs.setdefault("progress", False)
    return shelf.reprocess(*args, **kwargs)


def counts(report: ReprocessReport) -> tuple[int, int, int, int]:
    return report.computed, report.skipped_fresh, report.failed, report.missing


def statuses(shelf: labshelf.Shelf) -> dict[tuple[int, str], str]:
    return {(row["run"], row["variable"]): row["status"] for row in shelf.derived_status()}


def results(shelf: labshelf.Shelf, names: tuple[str, ...]) -> dict[tuple[int, str], Any]:
    out = {}
    for run in shelf:
        for name in names:
            if f"derived/{name}" in run:
                value = shelf.get(f"derived/{name}", run=run.number)
                out[(run.number, name)] = value.tolist() if isinstance(value, np.ndarray) else value
    return out


# -- results and bookkeeping ----------------------------------------------------------------------


def test_results_are_datasets_with_summaries_and_bookkeeping(shelf: labshelf.Shelf) -> None:
    fill(shelf, 3)
    write_context(shelf, CONTEXT)
    report = reprocess(shelf)
    assert counts(report) == (12, 0, 0, 0) and report.errors == () and report.runs == 3
    for n in (1, 2, 3):
        assert shelf.get("derived/mean_intensity", run=n) == pytest.approx(11.5 + n)
        assert shelf.get("derived/contrast", run=n) == pytest.approx((11.5 + n) / 2)
        assert shelf.get("derived/scaled_contrast", run=n) == pytest.approx(10 * (11.5 + n) / 2)
        np.testing.assert_array_equal(shelf.get("derived/profile", run=n), image(n).sum(axis=0))
    # Ended runs took the results; their own datasets are untouched.
    assert shelf.run(2).status == "finished"
    table = shelf.runs.to_pandas()
    for column in ("derived/mean_intensity", "derived/contrast", "derived/profile", "derived/scaled_contrast"):
        assert column in table.columns
    assert table["derived/mean_intensity"].tolist() == pytest.approx([12.5, 13.5, 14.5])
    # summary="max": the column shows the maximum of the stored array, not its mean.
    assert table["derived/profile"].tolist() == pytest.approx([image(n).sum(axis=0).max() for n in (1, 2, 3)])
    rows = shelf.derived_status(run=2)
    assert [r["variable"] for r in rows] == ["contrast", "mean_intensity", "profile", "scaled_contrast"]
    mean = rows[1]
    assert mean["status"] == "ok" and mean["error"] is None and len(mean["source_hash"]) == 64
    assert mean["inputs"] == {"camera/image": 1}
    assert rows[0]["inputs"] == {"derived/mean_intensity": 1, "background": 1}
    assert rows[3]["inputs"] == {"derived/contrast": 1}
    assert len(shelf.derived_status()) == 12


def test_run_gets_the_read_only_run_and_inputs_with_data_ids(shelf: labshelf.Shelf) -> None:
    with shelf.new_run("scan", {"gain": 3}) as run:
        run.put("pmt", 10, data_id={"channel": 2})
        run.put("pmt", 99, data_id={"channel": 1})
    write_context(
        shelf,
        """
        @variable()
        def gained(run, pmt="pmt[channel=2]"):
            return pmt * run.params["gain"] + run.number

        @variable()
        def sneaky(run, pmt="pmt[channel=1]"):
            run.put("sneaky", 1)
        """,
    )
    report = reprocess(shelf)
    assert shelf.get("derived/gained", run=1) == 31
    assert counts(report) == (1, 0, 1, 0)
    assert report.errors[0][:2] == (1, "sneaky") and "ReadOnlyShelf" in report.errors[0][2]
    assert "sneaky" not in shelf.run(1)


# -- staleness ------------------------------------------------------------------------------------


def test_only_stale_work_is_done(shelf: labshelf.Shelf) -> None:
    opened = fill(shelf, 4, keep_open=3)
    path = write_context(shelf, CONTEXT)
    assert counts(reprocess(shelf)) == (16, 0, 0, 0)
    assert counts(reprocess(shelf)) == (0, 16, 0, 0)

    # A new version of an input in the running run 3: only run 3, and the
    # variables that depend on it, are computed again.
    opened[3].put("camera/image", image(30), kind="ndarray")
    report = reprocess(shelf)
    assert counts(report) == (4, 12, 0, 0)
    assert shelf.get("derived/mean_intensity", run=3) == pytest.approx(11.5 + 30)
    opened[3].put("background", 4.0)
    assert counts(reprocess(shelf)) == (2, 14, 0, 0)  # contrast and scaled_contrast of run 3
    assert shelf.get("derived/contrast", run=3) == pytest.approx((11.5 + 30) / 4)
    opened[3].finish()

    # Editing a variable's source recomputes it in every run, and its dependants.
    path.write_text(path.read_text().replace("return m / bg", "return m / bg / 2"))
    report = reprocess(shelf)
    assert counts(report) == (8, 8, 0, 0)
    assert shelf.get("derived/scaled_contrast", run=1) == pytest.approx(10 * 12.5 / 4)

    # Editing a dependency recomputes it and everything downstream, not the others.
    path.write_text(path.read_text().replace("float(image.mean())", "float(image.mean()) + 1"))
    assert counts(reprocess(shelf)) == (12, 4, 0, 0)
    assert shelf.get("derived/mean_intensity", run=2) == pytest.approx(14.5)

    # force: everything again; then nothing is stale.
    assert counts(reprocess(shelf, force=True)) == (16, 0, 0, 0)
    assert counts(reprocess(shelf)) == (0, 16, 0, 0)


def test_errors_are_recorded_per_cell_and_the_rest_is_computed(shelf: labshelf.Shelf) -> None:
    fill(shelf, 4)
    path = write_context(
        shelf,
        CONTEXT
        + """
@variable()
def fragile(run, m="var:mean_intensity"):
    if run.number == 2:
        raise ZeroDivisionError("run 2 is cursed")  # RAISES
    return m
""",
    )
    raise_line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "# RAISES" in t)
    path.write_text(path.read_text().replace("return m / bg", "return m / bg if run.number != 3 else m / 0"))
    report = reprocess(shelf)
    assert counts(report) == (17, 0, 2, 1)
    assert [e[:2] for e in report.errors] == [(2, "fragile"), (3, "contrast")]
    assert report.errors[0][2] == f"ZeroDivisionError: run 2 is cursed (context.py, line {raise_line})"
    assert report.errors[1][2].startswith("ZeroDivisionError: float division by zero (context.py, line")
    state = statuses(shelf)
    assert state[(3, "contrast")] == "error" and state[(3, "scaled_contrast")] == "missing"
    assert state[(2, "fragile")] == "error" and state[(2, "contrast")] == "ok"
    assert all(state[(n, "mean_intensity")] == "ok" for n in range(1, 5))
    missing = next(r for r in shelf.derived_status(3) if r["variable"] == "scaled_contrast")
    assert "variable 'contrast' has no result (error)" in missing["error"]
    error_row = next(r for r in shelf.derived_status(3) if r["variable"] == "contrast")
    assert error_row["error"].startswith("ZeroDivisionError")
    # The run table shows the failed cells empty, with the message at hand.
    table = shelf.runs.to_pandas()
    assert table.attrs["errors"][2]["derived/fragile"].startswith("ZeroDivisionError: run 2 is cursed")
    assert np.isnan(table.loc[2, "derived/fragile"]) and table.loc[1, "derived/fragile"] == table.loc[1, "derived/mean_intensity"]
    page = shelf.runs._repr_html_()
    assert page.count("labshelf-error") == 3  # the CSS rule, and the two failed cells
    assert "run 2 is cursed" in page
    # The failures are not retried while nothing changed...
    assert counts(reprocess(shelf)) == (0, 20, 0, 0)
    # ...and a fix recomputes the failed cell and its dependants.
    path.write_text(path.read_text().replace("m / 0", "m / bg"))
    report = reprocess(shelf)
    assert statuses(shelf)[(3, "scaled_contrast")] == "ok"
    assert report.failed == 0 and report.computed == 8  # contrast and scaled_contrast of 4 runs


def test_missing_input_is_status_missing_until_it_arrives(shelf: labshelf.Shelf) -> None:
    opened = fill(shelf, 3, without_background=(2,), keep_open=2)
    write_context(shelf, CONTEXT)
    report = reprocess(shelf)
    assert counts(report) == (10, 0, 0, 2)
    state = statuses(shelf)
    assert state[(2, "contrast")] == "missing" and state[(2, "scaled_contrast")] == "missing"
    row = next(r for r in shelf.derived_status(2) if r["variable"] == "contrast")
    assert row["error"] == "input 'background' is missing" and row["inputs"]["background"] is None
    assert "derived/contrast" not in shelf.run(2)
    assert counts(reprocess(shelf)) == (0, 12, 0, 0)
    opened[2].put("background", 5.0)
    assert counts(reprocess(shelf)) == (2, 10, 0, 0)
    assert shelf.get("derived/contrast", run=2) == pytest.approx(13.5 / 5)


def test_unsupported_results_are_errors_too(shelf: labshelf.Shelf) -> None:
    fill(shelf, 1)
    write_context(shelf, "@variable()\ndef odd(run, x='background'):\n    return {'a': object()}\n")
    report = reprocess(shelf)
    assert report.failed == 1 and "UnsupportedValue" in report.errors[0][2]


# -- choosing runs and variables ------------------------------------------------------------------


def test_runs_and_variables_select_the_work(shelf: labshelf.Shelf) -> None:
    fill(shelf, 6)
    write_context(shelf, CONTEXT)
    assert reprocess(shelf, runs="2-3,5", variables=["contrast"]).computed == 6
    assert set(statuses(shelf)) == {(n, v) for n in (2, 3, 5) for v in ("mean_intensity", "contrast")}
    assert reprocess(shelf, runs=range(1, 3), variables="profile").computed == 2
    assert reprocess(shelf, runs=[4, 6]).computed == 8
    assert reprocess(shelf, runs=1).computed == 3
    # A range reaching past the last run takes the runs that exist.
    assert reprocess(shelf, runs="5-99", force=True, variables="mean_intensity").computed == 2
    with pytest.raises(RunNotFound, match="no run 7 in this shelf; runs go from 1 to 6"):
        reprocess(shelf, runs=[1, 7])
    with pytest.raises(RunNotFound, match="no run matches"):
        reprocess(shelf, runs="50-60")
    for bad in ("2-x", "5-3", "0"):
        with pytest.raises(InvalidOptions, match="runs"):
            reprocess(shelf, runs=bad)
    with pytest.raises(ContextError, match="defines no variable 'contrats'; did you mean 'contrast'"):
        reprocess(shelf, variables=["contrats"])
    with pytest.raises(InvalidOptions, match="jobs"):
        reprocess(shelf, jobs=0)


# -- context files and the shelf ------------------------------------------------------------------


def test_a_bad_context_file_leaves_the_shelf_working(shelf: labshelf.Shelf) -> None:
    fill(shelf, 1)
    with pytest.raises(ContextError, match="has no context file"):
        reprocess(shelf)
    path = write_context(shelf, "@variable()\ndef f(run, x='background'):\n    return x +* 1\n")
    with pytest.raises(ContextError, match=rf"{path}, line 4: syntax error"):
        reprocess(shelf)
    with shelf.new_run() as run:
        run.put("x", 1.5)
    assert shelf.get("x", run=2) == 1.5
    assert shelf.derived_status() == []


def test_set_context_records_the_file(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    fill(shelf, 2)
    assert shelf.context_path is None
    outside = tmp_path / "elsewhere" / "vars.py"
    outside.parent.mkdir()
    outside.write_text(HEADER + "@variable()\ndef double(run, b='background'):\n    return 2 * b\n")
    assert shelf.set_context(outside) == outside.resolve()
    assert shelf.context_path == outside.resolve()
    assert reprocess(shelf).computed == 2 and shelf.get("derived/double", run=1) == 4.0
    # A file inside the shelf is recorded relative to it.
    inside = shelf.root / "ctx" / "mine.py"
    inside.parent.mkdir()
    inside.write_text(outside.read_text())
    shelf.set_context(inside)
    assert shelf._registry.context_path() == "ctx/mine.py"
    assert shelf.context_path == shelf.root / "ctx" / "mine.py"
    # A bad file is refused and the recorded one kept.
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('no')\n")
    with pytest.raises(ContextError, match="line 1: RuntimeError"):
        shelf.set_context(bad)
    assert shelf._registry.context_path() == "ctx/mine.py"
    write_context(shelf, "")
    shelf.set_context(None)
    assert shelf.context_path == shelf.root / "context.py"


def test_read_only_shelves_refuse_to_reprocess(shelf: labshelf.Shelf) -> None:
    fill(shelf, 1)
    write_context(shelf, CONTEXT)
    with labshelf.open(shelf.root, mode="r") as readonly:
        with pytest.raises(ReadOnlyShelf):
            readonly.reprocess(progress=False)
        with pytest.raises(ReadOnlyShelf):
            readonly.set_context(shelf.root / "context.py")


def test_progress_bar_over_runs(sqlite_shelf: labshelf.Shelf, capsys: pytest.CaptureFixture[str]) -> None:
    fill(sqlite_shelf, 3)
    write_context(sqlite_shelf, CONTEXT)
    sqlite_shelf.reprocess(progress=True)
    assert "reprocess" in capsys.readouterr().err
    sqlite_shelf.reprocess(progress=False, force=True)
    assert capsys.readouterr().err == ""


# -- workers: processes and Dask ------------------------------------------------------------------

# The test process sleeps in every variable, workers do not: a worker process
# surely takes over chunks once it has started, however slow it starts.
WORKER_CONTEXT = (
    CONTEXT
    + """
import os
import time

@variable()
def pid(run, x="background"):
    if os.getpid() == PARENT:
        time.sleep(0.2)
    return os.getpid()
"""
)
NAMES = ("mean_intensity", "contrast", "profile", "scaled_contrast")


def worker_context(shelf: labshelf.Shelf) -> None:
    write_context(shelf, WORKER_CONTEXT.replace("PARENT", str(os.getpid())))


@pytest.mark.slow
def test_jobs_2_gives_the_results_of_jobs_1(shelf: labshelf.Shelf) -> None:
    fill(shelf, 40, without_background=(7,))
    worker_context(shelf)
    one = reprocess(shelf, jobs=1, variables=NAMES)
    assert counts(one) == (40 * 4 - 2, 0, 0, 2)
    expected, expected_state = results(shelf, NAMES), statuses(shelf)
    two = reprocess(shelf, jobs=2, force=True)
    assert counts(two) == (40 * 5 - 3, 0, 0, 3)
    assert results(shelf, NAMES) == expected
    assert {k: v for k, v in statuses(shelf).items() if k[1] != "pid"} == expected_state
    pids = set(results(shelf, ("pid",)).values())
    assert len(pids) == 2 and os.getpid() in pids  # this process and one worker process computed
    assert counts(reprocess(shelf, jobs=2)) == (0, 40 * 5, 0, 0)


@pytest.fixture(scope="module")
def dask_scheduler() -> Iterator[str]:
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.mark.slow
def test_dask_workers_give_the_same_results(shelf: labshelf.Shelf, dask_scheduler: str) -> None:
    fill(shelf, 12, without_background=(7,))
    write_context(shelf, CONTEXT)
    reprocess(shelf)
    expected, expected_state = results(shelf, NAMES), statuses(shelf)
    worker_context(shelf)
    report = reprocess(shelf, dask_scheduler=dask_scheduler, force=True)
    assert counts(report) == (12 * 5 - 3, 0, 0, 3)
    assert results(shelf, NAMES) == expected
    assert {k: v for k, v in statuses(shelf).items() if k[1] != "pid"} == expected_state
    pids = set(results(shelf, ("pid",)).values())
    assert pids and os.getpid() not in pids
    assert counts(reprocess(shelf, dask_scheduler=dask_scheduler)) == (0, 12 * 5, 0, 0)


def test_an_unreachable_dask_scheduler_is_one_clear_error(sqlite_shelf: labshelf.Shelf) -> None:
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    fill(sqlite_shelf, 1)
    write_context(sqlite_shelf, CONTEXT)
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        with pytest.raises(labshelf.ShelfError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
            reprocess(sqlite_shelf, dask_scheduler="tcp://127.0.0.1:9")
    assert sqlite_shelf.derived_status() == []


# -- the command line -------------------------------------------------------------------------------


def labshelf_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labshelf.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_help() -> None:
    for command in (("reprocess",), ("context",), ("context", "set"), ("context", "show")):
        result = labshelf_cli(*command, "--help")
        assert result.returncode == 0 and f"usage: labshelf {' '.join(command)}" in result.stdout
    assert "--dask-scheduler" in labshelf_cli("reprocess", "--help").stdout


def test_cli_reprocess_and_context(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    fill(shelf, 3, without_background=(2,))
    path = str(shelf.root)
    context = tmp_path / "vars.py"
    context.write_text(HEADER + textwrap.dedent(CONTEXT).replace("return m / bg", "return m / bg / (run.number - 3)"))
    result = labshelf_cli("context", "set", path, str(context))
    assert result.returncode == 0, result.stderr
    assert str(context.resolve()) in result.stdout and "mean_intensity" in result.stdout
    result = labshelf_cli("reprocess", path, "--runs", "1-3", "--jobs", "2")
    assert result.returncode == 0, result.stderr  # failures are recorded, not a failed command
    lines = result.stdout.splitlines()
    assert lines[0].startswith("reprocessed 3 runs in ") and lines[0].endswith(
        ": 8 computed, 0 up to date, 1 failed, 3 missing inputs"
    ), lines
    assert lines[1].startswith("  run 3 contrast: ZeroDivisionError: float division by zero (vars.py, line")
    assert shelf.get("derived/contrast", run=1) == pytest.approx(12.5 / 2 / -2)
    result = labshelf_cli("reprocess", path, "--var", "profile", "--force")
    assert result.returncode == 0 and ": 3 computed, 0 up to date," in result.stdout
    shown = labshelf_cli("context", "show", path)
    assert shown.returncode == 0, shown.stderr
    assert f"context file: {context.resolve()}" in shown.stdout
    assert "4 variables, in computing order:" in shown.stdout
    assert "inputs: m=var:mean_intensity, bg=background; runs: 1 ok, 1 error, 1 missing" in shown.stdout
    assert "'Mean intensity' [counts]" in shown.stdout


@pytest.mark.parametrize(
    ("args", "text", "phrase"),
    [
        (("reprocess", "{shelf}"), "@variable()\ndef f(run, x='x'):\n    return x +* 1\n", "line 4: syntax error"),
        (("reprocess", "{shelf}"), "@variable()\ndef f(run, image):\n    return 1\n", "line 3: variable 'f': parameter 'image' has no default"),
        (("reprocess", "{shelf}", "--runs", "3-x"), "", "'3-x' is not a run number"),
        (("reprocess", "{shelf}", "--var", "nope"), "", "defines no variable 'nope'"),
        (("context", "set", "{shelf}", "{shelf}/missing.py"), "", "cannot read the context file"),
        (("context", "show", "{shelf}"), None, "has no context file"),
    ],
)
def test_cli_bad_input_is_one_clear_line(
    sqlite_shelf: labshelf.Shelf, args: tuple[str, ...], text: str | None, phrase: str
) -> None:
    fill(sqlite_shelf, 1)
    if text is not None:
        write_context(sqlite_shelf, text)
    result = labshelf_cli(*(a.format(shelf=sqlite_shelf.root) for a in args))
    assert result.returncode == 1, result.stdout
    assert phrase in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
