"""A labshelf export folder as runs again: ``labshelf.importers.labshelf_export(shelf, "out")``.

Reads what :func:`labshelf.export` writes (the layout is in
``labshelf/exporting.py``): each ``run_<n>.h5`` becomes a run with its
number (``renumber=True``: the next free ones; the exported number is
kept in ``params["export_run"]`` then), experiment, params, status, error,
start and end, every dataset with its kind, data ID, value (exactly: dtype,
shape, xarray coordinates and attributes, pandas tables) and storage
options, and the run's comment, tags and user-column values.  The folder's
``index.json`` brings display metadata, column tags and logbook entries
(an entry with the same time and text as one of the shelf is not added
again).

The only difference from the exported run is the provenance every import
adds to params (``source``, ``source_sha256``, ``import_id``, see
``_common.py``); where the exported run had params of those names (it was
itself imported), they are kept as ``exported:<key>``.  A run exported
while it was still running is imported as ``aborted``, with a warning.

Export files are untrusted input: every attribute is checked, and objects
are reached through ``datastore.hdf5.member``, which refuses links out of
the file; nothing in a file is executed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import (
    InvalidDataId,
    InvalidName,
    InvalidOptions,
    InvalidValue,
    NotAShelf,
    ShelfError,
    UnsupportedValue,
)
from ..exporting import (
    COMPOSITE,
    DATA_ID,
    FORMAT,
    FORMAT_VERSION,
    INDEX,
    INDEX_FORMAT,
    KIND,
    META,
    NAME,
    OPTIONS,
    OWN_ATTRS,
    RUN_FILE,
    TYPE,
)
from ..names import check_name, label, normalize_data_id
from ._common import (
    IMPORT_ID,
    SOURCE,
    SOURCE_SHA256,
    ImportReport,
    Ledger,
    Skipped,
    check_time,
    end_run,
    progress,
    provenance,
    reopen,
    sha256_file,
    sort_out,
    source_numbers,
    start_run,
)

if TYPE_CHECKING:
    import h5py

    from ..registry.records import RunRecord
    from ..run import Run
    from ..shelf import Shelf

__all__ = ["labshelf_export"]

STATUSES = ("finished", "failed", "aborted", "running")
KINDS = ("scalar", "ndarray", "image", "xarray", "pandas", "composite")
#: Params key of the exported number when ``renumber`` gives the run another one.
EXPORT_RUN = "export_run"


@dataclass
class _Item:
    """One dataset of a run file (a composite's parts are its ``parts``)."""

    name: str
    data_id: dict[str, Any]
    kind: str
    path: str
    nbytes: int = 0
    parts: list[_Item] = field(default_factory=list)

    @property
    def label(self) -> str:
        return label(self.name, self.data_id)


@dataclass
class _Plan:
    path: Path
    number: int
    sha256: str
    experiment: str
    params: dict[str, Any]
    status: str
    error: str | None
    started: float
    ended: float
    comment: str | None
    tags: list[str]
    columns: dict[str, Any]
    items: list[_Item] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[Skipped] = field(default_factory=list)
    existing: RunRecord | None = None

    @property
    def import_id(self) -> str:
        return f"labshelf-export:{self.sha256}"

    @property
    def nbytes(self) -> int:
        return sum(_nbytes(item) for item in self.items)


class _Bad(Exception):
    """A run file that is not a labshelf export, with the reason."""


def labshelf_export(
    shelf: Shelf,
    path: str | os.PathLike[str],
    *,
    renumber: bool = False,
    dry_run: bool = False,
    progress: bool = True,
) -> ImportReport:
    """Import a folder :func:`labshelf.export` wrote (or one of its ``run_<n>.h5`` files) into ``shelf``.

    Parameters
    ----------
    shelf
        A writable shelf (a read-only one is enough for ``dry_run``).
    path
        The export folder (its ``run_<n>.h5`` files and ``index.json``), or one run file.
    renumber
        Give the runs the next free numbers instead of their exported ones
        (kept in ``params["export_run"]``).  Without it, an exported number
        that is a run of the shelf from elsewhere is an ImportConflict
        listing them all, raised before anything is written.
    dry_run
        Only read the files and report what would be imported; write nothing.
    progress
        Show a progress bar (tqdm) over the files.

    Returns
    -------
    ImportReport
        As every importer's.  Importing the same folder again imports only
        new files and finishes a run an interrupted import began.
    """
    source = Path(path)
    if not source.exists():
        raise NotAShelf(
            f"{source} does not exist: give a folder labshelf export wrote (or one run_<n>.h5 of it)"
        )
    if not dry_run:
        shelf._check_writable()
    report = ImportReport(source=str(source), dry_run=dry_run)
    files = _run_files(source, report)
    index = _index(source.parent if source.is_file() else source, report)
    ledger = Ledger(shelf)
    plans: list[_Plan] = []
    for file in progress_over(files, "reading export files", progress):
        try:
            plans.append(_plan(file))
        except Exception as exc:  # any failure to read one file skips that file, never the rest
            report.skipped.append(
                Skipped(str(file), f"cannot be read as a labshelf export file: {_why(exc)}")
            )
    plans.sort(key=lambda p: (p.number, str(p.path)))
    new, resume = sort_out(plans, ledger, report)
    numbers = source_numbers(
        new,
        ledger,
        renumber,
        number_of=lambda plan: plan.number,
        what="exported run",
        advice="Nothing was imported. Import with renumber=True (labshelf import labshelf --renumber) to give "
        f"the new runs the next free numbers, keeping each exported number in params[{EXPORT_RUN!r}]",
    )
    if dry_run:
        for plan, number in [
            *zip(new, numbers, strict=True),
            *((p, p.existing.number) for p in resume if p.existing),
        ]:
            report.runs.append(number)
            report.datasets += sum(_count(item) for item in plan.items)
            report.bytes += plan.nbytes
            report.skipped += plan.skipped
            report.warnings += plan.warnings
        report.completed = [p.existing.number for p in resume if p.existing]
        report.runs.sort()
        return report
    work = sorted(
        [*zip(new, numbers, strict=True), *((p, None) for p in resume)], key=lambda pair: pair[0].number
    )
    for plan, number in progress_over(work, "importing export files", progress):
        run_number = _import(shelf, plan, number, renumber, with_meta=index is None, report=report)
        if run_number is not None:
            report.runs.append(run_number)
            if plan.existing is not None:
                report.completed.append(run_number)
    if index is not None:
        _shelf_wide(shelf, index, source, report)
    return report


def progress_over(items: list[Any], desc: str, enabled: bool) -> Any:
    return progress(items, desc, enabled)


def _why(exc: BaseException) -> str:
    return " ".join((str(exc) or type(exc).__name__).split())[:300]


# -- finding and reading the files ---------------------------------------------------------------


def _run_files(source: Path, report: ImportReport) -> list[Path]:
    if source.is_file():
        return [source]
    out = []
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        if not entry.name.endswith(".h5") or entry.name.startswith("."):
            continue
        if entry.is_symlink():
            report.skipped.append(Skipped(entry.path, "a link (links are not followed)"))
        elif not RUN_FILE.match(entry.name):
            report.skipped.append(
                Skipped(entry.path, "not named as labshelf export names run files (run_<n>.h5)")
            )
        elif entry.is_file(follow_symlinks=False):
            out.append(Path(entry.path))
    return out


def _index(folder: Path, report: ImportReport) -> dict[str, Any] | None:
    path = folder / INDEX
    if not path.exists():
        return None
    try:
        if path.is_symlink():
            raise ValueError("it is a link (links are not followed)")
        found = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(found, dict) or found.get("format") != INDEX_FORMAT:
            raise ValueError("it is not a labshelf export's index")
    except (OSError, ValueError) as exc:
        report.skipped.append(Skipped(str(path), f"metadata, column tags and logbook left out: {_why(exc)}"))
        return None
    return found


def _attr(attrs: Any, key: str, kind: type | tuple[type, ...], what: str, *, required: bool = True) -> Any:
    if key not in attrs:
        if required:
            raise _Bad(f"it has no {key!r} attribute ({what})")
        return None
    value = attrs[key]
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, np.generic):
        value = value.item()
    if (
        not isinstance(value, kind)
        or isinstance(value, bool)
        and bool not in (kind if isinstance(kind, tuple) else (kind,))
    ):
        raise _Bad(f"its {key!r} attribute is a {type(value).__name__}, not {what}")
    return value


def _json(text: str, kind: type, key: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise _Bad(f"its {key!r} attribute is not JSON: {exc}") from None
    if not isinstance(value, kind):
        raise _Bad(f"its {key!r} attribute is not a JSON {kind.__name__}")
    return value


def _plan(path: Path) -> _Plan:
    import h5py

    sha256 = sha256_file(path)
    with h5py.File(path, "r", locking=False) as f:
        attrs = f.attrs
        if attrs.get("labshelf_export_format") not in (FORMAT, FORMAT.encode()):
            raise _Bad("it is not a labshelf run file (no labshelf_export_format attribute)")
        version = _attr(attrs, "labshelf_export_version", int, "an int")
        if version > FORMAT_VERSION:
            raise _Bad(
                f"it is in export format version {version}; this labshelf reads up to {FORMAT_VERSION}"
            )
        number = _attr(attrs, "run", int, "a run number")
        params = _json(_attr(attrs, "params", str, "JSON text"), dict, "params")
        status = _attr(attrs, "status", str, "a run status")
        if status not in STATUSES:
            raise _Bad(f"its status {status!r} is not one of {STATUSES}")
        started = check_time(_attr(attrs, "start_unix", (int, float), "seconds"), "start_unix")
        end = _attr(attrs, "end_unix", (int, float), "seconds", required=False)
        exported = _attr(attrs, "exported_unix", (int, float), "seconds", required=False)
        ended = check_time(
            end if end is not None else exported if exported is not None else started, "end_unix"
        )
        tags_raw = attrs.get("tags", [])
        tags = [
            t.decode("utf-8") if isinstance(t, bytes) else t for t in np.asarray(tags_raw).ravel().tolist()
        ]
        if not all(isinstance(t, str) for t in tags):
            raise _Bad("its tags are not text")
        plan = _Plan(
            path=path,
            number=number,
            sha256=sha256,
            experiment=_attr(attrs, "experiment", str, "text"),
            params=params,
            status=status,
            error=_attr(attrs, "error", str, "text", required=False),
            started=started,
            ended=max(ended, started),
            comment=_attr(attrs, "comment", str, "text", required=False),
            tags=tags,
            columns=_json(_attr(attrs, "columns", str, "JSON text", required=False) or "{}", dict, "columns"),
        )
        if status == "running":
            plan.status, plan.error = "aborted", plan.error or "exported while running"
            plan.warnings.append(
                Skipped(str(path), "the run was still running when exported: imported as aborted")
            )
        _list(f, plan)
    return plan


def _list(f: h5py.File, plan: _Plan) -> None:
    """The datasets of a run file: every object carrying ``labshelf_name`` (links not followed)."""
    import h5py

    where = str(plan.path)
    found: list[_Item] = []
    stack = ["/"]
    while stack:
        group_path = stack.pop()
        group = f[group_path]
        for key in sorted(group, reverse=True):
            member = f"{group_path.rstrip('/')}/{key}"
            link = group.get(key, getlink=True)
            if not isinstance(link, h5py.HardLink):
                plan.skipped.append(Skipped(where, "a link, not a value (links are not followed)", member))
                continue
            node = group.get(key)
            if NAME not in node.attrs:
                if isinstance(node, h5py.Group):
                    stack.append(member)
                continue
            try:
                item = _item(node, member)
            except (_Bad, ShelfError, ValueError, TypeError, UnicodeDecodeError) as exc:
                plan.skipped.append(Skipped(where, f"left out: {_why(exc)}", member))
                continue
            found.append(item)
            if item.kind == "composite":
                stack.append(member)
    # Parts go with their composite (a part of a part with its own composite part).
    by_label = {item.label: item for item in found}
    for item in sorted(found, key=lambda i: -i.name.count(".")):
        if "." not in item.name:
            continue
        owner = by_label.get(label(item.name.rpartition(".")[0], item.data_id))
        if owner is None or owner.kind != "composite":
            plan.skipped.append(Skipped(where, "a component whose composite is not in the file", item.path))
            continue
        owner.parts.append(item)
    plan.items = sorted((i for i in found if "." not in i.name), key=lambda i: i.path)


def _item(node: Any, member: str) -> _Item:
    name = _attr(node.attrs, NAME, str, "a dataset name")
    base, _, parts = name.partition(".")
    check_name(base)
    if parts and not all(p.isidentifier() for p in parts.split(".")):
        raise InvalidName(f"{name!r}: the components of a composite are identifiers")
    said = _attr(node.attrs, DATA_ID, str, "JSON text", required=False)
    data_id = normalize_data_id(_json(said, dict, DATA_ID), new=True) if said is not None else {}
    kind = _attr(node.attrs, KIND, str, "a value kind")
    if kind not in KINDS:
        raise _Bad(f"values of kind {kind!r} are not imported (known: {', '.join(KINDS)})")
    nbytes = int(node.size * node.dtype.itemsize) if hasattr(node, "dtype") and node.shape is not None else 0
    return _Item(name, data_id, kind, member, nbytes)


# -- the import of one file ----------------------------------------------------------------------


def _import(
    shelf: Shelf, plan: _Plan, number: int | None, renumber: bool, *, with_meta: bool, report: ImportReport
) -> int | None:
    import h5py

    where = str(plan.path)
    try:
        f = h5py.File(plan.path, "r", locking=False)
    except Exception as exc:  # gone or changed since it was planned
        report.skipped.append(Skipped(where, f"cannot be read as a labshelf export file: {_why(exc)}"))
        return None
    with f:
        if plan.existing is not None:
            run, present = reopen(shelf, plan.existing, [item.label for item in plan.items])
        else:
            params = _params(plan, renumber)
            run = start_run(
                shelf,
                number=None if renumber else number,
                experiment=plan.experiment,
                params=params,
                started=plan.started,
            )
            present = set()
        report.skipped += plan.skipped
        report.warnings += plan.warnings
        for item in plan.items:
            if item.label in present:
                continue
            _put(run, f, item, where, with_meta, report)
        _annotate(shelf, run.number, plan, report)
        end_run(run, plan.ended, plan.status, plan.error)
    return run.number


def _params(plan: _Plan, renumber: bool) -> dict[str, Any]:
    params = {}
    for key, value in plan.params.items():
        params[f"exported:{key}" if key in (SOURCE, SOURCE_SHA256, IMPORT_ID, EXPORT_RUN) else key] = value
    if renumber:
        params[EXPORT_RUN] = plan.number
    params.update(provenance(plan.path, plan.sha256, plan.import_id))
    return params


def _put(run: Run, f: h5py.File, item: _Item, where: str, with_meta: bool, report: ImportReport) -> None:
    try:
        value, options = _value(f, item, where)
        meta = _meta(f, item) if with_meta and not item.data_id else {}
    except Exception as exc:  # a damaged value: skipped, the file's others go on
        report.skipped.append(Skipped(where, f"cannot be read: {_why(exc)}", item.path))
        return
    try:
        run.put(item.name, value, data_id=item.data_id or None, kind=item.kind, hdf5_options=options, **meta)
    except (InvalidName, InvalidDataId, InvalidValue, InvalidOptions, UnsupportedValue) as exc:
        report.skipped.append(Skipped(where, f"labshelf cannot keep it: {_why(exc)}", item.path))
        return
    report.datasets += _count(item)
    report.bytes += _nbytes(item)


def _count(item: _Item) -> int:
    """Datasets an item puts: itself and, for a composite, each component."""
    return 1 + sum(_count(part) for part in item.parts)


def _nbytes(item: _Item) -> int:
    return item.nbytes + sum(_nbytes(part) for part in item.parts)


def _meta(f: h5py.File, item: _Item) -> dict[str, Any]:
    from ..datastore.hdf5 import member

    said = _json(
        _attr(member(f, item.path).attrs, META, str, "JSON text", required=False) or "{}", dict, META
    )
    return {k: v for k, v in said.items() if k in ("unit", "scale", "precision", "title", "description")}


def _value(f: h5py.File, item: _Item, where: str) -> tuple[Any, dict[str, Any] | None]:
    """The value an exported object holds, as labshelf put it, and its storage options."""
    from ..datastore.hdf5 import member

    node = member(f, item.path)
    if item.kind == "composite":
        from ..datastore.composite import Disassembled

        spec = _json(_attr(node.attrs, COMPOSITE, str, "JSON text"), dict, COMPOSITE)
        cls_key = spec.get("class")
        if not isinstance(cls_key, str) or ":" not in cls_key:
            raise _Bad(f"its composite class {cls_key!r} is not module:name")
        module, _, qualname = cls_key.partition(":")
        # A stand-in class named like the original: the composite's row records the same class
        # (nothing is imported or run; reading assembles the class only where it is registered).
        cls = type(
            qualname.rpartition(".")[2] or "composite", (), {"__module__": module, "__qualname__": qualname}
        )
        parts = {p.name.rpartition(".")[2]: _value(f, p, where)[0] for p in item.parts}
        order = [c for c in spec.get("components", []) if c in parts] + [
            c for c in parts if c not in spec.get("components", [])
        ]
        return Disassembled(cls, {c: parts[c] for c in order}), None
    if item.kind == "xarray":
        from ..datastore.netcdf import read_group

        return read_group(Path(f.filename), item.path.lstrip("/"), drop_attrs=OWN_ATTRS), None
    if item.kind == "pandas":
        from ..datastore.parquet import from_bytes

        raw = member(node, "parquet")
        return from_bytes(np.asarray(raw[()], dtype=np.uint8).tobytes()), None
    options = None
    if OPTIONS in node.attrs:
        options = _json(_attr(node.attrs, OPTIONS, str, "JSON text"), dict, OPTIONS)
    if item.kind == "scalar":
        return _scalar(node, where), None
    from ..datastore.hdf5 import read_dataset

    return read_dataset(node, (), f"{where} [{item.path}]"), options


def _scalar(node: Any, where: str) -> Any:
    from ..datastore.hdf5 import read_dataset

    tag = _attr(node.attrs, TYPE, str, "a scalar type")
    if tag == "none":
        return None
    if tag == "numpy":
        return read_dataset(node, (), f"{where} [{node.name}]")[()]
    raw = node[()]
    if tag == "bool":
        return bool(raw)
    if tag == "int":
        return int(raw.decode("ascii") if isinstance(raw, bytes) else raw)
    if tag == "float":
        return float(raw)
    if tag == "complex":
        return complex(raw)
    if tag == "str":
        if isinstance(raw, np.ndarray):
            return raw.astype(np.uint8).tobytes().decode("utf-8")
        return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    if tag == "bytes":
        return np.asarray(raw, dtype=np.uint8).tobytes()
    raise _Bad(f"unknown scalar type {tag!r}")


def _annotate(shelf: Shelf, number: int, plan: _Plan, report: ImportReport) -> None:
    """The run's comment, tags and user-column values (idempotent: only differences are written)."""
    where = str(plan.path)
    columns: dict[str, Any] = {}
    for name, said in plan.columns.items():
        if not isinstance(said, dict) or "value" not in said:
            report.warnings.append(
                Skipped(where, f"user column {name!r}: not a {{type, value}} record, left out")
            )
            continue
        value = said["value"]
        if said.get("type") == "number" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        columns[name] = value
    try:
        shelf.annotate(
            number,
            comment=plan.comment if plan.comment is not None else ...,
            tags=plan.tags or None,
            **columns,
        )
        return
    except ShelfError:
        pass  # one bad piece: each alone, so the others still arrive
    pieces: list[tuple[str, dict[str, Any]]] = [
        ("comment", {"comment": plan.comment}),
        ("tags", {"tags": plan.tags}),
    ]
    pieces += [(f"user column {name!r}", {name: value}) for name, value in columns.items()]
    for what, piece in pieces:
        if list(piece.values()) in ([None], [[]]):
            continue
        try:
            shelf.annotate(number, **piece)
        except ShelfError as exc:
            report.warnings.append(Skipped(where, f"{what} left out: {_why(exc)}"))


# -- what belongs to the shelf: index.json ------------------------------------------------------


def _shelf_wide(shelf: Shelf, index: dict[str, Any], source: Path, report: ImportReport) -> None:
    """Display metadata, column tags and logbook entries of the index (each written only if new)."""
    from ..metadata import UNSAID
    from ..registry.meta import check_log_text, check_time, os_user

    where = str(source / INDEX if source.is_dir() else source.parent / INDEX)
    for record in index.get("metadata", []) if isinstance(index.get("metadata"), list) else []:
        try:
            if not isinstance(record, dict) or not isinstance(record.get("name"), str):
                raise ValueError("not a {name, ...} record")
            fields = {
                k: record[k] for k in ("unit", "scale", "precision", "title", "description") if k in record
            }
            shelf.describe(
                record["name"],
                data_id=record.get("data_id") or None,
                **{k: fields.get(k, UNSAID) for k in ("unit", "scale", "precision", "title", "description")},
            )
        except (ShelfError, ValueError, TypeError) as exc:
            report.warnings.append(Skipped(where, f"metadata {str(record)[:80]} left out: {_why(exc)}"))
    tags = index.get("column_tags")
    for name, listed in tags.items() if isinstance(tags, dict) else ():
        try:
            if sorted(shelf.column_tags().get(name, [])) != sorted(listed):
                shelf.tag_columns(name, listed)
        except (ShelfError, ValueError, TypeError) as exc:
            report.warnings.append(Skipped(where, f"column tags of {name!r} left out: {_why(exc)}"))
    entries = index.get("logbook")
    if not isinstance(entries, list) or not entries:
        return
    meta = shelf._writer.meta
    known = {(at, text) for _entry, at, text, *_rest in meta.entries(None, None)}
    for entry in entries:
        try:
            if not isinstance(entry, dict):
                raise ValueError("not a {time, text, user} record")
            at, text = check_time(entry.get("time")), check_log_text(entry.get("text"))
            who = entry.get("user")
            if (at, text) in known:
                continue
            meta.log(text, at, user=who if isinstance(who, str) and who and len(who) < 256 else os_user())
            known.add((at, text))
        except (ShelfError, ValueError, TypeError) as exc:
            report.warnings.append(Skipped(where, f"logbook entry {str(entry)[:80]} left out: {_why(exc)}"))
