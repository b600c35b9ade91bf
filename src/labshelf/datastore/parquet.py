"""pandas DataFrame and Series, stored as Parquet through pyarrow.

Parquet keeps pandas' own metadata (index, column dtypes, categoricals,
time zones) for an exact round trip, and stores columns separately so one
column can be read alone.  A Series is stored as a one-column frame with a
marker in the file's key-value metadata.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidOptions, UnsupportedValue
from .formatter import Description, Formatter, Summary, missing_file, no_member

if TYPE_CHECKING:
    from ..registry.records import DatasetRef
    from .members import Member, Peek

_META_KEY = b"labshelf"
_SERIES_COLUMN = "__series__"
_COMPRESSIONS = ("zstd", "snappy", "gzip", "lz4", "brotli", "none")


class PandasFormatter(Formatter):
    kind = "pandas"
    priority = 10
    suffix = ".parquet"
    describes = "pandas.DataFrame and pandas.Series"

    def accepts(self, value: Any) -> bool:
        # Decided by class name and module, so that asking never imports pandas.
        return type(value).__name__ in ("DataFrame", "Series") and type(value).__module__.partition(".")[0] == "pandas"

    def prepare(self, value: Any) -> Any:
        if type(value).__name__ == "DataFrame":
            bad = [c for c in value.columns if not isinstance(c, str)]
            if bad:
                raise UnsupportedValue(
                    f"DataFrame column names must be str to be stored, not {bad[:3]!r}; "
                    "rename them (df.columns = df.columns.map(str))"
                )
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

        marker: dict[str, Any] = {"class": type(value).__name__}
        if marker["class"] == "Series":
            marker["name"] = value.name
            value = value.to_frame(name=_SERIES_COLUMN)
        table = pa.Table.from_pandas(value, preserve_index=True)
        metadata = dict(table.schema.metadata or {})
        metadata[_META_KEY] = json.dumps(marker).encode()
        table = table.replace_schema_metadata(metadata)
        compression = options.get("compression", "zstd")
        pq.write_table(table, path, compression=None if compression == "none" else compression)

    def read(
        self, paths: Sequence[Path], name: str, ref: DatasetRef, parameters: Mapping[str, Any]
    ) -> Any:
        import pyarrow.parquet as pq

        (path,) = paths
        try:
            table = pq.read_table(path)
        except FileNotFoundError as exc:
            raise missing_file(path) from exc
        marker = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
        frame = table.to_pandas()
        if marker.get("class") == "Series":
            series = frame[_SERIES_COLUMN]
            series.name = marker.get("name")
            return series
        return frame

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
        marker = json.loads((schema.metadata or {}).get(_META_KEY, b"{}"))
        if component == "index":
            wanted: list[str] = []
        elif component == "values" and columns == [_SERIES_COLUMN]:
            wanted = [_SERIES_COLUMN]
        elif component.startswith("columns.") and component[len("columns.") :] in columns:
            wanted = [component[len("columns.") :]]
        else:
            raise self.no_component(paths, ref, component)
        # Column projection: Parquet reads only the chosen column chunks (and the index).
        frame = pq.read_pandas(path, columns=wanted).to_pandas()
        if component == "index":
            return frame.index
        series = frame[wanted[0]]
        if wanted[0] == _SERIES_COLUMN:
            series.name = marker.get("name")
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
