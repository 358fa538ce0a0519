"""The ``users`` table: a user and their first account, created together."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, exists, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import AccountExists
from .cascade import delete_with_children, move_user_rows, user_keyed_columns
from .tables import new_id

if TYPE_CHECKING:
    from . import Store

__all__ = ["User", "UserRepository"]

_PROFILE = ("email", "email_verified_at", "phone", "phone_verified_at", "name", "image")
"""Columns an upgraded anonymous user takes over from the identity it signed up with."""


@dataclass(frozen=True, slots=True)
class User:
    """A ``users`` row. ``data`` holds every column, including ones the app added."""

    id: str
    email: str | None
    name: str | None
    image: str | None
    is_anonymous: bool
    created_at: datetime
    data: Mapping[str, Any]


class UserRepository:
    """Queries on ``users``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, user_id: str) -> User | None:
        """The user with this id (one query).

        Raises:
            StoreUnavailable: the database failed.
        """
        users = self._store.tables.users
        async with self._store.read() as conn:
            row = (await conn.execute(select(users).where(users.c.id == user_id))).one_or_none()
        if row is None:
            return None
        data = dict(row._mapping)
        return User(
            id=data["id"],
            email=data["email"],
            name=data["name"],
            image=data["image"],
            is_anonymous=bool(data["is_anonymous"]),
            created_at=data["created_at"],
            data=data,
        )

    async def id_by_email(self, email: str) -> str | None:
        """The id of the user with this (normalised) email.

        Raises:
            StoreUnavailable: the database failed.
        """
        users = self._store.tables.users
        async with self._store.read() as conn:
            found = (
                await conn.execute(select(users.c.id).where(users.c.email == email))
            ).scalar_one_or_none()
        return None if found is None else str(found)

    async def create_with_account(
        self,
        *,
        now: datetime,
        email: str | None,
        provider: str,
        provider_account_id: str,
        secret: str | None = None,
        is_anonymous: bool = False,
    ) -> str:
        """Create a user and their first account in one transaction. Returns the user id.

        Raises:
            AccountExists: the email or the provider identity is taken.
            StoreUnavailable: the database failed.
        """
        return await self.create(
            now=now,
            email=email,
            is_anonymous=is_anonymous,
            account=(provider, provider_account_id, secret),
        )

    async def create(
        self,
        *,
        now: datetime,
        email: str | None,
        is_anonymous: bool = False,
        columns: Mapping[str, Any] | None = None,
        account: tuple[str, str, str | None] | None = None,
    ) -> str:
        """Create a user (``columns``: more of its columns, the app's own included) and, with
        ``account = (provider, provider_account_id, secret)``, its first account, in one
        transaction. Returns the user id.

        Raises:
            ValueError: ``columns`` names a column ``users`` does not have.
            AccountExists: the email or the provider identity is taken.
            StoreUnavailable: the database failed.
        """
        t = self._store.tables
        unknown = sorted(set(columns or ()) - set(t.users.c.keys()))
        if unknown:
            raise ValueError(f"users has no column {', '.join(unknown)}")
        user_id = new_id()
        try:
            async with self._store.transaction() as conn:
                await conn.execute(
                    insert(t.users).values(
                        id=user_id,
                        created_at=now,
                        email=email,
                        is_anonymous=is_anonymous,
                        **(columns or {}),
                    )
                )
                if account is not None:
                    provider, provider_account_id, secret = account
                    await conn.execute(
                        insert(t.accounts).values(
                            id=new_id(),
                            created_at=now,
                            user_id=user_id,
                            provider=provider,
                            provider_account_id=provider_account_id,
                            secret=secret,
                        )
                    )
        except IntegrityError as exc:
            raise AccountExists() from exc
        return user_id

    async def create_anonymous(self, *, now: datetime) -> str:
        """Create an anonymous user (no account, no email). Returns its id.

        Raises:
            StoreUnavailable: the database failed.
        """
        user_id = new_id()
        async with self._store.transaction() as conn:
            await conn.execute(
                insert(self._store.tables.users).values(
                    id=user_id, created_at=now, is_anonymous=True
                )
            )
        return user_id

    async def is_anonymous(self, user_id: str) -> bool:
        """True when this user exists and is anonymous.

        Raises:
            StoreUnavailable: the database failed.
        """
        users = self._store.tables.users
        async with self._store.read() as conn:
            found = (
                await conn.execute(select(users.c.is_anonymous).where(users.c.id == user_id))
            ).scalar_one_or_none()
        return bool(found)

    async def upgrade_anonymous(self, anonymous_id: str, source_id: str) -> bool:
        """Fold the user ``source_id`` (just created by a sign-up) into the anonymous user
        ``anonymous_id``: its accounts and every row keyed to it move over, its email and profile
        are copied, it is deleted, and ``anonymous_id`` is no longer anonymous. The app's rows
        keep pointing at ``anonymous_id``. Returns False (changing nothing) when
        ``anonymous_id`` is not an anonymous user any more.

        Raises:
            StoreUnavailable: the database failed.
        """
        users = self._store.tables.users
        async with self._store.transaction() as conn:
            anonymous = (
                await conn.execute(
                    select(users.c.id).where(
                        (users.c.id == anonymous_id) & users.c.is_anonymous.is_(True)
                    )
                )
            ).first()
            source = (
                await conn.execute(select(users).where(users.c.id == source_id))
            ).one_or_none()
            if anonymous is None or source is None or source_id == anonymous_id:
                return False
            profile = {name: source._mapping[name] for name in _PROFILE}
            # The email is unique: free it before the anonymous user takes it.
            await conn.execute(
                update(users).where(users.c.id == source_id).values(email=None, convex_id=None)
            )
            await move_user_rows(conn, users, source_id, anonymous_id)
            await conn.execute(delete(users).where(users.c.id == source_id))
            await conn.execute(
                update(users)
                .where(users.c.id == anonymous_id)
                .values(is_anonymous=False, **profile)
            )
        return True

    async def clear_anonymous(self, user_id: str) -> None:
        """Mark a user as no longer anonymous (a sign-in method was attached to it directly).

        Raises:
            StoreUnavailable: the database failed.
        """
        users = self._store.tables.users
        async with self._store.transaction() as conn:
            await conn.execute(
                update(users).where(users.c.id == user_id).values(is_anonymous=False)
            )

    async def set_email(self, user_id: str, email: str, *, verified_at: datetime | None) -> None:
        """Replace a user's email.

        Raises:
            AccountExists: another user has this email.
            StoreUnavailable: the database failed.
        """
        users = self._store.tables.users
        try:
            async with self._store.transaction() as conn:
                await conn.execute(
                    update(users)
                    .where(users.c.id == user_id)
                    .values(email=email, email_verified_at=verified_at)
                )
        except IntegrityError as exc:
            raise AccountExists() from exc

    async def delete(self, user_id: str) -> bool:
        """Delete a user and every row keyed to it: accounts, sessions and their refresh tokens,
        codes, and the app's rows (foreign keys to ``users.id`` or a ``user_id`` column).
        Returns whether the user existed. End the user's sessions first (so their access tokens
        are refused): deleting rows records no revocation.

        Raises:
            StoreUnavailable: the database failed.
        """
        t = self._store.tables
        users = t.users
        async with self._store.transaction() as conn:
            contacts = (
                await conn.execute(
                    select(users.c.email, users.c.phone).where(users.c.id == user_id)
                )
            ).one_or_none()
            if contacts is not None:
                # Codes sent to the user's address or number (a sign-in code asked for by
                # address holds no user id).
                addresses = [c for c in contacts if c]
                codes = t.verification_codes
                await conn.execute(delete(codes).where(codes.c.identifier.in_(addresses)))
            for column in user_keyed_columns(users):
                table = self._store.tables.metadata.tables[column.table.name]
                await delete_with_children(conn, table, column == user_id)
            deleted = await delete_with_children(conn, users, users.c.id == user_id)
        return deleted > 0

    async def idle_anonymous(self, before: datetime, limit: int) -> list[str]:
        """Up to ``limit`` anonymous users created before ``before`` with no session active
        since then.

        Raises:
            StoreUnavailable: the database failed.
        """
        t = self._store.tables
        s = t.sessions
        active = exists().where((s.c.user_id == t.users.c.id) & (s.c.last_active_at >= before))
        async with self._store.read() as conn:
            rows = await conn.execute(
                select(t.users.c.id)
                .where(t.users.c.is_anonymous.is_(True) & (t.users.c.created_at < before))
                .where(~active)
                .limit(limit)
            )
            return [str(r.id) for r in rows]
