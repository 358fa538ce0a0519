"""The authenticator: a request's credentials in, an :class:`~authbridge.AuthState` out.

:meth:`Authenticator.authenticate` decides from what the request carries, cheapest cases first:
a bearer token; no cookie at all (anonymous); a cookie whose access token is fresh (verified by
the engine's verify-once cache, so a repeat costs a dict lookup). It needs no database, so it is
synchronous; when the access token is missing, expired or close to expiry it answers a
:class:`Rotation`, and :meth:`Authenticator.complete` makes the one database round trip
(likewise a bearer token that may come from a trusted issuer, whose keys may need fetching).
Rotations of one token that arrive together in this process share that round trip; the
database's row lock makes the same true across processes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NamedTuple, cast

from .._asgi import Scope
from .._request import SAFE_METHODS, RequestContext, RequestHeaders
from ..cookies import origin_facts, parse_cookies
from ..engine import Auth
from ..errors import AuthError, RefreshError, StoreUnavailable, TokenError
from ..sessions import Tokens
from ..state import AuthState, ErrorReason, TokenSource
from ..tokens import AccessToken
from ..trusted import RemoteToken

__all__ = ["NOT_TOKEN_ERRORS", "Authenticator", "Pending", "RemoteBearer", "Rotation", "is_bearer"]

logger = logging.getLogger("authbridge.middleware")

NOT_TOKEN_ERRORS: frozenset[ErrorReason] = frozenset(
    {"cross_site", "unavailable", "refresh_failed"}
)
"""Anonymous reasons that do not mean a presented token was bad (no RFC 6750 invalid_token)."""


class Rotation(NamedTuple):
    """The request's access token is due: rotate its refresh token (see
    :meth:`Authenticator.complete`)."""

    ctx: RequestContext
    """The request: the rotation queues the new cookies (or clears them) here."""
    refresh_token: str
    verified: AccessToken | None
    """The current access token if it still verifies (used if the database is unreachable)."""


class RemoteBearer(NamedTuple):
    """A bearer token that may be a trusted issuer's: verifying it may fetch their keys."""

    token: str


Pending = Rotation | RemoteBearer
"""What :meth:`Authenticator.authenticate` cannot decide without awaiting."""


class Authenticator:
    """Decides who a request is, and rotates its refresh token when the access token is due."""

    def __init__(self, auth: Auth) -> None:
        self.auth = auth
        config = auth.config
        self._margin = config.refresh_margin
        self._allowed = config.allowed_origins
        self._site_origin = config.site_origin
        self._https_site = config.is_https_site
        self._per_tab = config.is_per_tab
        self._verify = auth.verify_cache.verify
        self._inflight: dict[str, asyncio.Future[Tokens]] = {}

    def authenticate(
        self,
        scope: Scope,
        headers: RequestHeaders,
        path: str,
        websocket: bool = False,
        ctx: RequestContext | None = None,
    ) -> tuple[AuthState | Pending, RequestContext | None]:
        """The auth state of a request that carries credentials (``headers`` from
        :func:`~authbridge._request.scan_headers`): its bearer token, else its slot's cookies;
        or what is :data:`Pending` (a :class:`Rotation` when the cookie's access token is
        missing, expired or close to expiry and a refresh token may renew it), for
        :meth:`complete`. Never raises: a rejected credential is an anonymous state with an
        :data:`~authbridge.state.ErrorReason`.

        Also returns the request's :class:`RequestContext` (``ctx``, when the caller has one),
        or ``None`` when it was not needed: a shared-mode page or fetch (a safe method) is
        decided from its headers alone, so the commonest request, a fresh access cookie, builds
        no context. A context is built for what needs one: per-tab slots, the origin check of a
        state-changing request or WebSocket, and a rotation (it queues the new cookies)."""
        authorization = headers.authorization
        if authorization is not None and is_bearer(authorization):
            return self.from_bearer(authorization), ctx
        tab: str | None = None
        if ctx is None and not (self._per_tab or websocket or scope["method"] not in SAFE_METHODS):
            names = origin_facts(
                scope.get("scheme", "http"), headers.host or b"", scope, self._https_site
            ).names
            cookies = parse_cookies(headers.cookie)
        else:
            if ctx is None:
                ctx = RequestContext(scope, self._https_site, self._per_tab, headers, path)
            tab = ctx.tab
            if headers.cookie is None:
                return AuthState(tab=tab), ctx
            # A WebSocket handshake is a GET, but it opens a two-way channel: another origin must
            # not ride the browser's cookies into it (cross-site WebSocket hijacking).
            if (websocket or scope["method"] not in SAFE_METHODS) and ctx.is_foreign(
                self._allowed, self._site_origin
            ):
                return AuthState(error="cross_site", tab=tab), ctx
            names, cookies = ctx.names, ctx.cookies
        access, refresh = cookies.get(names.jwt), cookies.get(names.refresh)
        if access is None and refresh is None:
            return (AuthState.anonymous() if tab is None else AuthState(tab=tab)), ctx
        auth = self.auth
        verified: AccessToken | None = None
        error: ErrorReason | None = None
        now = auth.clock()
        if access:
            try:
                verified = self._verify(access, now)
            except TokenError as exc:
                error = cast("ErrorReason", exc.reason)
            except RuntimeError:  # the store could not be opened: nothing can be verified yet
                return AuthState(error="unavailable", tab=tab), ctx
            else:
                if verified.expires_at - now > self._margin:  # the warm cookie: most requests
                    state = AuthState.of(
                        verified.user_id,
                        verified.session_id,
                        verified.token,
                        verified.claims,
                        verified.expires_at,
                        None,
                        "cookie",
                        tab,
                    )
                    return state, ctx
        if not auth.is_open:
            return AuthState(error="unavailable", tab=tab), ctx
        if ctx is None:  # a rotation queues its cookies on the context, and reads its origin
            ctx = RequestContext(scope, self._https_site, self._per_tab, headers, path)
        if not refresh or not self._may_refresh(ctx):
            if verified is not None:
                return _state_of(verified, "cookie", tab), ctx
            return AuthState(error=error, tab=tab), ctx
        return Rotation(ctx, refresh, verified), ctx

    async def complete(self, pending: Pending) -> AuthState:
        """The awaited step: verify a bearer token with the trusted issuers, or rotate the
        refresh token, queueing the new cookies on the request's context (or clearing them when
        the token is invalid or reused). Never raises."""
        if isinstance(pending, RemoteBearer):
            try:
                remote = await self.auth.verify_bearer(pending.token)
            except TokenError as exc:
                return _bearer_rejected(exc)
            except RuntimeError:
                return AuthState(error="unavailable", source="bearer")
            return _state_of(remote, "bearer", None)
        auth, ctx, verified = self.auth, pending.ctx, pending.verified
        tab = ctx.tab
        try:
            tokens = await self.refresh_once(pending.refresh_token)
        except StoreUnavailable:
            # Never sign anyone out because the database hiccuped: keep cookies, use what we have.
            if verified is not None:
                return _state_of(verified, "cookie", tab)
            return AuthState(error="unavailable", tab=tab)
        except RefreshError as exc:
            ctx.clear_tokens(auth)
            reused = exc.code == "RefreshTokenReused"
            return AuthState(
                error="refresh_token_reused" if reused else "invalid_refresh_token", tab=tab
            )
        except AuthError:
            logger.exception("refresh failed")
            return AuthState(error="refresh_failed", tab=tab)
        ctx.issue_tokens(auth, tokens)
        await ctx.end_evicted(auth)
        return _state_of(tokens.access, "cookie", tab, refreshed=True)

    def from_bearer(self, header: bytes) -> AuthState | RemoteBearer:
        """The state of an ``Authorization: Bearer`` request (no cookies involved); with
        trusted issuers configured, a :class:`RemoteBearer` to verify in :meth:`complete`."""
        scheme, _, value = header.partition(b" ")
        if scheme.lower() != b"bearer" or not value.strip():
            return AuthState(error="malformed", source="bearer")
        try:
            token = value.strip().decode("ascii")
        except UnicodeDecodeError:
            return AuthState(error="malformed", source="bearer")
        if self.auth.trusted_issuers is not None:
            return RemoteBearer(token)
        try:
            verified = self._verify(token)
        except TokenError as exc:
            return _bearer_rejected(exc)
        except RuntimeError:
            return AuthState(error="unavailable", source="bearer")
        return _state_of(verified, "bearer", None)

    def _may_refresh(self, ctx: RequestContext) -> bool:
        # Cross-site subresource requests (images, fetches from other sites) never rotate tokens;
        # a top-level navigation from another site may (the user followed a link).
        if ctx.is_cross_site_subresource():
            return False
        return ctx.headers.origin is None or not ctx.is_foreign(self._allowed, self._site_origin)

    async def refresh_once(self, refresh_token: str) -> Tokens:
        """Rotate, sharing one database round trip among concurrent requests of this process.

        Raises:
            RefreshError: the refresh token is invalid, expired or reused.
            StoreUnavailable: the database failed.
        """
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


def _bearer_rejected(exc: TokenError) -> AuthState:
    # A trusted issuer we cannot reach says nothing about the token: answer like a database
    # outage (503 on protected routes), not "invalid token".
    reason = "unavailable" if exc.reason == "issuer_unavailable" else exc.reason
    return AuthState(error=cast("ErrorReason", reason), source="bearer")


def _state_of(
    verified: AccessToken | RemoteToken,
    source: TokenSource,
    tab: str | None,
    *,
    refreshed: bool = False,
) -> AuthState:
    return AuthState.of(
        verified.user_id,
        verified.session_id,
        verified.token,
        verified.claims,  # read-only: AccessToken carries a MappingProxyType
        verified.expires_at,
        None,
        source,
        tab,
        refreshed,
    )


def is_bearer(header: bytes) -> bool:
    """The ``Authorization`` header uses the Bearer scheme. Other schemes (Basic in front of a
    staging site, Negotiate) are not ours: cookies still count."""
    return header[:7].lower() == b"bearer " or header.strip().lower() == b"bearer"


def _retrieve_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
