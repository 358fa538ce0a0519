"""The ASGI side of the middleware: endpoints, route protection, response headers (the
lifespan is in :mod:`._lifespan`).

:meth:`AuthMiddleware.__call__` tells one request's story: the headers are scanned once; the
auth endpoints answer their own paths; a request without credentials is anonymous at once (the
early return); otherwise the :class:`~._authenticator.Authenticator` decides the
:class:`~authbridge.AuthState` (rotating the refresh token when due), building a
:class:`~authbridge._request.RequestContext` only when the request needs one (per-tab slots, an
origin check, cookies to set): a page or fetch with a fresh access cookie needs none. The state
is published in the scope; ``protect=`` and the ``on_request`` hook apply; the app runs with a
``send`` that appends ``Set-Cookie`` / ``Vary`` / ``Cache-Control``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from urllib.parse import quote

from .._asgi import (
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
from .._request import RequestContext, RequestHeaders, scan_headers, scope_route_path
from ..endpoints import AuthEndpoints
from ..engine import Auth
from ..errors import RecentAuthRequired
from ..pages import SignInPage
from ..recent import RecentAuth, is_recent, reauth_location, send_recent_auth_required
from ..routing import Pattern, RouteMatcher, route_matcher
from ..state import SCOPE_ENGINE, AuthState, AuthUser
from ._authenticator import NOT_TOKEN_ERRORS, Authenticator
from ._lifespan import open_lazily, serve_lifespan

__all__ = ["AuthMiddleware", "OnRequest"]

logger = logging.getLogger("authbridge.middleware")


OnRequest = Callable[[Scope, AuthState], Awaitable[ASGIApp | None]]
"""A hook run after authentication and before the app; return an ASGI app (a redirect, a 403)
to answer instead of the app, or ``None`` to continue (Next.js middleware style)."""


class AuthMiddleware:
    """Authenticate every request of an ASGI app.

    Args:
        app: the ASGI app to wrap.
        auth: the engine (default: ``Auth(AuthConfig.from_env())``).
        protect: routes that require a signed-in user: a :func:`~authbridge.ssr.route_matcher`,
            or globs / regexes / callables, matched against the path relative to ``root_path``
            (as the framework routes it). HTML GETs are redirected to the sign-in page with
            ``?next=``; other requests get 401 with ``WWW-Authenticate: Bearer``. A
            :class:`~authbridge.RecentAuth` item requires a recent sign-in on its routes (HTML:
            redirect to the re-authentication page; else 401 ``RecentAuthRequired``).
        on_request: a hook for custom rules, see :data:`OnRequest`.
        sign_in_page: the built-in page served at ``config.sign_in_path`` when the app answers
            404 there (``True``: the default look; a :class:`~authbridge.pages.SignInPage` for
            your own template; ``False``: never).
    """

    def __init__(
        self,
        app: AnyASGIApp,
        auth: Auth | None = None,
        *,
        protect: RouteMatcher | Pattern | RecentAuth | Sequence[Pattern | RecentAuth] | None = None,
        on_request: OnRequest | None = None,
        sign_in_page: SignInPage | bool = True,
    ) -> None:
        self.app: ASGIApp = app
        self.auth = auth if auth is not None else Auth()
        self._recent: tuple[RecentAuth, ...] = ()
        if protect is None or isinstance(protect, RouteMatcher):
            self._protect = protect
        else:
            items = [protect] if isinstance(protect, str | re.Pattern | RecentAuth) else protect
            if callable(items):
                items = [items]
            self._recent = tuple(p for p in items if isinstance(p, RecentAuth))
            plain: list[Pattern] = [p for p in items if not isinstance(p, RecentAuth)]
            # A RecentAuth route needs a signed-in user first.
            rules: list[Pattern] = [r.matcher for r in self._recent]
            self._protect = route_matcher([*plain, *rules])
        self._on_request = on_request
        self._has_rules = bool(self._recent) or on_request is not None
        self._config = config = self.auth.config
        self._sign_in_path = config.sign_in_path
        self._https_site = config.is_https_site
        self._per_tab = config.is_per_tab
        self._authenticator = Authenticator(self.auth)
        self._endpoints = AuthEndpoints(self.auth, self._authenticator.refresh_once)
        if sign_in_page is True:
            sign_in_page = SignInPage(self.auth)
        self._sign_in_page = sign_in_page or None
        # The paths the middleware itself may answer: the auth endpoints, the sign-in page.
        self._own_paths = (*self._endpoints.prefixes, self._sign_in_path)

    # -- ASGI entry -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One request, top to bottom: read it, let the endpoints answer theirs, authenticate,
        publish the state, protect, run the app (this tail serves HTTP and WebSockets alike)."""
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            if kind == "lifespan":
                await serve_lifespan(self.app, self.auth, scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        if not self.auth.is_open:
            if kind == "http":
                _warn_about_bare_litestar(scope)
            await open_lazily(self.auth)
        headers = scan_headers(scope, credentials_only=True)
        path = scope_route_path(scope) if scope.get("root_path") else scope["path"]
        websocket = kind == "websocket"
        if not websocket and path.startswith(self._own_paths):
            if self._endpoints.answers(path):
                await self._serve_endpoint(
                    scope, receive, send, self._context(scope, headers, path)
                )
                return
            if path == self._sign_in_path and self._sign_in_page is not None:
                send = self._sign_in_page.fallback(scope, send)
        # The early return: a request without credentials is anonymous, and needs no context.
        ctx: RequestContext | None = None
        if headers is None:
            state = AuthState.anonymous()
        else:
            pending, ctx = self._authenticator.authenticate(scope, headers, path, websocket)
            state = (
                pending
                if isinstance(pending, AuthState)
                else await self._authenticator.complete(pending)
            )
        scope["auth"] = state
        scope["user"] = AuthUser(state)
        scope[SCOPE_ENGINE] = self.auth
        # Reading the state makes the response private: test the path first.
        protect = self._protect
        denied = (
            protect is not None
            and path != self._sign_in_path  # "/**" must not protect the sign-in page
            and protect(path)
            and not state.is_authenticated
        )
        if websocket:
            if denied:
                await send({"type": "websocket.close", "code": 1008, "reason": "Unauthenticated"})
            else:
                await self.app(scope, receive, _accept_with_cookies(send, ctx))
            return
        started = [False]
        send = _with_auth_headers(send, ctx, state, started)
        if denied:
            await self._deny(ctx or self._context(scope, headers, path), state, send)
            return
        if self._has_rules:  # RecentAuth routes, an on_request hook
            if self._recent and await self._deny_stale(scope, headers, path, ctx, state, send):
                return
            if self._on_request is not None:
                replacement = await self._on_request(scope, state)
                if replacement is not None:
                    await replacement(scope, receive, send)
                    return
        try:
            await self.app(scope, receive, send)
        except RecentAuthRequired as exc:
            # require_recent_auth() raised in a handler before it answered: answer it here.
            if started[0]:
                raise
            await self._send_stale(ctx or self._context(scope, headers, path), send, exc.max_age)

    def _context(self, scope: Scope, headers: RequestHeaders | None, path: str) -> RequestContext:
        return RequestContext(scope, self._https_site, self._per_tab, headers, path)

    # -- serving --------------------------------------------------------------------------------

    async def _serve_endpoint(
        self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext
    ) -> None:
        if await self._endpoints.handle_static(scope, send, ctx.path):
            return
        if not self.auth.is_open:
            await json_response(send, 503, {"error": "StoreUnavailable"})
            return
        pending, _ = self._authenticator.authenticate(scope, ctx.headers, ctx.path, ctx=ctx)
        state = (
            pending
            if isinstance(pending, AuthState)
            else await self._authenticator.complete(pending)
        )
        ctx.state = state
        send = _with_auth_headers(send, ctx, state, [False])
        await self._endpoints.handle(scope, receive, send, ctx)

    async def _deny_stale(
        self,
        scope: Scope,
        headers: RequestHeaders | None,
        path: str,
        ctx: RequestContext | None,
        state: AuthState,
        send: Send,
    ) -> bool:
        """Answer (and return True) when a :class:`RecentAuth` rule covers the path and the
        user's last sign-in is older than it allows."""
        if path == self._config.sign_in_path or path == self._config.reauth_page.split("?")[0]:
            return False
        now = self.auth.clock()
        for rule in self._recent:
            if rule.matcher(path) and not is_recent(state, rule.max_age, now):
                await self._send_stale(
                    ctx or self._context(scope, headers, path), send, rule.max_age
                )
                return True
        return False

    async def _send_stale(self, ctx: RequestContext, send: Send, max_age: timedelta) -> None:
        target = ctx.public_path(ctx.path)
        query = ctx.scope.get("query_string", b"")
        if query:
            target += "?" + query.decode("latin-1")
        await send_recent_auth_required(
            send,
            max_age,
            html=ctx.wants_html(),
            location=reauth_location(ctx.public_path(self._config.reauth_page), target),
        )

    async def _deny(self, ctx: RequestContext, state: AuthState, send: Send) -> None:
        if state.error == "unavailable":
            # The user may well be signed in (their refresh cookie is intact): a sign-in page or
            # a 401 would tell the client otherwise. Ask it to retry instead.
            await json_response(send, 503, {"error": "StoreUnavailable"}, [(b"retry-after", b"1")])
            return
        if ctx.wants_html():
            target = ctx.public_path(ctx.path)
            query = ctx.scope.get("query_string", b"")
            if query:
                target += "?" + query.decode("latin-1")
            sign_in = ctx.public_path(self._config.sign_in_path)
            await redirect_response(send, f"{sign_in}?next={quote(target, safe='')}")
            return
        challenge = 'Bearer realm="authbridge"'
        if state.error is not None and state.error not in NOT_TOKEN_ERRORS:
            challenge += ', error="invalid_token", error_description="' + state.error + '"'
        await json_response(
            send, 401, {"error": "Unauthenticated"}, [(b"www-authenticate", challenge.encode())]
        )


def _with_auth_headers(
    send: Send, ctx: RequestContext | None, state: AuthState, started: list[bool]
) -> Send:
    """``send``, adding the queued ``Set-Cookie`` headers to the response, and making it private
    (``Cache-Control: private``, ``Vary: Cookie``) when it depends on who is signed in;
    ``started[0]`` turns True when the response starts."""
    if ctx is None:  # nothing to set (no context was needed): the commonest response

        async def send_plain(message: Message) -> None:
            if message["type"] == "http.response.start":
                started[0] = True
                if state.was_used:
                    headers = list(message.get("headers", ()))
                    make_private(headers, no_store=False, bearer=state.source == "bearer")
                    message = {**message, "headers": headers}
            await send(message)

        return send_plain

    async def send_wrapper(message: Message) -> None:
        if message["type"] == "http.response.start":
            started[0] = True
            cookies = ctx.set_cookies
            if ctx.tab is not None or ctx.tab_from_hint:  # per_tab: the hint may change
                cookies = ctx.outgoing_cookies(message.get("status", 200))
            if cookies or state.was_used:
                # New tokens are never cached.
                message = _private(message, cookies, no_store=bool(ctx.set_cookies), state=state)
        await send(message)

    return send_wrapper


def _private(
    message: Message, cookies: tuple[tuple[bytes, bytes], ...], *, no_store: bool, state: AuthState
) -> Message:
    """A copy of the ``http.response.start`` message, made private, with ``cookies`` added."""
    headers = list(message.get("headers", ()))
    make_private(headers, no_store=no_store, bearer=state.source == "bearer")
    headers.extend(cookies)
    return {**message, "headers": headers}


def _warn_about_bare_litestar(scope: Scope) -> None:
    """Litestar routes before any middleware runs: added with ``DefineMiddleware`` alone, the
    middleware never sees ``/api/auth/*`` (404). Say so instead of failing silently."""
    app = scope.get("litestar_app")
    if app is None:
        return
    plugins = getattr(app, "plugins", ())
    if not any(type(plugin).__name__ == "AuthPlugin" for plugin in plugins):
        logger.error(
            "AuthMiddleware runs inside Litestar without authbridge.litestar.AuthPlugin: the auth "
            "endpoints (/api/auth/*) answer 404; use Litestar(..., plugins=[AuthPlugin(auth)])"
        )


def _accept_with_cookies(send: Send, ctx: RequestContext | None) -> Send:
    """A WebSocket handshake that refreshed the tokens carries the new cookies on its accept
    (browsers store cookies from the 101 response); a refused handshake simply drops them, and
    the unused child token is handed out again on the next refresh."""
    if ctx is None or not ctx.set_cookies:
        return send

    async def send_wrapper(message: Message) -> None:
        if message["type"] == "websocket.accept":
            message = {**message, "headers": [*message.get("headers", ()), *ctx.set_cookies]}
        await send(message)

    return send_wrapper
