"""Work off the request path: the revocation poll (and, on PostgreSQL, the listener that applies
revocations at once), and the cleanup of expired rows that runs now and then beside it or from
``authbridge cleanup``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from .config import AuthConfig
from .revocations import RevocationListener, RevocationSet
from .sessions import SessionManager
from .store import Store
from .store import sessions as repo
from .store.batches import delete_in_batches
from .store.codes import VerificationCodes
from .store.factors import cleanup_second_factors
from .store.users import UserRepository

__all__ = [
    "OPPORTUNISTIC_CLEANUP_EVERY",
    "BackgroundTasks",
    "CleanupReport",
    "cleanup",
    "cleanup_all",
    "cleanup_anonymous",
]

logger = logging.getLogger("authbridge")

OPPORTUNISTIC_CLEANUP_EVERY = 600.0
"""Seconds between two cleanups by the background task (the first 10 to 60 s after start)."""


class BackgroundTasks:
    """The revocation poll (every ``revocation_poll_interval``; ``now_and_then`` runs beside it
    every :data:`OPPORTUNISTIC_CLEANUP_EVERY` seconds) and the PostgreSQL revocation listener,
    on the running loop."""

    def __init__(
        self,
        store: Store,
        revocations: RevocationSet,
        *,
        interval: float,
        listen: bool,
        now_and_then: Callable[[], Awaitable[None]],
    ) -> None:
        self._store = store
        self._revocations = revocations
        self._interval = interval
        self._listen = listen
        self._now_and_then = now_and_then
        self._poller: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start whichever task is not running."""
        loop = asyncio.get_running_loop()
        if self._poller is None or self._poller.done():
            self._poller = loop.create_task(self._poll())
        if self._listen and (self._listener is None or self._listener.done()):
            listener = RevocationListener(self._revocations, self._store)
            self._listener = loop.create_task(listener.run())

    async def stop(self) -> None:
        """Cancel the tasks and wait for them."""
        for task in (self._poller, self._listener):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._poller = self._listener = None

    async def _poll(self) -> None:
        next_cleanup = asyncio.get_running_loop().time() + random.uniform(10, 60)
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._revocations.poll(self._store)
                if asyncio.get_running_loop().time() >= next_cleanup:
                    next_cleanup += OPPORTUNISTIC_CLEANUP_EVERY
                    await self._now_and_then()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("authbridge background poll failed; retrying")


@dataclass(frozen=True, slots=True)
class CleanupReport:
    """How many rows :func:`cleanup` removed, per table."""

    sessions: int = 0
    refresh_tokens: int = 0
    revocations: int = 0
    rate_limits: int = 0
    anonymous_users: int = 0
    """Anonymous users idle past ``anonymous_idle`` (:meth:`Auth.cleanup`)."""
    passkey_challenges: int = 0
    """Expired passkey ceremony challenges (:meth:`Auth.cleanup`)."""
    totp_enrolments: int = 0
    """TOTP enrolments left unconfirmed past their hour (:meth:`Auth.cleanup`)."""
    verification_codes: int = 0
    """Email (and SMS) codes and magic links used or expired (:meth:`Auth.cleanup`)."""

    @property
    def total(self) -> int:
        """Rows removed in all."""
        return (
            self.sessions
            + self.refresh_tokens
            + self.revocations
            + self.rate_limits
            + self.anonymous_users
            + self.passkey_challenges
            + self.totp_enrolments
            + self.verification_codes
        )


async def cleanup(
    store: Store,
    now: datetime,
    *,
    rate_limit_period: timedelta,
    refresh_reuse_window: timedelta,
    batch_size: int = 1000,
    max_batches: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> CleanupReport:
    """Delete expired sessions, refresh tokens, revocations and full rate-limit buckets, and
    erase sealed refresh-token secrets whose reuse window has closed.

    Works in batches of ``batch_size`` rows, each its own short transaction, so it is safe to run
    while the application serves traffic (``authbridge cleanup``, or opportunistically).
    ``progress`` is called after each batch with the rows deleted so far.

    Raises:
        StoreUnavailable: the database failed.
    """
    counts = await repo.cleanup_batches(
        store,
        now=now,
        sealed_before=now - refresh_reuse_window,
        idle_since=now - rate_limit_period,
        batch_size=batch_size,
        max_batches=max_batches,
        progress=progress,
    )
    return CleanupReport(**counts)


async def cleanup_all(
    store: Store,
    config: AuthConfig,
    now: datetime,
    *,
    codes: VerificationCodes,
    anonymous: Callable[[], Awaitable[int]],
    batch_size: int = 1000,
    max_batches: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> CleanupReport:
    """Delete used or expired codes, sessions, tokens, revocations and idle rate-limit rows, in
    batches of ``batch_size`` (at most ``max_batches`` of each kind), then run ``anonymous``
    (idle anonymous users; see :meth:`Auth.cleanup <authbridge.Auth.cleanup>`). ``progress``
    is called after each batch with the rows deleted so far.

    Raises:
        StoreUnavailable: the database failed.
    """
    codes_deleted = await codes.delete_expired(
        batch_size, max_batches=max_batches, progress=progress
    )
    report = await cleanup(
        store,
        now,
        rate_limit_period=config.rate_limit.period,
        refresh_reuse_window=config.refresh_reuse_window,
        batch_size=batch_size,
        max_batches=max_batches,
        progress=None if progress is None else lambda done: progress(codes_deleted + done),
    )
    factors = await cleanup_second_factors(
        store, now, batch_size=batch_size, max_batches=max_batches
    )
    report = dataclasses.replace(
        report,
        anonymous_users=await anonymous(),
        verification_codes=codes_deleted,
        **factors,
    )
    if progress is not None:
        progress(report.total)
    return report


async def cleanup_anonymous(
    users: UserRepository,
    sessions: SessionManager,
    idle_since: datetime,
    *,
    batch_size: int = 1000,
    max_batches: int | None = None,
) -> int:
    """Delete anonymous users with no session active since ``idle_since`` (their sessions end
    first, so their tokens are refused). Returns how many.

    Raises:
        StoreUnavailable: the database failed.
    """
    removed = 0

    async def batch() -> int:
        nonlocal removed
        idle = await users.idle_anonymous(idle_since, batch_size)
        for user_id in idle:
            await sessions.revoke_user_sessions(user_id)
            removed += await users.delete(user_id)
        # Found, not removed: a user deleted meanwhile (by a concurrent run) does not make a
        # full batch look short and end the run early.
        return len(idle)

    await delete_in_batches(batch, batch_size, max_batches=max_batches)
    return removed
