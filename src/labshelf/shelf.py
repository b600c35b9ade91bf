"""The Shelf: one repository (a registry plus a datastore root) and its API.

``labshelf.create`` and ``labshelf.open`` (in ``opening.py``) make Shelf objects; everything a
user does with runs and datasets starts here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .datastore import Datastore, formatters
from .errors import (
    CorruptDataset,
    DatasetNotFound,
    NotPersisted,
    ReadOnlyShelf,
    RunNotFound,
    ShelfError,
    close_matches,
)
from .names import check_name, data_id_key, format_data_id, normalize_data_id
from .registry.annotations import Annotations
from .registry.records import DatasetRef
from .registry.registry import Registry
from .writer import Writer

if TYPE_CHECKING:
    from .derived import ReprocessReport
    from .run import Run
    from .runview import RunView



class Shelf:
    """A shelf of runs and their datasets.  Make one with :func:`create` or :func:`open`.

    A Shelf behaves like a read-only mapping of run number to :class:`Run`
    (``12 in shelf``, ``shelf[12]``, ``for run in shelf``) and is a context
    manager that closes its database connections.
    """

    def __init__(self, *, registry: Registry, datastore: Datastore, where: str, mode: str):
        self._registry = registry
        self._datastore = datastore
        self._writer = Writer(registry, datastore)
        self._annotations = Annotations(registry)
        self._closed = False
        self.where = where
        self.mode = mode

    # -- identity and lifecycle --------------------------------------------------

    @property
    def root(self) -> Path:
        """The datastore root (where data files live)."""
        return self._datastore.root

    @property
    def readonly(self) -> bool:
        return self.mode == "r"

    def _check_writable(self) -> None:
        if self.readonly:
            raise ReadOnlyShelf(
                f"the shelf {self.where} is open read-only (mode='r'); open it with mode='rw' to write"
            )

    def close(self) -> None:
        """Release database connections.  The shelf cannot be used afterwards."""
        self._closed = True
        self._registry.db.dispose()

    def __enter__(self) -> Shelf:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._closed:  # never reconnect just to describe a closed shelf
            return f"<Shelf {self.where} mode={self.mode!r} closed>"
        return f"<Shelf {self.where} mode={self.mode!r} runs={len(self)}>"

    def info(self) -> dict[str, Any]:
        """Facts about the shelf: where it is, its schema, its size."""
        info: dict[str, Any] = dict(self._registry.info())
        info.update(
            where=self.where,
            root=str(self.root),
            mode=self.mode,
            backend=self._registry.db.engine.dialect.name,
            runs=self._registry.count_runs(),
            datasets=self._registry.count_datasets(),
        )
        return info

    # -- runs --------------------------------------------------------------------

    def new_run(
        self, experiment: str = "", params: Mapping[str, Any] | None = None, *, number: int | None = None
    ) -> Run:
        """Start a run; use it as a context manager so it ends as finished or failed.

        Parameters
        ----------
        experiment
            Name of the experiment (a free string, shown in the run table).
        params
            JSON-compatible parameters of the run.
        number
            Run number to use; by default the next free one.
        """
        import socket

        from .run import Run

        self._check_writable()
        if not isinstance(experiment, str) or "\x00" in experiment or len(experiment) > 255:
            raise ShelfError(f"experiment must be a str of at most 255 characters without NUL, not {experiment!r}")
        params = dict(params or {})
        try:
            json.dumps(params)
        except (TypeError, ValueError) as exc:
            raise ShelfError(f"run params must be JSON-compatible (numbers, strings, lists, dicts): {exc}") from exc
        if number is not None and (not isinstance(number, int) or number < 1):
            raise ShelfError(f"a run number is a positive int, not {number!r}")
        record = self._registry.create_run(
            number=number, experiment=experiment, params=params, host=socket.gethostname(), user=_user(), pid=os.getpid()
        )
        return Run(self, record)

    def run(self, number: int) -> Run:
        """The run with this number (RunNotFound if none)."""
        from .run import Run

        if isinstance(number, bool) or not isinstance(number, int):
            raise RunNotFound(f"a run is found by its number (an int), not {number!r}")
        record = self._registry.run(number)
        if record is None:
            numbers = self._registry.run_numbers()
            hint = f"runs go from {numbers[0]} to {numbers[-1]}" if numbers else "the shelf has no runs yet"
            raise RunNotFound(f"no run {number} in {self.where}; {hint}")
        return Run(self, record)

    @property
    def runs(self) -> RunView:
        """The run table: one row per run, built from the registry alone."""
        from .runview import RunView

        return RunView(self)

    # -- annotations -------------------------------------------------------------------

    def annotate(
        self,
        runs: int | Iterable[int],
        *,
        comment: Any = ...,
        tags: Iterable[str] | None = None,
        **columns: Any,
    ) -> int:
        """Add what people know about runs: a comment, tags, user columns.

        Parameters
        ----------
        runs
            A run number or several.
        comment
            The run's comment (None clears it; leave it out to keep it).
        tags
            The run's tags (replaces the list).
        **columns
            User columns and their values (numbers, text or bools; None
            clears one).  A new name creates the column, typed by its value.

        Returns
        -------
        int
            How many values changed.  Each change is kept in the history
            (:meth:`history`) and the change feed.  Finished runs can be
            annotated: their data are not touched.
        """
        self._check_writable()
        numbers = [runs] if isinstance(runs, int) else [self._run_number(r) for r in runs]
        return self._annotations.annotate(numbers, comment=comment, tags=tags, columns=columns, user=_user())

    def history(self, run: int) -> list[dict[str, Any]]:
        """Every annotation change of a run: field, old, new, user, time (oldest first)."""
        self.run(run)  # RunNotFound with a hint
        return self._annotations.history(run)

    # -- derived variables ---------------------------------------------------------------

    @property
    def context_path(self) -> Path | None:
        """The context file of derived variables: the one recorded with :meth:`set_context`,
        else ``context.py`` in the root if it exists, else None."""
        from .derived import context_path

        return context_path(self)

    def set_context(self, path: str | os.PathLike[str] | None) -> Path | None:
        """Record ``path`` as this shelf's context file, once it loads without error (None forgets it).

        A file inside the shelf's root is recorded relative to it, so it
        moves with the shelf.  Returns the context file now in use.
        """
        from .derived import set_context

        return set_context(self, path)

    def reprocess(
        self,
        runs: Any = None,
        variables: str | Iterable[str] | None = None,
        *,
        jobs: int = 1,
        dask_scheduler: str | None = None,
        force: bool = False,
        progress: bool = True,
    ) -> ReprocessReport:
        """Compute the derived variables of the context file where they are stale.

        Parameters
        ----------
        runs
            Which runs: None (all), a run number, a list of them, a
            ``range``, or a text like ``"10-20,25"`` (ranges take the runs
            that exist).
        variables
            Names of variables to compute (with the variables they depend
            on); None for all.
        jobs
            How many processes compute at once, this one included.
        dask_scheduler
            Address of a Dask distributed scheduler (``"tcp://host:8786"``)
            whose workers compute instead; they must reach this shelf by its
            path and its registry.
        force
            Recompute the chosen variables even where their results are current.
        progress
            Show a progress bar over runs (tqdm; a widget in Jupyter).

        Returns
        -------
        ReprocessReport
            How many (run, variable) results were computed, up to date,
            failed or had missing inputs, and the errors.  A variable that
            raises is recorded as failed for that run and never stops the
            others; variables that depend on it are "missing" there.

        Raises
        ------
        ContextError
            The shelf has no context file, or it cannot be loaded (the
            message names the file and line).
        """
        from .derived import reprocess

        return reprocess(
            self, runs, variables, jobs=jobs, dask_scheduler=dask_scheduler, force=force, progress=progress
        )

    def derived_status(self, run: int | None = None) -> list[dict[str, Any]]:
        """Bookkeeping of derived variables, per (run, variable), of one run or all.

        Each dict has ``run``, ``variable``, ``status`` (``"ok"``,
        ``"error"``, ``"missing"``), ``error`` (the message, or None),
        ``inputs`` (dataset label -> version it was computed from),
        ``source_hash`` and ``updated`` (seconds since the epoch).
        """
        from .derived import derived_status

        return derived_status(self, run)

    def __getitem__(self, number: int) -> Run:
        return self.run(number)

    def __contains__(self, number: object) -> bool:
        return isinstance(number, int) and self._registry.run(number) is not None

    def __iter__(self) -> Iterator[Run]:
        from .run import Run

        return (Run(self, record) for record in self._registry.runs())

    def __len__(self) -> int:
        return self._registry.count_runs()

    def _ipython_key_completions_(self) -> list[int]:
        return self._registry.run_numbers()[-50:]

    # -- datasets --------------------------------------------------------------------

    def find(self, name: str, *, run: int, data_id: Mapping[str, Any] | None = None) -> DatasetRef:
        """The DatasetRef of ``name`` in ``run`` (DatasetNotFound if none)."""
        check_name(name)
        key = data_id_key(normalize_data_id(data_id))
        run = self._run_number(run)
        ref = self._registry.find(run, name, key)
        if ref is None:
            raise self._not_found(run, name, key, data_id)
        return ref

    def get(self, name: str, *, run: int, data_id: Mapping[str, Any] | None = None) -> Any:
        """Read the value of dataset ``name`` of ``run`` (with its exact type)."""
        ref = self.find(name, run=run, data_id=data_id)
        return self.read(ref)

    def read(self, ref: DatasetRef) -> Any:
        """Read the value a DatasetRef points to."""
        formatter = formatters.by_kind(ref.kind)
        if ref.storage.inline is not None:
            return self._read_inline(formatter, ref)
        for _attempt in range(3):
            paths = [self._datastore.path(f) for f in ref.storage.files]
            try:
                return formatter.read(paths, ref.name, ref, {})
            except FileNotFoundError as exc:
                # A writer may have replaced this version between our lookup
                # and the read: look again and read the newer one.
                fresh = self._registry.find(ref.run, ref.name, data_id_key(ref.data_id))
                if fresh is None or fresh.version == ref.version:
                    raise CorruptDataset(
                        f"dataset {ref.label!r} of run {ref.run}: its data file {exc.filename} is missing"
                    ) from exc
                ref = fresh
                if ref.storage.inline is not None:
                    return self._read_inline(formatter, ref)
            except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
                raise CorruptDataset(
                    f"dataset {ref.label!r} of run {ref.run} cannot be read: data file "
                    f"{', '.join(str(p) for p in paths)} is damaged ({exc}). Other datasets are not affected"
                ) from exc
        raise CorruptDataset(f"dataset {ref.label!r} of run {ref.run} kept changing while being read")

    @staticmethod
    def _read_inline(formatter: Any, ref: DatasetRef) -> Any:
        try:
            return formatter.from_inline(ref.storage.inline)
        except (KeyError, ValueError, TypeError) as exc:
            raise CorruptDataset(
                f"dataset {ref.label!r} of run {ref.run}: its value in the registry is damaged ({exc}). "
                "Other datasets are not affected"
            ) from exc

    def datasets(self, run: int) -> list[DatasetRef]:
        """Every dataset of a run, in the order they were first put."""
        return self._registry.datasets(self._run_number(run))

    def orphans(self, older_than: float = 3600.0) -> list[str]:
        """Data files no dataset refers to (left by crashed writers)."""
        return self._datastore.orphans(self._registry.all_files(), older_than=older_than)

    def _run_number(self, run: Any) -> int:
        if isinstance(run, bool) or not isinstance(run, int):
            number = getattr(run, "number", None)
            if isinstance(number, int):
                return number
            raise RunNotFound(f"run= takes a run number (an int) or a Run, not {run!r}")
        return run

    def _not_found(self, run: int, name: str, key: str, data_id: Any) -> DatasetNotFound:
        """The error to raise for a dataset that is not there, saying why."""
        if self._registry.run(run) is None:
            self.run(run)  # raises RunNotFound with a hint
        if self._registry.was_broadcast(run, name, key):
            return NotPersisted(
                f"dataset {name!r} of run {run} was put with persist=False: it was broadcast to "
                "live subscribers only and never stored"
            )
        refs = self._registry.datasets(run)
        same_name = [r for r in refs if r.name == name]
        if same_name:
            ids = "; ".join(format_data_id(r.data_id) or "(no data ID)" for r in same_name[:10])
            return DatasetNotFound(
                f"run {run} has {name!r} only with other data IDs than "
                f"{format_data_id(normalize_data_id(data_id)) or '(none)'}: {ids}"
            )
        names = sorted({r.name for r in refs})
        return DatasetNotFound(f"run {run} has no dataset {name!r}{close_matches(name, names)}")


def _user() -> str:
    """The OS user name, recorded with runs and annotations."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return str(os.getuid())
