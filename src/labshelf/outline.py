"""The variables a context file declares, read from its text: nothing in it runs.

Loading a context file (:func:`labshelf.context.load`) runs it, as ``import``
does; that is what computing needs, and it happens only when someone asks
for code to run (``reprocess``, ``set_context``).  Everything that only
*shows* a context file — ``labshelf context show``, a front end listing
variables — reads it here instead: the file is parsed with :mod:`ast`, and
each top-level function decorated with ``@variable`` gives a
:class:`Declared` variable: its name, its decorator options when they are
literals, its inputs (parameter defaults naming datasets or ``var:`` other
variables), its lines, in dependency order.  The checks are those of
loading, where the text alone can tell; a problem is the same
:class:`~labshelf.errors.ContextError` naming file and line.

What only running could tell is left as text: a decorator option or
parameter default written as an expression (``title=TITLE``) is kept as
its source text, and variables made by code (in a loop, imported from
another module) are not seen.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .context import Declares, Input, input_of, ordered, read_text
from .derived import SUMMARIES, VariableOptions
from .errors import ContextError, InvalidName
from .names import check_name
from .writer import DERIVED_PREFIX

__all__ = ["Declared", "Outline", "outline"]

#: How the decorator is spelled when imported under its own name; ``x.variable`` is always recognised.
_DECORATOR = "variable"
_OPTIONS = tuple(VariableOptions.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class Declared(Declares):
    """A derived variable as a context file's text declares it."""

    name: str
    options: VariableOptions
    inputs: tuple[Input, ...]
    path: str
    #: Line of the ``def``, and of each parameter.
    line: int
    lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}), compare=False, repr=False)
    #: Decorator options given as expressions (option -> source text): known only when the file runs.
    option_expressions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: Parameters whose default is an expression (parameter -> source text): their input is known when run.
    input_expressions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Outline:
    """The variables of one context file, dependencies first, as read from its text."""

    path: Path
    variables: Mapping[str, Declared]
    #: sha256 of the file's bytes (the same as the loaded :class:`~labshelf.context.Context`'s).
    digest: str

    @property
    def order(self) -> tuple[str, ...]:
        return tuple(self.variables)


def outline(path: str | os.PathLike[str]) -> Outline:
    """Read the variables of a context file without running any of it.

    Parameters
    ----------
    path
        The context file (a ``.py`` file).

    Returns
    -------
    Outline
        Its ``@variable`` functions, dependencies first.

    Raises
    ------
    ContextError
        The file cannot be read, does not parse, or declares a variable that
        loading would refuse (the message names file and line).
    """
    path = Path(path).expanduser().resolve()
    where = str(path)
    raw, source = read_text(path)
    try:
        tree = ast.parse(source, where)
    except SyntaxError as exc:
        raise ContextError(f"{where}, line {exc.lineno}: syntax error: {exc.msg}", path=where, line=exc.lineno) from None
    except (RecursionError, MemoryError):
        raise ContextError(f"{where}: the context file is nested too deeply to be read", path=where) from None
    aliases = _decorator_names(tree)
    # As when the file runs: the module keeps the last definition of a name,
    # in the place of the first (the order of variables that need nothing else).
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    for node in _top_level(tree.body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            functions[node.name] = node
    variables: dict[str, Declared] = {}
    for node in functions.values():
        decorator = next((d for d in node.decorator_list if _is_variable(d, aliases)), None)
        if decorator is not None:
            variables[node.name] = _declared(node, decorator, where)
    return Outline(path, ordered(variables, where), hashlib.sha256(raw).hexdigest())


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run at module level: in ``if``, ``for``, ``while``, ``try`` and ``with`` blocks too,
    not in functions or classes."""
    for node in body:
        yield node
        if isinstance(node, ast.If | ast.For | ast.While):
            yield from _top_level(node.body)
            yield from _top_level(node.orelse)
        elif isinstance(node, ast.With | ast.AsyncWith):
            yield from _top_level(node.body)
        elif isinstance(node, ast.Try | ast.TryStar):
            yield from _top_level(node.body)
            for handler in node.handlers:
                yield from _top_level(handler.body)
            yield from _top_level(node.orelse)
            yield from _top_level(node.finalbody)


def _decorator_names(tree: ast.Module) -> set[str]:
    """Names the decorator goes by: ``variable``, or what ``from labshelf import variable as v`` binds."""
    names = {_DECORATOR}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "labshelf":
            names.update(alias.asname or alias.name for alias in node.names if alias.name == _DECORATOR)
    return names


def _is_variable(decorator: ast.expr, aliases: set[str]) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(target, ast.Name):
        return target.id in aliases
    return isinstance(target, ast.Attribute) and target.attr == _DECORATOR


def _declared(node: ast.FunctionDef | ast.AsyncFunctionDef, decorator: ast.expr, where: str) -> Declared:
    name = node.name
    arguments = node.args
    every = [*arguments.posonlyargs, *arguments.args, arguments.vararg, *arguments.kwonlyargs, arguments.kwarg]
    lines = {a.arg: a.lineno for a in every if a is not None}

    def fail(message: str, parameter: str | None = None, line: int | None = None) -> ContextError:
        if line is None:
            line = lines.get(parameter, node.lineno) if parameter is not None else node.lineno
        return ContextError(f"{where}, line {line}: variable {name!r}: {message}", path=where, line=line)

    option_expressions: dict[str, str] = {}
    input_expressions: dict[str, str] = {}
    options = _options(decorator, option_expressions, fail)
    try:
        check_name(DERIVED_PREFIX + name)
    except InvalidName as exc:
        raise fail(f"its name cannot name a dataset: {exc}") from None
    first = next((a.arg for a in every if a is not None), None)
    if first != "run":
        got = f"not {first!r}" if first else "it has none"
        raise fail(f"the first parameter must be 'run' (the run being processed), {got}", first)
    # ``run`` itself may be positional-only; the inputs are passed by keyword.
    for odd in (*arguments.posonlyargs[1:], arguments.vararg, arguments.kwarg):
        if odd is not None:
            raise fail(
                f"parameter {odd.arg!r} must be a plain one whose default names its input, "
                "not *args, **kwargs or positional-only",
                odd.arg,
            )
    # Defaults belong to the last positional parameters, and to keyword-only ones one by one.
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults: dict[str, ast.expr | None] = dict.fromkeys(a.arg for a in positional)
    for argument, default in zip(positional[len(positional) - len(arguments.defaults) :], arguments.defaults, strict=True):
        defaults[argument.arg] = default
    for argument, kw_default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
        defaults[argument.arg] = kw_default
    inputs = []
    for parameter, expression in list(defaults.items())[1:]:
        if expression is None:
            inputs.append(input_of(parameter, inspect.Parameter.empty, fail))
            continue
        try:
            value = _literal(expression)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            input_expressions[parameter] = ast.unparse(expression)  # a name bound elsewhere: known when run
            continue
        inputs.append(input_of(parameter, value, fail))
    return Declared(
        name, options, tuple(inputs), where, node.lineno, MappingProxyType(lines),
        MappingProxyType(option_expressions), MappingProxyType(input_expressions),
    )


def _literal(node: ast.expr) -> Any:
    """The value a literal expression spells (numbers, text, None, bools, and lists,
    tuples, sets and dicts of them); ValueError for anything else.

    Walked here rather than by the standard library's literal evaluator so that
    the source holds no evaluation at all (tests/test_no_pickle.py scans for it).
    """
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _literal(node.operand)
        if isinstance(operand, int | float | complex) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else +operand
    elif isinstance(node, ast.List | ast.Tuple | ast.Set):
        items = [_literal(item) for item in node.elts]
        return items if isinstance(node, ast.List) else tuple(items) if isinstance(node, ast.Tuple) else set(items)
    elif isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
    raise ValueError(f"not a literal: {ast.unparse(node)}")


def _options(decorator: ast.expr, expressions: dict[str, str], fail: Callable[..., ContextError]) -> VariableOptions:
    """The literal options of ``@variable(...)``, checked as the decorator checks them (errors at its line)."""
    if not isinstance(decorator, ast.Call):
        return VariableOptions()
    at = decorator.lineno
    if decorator.args:
        raise fail("@variable(...) takes keyword arguments only (title=, summary=, unit=, description=)", line=at)
    given: dict[str, Any] = {}
    for keyword in decorator.keywords:
        if keyword.arg not in _OPTIONS:
            shown = "**" + ast.unparse(keyword.value) if keyword.arg is None else repr(keyword.arg)
            raise fail(f"@variable() takes {', '.join(_OPTIONS)}, not {shown}", line=at)
        try:
            value = _literal(keyword.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            expressions[keyword.arg] = ast.unparse(keyword.value)
            continue
        if value is not None and not isinstance(value, str):
            raise fail(f"@variable({keyword.arg}=...) takes a str, not {type(value).__name__}", line=at)
        if keyword.arg == "summary" and value is not None and value not in SUMMARIES:
            raise fail(f"@variable(summary={value!r}): use one of {', '.join(map(repr, SUMMARIES))} or None", line=at)
        given[keyword.arg] = value
    return VariableOptions(**given)
