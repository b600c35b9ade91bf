"""Run.put_many: many datasets of one run in one registry transaction, all or nothing.

The crash tests run this file as a script (``python tests/test_put_many.py
crash ROOT RUN``), a real writer process that kills itself with SIGKILL at a
crash point of put_many (``LABSHELF_CRASHPOINT``, see ``labshelf._faults``).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

#: The batch of the crash tests: scalars, two file-backed arrays, one inline array.
#: "old/*" names exist before (version 1), so the batch also replaces versions and files.
BIG = 40_000  # float64 elements: 320 KB, file-backed


def before_batch() -> dict[str, Any]:
    return {"old/scalar": 1.0, "old/big": np.arange(BIG, dtype=np.float64)}


def the_batch() -> dict[str, Any]:
    return {
        "new/a": 2.5,
        "new/b": 7,
        "new/text": "crash",
        "old/scalar": 3.0,
        "new/big": np.arange(BIG, dtype=np.float64) * 2.0,
        "old/big": np.arange(BIG, dtype=np.float64) + 1.0,
        "new/small": np.arange(10, dtype=np.int32),
    }


def crash_main(root: str, run_no: int) -> None:
    import labshelf

    shelf = labshelf.open(root)
    run = shelf.run(run_no)
    print("writing", flush=True)
    run.put_many(the_batch())
    print("survived", flush=True)  # the crash point was never reached


if __name__ == "__main__":
    # A child process stops here, before importing pytest (see tests/test_crash.py).
    command, *args = sys.argv[1:]
    if command != "crash":
        raise SystemExit(f"unknown command {command!r}")
    crash_main(args[0], int(args[1]))
    sys.exit(0)


import dataclasses  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

import labshelf  # noqa: E402
from _children import Spawn, spawn_fixture  # noqa: E402
from _live import Collector, wait_for  # noqa: E402
from _shelves import make_shelf  # noqa: E402
from labshelf.browse import Browser  # noqa: E402
from labshelf.browse.records import Event  # noqa: E402

spawn = spawn_fixture(__file__)


def same(got: Any, expected: Any) -> bool:
    """Exactly equal: same type, dtype, shape and values."""
    if isinstance(expected, np.ndarray):
        return (
            isinstance(got, np.ndarray)
            and got.dtype == expected.dtype
            and got.shape == expected.shape
            and bool(np.array_equal(got, expected))
        )
    return type(got) is type(expected) and got == expected


def files_under(root: Path) -> list[str]:
    """Every file in data/ and tmp/ of a shelf."""
    return sorted(
        str(p.relative_to(root))
        for folder in ("data", "tmp")
        for p in (root / folder).rglob("*")
        if p.is_file()
    )


# -- values, versions, data IDs ------------------------------------------------------------------------


def test_values_come_back_exactly_and_replacing_makes_new_versions(shelf: labshelf.Shelf) -> None:
    run = shelf.new_run("batch")
    first = {
        "fit/a": 1.5,
        "fit/b": 2,
        "fit/ok": True,
        "fit/none": None,
        "fit/c": 1 + 2j,
        "label": "scan é",
        "raw": b"\x00\x01",
        "np/f32": np.float32(0.25),
        "points": np.linspace(0, 1, 100),
        "camera/image": (np.arange(256 * 256, dtype=np.uint16) % 1000).reshape(256, 256),
    }
    refs = run.put_many(first)
    assert list(refs) == list(first) and len(refs) == len(first)
    for name, value in first.items():
        assert same(shelf.get(name, run=run.number), value), name
        ref = refs[name]
        assert ref.name == name and ref.run == run.number and ref.version == 1
        assert ref == shelf.find(name, run=run.number)
    assert refs["camera/image"].kind == "image" and refs["camera/image"].storage.files
    old_file = refs["camera/image"].storage.files[0]
    assert (shelf.root / old_file).is_file()

    again = run.put_many({"fit/a": 3.5, "camera/image": np.zeros((64, 64), dtype=np.uint16), "fit/d": 4})
    assert {name: ref.version for name, ref in again.items()} == {"fit/a": 2, "camera/image": 2, "fit/d": 1}
    assert same(shelf.get("fit/a", run=run.number), 3.5)
    assert same(shelf.get("camera/image", run=run.number), np.zeros((64, 64), dtype=np.uint16))
    assert same(shelf.get("fit/b", run=run.number), 2)  # untouched names keep their version
    assert shelf.find("fit/b", run=run.number).version == 1
    # The replaced version's file is gone once the batch committed; the new one is there.
    assert not (shelf.root / old_file).exists()
    assert (shelf.root / again["camera/image"].storage.files[0]).is_file()
    assert not shelf.orphans(older_than=0)


def test_a_batch_larger_than_one_lookup(shelf: labshelf.Shelf) -> None:
    """More names than one IN list holds (512): rows are looked up and found again chunk by chunk."""
    run = shelf.new_run("many")
    first = {f"v/{i:04d}": i * 0.5 for i in range(1200)}
    refs = run.put_many(first)
    assert len(refs) == 1200 and len({ref.id for ref in refs.values()}) == 1200
    second = {f"v/{i:04d}": i for i in range(600, 1800)}  # 600 replaced, 600 new
    refs2 = run.put_many(second)
    assert {refs2[f"v/{i:04d}"].version for i in range(600, 1200)} == {2}
    assert {refs2[f"v/{i:04d}"].version for i in range(1200, 1800)} == {1}
    assert refs2["v/0700"].id == refs["v/0700"].id
    got = {ref.name: ref for ref in shelf.datasets(run.number)}
    assert len(got) == 1800
    for name in ("v/0000", "v/0599", "v/0600", "v/1199", "v/1200", "v/1799"):
        expected = second.get(name, first.get(name))
        assert same(shelf.read(got[name]), expected), name
        assert got[name] == (refs2[name] if name in second else refs[name]), name


def test_one_data_id_for_the_whole_batch(shelf: labshelf.Shelf) -> None:
    run = shelf.new_run("channels")
    for channel in (1, 2):
        run.put_many({"pmt/counts": 10 * channel, "pmt/rate": 0.5 * channel}, data_id={"channel": channel})
    for channel in (1, 2):
        assert shelf.get("pmt/counts", run=run.number, data_id={"channel": channel}) == 10 * channel
        assert dict(shelf.find("pmt/rate", run=run.number, data_id={"channel": channel}).data_id) == {
            "channel": channel
        }
    assert len(shelf.datasets(run.number)) == 4


def test_empty_mapping_stores_nothing(shelf: labshelf.Shelf) -> None:
    run = shelf.new_run("empty")
    seq = shelf._registry.last_seq()
    assert dict(run.put_many({})) == {}
    assert shelf.datasets(run.number) == [] and shelf._registry.last_seq() == seq


@dataclasses.dataclass
class Fit:
    amplitude: float
    curve: np.ndarray


def test_a_composite_goes_in_with_its_parts(shelf: labshelf.Shelf) -> None:
    run = shelf.new_run("composite")
    curve = np.linspace(0.0, 2.0, 5000)  # file-backed part
    refs = run.put_many({"fit": Fit(1.25, curve), "chi2": 0.9})
    assert set(refs) == {"fit", "chi2"}  # the parts are datasets, not keys the caller gave
    assert {r.name for r in shelf.datasets(run.number)} == {"fit", "fit.amplitude", "fit.curve", "chi2"}
    got = shelf.get("fit", run=run.number)
    assert isinstance(got, Fit) and got.amplitude == 1.25 and same(got.curve, curve)


# -- metadata ------------------------------------------------------------------------------------


def test_display_metadata_per_name(shelf: labshelf.Shelf) -> None:
    run = shelf.new_run("meta")
    run.put_many(
        {"t_pulse": 2e-6, "counts": 5, "plain": 1.0},
        meta={
            "t_pulse": {"unit": "us", "scale": 1e-6, "precision": 2},
            "counts": {"title": "Detector/Counts"},
        },
    )
    meta = shelf.metadata("t_pulse")
    assert (meta.unit, meta.scale, meta.precision) == ("us", 1e-6, 2)
    assert shelf.metadata("counts").title == "Detector/Counts"
    assert shelf.metadata("plain").empty
    describes = [c for c in shelf._registry.changes_since(0) if c["kind"] == "describe"]
    assert sorted(c["name"] for c in describes) == ["counts", "t_pulse"]
    # Saying it again writes nothing more (one EXISTS per name, as for put).
    seq = shelf._registry.last_seq()
    run.put_many({"t_pulse": 3e-6}, meta={"t_pulse": {"unit": "us"}})
    assert [c["kind"] for c in shelf._registry.changes_since(seq)] == ["put"]
    # The same field through put and put_many lands in the same place.
    run.put("other", 1.0, unit="mV")
    run.put_many({"other2": 1.0}, meta={"other2": {"unit": "mV"}})
    assert shelf.metadata("other").unit == shelf.metadata("other2").unit == "mV"


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ({"missing": {"unit": "V"}}, "'missing', which is not among the values"),
        ({"a": {"colour": "red"}}, "meta of 'a'.*not 'colour'"),
        ({"a": {"unit": " V "}}, "meta of 'a'.*unit="),
        ({"a": {"precision": -1}}, "meta of 'a'.*precision"),
        ({"a": "V"}, "meta of 'a' takes a dict"),
        ("unit=V", "meta= takes a dict"),
    ],
)
def test_bad_metadata_is_refused_naming_the_key(shelf: labshelf.Shelf, meta: Any, match: str) -> None:
    run = shelf.new_run("bad meta")
    with pytest.raises(labshelf.InvalidValue, match=match):
        run.put_many({"a": 1.0, "b": 2.0}, meta=meta)
    assert shelf.datasets(run.number) == []
    assert shelf.metadata("a").empty


# -- all or nothing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        ({"bad name!": 1.0}, labshelf.InvalidName, "'bad name!'"),
        ({"has.dot": 1.0}, labshelf.InvalidName, "'has.dot'"),
        ({"bad": object()}, labshelf.UnsupportedValue, "put_many: 'bad': cannot store a value of type"),
        ({"bad": np.array([object()])}, labshelf.UnsupportedValue, "put_many: 'bad'"),
        ({"bad": "\ud800"}, labshelf.InvalidValue, "put_many: 'bad'"),
        ({3: 1.0}, labshelf.InvalidName, "names \\(str\\) as keys, not 3"),
    ],
)
def test_a_bad_value_in_the_middle_stores_nothing(
    shelf: labshelf.Shelf, bad: dict[Any, Any], error: type[Exception], match: str
) -> None:
    run = shelf.new_run("atomic")
    run.put("keep", 1.0)
    seq = shelf._registry.last_seq()
    files = files_under(shelf.root)
    batch: dict[Any, Any] = {"a": 1.0, "big": np.arange(50_000, dtype=np.float64), "keep": 2.0}
    batch.update(bad)
    batch["z"] = np.arange(60_000, dtype=np.float64)
    with pytest.raises(error, match=match) as caught:
        run.put_many(batch)
    assert "nothing was stored" in str(caught.value)
    assert [r.name for r in shelf.datasets(run.number)] == ["keep"]
    assert shelf.get("keep", run=run.number) == 1.0
    assert shelf._registry.last_seq() == seq
    assert files_under(shelf.root) == files  # no file written, none left


def test_bad_options_are_refused_naming_the_key(shelf: labshelf.Shelf) -> None:
    run = shelf.new_run("options")
    big = np.arange(50_000, dtype=np.float64)
    with pytest.raises(labshelf.InvalidOptions, match="put_many: 'big'"):
        run.put_many({"big": big, "a": 1.0}, hdf5_options={"big": {"compression": "zip-it"}})
    assert shelf.datasets(run.number) == []
    refs = run.put_many(
        {"big": big, "a": 1.0}, hdf5_options={"big": {"compression": "gzip", "shuffle": True}}
    )
    assert refs["big"].storage.options["compression"] == "gzip"
    assert same(shelf.get("big", run=run.number), big)


def test_a_refusal_inside_the_transaction_removes_the_files_written(shelf: labshelf.Shelf) -> None:
    """A user column's name is found taken under the registry lock, after the files were written."""
    with shelf.new_run("first"):
        pass
    shelf.annotate(1, quality=3)
    run = shelf.new_run("clash")
    with pytest.raises(labshelf.InvalidName, match="'quality' is taken by a user column"):
        run.put_many({"big": np.arange(50_000, dtype=np.float64), "a": 1.0, "quality": 2.0})
    assert shelf.datasets(run.number) == []
    assert files_under(shelf.root) == []


def test_ended_runs_and_read_only_shelves_refuse(shelf: labshelf.Shelf, backend: str) -> None:
    with shelf.new_run("done") as run:
        run.put("x", 1.0)
    with pytest.raises(labshelf.RunNotWritable, match="has ended"):
        run.put_many({"y": 2.0, "big": np.arange(50_000, dtype=np.float64)})
    assert [r.name for r in shelf.datasets(run.number)] == ["x"]
    assert files_under(shelf.root) == []
    running = shelf.new_run("running")
    if backend == "sqlite":
        with labshelf.open(shelf.root, mode="r") as reader:
            with pytest.raises(labshelf.ReadOnlyShelf):
                reader.run(running.number).put_many({"y": 2.0})
        assert shelf.datasets(running.number) == []


def test_not_a_mapping_is_refused(shelf: labshelf.Shelf) -> None:
    run = shelf.new_run("wrong")
    with pytest.raises(labshelf.InvalidValue, match="mapping of dataset name to value, not list"):
        run.put_many([("a", 1.0)])  # type: ignore[arg-type]
    with pytest.raises(labshelf.InvalidValue, match="hdf5_options= names 'nope'"):
        run.put_many({"a": 1.0}, hdf5_options={"nope": {}})


# -- the change feed, subscriptions, screens ------------------------------------------------------


def test_one_change_per_dataset_committed_together(shelf: labshelf.Shelf) -> None:
    run = shelf.new_run("feed")
    run.put("b", 0.0)
    seq = shelf._registry.last_seq()
    run.put_many({"a": 1.0, "b": 2.0, "c": np.arange(50_000, dtype=np.float64)})
    found = shelf._registry.changes_since(seq)
    assert [(c["kind"], c["name"], c["version"], c["run"]) for c in found] == [
        ("put", "a", 1, run.number),
        ("put", "b", 2, run.number),
        ("put", "c", 1, run.number),
    ]
    assert len({c["time"] for c in found}) == 1  # one transaction, one commit time


def test_a_subscription_sees_every_dataset_of_a_batch(shelf: labshelf.Shelf) -> None:
    run = shelf.new_run("live")
    names = [f"batch/v{i:02d}" for i in range(40)]
    got = Collector()
    with shelf.subscribe("batch/*", got, run=run.number):
        run.put_many({name: float(i) for i, name in enumerate(names)})
        wait_for(lambda: all(got.last(name) is not None for name in names), "every name of the batch")
        run.put_many({name: float(i) + 0.5 for i, name in enumerate(names)})
        wait_for(
            lambda: all(
                (u := got.last(name)) is not None and u.value == i + 0.5 for i, name in enumerate(names)
            ),
            "the second batch",
        )
    for i, name in enumerate(names):
        last = got.last(name)
        assert last is not None and last.kind == "put" and last.version == 2 and last.value == i + 0.5


def test_screens_get_a_dataset_event_for_every_name(shelf: labshelf.Shelf) -> None:
    """The run table's and the sidebar's events (browse.events, which server/events.py sends)."""
    browser = Browser(shelf)
    got: list[Event] = []
    done = threading.Event()

    def listener(batch: list[Event]) -> None:
        got.extend(batch)
        if any(e.kind == "finished" for e in got):
            done.set()

    stop = browser.watch(listener)
    try:
        with shelf.new_run("screens") as run:
            run.put_many({"a": 1.0, "b": 2, "img": np.zeros((32, 32), dtype=np.uint8)})
        assert done.wait(10), got
    finally:
        stop()
    datasets = [(e.run, e.name) for e in got if e.kind == "dataset"]
    assert sorted(datasets) == [(run.number, "a"), (run.number, "b"), (run.number, "img")]


# -- kill -9 inside put_many -------------------------------------------------------------------------

#: Crash points a put_many passes, in order: the first file written (not renamed), renamed;
#: every file renamed, no transaction yet; every row written, not committed; committed.
CRASH_POINTS = (
    "datastore.written",
    "datastore.renamed",
    "writer.files-written",
    "registry.before-commit",
    "registry.committed",
)
BEFORE_COMMIT = CRASH_POINTS[:4]


@pytest.mark.slow
def test_kill_at_each_crash_point_leaves_all_or_none(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, spawn: Spawn
) -> None:
    points = CRASH_POINTS if backend == "sqlite" else CRASH_POINTS[3:]
    with make_shelf(backend, tmp_path, request) as shelf:
        root = shelf.root
        runs = {}
        old_files = {}
        for point in points:
            run = shelf.new_run(point)
            runs[point] = run.number
            refs = run.put_many(before_batch())
            old_files[point] = refs["old/big"].storage.files
    children = {
        point: spawn("crash", root, runs[point], env={"LABSHELF_CRASHPOINT": point}) for point in points
    }
    for point, child in children.items():
        rc = child.finish(timeout=120)
        assert "writing" in child.lines and "survived" not in child.lines, (point, child.lines, child.stderr)
        assert rc == -signal.SIGKILL, f"{point}: rc {rc}\n{child.stderr}"

    with labshelf.open(root) as shelf:
        with shelf._registry.db.write():  # a killed client's commit has landed or failed
            pass
        for point in points:
            run = runs[point]
            refs = {r.name: r for r in shelf.datasets(run)}
            if point in BEFORE_COMMIT:
                expected, version = before_batch(), 1
                assert set(refs) == set(expected), point
            else:
                expected, version = {**before_batch(), **the_batch()}, 2
                assert set(refs) == set(expected), point
                assert refs["old/big"].version == refs["old/scalar"].version == version
            for name, value in expected.items():
                assert same(shelf.read(refs[name]), value), (point, name)
        # Nothing a row refers to is missing or damaged; what is left over is files of the batch only.
        report = shelf.verify()
        assert not [p for p in report.problems if p.kind not in ("orphan", "lost")], str(report)
        leftovers = shelf.orphans(older_than=0)
        referenced = {f for run in runs.values() for ref in shelf.datasets(run) for f in ref.storage.files}
        assert not set(leftovers) & referenced
        tmp = [f for f in leftovers if f.startswith("tmp/")]
        assert len(tmp) == ("datastore.written" in points)
        by_run: dict[int, list[str]] = {}
        for f in leftovers:
            if f.startswith("data/"):
                by_run.setdefault(int(f.split("/")[1]), []).append(Path(f).name.split(".")[0])
        expected_left = {
            # the first file of the batch renamed, the second never written
            "datastore.renamed": ["big"],
            # both new files renamed, the transaction never began or never committed
            "writer.files-written": ["big", "big"],
            "registry.before-commit": ["big", "big"],
            # committed: the replaced version's file was about to be removed
            "registry.committed": ["big"],
        }
        for point in points:
            assert sorted(by_run.get(runs[point], [])) == expected_left.get(point, []), (point, leftovers)
        if "registry.committed" in points:
            assert [f for f in leftovers if f.startswith(f"data/{runs['registry.committed']:06d}/")] == list(
                old_files["registry.committed"]
            )
        for f in leftovers:
            (shelf.root / f).unlink()
        assert shelf.verify().ok, str(shelf.verify())
        # Each run takes the batch again.
        for point in points:
            shelf.run(runs[point]).put_many(the_batch())
            assert same(shelf.get("new/big", run=runs[point]), the_batch()["new/big"])
