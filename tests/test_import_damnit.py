"""labshelf.importers.damnit: DAMNIT folders written by ``_damnit.py`` (DAMNIT's format 4 layout),
imported into SQLite and PostgreSQL shelves.

The kill -9 test runs the import in a real process (this file run as a script) that says
after each variable it stored, and kills it after a chosen number of them.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _damnit import START, Var, png_bytes, write_damnit  # noqa: E402


def importer_main(folder: str, root: str, stop: str) -> None:
    """Import ``folder`` into the shelf at ``root``; after the ``stop``-th variable stored, say
    "stopped" and wait (to be killed there)."""
    import labshelf
    from labshelf.importers import damnit
    from labshelf.writer import Writer

    original = Writer.put
    done = 0

    def put(self: Writer, *args: Any, **kwargs: Any) -> Any:
        nonlocal done
        ref = original(self, *args, **kwargs)
        done += 1
        if done == int(stop):
            print("stopped", flush=True)
            sys.stdin.readline()  # killed while waiting here
        return ref

    Writer.put = put  # type: ignore[method-assign]
    print("loaded", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    with labshelf.open(root) as shelf:
        report = damnit(shelf, folder, progress=False)
    print(f"done {len(report.runs)}", flush=True)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "import":
        importer_main(*args)
    sys.exit(0)


# -- the tests ----------------------------------------------------------------------------------

import h5py  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

import labshelf  # noqa: E402
from _children import Spawn, spawn_fixture  # noqa: E402
from _shelves import make_shelf  # noqa: E402
from labshelf.errors import CorruptDataset, ImportConflict, InvalidOptions, NotAShelf  # noqa: E402
from labshelf.importers import ImportReport, damnit  # noqa: E402

spawn = spawn_fixture(__file__)

IMAGE = np.random.default_rng(5).integers(0, 4000, (64, 48)).astype(np.uint16)
ARRAY = xr.DataArray(
    np.arange(6.0).reshape(2, 3),
    dims=("x", "y"),
    coords={"x": [10, 20], "y": [0.1, 0.2, 0.3], "label": ("x", ["a", "b"])},
    attrs={"units": "V", "note": "from the scope", "gain": 2.5},
    name="trace",
)
DATASET = xr.Dataset(
    {"a": ("t", np.arange(4, dtype=np.int32)), "b": ("t", np.linspace(0, 1, 4))},
    coords={"t": np.arange(4) * 0.5},
    attrs={"source": "spectrometer"},
)
VARIABLES = {
    "xgm_mean": {"title": "Beam/XGM mean", "description": "mean pulse energy", "attributes": {"units": "uJ"}},
    "label": {"title": "Label"},
    "quality": {"type": "number", "title": "Quality", "description": "by eye"},
    "shots": {"type": "integer"},
    "good": {"type": "boolean"},
    "sample": {"type": "string"},
    "unset": {"type": "integer", "title": "Never set"},
}


def one_run() -> dict[str, Var]:
    return {
        "xgm_mean": Var(np.float64(1.5), attributes={"units": "uJ", "bold": True, "background": [255, 0, 0]}),
        "count": Var(np.int32(7)),
        "label": Var("hello ünïcode"),
        "iq": Var(np.complex128(1 - 2j)),
        "spectrum": Var(np.linspace(0, 1, 50)),
        "camera": Var(IMAGE),
        "trace": Var(ARRAY),
        "spectra": Var(DATASET),
        "failed": Var(error="ZeroDivisionError: division by zero (context.py, line 12)"),
        "from_summary": Var(np.float64(2.0), in_file=False),  # the run file lacks it
        "thumb_only": Var(None, summary=png_bytes(IMAGE)),
        "complex_only": Var(None, summary=3 + 4j),
        "text_only": Var(None, summary="only a summary"),
        "comment": Var(None, summary="beam was unstable", provenance="alice"),
        "quality": Var(None, summary=3, provenance="alice"),  # SQLite keeps 3.0 of a number column as 3
        "shots": Var(None, summary=1000, provenance="bob"),
        "good": Var(None, summary=1, provenance="bob"),
        "sample": Var(None, summary="Fe2O3", provenance="bob"),
    }


def make_folder(folder: Path, runs: tuple[int, ...] = (1, 2, 3), **kwargs: Any) -> Path:
    others = {run: {"xgm_mean": Var(np.float64(run))} for run in runs[1:]}
    others[runs[1]]["failed"] = Var(np.float64(0.5))  # what failed in the first run worked here
    return write_damnit(
        folder,
        {runs[0]: one_run(), **others},
        variables=VARIABLES,
        tags={"xgm_mean": ["beam", "xgm"], "quality": ["manual"]},
        comments=[(START + 5.5, "shift begins"), (START + 7200.25, "beam lost")],
        **kwargs,
    )


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


def state(shelf: labshelf.Shelf) -> list[Any]:
    """What an import decides about a shelf, comparable across shelves (no put times)."""
    out: list[Any] = []
    for run in shelf:
        record = run.record
        out.append(
            (
                record.number,
                record.experiment,
                dict(record.params),
                record.status,
                record.started,
                record.ended,
            )
        )
        for ref in shelf.datasets(run.number):
            value = shelf.read(ref)
            if isinstance(value, (xr.DataArray, xr.Dataset)):
                digest = repr(value.to_dict())
            elif isinstance(value, np.ndarray):
                digest = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
            else:
                digest = repr(value)
            out.append((run.number, ref.name, ref.kind, ref.shape, ref.dtype, ref.version, digest))
    out.append(
        sorted(
            (r["run"], r["variable"], r["status"], r["error"], r["source_hash"])
            for r in shelf.derived_status()
        )
    )
    out.append(sorted((name, repr(meta)) for name, meta in shelf.metadata().items()))
    out.append(shelf.column_tags())
    out.append(shelf.logbook()[["time", "text"]].to_dict("records"))
    table = shelf.runs.to_pandas()
    out.append([c for c in table.columns])
    out.append([[repr(v) for v in row] for row in table.drop(columns=["start", "end"]).itertuples()])
    return out


# -- values, metadata, annotations --------------------------------------------------------------------


def test_a_damnit_folder_becomes_runs_with_exact_values(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "damnit")
    report = damnit(shelf, folder, progress=False)
    assert isinstance(report, ImportReport)
    assert report.runs == [1, 2, 3] and not report.skipped, report
    assert report.datasets == 12 + 3

    run = shelf.run(1)
    assert run.status == "finished" and run.experiment == "damnit"
    assert run.record.started == START + 600
    assert run.record.ended == START + 600 + 60  # the newest variable timestamp
    params = dict(run.params)
    assert params["damnit_proposal"] == 1234 and params["damnit_run"] == 1
    assert params["source"] == str((folder / "extracted_data" / "p1234_r1.h5").resolve())
    assert (
        params["source_sha256"]
        == hashlib.sha256((folder / "extracted_data" / "p1234_r1.h5").read_bytes()).hexdigest()
    )
    assert params["import_id"] == "damnit:0123456789abcdef0123456789abcdef01234567:p1234:r1"
    assert (
        params["damnit_provenance"]["comment"] == "alice"
        and params["damnit_provenance"]["iq"] == "context.py"
    )
    assert params["damnit_summary_only"] == [
        "derived/complex_only",
        "derived/from_summary",
        "derived/text_only",
        "derived/thumb_only",
    ]

    def get(name: str) -> Any:
        return shelf.get(f"derived/{name}", run=1)

    same(get("xgm_mean"), np.float64(1.5))
    same(get("count"), np.int32(7))
    same(get("label"), "hello ünïcode")
    same(get("iq"), np.complex128(1 - 2j))
    same(get("spectrum"), np.linspace(0, 1, 50))
    same(get("camera"), IMAGE)
    trace = get("trace")
    assert isinstance(trace, xr.DataArray)
    xr.testing.assert_identical(trace, ARRAY)
    assert trace.attrs == {"units": "V", "note": "from the scope", "gain": 2.5}  # no _damnit_ attribute
    spectra = get("spectra")
    assert isinstance(spectra, xr.Dataset)
    xr.testing.assert_identical(spectra, DATASET)
    assert spectra["a"].dtype == np.int32
    # The summary where the run file lacks the variable: a number, complex, text, a PNG's pixels.
    assert get("from_summary") == 2.0
    same(get("complex_only"), complex(3, 4))
    same(get("text_only"), "only a summary")
    from test_import_artiq import png_pixels

    same(get("thumb_only"), png_pixels(png_bytes(IMAGE)))

    kinds = {ref.name: ref.kind for ref in shelf.datasets(1)}
    assert kinds["derived/camera"] == "image" and kinds["derived/thumb_only"] == "image"
    camera = shelf.find("derived/camera", run=1)
    thumbnail = camera.summary
    assert isinstance(thumbnail, bytes) and thumbnail.startswith(b"\x89PNG")
    assert thumbnail != png_bytes(IMAGE)  # labshelf's own thumbnail, not DAMNIT's
    assert sorted(kinds) == sorted(
        f"derived/{n}"
        for n in (
            "xgm_mean",
            "count",
            "label",
            "iq",
            "spectrum",
            "camera",
            "trace",
            "spectra",
            "from_summary",
            "thumb_only",
            "complex_only",
            "text_only",
        )
    )

    # Display metadata, column tags, the logbook.
    xgm = shelf.metadata("derived/xgm_mean")
    assert (xgm.title, xgm.description, xgm.unit) == ("Beam/XGM mean", "mean pulse energy", "uJ")
    assert shelf.metadata("quality").title == "Quality" and shelf.metadata("quality").description == "by eye"
    assert shelf.column_tags() == {"derived/xgm_mean": ["beam", "xgm"], "quality": ["manual"]}
    book = shelf.logbook()
    assert list(book["text"]) == ["shift begins", "beam lost"]
    assert [t.timestamp() for t in book["time"]] == [START + 5.5, START + 7200.25]
    assert any("cell styling" in w.reason and w.dataset == "xgm_mean" for w in report.warnings)

    # The comment, typed user columns (one made though no run has a value), the error cell.
    table = shelf.runs.to_pandas()
    assert table.loc[1, "comment"] == "beam was unstable"
    assert shelf._annotations.columns() == {
        "good": "bool",
        "quality": "number",
        "sample": "text",
        "shots": "int",
        "unset": "int",
    }
    assert table.loc[1, "quality"] == 3.0 and isinstance(table.loc[1, "quality"], float)
    assert table.loc[1, "shots"] == 1000 and table.loc[1, "good"] is True or table.loc[1, "good"] == True  # noqa: E712
    assert table.loc[1, "sample"] == "Fe2O3"
    assert table.attrs["errors"] == {
        1: {"derived/failed": "ZeroDivisionError: division by zero (context.py, line 12)"}
    }
    failed = [r for r in shelf.derived_status(1) if r["variable"] == "failed"]
    assert failed and failed[0]["status"] == "error"
    from labshelf.browse import Browser

    page = Browser(shelf).runs(columns=["derived/failed", "derived/xgm_mean"], offset=0, limit=10)
    assert page.errors == {
        "1": {"derived/failed": "ZeroDivisionError: division by zero (context.py, line 12)"}
    }

    # context.py: a copy to read, never the shelf's context file.
    copy = shelf.root / "damnit_context.py"
    assert copy.read_text() == (folder / "context.py").read_text()
    assert shelf.context_path is None
    # The DAMNIT folder is untouched (no -wal/-shm/-journal left by reading it).
    assert sorted(p.name for p in folder.iterdir()) == ["context.py", "extracted_data", "runs.sqlite"]
    same(shelf.get("derived/xgm_mean", run=3), np.float64(3.0))


def test_several_proposals_need_one_chosen(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    folder = tmp_path / "damnit"
    write_damnit(folder, {1: {"x": Var(1.0)}}, proposal=1000)
    write_damnit(folder, {1: {"x": Var(2.0)}, 2: {"x": Var(3.0)}}, proposal=2000)
    with pytest.raises(InvalidOptions, match=r"2 proposals \(1000, 2000\).*--proposal"):
        damnit(shelf, folder, progress=False)
    with pytest.raises(InvalidOptions, match="no runs of proposal 3000; its proposals: 1000, 2000"):
        damnit(shelf, folder, proposal=3000, progress=False)
    assert len(shelf) == 0
    report = damnit(shelf, folder, proposal=2000, progress=False)
    assert report.runs == [1, 2]
    assert shelf.get("derived/x", run=1) == 2.0 and shelf.run(2).params["damnit_proposal"] == 2000


def test_not_damnit_or_damaged_databases_are_clear_errors(
    sqlite_shelf: labshelf.Shelf, tmp_path: Path
) -> None:
    shelf = sqlite_shelf
    with pytest.raises(NotAShelf, match="not a folder"):
        damnit(shelf, tmp_path / "nowhere", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotAShelf, match="not a DAMNIT folder: it has no runs.sqlite"):
        damnit(shelf, tmp_path / "empty", progress=False)
    other = tmp_path / "other"
    other.mkdir()
    import sqlite3

    connection = sqlite3.connect(other / "runs.sqlite")
    connection.execute("CREATE TABLE t(x)")
    connection.commit()
    connection.close()
    with pytest.raises(NotAShelf, match="not DAMNIT's: it lacks the table"):
        damnit(shelf, other, progress=False)
    broken = make_folder(tmp_path / "broken")
    data = (broken / "runs.sqlite").read_bytes()
    (broken / "runs.sqlite").write_bytes(b"garbage!" * 16 + data[128:])
    with pytest.raises(CorruptDataset, match="runs.sqlite"):
        damnit(shelf, broken, progress=False)
    outside = make_folder(tmp_path / "real")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "runs.sqlite").symlink_to(outside / "runs.sqlite")
    with pytest.raises(NotAShelf, match="outside"):
        damnit(shelf, linked, progress=False)
    assert len(shelf) == 0 and shelf.logbook().empty


def test_a_damaged_run_file_is_skipped_and_the_rest_goes_on(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "damnit")
    bad = folder / "extracted_data" / "p1234_r2.h5"
    bad.write_bytes(bad.read_bytes()[:600])
    (folder / "extracted_data" / "p1234_r3.h5").unlink()  # no file at all: the summaries
    report = damnit(shelf, folder, progress=False)
    assert report.runs == [1, 3]
    reasons = {s.source: s.reason for s in report.skipped}
    assert "cannot be read as a DAMNIT run file" in reasons[str(bad)]
    assert [r.number for r in shelf] == [1, 3]
    same(shelf.get("derived/xgm_mean", run=3), 3.0)  # the summary
    assert shelf.run(3).params["damnit_summary_only"] == ["derived/xgm_mean"]


def test_untrusted_links_are_never_followed(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "context.py").write_text("TOKEN = 'not yours'\n")
    with h5py.File(secret / "other.h5", "w") as f:
        f["x/data"] = np.arange(3)
    folder = write_damnit(tmp_path / "damnit", {1: {"fine": Var(1.0)}, 2: {"fine": Var(2.0)}}, context=None)
    (folder / "context.py").symlink_to(secret / "context.py")
    with h5py.File(folder / "extracted_data" / "p1234_r1.h5", "a") as f:
        f["stolen"] = h5py.ExternalLink(str(secret / "other.h5"), "/x")
        f.create_group("linked")["data"] = h5py.ExternalLink(str(secret / "other.h5"), "/x/data")
    run2 = folder / "extracted_data" / "p1234_r2.h5"
    run2.unlink()
    run2.symlink_to(secret / "other.h5")
    report = damnit(shelf, folder, progress=False)
    assert report.runs == [1]
    skipped = {(s.source, s.dataset): s.reason for s in report.skipped}
    assert "links are not followed" in skipped[(str(folder / "extracted_data" / "p1234_r1.h5"), "stolen")]
    assert "not followed" in skipped[(str(folder / "extracted_data" / "p1234_r1.h5"), "linked")]
    assert "outside the DAMNIT folder" in skipped[(str(run2), None)]
    assert any("context.py" in w.source and "outside" in w.reason for w in report.warnings)
    assert not (shelf.root / "damnit_context.py").exists()
    assert {ref.name for ref in shelf.datasets(1)} == {"derived/fine"}


# -- numbers, idempotence, new versions, dry run ----------------------------------------------------


def test_a_run_number_taken_is_an_error_before_anything_is_written(
    shelf: labshelf.Shelf, tmp_path: Path
) -> None:
    with shelf.new_run("mine", number=2):
        pass
    folder = make_folder(tmp_path / "damnit")
    seq = shelf.last_seq()
    with pytest.raises(ImportConflict) as caught:
        damnit(shelf, folder, progress=False)
    assert "DAMNIT run 2 " in str(caught.value) and "DAMNIT run 1 " not in str(caught.value)
    assert "renumber" in str(caught.value)
    assert shelf.last_seq() == seq and not (shelf.root / "damnit_context.py").exists()
    report = damnit(shelf, folder, renumber=True, progress=False)
    assert report.runs == [3, 4, 5]
    assert [shelf.run(n).params["damnit_run"] for n in report.runs] == [1, 2, 3]
    same(shelf.get("derived/xgm_mean", run=4), np.float64(2.0))
    assert shelf.runs.to_pandas().attrs["errors"] == {3: {"derived/failed": one_run()["failed"].error}}
    again = damnit(shelf, folder, renumber=True, progress=False)
    assert again.runs == [] and again.already == 3


def test_importing_again_changes_nothing(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "damnit")
    damnit(shelf, folder, progress=False)
    before = state(shelf)
    seq = shelf.last_seq()
    history = [shelf.history(), *(shelf.history(n) for n in (1, 2, 3))]
    again = damnit(shelf, folder, progress=False)
    assert again.runs == [] and again.updated == [] and again.already == 3 and again.datasets == 0
    assert shelf.last_seq() == seq, "a second import wrote something"
    assert [shelf.history(), *(shelf.history(n) for n in (1, 2, 3))] == history
    assert state(shelf) == before

    write_damnit(folder, {4: {"xgm_mean": Var(np.float64(4.0))}}, comments=[(START + 9000.0, "new shift")])
    more = damnit(shelf, folder, progress=False)
    assert more.runs == [4] and more.already == 3
    assert list(shelf.logbook()["text"]) == ["shift begins", "beam lost", "new shift"]


def test_variables_recomputed_in_damnit_become_new_versions(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "damnit")
    damnit(shelf, folder, progress=False)
    shelf.annotate(2, comment="edited on the shelf")
    # DAMNIT recomputes two variables of run 1 (one now fails) and the comment of run 3 changes.
    later = START + 50_000.0
    write_damnit(
        folder,
        {
            1: {
                "spectrum": Var(np.linspace(0, 2, 50), timestamp=later),
                "count": Var(error="ValueError: no data", timestamp=later),
            }
        },
    )
    write_damnit(folder, {3: {"comment": Var(None, summary="checked", provenance="carol", timestamp=later)}})
    dry = damnit(shelf, folder, dry_run=True, progress=False)
    assert dry.updated == [1, 3] and dry.runs == [] and dry.datasets == 1
    report = damnit(shelf, folder, progress=False)
    assert report.updated == [1, 3] and report.runs == [] and report.datasets == 1 and report.already == 1
    spectrum = shelf.find("derived/spectrum", run=1)
    assert spectrum.version == 2
    same(shelf.read(spectrum), np.linspace(0, 2, 50))
    assert shelf.find("derived/xgm_mean", run=1).version == 1  # unchanged: not written again
    errors = shelf.runs.to_pandas().attrs["errors"]
    assert errors[1]["derived/count"] == "ValueError: no data"
    comments = shelf.runs.to_pandas()["comment"]
    assert comments[3] == "checked"
    assert comments[2] == "edited on the shelf"  # DAMNIT did not change it: kept
    assert shelf.run(1).status == "finished"
    seq = shelf.last_seq()
    third = damnit(shelf, folder, progress=False)
    assert third.updated == [] and third.already == 3 and shelf.last_seq() == seq


def test_dry_run_writes_nothing(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "damnit")
    seq = shelf.last_seq()
    report = damnit(shelf, folder, dry_run=True, progress=False)
    assert report.dry_run and report.runs == [1, 2, 3] and report.datasets == 15
    assert report.bytes >= IMAGE.nbytes + 50 * 8
    assert "would import 3 runs" in report.summary()
    assert shelf.last_seq() == seq and len(shelf) == 0 and shelf.logbook().empty
    assert shelf._annotations.columns() == {} and shelf.metadata() == {}
    assert not (shelf.root / "damnit_context.py").exists()


# -- kill -9 in the middle, then the next import completes it ------------------------------------------


@pytest.mark.parametrize("kill", ["after:1", "after:7", "after:13", "inside:registry.before-commit"])
def test_an_import_killed_midway_is_completed_by_the_next(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, spawn: Spawn, kill: str
) -> None:
    """kill -9 after the 1st, 7th, 13th variable stored (12 in run 1, 2 in run 2, then one a run), or inside the
    first put before its commit; then import again: the same shelf as one whole import."""
    folder = make_folder(tmp_path / "damnit", runs=(1, 2, 3, 4))
    with make_shelf(backend, tmp_path, request) as killed:
        root = killed.root
    where, point = kill.split(":")
    if where == "after":
        child = spawn("import", folder, root, point)
    else:
        child = spawn("import", folder, root, 0, env={"LABSHELF_CRASHPOINT": point})
    child.expect("loaded")
    child.send("go")
    if where == "after":
        child.expect("stopped")
        child.kill()
    child.finish()
    assert child.proc.returncode == -9

    with labshelf.open(root) as shelf:
        half = [(r.number, r.status) for r in shelf]
        assert half and half[-1][1] == "running", half
        report = damnit(shelf, folder, progress=False)
        assert report.completed == [half[-1][0]]
        assert report.runs == list(range(half[-1][0], 5)) and not report.skipped
        got = state(shelf)
        assert damnit(shelf, folder, progress=False).already == 4
    with make_shelf(backend, tmp_path, request, name="whole.shelf") as whole:
        damnit(whole, folder, progress=False)
        assert state(whole) == got


# -- the command line ------------------------------------------------------------------------------


def test_the_cli_imports_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labshelf.cli import main

    folder = make_folder(tmp_path / "damnit")
    path = tmp_path / "lab.shelf"
    labshelf.create(path).close()
    assert main(["import", "damnit", str(folder), str(path), "--dry-run"]) == 0
    assert "would import 3 runs (1..3), 15 datasets" in capsys.readouterr().out
    with labshelf.open(path, mode="r") as shelf:
        assert len(shelf) == 0
    assert main(["import", "damnit", str(folder), str(path)]) == 0
    out = capsys.readouterr().out
    assert "imported 3 runs (1..3)" in out and "cell styling" in out
    assert main(["import", "damnit", str(folder), str(path)]) == 0
    assert "3 imported already" in capsys.readouterr().out
    write_damnit(folder, {1: {"x": Var(1.0)}}, proposal=99)
    assert main(["import", "damnit", str(folder), str(path)]) == 1
    assert "--proposal" in capsys.readouterr().err
    assert main(["import", "damnit", str(folder), str(path), "--proposal", "99", "--renumber"]) == 0
    assert "imported 1 runs (4)" in capsys.readouterr().out
    assert main(["import", "damnit", str(tmp_path / "none"), str(path)]) == 1
    assert "not a folder" in capsys.readouterr().err
    assert not os.path.exists(folder / "runs.sqlite-wal")
