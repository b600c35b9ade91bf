"""Helpers shared by the benchmarks: timing, temp folders, printed lines, JSON.

Every figure is printed beside its *limit*, measured in the same process on
the same machine a moment before or after (plain h5py, a hand-written SQL
query, a bare interpreter), as a ratio, and beside its target::

    big array put          14.2 ms   plain h5py          6.5 ms   ratio 2.18   target ratio <= 1.25   MISSED

The ratio is always "how many times the cost of the limit": labshelf time /
limit time, or limit rate / labshelf rate for throughputs, so 1.00 means as
fast as the limit and larger is slower.  A missed target is printed as MISSED;
nothing here ever fails or raises because of a number.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
#: Scratch space: on the repository's own disk (not a tmpfs /tmp), git-ignored.
#: Override with LABSHELF_BENCH_TMP to measure another filesystem.
SCRATCH = Path(os.environ.get("LABSHELF_BENCH_TMP", REPO / ".bench"))

now = time.perf_counter


# -- timing -------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of ``fn`` takes (perf_counter)."""
    start = now()
    fn()
    return now() - start


def repeat(fn: Callable[[int], Any], repeats: int, warmup: int = 1) -> list[float]:
    """Call ``fn(i)`` ``warmup`` times untimed, then ``repeats`` times timed.

    ``fn`` gets the call index (warm-up calls get negative ones) so that each
    call can write a fresh name.  The garbage collector runs as it would for
    a user (see :func:`interleaved`).
    """
    for i in range(-warmup, 0):
        fn(i)
    gc.collect()
    times = []
    for i in range(repeats):
        start = now()
        fn(i)
        times.append(now() - start)
    return times


def interleaved(
    fns: dict[str, Callable[..., Any]],
    repeats: int,
    warmup: int = 2,
    *,
    prepare: dict[str, Callable[[int], Any]] | None = None,
) -> dict[str, list[float]]:
    """Time several functions alternately (a, b, b, a, a, b, ...); return their times.

    Alternating, and swapping which goes first each round, spreads machine
    noise (other processes, disk write-back, CPU clock, garbage collections)
    evenly over every side of a comparison instead of charging it to
    whichever ran last.  Each ``fns[name](i)`` gets the round index
    (negative for warm-up rounds); if ``prepare[name]`` exists, it is called
    untimed first and its result passed on: ``fns[name](i, prepared)``.

    The garbage collector stays on: code that makes hundreds of thousands of
    objects (the run table) pays for the collections it triggers, as it
    does in a notebook, and that cost belongs in the figure.
    """
    prepare = prepare or {}
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    gc.collect()
    for i in range(-warmup, repeats):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            args = (i, prepare[name](i)) if name in prepare else (i,)
            start = now()
            fns[name](*args)
            elapsed = now() - start
            if i >= 0:
                times[name].append(elapsed)
    return times


def median(times: list[float]) -> float:
    return statistics.median(times)


def best(times: list[float]) -> float:
    return min(times)


def spread(times: list[float]) -> str:
    """``min..max`` of a list of seconds, for the JSON record."""
    return f"{fmt_time(min(times)).strip()}..{fmt_time(max(times)).strip()}"


# -- scratch folders --------------------------------------------------------------------


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A new empty folder under SCRATCH, removed afterwards (even on error)."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=SCRATCH))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            SCRATCH.rmdir()  # only if no other benchmark is using it


# -- formatting ---------------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:7.1f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:7.1f} ms"
    return f"{seconds:7.3f} s "


def fmt_rate(per_second: float, unit: str) -> str:
    return f"{per_second:,.0f} {unit}"


def fmt_value(value: float, unit: str) -> str:
    if unit == "s":
        return fmt_time(value)
    if unit.endswith("/s"):
        return fmt_rate(value, unit)
    return f"{value:g} {unit}"


# -- results ----------------------------------------------------------------------------------


@dataclass
class Target:
    """One goal: ``what`` is "value" (the figure itself) or "ratio"; ``op`` is "<=" or ">="."""

    what: str
    op: str
    bound: float
    unit: str = ""

    def met(self, value: float, ratio: float | None) -> bool | None:
        x = value if self.what == "value" else ratio
        if x is None:
            return None
        return x <= self.bound if self.op == "<=" else x >= self.bound

    def text(self) -> str:
        if self.what == "ratio":
            return f"ratio {self.op} {self.bound:.2f}"
        if self.unit == "s":
            bound = f"{self.bound * 1e3:g} ms" if self.bound < 1 else f"{self.bound:g} s"
        elif self.unit.endswith("/s"):
            bound = f"{self.bound:,.0f} {self.unit}"
        else:
            bound = f"{self.bound:g} {self.unit}"
        return f"{self.op} {bound}"


@dataclass
class Result:
    bench: str
    figure: str
    value: float
    unit: str  # "s" for a time, "<things>/s" for a rate
    limit_name: str | None = None
    limit_value: float | None = None
    targets: list[Target] = field(default_factory=list)
    ratio: float | None = None
    status: str = "-"  # OK, MISSED or "-" (no target: information only)
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        parts = [f"{self.figure:<22}{fmt_value(self.value, self.unit):>16}"]
        if self.limit_name is not None and self.limit_value is not None:
            parts.append(f"{self.limit_name:<16}{fmt_value(self.limit_value, self.unit):>16}")
            parts.append(f"ratio {self.ratio:5.2f}")
        else:
            parts.append(" " * 32)
            parts.append(" " * 11)
        target = ", ".join(t.text() for t in self.targets) if self.targets else ""
        parts.append(f"{'target ' + target if target else '':<34}")
        parts.append(self.status)
        return "   ".join(parts).rstrip()


#: Results of this process, in the order they were reported.
RESULTS: list[Result] = []


def report(
    bench: str,
    figure: str,
    value: float,
    unit: str,
    *,
    limit: tuple[str, float] | None = None,
    targets: list[Target] | None = None,
    **extra: Any,
) -> Result:
    """Record a figure (with its limit and targets), print its line, return it.

    For a time (unit "s") the ratio is value / limit; for a rate (unit "x/s")
    it is limit / value: in both cases the cost relative to the limit.
    """
    targets = targets or []
    ratio = None
    limit_name = limit_value = None
    if limit is not None:
        limit_name, limit_value = limit
        if unit.endswith("/s"):
            ratio = limit_value / value if value else float("inf")
        else:
            ratio = value / limit_value if limit_value else float("inf")
    met = [t.met(value, ratio) for t in targets]
    status = "-" if not targets else ("OK" if all(m is True for m in met) else "MISSED")
    result = Result(bench, figure, value, unit, limit_name, limit_value, targets, ratio, status, dict(extra))
    RESULTS.append(result)
    print(result.line(), flush=True)
    return result


def note(text: str) -> None:
    """An indented remark under the figures (sizes, checks, what was compared)."""
    print(f"    {text}", flush=True)


def heading(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def machine() -> dict[str, Any]:
    """What the figures were measured on and with."""
    import sqlite3

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "scratch": str(SCRATCH),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    for module in ("labshelf", "numpy", "h5py", "pandas", "sqlalchemy"):
        try:
            info[module] = __import__(module).__version__
        except Exception:  # pragma: no cover - information only
            info[module] = None
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"], capture_output=True, text=True
        ).stdout.strip()
        info["commit"] = commit + ("+dirty" if dirty else "")
    except Exception:  # pragma: no cover - not a git checkout
        info["commit"] = None
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        info["cpu"] = None
    return info


def to_json(results: list[Result]) -> list[dict[str, Any]]:
    out = []
    for r in results:
        doc = asdict(r)
        doc["targets"] = [{**asdict(t), "text": t.text()} for t in r.targets]
        out.append(doc)
    return out


def from_json(docs: list[dict[str, Any]]) -> list[Result]:
    """Results back from ``to_json`` (as run_all gathers them from each benchmark)."""
    out = []
    for doc in docs:
        doc = dict(doc)
        doc["targets"] = [Target(t["what"], t["op"], t["bound"], t.get("unit", "")) for t in doc["targets"]]
        out.append(Result(**doc))
    return out


def write_json(path: Path, results: list[Result], **more: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "results": to_json(results),
        **more,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def main(bench: str, body: Callable[[], None]) -> None:
    """Entry point of one ``bench_*.py``.

    Alone (``python benchmarks/bench_x.py``) it prints its lines and writes
    ``results/bench_x.json``.  Under run_all.py, which sets
    LABSHELF_BENCH_JSON, it writes its results there instead for run_all to
    gather.  The exit status is 0 whatever the figures are.
    """
    heading(bench)
    started = now()
    body()
    elapsed = now() - started
    print(f"    ({bench} took {elapsed:.1f} s)", flush=True)
    out = os.environ.get("LABSHELF_BENCH_JSON")
    write_json(Path(out) if out else RESULTS_DIR / f"{bench}.json", RESULTS, bench=bench, seconds=elapsed)
