"""The in-process set of revoked sessions, fed from ``auth_revocations``.

Sign-out writes a row; every instance polls for new rows with one indexed query per interval
(independent of traffic and of the number of sessions), so a signed-out session's access tokens are
refused everywhere within about one interval. Rows expire when no token of the session can still be
valid, which keeps both the table and the set small.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select

from .store import Store

__all__ = ["RevocationSet"]

FEED_OVERLAP = timedelta(seconds=10)
"""Re-read this far behind the newest row seen: covers clock skew and late commits."""


class RevocationSet:
    """Session ids whose access tokens must be refused, with when that stops mattering."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._revoked: dict[str, datetime] = {}
        self._newest: datetime | None = None
        self._earliest: datetime | None = None

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._revoked

    def __len__(self) -> int:
        return len(self._revoked)

    def add(self, session_id: str, expires_at: datetime) -> None:
        """Refuse this session's tokens until ``expires_at``."""
        self._revoked[session_id] = max(expires_at, self._revoked.get(session_id, expires_at))
        if self._earliest is None or expires_at < self._earliest:
            self._earliest = expires_at

    def prune(self) -> None:
        """Forget entries whose tokens have all expired (a scan only once one has)."""
        now = self._clock()
        if self._earliest is None or now < self._earliest:
            return
        for session_id in [s for s, exp in self._revoked.items() if exp <= now]:
            del self._revoked[session_id]
        self._earliest = min(self._revoked.values(), default=None)

    async def poll(self, store: Store) -> int:
        """Load revocations newer than the last poll (everything still relevant, the first time).

        Returns the number of rows read.

        Raises:
            StoreUnavailable: the database failed.
        """
        table = store.tables.revocations
        now = self._clock()
        query = select(table.c.session_id, table.c.revoked_at, table.c.expires_at)
        if self._newest is None:
            query = query.where(table.c.expires_at > now)
        else:
            query = query.where(table.c.revoked_at >= self._newest - FEED_OVERLAP)
        async with store.read() as conn:
            rows = (await conn.execute(query)).all()
        for row in rows:
            if row.expires_at > now:
                self.add(row.session_id, row.expires_at)
            if self._newest is None or row.revoked_at > self._newest:
                self._newest = row.revoked_at
        if self._newest is None:
            self._newest = now
        self.prune()
        return len(rows)
