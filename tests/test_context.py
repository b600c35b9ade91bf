"""Context files: loading, checking and ordering derived variables; every bad file names file and line."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import labshelf
from labshelf.context import load
from labshelf.derived import variable
from labshelf.errors import ContextError

HEADER = "from labshelf.derived import variable\n"


def write(tmp_path: Path, body: str, name: str = "context.py") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def line_of(path: Path, needle: str) -> int:
    """1-based number of the (only) line of ``path`` containing ``needle``."""
    found = [i for i, text in enumerate(path.read_text().splitlines(), 1) if needle in text]
    assert len(found) == 1, (needle, found)
    return found[0]


def test_variables_come_in_dependency_order_with_their_inputs(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        @variable(title="Contrast")
        def contrast(run, m="var:mean_intensity", bg="background"):
            return m / bg

        @variable(title="Mean intensity", summary="max", unit="counts", description="mean of the frame")
        def mean_intensity(run, image="camera/image", pmt="pmt[channel=2]"):
            return image.mean()

        @variable
        def plain(run):
            return 1

        def not_a_variable(run, x="x"):
            return x
        """,
    )
    context = load(path)
    assert context.order == ("mean_intensity", "contrast", "plain")
    assert context.path == path.resolve()
    mean = context.variables["mean_intensity"]
    assert (mean.options.title, mean.options.summary, mean.options.unit) == ("Mean intensity", "max", "counts")
    assert mean.options.description == "mean of the frame"
    assert mean.dataset == "derived/mean_intensity"
    assert [(i.parameter, i.label, i.variable) for i in mean.inputs] == [
        ("image", "camera/image", None),
        ("pmt", "pmt[channel=2]", None),
    ]
    assert dict(mean.inputs[1].data_id) == {"channel": 2}
    contrast = context.variables["contrast"]
    assert contrast.dependencies == ("mean_intensity",)
    assert [i.label for i in contrast.inputs] == ["derived/mean_intensity", "background"]
    assert contrast.title == "Contrast" and context.variables["plain"].title == "plain"
    assert mean.line == line_of(path, "def mean_intensity")
    assert context.plan(["contrast"]) == ("mean_intensity", "contrast")
    assert context.plan(["plain"]) == ("plain",)


def test_the_decorator_leaves_the_function_callable() -> None:
    @variable(title="Twice", summary="sum")
    def twice(run: object, x: str = "x") -> object:
        return 2 * x  # type: ignore[operator]

    assert twice(None, 21) == 42  # type: ignore[arg-type]

    @variable
    def bare(run: object) -> int:
        return 1

    assert bare(None) == 1


def test_the_decorator_takes_functions_only() -> None:
    with pytest.raises(TypeError, match="decorates a function"):
        variable()(print)  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("kwargs", "error", "phrase"),
    [
        ({"summary": "average"}, ValueError, "use one of 'mean', 'max'"),
        ({"title": 3}, TypeError, "takes a str"),
    ],
)
def test_the_decorator_checks_its_arguments(kwargs: dict[str, object], error: type[Exception], phrase: str) -> None:
    with pytest.raises(error, match=phrase):
        variable(**kwargs)  # type: ignore[call-overload]


# Each bad context file: the text, the line the error must name (a needle found
# on it), and a phrase of the message.
BAD = {
    "syntax": ("@variable()\ndef f(run, x='x'):\n    return x +* 2  # HERE\n", "syntax error"),
    "import error": ("import math\nvalue = math.sqrt(-1)  # HERE\n", "ValueError while loading the context file"),
    "error in a helper at import": (
        "def helper():\n    raise RuntimeError('no config')  # HERE\n\nhelper()\n",
        "RuntimeError while loading the context file: no config",
    ),
    "no default": ("@variable()\ndef f(run,\n      image):  # HERE\n    return image\n", "has no default"),
    "default not a str": ("@variable()\ndef f(run, scale=2.0):  # HERE\n    return scale\n", "not a str"),
    "bad dataset name": ("@variable()\ndef f(run, x='a.b'):  # HERE\n    return x\n", "is not a dataset name"),
    "first parameter": ("@variable()\ndef f(image='camera/image'):  # HERE\n    return image\n", "first parameter must be 'run'"),
    "no parameter at all": ("@variable()\ndef f():  # HERE\n    return 1\n", "first parameter must be 'run'"),
    "var args": ("@variable()\ndef f(run, *images):  # HERE\n    return 1\n", "not *args"),
    "unknown var": (
        "@variable()\ndef mean(run, x='x'):\n    return x\n\n@variable()\ndef g(run,\n      m='var:maen'):  # HERE\n    return m\n",
        "'var:maen', which is not a variable",
    ),
    "bad summary": ("@variable(summary='average')  # HERE\ndef f(run, x='x'):\n    return x\n", "summary='average'"),
    "cycle": (
        "@variable()\ndef a(run, y='var:b'):  # HERE\n    return y\n\n@variable()\ndef b(run, x='var:a'):\n    return x\n",
        "cycle: a -> b -> a",
    ),
    "self cycle": ("@variable()\ndef a(run, y='var:a'):  # HERE\n    return y\n", "cycle: a -> a"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_context_files_name_the_file_and_line(tmp_path: Path, case: str) -> None:
    text, phrase = BAD[case]
    path = write(tmp_path, text)
    line = line_of(path, "# HERE")
    with pytest.raises(ContextError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path.resolve()}, line {line}:"), message
    assert phrase in message, message
    assert (info.value.path, info.value.line) == (str(path.resolve()), line)
    assert isinstance(info.value, ValueError) and isinstance(info.value, labshelf.ShelfError)
    assert not [m for m in sys.modules if m.startswith("labshelf_context_")]


def test_unknown_variable_suggests_the_close_one(tmp_path: Path) -> None:
    text, _ = BAD["unknown var"]
    with pytest.raises(ContextError, match="did you mean 'mean'"):
        load(write(tmp_path, text))


def test_a_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ContextError, match="cannot read the context file .*nope.py"):
        load(tmp_path / "nope.py")
    binary = tmp_path / "binary.py"
    binary.write_bytes(b"\xff\xfe\x00x = 1\n")
    with pytest.raises(ContextError, match="not UTF-8"):
        load(binary)


def test_the_error_survives_a_process_boundary() -> None:
    # Worker processes send their errors back pickled.
    error = ContextError("f.py, line 3: boom", path="f.py", line=3)
    back = pickle.loads(pickle.dumps(error))
    assert (str(back), back.path, back.line) == ("f.py, line 3: boom", "f.py", 3)


def test_source_hash_follows_the_function_and_its_decorator_only(tmp_path: Path) -> None:
    body = """
    @variable(unit="counts")
    def a(run, x="x"):
        return x + 1

    @variable()
    def b(run, x="x"):
        return x * 2
    """
    first = load(write(tmp_path, body))
    # A comment elsewhere, and b's body: a keeps its hash.
    edited = load(write(tmp_path, "# a comment\n" + textwrap.dedent(body).replace("x * 2", "x * 3")))
    assert edited.variables["a"].source_hash == first.variables["a"].source_hash
    assert edited.variables["b"].source_hash != first.variables["b"].source_hash
    assert edited.digest != first.digest
    unit = load(write(tmp_path, textwrap.dedent(body).replace('unit="counts"', 'unit="photons"')))
    assert unit.variables["a"].source_hash != first.variables["a"].source_hash


def test_loading_twice_runs_the_new_text(tmp_path: Path) -> None:
    # No bytecode cache: an edit within the same second (same size even) is seen.
    path = write(tmp_path, "@variable()\ndef a(run, x='x'):\n    return 1\n")
    assert load(path).variables["a"].function(None) == 1
    path.write_text(HEADER + "@variable()\ndef a(run, x='x'):\n    return 2\n")
    assert load(path).variables["a"].function(None) == 2
    assert not (tmp_path / "__pycache__").exists()


def test_importing_the_decorator_is_cheap() -> None:
    code = (
        "import sys\nfrom labshelf.derived import variable\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'sqlalchemy', 'pandas', 'h5py', 'tqdm'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
