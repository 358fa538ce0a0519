"""The auth HTTP endpoints (default prefix ``/api/auth``) and the discovery documents.

Wire formats (DESIGN §8) are a contract:

* ``POST signin`` JSON ``{"provider": "password", "params": {"flow", "email", "password"}}`` →
  ``{"signedIn": true, "userId", "sessionId"}``; or an HTML form (``provider``, ``flow``,
  ``email``, ``password``, ``redirectTo``) → 303 to ``redirectTo`` or back with ``?error=<Code>``.
* ``POST signout`` → ``{"signedOut": true}`` (303 for forms).
* ``POST refresh`` → ``{"token", "expiresAt", "userId", "sessionId"}``.
* ``POST token`` → ``{"token", "expiresAt"}`` (``expiresAt`` in epoch milliseconds).
* ``GET sessions`` → ``{"sessions": [{"sessionId", "createdAt", "lastActiveAt", "userAgent",
  "current"}]}``; ``POST sessions/revoke`` ``{"sessionId"}`` or ``{"others": true}``.
* ``GET client.js``, ``GET /.well-known/jwks.json``, ``GET /.well-known/openid-configuration``.

Errors are ``{"error": "<Code>"}``: 400 malformed, 401, 403 foreign origin, 404, 405, 413, 415,
429 (with ``Retry-After``), 503 when the database is unavailable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit

from ._asgi import (
    BodyTooLarge,
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    json_response,
    read_body,
    redirect_response,
    send_response,
)
from ._request import TAB_RE, RequestContext
from .account import AccountRoutes
from .cookies import set_cookie
from .devices import DEVICE_COOKIE, DEVICE_COOKIE_MAX_AGE
from .engine import Auth, SignInResult
from .errors import AuthError, InvalidParams, StoreUnavailable, TokenError, TooManyAttempts
from .providers import (
    Page,
    ProviderRoute,
    Redirect,
    RouteRequest,
    SignedIn,
    SignInRequest,
    Started,
)
from .routing import safe_redirect_path
from .sessions import Tokens
from .state import AuthState

__all__ = ["AuthEndpoints", "client_script", "client_script_url"]

logger = logging.getLogger("authbridge.endpoints")

MAX_BODY = 64 * 1024
JWKS_PATH = "/.well-known/jwks.json"
OPENID_PATH = "/.well-known/openid-configuration"
_DISCOVERY_CACHE = b"public, max-age=15, stale-while-revalidate=15, stale-if-error=86400"
_FORM = "application/x-www-form-urlencoded"
_NO_STORE = [(b"cache-control", b"private, no-store")]
"""Token and session responses are never stored by any cache (RFC 6749 §5.1)."""
_REFRESH_FAILURES = {
    "refresh_token_reused": ("RefreshTokenReused", 401),
    "invalid_refresh_token": ("InvalidRefreshToken", 401),
    "unavailable": ("StoreUnavailable", 503),
}
"""Auth-state errors of a refresh the middleware already attempted, as endpoint errors."""


def client_script() -> bytes:
    """The browser client's source (``authbridge/static/authbridge.js``)."""
    return resources.files("authbridge").joinpath("static/authbridge.js").read_bytes()


_SCRIPT = client_script()
_SCRIPT_VERSION = hashlib.sha256(_SCRIPT).hexdigest()[:12]


def client_script_url(prefix: str) -> str:
    """The cache-busted URL of the browser client under ``prefix``."""
    return f"{prefix}/client.js?v={_SCRIPT_VERSION}"


_warned_plain_http: set[str] = set()


def _warn_secure_cookies_over_http(origin: str) -> None:
    """Secure cookies set over plain http never come back: say so once per origin."""
    if origin in _warned_plain_http or len(_warned_plain_http) >= 16:
        return
    _warned_plain_http.add(origin)
    logger.warning(
        "signed in over plain http at %s: the session cookies are Secure (only localhost and test "
        "hosts get plain ones), so a browser or test client will not send them back; use https, "
        "or localhost / http://testserver / *.test in tests (see authbridge.testing)",
        origin,
    )


def _form_echo(body: Mapping[str, Any]) -> dict[str, str]:
    """What a failed sign-in form gets back in the redirect so the page can show the error
    beside that form with the email kept: the flow and the email, never the password."""
    echo: dict[str, str] = {}
    for name in ("flow", "email"):
        value = body.get(name)
        if isinstance(value, str) and 0 < len(value) <= 320:
            echo[name] = value
    return echo


class _HTTPError(Exception):
    def __init__(self, status: int, code: str) -> None:
        self.status = status
        self.code = code
        super().__init__(code)


def _millis(value: Any) -> int:
    return int(value.timestamp() * 1000)


class AuthEndpoints:
    """Serves the auth endpoints for :class:`~authbridge.AuthMiddleware`."""

    def __init__(self, auth: Auth, refresh: Callable[[str], Awaitable[Tokens]]) -> None:
        self.auth = auth
        self._refresh = refresh
        self.prefix = auth.config.route_prefix
        self._prefix_slash = self.prefix + "/"
        self._routes: dict[str, tuple[str, Callable[..., Awaitable[None]]]] = {
            "signin": ("POST", self._sign_in),
            "signout": ("POST", self._sign_out),
            "refresh": ("POST", self._refresh_endpoint),
            "token": ("POST", self._token),
            "sessions": ("GET", self._sessions),
            "sessions/revoke": ("POST", self._revoke),
        }
        self._routes.update(AccountRoutes(self).routes())

    def paths(self) -> list[str]:
        """Every path these endpoints answer (for frameworks that route before middleware)."""
        names = (*self._routes, *self.auth.provider_routes, "client.js")
        own = [self._prefix_slash + name for name in names]
        return [*own, JWKS_PATH, OPENID_PATH]

    def answers(self, path: str) -> bool:
        """True for the paths (relative to ``root_path``) these endpoints answer."""
        return path.startswith(self._prefix_slash) or path in (JWKS_PATH, OPENID_PATH)

    async def handle_static(self, scope: Scope, send: Send, path: str) -> bool:
        """Serve the documents that need no authentication (``path`` relative to
        ``root_path``). Returns False for other paths."""
        if path not in (JWKS_PATH, OPENID_PATH, self.prefix + "/client.js"):
            return False
        if scope.get("method") not in ("GET", "HEAD"):
            await json_response(
                send, 405, {"error": "MethodNotAllowed"}, [(b"allow", b"GET, HEAD")]
            )
            return True
        if path == self.prefix + "/client.js":
            versioned = f"v={_SCRIPT_VERSION}".encode() in scope.get("query_string", b"")
            cache = b"public, max-age=31536000, immutable" if versioned else b"public, max-age=300"
            await send_response(
                send,
                200,
                _SCRIPT,
                [(b"cache-control", cache), (b"x-content-type-options", b"nosniff")],
                b"text/javascript; charset=utf-8",
            )
            return True
        try:
            await self.auth.open()
            document = self.auth.jwks() if path == JWKS_PATH else self.auth.openid_configuration()
        except StoreUnavailable:
            await json_response(send, 503, {"error": "StoreUnavailable"})
            return True
        body = json.dumps(document, separators=(",", ":")).encode()
        await send_response(
            send, 200, body, [(b"cache-control", _DISCOVERY_CACHE)], b"application/json"
        )
        return True

    async def handle(self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext) -> None:
        """Serve one auth endpoint request (``ctx.state`` is already resolved)."""
        trusted = self.auth.trusted_issuers
        if ctx.state is not None and trusted is not None and trusted.issued(ctx.state):
            # Another issuer's token does not drive our sessions: to these endpoints the
            # request is anonymous (no sign-out, token or session list for a foreign session).
            ctx.state = AuthState(source="bearer")
        subpath = ctx.path[len(self._prefix_slash) :]
        route = self._routes.get(subpath)
        if route is None:
            provider_route = self.auth.provider_routes.get(subpath)
            if provider_route is None:
                await json_response(send, 404, {"error": "NotFound"})
                return
            await self._provider_route(scope, receive, send, ctx, provider_route)
            return
        method, handler = route
        if ctx.method != method and not (method == "GET" and ctx.method == "HEAD"):
            await json_response(
                send, 405, {"error": "MethodNotAllowed"}, [(b"allow", method.encode())]
            )
            return
        if method == "POST" and ctx.is_foreign(
            self.auth.config.allowed_origins, self.auth.config.site_origin
        ):
            await json_response(send, 403, {"error": "Forbidden"})
            return
        await self._run(scope, receive, send, ctx, method, handler)

    async def _run(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        ctx: RequestContext,
        method: str,
        handler: Callable[..., Awaitable[None]],
        *,
        navigation: bool = False,
    ) -> None:
        """Read the body, run ``handler`` and turn its errors into responses (form posts and
        ``navigation`` requests go back to a page with ``?error=<Code>``)."""
        form = navigation
        echo: dict[str, str] = {}
        try:
            body: Mapping[str, Any] = {}
            if method == "POST":
                body, form = await self._read_body(scope, receive)
                form = form or navigation
                if form:
                    echo = _form_echo(body)
                tab = body.get("authbridge_tab") if form else None
                if self.auth.config.is_per_tab and isinstance(tab, str) and TAB_RE.match(tab):
                    ctx.use_tab(tab)
            await handler(scope, send, ctx, body, form)
        except _HTTPError as exc:
            await self._fail(send, ctx, scope, exc.status, exc.code, form, echo=echo)
        except TooManyAttempts as exc:
            retry = str(max(1, math.ceil(exc.retry_after))).encode()
            await self._fail(
                send, ctx, scope, exc.status, exc.code, form, [(b"retry-after", retry)], echo=echo
            )
        except InvalidParams as exc:
            # The message names the field and never holds a submitted value.
            await self._fail(
                send, ctx, scope, exc.status, exc.code, form, detail=str(exc), echo=echo
            )
        except AuthError as exc:
            if exc.status >= 500 and not isinstance(exc, StoreUnavailable):
                logger.error("auth endpoint failed: %s", exc.code)
            await self._fail(send, ctx, scope, exc.status, exc.code, form, echo=echo)
        except ClientDisconnected:
            return

    # -- plumbing -------------------------------------------------------------------------------

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[Mapping[str, Any], bool]:
        content_type = ""
        for name, value in scope.get("headers", ()):
            if name == b"content-type":
                content_type = value.decode("latin-1").split(";")[0].strip().lower()
        try:
            raw = await read_body(receive, MAX_BODY)
        except BodyTooLarge as exc:
            raise _HTTPError(413, "BodyTooLarge") from exc
        if content_type == "application/json":
            try:
                data = json.loads(raw) if raw.strip() else {}
            except (ValueError, RecursionError) as exc:
                # RecursionError: deeply nested arrays fit easily in the size limit.
                raise _HTTPError(400, "InvalidJSON") from exc
            if not isinstance(data, dict) or not _is_unicode(data):
                raise _HTTPError(400, "InvalidJSON")
            return data, False
        if content_type == _FORM:
            try:
                pairs = parse_qsl(
                    raw.decode("utf-8"),
                    keep_blank_values=True,
                    strict_parsing=False,
                    max_num_fields=50,
                    errors="strict",  # %FF is garbage, not a U+FFFD password
                )
            except (UnicodeDecodeError, ValueError) as exc:
                raise _HTTPError(400, "InvalidForm") from exc
            return dict(pairs), True
        if not raw.strip() and content_type == "":
            return {}, False
        raise _HTTPError(415, "UnsupportedMediaType")

    async def _fail(
        self,
        send: Send,
        ctx: RequestContext,
        scope: Scope,
        status: int,
        code: str,
        form: bool,
        headers: list[tuple[bytes, bytes]] | None = None,
        *,
        detail: str | None = None,
        echo: Mapping[str, str] | None = None,
    ) -> None:
        if form:
            await redirect_response(send, self._back(scope, ctx, {"error": code, **(echo or {})}))
            return
        body = {"error": code} if not detail else {"error": code, "detail": detail}
        await json_response(send, status, body, headers or [])

    def _back(self, scope: Scope, ctx: RequestContext, params: dict[str, str]) -> str:
        """The page a form came from (same origin only), else the sign-in page, plus params."""
        target = ctx.public_path(self.auth.config.sign_in_path)
        referer = _same_origin_referer(scope, ctx)
        if referer is not None:
            path = safe_redirect_path(referer.path)
            if path is not None:
                query = [
                    (k, v)
                    for k, v in parse_qsl(referer.query)
                    if k not in params and k not in ("error", "started")
                ]
                target = path + ("?" + urlencode(query) if query else "")
        sep = "&" if "?" in target else "?"
        return target + sep + urlencode(params)

    def _form_redirect(
        self, scope: Scope, ctx: RequestContext, form: bool, body: Mapping[str, Any]
    ) -> str | None:
        """Where a successful form post goes (``None``: not a form, answer JSON):
        ``redirectTo``, else the ``next`` parameter of the (same-origin) page the form is on,
        else the app's root; always a same-site path."""
        if not form:
            return None
        target = safe_redirect_path(body.get("redirectTo"))
        if target is None and "redirectTo" not in body:
            referer = _same_origin_referer(scope, ctx)
            if referer is not None:
                target = safe_redirect_path(dict(parse_qsl(referer.query)).get("next"))
        return target or ctx.public_path("/")

    # -- endpoints ------------------------------------------------------------------------------

    async def _sign_in(
        self, scope: Scope, send: Send, ctx: RequestContext, body: Mapping[str, Any], form: bool
    ) -> None:
        params: Any
        if form:
            provider = body.get("provider") or "password"
            # redirectTo stays in params: OAuth carries it away and back, a magic link to it.
            params = {k: v for k, v in body.items() if k not in ("provider", "authbridge_tab")}
        else:
            provider = body.get("provider")
            params = body.get("params")
            if not isinstance(provider, str) or not provider:
                raise InvalidParams("provider is required (a string)")
            if not isinstance(params, dict):
                raise InvalidParams("params is required (an object)")
        request = self.sign_in_request(ctx)
        result = await self.auth.sign_in_step(str(provider), params, request)
        await self._answer(scope, send, ctx, request, result, form, body)

    def sign_in_request(self, ctx: RequestContext) -> SignInRequest:
        """What a provider learns about this request."""
        session_id = self._current_session(ctx)
        state = ctx.state
        user_id = state.user_id if state is not None and session_id == state.session_id else None
        cookies = ctx.cookies
        if ctx.names.secure:
            # Only __Host- cookies: a sibling subdomain cannot plant them.
            cookies = {n[7:]: v for n, v in cookies.items() if n.startswith("__Host-")}
        known = self.auth.devices.read(cookies.get(DEVICE_COOKIE)) if self.auth.devices else None
        return SignInRequest(
            ip=ctx.client_ip,
            user_agent=ctx.user_agent,
            user_id=user_id,
            session_id=session_id,
            cookies=cookies,
            device=known[1] if known else None,
            device_id=known[0] if known else None,
            tab=ctx.tab,
            auth_time=state.auth_time if user_id is not None and state is not None else None,
        )

    def _set_cookie(
        self, ctx: RequestContext, name: str, value: str, max_age: int, same_site: str = "Lax"
    ) -> None:
        secure = ctx.names.secure
        ctx.queue_cookie(
            set_cookie(
                ("__Host-" if secure else "") + name,
                value,
                # Browsers drop SameSite=None cookies without Secure (and accept Secure ones
                # from http://localhost).
                secure=secure or same_site == "None",
                max_age=max_age,
                same_site=same_site,
            )
        )

    async def _answer(
        self,
        scope: Scope,
        send: Send,
        ctx: RequestContext,
        request: SignInRequest,
        result: SignInResult | Started | Redirect,
        form: bool,
        body: Mapping[str, Any],
    ) -> None:
        """Map a sign-in step to DESIGN §17.2's shapes (forms and navigations: redirects)."""
        for cookie in request.set_cookies:
            self._set_cookie(ctx, cookie.name, cookie.value, cookie.max_age, cookie.same_site)
        if (
            isinstance(result, SignInResult)
            and request.signed_in_accounts
            and self.auth.devices is not None
        ):
            device = self.auth.devices.issue(request.signed_in_accounts[-1], request.device_id)
            self._set_cookie(ctx, DEVICE_COOKIE, device, DEVICE_COOKIE_MAX_AGE)
        if isinstance(result, Redirect):
            if form:
                await redirect_response(send, result.url)
            else:
                await json_response(send, 200, {"redirect": result.url}, _NO_STORE)
            return
        if isinstance(result, Started):
            payload: dict[str, Any] = {"started": True}
            if result.factor is not None:
                payload["factor"] = result.factor
            if form and result.factor is not None:
                # A second factor is needed: back to the form's page (the sign-in page), which
                # asks for it, keeping where the browser was going.
                params = {"factor": result.factor}
                location = self._form_redirect(scope, ctx, form, body)
                if location is not None and location != "/":
                    params["next"] = location
                target = self._back(scope, ctx, params)
                if urlsplit(target).path.startswith(ctx.public_path(self._prefix_slash)):
                    # From a page of ours (the email link's confirm page): the sign-in page.
                    target = ctx.public_path(self.auth.config.sign_in_path)
                    target += "?" + urlencode(params)
                await redirect_response(send, target)
                return
            if form:
                # Back to the form's page, which now asks for the code it says was sent.
                await redirect_response(send, self._back(scope, ctx, _started_params(body)))
                return
            await json_response(send, 200, payload, _NO_STORE)
            return
        ctx.issue_tokens(self.auth, result.tokens)
        if ctx.facts.secure and scope.get("scheme") == "http":
            _warn_secure_cookies_over_http(ctx.origin)
        await ctx.end_evicted(self.auth)
        self.auth.remember_token(result.tokens.access)
        location = self._form_redirect(scope, ctx, form, body)
        if location is not None and result.redirect_to is not None:
            location = safe_redirect_path(result.redirect_to) or location
        if location is not None:
            await redirect_response(send, location)
            return
        await json_response(
            send, 200, {"signedIn": True, "userId": result.user_id, "sessionId": result.session_id}
        )

    async def _provider_route(
        self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext, route: ProviderRoute
    ) -> None:
        """Dispatch a route a provider owns (OAuth callback, email link page)."""
        allowed = set(route.methods) | ({"HEAD"} if "GET" in route.methods else set())
        if ctx.method not in allowed:
            allow = ", ".join(sorted(allowed)).encode()
            await json_response(send, 405, {"error": "MethodNotAllowed"}, [(b"allow", allow)])
            return
        if (
            ctx.method == "POST"
            and route.check_origin
            and ctx.is_foreign(self.auth.config.allowed_origins, self.auth.config.site_origin)
        ):
            await json_response(send, 403, {"error": "Forbidden"})
            return

        async def handler(
            scope: Scope, send: Send, ctx: RequestContext, body: Mapping[str, Any], form: bool
        ) -> None:
            request = self.sign_in_request(ctx)
            query = dict(
                parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            )
            answer = await route.handler(
                self.auth.provider_context, RouteRequest(ctx.method, query, body, request)
            )
            if isinstance(answer, Page):
                for cookie in request.set_cookies:
                    self._set_cookie(
                        ctx, cookie.name, cookie.value, cookie.max_age, cookie.same_site
                    )
                await send_response(
                    send,
                    answer.status,
                    answer.body.encode("utf-8"),
                    [*_NO_STORE, *((k.encode(), v.encode()) for k, v in answer.headers)],
                    answer.content_type.encode("latin-1"),
                )
                return
            if (
                isinstance(answer, SignedIn)
                and answer.tab is not None
                and self.auth.config.session_sharing == "per_tab"
                and TAB_RE.match(answer.tab)
            ):
                # The session lands in the tab that started the flow (and replaces that slot's).
                ctx.use_tab(answer.tab)
                request = dataclasses.replace(
                    request, session_id=self._current_session(ctx), tab=answer.tab
                )
            owner = self.auth.route_owners.get(route.path)
            result = await self.auth.conclude(answer, request, provider=owner)
            await self._answer(scope, send, ctx, request, result, form, body)

        method = "POST" if ctx.method == "POST" else "GET"
        # A GET is a navigation (errors go back to a page) unless it asks for JSON (fetch).
        accept = ctx.headers.accept
        wants_json = accept is not None and b"application/json" in accept
        navigation = ctx.method != "POST" and not wants_json
        await self._run(scope, receive, send, ctx, method, handler, navigation=navigation)

    def _current_session(self, ctx: RequestContext) -> str | None:
        """The session this browser slot is signed in with (replaced on a new sign-in)."""
        if ctx.state is not None and ctx.state.source == "cookie" and ctx.state.tab == ctx.tab:
            return ctx.state.session_id
        token = ctx.cookies.get(ctx.names.jwt)
        if not token:
            return None
        try:
            return self.auth.verify_token(token).session_id
        except TokenError:
            return None

    async def _sign_out(
        self, scope: Scope, send: Send, ctx: RequestContext, body: Mapping[str, Any], form: bool
    ) -> None:
        state = ctx.state
        if state is not None and state.source == "bearer" and state.is_authenticated:
            # An API client signs out the session its bearer token belongs to.
            session_id: str | None = state.session_id
        else:
            session_id = self._current_session(ctx)
        if session_id is None and ctx.state is not None and ctx.state.error == "unavailable":
            # The session could not be identified because the database is down: saying
            # "signed out" while its refresh token stays valid would be a lie. Keep the cookies
            # so the client can retry.
            raise StoreUnavailable("cannot sign out while the database is unavailable")
        if session_id is not None:
            user_id = state.user_id if state is not None else None
            await self.auth.sign_out(
                session_id, user_id=user_id, ip=ctx.client_ip, user_agent=ctx.user_agent
            )
        ctx.clear_tokens(self.auth)
        location = self._form_redirect(scope, ctx, form, body)
        if location is not None:
            await redirect_response(send, location)
            return
        await json_response(send, 200, {"signedOut": True})

    async def _refresh_endpoint(
        self, scope: Scope, send: Send, ctx: RequestContext, body: Mapping[str, Any], form: bool
    ) -> None:
        state = ctx.state
        if state is not None and state.error in _REFRESH_FAILURES:
            # The middleware already tried this refresh token (and cleared the cookies).
            code, status = _REFRESH_FAILURES[state.error]
            raise _HTTPError(status, code)
        if state is None or not state.refreshed:
            refresh = ctx.cookies.get(ctx.names.refresh)
            if not refresh:
                raise _HTTPError(401, "InvalidRefreshToken")
            try:
                tokens = await self._refresh(refresh)
            except AuthError as exc:
                if exc.status == 401:
                    ctx.clear_tokens(self.auth)
                raise
            ctx.issue_tokens(self.auth, tokens)
            await ctx.end_evicted(self.auth)
            access = tokens.access
            payload = {
                "token": access.token,
                "expiresAt": _millis(access.expires_at),
                "userId": access.user_id,
                "sessionId": access.session_id,
            }
        else:
            payload = {
                "token": state.token,
                "expiresAt": _millis(state.expires_at),
                "userId": state.user_id,
                "sessionId": state.session_id,
            }
        await json_response(send, 200, payload, _NO_STORE)

    async def _token(
        self, scope: Scope, send: Send, ctx: RequestContext, body: Mapping[str, Any], form: bool
    ) -> None:
        state = ctx.state
        if state is None or not state.is_authenticated or state.expires_at is None:
            raise _HTTPError(401, "Unauthenticated")
        await json_response(
            send, 200, {"token": state.token, "expiresAt": _millis(state.expires_at)}, _NO_STORE
        )

    async def answer_redirect(
        self, send: Send, ctx: RequestContext, request: SignInRequest, result: Redirect, form: bool
    ) -> None:
        """Answer a flow's start: the provider's cookies, then ``{"redirect"}`` (forms: 303)."""
        for cookie in request.set_cookies:
            self._set_cookie(ctx, cookie.name, cookie.value, cookie.max_age, cookie.same_site)
        if form:
            await redirect_response(send, result.url)
        else:
            await json_response(send, 200, {"redirect": result.url}, _NO_STORE)

    async def finish(
        self,
        scope: Scope,
        send: Send,
        ctx: RequestContext,
        form: bool,
        body: Mapping[str, Any],
        payload: dict[str, Any],
    ) -> None:
        """Answer a successful action: ``payload`` as JSON, or for forms a 303 to
        ``redirectTo`` (else the page the form is on)."""
        location = self._form_redirect(scope, ctx, form, body)
        if location is not None:
            await redirect_response(send, location)
            return
        await json_response(send, 200, payload, _NO_STORE)

    def signed_in(self, ctx: RequestContext) -> tuple[str, str]:
        """``(user_id, session_id)`` of the request.

        Raises:
            AuthError: ``Unauthenticated`` (401) for a request without a session of ours.
        """
        return self._user(ctx)

    def _user(self, ctx: RequestContext) -> tuple[str, str]:
        state = ctx.state
        if state is None or state.user_id is None or state.session_id is None:
            raise _HTTPError(401, "Unauthenticated")
        return state.user_id, state.session_id

    async def _sessions(
        self, scope: Scope, send: Send, ctx: RequestContext, body: Mapping[str, Any], form: bool
    ) -> None:
        user_id, current = self._user(ctx)
        sessions = await self.auth.list_sessions(user_id)
        await json_response(
            send,
            200,
            {
                "sessions": [
                    {
                        "sessionId": s.session_id,
                        "createdAt": s.created_at.isoformat(),
                        "lastActiveAt": s.last_active_at.isoformat(),
                        "userAgent": s.user_agent,
                        "current": s.session_id == current,
                    }
                    for s in sessions
                ]
            },
            _NO_STORE,
        )

    async def _revoke(
        self, scope: Scope, send: Send, ctx: RequestContext, body: Mapping[str, Any], form: bool
    ) -> None:
        user_id, current = self._user(ctx)
        others = body.get("others")
        if others is True or (form and others in ("true", "1", "on")):
            ended = await self.auth.sign_out_other_sessions(user_id, current)
            await self.auth.events.emit(
                "session_revoked",
                user_id=user_id,
                session_id=current,
                reason=f"others ({ended})",
                ip=ctx.client_ip,
                user_agent=ctx.user_agent,
            )
        else:
            session_id = body.get("sessionId")
            if not isinstance(session_id, str) or not session_id:
                raise _HTTPError(400, "InvalidParams")
            mine = {s.session_id for s in await self.auth.list_sessions(user_id)}
            if session_id not in mine:
                raise _HTTPError(404, "SessionNotFound")
            await self.auth.sign_out(
                session_id,
                user_id=user_id,
                ip=ctx.client_ip,
                user_agent=ctx.user_agent,
                kind="session_revoked",
            )
            if session_id == current:
                ctx.clear_tokens(self.auth)
        location = self._form_redirect(scope, ctx, form, body)
        if location is not None:
            await redirect_response(send, location)
            return
        await json_response(send, 200, {"revoked": True})


def _started_params(body: Mapping[str, Any]) -> dict[str, str]:
    """``?started=<flow or provider>&email=...`` for the page a code-sending form came from."""
    flow, provider = body.get("flow"), body.get("provider")
    started = flow if isinstance(flow, str) and flow else provider
    params = {"started": started if isinstance(started, str) and started else "password"}
    for name in ("email", "phone"):
        value = body.get(name)
        if isinstance(value, str) and 0 < len(value.strip()) <= 320:
            params[name] = value.strip()
    return params


def _same_origin_referer(scope: Scope, ctx: RequestContext) -> SplitResult | None:
    """The ``Referer`` header, parsed, when it names a page of this origin."""
    for name, value in scope.get("headers", ()):
        if name == b"referer":
            try:
                parts: SplitResult = urlsplit(value.decode("latin-1"))
            except ValueError:  # e.g. "https://[broken" (an invalid IPv6 host)
                return None
            if f"{parts.scheme}://{parts.netloc}" == ctx.origin and parts.path.startswith("/"):
                return parts
            return None
    return None


def _is_unicode(data: Any) -> bool:
    """False when JSON ``\\ud800``-style escapes left lone surrogates, which no database
    driver can encode."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
