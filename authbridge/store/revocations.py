"""SQL of the revocation feed (``auth_revocations``) and its PostgreSQL push channel.

The feed is read by ``seq``, a number the database assigns on insert (an identity column on
PostgreSQL, ``AUTOINCREMENT`` on SQLite), never by an application clock. A reader that remembers
the highest ``seq`` it has seen can miss a row only if a lower number commits after a higher one;
:func:`lock_feed` rules that out by serialising the transactions that record revocations (SQLite
serialises every write transaction already).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from . import Store, Tables
from .tables import UTCDateTime

__all__ = [
    "FEED_CHANNEL",
    "FEED_LOCK_KEY",
    "delete_expired",
    "listen",
    "lock_feed",
    "notify",
    "read_since",
    "record",
    "record_ended",
]

logger = logging.getLogger("authbridge.revocations")

FEED_CHANNEL = "authbridge_revocations"
"""PostgreSQL NOTIFY channel: a notification means "new rows in the feed"."""

FEED_LOCK_KEY = 0x61757468_7265766B
"""PostgreSQL advisory-lock key ("authrevk") serialising transactions that record revocations."""

CHUNK = 1000
"""Session ids bound into one statement at most (asyncpg allows 32767 parameters)."""


def _is_postgresql(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


async def lock_feed(conn: AsyncConnection) -> None:
    """Take the feed lock until this transaction ends. Call it FIRST in a transaction that will
    record revocations (before any row lock, so it cannot take part in a deadlock): sequence
    numbers then commit in the order they were assigned, and a reader never skips one."""
    if _is_postgresql(conn):
        await conn.execute(select(func.pg_advisory_xact_lock(FEED_LOCK_KEY)))


async def notify(conn: AsyncConnection) -> None:
    """Tell listening instances (PostgreSQL) to read the feed once this transaction commits."""
    if _is_postgresql(conn):
        await conn.execute(select(func.pg_notify(FEED_CHANNEL, "")))


def _insert(conn: AsyncConnection, tables: Tables) -> Any:
    table = tables.revocations
    if _is_postgresql(conn):
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=["session_id"])
    return sqlite.insert(table).on_conflict_do_nothing()


async def record(
    conn: AsyncConnection,
    tables: Tables,
    session_ids: Sequence[str],
    revoked_at: datetime,
    expires_at: datetime,
) -> None:
    """Record revocations of these sessions (already-recorded ones are left alone), in chunks."""
    ids = list(dict.fromkeys(session_ids))
    for start in range(0, len(ids), CHUNK):
        await conn.execute(
            _insert(conn, tables),
            [
                {"session_id": sid, "revoked_at": revoked_at, "expires_at": expires_at}
                for sid in ids[start : start + CHUNK]
            ],
        )


async def record_ended(
    conn: AsyncConnection,
    tables: Tables,
    where: ColumnElement[bool],
    revoked_at: datetime,
    expires_at: datetime,
) -> list[str]:
    """Delete the sessions matching ``where`` (a condition on ``auth_sessions``) with their
    refresh tokens, and record a revocation for each, all in SQL: no id list is bound, however
    many sessions match. Returns the ended session ids."""
    ses, tok, rev = tables.sessions, tables.refresh_tokens, tables.revocations
    await conn.execute(delete(tok).where(tok.c.session_id.in_(select(ses.c.id).where(where))))
    columns = ["session_id", "revoked_at", "expires_at"]
    stamps = (literal(revoked_at, UTCDateTime()), literal(expires_at, UTCDateTime()))
    if _is_postgresql(conn):
        # One statement: the rows deleted are exactly the rows recorded, even if a session of
        # the user is created meanwhile.
        gone = delete(ses).where(where).returning(ses.c.id).cte("gone")
        inserted = (
            postgresql.insert(rev)
            .from_select(columns, select(gone.c.id, *stamps))
            .on_conflict_do_nothing(index_elements=["session_id"])
            .returning(rev.c.session_id)
        )
        return list((await conn.execute(inserted)).scalars())
    # SQLite runs one write transaction at a time: nothing changes between the two statements.
    inserted = (
        sqlite.insert(rev)
        .from_select(columns, select(ses.c.id, *stamps).where(where))
        .on_conflict_do_nothing()
        .returning(rev.c.session_id)
    )
    ended = list((await conn.execute(inserted)).scalars())
    await conn.execute(delete(ses).where(where))
    return ended


async def read_since(conn: AsyncConnection, tables: Tables, seq: int) -> Sequence[Row[Any]]:
    """Feed rows after ``seq``, in order (an index range scan on the primary key)."""
    rev = tables.revocations
    query = (
        select(rev.c.seq, rev.c.session_id, rev.c.expires_at)
        .where(rev.c.seq > seq)
        .order_by(rev.c.seq)
    )
    return (await conn.execute(query)).all()


async def delete_expired(conn: AsyncConnection, tables: Tables, now: datetime, limit: int) -> int:
    """Delete up to ``limit`` revocations no token of whose session can still be valid."""
    rev = tables.revocations
    ids = (
        (await conn.execute(select(rev.c.seq).where(rev.c.expires_at <= now).limit(limit)))
        .scalars()
        .all()
    )
    if ids:
        await conn.execute(delete(rev).where(rev.c.seq.in_(ids)))
    return len(ids)


@asynccontextmanager
async def listen(store: Store, on_notify: Callable[[], None]) -> AsyncIterator[asyncio.Event]:
    """LISTEN on :data:`FEED_CHANNEL` over a dedicated connection (PostgreSQL only), calling
    ``on_notify()`` for every notification. Yields an event set when the connection is lost.

    The connection is taken from the engine (same URL and connect arguments) and detached from
    its pool, so it never counts against the pool size.

    Raises:
        StoreUnavailable: the connection could not be opened.
    """
    from . import translate_errors

    lost = asyncio.Event()

    def on_message(*_args: Any) -> None:
        on_notify()

    def on_terminate(*_args: Any) -> None:
        lost.set()

    async with translate_errors():
        proxied = await store.engine.raw_connection()
        connection: Any = proxied.driver_connection
        proxied.detach()
        try:
            connection.add_termination_listener(on_terminate)
            await connection.add_listener(FEED_CHANNEL, on_message)
        except BaseException:
            connection.terminate()
            raise
    try:
        yield lost
    finally:
        if not connection.is_closed():
            try:
                await asyncio.wait_for(connection.close(), 2)
            except Exception:  # the server is gone: drop the socket
                connection.terminate()
