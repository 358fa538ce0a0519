"""``AuthMiddleware``: pure ASGI, for any framework.

Per request: read the token (``Authorization: Bearer`` first, else the cookie of the current slot),
verify it without the database (a verify-once cache makes repeats nearly free), rotate the refresh
token when the access token is missing, expired or close to expiry, put an immutable
:class:`~authbridge.AuthState` in ``scope["auth"]``, apply route protection, run the app, and
append ``Set-Cookie`` / ``Vary`` / ``Cache-Control`` on ``http.response.start``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ._asgi import (
    AnyASGIApp,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    json_response,
    make_private,
    redirect_response,
)
from ._request import RequestContext, read_context
from .endpoints import AuthEndpoints
from .engine import Auth
from .errors import AuthError, RefreshError, StoreUnavailable, TokenError
from .routing import Pattern, RouteMatcher, route_matcher
from .sessions import Tokens
from .state import SCOPE_ENGINE, AuthState, AuthUser

__all__ = ["AuthMiddleware", "OnRequest"]

logger = logging.getLogger("authbridge.middleware")

OnRequest = Callable[[Scope, AuthState], Awaitable[ASGIApp | None]]
"""A hook run after authentication and before the app; return an ASGI app (a redirect, a 403)
to answer instead of the app, or ``None`` to continue (Next.js middleware style)."""

_ANON_REASON_FOREIGN = "cross_site"
_ANON_REASON_UNAVAILABLE = "unavailable"
_NOT_TOKEN_ERRORS = frozenset({_ANON_REASON_FOREIGN, _ANON_REASON_UNAVAILABLE, "refresh_failed"})
"""Anonymous reasons that do not mean a presented token was bad (no RFC 6750 invalid_token)."""


class AuthMiddleware:
    """Authenticate every request of an ASGI app.

    Args:
        app: the ASGI app to wrap.
        auth: the engine (default: ``Auth(AuthConfig.from_env())``).
        protect: routes that require a signed-in user: a :func:`~authbridge.ssr.route_matcher`,
            or globs / regexes / callables. HTML GETs are redirected to the sign-in page with
            ``?next=``; other requests get 401 with ``WWW-Authenticate: Bearer``.
        on_request: a hook for custom rules, see :data:`OnRequest`.
    """

    def __init__(
        self,
        app: AnyASGIApp,
        auth: Auth | None = None,
        *,
        protect: RouteMatcher | Pattern | list[Pattern] | None = None,
        on_request: OnRequest | None = None,
    ) -> None:
        self.app: ASGIApp = app
        self.auth = auth if auth is not None else Auth()
        if protect is None or isinstance(protect, RouteMatcher):
            self._protect = protect
        else:
            self._protect = route_matcher(protect)
        self._on_request = on_request
        config = self.auth.config
        self._per_tab = config.session_sharing == "per_tab"
        self._endpoints = AuthEndpoints(self.auth, self._refresh_once)
        self._inflight: dict[str, asyncio.Future[Tokens]] = {}
        self._margin = config.refresh_margin
        self._site_origin = config.site_url.rstrip("/")

    # -- ASGI entry -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" or kind == "websocket":
            if not self.auth.is_open:
                await self._open_lazily()
            if kind == "http" and self._endpoints.claims(scope["path"]):
                if not await self._endpoints.handle_static(scope, send):
                    await self._serve_endpoint(scope, receive, send)
                return
            await self._serve(scope, receive, send, kind == "websocket")
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _open_lazily(self) -> None:
        try:
            await self.auth.open()
        except StoreUnavailable:
            logger.error("authbridge could not open its store; serving requests as anonymous")
            return
        self.auth.start_background()

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def receive_wrapper() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._open_lazily()
            return message

        async def send_wrapper(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.auth.close()
            await send(message)

        await self.app(scope, receive_wrapper, send_wrapper)

    # -- authentication -------------------------------------------------------------------------

    async def _authenticate(self, scope: Scope, ctx: RequestContext, websocket: bool) -> AuthState:
        auth = self.auth
        if ctx.authorization is not None and _is_bearer(ctx.authorization):
            return self._from_bearer(ctx.authorization)
        if ctx.cookie_header is None:
            return AuthState(tab=ctx.tab)
        # A WebSocket handshake is a GET, but it opens a two-way channel: another origin must not
        # ride the browser's cookies into it (cross-site WebSocket hijacking).
        if (websocket or ctx.is_state_changing()) and ctx.is_foreign(
            auth.config.allowed_origins, self._site_origin
        ):
            return AuthState(error=_ANON_REASON_FOREIGN, tab=ctx.tab)
        cookies = ctx.cookies
        access = cookies.get(ctx.names.jwt)
        refresh = cookies.get(ctx.names.refresh)
        if access is None and refresh is None:
            return AuthState(tab=ctx.tab)
        if not auth.is_open:  # the store could not be opened: nothing can be verified yet
            return AuthState(error=_ANON_REASON_UNAVAILABLE, tab=ctx.tab)
        verified = None
        error: str | None = None
        if access:
            try:
                verified = auth.verify_token(access)
            except TokenError as exc:
                error = exc.reason
        fresh = verified is not None and verified.expires_at - auth.clock() > self._margin
        if fresh or not refresh or not self._may_refresh(ctx):
            if verified is not None:
                return _state_of(verified.token, verified, "cookie", ctx.tab)
            return AuthState(error=error, tab=ctx.tab)
        try:
            tokens = await self._refresh_once(refresh)
        except StoreUnavailable:
            # Never sign anyone out because the database hiccuped: keep cookies, use what we have.
            if verified is not None:
                return _state_of(verified.token, verified, "cookie", ctx.tab)
            return AuthState(error=_ANON_REASON_UNAVAILABLE, tab=ctx.tab)
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
        return _state_of(tokens.access.token, tokens.access, "cookie", ctx.tab, refreshed=True)

    def _from_bearer(self, header: bytes) -> AuthState:
        scheme, _, value = header.partition(b" ")
        if scheme.lower() != b"bearer" or not value.strip():
            return AuthState(error="malformed", source="bearer")
        try:
            token = value.strip().decode("ascii")
            verified = self.auth.verify_token(token)
        except UnicodeDecodeError:
            return AuthState(error="malformed", source="bearer")
        except TokenError as exc:
            return AuthState(error=exc.reason, source="bearer")
        except RuntimeError:
            return AuthState(error=_ANON_REASON_UNAVAILABLE, source="bearer")
        return _state_of(token, verified, "bearer", None)

    def _may_refresh(self, ctx: RequestContext) -> bool:
        # Cross-site subresource requests (images, fetches from other sites) never rotate tokens;
        # a top-level navigation from another site may (the user followed a link).
        if ctx.sec_fetch_site == "cross-site" and ctx.sec_fetch_mode != "navigate":
            return False
        return not (
            ctx.origin_header is not None
            and ctx.is_foreign(self.auth.config.allowed_origins, self._site_origin)
        )

    async def _refresh_once(self, refresh_token: str) -> Tokens:
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

    async def _serve(self, scope: Scope, receive: Receive, send: Send, websocket: bool) -> None:
        if not websocket and not _carries_credentials(scope):
            await self._serve_anonymous(scope, receive, send)
            return
        ctx = read_context(scope, self._per_tab)
        state = await self._authenticate(scope, ctx, websocket)
        ctx.state = state
        scope["auth"] = state
        scope["user"] = AuthUser(state)
        scope[SCOPE_ENGINE] = self.auth
        if websocket:
            if self._is_protected(ctx.path) and not state.is_authenticated:
                await send({"type": "websocket.close", "code": 1008, "reason": "Unauthenticated"})
                return
            await self.app(scope, receive, _accept_with_cookies(send, ctx))
            return

        wrapped = self._wrap_send(send, ctx, state)
        if self._is_protected(ctx.path) and not state.is_authenticated:
            await self._deny(ctx, state, scope, wrapped)
            return
        if self._on_request is not None:
            replacement = await self._on_request(scope, state)
            if replacement is not None:
                await replacement(scope, receive, wrapped)
                return
        await self.app(scope, receive, wrapped)

    async def _serve_anonymous(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The hot path for requests without cookies or credentials: nothing to verify."""
        state = AuthState()
        scope["auth"] = state
        scope["user"] = AuthUser(state)
        scope[SCOPE_ENGINE] = self.auth

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start" and state.was_used:
                headers = list(message.get("headers", ()))
                make_private(headers, no_store=False, bearer=False)
                message = {**message, "headers": headers}
            await send(message)

        if self._is_protected(scope["path"]) and not state.is_authenticated:
            ctx = read_context(scope, self._per_tab)
            ctx.state = state
            await self._deny(ctx, state, scope, send_wrapper)
            return
        if self._on_request is not None:
            replacement = await self._on_request(scope, state)
            if replacement is not None:
                await replacement(scope, receive, send_wrapper)
                return
        await self.app(scope, receive, send_wrapper)

    def _is_protected(self, path: str) -> bool:
        # The sign-in page itself is never protected: "/**" would otherwise redirect it to itself.
        return (
            self._protect is not None
            and path != self.auth.config.sign_in_path
            and self._protect(path)
        )

    async def _serve_endpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = read_context(scope, self._per_tab)
        if not self.auth.is_open:
            await json_response(send, 503, {"error": "StoreUnavailable"})
            return
        state = await self._authenticate(scope, ctx, websocket=False)
        ctx.state = state
        await self._endpoints.handle(scope, receive, self._wrap_send(send, ctx, state), ctx)

    async def _deny(self, ctx: RequestContext, state: AuthState, scope: Scope, send: Send) -> None:
        if state.error == _ANON_REASON_UNAVAILABLE:
            # The user may well be signed in (their refresh cookie is intact): a sign-in page or
            # a 401 would tell the client otherwise. Ask it to retry instead.
            await json_response(send, 503, {"error": "StoreUnavailable"}, [(b"retry-after", b"1")])
            return
        if ctx.wants_html():
            from urllib.parse import quote

            target = ctx.path
            query = scope.get("query_string", b"")
            if query:
                target += "?" + query.decode("latin-1")
            location = f"{self.auth.config.sign_in_path}?next={quote(target, safe='')}"
            await redirect_response(send, location)
            return
        challenge = 'Bearer realm="authbridge"'
        if state.error is not None and state.error not in _NOT_TOKEN_ERRORS:
            challenge += ', error="invalid_token", error_description="' + state.error + '"'
        await json_response(
            send, 401, {"error": "Unauthenticated"}, [(b"www-authenticate", challenge.encode())]
        )

    def _wrap_send(self, send: Send, ctx: RequestContext, state: AuthState) -> Send:
        per_tab = self._per_tab

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookies = ctx.set_cookies
                hint = ctx.hint_cookie(message.get("status", 200)) if per_tab else None
                if cookies or state.was_used or hint is not None:
                    headers = list(message.get("headers", ()))
                    if hint is not None:
                        cookies = [*cookies, hint]
                    if cookies or state.was_used:
                        make_private(
                            headers, no_store=bool(ctx.set_cookies), bearer=state.source == "bearer"
                        )
                    headers.extend(cookies)
                    message = {**message, "headers": headers}
            await send(message)

        return send_wrapper


def _accept_with_cookies(send: Send, ctx: RequestContext) -> Send:
    """A WebSocket handshake that refreshed the tokens carries the new cookies on its accept
    (browsers store cookies from the 101 response); a refused handshake simply drops them, and
    the unused child token is handed out again on the next refresh."""
    if not ctx.set_cookies:
        return send

    async def send_wrapper(message: Message) -> None:
        if message["type"] == "websocket.accept":
            message = {**message, "headers": [*message.get("headers", ()), *ctx.set_cookies]}
        await send(message)

    return send_wrapper


def _state_of(
    token: str, verified: Any, source: Any, tab: str | None, *, refreshed: bool = False
) -> AuthState:
    return AuthState(
        user_id=verified.user_id,
        session_id=verified.session_id,
        token=token,
        claims=verified.claims,
        expires_at=verified.expires_at,
        source=source,
        tab=tab,
        refreshed=refreshed,
    )


def _carries_credentials(scope: Scope) -> bool:
    """Cookies, an Authorization header or a tab id: anything the full path must look at."""
    for name, _ in scope["headers"]:
        if name == b"cookie" or name == b"authorization" or name == b"x-authbridge-tab":
            return True
    return False


def _is_bearer(header: bytes) -> bool:
    # Other schemes (Basic in front of a staging site, Negotiate) are not ours: cookies still count.
    return header[:7].lower() == b"bearer " or header.strip().lower() == b"bearer"


def _retrieve_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
