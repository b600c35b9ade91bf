"""The layers, pinned: front ends reach data through Shelf and browse only; lower layers import no upper one.

Every module of ``src/labshelf`` is read with ``ast`` (nothing is imported
or run), its imports resolved to absolute module names, relative ones
included, and checked against the rules of DESIGN.md:

- front ends (``widgets/``, ``kernel_ext/``, ``server/``, ``display.py``) and
  ``browse/`` never import the registry's tables or engine, the SQL or file
  libraries (SQLAlchemy, h5py, pyarrow, h5netcdf), nor the datastore's
  modules at run time; front ends reach the Shelf's internals only through
  browse, never the registry or datastore objects it holds;
- ``registry/`` and ``datastore/`` import nothing of labshelf but each
  other's records, ``errors``, ``names`` and ``_faults``;
- ``registry/``, ``datastore/`` and ``browse/`` (which the sidebar's server
  uses without a kernel) import nothing of Jupyter: IPython, anywidget,
  ipywidgets, traitlets, bokeh, jupyter_server, tornado.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import labshelf

SOURCE = Path(labshelf.__file__).parent

FRONT_ENDS = ("widgets/", "kernel_ext/", "server/", "display.py")
BROWSE = ("browse/",)
LOWER = ("registry/", "datastore/")
JUPYTER = ("IPython", "anywidget", "ipywidgets", "traitlets", "bokeh", "jupyter_server", "tornado")

#: What front ends and browse never import (prefixes of absolute module names).
NO_DATA_ACCESS = (
    "labshelf.registry.schema",
    "labshelf.registry.engine",
    "labshelf.registry.registry",
    "sqlalchemy",
    "sqlite3",
    "psycopg",
    "h5py",
    "pyarrow",
    "h5netcdf",
    "netCDF4",
)
#: What front ends import neither (browse may, for types and the registry's listing queries).
FRONT_END_ONLY = ("labshelf.registry.listing", "labshelf.datastore")
#: Attributes of the Shelf that hold the registry and the datastore: never touched above the Shelf.
SHELF_INSIDES = ("_registry", "_datastore", "_repos", "_writer", "_by_where")
#: The Shelf's doors for browse; front ends go through browse instead.
BROWSE_DOORS = ("_listing", "_members", "_peek", "_annotations")
#: What the lower layers may import of labshelf.
LOWER_ALLOWED = ("labshelf.errors", "labshelf.names", "labshelf._faults", "labshelf.registry", "labshelf.datastore")


@dataclass(frozen=True)
class Import:
    module: str
    line: int
    type_only: bool  # inside ``if TYPE_CHECKING:``


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, root: Path) -> Iterator[Import]:
    """Every import of a module, as absolute module names (``from a import b`` gives ``a`` and ``a.b``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    type_only_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                for sub in ast.walk(inner):
                    if hasattr(sub, "lineno"):
                        type_only_lines.add(sub.lineno)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, node.lineno, node.lineno in type_only_lines)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield Import(target, node.lineno, node.lineno in type_only_lines)
            for alias in node.names:
                yield Import(f"{target}.{alias.name}", node.lineno, node.lineno in type_only_lines)


def attributes(path: Path) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute):
            yield node.attr, node.lineno


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(root: Path) -> list[str]:
    """Every broken layer rule in the package at ``root``, one line each."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        where = f"{relative}"
        front_end = relative.startswith(FRONT_ENDS)
        browse = relative.startswith(BROWSE)
        lower = relative.startswith(LOWER)
        for imp in imports(path, root):
            top = imp.module.split(".")[0]
            if (front_end or browse) and _under(imp.module, NO_DATA_ACCESS):
                found.append(f"{where}:{imp.line} imports {imp.module}: front ends and browse reach data through the Shelf")
            if front_end and not imp.type_only and _under(imp.module, FRONT_END_ONLY):
                found.append(f"{where}:{imp.line} imports {imp.module}: front ends ask labshelf.browse")
            if lower and top == "labshelf" and not _under(imp.module, LOWER_ALLOWED):
                found.append(f"{where}:{imp.line} imports {imp.module}: registry/ and datastore/ import no upper layer")
            if (lower or browse) and top in JUPYTER:
                found.append(f"{where}:{imp.line} imports {imp.module}: registry, datastore and browse know no Jupyter")
        if front_end or browse:
            for attr, line in attributes(path):
                if attr in SHELF_INSIDES:
                    found.append(f"{where}:{line} uses .{attr}: the registry and datastore stay behind the Shelf")
                if front_end and attr in BROWSE_DOORS:
                    found.append(f"{where}:{line} uses .{attr}: front ends ask labshelf.browse")
    return found


def test_the_source_tree_keeps_its_layers() -> None:
    assert (SOURCE / "browse").is_dir() and (SOURCE / "widgets").is_dir() and (SOURCE / "server").is_dir()
    assert violations(SOURCE) == []


def test_html_lives_above_the_registry() -> None:
    records = SOURCE / "registry" / "records.py"
    modules = {imp.module for imp in imports(records, SOURCE)}
    assert not any(m.startswith("labshelf.display") for m in modules)
    assert "_repr_html_" in records.read_text()  # still there: delegated to a renderer the shelf installs


@pytest.mark.parametrize(
    ("relative", "source", "expected"),
    [
        ("widgets/tree.py", "from ..registry.schema import datasets\n", "imports labshelf.registry.schema"),
        ("widgets/tree.py", "from ..registry import engine\n", "imports labshelf.registry.engine"),
        ("kernel_ext/lookup.py", "import sqlalchemy as sa\n", "imports sqlalchemy"),
        ("display.py", "def f(shelf):\n    import h5py\n", "imports h5py"),
        ("server/handlers.py", "import pyarrow.parquet as pq\n", "imports pyarrow.parquet"),
        ("server/handlers.py", "def f(shelf):\n    return shelf._listing.version()\n", "uses ._listing"),
        ("server/events.py", "from ..registry.listing import Listing\n", "imports labshelf.registry.listing"),
        ("server/extension.py", "def f():\n    import sqlalchemy\n", "imports sqlalchemy"),
        ("server/places.py", "from ..datastore.store import Datastore\n", "imports labshelf.datastore.store"),
        ("browse/tree.py", "from ..registry.schema import runs\n", "imports labshelf.registry.schema"),
        ("widgets/gallery.py", "from ..datastore.hdf5 import open_file\n", "imports labshelf.datastore.hdf5"),
        ("widgets/gallery.py", "from ..registry.listing import Listing\n", "imports labshelf.registry.listing"),
        ("widgets/table.py", "def f(shelf):\n    return shelf._registry.db\n", "uses ._registry"),
        ("display.py", "def f(shelf):\n    return shelf._listing.runs(0, 1)\n", "uses ._listing"),
        ("browse/previews.py", "def f(shelf):\n    return shelf._datastore.root\n", "uses ._datastore"),
        ("registry/listing.py", "from ..browse import Browser\n", "imports labshelf.browse"),
        ("registry/records.py", "def f():\n    from ..display import ref_html\n", "imports labshelf.display"),
        ("datastore/members.py", "from ..shelf import Shelf\n", "imports labshelf.shelf"),
        ("browse/browser.py", "import IPython\n", "imports IPython"),
        ("datastore/image.py", "from IPython.display import display\n", "imports IPython.display"),
        ("registry/engine.py", "import traitlets\n", "imports traitlets"),
    ],
)
def test_the_check_finds_each_kind_of_breach(tmp_path: Path, relative: str, source: str, expected: str) -> None:
    root = tmp_path / "labshelf"
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    (root / "__init__.py").write_text("")
    target.write_text(source)
    found = violations(root)
    assert len([v for v in found if expected in v]) >= 1, found
    assert all(v.startswith(relative) for v in found)


def test_type_only_imports_of_records_are_fine(tmp_path: Path) -> None:
    root = tmp_path / "labshelf"
    (root / "widgets").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "widgets" / "tree.py").write_text(
        "from typing import TYPE_CHECKING\nfrom ..registry.records import DatasetRef\n"
        "if TYPE_CHECKING:\n    from ..registry.listing import RunEntry\n"
    )
    assert violations(root) == []
