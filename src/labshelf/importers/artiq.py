"""ARTIQ results files as labshelf runs: ``labshelf.importers.artiq(shelf, "results")``.

ARTIQ writes one HDF5 file per experiment run,
``results/<YYYY-MM-DD>/<HH>/<rid:09d>-<Class>.h5``, holding ``rid``,
``start_time``, ``run_time``, ``artiq_version`` (ARTIQ 7+), ``expid`` (PYON
text) and the groups ``datasets/`` (what the experiment archived) and
``archive/`` (datasets it read, e.g. calibrations), with ``unit``, ``scale``
and ``precision`` attributes from ARTIQ 8 on.  Each file becomes one run:

- number: the RID (``renumber=True``: the next free numbers, in RID order);
  the RID is always kept in ``params["artiq_rid"]``;
- experiment: ``expid["class_name"]``; params: ``expid["arguments"]`` plus
  ``artiq_file``, ``artiq_repo_rev``, ``artiq_version``, ``artiq_rid`` and the
  provenance of ``_common`` (``source``, ``source_sha256``, ``import_id``);
- start: ``start_time``; end: ``run_time`` (ARTIQ records when ``run()``
  began, not when the run ended: it is the last time the file holds);
  status ``finished``;
- ``datasets/a.b.c`` becomes dataset ``a/b/c``, ``archive/a.b`` becomes
  ``archive/a/b``; their ``unit``/``scale``/``precision`` become display
  metadata; ``datasets/thumbnail`` (PNG bytes) becomes the image dataset
  ``thumbnail``, shown in the run table.

The file is read in two passes: a plan (header, names, sizes, checksum;
nothing written, which is all ``dry_run`` does, and all the clash check
needs) and the import itself.  A file that cannot be read is skipped with
the reason, as is a dataset labshelf cannot keep exactly; the rest goes on.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import (
    InvalidName,
    InvalidOptions,
    InvalidValue,
    NotAShelf,
    ShelfError,
    UnsupportedValue,
)
from . import pyon
from ._common import (
    IMPORT_ID,
    RENAMED,
    SOURCE,
    SOURCE_SHA256,
    ImportReport,
    Ledger,
    Skipped,
    display_meta,
    end_run,
    json_safe,
    legal_name,
    progress,
    provenance,
    reopen,
    sha256_file,
    sort_out,
    source_numbers,
    start_run,
    storable_text,
)
from ._common import SkipDataset as _Skip
from ._common import check_time as _check_time
from ._common import hdf5_nbytes as _nbytes
from ._common import hdf5_value as _value
from ._common import png_pixels as _png_pixels
from ._common import refers_outside as _refers_outside
from ._common import value_bytes as _value_bytes
from ._common import why as _why

if TYPE_CHECKING:
    import h5py

    from ..registry.records import RunRecord
    from ..run import Run
    from ..shelf import Shelf

__all__ = ["artiq"]

#: ``<rid>-<ExperimentClass>.h5``, as ARTIQ names a results file (the RID zero-padded to 9 digits).
FILE_NAME = re.compile(r"(\d+)-(.+)\.h5\Z")
#: Params keys the importer writes; an expid argument of one of these names is kept as ``argument:<name>``.
RESERVED = ("artiq_file", "artiq_repo_rev", "artiq_version", "artiq_rid", "artiq_expid", SOURCE, SOURCE_SHA256,
            IMPORT_ID, RENAMED)
THUMBNAIL = "thumbnail"
#: A file's datasets go in batches (one transaction each) of at most this many, or this many bytes read.
BATCH_DATASETS = 1000
BATCH_BYTES = 64 << 20


@dataclass
class _Item:
    """One dataset of a results file to import."""

    name: str  # the labshelf name
    path: str  # where it is in the file, e.g. "datasets/ndscan.points.axis_0"
    nbytes: int


@dataclass
class _Plan:
    """One results file, read (header, names, sizes) but not yet imported."""

    path: Path
    rid: int
    sha256: str
    experiment: str
    params: dict[str, Any]
    started: float
    ended: float
    items: list[_Item] = field(default_factory=list)
    thumbnail: str | None = None
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[Skipped] = field(default_factory=list)
    existing: RunRecord | None = None
    listed: bool = False  # whether items, thumbnail and the name warnings are there yet

    @property
    def import_id(self) -> str:
        return f"artiq:{self.sha256}"

    @property
    def names(self) -> list[str]:
        return [item.name for item in self.items] + ([THUMBNAIL] if self.thumbnail else [])

    @property
    def nbytes(self) -> int:
        return sum(item.nbytes for item in self.items)


def artiq(
    shelf: Shelf,
    path: str | os.PathLike[str],
    *,
    renumber: bool = False,
    dry_run: bool = False,
    link: bool = False,
    progress: bool = True,
) -> ImportReport:
    """Import an ARTIQ ``results`` folder (or one results file) into ``shelf``, one run per file.

    Parameters
    ----------
    shelf
        A writable shelf (a read-only one is enough for ``dry_run``).
    path
        The ``results`` folder ARTIQ writes (any folder holding
        ``<rid>-<Class>.h5`` files, searched recursively), or one such file.
    renumber
        Give the new runs the next free run numbers instead of their RIDs
        (the RID stays in ``params["artiq_rid"]``).  Without it, a RID that
        is the number of a run of the shelf from elsewhere is an
        :class:`~labshelf.errors.ImportConflict` listing every such RID,
        raised before anything is written.
    dry_run
        Only read the files and report what would be imported (runs,
        datasets, bytes); write nothing.
    link
        Keep numeric arrays of at least :data:`labshelf.ingest.LINK_ABOVE`
        bytes (1 MiB) in the results files instead of copying them: they are
        ingested in place (``run.ingest``), read from there, and must stay
        where they are, unchanged.  Smaller values are copied as without it.
    progress
        Show a progress bar (tqdm) over the files.

    Returns
    -------
    ImportReport
        Runs imported, datasets and bytes, files found imported already,
        and everything skipped or changed, with the reason.

    Importing the same folder again imports only the files that are new
    (a file is known by the checksum of its bytes, wherever it lies), and
    finishes a run an interrupted import left unfinished.
    """
    source = Path(path)
    if not source.exists():
        raise NotAShelf(f"{source} does not exist: give the ARTIQ results folder (or one results file)")
    if not dry_run:
        shelf._check_writable()
        if link:
            from ..ingest import confirm_folder

            # Importing this folder is choosing its files: this user's shelf may read them in place.
            confirm_folder(shelf, source if source.is_dir() else source.parent)
    report = ImportReport(source=str(source), dry_run=dry_run)
    files = _results_files(source, report)
    ledger = Ledger(shelf)

    plans: list[_Plan] = []
    for file, rid in _progress(files, "reading ARTIQ files", progress):
        try:
            plans.append(_plan(file, rid, listed=dry_run))
        except Exception as exc:  # any failure to read one file skips that file, never the rest
            report.skipped.append(Skipped(str(file), f"cannot be read as an ARTIQ results file: {_why(exc)}"))
    plans.sort(key=lambda p: (p.rid, str(p.path)))

    new, resume = _sort_out(plans, ledger, report)
    numbers = _numbers(new, ledger, renumber)
    if dry_run:
        for plan, number in [*zip(new, numbers, strict=True), *((p, p.existing.number) for p in resume if p.existing)]:
            report.runs.append(number)
            report.datasets += len(plan.names)
            report.bytes += plan.nbytes
            report.skipped += plan.skipped
            report.warnings += plan.warnings
        report.completed = [p.existing.number for p in resume if p.existing]
        report.runs.sort()
        return report

    work = sorted([*((p, n) for p, n in zip(new, numbers, strict=True)), *((p, None) for p in resume)],
                  key=lambda pair: (pair[0].rid, str(pair[0].path)))
    for plan, number in _progress(work, "importing ARTIQ files", progress):
        run_number = _import(shelf, plan, number, renumber, report, link)
        if run_number is not None:
            report.runs.append(run_number)
            if plan.existing is not None:
                report.completed.append(run_number)
    return report


def _progress(items: list[Any], desc: str, enabled: bool) -> Any:
    return progress(items, desc, enabled)


# -- finding the files ---------------------------------------------------------------------


def _results_files(source: Path, report: ImportReport) -> list[tuple[Path, int]]:
    """Every ``*.h5`` under ``source`` (links to folders not followed), with the RID its name says."""
    candidates: list[Path] = []
    if source.is_file():
        candidates.append(source)
    else:
        for folder, subfolders, names in os.walk(source):
            subfolders.sort()
            candidates += [Path(folder) / n for n in sorted(names) if n.endswith(".h5")]
    out = []
    for file in candidates:
        match = FILE_NAME.match(file.name)
        if match is None:
            report.skipped.append(Skipped(str(file), "not named as ARTIQ names results files (<rid>-<Class>.h5)"))
            continue
        out.append((file, int(match.group(1))))
    return out


# -- the plan: one file read, nothing written ------------------------------------------------


def _plan(path: Path, rid_from_name: int, listed: bool) -> _Plan:
    """A file's header and checksum (and with ``listed`` its datasets): what numbering and clashes need."""
    import h5py

    sha256 = sha256_file(path)
    warnings: list[Skipped] = []
    where = str(path)
    with h5py.File(path, "r") as f:
        rid = _number(f, "rid")
        if rid is None:
            rid = rid_from_name
            warnings.append(Skipped(where, f"no rid in the file: the RID {rid} of its name is used"))
        elif rid != rid_from_name:
            warnings.append(Skipped(where, f"the file says rid {rid}, its name {rid_from_name}: {rid} is used"))
        experiment = FILE_NAME.match(path.name).group(2)  # type: ignore[union-attr]  # matched by the caller
        params: dict[str, Any] = {}
        expid_text = _text(f, "expid")
        if expid_text is not None:
            experiment = _read_expid(expid_text, params, experiment, where, warnings)
        version = _text(f, "artiq_version")
        if version is not None:
            params["artiq_version"] = storable_text(version)
        params["artiq_rid"] = rid
        params.update(provenance(path, sha256, f"artiq:{sha256}"))
        started, ended = _times(f, path, warnings)
        plan = _Plan(path, rid, sha256, experiment, params, started, ended, warnings=warnings)
        if listed:
            _list(f, plan)
    return plan


def _list(f: h5py.File, plan: _Plan) -> None:
    """The datasets of a file, into its plan (done once, with the file open for the import itself)."""
    if plan.listed:
        return
    renamed: dict[str, str] = {}
    for group, prefix in (("datasets", ()), ("archive", ("archive",))):
        if group in f:
            _walk(f, group, prefix, plan, renamed)
    if renamed:
        plan.params[RENAMED] = renamed
    plan.listed = True


def _number(f: h5py.File, key: str) -> int | None:
    try:
        value = f[key][()]
    except (KeyError, TypeError, ValueError, OSError):
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    return None


def _text(f: h5py.File, key: str) -> str | None:
    try:
        value = f[key][()]
    except (KeyError, TypeError, ValueError, OSError):
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return None


def _read_expid(text: str, params: dict[str, Any], experiment: str, where: str, warnings: list[Skipped]) -> str:
    """Params from the expid (PYON); returns the experiment (its class name)."""
    try:
        expid = pyon.decode(text)
        if not isinstance(expid, dict):
            raise pyon.PyonError(f"an expid is a dict, not a {type(expid).__name__}", 0)
    except pyon.PyonError as exc:
        params["artiq_expid"] = storable_text(text)
        warnings.append(Skipped(where, f"expid is not PYON ({exc}): kept as text in params['artiq_expid']"))
        return experiment
    arguments = expid.get("arguments")
    if isinstance(arguments, dict):
        for key, value in arguments.items():
            name = storable_text(key if isinstance(key, str) else repr(key))
            if name in RESERVED:
                warnings.append(Skipped(where, f"argument {name!r} kept as params['argument:{name}'] (name taken)"))
                name = f"argument:{name}"
            params[name] = _storable(json_safe(value))
    elif arguments is not None:
        warnings.append(Skipped(where, f"expid arguments are a {type(arguments).__name__}, not a dict: left out"))
    for key, param in (("file", "artiq_file"), ("repo_rev", "artiq_repo_rev")):
        if key in expid and expid[key] is not None:
            params[param] = _storable(json_safe(expid[key]))
    class_name = expid.get("class_name")
    if isinstance(class_name, str) and class_name:
        return storable_text(class_name)
    return experiment


def _storable(value: Any) -> Any:
    """Strings inside params as every registry stores them."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {storable_text(k): _storable(v) for k, v in value.items()}
    return value


def _times(f: h5py.File, path: Path, warnings: list[Skipped]) -> tuple[float, float]:
    where = str(path)
    found: dict[str, float] = {}
    for key in ("start_time", "run_time"):
        try:
            raw = f[key][()]
        except (KeyError, TypeError, ValueError, OSError):
            continue
        try:
            found[key] = _check_time(raw.item() if hasattr(raw, "item") else raw, key)
        except ShelfError as exc:
            warnings.append(Skipped(where, str(exc)))
    started = found.get("start_time", found.get("run_time"))
    if started is None:
        started = path.stat().st_mtime
        warnings.append(Skipped(where, "no usable start_time or run_time: the file's modification time is the start"))
    elif "start_time" not in found:
        warnings.append(Skipped(where, "no usable start_time: run_time is the start"))
    ended = found.get("run_time", started)
    return started, max(ended, started)


def _walk(f: h5py.File, group_path: str, prefix: tuple[str, ...], plan: _Plan, renamed: dict[str, str]) -> None:
    """The datasets under ``group_path``, recursively: ARTIQ keys with ``.`` (and ``/``) as hierarchy."""
    import h5py

    where = str(plan.path)
    taken = {item.name: item.path for item in plan.items}
    stack = [(group_path, prefix)]
    while stack:
        path, parts = stack.pop()
        group = f[path]
        for key in sorted(group, reverse=True):
            member = f"{path}/{key}"
            link = group.get(key, getlink=True)
            if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
                plan.skipped.append(Skipped(where, "a link, not a dataset (links are not followed)", member))
                continue
            node = group.get(key)
            key_parts = (*parts, *key.split("."))
            if isinstance(node, h5py.Group):
                stack.append((member, key_parts))
                continue
            if not isinstance(node, h5py.Dataset):
                plan.skipped.append(Skipped(where, "not a dataset", member))
                continue
            if member == "datasets/thumbnail":
                plan.thumbnail = member
                continue
            if _refers_outside(node):
                plan.skipped.append(Skipped(where, "its data lie in other files (not followed)", member))
                continue
            try:
                name = legal_name(key_parts)
            except ShelfError as exc:
                plan.skipped.append(Skipped(where, f"no labshelf name fits: {exc}", member))
                continue
            if name in taken or (name == THUMBNAIL and plan.thumbnail):
                plan.skipped.append(Skipped(where, f"becomes {name!r}, as {taken.get(name, 'the thumbnail')} does", member))
                continue
            if name != "/".join(key_parts):
                renamed[name] = member
                plan.warnings.append(Skipped(where, f"stored as {name!r}: the name breaks labshelf's naming rules", member))
            taken[name] = member
            plan.items.append(_Item(name, member, _nbytes(node)))
    plan.items.sort(key=lambda item: item.path)


# -- what is new, numbers, clashes --------------------------------------------------------------


def _sort_out(plans: list[_Plan], ledger: Ledger, report: ImportReport) -> tuple[list[_Plan], list[_Plan]]:
    return sort_out(plans, ledger, report)


def _numbers(new: list[_Plan], ledger: Ledger, renumber: bool) -> list[int]:
    """The run number of each new plan: its RID, or with ``renumber`` the next free ones."""
    return source_numbers(
        new, ledger, renumber, number_of=lambda plan: plan.rid, what="RID",
        advice="Nothing was imported. Import with renumber=True (labshelf import artiq --renumber) to give the new "
        "runs the next free numbers, keeping each RID in params['artiq_rid']",
    )


# -- the import of one file ------------------------------------------------------------------------


def _import(
    shelf: Shelf, plan: _Plan, number: int | None, renumber: bool, report: ImportReport, link: bool = False
) -> int | None:
    """Write one planned file as a run; returns its number (None if the file could not be read now)."""
    import h5py

    where = str(plan.path)
    try:
        f = h5py.File(plan.path, "r")
    except Exception as exc:  # gone or changed since it was planned: skipped like any unreadable file
        report.skipped.append(Skipped(where, f"cannot be read as an ARTIQ results file: {_why(exc)}"))
        return None
    with f:
        try:
            _list(f, plan)
        except Exception as exc:  # a damaged file can fail anywhere: skipped before anything is written
            report.skipped.append(Skipped(where, f"cannot be read as an ARTIQ results file: {_why(exc)}"))
            return None
        if plan.existing is not None:
            run, present = reopen(shelf, plan.existing, plan.names)
        else:
            run = start_run(
                shelf, number=None if renumber else number, experiment=plan.experiment, params=plan.params,
                started=plan.started,
            )
            present = set()
        report.skipped += plan.skipped
        report.warnings += plan.warnings
        batch: list[_Read] = []
        size = 0
        for item in plan.items:
            if item.name in present:
                continue
            read = _read(f, item, where, report, (run, plan.path) if link else None)
            if read is not None:
                batch.append(read)
                size += read.nbytes
                if len(batch) >= BATCH_DATASETS or size >= BATCH_BYTES:
                    _put_batch(run, batch, where, report)
                    batch, size = [], 0
        if plan.thumbnail and THUMBNAIL not in present:
            read = _read_thumbnail(f, plan.thumbnail, where, report)
            if read is not None:
                batch.append(read)
        _put_batch(run, batch, where, report)
        end_run(run, plan.ended)
    return run.number


@dataclass
class _Read:
    """One dataset read from its file, ready to put."""

    item: _Item
    value: Any
    options: dict[str, Any] | None
    meta: dict[str, Any]
    nbytes: int
    #: What a skip says when labshelf refuses the value.
    refused: str = "labshelf cannot keep it"


def _read(
    f: h5py.File, item: _Item, where: str, report: ImportReport, link: tuple[Run, Path] | None = None
) -> _Read | None:
    """The value of ``item``, or None when it was skipped or (``link``: into this run, from this
    file) ingested in place."""
    try:
        node = f[item.path]
        if link is not None and _linked(link[0], node, item, link[1], report):
            return None
        value, options = _value(node)
        meta, problems = display_meta(_attrs(node))
    except _Skip as exc:
        report.skipped.append(Skipped(where, str(exc), item.path))
        return None
    except Exception as exc:  # a damaged dataset: skipped, the file's others go on
        report.skipped.append(Skipped(where, f"cannot be read: {_why(exc)}", item.path))
        return None
    report.warnings += [Skipped(where, problem, item.path) for problem in problems]
    return _Read(item, value, options, meta, _value_bytes(value))


def _put_batch(run: Run, batch: list[_Read], where: str, report: ImportReport) -> None:
    """The datasets of ``batch`` in one transaction (``run.put_many``): a kill leaves all or none of
    them, and the next import puts what is missing.  If labshelf refuses one, they go one by one, so
    only that one is skipped, with its reason."""
    if not batch:
        return
    try:
        run.put_many(
            {read.item.name: read.value for read in batch},
            meta={read.item.name: read.meta for read in batch if read.meta},
            hdf5_options={read.item.name: read.options for read in batch if read.options},
        )
    except (InvalidName, InvalidValue, InvalidOptions, UnsupportedValue):
        for read in batch:
            _put(run, read, where, report)
        return
    report.datasets += len(batch)
    report.bytes += sum(read.nbytes for read in batch)


def _put(run: Run, read: _Read, where: str, report: ImportReport) -> None:
    try:
        run.put(read.item.name, read.value, hdf5_options=read.options, **read.meta)
    except (InvalidName, InvalidValue, InvalidOptions, UnsupportedValue) as exc:
        report.skipped.append(Skipped(where, f"{read.refused}: {_why(exc)}", read.item.path))
        return
    report.datasets += 1
    report.bytes += read.nbytes


def _linked(run: Run, node: h5py.Dataset, item: _Item, path: Path, report: ImportReport) -> bool:
    """Ingest a large array in place (``link=True``); False when it is to be copied instead."""
    from ..errors import IngestError
    from ..ingest import linkable

    if not linkable(node):
        return False
    meta, problems = display_meta(_attrs(node))
    try:
        ref = run.ingest(item.name, path, dataset=item.path, **meta)
    except IngestError as exc:  # kept by copying, as without link
        report.warnings.append(Skipped(str(path), f"copied, not linked: {_why(exc)}", item.path))
        return False
    report.warnings += [Skipped(str(path), problem, item.path) for problem in problems]
    report.datasets += 1
    report.bytes += ref.nbytes
    return True


def _attrs(node: h5py.Dataset) -> dict[str, Any]:
    attrs = node.attrs
    if not len(attrs):  # the common case: one call instead of three
        return {}
    return {key: attrs[key] for key in ("unit", "scale", "precision") if key in attrs}


def _read_thumbnail(f: h5py.File, member: str, where: str, report: ImportReport) -> _Read | None:
    """``datasets/thumbnail`` (PNG bytes) as the image dataset ``thumbnail``: the run table shows it."""
    try:
        raw = f[member][()]
        data = raw.tobytes() if isinstance(raw, np.void | np.ndarray) else bytes(raw)
        picture = _png_pixels(data)
    except Exception as exc:  # not a PNG we can read: the run goes on without it
        report.skipped.append(Skipped(where, f"the thumbnail is not a readable PNG: {_why(exc)}", member))
        return None
    if picture.ndim == 2 and min(picture.shape) < 16 or picture.ndim == 3 and min(picture.shape[:2]) < 16:
        report.warnings.append(Skipped(where, "the thumbnail is smaller than 16 px: kept as an array, not shown", member))
    item = _Item(THUMBNAIL, member, int(picture.nbytes))
    return _Read(item, picture, None, {}, int(picture.nbytes), "labshelf cannot keep the thumbnail")
