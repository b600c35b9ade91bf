"""The IPython extension, through a real IPython shell: loading, magics, errors, completion."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import labshelf
from labshelf.kernel_ext import magics

README = Path(__file__).resolve().parents[1] / "README.md"
MAGICS = ("shelf", "runs", "browse", "gallery", "ds", "subscribe")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
RUNS = 12


# -- fixtures ---------------------------------------------------------------------------------


def fill(shelf: labshelf.Shelf, runs: int = RUNS) -> None:
    """Runs like the demo's, small: scalars, an image, an array, data IDs; run 2 has one more dataset."""
    rng = np.random.default_rng(0)
    for i in range(1, runs + 1):
        with shelf.new_run("rabi_scan" if i % 2 else "beam_profile", {"detuning": i / 10}) as run:
            run.put("temperature", 300.0 + i)
            run.put("camera/image", rng.integers(0, 4000, (32, 32), dtype=np.uint16))
            run.put("scan/x", np.linspace(0.0, 1.0, 11))
            run.put("pmt", i, data_id={"channel": 2})
            run.put("pmt", 100 + i, data_id={"channel": 3})
            if i == 2:
                run.put("extra/only2", "hello")


@pytest.fixture(scope="module")
def shell() -> Any:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"  # keep the tests out of ~/.ipython
    return InteractiveShell.instance(config=config)


@pytest.fixture
def ip(shell: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The shell with labshelf loaded, in an empty working folder, no $LABSHELF; cleaned after."""
    monkeypatch.delenv("LABSHELF", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    empty = tmp_path / "cwd"
    empty.mkdir()
    monkeypatch.chdir(empty)
    names_before = set(shell.user_ns)
    shell.run_line_magic("load_ext", "labshelf")
    yield shell
    shell.run_line_magic("unload_ext", "labshelf")
    state = magics._STATES.pop(shell, None)
    for name in set(shell.user_ns) - names_before:
        value = shell.user_ns.pop(name)
        if isinstance(value, labshelf.Shelf) and value is not getattr(state, "shelf", None):
            value.close()
    if state is not None and state.shelf is not None:
        state.shelf.close()


@pytest.fixture
def filled(shelf: labshelf.Shelf) -> labshelf.Shelf:
    fill(shelf)
    return shelf


def run(ip: Any, cell: str, capsys: pytest.CaptureFixture[str]) -> tuple[Any, str, str]:
    """Run a cell; (its result, stdout, stderr)."""
    result = ip.run_cell(cell, store_history=True)
    out, err = capsys.readouterr()
    return result, out, err


def use(ip: Any, shelf: labshelf.Shelf, capsys: pytest.CaptureFixture[str]) -> None:
    result, _out, err = run(ip, f"%shelf {shelf.root}", capsys)
    assert result.success and not err


# -- loading -------------------------------------------------------------------------------------


def test_load_registers_and_unload_removes(shell: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    html = shell.display_formatter.formatters["text/html"]
    matchers_before = list(shell.Completer.custom_matchers)
    list_printer_before = html.type_printers.get(list)

    shell.run_line_magic("load_ext", "labshelf")
    try:
        for name in MAGICS:
            assert shell.find_line_magic(name) is not None, name
        assert len(shell.Completer.custom_matchers) == len(matchers_before) + 1
        assert html.type_printers.get(list) is not list_printer_before

        shell.run_line_magic("reload_ext", "labshelf")
        for name in MAGICS:
            assert shell.find_line_magic(name) is not None, name
        # Reloading replaces, never stacks.
        assert len(shell.Completer.custom_matchers) == len(matchers_before) + 1
    finally:
        shell.run_line_magic("unload_ext", "labshelf")

    for name in MAGICS:
        assert shell.find_line_magic(name) is None, name
    assert "LabshelfMagics" not in shell.magics_manager.registry
    assert shell.Completer.custom_matchers == matchers_before
    assert html.type_printers.get(list) is list_printer_before
    assert not shell.run_cell("%runs").success  # the magic is gone


def test_reload_keeps_the_active_shelf_and_knows_its_variable(
    ip: Any, filled: labshelf.Shelf, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use(ip, filled, capsys)
    first = ip.user_ns["shelf"]
    run(ip, "%reload_ext labshelf", capsys)
    result, _out, err = run(ip, "t = %ds temperature --run 3", capsys)
    assert result.success and not err and ip.user_ns["t"] == 303.0
    other = labshelf.create(tmp_path / "other.shelf")
    other.close()
    _result, out, _err = run(ip, f"%shelf {tmp_path / 'other.shelf'}", capsys)
    # `shelf` held the extension's own shelf, so it is replaced, not kept as the user's.
    assert ip.user_ns["shelf"] is not first and ip.user_ns["shelf"].where == str(tmp_path / "other.shelf")
    assert "labshelf_shelf" not in ip.user_ns
    assert "`shelf`" in out


def test_load_ext_imports_nothing_heavy(tmp_path: Path) -> None:
    probe = (
        "import json, sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "before = set(sys.modules)\n"
        "ip.run_line_magic('load_ext', 'labshelf')\n"
        "assert ip.find_line_magic('runs') is not None\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    env = dict(os.environ, IPYTHONDIR=str(tmp_path / "ipython"))
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True, cwd=tmp_path, env=env
    )
    added = {name.split(".")[0] for name in json.loads(done.stdout.strip().splitlines()[-1])}
    assert "labshelf" in added
    heavy = {"pandas", "anywidget", "ipywidgets", "bokeh", "h5py", "sqlalchemy", "xarray", "numpy", "pyarrow"}
    assert not added & heavy


# -- the active shelf ----------------------------------------------------------------------------------


def test_shelf_magic_opens_publishes_and_shows(
    ip: Any, filled: labshelf.Shelf, capsys: pytest.CaptureFixture[str]
) -> None:
    result, out, err = run(ip, f"%shelf {filled.root} --mode r", capsys)
    assert result.success and not err
    opened = ip.user_ns["shelf"]
    assert isinstance(opened, labshelf.Shelf) and opened.mode == "r" and len(opened) == RUNS
    assert "`shelf`" in out and repr(opened) in out

    result, out, err = run(ip, "%shelf", capsys)
    assert result.success and not err
    lines = out.splitlines()
    assert lines[0] == repr(opened)
    assert f"  runs: {RUNS}" in lines
    assert any(line.startswith("  backend: ") for line in lines)
    assert labshelf.kernel_ext.active_shelf(ip) is opened


@pytest.mark.postgres
def test_shelf_magic_opens_a_url_with_its_data_folder(
    ip: Any, tmp_path: Path, pg_schemas: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = pg_schemas.new()
    with labshelf.create(pg_schemas.url, root=tmp_path / "pg.shelf", schema=schema) as made:
        fill(made, runs=2)
    result, out, err = run(ip, f"%shelf {pg_schemas.url} --schema {schema}", capsys)
    assert "root=" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "shelf" not in ip.user_ns
    result, out, err = run(ip, f"%shelf {pg_schemas.url} --schema {schema} --root {tmp_path / 'pg.shelf'} --mode r", capsys)
    assert result.success and not err
    opened = ip.user_ns["shelf"]
    assert opened.mode == "r" and len(opened) == 2 and opened.root == (tmp_path / "pg.shelf").resolve()


def test_shelf_from_the_environment_variable(
    ip: Any, filled: labshelf.Shelf, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LABSHELF", str(filled.root))
    result, out, err = run(ip, "x = %ds temperature", capsys)
    assert result.success and not err
    assert ip.user_ns["x"] == 300.0 + RUNS
    assert "$LABSHELF" in out and "`shelf`" in out
    assert ip.user_ns["shelf"].root == filled.root


def test_shelf_found_in_the_working_folder(
    ip: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    here = tmp_path / "work"
    here.mkdir()
    with labshelf.create(here / "lab.shelf") as made:
        fill(made, runs=2)
    (here / "notes.shelf").touch()  # a file, not a shelf folder: ignored
    monkeypatch.chdir(here)
    result, out, err = run(ip, "x = %ds pmt --data-id channel=3", capsys)
    assert result.success and not err
    assert ip.user_ns["x"] == 102
    assert "lab.shelf" in out and "the only *.shelf folder" in out


def test_several_shelves_in_the_working_folder_is_an_error(
    ip: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    here = tmp_path / "work"
    here.mkdir()
    for name in ("a.shelf", "b.shelf"):
        labshelf.create(here / name).close()
    monkeypatch.chdir(here)
    result, out, err = run(ip, "%runs", capsys)
    assert result.success and not out
    assert_one_error_line(err, "several shelves", "a.shelf", "b.shelf", "%shelf PATH")
    assert "shelf" not in ip.user_ns


def test_no_shelf_anywhere_says_how_to_choose_one(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    result, out, err = run(ip, "%ds temperature", capsys)
    assert result.success and not out
    assert_one_error_line(err, "no active shelf", "%shelf PATH_OR_URL", "LABSHELF")


def test_a_user_variable_named_shelf_is_never_overwritten(
    ip: Any, filled: labshelf.Shelf, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.user_ns["shelf"] = "my own shelf"
    _result, out, _err = run(ip, f"%shelf {filled.root}", capsys)
    assert ip.user_ns["shelf"] == "my own shelf"
    assert isinstance(ip.user_ns["labshelf_shelf"], labshelf.Shelf)
    assert "`shelf` is one of your variables" in out and "`labshelf_shelf`" in out
    # The magics work on it all the same.
    assert ip.run_line_magic("ds", "temperature --run 1") == 301.0

    # Both names taken: the message says how to get the shelf.
    ip.user_ns["labshelf_shelf"] = 7
    _result, out, _err = run(ip, f"%shelf {filled.root}", capsys)
    assert ip.user_ns["shelf"] == "my own shelf" and ip.user_ns["labshelf_shelf"] == 7
    assert "active_shelf()" in out
    assert isinstance(labshelf.kernel_ext.active_shelf(ip), labshelf.Shelf)


def test_a_user_who_rebinds_shelf_keeps_their_value(
    ip: Any, filled: labshelf.Shelf, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use(ip, filled, capsys)
    ip.user_ns["shelf"] = mine = labshelf.create(tmp_path / "mine.shelf")
    use(ip, filled, capsys)
    assert ip.user_ns["shelf"] is mine
    assert ip.user_ns["labshelf_shelf"].root == filled.root
    mine.close()


# -- %runs, %ds, %browse, %gallery ------------------------------------------------------------------------


def test_runs_returns_the_filtered_view(ip: Any, filled: labshelf.Shelf, capsys: pytest.CaptureFixture[str]) -> None:
    use(ip, filled, capsys)
    result, _out, err = run(ip, "t = %runs temperature > 309 and experiment == 'rabi_scan'", capsys)
    assert result.success and not err
    view = ip.user_ns["t"]
    assert isinstance(view, labshelf.RunView)
    assert view.numbers() == [11]
    assert view.query("temperature > 0").numbers() == [11]  # an ordinary view to go on from
    everything = ip.run_line_magic("runs", "")
    assert everything.numbers() == list(range(1, RUNS + 1))


def test_runs_shows_the_run_table_widget_once(
    ip: Any, filled: labshelf.Shelf, capsys: pytest.CaptureFixture[str]
) -> None:
    from IPython.utils.capture import capture_output

    from labshelf.widgets import RunTable

    use(ip, filled, capsys)
    with capture_output() as shown:
        result = ip.run_cell("%runs temperature > 310", store_history=True)
    assert result.success
    widget = magics.state(ip).last_widget
    assert isinstance(widget, RunTable)
    assert widget.view.numbers() == [11, 12]
    # The widget, and not the returned view's table a second time.
    assert [WIDGET_MIME in o.data for o in shown.outputs] == [True]
    assert isinstance(result.result, labshelf.RunView)
    # In a later cell the view displays as any RunView.
    with capture_output() as later:
        ip.run_cell("_", store_history=True)
    assert len(later.outputs) == 1 and "text/html" in later.outputs[0].data


def test_browse_shows_the_dataset_tree(ip: Any, filled: labshelf.Shelf, capsys: pytest.CaptureFixture[str]) -> None:
    from IPython.utils.capture import capture_output

    from labshelf.widgets import DatasetTree

    use(ip, filled, capsys)
    with capture_output() as shown:
        assert ip.run_line_magic("browse", "2") is None
    tree = magics.state(ip).last_widget
    assert isinstance(tree, DatasetTree) and tree.scope == "run/2"
    assert WIDGET_MIME in shown.outputs[0].data
    ip.run_line_magic("browse", "")
    assert magics.state(ip).last_widget.scope == ""


def test_gallery_shows_one_image_dataset_across_the_chosen_runs(
    ip: Any, filled: labshelf.Shelf, capsys: pytest.CaptureFixture[str]
) -> None:
    from IPython.utils.capture import capture_output

    from labshelf.widgets import Gallery

    use(ip, filled, capsys)
    with capture_output() as shown:
        assert ip.run_line_magic("gallery", "--labels temperature camera/image experiment == 'rabi_scan'") is None
    gallery = magics.state(ip).last_widget
    assert isinstance(gallery, Gallery)
    assert WIDGET_MIME in shown.outputs[0].data
    # Newest first, with a query as without one.
    chosen = filled.runs.query("experiment == 'rabi_scan'").numbers()
    runs = [tile["run"] for tile in gallery.rpc_page(0, 100).result["tiles"]]
    assert runs == sorted(chosen, reverse=True)
    with capture_output():
        ip.run_line_magic("gallery", "camera/image")
    everything = [tile["run"] for tile in magics.state(ip).last_widget.rpc_page(0, 100).result["tiles"]]
    assert everything == sorted(everything, reverse=True) and len(everything) >= len(runs)


def test_ds_loads_values(ip: Any, filled: labshelf.Shelf, capsys: pytest.CaptureFixture[str]) -> None:
    use(ip, filled, capsys)
    result, _out, err = run(ip, "x = %ds camera/image --run 5", capsys)
    assert result.success and not err
    np.testing.assert_array_equal(ip.user_ns["x"], filled.get("camera/image", run=5))
    assert ip.run_line_magic("ds", "temperature") == 300.0 + RUNS  # the newest run
    assert ip.run_line_magic("ds", "pmt --data-id channel=3 --run 4") == 104
    assert ip.run_line_magic("ds", "pmt --run 4 --data-id channel=2") == 4
    assert ip.run_line_magic("ds", "extra/only2") == "hello"  # newest run that has it: 2
    # A component is read as shelf.get reads it.
    np.testing.assert_array_equal(
        ip.run_line_magic("ds", "camera/image.thumbnail --run 3"), filled.get("camera/image.thumbnail", run=3)
    )


def test_data_id_values_are_typed() -> None:
    assert magics.parse_data_id(["channel=2", "det=a", "ok=True", "bad=false", "neg=-3"]) == {
        "channel": 2,
        "det": "a",
        "ok": True,
        "bad": False,
        "neg": -3,
    }
    assert magics.parse_data_id([]) is None


# -- mistakes are one line ---------------------------------------------------------------------------


def assert_one_error_line(err: str, *words: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("labshelf: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, err)


@pytest.mark.parametrize(
    ("cell", "words"),
    [
        ("%ds nope", ["no run", "'nope'"]),
        ("%ds temprature", ["did you mean", "'temperature'"]),
        ("%ds temperature --run 999", ["no run 999", "runs go from 1 to 12"]),
        ("%ds temperature --run abc", ["run is given by its number", "'abc'"]),
        ("%ds pmt", ["pmt[channel=2]", "pmt[channel=3]", "--data-id"]),
        ("%ds pmt --run 4", ["other data IDs", "channel=2"]),
        ("%ds pmt --data-id channel=9", ["channel=9", "pmt[channel=2]"]),
        ("%ds pmt --data-id channel", ["KEY=VALUE", "'channel'"]),
        ("%ds", ["required: NAME", "usage: %ds NAME"]),
        ("%ds 'temperature", ["closing quotation"]),
        ("%ds temperature --color red", ["unrecognized arguments", "--color"]),
        ("%runs temperature >", ["unexpected end of expression", "`temperature >`"]),
        ("%runs nosuch > 1", ["unknown column 'nosuch'"]),
        ("%browse 1 2", ["at most one run"]),
        ("%browse 999", ["no run 999"]),
        ("%gallery", ["needs the name of an image dataset"]),
        ("%gallery camera/imag", ["did you mean", "'camera/image'"]),
        ("%gallery camera/image temperature >>> 3", ["unexpected"]),
        ("%gallery --colour x camera/image", ["unknown option", "--colour"]),
        ("%shelf /no/such/place.shelf", ["/no/such/place.shelf"]),
        ("%shelf x --mode w", ["invalid choice: 'w'"]),
    ],
)
def test_mistakes_print_one_line_and_leave_the_shelf_usable(
    ip: Any, filled: labshelf.Shelf, capsys: pytest.CaptureFixture[str], cell: str, words: list[str]
) -> None:
    use(ip, filled, capsys)
    result, out, err = run(ip, f"x = {cell}", capsys)
    assert result.success, result.error_in_exec  # no exception reaches the cell
    assert ip.user_ns["x"] is None
    assert_one_error_line(err, *words)
    assert not out
    assert ip.run_line_magic("ds", "temperature --run 1") == 301.0


def test_error_lines_are_red_on_a_terminal(
    ip: Any, filled: labshelf.Shelf, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    use(ip, filled, capsys)
    monkeypatch.delenv("NO_COLOR")
    _result, _out, err = run(ip, "%ds nope", capsys)
    assert err.startswith("\x1b[31mlabshelf: ") and err.rstrip("\n").endswith("\x1b[0m")


def test_help_prints_usage_without_error(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    for cell, usage in [("%ds --help", "usage: %ds NAME"), ("%shelf -h", "usage: %shelf"), ("%gallery --help", "usage: %gallery")]:
        result, out, err = run(ip, cell, capsys)
        assert result.success and not err
        assert out.startswith(usage)


# -- completion ----------------------------------------------------------------------------------------


def completions(ip: Any, text: str) -> list[str]:
    """What Tab offers at the end of ``text``, through IPython's own completer; checks what it replaces."""
    from IPython.core.completer import provisionalcompleter

    with provisionalcompleter():
        found = list(ip.Completer.completions(text, len(text)))
    ours = [c for c in found if c._origin == "labshelf"]
    for c in ours:
        assert c.end == len(text)
        # The completion replaces the whole word typed so far, `/` included.
        assert c.text.startswith(text[c.start :])
    return [c.text for c in ours]


def test_completion_of_magic_arguments(ip: Any, filled: labshelf.Shelf, capsys: pytest.CaptureFixture[str]) -> None:
    use(ip, filled, capsys)
    assert completions(ip, "%ds cam") == ["camera/image"]
    assert completions(ip, "%ds camera/i") == ["camera/image"]
    assert completions(ip, "x = %ds ") == ["camera/image", "extra/only2", "pmt", "scan/x", "temperature"]
    assert completions(ip, "%ds --run 3 ") == ["camera/image", "pmt", "scan/x", "temperature"]
    assert completions(ip, "%ds --run 2 ex") == ["extra/only2"]
    assert completions(ip, "%ds --d") == ["--data-id"]
    assert completions(ip, "%ds extra/only2 --run ") == ["2"]
    assert completions(ip, "%ds temperature --run 1") == ["12", "11", "10", "1"]  # newest first
    assert completions(ip, "%browse ") == [str(n) for n in range(RUNS, 0, -1)]
    assert completions(ip, "%browse 1") == ["12", "11", "10", "1"]
    assert completions(ip, "%gallery --labels temperature cam") == ["camera/image"]
    assert completions(ip, "%gallery camera/image temp") == []  # the query: nothing from us
    assert completions(ip, "%ds pmt --data-id ch") == []
    assert completions(ip, "%subscribe sc") == ["scan/x"]
    assert completions(ip, "%subscribe --k") == ["--kind"]


def test_completion_inside_get_strings(ip: Any, filled: labshelf.Shelf, capsys: pytest.CaptureFixture[str]) -> None:
    use(ip, filled, capsys)
    ip.user_ns["r2"] = filled.run(2)
    ip.user_ns["mine"] = filled
    assert completions(ip, 'shelf.get("ca') == ["camera/image"]
    assert completions(ip, "value = mine.find('s") == ["scan/x"]
    assert completions(ip, "shelf.run(3).get('ex") == []  # run 3 has no extra/only2
    assert completions(ip, "shelf[2].get('ex") == ["extra/only2"]
    assert completions(ip, "r2.get('") == ["camera/image", "extra/only2", "pmt", "scan/x", "temperature"]
    assert completions(ip, "shelf.get('extra/only2', run=") == ["2"]
    ip.user_ns["notashelf"] = {"get": 1}
    assert completions(ip, "notashelf.get('ca") == []


def test_completion_offers_nothing_without_a_shelf(ip: Any) -> None:
    assert completions(ip, "%ds cam") == []
    assert completions(ip, "%browse ") == []


def test_completions_are_capped(ip: Any, shelf: labshelf.Shelf, capsys: pytest.CaptureFixture[str]) -> None:
    with shelf.new_run("many") as first:
        for i in range(60):
            first.put(f"many/n{i:02d}", i)
    for _ in range(54):
        with shelf.new_run("more") as later:
            later.put("many/n00", 0)
    use(ip, shelf, capsys)
    names = completions(ip, "%ds many/")
    assert len(names) == 50 and names == sorted(names) and names[0] == "many/n00"
    assert len(completions(ip, "%browse ")) == 50
    assert completions(ip, "%browse ")[0] == "55"
    # The objects' own key completions are capped too.
    assert len(shelf._ipython_key_completions_()) == 50
    assert len(shelf.run(1)._ipython_key_completions_()) == 50
    assert len(shelf.runs._ipython_key_completions_()) == 50


# -- documentation ----------------------------------------------------------------------------------------


def test_every_magic_and_option_is_documented_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Jupyter\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match, "README.md needs a '## Jupyter' section"
    section = match.group(1).replace("\\|", "|")  # a | inside a Markdown table cell is written \|
    for name in MAGICS:
        assert f"%{name}" in section, name
    for option in ("--mode", "--schema", "--run", "--data-id", "--labels", "LABSHELF", "labshelf_shelf"):
        assert option in section, option
    # Every option a magic parses is in its usage line, which the README repeats.
    for usage in magics._USAGE.values():
        assert usage in section, usage
