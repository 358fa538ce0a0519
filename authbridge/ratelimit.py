"""Token buckets of failed sign-in attempts, kept in the database so every instance shares them.

A bucket holds ``capacity`` attempts and refills continuously over ``period``. An attempt takes one
token *before* the password is checked (so concurrent guesses cannot overshoot the limit); a
successful sign-in gives the account bucket back in full and returns the client's token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from .errors import TooManyAttempts
from .store import Store, insert_ignoring_conflicts

__all__ = ["Bucket", "RateLimiter"]

_EPSILON = 1e-9
"""Float slack: a bucket refilled for exactly ``period / capacity`` must hold one whole attempt,
whatever rounding ``capacity / period * elapsed`` does."""


@dataclass(frozen=True, slots=True)
class Bucket:
    """One rate-limited identity, e.g. ``Bucket("account:alice@example.com", 10)``."""

    identifier: str
    capacity: int


class RateLimiter:
    """Database-backed token buckets with continuous refill."""

    def __init__(self, store: Store, period: timedelta, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._period = period
        self._clock = clock

    def _level(self, stored: float, last: datetime, capacity: int, now: datetime) -> float:
        elapsed = max(0.0, (now - last).total_seconds())
        level = min(float(capacity), stored + elapsed * capacity / self._period.total_seconds())
        # Snap values within rounding error of a whole number onto it (see _EPSILON).
        nearest = round(level)
        return float(nearest) if abs(level - nearest) < _EPSILON else level

    async def consume(self, buckets: Sequence[Bucket]) -> None:
        """Take one attempt from every bucket, atomically, or none.

        Raises:
            TooManyAttempts: a bucket is empty; ``retry_after`` says when it has one token.
            StoreUnavailable: the database failed.
        """
        table = self._store.tables.rate_limits
        now = self._clock()
        ordered = sorted(buckets, key=lambda b: b.identifier)  # one lock order: no deadlocks
        async with self._store.transaction() as conn:
            # One multi-row insert and one locking read, whatever the number of buckets: sign-in
            # storms are bounded by the event loop's share of this work.
            await conn.execute(
                insert_ignoring_conflicts(table, self._store.dialect_name).values(
                    [
                        {
                            "identifier": bucket.identifier,
                            "attempts_left": float(bucket.capacity),
                            "last_attempt_at": now,
                        }
                        for bucket in ordered
                    ]
                )
            )
            rows = {
                row.identifier: row
                for row in await conn.execute(
                    select(table.c.identifier, table.c.attempts_left, table.c.last_attempt_at)
                    .where(table.c.identifier.in_([b.identifier for b in ordered]))
                    .order_by(table.c.identifier)
                    .with_for_update()
                )
            }
            levels: list[float] = []
            for bucket in ordered:
                row = rows[bucket.identifier]
                level = self._level(row.attempts_left, row.last_attempt_at, bucket.capacity, now)
                if level < 1.0:
                    rate = bucket.capacity / self._period.total_seconds()
                    raise TooManyAttempts(retry_after=(1.0 - level) / rate)
                levels.append(level)
            for bucket, level in zip(ordered, levels, strict=True):
                await conn.execute(
                    update(table)
                    .where(table.c.identifier == bucket.identifier)
                    .values(attempts_left=level - 1.0, last_attempt_at=now)
                )

    async def succeed(self, reset: Bucket, refund: Sequence[Bucket] = ()) -> None:
        """After a successful attempt: empty ``reset`` of failures, give ``refund`` its token back.

        Raises:
            StoreUnavailable: the database failed.
        """
        table = self._store.tables.rate_limits
        async with self._store.transaction() as conn:
            await conn.execute(delete(table).where(table.c.identifier == reset.identifier))
            for bucket in refund:
                # Adding to the stored level is the same as adding to the refilled one: the
                # refill is computed from last_attempt_at, and the cap is applied when read.
                await conn.execute(
                    update(table)
                    .where(table.c.identifier == bucket.identifier)
                    .values(attempts_left=table.c.attempts_left + 1.0)
                )

    async def remaining(self, bucket: Bucket) -> float:
        """Attempts left in ``bucket`` now (for tests and admin tools)."""
        table = self._store.tables.rate_limits
        async with self._store.read() as conn:
            row = (
                await conn.execute(
                    select(table.c.attempts_left, table.c.last_attempt_at).where(
                        table.c.identifier == bucket.identifier
                    )
                )
            ).one_or_none()
        if row is None:
            return float(bucket.capacity)
        return self._level(row.attempts_left, row.last_attempt_at, bucket.capacity, self._clock())
