"""A shelf's context file runs only when asked for, and one outside the shelf only once confirmed.

The shelf is untrusted input: its ``context.py`` and the context path its
registry records were written by whoever gave it.  The context files here
leave a marker file whenever any of their code runs (module level, decorator
arguments, defaults, bodies), so each test can tell exactly when code ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import labshelf
from labshelf.errors import ContextError
from labshelf.trust import allow_list

HEADER = "from labshelf.derived import variable\n"

#: Runs code at every place a context file can: it writes ``marker`` each time.
MARKING = """
import pathlib
MARK = pathlib.Path({marker!r})
MARK.write_text("module level ran")

def title():
    MARK.write_text("decorator argument ran")
    return "Doubled"

@variable(title=title(), unit="V")
def doubled(run, b="background"):
    MARK.write_text("body ran")
    return 2 * b

@variable()
def quadrupled(run, d="var:doubled"):
    return 2 * d
"""


def context_text(marker: Path) -> str:
    return HEADER + textwrap.dedent(MARKING.format(marker=str(marker)))


def fill(shelf: labshelf.Shelf, n: int = 2) -> None:
    for i in range(1, n + 1):
        with shelf.new_run("scan", {"i": i}) as run:
            run.put("background", float(i))
            run.put("camera/image", np.arange(1024, dtype=np.uint16).reshape(32, 32) + i)


def labshelf_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labshelf.cli", *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})},
    )


def reprocess(shelf: labshelf.Shelf, **kwargs: object) -> labshelf.ReprocessReport:
    return shelf.reprocess(progress=False, **kwargs)  # type: ignore[arg-type]


# -- a context file in the shelf runs only when reprocessing --------------------------------------


@pytest.mark.parametrize("where", ["context.py", "ctx/mine.py"])
def test_browsing_a_shelf_never_runs_its_context_file(shelf: labshelf.Shelf, tmp_path: Path, where: str) -> None:
    fill(shelf)
    marker = tmp_path / "ran"
    path = shelf.root / where
    path.parent.mkdir(exist_ok=True)
    path.write_text(context_text(marker))
    if where != "context.py":
        shelf._registry.set_context_path(where)  # as a shelf given to us would record it
    root = str(shelf.root)

    with labshelf.open(root, mode="r") as reader:
        reader.info()
        assert reader.context_path == shelf.root / where
        reader.runs.to_pandas()
        reader.runs.to_pandas(thumbnails=True)
        reader.derived_status()
        reader._repr_html_(), reader.run(1)._repr_html_(), reader.runs._repr_html_()
        from labshelf.widgets import DatasetTree, Gallery, RunTable

        table = RunTable(reader, poll=0)
        table.close()
        DatasetTree(reader).close()
        DatasetTree(reader.run(1)).close()
        Gallery(reader, "camera/image").close()
    with labshelf.open(root) as writer:
        writer.runs.to_pandas()
    for command in (["info", root], ["ls", root], ["ls", root, "--run", "1"], ["context", "show", root]):
        result = labshelf_cli(*command)
        assert result.returncode == 0, (command, result.stderr)
    assert not marker.exists(), marker.read_text()

    # `context show` lists the variables from the text.
    shown = labshelf_cli("context", "show", root).stdout
    assert f"context file: {path.resolve()}" in shown and "2 variables, in computing order:" in shown
    assert "doubled (line " in shown and "title=(title(): known when run)" in shown and "[V]" in shown
    assert "inputs: d=var:doubled; runs: none computed yet" in shown
    assert not marker.exists()

    # Reprocessing is asking for the code to run: it does.
    report = reprocess(shelf)
    assert report.computed == 4 and report.failed == 0, report
    assert marker.exists() and shelf.get("derived/quadrupled", run=2) == 8.0


def test_the_notebook_magics_never_run_it(shelf: labshelf.Shelf, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output
    from traitlets.config import Config

    from labshelf.kernel_ext import magics

    fill(shelf)
    marker = tmp_path / "ran"
    (shelf.root / "context.py").write_text(context_text(marker))
    monkeypatch.delenv("LABSHELF", raising=False)
    monkeypatch.chdir(tmp_path)
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    ip = InteractiveShell.instance(config=config)  # one per process: leave it as it was found
    names_before = set(ip.user_ns)
    ip.run_line_magic("load_ext", "labshelf")
    try:
        with capture_output():
            for cell in (f"%shelf {shelf.root}", "%runs", "%runs background > 1", "%browse", "%browse 1",
                         "%gallery camera/image", "%ds background --run 1"):
                assert ip.run_cell(cell).success, cell
    finally:
        ip.run_line_magic("unload_ext", "labshelf")
        for name in set(ip.user_ns) - names_before:
            ip.user_ns.pop(name)
        state = magics._STATES.pop(ip, None)
        if state is not None and state.shelf is not None:
            state.shelf.close()
    assert not marker.exists()


def test_the_cli_reprocess_runs_the_shelfs_own_context_file(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    fill(shelf)
    marker = tmp_path / "ran"
    (shelf.root / "context.py").write_text(context_text(marker))
    result = labshelf_cli("reprocess", str(shelf.root))
    assert result.returncode == 0, result.stderr
    assert ": 4 computed" in result.stdout and marker.exists()


# -- a recorded context file outside the shelf ------------------------------------------------------


def hostile(shelf: labshelf.Shelf, tmp_path: Path, how: str) -> tuple[Path, Path]:
    """Make the shelf's registry name a file outside the shelf, as someone else's shelf could.

    Returns the file (resolved) and the marker it leaves when it runs.
    """
    marker = tmp_path / "ran"
    outside = tmp_path / "elsewhere" / "evil.py"
    outside.parent.mkdir()
    outside.write_text(context_text(marker))
    if how == "absolute":
        recorded = str(outside)
    elif how == "dot-dot":
        recorded = os.path.relpath(outside, shelf.root)
        assert recorded.startswith("..")
    elif how == "symlink":
        (shelf.root / "ctx.py").symlink_to(outside)
        recorded = "ctx.py"
    elif how == "symlinked folder":
        (shelf.root / "code").symlink_to(outside.parent, target_is_directory=True)
        recorded = "code/evil.py"
    else:  # the default file itself a link out of the shelf
        (shelf.root / "context.py").symlink_to(outside)
        recorded = None
    if recorded is not None:
        shelf._registry.set_context_path(recorded)
    return outside.resolve(), marker


HOW = ["absolute", "dot-dot", "symlink", "symlinked folder", "default is a link"]


@pytest.mark.parametrize("how", HOW)
def test_a_context_file_outside_the_shelf_needs_confirmation(shelf: labshelf.Shelf, tmp_path: Path, how: str) -> None:
    fill(shelf)
    outside, marker = hostile(shelf, tmp_path, how)
    with pytest.raises(ContextError) as refused:
        reprocess(shelf)
    message = str(refused.value)
    assert str(outside) in message and "outside the shelf's folder" in message
    assert "labshelf context set" in message and "trust_context=" in message and "\n" not in message
    assert refused.value.path == str(outside)
    # A caller naming another file confirms nothing.
    other = tmp_path / "other.py"
    other.write_text(HEADER)
    with pytest.raises(ContextError, match="is not the context file"):
        reprocess(shelf, trust_context=other)
    # The command line refuses in one line, and `context show` does not read the file.
    root = str(shelf.root)
    result = labshelf_cli("reprocess", root)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"labshelf reprocess: error: {message}"], result.stderr
    shown = labshelf_cli("context", "show", root)
    assert shown.returncode == 0, shown.stderr
    assert f"context file: {outside}" in shown.stdout and "not confirmed by you: not read" in shown.stdout
    assert "doubled" not in shown.stdout
    assert not marker.exists()
    assert shelf.derived_status() == []

    # Naming the file for one call runs it, and confirms nothing for the next.
    assert reprocess(shelf, trust_context=outside).computed == 4 and marker.exists()
    with pytest.raises(ContextError, match="outside the shelf's folder"):
        reprocess(shelf)
    marker.unlink()
    result = labshelf_cli("reprocess", root, "--force", "--trust-context", str(outside))
    assert result.returncode == 0, result.stderr
    assert marker.exists()


def test_set_context_confirms_the_file_for_this_user_and_this_shelf(
    shelf: labshelf.Shelf, tmp_path: Path, backend: str
) -> None:
    fill(shelf)
    outside, marker = hostile(shelf, tmp_path, "absolute")
    # The user chooses the file: it runs once, to check it, and is remembered for them.
    assert shelf.set_context(outside) == outside and marker.exists()
    marker.unlink()
    assert reprocess(shelf).computed == 4 and marker.exists()
    kept = allow_list()
    assert kept.is_file() and not kept.resolve().is_relative_to(shelf.root.resolve())
    assert kept.stat().st_mode & 0o777 == 0o600
    # Through the command line too (a new process reads the same list).
    result = labshelf_cli("reprocess", str(shelf.root), "--force")
    assert result.returncode == 0 and ": 4 computed" in result.stdout, result.stderr
    shown = labshelf_cli("context", "show", str(shelf.root)).stdout
    assert "2 variables, in computing order:" in shown and "runs: 2 ok" in shown

    # Another user (another config folder) has confirmed nothing.
    other_user = {"XDG_CONFIG_HOME": str(tmp_path / "other-user")}
    result = labshelf_cli("reprocess", str(shelf.root), "--force", env=other_user)
    assert result.returncode == 1 and "outside the shelf's folder" in result.stderr
    # A list others may write confirms nothing either.
    kept.chmod(0o666)
    with pytest.raises(ContextError, match="not confirmed|have not confirmed"):
        reprocess(shelf, force=True)
    kept.chmod(0o600)
    assert reprocess(shelf, force=True).computed == 4

    # The confirmation is for this shelf: another shelf naming the same file is refused.
    second = labshelf.create(tmp_path / "second.shelf")
    try:
        fill(second)
        second._registry.set_context_path(str(outside))
        with pytest.raises(ContextError, match="outside the shelf's folder"):
            reprocess(second)
    finally:
        second.close()


def test_the_cli_context_set_confirms_and_reprocess_then_runs(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    fill(shelf)
    outside, marker = hostile(shelf, tmp_path, "dot-dot")
    root = str(shelf.root)
    result = labshelf_cli("context", "set", root, str(outside))
    assert result.returncode == 0, result.stderr
    assert str(outside) in result.stdout and "variables: doubled, quadrupled" in result.stdout
    assert shelf._registry.context_path() == str(outside)  # recorded absolute: it is outside
    result = labshelf_cli("reprocess", root)
    assert result.returncode == 0 and ": 4 computed" in result.stdout, result.stderr


def test_a_recorded_path_that_is_no_file_is_a_clear_error(shelf: labshelf.Shelf, backend: str) -> None:
    fill(shelf, 1)
    # PostgreSQL text cannot hold NUL at all; SQLite can, and Path refuses it.
    cases = {"": "cannot read the context file", "data": "cannot read the context file"}
    if backend == "sqlite":
        cases["bad\x00name.py"] = "not a usable path"
    for recorded, phrase in cases.items():
        shelf._registry.set_context_path(recorded)
        with pytest.raises(ContextError, match=phrase):
            reprocess(shelf)
        result = labshelf_cli("context", "show", str(shelf.root))
        assert result.returncode == 1 and phrase in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_confirmations_survive_a_damaged_list(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    fill(shelf, 1)
    outside, _ = hostile(shelf, tmp_path, "absolute")
    kept = allow_list()
    kept.parent.mkdir(parents=True)
    kept.write_text("{not json")
    kept.chmod(0o600)
    with pytest.raises(ContextError, match="have not confirmed"):
        reprocess(shelf)
    shelf.set_context(outside)  # writes a new list
    assert reprocess(shelf).computed == 2
