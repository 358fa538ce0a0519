"""Fixtures for the core suite: counting hashers, SQL statement counters and raw table access.

Everything runs against real databases (the shared ``db_url`` fixture: SQLite, and PostgreSQL
where reachable); nothing here mocks the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from authbridge import Auth
from authbridge.passwords import PasswordHasher, Verification


class CountingHasher(PasswordHasher):
    """A real hasher that counts how often each path runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.verified: list[str] = []
        self.hashed = 0
        self.scrypts = 0
        self.argon2_checks = 0

    def work(self) -> tuple[int, int]:
        """``(scrypt derivations, argon2 verifications)`` so far; then starts counting again."""
        done = (self.scrypts, self.argon2_checks)
        self.scrypts = self.argon2_checks = 0
        return done

    def _scrypt(self, password: str, salt: str) -> str:
        self.scrypts += 1
        return super()._scrypt(password, salt)

    def _argon2_check(self, stored: str, password: str) -> bool:
        self.argon2_checks += 1
        return super()._argon2_check(stored, password)

    def verify_sync(self, stored: str, password: str) -> Verification:
        self.verified.append(stored)
        return super().verify_sync(stored, password)

    def hash_sync(self, password: str) -> str:
        self.hashed += 1
        return super().hash_sync(password)


def install_counting_hasher(auth: Auth) -> CountingHasher:
    """Swap ``auth``'s hasher for a counting one with the same policy."""
    hasher = CountingHasher(auth.config.password)
    hasher.imported = auth.passwords.imported
    auth.passwords.close()
    auth.passwords = hasher
    return hasher


@contextmanager
def count_statements(auth: Auth) -> Iterator[list[str]]:
    """Collect the SQL statements ``auth`` sends while the block runs."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.strip().upper() not in {"BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"}:
            statements.append(statement)

    engine = auth.store.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def row_count(auth: Auth, table_name: str) -> int:
    """Rows in one auth table."""
    table = auth.store.tables.metadata.tables[table_name]
    async with auth.store.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def all_rows(auth: Auth, table_name: str) -> list[dict[str, Any]]:
    """Every row of one table, as dicts."""
    table = auth.store.tables.metadata.tables[table_name]
    async with auth.store.read() as conn:
        return [dict(r._mapping) for r in (await conn.execute(select(table))).all()]


@pytest.fixture
async def pg_url(pg_database: str) -> AsyncIterator[str]:
    """The run's PostgreSQL database, emptied after each test.

    Overrides the shared fixture, whose teardown sends two statements in one asyncpg prepared
    statement ("cannot insert multiple commands into a prepared statement").
    """
    yield pg_database
    engine = create_async_engine(pg_database)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()
