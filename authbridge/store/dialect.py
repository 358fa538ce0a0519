"""The one place that knows which database is underneath: engine options, transaction start and
the statements whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.dml import Insert

from .._extras import require
from ..errors import ConfigError

__all__ = [
    "WRITE_OPTION",
    "create_engine",
    "insert_ignoring_conflicts",
    "is_sqlite",
    "lock_schema_changes",
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
