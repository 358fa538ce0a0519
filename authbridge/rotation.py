"""Refresh-token rotation: the decision a refresh makes, atomic across instances.

Refresh tokens are ``<token_id>.<secret>`` with a random secret; only ``sha256(secret)`` is
stored. Rotation follows Convex Auth, made atomic across instances (the token row is locked for
the whole decision) and strict about reuse:

* first use of a token → a child token with a fresh random secret;
* a used token presented again within the reuse window of its first use → that same child (a lost
  response converges; no new branch). The child's secret is kept sealed (AES-GCM, key derived
  from the signing keys) only for this window, then erased;
* a used token presented after the window → reuse detected, whatever its children's state: the
  caller ends the session and all its tokens, records a revocation, raises
  :class:`~authbridge.errors.RefreshTokenReused`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ._sealing import SecretSealer
from .errors import InvalidRefreshToken
from .store import Store, new_id
from .store import sessions as repo

__all__ = ["Rotation", "Rotator", "hash_secret", "new_refresh_token", "split_amr", "split_token"]

logger = logging.getLogger("authbridge.sessions")

_TOKEN_RE = re.compile(r"^([A-Za-z0-9_-]{16,64})\.([A-Za-z0-9_-]{32,128})$")


def hash_secret(secret: str) -> str:
    """What is stored of a refresh token's secret."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def new_refresh_token() -> tuple[str, str]:
    """A new ``(token_id, secret)``."""
    return new_id(), secrets.token_urlsafe(32)


def split_token(refresh_token: str) -> tuple[str, str] | None:
    """``(token_id, secret)`` of a well-formed refresh token, else ``None``."""
    match = _TOKEN_RE.match(refresh_token)
    return None if match is None else (match.group(1), match.group(2))


def split_amr(stored: str | None) -> tuple[str, ...]:
    """The ``amr`` list of a session row (stored space-separated)."""
    return tuple(stored.split()) if stored else ()


@dataclass(frozen=True, slots=True)
class Rotation:
    """What a refresh decided."""

    user_id: str
    session_id: str
    session_expires_at: datetime
    refresh_token: str | None
    """The token to hand out (``None`` when ``reused``)."""
    reused: bool = False
    """A used token came back after the reuse window: end the session."""
    auth_time: datetime | None = None
    amr: tuple[str, ...] = ()


class Rotator:
    """Rotates refresh tokens (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        sealer: SecretSealer,
        *,
        reuse_window: timedelta,
        inactive_duration: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._sealer = sealer
        self._window = reuse_window
        self._inactive = inactive_duration
        self._clock = clock

    async def rotate(self, refresh_token: str) -> Rotation:
        """Decide what ``refresh_token`` gets, with its row locked.

        Raises:
            InvalidRefreshToken: malformed, unknown, wrong secret, expired, or session ended.
            StoreUnavailable: the database failed.
        """
        parts = split_token(refresh_token)
        if parts is None:
            raise InvalidRefreshToken("malformed refresh token")
        token_id, secret = parts
        now = self._clock()
        async with repo.locked_token(self._store, token_id) as locked:
            return await self._decide(locked, secret, now)

    async def _decide(self, locked: repo.LockedToken, secret: str, now: datetime) -> Rotation:
        row = locked.row
        # Compare even when the row is missing, so both paths cost the same.
        expected = row.token_hash if row is not None else "0" * 64
        if not hmac.compare_digest(expected, hash_secret(secret)) or row is None:
            raise InvalidRefreshToken("unknown refresh token")
        if now >= row.session_expires_at:
            raise InvalidRefreshToken("session expired")
        # Expiry comes before the reuse check (as in Convex): a token past its inactivity limit
        # is simply invalid, used or not, rather than a false "reuse detected" alarm.
        if now >= row.expires_at:
            raise InvalidRefreshToken("refresh token expired (inactive session)")

        def rotation(token: str | None, *, reused: bool = False) -> Rotation:
            return Rotation(
                row.user_id,
                row.session_id,
                row.session_expires_at,
                token,
                reused,
                row.auth_time,
                split_amr(row.amr),
            )

        if row.first_used_at is None:
            await locked.mark_used(now, now - self._window)
            return rotation(await self._new_child(locked, row, now))
        if now >= row.first_used_at + self._window:
            # Whatever happened to its children: a used token after the window is a replay.
            return rotation(None, reused=True)
        child = await locked.child()
        child_secret = (
            self._sealer.open(child.id, child.sealed_secret)
            if child is not None and child.sealed_secret is not None
            else None
        )
        if child is None or child_secret is None:
            # Only if the signing keys changed within the window: refuse rather than branch.
            logger.warning("refresh token retried but its child cannot be recovered")
            raise InvalidRefreshToken("refresh token already used")
        return rotation(f"{child.id}.{child_secret}")

    async def _new_child(self, locked: repo.LockedToken, row: Any, now: datetime) -> str:
        child_id, child_secret = new_refresh_token()
        await locked.add_child(
            child_id=child_id,
            session_id=row.session_id,
            token_hash=hash_secret(child_secret),
            expires_at=min(now + self._inactive, row.session_expires_at),
            now=now,
            sealed_secret=self._sealer.seal(child_id, child_secret),
        )
        return f"{child_id}.{child_secret}"
