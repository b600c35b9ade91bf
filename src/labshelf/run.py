"""Run: one execution of an experiment, and the handle to write its datasets."""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .errors import DatasetNotFound, InvalidValue, close_matches
from .registry.records import DatasetRef, RunRecord

if TYPE_CHECKING:
    from .shelf import Shelf


class Run:
    """A run of a shelf: its metadata, and the place to put its datasets.

    Use a new run as a context manager: leaving the block ends it as
    ``finished``; an exception ends it as ``failed`` (``aborted`` for
    KeyboardInterrupt) and is re-raised.  A Run also reads like a mapping of
    dataset name to value (``run["temperature"]``, ``"scan/x" in run``).
    """

    def __init__(self, shelf: Shelf, record: RunRecord):
        self._shelf = shelf
        self._record = record

    # -- metadata ------------------------------------------------------------

    @property
    def record(self) -> RunRecord:
        """The run's current registry record (read fresh each time)."""
        fresh = self._shelf._registry.run(self._record.number)
        if fresh is not None:
            self._record = fresh
        return self._record

    @property
    def number(self) -> int:
        return self._record.number

    @property
    def experiment(self) -> str:
        return self._record.experiment

    @property
    def params(self) -> Mapping[str, Any]:
        return self._record.params

    @property
    def collection(self) -> str:
        """The RUN collection of this run, e.g. ``"run/12"``."""
        return self._record.collection

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def start(self) -> _dt.datetime:
        return self._record.start

    @property
    def end(self) -> _dt.datetime | None:
        return self.record.end

    @property
    def datasets(self) -> list[DatasetRef]:
        return self._shelf.datasets(self.number)

    def __repr__(self) -> str:
        record = self._record
        experiment = f" {record.experiment}" if record.experiment else ""
        return f"<Run {record.number}{experiment} {record.status}>"

    def _repr_html_(self) -> str:
        from .display import run_html

        return run_html(self)

    # -- writing -------------------------------------------------------------

    def put(
        self,
        name: str,
        value: Any,
        *,
        data_id: Mapping[str, Any] | None = None,
        hdf5_options: Mapping[str, Any] | None = None,
        persist: bool = True,
        kind: str | None = None,
        unit: str | None = None,
        scale: float | None = None,
        precision: int | None = None,
        title: str | None = None,
        description: str | None = None,
    ) -> DatasetRef | None:
        """Store ``value`` as dataset ``name`` of this run (replacing an earlier value).

        Parameters
        ----------
        name
            Hierarchical name, parts joined by ``/`` (``camera/image``).
        value
            A scalar, numpy array, image, xarray object or pandas object.
        data_id
            Dimension values telling apart datasets of the same name
            (``{"channel": 2}``).
        hdf5_options
            HDF5 storage options for arrays and images: ``compression``
            (``"gzip"``, ``"lzf"``, or an hdf5plugin filter name),
            ``compression_opts``, ``shuffle``, ``chunks``, ``fletcher32``,
            ``scaleoffset``.
        persist
            False to broadcast the value to live subscribers only, never store it.
        kind
            Force a value kind (e.g. ``"ndarray"`` for a 2-D array that is
            not an image).
        unit, scale, precision, title, description
            Display metadata of the name, for every run (see
            :meth:`Shelf.describe`): written only when they differ from
            what is stored; a field left out keeps its stored value.  An
            xarray value's ``attrs["units"]`` is the unit when none is said.

        Returns
        -------
        DatasetRef or None
            The stored dataset, or None when ``persist=False``.
        """
        self._shelf._check_writable()
        meta = None
        if unit is not None or scale is not None or precision is not None or title is not None or description is not None:
            from .registry.meta import put_fields

            meta = put_fields(unit, scale, precision, title, description)
        return self._shelf._writer.put(
            self.number, name, value, data_id=data_id, hdf5_options=hdf5_options, persist=persist, kind=kind, meta=meta
        )

    def put_many(
        self,
        values: Mapping[str, Any],
        *,
        data_id: Mapping[str, Any] | None = None,
        meta: Mapping[str, Mapping[str, Any]] | None = None,
        hdf5_options: Mapping[str, Mapping[str, Any] | None] | None = None,
    ) -> Mapping[str, DatasetRef]:
        """Store many datasets of this run at once: all of them, or none.

        Each value is stored as :meth:`put` would store it (a new version
        where the name exists), but every row commits in one registry
        transaction: readers and subscribers see the whole batch at once, a
        refused value or a crash stores none of it.  Subscribers get one
        ``put`` change per dataset, as if each had been put alone.

        Parameters
        ----------
        values
            Dataset name -> value, e.g. ``{"fit/a": 1.0, "fit/b": 2, "camera/image": frame}``.
            An empty mapping stores nothing and returns ``{}``.
        data_id
            One data ID for every value of the batch.
        meta
            Display metadata per name, with :meth:`put`'s keywords as keys:
            ``{"fit/a": {"unit": "us", "scale": 1e-6}}``.
        hdf5_options
            HDF5 storage options per name (see :meth:`put`).

        Returns
        -------
        Mapping of str to DatasetRef
            The stored datasets, by name (each ref is made when first looked up).

        Raises
        ------
        InvalidName, InvalidValue, UnsupportedValue, InvalidOptions
            A bad name, value, option or metadata field; the message names
            the key, and nothing was stored.
        """
        self._shelf._check_writable()
        if not isinstance(values, Mapping):
            raise InvalidValue(f"put_many() takes a mapping of dataset name to value, not {type(values).__name__}")
        checked = _per_name(values, meta, "meta", "a dict of display metadata such as {'unit': 'us'}")
        options = _per_name(values, hdf5_options, "hdf5_options", "a dict of HDF5 options such as {'compression': 'gzip'}")
        said = {}
        if checked:
            from .registry.meta import FIELDS, put_fields

            for name, fields in checked.items():
                unknown = sorted(set(fields) - set(FIELDS))
                if unknown:
                    raise InvalidValue(
                        f"put_many: meta of {name!r}: display metadata are {', '.join(FIELDS)}; "
                        f"not {', '.join(map(repr, unknown))}"
                    )
                try:
                    said[name] = put_fields(*(fields.get(f) for f in FIELDS))
                except InvalidValue as exc:
                    raise InvalidValue(f"put_many: meta of {name!r}: {exc}") from exc
        if not values:
            return {}
        return self._shelf._writer.put_many(self.number, values, data_id=data_id, meta=said, hdf5_options=options)

    def ingest(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        dataset: str | None = None,
        data_id: Mapping[str, Any] | None = None,
        transfer: str = "direct",
        unit: str | None = None,
        scale: float | None = None,
        precision: int | None = None,
        title: str | None = None,
        description: str | None = None,
    ) -> DatasetRef:
        """Register an existing file as dataset ``name`` of this run, without rewriting it.

        Parameters
        ----------
        name
            The new dataset's name (a name the run has already is refused).
        path
            An HDF5 file (with ``dataset=``), a NetCDF-4 file (read whole
            as an xarray Dataset) or a Parquet file (a pandas table).
        dataset
            The HDF5 dataset to register, e.g. ``"/entry/data/data"``:
            numeric, bool or fixed-length bytes.  Leave it out for a whole
            NetCDF-4 file or a Parquet file.
        data_id
            As for :meth:`put`.
        transfer
            ``"direct"`` (read the file where it is), ``"symlink"`` (a link
            in the shelf's ``data/`` points at it) or ``"copy"`` (copied into
            ``data/``, then an ordinary data file).
        unit, scale, precision, title, description
            Display metadata of the name, as for :meth:`put`.

        Kind, shape, dtype, size, summary and thumbnail are computed once,
        from a bounded part of the file.  labshelf never writes to the file
        or deletes it: :meth:`delete` drops the dataset (and a symlink);
        the file's size, modification time and a checksum of its first and
        last MiB are recorded, and a read of a file that changed since
        raises :class:`~labshelf.IngestedFileChanged`.  A file kept outside
        the shelf is read only for users who confirmed it: ingesting
        confirms it for you; others run ``labshelf trust-data SHELF PATH``.
        See :mod:`labshelf.ingest`.
        """
        from .ingest import ingest

        meta = None
        if unit is not None or scale is not None or precision is not None or title is not None or description is not None:
            from .registry.meta import put_fields

            meta = put_fields(unit, scale, precision, title, description)
        return ingest(self._shelf, self.number, name, path, dataset=dataset, data_id=data_id, transfer=transfer, meta=meta)

    def append(self, name: str, values: Any, *, data_id: Mapping[str, Any] | None = None) -> DatasetRef:
        """Grow array dataset ``name`` along its first axis (creating it if missing).

        ``values`` is one row (a scalar for a 1-D dataset) or a block of rows.
        """
        self._shelf._check_writable()
        return self._shelf._writer.append(self.number, name, values, data_id=data_id)

    def mutate(self, name: str, index: Any, value: Any, *, data_id: Mapping[str, Any] | None = None) -> DatasetRef:
        """Set ``dataset[index] = value`` (an int, slice, ``...`` or a tuple of them)."""
        self._shelf._check_writable()
        return self._shelf._writer.mutate(self.number, name, index, value, data_id=data_id)

    def delete(self, name: str, *, data_id: Mapping[str, Any] | None = None) -> None:
        """Remove dataset ``name`` from this (running) run; subscribers see a "delete" change."""
        self._shelf._check_writable()
        self._shelf._writer.delete(self.number, name, data_id=data_id)

    def finish(self, status: str = "finished", error: str | None = None) -> None:
        """End the run as ``finished``, ``failed`` or ``aborted``; ``error`` says why (a str)."""
        self._shelf._check_writable()
        if error is not None:
            if not isinstance(error, str):
                raise InvalidValue(f"error= takes a message (a str), not {type(error).__name__}")
            error = _storable(error)
        self._record = self._shelf._registry.finish_run(self.number, status, error)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self.record.status != "running":
            return
        if exc is None:
            self.finish("finished")
        elif isinstance(exc, KeyboardInterrupt):
            self.finish("aborted", "KeyboardInterrupt")
        else:
            self.finish("failed", f"{type(exc).__name__}: {exc}")

    # -- reading -------------------------------------------------------------

    def get(self, name: str, *, data_id: Mapping[str, Any] | None = None) -> Any:
        """Read dataset ``name`` of this run."""
        return self._shelf.get(name, run=self.number, data_id=data_id)

    def __getitem__(self, name: str) -> Any:
        refs = [r for r in self.datasets if r.name == name]
        if not refs:
            names = sorted({r.name for r in self.datasets})
            raise DatasetNotFound(f"run {self.number} has no dataset {name!r}{close_matches(name, names)}")
        if len(refs) > 1:
            raise DatasetNotFound(
                f"run {self.number} has {len(refs)} datasets {name!r} with different data IDs; "
                f"use run.get({name!r}, data_id=...)"
            )
        return self._shelf.read(refs[0])

    def __contains__(self, name: object) -> bool:
        return any(r.name == name for r in self.datasets)

    def __iter__(self) -> Iterator[str]:
        seen: dict[str, None] = {}
        for ref in self.datasets:
            seen.setdefault(ref.name)
        return iter(seen)

    def __len__(self) -> int:
        return len(self.datasets)

    def _ipython_key_completions_(self) -> list[str]:
        return list(self)[:50]


def _per_name(
    values: Mapping[str, Any], given: Any, keyword: str, what: str
) -> dict[str, Mapping[str, Any]]:
    """A per-name keyword of put_many, checked: a mapping of names among ``values`` to mappings."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise InvalidValue(f"put_many(): {keyword}= takes a dict of dataset name -> {what}, not {type(given).__name__}")
    out: dict[str, Mapping[str, Any]] = {}
    for name, entry in given.items():
        if name not in values:
            raise InvalidValue(f"put_many(): {keyword}= names {name!r}, which is not among the values put")
        if entry is None:
            continue
        if not isinstance(entry, Mapping):
            raise InvalidValue(f"put_many(): {keyword} of {name!r} takes {what}, not {type(entry).__name__}")
        out[name] = entry
    return out


def _storable(message: str) -> str:
    """An error message every registry can store: a message is only a hint, so
    NUL (refused by PostgreSQL) becomes the symbol for it, and a lone surrogate
    (not UTF-8) its escape, rather than the message being refused."""
    message = message.replace("\x00", "\u2400")
    return message if message.isascii() else message.encode("utf-8", "backslashreplace").decode("utf-8")
