"""The database behind one door: engines, connection set-up, transactions.

Every write in labshelf goes through :meth:`Database.write`, every read
through :meth:`Database.read`.  This is also the one place where database
errors are turned into labshelf's.
"""

from __future__ import annotations

import contextlib
import operator
import os
import re
import sqlite3
import threading
import weakref
import zlib
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.expression import Executable

from ..errors import InvalidName, ReadOnlyShelf, ShelfBusy, ShelfError

#: How long a writer waits for another process's transaction before giving up.
BUSY_TIMEOUT_S = 60.0

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: Longest schema name: the change feed's channel is "labshelf_<schema>", and
#: PostgreSQL refuses channel names longer than 63 bytes (NAMEDATALEN - 1).
_MAX_SCHEMA_BYTES = 63 - len("labshelf_")

# Writers to one PostgreSQL shelf are serialised by an advisory lock held
# until commit, so change sequence numbers commit in order (a subscriber
# reading "seq > last" can never skip a late commit), and so the read-then-
# write steps of a put (next run number, current version) cannot race.  The
# lock is named after the shelf's schema (its OID; advisory locks belong to
# one database already), never after how a process reached the shelf: its
# folder, a relative path and the URL must all take the same lock.  The cast
# to regnamespace parses an identifier, so the name is quoted first (or a
# mixed-case schema would be folded to lower case and not found).
_PG_LOCK_CLASS = zlib.crc32(b"labshelf") & 0x7FFFFFFF
_PG_WRITE_LOCK = (
    f"SELECT pg_advisory_xact_lock({_PG_LOCK_CLASS}, quote_ident(current_schema())::regnamespace::oid::int)"
)


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql:", "postgresql+", "postgres:"))


def check_schema_name(schema: object) -> str:
    """Return ``schema`` if it is a PostgreSQL schema name labshelf accepts, else raise.

    Checked before any SQL runs; statements quote it all the same.
    """
    if not isinstance(schema, str) or not _SCHEMA_NAME.match(schema):
        raise InvalidName(
            f"PostgreSQL schema name {schema!r} is not allowed: use a plain identifier "
            "(letters, digits and _, not starting with a digit)"
        )
    if len(schema.encode()) > _MAX_SCHEMA_BYTES or schema.startswith("pg_") or schema == "information_schema":
        raise InvalidName(
            f"PostgreSQL schema name {schema!r} is not allowed: at most {_MAX_SCHEMA_BYTES} characters, "
            "not starting with pg_ and not information_schema (PostgreSQL reserves those)"
        )
    return schema


def quoted_schema(dialect: Dialect, schema: str) -> str:
    """``schema`` as a quoted identifier for ``dialect``, after checking it."""
    return dialect.identifier_preparer.quote_identifier(check_schema_name(schema))


def make_engine(url: str, *, readonly: bool = False, schema: str | None = None) -> Engine:
    """An engine for a PostgreSQL URL, set up for labshelf (SQLite files: :func:`sqlite_engine`)."""
    if is_postgres_url(url):
        return _postgres_engine(url, readonly=readonly, schema=schema)
    raise ShelfError(
        f"unsupported registry URL {url!r}: use a shelf folder path (embedded SQLite) or a postgresql:// URL"
    )


# How a reader opens the registry file decides what it leaves behind.  A
# WAL-mode database is read through its -wal and -shm files: SQLite creates
# them when it can, and only a read-write connection that closes last
# removes them again (a mode=ro connection leaves both behind).  So:
#  - a reader that may write the folder opens read-write with PRAGMA
#    query_only, which makes SQLite refuse every write statement whatever
#    code runs; it follows other processes' commits as they happen (live
#    subscriptions) and leaves the folder as it found it once closed.  (If
#    it closes last after a writer crashed, it also checkpoints the
#    crashed writer's committed transactions into the main file, as the
#    next writer would: the content stays the same.)
#  - a reader that cannot write there (a mounted archive, another account's
#    shelf) cannot create the -shm.  With a -wal present (a writer is
#    connected, or crashed) it opens mode=ro through the existing -wal and
#    -shm: immutable would silently skip the transactions still in the -wal.
#    With no -wal every commit is in the main file and immutable=1 is the
#    only way SQLite opens it.  Immutable means no locks and no change
#    detection: such a reader does not see writes that another account
#    starts after it opened (it must reopen), the price of reading where it
#    cannot write.
SQLITE_ACCESS = ("create", "write", "read", "read-only place")


def sqlite_access(path: Path, *, readonly: bool) -> str:
    """How to open the registry file ``path``: ``"write"``, ``"read"`` or ``"read-only place"``."""
    if not readonly:
        return "write"
    if os.access(path.parent, os.W_OK) and os.access(path, os.W_OK):
        return "read"
    return "read-only place"


def sqlite_uri(path: Path, access: str) -> str:
    """The SQLite URI filename opening ``path`` with ``access`` (one of :data:`SQLITE_ACCESS`)."""
    # Percent-encoded: '?', '#' and '%' are legal in folder names.
    uri = "file:" + quote(path.as_posix(), safe="/")
    if access == "create":
        return uri + "?mode=rwc"
    if access in ("write", "read"):
        return uri + "?mode=rw"  # never create a registry that is not there
    wal = path.with_name(path.name + "-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        return uri + "?mode=ro"
    return uri + "?mode=ro&immutable=1"


def sqlite_engine(path: Path, *, access: str, durable: bool = False) -> Engine:
    """An engine for the SQLite registry file ``path``, set up for labshelf.

    ``access`` is one of :data:`SQLITE_ACCESS` (see :func:`sqlite_access`).
    """
    if access not in SQLITE_ACCESS:
        raise ValueError(f"access must be one of {SQLITE_ACCESS}, not {access!r}")
    readonly = access in ("read", "read-only place")
    uri = sqlite_uri(path, access)

    def connect() -> Any:
        # The sqlite3 timeout is SQLite's busy timeout: a writer waits for the
        # lock instead of failing at once with "database is locked".
        return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False)

    engine = create_engine(
        # The URL only names the file (Shelf finds the folder to watch from
        # it); the creator opens it, so the URI's mode is never re-parsed.
        URL.create("sqlite", database=str(path)),
        creator=connect,
        # Threads keep their connection (Database._connection): never make a
        # thread wait for another's to come back.
        max_overflow=-1,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module, which would
        # otherwise start deferred transactions on its own (see Database.write).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL is not set here but by Database.enable_wal, once the registry
        # has been accepted: a refused open must leave the file as it was.
        if readonly:
            cursor.execute("PRAGMA query_only=ON")
        # NORMAL is safe against a crash of the process (the WAL is intact)
        # and only risks the last transactions on power loss; FULL syncs
        # every commit for shelves that ask to be durable.
        cursor.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _do_begin(conn: Any) -> None:
        # Only SQLAlchemy Connections (Alembic migrations) come here; the
        # registry's own transactions begin in Database.write/read.
        conn.exec_driver_sql("BEGIN")

    return engine


def _postgres_engine(url: str, *, readonly: bool, schema: str | None) -> Engine:
    try:
        parsed = make_url(url)
    except SQLAlchemyError as exc:
        raise ShelfError(f"{url!r} is not a valid postgresql:// URL: {exc}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = create_engine(parsed, pool_pre_ping=True, max_overflow=-1)
    search_path = None if schema is None else f"SET search_path TO {quoted_schema(engine.dialect, schema)}"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            if search_path is not None:
                # One shelf per schema: tables, the alembic version and the
                # change feed all resolve inside it.
                cursor.execute(search_path)
            if readonly:
                cursor.execute("SET default_transaction_read_only = on")
        dbapi_connection.commit()

    return engine


class Database:
    """A registry database: the one door for transactions.

    ``write()`` and ``read()`` yield a :class:`Txn` on a pooled DBAPI
    connection.  Every registry statement goes through one of them, and this
    is the one place where driver errors become labshelf errors.
    """

    def __init__(self, engine: Engine, *, readonly: bool, where: str):
        self.engine = engine
        self.readonly = readonly
        self.where = where
        self.dialect = engine.dialect
        self.is_sqlite = engine.dialect.name == "sqlite"
        # Each thread keeps one checked-out connection between transactions:
        # a pool checkout and return costs ~40 us, a fifth of a small put.
        self._local = threading.local()
        self._kept: list[tuple[threading.Thread, Any]] = []
        self._closer = weakref.finalize(self, _return_all, self._kept)
        if hasattr(os, "register_at_fork"):
            after_fork = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: (m := after_fork()) and m())

    def _after_fork(self) -> None:
        # A forked child must never use, nor close, its parent's connections
        # (closing would end the parent's PostgreSQL session too).
        _INHERITED.extend(self._kept)
        self._kept.clear()
        self._local = threading.local()
        self.engine.dispose(close=False)

    def release_connections(self) -> None:
        """Return every thread's kept connection to the pool."""
        _return_all(self._kept)
        self._local = threading.local()

    def _keep(self, raw: Any) -> None:
        # Connections of threads that have ended go back to the pool.
        alive = [(t, c) for t, c in self._kept if t.is_alive()]
        _return_all([(t, c) for t, c in self._kept if not t.is_alive()])
        self._kept[:] = [*alive, (threading.current_thread(), raw)]

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        """This thread's connection (a separate one if it is in use already)."""
        local = self._local
        if getattr(local, "busy", False):
            nested = self.engine.raw_connection()
            try:
                yield nested
            finally:
                nested.close()
            return
        raw = getattr(local, "raw", None)
        if raw is None or raw.dbapi_connection is None:
            raw = local.raw = self.engine.raw_connection()
            self._keep(raw)
        local.busy = True
        try:
            yield raw
        except BaseException:
            # The connection may be broken (server gone, interrupted
            # statement): give it back and start afresh next time.
            local.raw = None
            self._kept[:] = [(t, c) for t, c in self._kept if c is not raw]
            with contextlib.suppress(Exception):
                raw.close()
            raise
        finally:
            local.busy = False

    @contextlib.contextmanager
    def write(self) -> Iterator[Txn]:
        """A write transaction: commits on success, rolls back on any error."""
        if self.readonly:
            raise ReadOnlyShelf(
                f"the shelf {self.where} is open read-only (mode='r'); open it with mode='rw' to write"
            )
        with self._translated(), self._connection() as raw:
            txn = Txn(raw, self.dialect)
            if self.is_sqlite:
                # BEGIN IMMEDIATE takes the write lock up front, where the
                # busy timeout applies; a deferred transaction that writes
                # later can fail at once with SQLITE_BUSY instead.
                txn.execute_sql("BEGIN IMMEDIATE")
            else:
                txn.execute_sql(_PG_WRITE_LOCK)
            try:
                yield txn
            except BaseException:
                raw.rollback()
                raise
            raw.commit()

    @contextlib.contextmanager
    def read(self, *, snapshot: bool = False) -> Iterator[Txn]:
        """A connection for reading; ``snapshot=True`` makes several statements agree.

        Without a snapshot each statement sees the latest committed state on
        its own, which is all a single query needs (and costs no BEGIN).
        """
        with self._translated(), self._connection() as raw:
            txn = Txn(raw, self.dialect)
            if snapshot:
                if self.is_sqlite:
                    txn.execute_sql("BEGIN")
                else:
                    txn.execute_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            try:
                yield txn
            finally:
                # Ends a snapshot, and on PostgreSQL the transaction every
                # statement opens, so no lock or snapshot outlives the read.
                if snapshot or not self.is_sqlite:
                    raw.rollback()

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        dbapi = self.dialect.loaded_dbapi
        try:
            yield
        except dbapi.Error as exc:
            message = str(exc)
            lowered = message.lower()
            if self.is_sqlite and ("locked" in lowered or "busy" in lowered):
                raise ShelfBusy(
                    f"the registry of {self.where} stayed locked by another process for "
                    f"{BUSY_TIMEOUT_S:.0f} s; try again, or look for a stuck writer"
                ) from exc
            if "read-only" in lowered or "readonly" in lowered:
                raise ReadOnlyShelf(f"the registry of {self.where} is read-only: {message}") from exc
            raise ShelfError(f"registry error in {self.where}: {message}") from exc
        except SQLAlchemyError as exc:
            raise ShelfError(f"registry error in {self.where}: {exc}") from exc

    def enable_wal(self) -> None:
        """Put a writable SQLite registry in WAL mode (PostgreSQL: nothing to do).

        WAL lets readers and the writer work at once, which is what lets a
        notebook browse while an experiment writes.  It is a property of the
        file, set once: opening calls this only after the registry has been
        accepted (schema version, repository mode), so a refused open leaves
        the file's journal mode as it was.
        """
        if not self.is_sqlite or self.readonly:
            return
        with self._translated(), self._connection() as raw:
            cursor = raw.cursor()
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
            finally:
                cursor.close()

    def dispose(self) -> None:
        self.release_connections()
        self.engine.dispose()


class Statement:
    """A Core statement compiled once per dialect, for the DBAPI lane.

    SQLAlchemy builds and compiles every statement (so the SQL stays
    dialect-neutral), but the registry runs the compiled SQL on the DBAPI
    cursor of the pooled connection: SQLAlchemy's per-execution machinery
    costs about 100 us per statement here, ten times SQLite's own work,
    which would cap small puts far below 5,000/s.
    """

    __slots__ = ("stmt", "_forms")

    def __init__(self, stmt: Executable):
        self.stmt = stmt
        self._forms: dict[str, _Form] = {}

    def form(self, dialect: Dialect) -> _Form:
        found = self._forms.get(dialect.name)
        if found is None:
            found = self._forms[dialect.name] = _Form(self.stmt, dialect)
        return found


class _Form:
    """One statement compiled for one dialect, with how to pass its parameters."""

    __slots__ = ("sql", "order", "compiled", "direct", "_pick")

    def __init__(self, stmt: Executable, dialect: Dialect):
        compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})  # type: ignore[attr-defined]
        self.sql = str(compiled)
        self.compiled = compiled
        #: Parameter names in placeholder order (qmark drivers), or None (named).
        self.order: tuple[str, ...] | None = tuple(compiled.positiontup or ()) if compiled.positional else None
        # A statement whose every bind is a bare bindparam(name) takes the
        # caller's values as they are, skipping construct_params (10 us).
        self.direct = all(b.value is None and b.callable is None for b in compiled.binds.values())
        # The values in placeholder order, picked in C (a generator costs 2 us for a row of 17).
        self._pick = None if not self.order else _tuple_getter(self.order)

    def values(self, params: Mapping[str, Any] | None) -> Any:
        if self.direct and params is not None:
            values: Mapping[str, Any] = params
        elif self.compiled.binds:
            values = self.compiled.construct_params(params, _check=False)
        else:
            values = {}
        if self._pick is not None:
            return self._pick(values)
        if self.order is not None:
            return ()
        return values


def _tuple_getter(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A function of a mapping giving the values of ``names`` as a tuple (itemgetter, always a tuple)."""
    if len(names) == 1:
        only = names[0]
        return lambda values: (values[only],)
    return operator.itemgetter(*names)


#: Connections a forked child inherited: kept referenced so they are never
#: closed (or garbage-collected) from the child.
_INHERITED: list[Any] = []


def _return_all(kept: list[tuple[threading.Thread, Any]]) -> None:
    for _thread, raw in kept:
        with contextlib.suppress(Exception):
            raw.close()
    kept.clear()


#: Named-tuple classes by column names; making one costs ~0.5 ms, so once per shape.
_ROW_TYPES: dict[tuple[str, ...], Any] = {}


class Txn:
    """One transaction (or, for reads, one connection) on the DBAPI lane.

    ``execute`` takes a SQLAlchemy Core statement or a :class:`Statement`
    and parameters by name; rows come back as named tuples.
    """

    __slots__ = ("_cursor", "_dialect")

    def __init__(self, raw: Any, dialect: Dialect):
        self._cursor = raw.cursor()
        self._dialect = dialect

    def execute_sql(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """Run literal SQL written in the driver's own parameter style."""
        self._cursor.execute(sql, params or ())
        return self._cursor

    def execute(self, stmt: Executable | Statement, params: Mapping[str, Any] | None = None) -> Any:
        form = stmt.form(self._dialect) if isinstance(stmt, Statement) else _Form(stmt, self._dialect)
        self._cursor.execute(form.sql, form.values(params))
        return self._cursor

    def execute_many(self, stmt: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run ``stmt`` once per row of parameters, in one driver call (no rows come back)."""
        if rows:
            form = stmt.form(self._dialect)
            self._cursor.executemany(form.sql, [form.values(row) for row in rows])

    def _rows(self, cursor: Any) -> list[Any]:
        description = cursor.description
        if description is None:
            return []
        names = tuple(d[0] for d in description)
        row_type: Any = _ROW_TYPES.get(names)
        if row_type is None:
            row_type = _ROW_TYPES[names] = namedtuple("Row", names, rename=True)  # noqa: PYI024 - fields known only at run time
        return [row_type._make(r) for r in cursor.fetchall()]

    def all(self, stmt: Executable | Statement, params: Mapping[str, Any] | None = None) -> list[Any]:
        return self._rows(self.execute(stmt, params))

    def tuples(self, stmt: Executable | Statement, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Plain tuples, for bulk reads where named access would cost."""
        return self.execute(stmt, params).fetchall()

    def first(self, stmt: Executable | Statement, params: Mapping[str, Any] | None = None) -> Any:
        rows = self._rows(self.execute(stmt, params))
        return rows[0] if rows else None

    def scalar(self, stmt: Executable | Statement, params: Mapping[str, Any] | None = None) -> Any:
        row = self.execute(stmt, params).fetchone()
        return None if row is None else row[0]

    def scalars(self, stmt: Executable | Statement, params: Mapping[str, Any] | None = None) -> list[Any]:
        return [r[0] for r in self.execute(stmt, params).fetchall()]
