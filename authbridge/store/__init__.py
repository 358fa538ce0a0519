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

from sqlalchemy import Column, MetaData
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..errors import StoreUnavailable
from .dialect import WRITE_OPTION, create_engine, insert_ignoring_conflicts, is_sqlite
from .tables import Tables, build_tables, new_id

__all__ = ["Store", "Tables", "build_tables", "insert_ignoring_conflicts", "new_id", "redact_url"]

logger = logging.getLogger("authbridge.store")


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for logs)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # pragma: no cover - unparsable URLs are reported by SQLAlchemy later
        return "<unparsable database url>"


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
        self._write_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

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
            await conn.run_sync(self.tables.metadata.create_all)

    async def drop_tables(self) -> None:
        """Drop every table on the metadata (tests and ``authbridge db`` only)."""
        async with self.transaction() as conn:
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
        # One lock per event loop: an asyncio.Lock binds to the loop it first waits on, and a
        # Store may outlive a loop (tests, servers that restart their loop).
        if not self._serialise_writes:
            return None
        loop = asyncio.get_running_loop()
        lock = self._write_locks.get(loop)
        if lock is None:
            lock = self._write_locks[loop] = asyncio.Lock()
        return lock

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection.

        Raises:
            StoreUnavailable: the database failed.
        """
        async with translate_errors(), self.engine.connect() as conn:
            yield conn


@asynccontextmanager
async def translate_errors() -> AsyncIterator[None]:
    """Turn driver failures into :class:`StoreUnavailable`; constraint violations pass through."""
    try:
        yield
    except IntegrityError:
        raise
    except (DBAPIError, PoolTimeout, OSError, asyncio.TimeoutError) as exc:
        logger.error("database unavailable: %s", type(exc).__name__)
        raise StoreUnavailable(f"database unavailable: {type(exc).__name__}") from exc
    except SQLAlchemyError as exc:
        if "closed" in str(exc).lower() or "connection" in str(exc).lower():
            raise StoreUnavailable(f"database unavailable: {type(exc).__name__}") from exc
        raise
