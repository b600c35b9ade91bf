"""A writer of DAMNIT folders for the tests and benchmarks (``../shared/FORMATS.md``, DAMNIT format 4).

It lays out what DAMNIT 0.3/0.4 leaves on disk: ``runs.sqlite`` with the
tables of DAMNIT's migrations up to version 4 (``metameta``, ``run_info``,
``run_variables``, ``variables``, ``time_comments``, ``tags``,
``variable_tags``, the ``runs``/``max_diffs`` views), ``context.py``, and
``extracted_data/p<proposal>_r<run>.h5`` with ``<name>/data``, xarray groups
(``_damnit_objtype``), ``.reduced/<name>`` and ``.errors/<name>``.  Summaries
follow DAMNIT's rules: scalars and strings as they are, complex numbers as 16
bytes, 2-D arrays as a PNG thumbnail, other arrays as ``"<dtype>: <shape>"``.
"""

from __future__ import annotations

import io
import json
import sqlite3
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

START = 1_700_000_000.0
CONTEXT = """from damnit_ctx import Variable

@Variable(title="Beam/XGM mean", unit="uJ")
def xgm_mean(run, n: "meta#run_number"):
    return n * 1.5
"""

SCHEMA = """
CREATE TABLE run_info(proposal, run, start_time, added_at);
CREATE UNIQUE INDEX proposal_run ON run_info (proposal, run);
CREATE TABLE run_variables(proposal, run, name, version, value, timestamp, max_diff, provenance,
                           summary_type, summary_method, attributes);
CREATE UNIQUE INDEX variable_version ON run_variables (proposal, run, name, version);
CREATE TABLE metameta(key PRIMARY KEY NOT NULL, value);
CREATE TABLE variables(name TEXT PRIMARY KEY NOT NULL, type TEXT, title TEXT, description TEXT, attributes TEXT);
CREATE TABLE time_comments(timestamp, comment);
CREATE TABLE tags(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE NOT NULL);
CREATE TABLE variable_tags(variable_name TEXT NOT NULL, tag_id INTEGER NOT NULL,
    FOREIGN KEY (variable_name) REFERENCES variables(name) ON DELETE CASCADE,
    FOREIGN KEY (tag_id) REFERENCES tags(id) ON DELETE CASCADE, PRIMARY KEY (variable_name, tag_id));
"""


@dataclass
class Var:
    """One variable of one run: its full value (in the run file), summary, error and attributes."""

    value: Any = None  # None: nothing in the run file
    summary: Any = ...  # ...: computed from value as DAMNIT does; None: a NULL summary
    error: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    provenance: str = "context.py"
    timestamp: float | None = None
    version: int = 1
    in_file: bool = True


def png_bytes(array: np.ndarray) -> bytes:
    """A PNG of a 2-D array (as DAMNIT's thumbnails are: small, 8-bit)."""
    from PIL import Image

    data = np.asarray(array, dtype=np.float64)
    low, high = float(np.nanmin(data)), float(np.nanmax(data))
    scaled = (
        np.zeros(data.shape, np.uint8)
        if high == low
        else ((data - low) / (high - low) * 255).astype(np.uint8)
    )
    out = io.BytesIO()
    Image.fromarray(scaled[:35, :35], "L").save(out, format="PNG")
    return out.getvalue()


def summary_of(value: Any) -> tuple[Any, str | None]:
    """DAMNIT's summary of a value (what ``run_variables.value`` holds) and its summary_type."""
    import xarray as xr

    if isinstance(value, str):
        return value, None
    if isinstance(value, xr.Dataset):
        return f"Dataset ({value.nbytes / 1e6:.2f}MB)", None
    array = np.asarray(value.values if isinstance(value, xr.DataArray) else value)
    if array.ndim == 0:
        item = array.item()
        if isinstance(item, complex):
            return struct.pack("<dd", item.real, item.imag), "complex"
        return item, None
    if array.ndim == 2:
        return png_bytes(array), None
    return f"{array.dtype}: {array.shape}", None


def write_damnit(
    folder: Path,
    runs: dict[int, dict[str, Var]],
    *,
    proposal: int = 1234,
    variables: dict[str, dict[str, Any]] | None = None,
    tags: dict[str, list[str]] | None = None,
    comments: list[tuple[float, str]] = (),  # type: ignore[assignment]
    start: float = START,
    context: str | None = CONTEXT,
    db_id: str = "0123456789abcdef0123456789abcdef01234567",
    files: bool = True,
) -> Path:
    """A DAMNIT folder with ``runs`` (run -> variable -> Var) of ``proposal``; adds to an existing one."""
    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "runs.sqlite"
    new = not database.exists()
    connection = sqlite3.connect(database)
    try:
        with connection:
            if new:
                connection.executescript(SCHEMA)
                connection.executemany(
                    "INSERT INTO metameta VALUES (?, ?)",
                    [
                        ("data_format_version", 4),
                        ("proposal", proposal),
                        ("db_id", db_id),
                        ("context_python", "/usr/bin/python3"),
                        ("concurrent_jobs", 15),
                    ],
                )
            for name, spec in (variables or {}).items():
                connection.execute(
                    "INSERT OR REPLACE INTO variables VALUES (?, ?, ?, ?, ?)",
                    (
                        name,
                        spec.get("type"),
                        spec.get("title"),
                        spec.get("description"),
                        json.dumps(spec["attributes"]) if spec.get("attributes") else None,
                    ),
                )
            for name, names in (tags or {}).items():
                for tag in names:
                    connection.execute("INSERT OR IGNORE INTO tags (name) VALUES (?)", (tag,))
                    tag_id = connection.execute("SELECT id FROM tags WHERE name = ?", (tag,)).fetchone()[0]
                    connection.execute("INSERT OR IGNORE INTO variable_tags VALUES (?, ?)", (name, tag_id))
            connection.executemany("INSERT INTO time_comments VALUES (?, ?)", list(comments))
            for run, values in runs.items():
                begun = start + 600.0 * run
                connection.execute(
                    "INSERT INTO run_info VALUES (?, ?, ?, ?) ON CONFLICT (proposal, run) DO NOTHING",
                    (proposal, run, begun, begun + 1),
                )
                for name, var in values.items():
                    summary, summary_type = (
                        summary_of(var.value)
                        if var.summary is ... and var.value is not None
                        else (None if var.summary is ... else var.summary, None)
                    )
                    if isinstance(summary, complex):
                        summary, summary_type = struct.pack("<dd", summary.real, summary.imag), "complex"
                    stamp = var.timestamp if var.timestamp is not None else begun + 60.0
                    connection.execute(
                        "INSERT OR REPLACE INTO run_variables VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            proposal,
                            run,
                            name,
                            var.version,
                            summary,
                            stamp,
                            None,
                            var.provenance,
                            summary_type,
                            "",
                            json.dumps(var.attributes) if var.attributes else None,
                        ),
                    )
            names = sorted(
                {r[0] for r in connection.execute("SELECT name FROM run_variables")}
                | {r[0] for r in connection.execute("SELECT name FROM variables")}
            )
            columns = ", ".join(f"max(CASE WHEN name='{n}' THEN value END) AS \"{n}\"" for n in names)
            connection.executescript(
                "DROP VIEW IF EXISTS runs; DROP VIEW IF EXISTS max_diffs;"
                f"CREATE VIEW runs AS SELECT run_info.proposal, run_info.run, start_time, added_at"
                f"{', ' + columns if columns else ''} FROM run_variables INNER JOIN run_info ON "
                "run_variables.proposal = run_info.proposal AND run_variables.run = run_info.run GROUP BY run_info.run;"
                "CREATE VIEW max_diffs AS SELECT proposal, run FROM run_variables GROUP BY run;"
            )
    finally:
        connection.close()
    if context is not None:
        (folder / "context.py").write_text(context)
    if files:
        for run, values in runs.items():
            write_run_file(folder, proposal, run, values)
    return folder


def write_run_file(folder: Path, proposal: int, run: int, values: dict[str, Var]) -> Path:
    """``extracted_data/p<proposal>_r<run>.h5`` as DAMNIT's ``Results.save_hdf5`` leaves it."""
    import xarray as xr

    path = folder / "extracted_data" / f"p{proposal}_r{run}.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    xarrays = []
    with h5py.File(path, "a") as f:
        for name, var in values.items():
            for where in (name, f".reduced/{name}", f".errors/{name}"):
                if where in f:
                    del f[where]
            if var.error is not None:
                f.create_dataset(f".errors/{name}", data=var.error, dtype=h5py.string_dtype())
            if var.value is None or not var.in_file:
                continue
            summary, _ = summary_of(var.value)
            if isinstance(summary, bytes) and summary.startswith(b"\x89PNG"):
                f.create_dataset(f".reduced/{name}", data=np.frombuffer(summary, dtype=np.uint8))
            elif isinstance(summary, str):
                f.create_dataset(f".reduced/{name}", data=summary, dtype=h5py.string_dtype())
            elif not isinstance(summary, bytes):
                f[f".reduced/{name}"] = summary
            reduced = f.get(f".reduced/{name}")
            if reduced is not None:
                reduced.attrs["summary_method"] = ""
                for key, attr in var.attributes.items():
                    reduced.attrs[key] = attr
            if isinstance(var.value, (xr.DataArray, xr.Dataset)):
                f.require_group(name).attrs["_damnit_objtype"] = (
                    "dataarray" if isinstance(var.value, xr.DataArray) else "dataset"
                )
                xarrays.append((name, var.value))
            elif isinstance(var.value, str):
                f.create_dataset(f"{name}/data", data=var.value, dtype=h5py.string_dtype())
            else:
                f[f"{name}/data"] = np.asarray(var.value)
    for name, value in xarrays:
        value.to_netcdf(path, mode="a", format="NETCDF4", group=name, engine="h5netcdf")
    return path
