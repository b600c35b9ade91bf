"""Ingest: existing files registered as datasets without being rewritten, and read only as ingested.

``run.ingest("detector/frames", "/data/run12/frames.h5", dataset="/entry/data/data")``
registers one HDF5 dataset (or, without ``dataset=``, a whole NetCDF-4
file, or a Parquet table) as a dataset of the run.  Kind, shape, dtype,
size, summary and thumbnail are computed once from the file, from a bounded
part of it (see :mod:`labshelf.datastore.ingested`); reads, slices and
components go to the file.  ``transfer`` says how the shelf holds it:

- ``"direct"`` (default): read where it is;
- ``"symlink"``: a symbolic link in ``data/`` points at it (the link is what
  ``delete`` removes; the file stays);
- ``"copy"``: copied into ``data/`` atomically, then an ordinary data file.

labshelf never writes to an ingested file and never deletes it.  The row
records its size, modification time and a cheap checksum; a read of a file
that changed, moved or disappeared raises :class:`IngestedFileChanged`
naming it, and ``Shelf.verify`` lists it.

**Trust.**  A registry row that says "this dataset is the file /etc/x" is
untrusted text, so a file outside the shelf is read only where this user
confirmed that this shelf may read it (:mod:`labshelf.trust`, the
``trusted-data.json`` list): ``ingest`` itself records the (shelf, file)
pair; another user confirms with :func:`trust_data` (``labshelf trust-data
SHELF PATH``), else reading raises :class:`UnconfirmedFile` naming the file
and that command.  The confirmation is checked before the file is even
looked at.  A ``symlink`` ingest is recognised from its row and the
confirmation, never from the link: the link must still point at the
recorded file, and the recorded file is what is opened.  Only h5py,
h5netcdf and pyarrow open such files, through the same formatters (and
:func:`labshelf.datastore.hdf5.member`'s refusal of what leads outside the
file) as the shelf's own.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .datastore.ingested import KEY, TRANSFERS, Source, fingerprint, source_of
from .errors import (
    CorruptDataset,
    IngestedFileChanged,
    IngestError,
    InvalidOptions,
    ShelfError,
    UnconfirmedFile,
    UnsafePath,
    close_matches,
)

if TYPE_CHECKING:
    from .collections import Repository
    from .registry.meta import PutMeta
    from .registry.records import DatasetRef
    from .shelf import Shelf

__all__ = ["ingest", "trust_data", "located", "is_ingested", "linkable", "confirm_folder", "LINK_ABOVE"]

#: What importers keep in place with ``link=True``: arrays of at least this many bytes.
LINK_ABOVE = 1 << 20

_SUFFIX = {"hdf5": ".h5", "netcdf": ".nc", "parquet": ".parquet"}


def is_ingested(ref: DatasetRef) -> bool:
    """Whether a ref's row says it is an ingested file (the row alone: what may be read is :func:`located`'s call)."""
    options = ref.storage.options
    return isinstance(options, Mapping) and KEY in options


# -- ingest ---------------------------------------------------------------------------------------


def ingest(
    shelf: Shelf,
    run: int,
    name: str,
    path: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    data_id: Mapping[str, Any] | None = None,
    transfer: str = "direct",
    meta: PutMeta | None = None,
) -> DatasetRef:
    """Register the file at ``path`` (its HDF5 member ``dataset``) as dataset ``name`` of running run ``run``.

    See :meth:`labshelf.run.Run.ingest`.  Every check comes before anything
    is stored: a refused ingest leaves the shelf (and the file) as they were.
    """
    from .names import check_name, data_id_key, normalize_data_id

    shelf._check_writable()
    if transfer not in TRANSFERS:
        raise InvalidOptions(
            f"transfer={transfer!r} is not a way to ingest; it is one of {', '.join(map(repr, TRANSFERS))}: "
            "'direct' reads the file where it is, 'symlink' links it from the shelf's data/, "
            "'copy' copies it into data/"
        )
    if dataset is not None and not isinstance(dataset, str):
        raise IngestError(
            f"dataset= names an HDF5 dataset (a path such as '/entry/data/data'), not {dataset!r}"
        )
    check_name(name)
    did = normalize_data_id(data_id, new=True)
    key = data_id_key(did)
    resolved = _checked_path(shelf, path)
    found = _examine(resolved, dataset)
    fmt, member, (kind, description, summary), before = found
    datastore = shelf._datastore
    files: list[str] = []
    size, mtime_ns, checksum = before
    try:
        if transfer == "copy":
            with datastore.new_file(run, name, _SUFFIX[fmt]) as (tmp, relative):
                shutil.copyfile(resolved, tmp)
                size, mtime_ns, checksum = fingerprint(tmp)
            files = [relative]
            if (size, checksum) != (before[0], before[2]):
                raise IngestError(
                    f"{resolved} changed while it was being copied; nothing was stored, try again"
                )
        elif transfer == "symlink":
            with datastore.new_file(run, name, _SUFFIX[fmt]) as (tmp, relative):
                os.symlink(resolved, tmp)
            files = [relative]
        if transfer != "copy":
            _confirm(shelf.root, resolved)
        source = Source(fmt, member, transfer, str(resolved), size, mtime_ns, checksum)
        fields = {
            "kind": kind,
            "shape": None if description.shape is None else json.dumps(list(description.shape)),
            "dtype": description.dtype,
            "nbytes": description.nbytes,
            "summary_kind": summary.kind,
            "summary_value": summary.value,
            "summary_text": summary.text,
            "thumbnail": summary.thumbnail,
            "inline": None,
            # "[]" for a direct ingest: no file in data/, yet a value in files (the tree's listing asks
            # ``location IS NOT NULL``); never an ordinary row's, which has files or NULL.
            "location": json.dumps(files),
            "options": json.dumps({KEY: source.to_json()}, sort_keys=True),
        }
        return _commit(shelf, run, name, did, key, fields, meta, resolved)
    except BaseException:
        datastore.remove(files, run, name)
        raise


def _checked_path(shelf: Shelf, path: Any) -> Path:
    """The resolved path of a regular, readable file outside every shelf's ``data/`` and ``tmp/``."""
    if not isinstance(path, (str, os.PathLike)):
        raise IngestError(f"ingest takes the path of a file, not {type(path).__name__}")
    given = Path(path).expanduser()
    if not given.is_absolute():
        given = Path.cwd() / given
    try:
        status = os.stat(given)
    except FileNotFoundError:
        raise IngestError(
            f"there is no file {given} to ingest (give the path of an HDF5, NetCDF-4 or Parquet file)"
        ) from None
    except OSError as exc:
        raise IngestError(f"{given} cannot be ingested: {exc.strerror or exc}") from None
    if not stat.S_ISREG(status.st_mode):
        raise IngestError(
            f"{given} is not a regular file (a folder, a FIFO or a device); ingest takes one HDF5, "
            "NetCDF-4 or Parquet file"
        )
    resolved = Path(os.path.realpath(given))
    for folder in (resolved.parent, *resolved.parent.parents):
        if (folder / "labshelf.json").is_file():
            inside = resolved.relative_to(folder).parts
            if inside and inside[0] in ("data", "tmp"):
                whose = "this shelf's" if folder == shelf.root else f"the shelf {folder}'s"
                raise IngestError(
                    f"{resolved} lies in {whose} {inside[0]}/ folder: labshelf's own data files are read through "
                    "their shelf (labshelf.open or an input repository), never ingested into another"
                )
    try:
        with open(resolved, "rb"):
            pass
    except OSError as exc:
        raise IngestError(f"{resolved} cannot be read: {exc.strerror or exc}") from None
    return resolved


def _examine(path: Path, dataset: str | None) -> tuple[str, str, Any, tuple[int, int, str]]:
    """(format, member, (kind, description, summary), fingerprint) of a file to ingest; IngestError if it cannot be."""
    from .datastore import ingested

    before = fingerprint(path)
    try:
        fmt = ingested.file_format(path)
    except ValueError as exc:
        raise IngestError(f"{path} cannot be ingested: {exc}") from None
    if fmt == "parquet":
        if dataset is not None:
            raise IngestError(
                f"{path} is a Parquet file, a single table: leave dataset= out to ingest it whole"
            )
        member, described = "", _described(path, "a Parquet table", lambda: ingested.describe_parquet(path))
    elif dataset is not None:
        fmt, member, described = "hdf5", dataset, _hdf5_member(path, dataset)
    else:
        fmt, member = "netcdf", "/"
        described = _described(path, "a NetCDF-4 file", lambda: _netcdf(path))
    if fingerprint(path) != before:
        raise IngestError(
            f"{path} changed while it was being ingested; nothing was stored. Ingest a file once it is complete"
        )
    return fmt, member, described, before


def _described(path: Path, what: str, look: Any) -> Any:
    try:
        return look()
    except ShelfError as exc:
        raise IngestError(f"{path} cannot be ingested as {what}: {exc}") from None
    except Exception as exc:  # any failure to read the file is what is reported
        raise IngestError(f"{path} cannot be read as {what}: {' '.join(str(exc).split())[:300]}") from None


def _netcdf(path: Path) -> Any:
    from .datastore import hdf5, ingested

    with hdf5.open_file(path) as f:
        hdf5.member(f, "/", whole=True)  # nothing that leads outside the file, before xarray opens it
    try:
        return ingested.describe_netcdf(path)
    except Exception as exc:  # xarray's own refusals of a file that is HDF5 but no NetCDF
        raise ValueError(f"{exc}; to ingest one array of an HDF5 file, name it with dataset=") from exc


def _hdf5_member(path: Path, dataset: str) -> Any:
    import h5py

    from .datastore import hdf5, ingested
    from .datastore.formatter import RefersOutside

    try:
        f = hdf5.open_file(path)
    except Exception as exc:  # not a readable HDF5 file after all
        raise IngestError(f"{path} cannot be read as HDF5: {' '.join(str(exc).split())[:300]}") from None
    with f:
        try:
            found = hdf5.member(f, dataset)
        except KeyError:
            top = sorted(f)[:20]
            raise IngestError(
                f"{path} has no dataset {dataset!r}{close_matches(dataset.lstrip('/'), top)}; its top-level members: "
                f"{', '.join(top) or 'none'} (h5ls -r lists them all)"
            ) from None
        except RefersOutside as exc:
            raise IngestError(f"{path} cannot be ingested: {exc}") from None
        if not isinstance(found, h5py.Dataset):
            inside = sorted(found)[:10] if isinstance(found, h5py.Group) else []
            raise IngestError(
                f"{dataset!r} in {path} is a group, not a dataset; dataset= names one array "
                f"(this group holds: {', '.join(inside) or 'nothing'}), or leave it out to ingest a NetCDF-4 file whole"
            )
        try:
            return ingested.describe_array(found)
        except ValueError as exc:
            raise IngestError(f"{dataset!r} in {path} cannot be ingested: {exc}") from None
        except Exception as exc:  # damaged chunks, a missing filter
            raise IngestError(
                f"{dataset!r} in {path} cannot be read: {' '.join(str(exc).split())[:300]}"
            ) from None


def _confirm(root: Path, path: Path) -> None:
    from . import trust

    if trust.DATA.has(root, path, below=True):
        return
    try:
        trust.DATA.add(root, path)
    except OSError as exc:
        raise IngestError(
            f"cannot remember that you let the shelf {root} read {path} (in {trust.DATA.path()}: {exc.strerror or exc}); "
            "set XDG_CONFIG_HOME to a folder of yours, or ingest with transfer='copy'"
        ) from None


def _commit(
    shelf: Shelf,
    run: int,
    name: str,
    did: Mapping[str, Any],
    key: str,
    fields: dict[str, Any],
    described: PutMeta | None,
    path: Path,
) -> DatasetRef:
    """Insert the row (never over an existing dataset) and its change, with the name's display metadata."""
    from .names import format_data_id
    from .registry.meta import WHOLE
    from .writer import _now, _ref

    registry = shelf._registry
    writer = shelf._writer
    with registry.db.write() as txn:
        if described is None:
            current = registry.lock_target(txn, run, name, key)
        else:
            current, same = registry.lock_target_with_meta(
                txn, run, name, key, described.given, described.params
            )
        if current is not None:
            said = f" with data ID {format_data_id(dict(did))}" if did else ""
            raise IngestError(
                f"run {run} has a dataset {name!r}{said} already; ingest registers a new dataset: choose another "
                f"name (or delete the dataset first) to ingest {path}"
            )
        if described is not None and (not same or described.defaults):
            writer.meta.update(
                txn, name, WHOLE, described.fields, user=described.user, defaults=described.defaults
            )
        dataset_id = registry.write_dataset(
            txn,
            existing_id=None,
            version=1,
            run=run,
            name=name,
            data_id=key,
            fields=fields,
            change="put",
        )
    return _ref(dataset_id, run, name, did, 1, fields, _now(), registry.db.where)


def linkable(node: Any, above: int = LINK_ABOVE) -> bool:
    """Whether an importer asked to link keeps the HDF5 dataset ``node`` in its file (``run.ingest``) rather than copying it.

    Numeric and bool arrays of at least ``above`` bytes whose values lie in
    the file itself; smaller values cost less to copy than a file to keep.
    """
    import h5py

    if not isinstance(node, h5py.Dataset) or node.shape is None or not node.ndim:
        return False
    if node.dtype.names is not None or node.dtype.kind not in "biufc":
        return False
    plist = node.id.get_create_plist()
    if plist.get_layout() == h5py.h5d.VIRTUAL or plist.get_external_count():
        return False
    return int(node.size) * node.dtype.itemsize >= above


def confirm_folder(shelf: Shelf, folder: str | os.PathLike[str]) -> None:
    """Let ``shelf`` read, for this user, the files under ``folder`` an import is about to ingest (chosen by the importer's caller)."""
    _confirm(shelf.root, Path(os.path.realpath(folder)))


# -- trust ---------------------------------------------------------------------------------------


def trust_data(shelf: Any, path: str | os.PathLike[str]) -> Path:
    """Let the shelf read the ingested file ``path`` (or every file under the folder ``path``), for this user.

    ``shelf`` is a Shelf or a shelf folder.  The confirmation is kept in
    this user's ``$XDG_CONFIG_HOME/labshelf/trusted-data.json`` (see
    :mod:`labshelf.trust`), never in the shelf.  Returns the resolved path
    confirmed.
    """
    from . import trust

    root = shelf.root if hasattr(shelf, "root") else _shelf_root(shelf)
    given = Path(path).expanduser()
    if not given.exists():
        raise IngestError(f"there is no file or folder {given} to trust")
    resolved = Path(os.path.realpath(given))
    try:
        trust.DATA.add(Path(root).resolve(), resolved)
    except OSError as exc:
        raise IngestError(
            f"cannot remember your confirmation in {trust.DATA.path()}: {exc.strerror or exc}"
        ) from None
    return resolved


def _shelf_root(folder: Any) -> Path:
    from .errors import NotAShelf

    root = Path(folder).expanduser()
    if not (root / "labshelf.json").is_file():
        raise NotAShelf(f"{root} is not a shelf folder (it has no labshelf.json)")
    return root.resolve()


# -- reading ---------------------------------------------------------------------------------------

#: Checksums of files already compared in this process, by what stat says of them.
_CHECKED: dict[tuple[Any, ...], str] = {}


def located(repo: Repository, ref: DatasetRef) -> tuple[list[Path], str]:
    """The file to read for an ingested ``ref`` and the member inside it, after every check.

    Raises CorruptDataset (a damaged record), UnconfirmedFile (a file
    outside the shelf this user has not confirmed; nothing of it is looked
    at), IngestedFileChanged (changed, replaced by a link, or gone).
    """
    from .datastore.store import labshelf_named

    where = f"dataset {ref.label!r} of run {ref.run}"
    try:
        source = source_of(ref.storage.options)
    except CorruptDataset as exc:
        raise CorruptDataset(f"{where}: {exc}; it cannot be read. Other datasets are not affected") from None
    if source is None:
        raise CorruptDataset(f"{where} is not an ingested file")
    files = ref.storage.files
    if source.transfer == "copy":
        if len(files) != 1:
            raise CorruptDataset(
                f"{where}: its registry row lists {len(files)} data files for one copied file"
            )
        try:
            path = repo.datastore.path(files[0])
        except UnsafePath as exc:
            raise CorruptDataset(f"{where}: {exc}. Other datasets are not affected") from exc
        _check_unchanged(where, path, source, os.fspath(path))
        return [path], source.member
    if (
        ref.storage.inline is not None
        or (source.transfer == "direct" and files)
        or (source.transfer == "symlink" and len(files) != 1)
    ):
        raise CorruptDataset(
            f"{where}: its registry row does not hold a {source.transfer} ingest (damaged or edited)"
        )
    root = repo.datastore.root
    if not _confirmed(root, source.path):
        raise UnconfirmedFile(
            f"{where} is the file {source.path}, kept in place outside the shelf {root}, and you have not "
            f"confirmed that this shelf may read it (its registry could name any file). If you trust it: "
            f"`labshelf trust-data {root} {source.path}` or labshelf.trust_data(shelf, {source.path!r})"
        )
    if source.transfer == "symlink":
        link = files[0]
        if not labshelf_named(link, ref.run, ref.name):
            raise CorruptDataset(
                f"{where}: its registry row names the link {link!r}, which labshelf did not make"
            )
        try:
            target = os.readlink(
                os.path.join(_data_folder(repo, os.path.dirname(link)), os.path.basename(link))
            )
        except FileNotFoundError:
            raise IngestedFileChanged(
                f"{where}: its link {link} in the shelf is gone; {source.path} is not read "
                "without it (ingest the file again)"
            ) from None
        except OSError:
            raise IngestedFileChanged(
                f"{where}: {link} in the shelf is no longer the link to {source.path} made at ingest"
            ) from None
        if target != source.path:
            raise IngestedFileChanged(
                f"{where}: its link {link} now points at {target}, not at {source.path} as "
                "ingested; labshelf reads only the file ingested"
            )
    _check_unchanged(where, Path(source.path), source, source.path)
    return [Path(source.path)], source.member


def _data_folder(repo: Repository, folder: str) -> str:
    """Where the folder of a link under ``data/`` really is; IngestedFileChanged if it leads out of ``data/``."""
    real, _st, linked = repo.datastore._resolve(folder)
    if linked and not repo.datastore._in_data(real):
        raise IngestedFileChanged(f"{folder} in the shelf leads outside its data/ folder")
    return real


def _confirmed(root: Path, path: str) -> bool:
    from . import trust

    return trust.DATA.has(root, Path(path), below=True)


def _check_unchanged(where: str, path: Path, source: Source, shown: str) -> None:
    """IngestedFileChanged unless ``path`` is (still) the file fingerprinted at ingest, reached by no link."""
    text = os.fspath(path)
    if source.transfer != "copy" and os.path.realpath(text) != text:
        raise IngestedFileChanged(
            f"{where}: {shown} is now reached through a symbolic link (to {os.path.realpath(text)}); labshelf reads "
            "only the file ingested"
        )
    try:
        st = os.lstat(text)
    except FileNotFoundError:
        raise IngestedFileChanged(f"{where}: the ingested file {shown} is gone (moved or deleted)") from None
    except OSError as exc:
        raise IngestedFileChanged(
            f"{where}: the ingested file {shown} cannot be looked at: {exc.strerror or exc}"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise IngestedFileChanged(f"{where}: {shown} is no longer a regular file")
    if st.st_size != source.size or (source.transfer != "copy" and st.st_mtime_ns != source.mtime_ns):
        what = (
            f"its size {source.size} is now {st.st_size}" if st.st_size != source.size else "it was modified"
        )
        raise IngestedFileChanged(
            f"{where}: the ingested file {shown} changed since it was ingested ({what}); labshelf reads an ingested "
            "file only as it was: ingest it again (under a new name or in a new run)"
        )
    memo = (text, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if _CHECKED.get(memo) == source.checksum:
        return
    try:
        _size, _mtime, checksum = fingerprint(text)
    except OSError as exc:
        raise IngestedFileChanged(
            f"{where}: the ingested file {shown} cannot be read: {exc.strerror or exc}"
        ) from None
    if checksum != source.checksum:
        raise IngestedFileChanged(
            f"{where}: the ingested file {shown} changed since it was ingested (its checksum differs); labshelf "
            "reads an ingested file only as it was: ingest it again"
        )
    if len(_CHECKED) > 4096:
        _CHECKED.clear()
    _CHECKED[memo] = checksum


def describe_problem(exc: BaseException) -> str:
    """The kind of verify problem an ingest error is."""
    if isinstance(exc, UnconfirmedFile):
        return "unconfirmed"
    if isinstance(exc, IngestedFileChanged):
        return "changed"
    return "damaged"
