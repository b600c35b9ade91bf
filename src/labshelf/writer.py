"""How a value gets onto the shelf: put, append and mutate.

The order of every write is what makes it crash-safe:

1. validate everything (name, data ID, value kind, options, run state);
2. write any data file completely under ``tmp/`` and rename it into
   ``data/`` (see :mod:`labshelf.datastore.store`);
3. commit the registry row and its change in one transaction;
4. only then delete the files of the version it replaced.

A kill at any point leaves the previous committed version readable and the
new one either fully visible or not at all.  Data files are never modified:
``append`` adds a segment file, ``mutate`` writes a new version.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._faults import crashpoint
from .datastore import Datastore, Description, Formatter, Summary, composite, formatters
from .datastore.ndarray import as_storable, assign, encode_index, fit_rows, stored_dtype
from .errors import DatasetNotFound, InvalidName, InvalidValue, RunNotWritable, ShelfError, UnsupportedValue
from .names import check_name, data_id_key, normalize_data_id
from .registry.engine import Txn
from .registry.meta import WHOLE, Meta, PutMeta, check_fields
from .registry.records import DatasetRef, Storage
from .registry.registry import Registry, public_summary

if TYPE_CHECKING:
    import numpy as np

#: Where derived variables (computed after a run from its data) are stored.
DERIVED_PREFIX = "derived/"

#: Values at least this big are summarised on a worker thread while the
#: HDF5 file is written (numpy releases the GIL), hiding the summary's cost.
_OVERLAP_BYTES = 1 << 20
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()

#: Optimistic tries of a mutate of a file-backed array (the file rewritten
#: without holding the registry lock) before it takes the lock for the whole.
_OPTIMISTIC_MUTATES = 3

#: Small tail segments of a growing array are merged once there are this many.
_MAX_SMALL_SEGMENTS = 8
_SMALL_SEGMENT_BYTES = 1 << 20


def _summary_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="labshelf-summary")
        return _pool


def _write_and_summarise(
    formatter: Formatter, value: Any, desc: Description, write: Callable[[], None]
) -> Summary:
    if desc.nbytes < _OVERLAP_BYTES:
        write()
        return formatter.summarise(value)
    started = threading.Event()

    def summarise() -> Summary:
        started.set()
        return formatter.summarise(value)

    future = _summary_pool().submit(summarise)
    started.wait()  # let the worker enter numpy (and drop the GIL) before h5py takes it
    try:
        write()
    finally:
        summary = future.result()
    return summary


def _fields(
    formatter: Formatter,
    desc: Description,
    summary: Summary,
    *,
    inline: str | None,
    files: list[str],
    options: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "kind": formatter.kind,
        "shape": None if desc.shape is None else json.dumps(list(desc.shape)),
        "dtype": desc.dtype,
        "nbytes": desc.nbytes,
        "summary_kind": summary.kind,
        "summary_value": summary.value,
        "summary_text": summary.text,
        "thumbnail": summary.thumbnail,
        "inline": inline,
        "location": json.dumps(files) if files else None,
        "options": json.dumps(dict(options), sort_keys=True) if options else None,
    }


#: The component part of the names of a composite's parts (``calexp.psf``, ``a.b.c``).
_COMPONENT_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


@dataclass(slots=True)
class _Planned:
    """One value of a put, checked and prepared: what the write steps need of it."""

    name: str
    formatter: Formatter
    value: Any
    options: Mapping[str, Any]
    desc: Description
    described: PutMeta | None
    #: The row's columns: known at once for an inline value, after its file is written otherwise.
    fields: dict[str, Any] | None
    #: A composite's part (``name.part``), not a value the caller named.
    part: bool = False


class _Refs(Mapping[str, DatasetRef]):
    """What put_many returns: the stored datasets by name, each ref made when it is first asked for
    (a batch that nobody looks at costs no refs)."""

    __slots__ = ("_data_id", "_made", "_now", "_rows", "_run", "_where")

    def __init__(
        self, run: int, data_id: Mapping[str, Any], planned: list[_Planned], rows: list[tuple[int, int, float]],
        now: float, where: str,
    ):
        self._run, self._data_id, self._now, self._where = run, data_id, now, where
        # A composite's parts are datasets too, but not values the caller named.
        self._rows = {item.name: (item, row) for item, row in zip(planned, rows, strict=True) if not item.part}
        self._made: dict[str, DatasetRef] = {}

    def __getitem__(self, name: str) -> DatasetRef:
        ref = self._made.get(name)
        if ref is None:
            item, (dataset_id, version, created) = self._rows[name]
            assert item.fields is not None
            ref = self._made[name] = _ref(
                dataset_id, self._run, name, self._data_id, version, item.fields, self._now, self._where,
                created=created,
            )
        return ref

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return f"<{len(self)} datasets put in run {self._run}>"


def _naming(exc: ShelfError, name: str) -> ShelfError:
    """``exc`` again, its message saying which value of a batch it is about."""
    message = f"put_many: {name!r}: {exc} (nothing was stored)"
    try:
        named = type(exc)(message)
    except TypeError:  # an error class that takes more than a message
        exc.add_note(f"(put_many: the value of {name!r}; nothing was stored)")
        return exc
    return named


#: The options of a dataset stored without any (read-only, so one serves every ref).
_NO_OPTIONS: Mapping[str, Any] = MappingProxyType({})


def _ref(
    dataset_id: int,
    run: int,
    name: str,
    data_id: Mapping[str, Any],
    version: int,
    fields: Mapping[str, Any],
    now: float,
    repository: str,
    *,
    created: float | None = None,
) -> DatasetRef:
    return DatasetRef(
        id=dataset_id,
        run=run,
        name=name,
        data_id=data_id if type(data_id) is MappingProxyType else MappingProxyType(dict(data_id)),
        kind=fields["kind"],
        shape=None if fields["shape"] is None else tuple(json.loads(fields["shape"])),
        dtype=fields["dtype"],
        nbytes=fields["nbytes"],
        summary=public_summary(
            fields["summary_kind"], fields["summary_value"], fields["summary_text"], fields["thumbnail"]
        ),
        version=version,
        created=now if created is None else created,
        updated=now,
        storage=Storage(
            inline=fields["inline"],
            files=tuple(json.loads(fields["location"])) if fields["location"] else (),
            options=MappingProxyType(json.loads(fields["options"])) if fields["options"] else _NO_OPTIONS,
        ),
        repository=repository,
    )


class Writer:
    """Puts, appends and mutates datasets of runs of one shelf."""

    def __init__(self, registry: Registry, datastore: Datastore):
        self.registry = registry
        self.datastore = datastore
        self.meta = Meta(registry)

    # -- put -------------------------------------------------------------------
    #
    # ``put`` and ``put_many`` share three steps: ``_plan`` checks and
    # prepares every value (nothing written yet), ``_write_files`` writes the
    # data files of the large ones (tmp/, then renamed into data/), and
    # ``_commit_rows`` commits every row and its change in one transaction.

    def put(
        self,
        run: int,
        name: str,
        value: Any,
        *,
        data_id: Mapping[str, Any] | None = None,
        hdf5_options: Mapping[str, Any] | None = None,
        persist: bool = True,
        kind: str | None = None,
        derived: bool = False,
        meta: PutMeta | None = None,
    ) -> DatasetRef | None:
        """Store a value; ``derived=True`` (reprocessing only) also writes into ended runs.

        ``meta``: display metadata of the name (checked fields), written in the
        put's transaction when they differ from what is stored.  A composite's
        parts (``name.part``) and its own row commit in one transaction.
        """
        did = normalize_data_id(data_id, new=True)
        key = data_id_key(did)
        if not persist:
            self._broadcast(run, name, key, value, hdf5_options=hdf5_options, kind=kind, derived=derived, meta=meta)
            return None
        planned: list[_Planned] = []
        self._plan(planned, name, value, hdf5_options=hdf5_options, kind=kind, derived=derived, meta=meta)
        rows, _when = self._store(run, key, planned, derived=derived)
        dataset_id, version, _created = rows[-1]
        own = planned[-1]
        assert own.fields is not None
        return _ref(dataset_id, run, name, did, version, own.fields, _now(), self.registry.db.where)

    def put_many(
        self,
        run: int,
        values: Mapping[str, Any],
        *,
        data_id: Mapping[str, Any] | None = None,
        meta: Mapping[str, PutMeta] | None = None,
        hdf5_options: Mapping[str, Mapping[str, Any] | None] | None = None,
    ) -> Mapping[str, DatasetRef]:
        """Store many values of one run in one registry transaction: all of them or none.

        ``meta`` and ``hdf5_options`` are per name (checked by the caller:
        ``Run.put_many``).  Every value is checked before any file is
        written; a refusal names the offending key.  Returns the refs by name.
        """
        if not isinstance(values, Mapping):
            raise InvalidValue(f"put_many() takes a mapping of dataset name to value, not {type(values).__name__}")
        did = normalize_data_id(data_id, new=True)
        key = data_id_key(did)
        meta = meta or {}
        hdf5_options = hdf5_options or {}
        planned: list[_Planned] = []
        for name, value in values.items():
            if not isinstance(name, str):
                raise InvalidName(f"put_many() takes dataset names (str) as keys, not {name!r} (nothing was stored)")
            try:
                self._plan(planned, name, value, hdf5_options=hdf5_options.get(name), kind=None, derived=False,
                           meta=meta.get(name))
            except ShelfError as exc:
                raise _naming(exc, name) from exc
            except Exception as exc:
                exc.add_note(f"(put_many: the value of {name!r}; nothing was stored)")
                raise
        if not planned:
            return {}
        seen: set[str] = set()
        for item in planned:
            if item.name in seen:
                raise InvalidName(f"put_many() would write dataset {item.name!r} twice (a composite's part and a key?)")
            seen.add(item.name)
        rows, when = self._store(run, key, planned, derived=False)
        return _Refs(run, MappingProxyType(dict(did)), planned, rows, when, self.registry.db.where)

    def _broadcast(
        self, run: int, name: str, key: str, value: Any, *,
        hdf5_options: Mapping[str, Any] | None, kind: str | None, derived: bool, meta: PutMeta | None,
    ) -> None:
        """``persist=False``: the value goes to live subscribers only (its display metadata are stored)."""
        formatter, value, described = self._prepared(name, value, kind, derived, part=False, meta=meta)
        options = formatter.check_options(hdf5_options)
        inline = formatter.to_inline(value, options)
        small = inline if inline is not None and len(inline) <= 65536 else None
        also = None
        if described is not None:
            said = described  # in the broadcast's transaction: a refused broadcast describes nothing

            def also(txn: Txn) -> None:
                self.meta.update(txn, name, WHOLE, said.fields, user=said.user, defaults=said.defaults)

        self.registry.broadcast(run, name, key, formatter.kind, small, also)

    @staticmethod
    def _prepared(
        name: str, value: Any, kind: str | None, derived: bool, *, part: bool, meta: PutMeta | None
    ) -> tuple[Formatter, Any, PutMeta | None]:
        """Check the name; pick the formatter and let it prepare the value."""
        # Only a composite's own parts carry a '.' (see datastore/composite.py).
        check_name(name.partition(".")[0] if part and _COMPONENT_PATH.match(name.partition(".")[2]) else name)
        if derived and not name.startswith(DERIVED_PREFIX):
            raise InvalidName(f"derived results are stored under {DERIVED_PREFIX!r}, not as {name!r}")
        described = meta if not hasattr(value, "attrs") else _with_units(meta, value)
        formatter = formatters.pick(value, kind)
        return formatter, formatter.prepare(value), described

    def _plan(
        self,
        planned: list[_Planned],
        name: str,
        value: Any,
        *,
        hdf5_options: Mapping[str, Any] | None,
        kind: str | None,
        derived: bool,
        meta: PutMeta | None,
        part: bool = False,
    ) -> None:
        """Step 1: check and prepare ``value`` (a composite's parts first) onto ``planned``; nothing is written."""
        formatter, value, described = self._prepared(name, value, kind, derived, part=part, meta=meta)
        if isinstance(value, composite.Disassembled):
            for part_name, part_value in value.parts.items():
                self._plan(planned, f"{name}.{part_name}", part_value, hdf5_options=None, kind=None,
                           derived=derived, meta=None, part=True)
        options = formatter.check_options(hdf5_options)
        desc = formatter.describe(value)
        inline = formatter.to_inline(value, options)
        fields = None
        if inline is not None:
            fields = _fields(formatter, desc, formatter.summarise(value), inline=inline, files=[], options=options)
        planned.append(_Planned(name, formatter, value, options, desc, described, fields, part))

    def _store(
        self, run: int, key: str, planned: list[_Planned], *, derived: bool
    ) -> tuple[list[tuple[int, int, float]], float]:
        """Steps 2 and 3: the data files, then every row in one transaction (the files go if it fails)."""
        written = self._write_files(run, planned, derived=derived)
        try:
            return self._commit_rows(run, key, planned, derived=derived)
        except BaseException:
            self._remove_written(run, written)
            raise

    def _write_files(self, run: int, planned: list[_Planned], *, derived: bool) -> list[tuple[str, str]]:
        """Step 2: write each value that needs a data file under tmp/ and rename it into data/.

        Returns (file, dataset name) of every file written; if one write
        fails, the files written before it are removed.
        """
        pending = [item for item in planned if item.fields is None]
        if not pending:
            return []
        # Refuse early, before writing what may be big files, if the run ended.
        if not derived:
            self._check_running(run)
        written: list[tuple[str, str]] = []
        try:
            for item in pending:
                formatter, name, value, options = item.formatter, item.name, item.value, item.options
                with self.datastore.new_file(run, name, formatter.suffix) as (tmp, relative):
                    summary = _write_and_summarise(
                        formatter, value, item.desc, functools.partial(formatter.write, tmp, name, value, options)
                    )
                written.append((relative, name))
                item.fields = _fields(formatter, item.desc, summary, inline=None, files=[relative], options=options)
                item.value = None  # written: a batch need not keep every value alive until the commit
            crashpoint("writer.files-written")
        except BaseException:
            self._remove_written(run, written)
            raise
        return written

    def _remove_written(self, run: int, written: list[tuple[str, str]]) -> None:
        for relative, name in written:
            self.datastore.remove([relative], run, name)

    def _commit_rows(
        self, run: int, key: str, planned: list[_Planned], *, derived: bool
    ) -> tuple[list[tuple[int, int, float]], float]:
        """Step 3: one transaction writes every planned row, its change and its metadata; then the
        files of the versions replaced are removed.  Returns (dataset id, version) of each row, and
        the time a batch's rows were written."""
        with self.registry.db.write() as txn:
            now = _now()
            if len(planned) == 1:
                item = planned[0]
                assert item.fields is not None
                current, version, dataset_id, _fields_written = self._write_row(
                    txn, run, item.name, key, item.fields, change="put", derived=derived, described=item.described
                )
                rows = [(dataset_id, version, now)]
                currents = {item.name: current} if current is not None else {}
            else:
                # A batch: its rows looked up, inserted and logged a few statements at a time.
                currents = self.registry.lock_targets(txn, run, [item.name for item in planned], key, derived=derived)
                for item in planned:
                    if item.described is not None:
                        self._describe(txn, run, item.name, key, item.described, derived)
                rows = self.registry.write_datasets(
                    txn, run, key, [(item.name, currents.get(item.name), item.fields or {}) for item in planned],
                    change="put", now=now,
                )
            crashpoint("registry.before-commit")
        crashpoint("registry.committed")
        for item in planned:
            current = currents.get(item.name)
            if current is not None and current.location:
                assert item.fields is not None
                gone = set(_listed(current.location)) - set(json.loads(item.fields["location"] or "[]"))
                self.datastore.remove(gone, run, item.name)
        return rows, now

    def _changed(self, run: int, name: str, key: str, ref: DatasetRef) -> bool:
        """Whether dataset ``ref`` has a newer version (or is gone) by now."""
        current = self.registry.find(run, name, key)
        return current is None or current.version != ref.version

    def _check_running(self, run: int) -> None:
        record = self.registry.run(run)
        if record is not None and record.status != "running":
            raise RunNotWritable(
                f"run {run} has ended ({record.status}); datasets of an ended run cannot change. "
                "Start a new run with shelf.new_run()"
            )

    def _commit(
        self,
        run: int,
        name: str,
        did: Mapping[str, Any],
        key: str,
        fields: Mapping[str, Any],
        *,
        change: str,
        payload: Any = None,
        expect_version: int | None = None,
        rebase: Callable[[DatasetRef], tuple[dict[str, Any], Any]] | None = None,
        derived: bool = False,
        described: PutMeta | None = None,
    ) -> DatasetRef:
        with self.registry.db.write() as txn:
            current, version, dataset_id, fields = self._write_row(
                txn, run, name, key, fields, change=change, payload=payload, expect_version=expect_version,
                rebase=rebase, derived=derived, described=described,
            )
            crashpoint("registry.before-commit")
        crashpoint("registry.committed")
        if current is not None and current.location:
            replaced = set(_listed(current.location)) - set(json.loads(fields["location"] or "[]"))
            self.datastore.remove(replaced, run, name)
        return _ref(dataset_id, run, name, did, version, fields, _now(), self.registry.db.where)

    def _describe(self, txn: Txn, run: int, name: str, key: str, described: PutMeta, derived: bool) -> Any:
        """:meth:`Registry.lock_target`, and the display metadata a put carries written where they
        differ from what is stored (one EXISTS when they do not)."""
        current, same = self.registry.lock_target_with_meta(
            txn, run, name, key, described.given, described.params, derived=derived
        )
        if not same or described.defaults:
            self.meta.update(txn, name, WHOLE, described.fields, user=described.user, defaults=described.defaults)
        return current

    def _write_row(
        self,
        txn: Txn,
        run: int,
        name: str,
        key: str,
        fields: Mapping[str, Any],
        *,
        change: str,
        payload: Any = None,
        expect_version: int | None = None,
        rebase: Callable[[DatasetRef], tuple[dict[str, Any], Any]] | None = None,
        derived: bool = False,
        described: PutMeta | None = None,
    ) -> tuple[Any, int, int, Mapping[str, Any]]:
        """In a write transaction: check the run and name, write the metadata the put carries, insert or
        replace the row and record its change.

        Returns the row replaced (or None), the version, the dataset id and
        the fields written: ``rebase`` may redo them (an append on top of
        what committed meanwhile).
        """
        if described is None:
            current = self.registry.lock_target(txn, run, name, key, derived=derived)
        else:
            current = self._describe(txn, run, name, key, described, derived)
        if expect_version is not None and (current is None or current.version != expect_version):
            if rebase is None or current is None:
                raise _Conflict()
            # Redo the row on top of what committed meanwhile; under the
            # lock nothing else can commit in between (rebase may refuse).
            fields, payload = rebase(self.registry.read_for_update(txn, current.id))
        version = 1 if current is None else current.version + 1
        dataset_id = self.registry.write_dataset(
            txn,
            existing_id=None if current is None else current.id,
            version=version,
            run=run,
            name=name,
            data_id=key,
            fields=fields,
            change=change,
            payload=payload,
        )
        return current, version, dataset_id, fields

    # -- delete ------------------------------------------------------------------

    def delete(self, run: int, name: str, *, data_id: Mapping[str, Any] | None = None) -> None:
        """Remove dataset ``name`` of a running run; its files go once the removal committed."""
        check_name(name)
        did = normalize_data_id(data_id)
        key = data_id_key(did)
        with self.registry.db.write() as txn:
            current = self.registry.lock_target(txn, run, name, key, create=False)
            if current is None:
                from .names import format_data_id

                raise DatasetNotFound(
                    f"run {run} has no dataset {name!r}"
                    f"{' with data ID ' + format_data_id(did) if did else ''} to delete"
                )
            files = self.registry.delete_dataset(
                txn, dataset_id=current.id, run=run, name=name, data_id=key, version=current.version
            )
        self.datastore.remove(files, run, name)

    # -- append ------------------------------------------------------------------

    def append(self, run: int, name: str, values: Any, *, data_id: Mapping[str, Any] | None = None) -> DatasetRef:
        check_name(name)
        did = normalize_data_id(data_id, new=True)
        key = data_id_key(did)
        rows = as_storable(values)
        for _attempt in range(20):
            ref = self.registry.find(run, name, key)
            if ref is None or ref.storage.inline is not None:
                done = self._append_small(run, name, did, key, rows)
            else:
                done = self._append_segment(run, name, did, key, ref, rows)
            if done is not None:
                return done
        raise RuntimeError(f"append to {name!r} kept conflicting with other writers; try again")

    def _append_small(self, run: int, name: str, did: Mapping[str, Any], key: str, rows: np.ndarray) -> DatasetRef | None:
        """Append to an inline (or new) array inside one transaction."""
        import numpy as np

        with self._locked(run, name) as (txn, written):
            current = self.registry.lock_target(txn, run, name, key)
            if current is None:
                formatter = formatters.by_kind("ndarray")
                old = None
                new = rows if rows.ndim >= 1 else rows.reshape(1)
                start = 0
                options: Mapping[str, Any] = {}
            else:
                ref = self.registry.read_for_update(txn, current.id)
                if ref.storage.inline is None:
                    return None  # became file-backed meanwhile: go the segment way
                formatter = _appendable(ref)
                old = formatter.from_inline(ref.storage.inline)
                fitted, dtype = fit_rows(ref, old.shape, old.dtype, rows)
                new = np.concatenate([old.astype(dtype, copy=False), fitted], axis=0)
                start = old.shape[0]
                options = ref.storage.options
            fields = self._small_fields(formatter, run, name, new, options, written)
            version = 1 if current is None else current.version + 1
            dataset_id = self.registry.write_dataset(
                txn,
                existing_id=None if current is None else current.id,
                version=version,
                run=run,
                name=name,
                data_id=key,
                fields=fields,
                change="put" if current is None else "append",
                payload={"start": start, "rows": int(new.shape[0]) - start},
            )
        return _ref(dataset_id, run, name, did, version, fields, _now(), self.registry.db.where)

    def _append_segment(
        self, run: int, name: str, did: Mapping[str, Any], key: str, ref: DatasetRef, rows: np.ndarray
    ) -> DatasetRef | None:
        """Append to a file-backed array by adding one segment file."""
        import numpy as np

        from .datastore.ndarray import array_mean

        formatter = _appendable(ref)
        assert ref.shape is not None
        old_dtype = stored_dtype(ref)
        fitted, dtype = fit_rows(ref, ref.shape, old_dtype, rows)
        self._check_running(run)
        with self.datastore.new_file(run, name, ".h5") as (tmp, relative):
            formatter.write(tmp, name, fitted, ref.storage.options)
        files = [*ref.storage.files, relative]
        merged: list[str] = []
        try:
            small = [f for f in files[-_MAX_SMALL_SEGMENTS - 1 :] if self.datastore.path(f).stat().st_size < _SMALL_SEGMENT_BYTES]
            if len(small) > _MAX_SMALL_SEGMENTS and small == files[-len(small) :]:
                # Many small appends: merge the small tail into one file so reads
                # do not open thousands of files.  The old ones stay until commit.
                tail = formatter.read([self.datastore.path(f) for f in small], name, ref, {})
                with self.datastore.new_file(run, name, ".h5") as (tmp, merged_relative):
                    formatter.write(tmp, name, tail, ref.storage.options)
                merged = small
                files = [*files[: -len(small)], merged_relative]
        except OSError:
            # Another writer may have merged the small tail since we read
            # ``ref`` and removed its segments (h5py reports a vanished file
            # as a plain OSError): then it is a conflict like any other.
            self.datastore.remove([relative], run, name)
            if self._changed(run, name, key, ref):
                return None
            raise

        def fields_for(base: DatasetRef, files: list[str]) -> tuple[dict[str, Any], Any]:
            """Row fields and change payload for our rows on top of ``base``."""
            assert base.shape is not None
            old_rows = base.shape[0]
            new_shape = (old_rows + fitted.shape[0], *base.shape[1:])
            # The mean of the whole array follows from the old mean and the new rows.
            old_mean = base.summary if base.kind == "ndarray" else None
            added = array_mean(fitted)
            if old_rows == 0:
                mean = added
            elif old_mean is None or added is None:
                mean = None
            else:
                mean = (old_mean * old_rows + added * fitted.shape[0]) / new_shape[0]
            desc = Description(shape=new_shape, dtype=str(dtype), nbytes=int(np.prod(new_shape)) * dtype.itemsize)
            if base.kind == "image":
                whole = formatter.read([self.datastore.path(f) for f in files], name, base, {})
                summary = formatter.summarise(whole)
            else:
                summary = Summary("array", value=mean, text=f"{'x'.join(map(str, new_shape))} {dtype}")
            fields = _fields(formatter, desc, summary, inline=None, files=files, options=base.storage.options)
            return fields, {"start": old_rows, "rows": int(fitted.shape[0])}

        def rebase(current: DatasetRef) -> tuple[dict[str, Any], Any]:
            # Other writers appended since we read ``ref``.  Our segment holds
            # only our rows, so it goes on top of theirs as long as the array
            # kept its layout: no retry, so no writer starves however many
            # others append at once.  A merged tail of ``ref`` cannot, nor can
            # rows for an array a put or mutate changed: start over then.
            if merged or not _same_layout(current, ref):
                raise _Conflict()
            return fields_for(current, [*current.storage.files, relative])

        fields, payload = fields_for(ref, files)
        # The files this append made: its segment (no longer in ``files``
        # once merged) and the merged tail.
        ours = sorted({relative, *files} - set(ref.storage.files))
        try:
            result = self._commit(
                run, name, did, key, fields, change="append", payload=payload,
                expect_version=ref.version, rebase=rebase,
            )
        except _Conflict:
            self.datastore.remove(ours, run, name)
            return None
        except BaseException:
            self.datastore.remove(ours, run, name)
            raise
        self.datastore.remove(merged, run, name)
        return result

    # -- mutate ----------------------------------------------------------------------

    def mutate(
        self, run: int, name: str, index: Any, value: Any, *, data_id: Mapping[str, Any] | None = None
    ) -> DatasetRef:
        check_name(name)
        did = normalize_data_id(data_id)
        key = data_id_key(did)
        payload = {"index": encode_index(index)}
        for _attempt in range(_OPTIMISTIC_MUTATES):
            ref = self.registry.find(run, name, key)
            if ref is None:
                raise DatasetNotFound(f"run {run} has no dataset {name!r} to mutate; put it first")
            formatter = _appendable(ref)
            if ref.storage.inline is not None:
                return self._mutate_locked(run, name, did, key, index, value, payload)
            self._check_running(run)
            try:
                array = formatter.read([self.datastore.path(f) for f in ref.storage.files], name, ref, {})
            except OSError:
                # Another writer replaced this version (and removed its file)
                # since we looked it up: look again.
                if self._changed(run, name, key, ref):
                    continue
                raise
            array = assign(ref, array, index, value)
            desc = formatter.describe(array)
            with self.datastore.new_file(run, name, ".h5") as (tmp, relative):
                write = functools.partial(formatter.write, tmp, name, array, ref.storage.options)
                summary = _write_and_summarise(formatter, array, desc, write)
            fields = _fields(formatter, desc, summary, inline=None, files=[relative], options=ref.storage.options)
            try:
                return self._commit(
                    run, name, did, key, fields, change="mutate", payload=payload, expect_version=ref.version
                )
            except _Conflict:
                self.datastore.remove([relative], run, name)
            except BaseException:
                self.datastore.remove([relative], run, name)
                raise
        # Other writers kept changing the array under us: this time hold the
        # lock throughout, which cannot lose, so no mutate starves.
        return self._mutate_locked(run, name, did, key, index, value, payload)

    def _mutate_locked(
        self, run: int, name: str, did: Mapping[str, Any], key: str, index: Any, value: Any, payload: Any
    ) -> DatasetRef:
        """Read, change and write the array inside one write transaction.

        The way for inline arrays; for file-backed ones only once optimistic
        attempts lost, as every other writer waits while the file is rewritten.
        """
        with self._locked(run, name) as (txn, written):
            current = self.registry.lock_target(txn, run, name, key, create=False)
            if current is None:
                raise DatasetNotFound(f"run {run} has no dataset {name!r} to mutate; put it first")
            ref = self.registry.read_for_update(txn, current.id)
            formatter = _appendable(ref)
            if ref.storage.inline is not None:
                old = formatter.from_inline(ref.storage.inline)
            else:
                old = formatter.read([self.datastore.path(f) for f in ref.storage.files], name, ref, {})
            array = assign(ref, old, index, value)
            fields = self._small_fields(formatter, run, name, array, ref.storage.options, written)
            version = current.version + 1
            self.registry.write_dataset(
                txn, existing_id=current.id, version=version, run=run, name=name,
                data_id=key, fields=fields, change="mutate", payload=payload,
            )
            crashpoint("registry.before-commit")
        crashpoint("registry.committed")
        self.datastore.remove(set(ref.storage.files) - set(json.loads(fields["location"] or "[]")), run, name)
        return _ref(current.id, run, name, did, version, fields, _now(), self.registry.db.where)


    @contextlib.contextmanager
    def _locked(self, run: int, name: str) -> Iterator[tuple[Txn, list[str]]]:
        """A write transaction, and a list of the data files written under it.

        Those files are removed if the transaction fails, so a refused or
        failed change leaves nothing behind.
        """
        written: list[str] = []
        try:
            with self.registry.db.write() as txn:
                yield txn, written
        except BaseException:
            self.datastore.remove(written, run, name)
            raise

    def _small_fields(
        self,
        formatter: Formatter,
        run: int,
        name: str,
        array: np.ndarray,
        options: Mapping[str, Any],
        written: list[str],
    ) -> dict[str, Any]:
        """Row fields for an array changed inside a write transaction.

        Kept inline while it fits; once it outgrows the registry it moves to
        a data file, written while the transaction holds the lock.
        """
        inline = formatter.to_inline(array, options)
        files: list[str] = []
        if inline is None:
            with self.datastore.new_file(run, name, formatter.suffix) as (tmp, relative):
                formatter.write(tmp, name, array, options)
            written.append(relative)
            files = [relative]
        return _fields(
            formatter, formatter.describe(array), formatter.summarise(array), inline=inline, files=files, options=options
        )


def _with_units(meta: PutMeta | None, value: Any) -> PutMeta | None:
    """A put's metadata with a DataArray's ``attrs["units"]`` as the default unit (used only where nothing says one)."""
    units = _units_of(value)
    if not units:
        return meta
    return PutMeta(meta.fields if meta is not None else {}, units)


def _units_of(value: Any) -> dict[str, Any]:
    """``{"unit": ...}`` from a DataArray's ``attrs["units"]`` (CF convention), if it is a usable unit."""
    attrs = getattr(value, "attrs", None)
    if not isinstance(attrs, Mapping) or "units" not in attrs or type(value).__name__ != "DataArray":
        return {}
    try:
        return check_fields({"unit": attrs["units"]}, clearing=False)
    except ShelfError:  # a units attribute that is no short text is the value's own business
        return {}


def _listed(location: str) -> list[str]:
    """The file names a row's ``location`` lists; nothing if the row was damaged.

    Runs after the commit: a hand-edited row must not turn a put that
    succeeded into an error (its files are left alone, ``verify`` reports them).
    """
    try:
        files = json.loads(location)
    except ValueError:
        return []
    return [f for f in files if isinstance(f, str)] if isinstance(files, list) else []


class _Conflict(Exception):
    """Another writer changed the dataset since we read it: start over."""


def _now() -> float:
    import time

    return time.time()


def _appendable(ref: DatasetRef) -> Formatter:
    if "ingested" in ref.storage.options:
        raise UnsupportedValue(
            f"dataset {ref.label!r} of run {ref.run} is an ingested file, which labshelf never writes to; "
            "append and mutate work on arrays the shelf stores itself. Put a new value instead"
        )
    formatter = formatters.by_kind(ref.kind)
    if not formatter.appendable:
        raise UnsupportedValue(
            f"dataset {ref.label!r} of run {ref.run} is of kind {ref.kind!r}; append and mutate "
            "work on arrays (kinds ndarray and image). Put the whole new value instead"
        )
    return formatter


def _same_layout(a: DatasetRef, b: DatasetRef) -> bool:
    """Whether rows fitted to the file-backed array ``b`` also fit ``a``."""
    return (
        a.storage.inline is None
        and a.kind == b.kind
        and a.dtype == b.dtype
        and a.shape is not None
        and b.shape is not None
        and a.shape[1:] == b.shape[1:]
        and dict(a.storage.options) == dict(b.storage.options)
    )
