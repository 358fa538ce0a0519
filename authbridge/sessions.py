"""Session lifecycle: create, refresh (rotation with a reuse window), revoke, expire.

Refresh tokens are ``<token_id>.<secret>``; only ``sha256(secret)`` is stored. Rotation follows
Convex Auth, made atomic across instances (the token row is locked for the whole decision):

* first use of a token → a child token;
* a used token whose child is still unused → that same child (a lost response converges; the
  child's secret is derived from the parent's, which only the client holds);
* a used token whose children are all used, within the reuse window of its first use → a new child;
* after the window → reuse detected: the session and all its tokens are revoked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .claims import ClaimsRunner
from .config import AuthConfig
from .errors import InvalidRefreshToken, RefreshTokenReused
from .revocations import RevocationSet
from .store import Store, insert_ignoring_conflicts, new_id
from .tokens import AccessToken, TokenIssuer

__all__ = ["ClaimsFactory", "CleanupReport", "SessionInfo", "SessionManager", "Tokens", "cleanup"]

logger = logging.getLogger("authbridge.sessions")

ClaimsFactory = Callable[[str, str], Awaitable[Mapping[str, Any]] | Mapping[str, Any]]
"""``custom_claims(user_id, session_id)`` → extra JWT claims (sync or async)."""

_TOKEN_RE = re.compile(r"^([A-Za-z0-9_-]{16,64})\.([A-Za-z0-9_-]{32,128})$")
_CHILD_LABEL = b"authbridge/refresh-child/v1:"


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _child_secret(parent_secret: str, child_id: str) -> str:
    mac = hmac.new(parent_secret.encode("ascii"), _CHILD_LABEL + child_id.encode("ascii"), "sha256")
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


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
        )


@dataclass(frozen=True, slots=True)
class _Rotation:
    user_id: str
    session_id: str
    session_expires_at: datetime
    refresh_token: str | None
    reused: bool = False


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
    ) -> None:
        self._store = store
        self._issuer = issuer
        self._config = config
        self._clock = clock
        self._revocations = revocations
        self._custom_claims = custom_claims
        self._claims = claims

    async def issue_access_token(
        self,
        user_id: str,
        session_id: str,
        *,
        session_expires_at: datetime | None = None,
        session: SessionInfo | None = None,
    ) -> AccessToken:
        """A fresh JWT for an existing session (custom claims applied).

        Args:
            session_expires_at: the session's absolute end; the token expires by then.
            session: the session's row, when the caller has it (the claims hook needs it).

        Raises:
            TokenIssueError: custom claims clash with reserved ones or make the token too large.
        """
        extra: Mapping[str, Any] | None = None
        if self._claims is not None:
            extra = await self._claims.collect(user_id, session_id, session)
        elif self._custom_claims is not None:
            produced = self._custom_claims(user_id, session_id)
            extra = await produced if isinstance(produced, Awaitable) else produced
        return self._issuer.issue(user_id, session_id, extra, not_after=session_expires_at)

    async def create(
        self,
        user_id: str,
        *,
        ip: str | None = None,
        user_agent: str | None = None,
        conn: AsyncConnection | None = None,
    ) -> Tokens:
        """Start a session for ``user_id``.

        Args:
            conn: run inside this transaction (e.g. the sign-up that created the user).

        Raises:
            StoreUnavailable: the database failed.
        """
        now = self._clock()
        session_id = new_id()
        expires_at = now + self._config.session_total_duration
        token_id, secret = new_id(), secrets.token_urlsafe(32)
        token_expires = min(now + self._config.session_inactive_duration, expires_at)

        async def write(c: AsyncConnection) -> None:
            t = self._store.tables
            await c.execute(
                insert(t.sessions).values(
                    id=session_id,
                    user_id=user_id,
                    created_at=now,
                    expires_at=expires_at,
                    last_active_at=now,
                    created_ip=(ip or None) and ip[:64],
                    user_agent=(user_agent or None) and user_agent[:512],
                )
            )
            await c.execute(
                insert(t.refresh_tokens).values(
                    id=token_id,
                    session_id=session_id,
                    token_hash=_hash_secret(secret),
                    parent_id=None,
                    expires_at=token_expires,
                    created_at=now,
                )
            )

        agent, client = (user_agent or None) and user_agent[:512], (ip or None) and ip[:64]
        info = SessionInfo(session_id, user_id, now, now, expires_at, agent, client)
        access = await self.issue_access_token(
            user_id, session_id, session_expires_at=expires_at, session=info
        )
        if conn is not None:
            await write(conn)
        else:
            async with self._store.transaction() as c:
                await write(c)
        return Tokens(access, f"{token_id}.{secret}", expires_at)

    async def refresh(self, refresh_token: str) -> Tokens:
        """Rotate ``refresh_token`` and issue a new access token.

        Raises:
            InvalidRefreshToken: malformed, unknown, wrong secret, expired, or session ended.
            RefreshTokenReused: reuse after the window; the session is now revoked.
            StoreUnavailable: the database failed (the client should keep its cookies).
        """
        match = _TOKEN_RE.match(refresh_token)
        if match is None:
            raise InvalidRefreshToken("malformed refresh token")
        token_id, secret = match.groups()
        now = self._clock()
        async with self._store.transaction() as conn:
            rotation = await self._rotate(conn, token_id, secret, now)
        if rotation.reused:
            self._revocations.add(rotation.session_id, now + self._config.jwt_duration)
            logger.warning(
                "refresh token reused after the reuse window; session %s revoked",
                rotation.session_id,
            )
            raise RefreshTokenReused()
        assert rotation.refresh_token is not None
        access = await self.issue_access_token(
            rotation.user_id, rotation.session_id, session_expires_at=rotation.session_expires_at
        )
        return Tokens(access, rotation.refresh_token, rotation.session_expires_at)

    async def _rotate(
        self, conn: AsyncConnection, token_id: str, secret: str, now: datetime
    ) -> _Rotation:
        t = self._store.tables
        tok, ses = t.refresh_tokens, t.sessions
        row = (
            await conn.execute(
                select(
                    tok.c.token_hash,
                    tok.c.session_id,
                    tok.c.expires_at,
                    tok.c.first_used_at,
                    ses.c.user_id,
                    ses.c.expires_at.label("session_expires_at"),
                )
                .join(ses, ses.c.id == tok.c.session_id)
                .where(tok.c.id == token_id)
                .with_for_update(of=tok)
            )
        ).one_or_none()
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
            return _Rotation(row.user_id, row.session_id, row.session_expires_at, token, reused)

        if row.first_used_at is None:
            await conn.execute(update(tok).where(tok.c.id == token_id).values(first_used_at=now))
            return rotation(await self._new_child(conn, row, token_id, secret, now))

        unused_child = (
            await conn.execute(
                select(tok.c.id)
                .where(tok.c.parent_id == token_id)
                .where(tok.c.first_used_at.is_(None))
                .where(tok.c.expires_at > now)
                .order_by(tok.c.created_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if unused_child is not None:
            return rotation(f"{unused_child}.{_child_secret(secret, unused_child)}")
        if now < row.first_used_at + self._config.refresh_reuse_window:
            return rotation(await self._new_child(conn, row, token_id, secret, now))
        await self._revoke(conn, [row.session_id], now)
        return rotation(None, reused=True)

    async def _new_child(
        self, conn: AsyncConnection, row: Any, parent_id: str, parent_secret: str, now: datetime
    ) -> str:
        t = self._store.tables
        child_id = new_id()
        child_secret = _child_secret(parent_secret, child_id)
        await conn.execute(
            insert(t.refresh_tokens).values(
                id=child_id,
                session_id=row.session_id,
                token_hash=_hash_secret(child_secret),
                parent_id=parent_id,
                expires_at=min(
                    now + self._config.session_inactive_duration, row.session_expires_at
                ),
                created_at=now,
            )
        )
        await conn.execute(
            update(t.sessions).where(t.sessions.c.id == row.session_id).values(last_active_at=now)
        )
        return f"{child_id}.{child_secret}"

    async def _revoke(self, conn: AsyncConnection, session_ids: list[str], now: datetime) -> None:
        if not session_ids:
            return
        t = self._store.tables
        until = now + self._config.jwt_duration
        await conn.execute(
            delete(t.refresh_tokens).where(t.refresh_tokens.c.session_id.in_(session_ids))
        )
        await conn.execute(delete(t.sessions).where(t.sessions.c.id.in_(session_ids)))
        for session_id in session_ids:
            await conn.execute(
                insert_ignoring_conflicts(t.revocations, self._store.dialect_name).values(
                    session_id=session_id, revoked_at=now, expires_at=until
                )
            )

    async def revoke(self, session_ids: list[str]) -> int:
        """End these sessions now: delete them and their tokens, record revocations.

        Returns how many sessions existed.

        Raises:
            StoreUnavailable: the database failed.
        """
        now = self._clock()
        t = self._store.tables
        async with self._store.transaction() as conn:
            existing = (
                (
                    await conn.execute(
                        select(t.sessions.c.id).where(t.sessions.c.id.in_(session_ids))
                    )
                )
                .scalars()
                .all()
            )
            await self._revoke(conn, list(session_ids), now)
        for session_id in session_ids:
            self._revocations.add(session_id, now + self._config.jwt_duration)
        return len(existing)

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
        tok = self._store.tables.refresh_tokens
        async with self._store.read() as conn:
            rows = (
                await conn.execute(
                    select(tok.c.id, tok.c.token_hash, tok.c.session_id).where(
                        tok.c.id.in_(list(secrets_by_id))
                    )
                )
            ).all()
        owned = sorted(
            {
                row.session_id
                for row in rows
                if hmac.compare_digest(row.token_hash, _hash_secret(secrets_by_id[row.id]))
            }
        )
        return await self.revoke(owned) if owned else 0

    async def revoke_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        """End every session of ``user_id`` except ``keep``. Returns how many were ended.

        Raises:
            StoreUnavailable: the database failed.
        """
        t = self._store.tables
        async with self._store.read() as conn:
            query = select(t.sessions.c.id).where(t.sessions.c.user_id == user_id)
            if keep is not None:
                query = query.where(t.sessions.c.id != keep)
            ids = list((await conn.execute(query)).scalars().all())
        return await self.revoke(ids) if ids else 0

    def _is_live(self, now: datetime) -> ColumnElement[bool]:
        # Live: before its absolute end, and not inactive (it still has an unexpired refresh
        # token). Rows past either are dead even before cleanup() removes them.
        s, tok = self._store.tables.sessions, self._store.tables.refresh_tokens
        live_token = (
            select(tok.c.id).where(tok.c.session_id == s.c.id).where(tok.c.expires_at > now)
        )
        return (s.c.expires_at > now) & live_token.exists()

    async def list_sessions(self, user_id: str) -> list[SessionInfo]:
        """The user's live sessions, most recently active first.

        Raises:
            StoreUnavailable: the database failed.
        """
        s = self._store.tables.sessions
        async with self._store.read() as conn:
            rows = (
                await conn.execute(
                    select(s)
                    .where(s.c.user_id == user_id)
                    .where(self._is_live(self._clock()))
                    .order_by(s.c.last_active_at.desc(), s.c.created_at.desc())
                )
            ).all()
        return [SessionInfo.from_row(r) for r in rows]

    async def get(self, session_id: str) -> SessionInfo | None:
        """One live session, or ``None``.

        Raises:
            StoreUnavailable: the database failed.
        """
        s = self._store.tables.sessions
        async with self._store.read() as conn:
            r = (
                await conn.execute(
                    select(s).where(s.c.id == session_id).where(self._is_live(self._clock()))
                )
            ).one_or_none()
        if r is None:
            return None
        return SessionInfo.from_row(r)


@dataclass(frozen=True, slots=True)
class CleanupReport:
    """How many rows :func:`cleanup` removed, per table."""

    sessions: int = 0
    refresh_tokens: int = 0
    revocations: int = 0
    rate_limits: int = 0


async def cleanup(
    store: Store,
    now: datetime,
    *,
    rate_limit_period: timedelta,
    batch_size: int = 1000,
    max_batches: int | None = None,
) -> CleanupReport:
    """Delete expired sessions, refresh tokens, revocations and full rate-limit buckets.

    Works in batches of ``batch_size`` rows, each its own short transaction, so it is safe to run
    while the application serves traffic (``authbridge cleanup``, or opportunistically).

    Raises:
        StoreUnavailable: the database failed.
    """
    t = store.tables
    counts = {"sessions": 0, "refresh_tokens": 0, "revocations": 0, "rate_limits": 0}

    async def batched(name: str, table: Any, key: Any, condition: Any) -> None:
        batches = 0
        while max_batches is None or batches < max_batches:
            batches += 1
            async with store.transaction() as conn:
                ids = (
                    (await conn.execute(select(key).where(condition).limit(batch_size)))
                    .scalars()
                    .all()
                )
                if not ids:
                    return
                await conn.execute(delete(table).where(key.in_(ids)))
            counts[name] += len(ids)
            if len(ids) < batch_size:
                return

    tok, ses = t.refresh_tokens, t.sessions
    await batched("refresh_tokens", tok, tok.c.id, tok.c.expires_at <= now)
    # A session ends at its absolute expiry, or when its last refresh token has expired.
    no_live_token = ~select(tok.c.id).where(tok.c.session_id == ses.c.id).exists()
    await batched("sessions", ses, ses.c.id, (ses.c.expires_at <= now) | no_live_token)
    rev = t.revocations
    await batched("revocations", rev, rev.c.session_id, rev.c.expires_at <= now)
    rl = t.rate_limits
    await batched(
        "rate_limits", rl, rl.c.identifier, rl.c.last_attempt_at <= now - rate_limit_period
    )
    return CleanupReport(**counts)
