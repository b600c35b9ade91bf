"""Live subscriptions: values rebuilt from deltas, coalescing, patterns, the async change feed.

Writers here are a second Shelf object on the same shelf (its own
connections, as another process would have) or a real subprocess; the
reliability tests under load are in test_live_reliability.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import labshelf
from _live import LIVE_THREADS, Collector, live_threads, wait_for
from labshelf.live import Update


def writer(shelf: labshelf.Shelf) -> labshelf.Shelf:
    return labshelf.open(shelf.root)


def test_appends_arrive_as_deltas_and_rebuild_the_value(shelf: labshelf.Shelf) -> None:
    with shelf.new_run("scan") as run:
        run.put("scan/counts", np.arange(3.0))
        got = Collector()
        with shelf.subscribe("scan/counts", got, run=run.number):
            wait_for(lambda: got.last("scan/counts") is not None)
            first = got.updates[0]
            assert first.kind == "value" and first.reset and list(first.value) == [0.0, 1.0, 2.0]
            other = writer(shelf)
            try:
                for i in range(3, 30):
                    other.run(run.number).append("scan/counts", float(i))
            finally:
                other.close()
            wait_for(lambda: (u := got.last("scan/counts")) is not None and len(u.value) == 30)
            appends = [u for u in got.updates if u.kind == "append"]
            assert appends and all(not u.reset for u in appends)
            # The deltas add up to exactly the rows appended, in order.
            rows = np.concatenate([u.delta for u in appends])
            assert list(rows) == [float(i) for i in range(3, 30)]
            final = got.last("scan/counts")
            assert final is not None
            np.testing.assert_array_equal(final.value, shelf.get("scan/counts", run=run.number))
            assert not final.value.flags.writeable


def test_a_mutate_patches_the_region(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("grid", np.zeros((64, 64)), hdf5_options={"chunks": (16, 16)})
        got = Collector()
        with shelf.subscribe("grid", got, run=run.number):
            wait_for(lambda: got.last("grid") is not None)
            run.mutate("grid", np.s_[5, 10:20], 7.0)
            wait_for(lambda: (u := got.last("grid")) is not None and u.kind == "mutate")
            update = got.last("grid")
            assert update is not None and not update.reset
            assert update.index == (5, slice(10, 20, None))
            np.testing.assert_array_equal(update.value, shelf.get("grid", run=run.number))


def test_a_name_that_appears_later_is_delivered_and_broadcasts_arrive(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        got = Collector()
        with shelf.subscribe(["pmt/*", "later"], got, run=run.number):
            run.put("later", 5)
            run.put("pmt/live", 1.25, persist=False)
            wait_for(lambda: got.last("later") is not None and got.last("pmt/live") is not None)
    later, live = got.last("later"), got.last("pmt/live")
    assert later is not None and later.value == 5
    assert live is not None and live.kind == "broadcast" and live.value == 1.25 and live.ref is None


def test_latest_follows_new_runs_started_by_another_process(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("rate", 1.0)
    got = Collector()
    code = (
        "import sys, labshelf\n"
        "s = labshelf.open(sys.argv[1])\n"
        "with s.new_run('next') as r:\n"
        "    r.put('rate', 2.0)\n"
        "    r.put('rate', 3.0)\n"
    )
    with shelf.subscribe("rate", got, run="latest"):
        wait_for(lambda: got.last("rate") is not None)
        subprocess.run([sys.executable, "-c", code, str(shelf.root)], check=True, timeout=60)
        wait_for(lambda: (u := got.last("rate")) is not None and u.value == 3.0)
    assert got.updates[0].run == run.number and got.updates[0].value == 1.0
    final = got.last("rate")
    assert final is not None and final.run == run.number + 1


def test_a_slow_callback_coalesces_and_the_last_value_arrives(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("counter", 0)
        seen: list[Update] = []

        def slow(update: Update) -> None:
            time.sleep(0.05)
            seen.append(update)

        with shelf.subscribe("counter", slow, run=run.number, max_rate=50):
            for i in range(1, 201):
                run.put("counter", i)
            wait_for(lambda: bool(seen) and seen[-1].value == 200, timeout=20)
    assert len(seen) < 100  # 200 puts, far fewer calls
    # Merged, not queued: most changes are counted in the frames of an update
    # (the rest were already read with a newer version by an earlier one).
    assert sum(u.frames for u in seen) > 100
    assert [u.value for u in seen] == sorted(u.value for u in seen)


def test_image_previews_and_the_full_frame_on_demand(shelf: labshelf.Shelf) -> None:
    frame = np.random.default_rng(0).integers(0, 4000, (1024, 768)).astype(np.uint16)
    with shelf.new_run() as run:
        got = Collector()
        with shelf.subscribe("camera/*", got, run=run.number, preview=(256, 256)):
            run.put("camera/image", frame)
            wait_for(lambda: got.last("camera/image") is not None)
    update = got.last("camera/image")
    assert update is not None
    assert update.value.shape[0] <= 256 and update.value.shape[1] <= 256
    np.testing.assert_array_equal(update.full(), frame)


@pytest.mark.parametrize("pattern", ["scan/[ab", "bad pattern", "", "a.b"])
def test_malformed_patterns_are_refused(shelf: labshelf.Shelf, pattern: str) -> None:
    with pytest.raises(labshelf.InvalidName, match="pattern"):
        shelf.subscribe(pattern, lambda u: None)


BAD_SUBSCRIBE_ARGUMENTS = [
    # (names, keyword arguments, error class, phrase); the callback is a lambda unless given.
    (5, {}, labshelf.InvalidName, "names= takes a dataset name"),
    (None, {}, labshelf.InvalidName, "names= takes"),
    (b"scan/x", {}, labshelf.InvalidName, "names= takes"),
    ({"scan/x": 1}, {}, labshelf.InvalidName, "names= takes"),
    ([], {}, labshelf.InvalidName, "at least one"),
    ([5], {}, labshelf.InvalidName, "not a dataset name pattern"),
    (["x", None], {}, labshelf.InvalidName, "not a dataset name pattern"),
    ("x", {"callback": None}, labshelf.InvalidOptions, "callable"),
    ("x", {"callback": "print"}, labshelf.InvalidOptions, "callable"),
    ("x", {"run": "newest"}, labshelf.InvalidOptions, "run="),
    ("x", {"run": 0}, labshelf.InvalidOptions, "run="),
    ("x", {"run": -3}, labshelf.InvalidOptions, "run="),
    ("x", {"run": True}, labshelf.InvalidOptions, "run="),
    ("x", {"run": 1.0}, labshelf.InvalidOptions, "run="),
    ("x", {"run": 10**30}, labshelf.InvalidOptions, "run="),
    ("x", {"run": ["latest"]}, labshelf.InvalidOptions, "run="),
    ("x", {"max_rate": 0}, labshelf.InvalidOptions, "max_rate"),
    ("x", {"max_rate": -1.0}, labshelf.InvalidOptions, "max_rate"),
    ("x", {"max_rate": float("nan")}, labshelf.InvalidOptions, "max_rate"),
    ("x", {"max_rate": float("inf")}, labshelf.InvalidOptions, "max_rate"),
    ("x", {"max_rate": "10"}, labshelf.InvalidOptions, "max_rate"),
    ("x", {"max_rate": True}, labshelf.InvalidOptions, "max_rate"),
    ("x", {"preview": 256}, labshelf.InvalidOptions, "preview"),
    ("x", {"preview": (256,)}, labshelf.InvalidOptions, "preview"),
    ("x", {"preview": (256, 0)}, labshelf.InvalidOptions, "preview"),
    ("x", {"preview": (256.0, 256)}, labshelf.InvalidOptions, "preview"),
    ("x", {"preview": "ab"}, labshelf.InvalidOptions, "preview"),
    ("x", {"poll": 0}, labshelf.InvalidOptions, "poll"),
    ("x", {"poll": -0.5}, labshelf.InvalidOptions, "poll"),
    ("x", {"poll": float("inf")}, labshelf.InvalidOptions, "poll"),
    ("x", {"poll": "1"}, labshelf.InvalidOptions, "poll"),
]


@pytest.mark.parametrize(("names", "kwargs", "error", "phrase"), BAD_SUBSCRIBE_ARGUMENTS)
def test_bad_arguments_are_refused(
    shelf: labshelf.Shelf, names: Any, kwargs: dict[str, Any], error: type[Exception], phrase: str
) -> None:
    kwargs = dict(kwargs)  # the table is shared by both registries' runs
    callback = kwargs.pop("callback", lambda u: None)
    with pytest.raises(error, match=phrase) as caught:
        shelf.subscribe(names, callback, **kwargs)
    assert isinstance(caught.value, labshelf.ShelfError) and "\n" not in str(caught.value)
    # Nothing started, and the shelf still subscribes.
    assert live_threads() == []
    with shelf.subscribe("x", lambda u: None):
        pass


def test_numpy_integers_and_numbers_are_accepted(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("x", 1.5)
    got = Collector()
    with shelf.subscribe(np.array(["x"]), got, run=np.int64(run.number), max_rate=np.float32(50),
                         preview=(np.int32(8), 8), poll=np.float64(0.2)):
        wait_for(lambda: got.last("x") is not None)
    update = got.last("x")
    assert update is not None and update.value == 1.5 and update.run == run.number


def test_closing_stops_every_thread(shelf: labshelf.Shelf) -> None:
    assert live_threads() == []
    subs = [shelf.subscribe("x", lambda u: None) for _ in range(3)]
    assert set(live_threads()) == set(LIVE_THREADS)
    subs[0].close()
    assert live_threads().count("labshelf-subscription") == 2
    shelf.close()
    assert live_threads() == []
    assert all(s.closed for s in subs)


def test_outside_a_kernel_callbacks_run_on_the_worker_thread(shelf: labshelf.Shelf) -> None:
    threads: list[str] = []
    with shelf.new_run() as run, shelf.subscribe("v", lambda u: threads.append(threading.current_thread().name), run=run.number):
        run.put("v", 1)
        wait_for(lambda: bool(threads))
    assert threads == ["labshelf-subscription"]


def test_in_a_jupyter_kernel_callbacks_run_on_the_kernel_loop(tmp_path: Path) -> None:
    # A real kernel (this venv's Python) runs the cells; the callback must come on
    # the kernel's main thread, between cells, never on a background thread.
    import nbformat
    from nbclient import NotebookClient

    path = tmp_path / "k.shelf"
    labshelf.create(path).close()
    cells = [
        f"import threading, labshelf\nshelf = labshelf.open({str(path)!r})\nrun = shelf.new_run()\nseen = []\n"
        "sub = shelf.subscribe('v', lambda u: seen.append((threading.current_thread() is threading.main_thread(), u.value)), run=run.number)",
        "run.put('v', 41)\nrun.put('v', 42)",
        "import asyncio\nfor _ in range(200):\n    if seen and seen[-1][1] == 42:\n        break\n    await asyncio.sleep(0.02)\n"
        "print('SEEN', seen)\nassert seen and all(on_main for on_main, _ in seen), seen\nassert seen[-1][1] == 42\n"
        "sub.close(); run.finish(); shelf.close()",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    printed = "".join(o.get("text", "") for o in notebook.cells[2].outputs)
    assert "SEEN [" in printed and "(True, 42)" in printed


def test_the_async_change_feed_resumes_from_a_sequence_number(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("a", 1)
        mark = shelf.last_seq()
        run.put("b", 2)
        run.append("c", 1.0)

    async def collect(since: int) -> list[Any]:
        found = []
        async for change in shelf.changes(names=["b", "c"], since=since):
            found.append(change)
            if len(found) == 2:
                break
        return found

    # In a thread of its own: another test's event loop may be marked running on this one.
    found: list[Any] = []
    worker = threading.Thread(target=lambda: found.extend(asyncio.run(collect(mark))))
    worker.start()
    worker.join(timeout=60)
    assert [(c.kind, c.name) for c in found] == [("put", "b"), ("put", "c")]
    assert found[0].seq > mark and found[1].seq > found[0].seq


def test_values_handed_out_earlier_never_change(shelf: labshelf.Shelf) -> None:
    # The subscription patches and grows its own copy; what a callback got
    # before stays as it was (a plot may keep it).
    with shelf.new_run() as run:
        run.put("trace", np.zeros(4))
        got = Collector()
        with shelf.subscribe("trace", got, run=run.number):
            wait_for(lambda: got.last("trace") is not None)
            first = got.updates[0].value.copy()
            run.mutate("trace", 1, 5.0)
            wait_for(lambda: (u := got.last("trace")) is not None and u.kind == "mutate")
            for i in range(200):
                run.append("trace", float(i))
            wait_for(lambda: (u := got.last("trace")) is not None and len(u.value) == 204)
    np.testing.assert_array_equal(got.updates[0].value, first)
    mutated = next(u for u in got.updates if u.kind == "mutate")
    np.testing.assert_array_equal(mutated.value, [0.0, 5.0, 0.0, 0.0])
    final = got.last("trace")
    assert final is not None
    np.testing.assert_array_equal(final.value, shelf.get("trace", run=run.number))


def test_a_delete_reaches_subscribers(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("doomed", 1.5)
        got = Collector()
        with shelf.subscribe("doomed", got, run=run.number):
            wait_for(lambda: got.last("doomed") is not None)
            run.delete("doomed")
            wait_for(lambda: (u := got.last("doomed")) is not None and u.kind == "delete")
            run.put("doomed", 2.5)
            wait_for(lambda: (u := got.last("doomed")) is not None and u.value == 2.5)
    update = got.last("doomed")
    assert update is not None and update.kind == "value"  # a new dataset: its first value again
    assert [u.kind for u in got.updates] == ["value", "delete", "value"]


# -- display metadata ---------------------------------------------------------------------------------


def test_metadata_changes_of_watched_names_reach_on_describe_from_another_process(shelf: labshelf.Shelf) -> None:
    from labshelf.registry.meta import DisplayMeta

    with shelf.new_run() as run:
        run.put("delay", 1e-12)
        run.put("other", 1.0)
    got = Collector()
    described: list[DisplayMeta] = []
    lock = threading.Lock()

    def on_describe(meta: DisplayMeta) -> None:
        with lock:
            described.append(meta)

    code = (
        "import sys, labshelf\n"
        "s = labshelf.open(sys.argv[1])\n"
        "s.describe('other', unit='V')\n"  # not watched: never delivered
        "s.describe('delay', unit='ps', scale=1e-12, title='Pump delay')\n"
        "s.describe('delay', data_id={'line': 2}, precision=3)\n"
        "with s.new_run('next') as r:\n"
        "    r.put('delay', 2e-12, unit='fs', scale=1e-15)\n"  # a put that carries new metadata
    )
    with shelf.subscribe("delay", got, run="latest", on_describe=on_describe) as subscription:
        wait_for(lambda: got.last("delay") is not None)
        subprocess.run([sys.executable, "-c", code, str(shelf.root)], check=True, timeout=60)
        wait_for(lambda: (u := got.last("delay")) is not None and u.value == 2e-12, "the put of run 2")
        wait_for(lambda: any(m.unit == "fs" for m in described), "the metadata the put carried")
        assert subscription.errors == []
    names = {m.name for m in described}
    assert names == {"delay"}
    whole = [m for m in described if not m.data_id]
    assert whole[-1] == DisplayMeta("delay", unit="fs", scale=1e-15, title="Pump delay")
    line = [m for m in described if dict(m.data_id) == {"line": 2}]
    # A data ID's own fields over the name's, as shelf.metadata gives them.
    assert line and line[-1].precision == 3 and line[-1].title == "Pump delay"
    # Metadata changes are not value updates: the value callback saw values only.
    assert all(u.name == "delay" and u.kind in ("value", "put") for u in got.updates)
    assert shelf.get("delay", run=1) == 1e-12


def test_without_on_describe_metadata_changes_deliver_nothing(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("delay", 1.0)
        got = Collector()
        with shelf.subscribe("delay", got, run=run.number) as subscription:
            wait_for(lambda: got.last("delay") is not None)
            other = writer(shelf)
            try:
                other.describe("delay", unit="ps")
                other.run(run.number).put("delay", 2.0)
            finally:
                other.close()
            wait_for(lambda: (u := got.last("delay")) is not None and u.value == 2.0)
            assert [u.value for u in got.updates] == [1.0, 2.0] and subscription.errors == []
    with pytest.raises(labshelf.errors.InvalidOptions, match="on_describe= takes a callable"):
        shelf.subscribe("delay", got, on_describe="print")
