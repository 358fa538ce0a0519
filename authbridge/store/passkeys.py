"""SQL of passkeys: ``auth_passkeys`` (WebAuthn credentials) and ``auth_webauthn_challenges``
(single-use, short-lived ceremony challenges)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update

from .tables import new_id

if TYPE_CHECKING:
    from . import Store

__all__ = ["Challenge", "Passkey", "PasskeyRepository"]


@dataclass(frozen=True, slots=True)
class Passkey:
    """An ``auth_passkeys`` row."""

    id: str
    user_id: str
    credential_id: str
    public_key: str
    sign_count: int
    name: str | None
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Passkey:
        """Build one from a row."""
        return cls(
            row.id,
            row.user_id,
            row.credential_id,
            row.public_key,
            int(row.sign_count),
            row.name,
            row.created_at,
            row.last_used_at,
        )


@dataclass(frozen=True, slots=True)
class Challenge:
    """A consumed ceremony challenge."""

    challenge: str
    user_id: str | None


class PasskeyRepository:
    """Queries on the passkey tables."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def add_challenge(
        self, purpose: str, challenge: str, user_id: str | None, now: datetime, expires: datetime
    ) -> str:
        """Store a challenge; returns its id. Expired challenges are swept on the way.

        Raises:
            StoreUnavailable: the database failed.
        """
        c = self._store.tables.webauthn_challenges
        challenge_id = new_id()
        async with self._store.transaction() as conn:
            await conn.execute(delete(c).where(c.c.expires_at <= now))
            await conn.execute(
                insert(c).values(
                    id=challenge_id,
                    created_at=now,
                    user_id=user_id,
                    purpose=purpose,
                    challenge=challenge,
                    expires_at=expires,
                )
            )
        return challenge_id

    async def take_challenge(
        self, challenge_id: str, purpose: str, now: datetime
    ) -> Challenge | None:
        """Consume a live challenge of ``purpose`` (single use: one caller gets it).

        Raises:
            StoreUnavailable: the database failed.
        """
        c = self._store.tables.webauthn_challenges
        async with self._store.transaction() as conn:
            row = (
                await conn.execute(
                    select(c.c.challenge, c.c.user_id, c.c.expires_at, c.c.purpose).where(
                        c.c.id == challenge_id
                    )
                )
            ).one_or_none()
            if row is None:
                return None
            done = await conn.execute(delete(c).where(c.c.id == challenge_id))
        if done.rowcount != 1 or row.purpose != purpose or row.expires_at <= now:
            return None
        return Challenge(row.challenge, row.user_id)

    async def delete_expired_challenges(self, now: datetime, batch_size: int = 1000) -> int:
        """Delete up to ``batch_size`` challenges that expired by ``now`` (never used: a used
        one is already gone). Returns how many (``Auth.cleanup``).

        Raises:
            StoreUnavailable: the database failed.
        """
        c = self._store.tables.webauthn_challenges
        expired = select(c.c.id).where(c.c.expires_at <= now).limit(batch_size)
        async with self._store.transaction() as conn:
            done = await conn.execute(delete(c).where(c.c.id.in_(expired.scalar_subquery())))
        return int(done.rowcount)

    async def add(
        self,
        *,
        user_id: str,
        credential_id: str,
        public_key: str,
        sign_count: int,
        name: str | None,
        transports: str | None,
        backed_up: bool,
        now: datetime,
    ) -> Passkey | None:
        """Store a new passkey; ``None`` when the credential is already registered.

        Raises:
            StoreUnavailable: the database failed.
        """
        p = self._store.tables.passkeys
        passkey_id = new_id()
        async with self._store.transaction() as conn:
            taken = (
                await conn.execute(select(p.c.id).where(p.c.credential_id == credential_id))
            ).first()
            if taken is not None:
                return None
            await conn.execute(
                insert(p).values(
                    id=passkey_id,
                    created_at=now,
                    user_id=user_id,
                    credential_id=credential_id,
                    public_key=public_key,
                    sign_count=sign_count,
                    name=name,
                    transports=transports,
                    backed_up=backed_up,
                )
            )
        return Passkey(passkey_id, user_id, credential_id, public_key, sign_count, name, now, None)

    async def by_credential(self, credential_id: str) -> Passkey | None:
        """The passkey with this credential id.

        Raises:
            StoreUnavailable: the database failed.
        """
        p = self._store.tables.passkeys
        async with self._store.read() as conn:
            row = (
                await conn.execute(select(p).where(p.c.credential_id == credential_id))
            ).one_or_none()
        return None if row is None else Passkey.from_row(row)

    async def of_user(self, user_id: str) -> list[Passkey]:
        """The user's passkeys, oldest first.

        Raises:
            StoreUnavailable: the database failed.
        """
        p = self._store.tables.passkeys
        async with self._store.read() as conn:
            rows = (
                await conn.execute(
                    select(p).where(p.c.user_id == user_id).order_by(p.c.created_at, p.c.id)
                )
            ).all()
        return [Passkey.from_row(r) for r in rows]

    async def record_use(self, passkey_id: str, old: int, new: int, now: datetime) -> bool:
        """Move the sign counter from ``old`` to ``new`` (compare-and-set; counters of 0 mean
        the authenticator keeps none). False when another sign-in moved it first.

        Raises:
            StoreUnavailable: the database failed.
        """
        p = self._store.tables.passkeys
        async with self._store.transaction() as conn:
            done = await conn.execute(
                update(p)
                .where(p.c.id == passkey_id)
                .where(p.c.sign_count == old)
                .values(sign_count=new, last_used_at=now)
            )
        return bool(done.rowcount == 1)

    async def remove(self, user_id: str, passkey_id: str) -> bool:
        """Delete one of the user's passkeys. False when it is not theirs or unknown.

        Raises:
            StoreUnavailable: the database failed.
        """
        p = self._store.tables.passkeys
        async with self._store.transaction() as conn:
            done = await conn.execute(
                delete(p).where((p.c.id == passkey_id) & (p.c.user_id == user_id))
            )
        return bool(done.rowcount == 1)
