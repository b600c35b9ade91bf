"""Previews: what a preview pane shows of a run, a group, a dataset or a member.

Everything is bounded, whatever the dataset's size: a large array shows the
statistics of its first :data:`BOUNDED_READ` values, a table its first
rows, an xarray value its repr (opened lazily, values not read), an image a
PNG shrunk on the Python side to the size asked for (read with a stride
when it is larger than :data:`PICTURE_PIXELS`).  An image asked for at
thumbnail size or less is the registry's thumbnail: no data file is opened.
Each preview carries ``code``, the exact Python that loads what is shown.

A dataset's display metadata (``shelf.describe``) shape its preview as
they shape every other view of a value (:meth:`DisplayMeta.format
<labshelf.registry.meta.DisplayMeta.format>`): they are listed among the
facts, a scalar shows scaled with its precision and unit (its stored value
beside it), an array's statistics carry the unit and its value listing is
scaled (a note says so), and ``display`` (the fields said) lets a front end
format a colour scale the same way.  Members inside data files show what
the files hold, unscaled.  A dataset nobody described previews as before.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._format import size_text
from ..errors import ComponentNotFound
from ..names import data_id_key
from . import code
from .records import Picture, Preview, Table

if TYPE_CHECKING:
    import numpy as np

    from ..datastore.members import Peek
    from ..registry.meta import DisplayMeta
    from ..registry.records import DatasetRef
    from ..shelf import Shelf

#: Arrays up to this many values show them all.
SMALL_ARRAY = 1000
#: A preview reads at most this many values of a larger array.
BOUNDED_READ = 1_000_000
#: An image is read whole for a picture up to this many pixels, else with a stride.
PICTURE_PIXELS = 2048 * 2048
#: Longest text a preview sends.
MAX_TEXT = 20_000
#: Side of the picture of a 2-D array when no size is asked for.
DEFAULT_PICTURE = 256
#: Longest side of the registry's image thumbnails (datastore/image.py).
THUMBNAIL_SIZE = 128
#: A component read whole for its preview (attrs, an index) must be stored in at most this many bytes.
COMPONENT_BYTES = 64 * 2**20
#: Kinds whose data files are HDF5 arrays: their members are the files' structure.
HDF5_KINDS = ("ndarray", "image")
#: Members (variables, columns) of one value listed at most: from file metadata, a page is cut from them.
MAX_MEMBERS = 100_000
#: Characters of a description a preview's facts show.
MAX_DESCRIPTION = 500


# -- runs, groups, the shelf ------------------------------------------------------------------------


def shelf_preview(shelf: Shelf) -> Preview:
    info = shelf.info()
    fields = (
        ("where", str(info["where"])),
        ("backend", str(info["backend"])),
        ("mode", str(info["mode"])),
        ("runs", f"{info['runs']:,}"),
        ("datasets", f"{info['datasets']:,}"),
    )
    return Preview("", str(shelf.where), "shelf", fields, code.open_code(shelf))


def run_preview(shelf: Shelf, node: str, run: int) -> Preview:
    record = shelf.run(run).record
    count = shelf._listing.count_datasets(run)
    fields = [
        ("experiment", record.experiment or "-"),
        ("status", record.status),
        ("started", _local(record.started)),
        ("ended", _local(record.ended) if record.ended is not None else "-"),
        ("datasets", f"{count:,}"),
        ("host", record.host),
        ("user", record.user),
        ("params", _cap(json.dumps(dict(record.params), sort_keys=True))),
    ]
    if record.error:
        fields.append(("error", _cap(record.error)))
    return Preview(node, f"run {run}", "run", tuple(fields), code.run_code(run))


def group_preview(shelf: Shelf, node: str, run: int, prefix: str) -> Preview:
    count, nbytes = shelf._listing.group_size(run, prefix)
    fields = (("datasets", f"{count:,}"), ("size", size_text(nbytes)))
    return Preview(node, f"run {run}: {prefix}", "group", fields, code.group_code(run, prefix))


# -- datasets ----------------------------------------------------------------------------------------


def described(shelf: Shelf, ref: DatasetRef) -> DisplayMeta | None:
    """The display metadata of a dataset, None when nothing is said."""
    meta = shelf.metadata(ref.name, data_id=dict(ref.data_id))
    return None if meta.empty else meta


def meta_fields(meta: DisplayMeta) -> list[tuple[str, str]]:
    """The metadata said, as preview facts (a long description capped)."""
    out = []
    for key, value in meta.fields().items():
        text = str(value)
        if key == "description" and len(text) > MAX_DESCRIPTION:
            text = text[: MAX_DESCRIPTION - 1] + "…"
        out.append(("display precision" if key == "precision" else key, text))
    return out


def dataset_preview(shelf: Shelf, node: str, ref: DatasetRef, size: int | None) -> Preview:
    """The facts of a dataset and a bounded look at its value (shown as its display metadata say)."""
    meta = described(shelf, ref)
    fields: list[tuple[str, str]] = [("kind", ref.kind)]
    if meta is not None:
        fields += meta_fields(meta)
    if ref.shape is not None:
        fields.append(("shape", shape_text(ref.shape) or "()"))
    if ref.dtype:
        fields.append(("dtype", ref.dtype))
    fields.append(("size", size_text(ref.nbytes)))
    fields.append(("version", str(ref.version)))
    fields.append(("updated", _local(ref.updated)))
    stored = "in the registry" if ref.storage.inline is not None else ", ".join(ref.storage.files[:5])
    if ref.storage.ingested is not None:
        stored = f"ingested from {ref.storage.ingested}"
    elif len(ref.storage.files) > 5:
        stored += f" and {len(ref.storage.files) - 5} more"
    fields.append(("stored", stored))
    out: dict[str, Any] = {}
    if ref.kind == "image":
        if isinstance(ref.summary, bytes) and size is None:
            out["picture"] = _png_picture(ref.summary)
        elif isinstance(ref.summary, bytes) and size is not None and size <= THUMBNAIL_SIZE:
            out["picture"] = _thumbnail_picture(ref.summary, ref.shape or (), size)
        elif ref.storage.in_files:
            out["picture"] = _image_picture(shelf, ref, size or THUMBNAIL_SIZE)
        mean = shelf._listing.summary_value(ref.id)
        if mean is not None:
            fields.append(("mean", _number(mean, meta)))
    elif ref.kind in ("pandas", "xarray") and ref.storage.in_files:
        peek = shelf._peek(ref, limit=BOUNDED_READ)
        if peek.kind == "table":
            out["table"] = table_head(peek.values)
            fields += [("rows", f"{peek.count:,}"), ("columns", str(len(peek.names)))]
        elif peek.text is not None:
            out["text"] = _cap(peek.text)
    elif ref.kind == "ndarray" and ref.storage.in_files:
        peek = shelf._peek(ref, limit=BOUNDED_READ)
        _values_preview(out, fields, peek.values, peek.total or 0, size, peek.note, meta)
    elif ref.kind in ("scalar", "ndarray"):
        value = shelf.read(ref)
        _value_preview(out, fields, value, size, meta)
    elif isinstance(ref.summary, (str, int, float)):
        fields.append(("summary", _cap(str(ref.summary))))
    if ref.kind not in ("scalar", "ndarray", "image"):
        fields.append(("components", ", ".join(shelf.components(ref)) or "-"))
    if meta is not None:
        out["display"] = meta.fields()
    return Preview(node, f"{ref.label} (run {ref.run})", ref.kind, tuple(fields), code.get_code(ref.name, ref.run, ref.data_id), **out)


def member_preview(shelf: Shelf, node: str, ref: DatasetRef, member: str, size: int | None) -> Preview:
    """A member of a dataset: an HDF5 object of its files, a variable or column, or a component."""
    if ref.kind in HDF5_KINDS and ref.storage.in_files:
        return _hdf5_preview(shelf, node, ref, shelf._peek(ref, member, limit=BOUNDED_READ), member, size)
    names = shelf.components(ref)
    listed, _more = shelf._members(ref, limit=MAX_MEMBERS) if ref.storage.in_files else ([], False)
    if any(m.path == member for m in listed):
        # Read from the file, a bounded part; the code names the component.
        peek = shelf._peek(ref, member, limit=BOUNDED_READ)
        return _file_member_preview(node, ref, member, peek, size)
    component = member if member in names else None
    if component is None:
        known = sorted({m.path for m in listed} | set(names))
        raise ComponentNotFound(f"{ref.label!r} of run {ref.run} has no component {member!r}; it has {known}")
    get = code.get_code(f"{ref.name}.{component}", ref.run, ref.data_id)
    title = f"{ref.label}.{component} (run {ref.run})"
    part = shelf._listing.dataset(ref.run, f"{ref.name}.{component}", data_id_key(dict(ref.data_id))) if ref.kind == "composite" else None
    if part is not None:
        # A composite's parts are datasets of their own: previewed like one, as boundedly.
        shown = dataset_preview(shelf, node, part, size)
        return Preview(node, title, "component", shown.fields, get, shown.text, shown.note, shown.table, shown.picture,
                       shown.display)
    fields: list[tuple[str, str]] = []
    out: dict[str, Any] = {}
    if ref.nbytes > COMPONENT_BYTES:
        out["note"] = f"the value is {size_text(ref.nbytes)}: its component {component!r} is not read for a preview"
    else:
        _value_preview(out, fields, shelf.read(ref, component=component), size)
    return Preview(node, title, "component", tuple(fields), get, **out)


def member_code(shelf: Shelf, ref: DatasetRef, member: str) -> str:
    """The code that loads a member of a dataset (file headers looked at, no values read)."""
    if ref.kind in HDF5_KINDS and ref.storage.in_files:
        return _hdf5_code(ref, shelf._peek(ref, member, limit=0))
    listed = shelf._members(ref, limit=MAX_MEMBERS)[0] if ref.storage.in_files else []
    for found in listed:
        if found.path == member:
            return code.get_code(f"{ref.name}.{found.component}" if found.component else ref.name, ref.run, ref.data_id)
    names = shelf.components(ref)
    if member not in names:
        known = sorted({m.path for m in listed} | set(names))
        raise ComponentNotFound(f"{ref.label!r} of run {ref.run} has no component {member!r}; it has {known}")
    return code.get_code(f"{ref.name}.{member}", ref.run, ref.data_id)


def _hdf5_code(ref: DatasetRef, peek: Peek) -> str:
    relative = ref.storage.file_label(peek.file or 0)
    if peek.kind == "file":
        return code.hdf5_code(relative, "/", listing=True)
    path = peek.path or "/"
    if peek.kind == "attr":
        return code.hdf5_code(relative, path, peek.attr)
    return code.hdf5_code(relative, path, listing=peek.kind == "group")


def _file_member_preview(node: str, ref: DatasetRef, member: str, peek: Peek, size: int | None) -> Preview:
    fields: list[tuple[str, str]] = []
    if peek.dims:
        fields.append(("dims", ", ".join(f"{d}: {n}" for d, n in peek.dims)))
    elif peek.kind == "column":
        fields.append(("rows", f"{peek.total or 0:,}"))
    if peek.dtype:
        fields.append(("dtype", peek.dtype))
    if peek.nbytes is not None:
        fields.append(("size", size_text(peek.nbytes)))
    out: dict[str, Any] = {}
    _values_preview(out, fields, peek.values, peek.total or 0, size, peek.note)
    shown = "(values)" if member == "__xarray_dataarray_variable__" else member
    get = code.get_code(f"{ref.name}.{peek.component}" if peek.component else ref.name, ref.run, ref.data_id)
    return Preview(node, f"{ref.label}#{shown} (run {ref.run})", peek.kind, tuple(fields), get, **out)


def _hdf5_preview(shelf: Shelf, node: str, ref: DatasetRef, peek: Peek, member: str, size: int | None) -> Preview:
    relative = ref.storage.file_label(peek.file or 0)
    title = f"{ref.label}#{member} (run {ref.run})"
    get = _hdf5_code(ref, peek)
    fields: tuple[tuple[str, str], ...]
    if peek.kind == "file":
        fields = (("file", relative), ("size", size_text(peek.nbytes or 0)), ("members", _cap(", ".join(peek.names))))
        return Preview(node, title, "file", fields, get)
    path = peek.path or "/"
    if peek.kind == "attr":
        return Preview(node, title, "attr", (("attribute of", path),), get, text=_text(peek.values))
    if peek.kind == "group":
        fields = (("file", relative), ("path", path), ("members", str(peek.count)), ("attributes", str(peek.attributes)))
        return Preview(node, title, "group", fields, get, text="\n".join(peek.names) or "(empty)")
    described = [("file", relative), ("path", path), ("shape", shape_text(peek.shape) or "()"), ("dtype", str(peek.dtype)),
                 ("size", size_text(peek.nbytes or 0))]
    if peek.chunks:
        described.append(("chunks", shape_text(peek.chunks)))
    if peek.compression:
        described.append(("compression", peek.compression))
    out: dict[str, Any] = {}
    _values_preview(out, described, peek.values, peek.total or 0, size, peek.note)
    return Preview(node, title, "dataset", tuple(described), get, **out)


# -- values --------------------------------------------------------------------------------------------


def _values_preview(
    out: dict[str, Any], fields: list[tuple[str, str]], values: np.ndarray | None, total: int, size: int | None,
    note: str | None = None, meta: DisplayMeta | None = None,
) -> None:
    """Values of a small array, or statistics of a bounded read; a picture of a 2-D one.

    With display metadata the statistics are formatted by them (unit
    included) and the listed values are scaled, which the note says.
    """
    import numpy as np

    from .pictures import value_range

    if values is None:
        if note:
            out["note"] = note
        return
    complete = values.size == total
    notes = []
    if complete and total <= SMALL_ARRAY:
        scaled = meta is not None and meta.scale not in (None, 1) and values.dtype.kind in "iufc"
        out["text"] = _text(meta.shown(values) if scaled and meta is not None else values,
                            None if meta is None else meta.precision)
        if scaled and meta is not None:
            unit = f", in {meta.unit}" if meta.unit else ""
            notes.append(f"values shown divided by the scale {meta.scale:g}{unit} (stored as written)")
    if values.dtype.kind in "biuf" and values.size:
        lo, hi = value_range(values)
        finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        fields.append(("min", _number(lo, meta)))
        fields.append(("max", _number(hi, meta)))
        fields.append(("mean", _number(float(np.mean(finite, dtype=np.float64)) if finite.size else None, meta)))
        if not complete:
            notes.insert(0, f"min, max and mean of the first {values.size:,} of {total:,} values")
        if complete and values.ndim == 2 and min(values.shape) >= 2 and total > SMALL_ARRAY:
            out["picture"] = _array_picture(values, size or DEFAULT_PICTURE)
    if notes:
        out["note"] = "; ".join(notes)


def _value_preview(
    out: dict[str, Any], fields: list[tuple[str, str]], value: Any, size: int | None, meta: DisplayMeta | None = None
) -> None:
    """A preview of a value already read (small: inline, or a component)."""
    import numbers

    import numpy as np

    kind = type(value).__name__
    if kind in ("DataArray", "Dataset", "DataFrame", "Series", "Index"):
        out["text"] = _text(value)
        if hasattr(value, "shape"):
            fields.append(("shape", shape_text(value.shape) or "()"))
        return
    if isinstance(value, np.ndarray):
        fields += [("shape", shape_text(value.shape) or "()"), ("dtype", str(value.dtype))]
        _values_preview(out, fields, value, value.size, size, meta=meta)
        return
    if meta is not None and isinstance(value, numbers.Number) and not isinstance(value, bool):
        out["text"] = meta.format(value, unit=True)
        if meta.scale is not None or meta.precision is not None:
            fields.append(("stored value", _text(value)))
        return
    out["text"] = _text(value)


def table_head(frame: Any) -> Table:
    """Column names, dtypes and short texts of the rows of a (small) DataFrame, its index first."""
    index_name = ", ".join(str(n) for n in frame.index.names if n is not None) or ""
    rows = tuple(
        (_cell(i), *(_cell(v) for v in row)) for i, row in zip(frame.index, frame.itertuples(index=False), strict=True)
    )
    return Table(
        (index_name, *(str(c) for c in frame.columns)), (str(frame.index.dtype), *(str(t) for t in frame.dtypes)), rows
    )


# -- pictures ------------------------------------------------------------------------------------------


def _png_picture(png: bytes) -> Picture:
    """A stored PNG as it is; its size read from its header (bytes 16-24 of the IHDR chunk)."""
    width = int.from_bytes(png[16:20], "big") if len(png) >= 24 else 0
    height = int.from_bytes(png[20:24], "big") if len(png) >= 24 else 0
    return Picture(png, width, height)


def _thumbnail_picture(png: bytes, shape: Sequence[int], size: int) -> Picture:
    """The registry's thumbnail of an image shrunk to ``size`` (no data file opened).

    Shrunk by a whole factor (block means, as pictures made from data are),
    and grey ones drawn with the colour map, so that a picture looks the
    same whether it came from the thumbnail or from the data file.
    """
    import io

    from PIL import Image

    from .pictures import colormap_table

    with Image.open(io.BytesIO(png)) as thumbnail:
        picture = thumbnail.copy()
    factor = math.ceil(max(picture.size) / size)
    if factor > 1:
        picture = picture.reduce(factor)
    if picture.mode == "L":
        picture = picture.convert("P")
        picture.putpalette(colormap_table().ravel().tolist())
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=1)
    whole = math.ceil(max(shape[:2]) / max(picture.size)) if len(shape) >= 2 else factor
    return Picture(buffer.getvalue(), picture.size[0], picture.size[1], tuple(int(n) for n in shape), whole)


def _array_picture(values: np.ndarray, size: int) -> Picture:
    from .pictures import picture_png

    png, info = picture_png(values, size)
    return Picture(png, info["width"], info["height"], tuple(info["shape"]), info["factor"], info.get("vmin"), info.get("vmax"))


def _image_picture(shelf: Shelf, ref: DatasetRef, size: int) -> Picture:
    """An image dataset shrunk to ``size``, reading at most about :data:`PICTURE_PIXELS` pixels."""
    import dataclasses

    import numpy as np

    shape = tuple(int(n) for n in ref.shape or ())
    pixels = shape[0] * shape[1] if len(shape) >= 2 else 0
    # A larger image is read with a stride (every step-th row and column),
    # so a preview never reads a huge image whole.
    step = max(1, math.ceil(math.sqrt(pixels / PICTURE_PIXELS))) if pixels else 1
    parameters = {"slice": (slice(None, None, step), slice(None, None, step))} if step > 1 else None
    picture = _array_picture(np.asarray(shelf.read(ref, parameters=parameters)), size)
    if step == 1:
        return picture
    return dataclasses.replace(picture, shape=shape, factor=picture.factor * step)


# -- text ----------------------------------------------------------------------------------------------


def shape_text(shape: Sequence[int] | None) -> str:
    """``512×512`` (empty for no shape)."""
    return "" if shape is None else "×".join(str(n) for n in shape)


def meta_text(kind: str, shape: Sequence[int] | None, dtype: str | None, nbytes: int | None) -> str:
    """One line about a value: ``ndarray · 512×512 · float64 · 2 MiB``."""
    parts = [kind, shape_text(shape), dtype or "", size_text(nbytes) if nbytes is not None else ""]
    return " · ".join(p for p in parts if p)


def short(value: Any, limit: int = 40) -> str:
    text = _text(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(value: Any, precision: int | None = None) -> str:
    """The repr of a value, capped; arrays with ``precision`` digits after the point when given."""
    import numpy as np

    options: dict[str, Any] = {"threshold": SMALL_ARRAY + 1, "linewidth": 75}
    if precision is not None:
        options.update(precision=precision, floatmode="fixed")
    with np.printoptions(**options):
        text = repr(value)
    return _cap(text)


def _cap(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _number(value: float | None, meta: DisplayMeta | None = None) -> str:
    if value is None:
        return "-"
    if meta is not None:
        return meta.format(value, unit=True)
    return f"{value:.6g}"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _local(seconds: float) -> str:
    return _dt.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")
