"""The ``auth_verification_codes`` repository: one-time codes and magic-link tokens.

Only hashes are stored. One live code per (identifier, purpose): saving a new one replaces the row,
so the previous code and link stop working. A code is used at most once, even when several
requests (several instances) present it at the same moment: the winner is the one whose
conditional ``UPDATE ... WHERE attempts_left > 0`` matched the row. Wrong codes spend the row's
budget with the same kind of conditional update; an exhausted code is void.

``attempts_left`` encodes the state: ``> 0`` live, ``0`` exhausted by wrong tries, ``-1`` used.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..errors import InvalidCode, TooManyAttempts
from . import Store
from .batches import delete_in_batches
from .tables import new_id

__all__ = ["CODE_DIGITS", "IssuedCode", "VerificationCodes", "VerifiedCode"]

CODE_DIGITS = 8
_USED = -1
_DUMMY_ID = "x" * 22


def _hash(row_id: str, secret: str) -> str:
    # Salted by the row id: no precomputed table of the 10^8 codes works across rows.
    return hashlib.sha256(f"{row_id}:{secret}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedCode:
    """A new code: give ``code`` and ``link_token`` to the user, never store them."""

    code: str
    """Eight digits."""
    link_token: str
    """``<row id>.<secret>`` for a magic link."""
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class VerifiedCode:
    """What a consumed code was issued for."""

    identifier: str
    purpose: str
    user_id: str | None


class VerificationCodes:
    """Issue and check one-time codes (see the module docstring).

    Args:
        store: the database.
        clock: the time source.
        lifetime: how long a code works.
        attempts: wrong tries allowed per code.
        resend_interval: the ``Retry-After`` of an exhausted code (when a new one may be sent).
    """

    def __init__(
        self,
        store: Store,
        clock: Callable[[], datetime],
        *,
        lifetime: timedelta,
        attempts: int,
        resend_interval: timedelta,
    ) -> None:
        self._store = store
        self._clock = clock
        self.lifetime = lifetime
        self._attempts = attempts
        self._resend_interval = resend_interval

    @staticmethod
    def new_code() -> tuple[str, str, str]:
        """A fresh ``(row id, 8-digit code, link secret)`` (nothing stored yet)."""
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        return new_id(), code, secrets.token_urlsafe(32)

    async def save(
        self,
        purpose: str,
        identifier: str,
        row_id: str,
        code: str,
        link_secret: str | None,
        *,
        user_id: str | None = None,
    ) -> IssuedCode:
        """Store a code (and link) for ``identifier``, replacing any previous one. Call it once
        the message was handed over, so an undelivered code never exists.

        Raises:
            StoreUnavailable: the database failed.
        """
        table = self._store.tables.verification_codes
        now = self._clock()
        values: dict[str, Any] = {
            "id": row_id,
            "created_at": now,
            "user_id": user_id,
            "identifier": identifier,
            "purpose": purpose,
            "code_hash": _hash(row_id, code),
            "link_hash": _hash(row_id, link_secret) if link_secret is not None else None,
            "expires_at": now + self.lifetime,
            "attempts_left": self._attempts,
        }
        dialect = postgresql if self._store.dialect_name == "postgresql" else sqlite
        statement = dialect.insert(table).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.identifier, table.c.purpose],
            set_={k: statement.excluded[k] for k in values if k not in ("identifier", "purpose")},
        )
        async with self._store.transaction() as conn:
            await conn.execute(statement)
        token = f"{row_id}.{link_secret}" if link_secret is not None else ""
        return IssuedCode(code=code, link_token=token, expires_at=values["expires_at"])

    async def verify_code(
        self, purposes: Collection[str], identifier: str, code: str
    ) -> VerifiedCode:
        """Consume the live code of ``identifier`` for one of ``purposes`` if ``code`` matches.

        Raises:
            InvalidCode: wrong, used, replaced or expired (a wrong try spends the budget).
            TooManyAttempts: the code's wrong-try budget is spent; request a new code.
            StoreUnavailable: the database failed.
        """
        table = self._store.tables.verification_codes
        async with self._store.read() as conn:
            rows = (
                await conn.execute(
                    select(table).where(
                        (table.c.identifier == identifier) & table.c.purpose.in_(list(purposes))
                    )
                )
            ).all()
        code = code.strip()
        now = self._clock()
        live = [r for r in rows if r.expires_at > now and r.attempts_left != _USED]
        if not live:
            _hash(_DUMMY_ID, code)  # same work as a real check
            raise InvalidCode()
        row = max(live, key=lambda r: r.created_at)
        if row.attempts_left <= 0:
            raise TooManyAttempts(retry_after=self._retry_after(row.created_at, now))
        if hmac.compare_digest(_hash(row.id, code), row.code_hash):
            return await self._consume(row, table.c.code_hash == row.code_hash, now)
        async with self._store.transaction() as conn:
            await conn.execute(
                update(table)
                .where((table.c.id == row.id) & (table.c.attempts_left > 0))
                .values(attempts_left=table.c.attempts_left - 1)
            )
        raise InvalidCode()

    async def verify_link(self, token: str, purposes: Collection[str]) -> VerifiedCode:
        """Consume the code whose magic link carries ``token``.

        Raises:
            InvalidCode: malformed, wrong, used, replaced or expired.
            TooManyAttempts: the code's budget is spent by wrong tries.
            StoreUnavailable: the database failed.
        """
        row = await self.find_link(token, purposes)
        if row is None:
            raise InvalidCode()
        table = self._store.tables.verification_codes
        now = self._clock()
        if row.attempts_left <= 0:
            raise TooManyAttempts(retry_after=self._retry_after(row.created_at, now))
        return await self._consume(row, table.c.link_hash == row.link_hash, now)

    async def find_link(self, token: str, purposes: Collection[str]) -> Any | None:
        """The live row a link token names, if the token is right; consumes nothing (a link
        scanner's GET must not use the link).

        Raises:
            StoreUnavailable: the database failed.
        """
        row_id, _, secret = token.partition(".")
        if not row_id or not secret or len(token) > 128:
            return None
        table = self._store.tables.verification_codes
        async with self._store.read() as conn:
            row = (await conn.execute(select(table).where(table.c.id == row_id))).one_or_none()
        if row is None or row.link_hash is None or row.purpose not in purposes:
            _hash(_DUMMY_ID, secret)
            return None
        if not hmac.compare_digest(_hash(row.id, secret), row.link_hash):
            return None
        if row.expires_at <= self._clock() or row.attempts_left == _USED:
            return None
        return row

    async def _consume(self, row: Any, matches: Any, now: datetime) -> VerifiedCode:
        table = self._store.tables.verification_codes
        async with self._store.transaction() as conn:
            result = await conn.execute(
                update(table)
                .where(
                    (table.c.id == row.id)
                    & matches
                    & (table.c.attempts_left > 0)
                    & (table.c.expires_at > now)
                )
                .values(attempts_left=_USED)
            )
        if result.rowcount != 1:
            raise InvalidCode()  # another request used it first, or it was just replaced
        return VerifiedCode(identifier=row.identifier, purpose=row.purpose, user_id=row.user_id)

    def _retry_after(self, created_at: datetime, now: datetime) -> float:
        return max(1.0, (created_at + self._resend_interval - now).total_seconds())

    async def discard(self, purpose: str, identifier: str) -> None:
        """Void the live code of ``identifier`` for ``purpose`` (e.g. after a compensating
        rollback).

        Raises:
            StoreUnavailable: the database failed.
        """
        table = self._store.tables.verification_codes
        async with self._store.transaction() as conn:
            await conn.execute(
                delete(table).where(
                    (table.c.identifier == identifier) & (table.c.purpose == purpose)
                )
            )

    async def delete_expired(
        self,
        batch_size: int = 1000,
        *,
        max_batches: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Delete every code expired or used by now, in batches of ``batch_size`` rows (each its
        own short transaction), at most ``max_batches`` batches. Returns how many.

        Args:
            progress: called after each batch with the codes deleted so far.

        Raises:
            StoreUnavailable: the database failed.
        """
        table = self._store.tables.verification_codes
        # Only codes issued by the time the run starts: whatever is issued (or issued and used)
        # meanwhile waits for the next run, so the rows to delete are a set fixed at the start
        # and the loop ends even without max_batches.
        now = self._clock()
        stale = select(table.c.id).where(
            (table.c.created_at <= now)
            & ((table.c.expires_at <= now) | (table.c.attempts_left == _USED))
        )

        async def batch() -> int:
            async with self._store.transaction() as conn:
                result = await conn.execute(
                    delete(table).where(table.c.id.in_(stale.limit(batch_size).scalar_subquery()))
                )
            return int(result.rowcount)

        return await delete_in_batches(
            batch, batch_size, max_batches=max_batches, progress=progress
        )
