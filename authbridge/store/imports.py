"""Bulk import of users and accounts (``authbridge import convex``): the reads that find what is
there already, and the batched inserts. Parsing and validation live in
:mod:`authbridge.convex_import`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Row, insert, inspect, select

if TYPE_CHECKING:
    from . import Store

__all__ = ["ImportRepository"]

CHUNK = 500
"""Values per ``IN (...)`` list (well under every driver's parameter limit)."""


def _chunks(values: Iterable[str]) -> Iterator[list[str]]:
    items = sorted(set(values))
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


class ImportRepository:
    """Queries of an import on ``users`` and ``auth_accounts`` (one read per chunk of the
    export, never one per row)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def has_convex_ids(self) -> bool:
        """True when ``users`` exists and has the ``convex_id`` column (migration 0002).

        Raises:
            StoreUnavailable: the database failed.
        """

        def check(sync: Any) -> bool:
            inspector = inspect(sync)
            if not inspector.has_table("users"):
                return False
            return "convex_id" in {c["name"] for c in inspector.get_columns("users")}

        async with self._store.read() as conn:
            found: bool = await conn.run_sync(check)
        return found

    async def _rows_where_in(
        self, columns: Sequence[ColumnElement[Any]], key: ColumnElement[str], values: Iterable[str]
    ) -> list[Row[Any]]:
        """``columns`` of the rows whose ``key`` is among ``values``, one read per chunk."""
        found: list[Row[Any]] = []
        async with self._store.read() as conn:
            for chunk in _chunks(values):
                found.extend(await conn.execute(select(*columns).where(key.in_(chunk))))
        return found

    async def imported_users(self, convex_ids: Iterable[str]) -> dict[str, str]:
        """``convex_id -> user id`` of the users imported before among ``convex_ids``.

        Raises:
            StoreUnavailable: the database failed.
        """
        u = self._store.tables.users
        rows = await self._rows_where_in([u.c.convex_id, u.c.id], u.c.convex_id, convex_ids)
        return {r.convex_id: r.id for r in rows}

    async def imported_accounts(self, convex_ids: Iterable[str]) -> set[str]:
        """The ``convex_ids`` of accounts imported before.

        Raises:
            StoreUnavailable: the database failed.
        """
        a = self._store.tables.accounts
        rows = await self._rows_where_in([a.c.convex_id], a.c.convex_id, convex_ids)
        return {r.convex_id for r in rows}

    async def taken_emails(self, emails: Iterable[str]) -> set[str]:
        """The ``emails`` some user has already.

        Raises:
            StoreUnavailable: the database failed.
        """
        u = self._store.tables.users
        rows = await self._rows_where_in([u.c.email], u.c.email, emails)
        return {r.email for r in rows}

    async def taken_identities(self, subjects: Iterable[str]) -> set[tuple[str, str]]:
        """``(provider, provider_account_id)`` of the accounts whose subject is in ``subjects``.

        Raises:
            StoreUnavailable: the database failed.
        """
        a = self._store.tables.accounts
        columns = [a.c.provider, a.c.provider_account_id]
        rows = await self._rows_where_in(columns, a.c.provider_account_id, subjects)
        return {(r.provider, r.provider_account_id) for r in rows}

    async def insert_users(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``users`` rows in one transaction.

        Raises:
            StoreUnavailable: the database failed.
        """
        async with self._store.transaction() as conn:
            await conn.execute(insert(self._store.tables.users), list(rows))

    async def insert_accounts(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``auth_accounts`` rows in one transaction.

        Raises:
            StoreUnavailable: the database failed.
        """
        async with self._store.transaction() as conn:
            await conn.execute(insert(self._store.tables.accounts), list(rows))
