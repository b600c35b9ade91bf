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
from .formatter import Description, Formatter, RefersOutside, Summary, missing_file

if TYPE_CHECKING:
    from ..registry.records import DatasetRef

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
        pq.write_table(table, path, compression=None if compression == "none" else compression, **WRITE_CHECKSUMS)

    def read(
        self, paths: Sequence[Path], name: str, ref: DatasetRef, parameters: Mapping[str, Any]
    ) -> Any:
        import pyarrow.parquet as pq

        (path,) = paths
        try:
            table = pq.read_table(path, **READ_CHECKSUMS)
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
        frame = pq.read_pandas(path, columns=wanted, **READ_CHECKSUMS).to_pandas()
        if component == "index":
            return frame.index
        series = frame[wanted[0]]
        if wanted[0] == _SERIES_COLUMN:
            series.name = marker.get("name")
        return series


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
