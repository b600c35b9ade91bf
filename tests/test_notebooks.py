"""Every notebook in notebooks/ runs clean, and is committed without outputs.

Each notebook is executed with nbclient in a temporary copy of the
notebooks folder, next to a freshly built ``demo.shelf`` — where ``make
demo`` and ``binder/postBuild`` put it, and where the notebooks open it —
with a small number of runs to keep this quick.  The kernel is this venv's
Python: jupyter_client starts the ``python3`` kernel with the interpreter
running the tests, and every Jupyter/IPython directory is temporary so no
kernelspec or startup file from the user's home is used (a last cell checks
the kernel's interpreter).

A notebook fails on any error output (nbclient stops at the first) and on a
traceback printed to stderr.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

import labshelf
import labshelf.demo

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))
#: Fewer than the 200 of `make demo`: enough for every query and gallery in the notebooks.
DEMO_RUNS = 40
CELL_TIMEOUT = 300
#: Text each notebook's outputs must contain (reprs and fallback HTML of what it shows), beyond running clean.
SHOWS = {
    "quickstart.ipynb": ["opened demo.shelf", "<RunTable ", "<DatasetTree ", "<Gallery 'camera/image'", "(512, 512)",
                         "Temperature per run"],
    "derived-variables.ipynb": ["60 computed", "derived/centre_x", "derived/drift", "derived/peak_energy",
                                "0 computed, 60 up to date"],
    "collections.ipynb": ["('calib/blessed',)", "CHAINED collection 'calib/current'", "['image', 'psf_sigma']",
                          "(10, 20) (32, 32) (128, 128)"],
}


def test_the_notebooks_are_there() -> None:
    names = {p.name for p in ALL}
    assert {"quickstart.ipynb", "derived-variables.ipynb", "collections.ipynb"} <= names, names


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_committed_without_outputs(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["metadata"]["kernelspec"]["name"] == "python3"
    for index, cell in enumerate(doc["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name} cell {index} has outputs: clear them before committing"
            assert cell.get("execution_count") is None, f"{path.name} cell {index} has an execution count"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of notebooks/ (without any demo.shelf in it) with a new small demo.shelf."""
    folder = tmp_path_factory.mktemp("notebooks") / "notebooks"
    shutil.copytree(NOTEBOOKS, folder, ignore=shutil.ignore_patterns("*.shelf", ".ipynb_checkpoints"))
    with labshelf.create(folder / "demo.shelf") as shelf:
        labshelf.demo.build(shelf, runs=DEMO_RUNS)
    return folder


@pytest.fixture
def jupyter_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        folder = tmp_path / name.lower()
        folder.mkdir()
        monkeypatch.setenv(name, str(folder))
    for name in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "LABSHELF"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_runs_clean(path: Path, workdir: Path, jupyter_dirs: None) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(workdir / path.name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    client.execute()  # raises CellExecutionError, with the traceback, at the first error

    shown = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"cell {index}: {out.get('ename')}: {out.get('evalue')}"
            if out["output_type"] == "stream" and out["name"] == "stderr":
                assert "Traceback" not in out["text"], f"cell {index} printed a traceback:\n{out['text']}"
            shown.append(out.get("text", ""))
            shown.extend(v for v in out.get("data", {}).values() if isinstance(v, str))
    text = "\n".join(shown)
    missing = [s for s in SHOWS.get(path.name, []) if s not in text]
    assert not missing, f"{path.name} did not show {missing}"
    last = nb.cells[-1]["outputs"]
    assert Path(last[0]["text"].strip()) == Path(sys.executable), "the kernel is not this venv's Python"
