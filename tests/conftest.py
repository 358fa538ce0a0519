"""Shared fixtures, built from the toolkit (``tests/toolkit/``): an injectable clock, databases
(SQLite always, PostgreSQL when reachable), an ``Auth`` factory and in-process clients.
PostgreSQL tests skip with a reason on machines without the server, and fail in CI
(``CI=true``), where the server must be there."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from authbridge import Auth, AuthConfig
from tests.toolkit.clients import ClientFactory, asgi_client
from tests.toolkit.clock import FakeClock
from tests.toolkit.databases import (
    fresh_pg_database,
    pg_database_url,
    require_postgres,
    sqlite_url,
)
from tests.toolkit.engines import FAST_PASSWORDS, AuthFactory, signing_key


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(name="sqlite_url")
def sqlite_url_fixture(tmp_path: Path) -> str:
    """A SQLite database file in the test's temporary directory."""
    return sqlite_url(tmp_path)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped afterwards."""
    require_postgres()
    with fresh_pg_database() as name:
        yield pg_database_url(name)


@pytest.fixture
async def pg_url(pg_database: str) -> AsyncIterator[str]:
    """The run's PostgreSQL database with empty auth tables for this test."""
    yield pg_database
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(pg_database)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every database backend: SQLite, and PostgreSQL where reachable."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def auth_factory(db_url: str, clock: FakeClock) -> AsyncIterator[AuthFactory]:
    """Build opened ``Auth`` engines on the test database (tables created, fast hashing, the
    fake clock). Keyword arguments override ``AuthConfig`` fields; ``auth_kwargs`` go to Auth."""
    made: list[Auth] = []

    async def factory(auth_kwargs: dict[str, Any] | None = None, **overrides: Any) -> Auth:
        fields: dict[str, Any] = {
            "database_url": db_url,
            "password": FAST_PASSWORDS,
            "jwt_private_keys": (signing_key(),),
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


@pytest.fixture
def client_base_url() -> str:
    """Where ``client_factory``'s clients think the app is (https: ``__Host-`` cookies)."""
    return "https://testserver"


@pytest.fixture
async def client_factory(client_base_url: str) -> AsyncIterator[ClientFactory]:
    """In-process clients of an app (``client_base_url`` by default; pass ``transport=`` for a
    real server), closed after the test."""
    made: list[httpx.AsyncClient] = []

    def factory(app: Any, base_url: str = client_base_url, **options: Any) -> httpx.AsyncClient:
        client = asgi_client(app, base_url, **options)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.aclose()
