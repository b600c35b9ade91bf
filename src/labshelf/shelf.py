"""The Shelf: one repository (a registry plus a datastore root) and its API.

``labshelf.create`` and ``labshelf.open`` (in ``opening.py``) make Shelf objects; everything a
user does with runs and datasets starts here.
"""

from __future__ import annotations

import functools
import json
import os
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache import DEFAULT_CACHE_BYTES, MISS, ReadCache
from .datastore import Datastore, formatters
from .errors import (
    CollectionError,
    InvalidValue,
    ReadOnlyShelf,
    RunNotFound,
    ShelfError,
)
from .finding import Finder
from .ingest import is_ingested, located
from .metadata import UNSAID
from .names import check_text, run_number, split_target
from .reading import data_paths, load
from .registry.annotations import Annotations
from .registry.records import DatasetRef, html_renderers
from .registry.registry import Registry
from .writer import Writer

if TYPE_CHECKING:
    import pandas as pd

    from .collections import CollectionInfo, Repository
    from .datastore.members import Member, Peek
    from .derived import ReprocessReport
    from .integrity import VerifyReport
    from .live import Change, Feed, Subscription, Update
    from .registry.listing import Listing
    from .registry.meta import DisplayMeta
    from .run import Run
    from .runview import RunView



class Shelf:
    """A shelf of runs and their datasets.  Make one with :func:`create` or :func:`open`.

    A Shelf behaves like a read-only mapping of run number to :class:`Run`
    (``12 in shelf``, ``shelf[12]``, ``for run in shelf``) and is a context
    manager that closes its database connections.
    """

    def __init__(
        self,
        *,
        registry: Registry,
        datastore: Datastore,
        where: str,
        mode: str,
        inputs: Sequence[Repository] = (),
        tags: Iterable[str] = (),
        collections: str | Sequence[str] | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ):
        from .collections import Repository

        self._registry = registry
        self._datastore = datastore
        self._writer = Writer(registry, datastore)
        self._annotations = Annotations(registry)
        self._closed = False
        self.where = where
        self.mode = mode
        #: This shelf's own repository (where writes go), then its inputs in search order.
        self._repos: list[Repository] = [
            Repository(where, registry, datastore, mode, frozenset(tags)),
            *inputs,
        ]
        self._by_where = {repo.where: repo for repo in self._repos}
        self.cache = ReadCache(cache_bytes)
        self.default_collections = collections
        self._live_feed: Feed | None = None
        self._subscriptions: set[Subscription] = set()
        self._finder = Finder(self, self._repos)
        _OPEN.add(self)

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
        for subscription in list(self._subscriptions):
            subscription.close()
        if self._live_feed is not None:
            self._live_feed.stop()
        self.cache.clear()
        for repo in self._repos:
            repo.registry.db.dispose()

    def __enter__(self) -> Shelf:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._closed:  # never reconnect just to describe a closed shelf
            return f"<Shelf {self.where} mode={self.mode!r} closed>"
        return f"<Shelf {self.where} mode={self.mode!r} runs={len(self)}>"

    def _repr_html_(self) -> str:
        from .display import shelf_html

        return shelf_html(self)

    @property
    def repositories(self) -> list[dict[str, Any]]:
        """The repositories of this shelf in search order: where, how open, tags."""
        return [{"where": r.where, "mode": r.mode, "tags": sorted(r.tags)} for r in self._repos]

    def set_repo_mode(self, repo_mode: str) -> None:
        """Configure this repository's mode: ``"rw"``, ``"r"`` (never written) or ``"w"`` (never an input)."""
        from .opening import REPO_MODE_KEY, REPO_MODES

        if repo_mode not in REPO_MODES:
            raise ShelfError(f"repo_mode must be one of {REPO_MODES}, not {repo_mode!r}")
        self._check_writable()
        with self._registry.db.write() as txn:
            self._registry.set_info(txn, {REPO_MODE_KEY: repo_mode})

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
        if not isinstance(experiment, str) or len(experiment) > 255:
            raise InvalidValue(f"experiment must be a str of at most 255 characters, not {experiment!r}")
        check_text(experiment, "experiment")
        if params is not None and not isinstance(params, Mapping):
            raise InvalidValue(f"run params are a dict of JSON-compatible values, not {type(params).__name__}")
        params = dict(params or {})
        try:
            # As the registry will write it: a lone surrogate fails here, not in the database.
            json.dumps(params, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidValue("run params contain a lone surrogate (not a character) in a string") from None
        except (TypeError, ValueError) as exc:
            raise InvalidValue(f"run params must be JSON-compatible (numbers, strings, lists, dicts): {exc}") from exc
        if number is not None:
            number = run_number(number, new=True)
        record = self._registry.create_run(
            number=number, experiment=experiment, params=params, host=socket.gethostname(), user=_user(), pid=os.getpid()
        )
        return Run(self, record)

    def run(self, number: int) -> Run:
        """The run with this number (RunNotFound if none)."""
        from .run import Run

        number = run_number(number)
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

    # -- live ---------------------------------------------------------------------------

    def subscribe(
        self,
        names: str | Iterable[str],
        callback: Callable[[Update], Any],
        *,
        run: int | str | None = "latest",
        max_rate: float | None = None,
        preview: Sequence[int] | None = None,
        poll: float | None = None,
        on_describe: Callable[[DisplayMeta], Any] | None = None,
    ) -> Subscription:
        """Call ``callback(update)`` with the current value of matching datasets whenever they change.

        Parameters
        ----------
        names
            Dataset names or glob patterns (``"camera/*"``); names that do not
            exist yet start delivering when they appear.
        callback
            Receives a :class:`labshelf.live.Update`: the current value
            (rebuilt from appended rows and mutated regions, not re-read),
            the delta, and how many changes it merges.  In a Jupyter kernel
            it runs on the kernel's event loop, elsewhere on a worker thread.
        run
            A run number, ``"latest"`` (the newest run, following new runs)
            or None (any run).
        max_rate
            At most this many calls per second per dataset; changes in between
            are merged (the last value always arrives).
        preview
            ``(height, width)``: images arrive as block-mean previews of at
            most that size; ``update.full()`` reads the full frame.
        poll
            Seconds between reads of the registry when no wake-up arrives
            (file systems without change events); default 0.5.
        on_describe
            Receives the new :class:`DisplayMeta` of a matching name (or of one
            of its data IDs) when its display metadata change, in any run
            (see :class:`labshelf.live.Subscription`).
        """
        from .live import Subscription

        if self._closed:
            raise ShelfError("the shelf is closed")
        subscription = Subscription(
            self, names, callback, run=run, max_rate=max_rate, preview=preview, poll=poll, on_describe=on_describe
        )
        self._subscriptions.add(subscription)
        return subscription

    def changes(
        self, names: Sequence[str] | None = None, *, since: int | None = None, run: int | None = None
    ) -> AsyncIterator[Change]:
        """Iterate (``async for``) over changes after sequence number ``since`` (default: from now).

        Each :class:`labshelf.live.Change` has ``seq``, ``time``, ``kind``
        (put, append, mutate, delete, broadcast, annotate, collection,
        run_start, run_end; describe, column_tags and log for display
        metadata, column tags and the logbook), ``run``, ``name``, ``data_id``, ``version`` and ``payload``;
        keep the last ``seq`` to resume after a restart.
        """
        from .live.subscribe import changes

        return changes(self, names, since, None if run is None else self._run_number(run))

    def last_seq(self) -> int:
        """The sequence number of the newest change."""
        return self._registry.last_seq()

    def _feed(self, poll: float | None) -> Feed:
        from .live import Feed
        from .live.feed import DEFAULT_POLL

        if self._live_feed is None:
            folder = None if self._registry.db.dialect.name == "postgresql" else self._sqlite_folder()
            self._live_feed = Feed(self._registry, folder, poll=poll or DEFAULT_POLL)
        elif poll is not None:
            self._live_feed.poll = min(self._live_feed.poll, poll)
        return self._live_feed

    def _sqlite_folder(self) -> Path:
        # The engine's URL names the registry file (see registry.engine.sqlite_engine).
        return Path(self._registry.db.engine.url.database or "").parent

    def _read_uncached(self, ref: DatasetRef, parameters: Mapping[str, Any]) -> Any:
        """Read past the cache: live updates must not fill it with every frame."""
        formatter = formatters.by_kind(ref.kind)
        return load(self, self._repository(ref), formatter, ref, None, formatter.check_parameters(parameters))

    # -- annotations -------------------------------------------------------------------

    def annotate(
        self,
        runs: int | Iterable[int],
        /,
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
            (``runs`` is positional-only, so a column may be named ``runs``.)

        Returns
        -------
        int
            How many values changed.  Each change is kept in the history
            (:meth:`history`) and the change feed.  Finished runs can be
            annotated: their data are not touched.
        """
        from .run import Run

        self._check_writable()
        if isinstance(runs, str | Run) or not isinstance(runs, Iterable):
            numbers = [self._run_number(runs)]  # one run (a bool or a str is refused there)
        else:
            numbers = [self._run_number(r) for r in runs]
        return self._annotations.annotate(numbers, comment=comment, tags=tags, columns=columns, user=_user())

    def history(self, run: int | None = None) -> list[dict[str, Any]]:
        """Every annotation change of a run: field, old, new, user, time (oldest first).

        Without a run: the changes of the shelf as a whole, of display
        metadata (``field`` ``meta:<name>``), column tags
        (``column_tags:<name>``) and the logbook (``log:<entry>``).
        """
        if run is None:
            return self._annotations.history(None)
        number = self.run(self._run_number(run)).number  # RunNotFound with a hint
        return self._annotations.history(number)

    # -- display metadata, column tags, the logbook -------------------------------------

    def describe(
        self,
        name: str,
        *,
        data_id: Mapping[str, Any] | None = None,
        unit: Any = UNSAID,
        scale: Any = UNSAID,
        precision: Any = UNSAID,
        title: Any = UNSAID,
        description: Any = UNSAID,
    ) -> DisplayMeta:
        """Say what the values of dataset ``name`` mean, for every run: how they are shown.

        Parameters
        ----------
        name
            A dataset name (or a user column's name).  The name need not
            have datasets yet.
        data_id
            Describe only the datasets of this data ID; its fields win over
            the name's.
        unit
            Short text, e.g. ``"ps"``, ``"counts/s"``.
        scale
            Values are stored in base units and shown as ``value / scale``
            (ARTIQ's meaning: unit ``"us"`` with scale ``1e-6``).
        precision
            Digits shown after the point (0 to 15).
        title
            A human title; ``/`` groups columns (``"Beam/XGM mean"``).
        description
            Free text.

        A field left out keeps its value; None clears it.  The change is kept
        in :meth:`history` (``meta:<name>``) and the change feed (``describe``).

        Returns
        -------
        DisplayMeta
            What is now said of ``name`` (and ``data_id``).
        """
        from .metadata import describe

        given = {"unit": unit, "scale": scale, "precision": precision, "title": title, "description": description}
        return describe(self, name, data_id, given)

    def metadata(self, name: str | None = None, *, data_id: Mapping[str, Any] | None = None) -> Any:
        """What is said of ``name``'s values (a :class:`DisplayMeta`, empty if nothing); without a name,
        every record of the shelf by label (``name``, ``name[channel=2]``)."""
        from .metadata import all_metadata, metadata_of

        if name is None:
            if data_id is not None:
                raise InvalidValue("metadata(data_id=...) needs the dataset name too: metadata(name, data_id=...)")
            return all_metadata(self)
        return metadata_of(self, name, data_id)

    def tag_columns(self, name: str, tags: Iterable[str]) -> list[str]:
        """Set the tags of run-table column ``name`` (a dataset name or a user column); returns them sorted.

        Column tags group columns (``view.columns_tagged("beam")``); they are
        not run tags (``'good' in tags`` in a query means the run's tags).
        An empty list removes the column's tags.
        """
        from .metadata import tag_columns

        return tag_columns(self, name, tags)

    def column_tags(self) -> dict[str, list[str]]:
        """Tags of run-table columns, by column name."""
        from .metadata import column_tags

        return column_tags(self)

    def log(self, text: str, at: Any = None) -> int:
        """Write an entry in the shelf's logbook (a comment not tied to a run); returns its number.

        ``at`` is when it happened (a datetime, a naive one in local time; an
        ISO 8601 string; seconds since the epoch); default now.  The OS user
        is recorded.
        """
        from .metadata import log

        return log(self, text, at)

    def edit_log(self, entry: int, *, text: str | None = None, at: Any = None) -> bool:
        """Change a logbook entry's text or time (the old ones stay in :meth:`history`); whether it changed."""
        from .metadata import edit_log

        return edit_log(self, entry, text, at)

    def delete_log(self, entry: int) -> None:
        """Remove a logbook entry (what it said stays in :meth:`history`)."""
        from .metadata import delete_log

        delete_log(self, entry)

    def logbook(self, since: Any = None, until: Any = None) -> pd.DataFrame:
        """The logbook's entries from ``since`` up to ``until`` (inclusive), oldest first.

        A DataFrame indexed by entry number with columns ``time`` (UTC),
        ``text``, ``user``, ``written`` and ``edited`` (NaT if never).
        """
        from .metadata import logbook

        return logbook(self, since, until)

    # -- derived variables ---------------------------------------------------------------

    @property
    def context_path(self) -> Path | None:
        """The context file of derived variables: the one recorded with :meth:`set_context`,
        else ``context.py`` in the root if it exists, else None."""
        from .derived import context_path

        return context_path(self)

    def set_context(self, path: str | os.PathLike[str] | None) -> Path | None:
        """Record ``path`` as this shelf's context file, once it loads without error (None forgets it).

        Loading runs the file.  A file inside the shelf's root is recorded
        relative to it, so it moves with the shelf; a file outside is also
        remembered as confirmed by you, on this machine, so that reprocessing
        runs it (another user of the shelf must confirm it for themselves).
        Returns the context file now in use.
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
        trust_context: str | os.PathLike[str] | None = None,
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
        trust_context
            The path of the context file you accept to run for this call,
            when it lies outside the shelf's folder and you have not
            confirmed it with :meth:`set_context` (the shelf's registry,
            which records the file, may come from someone else).

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
            The shelf has no context file, it cannot be loaded (the
            message names the file and line), or it lies outside the
            shelf's folder and is not confirmed.
        """
        from .derived import reprocess

        return reprocess(
            self, runs, variables, jobs=jobs, dask_scheduler=dask_scheduler, force=force, progress=progress,
            trust_context=trust_context,
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
        try:
            return self._registry.run(run_number(number)) is not None
        except RunNotFound:  # not a run number at all
            return False

    def __iter__(self) -> Iterator[Run]:
        from .run import Run

        return (Run(self, record) for record in self._registry.runs())

    def __len__(self) -> int:
        return self._registry.count_runs()

    def _ipython_key_completions_(self) -> list[int]:
        return self._registry.run_numbers()[-50:]

    # -- datasets --------------------------------------------------------------------

    def find(
        self,
        name: str,
        data_id: Mapping[str, Any] | None = None,
        *,
        run: Any = None,
        collections: str | Sequence[str] | None = None,
    ) -> DatasetRef:
        """The DatasetRef of ``name`` and ``data_id`` (DatasetNotFound if none).

        Parameters
        ----------
        name
            A dataset name; ``name:stage`` searches only collections that
            carry that processing stage.  A component (``name.comp``) is
            found by its dataset.
        data_id
            Dimension values (a dict, or a :class:`DataId` with a tag that
            limits the search to repositories carrying it).
        run
            A run number (or Run): the same as ``collections=["run/<n>"]``.
        collections
            Collection names searched in order, depth-first through chains;
            the first holding the dataset supplies it.  Default: the shelf's
            ``default_collections``, else every run, newest first.

        Returns
        -------
        DatasetRef
            With ``found_in``, the search path that led to it, and
            ``repository``, where it is stored.
        """
        dataset, _component, stage = split_target(name)
        return self._finder.find(dataset, data_id, run, collections, stage)

    def get(
        self,
        name: str,
        data_id: Mapping[str, Any] | None = None,
        *,
        run: Any = None,
        collections: str | Sequence[str] | None = None,
        parameters: Mapping[str, Any] | None = None,
        copy: bool = False,
    ) -> Any:
        """Read a dataset, or one component of it, with its exact type.

        ``name`` may name a component (``spectrum.coords.energy``,
        ``peaks.columns.height``, ``camera/image.thumbnail``), read without
        loading the whole value, and a stage (``calexp:jointcal``).  See
        :meth:`find` for ``data_id``, ``run`` and ``collections``.

        Parameters
        ----------
        parameters
            Read parameters of the value's kind: ``{"slice": np.s_[100:200, :]}``
            reads only that region; ``{"downsample": 4}`` (images) the mean
            of each 4x4 block.
        copy
            Return a private, writable copy.  By default values come from the
            shelf's read cache and numpy arrays are read-only, so one caller
            cannot change what another gets.
        """
        dataset, component, stage = split_target(name)
        ref = self._finder.find(dataset, data_id, run, collections, stage)
        return self.read(ref, component=component, parameters=parameters, copy=copy)

    def components(
        self, name: str | DatasetRef, data_id: Mapping[str, Any] | None = None, *, run: Any = None,
        collections: str | Sequence[str] | None = None,
    ) -> list[str]:
        """Names of the components of a dataset that can be read alone (``get("name.<component>")``)."""
        ref = name if isinstance(name, DatasetRef) else self.find(name, data_id, run=run, collections=collections)
        return formatters.by_kind(ref.kind).components(self._data_paths(ref), ref)

    def _data_paths(self, ref: DatasetRef) -> list[Path]:
        """The checked paths of a dataset's data files (for front ends that show file structure)."""
        return data_paths(self._repository(ref), ref)

    def _repository(self, ref: DatasetRef) -> Repository:
        return self._by_where.get(ref.repository) or self._repos[0]

    def read(
        self,
        ref: DatasetRef,
        *,
        component: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        copy: bool = False,
    ) -> Any:
        """Read the value (or a component of it) a DatasetRef points to."""
        formatter = formatters.by_kind(ref.kind)
        params = formatter.check_parameters(parameters)
        repo = self._repository(ref)
        if is_ingested(ref):
            # Before the cache: a value read earlier is not handed out once its file changed
            # (or to a user who has not confirmed the file).
            located(repo, ref)
        key = (repo.where, ref.id, ref.version, component, repr(sorted(params.items())) if params else None)
        cached = self.cache.get(key, copy=copy)
        if cached is not MISS:
            return cached
        value = load(self, repo, formatter, ref, component, params)
        return self.cache.put(key, value, copy=copy)

    def ingest(
        self,
        run: Any,
        name: str,
        path: str | os.PathLike[str],
        *,
        dataset: str | None = None,
        data_id: Mapping[str, Any] | None = None,
        transfer: str = "direct",
    ) -> DatasetRef:
        """Register an existing file as dataset ``name`` of the running run ``run``; see :meth:`Run.ingest`."""
        from .ingest import ingest

        return ingest(self, self._run_number(run), name, path, dataset=dataset, data_id=data_id, transfer=transfer)

    def trust_data(self, path: str | os.PathLike[str]) -> Path:
        """Let this shelf read the ingested file ``path`` (or the files under the folder ``path``), for you.

        A file ingested in place lies outside the shelf; its registry row is
        untrusted, so such a file is read only once the user reading
        confirmed it (the user who ingested it did so by ingesting).  Kept in
        your ``$XDG_CONFIG_HOME/labshelf/trusted-data.json``, never in the
        shelf.  ``labshelf trust-data SHELF PATH`` on the command line.
        """
        from .ingest import trust_data

        return trust_data(self, path)

    def datasets(self, run: int) -> list[DatasetRef]:
        """Every dataset of a run, in the order they were first put (RunNotFound if no such run).

        A dataset whose registry row is damaged is listed too, with
        :attr:`DatasetRef.damage` saying what is wrong; reading it raises
        CorruptDataset.
        """
        number = self._run_number(run)
        refs = self._registry.datasets(number)
        if not refs:
            self.run(number)  # an empty run, or RunNotFound with a hint
        return refs

    # -- browsing: what front ends show, through labshelf.browse ----------------------

    @functools.cached_property
    def _listing(self) -> Listing:
        """Pages of runs and datasets, names by prefix, thumbnails: the browsing queries of this shelf's registry."""
        from .registry.listing import Listing

        return Listing(self._registry)

    def _members(self, ref: DatasetRef, member: str = "", *, offset: int = 0, limit: int = 100) -> tuple[list[Member], bool]:
        """A page of what is inside a dataset's data files under ``member`` (see ``datastore/members.py``)."""
        from .reading import inspect

        return inspect(self._repository(ref), ref, lambda f, paths: f.members(paths, ref, member, offset, limit))

    def _peek(self, ref: DatasetRef, member: str = "", *, limit: int) -> Peek:
        """A bounded look (at most ``limit`` values read) into a dataset's data files, or one member of them."""
        from .reading import inspect

        return inspect(self._repository(ref), ref, lambda f, paths: f.peek(paths, ref, member, limit))

    def orphans(self, older_than: float = 3600.0) -> list[str]:
        """Data files no dataset refers to (left by crashed writers)."""
        return self._datastore.orphans(self._registry.all_files(), older_than=older_than)

    def verify(self, runs: Any = None, *, integrity_check: bool = False) -> VerifyReport:
        """Check this shelf's data files and registry (not its inputs'); report what is wrong, repair nothing.

        Every data file a dataset needs must exist, lie inside the shelf,
        and read in full with its checksums verified; values kept in the
        registry must decode.  Files no dataset refers to are reported:
        left by crashed writers, or, for runs the registry does not know or
        files newer than its last change, signs that it lost rows (as when
        a SQLite ``registry.sqlite3-wal`` was deleted).  Only reads: works
        on a shelf opened with ``mode="r"``.  ``labshelf verify PATH`` on
        the command line.

        Parameters
        ----------
        runs
            Only these runs: a number, a list, a range or a text like
            ``"10-20,25"`` (default: all, and ``tmp/`` too).
        integrity_check
            SQLite: run ``PRAGMA integrity_check`` (reads every page)
            instead of ``quick_check``.

        Returns
        -------
        VerifyReport
            ``report.ok``, and ``report.problems`` (kind, run, dataset,
            file, message); ``print(report)`` reads well.
        """
        from .integrity import verify

        return verify(self, runs, integrity_check=integrity_check)

    # -- collections ---------------------------------------------------------------------

    def collections(self, pattern: str | None = None) -> list[CollectionInfo]:
        """Every collection of the shelf's repositories (RUN, TAGGED, CHAINED), in search order.

        ``pattern`` is a glob on names (``"calib/*"``).  A name defined in
        several repositories is listed once, from the first that has it.
        """
        import fnmatch

        from .collections import CollectionInfo, info

        seen: dict[str, CollectionInfo] = {}
        for repo in self._repos:
            defined = repo.collections.defined()
            for name in repo.collections.names():
                if name in seen or (pattern is not None and not fnmatch.fnmatchcase(name, pattern)):
                    continue
                record = defined.get(name)
                seen[name] = info(record, repo) if record else CollectionInfo(name, "RUN", repository=repo.where)
        return list(seen.values())

    def collection(self, name: str) -> CollectionInfo:
        """One collection by name (CollectionNotFound, with close matches, if none)."""
        from .collections import info

        repo, record = self._finder.search().resolve(name, checked=False)
        return info(record, repo)

    def tag(
        self, name: str, refs: DatasetRef | Iterable[DatasetRef], *, doc: str | None = None,
        stage: str | None = None, replace: bool = False,
    ) -> int:
        """Put datasets into the TAGGED collection ``name`` (made if missing); returns how many were added.

        A TAGGED collection holds one dataset per name and data ID: tagging
        another raises CollectionError unless ``replace=True``.
        """
        from .registry.collections import check_collection_name, check_stage

        self._check_writable()
        check_collection_name(name)
        if stage is not None:
            check_stage(stage)
        own = self._own_refs(refs, name)
        store = self._repos[0].collections
        if store.defined().get(name) is None or doc is not None or stage is not None:
            store.define(name, "tagged", doc=doc, stage=stage)
        return store.tag(name, own, replace=replace)

    def untag(self, name: str, refs: DatasetRef | Iterable[DatasetRef]) -> int:
        """Take datasets out of the TAGGED collection ``name``; returns how many were in it."""
        self._check_writable()
        return self._repos[0].collections.untag(name, self._own_refs(refs, name))

    def _own_refs(self, refs: DatasetRef | Iterable[DatasetRef], name: str) -> list[DatasetRef]:
        items = [refs] if isinstance(refs, DatasetRef) else list(refs)
        for ref in items:
            if not isinstance(ref, DatasetRef):
                raise CollectionError(f"tag() takes DatasetRefs (from shelf.find or shelf.query), not {ref!r}")
            if ref.repository not in ("", self.where):
                raise CollectionError(
                    f"{ref.label!r} of run {ref.run} is stored in {ref.repository}; a TAGGED collection of "
                    f"{self.where} holds only its own datasets"
                )
        return items

    def chain(
        self, name: str, children: Sequence[str], *, doc: str | None = None, stage: str | None = None
    ) -> CollectionInfo:
        """Define or redefine the CHAINED collection ``name``: ``children`` searched in order.

        Children are RUN, TAGGED or CHAINED collections of any repository of
        this shelf.  A missing child or a cycle raises and changes nothing;
        a redefinition replaces the old list in one transaction.
        """
        from .collections import check_chain, info
        from .registry.collections import check_collection_name, check_stage

        self._check_writable()
        check_collection_name(name)
        if stage is not None:
            check_stage(stage)
        search = self._finder.search()
        existing = next((repo.collections.defined().get(name) for repo in self._repos
                         if repo.collections.defined().get(name)), None)
        if existing is not None and existing.kind != "chained":
            raise CollectionError(f"{name!r} is a {existing.kind.upper()} collection; a chain needs a name of its own")
        members = check_chain(search, name, children)
        record = self._repos[0].collections.define(name, "chained", doc=doc, stage=stage, children=members)
        return info(record, self._repos[0])

    def describe_collection(self, name: str, *, doc: str | None = None, stage: str | None = None) -> CollectionInfo:
        """Give a collection (a run's too) documentation and/or a processing stage."""
        from .collections import info
        from .registry.collections import check_stage
        from .registry.collections import run_number as run_of_collection

        self._check_writable()
        if stage is not None:
            check_stage(stage)
        repo, record = self._finder.search().resolve(name, checked=False)
        if repo is not self._repos[0]:
            raise ReadOnlyShelf(f"{name!r} belongs to the input repository {repo.where}, which this shelf only reads")
        kind = "run" if run_of_collection(name) is not None and record.kind == "run" else record.kind
        updated = repo.collections.define(name, kind, doc=doc, stage=stage)
        return info(updated, repo)

    def remove_collection(self, name: str) -> None:
        """Delete a TAGGED or CHAINED collection; its datasets stay in their runs."""
        self._check_writable()
        users = [r.name for repo in self._repos for r in repo.collections.defined().values() if name in r.children]
        self._repos[0].collections.remove(name, referenced_by=users)

    def query(
        self,
        name: str | None = None,
        where: str | None = None,
        *,
        collections: str | Sequence[str] | None = None,
        find_first: bool | None = None,
    ) -> list[DatasetRef]:
        """DatasetRefs of ``name`` whose data ID and run match ``where``.

        ``where`` is in the run table's query language, run in SQL:
        data-ID dimensions (``detector > 2``, ``band == 'g'``,
        ``detector in [1, 2]``) and run metadata (``run >= 10``,
        ``experiment == 'scan'``, ``status``, ``start``, ``end``).  With
        ``collections``, ``find_first`` (default True) keeps per name and
        data ID the first found in search order; without them every match
        in every run is returned, by repository, run, name and data ID.
        """
        from .query import run_query

        dataset, stage = None, None
        if name is not None:
            dataset, component, stage = split_target(name)
            if component is not None:
                raise CollectionError(f"query() finds datasets; read the component {component!r} with get()")
        return run_query(self, dataset, where, self._finder.collection_list(collections), stage, find_first)

    def _run_number(self, run: Any) -> int:
        """A run number from an int, a numpy integer or a Run (RunNotFound for anything else)."""
        if type(run) is int:
            return run_number(run)
        from .run import Run

        if isinstance(run, Run):
            return run.number
        try:
            return run_number(run)
        except RunNotFound as exc:
            raise RunNotFound(f"{exc}; runs are given by number or as a Run") from None


#: Shelves not yet garbage: a DatasetRef's repr looks up the display metadata of its
#: repository through one of them (a record knows where it is stored, not who read it).
_OPEN: weakref.WeakSet[Shelf] = weakref.WeakSet()


def holding(repository: str) -> Shelf | None:
    """An open shelf whose view has the repository ``repository`` (its folder or URL), if any."""
    if not repository:
        return None
    for shelf in list(_OPEN):
        if not shelf._closed and repository in shelf._by_where:
            return shelf
    return None


def _ref_html(ref: DatasetRef) -> str:
    from .display import ref_html  # the HTML lives above the registry; imported on first use

    return ref_html(ref)


# The registry's records know no HTML: the facade that hands them out gives
# them their notebook repr (see registry.records.html_renderers).
html_renderers[DatasetRef] = _ref_html


def _user() -> str:
    """The OS user name, recorded with runs and annotations."""
    from .registry.meta import os_user

    return os_user()
