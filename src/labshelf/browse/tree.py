"""The tree of a shelf: what a node id means, and the children of a node, a page at a time.

shelf -> runs (newest first) -> groups of names (``scan/...``) and datasets
(in name order) -> what is inside a dataset: the HDF5 structure of an
array's files, the variables of an xarray value, the columns of a table,
the components of a composite.

Each page is bounded: runs come with ``LIMIT``/``OFFSET``; a run's datasets
continue from where the previous page stopped (a keyset cursor kept per
node, search and offset), so a run of 10,000 datasets or a shelf of 100,000
runs opens as fast as a small one; data files are opened only to list what
is inside one dataset, from their metadata.

A dataset node carries what its display metadata say of it (unit, title,
description): the shelf's records are read once per page.
"""

from __future__ import annotations

import datetime as _dt
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._format import size_text
from ..errors import DatasetNotFound, InvalidName, RunNotFound
from ..names import check_name, data_id_key
from ..names import label as dataset_label
from ..registry.listing import GroupEntry
from .nodes import node_id, parse_label, parse_node
from .previews import HDF5_KINDS, MAX_MEMBERS, meta_text, short
from .records import Node, NodePage

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..datastore.members import Member
    from ..registry.listing import Cursor, DatasetEntry, RunEntry
    from ..registry.meta import DisplayMeta
    from ..registry.records import DatasetRef
    from ..shelf import Shelf

#: Largest page of children one request may ask for.
MAX_PAGE = 1000
#: Remembered page cursors (node, search, offset).
CURSORS_KEPT = 512
#: How many ways of reading an id with "#" in it are tried (names may hold "#" too).
_MAX_SPLITS = 16
#: Runs opened at once while searching, to show where the matches are.
_OPENED_WHILE_SEARCHING = 5
#: Kinds whose datasets have members only when they are in data files.
_FILE_KINDS = frozenset(("scalar", *HDF5_KINDS))


@dataclass(frozen=True, slots=True)
class Located:
    """What a node id means in a shelf."""

    #: shelf, run, group, dataset or member.
    kind: str
    id: str
    run: int = 0
    #: A group's name prefix, ending in "/".
    prefix: str = ""
    ref: DatasetRef | None = None
    member: str = ""

    @property
    def dataset_id(self) -> str:
        """The id of the dataset a dataset or member node belongs to."""
        return self.id if self.kind == "dataset" else self.id[: len(self.id) - len(self.member) - 1]


def locate(shelf: Shelf, text: Any) -> Located:
    """What the node id ``text`` names: InvalidName, RunNotFound or DatasetNotFound if nothing."""
    parsed = parse_node(text)
    if parsed.run is None:
        return Located("shelf", "")
    run, path = parsed.run, parsed.path
    listing = shelf._listing
    if listing.run(run) is None:
        shelf.run(run)  # RunNotFound with the range of runs
        raise RunNotFound(f"no run {run} in {shelf.where}")  # pragma: no cover - shelf.run raised
    if not path:
        return Located("run", text, run)
    if path.endswith("/"):
        _check_group(text, path[:-1])
        if listing.has_prefix(run, path):
            return Located("group", text, run, prefix=path)
        raise DatasetNotFound(f"run {run} has no group {path[:-1]!r}")
    # A '#' ends the dataset label and starts a member path; names may hold
    # '#' too, so the whole path is tried first, then each '#' from the left.
    candidates = [(path, "")]
    at = path.find("#")
    while at > 0 and len(candidates) <= _MAX_SPLITS:
        candidates.append((path[:at], path[at + 1 :]))
        at = path.find("#", at + 1)
    readable = False
    for label_text, member in candidates:
        found = parse_label(label_text)
        if found is None:
            continue
        readable = True
        name, data_id = found
        ref = listing.dataset(run, name, data_id_key(data_id))
        if ref is not None:
            if member:
                return Located("member", text, run, ref=ref, member=member)
            return Located("dataset", text, run, ref=ref)
        if not member and not data_id and listing.has_prefix(run, name + "/"):
            return Located("group", text, run, prefix=name + "/")
    if not readable:
        raise InvalidName(
            f"{text!r} is not a node id: {path!r} is not a dataset name (letters, digits and _ - + = @ , # % ( ), "
            "parts joined by '/', a data ID in [...] and a member after '#')"
        )
    raise DatasetNotFound(f"run {run} has no dataset or group {path!r}")


def _check_group(text: str, name: str) -> None:
    try:
        check_name(name)
    except InvalidName as exc:
        raise InvalidName(f"{text!r} is not a node id: {exc}") from None


class Tree:
    """Children of the nodes of one shelf, with the cursors of the pages already given.

    Thread-safe: cursors are shared by every caller (a page is the same for
    everyone) behind a lock.
    """

    def __init__(self, shelf: Shelf):
        self._shelf = shelf
        self._cursors: OrderedDict[tuple[int, str, str, int], Cursor] = OrderedDict()
        self._lock = threading.Lock()

    def children(self, node: Located, offset: int, limit: int, search: str) -> NodePage:
        """One page of a node's children; ``search`` keeps the datasets whose names contain it (any case)
        and the runs and groups holding such datasets."""
        if node.kind == "shelf":
            return self._runs(offset, limit, search)
        if node.kind in ("run", "group"):
            return self._datasets(node, offset, limit, search)
        assert node.ref is not None
        return self._members(node.ref, node.dataset_id, node.member, offset, limit)

    # -- runs -------------------------------------------------------------------------------

    def _runs(self, offset: int, limit: int, search: str) -> NodePage:
        entries = self._shelf._listing.runs(offset, limit + 1, search)
        # While searching, the first few runs open at once to show where the matches are.
        opened = _OPENED_WHILE_SEARCHING if search and offset == 0 else 0
        nodes = tuple(run_node(entry, expand=i < opened) for i, entry in enumerate(entries[:limit]))
        return NodePage(nodes, len(entries) > limit, offset)

    # -- datasets of a run, by name -----------------------------------------------------------

    def _datasets(self, parent: Located, offset: int, limit: int, search: str) -> NodePage:
        key = (parent.run, parent.prefix, search)
        start, cursor = self._nearest_cursor(key, offset)
        entries = self._shelf._listing.children(parent.run, parent.prefix, search, cursor, offset - start + limit + 1)
        entries = entries[offset - start :]
        records = self._shelf.metadata() if entries else {}
        nodes = tuple(_entry_node(parent.run, parent.prefix, entry, records) for entry, _after in entries[:limit])
        if len(entries) > limit:
            self._remember_cursor(key, offset + limit, entries[limit - 1][1])
        return NodePage(nodes, len(entries) > limit, offset)

    def _nearest_cursor(self, key: tuple[int, str, str], offset: int) -> tuple[int, Cursor | None]:
        """The remembered cursor closest before ``offset`` (the start, if none)."""
        with self._lock:
            exact = (*key, offset)
            if exact in self._cursors:
                self._cursors.move_to_end(exact)
                return offset, self._cursors[exact]
            best: tuple[int, Cursor | None] = (0, None)
            for (run, prefix, search, at), cursor in self._cursors.items():
                if (run, prefix, search) == key and best[0] < at <= offset:
                    best = (at, cursor)
            return best

    def _remember_cursor(self, key: tuple[int, str, str], offset: int, cursor: Cursor) -> None:
        with self._lock:
            self._cursors[(*key, offset)] = cursor
            self._cursors.move_to_end((*key, offset))
            while len(self._cursors) > CURSORS_KEPT:
                self._cursors.popitem(last=False)

    # -- inside a dataset ----------------------------------------------------------------------

    def _members(self, ref: DatasetRef, dataset_id: str, member: str, offset: int, limit: int) -> NodePage:
        shelf = self._shelf
        if ref.kind in HDF5_KINDS or member:
            found, more = shelf._members(ref, member, offset=offset, limit=limit)
            return NodePage(tuple(_member_node(dataset_id, m) for m in found), more, offset)
        # Variables and columns from the file's metadata, then the other
        # components shelf.components names (attrs, index, a dataclass's parts).
        listed = shelf._members(ref, limit=MAX_MEMBERS)[0] if ref.storage.in_files else []
        nodes = [_member_node(dataset_id, m) for m in listed]
        covered = {m.path for m in listed} | {m.component for m in listed if m.component}
        nodes += [
            Node(f"{dataset_id}#{c}", c, "component", "", False)
            for c in shelf.components(ref)
            if c not in covered
        ]
        return NodePage(tuple(nodes[offset : offset + limit]), len(nodes) > offset + limit, offset)


def run_node(entry: RunEntry, *, expand: bool = False) -> Node:
    started = _dt.datetime.fromtimestamp(entry.started).strftime("%Y-%m-%d %H:%M")
    meta = " · ".join(x for x in (entry.experiment, entry.status, started) if x)
    return Node(node_id(entry.number), f"run {entry.number}", "run", meta, True, expand)


def dataset_node(
    entry: DatasetEntry, *, shown: str | None = None, meta_prefix: str = "", records: Mapping[str, DisplayMeta] | None = None
) -> Node:
    """The node of a listed dataset; ``shown`` is its name in the listing (default: its label);
    ``records`` the shelf's display metadata (``shelf.metadata()``)."""
    # This runs for every row of a page: plain string work, no generators.
    label = entry.name if entry.data_id == "{}" else label_of(entry.name, entry.data_id)
    parts = [entry.kind]
    if entry.shape is not None:
        # The registry writes shapes as compact JSON lists of ints: "[512,512]".
        shape = "×".join([n.strip() for n in entry.shape.strip("[]").split(",") if n.strip()])
        if shape:
            parts.append(shape)
    if entry.dtype:
        parts.append(entry.dtype)
    parts.append(size_text(entry.nbytes))
    # Arrays show their files' structure; composites (xarray, pandas,
    # dataclasses, a plugin's kinds) name their parts.
    expandable = bool(entry.in_files) if entry.kind in _FILE_KINDS else True
    meta = _meta_of(records, entry) if records else None
    if meta is None:
        return Node(f"run/{entry.run}/{label}", label if shown is None else shown, entry.kind, meta_prefix + " · ".join(parts), expandable)
    return Node(
        f"run/{entry.run}/{label}", label if shown is None else shown, entry.kind, meta_prefix + " · ".join(parts), expandable,
        unit=meta.unit, title=meta.title, description=meta.description,
    )


def _meta_of(records: Mapping[str, DisplayMeta], entry: DatasetEntry) -> DisplayMeta | None:
    """What the records say of a listed dataset (its data ID's over its name's), None if nothing."""
    from ..metadata import for_label

    if entry.data_id == "{}":
        meta = records.get(entry.name)
    else:
        try:
            parsed = json.loads(entry.data_id)
        except ValueError:
            parsed = None
        meta = for_label(records, entry.name, parsed) if isinstance(parsed, dict) else records.get(entry.name)
    return None if meta is None or meta.empty else meta


def _entry_node(run: int, prefix: str, entry: DatasetEntry | GroupEntry, records: Mapping[str, DisplayMeta]) -> Node:
    if isinstance(entry, GroupEntry):
        name = prefix + entry.part
        return Node(node_id(run, group=name, shadowed=entry.shadowed), entry.part, "group", "group", True)
    if not prefix:
        return dataset_node(entry, records=records)
    label = entry.name if entry.data_id == "{}" else label_of(entry.name, entry.data_id)
    return dataset_node(entry, shown=label[len(prefix) :], records=records)


def label_of(name: str, data_id: str) -> str:
    """A dataset's label from its registry row's data ID text.

    Rows may have been written by someone else: a data ID that is not a
    JSON object gives ``name[?]``, a label no node id reads back.
    """
    if data_id == "{}":
        return name
    try:
        parsed = json.loads(data_id)
    except ValueError:
        parsed = None
    return dataset_label(name, parsed) if isinstance(parsed, dict) else f"{name}[?]"


def _member_node(dataset_id: str, member: Member) -> Node:
    node = f"{dataset_id}#{member.path}"
    if member.kind == "attr":
        return Node(node, member.name, "attr", "attr · " + short(member.value), False)
    if member.kind == "group":
        return Node(node, member.name, "group", f"group · {member.count} members", True)
    if member.kind == "link":
        return Node(node, member.name, "link", str(member.value), False)
    return Node(node, member.name, member.kind, meta_text(member.kind, member.shape, member.dtype, member.nbytes), member.expandable)
