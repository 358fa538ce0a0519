"""Reading credentials: bearer token, else the slot's cookies, rotated when due.

Refreshes of one token that arrive together in this process share one database round trip;
the database's row lock makes the same true across processes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .._asgi import Scope
from .._request import (
    AUTHORIZATION,
    COOKIE,
    HOST,
    TAB_HEADER,
    RequestContext,
    origin_facts,
)
from ..cookies import parse_cookies
from ..engine import Auth
from ..errors import AuthError, RefreshError, StoreUnavailable, TokenError
from ..sessions import Tokens
from ..state import AuthState

__all__ = ["FOREIGN", "NOT_TOKEN_ERRORS", "UNAVAILABLE", "Credentials", "is_bearer"]

logger = logging.getLogger("authbridge.middleware")

_QUICK_METHODS = frozenset({"GET", "HEAD"})

FOREIGN = "cross_site"
UNAVAILABLE = "unavailable"
NOT_TOKEN_ERRORS = frozenset({FOREIGN, UNAVAILABLE, "refresh_failed"})
"""Anonymous reasons that do not mean a presented token was bad (no RFC 6750 invalid_token)."""


class Credentials:
    """Turns a request's credentials into an :class:`AuthState`."""

    def __init__(self, auth: Auth) -> None:
        self.auth = auth
        self._inflight: dict[str, asyncio.Future[Tokens]] = {}
        self._margin = auth.config.refresh_margin
        self._site_origin = auth.config.site_url.rstrip("/")
        self._per_tab = auth.config.session_sharing == "per_tab"

    def quick(self, scope: Scope, found: list[bytes | None]) -> AuthState | None:
        """The state of the two commonest requests without building a request context: no
        credentials at all (anonymous), or a shared-mode GET whose cookie holds a fresh access
        token seen before. ``found`` is :func:`scan_headers`' result. ``None`` sends the request
        down the full path."""
        cookie = found[COOKIE]
        if found[AUTHORIZATION] is not None or found[TAB_HEADER] is not None:
            return None
        if cookie is None:
            return AuthState.anonymous()
        auth = self.auth
        if self._per_tab or scope["method"] not in _QUICK_METHODS or not auth.is_open:
            return None
        names = origin_facts(scope.get("scheme", "http"), found[HOST] or b"", scope)[2]
        cookies = parse_cookies(cookie)
        access = cookies.get(names.jwt)
        if access is None:
            return None if names.refresh in cookies else AuthState.anonymous()
        now = auth.clock()
        try:
            verified = auth.verify_token(access, now=now)
        except TokenError:
            return None  # the full path refreshes or reports why
        if verified.expires_at - now <= self._margin:
            return None
        return _state_of(access, verified, "cookie", None)

    async def authenticate(self, ctx: RequestContext, websocket: bool) -> AuthState:
        """The auth state for a request: bearer, else the slot's cookies, refreshed if due."""
        auth = self.auth
        if ctx.authorization is not None and is_bearer(ctx.authorization):
            return await self.from_bearer(ctx.authorization)
        if ctx.cookie_header is None:
            return AuthState(tab=ctx.tab)
        # A WebSocket handshake is a GET, but it opens a two-way channel: another origin must not
        # ride the browser's cookies into it (cross-site WebSocket hijacking).
        if (websocket or ctx.is_state_changing()) and ctx.is_foreign(
            auth.config.allowed_origins, self._site_origin
        ):
            return AuthState(error=FOREIGN, tab=ctx.tab)
        cookies = ctx.cookies
        access = cookies.get(ctx.names.jwt)
        refresh = cookies.get(ctx.names.refresh)
        if access is None and refresh is None:
            return AuthState(tab=ctx.tab)
        if not auth.is_open:  # the store could not be opened: nothing can be verified yet
            return AuthState(error=UNAVAILABLE, tab=ctx.tab)
        verified = None
        error: str | None = None
        now = auth.clock()
        if access:
            try:
                verified = auth.verify_token(access, now=now)
            except TokenError as exc:
                error = exc.reason
        fresh = verified is not None and verified.expires_at - now > self._margin
        if fresh or not refresh or not self.may_refresh(ctx):
            if verified is not None:
                return _state_of(verified.token, verified, "cookie", ctx.tab)
            return AuthState(error=error, tab=ctx.tab)
        try:
            tokens = await self.refresh_once(refresh)
        except StoreUnavailable:
            # Never sign anyone out because the database hiccuped: keep cookies, use what we have.
            if verified is not None:
                return _state_of(verified.token, verified, "cookie", ctx.tab)
            return AuthState(error=UNAVAILABLE, tab=ctx.tab)
        except RefreshError as exc:
            ctx.clear_tokens(auth)
            reason = (
                "refresh_token_reused"
                if exc.code == "RefreshTokenReused"
                else "invalid_refresh_token"
            )
            return AuthState(error=reason, tab=ctx.tab)
        except AuthError:
            logger.exception("refresh failed")
            return AuthState(error="refresh_failed", tab=ctx.tab)
        ctx.issue_tokens(auth, tokens)
        await ctx.end_evicted(auth)
        return _state_of(tokens.access.token, tokens.access, "cookie", ctx.tab, refreshed=True)

    async def from_bearer(self, header: bytes) -> AuthState:
        scheme, _, value = header.partition(b" ")
        if scheme.lower() != b"bearer" or not value.strip():
            return AuthState(error="malformed", source="bearer")
        try:
            token = value.strip().decode("ascii")
            verified = await self.auth.verify_bearer(token)  # ours or a trusted issuer's
        except UnicodeDecodeError:
            return AuthState(error="malformed", source="bearer")
        except TokenError as exc:
            # A trusted issuer we cannot reach says nothing about the token: answer like a
            # database outage (503 on protected routes), not "invalid token".
            reason = UNAVAILABLE if exc.reason == "issuer_unavailable" else exc.reason
            return AuthState(error=reason, source="bearer")
        except RuntimeError:
            return AuthState(error=UNAVAILABLE, source="bearer")
        return _state_of(token, verified, "bearer", None)

    def may_refresh(self, ctx: RequestContext) -> bool:
        # Cross-site subresource requests (images, fetches from other sites) never rotate tokens;
        # a top-level navigation from another site may (the user followed a link).
        if ctx.sec_fetch_site == "cross-site" and ctx.sec_fetch_mode != "navigate":
            return False
        return not (
            ctx.origin_header is not None
            and ctx.is_foreign(self.auth.config.allowed_origins, self._site_origin)
        )

    async def refresh_once(self, refresh_token: str) -> Tokens:
        """Rotate, sharing one database round trip among concurrent requests of this process."""
        pending = self._inflight.get(refresh_token)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Tokens] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve_exception)
        self._inflight[refresh_token] = future
        try:
            tokens = await self.auth.refresh(refresh_token)
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
            raise
        else:
            future.set_result(tokens)
            self.auth.remember_token(tokens.access)
            return tokens
        finally:
            del self._inflight[refresh_token]

    # -- serving --------------------------------------------------------------------------------


def _state_of(
    token: str, verified: Any, source: Any, tab: str | None, *, refreshed: bool = False
) -> AuthState:
    return AuthState.of(
        verified.user_id,
        verified.session_id,
        token,
        verified.claims,  # read-only: AccessToken carries a MappingProxyType
        verified.expires_at,
        None,
        source,
        tab,
        refreshed,
    )


def is_bearer(header: bytes) -> bool:
    # Other schemes (Basic in front of a staging site, Negotiate) are not ours: cookies still count.
    return header[:7].lower() == b"bearer " or header.strip().lower() == b"bearer"


def _retrieve_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
