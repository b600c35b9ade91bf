"""The query expression language: parsed by hand, never evaluated by Python.

``temperature > 300 and 'good' in tags`` becomes a small immutable AST that
:func:`to_sql` pushes down to SQL, with bound parameters only, or that
:func:`evaluate` applies to rows in memory.  Nothing calls ``eval``/``exec``: a
query typed into a notebook can come from anyone.  Names reach tables only
through the caller's ``resolve`` (see :class:`Collection`).

Grammar, a subset of pandas ``DataFrame.query`` (``&``, ``|``, ``~`` spell
``and``, ``or``, ``not``, so here ``~`` binds looser than ``>``)::

    expression := and (('or' | '|') and)*
    and        := not (('and' | '&') not)*
    not        := ('not' | '~')* condition
    condition  := '(' expression ')'
                | value (('==' | '!=' | '<' | '<=' | '>' | '>=') value)+   # 1 < x < 3
                | value ['not'] 'in' (list | name)                        # 'good' in tags
                | value 'is' ['not'] ('None' | 'null')
                | name ('contains' string | '.str.contains(' string ')')
    value      := '-'* number | string | name | `any name` | True | False | None | true | false | null
    list       := '[' [value (',' value)* [',']] ']' | '(' ... ')'      # literals; (1) is a list
"""

from __future__ import annotations

import numbers
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from .errors import QuerySyntaxError

__all__ = [
    "Node", "Name", "Literal", "Compare", "In", "IsNull", "Contains", "And", "Or", "Not",
    "Collection", "Typed", "KINDS", "parse", "names", "seconds", "to_sql", "evaluate", "MAX_LENGTH", "MAX_DEPTH",
]

MAX_LENGTH = 10_000
# Counts parentheses and nots.  SQLite's parser gives up sooner on some shapes ("parser
# stack overflow" near 36 alternating and/or levels): the registry translates that error.
MAX_DEPTH = 100

Scalar = int | float | str | bool | None


# -- the AST -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    """Base class of every node of a parsed expression."""


@dataclass(frozen=True, slots=True)
class Name(Node):
    name: str


@dataclass(frozen=True, slots=True)
class Literal(Node):
    value: Scalar | tuple[Scalar, ...]  # a tuple only after `in`


@dataclass(frozen=True, slots=True)
class Compare(Node):
    op: str  # == != < <= > >=
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class In(Node):
    item: Node
    container: Node  # a tuple Literal, or a Name that resolves to a Collection
    negated: bool = False


@dataclass(frozen=True, slots=True)
class IsNull(Node):
    operand: Node
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Contains(Node):
    operand: Node
    text: str


@dataclass(frozen=True, slots=True)
class And(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not(Node):
    item: Node


# -- tokens --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # num, str, name, const, op, kw, end
    value: Any
    pos: int
    text: str  # as written, for messages

    def describe(self) -> str:
        if self.kind in ("op", "kw", "const", "end"):
            return repr(self.text) if self.text else "end of expression"
        kind = {"num": "number", "str": "string", "name": "name"}[self.kind]
        return f"{kind} {self.text if self.kind != 'name' or self.text[0] == '`' else repr(self.text)}"


# Python's operators build SQLAlchemy expressions and compare Python values alike.
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_KEYWORDS = {"and", "or", "not", "in", "is", "contains"}
_CONSTANTS = {"True": True, "False": False, "None": None, "true": True, "false": False, "null": None}
_TOKEN = re.compile(
    r"(?P<ws>\s+)|(?P<num>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)|(?P<name>[^\W\d]\w*)"
    r"|(?P<op>\.str\.contains\(|==|!=|<=|>=|[<>&|~()\[\],\-])"
    r"|(?P<quoted>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`)",
    re.DOTALL,
)
_NUMBER_LIKE = re.compile(r"[\w.]+")
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.DOTALL)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r", "0": "\0"}
_NAME_ESCAPES = {"\\": "\\", "`": "`"}
# Hints for characters people bring from other languages.
_HINTS = {"=": "'==' to compare", "!": "'not' or '~' to negate",
          ".": "`backticks` around a name with dots, or name.str.contains('text')"}
_INT_LIMIT = 2**63  # SQLite and PostgreSQL integers are 64-bit; larger ones fail at bind time


def _error(text: str, pos: int, what: str, expected: str = "") -> QuerySyntaxError:
    # Long expressions are cut to a window so the caret stays on screen; tabs
    # and newlines become spaces so the caret column stays right.
    start = max(0, min(pos - 40, len(text) - 80))
    shown = ("..." if start else "") + text[start : start + 80].translate({9: " ", 10: " ", 13: " "})
    caret = " " * (pos - start + (3 if start else 0)) + "^"
    message = f"{what} at position {pos}:\n  {shown}{'...' if start + 80 < len(text) else ''}\n  {caret}"
    message += f"\nexpected {expected}" if expected else ""
    return QuerySyntaxError(message, expression=text, position=pos)


def _tokens(text: str) -> Iterator[_Token]:
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos] in "'\"`":
                kind = "name" if text[pos] == "`" else "string"
                raise _error(text, pos, f"unterminated {kind}", f"a closing {text[pos]}")
            hint = _HINTS.get(text[pos], "an operator, a name, a number or a string")
            raise _error(text, pos, f"unexpected character {text[pos]!r}", hint)
        kind, word = m.lastgroup or "", m.group()
        if kind == "num":
            # "3abc" or "1.2.3" would otherwise split into two valid-looking tokens.
            bad = _NUMBER_LIKE.match(text, pos)
            if bad and bad.end() > m.end():
                raise _error(text, pos, f"invalid number {bad.group()!r}", "a number such as 3, 2.5 or 1e-3")
            number = float(word) if any(c in word for c in ".eE") else int(word)
            if number == float("inf") or (isinstance(number, int) and number >= _INT_LIMIT):
                raise _error(text, pos, f"number {word} is out of range", "a finite float, an int < 2**63")
            yield _Token("num", number, pos, word)
        elif kind == "quoted":
            yield _Token("name" if word[0] == "`" else "str", _unescape(text, pos, word), pos, word)
        elif kind == "name" and word in _CONSTANTS:
            yield _Token("const", _CONSTANTS[word], pos, word)
        elif kind != "ws":
            yield _Token("kw" if word in _KEYWORDS else kind, word, pos, word)
        pos = m.end()
    yield _Token("end", None, len(text), "")


def _unescape(text: str, pos: int, word: str) -> str:
    """The value of the quoted string or backticked name ``word`` found at ``pos``."""
    quote = word[0]
    if word == "``":
        raise _error(text, pos, "empty backticked name", "a name between the backticks")

    def one(m: re.Match[str]) -> str:
        esc, at = m.group(1), pos + 1 + m.start()
        table = _NAME_ESCAPES if quote == "`" else _ESCAPES
        if esc in table:
            return table[esc]
        # Names need to escape only the backtick; any other backslash is a
        # mistake worth reporting rather than a character silently dropped.
        if quote == "`" or len(esc) == 1:
            known = [*table, *([] if quote == "`" else ["xHH", "uHHHH", "UHHHHHHHH"])]
            raise _error(text, at, f"unknown escape '{m.group()}'", "one of \\" + " \\".join(known))
        code = int(esc[1:], 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:  # lone surrogates cannot reach the database
            raise _error(text, at, f"escape '{m.group()}' is not a character")
        return chr(code)

    return _ESCAPE.sub(one, word[1:-1])


# -- the parser ----------------------------------------------------------------


class _Parser:
    """Recursive descent, reading tokens as needed so that errors come in reading order."""

    def __init__(self, text: str):
        self.text, self.stream, self.tokens, self.i, self.depth = text, _tokens(text), list[_Token](), 0, 0

    def peek(self, ahead: int = 0) -> _Token:
        while len(self.tokens) <= self.i + ahead:
            self.tokens.append(next(self.stream))
        return self.tokens[self.i + ahead]

    def take(self) -> _Token:
        tok = self.peek()
        self.i += 1
        return tok

    def at(self, *texts: str) -> bool:
        return self.peek().kind in ("op", "kw") and self.peek().text in texts

    def expect(self, text: str, expected: str) -> None:
        if not self.at(text):
            raise self.unexpected(expected)
        self.take()

    def unexpected(self, expected: str, tok: _Token | None = None) -> QuerySyntaxError:
        tok = tok or self.peek()
        return _error(self.text, tok.pos, f"unexpected {tok.describe()}", expected)

    def enter(self, opening: _Token) -> None:
        # Bounds the recursion, and the depth of the tree that to_sql and
        # SQLAlchemy's compiler walk, well below Python's recursion limit.
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _error(self.text, opening.pos, f"expression nests deeper than {MAX_DEPTH} levels",
                         "fewer nested parentheses or 'not's")

    def expression(self) -> Node:
        # ``or`` of ``and`` of ``not``s of conditions in one flat loop, grouped
        # afterwards, rather than a method per level: a parenthesis then costs
        # two Python frames, so MAX_DEPTH of them stay far from the recursion limit.
        ors: list[list[Node]] = [[]]
        while True:
            nots = 0
            while self.at("not", "~"):
                self.enter(self.take())
                nots += 1
            node = self.condition()
            for _ in range(nots):
                node = Not(node)
            self.depth -= nots
            ors[-1].append(node)
            if not self.at("and", "&", "or", "|"):
                break
            if self.take().text in ("or", "|"):
                ors.append([])
        ands = [group[0] if len(group) == 1 else And(tuple(group)) for group in ors]
        return ands[0] if len(ands) == 1 else Or(tuple(ands))

    def condition(self) -> Node:
        if self.at("("):
            self.enter(self.take())
            node = self.expression()
            self.expect(")", "')', 'and' or 'or'")
            self.depth -= 1
            return node
        start, left = self.peek(), self.value()
        if self.at("in") or (self.at("not") and self.peek(1).text == "in"):
            negated = self.take().text == "not"
            self.i += negated  # past the "in" of "not in"
            if self.at("[", "("):
                return In(left, Literal(self.literal_list()), negated)
            if self.peek().kind != "name":
                raise self.unexpected("a list such as [1, 2] or a collection name after 'in'")
            return In(left, Name(self.take().value), negated)
        if self.at("is"):
            negated = self.peek(1).text == "not"
            self.i += 1 + negated
            if (tok := self.take()).kind != "const" or tok.value is not None:
                raise self.unexpected(f"None or null after {'is not' if negated else 'is'!r}", tok)
            return IsNull(left, negated)
        if self.at("contains", ".str.contains("):  # the second for pandas habits
            pandas = self.take().text != "contains"
            if self.peek().kind != "str":
                raise self.unexpected("a string to search for")
            text = self.take().value
            if pandas:
                self.expect(")", "')': str.contains takes only the string to search for")
            if not isinstance(left, Name):
                raise self.unexpected("a name before 'contains'", start)
            return Contains(left, text)
        if not self.at(*_OPS):
            raise self.unexpected("a comparison (== != < <= > >= in, not in, is, contains)")
        operands, starts, pairs = [left], [start], []
        while self.at(*_OPS):  # Python's chaining: 1 < x < 3 is 1 < x and x < 3
            op = self.take().text
            starts.append(self.peek())
            operands.append(self.value())
            a, b = operands[-2:]
            if op not in ("==", "!=") and None in (_const(a), _const(b)):
                raise _error(self.text, starts[-2 if _const(a) is None else -1].pos,
                             f"None cannot be ordered with {op!r}", "== None, != None or 'is null'")
            pairs.append(Compare(op, a, b))
        return pairs[0] if len(pairs) == 1 else And(tuple(pairs))

    def value(self) -> Node:
        minus = []
        while self.at("-"):  # a loop, not recursion, and no nesting in the tree: "- - 3" is 3
            minus.append(self.take())
        tok = self.take()
        if tok.kind not in ("num", "str", "const", "name"):
            expected = "a value (a number, a string, a name, True/False/None)"
            if tok.text in ("(", "["):  # parentheses only group conditions
                expected = "a single value: a list can only follow 'in' or 'not in'"
            raise self.unexpected(expected, tok)
        node = Name(tok.value) if tok.kind == "name" else Literal(tok.value)
        if minus:
            number = _const(node)
            if not isinstance(number, (int, float)) or isinstance(number, bool):
                raise self.unexpected("a number after '-': unary minus applies to numbers only", minus[0])
            node = Literal(-number if len(minus) % 2 else number)
        return node

    def literal_list(self) -> tuple[Scalar, ...]:
        """``[1, 'a', None]`` or ``(1, 'a', None)``; ``(1)`` is a list of one, as in SQL."""
        close, items = (")" if self.take().text == "(" else "]"), list[Scalar]()
        while not self.at(close):
            tok, item = self.peek(), self.value()
            if not isinstance(item, Literal) or isinstance(item.value, tuple):
                raise self.unexpected("a literal list item (a number, a string, True, False or None)", tok)
            items.append(item.value)
            if not self.at(","):
                break
            self.take()
        self.expect(close, f"',' or {close!r}")
        return tuple(items)


def _const(node: Node) -> object:
    return node.value if isinstance(node, Literal) else _const  # itself: a sentinel unlike any value


def _describe(node: Node) -> str:
    if isinstance(node, Name):
        return f"name {node.name!r}"
    return f"value {node.value!r}" if isinstance(node, Literal) else "a condition"


def parse(text: str) -> Node:
    """Parse a query expression into an immutable AST.

    Parameters
    ----------
    text : str
        Such as ``"10 <= run < 50 and 'good' in tags"``: at most
        :data:`MAX_LENGTH` characters, :data:`MAX_DEPTH` levels deep.

    Returns
    -------
    Node
        A condition: ``Compare``, ``In``, ``IsNull``, ``Contains``, ``And``, ``Or`` or ``Not``.

    Raises
    ------
    QuerySyntaxError
        Showing the expression with a caret under the error, and what was expected there.
    """
    if not isinstance(text, str):
        raise TypeError(f"a query expression must be a str, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise QuerySyntaxError(f"query expression is {len(text)} characters long; the limit is {MAX_LENGTH}",
                               expression=text, position=MAX_LENGTH)
    parser = _Parser(text)
    node = parser.expression()
    if parser.peek().kind != "end":
        raise parser.unexpected("'and', 'or' or the end of the expression")
    return node


def names(node: Node) -> set[str]:
    """Every name an expression uses, to check them before :func:`to_sql`.

    Parameters
    ----------
    node : Node
        A tree from :func:`parse`.

    Returns
    -------
    set of str
        The names as ``resolve`` will see them, backticks and escapes removed.
    """
    match node:
        case Name(name):
            return {name}
        case And(items) | Or(items):
            return set().union(*map(names, items))
        case Not(item) | IsNull(item) | Contains(item):
            return names(item)
        case Compare(_, left, right) | In(left, right):
            return names(left) | names(right)
    return set()


# -- types ---------------------------------------------------------------------

#: What a column holds, for the checks that make both registries agree: a
#: comparison of a text column with a number is an error on PostgreSQL and a
#: silent, meaningless answer on SQLite, so it is refused before any SQL.
KINDS = ("number", "text", "bool", "time", "any")
_DESCRIBED = {
    "number": "numbers", "text": "text", "bool": "bools", "any": "any values",
    "time": "times (compare with an ISO time such as '2024-05-01' or '2024-05-01T12:00:00+02:00', "
            "naive times being UTC, or with seconds since the epoch)",
}


@dataclass(frozen=True, slots=True)
class Typed:
    """What ``resolve`` returns for a scalar column whose values have a known kind.

    ``kind`` is one of :data:`KINDS`; ``time`` columns hold seconds since the
    epoch (UTC) and are compared with ISO time strings, or with numbers of
    seconds.  A plain column expression gets its kind from its SQL type.
    """

    column: ColumnElement[Any]
    kind: str


def seconds(value: Any, what: str = "a time") -> float:
    """A time as seconds since the epoch: a datetime, date, pandas Timestamp,
    numpy datetime64, ISO 8601 string or a number of seconds.

    Naive times (without a timezone) are UTC, as the run table shows them.
    """
    import datetime as dt

    if isinstance(value, bool) or type(value).__name__ == "bool_":
        raise QuerySyntaxError(f"{what} is compared with times, not with {value!r}")
    if isinstance(value, numbers.Real):  # Python and numpy numbers: seconds since the epoch
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise QuerySyntaxError(f"{what} is compared with times, not with {value!r}")
        return number
    if type(value).__name__ == "datetime64":
        import numpy as np

        if np.isnat(value):
            raise QuerySyntaxError(f"{what} is compared with times, not with NaT")
        return float(value.astype("datetime64[ns]").astype(np.int64)) / 1e9
    if isinstance(value, str):
        text = value.strip()
        try:
            value = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise QuerySyntaxError(
                f"{value!r} is not a time for {what}: write an ISO time such as '2024-05-01' or "
                "'2024-05-01T12:00:00+02:00' (naive times are UTC)"
            ) from None
    if isinstance(value, dt.datetime):
        if value != value:  # pandas NaT is a datetime that equals nothing
            raise QuerySyntaxError(f"{what} is compared with times, not with NaT")
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp()
    raise QuerySyntaxError(f"{what} is compared with times (datetime, ISO str, seconds), not {type(value).__name__}")


def _literal_kind(value: Any) -> str:
    if value is None:
        return "any"
    if isinstance(value, bool):
        return "bool"
    return "text" if isinstance(value, str) else "number"


_A = {"number": "a number", "text": "text", "bool": "a bool", "time": "a time", "any": "a value"}


def _fits(column: str, other: str, literal: bool) -> bool:
    """Whether values of kind ``other`` compare with a column of kind ``column``.

    ``literal``: the other side is a literal of the expression, which a time
    column takes as an ISO time string or a number of seconds.
    """
    if "any" in (column, other) or column == other:
        return True
    numeric = ("number", "bool")  # a bool is 1 or 0, as SQLite and Python compare it
    if column in numeric and other in numeric:
        return True
    return literal and column == "time" and other in ("text", "number")


def _check_pair(left: Node, left_kind: str, right: Node, right_kind: str) -> None:
    if _fits(left_kind, right_kind, isinstance(right, Literal)) or _fits(right_kind, left_kind, isinstance(left, Literal)):
        return
    if not isinstance(left, Name) and isinstance(right, Name):
        left, left_kind, right, right_kind = right, right_kind, left, left_kind
    raise _mismatch(left, left_kind, f"{_describe(right)} ({_A[right_kind]})")


def _mismatch(node: Node, kind: str, other: str) -> QuerySyntaxError:
    return QuerySyntaxError(f"cannot compare {_describe(node)}, which holds {_DESCRIBED[kind]}, with {other}")


# -- SQL -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Collection:
    """What ``resolve`` returns for a collection-valued column such as ``tags``.

    ``resolve(name)``, the caller's side of :func:`to_sql`, returns a SQLAlchemy column
    expression (or a :class:`Typed` one) for a scalar column and ``Collection(contains)``
    for a collection, where ``contains(value)`` is a boolean SQL expression, true when the
    row's collection holds ``value`` (a Python scalar, or a column expression for
    ``name in tags``) and never NULL: typically an ``EXISTS`` over a join table.
    ``kind`` is the kind of its items.  For an unknown name ``resolve`` should raise;
    callers check :func:`names` first to suggest a spelling.
    """

    contains: Callable[[Any], ColumnElement[bool]]
    kind: str = "any"


Resolved = ColumnElement[Any] | Typed | Collection
Resolver = Callable[[str], Resolved]


def to_sql(node: Node, resolve: Resolver) -> ColumnElement[bool]:
    """Translate a parsed expression into a SQLAlchemy boolean expression.

    Parameters
    ----------
    node : Node
        A tree from :func:`parse`.
    resolve : callable
        ``resolve(name)`` gives a column expression, a :class:`Typed` one or a
        :class:`Collection`.

    Returns
    -------
    sqlalchemy.sql.ColumnElement
        Dialect-neutral, every literal a bound parameter.  ``== None`` becomes ``IS NULL``;
        ``contains`` becomes ``LIKE`` with ``%`` and ``_`` escaped, as case-sensitive as the
        database makes it (SQLite ignores ASCII case, PostgreSQL does not).  A time
        column compared with an ISO string compares the instant it names.

    Raises
    ------
    QuerySyntaxError
        For a collection used as a value, a scalar column after ``in``, or values
        of kinds that do not compare (text with numbers, ``contains`` on numbers),
        the same on every database.
    """
    if isinstance(node, (And, Or)):
        return (sa.and_ if isinstance(node, And) else sa.or_)(*(to_sql(item, resolve) for item in node.items))
    if isinstance(node, Not):
        return sa.not_(to_sql(node.item, resolve))
    if isinstance(node, Compare):
        if node.op in ("==", "!=") and None in (_const(node.left), _const(node.right)):
            column = _sql_value(node.right if _const(node.left) is None else node.left, resolve)[0]
            return column.is_(None) if node.op == "==" else column.is_not(None)
        left, left_kind = _operand(node.left, resolve)
        right, right_kind = _operand(node.right, resolve)
        _check_pair(node.left, left_kind, node.right, right_kind)
        # A literal side is bound knowing the other side's column type (see _bind).
        if isinstance(node.left, Literal):
            left = _bind(_converted(node.left.value, right_kind, node.right), like=right)
        if isinstance(node.right, Literal):
            right = _bind(_converted(node.right.value, left_kind, node.left), like=left)
        compared: ColumnElement[bool] = _OPS[node.op](left, right)
        return compared
    if isinstance(node, In):
        if isinstance(values := _const(node.container), tuple):
            item, kind = _sql_value(node.item, resolve)
            for value in values:
                _check_pair(node.item, kind, Literal(value), _literal_kind(value))
            bound = [_bind(_converted(v, kind, node.item), like=item) for v in values]
            return item.not_in(bound) if node.negated else item.in_(bound)
        if not isinstance(target := resolve(_name(node.container)), Collection):
            raise _misused(node.container, collection=False)
        if isinstance(node.item, Literal):
            member: Any = node.item.value
            kind = _literal_kind(member)
        else:
            member, kind = _sql_value(node.item, resolve)
        if not _fits(target.kind, kind, False):
            raise QuerySyntaxError(
                f"{_describe(node.container)} holds {_DESCRIBED[target.kind]}, so it never holds "
                f"{_describe(node.item)} ({_A[kind]})"
            )
        found = target.contains(member)
        return sa.not_(found) if node.negated else found
    if isinstance(node, IsNull):
        column = _sql_value(node.operand, resolve)[0]
        return column.is_not(None) if node.negated else column.is_(None)
    if isinstance(node, Contains):
        column, kind = _sql_value(node.operand, resolve)
        if kind not in ("text", "any"):
            raise QuerySyntaxError(f"'contains' looks inside text, but {_describe(node.operand)} holds {_DESCRIBED[kind]}")
        return column.contains(node.text, autoescape=True)
    raise QuerySyntaxError(f"{_describe(node)} is not a condition")


def _name(node: Node) -> str:
    if not isinstance(node, Name):  # the parser puts only names here
        raise QuerySyntaxError(f"{_describe(node)} is not a column")
    return node.name


def _misused(node: Node, collection: bool) -> QuerySyntaxError:
    name, what = _name(node), _describe(node)
    if collection:
        return QuerySyntaxError(f"{what} is a collection; test membership with `'value' in {name}`")
    return QuerySyntaxError(f"{what} is not a collection, so 'in' cannot look inside it; "
                            f"use `{name} contains 'text'` for a substring or '==' for equality")


def _bind(value: Scalar, like: ColumnElement[Any] | None = None) -> ColumnElement[Any]:
    # The literal's own type, not its column's: PostgreSQL casts a parameter to its
    # type, and 3000000000 as an INTEGER column's type overflows.  A bool against a
    # column that is not boolean is 1 or 0, as SQLite and Python compare it, where
    # PostgreSQL would refuse `double precision = boolean`.
    if isinstance(value, bool) and like is not None and not isinstance(like.type, sa.Boolean):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return sa.literal(value, sa.BigInteger())
    if isinstance(value, float):
        return sa.literal(value, sa.Float())
    return sa.null() if value is None else sa.literal(value)  # PostgreSQL cannot type a NULL parameter


def _converted(value: Scalar | tuple[Scalar, ...], kind: str, other: Node) -> Scalar:
    """A literal as compared with a column of ``kind``: times become seconds since the epoch."""
    assert not isinstance(value, tuple)  # lists only follow `in`
    if kind == "time" and value is not None:
        return seconds(value, _describe(other))
    return value


def _kind_of(column: ColumnElement[Any]) -> str:
    sql_type = column.type
    if isinstance(sql_type, sa.Boolean):
        return "bool"
    if isinstance(sql_type, (sa.Integer, sa.Float, sa.Numeric)):
        return "number"
    if isinstance(sql_type, sa.String):  # Text is a String
        return "text"
    return "any"


def _operand(node: Node, resolve: Resolver) -> tuple[ColumnElement[Any], str]:
    """The SQL of one side of a comparison (a literal bound later) and its kind."""
    if isinstance(node, Literal) and not isinstance(node.value, tuple):
        return sa.null(), _literal_kind(node.value)
    return _sql_value(node, resolve)


def _sql_value(node: Node, resolve: Resolver) -> tuple[ColumnElement[Any], str]:
    if isinstance(node, Literal) and not isinstance(node.value, tuple):  # lists only follow `in`
        return _bind(node.value), _literal_kind(node.value)
    target = resolve(_name(node))
    if isinstance(target, Collection):
        raise _misused(node, collection=True)
    if isinstance(target, Typed):
        return target.column, target.kind
    return target, _kind_of(target)


# -- Python ----------------------------------------------------------------------

_COLLECTIONS = (list, tuple, set, frozenset)


def evaluate(node: Node, row: Mapping[str, Any]) -> bool:
    """Evaluate a parsed expression on one row in memory, as SQL would.

    Parameters
    ----------
    node : Node
        A tree from :func:`parse`.
    row : Mapping
        A value for every name of :func:`names`; a collection's is a list, tuple or set.
        Times may be datetimes (compared with ISO strings as :func:`to_sql` does).

    Returns
    -------
    bool
        Whether a ``WHERE`` from :func:`to_sql` selects the row: comparing with NULL is
        unknown, carried through ``and``/``or``/``not`` by SQL's three-valued logic and
        finally false.  ``contains`` is case-sensitive.

    Raises
    ------
    QuerySyntaxError
        For a collection used as a value, a scalar after ``in``, or values of kinds
        that do not compare (``'a' < 3``, ``contains`` on a number), as :func:`to_sql`.
    """
    return _truth(node, row) is True


def _truth(node: Node, row: Mapping[str, Any]) -> bool | None:
    """True, False or None for SQL's unknown."""
    if isinstance(node, (And, Or)):
        values = [_truth(item, row) for item in node.items]
        decisive = isinstance(node, Or)  # one true decides an or, one false an and
        return decisive if decisive in values else (None if None in values else not decisive)
    if isinstance(node, Not):
        value = _truth(node.item, row)
        return None if value is None else not value
    if isinstance(node, Compare):
        left, right = _py_value(node.left, row), _py_value(node.right, row)
        if node.op in ("==", "!=") and None in (_const(node.left), _const(node.right)):
            return (left is None and right is None) == (node.op == "==")
        if left is None or right is None:
            return None
        left, right = _comparable(left, node.left, right, node.right)
        return bool(_OPS[node.op](left, right))
    if isinstance(node, In):
        item = _py_value(node.item, row)
        found: bool | None
        if isinstance(options := _const(node.container), tuple):
            if item is not None:
                options = tuple(o if o is None else _comparable(item, node.item, o, Literal(o))[1] for o in options)
                item = _comparable(item, node.item, item, node.item)[0]
            if not options or item is None:
                found = None if options else False  # x IN () is false even for a NULL x
            else:  # x IN (1, NULL) is unknown, not false, when x is not 1
                found = True if item in options else None if None in options else False
        else:
            collection = row[_name(node.container)]
            if collection is not None and not isinstance(collection, _COLLECTIONS):
                raise _misused(node.container, collection=False)
            found = item is not None and item in (collection or ())
        return None if found is None else found != node.negated
    if isinstance(node, IsNull):
        return (_py_value(node.operand, row) is None) != node.negated
    if isinstance(node, Contains):
        value = _py_value(node.operand, row)
        if value is not None and not isinstance(value, str):
            raise QuerySyntaxError(f"'contains' looks inside text, but {_describe(node.operand)} is {value!r}")
        return None if value is None else node.text in value
    raise QuerySyntaxError(f"{_describe(node)} is not a condition")


def _py_kind(value: Any) -> str:
    import datetime as dt

    if isinstance(value, (dt.date, dt.datetime)) or type(value).__name__ == "datetime64":
        return "time"
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "bool"
    return "number" if isinstance(value, numbers.Real) else "any"


def _comparable(left: Any, left_node: Node, right: Any, right_node: Node) -> tuple[Any, Any]:
    """Two non-NULL values as SQL compares them (times as seconds), or the error to_sql gives."""
    left_kind, right_kind = _py_kind(left), _py_kind(right)
    _check_pair(left_node, left_kind, right_node, right_kind)
    if "time" in (left_kind, right_kind):
        return seconds(left, _describe(left_node)), seconds(right, _describe(right_node))
    return left, right


def _py_value(node: Node, row: Mapping[str, Any]) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(value := row[_name(node)], _COLLECTIONS):
        raise _misused(node, collection=True)
    return value
