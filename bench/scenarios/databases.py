"""Throwaway databases and signed-in users for the authbridge benchmarks.

SQLite: a temporary directory, removed on close.  PostgreSQL: a database named
``authbridge_bench_<pid>_<random>`` created on ``BENCH_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``) and dropped on close (``WITH (FORCE)``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from sqlalchemy import insert

from authbridge import Auth, AuthConfig, SignInResult
from authbridge.tokens import generate_private_key_pem
from bench.runners.inprocess import ScenarioUnavailable

ENV_PG_URL = "BENCH_PG_URL"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
PASSWORD = "correct horse battery staple"

Backend = Literal["sqlite", "postgresql"]


@functools.cache
def private_pem() -> str:
    """One ES256 signing key per process (the library default algorithm)."""
    return generate_private_key_pem("ES256")


class TempDatabase:
    """A database URL usable by ``AuthConfig`` plus the cleanup that removes it."""

    def __init__(self, url: str, backend: Backend) -> None:
        self.url = url
        self.backend = backend

    async def drop(self) -> None:
        raise NotImplementedError


class _Sqlite(TempDatabase):
    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="authbridge-bench-")
        super().__init__(
            f"sqlite+aiosqlite:///{os.path.join(self.directory, 'auth.sqlite3')}", "sqlite"
        )

    async def drop(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class _Postgres(TempDatabase):
    def __init__(self, admin_url: str, name: str) -> None:
        self.admin_url = admin_url
        self.name = name
        base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        super().__init__(f"{base}/{name}", "postgresql")

    async def drop(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.admin_url, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await conn.close()


async def create_database(backend: Backend) -> TempDatabase:
    """A new empty database; raises :class:`ScenarioUnavailable` when PostgreSQL is absent."""
    if backend == "sqlite":
        return _Sqlite()
    try:
        import asyncpg
    except ImportError as exc:
        raise ScenarioUnavailable(f"asyncpg not installed ({exc})") from exc
    admin_url = os.environ.get(ENV_PG_URL, DEFAULT_PG_URL)
    name = f"authbridge_bench_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        conn = await asyncpg.connect(admin_url, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        raise ScenarioUnavailable(f"PostgreSQL unavailable at {admin_url}: {exc}") from exc
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return _Postgres(admin_url, name)


def make_auth(
    database: TempDatabase, *, engine_options: dict[str, Any] | None = None, **config: Any
) -> Auth:
    """An ``Auth`` on ``database`` with the shared ES256 key (tables created on open)."""
    return Auth(
        AuthConfig(database_url=database.url, jwt_private_keys=(private_pem(),), **config),
        create_tables=True,
        engine_options=engine_options,
    )


async def sign_up(auth: Auth, email: str = "bench@example.com") -> SignInResult:
    await auth.open()
    return await auth.sign_up_with_password(email, PASSWORD)


@dataclass
class Opened:
    database: TempDatabase
    auth: Auth
    signed_in: SignInResult


@contextlib.asynccontextmanager
async def opened_auth(
    backend: Backend, *, engine_options: dict[str, Any] | None = None, **config: Any
) -> AsyncIterator[Opened]:
    """A throwaway database, an open ``Auth`` on it and one signed-up user; all cleaned up."""
    database = await create_database(backend)
    auth: Auth | None = None
    try:
        auth = make_auth(database, engine_options=engine_options, **config)
        result = await sign_up(auth)
        yield Opened(database, auth, result)
    finally:
        try:
            if auth is not None:
                await auth.close()
        finally:
            await database.drop()


# --------------------------------------------------------------------------------------------
# Bulk rows (SQLAlchemy Core executemany)


def _rid(prefix: str, i: int) -> str:
    return f"{prefix}{i:09d}{secrets.token_hex(4)}"


async def bulk_sessions(
    auth: Auth,
    count: int,
    *,
    expired: bool,
    revoked: bool,
    users: int = 100,
    chunk: int = 10_000,
) -> int:
    """Insert ``count`` sessions, one refresh token each, and optionally a revocation each.

    ``expired`` makes sessions and tokens already expired (for cleanup); otherwise they are live
    for 30 days and revocations stay relevant for an hour.  Returns the rows inserted.
    """
    t = auth.store.tables
    now = datetime.now(timezone.utc)
    past = now - timedelta(days=1)
    ends = past if expired else now + timedelta(days=30)
    user_ids = [_rid("u", i) for i in range(max(1, min(users, count)))]
    inserted = 0
    async with auth.store.transaction() as conn:
        await conn.execute(
            insert(t.users),
            [
                {"id": uid, "created_at": now, "email": f"{uid}@x.invalid", "is_anonymous": False}
                for uid in user_ids
            ],
        )
        inserted += len(user_ids)
    for start in range(0, count, chunk):
        indices = range(start, min(count, start + chunk))
        session_ids = [_rid("s", i) for i in indices]
        sessions = [
            {
                "id": sid,
                "user_id": user_ids[i % len(user_ids)],
                "created_at": past,
                "expires_at": ends,
                "last_active_at": past,
            }
            for i, sid in zip(indices, session_ids, strict=True)
        ]
        tokens = [
            {
                "id": _rid("t", i),
                "session_id": sid,
                "token_hash": secrets.token_hex(32),
                "parent_id": None,
                "expires_at": ends,
                "created_at": past,
            }
            for i, sid in zip(indices, session_ids, strict=True)
        ]
        rows: list[tuple[Any, Sequence[dict[str, Any]]]] = [
            (t.sessions, sessions),
            (t.refresh_tokens, tokens),
        ]
        if revoked:
            revocations = [
                {"session_id": sid, "revoked_at": now, "expires_at": now + timedelta(hours=1)}
                for sid in session_ids
            ]
            rows.append((t.revocations, revocations))
        async with auth.store.transaction() as conn:
            for table, values in rows:
                await conn.execute(insert(table), values)
                inserted += len(values)
    return inserted
