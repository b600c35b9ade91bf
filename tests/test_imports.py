"""`import labshelf` stays cheap: heavy libraries load only when used."""

from __future__ import annotations

import subprocess
import sys

import labshelf

# The design forbids these on import; the rest we keep lazy for import time.
FORBIDDEN = {"IPython", "bokeh", "anywidget", "xarray"}
LAZY = {"pandas", "h5py", "sqlalchemy", "alembic", "PIL", "pyarrow", "numpy"}


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\n'.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return set(result.stdout.split())


def test_import_labshelf_loads_nothing_heavy() -> None:
    loaded = _modules_after("import labshelf")
    assert "labshelf" in loaded
    assert not loaded & FORBIDDEN
    assert not loaded & LAZY


def test_the_variable_decorator_is_cheap() -> None:
    loaded = _modules_after("from labshelf import variable")
    assert not loaded & FORBIDDEN and not loaded & LAZY


def test_lazy_names_resolve() -> None:
    loaded = _modules_after("import labshelf\nlabshelf.Shelf, labshelf.DatasetRef, labshelf.RunView")
    assert "sqlalchemy" in loaded
    assert not loaded & FORBIDDEN


def test_public_surface_is_pinned() -> None:
    assert labshelf.__all__ == [
        "create",
        "open",
        "upgrade",
        "repo",
        "RepoSpec",
        "trust_data",
        "Shelf",
        "Run",
        "RunRecord",
        "DatasetRef",
        "RunView",
            "DisplayMeta",
        "DataId",
        "CollectionInfo",
        "variable",
        "Formatter",
        "register_composite",
        "export",
        "errors",
        "ShelfError",
        "NotAShelf",
        "ShelfExists",
        "SchemaVersionError",
        "ReadOnlyShelf",
        "RunNotWritable",
        "InvalidName",
        "InvalidDataId",
        "InvalidOptions",
        "InvalidValue",
        "InvalidIndex",
        "UnsupportedValue",
        "InvalidParameter",
        "CollectionError",
        "RunNotFound",
        "CollectionNotFound",
            "LogEntryNotFound",
        "DatasetNotFound",
        "NotPersisted",
        "ComponentNotFound",
        "CorruptDataset",
        "IngestedFileChanged",
        "UnsafePath",
        "UnconfirmedFile",
        "IngestError",
        "ShelfBusy",
        "QuerySyntaxError",
        "ContextError",
        "__version__",
    ]
    for name in labshelf.__all__:
        assert getattr(labshelf, name) is not None


def test_errors_subclass_the_builtin_they_mean() -> None:
    assert issubclass(labshelf.DatasetNotFound, KeyError)
    assert issubclass(labshelf.RunNotFound, KeyError)
    assert issubclass(labshelf.InvalidName, ValueError)
    assert issubclass(labshelf.ReadOnlyShelf, PermissionError)
    assert issubclass(labshelf.UnsupportedValue, TypeError)
    assert issubclass(labshelf.NotAShelf, FileNotFoundError)
    # KeyError would quote the message; ours read as sentences.
    assert str(labshelf.DatasetNotFound("no dataset 'x'")) == "no dataset 'x'"
