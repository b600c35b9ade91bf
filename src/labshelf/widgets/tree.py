"""DatasetTree: browse a shelf's runs, their datasets and what is inside the data files.

The tree is lazy all the way down.  The browser asks for the children of a
node a page at a time (``rpc_children``), and each page is one bounded SQL
query: runs newest first with ``LIMIT``/``OFFSET``; a run's datasets in name
order with ``LIMIT``, continuing from where the previous page stopped (a
keyset cursor), so a run of 10,000 datasets or a shelf of 100,000 runs opens
as fast as a run of ten.  Data files are opened only to list what is inside
one dataset (HDF5 members, NetCDF variables, Parquet columns) or to preview it.

Node ids (also the ``data-node`` attribute in the page, see the DOM contract):

====================================  ===================================================
``run/12``                            run 12
``run/12/scan``                       the group of datasets named ``scan/...``
                                      (``run/12/scan/`` when a dataset ``scan`` exists too)
``run/12/scan/x``                     dataset ``scan/x``; ``run/12/image[detector=3]`` with a data ID
``run/12/spectrum#energy``            component ``energy`` of a composite (xarray, pandas)
``run/12/image#camera/image``         an HDF5 member; ``...#camera/image@CLASS`` an attribute
====================================  ===================================================
"""

from __future__ import annotations

import datetime as _dt
import html
import json
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import traitlets
from sqlalchemy import bindparam, collate, func, select, tuple_

from ..errors import DatasetNotFound, RunNotFound
from ..names import label as dataset_label
from ..registry.engine import Statement
from ..registry.schema import datasets, runs
from ._base import Reply, ShelfWidget, css, esm
from ._members import Members, human_size

#: Largest page of children one request may ask for.
MAX_PAGE = 1000
#: Remembered page cursors (node, search, offset) per widget.
_CURSORS_KEPT = 512

# Built and compiled once per dialect (see registry.engine.Statement): a page
# then costs the database's work and the node dicts, not SQL compilation.
_RUN_COLUMNS = (runs.c.number, runs.c.experiment, runs.c.status, runs.c.started)
_RUN = Statement(select(*_RUN_COLUMNS).where(runs.c.number == bindparam("run")))
_RUN_PAGE = select(*_RUN_COLUMNS).order_by(runs.c.number.desc()).limit(bindparam("limit")).offset(bindparam("offset"))
_RUN_PAGES = {
    False: Statement(_RUN_PAGE),
    True: Statement(
        _RUN_PAGE.where(
            select(datasets.c.id)
            .where(
                datasets.c.run == runs.c.number,
                datasets.c.name.ilike(bindparam("pattern"), escape="\\"),
                datasets.c.name.not_like("%.%"),
            )
            .exists()
        )
    ),
}
_NAME_TAKEN = Statement(
    select(datasets.c.id).where(datasets.c.run == bindparam("run"), datasets.c.name == bindparam("name")).limit(1)
)
_LIST_COLUMNS = (
    datasets.c.name,
    datasets.c.data_id,
    datasets.c.kind,
    datasets.c.shape,
    datasets.c.dtype,
    datasets.c.nbytes,
    datasets.c.location.is_not(None).label("in_files"),
)
#: Statements listing a run's datasets, by (byte-order name column, prefix?, cursor kind, search?).
_LISTINGS: dict[tuple[bool, bool, bool | None, bool], Statement] = {}


@dataclass(frozen=True)
class _Node:
    """A parsed node id."""

    kind: str  # shelf, run, group, dataset, member
    id: str
    run: int = 0
    prefix: str = ""  # a group's name prefix, ending in "/"
    row: Any = None  # the datasets row of a dataset or member
    member: str = ""


class DatasetTree(ShelfWidget):
    """A lazy tree of a shelf's runs and datasets, with previews and the code to load each.

    Parameters
    ----------
    shelf_or_run
        A :class:`~labshelf.Shelf` (every run, newest first) or a
        :class:`~labshelf.Run` (that run only, opened).
    page_size
        How many children one page shows; more come with a "more" button.

    Notes
    -----
    Datasets are grouped by the ``/`` in their names and listed in name
    order.  Selecting a node shows a preview and the exact ``shelf.get(...)``
    call that loads it; the selected node's id is the ``selected`` trait,
    which a notebook can observe (``tree.observe(fn, "selected")``).
    """

    _esm = esm("tree.js")
    _css = css("tree.css")

    #: Id of the selected node ("" when none); settable from Python too.
    selected = traitlets.Unicode("").tag(sync=True)
    page_size = traitlets.Int(100).tag(sync=True)
    #: What the tree shows: "" (the whole shelf) or "run/12".
    scope = traitlets.Unicode("", read_only=True).tag(sync=True)

    def __init__(self, shelf_or_run: Any, page_size: int = 100, **kwargs: Any) -> None:
        shelf, run = _shelf_and_run(shelf_or_run)
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"page_size is an int from 1 to {MAX_PAGE}, not {page_size!r}")
        self._shelf = shelf
        self._run = run
        self._members = Members(shelf)
        self._cursors: OrderedDict[tuple[str, str, int], tuple[str, str, bool] | None] = OrderedDict()
        self._name_order: Any = None
        super().__init__(page_size=page_size, **kwargs)
        self.set_trait("scope", "" if run is None else f"run/{run}")

    def __repr__(self) -> str:
        shown = "every run" if self._run is None else f"run {self._run}"
        return f"<DatasetTree of {self._shelf.where}: {shown}>"

    # -- requests from the browser ----------------------------------------------------

    def rpc_children(self, node: str = "", offset: int = 0, limit: int | None = None, search: str = "") -> dict[str, Any]:
        """One page of a node's children: ``{"nodes": [...], "more": bool, "offset": int}``.

        ``search`` keeps the datasets whose names contain it (any case) and
        the runs and groups that hold such datasets.
        """
        offset, limit, search = _page_args(offset, self.page_size if limit is None else limit, search)
        parsed = self._parse(node)
        if parsed.kind == "shelf":
            if self._run is not None:
                nodes = [self._run_node(self._run_row(self._run), expand=True)] if offset == 0 else []
                return {"nodes": nodes, "more": False, "offset": offset}
            return self._run_page(offset, limit, search)
        if parsed.kind in ("run", "group"):
            return self._dataset_page(parsed, offset, limit, search)
        if parsed.kind in ("dataset", "member"):
            nodes, more = self._members.children(parsed.row, _dataset_id(parsed), parsed.member, offset, limit)
            return {"nodes": nodes, "more": more, "offset": offset}
        raise ValueError(f"node {node!r} has no children")  # pragma: no cover - every kind is handled

    def rpc_preview(self, node: str) -> Reply:
        """What the preview pane shows for a node, with a PNG buffer for pictures."""
        parsed = self._parse(node)
        if parsed.kind == "run":
            preview = self._run_preview(parsed.run)
            return Reply({"node": node, **preview})
        if parsed.kind == "group":
            preview = self._group_preview(parsed)
            return Reply({"node": node, **preview})
        if parsed.kind == "shelf":
            raise ValueError("select a run or a dataset to preview it")
        found, buffers = self._members.preview(parsed.row, parsed.member)
        return Reply({"node": node, **found}, buffers)

    # -- node ids -----------------------------------------------------------------------

    def _parse(self, node: Any) -> _Node:
        if not isinstance(node, str):
            raise ValueError(f"a node id is a string like 'run/12', not {node!r}")
        if node == "":
            return _Node("shelf", node)
        head, _, rest = node.partition("/")
        number_text, slash, path = rest.partition("/")
        if head != "run" or not number_text.isdigit():
            raise ValueError(f"{node!r} is not a node id: they look like 'run/12' or 'run/12/scan/x'")
        run = int(number_text)
        if self._run is not None and run != self._run:
            raise RunNotFound(f"this tree shows run {self._run} only, not run {run}")
        if not slash:
            self._run_row(run)  # RunNotFound with a hint
            return _Node("run", node, run)
        if not path:
            raise ValueError(f"{node!r} is not a node id: nothing follows 'run/{run}/'")
        with self._shelf._registry.db.read() as txn:
            if path.endswith("/"):
                if self._has_prefix(txn, run, path):
                    return _Node("group", node, run, prefix=path)
            else:
                row = self._dataset_row(txn, run, path)
                if row is not None:
                    return _Node("dataset", node, run, row=row)
                if self._has_prefix(txn, run, path + "/"):
                    return _Node("group", node, run, prefix=path + "/")
                # A '#' ends the dataset label and starts a member path; names
                # may hold '#' too, so each one is tried from the left.
                at = path.find("#")
                while at > 0:
                    row = self._dataset_row(txn, run, path[:at])
                    if row is not None:
                        return _Node("member", node, run, row=row, member=path[at + 1 :])
                    at = path.find("#", at + 1)
        self._run_row(run)
        raise DatasetNotFound(f"run {run} has no dataset or group {path.rstrip('/')!r}")

    def _dataset_row(self, txn: Any, run: int, label: str) -> Any:
        name = label.partition("[")[0]
        if not name:
            return None
        rows = txn.all(select(datasets).where(datasets.c.run == run, datasets.c.name == name))
        for row in rows:
            if dataset_label(row.name, json.loads(row.data_id)) == label:
                return row
        return None

    @staticmethod
    def _has_prefix(txn: Any, run: int, prefix: str) -> bool:
        query = select(datasets.c.id).where(
            datasets.c.run == run, datasets.c.name >= prefix, datasets.c.name < _after_prefix(prefix)
        )
        return txn.first(query.limit(1)) is not None

    # -- runs ------------------------------------------------------------------------------

    def _run_row(self, run: int) -> Any:
        with self._shelf._registry.db.read() as txn:
            row = txn.first(_RUN, {"run": run})
        if row is None:
            self._shelf.run(run)  # raises RunNotFound with the range of runs
        return row

    def _run_page(self, offset: int, limit: int, search: str) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit + 1, "offset": offset}
        if search:
            params["pattern"] = _like(search)
        with self._shelf._registry.db.read() as txn:
            rows = txn.all(_RUN_PAGES[bool(search)], params)
        # While searching, the first few runs open at once to show where the matches are.
        nodes = [self._run_node(r, expand=bool(search) and offset == 0 and i < 5) for i, r in enumerate(rows[:limit])]
        return {"nodes": nodes, "more": len(rows) > limit, "offset": offset}

    @staticmethod
    def _run_node(row: Any, *, expand: bool = False) -> dict[str, Any]:
        started = _dt.datetime.fromtimestamp(row.started).strftime("%Y-%m-%d %H:%M")
        meta = " · ".join(x for x in (row.experiment, row.status, started) if x)
        node = {"id": f"run/{row.number}", "name": f"run {row.number}", "kind": "run", "meta": meta, "expandable": True}
        if expand:
            node["expand"] = True
        return node

    def _run_preview(self, run: int) -> dict[str, Any]:
        record = self._shelf.run(run).record
        with self._shelf._registry.db.read() as txn:
            count = txn.scalar(
                select(func.count()).select_from(datasets).where(datasets.c.run == run, datasets.c.name.not_like("%.%"))
            )
        fields = [
            ("experiment", record.experiment or "-"),
            ("status", record.status),
            ("started", record.start.astimezone().strftime("%Y-%m-%d %H:%M:%S")),
            ("ended", record.end.astimezone().strftime("%Y-%m-%d %H:%M:%S") if record.end else "-"),
            ("datasets", f"{count:,}"),
            ("host", record.host),
            ("user", record.user),
            ("params", json.dumps(dict(record.params), sort_keys=True)),
        ]
        if record.error:
            fields.append(("error", record.error))
        return {"title": f"run {run}", "kind": "run", "fields": fields, "code": f"shelf.run({run})"}

    # -- datasets of a run, by name ---------------------------------------------------------

    def _dataset_page(self, parent: _Node, offset: int, limit: int, search: str) -> dict[str, Any]:
        key = (parent.id if parent.kind == "run" else f"run/{parent.run}/{parent.prefix}", search)
        start, cursor = self._nearest_cursor(key, offset)
        with self._shelf._registry.db.read() as txn:
            entries = list(self._scan(txn, parent.run, parent.prefix, search, cursor, offset - start + limit + 1))
            entries = entries[offset - start :]
            nodes = [self._entry_node(txn, parent, entry) for entry, _after in entries[:limit]]
        if len(entries) > limit:
            self._remember_cursor(key, offset + limit, entries[limit - 1][1])
        return {"nodes": nodes, "more": len(entries) > limit, "offset": offset}

    def _scan(
        self, txn: Any, run: int, prefix: str, search: str, cursor: tuple[str, str, bool] | None, wanted: int
    ) -> Iterator[tuple[tuple[str, Any], tuple[str, str, bool]]]:
        """Up to ``wanted`` children of a name prefix, in name order, from ``cursor`` on.

        Yields (entry, cursor after it); an entry is ("group", part) or
        ("dataset", row).  A group is skipped over in one step: the next
        query starts after every name beginning with ``part/`` (names
        compare byte-wise, and "0" is the character after "/"), so a page
        costs one query plus one per group on it, whatever the run holds.
        """
        given = 0
        while given < wanted:
            batch = wanted - given
            rows = txn.all(self._list_query(prefix, cursor, search), self._list_params(run, prefix, cursor, search, batch))
            for row in rows:
                part, slash, _ = row.name[len(prefix) :].partition("/")
                if slash:
                    cursor = (_after_prefix(prefix + part + "/"), "", False)
                    yield ("group", part), cursor
                    given += 1
                    break
                cursor = (row.name, row.data_id, True)
                yield ("dataset", row), cursor
                given += 1
                if given == wanted:
                    return
            else:
                if len(rows) < batch:
                    return

    def _list_query(self, prefix: str, cursor: tuple[str, str, bool] | None, search: str) -> Statement:
        byte_order = self._ordered_name() is datasets.c.name
        key = (byte_order, bool(prefix), None if cursor is None else cursor[2], bool(search))
        found = _LISTINGS.get(key)
        if found is not None:
            return found
        name = self._ordered_name()
        # Rows named "calexp.psf" are components of the composite "calexp",
        # listed under it (a user's dataset names never hold a ".").
        query = select(*_LIST_COLUMNS).where(datasets.c.run == bindparam("run"), datasets.c.name.not_like("%.%"))
        if prefix:
            query = query.where(name >= bindparam("low"), name < bindparam("high"))
        if cursor is not None:
            position = tuple_(name, datasets.c.data_id)
            after = tuple_(bindparam("after_name"), bindparam("after_data_id"))
            query = query.where(position > after if cursor[2] else position >= after)
        if search:
            query = query.where(datasets.c.name.ilike(bindparam("pattern"), escape="\\"))
        found = _LISTINGS[key] = Statement(query.order_by(name, datasets.c.data_id).limit(bindparam("limit")))
        return found

    @staticmethod
    def _list_params(
        run: int, prefix: str, cursor: tuple[str, str, bool] | None, search: str, limit: int
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"run": run, "limit": limit}
        if prefix:
            params.update(low=prefix, high=_after_prefix(prefix))
        if cursor is not None:
            params.update(after_name=cursor[0], after_data_id=cursor[1])
        if search:
            params["pattern"] = _like(search)
        return params

    def _ordered_name(self) -> Any:
        """``datasets.name`` in byte order, which the group skipping relies on.

        SQLite compares text byte-wise already; PostgreSQL by the database's
        collation, which sorts "a/b" and "a0" by language rules unless it is
        C.  Forcing COLLATE "C" costs the index order, so it is only done when
        the database's own collation is not byte order.
        """
        if self._name_order is None:
            db = self._shelf._registry.db
            self._name_order = datasets.c.name
            if not db.is_sqlite:
                with db.read() as txn:
                    collation = txn.execute_sql(
                        "SELECT datcollate FROM pg_database WHERE datname = current_database()"
                    ).fetchone()[0]
                if str(collation).split(".")[0] not in ("C", "POSIX"):
                    self._name_order = collate(datasets.c.name, "C")
        return self._name_order

    def _entry_node(self, txn: Any, parent: _Node, entry: tuple[str, Any]) -> dict[str, Any]:
        what, value = entry
        base = f"run/{parent.run}/"
        if what == "group":
            name = parent.prefix + value
            # A dataset of the same name takes the plain id; the group then ends in "/".
            taken = txn.first(_NAME_TAKEN, {"run": parent.run, "name": name})
            node_id = base + name + ("/" if taken is not None else "")
            return {"id": node_id, "name": value, "kind": "group", "meta": "group", "expandable": True}
        row = value
        label = row.name if row.data_id == "{}" else dataset_label(row.name, json.loads(row.data_id))
        # The registry writes shapes as compact JSON lists of ints: "[512,512]".
        shape = "" if row.shape is None else "×".join(n.strip() for n in row.shape.strip("[]").split(",") if n.strip())
        meta = " · ".join(x for x in (row.kind, shape, row.dtype or "", human_size(row.nbytes)) if x)
        return {
            "id": base + label,
            "name": label[len(parent.prefix) :],
            "kind": row.kind,
            "meta": meta,
            "expandable": self._members.expandable(row.kind, row.dtype, bool(row.in_files)),
        }

    def _group_preview(self, node: _Node) -> dict[str, Any]:
        prefix = node.prefix
        query = (
            select(func.count(), func.sum(datasets.c.nbytes))
            .select_from(datasets)
            .where(datasets.c.run == node.run, datasets.c.name >= prefix, datasets.c.name < _after_prefix(prefix))
        )
        with self._shelf._registry.db.read() as txn:
            count, nbytes = txn.first(query)
        code = f"[ref for ref in shelf.datasets({node.run}) if ref.name.startswith({prefix!r})]"
        fields = [("datasets", f"{count:,}"), ("size", human_size(nbytes or 0))]
        return {"title": f"run {node.run}: {prefix}", "kind": "group", "fields": fields, "code": code}

    # -- page cursors -------------------------------------------------------------------------

    def _nearest_cursor(self, key: tuple[str, str], offset: int) -> tuple[int, tuple[str, str, bool] | None]:
        """The remembered cursor closest before ``offset`` (the start, if none)."""
        if (*key, offset) in self._cursors:
            self._cursors.move_to_end((*key, offset))
            return offset, self._cursors[(*key, offset)]
        best: tuple[int, tuple[str, str, bool] | None] = (0, None)
        for (node, search, at), cursor in self._cursors.items():
            if (node, search) == key and best[0] < at <= offset:
                best = (at, cursor)
        return best

    def _remember_cursor(self, key: tuple[str, str], offset: int, cursor: tuple[str, str, bool]) -> None:
        self._cursors[(*key, offset)] = cursor
        self._cursors.move_to_end((*key, offset))
        while len(self._cursors) > _CURSORS_KEPT:
            self._cursors.popitem(last=False)

    # -- without a widget front end ---------------------------------------------------------------

    def fallback_html(self) -> str:
        """A short static list of runs and dataset names, for nbconvert and other static views."""
        shown_runs = 10
        shown_names = 12 if self._run is None else 50
        with self._shelf._registry.db.read() as txn:
            if self._run is None:
                run_rows = txn.all(_RUN_PAGES[False], {"limit": shown_runs, "offset": 0})
                total = self._shelf._registry.count_runs()
            else:
                run_rows = [self._run_row(self._run)]
                total = 1
            items = []
            for row in run_rows:
                names_query = (
                    select(datasets.c.name, datasets.c.data_id)
                    .where(datasets.c.run == row.number, datasets.c.name.not_like("%.%"))
                    .order_by(datasets.c.name, datasets.c.data_id)
                    .limit(shown_names + 1)
                )
                labels = [dataset_label(n, json.loads(d)) for n, d in txn.tuples(names_query)]
                names = "".join(f"<li>{html.escape(x)}</li>" for x in labels[:shown_names])
                if len(labels) > shown_names:
                    names += "<li>…</li>"
                title = html.escape(self._run_node(row)["name"] + " · " + self._run_node(row)["meta"])
                items.append(f"<li>{title}<ul>{names}</ul></li>")
        more = f"<p>… {total - len(run_rows):,} more runs</p>" if total > len(run_rows) else ""
        return (
            f"<div class='labshelf-tree-static'><p>{html.escape(self._shelf.where)}</p>"
            f"<ul>{''.join(items)}</ul>{more}</div>"
        )


def _shelf_and_run(shelf_or_run: Any) -> tuple[Any, int | None]:
    from ..run import Run
    from ..shelf import Shelf

    if isinstance(shelf_or_run, Shelf):
        return shelf_or_run, None
    if isinstance(shelf_or_run, Run):
        return shelf_or_run._shelf, shelf_or_run.number
    raise TypeError(f"DatasetTree shows a Shelf or a Run, not {type(shelf_or_run).__name__}")


def _dataset_id(node: _Node) -> str:
    """The node id of the dataset a dataset or member node belongs to."""
    return node.id if node.kind == "dataset" else node.id[: len(node.id) - len(node.member) - 1]


def _page_args(offset: Any, limit: Any, search: Any) -> tuple[int, int, str]:
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset is an int >= 0, not {offset!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit is an int from 1 to {MAX_PAGE}, not {limit!r}")
    if not isinstance(search, str):
        raise ValueError(f"search is a string, not {search!r}")
    return offset, limit, search.strip()


def _after_prefix(prefix: str) -> str:
    """The smallest string after every string that starts with ``prefix`` (which ends in "/")."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _like(search: str) -> str:
    """A LIKE pattern for names containing ``search`` (its own % and _ taken literally)."""
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


__all__ = ["DatasetTree"]
