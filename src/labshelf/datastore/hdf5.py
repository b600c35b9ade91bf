"""HDF5 through h5py: storage options, dtypes h5py lacks, and read errors.

h5py has no native type for numpy unicode strings (``<U``), datetimes and
timedeltas, so those are stored as UTF-8 bytes or int64 with the original
dtype in the ``labshelf_dtype`` attribute, and turned back on read.

An HDF5 file can make HDF5 read other files: an external link, a dataset
with external raw storage, a virtual dataset.  labshelf's own files never
do, and a shelf may come from someone else, so every object labshelf reads
from a data file is reached through :func:`member`, which refuses them.
Arrays carry checksums of their values (:mod:`.checksum`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import CorruptDataset, InvalidOptions
from . import checksum
from .formatter import RefersOutside, missing_file

DTYPE_ATTR = "labshelf_dtype"
#: ``DTYPE_ATTR`` of str objects stored as UTF-8 bytes (those holding a NUL).
OBJECT_UTF8 = "object-str-utf8"

_OPTION_KEYS = ("compression", "compression_opts", "shuffle", "chunks", "fletcher32", "scaleoffset")
_COMPRESSORS = ("gzip", "lzf")


def check_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate per-dataset HDF5 options; return them as a plain dict."""
    if not options:
        return {}
    if not isinstance(options, Mapping):
        raise InvalidOptions(f"hdf5_options must be a dict, not {type(options).__name__}")
    unknown = sorted(set(options) - set(_OPTION_KEYS))
    if unknown:
        raise InvalidOptions(f"unknown hdf5_options {unknown}; allowed are {list(_OPTION_KEYS)}")
    out = dict(options)
    if isinstance(out.get("chunks"), list):
        # Options come back from the registry as JSON (a mutate or an append
        # writes with the dataset's stored options): h5py wants a tuple.
        out["chunks"] = tuple(out["chunks"])
    compression = out.get("compression")
    if compression is not None and not isinstance(compression, int):
        if compression not in _COMPRESSORS and not _hdf5plugin_filter(compression):
            raise InvalidOptions(
                f"compression {compression!r} is not available; use 'gzip' (with "
                "compression_opts 0-9), 'lzf', or a filter of hdf5plugin when it is installed"
            )
    if compression == "gzip" and "compression_opts" in out:
        level = out["compression_opts"]
        if not isinstance(level, int) or not 0 <= level <= 9:
            raise InvalidOptions(f"gzip compression_opts is a level 0-9, not {level!r}")
    chunks = out.get("chunks")
    if chunks is not None and chunks is not True:
        if not isinstance(chunks, (tuple, list)) or not all(isinstance(c, int) and c > 0 for c in chunks):
            raise InvalidOptions(f"chunks must be True or a tuple of positive ints, not {chunks!r}")
        out["chunks"] = tuple(chunks)
    return out


def _hdf5plugin_filter(name: Any) -> bool:
    """Resolve a hdf5plugin filter name (e.g. 'zstd', 'blosc'), if installed."""
    if not isinstance(name, str):
        return False
    try:
        import hdf5plugin
    except ImportError:
        return False
    return any(cls.filter_name == name for cls in getattr(hdf5plugin, "FILTER_CLASSES", ()))


def creation_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Turn validated options into ``create_dataset`` keyword arguments."""
    out = dict(options)
    if isinstance(out.get("chunks"), list):
        # Options come back from the registry as JSON (a mutate or an append
        # writes with the dataset's stored options): h5py wants a tuple.
        out["chunks"] = tuple(out["chunks"])
    compression = out.get("compression")
    if isinstance(compression, str) and compression not in _COMPRESSORS:
        import hdf5plugin

        cls = next(c for c in hdf5plugin.FILTER_CLASSES if c.filter_name == compression)
        out.pop("compression")
        out.pop("compression_opts", None)
        out.update(cls())
    return out


def fit_chunks(options: Mapping[str, Any], shape: tuple[int, ...]) -> Mapping[str, Any]:
    """``options`` for one file of ``shape``: chunk rows beyond its rows clipped.

    An array grows along its first axis, each ``run.append`` block (and each
    merge of small blocks) into a file of its own: the chunk shape is the
    whole growing array's, so a file with fewer rows than one chunk (an
    append of 10 rows to chunks of 50, an empty array to append to) holds
    one chunk of its rows, or none when it has none.  The other axes never
    grow: a chunk larger than them is refused by HDF5 (InvalidOptions).
    """
    chunks = options.get("chunks")
    if not isinstance(chunks, (tuple, list)) or not chunks or not shape or chunks[0] <= shape[0]:
        return options
    if shape[0] == 0:
        # HDF5 takes no chunk dimension of 0; h5py picks chunks itself if a filter needs them.
        return {k: v for k, v in options.items() if k != "chunks"}
    return {**options, "chunks": (shape[0], *chunks[1:])}


def encode(array: np.ndarray) -> tuple[np.ndarray, str | None]:
    """An array h5py can store, and the original dtype if it had to change."""
    kind = array.dtype.kind
    if kind == "U":
        encoded = np.char.encode(array, "utf-8") if array.size else array.astype("S1")
        return encoded, array.dtype.str
    if kind in "Mm":
        return array.view("<i8"), array.dtype.str
    if kind == "O":
        return array.astype(h5py.string_dtype()), "object-str"
    return array, None


def _utf8_bytes(array: np.ndarray) -> np.ndarray:
    """An object array of str as variable-length arrays of their UTF-8 bytes."""
    out = np.empty(array.size, dtype=object)
    out[:] = [np.frombuffer(x.encode("utf-8"), dtype=np.uint8) for x in array.ravel()]
    return out.reshape(array.shape).astype(h5py.vlen_dtype(np.uint8))


def decode(data: np.ndarray, stored_dtype: str | None) -> np.ndarray:
    if stored_dtype is None:
        return data
    if stored_dtype in ("object-str", OBJECT_UTF8):
        # Filled flat, then reshaped: a list cannot be broadcast into an N-D object array.
        out = np.empty(data.size, dtype=object)
        if stored_dtype == OBJECT_UTF8:
            out[:] = [bytes(x).decode("utf-8") for x in data.ravel()]
        else:
            out[:] = [x.decode("utf-8") if isinstance(x, bytes) else x for x in data.ravel()]
        return out.reshape(data.shape)
    try:
        dtype = np.dtype(stored_dtype)
    except TypeError as exc:
        raise ValueError(f"a data file claims the unknown dtype {stored_dtype!r}") from exc
    if dtype.hasobject:
        # Only "object-str" above makes object arrays; a file claiming another
        # object dtype was not written by labshelf.
        raise ValueError(f"a data file claims the dtype {stored_dtype!r}; object dtypes are never stored")
    if dtype.kind == "U":
        return np.char.decode(data, "utf-8").astype(dtype) if data.size else data.astype(dtype)
    return data.view(dtype)


def write_array(
    path: Path, name: str, array: np.ndarray, options: Mapping[str, Any], attrs: Mapping[str, Any] = {}
) -> None:
    """Write ``array`` as dataset ``name`` of a new HDF5 file at ``path``."""
    # The file is private until the datastore renames it into place, so
    # HDF5's file locking would only cost system calls.
    with h5py.File(path, "w", locking=False) as f:
        create_array(f, name, array, options, attrs)


def create_array(
    parent: h5py.Group, name: str, array: np.ndarray, options: Mapping[str, Any], attrs: Mapping[str, Any] = {}
) -> h5py.Dataset:
    """Create ``array`` as dataset ``name`` under ``parent``: dtypes h5py lacks encoded, checksum recorded."""
    stored, original = encode(array)
    try:
        try:
            ds = parent.create_dataset(name, data=stored, **creation_options(fit_chunks(options, stored.shape)))
        except ValueError as exc:
            if original != "object-str" or "NULL" not in str(exc):
                raise
            # HDF5's variable-length strings end at a NUL: str objects holding
            # one are kept as their UTF-8 bytes instead (found by trying, so
            # the common case never looks at every string once more).
            if name in parent:
                del parent[name]
            stored, original = _utf8_bytes(array), OBJECT_UTF8
            ds = parent.create_dataset(name, data=stored, **creation_options(fit_chunks(options, stored.shape)))
    except (ValueError, TypeError) as exc:
        raise InvalidOptions(f"HDF5 refused the storage options {dict(options)}: {exc}") from exc
    if original is not None:
        ds.attrs[DTYPE_ATTR] = original
    for key, value in attrs.items():
        ds.attrs[key] = value
    checksum.record(ds, stored)
    return ds


def open_file(path: Path) -> h5py.File:
    """Open a data file to read; a missing one raises FileNotFoundError naming it.

    Reach what is inside through :func:`member`.
    """
    try:
        # Data files never change once written, so no lock is needed to read.
        return h5py.File(path, "r", locking=False)
    except FileNotFoundError as exc:
        raise missing_file(path) from exc
    except OSError as exc:
        if "locking flag" not in str(exc):
            raise
        # HDF5 opens a file once per process: one this process holds open with
        # h5py's default locking already (an ingested file a notebook reads too)
        # is opened as it was.
        return h5py.File(path, "r")


#: Soft links followed one after another before a file counts as damaged (a loop).
_MAX_SOFT_LINKS = 16


def member(parent: h5py.Group, name: str, *, whole: bool = False) -> Any:
    """``parent[name]``, refusing anything that would make HDF5 read outside the file.

    The path is followed link by link: hard links, and soft links (which
    name another object of the same file), are followed; an external link
    is refused, and so is a dataset whose values live elsewhere (external
    raw storage, a virtual dataset).  ``whole=True`` first checks every
    object of the file, for readers such as xarray that go wherever the
    file leads them.  Raises :class:`RefersOutside`, or KeyError for a
    missing member.  Checking the one path read costs a few tens of
    microseconds; a big file is not walked.

    Files ingested in place (:mod:`labshelf.ingest`) go through the same
    checks: a file the user chose may not lead the read to files they did not.
    """
    if whole:
        _check_file(parent.file)
    found = _follow(parent, name, 0)
    if isinstance(found, h5py.Dataset):
        _check_storage(found)
    return found


def _follow(group: Any, path: str, depth: int) -> Any:
    """The object ``path`` names from ``group``, its links checked part by part.

    Link types are asked of HDF5 for each longer prefix of the path (cheap:
    no object is opened), so the one open at the end crosses hard links only.
    """
    if depth > _MAX_SOFT_LINKS:
        raise CorruptDataset(f"data file {group.file.filename}: soft links go round in a loop at {path!r}")
    base = group.file["/"] if path.startswith("/") else group
    parts = [part for part in path.split("/") if part not in ("", ".")]
    done = ""
    for index, part in enumerate(parts):
        prefix = f"{done}/{part}" if done else part
        try:
            info = base.id.links.get_info(prefix.encode())
        except (KeyError, RuntimeError):
            raise KeyError(f"no member {path!r}") from None
        if info.type == h5py.h5l.TYPE_HARD:
            done = prefix
            continue
        holder = base[done] if done else base
        if info.type != h5py.h5l.TYPE_SOFT:
            raise _outside(holder, part, holder.get(part, getlink=True))
        # A soft link names a path in this same file, from the group that holds it.
        target = base.id.links.get_val(prefix.encode()).decode(errors="replace")
        rest = "/".join(parts[index + 1 :])
        return _follow(holder, f"{target}/{rest}" if rest else target, depth + 1)
    if not done:
        return base
    # Opened below h5py's item access, whose own lookup would cost as much again.
    found = h5py.h5o.open(base.id, done.encode())
    if isinstance(found, h5py.h5d.DatasetID):
        return h5py.Dataset(found)
    if isinstance(found, h5py.h5g.GroupID):
        return h5py.Group(found)
    return base[done]


def _outside(group: Any, part: str, link: Any) -> RefersOutside:
    where = f"{group.name.rstrip('/')}/{part}"
    if isinstance(link, h5py.ExternalLink):
        what = f"{where!r} is an external link to {link.path!r} in the file {link.filename!r}"
    else:
        what = f"{where!r} is a user-defined link"
    return RefersOutside(f"data file {group.file.filename}: {what}; labshelf's own files never refer outside themselves")


def _check_storage(dataset: h5py.Dataset) -> None:
    plist = dataset.id.get_create_plist()
    if plist.get_layout() == h5py.h5d.VIRTUAL:
        what = "is a virtual dataset, whose values are read from other files"
    elif plist.get_external_count():
        what = f"keeps its values in the external file {plist.get_external(0)[0].decode(errors='replace')!r}"
    else:
        return
    raise RefersOutside(
        f"data file {dataset.file.filename}: dataset {dataset.name!r} {what}; "
        "labshelf's own files never refer outside themselves"
    )


def _check_file(f: h5py.File) -> None:
    """Check every link and dataset of a file.

    Soft links need no following here: the path they name is made of links
    of this same file, each one checked in its turn.
    """
    links: list[tuple[str, Any]] = []
    # Collected first: h5py turns an exception raised inside the visit into a SystemError.
    f.visititems_links(lambda name, link: links.append((name, link)))
    for name, link in links:
        folder, _, part = name.rpartition("/")
        if isinstance(link, h5py.HardLink):
            found = f[name]
            if isinstance(found, h5py.Dataset):
                _check_storage(found)
        elif not isinstance(link, h5py.SoftLink):
            raise _outside(f[folder] if folder else f, part, link)


def check_file(path: Path) -> int:
    """Read every dataset of an HDF5 data file in full, a block at a time, checking what can be checked.

    Refuses what refers outside the file (:class:`RefersOutside`), compares
    recorded checksums, and lets HDF5 check its own filters; raises
    CorruptDataset (saying what is wrong inside the file), or OSError.
    Returns the bytes read.
    """
    total = 0
    with open_file(path) as f:
        _check_file(f)
        datasets: list[h5py.Dataset] = []
        f.visititems(lambda _name, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
        for ds in datasets:
            where = f"its dataset {ds.name!r}"
            total += checksum.check_stream(ds, checksum.recorded(ds.attrs, where), where)
    return total


def array_shape(path: Path, name: str) -> tuple[int, ...]:
    """Shape of dataset ``name`` in the file at ``path`` (reads the header only)."""
    with open_file(path) as f:
        return tuple(member(f, name).shape)


#: Attributes labshelf keeps for itself, not the value's.
_OWN_ATTRS = (DTYPE_ATTR, checksum.ATTR)


def attributes(path: Path, name: str) -> dict[str, Any]:
    """The HDF5 attributes of dataset ``name`` as plain Python values (bytes decoded)."""
    with open_file(path) as f:
        attrs = dict(member(f, name).attrs)
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if key in _OWN_ATTRS:  # ours, not the value's
            continue
        if isinstance(value, bytes | np.bytes_):
            value = value.decode(errors="replace")
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


def read_array(path: Path, name: str, selection: Any = ()) -> np.ndarray:
    """Read dataset ``name`` (or a selection of it) from the HDF5 file at ``path``."""
    with open_file(path) as f:
        return read_dataset(member(f, name), selection, f"data file {path}")


def read_dataset(ds: h5py.Dataset, selection: Any, where: str) -> np.ndarray:
    """The values of a dataset written by :func:`create_array` (reached through :func:`member`),
    decoded, checked against the recorded checksum when all are read; ``where`` names it in errors."""
    original = ds.attrs[DTYPE_ATTR] if DTYPE_ATTR in ds.attrs else None
    # Only a read of every value can be compared with the checksum.
    whole = checksum.whole(selection, ds.shape)
    recorded = checksum.recorded(ds.attrs, where) if whole else None
    if whole and ds.dtype.kind in "iufc" and ds.size:
        # A whole numeric array straight into a new numpy array: about
        # 25% faster for a camera frame than h5py's general selection path.
        data = np.empty(ds.shape, dtype=ds.dtype)
        ds.read_direct(data)
    else:
        data = ds[selection]
    if recorded is not None:
        checksum.check(np.asarray(data), recorded, where)
    if isinstance(original, bytes):
        original = original.decode()
    return decode(np.asarray(data), original)
