"""What every importer shares: the report, provenance, the idempotence ledger, runs with
their recorded times, dataset names made legal, and the progress bar.

How an import stays idempotent and survives a kill -9
------------------------------------------------------
Each imported run records in its params where it came from: ``source`` (the
source file's absolute path), ``source_sha256`` (a checksum of its bytes)
and ``import_id`` (what makes two sources the same source for the importer,
e.g. ``artiq:<sha256>``).  A run is created ``running``, gets its datasets,
and is ended with the source's status and end time only after its last
dataset: so a run that carries an ``import_id`` and is still ``running`` is
an import that was interrupted.  The next import finds it in the
:class:`Ledger`, removes the datasets it would not write, writes those
still missing and ends the run; an ended one is imported already and is left
alone.  Each dataset put is itself crash-safe (see ``writer.py``), so what a
killed import left behind is always whole.

Run numbers and start/end times come from the source, which the public API
does not take (``Shelf.new_run`` starts a run now); the importers use
``Registry.create_run(started=)`` and ``Registry.finish_run(ended=)``,
internal arguments nothing else passes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .._format import size_text
from ..errors import ImportConflict, InvalidValue, ShelfError
from ..names import MAX_NAME_LENGTH, MAX_RUN, check_name, check_text
from ..registry.records import MAX_SECONDS

if TYPE_CHECKING:
    import h5py
    import numpy as np

    from ..registry.records import RunRecord
    from ..run import Run
    from ..shelf import Shelf

T = TypeVar("T")

#: Params keys of every imported run (provenance and bookkeeping).
SOURCE = "source"
SOURCE_SHA256 = "source_sha256"
IMPORT_ID = "import_id"
#: Params key mapping the dataset names an import had to change to the source's names.
RENAMED = "source_names"

#: Clashes listed in an ImportConflict message (the rest are counted).
MAX_CLASHES_SHOWN = 20


# -- the report -------------------------------------------------------------------------


@dataclass(frozen=True)
class Skipped:
    """Something an import left out (or a warning about it): which file, which dataset, why."""

    source: str
    reason: str
    dataset: str | None = None

    def __str__(self) -> str:
        where = f"{self.source} [{self.dataset}]" if self.dataset else self.source
        return f"{where}: {self.reason}"


@dataclass
class ImportReport:
    """What an import did (or, with ``dry_run``, would do).

    Attributes
    ----------
    source
        The folder or file imported.
    runs
        Numbers of the runs imported this time, in order (with ``dry_run``:
        the numbers they would get).
    completed
        Of those, runs an interrupted import had begun and this one finished.
    updated
        Runs imported before whose source changed since: what changed was
        written again (new dataset versions), nothing else.
    datasets, bytes
        Datasets written (would be written) and their size in memory.
    already
        Sources found imported already, left as they are.
    skipped
        Files and datasets left out, each with the reason.
    warnings
        What was imported but not as the source had it (a value kept as
        text, a name changed, metadata dropped).
    """

    source: str
    dry_run: bool = False
    runs: list[int] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    datasets: int = 0
    bytes: int = 0
    already: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[Skipped] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether nothing was skipped."""
        return not self.skipped

    def summary(self) -> str:
        """One line: runs, datasets, bytes, already there, skipped."""
        verb = "would import" if self.dry_run else "imported"
        span = ""
        if self.runs:
            span = f" ({self.runs[0]}..{self.runs[-1]})" if len(self.runs) > 1 else f" ({self.runs[0]})"
        completed = f", {len(self.completed)} of them interrupted before" if self.completed else ""
        if self.updated:
            completed += f", {len(self.updated)} runs changed at the source {'would be ' if self.dry_run else ''}updated"
        return (
            f"{verb} {len(self.runs)} runs{span}{completed}, {self.datasets} datasets, {size_text(self.bytes)}; "
            f"{self.already} imported already; {len(self.skipped)} skipped; {len(self.warnings)} warnings"
        )

    def lines(self, shown: int = 20) -> list[str]:
        """The summary, then the skipped items and warnings (at most ``shown`` of each)."""
        out = [self.summary()]
        for title, items in (("skipped", self.skipped), ("warning", self.warnings)):
            out += [f"  {title}: {item}" for item in items[:shown]]
            if len(items) > shown:
                out.append(f"  ... and {len(items) - shown} more {title} (see the report's .{title}s)")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __repr__(self) -> str:
        return f"<ImportReport {self.summary()}>"


# -- provenance -------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def provenance(path: Path, sha256: str, import_id: str) -> dict[str, str]:
    """The params every imported run carries: where it came from and how the ledger knows it."""
    return {SOURCE: str(path.resolve()), SOURCE_SHA256: sha256, IMPORT_ID: import_id}


# -- the ledger: what is imported already ---------------------------------------------------


class Ledger:
    """The runs of a shelf by ``import_id``, and the run numbers taken: read once per import."""

    def __init__(self, shelf: Shelf):
        records = shelf._registry.runs()
        self.numbers: dict[int, RunRecord] = {r.number: r for r in records}
        self.by_id: dict[str, RunRecord] = {}
        for record in records:
            import_id = record.params.get(IMPORT_ID) if isinstance(record.params, Mapping) else None
            if isinstance(import_id, str):
                self.by_id.setdefault(import_id, record)

    def find(self, import_id: str) -> RunRecord | None:
        return self.by_id.get(import_id)

    def next_numbers(self, count: int) -> list[int]:
        """The numbers ``count`` new runs would get, one after the other (``Shelf.new_run``'s rule)."""
        top = max(self.numbers, default=0)
        return list(range(top + 1, top + 1 + count))


def interrupted(record: RunRecord) -> bool:
    """Whether an imported run is an import that did not finish (rather than one going on now)."""
    return record.status == "running" and not _alive_here(record)


def _alive_here(record: RunRecord) -> bool:
    """Whether the process that made the run still runs on this machine (another import at work)."""
    if record.host != socket.gethostname() or record.pid == os.getpid() or record.pid <= 0:
        return False
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


class Planned(Protocol):
    """What :func:`sort_out` and :func:`source_numbers` need of an importer's plan of one source."""

    path: Path
    existing: RunRecord | None

    @property
    def import_id(self) -> str: ...


P = TypeVar("P", bound=Planned)


def sort_out(plans: list[P], ledger: Ledger, report: ImportReport) -> tuple[list[P], list[P]]:
    """The plans to import anew, and those an interrupted import began; count what is imported already."""
    new: list[P] = []
    resume: list[P] = []
    seen: dict[str, Path] = {}
    for plan in plans:
        if plan.import_id in seen:
            report.skipped.append(Skipped(str(plan.path), f"the same bytes as {seen[plan.import_id]}, imported once"))
            continue
        seen[plan.import_id] = plan.path
        record = ledger.find(plan.import_id)
        if record is None:
            new.append(plan)
        elif record.status != "running":
            report.already += 1
        elif interrupted(record):
            plan.existing = record
            resume.append(plan)
        else:
            report.skipped.append(
                Skipped(str(plan.path), f"run {record.number} is being imported by process {record.pid} right now")
            )
    return new, resume


def source_numbers(
    new: list[P], ledger: Ledger, renumber: bool, *, number_of: Callable[[P], int], what: str, advice: str
) -> list[int]:
    """The run number of each new plan: the source's own (``number_of``, called ``what`` in
    messages), or with ``renumber`` the next free ones.  A source number that is not a run
    number, is a run of the shelf already or is in two sources is an ImportConflict listing
    them all (then ``advice``), raised before anything is written."""
    if renumber:
        return ledger.next_numbers(len(new))
    clashes: list[str] = []
    by_number: dict[int, list[P]] = {}
    for plan in new:
        by_number.setdefault(number_of(plan), []).append(plan)
    for number, same in by_number.items():
        files = ", ".join(str(p.path) for p in same)
        if not 1 <= number <= MAX_RUN:
            clashes.append(f"{what} {number} ({files}) is not a run number (1 to {MAX_RUN})")
        elif number in ledger.numbers:
            record = ledger.numbers[number]
            origin = record.params.get(SOURCE) if isinstance(record.params, Mapping) else None
            came = f"imported from {origin}" if origin else "not from this file"
            clashes.append(f"{what} {number} ({files}) is run {number} of the shelf already ({record.experiment!r}, {came})")
        elif len(same) > 1:
            clashes.append(f"{what} {number} is in {len(same)} different files ({files})")
    if clashes:
        raise conflict(clashes, advice)
    return [number_of(plan) for plan in new]


def conflict(clashes: list[str], advice: str) -> ImportConflict:
    """The error listing run numbers taken by runs from elsewhere (raised before anything is written)."""
    shown = "; ".join(clashes[:MAX_CLASHES_SHOWN])
    more = f"; and {len(clashes) - MAX_CLASHES_SHOWN} more" if len(clashes) > MAX_CLASHES_SHOWN else ""
    return ImportConflict(f"{len(clashes)} source run number(s) cannot be used: {shown}{more}. {advice}")


# -- runs with the source's numbers and times -------------------------------------------------


def check_time(seconds: Any, what: str) -> float:
    """A source's time as float seconds since the epoch, or InvalidValue."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) and not hasattr(seconds, "__float__"):
        raise InvalidValue(f"{what} is not a time in seconds: {seconds!r}")
    value = float(seconds)
    if not math.isfinite(value) or not 0 <= value < MAX_SECONDS:
        raise InvalidValue(f"{what} {value!r} is not a time labshelf can keep (seconds since 1970, before 2262)")
    return value


def start_run(
    shelf: Shelf, *, number: int | None, experiment: str, params: Mapping[str, Any], started: float
) -> Run:
    """A new running run with the source's number (None: the next free one) and start time."""
    from ..run import Run
    from ..shelf import _user

    shelf._check_writable()
    if len(experiment) > 255:
        experiment = experiment[:255]
    check_text(experiment, "experiment")
    record = shelf._registry.create_run(
        number=number, experiment=experiment, params=dict(params), host=socket.gethostname(), user=_user(),
        pid=os.getpid(), started=started,
    )
    return Run(shelf, record)


def end_run(run: Run, ended: float, status: str = "finished", error: str | None = None) -> None:
    """End an imported run with the source's end time: from now on it counts as imported."""
    run._shelf._check_writable()
    run._record = run._shelf._registry.finish_run(run.number, status, error, ended=ended)


def reopen(shelf: Shelf, record: RunRecord, planned: Iterable[str]) -> tuple[Run, set[str]]:
    """An interrupted import's run, ready to be finished: datasets it would not write removed.

    ``planned`` are labels (``name``, or ``name[channel=2]`` for a data
    ID).  Returns the run and the labels of the datasets it holds already
    (each whole: a put is all or nothing), which need not be written again.
    """
    from ..run import Run

    run = Run(shelf, record)
    wanted = set(planned)
    present: set[str] = set()
    for ref in shelf.datasets(record.number):
        if ref.label in wanted and ref.damage is None:
            present.add(ref.label)
        elif "." not in ref.name:  # a composite's parts go with it
            run.delete(ref.name, data_id=dict(ref.data_id))
    return run, present


# -- values -------------------------------------------------------------------------------------


def json_safe(value: Any, depth: int = 0) -> Any:
    """A value as run params can hold it (JSON): tuples and sets become lists, numpy values
    Python ones, and what has no JSON form (complex, bytes, Fraction, slice) its Python text."""
    if depth > 50:
        return repr(value)
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else repr(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        return [json_safe(v, depth + 1) for v in sorted(value, key=repr)]
    import numpy as np

    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf" and value.size <= 100_000:
            return json_safe(value.tolist(), depth + 1)
        return repr(value)
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return json_safe(value.item(), depth + 1)
    return repr(value)


def storable_text(raw: bytes | str) -> str:
    """Text every registry stores: invalid UTF-8 and NUL replaced (for messages and params)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = text.replace("\x00", "\u2400")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


# -- dataset names ------------------------------------------------------------------------------

#: What one part of a labshelf dataset name may hold after its first character (names.py).
_PART_CHARS = re.compile(r"[\w\-+=@,#()]")


def legal_part(part: str) -> str:
    """One part of a source name made a legal labshelf name part, reversibly.

    Characters labshelf does not allow in a part (and ``%`` itself) become
    ``%XX``, the hex of their UTF-8 bytes, as in URLs; a part that would
    not start with a letter, digit or ``_`` gets a ``_`` in front; an empty
    part becomes ``_``.  ``urllib.parse.unquote`` gives the source's part
    back, but for such an added ``_`` (a source part may begin with ``_``
    too): so the importers also keep the exact source name of every
    changed one per run (params ``source_names``).
    """
    out = []
    for char in part:
        if char != "%" and _PART_CHARS.fullmatch(char):
            out.append(char)
        else:
            out.append("".join(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass")))
    text = "".join(out)
    if not text or not re.match(r"\w", text[0]):
        text = "_" + text
    return text


def legal_name(parts: Iterable[str]) -> str:
    """A labshelf dataset name from the parts of a source name (see :func:`legal_part`).

    Raises ShelfError (with the reason) if even the mapped name is not
    allowed (too long).
    """
    name = "/".join(legal_part(p) for p in parts)
    if len(name) > MAX_NAME_LENGTH:
        raise ShelfError(f"the name is {len(name)} characters long once made legal; labshelf allows {MAX_NAME_LENGTH}")
    return check_name(name)


# -- display metadata --------------------------------------------------------------------------


def display_meta(attrs: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``unit``/``scale``/``precision`` of a source dataset as put arguments, and what was dropped why.

    Each field is checked alone (by the registry's own rules), so one bad
    field does not lose the others.
    """
    from ..registry.meta import put_fields

    fields: dict[str, Any] = {}
    problems: list[str] = []
    for key in ("unit", "scale", "precision"):
        if key not in attrs:
            continue
        value = attrs[key]
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            value = value.item()
        if value is None or value == "":
            continue
        try:
            one = {"unit": None, "scale": None, "precision": None, key: value}
            put_fields(one["unit"], one["scale"], one["precision"], None, None)
        except (ShelfError, TypeError, ValueError) as exc:
            problems.append(f"{key} attribute {value!r} dropped: {exc}")
            continue
        fields[key] = value
    return fields, problems


# -- HDF5 values, read as labshelf keeps them ---------------------------------------------------

#: Arrays larger than this keep the source's compression (smaller ones are kept inline, uncompressed).
COMPRESS_ABOVE = 16 * 1024
#: The largest PNG decoded (pixels): sources keep icons and thumbnails; a huge one is not decoded at all.
MAX_THUMBNAIL_PIXELS = 4096 * 4096


class SkipDataset(Exception):
    """A dataset left out, with the reason (the message)."""


def why(exc: BaseException) -> str:
    """An exception's message on one line, at most 300 characters (for a report)."""
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:300]


def refers_outside(node: h5py.Dataset) -> bool:
    """Whether a dataset's values lie in other files (virtual, or external raw storage): never read."""
    import h5py

    plist = node.id.get_create_plist()
    return bool(plist.get_layout() == h5py.h5d.VIRTUAL or plist.get_external_count())


def group_refers_outside(group: h5py.Group) -> str | None:
    """The first member of ``group`` (walked whole) that is a link or lies in other files, or None."""
    import h5py

    stack = [group]
    while stack:
        here = stack.pop()
        for key in here:
            link = here.get(key, getlink=True)
            if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
                return f"{here.name}/{key}"
            node = here.get(key)
            if isinstance(node, h5py.Group):
                stack.append(node)
            elif isinstance(node, h5py.Dataset) and refers_outside(node):
                return node.name
    return None


def hdf5_nbytes(node: h5py.Dataset) -> int:
    """A dataset's size in memory (a variable-length string counts its pointer)."""
    import numpy as np

    if node.shape is None:
        return 0
    return int(np.prod(node.shape, dtype=np.int64)) * int(node.dtype.itemsize)


def hdf5_value(node: h5py.Dataset) -> tuple[Any, dict[str, Any] | None]:
    """The value of a source's HDF5 dataset as labshelf keeps it exactly, and the storage options to keep."""
    import h5py
    import numpy as np

    if node.shape is None:
        raise SkipDataset("an empty HDF5 dataset (no value to keep)")
    dtype = node.dtype
    if h5py.check_string_dtype(dtype) is not None:
        raw = node[()]
        if node.ndim == 0:
            return decoded_text(raw), None
        texts = [decoded_text(x) for x in np.asarray(raw, dtype=object).ravel()]
        if all(isinstance(t, str) for t in texts):
            return np.array(texts, dtype=str).reshape(node.shape) if texts else np.empty(node.shape, dtype="U1"), None
        return np.array([t if isinstance(t, bytes) else t.encode() for t in texts], dtype=bytes).reshape(node.shape), None
    if dtype.names is not None:
        raise SkipDataset("a compound (table) HDF5 dataset: labshelf has no exact kind for it yet")
    if dtype.kind == "V":
        if node.ndim == 0:
            return bytes(node[()].tobytes()), None
        raise SkipDataset("an array of opaque HDF5 values: labshelf has no exact kind for it")
    if dtype.kind == "O":
        raise SkipDataset("variable-length or reference HDF5 values: labshelf has no exact kind for them")
    value = node[()]
    options = None
    if node.ndim and node.compression in ("gzip", "lzf") and value.nbytes > COMPRESS_ABOVE:
        options = {"compression": node.compression}
        if node.compression == "gzip" and node.compression_opts is not None:
            options["compression_opts"] = int(node.compression_opts)
        if node.shuffle:
            options["shuffle"] = True
    return value, options


def decoded_text(raw: Any) -> str | bytes:
    """HDF5 text as str (bytes that are not UTF-8 stay bytes)."""
    if isinstance(raw, bytes):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
    return str(raw)



def value_bytes(value: Any) -> int:
    """A value's size in memory, as reports count it."""
    import numpy as np

    if isinstance(value, np.ndarray | np.generic):
        return int(value.nbytes)
    if isinstance(value, (str, bytes)):
        return len(value)
    return 8


def png_pixels(data: bytes) -> np.ndarray:
    """The pixels of a PNG: grey (2-D), RGB or RGBA (HxWx3/4), 8 or 16 bits; the PNG itself is lossless."""
    import io

    import numpy as np
    from PIL import Image

    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("it does not start with the PNG signature")
    with Image.open(io.BytesIO(data), formats=["PNG"]) as picture:
        width, height = picture.size
        if width * height > MAX_THUMBNAIL_PIXELS:
            raise ValueError(f"{width}x{height} pixels is more than a thumbnail needs")
        if picture.mode in ("L", "RGB", "RGBA", "I;16", "I"):
            pixels = np.asarray(picture)
        elif picture.mode in ("LA", "PA") or "transparency" in picture.info:
            pixels = np.asarray(picture.convert("RGBA"))
        else:
            pixels = np.asarray(picture.convert("RGB"))
    return np.ascontiguousarray(pixels)


# -- progress ------------------------------------------------------------------------------------


def progress(items: list[T], desc: str, enabled: bool) -> Iterator[T]:
    """``items``, with a tqdm bar (a widget in Jupyter) when ``enabled``."""
    if not enabled:
        yield from items
        return
    from tqdm.auto import tqdm

    with tqdm(total=len(items), desc=desc, unit="file", leave=False) as bar:
        for item in items:
            yield item
            bar.update(1)


def dumps_check(params: Mapping[str, Any]) -> None:
    """Refuse params a registry could not store (the importer builds them; this is a safety net)."""
    json.dumps(params, ensure_ascii=False).encode("utf-8")
