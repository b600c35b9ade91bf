"""Checking a shelf (``Shelf.verify``): every file there, intact and inside, and nothing lost.

A shelf can be damaged in ways no single read notices: a data file deleted
or garbled, a link that leads out of the shelf, a registry that lost its
newest rows (a SQLite write-ahead log deleted after a crash drops the last
committed transactions silently).  :func:`verify` looks at all of it and
says what it found in a :class:`VerifyReport`.  It only reads: it works on a
shelf opened with ``mode="r"`` and never repairs anything.

What it checks:

- every data file a registry row names exists, lies under ``data/``, is no
  symbolic link, refers to no other file, and reads in full with its
  checksums verified (the array checksums of :mod:`.datastore.checksum`,
  HDF5's fletcher32, Parquet's page CRCs);
- every value kept in the registry decodes, and every part of a composite
  is there;
- files under ``data/`` and ``tmp/`` no row refers to: left by a crashed
  writer (``orphan``), or, when they belong to runs the registry does not
  know or are newer than its last recorded change, signs of lost registry
  rows (``lost``);
- SQLite's own ``PRAGMA quick_check`` (``integrity_check`` on request);
- every ingested file (:mod:`labshelf.ingest`) is still the file ingested
  (size, modification time, the checksum of its first and last MiB) and,
  outside the shelf, confirmed by this user (an unconfirmed one is listed,
  never opened).  Files kept in place are not read in full: they may be
  large and are not the shelf's own.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._format import size_text

if TYPE_CHECKING:
    from .shelf import Shelf

#: Problem kinds, in the order a report lists them.
KINDS = {
    "registry": "the registry database is damaged",
    "lost": "files of runs or changes the registry does not know: registry rows were lost",
    "missing": "a data file a dataset needs is not there",
    "outside": "a path, link or file that leads outside the shelf (never followed)",
    "link": "a symbolic link or other non-file in data/ (labshelf makes plain files only)",
    "damaged": "a data file or registry value that does not read back as written",
    "changed": "an ingested file that changed, moved or disappeared since it was ingested",
    "unconfirmed": "an ingested file outside the shelf you have not confirmed this shelf may read (not opened)",
    "orphan": "a file no dataset refers to, left by a writer that crashed",
}

#: Unreferenced files at most this old may be a put between writing its file
#: and committing its row: looked up again before they are reported (and
#: those in tmp/, being written, not reported).
_FRESH_SECONDS = 60.0
#: How long fresh unreferenced files are given for their rows to be committed.
_IN_FLIGHT_SECONDS = 2.0
#: File names listed in one problem about many files.
_NAMES_SHOWN = 3


@dataclass(frozen=True)
class Problem:
    """One thing :func:`verify` found wrong.

    ``kind`` is one of :data:`KINDS`; ``run``, ``dataset`` and ``file``
    (relative to the shelf root) say where, when known.
    """

    kind: str
    message: str
    run: int | None = None
    dataset: str | None = None
    file: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass(frozen=True)
class VerifyReport:
    """What :meth:`labshelf.Shelf.verify` checked and found.

    ``problems`` is a tuple (the report is immutable), sorted by kind as in
    :data:`KINDS`, then by run.  ``ok`` is True when there are none.
    """

    where: str
    runs: int
    datasets: int
    files: int
    nbytes: int
    registry_check: str
    seconds: float
    problems: tuple[Problem, ...]
    #: Datasets that are files ingested in place (checked by their fingerprint).
    ingested: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        found = "no problems" if self.ok else f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        head = (
            f"verified {self.where}: {self.runs} runs, {self.datasets} datasets, {self.files} files "
            f"({size_text(self.nbytes)}){f', {self.ingested} ingested' if self.ingested else ''} in {self.seconds:.1f} s; registry {self.registry_check}: {found}"
        )
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


def verify(shelf: Shelf, runs: Any = None, *, integrity_check: bool = False) -> VerifyReport:
    """Check the shelf's own repository; see :meth:`labshelf.Shelf.verify`."""
    from .errors import ShelfError

    started = time.perf_counter()
    chosen = run_numbers(runs)
    checker = _Checker(shelf, chosen)
    # Files are listed before the rows are read: a file renamed into data/
    # after the listing is not seen, and one renamed before it has its row
    # committed by the time the rows are read, or is looked up again.
    entries = checker.list_files()
    checker.registry_check = checker.check_registry(integrity_check)
    try:
        rows = checker.rows()
    except ShelfError as exc:  # a registry too damaged to list its rows: say so, check nothing against them
        checker.add("registry", f"the registry's rows cannot be read ({exc}); restore it from a backup")
        rows = []
    else:
        for row in rows:
            checker.check_row(row)
        checker.check_unreferenced(entries)
    problems = sorted(checker.problems, key=lambda p: (list(KINDS).index(p.kind), p.run or 0, p.file or ""))
    return VerifyReport(
        where=shelf.where,
        runs=sum(1 for run in checker.known_runs if checker.wanted(run)),
        datasets=len(rows),
        files=checker.files,
        nbytes=checker.nbytes,
        registry_check=checker.registry_check,
        seconds=time.perf_counter() - started,
        problems=tuple(problems),
        ingested=checker.ingested,
    )


def run_numbers(runs: Any) -> list[range] | None:
    """The spans of run numbers ``runs=`` names (an int, a range, a list, or a text like "10-20,25"); None for all.

    Numbers are taken as given, not among the runs the registry knows: the
    runs it lost are what verify looks for.  Spans, never a set of every
    number in them ("1-2000000000" is one range).
    """
    import numbers

    from .derived import _parse_runs
    from .errors import InvalidOptions

    if runs is None:
        return None
    single = isinstance(runs, (str, range)) or (isinstance(runs, numbers.Integral) and not isinstance(runs, bool))
    items = [runs] if single else runs
    spans: list[range] = []
    try:
        for item in items:
            if isinstance(item, str):
                spans += _parse_runs(item)
            elif isinstance(item, range):
                spans.append(item)
            elif isinstance(item, numbers.Integral) and not isinstance(item, bool):
                spans.append(range(int(item), int(item) + 1))
            else:
                raise TypeError
    except TypeError:
        raise InvalidOptions(f"runs= takes run numbers, ranges or a text like '10-20,25', not {runs!r}") from None
    return spans


class _Checker:
    def __init__(self, shelf: Shelf, chosen: list[range] | None):
        self.shelf = shelf
        self.datastore = shelf._datastore
        self.registry = shelf._registry
        self.chosen = chosen
        self.problems: list[Problem] = []
        self.files = 0
        self.nbytes = 0
        self.ingested = 0
        self.registry_check = ""
        self.known_runs: set[int] = set()
        self.keys: set[tuple[int, str, str]] = set()

    def add(self, kind: str, message: str, *, run: int | None = None, dataset: str | None = None, file: str | None = None) -> None:
        self.problems.append(Problem(kind, message, run, dataset, file))

    def wanted(self, run: int | None) -> bool:
        return self.chosen is None or (run is not None and any(run in span for span in self.chosen))

    # -- the registry -----------------------------------------------------------------

    def check_registry(self, integrity_check: bool) -> str:
        from .errors import ShelfError

        db = self.registry.db
        if not db.is_sqlite:
            return "not checked (PostgreSQL)"
        pragma = "integrity_check" if integrity_check else "quick_check"
        try:
            with db.read() as txn:
                found = [row[0] for row in txn.execute_sql(f"PRAGMA {pragma}").fetchall()]
        except ShelfError as exc:
            found = [str(exc)]
        if found == ["ok"]:
            return f"{pragma} ok"
        shown = "; ".join(str(f) for f in found[:5])
        self.add("registry", f"SQLite's {pragma} of the registry reports: {shown}. Restore it from a backup, "
                 "or copy what still reads into a new shelf")
        return f"{pragma} failed"

    def rows(self) -> list[Any]:
        from sqlalchemy import false, or_, select

        from .registry.schema import datasets, runs

        columns = (datasets.c.id, datasets.c.run, datasets.c.name, datasets.c.data_id, datasets.c.kind,
                   datasets.c.inline, datasets.c.location, datasets.c.options)
        query = select(*columns).order_by(datasets.c.run, datasets.c.name, datasets.c.data_id)
        if self.chosen is not None:
            query = query.where(or_(false(), *(datasets.c.run.between(r.start, r.stop - 1) for r in self.chosen if r)))
        with self.registry.db.read(snapshot=True) as txn:
            self.known_runs = set(txn.scalars(select(runs.c.number)))
            found = txn.all(query)
        self.keys = {(r.run, r.name, r.data_id) for r in found}
        return found

    # -- one dataset --------------------------------------------------------------------

    def check_row(self, row: Any) -> None:
        from .datastore import formatters
        from .errors import ShelfError

        where = f"dataset {_label(row)!r} of run {row.run}"
        try:
            formatter = formatters.by_kind(row.kind)
        except ShelfError:
            formatter = None  # a plugin not installed here: its files are still checked as files
        if row.inline is not None:
            self.check_inline(row, formatter, where)
        if row.options is not None and '"ingested"' in row.options and self.check_ingested(row, where):
            return
        files = _listed_files(row.location)
        if files is None:
            self.add("damaged", f"{where}: its registry row lists its files as {row.location!r}, not a JSON list "
                     "of file names", run=row.run, dataset=row.name)
            return
        for relative in files:
            self.check_file(row, relative, formatter, where)

    def check_ingested(self, row: Any, where: str) -> bool:
        """Check an ingested file as a read would; True when the row's files need no other check.

        A copied file lies in ``data/``: it is then checked like any data file.
        """
        from .datastore.ingested import source_of
        from .errors import CorruptDataset, IngestedFileChanged, UnconfirmedFile
        from .ingest import located
        from .registry.registry import ref_from_row

        ref = ref_from_row(self._full_row(row.id), self.registry.db.where)
        if ref.damage is not None:
            return False
        try:
            source = source_of(ref.storage.options)
        except CorruptDataset as exc:
            self.add("damaged", f"{where}: {exc}", run=row.run, dataset=row.name)
            return True
        if source is None:
            return False
        self.ingested += 1
        try:
            located(self.shelf._repos[0], ref)
        except UnconfirmedFile as exc:
            self.add("unconfirmed", str(exc), run=row.run, dataset=row.name, file=source.path)
        except IngestedFileChanged as exc:
            if not self.changed(row):
                self.add("changed", str(exc), run=row.run, dataset=row.name, file=source.path)
        except CorruptDataset as exc:
            self.add("damaged", str(exc), run=row.run, dataset=row.name, file=source.path)
        else:
            if source.transfer != "copy":
                self.files += 1
                self.nbytes += source.size
        return source.transfer != "copy"

    def check_inline(self, row: Any, formatter: Any, where: str) -> None:
        from .datastore import composite

        if formatter is None:
            return
        try:
            formatter.from_inline(row.inline)
        except Exception as exc:  # any failure to decode is what is being looked for
            self.add("damaged", f"{where}: its value in the registry does not decode ({exc})", run=row.run, dataset=row.name)
            return
        if row.kind == composite.KIND:
            try:
                parts = json.loads(row.inline).get("components", [])
            except (ValueError, AttributeError):
                parts = []
            for part in parts:
                if (row.run, f"{row.name}.{part}", row.data_id) not in self.keys:
                    self.add("missing", f"{where}: its component {part!r} has no registry row", run=row.run, dataset=row.name)

    def check_file(self, row: Any, relative: str, formatter: Any, where: str) -> None:
        from .datastore import hdf5, parquet
        from .datastore.formatter import RefersOutside
        from .errors import UnsafePath

        try:
            link = os.lstat(os.path.join(self.datastore.root, relative))
        except (OSError, ValueError):
            link = None
        if link is not None and not stat.S_ISLNK(link.st_mode) and not stat.S_ISREG(link.st_mode):
            self.add("link", f"{where}: its data file {relative} is not a regular file (a FIFO, a socket, a device "
                     "or a folder); labshelf's data files are plain files", run=row.run, dataset=row.name, file=relative)
            return
        try:
            path = self.datastore.path(relative)
        except UnsafePath as exc:
            self.add("outside", f"{where}: {exc}", run=row.run, dataset=row.name, file=relative)
            return
        if link is not None and stat.S_ISLNK(link.st_mode):
            self.add("link", f"{where}: its data file {relative} is a symbolic link (to {path}); labshelf never "
                     "makes links, so a copy or an edit put it there", run=row.run, dataset=row.name, file=relative)
        if not os.path.exists(path):
            if self.changed(row):  # a writer replaced or deleted it since the rows were read
                return
            self.add("missing", f"{where}: its data file {relative} is missing (deleted by hand, or left out "
                     "of a copy of the shelf); the dataset cannot be read", run=row.run, dataset=row.name, file=relative)
            return
        self.files += 1
        try:
            if relative.endswith(".h5"):
                self.nbytes += hdf5.check_file(path)
            elif relative.endswith(".parquet"):
                self.nbytes += parquet.check_file(path)
            elif formatter is not None:  # a plugin's own format: its reader is the check
                from .registry.registry import ref_from_row

                full = self._full_row(row.id)
                formatter.read([path], row.name, ref_from_row(full), {})
                self.nbytes += os.path.getsize(path)
        except RefersOutside as exc:
            self.add("outside", f"{where}: its data file {relative} refers outside itself: {exc}",
                     run=row.run, dataset=row.name, file=relative)
        except Exception as exc:  # any failure to read is what is being looked for
            if not self.changed(row):
                self.add("damaged", f"{where}: its data file {relative} is damaged: {exc}",
                         run=row.run, dataset=row.name, file=relative)

    def changed(self, row: Any) -> bool:
        """Whether a dataset's row names other files by now (a writer replaced or deleted it)."""
        from sqlalchemy import select

        from .registry.schema import datasets

        with self.registry.db.read() as txn:
            now = txn.first(select(datasets.c.location).where(datasets.c.id == row.id))
        return now is None or now.location != row.location

    def _full_row(self, dataset_id: int) -> Any:
        from sqlalchemy import select

        from .registry.schema import datasets

        with self.registry.db.read() as txn:
            return txn.first(select(datasets).where(datasets.c.id == dataset_id))

    # -- files no row refers to ------------------------------------------------------------

    def list_files(self) -> list[Any]:
        return [*self.datastore.entries("data"), *self.datastore.entries("tmp")]

    def check_unreferenced(self, entries: Sequence[Any]) -> None:
        referenced = set(self.all_files())
        now = time.time()
        # A fresh file may be a put between renaming it into data/ and
        # committing its row (a few milliseconds, more while the registry
        # is busy): give such rows a moment to appear.
        deadline = time.monotonic() + _IN_FLIGHT_SECONDS
        while True:
            fresh = [e for e in entries if e.relative.startswith("data/") and e.relative not in referenced
                     and now - e.mtime < _FRESH_SECONDS and os.path.lexists(os.path.join(self.datastore.root, e.relative))]
            if not fresh or time.monotonic() > deadline:
                break
            time.sleep(0.05)
            referenced |= set(self.all_files())
        last_change = self.last_change()
        groups: dict[tuple[str, int | None], list[Any]] = defaultdict(list)
        for entry in entries:
            if entry.relative in referenced:
                continue
            run = _run_of(entry.relative)
            if not self.wanted(run) or (self.chosen is not None and entry.relative.startswith("tmp")):
                continue
            if entry.relative.startswith("tmp/") and now - entry.mtime < _FRESH_SECONDS:
                continue  # most likely a value being written right now
            if not os.path.lexists(os.path.join(self.datastore.root, entry.relative)):
                continue  # a version replaced (and removed) since the listing
            if entry.relative in ("data", "tmp"):  # the folder itself is a link out of the shelf
                self.add("outside", f"{entry.relative}/ is a symbolic link out of the shelf {self.datastore.root}; "
                         "labshelf neither lists nor writes there", file=entry.relative)
            elif entry.kind != "file":
                what = "a symbolic link" if entry.kind == "link" else "not a regular file"
                self.add("link", f"{entry.relative} is {what}; labshelf makes plain files only, and never follows "
                         "links out of data/", run=run, file=entry.relative)
            elif entry.relative.startswith("tmp/"):
                groups[("tmp", None)].append(entry)
            elif run is not None and run not in self.known_runs:
                groups[("unknown run", run)].append(entry)
            elif last_change is not None and entry.mtime > last_change:
                groups[("newer", run)].append(entry)
            else:
                groups[("orphan", run)].append(entry)
        for (why, run), found in groups.items():
            names = _names(found)
            if why == "tmp":
                self.add("orphan", f"{names} in tmp/: temporary files of writes that never finished (a writer that "
                         "crashed or was killed, or one writing right now)", file="tmp")
            elif why == "unknown run":
                self.add("lost", f"data/{run:06d}/ holds {names} of run {run}, which the registry does not know: "
                         f"its rows were lost{self.loss_cause()}, or the run was removed by hand",
                         run=run, file=f"data/{run:06d}")
            elif why == "newer":
                self.add("lost", f"{names} of run {run} were written after the registry's last recorded change "
                         f"({_when(last_change)}) and no row refers to them: the registry lost its newest "
                         f"changes{self.loss_cause()}, or a writer crashed just before committing",
                         run=run, file=found[0].relative)
            else:
                self.add("orphan", f"{names}{f' of run {run}' if run is not None else ''}: no dataset refers to "
                         "them; left by writers that crashed before committing (harmless; Shelf.orphans lists them)",
                         run=run, file=found[0].relative)

    def all_files(self) -> Iterable[str]:
        from sqlalchemy import select

        from .registry.schema import datasets

        with self.registry.db.read() as txn:
            locations = txn.scalars(select(datasets.c.location).where(datasets.c.location.is_not(None)))
        for location in locations:
            yield from _listed_files(location) or []

    def last_change(self) -> float | None:
        from sqlalchemy import func, select

        from .registry.schema import changes

        with self.registry.db.read() as txn:
            value = txn.scalar(select(func.max(changes.c.time)))
        return None if value is None else float(value)

    def loss_cause(self) -> str:
        if self.registry.db.is_sqlite:
            return (" (a registry.sqlite3-wal deleted, damaged or left behind after a crash drops the "
                    "last committed transactions)")
        return " (a registry restored from an older backup?)"


def _listed_files(location: Any) -> list[str] | None:
    """The file names a ``location`` column lists ([] for none), or None if it is damaged."""
    if location is None:
        return []
    try:
        files = json.loads(location)
    except (TypeError, ValueError):
        return None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return files


def _label(row: Any) -> str:
    from .names import label

    try:
        data_id = json.loads(row.data_id)
    except (TypeError, ValueError):
        return f"{row.name}{row.data_id}"
    return label(row.name, data_id) if isinstance(data_id, dict) else f"{row.name}{row.data_id}"


def _run_of(relative: str) -> int | None:
    parts = relative.split("/")
    return int(parts[1]) if len(parts) > 2 and parts[0] == "data" and parts[1].isdigit() else None


def _names(entries: Sequence[Any]) -> str:
    shown = ", ".join(e.relative for e in entries[:_NAMES_SHOWN])
    more = len(entries) - _NAMES_SHOWN
    count = f"{len(entries)} file{'s' if len(entries) != 1 else ''}"
    return f"{count} ({shown}{f' and {more} more' if more > 0 else ''})"


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "none"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))
