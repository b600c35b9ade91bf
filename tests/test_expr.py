"""The query expression language: parsing, errors, SQL push-down, evaluate.

SQL is checked by executing it: a table with int/float/text/bool/NULL
columns and a tags table behind a resolver, on SQLite and PostgreSQL, and
the rows selected compared with :func:`evaluate` on the same rows.
"""

from __future__ import annotations

import ast
import dataclasses
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from labshelf import errors
from labshelf.errors import QuerySyntaxError, ShelfError
from labshelf.expr import (
    MAX_DEPTH,
    MAX_LENGTH,
    And,
    Collection,
    Compare,
    Contains,
    In,
    IsNull,
    Literal,
    Name,
    Node,
    Not,
    Or,
    evaluate,
    names,
    parse,
    to_sql,
)

A, B, C, X, Y = Name("a"), Name("b"), Name("c"), Name("x"), Name("y")
TAGS = Name("tags")


def lit(value: Any) -> Literal:
    return Literal(value)


def same(got: Node, want: Node) -> None:
    # repr too, because Literal(1) == Literal(True) == Literal(1.0) by value.
    assert got == want
    assert repr(got) == repr(want)


# -- parsing ---------------------------------------------------------------------

PARSED = [
    ("run == 3", Compare("==", Name("run"), lit(3))),
    ("x != -3", Compare("!=", X, lit(-3))),
    ("x > - -2.5", Compare(">", X, lit(2.5))),
    ("x >= 1e-3", Compare(">=", X, lit(0.001))),
    ("x < .5", Compare("<", X, lit(0.5))),
    ("x <= 2.", Compare("<=", X, lit(2.0))),
    ("x > 1E3", Compare(">", X, lit(1000.0))),
    ("x == 'a'", Compare("==", X, lit("a"))),
    ('x == "a"', Compare("==", X, lit("a"))),
    ("x == ''", Compare("==", X, lit(""))),
    ("x == True", Compare("==", X, lit(True))),
    ("x == true", Compare("==", X, lit(True))),
    ("x != False", Compare("!=", X, lit(False))),
    ("x != false", Compare("!=", X, lit(False))),
    ("x == None", Compare("==", X, lit(None))),
    ("null == x", Compare("==", lit(None), X)),
    ("3 < x", Compare("<", lit(3), X)),
    ("x == y", Compare("==", X, Y)),
    ("1 < 2", Compare("<", lit(1), lit(2))),
    ("température > 1", Compare(">", Name("température"), lit(1))),
    ("((x > 1))", Compare(">", X, lit(1))),
    ("x in [1, 2]", In(X, lit((1, 2)))),
    ("x in (1, 'a', None, -2.5)", In(X, lit((1, "a", None, -2.5)))),
    ("x in (1,)", In(X, lit((1,)))),
    ("x in (1)", In(X, lit((1,)))),  # as in SQL, not Python
    ("x in [1,]", In(X, lit((1,)))),
    ("x in []", In(X, lit(()))),
    ("x in ()", In(X, lit(()))),
    ("x not in [1]", In(X, lit((1,)), negated=True)),
    ("'good' in tags", In(lit("good"), TAGS)),
    ("'bad' not in tags", In(lit("bad"), TAGS, negated=True)),
    ("x in tags", In(X, TAGS)),
    ("x is null", IsNull(X)),
    ("x is None", IsNull(X)),
    ("x is not None", IsNull(X, negated=True)),
    ("x is not null", IsNull(X, negated=True)),
    ("comment contains 'drift'", Contains(Name("comment"), "drift")),
    ('comment.str.contains("drift")', Contains(Name("comment"), "drift")),
    ("`camera/image` > 0", Compare(">", Name("camera/image"), lit(0))),
    ("`camera/image.mean` > 0", Compare(">", Name("camera/image.mean"), lit(0))),
    ("`pmt[channel=2]` == 1", Compare("==", Name("pmt[channel=2]"), lit(1))),
    ("`camera/image.mean`.str.contains('a')", Contains(Name("camera/image.mean"), "a")),
    ("`and` == 1", Compare("==", Name("and"), lit(1))),
    ("`x y` == 1", Compare("==", Name("x y"), lit(1))),
    (r"`a\`b` == 1", Compare("==", Name("a`b"), lit(1))),
    (r"`a\\b` == 1", Compare("==", Name("a\\b"), lit(1))),
    ("not x > 1", Not(Compare(">", X, lit(1)))),
    ("~(x > 1)", Not(Compare(">", X, lit(1)))),
    ("x > 1 & y < 2", And((Compare(">", X, lit(1)), Compare("<", Y, lit(2))))),
    ("x > 1 | y < 2", Or((Compare(">", X, lit(1)), Compare("<", Y, lit(2))))),
    ("x\n>\t1", Compare(">", X, lit(1))),
]


@pytest.mark.parametrize(("text", "tree"), PARSED, ids=[t for t, _ in PARSED])
def test_parse(text: str, tree: Node) -> None:
    same(parse(text), tree)


def test_parse_the_documented_example() -> None:
    same(
        parse("temperature > 300 and experiment == 'rabi_scan' and 'good' in tags"),
        And((
            Compare(">", Name("temperature"), lit(300)),
            Compare("==", Name("experiment"), lit("rabi_scan")),
            In(lit("good"), TAGS),
        )),
    )


GT_A, GT_B, GT_C = (Compare(">", n, lit(1)) for n in (A, B, C))
PRECEDENCE = [
    ("a > 1 or b > 1 and c > 1", Or((GT_A, And((GT_B, GT_C))))),
    ("a > 1 and b > 1 or c > 1", Or((And((GT_A, GT_B)), GT_C))),
    ("a > 1 | b > 1 & c > 1", Or((GT_A, And((GT_B, GT_C))))),
    ("a > 1 and b > 1 and c > 1", And((GT_A, GT_B, GT_C))),
    ("a > 1 or b > 1 or c > 1", Or((GT_A, GT_B, GT_C))),
    ("not a > 1 and b > 1", And((Not(GT_A), GT_B))),
    ("not a > 1 or b > 1", Or((Not(GT_A), GT_B))),
    ("not (a > 1 and b > 1)", Not(And((GT_A, GT_B)))),
    ("not not a > 1", Not(Not(GT_A))),
    ("~a > 1", Not(GT_A)),  # unlike pandas, ~ is `not`, so it binds looser than >
    ("(a > 1 or b > 1) and c > 1", And((Or((GT_A, GT_B)), GT_C))),
    ("a > 1 and (b > 1 or c > 1)", And((GT_A, Or((GT_B, GT_C))))),
    ("a > 1 and not b > 1 or not c > 1", Or((And((GT_A, Not(GT_B))), Not(GT_C)))),
    # chaining, as in Python
    ("10 <= run < 50", And((Compare("<=", lit(10), Name("run")), Compare("<", Name("run"), lit(50))))),
    ("a < b <= c > 2", And((Compare("<", A, B), Compare("<=", B, C), Compare(">", C, lit(2))))),
    ("1 < x == y", And((Compare("<", lit(1), X), Compare("==", X, Y)))),
    ("not 1 < x < 3", Not(And((Compare("<", lit(1), X), Compare("<", X, lit(3)))))),
    ("a > 1 and 0 < b < 2", And((GT_A, And((Compare("<", lit(0), B), Compare("<", B, lit(2))))))),
]


@pytest.mark.parametrize(("text", "tree"), PRECEDENCE, ids=[t for t, _ in PRECEDENCE])
def test_precedence_and_chaining(text: str, tree: Node) -> None:
    same(parse(text), tree)


STRINGS = [
    (r"'it\'s'", "it's"),
    (r'"say \"hi\""', 'say "hi"'),
    ("'a\"b'", 'a"b'),
    ('"a\'b"', "a'b"),
    (r"'a\\b'", "a\\b"),
    (r"'\n\t\r\0'", "\n\t\r\0"),
    (r"'\x41\u00e9\U0001F600'", "A\u00e9\U0001f600"),
    ("'δ µ'", "δ µ"),
    ("'a`b'", "a`b"),
    ("'and or not'", "and or not"),
]


@pytest.mark.parametrize(("literal", "value"), STRINGS, ids=[s for s, _ in STRINGS])
def test_string_escapes(literal: str, value: str) -> None:
    same(parse(f"x == {literal}"), Compare("==", X, lit(value)))


def test_nodes_are_immutable_and_hashable() -> None:
    node = parse("x > 1 and y in [1, 2]")
    assert isinstance(node, And)
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.items = ()  # type: ignore[misc]
    assert hash(node) == hash(parse("x > 1 and y in [1, 2]"))


def test_names() -> None:
    node = parse(
        "a > 1 and (`b/c` in [1] or 'x' in tags) and d.str.contains('q') and e is null "
        "and not f == g and h contains 'z' and 1 < 2"
    )
    assert names(node) == {"a", "b/c", "tags", "d", "e", "f", "g", "h"}
    assert names(parse("1 < 2")) == set()


# -- errors ----------------------------------------------------------------------

ERRORS = [
    ("temperature > ) 3", 14, "unexpected ')'", "expected a value"),
    ("temperature", 11, "unexpected end of expression", "expected a comparison"),
    ("", 0, "unexpected end of expression", "expected a value"),
    ("x = 3", 2, "unexpected character '='", "'=='"),
    ("!(x > 1)", 0, "unexpected character '!'", "'not'"),
    ("x $ 1", 2, "unexpected character '$'", "an operator, a name, a number or a string"),
    ("x == 3 and", 10, "unexpected end of expression", "expected a value"),
    ("x > 1 y < 2", 6, "unexpected name 'y'", "'and', 'or'"),
    ("(x > 1", 6, "unexpected end of expression", "')'"),
    ("x > 1)", 5, "unexpected ')'", "'and', 'or'"),
    ("x == [1, 2]", 5, "unexpected '['", "a list can only follow 'in'"),
    ("[1, 2] == x", 0, "unexpected '['", "a list can only follow 'in'"),
    ("x in 3", 5, "unexpected number 3", "a list such as [1, 2]"),
    ("x in 'abc'", 5, "unexpected string 'abc'", "a list such as [1, 2]"),
    ("x in [y]", 6, "unexpected name 'y'", "literal list item"),
    ("x in [1, [2]]", 9, "unexpected '['", "a list can only follow 'in'"),
    ("x in (1, y)", 9, "unexpected name 'y'", "literal list item"),
    ("x in [1 2]", 8, "unexpected number 2", "',' or ']'"),
    ("x < None", 4, "None cannot be ordered with '<'", "'is null'"),
    ("null >= x", 0, "None cannot be ordered with '>='", "'is null'"),
    ("x is 3", 5, "unexpected number 3", "None or null after 'is'"),
    ("x is not", 8, "unexpected end of expression", "None or null after 'is not'"),
    ("x contains 3", 11, "unexpected number 3", "a string"),
    ("3 contains 'a'", 0, "unexpected number 3", "a name before 'contains'"),
    ("x.foo('a')", 1, "unexpected character '.'", "`backticks` around a name with dots"),
    ("x.str.contains('a', case=False)", 18, "unexpected ','", "')': str.contains takes only"),
    ("x.str.contains(y)", 15, "unexpected name 'y'", "a string"),
    ("x.str.contains('a' 'b')", 19, "unexpected string 'b'", "')'"),
    ("'abc", 0, "unterminated string", "a closing '"),
    ('x == "abc', 5, "unterminated string", 'a closing "'),
    ("`abc == 1", 0, "unterminated name", "a closing `"),
    ("`` == 1", 0, "empty backticked name", "a name between"),
    (r"x == 'a\qb'", 7, r"unknown escape '\q'", r"\xHH"),
    (r"x == '\x4g'", 6, r"unknown escape '\x'", r"\xHH"),
    (r"x == '\ud800'", 6, r"escape '\ud800' is not a character", ""),
    (r"`a\b` == 1", 2, r"unknown escape '\b'", "\\`"),
    ("3abc > 1", 0, "invalid number '3abc'", "a number"),
    ("x > 1.2.3", 4, "invalid number '1.2.3'", "a number"),
    ("x > 1_000", 4, "invalid number '1_000'", "a number"),
    ("x > 9223372036854775808", 4, "number 9223372036854775808 is out of range", "2**63"),
    ("x > 1e999", 4, "number 1e999 is out of range", "finite"),
    ("-x > 1", 0, "unexpected '-'", "unary minus applies to numbers"),
    ("x > -'a'", 4, "unexpected '-'", "unary minus applies to numbers"),
    ("x > -True", 4, "unexpected '-'", "unary minus applies to numbers"),
    ("(x > 1) == 2", 8, "unexpected '=='", "'and', 'or' or the end"),
    ("x > (y > 1)", 4, "unexpected '('", "a list can only follow 'in'"),
    ("(x) > 1", 2, "unexpected ')'", "expected a comparison"),
    ("(x > 1 or y > 2", 15, "unexpected end of expression", "')', 'and' or 'or'"),
    ("not x", 5, "unexpected end of expression", "expected a comparison"),
    ("x and y > 1", 2, "unexpected 'and'", "expected a comparison"),
    ("x > 1 and y", 11, "unexpected end of expression", "expected a comparison"),
    ("(1, 2) or x > 1", 2, "unexpected ','", "expected a comparison"),
    ("x not 3", 2, "unexpected 'not'", "expected a comparison"),
    ("x > 1 and\ny ) 2", 12, "unexpected ')'", "expected a comparison"),
    ("x AND y", 2, "unexpected name 'AND'", "expected a comparison"),
]


@pytest.mark.parametrize(("text", "pos", "what", "expected"), ERRORS, ids=[e[0] for e in ERRORS])
def test_syntax_errors(text: str, pos: int, what: str, expected: str) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse(text)
    err = info.value
    lines = str(err).split("\n")
    assert lines[0] == f"{what} at position {pos}:"
    # The expression is shown (newlines as spaces) with the caret under `pos`.
    assert lines[1] == "  " + text.replace("\n", " ")
    assert lines[2] == " " * (2 + pos) + "^"
    assert expected in "\n".join(lines[3:])
    assert (err.position, err.expression) == (pos, text)
    assert isinstance(err, ValueError) and isinstance(err, ShelfError)


def test_the_documented_message() -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse("temperature > ) 3")
    assert str(info.value).startswith(
        "unexpected ')' at position 14:\n  temperature > ) 3\n                ^\nexpected "
    )


def test_caret_in_a_long_expression_is_windowed() -> None:
    text = " and ".join(f"x{i} > {i}" for i in range(100))
    pos = text.index("x50 ") + 4
    text = text[:pos] + "=" + text[pos + 1 :]  # "x50 = 50"
    with pytest.raises(QuerySyntaxError) as info:
        parse(text)
    _, shown, caret = str(info.value).split("\n")[:3]
    assert shown.startswith("  ...") and shown.endswith("...") and len(shown) < 100
    assert caret.endswith("^") and shown[len(caret) - 1] == "="
    assert info.value.position == pos


def test_error_is_in_the_error_tree() -> None:
    assert "QuerySyntaxError" in errors.__all__
    assert "QuerySyntaxError" in (errors.__doc__ or "")


def test_not_a_string() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        parse(3)  # type: ignore[arg-type]


# -- limits ----------------------------------------------------------------------


def test_length_limit() -> None:
    ok = "x == '" + "a" * (MAX_LENGTH - 7) + "'"
    assert len(ok) == MAX_LENGTH
    parse(ok)
    with pytest.raises(QuerySyntaxError, match=r"10001 characters long; the limit is 10000"):
        parse(ok + " ")


@pytest.mark.parametrize(
    ("make", "first_too_deep"),
    [
        # first_too_deep: the position of the opening that makes level MAX_DEPTH + 1
        (lambda n: "(" * n + "x > 1" + ")" * n, MAX_DEPTH),
        (lambda n: "not " * n + "x > 1", 4 * MAX_DEPTH),
        (lambda n: "~" * n + "x > 1", MAX_DEPTH),
        (lambda n: "not (" * (n // 2) + "x > 1" + ")" * (n // 2), 5 * MAX_DEPTH // 2),
    ],
    ids=["parentheses", "not", "tilde", "not-parentheses"],
)
def test_depth_limit(make: Callable[[int], str], first_too_deep: int) -> None:
    parse(make(MAX_DEPTH))
    with pytest.raises(QuerySyntaxError) as info:
        parse(make(MAX_DEPTH + 2))
    assert f"nests deeper than {MAX_DEPTH} levels" in str(info.value)
    assert info.value.position == first_too_deep


def test_minus_signs_do_not_nest() -> None:
    same(parse("x > " + "-" * (MAX_DEPTH + 1) + "1"), Compare(">", X, lit(-1)))


def test_pathological_input_is_an_error_not_a_recursion_error() -> None:
    for text in ("(" * MAX_LENGTH, "not " * (MAX_LENGTH // 4), "~(" * (MAX_LENGTH // 2), "[" * MAX_LENGTH):
        with pytest.raises(QuerySyntaxError):
            parse(text)


def _alternating(levels: int) -> str:
    """``(not run > 0 or (not run > 1 and (...))))``: ``levels`` parentheses, plus one ``not``."""
    text = "".join(f"(not run > {i} {'and' if i % 2 else 'or'} " for i in range(levels))
    return text + "experiment == 'good'" + ")" * levels


def test_deepest_expression_compiles() -> None:
    # Alternating and/or cannot be flattened, so SQLAlchemy's compiler
    # recurses through every level.
    node = parse(_alternating(MAX_DEPTH - 1))
    with pytest.raises(QuerySyntaxError, match="nests deeper"):
        parse(_alternating(MAX_DEPTH))
    table = sa.Table("t", sa.MetaData(), sa.Column("run", sa.Integer), sa.Column("experiment", sa.String))
    stmt = sa.select(table.c.run).where(to_sql(node, lambda name: table.c[name]))
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        # and binds tighter than or, so SQL needs one parenthesis per two levels
        assert str(stmt.compile(dialect=dialect)).count("AND (") == (MAX_DEPTH - 1) // 2
    assert names(node) == {"run", "experiment"}


def test_deep_expression_runs(db: Db, backend: str) -> None:
    # SQLite's own parser stops with "parser stack overflow" near 36 levels of
    # alternating and/or (22 of `not (... and`), below MAX_DEPTH, so a caller
    # on SQLite must translate that error.  PostgreSQL takes the full depth.
    text = _alternating(30 if backend == "sqlite" else MAX_DEPTH - 1)
    selected = db.select(text)
    assert selected == db.evaluate(text)
    assert 0 < len(selected) < len(db.rows)


def test_no_eval_exec_or_compile_in_the_module() -> None:
    import labshelf.expr

    tree = ast.parse(Path(labshelf.expr.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                assert func.id not in ("eval", "exec", "compile", "__import__", "getattr"), func.id
            if isinstance(func, ast.Attribute) and func.attr == "compile":
                # Only the module's own constant regular expressions.
                assert isinstance(func.value, ast.Name) and func.value.id == "re"
                assert isinstance(node.args[0], ast.Constant)


# -- SQL against real databases ------------------------------------------------

WORDS = ["rabi_scan", "ramsey", "t1", "o'brien", 'say "hi"', "50%_done", "good", ""]
COMMENTS = ["drift in laser", "50% power", "a_b", "a/b", "ok", "no drift", "50 degrees", "back\\slash"]
TAG_NAMES = ["good", "bad", "cal", "o'k"]


@dataclasses.dataclass
class Db:
    engine: sa.Engine
    items: sa.Table
    tags: sa.Table
    rows: list[dict[str, Any]]

    def resolve(self, name: str) -> sa.ColumnElement[Any] | Collection:
        if name == "tags":
            return Collection(
                lambda value: sa.exists().where(self.tags.c.item_id == self.items.c.id, self.tags.c.tag == value)
            )
        return self.items.c[name]

    def select(self, text: str) -> set[int]:
        where = to_sql(parse(text), self.resolve)
        with self.engine.connect() as conn:
            return set(conn.scalars(sa.select(self.items.c.id).where(where)))

    def evaluate(self, text: str) -> set[int]:
        node = parse(text)
        return {row["id"] for row in self.rows if evaluate(node, row)}


def _maybe(rng: random.Random, value: Any, null: float = 0.2) -> Any:
    return None if rng.random() < null else value


@pytest.fixture
def db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Db]:
    schema = None
    if backend == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'expr.db'}")
    else:
        schemas = request.getfixturevalue("pg_schemas")
        engine = sa.create_engine(schemas.url.replace("postgresql://", "postgresql+psycopg://", 1))
        schema = schemas.new()
        with engine.begin() as conn:
            conn.execute(sa.schema.CreateSchema(schema))
    md = sa.MetaData(schema=schema)
    items = sa.Table(
        "items", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run", sa.Integer),
        sa.Column("temperature", sa.Float),
        sa.Column("experiment", sa.String),
        sa.Column("comment", sa.String),
        sa.Column("flag", sa.Boolean),
        sa.Column("ok", sa.Float),  # a bool stored as a number, as user columns are
        sa.Column("camera/image.mean", sa.Float),
    )
    tags = sa.Table(
        "tags", md,
        sa.Column("item_id", sa.ForeignKey(items.c.id), nullable=False),
        sa.Column("tag", sa.String, nullable=False),
    )
    rng = random.Random(20240501)
    rows, tag_rows = [], []
    for i in range(1, 61):
        rows.append({
            "id": i,
            "run": _maybe(rng, rng.randint(-5, 20)),
            "temperature": _maybe(rng, rng.choice([300.0, 0.5, -2.5, 1e-3, round(rng.uniform(-10, 400), 2)])),
            "experiment": _maybe(rng, rng.choice(WORDS), 0.1),
            "comment": _maybe(rng, rng.choice(COMMENTS)),
            "flag": _maybe(rng, rng.random() < 0.5),
            "ok": _maybe(rng, float(rng.random() < 0.5)),
            "camera/image.mean": _maybe(rng, round(rng.uniform(0, 1), 3)),
        })
        tag_rows += [{"item_id": i, "tag": t} for t in rng.sample(TAG_NAMES, rng.randint(0, 3))]
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(items.insert(), rows)
        conn.execute(tags.insert(), tag_rows)
        # evaluate() sees the rows as the database returns them.
        stored = [dict(row._mapping) for row in conn.execute(sa.select(items))]
    for row in stored:
        row["tags"] = {t["tag"] for t in tag_rows if t["item_id"] == row["id"]}
    yield Db(engine, items, tags, stored)
    engine.dispose()


def _none(v: Any) -> bool:
    return v is None


CASES: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
    ("temperature > 300", lambda r: not _none(r["temperature"]) and r["temperature"] > 300),
    ("not temperature > 300", lambda r: not _none(r["temperature"]) and not r["temperature"] > 300),
    ("10 <= run < 15", lambda r: not _none(r["run"]) and 10 <= r["run"] < 15),
    ("run > 2.5", lambda r: not _none(r["run"]) and r["run"] > 2.5),
    ("run < 3000000000", lambda r: not _none(r["run"])),  # past a 32-bit INTEGER
    ("run == 7.0", lambda r: r["run"] == 7),
    ("temperature >= 1e-3 and temperature < .6", lambda r: r["temperature"] in (0.5, 1e-3)),
    ("'good' in tags", lambda r: "good" in r["tags"]),
    ("'good' not in tags", lambda r: "good" not in r["tags"]),
    ("\"o'k\" in tags or 'cal' in tags", lambda r: bool({"o'k", "cal"} & r["tags"])),
    ("experiment in tags", lambda r: r["experiment"] in r["tags"]),
    ("comment contains '50%'", lambda r: "50%" in (r["comment"] or "")),
    ("comment contains '_'", lambda r: "_" in (r["comment"] or "")),
    ("comment contains '/'", lambda r: "/" in (r["comment"] or "")),
    ("comment contains '\\\\'", lambda r: "\\" in (r["comment"] or "")),
    ("comment.str.contains('drift')", lambda r: "drift" in (r["comment"] or "")),
    ("comment is null", lambda r: r["comment"] is None),
    ("comment is not None", lambda r: r["comment"] is not None),
    ("run == None", lambda r: r["run"] is None),
    ("None != run", lambda r: r["run"] is not None),
    ("run in [1, 2, None]", lambda r: r["run"] in (1, 2)),
    ("not run in [1, None]", lambda r: False),  # 1 -> false, others -> NOT NULL -> unknown
    ("run not in [1, 2]", lambda r: r["run"] is not None and r["run"] not in (1, 2)),
    ("run in []", lambda r: False),
    ("run not in ()", lambda r: True),
    ("`camera/image.mean` >= 0.5", lambda r: (r["camera/image.mean"] or -1) >= 0.5),
    ("experiment == \"o'brien\"", lambda r: r["experiment"] == "o'brien"),
    ("experiment == 'say \\\"hi\\\"'", lambda r: r["experiment"] == 'say "hi"'),
    ("experiment in ('t1', 'ramsey')", lambda r: r["experiment"] in ("t1", "ramsey")),
    ("experiment == ''", lambda r: r["experiment"] == ""),
    ("flag == True", lambda r: r["flag"] is True),
    ("flag != true", lambda r: r["flag"] is False),
    ("ok == True", lambda r: r["ok"] == 1.0),  # bound as 1 against a numeric column
    ("False == ok", lambda r: r["ok"] == 0.0),
    ("ok in [True]", lambda r: r["ok"] == 1.0),
    ("~(flag == False) & run > 0", lambda r: r["flag"] is True and (r["run"] or 0) > 0),
    ("run > 0 | temperature > 0", lambda r: (r["run"] or 0) > 0 or (r["temperature"] or 0) > 0),
    ("run < temperature", lambda r: None not in (r["run"], r["temperature"]) and r["run"] < r["temperature"]),
    ("1 < 2", lambda r: True),
    ("2 < 1", lambda r: False),
    ("3 in [1, 3]", lambda r: True),
    ("None == None", lambda r: True),
    ("None != null", lambda r: False),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_sql_matches_evaluate_and_the_meaning(db: Db, text: str, expected: Callable[[dict[str, Any]], bool]) -> None:
    want = {row["id"] for row in db.rows if expected(row)}
    assert db.select(text) == want
    assert db.evaluate(text) == want


def test_cases_are_not_trivial(db: Db) -> None:
    # A case would pass vacuously on data that it selects none or all of.
    constant = {"not run in [1, None]", "run in []", "run not in ()", "1 < 2", "2 < 1", "3 in [1, 3]",
                "None == None", "None != null"}
    for text, expected in CASES:
        assert (0 < sum(map(expected, db.rows)) < len(db.rows)) != (text in constant), text


class _Generator:
    """Random, type-consistent expressions over the ``db`` columns."""

    NUMERIC = ["run", "temperature", "`camera/image.mean`"]
    TEXT = ["experiment", "comment"]
    NEEDLES = ["drift", "%", "_", "50%", "a_b", "/", "o'", "", "zzz", "\\", "50% p"]

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def number(self) -> str:
        return self.rng.choice(["0", "1", "3", "-2", "2.5", "-2.5", ".5", "1e-3", "3e2", "300", "20", "- -1"])

    def string(self, value: str) -> str:
        quote = self.rng.choice("'\"")
        return quote + value.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote

    def items(self, make: Callable[[], str]) -> str:
        values = [make() for _ in range(self.rng.randint(0, 3))] + (["None"] if self.rng.random() < 0.3 else [])
        body = ", ".join(values)
        if self.rng.random() < 0.5:
            return f"[{body}]"
        return f"({body},)" if len(values) == 1 else f"({body})"

    def condition(self, depth: int = 0) -> str:
        rng = self.rng
        if depth > 3 or rng.random() < 0.35:
            return self.atom()
        kind = rng.choice(["and", "or", "not", "paren"])
        if kind == "not":
            return f"{rng.choice(['not ', '~'])}({self.condition(depth + 1)})"
        if kind == "paren":
            return f"({self.condition(depth + 1)})"
        word = rng.choice([kind, "&" if kind == "and" else "|"])
        return f"{self.condition(depth + 1)} {word} {self.condition(depth + 1)}"

    def atom(self) -> str:
        rng = self.rng
        ops = ["==", "!=", "<", "<=", ">", ">="]
        kind = rng.choice(["numeric"] * 4 + ["text"] * 3 + ["flag", "tags", "null", "literal"])
        if kind == "numeric":
            col = rng.choice(self.NUMERIC)
            form = rng.randrange(6)
            if form == 0:
                return f"{col} {rng.choice(ops)} {self.number()}"
            if form == 1:
                return f"{self.number()} {rng.choice(ops)} {col}"
            if form == 2:
                return f"{self.number()} {rng.choice(ops[2:])} {col} {rng.choice(ops[2:])} {self.number()}"
            if form == 3:
                return f"{col} {rng.choice(['in', 'not in'])} {self.items(self.number)}"
            if form == 4:
                return f"{col} {rng.choice(ops)} {rng.choice(self.NUMERIC)}"
            return f"{col} {rng.choice(['==', '!='])} {rng.choice(['None', 'null'])}"
        if kind == "text":
            col = rng.choice(self.TEXT)
            form = rng.randrange(4)
            if form == 0:
                return f"{col} {rng.choice(['==', '!='])} {self.string(rng.choice(WORDS + COMMENTS))}"
            if form == 1:
                return f"{col} {rng.choice(['in', 'not in'])} {self.items(lambda: self.string(rng.choice(WORDS)))}"
            needle = self.string(rng.choice(self.NEEDLES))
            return f"{col} contains {needle}" if form == 2 else f"{col}.str.contains({needle})"
        if kind == "flag":
            col = rng.choice(["flag", "ok"])
            return f"{col} {rng.choice(['==', '!='])} {rng.choice(['True', 'False', 'true', 'false'])}"
        if kind == "tags":
            item = rng.choice([self.string(rng.choice(TAG_NAMES)), "experiment"])
            return f"{item} {rng.choice(['in', 'not in'])} tags"
        if kind == "null":
            col = rng.choice(self.NUMERIC + self.TEXT + ["flag", "ok"])
            return f"{col} is {rng.choice(['', 'not '])}{rng.choice(['None', 'null'])}"
        return f"{self.number()} {rng.choice(ops)} {self.number()}"


@pytest.mark.parametrize("seed", range(3))
def test_random_expressions_sql_matches_evaluate(db: Db, seed: int) -> None:
    gen = _Generator(seed)
    selective = 0
    for _ in range(150):
        text = gen.condition()
        got, want = db.select(text), db.evaluate(text)
        assert got == want, f"{text!r}: SQL selected {sorted(got)}, evaluate {sorted(want)}"
        selective += 0 < len(got) < len(db.rows)
    # Most expressions select some rows but not all, or the comparison proves little.
    assert selective > 60


def test_literals_are_bound_parameters(db: Db) -> None:
    evil = "'); drop table items; --"
    quoted = "'" + evil.replace("'", "\\'") + "'"
    node = parse(
        f"experiment == {quoted} or comment contains {quoted} or experiment in [{quoted}, 'x']"
        f" or {quoted} in tags or experiment > {quoted} or {quoted} == {quoted}"
    )
    stmt = sa.select(db.items.c.id).where(to_sql(node, db.resolve))
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        sql = str(compiled)
        assert "drop table" not in sql.lower() and "'x'" not in sql
        assert list(compiled.params.values()).count(evil) == 7
    with db.engine.connect() as conn:
        assert len(list(conn.execute(stmt))) == len(db.rows)  # the last term is true
        assert conn.scalar(sa.select(sa.func.count()).select_from(db.items)) == len(db.rows)


def test_sql_shape() -> None:
    table = sa.Table("t", sa.MetaData(), sa.Column("x", sa.Integer), sa.Column("s", sa.String))

    def sql(text: str) -> str:
        return str(to_sql(parse(text), lambda name: table.c[name]).compile(dialect=sqlite.dialect()))

    assert sql("x == None") == "t.x IS NULL"
    assert sql("None != x") == "t.x IS NOT NULL"
    assert sql("s contains '5%_'") == "t.s LIKE '%' || ? || '%' ESCAPE '/'"
    assert sql("x > 3") == "t.x > ?"


def test_semantic_errors(db: Db) -> None:
    for text, message in [
        ("tags == 'good'", "name 'tags' is a collection; test membership with `'value' in tags`"),
        ("tags is null", "is a collection"),
        ("'good' in comment", "name 'comment' is not a collection"),
    ]:
        node = parse(text)
        with pytest.raises(QuerySyntaxError, match=message):
            to_sql(node, db.resolve)
        with pytest.raises(QuerySyntaxError, match=message):
            evaluate(node, db.rows[0])


def test_evaluate_type_errors() -> None:
    # As to_sql refuses them (PostgreSQL would raise, SQLite answer nonsense).
    for text, row in [("x < 3", {"x": "a"}), ("x == 3", {"x": "a"}), ("3 != x", {"x": "a"}), ("x in [1, 2]", {"x": "a"})]:
        with pytest.raises(QuerySyntaxError, match="cannot compare name 'x', which holds text, with value"):
            evaluate(parse(text), row)
    with pytest.raises(QuerySyntaxError, match="'contains' looks inside text"):
        evaluate(parse("x contains '1'"), {"x": 1})
    assert evaluate(parse("x == 3"), {"x": None}) is False  # NULL: unknown, no type to check


def test_evaluate_three_valued_logic() -> None:
    row = {"x": None, "y": 1}
    assert not evaluate(parse("x > 1"), row)
    assert not evaluate(parse("not x > 1"), row)  # NOT unknown is unknown
    assert evaluate(parse("not (x > 1 and y == 2)"), row)  # unknown AND false is false
    assert evaluate(parse("x > 1 or y == 1"), row)
    assert not evaluate(parse("not (x > 1 or y == 2)"), row)
    assert evaluate(parse("x is null and x == None"), row)
    assert evaluate(parse("x not in []"), row)
    assert not evaluate(parse("y not in [2, None]"), row)
