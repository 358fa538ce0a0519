"""The one place that knows which database is underneath: engine options, transaction start and
the statements whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool, StaticPool
from sqlalchemy.sql.dml import Insert

from .._extras import require
from ..errors import ConfigError

__all__ = [
    "DATABASE_MISSING",
    "DATABASE_UNREACHABLE",
    "WRITE_OPTION",
    "ConnectFailure",
    "connect_failure",
    "create_engine",
    "insert_ignoring_conflicts",
    "is_sqlite",
    "lock_schema_changes",
    "server_failure",
    "sqlite_file_failure",
]

WRITE_OPTION = "authbridge_write"
"""Execution option marking a connection whose transaction will write (SQLite: BEGIN IMMEDIATE)."""

SQLITE_BUSY_TIMEOUT_MS = 5000
PG_CONNECT_TIMEOUT_S = 5.0
"""Default asyncpg connect timeout (override with ``engine_options={"connect_args": ...}``)."""
PG_COMMAND_TIMEOUT_S = 10.0
"""Default asyncpg per-statement timeout."""


def is_sqlite(url: str) -> bool:
    """True for SQLite URLs."""
    return url.startswith("sqlite")


def is_sqlite_memory(url: str) -> bool:
    """True for in-memory SQLite URLs (one connection shared by everything)."""
    return is_sqlite(url) and (
        url.rstrip("/").endswith(":memory:") or url in {"sqlite+aiosqlite://", "sqlite://"}
    )


def create_engine(url: str, **options: Any) -> AsyncEngine:
    """Create the async engine with the settings each backend needs.

    SQLite: WAL journal, foreign keys on, a busy timeout, and ``BEGIN IMMEDIATE`` for write
    transactions, so concurrent writers queue instead of failing with "database is locked".
    PostgreSQL: pre-ping so a restarted server does not surface as an error, and connect /
    statement timeouts so a hanging server fails fast (as :class:`StoreUnavailable`).
    """
    if not is_sqlite(url):
        require("asyncpg", "postgres", "PostgreSQL")
        # Without driver timeouts asyncpg waits 60 s to connect and forever for a statement:
        # a hanging server would hold requests instead of failing fast with StoreUnavailable.
        connect_args = dict(options.get("connect_args") or {})
        connect_args.setdefault("timeout", PG_CONNECT_TIMEOUT_S)
        connect_args.setdefault("command_timeout", PG_COMMAND_TIMEOUT_S)
        options["connect_args"] = connect_args
        options.setdefault("pool_pre_ping", True)
        options.setdefault("pool_size", 10)
        options.setdefault("max_overflow", 10)
        options.setdefault("pool_timeout", 5)
        return create_async_engine(url, **options)

    memory = is_sqlite_memory(url)
    if memory:
        options.setdefault("poolclass", StaticPool)
    options.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    engine = create_async_engine(url, **options)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit transactions cannot BEGIN IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def insert_ignoring_conflicts(table: Table, dialect_name: str) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the engine's dialect."""
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect_name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    # AuthConfig accepts only SQLite and PostgreSQL URLs; a Store built by hand may get others.
    raise ConfigError(f"authbridge supports SQLite and PostgreSQL databases, not {dialect_name!r}")


SCHEMA_LOCK_KEY = 0x61757468_62726467
"""PostgreSQL advisory-lock key that serialises authbridge schema changes ("authbrdg")."""


def lock_schema_changes(conn: Connection) -> None:
    """Hold off other processes' schema changes (table creation, migrations) until this
    transaction ends, so instances that start together do not race on ``CREATE TABLE``.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: nothing to do, a write transaction
    (``BEGIN IMMEDIATE``) already excludes other writers.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})")


DATABASE_MISSING = "DatabaseMissing"
"""The database itself is not there: no such PostgreSQL database, or no directory for the SQLite
file (SQLite creates a missing file, never its directory)."""

DATABASE_UNREACHABLE = "DatabaseUnreachable"
"""The database could not be reached: refused, timed out, authentication, permissions."""

_PG_MISSING = "3D000"
"""PostgreSQL's SQLSTATE for a database that does not exist (invalid_catalog_name)."""
_PG_UNREACHABLE = ("08", "28", "53300", "57P")
"""SQLSTATEs (and classes) of a server that will not take the connection: connection exception,
invalid authorization, too many connections, shutting down or starting up."""


@dataclass(frozen=True)
class ConnectFailure:
    """Why a database could not be used at all (see :func:`sqlite_file_failure`,
    :func:`connect_failure`)."""

    code: str
    """:data:`DATABASE_MISSING` or :data:`DATABASE_UNREACHABLE`."""
    detail: str
    """One line for people, without the URL (callers add it, redacted)."""


def sqlite_file_failure(url: str) -> ConnectFailure | None:
    """For a SQLite file: ``None`` when it opens (a missing file is created, as connecting would),
    else why not; ``None`` for other databases and in-memory ones. Nothing connects through the
    engine: opened with the standard library, since aiosqlite's worker thread for a connection
    that failed may outlive the caller's event loop and die with "Event loop is closed"."""
    parsed = make_url(url)
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:":
        return None
    uri = bool(parsed.query.get("uri")) or name.startswith("file:")
    directory = Path(name).parent
    if not uri and not directory.is_dir():
        detail = f"the directory {directory} of the SQLite database does not exist"
        return ConnectFailure(DATABASE_MISSING, detail)
    try:
        sqlite3.connect(name, uri=uri).close()
    except sqlite3.Error as exc:
        return ConnectFailure(DATABASE_UNREACHABLE, f"{type(exc).__name__}: {exc}")
    return None


async def server_failure(url: str) -> ConnectFailure | None:
    """For a database server: connect once, run nothing, and say why it cannot be used at all
    (see :func:`connect_failure`). ``None`` when it connects, for SQLite (see
    :func:`sqlite_file_failure`), and for failures of another kind, left for the caller's own
    use of the database to report (a URL whose driver is not asynchronous, say)."""
    if make_url(url).get_backend_name() == "sqlite":
        return None
    try:
        engine = create_async_engine(url, poolclass=NullPool)
    except Exception:  # an unusable URL or driver: the caller's own attempt reports it
        return None
    try:
        async with engine.connect():
            pass
    except Exception as exc:
        return connect_failure(url, exc)
    finally:
        await engine.dispose()
    return None


def connect_failure(url: str, exc: BaseException) -> ConnectFailure | None:
    """Whether ``exc`` (as raised by the store, a driver's error in its chain) says the database
    could not be used at all: it does not exist, or the server would not take the connection.
    ``None`` for other failures (a statement that failed, a missing table)."""
    for error in _chain(exc):
        code = getattr(error, "sqlstate", None)
        if code == _PG_MISSING:
            return ConnectFailure(
                DATABASE_MISSING, f'database "{make_url(url).database}" does not exist'
            )
        if (isinstance(code, str) and code.startswith(_PG_UNREACHABLE)) or isinstance(
            error,
            OSError,  # refused, unknown host, timed out (TimeoutError is an OSError)
        ):
            return ConnectFailure(DATABASE_UNREACHABLE, f"{type(error).__name__}: {_line(error)}")
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (``__cause__``, SQLAlchemy's ``orig``), outermost first."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return found


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no message"


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL (it stays so: later connections find it set). Instances opening a
    fresh file at once may find it locked while another one switches it, and SQLite answers that
    at once instead of waiting: retry briefly (bounded, in the connection's own thread)."""
    for attempt in range(_WAL_ATTEMPTS):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == _WAL_ATTEMPTS - 1:
                raise
            time.sleep(0.02)


_WAL_ATTEMPTS = 100
