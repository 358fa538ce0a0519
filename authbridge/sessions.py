"""Session lifecycle: create, refresh, revoke, list.

A session is an ``auth_sessions`` row with a chain of refresh tokens; each refresh rotates the
token (:mod:`authbridge.rotation` decides, with the reuse window) and issues a new access token
(:mod:`authbridge.tokens`). Ending a session records a revocation that every instance applies
(:mod:`authbridge.revocations`). The SQL lives in :mod:`authbridge.store.sessions`.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ._sealing import SecretSealer
from .claims import ClaimsRunner
from .config import AuthConfig
from .errors import RefreshTokenReused
from .revocations import REVOCATION_SKEW_MARGIN, RevocationSet
from .rotation import Rotator, hash_secret, new_refresh_token, split_amr, split_token
from .store import Store, new_id
from .store import sessions as repo
from .tokens import AccessToken, TokenIssuer

__all__ = [
    "ClaimsFactory",
    "SessionInfo",
    "SessionManager",
    "Tokens",
    "split_amr",
]

logger = logging.getLogger("authbridge.sessions")

ClaimsFactory = Callable[[str, str], Awaitable[Mapping[str, Any]] | Mapping[str, Any]]
"""``custom_claims(user_id, session_id)`` → extra JWT claims (sync or async)."""

_AMR_RE = re.compile(r"^[a-z0-9_-]{1,16}$")


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
        self._rotator = Rotator(
            store,
            SecretSealer.from_signing_keys(issuer.keys),
            reuse_window=config.refresh_reuse_window,
            inactive_duration=config.session_inactive_duration,
            clock=clock,
        )
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
        token_id, secret = new_refresh_token()
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
            token_hash=hash_secret(secret),
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
        rotation = await self._rotator.rotate(refresh_token)
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
            parts = split_token(token)
            if parts is not None:
                secrets_by_id[parts[0]] = parts[1]
        if not secrets_by_id:
            return 0
        async with self._store.read() as conn:
            rows = await repo.token_hashes(conn, self._tables, list(secrets_by_id))
        owned = sorted(
            {
                row.session_id
                for row in rows
                if hmac.compare_digest(row.token_hash, hash_secret(secrets_by_id[row.id]))
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
