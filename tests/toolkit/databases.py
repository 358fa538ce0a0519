"""Databases for tests: SQLite files in a temporary directory, and PostgreSQL on 127.0.0.1:5432
(user ``postgres``, trust authentication), where each run and each suite that needs an empty
database of its own creates one and drops it afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_ADMIN_DSN = os.environ.get(
    "AUTHBRIDGE_TEST_PG_DSN", f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"
)
"""Where databases are created and dropped from (plain asyncpg DSN)."""


def sqlite_url(directory: Path, name: str = "auth") -> str:
    """The URL of the SQLite database file ``<directory>/<name>.db``."""
    return f"sqlite+aiosqlite:///{directory}/{name}.db"


def pg_database_url(name: str, *, password: str | None = None, port: int = PG_PORT) -> str:
    """The SQLAlchemy URL (asyncpg driver) of database ``name``; ``port`` may be a proxy's."""
    user = "postgres" if password is None else f"postgres:{password}"
    return f"postgresql+asyncpg://{user}@{PG_HOST}:{port}/{name}"


def pg_dsn(name: str) -> str:
    """The plain ``postgresql://`` DSN of database ``name``, for checks with asyncpg itself."""
    return f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"


def require_postgres() -> None:
    """Skip the test when PostgreSQL is not reachable; fail instead in CI (``CI=true``), where
    the server must be there."""
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return
    except OSError:
        pass
    reason = f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: it is required in CI")
    pytest.skip(reason)


async def pg_admin(sql: str, dsn: str = PG_ADMIN_DSN) -> None:
    """Run one statement as the administrator (plain asyncpg: no authbridge code involved)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_pg_database(prefix: str = "authbridge_test") -> Iterator[str]:
    """A new, empty PostgreSQL database for the block; yields its name. Dropped afterwards,
    cutting connections a test left open. Call it outside a running event loop."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
