"""SQL of sessions and refresh tokens (``auth_sessions``, ``auth_refresh_tokens``).

Every function takes the connection of the caller's transaction; the decisions (rotation, reuse,
caps) are made in :mod:`authbridge.sessions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, insert, null, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from . import Tables

__all__ = [
    "beyond_newest",
    "child_of",
    "count_user_sessions",
    "delete_batch",
    "delete_ended_sessions",
    "delete_expired_tokens",
    "delete_idle_rate_limits",
    "erase_sealed_batch",
    "get_live",
    "insert_session",
    "insert_token",
    "list_live",
    "lock_token",
    "mark_used",
    "of_user",
    "token_hashes",
    "touch_session",
    "with_ids",
]


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
