"""The ``users`` table: a user and their first account, created together."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from ..errors import AccountExists
from .tables import new_id

if TYPE_CHECKING:
    from . import Store

__all__ = ["User", "UserRepository"]


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
        t = self._store.tables
        user_id = new_id()
        try:
            async with self._store.transaction() as conn:
                await conn.execute(
                    insert(t.users).values(
                        id=user_id, created_at=now, email=email, is_anonymous=is_anonymous
                    )
                )
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
