"""``labshelf simulate``: a real subprocess writes runs; the checks read what the shelf holds."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

import labshelf
from labshelf.errors import DatasetNotFound, NotPersisted, RunNotFound

SCAN = ("scan/x", "scan/counts")


def simulate_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "labshelf.cli", "simulate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Simulators started by a test; killed and reaped if the test leaves one running."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def points_written(shelf: labshelf.Shelf, number: int) -> int:
    """Rows of ``scan/counts`` of run ``number`` so far (0 before it exists)."""
    try:
        ref = shelf.find("scan/counts", run=number)
    except (RunNotFound, DatasetNotFound):
        return 0
    return ref.shape[0] if ref.shape else 0


def check_run(shelf: labshelf.Shelf, number: int, status: str, line: str) -> int:
    """Check one simulated run against the shelf and its printed line; return its number of points."""
    run = shelf.run(number)
    assert run.experiment == "simulate"
    assert run.status == status
    x, counts = (shelf.get(name, run=number) for name in SCAN)
    assert x.ndim == counts.ndim == 1
    assert len(x) == len(counts) > 0
    assert x.dtype == np.float64 and counts.dtype.kind == "i"
    # The scan sweeps forward from its start, one point per append, none lost or doubled.
    assert x[0] == -5.0 and np.all(np.diff(x) > 0)
    assert np.all(counts >= 0)
    assert f"run {number} {status}" in line and f": {len(x)} points," in line
    assert isinstance(shelf.get("pmt/rate", run=number), float)
    with pytest.raises(NotPersisted):
        shelf.get("pmt/live", run=number)
    return len(x)


def test_runs_hold_scans_frames_and_counters(shelf: labshelf.Shelf, processes: list[subprocess.Popen[str]]) -> None:
    rate, run_length = 40, 1.0
    proc = simulate_cli(
        str(shelf.root), "--rate", str(rate), "--image", "128", "--run-length", str(run_length), "--runs", "3",
        "--seed", "7",
    )
    processes.append(proc)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err == ""
    header, *lines = out.splitlines()
    assert header.startswith("simulating into") and "40 points/s" in header and "128x128 frames" in header
    assert len(lines) == 3
    assert len(shelf) == 3
    for number, line in zip(shelf._registry.run_numbers(), lines, strict=True):
        points = check_run(shelf, number, "finished", line)
        # Points come on a clock: most of rate x run-length, even on a busy machine.
        assert rate * run_length * 0.5 <= points <= rate * run_length
        frames = int(line.split(" frames")[0].rsplit(" ", 1)[1])
        assert frames >= 1
        image = shelf.get("camera/image", run=number)
        assert image.shape == (128, 128) and image.dtype == np.uint16
        # A beam spot over a dark level of ~100 counts with shot noise.
        assert 80 < np.median(image) < 120 and image.max() > 1000 and image.std() > 5
        ref = shelf.find("camera/image", run=number)
        assert ref.kind == "image" and isinstance(ref.summary, bytes)
        with h5py.File(shelf.root / ref.storage.files[0], "r") as f:
            stored = [d for d in _datasets(f) if d.shape == (128, 128)]
            assert stored and all(d.compression == "gzip" for d in stored)


def _datasets(group: h5py.Group) -> Iterator[h5py.Dataset]:
    for item in group.values():
        if isinstance(item, h5py.Dataset):
            yield item
        elif isinstance(item, h5py.Group):
            yield from _datasets(item)


def test_duration_ends_the_last_run_as_finished_and_no_camera(tmp_path: Path) -> None:
    path = tmp_path / "new.shelf"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "labshelf.cli", "simulate", str(path), "--create", "--rate", "50", "--image", "0",
         "--run-length", "0.8", "--duration", "2"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    assert "no camera" in result.stdout
    lines = result.stdout.splitlines()[1:]
    with labshelf.open(path, mode="r") as shelf:
        numbers = shelf._registry.run_numbers()
        # 2 s of 0.8 s runs: two whole runs and a third cut short by the clock.
        assert len(numbers) == len(lines) == 3
        for number, line in zip(numbers, lines, strict=True):
            check_run(shelf, number, "finished", line)
            assert "camera/image" not in shelf.run(number)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_aborts_the_current_run_and_exits_0(
    shelf: labshelf.Shelf, processes: list[subprocess.Popen[str]], signum: signal.Signals
) -> None:
    proc = simulate_cli(str(shelf.root), "--rate", "50", "--image", "64", "--run-length", "60")
    processes.append(proc)
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.communicate()
        if points_written(shelf, 1) >= 10:
            break
        assert time.monotonic() < deadline, "the simulator wrote no 10 scan points within 30 s"
        time.sleep(0.05)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert err == ""
    line = out.splitlines()[-1]
    assert f"aborted ({signum.name})" in line
    assert check_run(shelf, 1, "aborted", line) >= 10
    assert shelf.run(1).record.error == signum.name
    assert len(shelf) == 1


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (("--rate", "0"), "--rate must be between 0 and 10000"),
        (("--rate", "nan"), "--rate must be between 0 and 10000"),
        (("--image", "8"), "--image must be 0 (no camera) or a frame side of 16 to 8192 pixels, not 8"),
        (("--frame-rate", "-1"), "--frame-rate must be between 0"),
        (("--run-length", "0"), "--run-length must be a positive number of seconds, not 0"),
        (("--runs", "0"), "--runs must be at least 1, not 0"),
        (("--duration", "-2"), "--duration must be a positive number of seconds, not -2"),
    ],
)
def test_bad_options_are_one_clear_line(tmp_path: Path, args: tuple[str, ...], phrase: str) -> None:
    path = tmp_path / "s.shelf"
    labshelf.create(path).close()
    result = subprocess.run(
        [sys.executable, "-m", "labshelf.cli", "simulate", str(path), *args],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("labshelf simulate: error: ")
    assert phrase in result.stderr
    with labshelf.open(path, mode="r") as shelf:
        assert len(shelf) == 0


def test_a_missing_shelf_needs_create(tmp_path: Path) -> None:
    path = tmp_path / "nope.shelf"
    result = subprocess.run(
        [sys.executable, "-m", "labshelf.cli", "simulate", str(path), "--runs", "1"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "does not exist" in result.stderr and "--create" in result.stderr
    assert not path.exists()


def test_help_names_the_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "labshelf.cli", "simulate", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for option in ("--rate", "--image", "--runs", "--duration", "--run-length", "--seed", "--create"):
        assert option in result.stdout
