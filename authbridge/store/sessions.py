"""SQL of sessions and refresh tokens (``auth_sessions``, ``auth_refresh_tokens``).

Every function takes the connection of the caller's transaction; the decisions (rotation, reuse,
caps) are made in :mod:`authbridge.sessions`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, insert, null, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from . import Store, Tables
from . import revocations as feed
from .batches import delete_in_batches

__all__ = [
    "LockedToken",
    "SessionFilter",
    "beyond_newest",
    "child_of",
    "cleanup_batches",
    "count_user_sessions",
    "delete_batch",
    "delete_ended_sessions",
    "delete_expired_tokens",
    "delete_idle_rate_limits",
    "end_sessions",
    "end_where",
    "erase_sealed_batch",
    "get_live",
    "insert_session",
    "insert_token",
    "list_live",
    "lock_token",
    "locked_token",
    "mark_used",
    "of_user",
    "start_session",
    "token_hashes",
    "touch_session",
    "with_ids",
]

SessionFilter = ColumnElement[bool]
"""Which sessions to end (built by :func:`with_ids`, :func:`of_user`, :func:`beyond_newest`);
opaque outside the store."""


async def insert_session(
    conn: AsyncConnection,
    tables: Tables,
    *,
    session_id: str,
    user_id: str,
    now: datetime,
    expires_at: datetime,
    ip: str | None,
    user_agent: str | None,
    auth_time: datetime | None = None,
    amr: str | None = None,
) -> None:
    """A new ``auth_sessions`` row (``auth_time`` defaults to ``now``)."""
    await conn.execute(
        insert(tables.sessions).values(
            id=session_id,
            user_id=user_id,
            created_at=now,
            expires_at=expires_at,
            last_active_at=now,
            created_ip=ip,
            user_agent=user_agent,
            auth_time=auth_time or now,
            amr=amr,
        )
    )


async def insert_token(
    conn: AsyncConnection,
    tables: Tables,
    *,
    token_id: str,
    session_id: str,
    token_hash: str,
    parent_id: str | None,
    expires_at: datetime,
    now: datetime,
    sealed_secret: str | None = None,
) -> None:
    """A new ``auth_refresh_tokens`` row."""
    await conn.execute(
        insert(tables.refresh_tokens).values(
            id=token_id,
            session_id=session_id,
            token_hash=token_hash,
            parent_id=parent_id,
            expires_at=expires_at,
            created_at=now,
            sealed_secret=sealed_secret,
        )
    )


async def lock_token(conn: AsyncConnection, tables: Tables, token_id: str) -> Row[Any] | None:
    """The token with its session's user and end, locked for this transaction (PostgreSQL:
    ``FOR UPDATE OF auth_refresh_tokens``)."""
    tok, ses = tables.refresh_tokens, tables.sessions
    query = (
        select(
            tok.c.token_hash,
            tok.c.session_id,
            tok.c.expires_at,
            tok.c.first_used_at,
            tok.c.created_at,
            ses.c.user_id,
            ses.c.expires_at.label("session_expires_at"),
            func.coalesce(ses.c.auth_time, ses.c.created_at).label("auth_time"),
            ses.c.amr,
        )
        .join(ses, ses.c.id == tok.c.session_id)
        .where(tok.c.id == token_id)
        .with_for_update(of=tok)
    )
    return (await conn.execute(query)).one_or_none()


async def mark_used(
    conn: AsyncConnection, tables: Tables, token_id: str, now: datetime, sealed_before: datetime
) -> None:
    """Record the token's first use; erase its sealed secret if it was sealed before
    ``sealed_before`` (its parent's reuse window has closed)."""
    tok = tables.refresh_tokens
    await conn.execute(
        update(tok)
        .where(tok.c.id == token_id)
        .values(
            first_used_at=now,
            sealed_secret=case(
                (tok.c.created_at <= sealed_before, null()), else_=tok.c.sealed_secret
            ),
        )
    )


async def child_of(conn: AsyncConnection, tables: Tables, parent_id: str) -> Row[Any] | None:
    """The token's child (``id``, ``sealed_secret``), the newest if there were several."""
    tok = tables.refresh_tokens
    query = (
        select(tok.c.id, tok.c.sealed_secret)
        .where(tok.c.parent_id == parent_id)
        .order_by(tok.c.created_at.desc())
        .limit(1)
    )
    return (await conn.execute(query)).one_or_none()


async def touch_session(
    conn: AsyncConnection, tables: Tables, session_id: str, now: datetime
) -> None:
    """Set the session's ``last_active_at``."""
    ses = tables.sessions
    await conn.execute(update(ses).where(ses.c.id == session_id).values(last_active_at=now))


async def token_hashes(
    conn: AsyncConnection, tables: Tables, token_ids: Sequence[str]
) -> Sequence[Row[Any]]:
    """``(id, token_hash, session_id)`` of these tokens."""
    tok = tables.refresh_tokens
    query = select(tok.c.id, tok.c.token_hash, tok.c.session_id).where(
        tok.c.id.in_(list(token_ids))
    )
    return (await conn.execute(query)).all()


async def count_user_sessions(conn: AsyncConnection, tables: Tables, user_id: str) -> int:
    """How many session rows the user has."""
    ses = tables.sessions
    query = select(func.count()).select_from(ses).where(ses.c.user_id == user_id)
    return int((await conn.execute(query)).scalar_one())


def with_ids(tables: Tables, session_ids: Sequence[str]) -> ColumnElement[bool]:
    """These sessions (bind at most a chunk of ids at a time)."""
    return tables.sessions.c.id.in_(list(session_ids))


def of_user(tables: Tables, user_id: str, keep: str | None = None) -> ColumnElement[bool]:
    """Sessions of ``user_id`` except ``keep``: a condition for ending them in SQL."""
    ses = tables.sessions
    condition = ses.c.user_id == user_id
    if keep is not None:
        condition = condition & (ses.c.id != keep)
    return condition


def beyond_newest(tables: Tables, user_id: str, keep: str, count: int) -> ColumnElement[bool]:
    """Sessions of ``user_id`` other than ``keep`` and the ``count`` newest others: the oldest
    ones, which end first when the user is over the cap."""
    ses = tables.sessions
    newest = ses.alias("newest")
    kept = (
        select(newest.c.id)
        .where(newest.c.user_id == user_id)
        .where(newest.c.id != keep)
        .order_by(newest.c.created_at.desc(), newest.c.id.desc())
        .limit(count)
    )
    return (ses.c.user_id == user_id) & (ses.c.id != keep) & ses.c.id.not_in(kept)


def _is_live(tables: Tables, now: datetime) -> ColumnElement[bool]:
    # Live: before its absolute end, and not inactive (it still has an unexpired refresh
    # token). Rows past either are dead even before cleanup() removes them.
    s, tok = tables.sessions, tables.refresh_tokens
    live_token = select(tok.c.id).where(tok.c.session_id == s.c.id).where(tok.c.expires_at > now)
    return (s.c.expires_at > now) & live_token.exists()


async def list_live(
    conn: AsyncConnection, tables: Tables, user_id: str, now: datetime
) -> Sequence[Row[Any]]:
    """The user's live sessions, most recently active first."""
    s = tables.sessions
    query = (
        select(s)
        .where(s.c.user_id == user_id)
        .where(_is_live(tables, now))
        .order_by(s.c.last_active_at.desc(), s.c.created_at.desc())
    )
    return (await conn.execute(query)).all()


async def get_live(
    conn: AsyncConnection, tables: Tables, session_id: str, now: datetime
) -> Row[Any] | None:
    """One live session row."""
    s = tables.sessions
    query = select(s).where(s.c.id == session_id).where(_is_live(tables, now))
    return (await conn.execute(query)).one_or_none()


async def erase_sealed_batch(
    conn: AsyncConnection, tables: Tables, sealed_before: datetime, limit: int
) -> int:
    """Erase up to ``limit`` sealed secrets whose parent's reuse window has closed."""
    tok = tables.refresh_tokens
    ids = (
        (
            await conn.execute(
                select(tok.c.id)
                .where(tok.c.sealed_secret.is_not(None))
                .where(tok.c.created_at <= sealed_before)
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )
    if ids:
        await conn.execute(update(tok).where(tok.c.id.in_(ids)).values(sealed_secret=None))
    return len(ids)


async def delete_batch(conn: AsyncConnection, table: Any, key: Any, where: Any, limit: int) -> int:
    """Delete up to ``limit`` rows of ``table`` matching ``where``; returns how many."""
    ids = (await conn.execute(select(key).where(where).limit(limit))).scalars().all()
    if ids:
        await conn.execute(delete(table).where(key.in_(ids)))
    return len(ids)


async def delete_expired_tokens(
    conn: AsyncConnection, tables: Tables, now: datetime, limit: int
) -> int:
    """Delete up to ``limit`` refresh tokens past their inactivity limit."""
    tok = tables.refresh_tokens
    return await delete_batch(conn, tok, tok.c.id, tok.c.expires_at <= now, limit)


async def delete_ended_sessions(
    conn: AsyncConnection, tables: Tables, now: datetime, limit: int
) -> int:
    """Delete up to ``limit`` sessions past their absolute end, or whose last refresh token has
    expired (and been deleted)."""
    ses, tok = tables.sessions, tables.refresh_tokens
    no_live_token = ~select(tok.c.id).where(tok.c.session_id == ses.c.id).exists()
    return await delete_batch(conn, ses, ses.c.id, (ses.c.expires_at <= now) | no_live_token, limit)


async def delete_idle_rate_limits(
    conn: AsyncConnection, tables: Tables, idle_since: datetime, limit: int
) -> int:
    """Delete up to ``limit`` rate-limit buckets untouched since ``idle_since`` (full again)."""
    rl = tables.rate_limits
    return await delete_batch(conn, rl, rl.c.identifier, rl.c.last_attempt_at <= idle_since, limit)


async def get_row(conn: AsyncConnection, tables: Tables, session_id: str) -> Row[Any] | None:
    """The ``auth_sessions`` row with this id, live or not."""
    s = tables.sessions
    return (await conn.execute(select(s).where(s.c.id == session_id))).one_or_none()


# -- units of work: one transaction each, for authbridge.sessions ------------------------------


async def start_session(
    store: Store,
    *,
    session_id: str,
    user_id: str,
    now: datetime,
    expires_at: datetime,
    ip: str | None,
    user_agent: str | None,
    amr: str | None,
    token_id: str,
    token_hash: str,
    token_expires_at: datetime,
) -> int:
    """Insert a session and its first refresh token in one transaction. Returns how many
    sessions the user has now (the caller enforces the cap).

    Raises:
        StoreUnavailable: the database failed.
    """
    tables = store.tables
    async with store.transaction() as conn:
        await insert_session(
            conn,
            tables,
            session_id=session_id,
            user_id=user_id,
            now=now,
            expires_at=expires_at,
            ip=ip,
            user_agent=user_agent,
            auth_time=now,
            amr=amr,
        )
        await insert_token(
            conn,
            tables,
            token_id=token_id,
            session_id=session_id,
            token_hash=token_hash,
            parent_id=None,
            expires_at=token_expires_at,
            now=now,
        )
        return await count_user_sessions(conn, tables, user_id)


class LockedToken:
    """A refresh token locked for one transaction (:func:`locked_token`), with the writes a
    rotation makes. ``row`` is ``None`` for an unknown token."""

    def __init__(
        self, conn: AsyncConnection, tables: Tables, token_id: str, row: Row[Any] | None
    ) -> None:
        self._conn = conn
        self._tables = tables
        self.token_id = token_id
        self.row = row
        """What :func:`lock_token` reads."""

    async def mark_used(self, now: datetime, sealed_before: datetime) -> None:
        """Record the token's first use (see :func:`mark_used`)."""
        await mark_used(self._conn, self._tables, self.token_id, now, sealed_before)

    async def child(self) -> Row[Any] | None:
        """The token's child (``id``, ``sealed_secret``), the newest if there were several."""
        return await child_of(self._conn, self._tables, self.token_id)

    async def add_child(
        self,
        *,
        child_id: str,
        session_id: str,
        token_hash: str,
        expires_at: datetime,
        now: datetime,
        sealed_secret: str | None,
    ) -> None:
        """Insert the token's child and mark its session active now."""
        await insert_token(
            self._conn,
            self._tables,
            token_id=child_id,
            session_id=session_id,
            token_hash=token_hash,
            parent_id=self.token_id,
            expires_at=expires_at,
            now=now,
            sealed_secret=sealed_secret,
        )
        await touch_session(self._conn, self._tables, session_id, now)


@asynccontextmanager
async def locked_token(store: Store, token_id: str) -> AsyncIterator[LockedToken]:
    """A write transaction holding the refresh token's row lock until it ends.

    Raises:
        StoreUnavailable: the database failed.
    """
    async with store.transaction() as conn:
        row = await lock_token(conn, store.tables, token_id)
        yield LockedToken(conn, store.tables, token_id, row)


async def end_sessions(
    store: Store, session_ids: Sequence[str], now: datetime, until: datetime, *, notify: bool
) -> int:
    """Delete these sessions (and their tokens) and record a revocation for each, existing or
    not (sessions already gone may still have valid JWTs). Returns how many existed.

    Raises:
        StoreUnavailable: the database failed.
    """
    tables = store.tables
    existed = 0
    async with store.transaction() as conn:
        await feed.lock_feed(conn)
        for start in range(0, len(session_ids), feed.CHUNK):
            chunk = session_ids[start : start + feed.CHUNK]
            ended = await feed.record_ended(conn, tables, with_ids(tables, chunk), now, until)
            existed += len(ended)
        await feed.record(conn, tables, session_ids, now, until)
        if notify:
            await feed.notify(conn)
    return existed


async def end_where(
    store: Store, where: SessionFilter, now: datetime, until: datetime, *, notify: bool
) -> list[str]:
    """Delete every session matching ``where`` (any number) and record their revocations.
    Returns their ids.

    Raises:
        StoreUnavailable: the database failed.
    """
    async with store.transaction() as conn:
        await feed.lock_feed(conn)
        ended = await feed.record_ended(conn, store.tables, where, now, until)
        if ended and notify:
            await feed.notify(conn)
    return list(ended)


async def cleanup_batches(
    store: Store,
    *,
    now: datetime,
    sealed_before: datetime,
    idle_since: datetime,
    batch_size: int,
    max_batches: int | None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Erase sealed secrets sealed before ``sealed_before``; delete expired refresh tokens,
    ended sessions, expired revocations and rate-limit buckets idle since ``idle_since``, in
    batches of ``batch_size`` rows, each its own transaction. Returns the rows deleted per
    table (``refresh_tokens``, ``sessions``, ``revocations``, ``rate_limits``).

    Args:
        progress: called after each batch with the rows deleted so far.

    Raises:
        StoreUnavailable: the database failed.
    """
    t = store.tables

    def in_transaction(
        step: Callable[[AsyncConnection], Awaitable[int]],
    ) -> Callable[[], Awaitable[int]]:
        async def batch() -> int:
            async with store.transaction() as conn:
                return await step(conn)

        return batch

    # Erased secrets are not deleted rows: neither counted nor reported.
    erase = in_transaction(lambda c: erase_sealed_batch(c, t, sealed_before, batch_size))
    await delete_in_batches(erase, batch_size, max_batches=max_batches)
    steps: dict[str, Callable[[AsyncConnection], Awaitable[int]]] = {
        "refresh_tokens": lambda c: delete_expired_tokens(c, t, now, batch_size),
        "sessions": lambda c: delete_ended_sessions(c, t, now, batch_size),
        "revocations": lambda c: feed.delete_expired(c, t, now, batch_size),
        "rate_limits": lambda c: delete_idle_rate_limits(c, t, idle_since, batch_size),
    }
    deleted: dict[str, int] = {}

    def report(done: int) -> None:
        if progress is not None:  # the rows of the kinds done, then this kind's so far
            progress(sum(deleted.values()) + done)

    for name, step in steps.items():
        deleted[name] = await delete_in_batches(
            in_transaction(step), batch_size, max_batches=max_batches, progress=report
        )
    return deleted
