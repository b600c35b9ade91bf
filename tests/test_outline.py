"""Reading a context file's variables from its text: what loading finds, and nothing of it runs."""

from __future__ import annotations

import os
import re
import sys
import textwrap
from pathlib import Path

import pytest

import labshelf
from labshelf.context import load
from labshelf.errors import ContextError
from labshelf.outline import outline
from test_context import BAD, HEADER, line_of, write

#: Module-level code, a decorator argument and a default that would each leave a file if run.
EXECUTES = """
import pathlib
MARK = pathlib.Path({marker!r})
MARK.write_text("module level ran")

def title():
    MARK.write_text("decorator argument ran")
    return "T"

def name():
    MARK.write_text("default ran")
    return "x"

@variable(title=title(), unit="V")
def a(run, x=name(), y="y"):
    MARK.write_text("body ran")
    return x

class Holder:
    MARK.write_text("class body ran")
"""


def test_the_outline_finds_what_loading_finds(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        @variable(title="Contrast")
        def contrast(run, m="var:mean_intensity", bg="background"):
            return m / bg

        @variable(title="Mean intensity", summary="max", unit="counts", description="mean of the frame")
        def mean_intensity(run, image="camera/image", *, pmt="pmt[channel=2]"):
            return image.mean()

        @variable
        def plain(run):
            return 1

        def not_a_variable(run, x="x"):
            return x
        """,
    )
    read, loaded = outline(path), load(path)
    assert read.path == loaded.path and read.digest == loaded.digest
    assert read.order == loaded.order == ("mean_intensity", "contrast", "plain")
    for name, variable in loaded.variables.items():
        declared = read.variables[name]
        assert declared.options == variable.options
        assert declared.inputs == variable.inputs
        assert (declared.line, dict(declared.lines), declared.path) == (variable.line, dict(variable.lines), variable.path)
        assert (declared.dataset, declared.title, declared.dependencies) == (
            variable.dataset, variable.title, variable.dependencies
        )
        assert not declared.option_expressions and not declared.input_expressions


def test_nothing_in_the_file_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = write(tmp_path, EXECUTES.format(marker=str(marker)))
    read = outline(path)
    assert not marker.exists()
    a = read.variables["a"]
    # What only running could tell is kept as text, the rest is read.
    assert dict(a.option_expressions) == {"title": "title()"} and a.options.unit == "V" and a.options.title is None
    assert dict(a.input_expressions) == {"x": "name()"} and [i.label for i in a.inputs] == ["y"]
    assert not [m for m in sys.modules if m.startswith("labshelf_context_")]
    # Loading it does run it: the test above would notice.
    load(path)
    assert marker.exists()


@pytest.mark.parametrize(
    ("header", "decorator"),
    [
        ("from labshelf import variable\n", "@variable"),
        ("from labshelf import variable\n", "@variable()"),
        ("from labshelf.derived import variable as var\n", "@var(unit='V')"),
        ("import labshelf\n", "@labshelf.variable(unit='V')"),
        ("import labshelf as ls\n", "@ls.variable"),
        ("from labshelf import derived\n", "@derived.variable()"),
    ],
)
def test_every_spelling_of_the_decorator(tmp_path: Path, header: str, decorator: str) -> None:
    path = tmp_path / "context.py"
    path.write_text(f"{header}\n{decorator}\ndef v(run, x='x'):\n    return x\n")
    assert outline(path).order == load(path).order == ("v",)


def test_top_level_blocks_count_and_the_last_definition_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        import os

        if os.environ.get("NOPE") is None:
            @variable()
            def in_if(run, x="x"):
                return x
        try:
            @variable()
            def in_try(run, x="x"):
                return x
        except ImportError:
            pass

        @variable()
        def twice(run, x="x"):
            return x

        @variable(unit="V")
        def twice(run, y="y"):
            return y

        @variable()
        def shadowed(run, x="x"):
            return x

        def shadowed(run, x="x"):
            return x

        def outer():
            @variable()
            def nested(run, x="x"):
                return x
            return nested

        class Holder:
            @variable()
            def method(run, x="x"):
                return x
        """,
    )
    read, loaded = outline(path), load(path)
    assert read.order == loaded.order == ("in_if", "in_try", "twice")
    assert read.variables["twice"].options.unit == "V" and [i.label for i in read.variables["twice"].inputs] == ["y"]


@pytest.mark.parametrize("case", list(BAD))
def test_bad_files_name_the_same_line_as_loading(tmp_path: Path, case: str) -> None:
    text, phrase = BAD[case]
    path = write(tmp_path, text)
    if "while loading" in phrase:
        # An error of the running module: the text alone is fine, and nothing ran.
        assert outline(path).variables == {}
        return
    line = line_of(path, "# HERE")
    with pytest.raises(ContextError) as info:
        outline(path)
    message = str(info.value)
    assert message.startswith(f"{path.resolve()}, line {line}:"), message
    assert phrase in message, message
    assert (info.value.path, info.value.line) == (str(path.resolve()), line)


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("@variable('Title')  # HERE\ndef f(run, x='x'):\n    return x\n", "keyword arguments only"),
        ("@variable(colour='red')  # HERE\ndef f(run, x='x'):\n    return x\n", "not 'colour'"),
        ("@variable(**OPTIONS)  # HERE\ndef f(run, x='x'):\n    return x\n", "not **OPTIONS"),
        ("@variable(unit=3)  # HERE\ndef f(run, x='x'):\n    return x\n", "takes a str, not int"),
        ("@variable()\ndef f(run, **more):  # HERE\n    return 1\n", "not *args"),
        ("@variable()\ndef f(run, x, /, y='y'):  # HERE\n    return 1\n", "positional-only"),
        ("@variable()\ndef bad_name_\u00e9\u0301(run, x='x'):  # HERE\n    return 1\n", "cannot name a dataset"),
    ],
)
def test_what_the_decorator_would_refuse_is_refused(tmp_path: Path, text: str, phrase: str) -> None:
    path = write(tmp_path, text)
    line = line_of(path, "# HERE")
    with pytest.raises(ContextError, match=re.escape(phrase)) as info:
        outline(path)
    assert info.value.line == line
    # Loading refuses the same file (with its own words for errors raised while running).
    with pytest.raises(ContextError):
        load(path)


def test_unreadable_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ContextError, match="cannot read the context file .*nope.py"):
        outline(tmp_path / "nope.py")
    with pytest.raises(ContextError, match="cannot read the context file"):
        outline(tmp_path)  # a folder
    binary = tmp_path / "binary.py"
    binary.write_bytes(b"\xff\xfe\x00x = 1\n")
    with pytest.raises(ContextError, match="not UTF-8"):
        outline(binary)
    # A named pipe would block a reader forever; a device would never end.
    fifo = tmp_path / "fifo.py"
    os.mkfifo(fifo)
    for special in (fifo, Path("/dev/zero")):
        for read in (outline, load):
            with pytest.raises(ContextError, match="not a regular file"):
                read(special)
    deep = tmp_path / "deep.py"
    deep.write_text("x = " + "1+" * 100_000 + "1\n")
    for read in (outline, load):
        with pytest.raises(ContextError, match="nested too deeply"):
            read(deep)
    empty = tmp_path / "empty.py"
    empty.write_text("")
    assert outline(empty).variables == {}
    assert isinstance(ContextError("x"), labshelf.ShelfError)


def test_a_run_parameter_that_is_positional_only_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "context.py"
    path.write_text(HEADER + textwrap.dedent("""
        @variable()
        def f(run, /, x="x"):
            return x
        """))
    assert [i.label for i in outline(path).variables["f"].inputs] == [i.label for i in load(path).variables["f"].inputs]
