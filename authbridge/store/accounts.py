"""The ``auth_accounts`` table: one row per provider identity (passwords hash on the account)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update

from .cascade import delete_with_children

if TYPE_CHECKING:
    from . import Store

__all__ = ["Account", "AccountRepository"]


@dataclass(frozen=True, slots=True)
class Account:
    """An ``auth_accounts`` row."""

    id: str
    user_id: str
    provider: str
    provider_account_id: str
    secret: str | None


class AccountRepository:
    """Queries on ``auth_accounts``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def find(self, provider: str, provider_account_id: str) -> Account | None:
        """The account of this provider identity.

        Raises:
            StoreUnavailable: the database failed.
        """
        a = self._store.tables.accounts
        async with self._store.read() as conn:
            row = (
                await conn.execute(
                    select(a.c.id, a.c.user_id, a.c.secret).where(
                        (a.c.provider == provider)
                        & (a.c.provider_account_id == provider_account_id)
                    )
                )
            ).one_or_none()
        if row is None:
            return None
        return Account(str(row.id), str(row.user_id), provider, provider_account_id, row.secret)

    async def exists(self, provider: str, provider_account_id: str) -> bool:
        """True when this provider identity has an account.

        Raises:
            StoreUnavailable: the database failed.
        """
        a = self._store.tables.accounts
        async with self._store.read() as conn:
            found = (
                await conn.execute(
                    select(a.c.id).where(
                        (a.c.provider == provider)
                        & (a.c.provider_account_id == provider_account_id)
                    )
                )
            ).first()
        return found is not None

    async def set_secret(self, account_id: str, secret: str | None) -> None:
        """Replace an account's secret (a rehashed or reset password).

        Raises:
            StoreUnavailable: the database failed.
        """
        a = self._store.tables.accounts
        async with self._store.transaction() as conn:
            await conn.execute(update(a).where(a.c.id == account_id).values(secret=secret))

    async def swap_secret(self, account_id: str, expected: str, secret: str) -> bool:
        """Replace an account's secret only if it still is ``expected`` (a concurrent sign-in
        may have rehashed it). Returns whether it was replaced.

        Raises:
            StoreUnavailable: the database failed.
        """
        a = self._store.tables.accounts
        async with self._store.transaction() as conn:
            result = await conn.execute(
                update(a)
                .where((a.c.id == account_id) & (a.c.secret == expected))
                .values(secret=secret)
            )
        return bool(result.rowcount)

    async def has_imported_secrets(self) -> bool:
        """True when some account's secret is an imported (scrypt) hash: every hash authbridge
        writes starts with ``$``.

        Raises:
            StoreUnavailable: the database failed.
        """
        a = self._store.tables.accounts
        async with self._store.read() as conn:
            found = (
                await conn.execute(
                    select(a.c.id)
                    .where(a.c.secret.is_not(None) & a.c.secret.not_like("$%"))
                    .limit(1)
                )
            ).first()
        return found is not None

    async def count_unwrapped_secrets(self) -> int:
        """How many accounts hold imported hashes not yet wrapped (what
        :meth:`imported_secrets` walks through).

        Raises:
            StoreUnavailable: the database failed.
        """
        a = self._store.tables.accounts
        async with self._store.read() as conn:
            found = await conn.execute(
                select(func.count())
                .select_from(a)
                .where(a.c.secret.is_not(None) & a.c.secret.not_like("$%"))
                .where(a.c.secret.not_like("scrypt-argon2id:%"))
            )
        return int(found.scalar_one())

    async def imported_secrets(self, limit: int, after: str = "") -> list[tuple[str, str]]:
        """Up to ``limit`` ``(account id, secret)`` pairs with ids after ``after``, in id order,
        holding imported hashes not yet wrapped (``<salt>:<key>``).

        Raises:
            StoreUnavailable: the database failed.
        """
        a = self._store.tables.accounts
        async with self._store.read() as conn:
            rows = (
                await conn.execute(
                    select(a.c.id, a.c.secret)
                    .where(a.c.secret.is_not(None) & a.c.secret.not_like("$%"))
                    .where(a.c.secret.not_like("scrypt-argon2id:%") & (a.c.id > after))
                    .order_by(a.c.id)
                    .limit(limit)
                )
            ).all()
        return [(str(r.id), str(r.secret)) for r in rows]

    async def for_user(self, user_id: str) -> list[Account]:
        """The user's accounts (sign-in methods), oldest first.

        Raises:
            StoreUnavailable: the database failed.
        """
        a = self._store.tables.accounts
        async with self._store.read() as conn:
            rows = await conn.execute(
                select(a.c.id, a.c.provider, a.c.provider_account_id, a.c.secret)
                .where(a.c.user_id == user_id)
                .order_by(a.c.created_at, a.c.id)
            )
            return [
                Account(str(r.id), user_id, r.provider, r.provider_account_id, r.secret)
                for r in rows
            ]

    async def unlink(self, user_id: str, provider: str) -> int:
        """Delete the user's accounts of ``provider`` (and rows keyed to them, such as stored
        provider tokens) unless that would leave the user with no account. Returns how many
        went: 0 when the user has none of ``provider`` **or** nothing else to sign in with (the
        caller tells the two apart with :meth:`for_user`).

        Raises:
            StoreUnavailable: the database failed.
        """
        a = self._store.tables.accounts
        async with self._store.transaction() as conn:
            # Lock the user's accounts (PostgreSQL), so two unlinks cannot each leave one.
            rows = (
                await conn.execute(
                    select(a.c.id, a.c.provider).where(a.c.user_id == user_id).with_for_update()
                )
            ).all()
            mine = [r.id for r in rows if r.provider == provider]
            if not mine or len(mine) == len(rows):
                return 0
            return await delete_with_children(conn, a, a.c.id.in_(mine))

    async def rename(self, user_id: str, provider: str, identifier: str) -> None:
        """Give the user's account of ``provider`` a new identifier (a password account follows
        its user's email).

        Raises:
            StoreUnavailable: the database failed.
        """
        a = self._store.tables.accounts
        async with self._store.transaction() as conn:
            await conn.execute(
                update(a)
                .where((a.c.user_id == user_id) & (a.c.provider == provider))
                .values(provider_account_id=identifier)
            )
