"""The labshelf command line, run as a real subprocess like a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import labshelf


def labshelf_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labshelf.cli", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_help_lists_every_command() -> None:
    result = labshelf_cli("--help")
    assert result.returncode == 0
    for command in ("create", "info", "ls", "demo", "upgrade"):
        assert command in result.stdout
        sub = labshelf_cli(command, "--help")
        assert sub.returncode == 0 and "usage: labshelf " + command in sub.stdout


def test_create_info_ls(tmp_path: Path) -> None:
    path = tmp_path / "c.shelf"
    created = labshelf_cli("create", str(path))
    assert created.returncode == 0, created.stderr
    assert (path / "labshelf.json").is_file()
    with labshelf.open(path) as shelf, shelf.new_run("exp") as run:
        run.put("temperature", 301.5)
        run.put("image", np.ones((64, 64), dtype="u2"))
    info = labshelf_cli("info", str(path))
    assert info.returncode == 0 and "runs: 1" in info.stdout and "datasets: 2" in info.stdout
    runs = labshelf_cli("ls", str(path))
    assert runs.returncode == 0 and "temperature" in runs.stdout and "301.5" in runs.stdout
    datasets = labshelf_cli("ls", str(path), "--run", "1")
    assert datasets.returncode == 0
    assert "image" in datasets.stdout and "64x64" in datasets.stdout and "thumbnail" in datasets.stdout


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (("info", "{missing}"), "does not exist"),
        (("ls", "{plain}"), "is not a labshelf shelf"),
        (("ls", "{shelf}", "--run", "99"), "no run 99"),
        (("create", "{shelf}"), "is a shelf already"),
        (("demo", "{plain}", "--overwrite"), "is not a shelf; refusing to delete it"),
        (("demo", "{shelf}"), "pass --overwrite"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, args: tuple[str, ...], phrase: str) -> None:
    shelf_path = tmp_path / "s.shelf"
    labshelf.create(shelf_path).close()
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "precious.txt").write_text("keep me")
    values = {"missing": str(tmp_path / "nope"), "plain": str(plain), "shelf": str(shelf_path)}
    result = labshelf_cli(*(a.format(**values) for a in args))
    assert result.returncode == 1
    assert phrase in result.stderr
    assert "Traceback" not in result.stderr
    assert (plain / "precious.txt").read_text() == "keep me"
    assert labshelf.open(shelf_path).info()["runs"] == 0


def test_demo_builds_the_runs_the_readme_promises(tmp_path: Path) -> None:
    path = tmp_path / "demo.shelf"
    result = labshelf_cli("demo", str(path), "--runs", "4")
    assert result.returncode == 0, result.stderr
    assert "[4 runs x" in result.stdout
    with labshelf.open(path, mode="r") as shelf:
        assert len(shelf) == 4
        assert {r.experiment for r in shelf} == {"rabi_scan", "beam_profile"}
        kinds = {ref.name: ref.kind for ref in shelf.datasets(run=2)}
        assert kinds == {
            "temperature": "scalar",
            "pressure": "scalar",
            "exposure_time": "scalar",
            "scan/x": "ndarray",
            "scan/counts": "ndarray",
            "camera/image": "image",
            "spectrum": "xarray",
            "peaks": "pandas",
        }
        image = shelf.get("camera/image", run=2)
        assert image.shape == (512, 512) and image.dtype == np.uint16
        # A beam spot: the brightest region is far above the dark level.
        assert image.max() > 10 * np.median(image)
        spectrum = shelf.get("spectrum", run=2)
        assert spectrum.dims == ("energy",) and spectrum.attrs["units"] == "counts"
        assert list(shelf.get("peaks", run=2).columns) == ["position", "height", "width", "label"]
    again = labshelf_cli("demo", str(path), "--runs", "2", "--overwrite")
    assert again.returncode == 0 and "[2 runs x" in again.stdout


def test_upgrade_of_a_current_shelf_says_up_to_date(tmp_path: Path) -> None:
    path = tmp_path / "u.shelf"
    labshelf.create(path).close()
    result = labshelf_cli("upgrade", str(path))
    assert result.returncode == 0 and "up to date" in result.stdout
