"""Nothing read from a shelf can execute code: no pickle, no eval, on any path.

Two kinds of check: the source of labshelf uses no unpickling or evaluating
call at all, and a shelf whose registry rows and data files were tampered with
to carry a pickle payload fails to read without running it.
"""

from __future__ import annotations

import ast
import base64
import json
import pickle
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import labshelf

SOURCE = Path(labshelf.__file__).parent

#: Modules whose import would mean reading code, not data.
FORBIDDEN_MODULES = {
    "pickle",
    "cPickle",
    "_pickle",
    "dill",
    "cloudpickle",
    "joblib",
    "marshal",
    "shelve",
    "jsonpickle",
}
#: Calls that evaluate text or unpickle, whatever object they hang off (``df.eval``, ``pd.read_pickle``).
FORBIDDEN_CALLS = {"eval", "exec", "read_pickle"}


def source_files() -> list[Path]:
    files = sorted(SOURCE.rglob("*.py"))
    assert SOURCE / "datastore" / "scalar.py" in files  # the scan sees the package
    return files


def forbidden(source: str, where: str) -> list[str]:
    """What in ``source`` could run code from data: imports, calls, ``allow_pickle``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        found += [f"{where}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in FORBIDDEN_MODULES]
        if isinstance(node, (ast.Name, ast.Attribute)):
            identifier = node.id if isinstance(node, ast.Name) else node.attr
            if "pickle" in identifier.lower():
                found.append(f"{where}:{node.lineno} uses {identifier}")
        if isinstance(node, ast.Call):
            func = node.func
            called = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            if called in FORBIDDEN_CALLS:
                found.append(f"{where}:{node.lineno} calls {called}()")
            # ``__import__("pandas")`` is a lazy import; a name computed at run time could come from data.
            literal = bool(node.args) and isinstance(node.args[0], ast.Constant)
            if called == "__import__" and not literal:
                found.append(f"{where}:{node.lineno} imports a computed name")
            for k in node.keywords:
                if k.arg == "allow_pickle" and not (
                    isinstance(k.value, ast.Constant) and k.value.value is False
                ):
                    found.append(f"{where}:{node.lineno} passes allow_pickle={ast.unparse(k.value)}")
    return found


def test_source_has_no_pickle_or_eval_text() -> None:
    for path in source_files():
        text = path.read_text()
        for needle in ("allow_pickle=True", "eval(", "exec(", "import pickle", "from pickle"):
            assert needle not in text, f"{path.relative_to(SOURCE)} contains {needle!r}"


def test_source_has_no_pickle_or_eval_code() -> None:
    """The same on the syntax tree, where docstrings may say "pickle" and code may not."""
    found = [
        hit for path in source_files() for hit in forbidden(path.read_text(), str(path.relative_to(SOURCE)))
    ]
    assert found == []


@pytest.mark.parametrize(
    "snippet",
    [
        "import pickle",
        "import cloudpickle as cp",
        "from marshal import loads",
        "x = np.load(f, allow_pickle=True)",
        "x = np.load(f, allow_pickle=flag)",
        "frame = pd.read_pickle(path)",
        "value = eval(text)",
        "exec(code)",
        "df.eval('a + b')",
        "mod = __import__(name)",
        "loads = pickle_loads",
    ],
)
def test_the_scan_flags_what_it_looks_for(snippet: str) -> None:
    assert forbidden(snippet, "snippet") != []


def test_the_scan_passes_plain_code() -> None:
    plain = (
        "import json\nvalue = json.loads(text)\npattern = re.compile('x')\nnp.load(f, allow_pickle=False)\n"
        "pd = __import__('pandas')\n"
    )
    assert forbidden(plain, "snippet") == []


# -- tampered shelves ----------------------------------------------------------------------------


class _Trap:
    """Unpickling this creates ``path``: proof that code ran."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


@pytest.fixture
def trap(tmp_path: Path) -> Iterator[Path]:
    """The file a payload would create; the test fails if it ever exists."""
    path = tmp_path / "code-ran"
    yield path
    assert not path.exists(), "reading a tampered shelf executed code"


def payload(trap: Path) -> str:
    return base64.b64encode(pickle.dumps(_Trap(trap))).decode("ascii")


def object_array_payload(trap: Path) -> str:
    array = np.empty(1, dtype=object)
    array[0] = _Trap(trap)
    return base64.b64encode(pickle.dumps(array)).decode("ascii")


def set_inline(shelf: labshelf.Shelf, name: str, inline: str) -> None:
    with sqlite3.connect(shelf.root / "registry.sqlite3") as db:
        changed = db.execute("UPDATE datasets SET inline = ? WHERE name = ?", (inline, name)).rowcount
    db.close()
    assert changed == 1


def tampered_arrays(trap: Path) -> list[str]:
    return [
        json.dumps({"dtype": "O", "shape": [1], "b64": object_array_payload(trap)}),
        json.dumps({"dtype": "|O", "shape": [1], "b64": payload(trap)}),
        json.dumps({"dtype": "object", "shape": [1], "b64": payload(trap)}),
        json.dumps({"dtype": [["a", "O"]], "shape": [1], "b64": payload(trap)}),
        json.dumps({"dtype": "str", "shape": [1], "items": [{"py/reduce": payload(trap)}]}),
        json.dumps({"dtype": "str", "shape": [2], "items": ["fine", 1]}),
        json.dumps({"dtype": "<f8", "shape": [1000], "b64": payload(trap)}),
        json.dumps({"pickle": payload(trap)}),
        "cos\nsystem\n(S'touch pwned'\ntR.",  # a raw pickle instead of JSON
    ]


def tampered_scalars(trap: Path) -> list[str]:
    return [
        json.dumps({"t": "numpy", "dtype": "O", "v": payload(trap)}),
        json.dumps({"t": "numpy", "dtype": "|O8", "v": payload(trap)}),
        json.dumps({"t": "pickle", "v": payload(trap)}),
        json.dumps({"t": "int", "v": payload(trap)}),
        json.dumps({"t": "str", "v": ["not", "a", "str"]}),
        json.dumps({"t": "bool", "v": 1}),
        json.dumps({"v": payload(trap)}),
        json.dumps([payload(trap)]),
    ]


def test_tampered_inline_array_raises_without_running_code(sqlite_shelf: labshelf.Shelf, trap: Path) -> None:
    with sqlite_shelf.new_run() as run:
        run.put("counts", np.arange(3))
        run.put("other", np.arange(4))
    for inline in tampered_arrays(trap):
        set_inline(sqlite_shelf, "counts", inline)
        with pytest.raises((ValueError, labshelf.CorruptDataset)):
            sqlite_shelf.get("counts", run=run.number)
    np.testing.assert_array_equal(sqlite_shelf.get("other", run=run.number), np.arange(4))


def test_tampered_inline_scalar_raises_without_running_code(sqlite_shelf: labshelf.Shelf, trap: Path) -> None:
    with sqlite_shelf.new_run() as run:
        run.put("temperature", 301.2)
        run.put("other", np.float32(1.5))
    for inline in tampered_scalars(trap):
        set_inline(sqlite_shelf, "temperature", inline)
        with pytest.raises((ValueError, labshelf.CorruptDataset)):
            sqlite_shelf.get("temperature", run=run.number)
    assert sqlite_shelf.get("other", run=run.number) == np.float32(1.5)


@pytest.mark.parametrize("claimed", ["|O", "O", "object", "not-a-dtype"])
def test_hdf5_file_claiming_an_object_dtype_is_corrupt(
    sqlite_shelf: labshelf.Shelf, trap: Path, claimed: str
) -> None:
    with sqlite_shelf.new_run() as run:
        ref = run.put("trace", np.arange(5000, dtype="i8"))
    path = sqlite_shelf.root / ref.storage.files[0]
    with h5py.File(path, "r+") as f:
        f["trace"].attrs["labshelf_dtype"] = claimed
    with pytest.raises(labshelf.CorruptDataset, match="damaged"):
        sqlite_shelf.get("trace", run=run.number)


def test_parquet_file_with_a_pickled_extension_type_runs_no_code(
    sqlite_shelf: labshelf.Shelf, trap: Path
) -> None:
    """pyarrow's old ``arrow.py_extension_type`` unpickled its metadata (CVE-2023-47248)."""
    with sqlite_shelf.new_run() as run:
        ref = run.put("table", pd.DataFrame({"x": [1, 2]}))
    field = pa.field(
        "x",
        pa.int64(),
        metadata={
            b"ARROW:extension:name": b"arrow.py_extension_type",
            b"ARROW:extension:metadata": pickle.dumps(_Trap(trap)),
        },
    )
    table = pa.table({"x": pa.array([1, 2])}).cast(pa.schema([field]))
    pq.write_table(table, sqlite_shelf.root / ref.storage.files[0])
    try:
        got = sqlite_shelf.get("table", run=run.number)
    except labshelf.CorruptDataset:
        return  # refusing the file is fine too; the trap fixture checks no code ran
    assert got["x"].tolist() == [1, 2]
