"""Shared fixtures: an injectable clock, databases (SQLite always, PostgreSQL when reachable) and
an ``Auth`` factory. PostgreSQL tests skip with a reason on machines without the server, and fail
in CI (``CI=true``), where the server must be there."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from authbridge import Auth, AuthConfig, PasswordConfig

pytest_plugins = ["authbridge.testing"]
"""The testing kit's fixtures (``authbridge_*``), exercised by tests/test_testing_kit.py."""

PG_ADMIN_DSN = os.environ.get("AUTHBRIDGE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
FAST_PASSWORDS = PasswordConfig(argon2_memory_kib=1024, argon2_time_cost=1)
"""Cheap argon2id parameters for tests that do not measure hashing."""


class FakeClock:
    """A controllable UTC clock: ``clock()`` returns now, ``clock.advance(seconds)`` moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2030, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: float | timedelta) -> None:
        self.now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/auth.db"


def _pg_available() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped afterwards."""
    if not _pg_available():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is required in CI but 127.0.0.1:5432 is not reachable")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    name = f"authbridge_test_{secrets.token_hex(4)}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def pg_url(pg_database: str) -> AsyncIterator[str]:
    """The run's PostgreSQL database with empty auth tables for this test."""
    yield pg_database
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(pg_database)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every database backend: SQLite, and PostgreSQL where reachable."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/auth.db"
    return str(request.getfixturevalue("pg_url"))


TEST_KEY_PEM: str | None = None


def private_key_for_tests() -> str:
    """One ES256 key per test run (server databases need configured keys)."""
    global TEST_KEY_PEM
    if TEST_KEY_PEM is None:
        from authbridge.tokens import generate_private_key_pem

        TEST_KEY_PEM = generate_private_key_pem("ES256")
    return TEST_KEY_PEM


AuthFactory = Callable[..., Awaitable[Auth]]


@pytest.fixture
async def auth_factory(db_url: str, clock: FakeClock) -> AsyncIterator[AuthFactory]:
    """Build opened ``Auth`` engines on the test database (tables created, fast hashing, the
    fake clock). Keyword arguments override ``AuthConfig`` fields; ``auth_kwargs`` go to Auth."""
    made: list[Auth] = []

    async def factory(auth_kwargs: dict[str, Any] | None = None, **overrides: Any) -> Auth:
        fields: dict[str, Any] = {
            "database_url": db_url,
            "password": FAST_PASSWORDS,
            "jwt_private_keys": (private_key_for_tests(),),
        }
        fields.update(overrides)
        kwargs: dict[str, Any] = {"clock": clock, "create_tables": True}
        kwargs.update(auth_kwargs or {})
        auth = Auth(AuthConfig(**fields), **kwargs)
        await auth.open()
        made.append(auth)
        return auth

    yield factory
    for auth in made:
        await auth.close()


@pytest.fixture
async def auth(auth_factory: AuthFactory) -> Auth:
    """An opened engine with default settings on the test database."""
    return await auth_factory()
