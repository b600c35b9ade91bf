"""Files kept where they are: what an ingested dataset records, and what is read from its file once.

``run.ingest`` registers an existing HDF5 dataset, a whole NetCDF-4 file or
a Parquet table as a dataset without rewriting it.  This module is the
datastore's side (bytes on disk, no shelf, no user): the record kept in the
dataset row's ``options`` under ``"ingested"`` (:class:`Source`), the cheap
fingerprint that tells whether the file is still the one ingested, the
format of a file, and the row fields (kind, shape, dtype, nbytes, summary)
computed once from the file, reading a bounded part of it.

The fingerprint (:func:`fingerprint`) is the size, the modification time
in nanoseconds and ``sha256(size, first MiB, last MiB)``: HDF5 keeps its
superblock and root group at the start of a file and writes new objects at
its end, Parquet keeps its footer (the schema and every column chunk's
offset) at the end, so a rewrite, an append or a truncation changes it.  A
change of a few bytes in the middle of a file whose size and modification
time were set back by hand is what it does not see.  Reading 2 MiB costs a
few milliseconds whatever the file's size.

Summaries of big arrays are made from a bounded sample, never a whole read
(:data:`SAMPLE_BYTES`): the mean of up to 16 evenly spread blocks of rows
along the first axis (exact when the array is smaller than the budget); the
thumbnail of an image (or of the first frame of a stack of images) from
its pixels read with a stride that keeps the read under
:data:`THUMBNAIL_BYTES`.  The summary's text says ``sampled`` when its mean
is not that of every value.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptDataset
from .formatter import Description, Summary

#: The key of the ingest record in a dataset row's ``options``.
KEY = "ingested"
FORMATS = ("hdf5", "netcdf", "parquet")
TRANSFERS = ("direct", "copy", "symlink")
#: Bytes hashed at each end of a file for its fingerprint.
EDGE_BYTES = 1 << 20
#: At most this many bytes of an array are read to summarise it.
SAMPLE_BYTES = 8 << 20
#: Blocks of rows the sample is taken from, evenly spread.
SAMPLE_BLOCKS = 16
#: At most this many bytes are read to make a thumbnail.
THUMBNAIL_BYTES = 64 << 20
#: dtype kinds an ingested HDF5 array may have: what labshelf reads back exactly.
ARRAY_KINDS = "biufcS"

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_PARQUET_MAGIC = b"PAR1"
_NETCDF3_MAGIC = b"CDF"


@dataclass(frozen=True, slots=True)
class Source:
    """What a dataset row records of its ingested file.

    ``path`` is the file as resolved at ingest (absolute, no link on the
    way); ``member`` the HDF5 dataset (``/entry/data/data``) or ``/`` for a
    whole NetCDF file, ``""`` for Parquet.  ``transfer`` is how the shelf
    holds it: ``direct`` (read where it is), ``symlink`` (a link in
    ``data/`` points at it) or ``copy`` (copied into ``data/``: an
    ordinary data file).
    """

    format: str
    member: str
    transfer: str
    path: str
    size: int
    mtime_ns: int
    checksum: str

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "member": self.member,
            "transfer": self.transfer,
            "path": self.path,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "checksum": self.checksum,
        }

    @property
    def outside(self) -> bool:
        """Whether the bytes are read from outside the shelf (and so need this user's confirmation)."""
        return self.transfer != "copy"


def source_of(options: Mapping[str, Any]) -> Source | None:
    """The ingest record of a row's options, None for an ordinary dataset; CorruptDataset if it is malformed.

    A registry row is untrusted: every field is checked for its type.
    """
    record = options.get(KEY) if isinstance(options, Mapping) else None
    if record is None:
        return None
    try:
        if not isinstance(record, Mapping):
            raise TypeError
        source = Source(
            **{k: record[k] for k in ("format", "member", "transfer", "path", "size", "mtime_ns", "checksum")}
        )
        texts = (source.format, source.member, source.transfer, source.path, source.checksum)
        numbers = (source.size, source.mtime_ns)
        if not all(isinstance(t, str) and "\0" not in t for t in texts) or not all(
            type(n) is int and n >= 0 for n in numbers
        ):
            raise TypeError
        if source.format not in FORMATS or source.transfer not in TRANSFERS or not os.path.isabs(source.path):
            raise TypeError
    except (KeyError, TypeError):
        raise CorruptDataset(
            f"its registry row's record of an ingested file is damaged ({dict(record) if isinstance(record, Mapping) else record!r})"
        ) from None
    return source


def stored_name(ref: Any) -> str:
    """The name of a dataset's value inside its data file: the ingested member, else the dataset name."""
    record = ref.storage.options.get(KEY) if isinstance(ref.storage.options, Mapping) else None
    if isinstance(record, Mapping) and isinstance(record.get("member"), str):
        return str(record["member"])
    return str(ref.name)


# -- the fingerprint ---------------------------------------------------------------------------------


def fingerprint(path: str | os.PathLike[str], st: os.stat_result | None = None) -> tuple[int, int, str]:
    """(size, mtime_ns, checksum) of a file; see the module docstring for what the checksum covers."""
    with open(path, "rb") as f:
        st = st or os.fstat(f.fileno())
        size = st.st_size
        digest = hashlib.sha256(size.to_bytes(8, "little"))
        digest.update(f.read(EDGE_BYTES))
        if size > EDGE_BYTES:
            f.seek(max(EDGE_BYTES, size - EDGE_BYTES))
            digest.update(f.read(EDGE_BYTES))
    return size, st.st_mtime_ns, f"sha256-edges:{digest.hexdigest()}"


def full_checksum(path: str | os.PathLike[str]) -> str:
    """The sha256 of every byte of a file (for a deliberate, slow check)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


# -- what a file is ---------------------------------------------------------------------------------


def file_format(path: Path) -> str:
    """``hdf5`` (HDF5, NetCDF-4 included), ``parquet``, or ValueError saying what the file is not."""
    with open(path, "rb") as f:
        head = f.read(8)
        if head == _HDF5_MAGIC:
            return "hdf5"
        if head[:4] == _PARQUET_MAGIC:
            f.seek(-4, os.SEEK_END)
            if f.read(4) == _PARQUET_MAGIC:
                return "parquet"
        if head[:3] == _NETCDF3_MAGIC:
            raise ValueError(
                "it is a NetCDF-3 (classic) file; labshelf reads NetCDF-4 files (HDF5) only: "
                "convert it with `nccopy -k nc4`"
            )
    raise ValueError("it is neither HDF5 (NetCDF-4 included) nor Parquet (the formats ingest takes)")


def _blocks(length: int, rows: int) -> list[tuple[int, int]]:
    """Up to SAMPLE_BLOCKS (start, stop) blocks of ``rows`` rows each, evenly spread over ``length``."""
    if rows >= length:
        return [(0, length)]
    count = max(1, min(SAMPLE_BLOCKS, length // max(rows, 1)))
    size = max(1, rows // count)
    starts = np.linspace(0, length - size, count).astype(np.int64)
    return [(int(s), int(s) + size) for s in starts]


def sample(dataset: Any) -> tuple[np.ndarray, bool]:
    """A bounded sample of an HDF5 dataset's values, and whether it is all of them."""
    shape = tuple(dataset.shape)
    itemsize = dataset.dtype.itemsize
    total = int(np.prod(shape, dtype=np.int64)) * itemsize
    if total <= SAMPLE_BYTES or not shape:
        return np.asarray(dataset[()]), True
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * itemsize
    if row_bytes > SAMPLE_BYTES:
        # One row is too big already: the start of the first line of the first row.
        first = (0,) * (len(shape) - 1) + (slice(0, max(1, SAMPLE_BYTES // itemsize)),)
        return np.asarray(dataset[first]).reshape(-1), False
    rows = max(1, SAMPLE_BYTES // row_bytes)
    parts = [np.asarray(dataset[start:stop]) for start, stop in _blocks(shape[0], rows)]
    return np.concatenate(parts, axis=0), False


def picture(dataset: Any, index: tuple[int, ...]) -> np.ndarray:
    """The image at ``index`` (leading axes) of an HDF5 dataset, read with a stride under THUMBNAIL_BYTES."""
    height, width = dataset.shape[len(index) : len(index) + 2]
    colour = tuple(dataset.shape[len(index) + 2 :])
    pixel = dataset.dtype.itemsize * int(np.prod(colour, dtype=np.int64))
    step = 1
    while (height // step) * (width // step) * pixel > THUMBNAIL_BYTES:
        step *= 2
    region = (*index, slice(None, None, step), slice(None, None, step))
    return np.asarray(dataset[region])


def describe_array(dataset: Any) -> tuple[str, Description, Summary]:
    """(kind, description, summary) of an HDF5 dataset, from a bounded sample; ValueError if labshelf cannot read it back."""
    from .image import is_image, thumbnail_png
    from .ndarray import array_mean, dtype_name

    dtype = dataset.dtype
    if dataset.shape is None:
        raise ValueError("it is an empty HDF5 dataset (no shape, no values)")
    if dtype.names is not None or dtype.kind not in ARRAY_KINDS or dtype.hasobject:
        raise ValueError(
            f"its dtype {dtype} is not one ingest reads back exactly; ingest takes numeric, bool and "
            "fixed-length byte-string datasets (read others with h5py and put them)"
        )
    shape = tuple(int(n) for n in dataset.shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    description = Description(shape=shape, dtype=dtype_name(dtype), nbytes=nbytes)
    values, whole = sample(dataset)
    mean = array_mean(values) if dtype.kind in "biufc" else None
    text = f"{'x'.join(str(n) for n in shape) or 'scalar'} {dtype_name(dtype)}{'' if whole else ' (mean sampled)'}"
    numeric = dtype.kind in "uif"
    if numeric and is_image(_shape_only(shape, dtype)):
        thumb = thumbnail_png(picture(dataset, ()))
        return "image", description, Summary("image", value=mean, text=text, thumbnail=thumb)
    if numeric and len(shape) >= 3 and min(shape[-2:]) >= 16 and 0 not in shape:
        # A stack of frames: an array whose thumbnail is its first frame.
        index = (0,) * (len(shape) - 2)
        thumb = thumbnail_png(picture(dataset, index))
        return (
            "ndarray",
            description,
            Summary("image", value=mean, text=f"{text}, frame {index}", thumbnail=thumb),
        )
    return "ndarray", description, Summary("array", value=mean, text=text)


def _shape_only(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A zero-strided array of ``shape`` (no memory) that ``is_image`` can judge."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, dtype=dtype), shape=shape, strides=(0,) * len(shape))


def describe_netcdf(path: Path) -> tuple[str, Description, Summary]:
    """(kind, description, summary) of a whole NetCDF-4 file, from its headers (opened lazily, no values read)."""
    import xarray as xr

    from .netcdf import _time_decoder

    with xr.open_dataset(path, engine="h5netcdf", decode_times=_time_decoder(xr)) as dataset:
        if not dataset.variables:
            raise ValueError("it holds no NetCDF variables at its root (an HDF5 file not written as NetCDF?)")
        names = ", ".join(str(v) for v in dataset.data_vars)
        nbytes = int(dataset.nbytes)
    return (
        "xarray",
        Description(shape=None, dtype="Dataset", nbytes=nbytes),
        Summary("table", text=f"Dataset: {names}" if names else "Dataset (empty)"),
    )


def describe_parquet(path: Path) -> tuple[str, Description, Summary]:
    """(kind, description, summary) of a Parquet table, from its footer (no values read)."""
    import pyarrow.parquet as pq

    from .parquet import _pandas_columns

    parquet = pq.ParquetFile(path)
    meta = parquet.metadata
    columns, _index = _pandas_columns(parquet.schema_arrow)
    nbytes = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
    rows = meta.num_rows
    return (
        "pandas",
        Description(shape=(rows, len(columns)), dtype="DataFrame", nbytes=int(nbytes)),
        Summary("table", text=f"DataFrame {rows} rows x {len(columns)} columns"),
    )
