"""Live subscriptions: from a writer process's put to the subscriber's callback.

The writer is a separate process (this file run as ``bench_live.py writer
...``), as an experiment would be; the subscriber is this process::

    sub = shelf.subscribe("live/t", callback, run=n)     # callback: time.time() - update.value
    # writer, 1,000 times:  run.put("live/t", time.time())

Figures, on SQLite and on PostgreSQL (when LABSHELF_TEST_POSTGRES names a
server):

- **latency p50 / p99** of a small value over 1,000 puts, one every 10 ms.
  The limit is the same round trip through the bare channel labshelf rides
  on, measured in the same run, interleaved with the puts (each 10 ms slot
  holds one put and one bare message, 5 ms apart, their order swapped every
  slot): on SQLite a ``watchfiles`` watch (same step and debounce as the
  feed) woken by the writer rewriting a small file with its timestamp; on
  PostgreSQL a ``pg_notify`` from the writer to a bare ``LISTEN``
  connection carrying the timestamp as payload.
- **frame preview**: a 2048x2048 uint16 frame (8 MiB, a beam spot with shot
  noise, stored without compression) put every 0.4 s, to a subscriber asking
  for ``preview=(512, 512)``: the time from the start of the writer's put to
  the callback (the put's own write included), p50 over the frames.  The
  limit is a plain h5py read of the same frame from the file labshelf wrote.
  Also printed: the put alone, and commit -> callback.

Targets: latency p50 <= 20 ms, p99 <= 100 ms; frame preview p50 <= 100 ms.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

UPDATES = 1_000
SLOT = 0.010  # seconds per (put, bare message) pair
FRAMES = 15
FRAME_SLOT = 0.4
SIDE = 2048
PREVIEW = (512, 512)


# -- the writer process ---------------------------------------------------------------------


def _sleep_until(t: float) -> None:
    delay = t - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


def writer(mode: str, root: str, bare: str) -> None:
    """Write into the shelf at ``root`` when the parent says "go" (one line on stdin)."""
    import labshelf

    shelf = labshelf.open(root)
    run = shelf.new_run("bench-live")
    if mode == "latency":
        send = _bare_sender(bare)
        run.put("live/t", time.time())
        print(f"run {run.number}", flush=True)
        sys.stdin.readline()
        start = time.perf_counter()
        for i in range(UPDATES):
            slot = start + i * SLOT
            first, second = ("put", "bare") if i % 2 == 0 else ("bare", "put")
            for k, side in enumerate((first, second)):
                _sleep_until(slot + k * SLOT / 2)
                if side == "put":
                    run.put("live/t", time.time())
                else:
                    send(time.time())
    else:
        import numpy as np

        from labshelf.simulate import Camera

        camera = Camera(SIDE, np.random.default_rng(1))
        frames = [camera.frame(t) for t in (0.0, 1.0, 2.0, 3.0)]
        run.put("camera/image", frames[0])
        print(f"run {run.number}", flush=True)
        sys.stdin.readline()
        start = time.perf_counter()
        for i in range(FRAMES):
            _sleep_until(start + i * FRAME_SLOT)
            t0 = time.time()
            ref = run.put("camera/image", frames[(i + 1) % len(frames)])
            t1 = time.time()
            assert ref is not None
            print(json.dumps({"version": ref.version, "t0": t0, "t1": t1}), flush=True)
    run.finish()
    print("done", flush=True)
    shelf.close()


def _bare_sender(bare: str) -> Any:
    """A function sending a timestamp through the bare channel ``bare`` (a file path or a PG URL#channel)."""
    if bare.startswith("postgresql://"):
        import psycopg

        url, channel = bare.rsplit("#", 1)
        conn = psycopg.connect(url, autocommit=True)

        def notify(t: float) -> None:
            conn.execute("SELECT pg_notify(%s, %s)", (channel, repr(t)))

        return notify
    fd = os.open(bare, os.O_WRONLY | os.O_CREAT, 0o644)

    def touch(t: float) -> None:
        # One fixed-width write at offset 0: the watcher reads the old or the new stamp, never half.
        os.pwrite(fd, f"{t!r:<32}".encode(), 0)

    return touch


if __name__ == "__main__" and sys.argv[1:2] == ["writer"]:
    writer(*sys.argv[2:5])
    sys.exit(0)


# -- the subscriber side ---------------------------------------------------------------------

import subprocess  # noqa: E402
import threading  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402
from _common import Target, main, median, note, report, scratch  # noqa: E402

import labshelf  # noqa: E402
from labshelf.live import Update  # noqa: E402

BENCH = "live"
POSTGRES_URL = os.environ.get("LABSHELF_TEST_POSTGRES", "")


class Writer:
    """The writer process, its stdout read on a thread."""

    def __init__(self, mode: str, root: Path, bare: str = ""):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "writer", mode, str(root), bare or "-"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self._ready = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._ready:
                self.lines.append(line.strip())
                self._ready.notify_all()
        with self._ready:
            self.lines.append("<eof>")
            self._ready.notify_all()

    def wait_for(self, prefix: str, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        with self._ready:
            while True:
                for line in self.lines:
                    if line.startswith(prefix):
                        return line
                    if line == "<eof>":
                        raise RuntimeError(f"the writer ended before {prefix!r} (exit {self.proc.wait()})")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no {prefix!r} from the writer within {timeout} s")
                self._ready.wait(left)

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def new_shelf(backend: str, folder: Path) -> Iterator[labshelf.Shelf]:
    """A new shelf on ``backend``; a PostgreSQL schema is dropped afterwards."""
    if backend == "sqlite":
        shelf = labshelf.create(folder / "live.shelf")
        try:
            yield shelf
        finally:
            shelf.close()
        return
    schema = f"bench_live_{uuid.uuid4().hex[:10]}"
    shelf = labshelf.create(POSTGRES_URL, root=folder / "live.shelf", schema=schema)
    try:
        yield shelf
    finally:
        shelf.close()
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def bare_listener(backend: str, folder: Path, found: list[float], stop: threading.Event) -> tuple[str, Callable[[], bool]]:
    """Start the bare channel's receiving end; returns (address for the writer, a function waiting until it listens)."""
    listening = threading.Event()
    if backend == "sqlite":
        import watchfiles

        watched = folder / "bare"
        watched.mkdir()
        stamp = watched / "stamp"
        stamp.write_bytes(b" " * 32)

        def watch() -> None:
            last = ""
            listening.set()
            # The feed's own settings: wake 2 ms after the first event, at most 20 ms later.
            for _changes in watchfiles.watch(
                watched, step=2, debounce=20, rust_timeout=500, yield_on_timeout=True, stop_event=stop,
                recursive=False, raise_interrupt=False,
            ):
                now = time.time()
                text = stamp.read_text().strip()
                if text and text != last:
                    last = text
                    found.append(now - float(text))

        threading.Thread(target=watch, daemon=True).start()
        address = str(stamp)
    else:
        import psycopg

        channel = f"bench_live_{uuid.uuid4().hex[:8]}"
        conn = psycopg.connect(POSTGRES_URL, autocommit=True)
        conn.execute(f'LISTEN "{channel}"')

        def listen() -> None:
            listening.set()
            with conn:
                while not stop.is_set():
                    for notify in conn.notifies(timeout=0.5):
                        found.append(time.time() - float(notify.payload))

        threading.Thread(target=listen, daemon=True).start()
        address = f"{POSTGRES_URL}#{channel}"
    return address, lambda: listening.wait(10)


def short(backend: str) -> str:
    """The backend's name in a figure (figures are 22 characters wide)."""
    return "pg" if backend == "postgres" else backend


def latency(backend: str) -> None:
    limit_name = "bare watchfiles" if backend == "sqlite" else "bare NOTIFY"
    with scratch(BENCH) as folder, new_shelf(backend, folder) as shelf:
        bare: list[float] = []
        lab: list[float] = []
        calls = [0]
        stop = threading.Event()
        address, listening = bare_listener(backend, folder, bare, stop)
        listening()

        def callback(update: Update) -> None:
            now = time.time()
            calls[0] += 1
            if update.kind != "value":
                lab.append(now - update.value)

        writer = Writer("latency", shelf.root, address)
        try:
            run = int(writer.wait_for("run ").split()[1])
            with shelf.subscribe("live/t", callback, run=run):
                deadline = time.monotonic() + 30
                while calls[0] == 0 and time.monotonic() < deadline:
                    time.sleep(0.01)
                writer.go()
                writer.wait_for("done", timeout=UPDATES * SLOT * 10 + 60)
                time.sleep(0.5)  # the last deliveries
        finally:
            stop.set()
            writer.close()
    note(f"{backend}: {UPDATES:,} puts of time.time(), one per {SLOT * 1e3:.0f} ms; {len(lab):,} callbacks "
         f"(fewer: merged when behind); bare channel {len(bare):,} messages received")
    if not lab or not bare:
        note(f"{backend}: nothing measured (callbacks {len(lab)}, bare {len(bare)})")
        return
    for q, bound in ((50, 0.020), (99, 0.100)):
        report(
            BENCH, f"latency p{q} {short(backend)}", float(np.percentile(lab, q)), "s",
            limit=(limit_name, float(np.percentile(bare, q))),
            targets=[Target("value", "<=", bound, "s")], samples=len(lab), limit_samples=len(bare),
        )


def frame_preview(backend: str) -> None:
    with scratch(BENCH) as folder, new_shelf(backend, folder) as shelf:
        arrived: dict[int, tuple[float, float, tuple[int, ...]]] = {}

        def callback(update: Update) -> None:
            arrived[update.version or 0] = (time.time(), update.time, tuple(update.value.shape))

        writer = Writer("frames", shelf.root)
        try:
            run = int(writer.wait_for("run ", timeout=300).split()[1])
            with shelf.subscribe("camera/image", callback, run=run, preview=PREVIEW):
                deadline = time.monotonic() + 30
                while not arrived and time.monotonic() < deadline:
                    time.sleep(0.01)
                writer.go()
                writer.wait_for("done", timeout=FRAMES * FRAME_SLOT * 10 + 60)
                time.sleep(1.0)
            puts = [json.loads(line) for line in writer.lines if line.startswith("{")]
        finally:
            writer.close()
        matched = [(p, arrived[p["version"]]) for p in puts if p["version"] in arrived]
        shapes = {shape for _, (_, _, shape) in matched}
        total = [got - p["t0"] for p, (got, _, _) in matched]
        commit = [got - committed for _, (got, committed, _) in matched]
        put = [p["t1"] - p["t0"] for p in puts]
        # The limit: read the last frame whole with h5py from the file labshelf wrote.
        ref = shelf.find("camera/image", run=run)
        path = shelf.root / ref.storage.files[0]
        reads, means = [], []
        for _ in range(max(len(matched), 5)):
            start = time.perf_counter()
            with h5py.File(path, "r") as f:
                data = next(d for d in _datasets(f) if d.shape == (SIDE, SIDE))[()]
            reads.append(time.perf_counter() - start)
            factor = SIDE // PREVIEW[0]
            data.reshape(PREVIEW[0], factor, PREVIEW[1], factor).mean(axis=(1, 3))
            means.append(time.perf_counter() - start)
    note(f"{backend}: {len(puts)} frames of {SIDE}x{SIDE} uint16 (8 MiB), one per {FRAME_SLOT} s; "
         f"{len(matched)} delivered as their own callback, preview shape {sorted(shapes)}; "
         f"h5py read + numpy block mean to {PREVIEW[0]}x{PREVIEW[1]}: {median(means) * 1e3:.1f} ms")
    if not matched:
        return
    name = short(backend)
    report(
        BENCH, f"frame preview {name}", median(total), "s", limit=("h5py read", median(reads)),
        targets=[Target("value", "<=", 0.100, "s")], samples=len(total),
    )
    report(BENCH, f"frame put {name}", median(put), "s")
    report(BENCH, f"commit->preview {name}", median(commit), "s", limit=("h5py read", median(reads)))


def _datasets(group: h5py.Group) -> Iterator[h5py.Dataset]:
    for item in group.values():
        if isinstance(item, h5py.Dataset):
            yield item
        elif isinstance(item, h5py.Group):
            yield from _datasets(item)


def body() -> None:
    backends = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])
    if not POSTGRES_URL:
        note("PostgreSQL skipped: set LABSHELF_TEST_POSTGRES=postgresql://postgres@127.0.0.1:5432/test to measure it")
    for backend in backends:
        latency(backend)
    for backend in backends:
        frame_preview(backend)


if __name__ == "__main__":
    main(BENCH, body)
