"""Session lifecycle: create, refresh (rotation with a reuse window), revoke, expire.

Refresh tokens are ``<token_id>.<secret>`` with a random secret; only ``sha256(secret)`` is
stored. Rotation follows Convex Auth, made atomic across instances (the token row is locked for
the whole decision) and strict about reuse:

* first use of a token → a child token with a fresh random secret;
* a used token presented again within the reuse window of its first use → that same child (a lost
  response converges; no new branch). The child's secret is kept sealed (AES-GCM, key derived
  from the signing keys) only for this window, then erased;
* a used token presented after the window → reuse detected, whatever its children's state: the
  session and all its tokens end, a revocation is recorded, :class:`RefreshTokenReused`.

The SQL lives in :mod:`authbridge.store.sessions` and :mod:`authbridge.store.revocations`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ._sealing import SecretSealer
from .claims import ClaimsRunner
from .config import AuthConfig
from .errors import InvalidRefreshToken, RefreshTokenReused
from .revocations import REVOCATION_SKEW_MARGIN, RevocationSet
from .store import Store, new_id
from .store import sessions as repo
from .tokens import AccessToken, TokenIssuer

__all__ = [
    "ClaimsFactory",
    "CleanupReport",
    "SessionInfo",
    "SessionManager",
    "Tokens",
    "cleanup",
    "split_amr",
]

logger = logging.getLogger("authbridge.sessions")

ClaimsFactory = Callable[[str, str], Awaitable[Mapping[str, Any]] | Mapping[str, Any]]
"""``custom_claims(user_id, session_id)`` → extra JWT claims (sync or async)."""

_TOKEN_RE = re.compile(r"^([A-Za-z0-9_-]{16,64})\.([A-Za-z0-9_-]{32,128})$")
_AMR_RE = re.compile(r"^[a-z0-9_-]{1,16}$")


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class Tokens:
    """What a sign-in or refresh hands to the client."""

    access: AccessToken
    """The JWT and its claims."""
    refresh_token: str
    """``<token_id>.<secret>``; goes only into an HttpOnly cookie."""
    session_expires_at: datetime
    """When the session ends at the latest (absolute)."""

    @property
    def user_id(self) -> str:
        """The signed-in user."""
        return self.access.user_id

    @property
    def session_id(self) -> str:
        """The session."""
        return self.access.session_id


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A row of ``auth_sessions``, as shown in "your devices" lists."""

    session_id: str
    user_id: str
    created_at: datetime
    last_active_at: datetime
    expires_at: datetime
    user_agent: str | None
    created_ip: str | None
    auth_time: datetime | None = None
    """When the user last authenticated in this session (``None`` read as ``created_at``)."""
    amr: tuple[str, ...] = ()
    """How they authenticated (RFC 8176 values: ``"pwd"``, ``"otp"``, ``"hwk"``, ...)."""

    @classmethod
    def from_row(cls, row: Any) -> SessionInfo:
        """Build one from an ``auth_sessions`` row."""
        return cls(
            row.id,
            row.user_id,
            row.created_at,
            row.last_active_at,
            row.expires_at,
            row.user_agent,
            row.created_ip,
            row.auth_time or row.created_at,
            split_amr(row.amr),
        )


def split_amr(stored: str | None) -> tuple[str, ...]:
    """The ``amr`` list of a session row (stored space-separated)."""
    return tuple(stored.split()) if stored else ()


@dataclass(frozen=True, slots=True)
class _Rotation:
    user_id: str
    session_id: str
    session_expires_at: datetime
    refresh_token: str | None
    reused: bool = False
    auth_time: datetime | None = None
    amr: tuple[str, ...] = ()


class SessionManager:
    """Creates, rotates and ends sessions."""

    def __init__(
        self,
        store: Store,
        issuer: TokenIssuer,
        config: AuthConfig,
        clock: Callable[[], datetime],
        revocations: RevocationSet,
        custom_claims: ClaimsFactory | None = None,
        *,
        claims: ClaimsRunner | None = None,
        on_reuse: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._tables = store.tables
        self._issuer = issuer
        self._config = config
        self._clock = clock
        self._revocations = revocations
        self._custom_claims = custom_claims
        self._sealer = SecretSealer.from_signing_keys(issuer.keys)
        self._claims = claims
        self._on_reuse = on_reuse
        """``(user_id, session_id)`` after a reuse ended a session (the auth event)."""

    async def issue_access_token(
        self,
        user_id: str,
        session_id: str,
        *,
        session_expires_at: datetime | None = None,
        session: SessionInfo | None = None,
        auth_time: datetime | None = None,
        amr: Sequence[str] = (),
    ) -> AccessToken:
        """A fresh JWT for an existing session (custom claims applied).

        Args:
            session_expires_at: the session's absolute end; the token expires by then.
            session: the session's row, when the caller has it (the claims hook needs it).
            auth_time, amr: when and how the user authenticated (the session's columns).

        Raises:
            TokenIssueError: custom claims clash with reserved ones or make the token too large.
        """
        extra: Mapping[str, Any] | None = None
        if self._claims is not None:
            extra = await self._claims.collect(user_id, session_id, session)
        elif self._custom_claims is not None:
            produced = self._custom_claims(user_id, session_id)
            extra = await produced if isinstance(produced, Awaitable) else produced
        return self._issuer.issue(
            user_id, session_id, extra, not_after=session_expires_at, auth_time=auth_time, amr=amr
        )

    async def create(
        self,
        user_id: str,
        *,
        ip: str | None = None,
        user_agent: str | None = None,
        amr: Sequence[str] = (),
    ) -> Tokens:
        """Start a session for ``user_id``; the user authenticated just now, by ``amr``
        (RFC 8176 method values, e.g. ``("pwd",)``; recorded on the session and in its tokens).

        A user keeps at most ``config.max_sessions_per_user`` sessions: past the cap, the oldest
        end (revoked like a sign-out).

        Raises:
            StoreUnavailable: the database failed.
        """
        now = self._clock()
        session_id = new_id()
        expires_at = now + self._config.session_total_duration
        token_id, secret = new_id(), secrets.token_urlsafe(32)
        methods = tuple(dict.fromkeys(m for m in amr if _AMR_RE.match(m)))
        agent, client = (user_agent or None) and user_agent[:512], (ip or None) and ip[:64]
        info = SessionInfo(session_id, user_id, now, now, expires_at, agent, client, now, methods)
        access = await self.issue_access_token(
            user_id,
            session_id,
            session_expires_at=expires_at,
            session=info,
            auth_time=now,
            amr=methods,
        )
        count = await repo.start_session(
            self._store,
            session_id=session_id,
            user_id=user_id,
            now=now,
            expires_at=expires_at,
            ip=client,
            user_agent=agent,
            amr=" ".join(methods)[:64] or None,
            token_id=token_id,
            token_hash=_hash_secret(secret),
            token_expires_at=min(now + self._config.session_inactive_duration, expires_at),
        )
        cap = self._config.max_sessions_per_user
        if count > cap:
            await self._end(repo.beyond_newest(self._tables, user_id, session_id, cap - 1))
        return Tokens(access, f"{token_id}.{secret}", expires_at)

    async def refresh(self, refresh_token: str) -> Tokens:
        """Rotate ``refresh_token`` and issue a new access token.

        Raises:
            InvalidRefreshToken: malformed, unknown, wrong secret, expired, or session ended.
            RefreshTokenReused: a used token presented after the reuse window; the session is
                now revoked.
            StoreUnavailable: the database failed (the client should keep its cookies).
        """
        match = _TOKEN_RE.match(refresh_token)
        if match is None:
            raise InvalidRefreshToken("malformed refresh token")
        token_id, secret = match.groups()
        now = self._clock()
        async with repo.locked_token(self._store, token_id) as locked:
            rotation = await self._rotate(locked, secret, now)
        if rotation.reused:
            # Its own transaction: recording a revocation takes the feed lock first.
            await self._end_sessions([rotation.session_id])
            logger.warning(
                "refresh token reused after the reuse window; session %s revoked",
                rotation.session_id,
            )
            if self._on_reuse is not None:
                await self._on_reuse(rotation.user_id, rotation.session_id)
            raise RefreshTokenReused()
        assert rotation.refresh_token is not None
        access = await self.issue_access_token(
            rotation.user_id,
            rotation.session_id,
            session_expires_at=rotation.session_expires_at,
            auth_time=rotation.auth_time,
            amr=rotation.amr,
        )
        return Tokens(access, rotation.refresh_token, rotation.session_expires_at)

    async def _rotate(self, locked: repo.LockedToken, secret: str, now: datetime) -> _Rotation:
        row = locked.row
        # Compare even when the row is missing, so both paths cost the same.
        expected = row.token_hash if row is not None else "0" * 64
        if not hmac.compare_digest(expected, _hash_secret(secret)) or row is None:
            raise InvalidRefreshToken("unknown refresh token")
        if now >= row.session_expires_at:
            raise InvalidRefreshToken("session expired")
        # Expiry comes before the reuse check (as in Convex): a token past its inactivity limit
        # is simply invalid, used or not, rather than a false "reuse detected" alarm.
        if now >= row.expires_at:
            raise InvalidRefreshToken("refresh token expired (inactive session)")

        def rotation(token: str | None, *, reused: bool = False) -> _Rotation:
            return _Rotation(
                row.user_id,
                row.session_id,
                row.session_expires_at,
                token,
                reused,
                row.auth_time,
                split_amr(row.amr),
            )

        window = self._config.refresh_reuse_window
        if row.first_used_at is None:
            await locked.mark_used(now, now - window)
            return rotation(await self._new_child(locked, row, now))
        if now >= row.first_used_at + window:
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
        child_id, child_secret = new_id(), secrets.token_urlsafe(32)
        await locked.add_child(
            child_id=child_id,
            session_id=row.session_id,
            token_hash=_hash_secret(child_secret),
            expires_at=min(now + self._config.session_inactive_duration, row.session_expires_at),
            now=now,
            sealed_secret=self._sealer.seal(child_id, child_secret),
        )
        return f"{child_id}.{child_secret}"

    def _revocation_expiry(self, now: datetime) -> datetime:
        # Until no access token of the session can still be valid, on any instance's clock.
        return now + self._config.jwt_duration + REVOCATION_SKEW_MARGIN

    async def _end_sessions(self, session_ids: Sequence[str]) -> int:
        """End these sessions; record a revocation for each, existing or not. Returns how many
        existed."""
        now = self._clock()
        until = self._revocation_expiry(now)
        ids = list(dict.fromkeys(session_ids))
        notify = self._config.revocation_notify
        existed = await repo.end_sessions(self._store, ids, now, until, notify=notify)
        for session_id in ids:
            self._revocations.add(session_id, until)
        return existed

    async def _end(self, where: repo.SessionFilter) -> int:
        """End every session matching ``where`` in SQL (any number). Returns how many."""
        now = self._clock()
        until = self._revocation_expiry(now)
        notify = self._config.revocation_notify
        ended = await repo.end_where(self._store, where, now, until, notify=notify)
        for session_id in ended:
            self._revocations.add(session_id, until)
        return len(ended)

    async def revoke(self, session_ids: list[str]) -> int:
        """End these sessions now: delete them and their tokens, record revocations.

        Returns how many sessions existed.

        Raises:
            StoreUnavailable: the database failed.
        """
        if not session_ids:
            return 0
        return await self._end_sessions(session_ids)

    async def revoke_by_refresh_tokens(self, refresh_tokens: Sequence[str]) -> int:
        """End the sessions these refresh tokens belong to. Tokens that are malformed, unknown or
        carry the wrong secret are ignored, so a forged cookie cannot end anyone's session.

        Returns how many sessions were ended.

        Raises:
            StoreUnavailable: the database failed.
        """
        secrets_by_id: dict[str, str] = {}
        for token in refresh_tokens:
            match = _TOKEN_RE.match(token)
            if match is not None:
                secrets_by_id[match.group(1)] = match.group(2)
        if not secrets_by_id:
            return 0
        async with self._store.read() as conn:
            rows = await repo.token_hashes(conn, self._tables, list(secrets_by_id))
        owned = sorted(
            {
                row.session_id
                for row in rows
                if hmac.compare_digest(row.token_hash, _hash_secret(secrets_by_id[row.id]))
            }
        )
        return await self.revoke(owned) if owned else 0

    async def revoke_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        """End every session of ``user_id`` except ``keep``, in SQL (no limit on how many).
        Returns how many were ended.

        Raises:
            StoreUnavailable: the database failed.
        """
        return await self._end(repo.of_user(self._tables, user_id, keep))

    async def list_sessions(self, user_id: str) -> list[SessionInfo]:
        """The user's live sessions, most recently active first.

        Raises:
            StoreUnavailable: the database failed.
        """
        async with self._store.read() as conn:
            rows = await repo.list_live(conn, self._tables, user_id, self._clock())
        return [SessionInfo.from_row(r) for r in rows]

    async def get(self, session_id: str) -> SessionInfo | None:
        """One live session, or ``None``.

        Raises:
            StoreUnavailable: the database failed.
        """
        async with self._store.read() as conn:
            r = await repo.get_live(conn, self._tables, session_id, self._clock())
        return None if r is None else SessionInfo.from_row(r)


@dataclass(frozen=True, slots=True)
class CleanupReport:
    """How many rows :func:`cleanup` removed, per table."""

    sessions: int = 0
    refresh_tokens: int = 0
    revocations: int = 0
    rate_limits: int = 0
    anonymous_users: int = 0
    """Anonymous users idle past ``anonymous_idle`` (:meth:`Auth.cleanup`)."""

    @property
    def total(self) -> int:
        """Rows removed in all."""
        return (
            self.sessions
            + self.refresh_tokens
            + self.revocations
            + self.rate_limits
            + self.anonymous_users
        )


_DEFAULT_REUSE_WINDOW = AuthConfig().refresh_reuse_window


async def cleanup(
    store: Store,
    now: datetime,
    *,
    rate_limit_period: timedelta,
    refresh_reuse_window: timedelta = _DEFAULT_REUSE_WINDOW,
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
