"""Derived variables: functions of a run's datasets, computed after the fact.

A shelf's *context file* (``context.py`` in its root, or the file recorded
with ``labshelf context set``) defines them::

    from labshelf import variable

    @variable(title="Mean intensity", summary="mean", unit="counts")
    def mean_intensity(run, image="camera/image"):
        return image.mean()

    @variable()
    def contrast(run, m="var:mean_intensity", bg="background"):
        return m / bg

Parameter defaults name what each parameter receives: a dataset of the run
(``"camera/image"``, ``"pmt[channel=2]"``) or another variable's result
(``"var:mean_intensity"``).  ``run`` is the read-only :class:`labshelf.Run`.
:meth:`Shelf.reprocess` computes every variable whose result is stale and
stores it as the dataset ``derived/<name>`` of the run (so it is a run-table
column like any other), and keeps per (run, variable) what it was computed
from in the registry's ``derived`` table: the source hash of the function,
the versions of its inputs, and its status (``ok``, ``error`` with the
message, or ``missing`` when an input is absent in that run).

A result is stale when it has no record, when the function's source or
decorator arguments changed, when an input got a new version (a put into a
running run, a dependency recomputed), or always with ``force=True``.

The context file runs only when computing (and when ``set_context``
checks the file it is given); showing it reads its text
(:mod:`labshelf.outline`).  A recorded file outside the shelf's folder runs
only once the user confirmed it (:mod:`labshelf.trust`): the registry that
records it may come from someone else.

Work is spread over processes of this machine (``jobs``) or over a Dask
cluster (``dask_scheduler``); each worker opens the shelf by its path,
loads the context file itself and writes its results (several processes
writing one shelf is safe).  This module only defines the decorator at
import time, so ``labshelf.variable`` costs nothing; the rest loads when
reprocessing starts.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import types
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from .context import Context
    from .errors import ContextError
    from .shelf import Shelf

__all__ = ["variable", "VariableOptions", "ReprocessReport", "SUMMARIES", "VAR_PREFIX"]

#: A parameter default starting with this names another variable: ``"var:mean_intensity"``.
VAR_PREFIX = "var:"
#: How an array result may be summarised in the run table (the whole result is stored).
SUMMARIES = ("mean", "max", "min", "sum", "median", "std")
#: The context file a shelf uses when none is recorded, in its root.
CONTEXT_FILE = "context.py"
#: Outcomes of one (run, variable), as counted in a ReprocessReport.
COMPUTED, FRESH, FAILED, MISSING = "computed", "fresh", "failed", "missing"

_OPTIONS_ATTRIBUTE = "__labshelf_variable__"
F = TypeVar("F", bound=Callable[..., Any])


# -- the decorator ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class VariableOptions:
    """What ``@variable(...)`` was given: how the variable shows in the run table."""

    title: str | None = None
    summary: str | None = None
    unit: str | None = None
    description: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return dataclasses.asdict(self)


@overload
def variable(function: F, /) -> F: ...
@overload
def variable(
    *, title: str | None = None, summary: str | None = None, unit: str | None = None, description: str | None = None
) -> Callable[[F], F]: ...
def variable(
    function: Callable[..., Any] | None = None,
    /,
    *,
    title: str | None = None,
    summary: str | None = None,
    unit: str | None = None,
    description: str | None = None,
) -> Any:
    """Mark a function of a context file as a derived variable.

    Parameters
    ----------
    function
        Given when used bare (``@variable``); with arguments, use ``@variable(...)``.
    title
        What the run table and widgets call it (default: the function's name).
    summary
        How an array result is summarised in the run table: one of
        ``"mean"``, ``"max"``, ``"min"``, ``"sum"``, ``"median"``, ``"std"``,
        or None for the value kind's default (the mean for arrays and
        images).  The result itself is always stored in full.
    unit
        The unit of the result, shown beside it.
    description
        A longer explanation.

    Returns
    -------
    callable
        The function itself, unchanged apart from a marker attribute: it can
        still be called (and tested) directly.

    Notes
    -----
    The function's first parameter must be ``run`` (the read-only
    :class:`labshelf.Run` being processed); the defaults of the others name
    their inputs: ``image="camera/image"`` (a dataset of the run, with a
    data ID as ``"pmt[channel=2]"``) or ``m="var:mean_intensity"`` (another
    variable's result).  The result is stored as dataset ``derived/<name>``.
    Datasets the function reads through ``run`` itself are not tracked:
    only declared inputs make a result stale when they change.
    """
    for argument, given in (("title", title), ("unit", unit), ("description", description)):
        if given is not None and not isinstance(given, str):
            raise TypeError(f"@variable({argument}=...) takes a str, not {type(given).__name__}")
    if summary is not None and summary not in SUMMARIES:
        raise ValueError(f"@variable(summary={summary!r}): use one of {', '.join(map(repr, SUMMARIES))} or None")
    options = VariableOptions(title=title, summary=summary, unit=unit, description=description)

    def mark(fn: F) -> F:
        # A plain function: its name, signature and source make the variable.
        if not isinstance(fn, types.FunctionType):
            raise TypeError(f"@variable decorates a function (def ...), not {type(fn).__name__}")
        setattr(fn, _OPTIONS_ATTRIBUTE, options)
        return fn

    return mark if function is None else mark(function)


def options_of(obj: object) -> VariableOptions | None:
    """The options of a function marked with ``@variable``, or None."""
    options = getattr(obj, _OPTIONS_ATTRIBUTE, None) if callable(obj) else None
    return options if isinstance(options, VariableOptions) else None


# -- the report -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReprocessReport:
    """What :meth:`Shelf.reprocess` did, counted per (run, variable).

    ``errors`` lists ``(run, variable, message)`` for each variable that
    raised in this pass (their inputs unchanged, they are not retried until
    the source or an input changes, or with ``force=True``).
    """

    computed: int = 0
    skipped_fresh: int = 0
    failed: int = 0
    missing: int = 0
    errors: tuple[tuple[int, str, str], ...] = ()
    runs: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"{self.runs} run{'s' if self.runs != 1 else ''} in {self.seconds:.1f} s: {self.computed} computed, "
            f"{self.skipped_fresh} up to date, {self.failed} failed, {self.missing} missing inputs"
        )


# -- the context file of a shelf -------------------------------------------------------------


def context_path(shelf: Shelf) -> Path | None:
    """The shelf's context file: the recorded one, else ``context.py`` in its root if it exists."""
    recorded = shelf._registry.context_path()
    if recorded is not None:
        path = Path(recorded)
        # A file inside the shelf was recorded relative to it, so it moves with the shelf.
        return path if path.is_absolute() else shelf.root / path
    default = shelf.root / CONTEXT_FILE
    return default if default.is_file() else None


@dataclasses.dataclass(frozen=True)
class ContextFile:
    """Where a shelf's context file really is, and whether that is inside the shelf's folder."""

    #: Resolved: ``..`` and symlinks followed.
    path: Path
    #: Inside the shelf's folder once resolved; a file outside runs only when confirmed (see labshelf.trust).
    inside: bool


def context_file(shelf: Shelf) -> ContextFile | None:
    """The shelf's context file, resolved (None if it has none); reads nothing but the registry row."""
    from .errors import ContextError

    path = context_path(shelf)
    if path is None:
        return None
    root = shelf.root.resolve()
    try:
        # The registry row is untrusted text: "../x.py" or a symlink in the folder may lead out.
        resolved = path.resolve()
    except (OSError, ValueError) as exc:
        raise ContextError(f"the context file recorded in {shelf.where} is not a usable path: {exc}") from None
    return ContextFile(resolved, resolved.is_relative_to(root))


def no_context(shelf: Shelf) -> ContextError:
    """The error saying the shelf has no context file, and how to give it one."""
    from .errors import ContextError

    return ContextError(
        f"the shelf {shelf.where} has no context file: write {shelf.root / CONTEXT_FILE} "
        "or record one with `labshelf context set PATH FILE`"
    )


def may_run(shelf: Shelf, file: ContextFile, trust_context: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``file`` may run for ``shelf``: inside its folder, named by ``trust_context``, or confirmed."""
    from . import trust

    if file.inside:
        return True
    if trust_context is not None and Path(trust_context).expanduser().resolve() == file.path:
        return True
    return trust.confirmed(shelf.root.resolve(), file.path)


def set_context(shelf: Shelf, path: str | os.PathLike[str] | None) -> Path | None:
    """Record ``path`` as the shelf's context file after checking it loads (None forgets it).

    The user names the file, so loading it (which runs it) is theirs to ask;
    a file outside the shelf's folder is also confirmed for this user, so
    that later reprocessing runs it (see :mod:`labshelf.trust`).
    """
    from . import trust
    from .context import load

    shelf._check_writable()
    if path is None:
        shelf._registry.set_context_path(None)
        return context_path(shelf)
    context = load(path)
    root = shelf.root.resolve()
    inside = context.path.is_relative_to(root)
    if not inside:
        trust.confirm(root, context.path)
    recorded = context.path.relative_to(root) if inside else context.path
    shelf._registry.set_context_path(recorded.as_posix())
    return context.path


def load_context(shelf: Shelf, trust_context: str | os.PathLike[str] | None = None) -> Context:
    """Load the shelf's context file to compute with it: this runs it.

    A file outside the shelf's folder must be confirmed (``labshelf context
    set``) or named by ``trust_context``; else ContextError says how.  To
    show variables without running anything, see :func:`labshelf.outline.outline`.
    """
    from .context import load
    from .errors import ContextError

    file = context_file(shelf)
    if file is None:
        raise no_context(shelf)
    if not may_run(shelf, file, trust_context):
        if trust_context is not None:
            raise ContextError(
                f"trust_context={os.fspath(trust_context)!r} is not the context file of {shelf.where}, "
                f"which is {file.path}; name that file to run it",
                path=str(file.path),
            )
        # The folder, not shelf.where: a PostgreSQL URL alone does not name the shelf's schema.
        raise ContextError(
            f"the context file of the shelf in {shelf.root} is {file.path}, outside the shelf's folder, and you "
            f"have not confirmed it: check it, then run `labshelf context set {shelf.root} {file.path}` "
            f"(remembered for you on this machine) or pass trust_context='{file.path}' (--trust-context) "
            "to this call",
            path=str(file.path),
        )
    return load(file.path)


def derived_status(shelf: Shelf, run: int | None = None) -> list[dict[str, Any]]:
    """The bookkeeping rows; see :meth:`labshelf.Shelf.derived_status`."""
    if run is not None:
        run = shelf._run_number(run)
    return shelf._registry.derived_rows(run)


# -- choosing runs ---------------------------------------------------------------------------


def select_runs(runs: Any, existing: Sequence[int]) -> list[int]:
    """The run numbers ``runs`` means, among ``existing`` (sorted).

    ``None`` is every run; an int or a list of ints names runs that must
    exist; a ``range`` or a text like ``"10-20,25"`` is taken as far as runs
    exist.
    """
    import numbers

    from .errors import InvalidOptions, RunNotFound
    from .names import run_number

    present = set(existing)
    if runs is None:
        return list(existing)
    single = isinstance(runs, str | range) or (isinstance(runs, numbers.Integral) and not isinstance(runs, bool))
    items = [runs] if single else runs
    if isinstance(items, bool) or not isinstance(items, Iterable):
        raise InvalidOptions(f"runs= takes run numbers, ranges or a text like '10-20,25', not {runs!r}")
    chosen: set[int] = set()
    for item in items:
        if isinstance(item, str | range):
            spans = [item] if isinstance(item, range) else _parse_runs(item)
            # Only the runs that exist, never a list as long as the span.
            chosen.update(n for n in existing if any(n in span for span in spans))
            continue
        if isinstance(item, bool) or not isinstance(item, numbers.Integral):
            raise InvalidOptions(f"runs= takes run numbers, ranges or a text like '10-20,25', not {item!r}")
        number = run_number(item)  # numpy integers too; RunNotFound out of range
        if number not in present:
            raise RunNotFound(f"no run {number} in this shelf{_span(existing)}")
        chosen.add(number)
    if not chosen:
        raise RunNotFound(f"no run matches runs={runs!r}{_span(existing)}")
    return sorted(chosen)


def _span(existing: Sequence[int]) -> str:
    return f"; runs go from {existing[0]} to {existing[-1]}" if existing else "; the shelf has no runs yet"


def _parse_runs(text: str) -> list[range]:
    from .errors import InvalidOptions

    out: list[range] = []
    for part in text.replace(" ", "").split(","):
        low, dash, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if dash else first
        except ValueError:
            raise InvalidOptions(
                f"runs {text!r}: {part!r} is not a run number or a range like 10-20; write e.g. '10-20,25'"
            ) from None
        if first < 1 or last < first:
            raise InvalidOptions(f"runs {text!r}: {part!r} is not a range of run numbers (first <= last, from 1)")
        out.append(range(first, last + 1))
    return out


# -- reprocessing ----------------------------------------------------------------------------


def reprocess(
    shelf: Shelf,
    runs: Any = None,
    variables: str | Iterable[str] | None = None,
    *,
    jobs: int = 1,
    dask_scheduler: str | None = None,
    force: bool = False,
    progress: bool = True,
    trust_context: str | os.PathLike[str] | None = None,
) -> ReprocessReport:
    """Compute the stale derived variables of runs; see :meth:`labshelf.Shelf.reprocess`."""
    from .errors import InvalidOptions
    from .names import plain_int

    shelf._check_writable()
    jobs = plain_int(jobs)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InvalidOptions(f"jobs= is how many processes compute at once (an int >= 1), not {jobs!r}")
    context = load_context(shelf, trust_context)
    wanted = [variables] if isinstance(variables, str) else None if variables is None else list(variables)
    plan = context.plan(wanted)
    forced = tuple(plan if wanted is None else wanted) if force else ()
    numbers = select_runs(runs, shelf._registry.run_numbers())
    address = _address(shelf)
    started = time.perf_counter()
    from tqdm.auto import tqdm

    with tqdm(total=len(numbers), desc="reprocess", unit="run", disable=not progress, leave=False) as bar:
        if dask_scheduler is not None:
            outcomes = _on_dask(dask_scheduler, address, context, numbers, plan, forced, bar.update)
        elif jobs == 1 or len(numbers) < 2:
            outcomes = _here(shelf, address, context, numbers, plan, forced, bar.update)
        else:
            outcomes = _on_processes(jobs, shelf, address, context, numbers, plan, forced, bar.update)
    return _report(outcomes, len(numbers), time.perf_counter() - started)


#: (run, variable, outcome, error message or None)
Outcome = tuple[int, str, str, str | None]


def _report(outcomes: list[Outcome], runs: int, seconds: float) -> ReprocessReport:
    counts = {COMPUTED: 0, FRESH: 0, FAILED: 0, MISSING: 0}
    errors = []
    for run, name, outcome, error in sorted(outcomes):
        counts[outcome] += 1
        if outcome == FAILED:
            errors.append((run, name, error or ""))
    return ReprocessReport(
        computed=counts[COMPUTED],
        skipped_fresh=counts[FRESH],
        failed=counts[FAILED],
        missing=counts[MISSING],
        errors=tuple(errors),
        runs=runs,
        seconds=seconds,
    )


def _address(shelf: Shelf) -> str:
    """What another process passes to ``labshelf.open`` to open this shelf.

    A shelf opened by a PostgreSQL URL has ``where`` = the URL (which alone
    lacks the schema); its root folder's labshelf.json names both.
    """
    from .opening import MARKER
    from .registry.engine import is_postgres_url

    if not is_postgres_url(shelf.where) and (Path(shelf.where) / MARKER).is_file():
        return str(Path(shelf.where).resolve())
    if (shelf.root / MARKER).is_file():
        return str(shelf.root.resolve())
    from .errors import ShelfError

    raise ShelfError(
        f"the shelf {shelf.where} cannot be opened by other processes: its root {shelf.root} has no labshelf.json"
    )


def _chunks(numbers: Sequence[int], workers: int) -> list[list[int]]:
    # Small enough that progress moves and the last chunks balance out, big
    # enough that sending a chunk costs little next to computing it.
    size = max(1, min(16, len(numbers) // (workers * 8)))
    return [list(numbers[i : i + size]) for i in range(0, len(numbers), size)]


def _here(
    shelf: Shelf,
    address: str,
    context: Context,
    numbers: Sequence[int],
    plan: Sequence[str],
    forced: Sequence[str],
    update: Callable[[int], Any],
) -> list[Outcome]:
    """Compute in this process, writing through the caller's shelf."""
    from .context import Runner
    from .opening import open as open_shelf

    outcomes: list[Outcome] = []
    with open_shelf(address, mode="r") as reader:
        runner = Runner(shelf, reader, context)
        for chunk in _chunks(numbers, 1):
            outcomes += runner.run_many(chunk, plan, forced, update)
    return outcomes


def _on_processes(
    jobs: int,
    shelf: Shelf,
    address: str,
    context: Context,
    numbers: Sequence[int],
    plan: Sequence[str],
    forced: Sequence[str],
    update: Callable[[int], Any],
) -> list[Outcome]:
    """Compute in ``jobs - 1`` new processes and this one.

    This process works too: a worker process takes a moment to start (a
    second or more on the first call of a session, while the fork server
    imports numpy and SQLAlchemy), and the runs this one computes meanwhile
    are not lost.  Chunks go to a worker only once it reports ready, so a
    small job never waits for a worker to start.
    """
    import collections
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from .context import Runner
    from .errors import ShelfError
    from .opening import open as open_shelf

    pending = collections.deque(_chunks(numbers, jobs))
    outcomes: list[Outcome] = []
    pool = ProcessPoolExecutor(max_workers=jobs - 1, mp_context=_start_method())
    try:
        warming: set[Future[None]] = {pool.submit(_warm_up) for _ in range(jobs - 1)}
        ready = 0
        running: dict[Future[list[Outcome]], int] = {}
        path = str(context.path)
        with open_shelf(address, mode="r") as reader:
            runner = Runner(shelf, reader, context)
            while pending or running:
                for started in [f for f in warming if f.done()]:
                    warming.discard(started)
                    started.result()  # a worker that cannot even import labshelf fails here
                    ready += 1
                for done in [f for f in running if f.done()]:
                    outcomes += done.result()
                    update(running.pop(done))
                # Two chunks per ready worker: one computing, one waiting, none idle.
                while pending and len(running) < 2 * ready:
                    chunk = pending.popleft()
                    running[pool.submit(_process_chunk, address, path, chunk, plan, forced)] = len(chunk)
                if pending:
                    # This process takes from the far end, the workers from the near one.
                    outcomes += runner.run_many(pending.pop(), plan, forced, update)
                elif running:
                    wait(running, return_when=FIRST_COMPLETED)
    except BrokenProcessPool as exc:
        raise ShelfError(
            f"a reprocessing worker process died ({exc}); the results stored so far are kept. "
            "A script using jobs > 1 must keep its top-level code under `if __name__ == \"__main__\":` "
            "(worker processes import the main module)"
        ) from exc
    finally:
        # Workers still starting are not waited for: they exit once started.
        pool.shutdown(wait=False, cancel_futures=True)
    return outcomes


#: What multiprocessing's fork server imports once, so that workers forked from it start at once.
_PRELOAD = ["labshelf.context", "labshelf.shelf", "labshelf.datastore.ndarray", "labshelf.datastore.scalar"]


def _start_method() -> Any:
    """The multiprocessing context of worker processes: "forkserver" where there is one, else "spawn".

    Never "fork": a forked worker would inherit this process's open
    connections and threads.  Both start workers from a clean process.  The
    fork server is started once per session (the first ``jobs > 1`` call) and
    imports labshelf then; later calls fork ready workers from it in
    milliseconds instead of starting interpreters that import numpy and
    SQLAlchemy for a second or more.
    """
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    from multiprocessing import forkserver

    # Add to what others asked the server to preload, not replace it (the
    # list only matters until the server starts; the attribute is private,
    # hence the fallback).
    asked = list(getattr(getattr(forkserver, "_forkserver", None), "_preload_modules", []))
    context.set_forkserver_preload(asked + [m for m in _PRELOAD if m not in asked])
    return context


def _on_dask(
    scheduler: str,
    address: str,
    context: Context,
    numbers: Sequence[int],
    plan: Sequence[str],
    forced: Sequence[str],
    update: Callable[[int], Any],
) -> list[Outcome]:
    """Compute on the workers of a Dask distributed cluster, a chunk of runs per task."""
    from .errors import ShelfError

    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ShelfError(
            "dask_scheduler= needs the 'distributed' package: pip install 'labshelf[dask]'"
        ) from None
    try:
        # How long to try is Dask's own setting (distributed.comm.timeouts.connect).
        client = Client(scheduler, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ShelfError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
    outcomes: list[Outcome] = []
    try:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        futures = {}
        for chunk in _chunks(numbers, workers):
            # pure=False: the same runs again (a later reprocess) must run again.
            future = client.submit(_process_chunk, address, str(context.path), chunk, plan, forced, pure=False)
            futures[future] = len(chunk)
        for future in as_completed(futures, loop=client.loop):
            outcomes += future.result()
            update(futures[future])
    finally:
        client.close()
    return outcomes


# -- what a worker does ---------------------------------------------------------------------------

_worker = threading.local()


def _warm_up() -> None:
    """Import what computing needs, so a worker that reports ready is ready."""
    from . import context, shelf, writer  # noqa: F401 - imported for their cost
    from .datastore import formatters

    formatters.by_kind("scalar")  # loads every formatter (entry points)


def _process_chunk(
    address: str, context_path: str, numbers: Sequence[int], plan: Sequence[str], forced: Sequence[str]
) -> list[Outcome]:
    """Compute the stale variables of ``numbers``: the task of a worker process or a Dask worker.

    The open shelves and the loaded context are kept per thread between
    tasks (a Dask worker runs many), and the context is loaded again when
    its file changed.
    """
    import hashlib

    from .context import Runner, load
    from .opening import open as open_shelf

    try:
        digest = hashlib.sha256(Path(context_path).read_bytes()).hexdigest()
    except OSError as exc:
        import socket

        from .errors import ContextError

        # Most likely a Dask worker on a machine that does not see the file.
        raise ContextError(
            f"a worker on {socket.gethostname()} cannot read the context file {context_path}: "
            f"{exc.strerror or exc}; workers must see it at the same path",
            path=context_path,
        ) from None
    state = getattr(_worker, "state", None)
    if state is None or state[0] != address:
        if state is not None:
            state[1].close()
            state[2].close()
        writer, reader = open_shelf(address), open_shelf(address, mode="r")
        state = _worker.state = (address, writer, reader, None)
    _, writer, reader, runner = state
    if runner is None or runner.context.digest != digest or str(runner.context.path) != context_path:
        runner = Runner(writer, reader, load(context_path))
        _worker.state = (address, writer, reader, runner)
    return runner.run_many(numbers, plan, forced)
