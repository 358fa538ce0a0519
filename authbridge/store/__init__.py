"""Database access: the async engine, transactions, and the auth tables.

Write transactions are serialised per process on SQLite (one writer at a time is all SQLite
allows; queueing in-process is cheaper than retrying on ``SQLITE_BUSY``). On PostgreSQL they run
concurrently and correctness comes from row locks and compare-and-set updates in the callers.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Column, MetaData, inspect
from sqlalchemy.exc import DBAPIError, IntegrityError, ProgrammingError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..errors import StoreUnavailable
from .dialect import (
    WRITE_OPTION,
    create_engine,
    insert_ignoring_conflicts,
    is_sqlite,
    is_sqlite_memory,
    lock_schema_changes,
)
from .tables import Tables, build_tables, new_id

__all__ = [
    "Conflict",
    "LoopLocalLock",
    "Store",
    "Tables",
    "build_tables",
    "insert_ignoring_conflicts",
    "new_id",
    "redact_url",
]

logger = logging.getLogger("authbridge.store")


class Conflict(Exception):
    """A write lost a race: a row with the same unique key was written meanwhile. Repositories
    raise it instead of the driver's constraint error, so callers outside :mod:`authbridge.store`
    can retry or refuse without knowing SQLAlchemy."""


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for logs)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # pragma: no cover - unparsable URLs are reported by SQLAlchemy later
        return "<unparsable database url>"


class LoopLocalLock:
    """One :class:`asyncio.Lock` per event loop.

    An ``asyncio.Lock`` binds to the loop it first waits on; objects that outlive a loop (an
    engine created at import time, test suites, servers that restart their loop) would otherwise
    fail with "bound to a different event loop".
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> asyncio.Lock:
        """The lock for the running loop."""
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock


class Store:
    """The engine plus the auth tables; opened lazily, closed explicitly."""

    def __init__(
        self,
        url: str,
        *,
        metadata: MetaData | None = None,
        user_columns: Iterable[Column[Any]] = (),
        engine_options: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.tables: Tables = build_tables(metadata, user_columns)
        self._engine_options = dict(engine_options or {})
        self._engine: AsyncEngine | None = None
        self._serialise_writes = is_sqlite(url)
        # In-memory SQLite is one shared connection: a read must not interleave with a write
        # transaction on it ("cannot start a transaction within a transaction").
        self._serialise_reads = is_sqlite_memory(url)
        self._write_locks = LoopLocalLock()

    @property
    def engine(self) -> AsyncEngine:
        """The async engine (created on first use)."""
        if self._engine is None:
            self._engine = create_engine(self.url, **self._engine_options)
        return self._engine

    @property
    def dialect_name(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    async def create_tables(self) -> None:
        """Create the auth tables (and any other table on the same metadata) if missing."""
        async with self.transaction() as conn:
            # Instances starting together must not race on CREATE TABLE (PostgreSQL).
            await conn.run_sync(lock_schema_changes)
            await conn.run_sync(self.tables.metadata.create_all)

    @property
    def required_tables(self) -> list[str]:
        """The auth tables that must exist before serving (``auth_keys`` is made on demand)."""
        t = self.tables
        tables = (t.users, t.accounts, t.sessions, t.refresh_tokens, t.rate_limits)
        return [table.name for table in (*tables, t.revocations)]

    async def missing_tables(self) -> list[str]:
        """Names of the :attr:`required_tables` that do not exist yet.

        Raises:
            StoreUnavailable: the database failed.
        """
        wanted = self.required_tables
        async with self.read() as conn:
            present = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        return [name for name in wanted if name not in present]

    async def drop_tables(self) -> None:
        """Drop every table on the metadata (tests and ``authbridge db`` only)."""
        async with self.transaction() as conn:
            await conn.run_sync(lock_schema_changes)
            await conn.run_sync(self.tables.metadata.drop_all)

    async def close(self) -> None:
        """Dispose of the connection pool."""
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed on success, rolled back on error.

        Raises:
            StoreUnavailable: the database failed for a reason other than a constraint.
        """
        lock = self._write_lock()
        if lock is not None:
            await lock.acquire()
        try:
            async with translate_errors(), self.engine.connect() as conn:
                conn = await conn.execution_options(**{WRITE_OPTION: True})
                async with conn.begin():
                    yield conn
        finally:
            if lock is not None:
                lock.release()

    def _write_lock(self) -> asyncio.Lock | None:
        return self._write_locks.get() if self._serialise_writes else None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection.

        Raises:
            StoreUnavailable: the database failed.
        """
        lock = self._write_lock() if self._serialise_reads else None
        if lock is not None:
            await lock.acquire()
        try:
            async with translate_errors(), self.engine.connect() as conn:
                yield conn
        finally:
            if lock is not None:
                lock.release()


def _driver_errors() -> tuple[type[BaseException], ...]:
    """Driver exceptions raised outside SQLAlchemy's wrapping (e.g. asyncpg while connecting)."""
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return ()
    return (asyncpg.PostgresError, asyncpg.InterfaceError)


_UNAVAILABLE: tuple[type[BaseException], ...] = (
    DBAPIError,
    PoolTimeout,
    OSError,
    asyncio.TimeoutError,
    *_driver_errors(),
)


@asynccontextmanager
async def translate_errors() -> AsyncIterator[None]:
    """Turn driver failures into :class:`StoreUnavailable`; constraint violations pass through."""
    try:
        yield
    except IntegrityError:
        raise
    except _UNAVAILABLE as exc:
        if isinstance(exc, ProgrammingError):
            logger.error(
                "database query failed (%s): are the tables created? run `authbridge db upgrade`",
                type(exc).__name__,
            )
        else:
            logger.error("database unavailable: %s", type(exc).__name__)
        raise StoreUnavailable(f"database unavailable: {type(exc).__name__}") from exc
    except SQLAlchemyError as exc:
        if "closed" in str(exc).lower() or "connection" in str(exc).lower():
            raise StoreUnavailable(f"database unavailable: {type(exc).__name__}") from exc
        raise
