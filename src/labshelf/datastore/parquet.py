"""pandas DataFrame and Series, stored as Parquet through pyarrow.

Parquet keeps pandas' own metadata (index, column dtypes, categoricals,
time zones) and stores columns separately so one column can be read alone.
A Series is stored as a one-column frame with a marker in the file's
key-value metadata.

pyarrow alone does not give everything back as it was: datetimes in
seconds come back in milliseconds, object columns of str as pandas' str
dtype, non-str index names and a Series' tuple name as text, an index's
``freq`` and the ``allows_duplicate_labels`` flag not at all.  The marker
records those, and ``read`` restores them.  What cannot come back exactly is
refused at put: object columns of anything but str or bytes, complex and
byte-swapped columns, categoricals of non-str categories, duplicate or
non-str column names, and whatever else the new file's schema shows would
come back with another dtype (checked before the file becomes visible).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidOptions, UnsupportedValue
from .formatter import (
    Description,
    Formatter,
    RefersOutside,
    Summary,
    invalid_text,
    is_valid_text,
    missing_file,
    no_member,
)
from .scalar import ScalarFormatter, decode_scalar, encode_scalar

if TYPE_CHECKING:
    from ..registry.records import DatasetRef
    from .members import Member, Peek

#: A CRC-32 in every page header, checked as each page is read (whole
#: tables and single columns alike); files without them read as before.
#: Costs about 7% of a write and 15% of a read of 32 MB of floats.
WRITE_CHECKSUMS = {"write_page_checksum": True}
READ_CHECKSUMS = {"page_checksum_verification": True}
# A column chunk's ``file_path`` may name another file; pyarrow reads a
# file's column chunks from that file itself whatever it says (pinned by
# tests/test_path_safety.py), and ``verify`` reports such files.

_META_KEY = b"labshelf"
_SERIES_COLUMN = "__series__"
_COMPRESSIONS = ("zstd", "snappy", "gzip", "lz4", "brotli", "none")
#: What pandas infers an object column to hold (missing values aside) that
#: Parquet gives back exactly: str (string), bytes (binary), nothing (null).
_OBJECT_KINDS = ("string", "bytes", "empty")
_SCALARS = ScalarFormatter()


class PandasFormatter(Formatter):
    kind = "pandas"
    priority = 10
    suffix = ".parquet"
    describes = "pandas.DataFrame and pandas.Series"

    def accepts(self, value: Any) -> bool:
        # Decided by class name and module, so that asking never imports pandas.
        return type(value).__name__ in ("DataFrame", "Series") and type(value).__module__.partition(".")[0] == "pandas"

    def prepare(self, value: Any) -> Any:
        if type(value).__name__ == "Series":
            _check_label(value.name, "a Series' name")
            _check_values("the Series", value)
        else:
            _check_column_names(value.columns)
            for column, values in value.items():
                _check_values(f"column {column!r}", values)
        _check_index(value.index)
        _check_attrs(value.attrs, "attrs")
        return value

    def check_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        if not options:
            return {}
        extra = sorted(set(options) - {"compression"})
        if extra or options.get("compression") not in _COMPRESSIONS:
            raise InvalidOptions(
                f"pandas values are stored as Parquet: the only option is compression, one of "
                f"{_COMPRESSIONS}; got {dict(options)}"
            )
        return dict(options)

    def describe(self, value: Any) -> Description:
        if type(value).__name__ == "Series":
            return Description(shape=(len(value),), dtype=f"Series[{value.dtype}]", nbytes=int(value.memory_usage(deep=True)))
        return Description(shape=tuple(value.shape), dtype="DataFrame", nbytes=int(value.memory_usage(deep=True).sum()))

    def summarise(self, value: Any) -> Summary:
        if type(value).__name__ == "Series":
            return Summary("table", text=f"Series {len(value)} rows {value.dtype}")
        rows, cols = value.shape
        return Summary("table", text=f"DataFrame {rows} rows x {cols} columns")

    def write(self, path: Path, name: str, value: Any, options: Mapping[str, Any]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        frame = value.to_frame(name=_SERIES_COLUMN) if type(value).__name__ == "Series" else value
        marker = _marker(value, frame)
        try:
            with warnings.catch_warnings():
                # Non-str index names: the marker keeps them exactly, pyarrow's text copy is not used.
                warnings.filterwarnings("ignore", message="The DataFrame has non-str index name")
                # preserve_index=None: a RangeIndex is kept as metadata and comes back a RangeIndex.
                table = pa.Table.from_pandas(frame, preserve_index=None)
        except UnicodeEncodeError as exc:
            raise invalid_text(_where_text_is_invalid(value)) from exc
        except (pa.ArrowException, TypeError, ValueError) as exc:
            # pyarrow's messages name the column ("Conversion failed for column x with type ...").
            raise UnsupportedValue(
                f"this {type(value).__name__} cannot be stored as Parquet: {exc}"
            ) from exc
        metadata = dict(table.schema.metadata or {})
        metadata[_META_KEY] = json.dumps(marker).encode()
        table = table.replace_schema_metadata(metadata)
        compression = options.get("compression", "zstd")
        pq.write_table(table, path, compression=None if compression == "none" else compression, **WRITE_CHECKSUMS)
        _check_schema(path, value)

    def read(
        self, paths: Sequence[Path], name: str, ref: DatasetRef, parameters: Mapping[str, Any]
    ) -> Any:
        import pyarrow.parquet as pq

        (path,) = paths
        try:
            table = pq.read_table(path, **READ_CHECKSUMS)
        except FileNotFoundError as exc:
            raise missing_file(path) from exc
        return value_of(table)

    def components(self, paths: Sequence[Path], ref: DatasetRef) -> list[str]:
        if not paths:
            return []
        columns, _index = _pandas_columns(_schema(paths[0]))
        if columns == [_SERIES_COLUMN]:  # a Series: its values and index
            return ["values", "index"]
        return [*(f"columns.{c}" for c in columns), "index"]


    def read_component(
        self, paths: Sequence[Path], ref: DatasetRef, component: str, parameters: Mapping[str, Any]
    ) -> Any:
        import pyarrow.parquet as pq

        (path,) = paths
        schema = _schema(path)
        columns, index = _pandas_columns(schema)
        marker = _read_marker(schema)
        if component == "index":
            wanted: list[str] = []
        elif component == "values" and columns == [_SERIES_COLUMN]:
            wanted = [_SERIES_COLUMN]
        elif component.startswith("columns.") and component[len("columns.") :] in columns:
            wanted = [component[len("columns.") :]]
        else:
            raise self.no_component(paths, ref, component)
        # Column projection: Parquet reads only the chosen column chunks (and the index).
        frame = _restore(pq.read_pandas(path, columns=wanted, **READ_CHECKSUMS).to_pandas(), marker)
        if component == "index":
            return frame.index
        series = frame[wanted[0]]
        if wanted[0] == _SERIES_COLUMN:
            series.name = _series_name(marker)
        return series


    def members(
        self, paths: Sequence[Path], ref: DatasetRef, member: str, offset: int, limit: int
    ) -> tuple[list[Member], bool]:
        """The columns of the stored frame, from the Parquet footer (the index aside)."""
        from .members import Member

        if member or not paths:
            return super().members(paths, ref, member, offset, limit)
        found = [
            Member(name, name, "column", (rows,), dtype, nbytes, component=f"columns.{name}")
            for name, dtype, rows, nbytes in _columns(paths[0])
        ]
        return found[offset : offset + limit], len(found) > offset + limit

    def peek(self, paths: Sequence[Path], ref: DatasetRef, member: str, limit: int) -> Peek:
        """The first rows of the table (one batch read), or the first ``limit`` values of one column."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        from .members import TABLE_ROWS, Peek

        if not paths:
            return super().peek(paths, ref, member, limit)
        try:
            parquet = pq.ParquetFile(paths[0])
        except FileNotFoundError as exc:
            raise missing_file(paths[0]) from exc
        rows = parquet.metadata.num_rows
        if member == "":
            schema = parquet.schema_arrow
            batch = next(parquet.iter_batches(batch_size=TABLE_ROWS), None)
            table = pa.Table.from_batches([batch], schema=schema) if batch is not None else schema.empty_table()
            frame = table.to_pandas()
            marker = json.loads((schema.metadata or {}).get(_META_KEY, b"{}"))
            if marker.get("class") == "Series" and _SERIES_COLUMN in frame.columns:
                frame = frame.rename(columns={_SERIES_COLUMN: str(marker.get("name"))})
            return Peek("table", values=frame, count=rows, names=tuple(str(c) for c in frame.columns))
        columns = {name: dtype for name, dtype, _rows, _nbytes in _columns(paths[0])}
        if member not in columns:
            raise no_member(ref, member, list(columns))
        values = None
        if limit > 0:
            batch = next(parquet.iter_batches(batch_size=limit, columns=[member]), None)
            values = np.asarray(batch.column(0).to_numpy(zero_copy_only=False)) if batch is not None else np.zeros(0)
        return Peek("column", values=values, total=rows, shape=(rows,), dtype=columns[member], component=f"columns.{member}")


def value_of(table: Any) -> Any:
    """The DataFrame or Series a pyarrow Table read from a file :meth:`PandasFormatter.write` wrote
    gives back, exactly (whatever holds the file's bytes: a path, or bytes kept elsewhere)."""
    marker = _read_marker(table.schema)
    frame = _restore(table.to_pandas(), marker)
    if marker.get("class") == "Series":
        series = frame[_SERIES_COLUMN]
        series.name = _series_name(marker)
        return series.set_flags(allows_duplicate_labels=False) if not frame.flags.allows_duplicate_labels else series
    return frame


def from_bytes(data: bytes) -> Any:
    """The value of a Parquet file's bytes (see :func:`value_of`), page checksums checked."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return value_of(pq.read_table(pa.BufferReader(data), **READ_CHECKSUMS))


def _columns(path: Path) -> list[tuple[str, str, int, int]]:
    """(name, dtype, rows, compressed bytes) of a stored frame's columns, index aside."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except FileNotFoundError as exc:
        raise missing_file(path) from exc
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
        if position < 0:
            continue
        nbytes = sum(meta.row_group(g).column(position).total_compressed_size for g in range(meta.num_row_groups))
        found.append((str(column.get("name")), str(column.get("numpy_type")), meta.num_rows, nbytes))
    return found


def _schema(path: Path) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path)
    except FileNotFoundError as exc:
        raise missing_file(path) from exc


def _pandas_columns(schema: Any) -> tuple[list[str], list[str]]:
    """(value columns, index columns) of a Parquet schema written from pandas."""
    meta = json.loads((schema.metadata or {}).get(b"pandas", b"{}"))
    index = [c for c in meta.get("index_columns", []) if isinstance(c, str)]
    columns = [name for name in schema.names if name not in index]
    return columns, index


# -- what is refused at put --------------------------------------------------------------------


def _check_column_names(columns: Any) -> None:
    import pandas as pd

    if isinstance(columns, pd.MultiIndex):
        raise UnsupportedValue(
            "DataFrames with MultiIndex columns are not stored (Parquet column names are text); "
            "flatten them first, e.g. df.columns = ['/'.join(map(str, c)) for c in df.columns]"
        )
    bad = [c for c in columns if not isinstance(c, str)]
    if bad:
        raise UnsupportedValue(
            f"DataFrame column names must be str to be stored, not {bad[:3]!r}; "
            "rename them (df.columns = df.columns.map(str))"
        )
    for column in columns:
        if not is_valid_text(column):
            raise invalid_text(f"the column name {column!r}")
    if not columns.is_unique:
        twice = sorted(set(columns[columns.duplicated()]))
        raise UnsupportedValue(
            f"DataFrame column names must be unique to be stored; {twice[:3]!r} appear more than once"
        )
    if columns.name is not None and not isinstance(columns.name, str):
        raise UnsupportedValue(
            f"the name of a DataFrame's columns (df.columns.name) must be a str or None, not {columns.name!r}"
        )


def _check_index(index: Any) -> None:
    import pandas as pd

    for name in index.names:
        _check_label(name, "index names")
    if isinstance(index, pd.MultiIndex):
        for level, values in enumerate(index.levels):
            _check_values(f"index level {level}", values)
    else:
        _check_values("the index", index)
        freq = getattr(index, "freq", None)
        if freq is not None and isinstance(index, (pd.DatetimeIndex, pd.TimedeltaIndex)):
            if pd.tseries.frequencies.to_offset(index.freqstr) != freq:
                raise UnsupportedValue(
                    f"the index's freq {freq!r} cannot be stored (only what its name {index.freqstr!r} says); "
                    "drop it (df.index.freq = None) or use a plain frequency"
                )


def _check_label(label: Any, what: str) -> None:
    """A Series name or index name: any scalar (kept exactly, type included) or a tuple of them."""
    items = label if isinstance(label, tuple) else (label,)
    for item in items:
        if isinstance(item, tuple) or not _SCALARS.accepts(item):
            raise UnsupportedValue(
                f"{what} must be None, str, numbers, bytes, numpy scalars or tuples of them to be stored, "
                f"not {type(item).__name__} ({item!r})"
            )
        if isinstance(item, str) and not is_valid_text(item):
            raise invalid_text(f"the name {item!r}")


def _check_values(what: str, values: Any) -> None:
    """Refuse a column (or index level) whose values Parquet would not give back as they are."""
    import numpy as np
    import pandas as pd

    dtype = values.dtype
    if isinstance(dtype, np.dtype):
        if dtype.kind == "O":
            _check_objects(what, values)
        elif dtype.kind == "c":
            raise UnsupportedValue(
                f"{what} has dtype {dtype}; Parquet stores no complex numbers. Store the real and imaginary "
                "parts as two columns, or the values as a numpy array or xarray"
            )
        elif not dtype.isnative:
            raise UnsupportedValue(
                f"{what} has the byte-swapped dtype {dtype.str}, which Parquet does not store; "
                "convert it first (.astype(dtype.newbyteorder('=')))"
            )
        elif dtype.kind == "f" and dtype.itemsize > 8:
            raise UnsupportedValue(f"{what} has dtype {dtype}; Parquet stores floats of up to 64 bits")
    elif isinstance(dtype, pd.CategoricalDtype):
        if dtype.categories.dtype != pd.StringDtype(na_value=np.nan):
            raise UnsupportedValue(
                f"{what} is a categorical with categories of dtype {dtype.categories.dtype}; Parquet gives "
                "categoricals back only with categories of pandas' default str dtype. Convert the categories "
                "(.cat.rename_categories(str)) or the values (.astype(...)) first"
            )
    elif isinstance(dtype, pd.SparseDtype):
        raise UnsupportedValue(f"{what} is sparse ({dtype}), which Parquet does not store; use .sparse.to_dense()")


def _check_objects(what: str, values: Any) -> None:
    """An object column: str, bytes or nothing (its missing values are checked by ``_marker``)."""
    import pandas as pd

    kind = pd.api.types.infer_dtype(values, skipna=True)  # one pass, in C
    if kind not in _OBJECT_KINDS:
        # Only on the way to an error: the first value that is no str.
        example = next((x for x in values if not isinstance(x, str) and not _is_missing(x)), None)
        raise UnsupportedValue(
            f"{what} is an object column of {kind} values (such as the {type(example).__name__} {_shown(example)}); "
            "object columns are stored only when they hold str or bytes (and missing values). Convert it to a "
            "dtype of its own (.astype(...)) or to str"
        )


def _null_kind(values: Any) -> str | None:
    """How an object column marks missing values: "none", "nan", None if it has none, else "mixed"."""
    import numpy as np

    mask = np.asarray(values.isna())  # vectorised: only the missing values are looked at one by one
    if not mask.any():
        return None
    kinds = {type(x) for x in values.to_numpy()[mask]}
    if kinds == {type(None)}:
        return "none"
    if kinds == {float}:
        return "nan"
    return "mixed"


def _is_missing(x: Any) -> bool:
    import pandas as pd

    return x is None or (not isinstance(x, (str, bytes)) and bool(pd.isna(x)))


def _check_attrs(item: Any, where: str) -> None:
    """``attrs`` must be JSON made of str, numbers, bools, None, lists and str-keyed dicts: pyarrow keeps them as JSON."""
    if item is None or type(item) in (bool, int, float):
        return
    if type(item) is str:
        if not is_valid_text(item):
            raise invalid_text(f"a str in {where}")
        return
    if type(item) is list:
        for x in item:
            _check_attrs(x, where)
        return
    if type(item) is dict:
        for key, x in item.items():
            if type(key) is not str:
                raise UnsupportedValue(f"{where} must have str keys to be stored (they are kept as JSON), not {key!r}")
            _check_attrs(key, where)
            _check_attrs(x, f"{where}[{key!r}]")
        return
    raise UnsupportedValue(
        f"{where} holds a {type(item).__name__} ({_shown(item)}); attrs are stored as JSON, so they may hold "
        "only str, int, float, bool, None, lists and dicts with str keys"
    )


def _where_text_is_invalid(value: Any) -> str:
    """Which column (or index) holds a str that is not valid Unicode; looked for only once pyarrow failed."""
    import pandas as pd

    frame = value.to_frame() if isinstance(value, pd.Series) else value
    parts = [("the index", frame.index), *((f"column {c!r}", frame[c]) for c in frame.columns)]
    for what, values in parts:
        if any(isinstance(x, str) and not is_valid_text(x) for x in values):
            return f"a str in {what}" if isinstance(value, pd.DataFrame) or what == "the index" else "a str in the Series"
    return f"a str in this {type(value).__name__}"


def _check_schema(path: Path, value: Any) -> None:
    """Refuse what reading the new file would give back with another type, from its schema alone.

    The schema (no data) is turned into an empty frame the way ``read`` does
    it, restores included; any column, index or name that differs would
    come back changed.
    """
    import pandas as pd

    schema = _schema(path)
    marker = _read_marker(schema)
    try:
        empty = _restore(schema.empty_table().to_pandas(), marker)
    except (TypeError, ValueError, NotImplementedError) as exc:
        # pyarrow names the type it cannot turn back into pandas: find the column that has it.
        columns = [(c, v.dtype) for c, v in value.items()] if isinstance(value, pd.DataFrame) else [("", value.dtype)]
        which = next((f"column {c!r} of dtype {d}" if c else f"the Series of dtype {d}" for c, d in columns if str(d) in str(exc)), None)
        raise UnsupportedValue(
            f"{which or 'this ' + type(value).__name__} would not read back from Parquet ({exc}); convert it to a "
            "numpy or pandas dtype first"
        ) from exc
    if isinstance(value, pd.Series):
        pairs = [("the Series", value.dtype, empty[_SERIES_COLUMN].dtype)]
        empty_columns = None
    else:
        if list(empty.columns) != list(value.columns):
            raise UnsupportedValue("the column names of this DataFrame would come back from Parquet changed")
        pairs = [(f"column {c!r}", value[c].dtype, empty[c].dtype) for c in value.columns]
        empty_columns = empty.columns
    index, back = value.index, empty.index
    if type(back) is not type(index):
        raise UnsupportedValue(
            f"an index of type {type(index).__name__} would come back from Parquet as {type(back).__name__}"
        )
    if isinstance(index, pd.MultiIndex):
        pairs += [(f"index level {i}", a.dtype, b.dtype) for i, (a, b) in enumerate(zip(index.levels, back.levels, strict=True))]
    else:
        pairs.append(("the index", index.dtype, back.dtype))
    for what, put, got in pairs:
        if not _same_dtype(put, got):
            raise UnsupportedValue(
                f"{what} of dtype {put} would come back from Parquet as {got}; convert it first (.astype(...))"
            )
    if list(back.names) != list(index.names) or [type(n) for n in back.names] != [type(n) for n in index.names]:
        raise UnsupportedValue(f"the index names {list(index.names)!r} would come back from Parquet as {list(back.names)!r}")
    if empty_columns is not None and (
        empty_columns.dtype != value.columns.dtype or empty_columns.name != value.columns.name
    ):
        raise UnsupportedValue(
            f"the DataFrame's columns index ({value.columns.dtype}, name {value.columns.name!r}) would come back "
            f"from Parquet as ({empty_columns.dtype}, name {empty_columns.name!r})"
        )
    if empty.attrs != value.attrs:
        raise UnsupportedValue(f"the attrs of this {type(value).__name__} would come back from Parquet changed")


def _same_dtype(put: Any, got: Any) -> bool:
    import pandas as pd

    if isinstance(put, pd.CategoricalDtype):
        # An empty table has no dictionary, so no categories to compare: those
        # of str come back as they are (checked at put), only the order flag counts.
        return isinstance(got, pd.CategoricalDtype) and got.ordered == put.ordered
    return bool(put == got) and type(put) is type(got)


def _shown(item: Any) -> str:
    text = " ".join(repr(item).split())
    return text if len(text) <= 60 else text[:57] + "..."


# -- what the marker records, and restoring it ---------------------------------------------------


def _marker(value: Any, frame: Any) -> dict[str, Any]:
    """What ``read`` needs besides pyarrow's own metadata to give ``value`` back exactly."""
    import pandas as pd

    marker: dict[str, Any] = {"class": type(value).__name__}
    if isinstance(value, pd.Series):
        if value.name is None or type(value.name) is str:
            marker["name"] = value.name  # as labshelf always wrote it
        else:
            marker["name_exact"] = _encode_label(value.name)
    index = frame.index
    if any(n is not None for n in index.names):
        # Exactly, type included (pyarrow makes names text), and for a
        # RangeIndex at all (pyarrow drops its name).
        marker["index_names"] = [_encode_label(n) for n in index.names]
    if isinstance(index, (pd.DatetimeIndex, pd.TimedeltaIndex)) and index.freq is not None:
        marker["freq"] = index.freqstr
    if not value.flags.allows_duplicate_labels:
        marker["allows_duplicate_labels"] = False
    restore: list[list[Any]] = []
    what = "the Series" if isinstance(value, pd.Series) else "column {!r}"
    for column, values in frame.items():
        spec = _restore_spec(what.format(column), values)
        if spec is not None:
            restore.append(["column", column, *spec])
    levels = index.levels if isinstance(index, pd.MultiIndex) else [index]
    for level, values in enumerate(levels):
        spec = _restore_spec(f"index level {level}" if isinstance(index, pd.MultiIndex) else "the index", values)
        if spec is not None:
            restore.append(["index", level, *spec])
    if restore:
        marker["restore"] = restore
    if len(frame.columns) == 0 and isinstance(index, pd.RangeIndex):
        # pyarrow makes a table without columns one of no rows.
        marker["rows"] = [index.start, index.stop, index.step]
    if frame.columns.dtype == object and len(frame.columns):
        marker["columns_dtype"] = "object"
    elif isinstance(frame.columns, pd.RangeIndex):  # a DataFrame without columns
        marker["columns_dtype"] = "range"
    return marker


def _restore_spec(what: str, values: Any) -> tuple[str, str | None] | None:
    """(dtype to restore, kind of missing values) for values pyarrow gives back in another dtype."""
    import numpy as np
    import pandas as pd

    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        # Object columns of str come back as pandas' str dtype, bytes and
        # empty ones with None for every missing value: which one it was is
        # restored.  Looked at here, not in prepare(), so that the missing
        # values of a big column are visited once.
        nulls = _null_kind(values)
        if nulls == "mixed":
            raise UnsupportedValue(
                f"{what} marks missing values otherwise than all with None or all with float NaN (pd.NA, NaT, "
                "or a mix); Parquet keeps only that a value is missing, so use one of those two"
            )
        return "object", nulls
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "python" and dtype.na_value is pd.NA:
        return "string[python]", None
    if isinstance(dtype, pd.DatetimeTZDtype):
        unit = dtype.unit
    elif isinstance(dtype, np.dtype) and dtype.kind == "M":
        unit = np.datetime_data(dtype)[0]
    else:
        unit = None
    if unit == "s":
        # Parquet has no timestamps in seconds: they come back in milliseconds.
        return str(dtype), None
    return None


def _read_marker(schema: Any) -> dict[str, Any]:
    marker = json.loads((schema.metadata or {}).get(_META_KEY, b"{}"))
    if not isinstance(marker, dict):
        raise ValueError("the labshelf metadata of this Parquet file is damaged")
    return marker


def _restore(frame: Any, marker: Mapping[str, Any]) -> Any:
    """``frame`` as pyarrow read it, with what ``_marker`` recorded put back."""
    import pandas as pd

    if "rows" in marker and len(frame.columns) == 0:
        frame = pd.DataFrame(index=pd.RangeIndex(*marker["rows"], name=frame.index.name), columns=frame.columns)
    for kind, key, spec, nulls in marker.get("restore", ()):
        if kind == "column" and key in frame.columns:
            frame[key] = _as(frame[key], spec, nulls)
        elif kind == "index" and isinstance(frame.index, pd.MultiIndex):
            frame.index = frame.index.set_levels(_as(frame.index.levels[key], spec, None), level=key)
        elif kind == "index":
            frame.index = _as(frame.index, spec, nulls)
    if "index_names" in marker:
        frame.index = frame.index.set_names([_decode_label(n) for n in marker["index_names"]])
    if "freq" in marker:
        frame.index = type(frame.index)(frame.index, freq=marker["freq"])
    columns_dtype = marker.get("columns_dtype")
    if columns_dtype == "object":
        frame.columns = pd.Index(list(frame.columns), dtype=object, name=frame.columns.name)
    elif columns_dtype == "range" and len(frame.columns) == 0:
        frame.columns = pd.RangeIndex(0, name=frame.columns.name)
    if marker.get("allows_duplicate_labels") is False:
        frame = frame.set_flags(allows_duplicate_labels=False)
    return frame


def _as(values: Any, spec: str, nulls: str | None) -> Any:
    """``values`` (a Series or an Index) in the dtype ``spec``, missing values as ``nulls`` says."""
    import numpy as np
    import pandas as pd

    if spec != "object":
        return values.astype(pd.api.types.pandas_dtype(spec))
    objects = values.to_numpy(dtype=object, na_value=np.nan if nulls == "nan" else None)
    if isinstance(values, pd.Index):
        return pd.Index(objects, dtype=object, name=values.name)
    return pd.Series(objects, index=values.index, dtype=object, name=values.name)


def _encode_label(label: Any) -> Any:
    if isinstance(label, tuple):
        return {"tuple": [encode_scalar(x) for x in label]}
    return encode_scalar(label)


def _decode_label(doc: Any) -> Any:
    if isinstance(doc, dict) and "tuple" in doc:
        return tuple(decode_scalar(x) for x in doc["tuple"])
    return decode_scalar(doc)


def _series_name(marker: Mapping[str, Any]) -> Any:
    if "name_exact" in marker:
        return _decode_label(marker["name_exact"])
    name = marker.get("name")
    # Files written before names were kept exactly hold a tuple name as a
    # JSON list, which pandas refuses as a name: give it back as the tuple.
    return tuple(name) if isinstance(name, list) else name

def check_file(path: Path) -> int:
    """Read a Parquet data file in full, a row group at a time, checking its page checksums.

    Also refuses a file whose column chunks name another file (``file_path``),
    which labshelf never writes.  Returns the bytes read.
    """
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path, **READ_CHECKSUMS)
    except FileNotFoundError as exc:
        raise missing_file(path) from exc
    meta = parquet.metadata
    for group in range(meta.num_row_groups):
        row_group = meta.row_group(group)
        for column in range(row_group.num_columns):
            if row_group.column(column).file_path:
                raise RefersOutside(
                    f"a column chunk names the file {row_group.column(column).file_path!r}; "
                    "labshelf's own files never refer outside themselves"
                )
    total = 0
    for group in range(meta.num_row_groups):
        total += parquet.read_row_group(group).nbytes
    return total
