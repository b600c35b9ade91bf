"""What the dataset tree shows of one dataset: its members, and previews.

Members are what is inside a dataset: the HDF5 structure of an array's or
an image's data file(s) (groups, datasets, attributes), the variables and
coordinates of an xarray value, the columns of a pandas frame.  They are
read from the files' own metadata (h5py, the Parquet footer), never by
loading the value.  A preview reads a bounded part: a large array gives the
statistics of its first :data:`BOUNDED_READ` values, a table its first rows.

Every preview comes with ``code``: the exact Python that loads what is
shown, written for a notebook where the shelf is ``shelf``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..datastore import checksum
from ..datastore.formatter import RefersOutside
from ..datastore.hdf5 import DTYPE_ATTR, decode, open_file
from ..datastore.hdf5 import member as hdf5_member
from ..datastore.parquet import READ_CHECKSUMS
from ..errors import DatasetNotFound
from ..registry.records import DatasetRef
from ..registry.registry import ref_from_row

#: Arrays up to this many values show them all.
SMALL_ARRAY = 1000
#: A preview reads at most this many values of a larger array.
BOUNDED_READ = 1_000_000
#: Rows of a table a preview shows.
TABLE_ROWS = 5
#: Longest text a preview sends.
MAX_TEXT = 20_000

# What h5netcdf writes for its own bookkeeping: object references and ids
# that mean nothing to a reader of the data.
_NETCDF_INTERNAL = {"DIMENSION_LIST", "REFERENCE_LIST", "_Netcdf4Dimid", "_Netcdf4Coordinates", "_NCProperties"}
#: Attributes not listed: h5netcdf's bookkeeping, and labshelf's checksums.
_HIDDEN_ATTRS = _NETCDF_INTERNAL | {checksum.ATTR}
_BARE_DIMENSION = "This is a netCDF dimension but not a netCDF variable"
_UNNAMED_ARRAY = "__xarray_dataarray_variable__"
_SERIES_COLUMN = "__series__"
_COMPOSITES = ("xarray", "pandas")


class Members:
    """Members and previews of the datasets of one shelf."""

    def __init__(self, shelf: Any):
        self._shelf = shelf

    # -- what a dataset holds -------------------------------------------------------------

    def expandable(self, kind: str, dtype: str | None, in_files: bool) -> bool:
        """Whether a dataset node has members to list (from its registry row alone)."""
        if kind in ("scalar", "ndarray", "image"):
            return in_files
        # Composites (xarray, pandas, dataclasses, a plugin's kinds) name their parts.
        return True

    def children(
        self, row: Any, dataset_id: str, member: str, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of the members under ``member`` ("" for the dataset itself)."""
        ref = ref_from_row(row)
        if ref.kind in ("ndarray", "image"):
            if not ref.storage.files:
                return [], False
            return self._h5_children(ref, dataset_id, member, offset, limit)
        nodes = self._components(ref, dataset_id) if member == "" else []
        return nodes[offset : offset + limit], len(nodes) > offset + limit

    def _components(self, ref: DatasetRef, dataset_id: str) -> list[dict[str, Any]]:
        """Variables and coordinates of xarray values, columns of tables, and other components.

        Variables and columns are listed from the file's own metadata (shape,
        dtype, size); the other components ``shelf.components`` names
        (``attrs``, ``index``, the parts of a dataclass) follow.
        """
        members = self._file_members(ref)
        nodes = [_node(f"{dataset_id}#{key}", name, kind, meta, False) for key, name, kind, meta in members]
        listed = {key for key, *_ in members}
        names = self._shelf.components(ref)
        nodes += [_node(f"{dataset_id}#{c}", c, "component", "", False) for c in names if _member_of(c) not in listed]
        return nodes

    def _file_members(self, ref: DatasetRef) -> list[tuple[str, str, str, str]]:
        """(key, shown name, kind, meta) of the variables or columns in a composite's data file."""
        if not ref.storage.files:
            return []
        path = self._path(ref)
        if ref.kind == "xarray":
            return [
                (key, _display_name(key), what, _meta(what, shape, dtype, nbytes))
                for key, what, shape, dtype, nbytes in _netcdf_variables(path, ref.name)
            ]
        if ref.kind == "pandas":
            return [
                (name, name, "column", _meta("column", (rows,), dtype, nbytes))
                for name, dtype, rows, nbytes in _parquet_columns(path)
            ]
        return []

    def _h5_children(
        self, ref: DatasetRef, dataset_id: str, member: str, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        import h5py

        files = ref.storage.files
        if member == "" and len(files) > 1:
            # Segments of an appended array: one file each, in order.
            paths = self._paths(ref)
            page = files[offset : offset + limit]
            nodes = [
                _node(f"{dataset_id}#{os.path.basename(f)}", os.path.basename(f), "file",
                      _meta("file", None, None, _file_size(paths[f])), True)
                for f in page
            ]
            return nodes, len(files) > offset + limit
        with self._h5_object(ref, member) as (obj, attr, obj_member):
            if attr is not None:
                return [], False
            prefix = f"{dataset_id}#{obj_member}"
            # Names only until the page is known: a group may hold 10,000 members.
            keys = list(obj) if isinstance(obj, h5py.Group) else []
            attrs = [a for a in obj.attrs if a not in _HIDDEN_ATTRS]
            names = [(k, False) for k in keys] + [(a, True) for a in attrs]
            nodes = []
            for name, is_attr in names[offset : offset + limit]:
                if is_attr:
                    # The root of one of several files is "seg.h5": its attributes are "seg.h5/@name".
                    separator = "/" if len(files) > 1 and "/" not in obj_member else ""
                    text = "attr · " + _short(_attr_value(obj, name))
                    nodes.append(_node(f"{prefix}{separator}@{name}", f"@{name}", "attr", text, False))
                    continue
                child_id = f"{prefix}{'/' if obj_member else ''}{name}"
                try:
                    child = hdf5_member(obj, name)
                except RefersOutside:  # listed, never followed
                    nodes.append(_node(child_id, name, "link", "refers outside the file (not read)", False))
                    continue
                except KeyError:
                    child = None
                if isinstance(child, h5py.Dataset):
                    meta = _meta("dataset", child.shape, str(child.dtype), child.size * child.dtype.itemsize)
                    nodes.append(_node(child_id, name, "dataset", meta, any(a not in _HIDDEN_ATTRS for a in child.attrs)))
                elif isinstance(child, h5py.Group):
                    nodes.append(_node(child_id, name, "group", f"group · {len(child)} members", True))
                else:  # a link to nowhere
                    nodes.append(_node(child_id, name, "link", "broken link", False))
        return nodes, len(names) > offset + limit

    # -- previews -------------------------------------------------------------------------

    def preview(self, row: Any, member: str) -> tuple[dict[str, Any], list[bytes]]:
        """The preview of a dataset (``member == ""``) or of one of its members."""
        ref = ref_from_row(row)
        if member == "":
            return self._dataset_preview(ref, row)
        if ref.kind not in ("ndarray", "image"):
            return self._component_preview(ref, member), []
        return self._h5_preview(ref, member)

    def _dataset_preview(self, ref: DatasetRef, row: Any) -> tuple[dict[str, Any], list[bytes]]:
        fields: list[tuple[str, str]] = [("kind", ref.kind)]
        if ref.shape is not None:
            fields.append(("shape", shape_text(ref.shape) or "()"))
        if ref.dtype:
            fields.append(("dtype", ref.dtype))
        fields.append(("size", human_size(ref.nbytes)))
        fields.append(("version", str(ref.version)))
        fields.append(("updated", _dt.datetime.fromtimestamp(ref.updated).strftime("%Y-%m-%d %H:%M:%S")))
        fields.append(("stored", "in the registry" if ref.storage.inline is not None else ", ".join(ref.storage.files)))
        out: dict[str, Any] = {"title": f"{ref.label} (run {ref.run})", "kind": ref.kind, "code": get_code(ref)}
        buffers: list[bytes] = []
        if ref.kind == "image":
            if row.summary_value is not None:
                fields.append(("mean", _number(row.summary_value)))
            if row.thumbnail:
                buffers.append(bytes(row.thumbnail))
                out["image"] = 0
        elif ref.kind == "pandas":
            out["table"], more = _table_head(self._path(ref))
            fields.extend(more)
        elif ref.kind == "xarray":
            out["text"] = _xarray_repr(self._path(ref), ref.name)
        elif ref.kind == "ndarray" and ref.storage.files:
            values, total = _read_segments(list(self._paths(ref).values()), ref.name)
            buffers = _array_preview(out, fields, values, total)
        elif ref.kind in ("scalar", "ndarray"):
            value = self._shelf.read(ref)
            if isinstance(value, np.ndarray):
                buffers = _array_preview(out, fields, value, value.size)
            else:
                out["text"] = _text(value)
        elif isinstance(ref.summary, (str, int, float)):
            fields.append(("summary", str(ref.summary)))
        if ref.kind not in ("scalar", "ndarray", "image"):
            fields.append(("components", ", ".join(self._shelf.components(ref)) or "-"))
        out["fields"] = fields
        return out, buffers

    def _component_preview(self, ref: DatasetRef, member: str) -> dict[str, Any]:
        names = self._shelf.components(ref)
        component = _component_for(member, names)
        listed = {key for key, *_ in self._file_members(ref)}
        data_id = dict(ref.data_id)
        if member in listed:
            # Read from the file, a bounded part; the code names the component if it can.
            path = self._path(ref)
            if ref.kind == "xarray":
                out = _netcdf_variable_preview(ref, path, member)
            else:
                out = _parquet_column_preview(ref, path, member)
            if component is not None:
                out["code"] = _get_call(f"{ref.name}.{component}", ref.run, data_id)
            return out
        if component is None:
            known = sorted(listed | set(names))
            raise DatasetNotFound(f"{ref.label!r} of run {ref.run} has no component {member!r}; it has {known}")
        value = self._shelf.get(f"{ref.name}.{component}", run=ref.run, data_id=data_id or None)
        out = {"title": f"{ref.label}.{component} (run {ref.run})", "kind": "component"}
        out["code"] = _get_call(f"{ref.name}.{component}", ref.run, data_id)
        fields: list[tuple[str, str]] = []
        _value_preview(out, fields, value)
        out["fields"] = fields
        return out

    def _h5_preview(self, ref: DatasetRef, member: str) -> tuple[dict[str, Any], list[bytes]]:
        import h5py

        files = ref.storage.files
        out: dict[str, Any] = {"title": f"{ref.label}#{member} (run {ref.run})"}
        fields: list[tuple[str, str]] = []
        buffers: list[bytes] = []
        if len(files) > 1 and member in {os.path.basename(f) for f in files}:
            relative = next(f for f in files if os.path.basename(f) == member)
            path = self._paths(ref)[relative]
            with open_file(path) as f:
                fields += [("file", relative), ("size", human_size(_file_size(path))), ("members", ", ".join(f))]
            out.update(kind="file", fields=fields, code=_h5_code(relative, "list(f)"))
            return out, buffers
        with self._h5_object(ref, member) as (obj, attr, _obj_member):
            relative = os.path.relpath(obj.file.filename, self._shelf.root).replace(os.sep, "/")
            where = f"f[{obj.name!r}]" if obj.name != "/" else "f"
            if attr is not None:
                value = _attr_value(obj, attr)
                out.update(kind="attr", text=_text(value))
                fields.append(("attribute of", obj.name))
                out["code"] = _h5_code(relative, f"{where}.attrs[{attr!r}]")
            elif isinstance(obj, h5py.Group):
                out.update(kind="group", text="\n".join(list(obj)[:200]) or "(empty)")
                fields += [("file", relative), ("path", obj.name), ("members", str(len(obj))),
                           ("attributes", str(len(obj.attrs)))]
                out["code"] = _h5_code(relative, f"list({where})")
            else:
                fields += [("file", relative), ("path", obj.name), ("shape", shape_text(obj.shape) or "()"),
                           ("dtype", str(obj.dtype)), ("size", human_size(obj.size * obj.dtype.itemsize))]
                if obj.chunks:
                    fields.append(("chunks", shape_text(obj.chunks)))
                if obj.compression:
                    fields.append(("compression", str(obj.compression)))
                values = _read_bounded(obj, BOUNDED_READ)
                out["kind"] = "dataset"
                buffers = _array_preview(out, fields, values, obj.size)
                out["code"] = _h5_code(relative, f"{where}[()]")
        out["fields"] = fields
        return out, buffers

    # -- files ----------------------------------------------------------------------------

    def _path(self, ref: DatasetRef) -> Any:
        return self._paths(ref)[ref.storage.files[0]]

    def _paths(self, ref: DatasetRef) -> dict[str, Any]:
        """Each data file of ``ref`` (as the registry names it) -> its checked path."""
        return dict(zip(ref.storage.files, self._shelf._data_paths(ref), strict=True))

    @contextlib.contextmanager
    def _h5_object(self, ref: DatasetRef, member: str) -> Iterator[tuple[Any, str | None, str]]:
        """Open the HDF5 object a member id names: yields (object, attribute or None, object member)."""
        files = ref.storage.files
        paths = self._paths(ref)
        candidates: list[tuple[str, str | None]] = [(member, None)]
        if "@" in member:
            owner, _, name = member.rpartition("@")
            candidates.append((owner.rstrip("/") if len(files) > 1 else owner, name))
        for obj_member, attr in candidates:
            if len(files) == 1:
                relative, inner = files[0], obj_member
            else:
                first, _, inner = obj_member.partition("/")
                relative = next((f for f in files if os.path.basename(f) == first), "")
                if not relative:
                    continue
            with open_file(paths[relative]) as f:
                try:
                    obj = f if inner.strip("/") == "" else hdf5_member(f, inner)
                except KeyError:
                    continue
                if attr is not None and attr not in obj.attrs:
                    continue
                yield obj, attr, obj_member
                return
        raise DatasetNotFound(f"{ref.label!r} of run {ref.run} has no HDF5 member {member!r}")


# -- listing helpers ----------------------------------------------------------------------------------


def _node(node_id: str, name: str, kind: str, meta: str, expandable: bool) -> dict[str, Any]:
    return {"id": node_id, "name": name, "kind": kind, "meta": meta, "expandable": expandable}


def _meta(kind: str, shape: Sequence[int] | None, dtype: str | None, nbytes: int | None) -> str:
    parts = [kind, shape_text(shape), dtype or "", human_size(nbytes) if nbytes is not None else ""]
    return " · ".join(p for p in parts if p)


def shape_text(shape: Sequence[int] | None) -> str:
    """``512×512`` (empty for no shape)."""
    return "" if shape is None else "×".join(str(n) for n in shape)


def human_size(nbytes: int) -> str:
    """``0 B``, ``12 B``, ``1.5 KiB``, ``3.2 MiB``: binary units, three digits."""
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.3g} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _file_size(path: Any) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _member_of(component: str) -> str:
    """The variable or column a component name is about: ``coords.energy`` -> ``energy``."""
    for prefix in ("coords.", "columns.", "data_vars."):
        if component.startswith(prefix):
            return component[len(prefix) :]
    return component


def _component_for(member: str, names: Sequence[str]) -> str | None:
    """The component name of a member key (``energy`` -> ``coords.energy``), or None."""
    if member in names:
        return member
    return next((c for c in names if _member_of(c) == member), None)


def _display_name(key: str) -> str:
    return "(values)" if key == _UNNAMED_ARRAY else key


def _as_text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value) if value is not None else ""


def _attr_value(obj: Any, name: str) -> Any:
    try:
        value = obj.attrs[name]
    except (OSError, TypeError, ValueError) as exc:  # a type h5py cannot read
        return f"(unreadable: {exc})"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _short(value: Any, limit: int = 40) -> str:
    text = _text(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _netcdf_variables(path: Any, group_name: str) -> list[tuple[str, str, tuple[int, ...], str, int]]:
    """(name, "coord" or "variable", shape, dtype, bytes) of an xarray value, coordinates first."""
    import h5py

    with open_file(path) as f:
        group = hdf5_member(f, group_name, whole=True)
        times = json.loads(_as_text(group.attrs.get("labshelf_time_dtypes")) or "{}")
        coords = set(_as_text(group.attrs.get("coordinates")).split())
        variables = [(k, v) for k, v in group.items() if isinstance(v, h5py.Dataset)]
        for _key, var in variables:
            coords.update(_as_text(var.attrs.get("coordinates")).split())
        found = []
        for key, var in variables:
            if _as_text(var.attrs.get("NAME")).startswith(_BARE_DIMENSION):
                continue
            is_coord = key in coords or _as_text(var.attrs.get("CLASS")) == "DIMENSION_SCALE"
            dtype = str(np.dtype(times[key])) if key in times else str(var.dtype)
            found.append((key, "coord" if is_coord else "variable", var.shape, dtype, var.size * var.dtype.itemsize))
    found.sort(key=lambda item: item[1] != "coord")
    return found


def _parquet_columns(path: Any) -> list[tuple[str, str, int, int]]:
    """(name, dtype, rows, compressed bytes) of a stored DataFrame's columns, index aside."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path, **READ_CHECKSUMS)
    schema = parquet.schema_arrow
    pandas_meta = schema.pandas_metadata or {}
    index = {c for c in pandas_meta.get("index_columns", []) if isinstance(c, str)}
    meta = parquet.metadata
    found = []
    for column in pandas_meta.get("columns", []):
        field = column.get("field_name") or column.get("name")
        if field in index or field == _SERIES_COLUMN:
            continue
        position = schema.get_field_index(field)
        nbytes = sum(meta.row_group(g).column(position).total_compressed_size for g in range(meta.num_row_groups))
        found.append((str(column.get("name")), str(column.get("numpy_type")), meta.num_rows, nbytes))
    return found


# -- reading a bounded part ---------------------------------------------------------------------------


def _read_bounded(dataset: Any, limit: int) -> np.ndarray:
    """The first ``limit`` values (in C order, as a block) of an h5py dataset, decoded."""
    if dataset.shape is None:  # an HDF5 null dataspace
        return np.zeros(0)
    if dataset.size <= limit:
        data = dataset[()]
    else:
        selection: list[slice] = []
        shape = dataset.shape
        for axis, length in enumerate(shape):
            trailing = int(np.prod(shape[axis + 1 :], dtype=np.int64))
            if trailing <= limit:
                selection.append(slice(0, max(1, min(length, limit // trailing))))
                selection += [slice(None)] * (len(shape) - axis - 1)
                break
            selection.append(slice(0, 1))
        data = dataset[tuple(selection)]
    original = dataset.attrs.get(DTYPE_ATTR)
    return decode(np.asarray(data), _as_text(original) if original is not None else None)


def _read_segments(paths: Sequence[Any], name: str) -> tuple[np.ndarray, int]:
    """The first :data:`BOUNDED_READ` values of an array stored in segment files, and the total size."""
    parts: list[np.ndarray] = []
    total = 0
    room = BOUNDED_READ
    complete = True
    for path in paths:
        with open_file(path) as f:
            dataset = hdf5_member(f, name)
            total += dataset.size
            if room > 0:
                part = _read_bounded(dataset, room)
                complete = complete and part.size == dataset.size
                parts.append(part)
                room -= part.size
            else:
                complete = False
    if len(parts) == 1:
        return parts[0], total
    if complete:
        return np.concatenate(parts, axis=0), total
    return np.concatenate([p.ravel() for p in parts]), total


def _array_preview(out: dict[str, Any], fields: list[tuple[str, str]], values: np.ndarray, total: int) -> list[bytes]:
    """Values of a small array, or statistics of a bounded read; a picture of a 2-D one."""
    from ._images import thumbnail_of, value_range

    buffers: list[bytes] = []
    complete = values.size == total
    if complete and total <= SMALL_ARRAY:
        out["text"] = _text(values)
    if values.dtype.kind in "biuf" and values.size:
        lo, hi = value_range(values)
        finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        fields.append(("min", _number(lo)))
        fields.append(("max", _number(hi)))
        fields.append(("mean", _number(float(np.mean(finite, dtype=np.float64)) if finite.size else None)))
        if not complete:
            out["note"] = f"min, max and mean of the first {values.size:,} of {total:,} values"
        if complete and values.ndim == 2 and min(values.shape) >= 2 and total > SMALL_ARRAY:
            buffers.append(thumbnail_of(values))
            out["image"] = 0
    return buffers


def _value_preview(out: dict[str, Any], fields: list[tuple[str, str]], value: Any) -> None:
    """A preview of a value already read (a component from ``shelf.get``)."""
    kind = type(value).__name__
    if kind in ("DataArray", "Dataset", "DataFrame", "Series"):
        out["text"] = _text(value)
        if hasattr(value, "shape"):
            fields.append(("shape", shape_text(value.shape) or "()"))
        return
    if isinstance(value, np.ndarray):
        fields += [("shape", shape_text(value.shape) or "()"), ("dtype", str(value.dtype))]
        _array_preview(out, fields, value, value.size)
        return
    out["text"] = _text(value)


def _text(value: Any) -> str:
    with np.printoptions(threshold=SMALL_ARRAY + 1, linewidth=75):
        text = repr(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}"


# -- composites read from their files ------------------------------------------------------------------


def _table_head(path: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Column names, dtypes and the first rows of a stored DataFrame or Series (one row group read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path, **READ_CHECKSUMS)
    schema = parquet.schema_arrow
    batch = next(parquet.iter_batches(batch_size=TABLE_ROWS), None)
    table = pa.Table.from_batches([batch], schema=schema) if batch is not None else schema.empty_table()
    frame = table.to_pandas()
    marker = json.loads((schema.metadata or {}).get(b"labshelf", b"{}"))
    if marker.get("class") == "Series" and _SERIES_COLUMN in frame.columns:
        frame = frame.rename(columns={_SERIES_COLUMN: str(marker.get("name"))})
    index_name = ", ".join(str(n) for n in frame.index.names if n is not None) or ""
    head = {
        "columns": [index_name, *(str(c) for c in frame.columns)],
        "dtypes": [str(frame.index.dtype), *(str(t) for t in frame.dtypes)],
        "rows": [[_cell(i), *(_cell(v) for v in row)] for i, row in zip(frame.index, frame.itertuples(index=False), strict=True)],
    }
    rows = parquet.metadata.num_rows
    fields = [("rows", f"{rows:,}"), ("columns", str(len(frame.columns)))]
    return head, fields


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _open_xarray(path: Any, group: str) -> Any:
    """The stored xarray value opened lazily (values are read only when asked for)."""
    import xarray as xr

    from ..datastore.netcdf import _time_decoder

    with open_file(path) as f:
        cls = _as_text(hdf5_member(f, group, whole=True).attrs.get("labshelf_class"))
    opener = xr.open_dataarray if cls == "DataArray" else xr.open_dataset
    value = opener(path, engine="h5netcdf", group=group, decode_times=_time_decoder(xr))
    for marker in ("labshelf_class", "labshelf_time_dtypes"):
        value.attrs.pop(marker, None)
    if cls == "DataArray" and value.name == _UNNAMED_ARRAY:
        value.name = None
    return value


def _xarray_repr(path: Any, group: str) -> str:
    value = _open_xarray(path, group)
    try:
        return _text(value)
    finally:
        value.close()


def _netcdf_variable_preview(ref: DatasetRef, path: Any, member: str) -> dict[str, Any]:
    value = _open_xarray(path, ref.name)
    try:
        is_array = type(value).__name__ == "DataArray"
        names = list(value.coords) + ([] if is_array else list(value.data_vars))
        if is_array and member in (_UNNAMED_ARRAY, value.name) and member not in value.coords:
            variable, expression = value, ""
        elif member in names:
            variable, expression = value[member], f"[{member!r}]"
        else:
            raise DatasetNotFound(f"{ref.label!r} of run {ref.run} has no variable or coordinate {member!r}; it has {names}")
        out: dict[str, Any] = {"title": f"{ref.label}#{_display_name(member)} (run {ref.run})", "kind": "variable"}
        fields = [("dims", ", ".join(f"{d}: {n}" for d, n in variable.sizes.items()) or "()"),
                  ("dtype", str(variable.dtype)), ("size", human_size(int(variable.nbytes)))]
        if variable.size <= BOUNDED_READ:
            values = np.asarray(variable.values)
        else:
            first = variable.isel({variable.dims[0]: slice(0, max(1, BOUNDED_READ * variable.shape[0] // variable.size))})
            values = np.asarray(first.values)
        _array_preview(out, fields, values, int(variable.size))
    finally:
        value.close()
    out["fields"] = fields
    out["code"] = get_code(ref) + expression
    return out


def _parquet_column_preview(ref: DatasetRef, path: Any, member: str) -> dict[str, Any]:
    import pyarrow.parquet as pq

    columns = {name: (dtype, rows) for name, dtype, rows, _ in _parquet_columns(path)}
    if member not in columns:
        raise DatasetNotFound(f"{ref.label!r} of run {ref.run} has no column {member!r}; it has {list(columns)}")
    dtype, rows = columns[member]
    parquet = pq.ParquetFile(path, **READ_CHECKSUMS)
    batch = next(parquet.iter_batches(batch_size=BOUNDED_READ, columns=[member]), None)
    values = np.asarray(batch.column(0).to_numpy(zero_copy_only=False)) if batch is not None else np.zeros(0)
    out: dict[str, Any] = {"title": f"{ref.label}#{member} (run {ref.run})", "kind": "column"}
    fields = [("rows", f"{rows:,}"), ("dtype", dtype)]
    _array_preview(out, fields, values, rows)
    out["fields"] = fields
    out["code"] = get_code(ref) + f"[{member!r}]"
    return out


# -- code --------------------------------------------------------------------------------------------------


def get_code(ref: DatasetRef) -> str:
    """The exact ``shelf.get(...)`` call that loads a dataset."""
    return _get_call(ref.name, ref.run, dict(ref.data_id))


def _get_call(name: str, run: int, data_id: dict[str, Any]) -> str:
    extra = f", data_id={data_id!r}" if data_id else ""
    return f"shelf.get({name!r}, run={run}{extra})"


def _h5_code(relative: str, expression: str) -> str:
    return f"import h5py\nwith h5py.File(shelf.root / {relative!r}, 'r') as f:\n    value = {expression}"
