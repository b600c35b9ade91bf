"""Checksums of the arrays in HDF5 data files: damage after writing is detected, not read as values.

HDF5 keeps no checksum of a contiguous dataset: its ``fletcher32`` filter
needs a chunked layout, which for a 2048x2048 uint16 camera frame costs
about 3.5 ms more CPU time to write and 3.7 ms more to read (1.8x and 3.5x a
plain write and read).  zlib's CRC-32 of the values costs 3.7 ms too, on
values just read.  So when labshelf writes an array it records a checksum
that numpy computes at memory speed (about 1 ms for that frame), as the
uint32 attribute ``labshelf_checksum`` of the dataset:

- fixed-size values: each 4 KiB block of their bytes (C order, as HDF5
  gives them back) is read as 512 little-endian 64-bit words ``w[j]`` and
  summed as ``sum((2j + 1) * w[j])`` modulo 2**64; the checksum is the
  CRC-32 of these sums, then of the bytes after the last whole block;
- variable-length strings: the CRC-32 of each item's length and UTF-8 bytes.

Any change to one word changes its block's sum (odd weights are invertible
modulo 2**64), as does a block copied or moved from elsewhere; other damage
goes unnoticed with a probability of about 2**-32, as with a CRC-32 of the
bytes.

A read of the whole array, or of a whole segment, is checked; a read of a
part (``slice``, previews) is not, as that would mean reading it all.
``Shelf.verify`` checks every file in full.  Files written before checksums
existed have no attribute and read as before.

Everything runs on the calling thread: on a worker, the sums would overlap
HDF5's own work but wait for the GIL at each hand-over, which cost more than
it saved on a busy machine (measured).
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from ..errors import CorruptDataset

ATTR = "labshelf_checksum"

_BLOCK_WORDS = 512
_BLOCK_BYTES = 8 * _BLOCK_WORDS
_WEIGHTS = np.arange(1, 2 * _BLOCK_WORDS, 2, dtype="<u8")
#: Bytes a full check reads at once: bounded memory for any size of array.
_STREAM_BYTES = 1 << 24


class Digest:
    """A checksum fed the values of an array in order, in parts of any size."""

    def __init__(self, dtype: np.dtype):
        self._items = dtype.kind == "O"  # variable-length strings: no bytes of their own to sum
        self._crc = 0
        self._rest = np.zeros(0, dtype=np.uint8)  # bytes not yet in a whole block

    def update(self, values: np.ndarray) -> None:
        if self._items:
            for item in values.ravel():
                raw = item.encode("utf-8") if isinstance(item, str) else bytes(item)
                self._crc = zlib.crc32(raw, zlib.crc32(len(raw).to_bytes(8, "little"), self._crc))
            return
        data = np.ascontiguousarray(values).reshape(-1).view(np.uint8)
        if self._rest.size:
            data = np.concatenate([self._rest, data])
        whole = data.size - data.size % _BLOCK_BYTES
        if whole:
            sums = data[:whole].view("<u8").reshape(-1, _BLOCK_WORDS) @ _WEIGHTS
            self._crc = zlib.crc32(sums.astype("<u8", copy=False).data, self._crc)
        self._rest = data[whole:].copy()  # not a view that keeps the whole block alive

    def value(self) -> int:
        return self._crc if self._items else zlib.crc32(self._rest.data, self._crc)


def digest(values: np.ndarray) -> int:
    """The checksum of a whole array."""
    found = Digest(values.dtype)
    found.update(values)
    return found.value()


def record(dataset: Any, stored: np.ndarray) -> None:
    """Record the checksum of ``stored``, just written as the h5py ``dataset``."""
    if dataset.dtype != stored.dtype:  # HDF5 gives it back as another dtype: sum what a read sees
        stored = stored.astype(dataset.dtype)
    dataset.attrs[ATTR] = np.uint32(digest(stored))


def recorded(attrs: Any, where: str) -> int | None:
    """The checksum a dataset's attributes record, or None for a file written without one."""
    try:
        value = attrs[ATTR]
    except KeyError:
        return None
    if not isinstance(value, np.uint32):
        raise CorruptDataset(f"{where}: its checksum record {value!r} is damaged")
    return int(value)


def whole(selection: Any, shape: tuple[int, ...] | None) -> bool:
    """Whether a read selection takes every value of an array of ``shape``, in order."""
    if selection == ():
        return True
    if shape is None:
        return False
    items = list(selection) if isinstance(selection, tuple) else [selection]
    at = next((k for k, item in enumerate(items) if item is Ellipsis), None)
    if at is not None:
        items[at : at + 1] = [slice(None)] * (len(shape) - len(items) + 1)
    if len(items) > len(shape):
        return False
    try:
        return all(isinstance(i, slice) and i.indices(n) == (0, n, 1) for i, n in zip(items, shape, strict=False))
    except TypeError:  # bounds that are not ints: the read refuses them itself
        return False


def check(values: np.ndarray, expected: int, where: str) -> None:
    """Compare the whole array just read with the checksum recorded when it was written."""
    if digest(values) != expected:
        raise mismatch(where)


def check_stream(dataset: Any, expected: int | None, where: str) -> int:
    """Read a whole h5py dataset a block of rows at a time (never all at once), checking it.

    Without a recorded checksum the read still lets HDF5 check what it can
    (its own filters, such as fletcher32).  Returns the bytes read.
    """
    shape = dataset.shape
    if shape is None:  # an HDF5 null dataspace holds no values
        return 0
    if not shape or shape[0] == 0:
        blocks: Any = [np.asarray(dataset[()])]
    else:
        row_bytes = max(1, dataset.dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64)))
        rows = max(1, _STREAM_BYTES // row_bytes)
        blocks = (np.asarray(dataset[i : i + rows]) for i in range(0, shape[0], rows))
    found = Digest(dataset.dtype)
    total = 0
    for block in blocks:
        total += block.nbytes
        if expected is not None:
            found.update(block)
    if expected is not None and found.value() != expected:
        raise mismatch(where)
    return total


def mismatch(where: str) -> CorruptDataset:
    return CorruptDataset(
        f"{where}: its values do not match the checksum recorded when labshelf wrote the file; "
        "the file was damaged since (a disk error, a partial copy, an edit)"
    )
