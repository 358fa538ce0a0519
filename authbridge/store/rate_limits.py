"""The ``auth_rate_limits`` table: token buckets shared by every instance.

A bucket holds ``capacity`` attempts and refills continuously over ``period``; the stored level
is the level at ``last_attempt_at`` and the refill is computed when read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update

from ..errors import TooManyAttempts
from .dialect import insert_ignoring_conflicts

if TYPE_CHECKING:
    from . import Store

__all__ = ["RateLimitRepository", "refilled_level"]

_EPSILON = 1e-9
"""Float slack: a bucket refilled for exactly ``period / capacity`` must hold one whole attempt,
whatever rounding ``capacity / period * elapsed`` does."""


def refilled_level(
    stored: float, last: datetime, capacity: int, now: datetime, period: timedelta
) -> float:
    """The level of a bucket at ``now``, from its stored level at ``last``."""
    elapsed = max(0.0, (now - last).total_seconds())
    level = min(float(capacity), stored + elapsed * capacity / period.total_seconds())
    # Snap values within rounding error of a whole number onto it (see _EPSILON).
    nearest = round(level)
    return float(nearest) if abs(level - nearest) < _EPSILON else level


class RateLimitRepository:
    """Queries on ``auth_rate_limits``."""

    def __init__(self, store: Store, period: timedelta) -> None:
        self._store = store
        self._period = period

    async def take(self, buckets: Sequence[tuple[str, int]], now: datetime) -> None:
        """Take one attempt from every ``(identifier, capacity)`` bucket, atomically, or none.

        Raises:
            TooManyAttempts: a bucket is empty; ``retry_after`` says when it has one token.
            StoreUnavailable: the database failed.
        """
        table = self._store.tables.rate_limits
        ordered = sorted(buckets)  # one lock order: no deadlocks
        async with self._store.transaction() as conn:
            # One multi-row insert and one locking read, whatever the number of buckets: sign-in
            # storms are bounded by the event loop's share of this work.
            await conn.execute(
                insert_ignoring_conflicts(table, self._store.dialect_name).values(
                    [
                        {
                            "identifier": identifier,
                            "attempts_left": float(capacity),
                            "last_attempt_at": now,
                        }
                        for identifier, capacity in ordered
                    ]
                )
            )
            rows = {
                row.identifier: row
                for row in await conn.execute(
                    select(table.c.identifier, table.c.attempts_left, table.c.last_attempt_at)
                    .where(table.c.identifier.in_([identifier for identifier, _ in ordered]))
                    .order_by(table.c.identifier)
                    .with_for_update()
                )
            }
            levels: list[float] = []
            for identifier, capacity in ordered:
                row = rows[identifier]
                level = refilled_level(
                    row.attempts_left, row.last_attempt_at, capacity, now, self._period
                )
                if level < 1.0:
                    rate = capacity / self._period.total_seconds()
                    raise TooManyAttempts(retry_after=(1.0 - level) / rate)
                levels.append(level)
            for (identifier, _), level in zip(ordered, levels, strict=True):
                await conn.execute(
                    update(table)
                    .where(table.c.identifier == identifier)
                    .values(attempts_left=level - 1.0, last_attempt_at=now)
                )

    async def settle(self, reset: Sequence[str], refund: Sequence[str]) -> None:
        """Forget the ``reset`` buckets (full again) and give each ``refund`` bucket a token.

        Raises:
            StoreUnavailable: the database failed.
        """
        if not reset and not refund:
            return
        table = self._store.tables.rate_limits
        async with self._store.transaction() as conn:
            if reset:
                await conn.execute(delete(table).where(table.c.identifier.in_(list(reset))))
            if refund:
                # Adding to the stored level is the same as adding to the refilled one: the
                # refill is computed from last_attempt_at, and the cap is applied when read.
                await conn.execute(
                    update(table)
                    .where(table.c.identifier.in_(list(refund)))
                    .values(attempts_left=table.c.attempts_left + 1.0)
                )

    async def level(self, identifier: str, capacity: int, now: datetime) -> float:
        """Attempts left in a bucket at ``now``.

        Raises:
            StoreUnavailable: the database failed.
        """
        table = self._store.tables.rate_limits
        async with self._store.read() as conn:
            row = (
                await conn.execute(
                    select(table.c.attempts_left, table.c.last_attempt_at).where(
                        table.c.identifier == identifier
                    )
                )
            ).one_or_none()
        if row is None:
            return float(capacity)
        return refilled_level(row.attempts_left, row.last_attempt_at, capacity, now, self._period)
