"""The in-process set of revoked sessions, fed from ``auth_revocations``.

Sign-out records a row; every instance reads the rows it has not seen yet by their sequence
number, which the database assigns (never an application clock, so a fast clock or a late commit
cannot hide a row). Reading is one index range scan, polled every interval whatever the traffic.
On PostgreSQL, a revoking transaction also sends a NOTIFY, and each instance LISTENs
(:class:`RevocationListener`): other instances read the feed at once instead of at the next poll.
Polling stays as the fallback, and is the catch-up after a lost listening connection.

Rows, and entries of the set, expire once no access token of the session can still be valid on
any instance (the JWT lifetime plus :data:`REVOCATION_SKEW_MARGIN`), which keeps both small.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, KeysView
from datetime import datetime, timedelta

from .errors import StoreUnavailable
from .store import Store
from .store import revocations as feed

__all__ = ["REVOCATION_SKEW_MARGIN", "RevocationListener", "RevocationSet"]

logger = logging.getLogger("authbridge.revocations")

REVOCATION_SKEW_MARGIN = timedelta(minutes=5)
"""Revocations are kept this long past the JWT lifetime: covers clocks of instances that issue
tokens a little ahead of the instance that recorded the revocation."""


class RevocationSet:
    """Session ids whose access tokens must be refused, with when that stops mattering."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._revoked: dict[str, datetime] = {}
        self._seq = 0
        self._earliest: datetime | None = None

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._revoked

    @property
    def session_ids(self) -> KeysView[str]:
        """A live, read-only view of the revoked session ids: ``in`` on it is a dict lookup with
        no Python call (the verify cache checks it on every request)."""
        return self._revoked.keys()

    def __len__(self) -> int:
        return len(self._revoked)

    @property
    def seq(self) -> int:
        """The highest feed sequence number read so far (0 before the first poll)."""
        return self._seq

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
        """Load the feed rows after the last one read (every row, the first time).

        Returns the number of rows read.

        Raises:
            StoreUnavailable: the database failed.
        """
        async with store.read() as conn:
            rows = await feed.read_since(conn, store.tables, self._seq)
        now = self._clock()
        for row in rows:
            if row.expires_at > now:
                self.add(row.session_id, row.expires_at)
            # Concurrent polls may finish out of order: the cursor only moves forward.
            self._seq = max(self._seq, row.seq)
        self.prune()
        return len(rows)


class RevocationListener:
    """Reads the feed as soon as another instance records a revocation (PostgreSQL
    LISTEN/NOTIFY), reconnecting after ``retry_delay`` when the connection is lost.

    Args:
        revocations: the set to update.
        store: the database (PostgreSQL).
        retry_delay: seconds between reconnection attempts.
    """

    def __init__(self, revocations: RevocationSet, store: Store, retry_delay: float = 1.0) -> None:
        self._revocations = revocations
        self._store = store
        self._retry_delay = retry_delay
        self._pending = False
        self._reader: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        """Set while the listening connection is up (tests wait on it)."""

    async def run(self) -> None:
        """Listen until cancelled."""
        while True:
            try:
                async with feed.listen(self._store, self._wake) as lost:
                    self.connected.set()
                    # Catch up on what was recorded while not listening.
                    self._wake()
                    await lost.wait()
                logger.warning("revocation listener lost its connection; reconnecting")
            except asyncio.CancelledError:
                raise
            except StoreUnavailable:
                pass  # logged by the store; polling covers the gap
            except Exception:
                logger.exception("revocation listener failed; reconnecting")
            finally:
                self.connected.clear()
                if self._reader is not None and not self._reader.done():
                    self._reader.cancel()
            await asyncio.sleep(self._retry_delay)

    def _wake(self) -> None:
        # Notifications arriving while a read runs make it read once more (that read may have
        # started before their commit), so none is lost and bursts cost one extra read.
        self._pending = True
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        while self._pending:
            self._pending = False
            try:
                await self._revocations.poll(self._store)
            except StoreUnavailable:
                return  # the poller retries
