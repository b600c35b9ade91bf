"""labshelf.export and labshelf.importers.labshelf_export: runs as self-describing HDF5 files and back,
on SQLite and PostgreSQL shelves.

The kill -9 test runs the import in a real process (this file run as a script) that says after each
dataset it wrote, and is killed after a chosen number of them.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def importer_main(out: str, root: str, stop: str) -> None:
    """Import the export ``out`` into the shelf at ``root``; after the ``stop``-th put, say "stopped" and wait."""
    import labshelf
    from labshelf.importers import labshelf_export
    from labshelf.run import Run

    original = Run.put
    done = 0

    def put(self: Run, *args: Any, **kwargs: Any) -> Any:
        nonlocal done
        ref = original(self, *args, **kwargs)
        done += 1
        if done == int(stop):
            print("stopped", flush=True)
            sys.stdin.readline()  # killed while waiting here
        return ref

    Run.put = put  # type: ignore[method-assign]
    print("loaded", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    with labshelf.open(root) as shelf:
        report = labshelf_export(shelf, out, progress=False)
    print(f"done {len(report.runs)}", flush=True)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "import":
        importer_main(*args)
    sys.exit(0)


# -- the tests ----------------------------------------------------------------------------------

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

import labshelf  # noqa: E402
from _children import Spawn, spawn_fixture  # noqa: E402
from _shelves import make_shelf  # noqa: E402
from labshelf.errors import ImportConflict, InvalidOptions, RunNotFound, ShelfError, UnsafePath  # noqa: E402
from labshelf.importers import labshelf_export  # noqa: E402

spawn = spawn_fixture(__file__)
PROVENANCE = {"source", "source_sha256", "import_id"}


@dataclasses.dataclass
class Exposure:
    image: np.ndarray
    gain: float
    label: str


SCALARS: dict[str, Any] = {
    "i": 3,
    "big": 2**70,
    "neg": -(2**63),
    "f": 1.5,
    "nan": float("nan"),
    "b": True,
    "s": "héllo wörld",
    "snul": "a\x00b",
    "empty": "",
    "by": b"\x00\x01",
    "c": 1 + 2j,
    "none": None,
    "np32": np.float32(1.25),
    "npi8": np.int8(-3),
    "npc": np.complex64(1 - 1j),
    "nps": np.str_("wide"),
    "npb": np.bytes_(b"ab"),
    "npt": np.datetime64("2024-01-01T00:00", "s"),
    "npbool": np.bool_(False),
}
ARRAYS: dict[str, Any] = {
    "f64": np.arange(10.0),
    "f32": np.linspace(0, 1, 7, dtype=np.float32),
    "i16": np.arange(-5, 5, dtype=np.int16),
    "u64": np.array([0, 2**64 - 1], dtype=np.uint64),
    "bool": np.array([True, False]),
    "c128": np.arange(4) * (1 + 1j),
    "c64": np.ones(3, dtype=np.complex64) * 1j,
    "unicode": np.array(["a", "bcdé"]),
    "bytes": np.array([b"x", b"yz"]),
    "obj": np.array(["x", "y\x00z"], dtype=object),
    "days": np.array(["2024-01-01", "2025-06-30"], dtype="M8[D]"),
    "delta": np.array([1, 2], dtype="m8[ms]"),
    "big_endian": np.arange(3, dtype=">i4"),
    "empty": np.zeros((0, 3)),
    "cube": np.arange(24).reshape(2, 3, 4),
}


def fill(shelf: labshelf.Shelf) -> None:
    """A shelf with every kind of value, data IDs, metadata, annotations and a logbook."""
    rng = np.random.default_rng(7)
    with shelf.new_run("scan", {"n": 3, "x": [1, 2], "source": "elsewhere"}) as run:
        for name, value in SCALARS.items():
            run.put(f"sc/{name}", value)
        for name, value in ARRAYS.items():
            run.put(f"arr/{name}", value)
        run.put(
            "arr/gz",
            rng.random((100, 100)),
            kind="ndarray",
            hdf5_options={"compression": "gzip", "shuffle": True},
        )
        run.put("cam", rng.integers(0, 4000, (64, 48)).astype(np.uint16), unit="counts", title="Camera")
        run.put("rgb", rng.integers(0, 255, (20, 30, 3)).astype(np.uint8))
        run.put("pmt", 1.0, data_id={"channel": 1})
        run.put("pmt", 2.0, data_id={"channel": 2})
        run.put("pmt", 0.5)
        run.put("det", np.arange(3), data_id={"label": "a/b%c", "on": True})
        run.put(
            "spec",
            xr.DataArray(
                np.arange(5.0),
                dims="e",
                coords={"e": np.linspace(0, 1, 5)},
                attrs={"units": "eV", "flag": np.int8(1)},
                name="s",
            ),
        )
        run.put(
            "ds",
            xr.Dataset(
                {"a": ("t", np.arange(3)), "b": ("t", ["x", "y", "z"]), "z": ("t", np.ones(3) * 1j)},
                coords={"t": [10, 20, 30], "when": ("t", pd.date_range("2024-01-01", periods=3))},
                attrs={"note": "hi"},
            ),
        )
        run.put("ds", xr.Dataset({"q": ("k", [1.5])}), data_id={"channel": 1})
        run.put(
            "table",
            pd.DataFrame(
                {
                    "x": [1, 2],
                    "y": ["a", None],
                    "z": pd.to_datetime(["2024-01-01", "2024-01-02"]),
                    "cat": pd.Categorical(["u", "v"]),
                },
                index=pd.Index([5, 6], name="k"),
            ),
        )
        run.put("ser", pd.Series([1.5, 2.5], name="v"))
        run.put("expo", Exposure(np.ones((20, 20)), 2.0, "lab"))
        run.put("a", 1)
        run.put("a/b", 2)
    shelf.describe("pmt", unit="V", scale=1e-3, precision=2)
    shelf.describe("pmt", data_id={"channel": 2}, title="Chan 2", description="second")
    shelf.annotate(
        1, comment="good run", tags=["ok", "scan"], quality=3, note="hi", frac=0.5, flag=True, whole=2.0
    )
    shelf.tag_columns("pmt", ["beam", "fast"])
    shelf.log("before", at=shelf.run(1).record.started - 10)
    first = shelf.run(1).record
    assert first.ended is not None
    shelf.log("during", at=(first.started + first.ended) / 2)
    with shelf.new_run("second") as run:
        run.put("x", 1)
        run.put("cam", rng.integers(0, 10, (32, 32)).astype(np.int32))
    with pytest.raises(RuntimeError), shelf.new_run("broken") as run:
        run.put("x", 2)
        raise RuntimeError("it broke")


def same(a: Any, b: Any) -> bool:
    if isinstance(a, (xr.DataArray, xr.Dataset)):
        return a.identical(b) and all(a[k].dtype == b[k].dtype for k in a.coords)
    if isinstance(a, pd.DataFrame):
        return (
            a.equals(b)
            and a.dtypes.equals(b.dtypes)
            and a.index.equals(b.index)
            and a.index.dtype == b.index.dtype
        )
    if isinstance(a, pd.Series):
        return a.equals(b) and a.dtype == b.dtype and a.name == b.name
    if isinstance(a, np.ndarray):
        return (
            a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
            if a.dtype != object
            else (b.dtype == object and a.tolist() == b.tolist())
        )
    if isinstance(a, Exposure):
        return isinstance(b, Exposure) and same(a.image, b.image) and a.gain == b.gain and a.label == b.label
    if isinstance(a, float) and a != a:
        return type(b) is float and b != b
    return type(a) is type(b) and a == b


def state(shelf: labshelf.Shelf, imported: bool = False) -> dict[int, Any]:
    """Everything a round trip keeps, by run (``imported``: params without the import's provenance,
    the exported run's own provenance params, kept as exported:<key>, under their names)."""
    out: dict[int, Any] = {}
    table = shelf.runs.to_pandas(thumbnails=False)
    for run in shelf:
        record = run.record
        params = dict(record.params)
        if imported:
            params = {k.removeprefix("exported:"): v for k, v in params.items() if k not in PROVENANCE}
        refs = {
            r.label: (
                r.kind,
                r.dtype,
                r.shape,
                dict(r.storage.options),
                r.storage.inline if r.kind == "composite" else None,
            )
            for r in shelf.datasets(run.number)
        }
        row = table.loc[run.number]
        out[run.number] = {
            "experiment": record.experiment,
            "params": params,
            "status": record.status,
            "error": record.error,
            "started": record.started,
            "ended": record.ended,
            "refs": refs,
            "comment": row["comment"],
            "tags": list(row["tags"]),
            "columns": {
                c: row[c]
                for c in ("quality", "note", "frac", "flag", "whole")
                if c in row and pd.notna(row[c])
            },
        }
    return out


def shelf_wide(shelf: labshelf.Shelf) -> Any:
    book = shelf.logbook()
    return (
        shelf.metadata(),
        shelf.column_tags(),
        list(zip(book["time"], book["text"], book["user"], strict=True)),
        shelf._annotations.columns(),
    )


def test_a_round_trip_gives_back_every_run_exactly(
    shelf: labshelf.Shelf, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    fill(shelf)
    out = tmp_path / "out"
    report = labshelf.export(shelf, out, progress=False)
    assert report.ok, report
    assert report.runs == [1, 2, 3]
    assert sorted(p.name for p in out.iterdir()) == ["index.json", "run_1.h5", "run_2.h5", "run_3.h5"]
    assert report.datasets == sum(len(shelf.datasets(n)) for n in (1, 2, 3))
    with make_shelf(backend, tmp_path, request, name="back.shelf") as back:
        imported = labshelf_export(back, out, progress=False)
        assert imported.ok and not imported.warnings, imported
        assert imported.runs == [1, 2, 3]
        assert imported.datasets == report.datasets
        assert state(back, imported=True) == state(shelf)
        assert shelf_wide(back) == shelf_wide(shelf)
        for number in (1, 2, 3):
            theirs = {(r.name, tuple(r.data_id.items())): r for r in back.datasets(number)}
            for ref in shelf.datasets(number):
                other = theirs[(ref.name, tuple(ref.data_id.items()))]
                assert same(shelf.read(ref), back.read(other)), ref.label
        # The one difference: provenance, and the exported run's own "source" param kept aside.
        params = back.run(1).params
        assert params["source"] == str((out / "run_1.h5").resolve())
        assert params["import_id"].startswith("labshelf-export:")
        assert params["exported:source"] == "elsewhere"
        assert back.run(3).record.error == "RuntimeError: it broke"


def test_an_export_reads_with_plain_h5py_and_xarray(sqlite_shelf: labshelf.Shelf, tmp_path: Path) -> None:
    fill(sqlite_shelf)
    out = tmp_path / "out"
    labshelf.export(sqlite_shelf, out, progress=False)
    script = tmp_path / "read.py"
    script.write_text(
        "import io, json, sys\n"
        "import h5py, numpy as np, pandas as pd, xarray as xr\n"
        "path = sys.argv[1]\n"
        "got = {}\n"
        "with h5py.File(path, 'r') as f:\n"
        "    got['run'] = int(f.attrs['run']); got['status'] = f.attrs['status']\n"
        "    got['params'] = json.loads(f.attrs['params']); got['comment'] = f.attrs['comment']\n"
        "    got['tags'] = [t.decode() if isinstance(t, bytes) else t for t in f.attrs['tags']]\n"
        "    got['quality'] = int(f.attrs['column:quality'])\n"
        "    got['start'] = f.attrs['start']\n"
        "    got['f64'] = f['arr/f64'][()].tolist()\n"
        "    got['c128'] = [[z.real, z.imag] for z in f['arr/c128'][()]]\n"
        "    got['unicode'] = [b.decode() for b in f['arr/unicode'][()]]\n"
        "    got['s'] = f['sc/s'][()].decode()\n"
        "    got['i'] = int(f['sc/i'][()])\n"
        "    cam = f['cam']\n"
        "    got['cam'] = [cam.attrs['CLASS'].decode(), list(cam.shape), str(cam.dtype), int(cam[()].sum()), cam.attrs['units']]\n"
        "    got['pmt'] = {k: float(f['pmt'][k][()]) for k in f['pmt']}\n"
        "    got['pmt_units'] = f['pmt/@value'].attrs['units']\n"
        "    got['table'] = [list(f['table/table'].dtype.names), f['table/table']['x'].tolist()]\n"
        "    frame = pd.read_parquet(io.BytesIO(f['table/parquet'][()].tobytes()))\n"
        "    got['parquet'] = frame['x'].tolist()\n"
        "    got['expo'] = [float(f['expo/gain'][()]), f['expo/label'][()].decode()]\n"
        "spec = xr.open_dataset(path, group='spec', engine='h5netcdf')\n"
        "got['spec'] = [spec['s'].values.tolist(), spec['e'].values.tolist(), spec['s'].attrs['units']]\n"
        "ds = xr.open_dataset(path, group='ds/@value', engine='h5netcdf')\n"
        "got['ds'] = [ds['a'].values.tolist(), ds.attrs['note'], [str(x) for x in ds['b'].values]]\n"
        "got['labshelf_loaded'] = 'labshelf' in sys.modules\n"
        "print(json.dumps(got))\n"
    )
    # -I: isolated, so not even the working folder or PYTHONPATH can bring labshelf in.
    done = subprocess.run(
        [sys.executable, "-I", str(script), str(out / "run_1.h5")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    cam = sqlite_shelf.get("cam", run=1)
    record = sqlite_shelf.run(1).record
    assert got["run"] == 1 and got["status"] == "finished"
    assert got["params"] == {"n": 3, "x": [1, 2], "source": "elsewhere"}
    assert got["comment"] == "good run" and got["tags"] == ["ok", "scan"] and got["quality"] == 3
    assert got["start"] == record.start.isoformat()
    assert got["f64"] == ARRAYS["f64"].tolist()
    assert got["c128"] == [[z.real, z.imag] for z in ARRAYS["c128"]]
    assert got["unicode"] == ["a", "bcdé"]
    assert got["s"] == SCALARS["s"] and got["i"] == 3
    assert got["cam"] == ["IMAGE", [64, 48], "uint16", int(cam.sum()), "counts"]
    assert got["pmt"] == {"@channel=1": 1.0, "@channel=2": 2.0, "@value": 0.5}
    assert got["pmt_units"] == "V"
    assert got["table"] == [["k", "x", "y", "z", "cat"], [1, 2]]
    assert got["parquet"] == [1, 2]
    assert got["expo"] == [2.0, "lab"]
    assert got["spec"] == [[0.0, 1.0, 2.0, 3.0, 4.0], np.linspace(0, 1, 5).tolist(), "eV"]
    assert got["ds"] == [[0, 1, 2], "hi", ["x", "y", "z"]]
    assert got["labshelf_loaded"] is False


def test_the_index_holds_what_belongs_to_the_shelf(sqlite_shelf: labshelf.Shelf, tmp_path: Path) -> None:
    fill(sqlite_shelf)
    labshelf.export(sqlite_shelf, tmp_path / "out", runs="2", progress=False)
    labshelf.export(sqlite_shelf, tmp_path / "out", runs=[1], progress=False)  # merged into the same index
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["format"] == "labshelf-export" and index["version"] == 1
    assert [r["run"] for r in index["runs"]] == [1, 2]
    assert index["column_tags"] == {"pmt": ["beam", "fast"]}
    assert {"name": "pmt", "data_id": {"channel": 2}, "title": "Chan 2", "description": "second"} in index[
        "metadata"
    ]
    # Run 1 alone: entries from its start to its end ("during"); the run-2 export added none.
    assert [e["text"] for e in index["logbook"]] == ["during"]
    assert index["user_columns"]["quality"] == "int" and index["user_columns"]["whole"] == "number"


def test_importing_again_adds_nothing_and_dry_run_writes_nothing(
    shelf: labshelf.Shelf, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    fill(shelf)
    out = tmp_path / "out"
    labshelf.export(shelf, out, progress=False)
    with make_shelf(backend, tmp_path, request, name="back.shelf") as back:
        dry = labshelf_export(back, out, dry_run=True, progress=False)
        assert (
            dry.dry_run
            and dry.runs == [1, 2, 3]
            and dry.datasets == sum(len(shelf.datasets(n)) for n in (1, 2, 3))
        )
        assert len(back) == 0 and back.metadata() == {} and back.logbook().empty
        first = labshelf_export(back, out, progress=False)
        before = (state(back), shelf_wide(back), len(back.history()), back.last_seq())
        again = labshelf_export(back, out, progress=False)
        assert again.runs == [] and again.already == 3 and again.datasets == 0
        assert (state(back), shelf_wide(back), len(back.history()), back.last_seq()) == before
        assert first.runs == [1, 2, 3]


def test_a_running_run_is_exported_as_it_is_and_marked(sqlite_shelf: labshelf.Shelf, tmp_path: Path) -> None:
    import h5py

    run = sqlite_shelf.new_run("live")
    run.put("x", np.arange(3))
    report = labshelf.export(sqlite_shelf, tmp_path / "out", progress=False)
    assert report.running == [1]
    with h5py.File(tmp_path / "out" / "run_1.h5") as f:
        assert f.attrs["status"] == "running" and f.attrs["exported_while_running"]
        assert "end_unix" not in f.attrs
        assert f["x"][()].tolist() == [0, 1, 2]
    with labshelf.create(tmp_path / "back.shelf") as back:
        imported = labshelf_export(back, tmp_path / "out", progress=False)
        assert back.run(1).status == "aborted" and "running" in back.run(1).record.error
        assert any("still running" in w.reason for w in imported.warnings)
        assert labshelf_export(back, tmp_path / "out", progress=False).already == 1


def test_taken_numbers_are_refused_before_anything_is_written_unless_renumbered(
    shelf: labshelf.Shelf, tmp_path: Path
) -> None:
    with shelf.new_run("one") as run:
        run.put("x", 1.0)
    labshelf.export(shelf, tmp_path / "out", progress=False)
    with shelf.new_run("two") as run:
        run.put("x", 2.0)
    with pytest.raises(ImportConflict, match="exported run 1 .* is run 1 of the shelf already"):
        labshelf_export(shelf, tmp_path / "out", progress=False)
    assert len(shelf) == 2
    report = labshelf_export(shelf, tmp_path / "out", renumber=True, progress=False)
    assert report.runs == [3]
    assert shelf.run(3).params["export_run"] == 1 and shelf.get("x", run=3) == 1.0


def test_bad_input_is_refused_and_nothing_is_written(sqlite_shelf: labshelf.Shelf, tmp_path: Path) -> None:
    fill(sqlite_shelf)
    out = tmp_path / "out"
    with pytest.raises(InvalidOptions, match="allowed: hdf5"):
        labshelf.export(sqlite_shelf, out, format="csv", progress=False)
    with pytest.raises(InvalidOptions, match="10-20"):
        labshelf.export(sqlite_shelf, out, runs="1-x", progress=False)
    with pytest.raises(RunNotFound, match="no run 7, 9-12; its runs go from 1 to 3"):
        labshelf.export(sqlite_shelf, out, runs="1,7,9-12", progress=False)
    with pytest.raises(UnsafePath, match="inside the shelf"):
        labshelf.export(sqlite_shelf, sqlite_shelf.root / "exports", progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="OUT_DIR is a file"):
        labshelf.export(sqlite_shelf, tmp_path / "file", progress=False)
    assert not out.exists() and not (sqlite_shelf.root / "exports").exists()
    with pytest.raises(labshelf.NotAShelf):
        labshelf.export(tmp_path / "nothing.shelf", out, progress=False)
    # An existing run file: refused before any file is written (run 1 would come first).
    out.mkdir()
    (out / "run_3.h5").write_bytes(b"mine")
    with pytest.raises(ShelfError, match="exist already: .*run_3.h5"):
        labshelf.export(sqlite_shelf, out, progress=False)
    assert (
        sorted(p.name for p in out.iterdir()) == ["run_3.h5"] and (out / "run_3.h5").read_bytes() == b"mine"
    )
    (out / "index.json").write_text("not json")
    with pytest.raises(ShelfError, match="index.json exists and cannot be merged"):
        labshelf.export(sqlite_shelf, out, runs=1, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["index.json", "run_3.h5"]
    report = labshelf.export(sqlite_shelf, out, overwrite=True, progress=False)
    assert (
        report.runs == [1, 2, 3]
        and json.loads((out / "index.json").read_text())["format"] == "labshelf-export"
    )


def test_a_link_in_out_dir_is_replaced_never_written_through(
    sqlite_shelf: labshelf.Shelf, tmp_path: Path
) -> None:
    with sqlite_shelf.new_run() as run:
        run.put("x", 1)
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (out / "run_1.h5").symlink_to(victim)
    (out / "index.json").symlink_to(victim)
    with pytest.raises(ShelfError, match="exist already"):
        labshelf.export(sqlite_shelf, out, progress=False)
    labshelf.export(sqlite_shelf, out, overwrite=True, progress=False)
    assert victim.read_text() == "precious"
    assert not (out / "run_1.h5").is_symlink() and not (out / "index.json").is_symlink()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_damaged_or_foreign_file_is_skipped_with_the_reason(
    sqlite_shelf: labshelf.Shelf, tmp_path: Path
) -> None:
    import h5py

    fill(sqlite_shelf)
    out = tmp_path / "out"
    labshelf.export(sqlite_shelf, out, progress=False)
    (out / "run_2.h5").write_bytes(b"not hdf5")
    with h5py.File(out / "run_9.h5", "w") as f:
        f["x"] = 1
    with h5py.File(out / "run_1.h5", "r+") as f:
        f["sc/outside"] = h5py.ExternalLink("/etc/hostname", "/")
        f["arr/f64"].attrs["labshelf_kind"] = "pickle"
    with labshelf.create(tmp_path / "back.shelf") as back:
        report = labshelf_export(back, out, progress=False)
        assert report.runs == [1, 3]
        reasons = [str(s) for s in report.skipped]
        assert any("run_2.h5: cannot be read as a labshelf export file" in r for r in reasons), reasons
        assert any("run_9.h5" in r and "not a labshelf run file" in r for r in reasons), reasons
        assert any("/sc/outside" in r and "links are not followed" in r for r in reasons), reasons
        assert any("/arr/f64" in r and "'pickle' are not imported" in r for r in reasons), reasons
        assert "arr/f64" not in back.run(1) and back.get("arr/f32", run=1).dtype == np.float32


def test_the_command_line_exports_and_imports(
    sqlite_shelf: labshelf.Shelf, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from labshelf.cli import main

    fill(sqlite_shelf)
    where = sqlite_shelf.where
    out = tmp_path / "out"
    assert main(["export", where, str(out), "--runs", "1-2"]) == 0
    assert "exported 2 runs (1..2)" in capsys.readouterr().out
    assert main(["export", where, str(out), "--runs", "1-2"]) == 1
    assert "exist already" in capsys.readouterr().err
    assert main(["export", where, str(out), "--format", "csv"]) == 1
    assert "allowed: hdf5" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["export", where, str(out), "--runs", "1-x"])
    assert exc.value.code == 2
    capsys.readouterr()
    labshelf.create(tmp_path / "back.shelf").close()
    assert main(["import", "labshelf", str(out), str(tmp_path / "back.shelf"), "--dry-run"]) == 0
    assert "would import 2 runs (1..2)" in capsys.readouterr().out
    assert main(["import", "labshelf", str(out), str(tmp_path / "back.shelf")]) == 0
    assert "imported 2 runs (1..2)" in capsys.readouterr().out
    with labshelf.open(tmp_path / "back.shelf") as back:
        assert [r.number for r in back] == [1, 2] and same(
            back.get("table", run=1), sqlite_shelf.get("table", run=1)
        )


@pytest.mark.parametrize("stop", ["1", "20", "45"])
def test_an_import_killed_midway_is_completed_by_the_next(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, spawn: Spawn, stop: str
) -> None:
    with make_shelf(backend, tmp_path, request, name="source.shelf") as source:
        fill(source)
        labshelf.export(source, tmp_path / "out", progress=False)
        whole_state = state(source)
    with make_shelf(backend, tmp_path, request) as killed:
        root = killed.root
    child = spawn("import", tmp_path / "out", root, stop)
    child.expect("loaded")
    child.send("go")
    child.expect("stopped")
    child.kill()
    child.finish()
    assert child.proc.returncode == -9
    with labshelf.open(root) as shelf:
        half = [(r.number, r.status) for r in shelf]
        assert half and half[-1][1] == "running", half
        report = labshelf_export(shelf, tmp_path / "out", progress=False)
        assert report.completed == [half[-1][0]] and not report.skipped
        assert state(shelf, imported=True) == whole_state
