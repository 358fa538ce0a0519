"""The ``auth_keys`` table: development signing keys kept in an embedded database."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from ..keys import KeySet, SigningKey
from .dialect import insert_ignoring_conflicts

if TYPE_CHECKING:
    from . import Store

__all__ = ["KeyRepository"]


class KeyRepository:
    """Queries on ``auth_keys``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def load_or_create(
        self, generate: Callable[[], str], now: datetime
    ) -> tuple[KeySet, SigningKey | None]:
        """The stored keys; when there are none, store ``generate()``'s PEM first (instances
        racing here all end up with the one key that won). Returns the keys and the key this
        call created, if any.

        Raises:
            ConfigError: a stored key cannot be loaded.
            StoreUnavailable: the database failed.
        """
        table = self._store.tables.keys
        created: SigningKey | None = None
        async with self._store.transaction() as conn:
            await conn.run_sync(lambda sync: table.create(sync, checkfirst=True))
            rows = (await conn.execute(select(table).order_by(table.c.created_at))).all()
            if not rows:
                pem = generate()
                created = SigningKey.load(pem)
                await conn.execute(
                    insert_ignoring_conflicts(table, self._store.dialect_name).values(
                        kid=created.kid,
                        created_at=now,
                        algorithm=created.algorithm,
                        public_jwk=json.dumps(dict(created.public_jwk)),
                        private_pem=pem,
                    )
                )
                rows = (await conn.execute(select(table).order_by(table.c.created_at))).all()
        keys = [
            SigningKey.load(r.private_pem)
            if r.private_pem
            else SigningKey.from_public_jwk(json.loads(r.public_jwk))
            for r in rows
        ]
        return KeySet(keys), created
