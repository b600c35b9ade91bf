"""A writer that behaves like a running experiment (``labshelf simulate PATH``).

It starts a new run every few seconds and, while the run lasts, writes what
a real set-up writes: scan points appended one by one (``scan/x``,
``scan/counts``), camera frames of a moving beam spot with shot noise
(``camera/image``, gzip-compressed), a stored counter (``pmt/rate``) and a
broadcast-only one (``pmt/live``, ``persist=False``).  It is the live
source for demos, the quickstart notebook, the live tests and benchmarks.

Stopping is cooperative: :meth:`Simulator.stop` (called by the command's
SIGINT/SIGTERM handlers) only sets a flag, checked between writes, so a
signal never lands inside a registry transaction and the current run ends
properly as ``aborted``, with its scan arrays of equal length.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ShelfError

if TYPE_CHECKING:
    from .run import Run
    from .shelf import Shelf

__all__ = ["EXPERIMENT", "Camera", "RunReport", "Simulator"]

#: The experiment name of every simulated run.
EXPERIMENT = "simulate"
#: Counters (``pmt/rate``, ``pmt/live``) per second, whatever the scan rate.
COUNTER_RATE = 10.0
#: Mean dark level of the camera, in counts.
DARK = 100.0
#: Pre-drawn frames of dark shot noise (see :class:`Camera`).
NOISE_BANK = 3
#: How the camera frames are stored: fast gzip, which still shrinks a noisy uint16 frame ~2x.
IMAGE_OPTIONS = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
#: Scan positions swept by each run.
SCAN_RANGE = (-5.0, 5.0)


@dataclass(frozen=True)
class RunReport:
    """What one simulated run wrote."""

    number: int
    status: str
    points: int
    frames: int
    counters: int
    seconds: float
    reason: str | None = None

    def line(self) -> str:
        """The one line the command prints per run."""
        why = f" ({self.reason})" if self.reason else ""
        return (
            f"run {self.number} {self.status}{why}: {self.points} points, {self.frames} frames, "
            f"{self.counters} counters in {self.seconds:.1f} s"
        )


class Camera:
    """Frames of a Gaussian beam spot drifting on a Lissajous path, with shot noise (uint16).

    A fresh full-frame Poisson draw costs ~90 ms at 1024x1024, more than a
    frame period, so the dark level's noise comes from a few frames drawn
    once, each frame rolled by a random offset; the spot's own shot noise is
    drawn fresh in a window around it, where the signal is.

    Parameters
    ----------
    size
        Side of the square frames in pixels.
    rng
        A ``numpy.random.Generator``.
    """

    def __init__(self, size: int, rng: Any):
        import numpy as np

        self.size = size
        self.rng = rng
        self.bank = rng.poisson(DARK, size=(NOISE_BANK, size, size)).astype(np.uint16)
        self.width = max(size / 40.0, 1.5)
        self.peak = 3000.0

    def frame(self, t: float) -> Any:
        """The frame at ``t`` seconds (the spot's position on its path): a new uint16 array."""
        import numpy as np

        size, rng = self.size, self.rng
        shift = (int(rng.integers(size)), int(rng.integers(size)))
        image = np.roll(self.bank[int(rng.integers(NOISE_BANK))], shift, axis=(0, 1))
        x0 = size / 2 + 0.3 * size * math.sin(2 * math.pi * t / 7.0)
        y0 = size / 2 + 0.25 * size * math.sin(2 * math.pi * t / 11.0)
        half = int(4 * self.width) + 1
        r0, r1 = max(int(y0) - half, 0), min(int(y0) + half + 1, size)
        c0, c1 = max(int(x0) - half, 0), min(int(x0) + half + 1, size)
        y, x = np.mgrid[r0:r1, c0:c1].astype(np.float32)
        expected = self.peak * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * self.width**2))
        image[r0:r1, c0:c1] += rng.poisson(expected).astype(np.uint16)
        return image


class Simulator:
    """Writes simulated runs into ``shelf`` until stopped or out of runs/time.

    Parameters
    ----------
    shelf
        A shelf opened for writing.
    rate
        Scan points appended per second.
    image
        Side of the square camera frames in pixels (0: no camera).
    frame_rate
        Camera frames per second (0: no camera).
    run_length
        Seconds each run lasts.
    runs
        Stop after this many runs (None: no limit).
    duration
        Stop after this many seconds; the run in progress then ends as
        ``finished`` (None: no limit).
    seed
        Seed of the random numbers (noise, scan counts).
    report
        Called with a :class:`RunReport` as each run ends.
    """

    def __init__(
        self,
        shelf: Shelf,
        *,
        rate: float = 20.0,
        image: int = 1024,
        frame_rate: float = 4.0,
        run_length: float = 5.0,
        runs: int | None = None,
        duration: float | None = None,
        seed: int | None = None,
        report: Callable[[RunReport], None] | None = None,
    ):
        check_options(
            rate=rate, image=image, frame_rate=frame_rate, run_length=run_length, runs=runs, duration=duration
        )
        self.shelf = shelf
        self.rate = float(rate)
        self.image = int(image)
        self.frame_rate = float(frame_rate) if image else 0.0
        self.run_length = float(run_length)
        self.runs = runs
        self.duration = duration
        self.seed = seed
        self.report = report
        self._stop_reason: str | None = None

    def stop(self, reason: str = "stopped") -> None:
        """Ask the simulator to end the current run as ``aborted`` and return.

        Only sets a flag (safe from a signal handler or another thread); the
        run loop checks it between writes.
        """
        self._stop_reason = reason

    def run(self) -> list[RunReport]:
        """Write runs until stopped, out of runs or out of time; return what each run wrote."""
        import numpy as np

        rng = np.random.default_rng(self.seed)
        camera = Camera(self.image, rng) if self.frame_rate > 0 else None
        started = time.monotonic()
        deadline = math.inf if self.duration is None else started + self.duration
        reports: list[RunReport] = []
        while self._stop_reason is None and time.monotonic() < deadline:
            if self.runs is not None and len(reports) >= self.runs:
                break
            report = self._one_run(rng, camera, started, deadline)
            reports.append(report)
            if self.report is not None:
                self.report(report)
        return reports

    def _one_run(self, rng: Any, camera: Camera | None, started: float, deadline: float) -> RunReport:
        points = max(int(round(self.rate * self.run_length)), 1)
        params = {"rate": self.rate, "points": points, "image": self.image if camera else 0, "seed": self.seed}
        with self.shelf.new_run(experiment=EXPERIMENT, params=params) as run:
            t0 = time.monotonic()
            end = min(t0 + self.run_length, deadline)
            counts = {"points": 0, "frames": 0, "counters": 0}
            scan_period = 1.0 / self.rate
            frame_period = 1.0 / self.frame_rate if camera else math.inf
            counter_period = 1.0 / COUNTER_RATE
            next_scan, next_frame, next_counter = t0, t0, t0
            while self._stop_reason is None:
                now = time.monotonic()
                if now >= end or counts["points"] >= points:
                    break
                due = min(next_scan, next_frame, next_counter, end)
                if due > now:
                    # A signal interrupts nothing here: the handler sets the flag and
                    # the sleep resumes (PEP 475), so the longest wait is one period.
                    time.sleep(due - now)
                    continue
                if now >= next_scan:
                    self._scan_point(run, rng, counts["points"], points)
                    counts["points"] += 1
                    next_scan = _next(next_scan, scan_period, now)
                if camera is not None and now >= next_frame:
                    run.put("camera/image", camera.frame(now - started), hdf5_options=IMAGE_OPTIONS)
                    counts["frames"] += 1
                    next_frame = _next(next_frame, frame_period, now)
                if now >= next_counter:
                    self._counters(run, rng, now - started)
                    counts["counters"] += 1
                    next_counter = _next(next_counter, counter_period, now)
            reason = self._stop_reason
            status = "aborted" if reason else "finished"
            run.finish(status, reason)
            return RunReport(
                run.number, status, counts["points"], counts["frames"], counts["counters"],
                time.monotonic() - t0, reason,
            )

    @staticmethod
    def _scan_point(run: Run, rng: Any, index: int, points: int) -> None:
        lo, hi = SCAN_RANGE
        x = lo + (hi - lo) * index / max(points - 1, 1)
        signal = 800.0 * math.cos(2.0 * x) ** 2 * math.exp(-0.02 * x * x) + 50.0
        # Both arrays grow by one row per point; a stop request waits for the pair.
        run.append("scan/x", x)
        run.append("scan/counts", int(rng.poisson(signal)))

    @staticmethod
    def _counters(run: Run, rng: Any, t: float) -> None:
        rate = 1.0e4 * (1.0 + 0.2 * math.sin(2 * math.pi * t / 13.0))
        run.put("pmt/rate", float(rng.normal(rate, math.sqrt(rate))))
        run.put("pmt/live", float(rng.normal(rate, math.sqrt(rate))), persist=False)


def _next(scheduled: float, period: float, now: float) -> float:
    """The next due time; a writer that fell behind skips ahead instead of bursting to catch up."""
    nxt = scheduled + period
    return nxt if nxt > now - period else now + period


def check_options(
    *,
    rate: float,
    image: int,
    frame_rate: float,
    run_length: float,
    runs: int | None,
    duration: float | None,
) -> None:
    """Raise ShelfError naming the first option out of its range."""
    if not (math.isfinite(rate) and 0 < rate <= 10_000):
        raise ShelfError(f"--rate must be between 0 and 10000 points per second (excluded 0), not {rate:g}")
    if image != 0 and not 16 <= image <= 8192:
        raise ShelfError(f"--image must be 0 (no camera) or a frame side of 16 to 8192 pixels, not {image}")
    if not (math.isfinite(frame_rate) and 0 <= frame_rate <= 100):
        raise ShelfError(f"--frame-rate must be between 0 (no camera) and 100 frames per second, not {frame_rate:g}")
    if not (math.isfinite(run_length) and run_length > 0):
        raise ShelfError(f"--run-length must be a positive number of seconds, not {run_length:g}")
    if runs is not None and runs < 1:
        raise ShelfError(f"--runs must be at least 1, not {runs}")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise ShelfError(f"--duration must be a positive number of seconds, not {duration:g}")
