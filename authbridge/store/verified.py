"""User and account rows touched by code-based flows (email / phone sign-in, password reset,
email verification). The only SQL of those flows lives here."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import StoreUnavailable
from .tables import new_id

if TYPE_CHECKING:
    from . import Store

__all__ = ["Contact", "ContactRepository"]

logger = logging.getLogger("authbridge.store")

Contact = Literal["email", "phone"]
"""Which address a code was sent to."""


class ContactRepository:
    """Queries on ``users`` / ``auth_accounts`` for code-based flows."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def user_by_contact(self, kind: Contact, value: str) -> tuple[str, bool] | None:
        """``(user id, verified?)`` of the user with this email / phone, if any.

        Raises:
            StoreUnavailable: the database failed.
        """
        users = self._store.tables.users
        column, verified = (
            (users.c.email, users.c.email_verified_at)
            if kind == "email"
            else (users.c.phone, users.c.phone_verified_at)
        )
        async with self._store.read() as conn:
            row = (
                await conn.execute(
                    select(users.c.id, verified.label("verified_at"))
                    .where(column == value)
                    .order_by(users.c.created_at)
                    .limit(1)
                )
            ).one_or_none()
        return None if row is None else (str(row.id), row.verified_at is not None)

    async def ensure_contact_user(
        self, kind: Contact, value: str, provider: str, now: datetime
    ) -> tuple[str, bool]:
        """The user owning this (just verified) email / phone, created if missing, with the
        address marked verified and an ``auth_accounts`` row for ``provider``. Two concurrent
        first sign-ins of one new address end with one user. Returns ``(user id, claimed)``:
        ``claimed`` is True when an existing user's email was unverified until now. Whoever
        created that user never proved they own the address, so their password is cleared in the
        same transaction (the owner can set one with a reset); the caller ends their sessions.

        Raises:
            StoreUnavailable: the database failed, or other writers changed this address's user
                under each of three attempts (a later attempt may succeed).
        """
        users, accounts = self._store.tables.users, self._store.tables.accounts
        failure: IntegrityError | None = None
        for _ in range(3):
            found = await self.user_by_contact(kind, value)
            try:
                async with self._store.transaction() as conn:
                    if found is None:
                        user_id = new_id()
                        fields = (
                            {"email": value, "email_verified_at": now}
                            if kind == "email"
                            else {"phone": value, "phone_verified_at": now}
                        )
                        await conn.execute(
                            insert(users).values(
                                id=user_id, created_at=now, is_anonymous=False, **fields
                            )
                        )
                    else:
                        user_id, verified = found
                        await self._mark(conn, kind, user_id, now)
                        if not verified and kind == "email":
                            await conn.execute(
                                update(accounts)
                                .where(
                                    (accounts.c.user_id == user_id)
                                    & (accounts.c.provider == "password")
                                )
                                .values(secret=None)
                            )
                    has_account = (
                        await conn.execute(
                            select(accounts.c.id).where(
                                (accounts.c.provider == provider)
                                & (accounts.c.provider_account_id == value)
                            )
                        )
                    ).first()
                    if has_account is None:
                        await conn.execute(
                            insert(accounts).values(
                                id=new_id(),
                                created_at=now,
                                user_id=user_id,
                                provider=provider,
                                provider_account_id=value,
                            )
                        )
                return user_id, kind == "email" and found is not None and not found[1]
            except IntegrityError as exc:
                failure = exc  # a concurrent first sign-in created the user or account: reuse it
        # Not a constraint the caller broke: the rows kept changing (concurrent sign-ups and
        # deletions of this address). Answered like a busy database, never as a crash.
        logger.warning("a verified %s could not be claimed: it changed under three attempts", kind)
        raise StoreUnavailable("the address changed under every attempt to claim it") from failure

    async def _mark(
        self, conn: AsyncConnection, kind: Contact, user_id: str, now: datetime
    ) -> None:
        users = self._store.tables.users
        column = users.c.email_verified_at if kind == "email" else users.c.phone_verified_at
        await conn.execute(
            update(users).where((users.c.id == user_id) & column.is_(None)).values({column: now})
        )

    async def mark_verified(self, kind: Contact, user_id: str, now: datetime) -> None:
        """Set ``email_verified_at`` / ``phone_verified_at`` if not set yet.

        Raises:
            StoreUnavailable: the database failed.
        """
        async with self._store.transaction() as conn:
            await self._mark(conn, kind, user_id, now)

    async def password_account(self, email: str) -> tuple[str, bool] | None:
        """``(user id, email verified?)`` of the password account for ``email``, if any.

        Raises:
            StoreUnavailable: the database failed.
        """
        users, accounts = self._store.tables.users, self._store.tables.accounts
        async with self._store.read() as conn:
            row = (
                await conn.execute(
                    select(accounts.c.user_id, users.c.email_verified_at)
                    .join(users, users.c.id == accounts.c.user_id)
                    .where(
                        (accounts.c.provider == "password")
                        & (accounts.c.provider_account_id == email)
                    )
                )
            ).one_or_none()
        return None if row is None else (str(row.user_id), row.email_verified_at is not None)

    async def replace_password(self, user_id: str, email: str, secret: str, now: datetime) -> bool:
        """Store a new password hash on the user's password account and mark the email verified
        (the reset code was read from that mailbox). Returns False if the account is gone.

        Raises:
            StoreUnavailable: the database failed.
        """
        accounts = self._store.tables.accounts
        async with self._store.transaction() as conn:
            result = await conn.execute(
                update(accounts)
                .where(
                    (accounts.c.user_id == user_id)
                    & (accounts.c.provider == "password")
                    & (accounts.c.provider_account_id == email)
                )
                .values(secret=secret)
            )
            if result.rowcount != 1:
                return False
            await self._mark(conn, "email", user_id, now)
        return True

    async def delete_user(self, user_id: str) -> None:
        """Delete a user and their accounts (undoing a sign-up whose verification message could
        not be sent).

        Raises:
            StoreUnavailable: the database failed.
        """
        users, accounts = self._store.tables.users, self._store.tables.accounts
        codes = self._store.tables.verification_codes
        async with self._store.transaction() as conn:
            # SQLite enforces ON DELETE CASCADE only with foreign keys on: children first.
            await conn.execute(delete(codes).where(codes.c.user_id == user_id))
            await conn.execute(delete(accounts).where(accounts.c.user_id == user_id))
            await conn.execute(delete(users).where(users.c.id == user_id))
