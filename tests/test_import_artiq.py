"""labshelf.importers.artiq: ARTIQ results files, written here with h5py as ARTIQ writes them
(``worker_impl.write_results`` and ``DatasetManager.write_hdf5``: ``group[key] = value``, metadata
as attributes, the expid as PYON text), imported into SQLite and PostgreSQL shelves.

The kill -9 test runs the import in a real process (this file run as a script) that says
after each dataset it wrote, and kills it after a chosen number of them.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

START = 1_700_000_000.0  # 2023-11-14


def write_results_file(
    results: Path,
    rid: int,
    cls: str,
    datasets: dict[str, Any],
    *,
    archive: dict[str, Any] | None = None,
    meta: dict[str, dict[str, Any]] | None = None,
    expid: str | None = None,
    version: str | None = "8.0+unknown.beta",
    thumbnail: bytes | None = None,
    start: float | None = None,
    gzip: tuple[str, ...] = (),
) -> Path:
    """One results file as ARTIQ's worker writes it, in results/<date>/<hour>/<rid:09d>-<Class>.h5."""
    start = START + 60.0 * rid if start is None else start
    local = time.localtime(start)
    folder = results / time.strftime("%Y-%m-%d", local) / time.strftime("%H", local)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{rid:09}-{cls}.h5"
    meta = meta or {}
    with h5py.File(path, "w") as f:
        group = f.create_group("datasets")
        for key, value in datasets.items():
            if key in gzip:
                group.create_dataset(key, data=value, compression="gzip", compression_opts=4)
            else:
                group[key] = value
            for attr, attr_value in meta.get(key, {}).items():
                group[key].attrs[attr] = attr_value
        if thumbnail is not None:
            group["thumbnail"] = np.void(thumbnail)
        if archive is not None:
            group = f.create_group("archive")
            for key, value in archive.items():
                group[key] = value
                for attr, attr_value in meta.get(f"archive:{key}", {}).items():
                    group[key].attrs[attr] = attr_value
        if version is not None:
            f["artiq_version"] = version
        f["rid"] = rid
        f["start_time"] = start
        f["run_time"] = start + 2.5
        f["expid"] = expid if expid is not None else pyon_expid(cls, {"n": rid})
    return path


def pyon_expid(cls: str, arguments: dict[str, Any], repo_rev: str | None = "c0ffee1") -> str:
    """An expid as sipyco's PYON encoder writes it (for JSON-like values PYON is JSON with null/true/false)."""
    expid: dict[str, Any] = {"arguments": arguments, "class_name": cls, "file": f"repository/{cls.lower()}.py",
                             "log_level": 30}
    if repo_rev is not None:
        expid["repo_rev"] = repo_rev
    return json.dumps(expid).replace("NaN", "nan").replace("Infinity", "inf")


def png_bytes(width: int = 32, height: int = 24, mode: str = "RGB") -> bytes:
    from PIL import Image

    rng = np.random.default_rng(1)
    channels = {"RGB": 3, "RGBA": 4, "L": 0}[mode]
    shape = (height, width, channels) if channels else (height, width)
    picture = Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode)
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def png_pixels(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as picture:
        return np.asarray(picture)


def small_tree(results: Path, count: int, first: int = 1) -> list[Path]:
    """``count`` modest results files (a few scalars, an array, an image), RIDs first..first+count-1."""
    paths = []
    for rid in range(first, first + count):
        image = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) + rid)
        paths.append(write_results_file(results, rid, "Scan", {
            "ndscan.points.axis_0": np.linspace(0, 1, 20) + rid,
            "ndscan.points.channel_counts": np.arange(20, dtype=np.int64) * rid,
            "fit.result": float(rid) / 3,
            "fit.ok": bool(rid % 2),
            "camera.image": image,
            "note": f"run {rid}",
        }, archive={"calib.pi_time": 1.5e-6 + rid * 1e-9}, meta={"fit.result": {"unit": "MHz", "scale": 1e6}}))
    return paths


# -- the child process of the kill -9 test ----------------------------------------------------


def importer_main(results: str, root: str, stop: str) -> None:
    """Import ``results`` into the shelf at ``root``; after the ``stop``-th dataset written, say
    "stopped" and wait (to be killed there)."""
    import labshelf
    from labshelf.importers import artiq
    from labshelf.run import Run

    original, original_many = Run.put, Run.put_many
    done = 0

    def written(count: int) -> None:
        nonlocal done
        done += count
        if done - count < int(stop) <= done:  # a batch stops after the one holding the stop-th dataset
            print("stopped", flush=True)
            sys.stdin.readline()  # killed while waiting here

    def put(self: Run, *args: Any, **kwargs: Any) -> Any:
        ref = original(self, *args, **kwargs)
        written(1)
        return ref

    def put_many(self: Run, values: Any, **kwargs: Any) -> Any:
        refs = original_many(self, values, **kwargs)
        written(len(refs))
        return refs

    Run.put = put  # type: ignore[method-assign]
    Run.put_many = put_many  # type: ignore[method-assign]
    print("loaded", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    with labshelf.open(root) as shelf:
        report = artiq(shelf, results, progress=False)
    print(f"done {len(report.runs)}", flush=True)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "import":
        importer_main(*args)
    sys.exit(0)


# -- the tests ----------------------------------------------------------------------------------

import pytest  # noqa: E402

import labshelf  # noqa: E402
from _children import Spawn, spawn_fixture  # noqa: E402
from _shelves import make_shelf  # noqa: E402
from labshelf.errors import ImportConflict  # noqa: E402
from labshelf.importers import ImportReport, artiq  # noqa: E402
from labshelf.importers.pyon import PyonError, decode  # noqa: E402

spawn = spawn_fixture(__file__)


def same(got: Any, expected: Any) -> None:
    """Exactly equal: type, dtype, shape and values."""
    if isinstance(expected, np.ndarray):
        assert isinstance(got, np.ndarray), type(got)
        assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
        assert got.shape == expected.shape
        assert np.array_equal(got, expected)
    else:
        assert type(got) is type(expected), (type(got), type(expected))
        assert got == expected


def state(shelf: labshelf.Shelf, *, with_source: bool = True) -> list[Any]:
    """Everything an import decides about a shelf, comparable across shelves (no ids, no put times)."""
    out: list[Any] = []
    for run in shelf:
        record = run.record
        params = dict(record.params)
        if not with_source:
            params.pop("source")
        out.append((record.number, record.experiment, params, record.status, record.started, record.ended))
        for ref in shelf.datasets(run.number):
            value = shelf.read(ref)
            digest = hashlib.sha256(
                np.ascontiguousarray(value).tobytes() if isinstance(value, np.ndarray) else repr(value).encode()
            ).hexdigest()
            out.append((run.number, ref.name, ref.kind, ref.shape, ref.dtype, ref.version, digest, ref.summary))
    out.append(sorted((name, repr(meta)) for name, meta in shelf.metadata().items()))
    return out


# -- values, metadata, run fields -------------------------------------------------------------------


def test_a_results_file_becomes_a_run_with_exact_values(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    results = tmp_path / "results"
    image = np.random.default_rng(3).integers(0, 4000, (512, 256), dtype=np.uint16)
    thumb = png_bytes()
    expid = (
        '{"arguments": {"detuning": 1.5, "n": 100, "mode": "fast", "flag": true, "none": null, '
        '"scan": {"ty": "RangeScan", "start": 0.0, "stop": 1.0, "npoints": 11, "randomize": false, "seed": null}, '
        '"pair": (1, 2), "nan": nan, "freqs": nparray((3,), "<f8", b"AAAAAAAA8D8AAAAAAAAAQAAAAAAAAAhA")}, '
        '"class_name": "RabiScan", "file": "repository/rabi.py", "log_level": 30, "repo_rev": "abc123"}'
    )
    path = write_results_file(
        results, 42, "RabiScan",
        {
            "ndscan.points.axis_0": [0.0, 0.5, 1.0],  # a list, stored by h5py as float64
            "ndscan.points.channel_counts": np.array([3, 4, 5], dtype=np.int32),
            "temperature": 301.25,
            "shots": 1000,
            "ok": True,
            "label": "ion 1 — cold",
            "names": np.array(["a", "bc", "déf"], dtype=h5py.string_dtype()),
            "iq": np.complex128(1 + 2j),
            "camera.image": image,
            "small.matrix": np.arange(12, dtype=np.float32).reshape(3, 4),
        },
        archive={"calib.pi_time": 1.25e-6, "calib.freq": 1e6},
        meta={
            "temperature": {"unit": "K", "precision": 1},
            "archive:calib.pi_time": {"unit": "us", "scale": 1e-6, "precision": 3},
        },
        expid=expid,
        thumbnail=thumb,
        gzip=("camera.image",),
    )
    report = artiq(shelf, results, progress=False)
    assert isinstance(report, ImportReport)
    assert report.runs == [42] and not report.skipped, report
    assert report.datasets == 13  # 10 datasets, 2 archive, thumbnail

    run = shelf.run(42)
    assert run.experiment == "RabiScan"
    assert run.status == "finished"
    assert run.record.started == START + 60 * 42
    assert run.record.ended == START + 60 * 42 + 2.5
    params = dict(run.params)
    assert params.pop("source") == str(path.resolve())
    assert params.pop("source_sha256") == hashlib.sha256(path.read_bytes()).hexdigest()
    assert params.pop("import_id").startswith("artiq:")
    nan = params.pop("nan")
    assert isinstance(nan, float) and np.isnan(nan)
    assert params == {
        "detuning": 1.5, "n": 100, "mode": "fast", "flag": True, "none": None,
        "scan": {"ty": "RangeScan", "start": 0.0, "stop": 1.0, "npoints": 11, "randomize": False, "seed": None},
        "pair": [1, 2], "freqs": [1.0, 2.0, 3.0],
        "artiq_file": "repository/rabi.py", "artiq_repo_rev": "abc123", "artiq_version": "8.0+unknown.beta",
        "artiq_rid": 42,
    }

    same(shelf.get("ndscan/points/axis_0", run=42), np.array([0.0, 0.5, 1.0]))
    same(shelf.get("ndscan/points/channel_counts", run=42), np.array([3, 4, 5], dtype=np.int32))
    same(shelf.get("temperature", run=42), np.float64(301.25))
    same(shelf.get("shots", run=42), np.int64(1000))
    same(shelf.get("ok", run=42), np.bool_(True))
    same(shelf.get("label", run=42), "ion 1 — cold")
    same(shelf.get("names", run=42), np.array(["a", "bc", "déf"]))
    same(shelf.get("iq", run=42), np.complex128(1 + 2j))
    same(shelf.get("camera/image", run=42), image)
    same(shelf.get("small/matrix", run=42), np.arange(12, dtype=np.float32).reshape(3, 4))
    same(shelf.get("archive/calib/pi_time", run=42), np.float64(1.25e-6))
    same(shelf.get("archive/calib/freq", run=42), np.float64(1e6))
    same(shelf.get("thumbnail", run=42), png_pixels(thumb))

    kinds = {ref.name: ref.kind for ref in shelf.datasets(42)}
    assert kinds["camera/image"] == "image" and kinds["thumbnail"] == "image"
    assert kinds["small/matrix"] == "ndarray"  # 3x4 is no picture
    image_ref = shelf.find("camera/image", run=42)
    assert image_ref.storage.options.get("compression") == "gzip"  # kept as the source had it

    assert shelf.metadata("temperature").unit == "K" and shelf.metadata("temperature").precision == 1
    pi = shelf.metadata("archive/calib/pi_time")
    assert (pi.unit, pi.scale, pi.precision) == ("us", 1e-6, 3)

    table = shelf.runs.to_pandas()
    assert isinstance(table.loc[42, "thumbnail"], bytes) and table.loc[42, "thumbnail"].startswith(b"\x89PNG")
    assert table.loc[42, "experiment"] == "RabiScan"


def test_an_older_file_without_version_archive_or_metadata(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    results = tmp_path / "results"
    expid = pyon_expid("Old", {"x": 2}, repo_rev=None)
    write_results_file(results, 7, "Old", {"y": np.arange(4, dtype=np.int64)}, version=None, expid=expid)
    report = artiq(shelf, results, progress=False)
    assert report.runs == [7] and not report.skipped and not report.warnings, report
    params = shelf.run(7).params
    assert "artiq_version" not in params and "artiq_repo_rev" not in params
    assert params["x"] == 2 and params["artiq_file"] == "repository/old.py"
    assert [ref.name for ref in shelf.datasets(7)] == ["y"]
    same(shelf.get("y", run=7), np.arange(4, dtype=np.int64))


def test_a_damaged_file_is_skipped_with_its_reason_and_the_rest_goes_on(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    results = tmp_path / "results"
    good = small_tree(results, 3)
    bad = good[1]
    bad.write_bytes(bad.read_bytes()[:700])  # truncated, as by a full disk
    (results / "notes.h5").write_bytes(b"not ARTIQ")
    report = artiq(shelf, results, progress=False)
    assert report.runs == [1, 3]
    reasons = {Path(s.source).name: s.reason for s in report.skipped}
    assert "cannot be read as an ARTIQ results file" in reasons[bad.name]
    assert "<rid>-<Class>.h5" in reasons["notes.h5"]
    assert bad.name in str(report) and "skipped" in report.summary()
    assert [run.number for run in shelf] == [1, 3]


def test_an_unparseable_expid_is_kept_as_text_with_a_warning(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    results = tmp_path / "results"
    text = '{"arguments": {"x": __import__("os").getcwd()}, "class_name": "Evil"}'
    write_results_file(results, 3, "Evil", {"v": 1.0}, expid=text)
    report = artiq(shelf, results, progress=False)
    assert report.runs == [3]
    run = shelf.run(3)
    assert run.params["artiq_expid"] == text
    assert "x" not in run.params
    assert run.experiment == "Evil"  # from the file name
    assert any("expid is not PYON" in w.reason for w in report.warnings)
    same(shelf.get("v", run=3), np.float64(1.0))


def test_names_that_break_the_rules_are_mapped_and_recorded(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_results_file(results, 5, "Names", {
        "a b": 1, "x..y": 2, "-lead": 3, "pct%": 4, "ok.name": 5, "calc:stage": 6,
    })
    report = artiq(shelf, results, progress=False)
    assert report.runs == [5] and not report.skipped, report
    names = {ref.name for ref in shelf.datasets(5)}
    assert names == {"a%20b", "x/_/y", "_-lead", "pct%25", "ok/name", "calc%3Astage"}
    renamed = shelf.run(5).params["source_names"]
    assert renamed["a%20b"] == "datasets/a b" and renamed["_-lead"] == "datasets/-lead"
    assert "ok/name" not in renamed
    from urllib.parse import unquote

    assert unquote("calc%3Astage") == "calc:stage"
    same(shelf.get("calc%3Astage", run=5), np.int64(6))


def test_dataset_problems_skip_the_dataset_not_the_run(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    results = tmp_path / "results"
    path = write_results_file(results, 9, "Odd", {"fine": 1.5})
    with h5py.File(path, "a") as f:
        f["datasets"].create_dataset("table", data=np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]))
        f["datasets"]["empty"] = h5py.Empty("f8")
        f["datasets"]["bad.meta"] = 2.0
        f["datasets"]["bad.meta"].attrs["scale"] = 0.0
        f["datasets"]["bad.meta"].attrs["unit"] = "mm"
    report = artiq(shelf, results, progress=False)
    assert report.runs == [9]
    skipped = {s.dataset: s.reason for s in report.skipped}
    assert "compound" in skipped["datasets/table"] and "empty" in skipped["datasets/empty"]
    assert any("scale" in w.reason and w.dataset == "datasets/bad.meta" for w in report.warnings)
    assert {ref.name for ref in shelf.datasets(9)} == {"fine", "bad/meta"}
    assert shelf.metadata("bad/meta").unit == "mm" and shelf.metadata("bad/meta").scale is None


# -- numbers, clashes, idempotence, dry run ------------------------------------------------------


def test_a_rid_taken_by_another_run_is_an_error_before_anything_is_written(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    with shelf.new_run("mine"):
        pass
    with shelf.new_run("mine", number=3):
        pass
    results = tmp_path / "results"
    small_tree(results, 4)  # RIDs 1..4: 1 and 3 are taken
    seq = shelf.last_seq()
    with pytest.raises(ImportConflict) as caught:
        artiq(shelf, results, progress=False)
    message = str(caught.value)
    assert "RID 1 " in message and "RID 3 " in message and "RID 2 " not in message
    assert "renumber" in message
    assert shelf.last_seq() == seq and [r.number for r in shelf] == [1, 3]
    with pytest.raises(ImportConflict):
        artiq(shelf, results, dry_run=True, progress=False)

    report = artiq(shelf, results, renumber=True, progress=False)
    assert report.runs == [4, 5, 6, 7]
    assert [shelf.run(n).params["artiq_rid"] for n in report.runs] == [1, 2, 3, 4]
    same(shelf.get("note", run=6), "run 3")
    again = artiq(shelf, results, renumber=True, progress=False)
    assert again.runs == [] and again.already == 4


def test_rid_zero_needs_renumber(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_results_file(results, 0, "First", {"v": 1})
    with pytest.raises(ImportConflict, match="RID 0 .* is not a run number"):
        artiq(shelf, results, progress=False)
    assert artiq(shelf, results, renumber=True, progress=False).runs == [1]


def test_importing_again_adds_only_new_files(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    results = tmp_path / "results"
    small_tree(results, 3)
    first = artiq(shelf, results, progress=False)
    assert first.runs == [1, 2, 3] and first.already == 0
    before = state(shelf)
    seq = shelf.last_seq()
    again = artiq(shelf, results, progress=False)
    assert again.runs == [] and again.already == 3 and again.datasets == 0
    assert shelf.last_seq() == seq, "a second import of the same files wrote something"
    assert state(shelf) == before

    small_tree(results, 2, first=10)
    more = artiq(shelf, results, progress=False)
    assert more.runs == [10, 11] and more.already == 3
    assert state(shelf)[: len(before) - 1] == before[:-1]


def test_dry_run_writes_nothing_and_says_what_would_come(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    results = tmp_path / "results"
    paths = small_tree(results, 3)
    seq = shelf.last_seq()
    report = artiq(shelf, results, dry_run=True, progress=False)
    assert report.dry_run and report.runs == [1, 2, 3]
    assert report.datasets == 3 * 7
    with h5py.File(paths[0]) as f:
        one = sum(f[p].size * f[p].dtype.itemsize for p in (
            "datasets/ndscan.points.axis_0", "datasets/ndscan.points.channel_counts", "datasets/fit.result",
            "datasets/fit.ok", "datasets/camera.image", "archive/calib.pi_time"))
        one += f["datasets/note"].dtype.itemsize  # a variable-length string: its pointer
    assert report.bytes == 3 * one
    assert "would import 3 runs" in report.summary()
    assert shelf.last_seq() == seq and len(shelf) == 0
    assert not any((shelf.root / "data").rglob("*.h5"))


# -- kill -9 in the middle, then the next import completes it ----------------------------------------


@pytest.mark.parametrize(
    "kill", ["after:1", "after:8", "after:17", "inside:registry.before-commit", "inside:datastore.renamed"]
)
def test_an_import_killed_midway_is_completed_by_the_next(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, spawn: Spawn, kill: str
) -> None:
    """kill -9 after the 1st, 8th, 17th dataset (7 a run: in runs 1, 2 and 3; after the batch holding
    it), or inside the first batch (before its commit; after its data file was renamed into place),
    then import again."""
    results = tmp_path / "results"
    small_tree(results, 4)
    with make_shelf(backend, tmp_path, request) as killed:
        root = killed.root
    where, point = kill.split(":")
    if where == "after":
        child = spawn("import", results, root, point)
    else:
        child = spawn("import", results, root, 0, env={"LABSHELF_CRASHPOINT": point})
    child.expect("loaded")
    child.send("go")
    if where == "after":
        child.expect("stopped")
        child.kill()
    child.finish()
    assert child.proc.returncode == -9

    with labshelf.open(root) as shelf:
        half = [(r.number, r.status) for r in shelf]
        assert half and half[-1][1] == "running", half  # the kill left a run unfinished
        report = artiq(shelf, results, progress=False)
        assert report.completed == [half[-1][0]]
        assert report.runs == list(range(half[-1][0], 5))
        assert not report.skipped
        got = state(shelf)
        # A batch killed after its file (the image) was renamed into place leaves that one file,
        # unreferenced: killed at the rename or before the batch's commit.
        assert len(shelf.orphans(older_than=0)) == (1 if point in ("datastore.renamed", "registry.before-commit") else 0)
    with make_shelf(backend, tmp_path, request, name="whole.shelf") as whole:
        artiq(whole, results, progress=False)
        assert state(whole) == got


# -- the PYON reader --------------------------------------------------------------------------------


def test_pyon_reads_what_sipyco_writes() -> None:
    text = (
        '{"a": [1, -2, 3.5, -1e-3, 1j, (1+2j), (1-0.5j)], "b": (1, ), "c": (), "d": {1, 2}, "e": null, "f": true,'
        ' "g": false, "h": nan, "i": -inf, "j": "q\\"uo\\\\te\\n", "k": b"\\x00ab", "l": slice(1, None, 2),'
        ' "m": Fraction(1, 3), "n": OrderedDict([("x", 1)]), "o": npscalar("<i8", b"BwAAAAAAAAA="),'
        ' "p": nparray((2, 2), "<u2", b"AQACAAMABAA="), \'q\': \'single\'}'
    )
    value = decode(text)
    assert value["a"] == [1, -2, 3.5, -1e-3, 1j, 1 + 2j, 1 - 0.5j]
    assert value["b"] == (1,) and value["c"] == () and value["d"] == {1, 2}
    assert value["e"] is None and value["f"] is True and value["g"] is False
    assert np.isnan(value["h"]) and value["i"] == -np.inf
    assert value["j"] == 'q"uo\\te\n' and value["k"] == b"\x00ab"
    assert value["l"] == slice(1, None, 2) and str(value["m"]) == "1/3" and value["n"] == {"x": 1}
    assert value["o"] == 7 and value["o"].dtype == np.int64
    same(value["p"], np.array([[1, 2], [3, 4]], dtype="<u2"))
    assert value["q"] == "single"


@pytest.mark.parametrize(
    "text",
    [
        '__import__("os").system("true")',
        "().__class__",
        "open('x')",
        "[1, 2",
        '{"a": 1 "b": 2}',
        "1 + 1",
        "lambda: 0",
        '"unterminated',
        "[" * 200 + "]" * 200,
        'nparray((10,), "<f8", b"AAAA")',
        'nparray((2,), "O", b"")',
        "x",
    ],
)
def test_pyon_refuses_anything_else_without_running_it(text: str) -> None:
    with pytest.raises(PyonError):
        decode(text)


def test_the_cli_imports_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labshelf.cli import main

    results = tmp_path / "results"
    small_tree(results, 2)
    (results / "junk-.h5").write_bytes(b"")
    path = tmp_path / "lab.shelf"
    labshelf.create(path).close()
    assert main(["import", "artiq", str(results), str(path), "--dry-run"]) == 1
    out = capsys.readouterr().out
    assert "would import 2 runs" in out and "junk-.h5" in out
    with labshelf.open(path, mode="r") as shelf:
        assert len(shelf) == 0
    (results / "junk-.h5").unlink()
    assert main(["import", "artiq", str(results), str(path)]) == 0
    assert "imported 2 runs (1..2)" in capsys.readouterr().out
    with labshelf.open(path) as shelf:
        shelf.run(1).params  # noqa: B018 - exists
        with shelf.new_run("other", number=5):
            pass
    small_tree(results, 1, first=5)
    assert main(["import", "artiq", str(results), str(path)]) == 1
    assert "RID 5" in capsys.readouterr().err
    assert main(["import", "artiq", str(results), str(path), "--renumber"]) == 0
    assert "imported 1 runs (6)" in capsys.readouterr().out
