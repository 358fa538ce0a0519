"""Fixtures for the core suite: counting hashers and raw table access.

Everything runs against real databases (the shared ``db_url`` fixture: SQLite, and PostgreSQL
where reachable); nothing here mocks the store.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

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
