"""SQL of second factors: ``auth_totp`` (one sealed TOTP secret per user) and
``auth_recovery_codes`` (hashes of single-use recovery codes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .batches import delete_in_batches
from .passkeys import PasskeyRepository
from .tables import new_id

if TYPE_CHECKING:
    from . import Store

__all__ = ["ENROLMENT_LIFETIME", "FactorRepository", "TotpRow", "cleanup_second_factors"]

ENROLMENT_LIFETIME = timedelta(hours=1)
"""How long a TOTP enrolment may wait for its confirming code; older unconfirmed secrets are
void (``totp/confirm`` refuses them, ``Auth.cleanup`` deletes them)."""


@dataclass(frozen=True, slots=True)
class TotpRow:
    """A user's ``auth_totp`` row."""

    sealed_secret: str
    confirmed_at: datetime | None
    last_step: int | None
    created_at: datetime | None = None
    """When the secret was made (an unconfirmed one is void after :data:`ENROLMENT_LIFETIME`)."""

    def stale(self, now: datetime) -> bool:
        """True for an enrolment nobody confirmed within :data:`ENROLMENT_LIFETIME`."""
        return (
            self.confirmed_at is None
            and self.created_at is not None
            and self.created_at <= now - ENROLMENT_LIFETIME
        )


class FactorRepository:
    """Queries on the second-factor tables."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def totp(self, user_id: str) -> TotpRow | None:
        """The user's TOTP row (confirmed or not).

        Raises:
            StoreUnavailable: the database failed.
        """
        t = self._store.tables.totp
        async with self._store.read() as conn:
            row = (
                await conn.execute(
                    select(
                        t.c.sealed_secret, t.c.confirmed_at, t.c.last_step, t.c.created_at
                    ).where(t.c.user_id == user_id)
                )
            ).one_or_none()
        if row is None:
            return None
        return TotpRow(row.sealed_secret, row.confirmed_at, row.last_step, row.created_at)

    async def begin_totp(self, user_id: str, sealed_secret: str, now: datetime) -> bool:
        """Store a new, unconfirmed secret (replacing an unconfirmed one). Returns False when
        the user already has a confirmed secret (nothing changes).

        Raises:
            StoreUnavailable: the database failed.
        """
        t = self._store.tables.totp
        async with self._store.transaction() as conn:
            await conn.execute(
                delete(t).where((t.c.user_id == user_id) & t.c.confirmed_at.is_(None))
            )
            taken = (await conn.execute(select(t.c.user_id).where(t.c.user_id == user_id))).first()
            if taken is not None:
                return False
            await conn.execute(
                insert(t).values(user_id=user_id, created_at=now, sealed_secret=sealed_secret)
            )
        return True

    async def confirm_totp(
        self, user_id: str, step: int, now: datetime, code_hashes: Sequence[str]
    ) -> bool:
        """Confirm the unconfirmed secret (its first accepted step is ``step``) and replace the
        recovery codes. Returns False when there was no unconfirmed secret.

        Raises:
            StoreUnavailable: the database failed.
        """
        t = self._store.tables.totp
        async with self._store.transaction() as conn:
            done = await conn.execute(
                update(t)
                .where((t.c.user_id == user_id) & t.c.confirmed_at.is_(None))
                .values(confirmed_at=now, last_step=step)
            )
            if done.rowcount != 1:
                return False
            await self._replace_codes(conn, user_id, code_hashes, now)
        return True

    async def use_step(self, user_id: str, step: int) -> bool:
        """Accept time step ``step`` for the user's confirmed secret unless this or a later step
        was already accepted (compare-and-set: one winner across instances).

        Raises:
            StoreUnavailable: the database failed.
        """
        t = self._store.tables.totp
        async with self._store.transaction() as conn:
            done = await conn.execute(
                update(t)
                .where(t.c.user_id == user_id)
                .where(t.c.confirmed_at.is_not(None))
                .where(or_(t.c.last_step.is_(None), t.c.last_step < step))
                .values(last_step=step)
            )
        return bool(done.rowcount == 1)

    async def use_recovery_code(self, user_id: str, code_hash: str, now: datetime) -> bool:
        """Mark an unused recovery code of the user used. Returns False for an unknown or used
        code.

        Raises:
            StoreUnavailable: the database failed.
        """
        r = self._store.tables.recovery_codes
        async with self._store.transaction() as conn:
            done = await conn.execute(
                update(r)
                .where((r.c.user_id == user_id) & (r.c.code_hash == code_hash))
                .where(r.c.used_at.is_(None))
                .values(used_at=now)
            )
        return bool(done.rowcount == 1)

    async def replace_recovery_codes(
        self, user_id: str, code_hashes: Sequence[str], now: datetime
    ) -> None:
        """Void every recovery code of the user and store these.

        Raises:
            StoreUnavailable: the database failed.
        """
        async with self._store.transaction() as conn:
            await self._replace_codes(conn, user_id, code_hashes, now)

    async def recovery_codes_left(self, user_id: str) -> int:
        """How many unused recovery codes the user has.

        Raises:
            StoreUnavailable: the database failed.
        """
        r = self._store.tables.recovery_codes
        async with self._store.read() as conn:
            count = await conn.execute(
                select(func.count())
                .select_from(r)
                .where((r.c.user_id == user_id) & r.c.used_at.is_(None))
            )
        return int(count.scalar_one())

    async def disable_totp(self, user_id: str) -> bool:
        """Delete the user's TOTP secret and recovery codes. Returns False when there was none.

        Raises:
            StoreUnavailable: the database failed.
        """
        t, r = self._store.tables.totp, self._store.tables.recovery_codes
        async with self._store.transaction() as conn:
            done = await conn.execute(delete(t).where(t.c.user_id == user_id))
            await conn.execute(delete(r).where(r.c.user_id == user_id))
        return bool(done.rowcount == 1)

    async def delete_stale_enrolments(self, before: datetime, batch_size: int = 1000) -> int:
        """Delete up to ``batch_size`` unconfirmed TOTP secrets created before ``before`` (an
        enrolment nobody finished; ``before`` included). Returns how many (``Auth.cleanup``).

        Raises:
            StoreUnavailable: the database failed.
        """
        t = self._store.tables.totp
        stale = (
            select(t.c.user_id)
            .where(t.c.confirmed_at.is_(None) & (t.c.created_at <= before))
            .limit(batch_size)
        )
        async with self._store.transaction() as conn:
            done = await conn.execute(
                delete(t)
                .where(t.c.user_id.in_(stale.scalar_subquery()))
                .where(t.c.confirmed_at.is_(None))
            )
        return int(done.rowcount)

    async def _replace_codes(
        self, conn: AsyncConnection, user_id: str, code_hashes: Sequence[str], now: datetime
    ) -> None:
        r = self._store.tables.recovery_codes
        await conn.execute(delete(r).where(r.c.user_id == user_id))
        if code_hashes:
            await conn.execute(
                insert(r),
                [
                    {"id": new_id(), "created_at": now, "user_id": user_id, "code_hash": h}
                    for h in code_hashes
                ],
            )


async def cleanup_second_factors(
    store: Store,
    now: datetime,
    *,
    batch_size: int = 1000,
    max_batches: int | None = None,
) -> dict[str, int]:
    """Delete expired passkey ceremony challenges and TOTP enrolments left unconfirmed for
    :data:`ENROLMENT_LIFETIME`, in batches of ``batch_size`` (each its own transaction).
    Returns the counts as :class:`~authbridge.sessions.CleanupReport` fields
    (``passkey_challenges``, ``totp_enrolments``). Pending second-factor sign-ins are signed
    cookies, not rows: nothing to delete.

    Raises:
        StoreUnavailable: the database failed.
    """
    passkeys, factors = PasskeyRepository(store), FactorRepository(store)
    enrolments_before = now - ENROLMENT_LIFETIME
    steps: dict[str, Callable[[], Awaitable[int]]] = {
        "passkey_challenges": lambda: passkeys.delete_expired_challenges(now, batch_size),
        "totp_enrolments": lambda: factors.delete_stale_enrolments(enrolments_before, batch_size),
    }
    return {
        name: await delete_in_batches(step, batch_size, max_batches=max_batches)
        for name, step in steps.items()
    }
