"""The labshelf command line, run as a real subprocess like a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import labshelf
from labshelf import cli


def labshelf_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labshelf.cli", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_help_lists_every_command() -> None:
    result = labshelf_cli("--help")
    assert result.returncode == 0
    for command in ("create", "info", "ls", "demo", "upgrade", "describe", "tag-columns", "log", "logbook"):
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


def python_m_labshelf(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labshelf", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_python_m_labshelf_is_the_labshelf_command(tmp_path: Path) -> None:
    helped = python_m_labshelf("--help")
    assert helped.returncode == 0 and helped.stdout == labshelf_cli("--help").stdout
    assert helped.stdout.startswith("usage: labshelf ")
    version = python_m_labshelf("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"labshelf {labshelf.__version__}"
    created = python_m_labshelf("create", "m.shelf", cwd=tmp_path)
    assert created.returncode == 0 and (tmp_path / "m.shelf" / "labshelf.json").is_file(), created.stderr
    info = python_m_labshelf("info", str(tmp_path / "m.shelf"))
    assert info.returncode == 0 and "runs: 0" in info.stdout
    failed = python_m_labshelf("info", str(tmp_path / "nope"))
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.startswith("labshelf info: error: ") and failed.stderr.count("\n") == 1
    usage = python_m_labshelf("describe")
    assert usage.returncode == 2 and "usage: labshelf describe" in usage.stderr


def test_describe_tag_columns_log_and_logbook(tmp_path: Path) -> None:
    path = tmp_path / "d.shelf"
    with labshelf.create(path) as shelf, shelf.new_run() as run:
        run.put("delay", 1.2e-12)
    listed = python_m_labshelf("describe", str(path))
    assert listed.returncode == 0 and "no display metadata yet" in listed.stdout
    described = python_m_labshelf(
        "describe", str(path), "delay", "--unit", "ps", "--scale", "1e-12", "--precision", "2",
        "--title", "Pump/Delay", "--description", "pump-probe delay",
    )
    assert described.returncode == 0, described.stderr
    assert described.stdout.splitlines() == [
        "delay", "         unit: ps", "        scale: 1e-12", "    precision: 2", "        title: Pump/Delay",
        "  description: pump-probe delay",
    ]
    channel = python_m_labshelf("describe", str(path), "delay", "--data-id", "channel=2", "--unit", "ns")
    assert channel.returncode == 0 and channel.stdout.splitlines()[:2] == ["delay[channel=2]", "         unit: ns"]
    assert "    precision: 2" in channel.stdout  # the name's fields show through
    cleared = python_m_labshelf("describe", str(path), "delay", "--clear", "precision", "--clear", "description")
    assert cleared.returncode == 0 and "precision" not in cleared.stdout and "unit: ps" in cleared.stdout
    shown = python_m_labshelf("describe", str(path), "delay")
    assert shown.stdout == cleared.stdout
    table = python_m_labshelf("describe", str(path)).stdout.splitlines()
    assert table[0].split() == ["column", "unit", "scale", "precision", "title", "description"]
    assert table[1].split() == ["delay", "ps", "1e-12", "Pump/Delay"]
    assert table[2].split() == ["delay[channel=2]", "ns"]
    with labshelf.open(path, mode="r") as shelf:
        meta = shelf.metadata("delay")
        assert (meta.unit, meta.scale, meta.precision, meta.title) == ("ps", 1e-12, None, "Pump/Delay")
        assert shelf.metadata("delay", data_id={"channel": 2}).unit == "ns"

    assert "no column has tags" in python_m_labshelf("tag-columns", str(path)).stdout
    tagged = python_m_labshelf("tag-columns", str(path), "delay", "pump", "beam")
    assert tagged.returncode == 0 and tagged.stdout == "delay: beam, pump\n"
    assert python_m_labshelf("tag-columns", str(path), "delay").stdout == "delay: beam, pump\n"
    assert python_m_labshelf("tag-columns", str(path)).stdout.splitlines() == ["column  tags", "delay   beam, pump"]
    assert python_m_labshelf("tag-columns", str(path), "delay", "--clear").stdout == "delay: no tags\n"

    logged = python_m_labshelf("log", str(path), "beam lost", "--at", "2026-12-05T14:05+00:00")
    assert logged.returncode == 0 and logged.stdout == "logged entry 1 at 2026-12-05 14:05:00 UTC\n", logged.stderr
    assert python_m_labshelf("log", str(path), "refill\ndone", "--at", "1796486400").returncode == 0  # 16:00 UTC
    book = python_m_labshelf("logbook", str(path)).stdout.splitlines()
    assert book[0].split() == ["entry", "time", "(UTC)", "user", "text"]
    assert book[1].split()[:3] == ["1", "2026-12-05", "14:05:00"] and book[1].endswith("beam lost")
    assert book[2].split()[:3] == ["2", "2026-12-05", "16:00:00"] and book[2].endswith("refill done")
    later = python_m_labshelf("logbook", str(path), "--since", "2026-12-05T15:00+00:00").stdout.splitlines()
    assert len(later) == 2 and later[1].endswith("refill done")
    earlier = python_m_labshelf("logbook", str(path), "--until", "1796482800").stdout.splitlines()
    assert len(earlier) == 2 and earlier[1].endswith("beam lost")
    none = python_m_labshelf("logbook", str(path), "--since", "2027-01-01")
    assert none.stdout == "the logbook has no entries in that time\n"
    with labshelf.open(path, mode="r") as shelf:
        assert list(shelf.logbook()["text"]) == ["beam lost", "refill\ndone"]
        assert [e["field"].partition(":")[0] for e in shelf.history()] == ["meta"] * 3 + ["column_tags"] * 2 + ["log"] * 2


def test_describe_and_log_on_both_registries(shelf: labshelf.Shelf, capsys: pytest.CaptureFixture[str]) -> None:
    with shelf.new_run() as run:
        run.put("x", 1.0)
    root = str(shelf.root)
    assert cli.main(["describe", root, "x", "--unit", "V", "--precision", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == ["x", "         unit: V", "    precision: 3"]
    assert cli.main(["tag-columns", root, "x", "detector"]) == 0
    assert cli.main(["log", root, "checked x", "--at", "100"]) == 0
    assert "logged entry 1 at 1970-01-01 00:01:40 UTC" in capsys.readouterr().out
    assert cli.main(["describe", root, "x", "--precision", "99"]) == 1
    assert "precision= takes an int from 0 to 15" in capsys.readouterr().err
    assert cli.main(["logbook", root]) == 0
    assert capsys.readouterr().out.splitlines()[1].endswith("checked x")
    assert shelf.metadata("x").precision == 3 and shelf.column_tags() == {"x": ["detector"]}
    assert cli.main(["describe", root]) == 0
    assert capsys.readouterr().out.splitlines()[1].split() == ["x", "V", "3"]
