"""The database behind one door: engines, connection set-up, transactions.

Every write in labshelf goes through :meth:`Database.write`, every read
through :meth:`Database.read`.  This is also the one place where SQLAlchemy's
errors are turned into labshelf's.
"""

from __future__ import annotations

import contextlib
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from ..errors import ReadOnlyShelf, ShelfBusy, ShelfError

#: How long a writer waits for another process's transaction before giving up.
BUSY_TIMEOUT_S = 60.0

_WRITE = "labshelf_write"
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def sqlite_url(path: Path, *, readonly: bool) -> str:
    if readonly:
        # mode=ro makes SQLite itself refuse writes, whatever code runs.
        return f"sqlite:///file:{path.as_posix()}?mode=ro&uri=true"
    return f"sqlite:///{path.as_posix()}"


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql:", "postgresql+", "postgres:"))


def make_engine(
    url: str, *, readonly: bool = False, schema: str | None = None, durable: bool = False
) -> Engine:
    """An engine for a SQLite file URL or a PostgreSQL URL, set up for labshelf."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, readonly=readonly, durable=durable)
    if is_postgres_url(url):
        return _postgres_engine(url, readonly=readonly, schema=schema)
    raise ShelfError(
        f"unsupported registry URL {url!r}: use a shelf folder path (embedded SQLite) "
        "or a postgresql:// URL"
    )


def _sqlite_engine(url: str, *, readonly: bool, durable: bool) -> Engine:
    engine = create_engine(
        url,
        # The sqlite3 timeout is SQLite's busy timeout: a writer waits for the
        # lock instead of failing at once with "database is locked".
        connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module, which would
        # otherwise start deferred transactions on its own (see do_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not readonly:
            # WAL: readers never block the writer nor the writer the readers,
            # which is what lets a notebook browse while an experiment
            # writes.  It is a property of the file, so a read-only
            # connection finds it already set (or reads a DELETE-mode file).
            cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL is safe against a crash of the process (the WAL is intact)
        # and only risks the last transactions on power loss; FULL syncs
        # every commit for shelves that ask to be durable.
        cursor.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _do_begin(conn: Connection) -> None:
        # BEGIN IMMEDIATE takes the write lock up front, where SQLite's busy
        # timeout applies.  A deferred transaction that later tries to write
        # can fail at once with SQLITE_BUSY instead of waiting.
        if conn.get_execution_options().get(_WRITE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def _postgres_engine(url: str, *, readonly: bool, schema: str | None) -> Engine:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise ShelfError(f"PostgreSQL schema name {schema!r} must be a plain identifier")
    engine = create_engine(parsed, pool_pre_ping=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            if schema is not None:
                # One shelf per schema: tables, the alembic version and the
                # change feed all resolve inside it.
                cursor.execute(f'SET search_path TO "{schema}"')
            if readonly:
                cursor.execute("SET default_transaction_read_only = on")
        dbapi_connection.commit()

    return engine


class Database:
    """A registry database: the one door for transactions."""

    def __init__(self, engine: Engine, *, readonly: bool, where: str):
        self.engine = engine
        self.readonly = readonly
        self.where = where
        self.is_sqlite = engine.dialect.name == "sqlite"
        # Writers to one PostgreSQL shelf are serialised by an advisory lock
        # held until commit, so change sequence numbers commit in order (a
        # subscriber reading "seq > last" can never skip a late commit).
        self._lock_key = zlib.crc32(where.encode()) & 0x7FFFFFFF

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: commits on success, rolls back on error."""
        if self.readonly:
            raise ReadOnlyShelf(
                f"the shelf {self.where} is open read-only (mode='r'); "
                "open it with mode='rw' to write"
            )
        with self._translated():
            with self.engine.connect() as conn:
                conn = conn.execution_options(**{_WRITE: True})
                with conn.begin():
                    if not self.is_sqlite:
                        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": self._lock_key})
                    yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction: one consistent snapshot, never takes write locks."""
        with self._translated():
            with self.engine.connect() as conn:
                yield conn

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            message = str(exc.orig) if exc.orig is not None else str(exc)
            if self.is_sqlite and ("locked" in message or "busy" in message):
                raise ShelfBusy(
                    f"the registry of {self.where} stayed locked by another process for "
                    f"{BUSY_TIMEOUT_S:.0f} s; try again, or look for a stuck writer"
                ) from exc
            if "read-only" in message or "readonly" in message:
                raise ReadOnlyShelf(f"the registry of {self.where} is read-only: {message}") from exc
            raise ShelfError(f"registry error in {self.where}: {message}") from exc
        except DBAPIError as exc:
            message = str(exc.orig) if exc.orig is not None else str(exc)
            if "read-only transaction" in message:
                raise ReadOnlyShelf(f"the shelf {self.where} is open read-only: {message}") from exc
            raise

    def dispose(self) -> None:
        self.engine.dispose()
