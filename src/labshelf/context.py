"""Context files: the Python files that define a shelf's derived variables.

A context file is ordinary Python; each function decorated with
:func:`labshelf.derived.variable` is one variable.  Loading one here means:
compile it, run it as a module of its own, find its variables, check their
signatures (``run`` first, then parameters whose defaults name datasets or
other variables), and order them by their dependencies.  Every problem is a
:class:`~labshelf.errors.ContextError` naming the file and line, and leaves
nothing behind: the shelf and the process carry on as before.

:class:`Runner` then computes a loaded context's variables for one run at a
time, wherever that happens (this process, a worker process, a Dask
worker): it decides what is stale, calls the functions, stores results and
records the bookkeeping.  Spreading runs over workers is
:mod:`labshelf.derived`'s business.

Loading *runs* the file, like ``import`` does; it happens only when code
is asked to run (``shelf.reprocess``, and ``set_context`` checking the file
it is given), never when a shelf is opened, read or its context file shown
(:mod:`labshelf.outline` reads the text instead).  No ``__pycache__`` is written: a context file lives beside (or in)
a shelf, and a bytecode cache keyed by modification time could run a stale
version of a file edited twice within a second.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.abc
import importlib.util
import inspect
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .derived import COMPUTED, FAILED, FRESH, MISSING, VAR_PREFIX, Outcome, VariableOptions, options_of
from .errors import ContextError, InvalidName, QuerySyntaxError, ShelfError, close_matches
from .names import check_name, data_id_key, format_data_id
from .run import Run
from .writer import DERIVED_PREFIX

if TYPE_CHECKING:
    from .registry.meta import PutMeta
    from .registry.records import DatasetRef
    from .shelf import Shelf

#: Longest error message kept per (run, variable); a huge repr in an exception is cut.
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Input:
    """One parameter of a variable and what it receives.

    Either a dataset of the run (``name`` and ``data_id``) or the result of
    another variable (``variable``).
    """

    parameter: str
    name: str
    data_id: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    variable: str | None = None

    @property
    def key(self) -> str:
        """The registry's data ID key of the dataset."""
        return data_id_key(dict(self.data_id))

    @property
    def label(self) -> str:
        """How the input is named in the bookkeeping: ``camera/image``, ``pmt[channel=2]``, ``derived/m``."""
        return f"{self.name}[{format_data_id(self.data_id)}]" if self.data_id else self.name


class Declares:
    """What a variable's name, options and inputs tell, loaded (:class:`Variable`) or read from text."""

    __slots__ = ()
    name: str
    options: VariableOptions
    inputs: tuple[Input, ...]

    @property
    def dataset(self) -> str:
        """Where results are stored in each run: ``derived/<name>``."""
        return DERIVED_PREFIX + self.name

    @property
    def dependencies(self) -> tuple[str, ...]:
        return tuple(i.variable for i in self.inputs if i.variable is not None)

    @property
    def title(self) -> str:
        return self.options.title or self.name

    def display_meta(self) -> PutMeta | None:
        """The display metadata its results carry: ``@variable(title=, unit=, description=)``."""
        from .registry.meta import PutMeta

        fields = _display_meta(self.options)
        return PutMeta(fields) if fields else None


def _display_meta(options: VariableOptions) -> dict[str, Any]:
    from .registry.meta import check_fields

    return check_fields({"title": options.title, "unit": options.unit, "description": options.description}, clearing=False)


@dataclass(frozen=True, slots=True)
class Variable(Declares):
    """A derived variable as loaded from a context file."""

    name: str
    function: Callable[..., Any] = field(compare=False, repr=False)
    options: VariableOptions
    inputs: tuple[Input, ...]
    #: sha256 of the function's source and decorator arguments: a change means "recompute".
    source_hash: str
    path: str
    #: Line of the ``def``, and of each parameter (for error messages).
    line: int
    lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}), compare=False, repr=False)



@dataclass(frozen=True)
class Context:
    """The variables of one context file, in an order where dependencies come first."""

    path: Path
    variables: Mapping[str, Variable]
    #: sha256 of the file's text: tells a worker whether its loaded copy is current.
    digest: str

    @property
    def order(self) -> tuple[str, ...]:
        return tuple(self.variables)

    def plan(self, wanted: Iterable[str] | None = None) -> tuple[str, ...]:
        """``wanted`` (all if None) and the variables they depend on, dependencies first."""
        if wanted is None:
            return self.order
        needed: set[str] = set()
        todo = list(wanted)
        for name in todo:
            if name not in self.variables:
                known = ", ".join(self.variables) or "none"
                raise ContextError(
                    f"{self.path} defines no variable {name!r}{close_matches(name, self.variables)} "
                    f"(it defines: {known})",
                    path=str(self.path),
                )
        while todo:
            name = todo.pop()
            if name not in needed:
                needed.add(name)
                todo.extend(self.variables[name].dependencies)
        return tuple(n for n in self.variables if n in needed)


def load(path: str | os.PathLike[str]) -> Context:
    """Load and check a context file; raise ContextError naming the file and line if it is bad.

    Parameters
    ----------
    path
        The context file (a ``.py`` file).

    Returns
    -------
    Context
        Its variables, dependencies before the variables that use them.
    """
    path = Path(path).expanduser().resolve()
    where = str(path)
    raw, source = read_text(path)
    try:
        code = compile(source, where, "exec", dont_inherit=True)
    except SyntaxError as exc:
        line = exc.lineno
        raise ContextError(
            f"{where}, line {line}: syntax error: {exc.msg}", path=where, line=line
        ) from None
    except (RecursionError, MemoryError):
        raise ContextError(f"{where}: the context file is nested too deeply to be compiled", path=where) from None
    module = _run_module(code, source, path)
    functions = _functions_by_line(source)
    variables = _collect(module, source, functions, where)
    return Context(path, ordered(variables, where), hashlib.sha256(raw).hexdigest())


def read_text(path: Path) -> tuple[bytes, str]:
    """The bytes and text of a context file; ContextError if it is no readable UTF-8 file."""
    where = str(path)
    try:
        # A FIFO or a device named as the context file would block or never end.
        if path.exists() and not path.is_file():
            raise ContextError(f"cannot read the context file {where}: not a regular file", path=where)
        raw = path.read_bytes()
    except OSError as exc:
        raise ContextError(f"cannot read the context file {where}: {exc.strerror or exc}", path=where) from None
    try:
        return raw, raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContextError(f"{where}: the context file is not UTF-8 text ({exc.reason})", path=where) from None


class _Loader(importlib.abc.InspectLoader):
    """Runs code already compiled from text already read: no second read, no bytecode cache."""

    def __init__(self, code: CodeType, source: str):
        self._code = code
        self._source = source

    def get_code(self, fullname: str) -> CodeType:
        return self._code

    def get_source(self, fullname: str) -> str:
        return self._source

    def is_package(self, fullname: str) -> bool:
        return False


def _run_module(code: CodeType, source: str, path: Path) -> ModuleType:
    # A name of its own per file, so two context files never share a module.
    name = "labshelf_context_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path, loader=_Loader(code, source))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # In sys.modules only while it runs: what needs it there at import time
    # (dataclasses, typing) finds it, and nothing of it stays behind.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        line = error_line(exc, str(path))
        at = f", line {line}" if line is not None else ""
        raise ContextError(
            f"{path}{at}: {type(exc).__name__} while loading the context file: {exc}", path=str(path), line=line
        ) from None
    finally:
        sys.modules.pop(name, None)
    return module


def error_line(exc: BaseException, filename: str) -> int | None:
    """The line of the innermost traceback frame of ``exc`` in ``filename``, or None."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    return line


def _functions_by_line(source: str) -> dict[tuple[str, int], ast.FunctionDef | ast.AsyncFunctionDef]:
    """Function definitions of a file by (name, first line), the first line counting decorators.

    That first line is what ``__code__.co_firstlineno`` gives, so a function
    object finds its own definition, with the lines of its parameters.
    """
    found: dict[tuple[str, int], ast.FunctionDef | ast.AsyncFunctionDef] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            found[(node.name, first)] = node
    return found


def _collect(
    module: ModuleType,
    source: str,
    functions: Mapping[tuple[str, int], ast.FunctionDef | ast.AsyncFunctionDef],
    where: str,
) -> dict[str, Variable]:
    variables: dict[str, Variable] = {}
    seen: set[int] = set()
    for value in list(vars(module).values()):
        options = options_of(value)
        if options is None or id(value) in seen:
            continue
        seen.add(id(value))
        variable = _variable(value, options, source, functions, where)
        if variable.name in variables:
            raise ContextError(
                f"{variable.path}, line {variable.line}: a second variable named {variable.name!r} "
                f"(the first is at line {variables[variable.name].line})",
                path=variable.path,
                line=variable.line,
            )
        variables[variable.name] = variable
    return variables


def _variable(
    function: Callable[..., Any],
    options: VariableOptions,
    source: str,
    functions: Mapping[tuple[str, int], ast.FunctionDef | ast.AsyncFunctionDef],
    where: str,
) -> Variable:
    name = function.__name__
    code = getattr(function, "__code__", None)
    filename = code.co_filename if code is not None else where
    first = code.co_firstlineno if code is not None else 1
    node = functions.get((name, first)) if filename == where else None
    lines: dict[str, int] = {}
    if node is not None:
        every = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        lines = {a.arg: a.lineno for a in every}
        # Decorators, comments and all: any edit of these lines means "recompute".
        text = "\n".join(source.splitlines()[first - 1 : node.end_lineno])
        def_line = node.lineno
    else:
        # Defined in a module the context file imports.
        try:
            text = inspect.getsource(function)
        except (OSError, TypeError):
            text = name
        def_line = first

    def fail(message: str, parameter: str | None = None) -> ContextError:
        line = lines.get(parameter, def_line) if parameter is not None else def_line
        return ContextError(f"{filename}, line {line}: variable {name!r}: {message}", path=filename, line=line)

    try:
        check_name(DERIVED_PREFIX + name)
    except InvalidName as exc:
        raise fail(f"its name cannot name a dataset: {exc}") from None
    try:
        _display_meta(options)
    except ShelfError as exc:
        raise fail(f"@variable(...): {exc}") from None
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise fail(f"its signature cannot be read: {exc}") from None
    parameters = list(signature.parameters.values())
    if not parameters or parameters[0].name != "run":
        first_name = parameters[0].name if parameters else None
        got = f"not {first_name!r}" if first_name else "it has none"
        raise fail(f"the first parameter must be 'run' (the run being processed), {got}", first_name)
    inputs = []
    for parameter in parameters[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD, parameter.POSITIONAL_ONLY):
            raise fail(
                f"parameter {parameter.name!r} must be a plain one whose default names its input, "
                "not *args, **kwargs or positional-only",
                parameter.name,
            )
        inputs.append(input_of(parameter.name, parameter.default, fail))
    digest = hashlib.sha256(json.dumps({"source": text, "options": options.as_dict()}, sort_keys=True).encode())
    return Variable(
        name, function, options, tuple(inputs), digest.hexdigest(), filename, def_line, MappingProxyType(lines)
    )


def input_of(parameter: str, default: Any, fail: Callable[[str, str | None], ContextError]) -> Input:
    """What a parameter with this default receives (``inspect.Parameter.empty``: it has none)."""
    allowed = (
        "give it a default naming a dataset of the run (image=\"camera/image\", "
        "pmt=\"pmt[channel=2]\") or another variable (m=\"var:mean_intensity\")"
    )
    if default is inspect.Parameter.empty:
        raise fail(f"parameter {parameter!r} has no default: {allowed}", parameter)
    if not isinstance(default, str):
        raise fail(f"parameter {parameter!r} has the default {default!r}, not a str: {allowed}", parameter)
    if default.startswith(VAR_PREFIX):
        target = default[len(VAR_PREFIX) :].strip()
        if not target.isidentifier():
            raise fail(f"parameter {parameter!r}: {default!r} names no variable: {allowed}", parameter)
        return Input(parameter, DERIVED_PREFIX + target, variable=target)
    from .runview import parse_label

    try:
        name, data_id, attribute = parse_label(default)
        if attribute is not None:
            raise QuerySyntaxError(f"'.{attribute}' picks a run-table summary, not a dataset")
        check_name(name)
    except (QuerySyntaxError, InvalidName, ValueError) as exc:
        raise fail(f"parameter {parameter!r}: {default!r} is not a dataset name: {exc}", parameter) from None
    return Input(parameter, name, MappingProxyType(data_id))


class _Ordered(Protocol):
    """What ordering needs of a variable: loaded (:class:`Variable`) or only read (``outline.Declared``)."""

    @property
    def name(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def line(self) -> int: ...
    @property
    def lines(self) -> Mapping[str, int]: ...
    @property
    def inputs(self) -> tuple[Input, ...]: ...
    @property
    def dependencies(self) -> tuple[str, ...]: ...


V = TypeVar("V", bound=_Ordered)


def ordered(variables: Mapping[str, V], where: str) -> Mapping[str, V]:
    """Variables with dependencies first (definition order otherwise); refuse unknown names and cycles."""
    for variable in variables.values():
        for put in variable.inputs:
            if put.variable is not None and put.variable not in variables:
                line = variable.lines.get(put.parameter, variable.line)
                raise ContextError(
                    f"{variable.path}, line {line}: variable {variable.name!r}: parameter {put.parameter!r} "
                    f"refers to 'var:{put.variable}', which is not a variable of {where}"
                    f"{close_matches(put.variable, variables)}",
                    path=variable.path,
                    line=line,
                )
    order: dict[str, V] = {}
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            cycle = [*visiting[visiting.index(name) :], name]
            first = variables[cycle[0]]
            raise ContextError(
                f"{first.path}, line {first.line}: the variables depend on each other in a cycle: "
                f"{' -> '.join(cycle)}; a variable cannot need its own result",
                path=first.path,
                line=first.line,
            )
        visiting.append(name)
        for dependency in variables[name].dependencies:
            visit(dependency)
        visiting.pop()
        order[name] = variables[name]

    for name in variables:
        visit(name)
    return MappingProxyType(order)


# -- computing ---------------------------------------------------------------------------------------


class Runner:
    """Computes the stale variables of a context, one run at a time: the same code in every kind of worker.

    ``writer`` is a shelf open for writing (results and bookkeeping),
    ``reader`` the same shelf open read-only: its runs are what variables get.
    """

    def __init__(self, writer: Shelf, reader: Shelf, context: Context):
        self.writer = writer
        self.reader = reader
        self.context = context

    def run_many(
        self,
        numbers: Iterable[int],
        plan: Sequence[str],
        forced: Sequence[str],
        update: Callable[[int], Any] | None = None,
    ) -> list[Outcome]:
        """Compute the stale variables of ``plan`` (dependencies first) in each run of ``numbers``.

        Results are stored one by one; the bookkeeping of all these runs in
        one transaction at the end (even after an error): fewer write
        transactions is what lets several processes write at once, and a
        crash in between only means those results are computed again next
        time.  ``update(1)`` is called after each run.
        """
        outcomes: list[Outcome] = []
        rows: list[dict[str, Any]] = []
        summaries: list[dict[str, Any]] = []
        wanted = sorted({(put.name, put.key) for name in plan for put in self.context.variables[name].inputs})
        try:
            for number in numbers:
                start = self.reader._registry.derived_inputs(number, wanted)
                if start is not None:  # else removed since the runs were listed
                    work = _RunWork(self, Run(self.reader, start[0]), start[1], start[2])
                    for name in plan:
                        work.process(self.context.variables[name], force=name in forced)
                    outcomes += work.outcomes
                    rows += work.rows
                    summaries += work.summaries
                if update is not None:
                    update(1)
        finally:
            if rows:
                self.writer._registry.record_derived(rows, summaries)
        return outcomes


class _RunWork:
    """The state of one run while its variables are computed."""

    def __init__(
        self,
        runner: Runner,
        run: Run,
        records: Sequence[Mapping[str, Any]],
        refs: Mapping[tuple[str, str], DatasetRef],
    ):
        self.runner = runner
        self.number = run.number
        self.run = run
        self.records = {row["variable"]: row for row in records}
        self.refs = dict(refs)
        self.values: dict[tuple[str, str, int], Any] = {}
        self.status: dict[str, str] = {}
        self.rows: list[dict[str, Any]] = []
        self.summaries: list[dict[str, Any]] = []
        self.outcomes: list[Outcome] = []

    def process(self, variable: Variable, *, force: bool) -> None:
        inputs, found, absent = self.inputs(variable)
        previous = self.records.get(variable.name)
        if (
            not force
            and previous is not None
            and previous["source_hash"] == variable.source_hash
            and previous["inputs"] == inputs
        ):
            self.status[variable.name] = previous["status"]
            self.outcomes.append((self.number, variable.name, FRESH, None))
        elif absent:
            self.record(variable, inputs, "missing", "; ".join(absent))
        else:
            self.compute(variable, inputs, found)

    def inputs(self, variable: Variable) -> tuple[dict[str, int | None], dict[str, DatasetRef], list[str]]:
        """Versions of the inputs by label (None: absent), refs by parameter, and what is absent."""
        versions: dict[str, int | None] = {}
        found: dict[str, DatasetRef] = {}
        absent: list[str] = []
        for put in variable.inputs:
            # A dependency's old result does not count once it failed or lacks inputs.
            usable = put.variable is None or self.status.get(put.variable) == "ok"
            ref = self.refs.get((put.name, put.key)) if usable else None
            versions[put.label] = None if ref is None else ref.version
            if ref is not None:
                found[put.parameter] = ref
            elif put.variable is None:
                absent.append(f"input {put.label!r} is missing")
            else:
                absent.append(f"variable {put.variable!r} has no result ({self.status.get(put.variable, 'missing')})")
        return versions, found, absent

    def compute(self, variable: Variable, inputs: dict[str, int | None], found: Mapping[str, DatasetRef]) -> None:
        try:
            kwargs = {parameter: self.value(ref) for parameter, ref in found.items()}
        except Exception as exc:
            self.record(variable, inputs, "error", f"reading its inputs: {type(exc).__name__}: {exc}")
            return
        try:
            result = variable.function(self.run, **kwargs)
            ref = self.runner.writer._writer.put(
                self.number, variable.dataset, result, derived=True, meta=variable.display_meta()
            )
        except Exception as exc:
            self.record(variable, inputs, "error", _describe(exc, variable))
            return
        assert ref is not None
        self.refs[(ref.name, data_id_key({}))] = ref
        summary = _summary(variable, ref, result)
        if summary is not None:
            self.summaries.append(
                {"run": self.number, "name": ref.name, "version": ref.version, "summary_value": summary}
            )
        self.record(variable, inputs, "ok", None)

    def value(self, ref: DatasetRef) -> Any:
        """Read an input once per run, however many variables take it."""
        key = (ref.name, data_id_key(dict(ref.data_id)), ref.version)
        if key not in self.values:
            self.values[key] = self.runner.reader.read(ref)
        return self.values[key]

    def record(self, variable: Variable, inputs: dict[str, int | None], state: str, error: str | None) -> None:
        self.status[variable.name] = state
        if error is not None and len(error) > MAX_ERROR_CHARS:
            error = error[: MAX_ERROR_CHARS - 1] + "…"
        self.rows.append(
            {
                "run": self.number,
                "variable": variable.name,
                "source_hash": variable.source_hash,
                "inputs": inputs,
                "status": state,
                "error": error,
            }
        )
        outcome = {"ok": COMPUTED, "error": FAILED, "missing": MISSING}[state]
        self.outcomes.append((self.number, variable.name, outcome, error))


def _describe(exc: BaseException, variable: Variable) -> str:
    """``ZeroDivisionError: division by zero (context.py, line 12)``."""
    line = error_line(exc, variable.path)
    where = f" ({Path(variable.path).name}, line {line})" if line is not None else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _summary(variable: Variable, ref: DatasetRef, result: Any) -> float | None:
    """The run-table value ``summary=`` asks for, or None to keep the kind's default."""
    how = variable.options.summary
    if how is None or how == "mean" or ref.kind not in ("ndarray", "image", "xarray"):
        return None
    import numpy as np

    array = np.asarray(getattr(result, "values", result))
    if array.size == 0 or array.dtype.kind not in "biuf":
        return None
    reductions: dict[str, Callable[..., Any]] = {
        "max": np.nanmax, "min": np.nanmin, "sum": np.nansum, "median": np.nanmedian, "std": np.nanstd
    }
    reduce = reductions[how]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: no summary, not a warning
        value = float(reduce(array.astype(np.float64, copy=False)))
    return value if value == value else None

