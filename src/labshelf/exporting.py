"""Runs as self-describing HDF5 files anyone can read: ``labshelf.export(shelf, "out")``.

What OUT_DIR holds
------------------
- ``run_<number>.h5``: one file per run (layout below), readable with plain
  h5py, and its xarray values with ``xr.open_dataset(path, group=...,
  engine="h5netcdf")``; no labshelf needed.
- ``index.json``: what belongs to the shelf rather than to a run: the runs
  exported into this folder, display metadata of every name (per data ID
  too), column tags, the user columns and their types, and the logbook's
  entries (all of them; with ``runs=``, those from the first exported
  run's start to the last one's end).  A later export into the same folder
  merges into it.

A run file
----------
Root attributes: ``labshelf_export_format`` (``"labshelf-run"``) and
``labshelf_export_version`` (1), ``labshelf_version``, ``shelf`` (where
the run came from), ``exported`` / ``exported_unix``; the run's ``run``
(number), ``experiment``, ``params`` (JSON text), ``status``, ``start`` /
``start_unix``, ``end`` / ``end_unix`` (absent while running), ``host``,
``user``, ``pid``, ``error``, ``comment`` (when set), ``tags`` (array of
str), ``columns`` (JSON: ``{name: {"type": ..., "value": ...}}``) and one
attribute ``column:<name>`` per user value.  A run still running when
exported keeps ``status`` ``"running"`` and has ``exported_while_running``.

Datasets, by name, as HDF5 paths (``camera/image`` is ``/camera/image``):

- data IDs: ``/<name>/@<dim>=<value>,...`` (values as JSON, ``/`` and
  ``%`` written ``%2F``, ``%25``); a dataset name's parts never start with
  ``@``, so these never clash with one;
- a value whose path is also the group of other values (``a`` beside
  ``a/b``, or the data-ID-less one of a name with data IDs) is at
  ``<path>/@value``;
- composites are groups holding their components by name (``/calexp/psf``);
- each value object carries ``labshelf_name``, ``labshelf_kind``,
  ``labshelf_dataset_version``, ``labshelf_created`` (ISO), and where they
  say something ``labshelf_data_id`` (JSON; absent: no data ID),
  ``labshelf_meta`` (JSON of its display metadata) and the data ID's
  dimensions as ``data_id.<dim>``; all but
  xarray groups (whose attributes are the Dataset's own) also carry the
  display metadata as ``unit`` (and CF ``units``), ``scale``, ``precision``,
  ``title`` (and CF ``long_name``), ``description``.

Value kinds: scalars are scalar datasets (``labshelf_type`` says the Python
type: ``int`` beyond 64 bits is its digits as text, ``bytes`` and ``str``
holding NUL are uint8 arrays, ``None`` an empty dataset); numpy arrays are
datasets (unicode as UTF-8 bytes and datetimes as int64, with the numpy dtype
in ``labshelf_dtype``, as in the datastore), images with the HDF5 IMAGE
attributes; xarray values are NetCDF-4 groups; pandas values are groups with
``table`` (a compound dataset of the index and the columns: numbers as they
are, anything else as text) and ``parquet`` (the exact Parquet file labshelf
keeps, as uint8 bytes: ``pd.read_parquet(io.BytesIO(f[".../parquet"][()].tobytes()))``).

Every file is written under a temporary name in OUT_DIR and renamed into
place when whole; an existing file is never replaced without
``overwrite=True``, and a rename replaces a link, never writes through it.
``labshelf.importers.labshelf_export`` reads such a folder back.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._format import size_text
from .errors import InvalidOptions, RunNotFound, ShelfError, UnsafePath

if TYPE_CHECKING:
    import h5py
    import numpy as np

    from .importers._common import Skipped
    from .registry.meta import DisplayMeta
    from .registry.records import DatasetRef, RunRecord
    from .shelf import Shelf

__all__ = ["ExportReport", "export"]

FORMATS = ("hdf5",)
FORMAT = "labshelf-run"
FORMAT_VERSION = 1
INDEX = "index.json"
INDEX_FORMAT = "labshelf-export"
#: ``run_<number>.h5``: the name of a run's file.
RUN_FILE = re.compile(r"run_(\d+)\.h5\Z")
#: Temporary files (``.labshelf-export-<token>.tmp``); those an export killed left are removed after an hour.
TMP_PREFIX = ".labshelf-export-"
TMP_SUFFIX = ".tmp"
STALE_TMP_SECONDS = 3600.0

#: Where a value whose path is also a group lies, inside that group.
VALUE = "@value"
# Attributes of each value object.
NAME = "labshelf_name"
DATA_ID = "labshelf_data_id"
KIND = "labshelf_kind"
TYPE = "labshelf_type"
META = "labshelf_meta"
OPTIONS = "labshelf_hdf5_options"
COMPOSITE = "labshelf_composite"
VERSION = "labshelf_dataset_version"
CREATED = "labshelf_created"
#: Attributes the export adds to an xarray group (taken off again on import).
OWN_ATTRS = (NAME, DATA_ID, KIND, META, VERSION, CREATED)
#: Display metadata as reader-friendly attributes (besides ``labshelf_meta``): field -> attribute names.
META_ATTRS = {
    "unit": ("unit", "units"),
    "scale": ("scale",),
    "precision": ("precision",),
    "title": ("title", "long_name"),
    "description": ("description",),
}
#: Ints beyond these are kept as their digits (text).
_INT64 = (-(2**63), 2**63 - 1)


@dataclass
class ExportReport:
    """What an export wrote.

    Attributes
    ----------
    out_dir
        The folder written to.
    runs
        Numbers of the runs exported, in order; ``files`` their files.
    datasets, bytes
        Datasets written and the size of the files.
    skipped
        Runs and datasets left out, each with the reason.
    running
        Runs that were still running: exported as they were, marked so.
    """

    out_dir: str
    runs: list[int] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    datasets: int = 0
    bytes: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    running: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether nothing was skipped."""
        return not self.skipped

    def summary(self) -> str:
        span = ""
        if self.runs:
            span = f" ({self.runs[0]}..{self.runs[-1]})" if len(self.runs) > 1 else f" ({self.runs[0]})"
        running = f", {len(self.running)} still running" if self.running else ""
        return (
            f"exported {len(self.runs)} runs{span}{running}, {self.datasets} datasets, {size_text(self.bytes)} "
            f"to {self.out_dir}; {len(self.skipped)} skipped"
        )

    def lines(self, shown: int = 20) -> list[str]:
        out = [self.summary()]
        out += [f"  skipped: {item}" for item in self.skipped[:shown]]
        if len(self.skipped) > shown:
            out.append(f"  ... and {len(self.skipped) - shown} more skipped (see the report's .skipped)")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __repr__(self) -> str:
        return f"<ExportReport {self.summary()}>"


def export(
    shelf: Shelf | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    runs: Any = None,
    format: str = "hdf5",  # noqa: A002 - the option's name on the command line too
    overwrite: bool = False,
    progress: bool = True,
) -> ExportReport:
    """Write runs of ``shelf`` to ``out_dir``, one self-describing HDF5 file per run.

    Parameters
    ----------
    shelf
        A shelf, or the path of one (opened read-only).
    out_dir
        The folder to write to (made if missing); not inside the shelf.
    runs
        Which runs: a number, a range, a list, or a text like ``"10-20,25"``
        (default: every run).  A number named alone must be a run of the
        shelf, and a range must hold one.
    format
        ``"hdf5"`` (the one format so far).
    overwrite
        Replace files of ``out_dir`` an earlier export wrote; without it an
        existing file is an error, raised before anything is written.
    progress
        Show a progress bar (tqdm) over the runs.

    Returns
    -------
    ExportReport
        Runs and datasets written, and what was skipped (a run or dataset
        that could not be read), with the reason.

    The layout of the files is in this module's docstring (and the README);
    ``labshelf.importers.labshelf_export(shelf, out_dir)`` imports them back.
    """
    # Lazily: labshelf.importers (which reads these files) imports this module.
    from .importers._common import Skipped

    if format not in FORMATS:
        raise InvalidOptions(f"format {format!r} is not an export format; allowed: {', '.join(FORMATS)}")
    if isinstance(shelf, (str, os.PathLike)):
        from .opening import open as open_shelf

        with open_shelf(shelf, mode="r") as opened:
            return export(opened, out_dir, runs=runs, format=format, overwrite=overwrite, progress=progress)
    out = _out_dir(shelf, out_dir)
    records = _chosen(shelf, runs)
    targets = {record.number: out / f"run_{record.number}.h5" for record in records}
    if not overwrite:
        taken = [str(path) for path in targets.values() if os.path.lexists(path)]
        if taken:
            shown = ", ".join(taken[:10]) + (f" and {len(taken) - 10} more" if len(taken) > 10 else "")
            raise ShelfError(
                f"{len(taken)} file(s) exist already: {shown}. Nothing was written; export with overwrite=True "
                "(--overwrite) to replace them, or to another folder"
            )
    index = _old_index(out / INDEX, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale(out)
    report = ExportReport(out_dir=str(out))
    context = _Context.of(shelf, [r.number for r in records])
    for record in progress_over(records, progress):
        path = targets[record.number]
        try:
            written = _export_run(shelf, record, context, out, path, overwrite, report)
        except (ShelfError, OSError, ValueError, TypeError, KeyError) as exc:
            report.skipped.append(Skipped(str(path), f"run {record.number} was not exported: {_why(exc)}"))
            continue
        report.runs.append(record.number)
        report.files.append(str(path))
        report.bytes += written
        if record.status == "running":
            report.running.append(record.number)
    _write_index(shelf, out, index, records, report, context, overwrite)
    return report


def progress_over(records: list[RunRecord], enabled: bool) -> Iterable[RunRecord]:
    from .importers._common import progress

    return progress(records, "exporting runs", enabled)


def _why(exc: BaseException) -> str:
    return " ".join((str(exc) or type(exc).__name__).split())[:300]


# -- checks before anything is written -----------------------------------------------------------


def _out_dir(shelf: Shelf, out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir`` resolved, checked: not a file, not inside the shelf."""
    if isinstance(out_dir, str) and (not out_dir or "\0" in out_dir):
        raise InvalidOptions(f"OUT_DIR {out_dir!r} is not a folder path")
    given = Path(out_dir)
    if given.exists() and not given.is_dir():
        raise NotADirectoryError(
            20, "OUT_DIR is a file, not a folder; give a folder to export into", str(given)
        )
    out = given.resolve()
    inside = [shelf.root.resolve()]
    if "://" not in shelf.where:
        inside.append(Path(shelf.where).resolve())
    for folder in inside:
        if out == folder or folder in out.parents:
            raise UnsafePath(f"OUT_DIR {out} is inside the shelf ({folder}); export to a folder outside it")
    return out


def _chosen(shelf: Shelf, runs: Any) -> list[RunRecord]:
    """The records of the runs ``runs`` names (all by default); RunNotFound listing what is missing."""
    from .integrity import run_numbers

    spans = run_numbers(runs)
    records = shelf._registry.runs()
    if spans is None:
        return sorted(records, key=lambda r: r.number)
    numbers = sorted(r.number for r in records)
    import bisect

    missing: list[str] = []
    wanted: set[int] = set()
    for span in spans:
        low = bisect.bisect_left(numbers, span.start)
        high = bisect.bisect_left(numbers, span.stop)
        if low == high:
            missing.append(str(span.start) if len(span) == 1 else f"{span.start}-{span.stop - 1}")
        wanted.update(numbers[low:high])
    if missing:
        hint = f"its runs go from {numbers[0]} to {numbers[-1]}" if numbers else "it has no runs"
        raise RunNotFound(
            f"the shelf {shelf.where} has no run {', '.join(missing[:20])}; {hint}. Nothing was written"
        )
    return sorted((r for r in records if r.number in wanted), key=lambda r: r.number)


def _old_index(path: Path, overwrite: bool) -> dict[str, Any] | None:
    """An index an earlier export left in the folder (merged into the new one), or None."""
    if not os.path.lexists(path):
        return None
    try:
        if path.is_symlink() or not path.is_file():
            raise ValueError("it is not a plain file")
        found = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(found, dict) or found.get("format") != INDEX_FORMAT:
            raise ValueError("it is not a labshelf export's index")
    except (OSError, ValueError) as exc:
        if overwrite:
            return None
        raise ShelfError(
            f"{path} exists and cannot be merged ({_why(exc)}). Nothing was written; move it, or export with "
            "overwrite=True (--overwrite) to replace it"
        ) from None
    return found


def _remove_stale(out: Path) -> None:
    """Remove temporary files an export killed in this folder left (only ours, only old ones)."""
    now = time.time()
    for entry in os.scandir(out):
        if not (entry.name.startswith(TMP_PREFIX) and entry.name.endswith(TMP_SUFFIX)):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if entry.is_file(follow_symlinks=False) and now - info.st_mtime > STALE_TMP_SECONDS:
                os.unlink(entry.path)
        except OSError:
            continue


# -- what every run file needs ------------------------------------------------------------------


@dataclass
class _Context:
    """Read once per export: metadata, annotations of the chosen runs, the labshelf version."""

    metas: dict[str, DisplayMeta]
    comments: dict[int, str]
    tags: dict[int, list[str]]
    values: dict[int, dict[str, dict[str, Any]]]
    version: str

    @classmethod
    def of(cls, shelf: Shelf, numbers: Sequence[int]) -> _Context:
        from sqlalchemy import select

        from . import __version__
        from .metadata import all_metadata
        from .registry.annotations import decode
        from .registry.schema import runs

        comments: dict[int, str] = {}
        tags: dict[int, list[str]] = {}
        values: dict[int, dict[str, dict[str, Any]]] = {}
        chosen = set(numbers)
        with shelf._registry.db.read() as txn:
            for number, comment in txn.tuples(
                select(runs.c.number, runs.c.comment).where(runs.c.comment.is_not(None))
            ):
                if number in chosen:
                    comments[number] = comment
            for number, found in shelf._annotations.tags(txn).items():
                if number in chosen:
                    tags[number] = found
            for number, column, column_type, num, whole, text in shelf._annotations.values(txn):
                if number in chosen:
                    value = decode(column_type, num, whole, text)
                    values.setdefault(number, {})[column] = {"type": column_type, "value": value}
        return cls(all_metadata(shelf), comments, tags, values, __version__)


# -- one run -------------------------------------------------------------------------------------


def _export_run(
    shelf: Shelf,
    record: RunRecord,
    context: _Context,
    out: Path,
    path: Path,
    overwrite: bool,
    report: ExportReport,
) -> int:
    """Write one run's file (under a temporary name, then renamed); returns its size."""
    import h5py

    from .importers._common import Skipped

    if record.damage:
        raise ShelfError(f"its registry row is damaged ({record.damage})")
    refs = shelf.datasets(record.number)
    usable: list[DatasetRef] = []
    skipped: list[Skipped] = []
    for ref in refs:
        if ref.damage is not None:
            skipped.append(Skipped(str(path), f"its registry row is damaged: {ref.damage}", ref.label))
        else:
            usable.append(ref)
    places = value_paths(usable)
    tmp = out / f"{TMP_PREFIX}{secrets.token_hex(8)}{TMP_SUFFIX}"
    try:
        # "x": created here, never through a link someone put in the folder.
        with h5py.File(tmp, "x", libver="v108", locking=False):
            pass
        written = 0
        xarrays = [ref for ref in usable if ref.kind == "xarray"]
        for ref in xarrays:
            written += _xarray(shelf, ref, tmp, places[ref.id], path, skipped)
        with h5py.File(tmp, "r+", locking=False) as f:
            _run_attrs(f, shelf, record, context)
            groups: dict[str, Any] = {}
            for ref in usable:
                if ref.kind == "xarray":
                    if places[ref.id].lstrip("/") in f:
                        _value_attrs(f[places[ref.id]], ref, context, xarray=True)
                    continue
                try:
                    _write_value(f, shelf, ref, places[ref.id], context, groups)
                except (ShelfError, OSError, ValueError, TypeError, KeyError) as exc:
                    skipped.append(Skipped(str(path), f"not exported: {_why(exc)}", ref.label))
                    if places[ref.id].lstrip("/") in f and ref.kind != "composite":
                        del f[places[ref.id]]
                    continue
                written += 1
            if skipped:
                f.attrs["skipped"] = json.dumps([{"dataset": s.dataset, "reason": s.reason} for s in skipped])
        _place(tmp, path, overwrite)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    report.skipped += skipped
    report.datasets += written
    return path.stat().st_size


def _place(tmp: Path, path: Path, overwrite: bool) -> None:
    """Rename the finished file into place: a link at ``path`` is replaced, never written through."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path, follow_symlinks=False)  # fails if ``path`` appeared meanwhile
    except FileExistsError:
        raise ShelfError(
            f"{path} appeared while the export ran; not replaced (export with overwrite=True)"
        ) from None
    except OSError:  # a file system without hard links
        if os.path.lexists(path):
            raise ShelfError(f"{path} appeared while the export ran; not replaced") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _iso(seconds: float) -> str:
    return _dt.datetime.fromtimestamp(seconds, tz=_dt.UTC).isoformat()


def _run_attrs(f: h5py.File, shelf: Shelf, record: RunRecord, context: _Context) -> None:
    import h5py
    import numpy as np

    now = time.time()
    attrs: dict[str, Any] = {
        "labshelf_export_format": FORMAT,
        "labshelf_export_version": FORMAT_VERSION,
        "labshelf_version": context.version,
        "shelf": shelf.where,
        "exported": _iso(now),
        "exported_unix": now,
        "run": record.number,
        "experiment": record.experiment,
        "params": json.dumps(dict(record.params), ensure_ascii=False),
        "status": record.status,
        "start": _iso(record.started),
        "start_unix": record.started,
        "host": record.host,
        "user": record.user,
        "pid": record.pid,
    }
    if record.ended is not None:
        attrs["end"] = _iso(record.ended)
        attrs["end_unix"] = record.ended
    if record.status == "running":
        attrs["exported_while_running"] = True
    if record.error is not None:
        attrs["error"] = record.error
    comment = context.comments.get(record.number)
    if comment is not None:
        attrs["comment"] = comment
    attrs["tags"] = np.array(context.tags.get(record.number, []), dtype=h5py.string_dtype())
    values = context.values.get(record.number, {})
    attrs["columns"] = json.dumps(values, ensure_ascii=False)
    for name, said in values.items():
        attrs[f"column:{name}"] = said["value"]
    for key, value in attrs.items():
        f.attrs[key] = value


def _value_attrs(obj: Any, ref: DatasetRef, context: _Context, *, xarray: bool = False) -> None:
    from .metadata import for_label

    # Few attributes, each said once: writing one costs about as much as a small dataset.
    attrs = obj.attrs
    attrs[NAME] = ref.name
    attrs[KIND] = ref.kind
    attrs[VERSION] = ref.version
    attrs[CREATED] = _iso(ref.created)
    if ref.data_id:
        attrs[DATA_ID] = json.dumps(dict(ref.data_id), ensure_ascii=False)
    meta = for_label(context.metas, ref.name, ref.data_id) if context.metas else None
    fields = meta.fields() if meta is not None else {}
    if fields:
        attrs[META] = json.dumps(fields, ensure_ascii=False)
    if xarray:
        return  # the group's other attributes are the Dataset's own
    for dim, value in ref.data_id.items():
        attrs[f"data_id.{dim}"] = value
    for key, value in fields.items():
        for attr in META_ATTRS[key]:
            attrs[attr] = value


def did_text(data_id: Mapping[str, Any]) -> str:
    """``@channel=2,det="a"``: the HDF5 name of a data ID's member (``%`` and ``/`` escaped)."""
    text = ",".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in sorted(data_id.items()))
    return "@" + text.replace("%", "%25").replace("/", "%2F")


def value_paths(refs: Sequence[DatasetRef]) -> dict[int, str]:
    """The HDF5 path of each dataset of a run (see the module docstring), by dataset id."""
    natural: dict[int, str] = {}
    for ref in refs:
        base, *parts = ref.name.split(".")
        path = "/" + base + ("/" + did_text(ref.data_id) if ref.data_id else "")
        natural[ref.id] = path + "".join("/" + part for part in parts)
    groups: set[str] = set()
    for path in natural.values():
        pieces = path.split("/")
        groups.update("/".join(pieces[:i]) for i in range(2, len(pieces)))
    return {
        ref.id: natural[ref.id] + "/" + VALUE
        if natural[ref.id] in groups and ref.kind != "composite"
        else natural[ref.id]
        for ref in refs
    }


def _group(f: h5py.File, path: str, groups: dict[str, Any]) -> Any:
    """The group at ``path`` (made if missing), remembered: asking HDF5 each time costs more than writing."""
    found = groups.get(path)
    if found is None:
        found = groups[path] = f.require_group(path) if path else f["/"]
    return found


def _write_value(
    f: h5py.File, shelf: Shelf, ref: DatasetRef, path: str, context: _Context, groups: dict[str, Any]
) -> None:
    from .datastore import hdf5
    from .datastore.image import image_attrs

    parent_path, _, leaf = path.rpartition("/")
    parent = _group(f, parent_path, groups)
    kind = ref.kind
    if kind == "composite":
        obj = _group(f, path, groups)
        obj.attrs[COMPOSITE] = ref.storage.inline or "{}"
        spec = json.loads(ref.storage.inline or "{}")
        obj.attrs["composite_class"] = str(spec.get("class", ""))
        obj.attrs["components"] = json.dumps(spec.get("components", []))
    elif kind == "scalar":
        obj = write_scalar(parent, leaf, shelf._read_uncached(ref, {}))
    elif kind in ("ndarray", "image"):
        value = shelf._read_uncached(ref, {})
        options = dict(ref.storage.options)
        obj = hdf5.create_array(parent, leaf, value, options, image_attrs(value) if kind == "image" else {})
        if options:
            obj.attrs[OPTIONS] = json.dumps(options)
    elif kind == "pandas":
        obj = _pandas(parent, leaf, shelf, ref)
    else:
        raise ShelfError(f"values of kind {kind!r} have no export form yet")
    _value_attrs(obj, ref, context)


def write_scalar(parent: h5py.Group, leaf: str, value: Any) -> h5py.Dataset:
    """A scalar as a scalar dataset, its Python type in ``labshelf_type``."""
    import h5py
    import numpy as np

    from .datastore import hdf5

    if isinstance(value, np.generic):
        ds = hdf5.create_array(parent, leaf, np.asarray(value), {})
        tag = "numpy"
    elif value is None:
        ds = parent.create_dataset(leaf, data=h5py.Empty("f8"))
        tag = "none"
    elif isinstance(value, bool):
        ds, tag = parent.create_dataset(leaf, data=np.bool_(value)), "bool"
    elif isinstance(value, int):
        data: Any = np.int64(value) if _INT64[0] <= value <= _INT64[1] else str(value)
        ds, tag = parent.create_dataset(leaf, data=data), "int"
    elif isinstance(value, float):
        ds, tag = parent.create_dataset(leaf, data=np.float64(value)), "float"
    elif isinstance(value, complex):
        ds, tag = parent.create_dataset(leaf, data=np.complex128(value)), "complex"
    elif isinstance(value, str):
        if "\x00" in value:  # HDF5 strings end at a NUL: the UTF-8 bytes instead
            ds = parent.create_dataset(leaf, data=np.frombuffer(value.encode("utf-8"), dtype=np.uint8))
            ds.attrs["encoding"] = "utf-8"
        else:
            ds = parent.create_dataset(leaf, data=value, dtype=h5py.string_dtype())
        tag = "str"
    elif isinstance(value, bytes):
        ds, tag = parent.create_dataset(leaf, data=np.frombuffer(value, dtype=np.uint8)), "bytes"
    else:
        raise ShelfError(f"a scalar of type {type(value).__name__} has no export form")
    ds.attrs[TYPE] = tag
    return ds


def _xarray(shelf: Shelf, ref: DatasetRef, tmp: Path, place: str, path: Path, skipped: list[Skipped]) -> int:
    """Write an xarray value as a NetCDF group of the new file (before h5py opens it for the rest)."""
    from .datastore.netcdf import write_group
    from .importers._common import Skipped

    try:
        value = shelf._read_uncached(ref, {})
        write_group(tmp, place.lstrip("/"), value, mode="a", check=False)
    except (ShelfError, OSError, ValueError, TypeError, KeyError) as exc:
        skipped.append(Skipped(str(path), f"not exported: {_why(exc)}", ref.label))
        return 0
    return 1


def _pandas(parent: h5py.Group, leaf: str, shelf: Shelf, ref: DatasetRef) -> h5py.Group:
    """A table as a group: ``parquet`` (the exact file labshelf keeps) and ``table`` (compound, for reading)."""
    import numpy as np

    (data_file,) = shelf._data_paths(ref)
    value = shelf._read_uncached(ref, {})  # reads the file whole: its page checksums are checked
    group = parent.require_group(leaf)
    raw = np.frombuffer(data_file.read_bytes(), dtype=np.uint8)
    group.create_dataset("parquet", data=raw).attrs["format"] = "parquet"
    group.attrs["class"] = type(value).__name__
    table = compound(value)
    if table is not None:
        group.create_dataset("table", data=table)
    return group


def compound(value: Any) -> np.ndarray | None:
    """A DataFrame or Series (with its index first) as a structured array h5py stores as a compound dataset.

    Numbers and bools keep their dtype; anything else (text, dates,
    categories, missing values of nullable columns) becomes text.
    """
    import h5py
    import numpy as np
    import pandas as pd

    frame = (
        value.to_frame(name=value.name if value.name is not None else "values")
        if isinstance(value, pd.Series)
        else value
    )
    columns: list[tuple[str, Any]] = []
    index = frame.index
    levels = [index.get_level_values(i) for i in range(index.nlevels)]
    for i, level in enumerate(levels):
        name = index.names[i]
        columns.append(
            (str(name) if name is not None else ("index" if index.nlevels == 1 else f"level_{i}"), level)
        )
    columns += [(str(c), frame[c]) for c in frame.columns]
    names: list[str] = []
    arrays: list[np.ndarray] = []
    for name, values in columns:
        unique, count = name, 1
        while unique in names:
            count += 1
            unique = f"{name}_{count}"
        names.append(unique)
        dtype = values.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf" and dtype.isnative:
            arrays.append(np.asarray(values))
        else:
            texts = np.empty(len(values), dtype=object)
            texts[:] = ["" if _missing(x) else str(x) for x in values]
            arrays.append(texts)
    if not names:
        return None
    dtypes = [
        (column, a.dtype if a.dtype != object else h5py.string_dtype())
        for column, a in zip(names, arrays, strict=True)
    ]
    table = np.empty(len(frame), dtype=dtypes)
    for column, a in zip(names, arrays, strict=True):
        table[column] = a
    return table


def _missing(x: Any) -> bool:
    import pandas as pd

    try:
        return x is None or bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


# -- the index --------------------------------------------------------------------------------


def _write_index(
    shelf: Shelf,
    out: Path,
    old: dict[str, Any] | None,
    records: list[RunRecord],
    report: ExportReport,
    context: _Context,
    overwrite: bool,
) -> None:
    """index.json: the runs of the folder, metadata, column tags, user columns, logbook entries (merged)."""
    from .registry.meta import Meta

    meta = Meta(shelf._registry)
    exported = {r.number: r for r in records if r.number in set(report.runs)}
    runs_listed: dict[int, dict[str, Any]] = {}
    if old is not None and isinstance(old.get("runs"), list):
        for item in old["runs"]:
            if isinstance(item, dict) and isinstance(item.get("run"), int):
                runs_listed[item["run"]] = item
    for number, record in exported.items():
        runs_listed[number] = {
            "run": number,
            "file": f"run_{number}.h5",
            "experiment": record.experiment,
            "status": record.status,
            "start": record.started,
            "end": record.ended,
            "shelf": shelf.where,
        }
    if not records or len(records) == len(shelf._registry.runs()):
        since, until = None, None
    else:
        since = min(r.started for r in records)
        until = max((r.ended if r.ended is not None else time.time()) for r in records)
    entries = [
        {"time": at, "text": text, "user": who, "written": created, "edited": updated}
        for _entry, at, text, who, created, updated in meta.entries(since, until)
    ]
    if old is not None and isinstance(old.get("logbook"), list):
        seen = {(e["time"], e["text"]) for e in entries}
        for e in old["logbook"]:
            if isinstance(e, dict) and (e.get("time"), e.get("text")) not in seen:
                entries.append(e)
        entries.sort(key=lambda e: (e.get("time") or 0.0) if isinstance(e.get("time"), (int, float)) else 0.0)
    now = time.time()
    index = {
        "format": INDEX_FORMAT,
        "version": FORMAT_VERSION,
        "labshelf_version": context.version,
        "shelf": shelf.where,
        "exported": _iso(now),
        "exported_unix": now,
        "runs": [runs_listed[n] for n in sorted(runs_listed)],
        "metadata": [m.to_json() for m in context.metas.values()],
        "column_tags": shelf.column_tags(),
        "user_columns": shelf._annotations.columns(),
        "logbook": entries,
    }
    tmp = out / f"{TMP_PREFIX}{secrets.token_hex(8)}{TMP_SUFFIX}"
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            json.dump(index, f, ensure_ascii=False, indent=1)
        # The index is ours to merge into: replaced (a link at its place included), never written through.
        os.replace(tmp, out / INDEX)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
