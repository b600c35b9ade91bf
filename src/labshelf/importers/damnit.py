"""DAMNIT databases as labshelf runs: ``labshelf.importers.damnit(shelf, "damnit_folder")``.

A DAMNIT folder holds ``runs.sqlite`` (database format 4), ``context.py``
and ``extracted_data/p<proposal>_r<run>.h5``.  What becomes what:

- each ``run_info`` row of the proposal: a run, numbered by DAMNIT's run
  (``renumber=True``: the next free numbers), experiment ``"damnit"``,
  params ``damnit_proposal``, ``damnit_run``, ``damnit_provenance`` (variable
  -> where DAMNIT says its value came from) and the provenance of
  ``_common``; start ``start_time``, end the latest variable timestamp;
  status ``finished``;
- each variable of the context file: the dataset ``derived/<name>`` (DAMNIT's
  variables are derived variables, computed from a context file, as
  labshelf's are; so they take the same place, their errors show in the
  same cells, a reprocess with a labshelf context of the same name replaces
  them, and a changed DAMNIT run can be written into its ended run again).
  The full value comes from the run file (``<name>/data``, or an xarray
  group); where the file lacks it (or there is no file) the summary from
  ``run_variables`` is stored instead (a number, text, complex, a PNG
  thumbnail as an image) and the run's params list it under
  ``damnit_summary_only``;
- ``.errors/<name>``: the cell's error, in the ``derived`` table as a failed
  derived variable's (``Registry.record_derived``);
- titles, descriptions and units: display metadata; variable tags: column
  tags; ``time_comments``: logbook entries; the ``comment`` variable: the
  run's comment; user-editable variables (``variables.type`` set): typed user
  columns; cell styling (``bold``, ``background``): dropped with a warning;
- ``context.py``: copied as ``damnit_context.py`` into the shelf's folder, for
  reference only (never imported or run, never the shelf's context file).

Each imported variable also gets a ``derived`` row whose ``source_hash``
says what it was imported from (``damnit:<how>:<hash of DAMNIT's timestamp
and version>``): importing again compares them, and writes again only the
variables DAMNIT changed since (new dataset versions of the same run).

The DAMNIT folder is untrusted input: the database is opened read-only,
nothing is evaluated, HDF5 links, external storage and virtual datasets are
never followed, and no file whose real path leaves the folder is read.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import struct
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import (
    CorruptDataset,
    InvalidName,
    InvalidOptions,
    InvalidValue,
    NotAShelf,
    ShelfError,
    UnsupportedValue,
)
from ..names import MAX_RUN
from ..writer import DERIVED_PREFIX
from ._common import (
    RENAMED,
    SOURCE,
    ImportReport,
    Ledger,
    SkipDataset,
    Skipped,
    check_time,
    conflict,
    end_run,
    group_refers_outside,
    hdf5_nbytes,
    hdf5_value,
    interrupted,
    legal_name,
    png_pixels,
    progress,
    provenance,
    refers_outside,
    reopen,
    sha256_file,
    start_run,
    storable_text,
    value_bytes,
    why,
)

if TYPE_CHECKING:
    import h5py

    from ..registry.records import RunRecord
    from ..shelf import Shelf

__all__ = ["damnit"]

DATABASE = "runs.sqlite"
CONTEXT = "context.py"
#: The name the context file gets in the shelf's folder (never ``context.py``, the shelf's own).
CONTEXT_COPY = "damnit_context.py"
#: A context file larger than this is not copied (it is a reference document, not data).
MAX_CONTEXT_BYTES = 10 * 2**20
EXPERIMENT = "damnit"
#: DAMNIT's user-editable variable types and the user-column types they become.
USER_TYPES = {"boolean": "bool", "integer": "int", "number": "number", "string": "text"}
COMMENT = "comment"
STYLING = ("bold", "background")
XARRAY_TYPES = ("dataarray", "dataset")
#: Params keys this importer writes.
PROPOSAL, RUN, PROVENANCE, SUMMARY_ONLY = (
    "damnit_proposal",
    "damnit_run",
    "damnit_provenance",
    "damnit_summary_only",
)
#: What each imported variable's ``derived`` row starts its ``source_hash`` with.
HASH_PREFIX = "damnit:"
#: The ``derived`` row remembering what the comment and user values were imported from (the
#: ``:`` keeps it apart from every variable: no dataset name holds one).
ANNOTATIONS = "damnit:annotations"
MAX_SOURCE_HASH = 64
_PNG = b"\x89PNG\r\n\x1a\n"
_NUMPY = b"\x93NUMPY"


# -- what the database says -------------------------------------------------------------------


@dataclass(frozen=True)
class _Variable:
    """A row of ``variables``: a column of DAMNIT's table."""

    name: str
    type: str | None
    title: str | None
    description: str | None
    attributes: dict[str, Any]


@dataclass(frozen=True)
class _Row:
    """The newest version of one (run, variable) in ``run_variables``."""

    name: str
    version: Any
    value: Any
    timestamp: float | None
    provenance: str | None
    summary_type: str | None
    attributes: dict[str, Any]


@dataclass
class _Database:
    """Everything read from ``runs.sqlite`` for one proposal, in a few queries."""

    folder: Path
    proposal: int
    db_id: str
    variables: dict[str, _Variable]
    tags: dict[str, list[str]]
    comments: list[tuple[float, str]]
    runs: list[tuple[int, Any, Any]]  # run, start_time, added_at
    rows: dict[int, dict[str, _Row]]
    warnings: list[Skipped] = field(default_factory=list)

    def run_file(self, run: int) -> Path:
        return self.folder / "extracted_data" / f"p{self.proposal}_r{run}.h5"


# -- one run's plan ---------------------------------------------------------------------------


@dataclass
class _Item:
    """One variable of a run to store: where its value comes from and the dataset it becomes."""

    variable: str  # DAMNIT's name
    dataset: str  # the labshelf name, derived/<name>
    how: str  # "full", "summary", or "xarray" (then objtype says "dataarray" or "dataset")
    nbytes: int
    stamp: str
    objtype: str = ""

    @property
    def source_hash(self) -> str:
        return _source_hash(self.how, self.stamp)


@dataclass
class _Plan:
    run: int
    started: float
    ended: float
    rows: dict[str, _Row]
    file: Path | None
    import_id: str
    existing: RunRecord | None = None
    items: list[_Item] = field(default_factory=list)
    errors: dict[str, tuple[str, str]] = field(default_factory=dict)  # variable -> (text, source hash)
    sha256: str = ""
    renamed: dict[str, str] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[Skipped] = field(default_factory=list)
    listed: bool = False
    update: dict[str, str] | None = None  # for an ended run: variable -> source hash it was imported with
    annotations: str = ""  # the source hash of the run's comment and user values

    @property
    def names(self) -> list[str]:
        return [item.dataset for item in self.items]

    @property
    def nbytes(self) -> int:
        return sum(item.nbytes for item in self.items)

    def changed(self) -> tuple[list[_Item], dict[str, tuple[str, str]], bool]:
        """For an imported run: the items and errors whose source differs from what was imported,
        and whether the comment or user values changed in DAMNIT since."""
        known = self.update or {}
        items = [item for item in self.items if known.get(_variable_key(item.dataset)) != item.source_hash]
        errors = {
            name: error for name, error in self.errors.items() if known.get(_error_key(name)) != error[1]
        }
        return items, errors, known.get(ANNOTATIONS) != self.annotations


def damnit(
    shelf: Shelf,
    path: str | os.PathLike[str],
    *,
    proposal: int | None = None,
    renumber: bool = False,
    dry_run: bool = False,
    progress: bool = True,
) -> ImportReport:
    """Import a DAMNIT folder (``runs.sqlite``, ``extracted_data/``, ``context.py``) into ``shelf``.

    Parameters
    ----------
    shelf
        A writable shelf (a read-only one is enough for ``dry_run``).
    path
        The DAMNIT folder.
    proposal
        The proposal to import, where the database holds several (an
        error lists them otherwise).
    renumber
        Give the new runs the next free run numbers instead of DAMNIT's run
        numbers (kept in ``params["damnit_run"]``).  Without it, a DAMNIT run
        number that is a run of the shelf from elsewhere is an
        :class:`~labshelf.errors.ImportConflict` listing every such number,
        raised before anything is written.
    dry_run
        Only read the folder and report what would be imported (runs,
        datasets, bytes); write nothing.
    progress
        Show a progress bar (tqdm) over the runs.

    Returns
    -------
    ImportReport
        Runs imported (and updated), datasets and bytes, runs found
        imported already, and everything skipped or changed, with the reason.

    Importing the same folder again imports only new runs, writes again
    the variables DAMNIT recomputed since (new versions in the same run),
    and finishes a run an interrupted import left unfinished.

    Raises
    ------
    NotAShelf
        The folder does not exist or holds no DAMNIT database.
    CorruptDataset
        ``runs.sqlite`` cannot be read as a DAMNIT database.
    InvalidOptions
        Several proposals and none chosen, or one the database lacks.
    ImportConflict
        Run numbers taken (see ``renumber``).
    """
    folder = Path(path)
    if not dry_run:
        shelf._check_writable()
    database = _read_database(folder, proposal)
    report = ImportReport(source=str(folder), dry_run=dry_run)
    report.warnings += database.warnings
    ledger = Ledger(shelf)
    imported = _imported_hashes(shelf)

    plans = [_plan(database, run, start, added) for run, start, added in database.runs]
    new, resume, update = _sort_out(plans, ledger, imported, report)
    numbers = _numbers(new, ledger, renumber)
    if dry_run:
        return _dry_run(database, new, numbers, resume, update, report)

    _copy_context(shelf, database.folder, report)
    columns = _user_columns(shelf, database, report)
    _describe(shelf, database, columns, report)
    work = [*((p, n) for p, n in zip(new, numbers, strict=True)), *((p, None) for p in resume + update)]
    work.sort(key=lambda pair: pair[0].run)
    for plan, number in progress_over(work, "importing DAMNIT runs", progress):
        done = _import(shelf, database, plan, number, renumber, columns, report)
        if done is None:
            continue
        if plan.update is not None:
            report.updated.append(done)
        else:
            report.runs.append(done)
            if plan.existing is not None:
                report.completed.append(done)
    _log(shelf, database, report)
    return report


def progress_over(items: list[Any], desc: str, enabled: bool) -> Any:
    return progress(items, desc, enabled)


# -- reading the database --------------------------------------------------------------------------


def _inside(folder: Path, path: Path) -> bool:
    """Whether ``path``, links resolved, is inside ``folder`` (links resolved too)."""
    try:
        path.resolve(strict=True).relative_to(folder.resolve(strict=True))
    except (OSError, ValueError):
        return False
    return True


def _connect(database: Path) -> sqlite3.Connection:
    """``runs.sqlite`` read-only: nothing written into the DAMNIT folder, not even a -wal or -shm file."""
    uri = f"file:{urllib.parse.quote(str(database.resolve()))}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=30)
    connection.execute("PRAGMA query_only = ON")
    return connection


def _read_database(folder: Path, proposal: int | None) -> _Database:
    if not folder.is_dir():
        raise NotAShelf(f"{folder} is not a folder: give the DAMNIT folder (the one holding {DATABASE})")
    database = folder / DATABASE
    if not database.is_file():
        raise NotAShelf(f"{folder} is not a DAMNIT folder: it has no {DATABASE}")
    if not _inside(folder, database):
        raise NotAShelf(
            f"{database} is a link to a file outside {folder}: it is not read (the folder is untrusted)"
        )
    try:
        connection = _connect(database)
    except sqlite3.Error as exc:
        raise CorruptDataset(
            f"{database} cannot be opened read-only as an SQLite database: {why(exc)}"
        ) from None
    try:
        return _read_tables(connection, folder, database, proposal)
    except sqlite3.DatabaseError as exc:
        raise CorruptDataset(f"{database} is not a readable DAMNIT database: {why(exc)}") from None
    finally:
        connection.close()


def _read_tables(
    connection: sqlite3.Connection, folder: Path, database: Path, proposal: int | None
) -> _Database:
    tables = {
        row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
    }
    missing = [t for t in ("metameta", "run_info", "run_variables", "variables") if t not in tables]
    if missing:
        raise NotAShelf(
            f"{database} is an SQLite database but not DAMNIT's: it lacks the table(s) {', '.join(missing)}"
        )
    meta = {str(k): v for k, v in connection.execute("SELECT key, value FROM metameta")}
    warnings: list[Skipped] = []
    version = meta.get("data_format_version")
    if str(version) not in ("3", "4"):
        warnings.append(Skipped(str(database), f"DAMNIT database format {version!r}: read as format 4"))
    proposals = sorted(
        {row[0] for row in connection.execute("SELECT DISTINCT proposal FROM run_info")}, key=repr
    )
    proposal = _choose(proposals, proposal, meta.get("proposal"), database)
    db_id = meta.get("db_id")
    if not isinstance(db_id, str) or not db_id:
        db_id = "path-" + hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:20]

    variables: dict[str, _Variable] = {}
    for name, vtype, title, description, attributes in connection.execute(
        "SELECT name, type, title, description, attributes FROM variables"
    ):
        if not isinstance(name, str):
            continue
        variables[name] = _Variable(
            name,
            vtype if isinstance(vtype, str) else None,
            _text_or_none(title),
            _text_or_none(description),
            _json_object(attributes),
        )
    tags: dict[str, list[str]] = {}
    if {"tags", "variable_tags"} <= tables:
        for variable, tag in connection.execute(
            "SELECT vt.variable_name, t.name FROM variable_tags vt JOIN tags t ON t.id = vt.tag_id"
        ):
            if isinstance(variable, str) and isinstance(tag, str):
                tags.setdefault(variable, []).append(tag)
    comments: list[tuple[float, str]] = []
    if "time_comments" in tables:
        for stamp, text in connection.execute(
            "SELECT timestamp, comment FROM time_comments ORDER BY timestamp"
        ):
            if isinstance(text, str) and text:
                try:
                    comments.append((check_time(stamp, "a time_comments timestamp"), text))
                except ShelfError as exc:
                    warnings.append(Skipped(str(database), f"time comment {text[:40]!r} left out: {exc}"))
    runs = []
    for run, start, added in connection.execute(
        "SELECT run, start_time, added_at FROM run_info WHERE proposal = ? ORDER BY run", (proposal,)
    ):
        if isinstance(run, int) and not isinstance(run, bool):
            runs.append((run, start, added))
        else:
            warnings.append(
                Skipped(str(database), f"run_info row with run {run!r}: not a run number, left out")
            )
    rows: dict[int, dict[str, _Row]] = {}
    for run, name, version, value, stamp, origin, summary_type, attributes in connection.execute(
        "SELECT run, name, version, value, timestamp, provenance, summary_type, attributes FROM run_variables "
        "WHERE proposal = ? ORDER BY run, name, version",
        (proposal,),
    ):
        if not isinstance(name, str) or not isinstance(run, int):
            continue
        number = stamp if isinstance(stamp, (int, float)) and not isinstance(stamp, bool) else None
        rows.setdefault(run, {})[name] = _Row(  # ordered by version: the newest wins
            name,
            version,
            value,
            number,
            origin if isinstance(origin, str) else None,
            summary_type if isinstance(summary_type, str) else None,
            _json_object(attributes),
        )
    return _Database(folder, proposal, db_id, variables, tags, comments, runs, rows, warnings)


def _choose(proposals: list[Any], wanted: int | None, said: Any, database: Path) -> Any:
    if wanted is not None:
        if isinstance(wanted, bool) or not isinstance(wanted, int):
            raise InvalidOptions(f"proposal= takes a proposal number (an int), not {wanted!r}")
        if wanted not in proposals:
            listed = ", ".join(map(str, proposals)) or "none"
            raise InvalidOptions(f"{database} has no runs of proposal {wanted}; its proposals: {listed}")
        return wanted
    if len(proposals) > 1:
        raise InvalidOptions(
            f"{database} holds runs of {len(proposals)} proposals ({', '.join(map(str, proposals))}): choose one "
            "with proposal= (labshelf import damnit --proposal P)"
        )
    if proposals:
        return proposals[0]
    try:
        return int(said)
    except (TypeError, ValueError):
        return None


def _text_or_none(value: Any) -> str | None:
    return storable_text(value) if isinstance(value, str) and value else None


def _json_object(text: Any) -> dict[str, Any]:
    if not isinstance(text, str) or not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# -- plans: nothing written -------------------------------------------------------------------------


def _plan(database: _Database, run: int, start: Any, added: Any) -> _Plan:
    rows = database.rows.get(run, {})
    warnings: list[Skipped] = []
    where = f"{database.folder / DATABASE} [run {run}]"
    started = None
    for value, what in ((start, "start_time"), (added, "added_at")):
        if value is None:
            continue
        try:
            started = check_time(value, what)
            break
        except ShelfError as exc:
            warnings.append(Skipped(where, str(exc)))
    stamps = [r.timestamp for r in rows.values() if r.timestamp is not None and math.isfinite(r.timestamp)]
    if started is None:
        started = min(stamps) if stamps else 0.0
        warnings.append(Skipped(where, "no usable start_time: the earliest variable timestamp is the start"))
    ended = max([started, *(s for s in stamps if s < 2**33)])
    file = database.run_file(run)
    plan = _Plan(
        run,
        started,
        ended,
        rows,
        file if file.exists() or file.is_symlink() else None,
        f"damnit:{database.db_id}:p{database.proposal}:r{run}",
        warnings=warnings,
    )
    users = [COMMENT, *(name for name, v in database.variables.items() if v.type is not None)]
    said = [(name, rows[name].timestamp, repr(rows[name].version)) for name in sorted(users) if name in rows]
    plan.annotations = _source_hash("annotations", json.dumps(said))
    return plan


def _list(database: _Database, plan: _Plan, f: h5py.File | None) -> None:
    """The variables of a run (from its open file, or None), into its plan: done once."""
    if plan.listed:
        return
    where = str(plan.file) if plan.file is not None else f"{database.folder / DATABASE} [run {plan.run}]"
    users = {name for name, v in database.variables.items() if v.type is not None}
    in_file: set[str] = set()
    if f is not None:
        for key in sorted(f):
            if key.startswith("."):
                continue
            item = _file_item(f, key, plan, where)
            if item is not None:
                plan.items.append(item)
                in_file.add(key)
        errors = f.get(".errors")
        if errors is not None and not _is_link(f, ".errors"):
            for key in sorted(errors):
                text = _error_text(errors, key)
                if text is None:
                    plan.skipped.append(
                        Skipped(where, "an error DAMNIT recorded that is not text", f".errors/{key}")
                    )
                    continue
                if key in in_file:
                    plan.warnings.append(Skipped(where, "both a value and an error: the value is kept", key))
                    continue
                row = plan.rows.get(key)
                stamp = f"{row.timestamp}|{row.version}|" if row else ""
                digest = hashlib.sha256((stamp + text).encode()).hexdigest()
                plan.errors[key] = (text, _source_hash("error", digest))
    for name, row in sorted(plan.rows.items()):
        if name in users or name == COMMENT or name in in_file or name in plan.errors or row.value is None:
            continue
        dataset = _dataset_name(name, plan, where)
        if dataset is None:
            continue
        plan.items.append(_Item(name, dataset, "summary", _summary_bytes(row), _row_stamp(row)))
    if plan.file is not None:
        plan.sha256 = sha256_file(plan.file)
    else:
        plan.sha256 = hashlib.sha256(
            json.dumps([(r.name, repr(r.version), r.timestamp) for r in plan.rows.values()]).encode()
        ).hexdigest()
    for item in plan.items:
        if item.stamp.startswith("file|"):
            item.stamp = f"file|{plan.sha256}"
    plan.listed = True


def _is_link(group: h5py.Group, key: str) -> bool:
    import h5py

    return isinstance(group.get(key, getlink=True), (h5py.SoftLink, h5py.ExternalLink))


def _file_item(f: h5py.File, key: str, plan: _Plan, where: str) -> _Item | None:
    """A top-level group of a run file as an item (None, with the reason in the plan, if left out)."""
    import h5py

    if _is_link(f, key):
        plan.skipped.append(Skipped(where, "a link, not a variable (links are not followed)", key))
        return None
    node = f.get(key)
    row = plan.rows.get(key)
    stamp = _row_stamp(row) if row is not None else "file|"
    if not isinstance(node, h5py.Group):
        plan.skipped.append(Skipped(where, "not a variable's group", key))
        return None
    outside = group_refers_outside(node)
    if outside is not None:
        plan.skipped.append(Skipped(where, f"{outside} is a link or lies in other files (not followed)", key))
        return None
    objtype = node.attrs.get("_damnit_objtype", "")
    if isinstance(objtype, bytes):
        objtype = objtype.decode("utf-8", "replace")
    dataset = _dataset_name(key, plan, where)
    if dataset is None:
        return None
    if objtype in XARRAY_TYPES:
        size = sum(hdf5_nbytes(v) for v in node.values() if isinstance(v, h5py.Dataset))
        return _Item(key, dataset, "xarray", size, stamp, objtype)
    data = node.get("data")
    if not isinstance(data, h5py.Dataset) or _is_link(node, "data"):
        plan.skipped.append(
            Skipped(where, "a group without data (no <name>/data, not an xarray object)", key)
        )
        return None
    return _Item(key, dataset, "full", hdf5_nbytes(data), stamp)


def _dataset_name(variable: str, plan: _Plan, where: str) -> str | None:
    try:
        name = legal_name(variable.split("/"))
        dataset = DERIVED_PREFIX + name
        legal_name(dataset.split("/"))  # the whole, prefix included, within the length
    except ShelfError as exc:
        plan.skipped.append(Skipped(where, f"no labshelf name fits: {exc}", variable))
        return None
    if name != variable:
        plan.renamed[dataset] = variable
        plan.warnings.append(
            Skipped(where, f"stored as {dataset!r}: the name breaks labshelf's naming rules", variable)
        )
    return dataset


def _error_text(errors: h5py.Group, key: str) -> str | None:
    import h5py

    if _is_link(errors, key):
        return None
    node = errors.get(key)
    if not isinstance(node, h5py.Dataset) or refers_outside(node) or node.shape is None:
        return None
    try:
        raw = node[()]
    except Exception:  # a damaged error record: not imported, reported by the caller
        return None
    if hasattr(raw, "tobytes") and getattr(raw, "dtype", None) is not None and raw.dtype.kind in "uS":
        raw = raw.tobytes()
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    return storable_text(raw) if isinstance(raw, str) else None


def _row_stamp(row: _Row) -> str:
    return f"row|{row.timestamp!r}|{row.version!r}"


def _source_hash(how: str, stamp: str) -> str:
    head = f"{HASH_PREFIX}{how}:"
    return head + hashlib.sha256(stamp.encode()).hexdigest()[: MAX_SOURCE_HASH - len(head)]


def _variable_key(dataset: str) -> str:
    return dataset[len(DERIVED_PREFIX) :]


def _error_key(name: str) -> str:
    try:
        return legal_name(name.split("/"))
    except ShelfError:
        return name


def _summary_bytes(row: _Row) -> int:
    value = row.value
    if isinstance(value, (bytes, str)):
        return len(value)
    return 8


# -- what is new, numbers, clashes ------------------------------------------------------------------


def _imported_hashes(shelf: Shelf) -> dict[int, dict[str, str]]:
    """The ``derived`` rows of imported DAMNIT variables: run -> variable -> source hash."""
    out: dict[int, dict[str, str]] = {}
    for row in shelf._registry.derived_rows():
        source = row.get("source_hash")
        if isinstance(source, str) and source.startswith(HASH_PREFIX):
            out.setdefault(int(row["run"]), {})[str(row["variable"])] = source
    return out


def _sort_out(
    plans: list[_Plan], ledger: Ledger, imported: dict[int, dict[str, str]], report: ImportReport
) -> tuple[list[_Plan], list[_Plan], list[_Plan]]:
    """New plans, interrupted ones to finish, and imported runs to compare with DAMNIT now."""
    new: list[_Plan] = []
    resume: list[_Plan] = []
    update: list[_Plan] = []
    for plan in plans:
        record = ledger.find(plan.import_id)
        if record is None:
            new.append(plan)
        elif record.status != "running":
            plan.existing = record
            plan.update = imported.get(record.number, {})
            update.append(plan)
        elif interrupted(record):
            plan.existing = record
            resume.append(plan)
        else:
            report.skipped.append(
                Skipped(
                    plan.import_id, f"run {record.number} is being imported by process {record.pid} right now"
                )
            )
    return new, resume, update


def _numbers(new: list[_Plan], ledger: Ledger, renumber: bool) -> list[int]:
    if renumber:
        return ledger.next_numbers(len(new))
    clashes: list[str] = []
    for plan in new:
        if not 1 <= plan.run <= MAX_RUN:
            clashes.append(f"DAMNIT run {plan.run} is not a run number (1 to {MAX_RUN})")
        elif plan.run in ledger.numbers:
            record = ledger.numbers[plan.run]
            origin = record.params.get(SOURCE) if isinstance(record.params, Mapping) else None
            came = f"imported from {origin}" if origin else "not from this DAMNIT database"
            clashes.append(
                f"DAMNIT run {plan.run} is run {plan.run} of the shelf already ({record.experiment!r}, {came})"
            )
    if clashes:
        raise conflict(
            clashes,
            "Nothing was imported. Import with renumber=True (labshelf import damnit --renumber) to give the new "
            "runs the next free numbers, keeping DAMNIT's run in params['damnit_run']",
        )
    return [plan.run for plan in new]


def _dry_run(
    database: _Database,
    new: list[_Plan],
    numbers: list[int],
    resume: list[_Plan],
    update: list[_Plan],
    report: ImportReport,
) -> ImportReport:
    for plan, number in [*zip(new, numbers, strict=True), *((p, None) for p in resume + update)]:
        try:
            _list_run(database, plan)
        except Exception as exc:  # one unreadable run file: reported, the rest goes on
            report.skipped.append(Skipped(str(plan.file), f"cannot be read as a DAMNIT run file: {why(exc)}"))
            continue
        items = plan.items
        if plan.update is not None:
            items, errors, annotations = plan.changed()
            if not items and not errors and not annotations:
                report.already += 1
                continue
            assert plan.existing is not None
            report.updated.append(plan.existing.number)
        else:
            report.runs.append(number if number is not None else plan.existing.number)  # type: ignore[union-attr]
        report.datasets += len(items)
        report.bytes += sum(item.nbytes for item in items)
        report.skipped += plan.skipped
        report.warnings += plan.warnings
    report.completed = [p.existing.number for p in resume if p.existing]
    report.runs.sort()
    return report


def _list_run(database: _Database, plan: _Plan) -> None:
    import h5py

    if plan.listed:
        return
    if plan.file is None:
        _list(database, plan, None)
        return
    _check_file(database, plan.file)
    with h5py.File(plan.file, "r") as f:
        _list(database, plan, f)


def _check_file(database: _Database, file: Path) -> None:
    if not _inside(database.folder, file):
        raise ShelfError(
            "it is a link to a file outside the DAMNIT folder (not read: the folder is untrusted)"
        )


# -- writing ---------------------------------------------------------------------------------------


def _copy_context(shelf: Shelf, folder: Path, report: ImportReport) -> None:
    """``context.py`` as ``damnit_context.py`` in the shelf's folder: a document, never run."""
    source = folder / CONTEXT
    if not source.exists() and not source.is_symlink():
        return
    if not _inside(folder, source) or not source.is_file():
        report.warnings.append(
            Skipped(str(source), "not copied: it is a link leading outside the DAMNIT folder, or not a file")
        )
        return
    try:
        text = source.read_bytes()
    except OSError as exc:
        report.warnings.append(Skipped(str(source), f"not copied: {why(exc)}"))
        return
    if len(text) > MAX_CONTEXT_BYTES:
        report.warnings.append(Skipped(str(source), f"not copied: larger than {MAX_CONTEXT_BYTES} bytes"))
        return
    target = shelf.root / CONTEXT_COPY
    if target.is_file() and not target.is_symlink() and target.read_bytes() == text:
        return
    if target.exists() or target.is_symlink():
        report.warnings.append(Skipped(str(target), f"replaced by the context file of {folder}"))
    temporary = shelf.root / f".{CONTEXT_COPY}.{os.getpid()}.tmp"
    temporary.write_bytes(text)
    os.replace(temporary, target)  # replaces a link itself, never writes through it


def _user_columns(shelf: Shelf, database: _Database, report: ImportReport) -> dict[str, str]:
    """DAMNIT's user-editable variables as typed user columns (made even where no run has a value)."""
    from ..registry.annotations import check_column_name

    columns: dict[str, str] = {}
    where = str(database.folder / DATABASE)
    for name, variable in sorted(database.variables.items()):
        if variable.type is None or name == COMMENT:
            continue
        wanted = USER_TYPES.get(variable.type)
        if wanted is None:
            report.warnings.append(Skipped(where, f"user variable of type {variable.type!r}: left out", name))
            continue
        try:
            check_column_name(name)
            with shelf._registry.db.write() as txn:
                have = shelf._annotations.define_column(txn, name, wanted)
        except ShelfError as exc:
            report.warnings.append(Skipped(where, f"no user column can take it: {why(exc)}", name))
            continue
        if have != wanted:
            report.warnings.append(
                Skipped(where, f"user column {name!r} holds {have} values already, not {wanted}", name)
            )
        columns[name] = have
    return columns


def _describe(shelf: Shelf, database: _Database, columns: Mapping[str, str], report: ImportReport) -> None:
    """Titles, descriptions, units and tags of the variables, said once per import where they differ."""
    where = str(database.folder / DATABASE)
    units: dict[str, str] = {}
    styled: set[str] = set()
    for rows in database.rows.values():
        for name, row in rows.items():
            unit = row.attributes.get("units")
            if isinstance(unit, str) and unit:
                units[name] = unit
            if any(key in row.attributes for key in STYLING):
                styled.add(name)
    known: dict[str, str] = {}
    for name in sorted(set(database.variables) | {n for rows in database.rows.values() for n in rows}):
        if name == COMMENT:
            continue
        variable = database.variables.get(name)
        if variable is not None and variable.type is not None:
            if name not in columns:
                continue
            column = name
        else:
            try:
                column = DERIVED_PREFIX + legal_name(name.split("/"))
            except ShelfError:
                continue
        known[name] = column
        attributes = variable.attributes if variable is not None else {}
        if any(key in attributes for key in STYLING):
            styled.add(name)
        unit = attributes.get("units") if isinstance(attributes.get("units"), str) else units.get(name)
        fields = {
            "title": variable.title if variable is not None else None,
            "description": variable.description if variable is not None else None,
            "unit": unit or None,
        }
        _say(shelf, column, {k: v for k, v in fields.items() if v is not None}, where, name, report)
    for name in sorted(styled):
        report.warnings.append(
            Skipped(where, "cell styling (bold, background) dropped: labshelf's run table has none", name)
        )
    current = shelf.column_tags()
    for name, tags in sorted(database.tags.items()):
        tagged = known.get(name)
        if tagged is None:
            continue
        wanted = sorted(set(current.get(tagged, [])) | set(tags))
        if wanted == sorted(current.get(tagged, [])):
            continue
        try:
            shelf.tag_columns(tagged, wanted)
        except ShelfError as exc:
            report.warnings.append(Skipped(where, f"its tags {tags!r} dropped: {why(exc)}", name))


def _say(
    shelf: Shelf, column: str, fields: dict[str, Any], where: str, name: str, report: ImportReport
) -> None:
    if not fields:
        return
    said = shelf.metadata(column)
    fields = {k: v for k, v in fields.items() if getattr(said, k) != v}
    if not fields:
        return
    try:
        shelf.describe(column, **fields)
        return
    except ShelfError:
        pass
    for key, value in fields.items():  # one bad field does not lose the others
        try:
            shelf.describe(column, **{key: value})
        except ShelfError as exc:
            report.warnings.append(Skipped(where, f"its {key} {value!r} dropped: {why(exc)}", name))


def _log(shelf: Shelf, database: _Database, report: ImportReport) -> None:
    """``time_comments`` as logbook entries, each once (an entry of that time and text is not added again)."""
    have = {(float(row[1]), row[2]) for row in shelf._writer.meta.entries(None, None)}
    for stamp, text in database.comments:
        text = storable_text(text)
        if (stamp, text) in have:
            continue
        try:
            shelf.log(text, at=stamp)
        except ShelfError as exc:
            report.warnings.append(
                Skipped(str(database.folder / DATABASE), f"time comment not logged: {why(exc)}")
            )
            continue
        have.add((stamp, text))


def _import(
    shelf: Shelf,
    database: _Database,
    plan: _Plan,
    number: int | None,
    renumber: bool,
    columns: Mapping[str, str],
    report: ImportReport,
) -> int | None:
    """Write one planned run (or, for an imported one, what changed); returns its number, None if skipped."""
    import h5py

    f: h5py.File | None = None
    where = str(plan.file) if plan.file is not None else f"{database.folder / DATABASE} [run {plan.run}]"
    try:
        if plan.file is not None:
            _check_file(database, plan.file)
            f = h5py.File(plan.file, "r")
        _list(database, plan, f)
    except Exception as exc:  # one unreadable run file: reported and skipped, never the rest
        if f is not None:
            f.close()
        report.skipped.append(Skipped(where, f"cannot be read as a DAMNIT run file: {why(exc)}"))
        return None
    try:
        return _write(shelf, database, plan, f, number, renumber, columns, where, report)
    finally:
        if f is not None:
            f.close()


def _write(
    shelf: Shelf,
    database: _Database,
    plan: _Plan,
    f: h5py.File | None,
    number: int | None,
    renumber: bool,
    columns: Mapping[str, str],
    where: str,
    report: ImportReport,
) -> int | None:
    from ..run import Run

    items, errors, annotations = plan.items, plan.errors, True
    if plan.update is not None:
        items, errors, annotations = plan.changed()
        if not items and not errors and not annotations:
            report.already += 1
            return None
        assert plan.existing is not None
        run = Run(shelf, plan.existing)
        present: set[str] = set()
    elif plan.existing is not None:
        run, present = reopen(shelf, plan.existing, plan.names)
    else:
        run = start_run(
            shelf,
            number=None if renumber else number,
            experiment=EXPERIMENT,
            params=_params(database, plan),
            started=plan.started,
        )
        present = set()
    report.skipped += plan.skipped
    report.warnings += plan.warnings
    ended = run.status != "running"
    rows: list[dict[str, Any]] = []
    for item in items:
        if item.dataset not in present and not _put(shelf, run.number, f, plan, item, ended, where, report):
            continue
        rows.append(_derived_row(run.number, _variable_key(item.dataset), item.source_hash, "ok", None))
    for name, (text, source_hash) in errors.items():
        rows.append(_derived_row(run.number, _error_key(name), source_hash, "error", text))
    if annotations:
        # DAMNIT's comment and user values, written at the first import and when DAMNIT changed
        # them since (so an edit made on the shelf meanwhile stays until DAMNIT's changes again).
        _annotate(shelf, run.number, plan, columns, where, report)
        rows.append(_derived_row(run.number, ANNOTATIONS, plan.annotations, "ok", None))
    if rows:
        shelf._registry.record_derived(rows)
    if not ended:
        end_run(run, plan.ended)
    return run.number


def _params(database: _Database, plan: _Plan) -> dict[str, Any]:
    source = plan.file if plan.file is not None else database.folder / DATABASE
    params: dict[str, Any] = {PROPOSAL: _plain(database.proposal), RUN: plan.run}
    origins = {
        name: storable_text(row.provenance) for name, row in sorted(plan.rows.items()) if row.provenance
    }
    if origins:
        params[PROVENANCE] = origins
    summary_only = sorted(item.dataset for item in plan.items if item.how == "summary")
    if summary_only:
        params[SUMMARY_ONLY] = summary_only
    if plan.renamed:
        params[RENAMED] = dict(sorted(plan.renamed.items()))
    params.update(provenance(source, plan.sha256, plan.import_id))
    return params


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str)) or value is None else repr(value)


def _derived_row(run: int, variable: str, source_hash: str, status: str, error: str | None) -> dict[str, Any]:
    return {
        "run": run,
        "variable": variable,
        "source_hash": source_hash,
        "inputs": {},
        "status": status,
        "error": error,
    }


def _put(
    shelf: Shelf,
    number: int,
    f: h5py.File | None,
    plan: _Plan,
    item: _Item,
    ended: bool,
    where: str,
    report: ImportReport,
) -> bool:
    """Store one variable; whether it was stored (else skipped, with the reason in the report)."""
    options = None
    try:
        if item.how == "summary":
            value = _summary_value(plan.rows[item.variable])
        elif item.how == "xarray":
            assert plan.file is not None
            value = _xarray_value(plan.file, item.variable, item.objtype)
        else:
            assert f is not None
            value, options = hdf5_value(f[item.variable]["data"])
    except SkipDataset as exc:
        report.skipped.append(Skipped(where, str(exc), item.variable))
        return False
    except Exception as exc:  # a damaged value: skipped, the run's others go on
        report.skipped.append(Skipped(where, f"cannot be read: {why(exc)}", item.variable))
        return False
    try:
        # derived=True writes into an ended run: a DAMNIT run imported before whose variable changed since.
        shelf._writer.put(number, item.dataset, value, hdf5_options=options, derived=ended)
    except (InvalidName, InvalidValue, InvalidOptions, UnsupportedValue) as exc:
        report.skipped.append(Skipped(where, f"labshelf cannot keep it: {why(exc)}", item.variable))
        return False
    report.datasets += 1
    report.bytes += _size(value)
    return True


def _size(value: Any) -> int:
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int) and not hasattr(value, "dtype"):  # xarray objects
        return nbytes
    return value_bytes(value)


def _xarray_value(file: Path, name: str, objtype: str) -> Any:
    """An xarray group of a run file, read whole, without DAMNIT's own ``_damnit_*`` attributes."""
    import xarray as xr

    load = xr.load_dataarray if objtype == "dataarray" else xr.load_dataset
    value = load(file, group=name, engine="h5netcdf")
    value.attrs = {k: v for k, v in value.attrs.items() if not str(k).startswith("_damnit_")}
    return value


def _summary_value(row: _Row) -> Any:
    """A ``run_variables`` summary as a value: a number, text, complex, a PNG's pixels, a numpy blob."""
    value = row.value
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, str)):
        return value
    if not isinstance(value, bytes):
        raise SkipDataset(f"a summary of type {type(value).__name__}: labshelf has no kind for it")
    if row.summary_type == "complex":
        if len(value) != 16:
            raise SkipDataset(f"a complex summary of {len(value)} bytes (DAMNIT writes 16)")
        real, imag = struct.unpack("<dd", value)
        return complex(real, imag)
    if value.startswith(_PNG):
        return png_pixels(value)
    if value.startswith(_NUMPY):
        import io

        import numpy as np

        return np.load(io.BytesIO(value), allow_pickle=False)
    raise SkipDataset(f"a summary of {len(value)} bytes of unknown type (summary_type {row.summary_type!r})")


def _annotate(
    shelf: Shelf, number: int, plan: _Plan, columns: Mapping[str, str], where: str, report: ImportReport
) -> None:
    """The run's comment and its user-column values (only what differs is written: annotate compares)."""
    values: dict[str, Any] = {}
    for name, column_type in columns.items():
        row = plan.rows.get(name)
        if row is None or row.value is None:
            continue
        try:
            values[name] = _typed(row.value, column_type)
        except (TypeError, ValueError):
            report.warnings.append(
                Skipped(where, f"value {row.value!r} is not a {column_type}: left out", name)
            )
    comment_row = plan.rows.get(COMMENT)
    comment: Any = ...
    if comment_row is not None and isinstance(comment_row.value, str) and comment_row.value:
        comment = storable_text(comment_row.value)
    if comment is ... and not values:
        return
    try:
        shelf.annotate(number, comment=comment, **values)
        return
    except ShelfError:
        pass
    for name, value in [(COMMENT, comment), *values.items()]:  # find the one refused, keep the rest
        if value is ...:
            continue
        try:
            if name == COMMENT:
                shelf.annotate(number, comment=value)
            else:
                shelf.annotate(number, **{name: value})
        except ShelfError as exc:
            report.warnings.append(Skipped(where, f"not kept: {why(exc)}", name))


def _typed(value: Any, column_type: str) -> Any:
    """A DAMNIT user value as its column's type (SQLite keeps bools and whole numbers as integers)."""
    if column_type == "bool":
        if isinstance(value, (bool, int)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(value)
    if column_type == "int":
        if isinstance(value, bool):
            raise TypeError(value)
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(value)
    if column_type == "number":
        if isinstance(value, (bool, str, bytes)):
            raise TypeError(value)
        return float(value)
    if not isinstance(value, str):
        raise TypeError(value)
    return storable_text(value)
