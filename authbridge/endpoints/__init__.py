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

This module is the router: the path → handler table and the checks every route shares (method,
origin). The handlers live by family: :mod:`.sign_in` (``signin`` and the providers' routes),
:mod:`.session` (sign-out, refresh, token, session list), :mod:`authbridge.account`
(``account/*``), :mod:`.documents` (the unauthenticated documents); :mod:`._plumbing` reads
bodies and shapes answers for all of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .._asgi import Receive, Scope, Send, json_response
from .._request import RequestContext
from ..account import AccountRoutes
from ..engine import Auth
from ..providers import Redirect, SignInRequest
from ..sessions import Tokens
from ..state import AuthState
from ._plumbing import Handler, Plumbing
from .documents import JWKS_PATH, OPENID_PATH, Documents, client_script, client_script_url
from .session import SessionRoutes
from .sign_in import SignInRoutes

__all__ = ["AuthEndpoints", "client_script", "client_script_url"]


class AuthEndpoints:
    """Serves the auth endpoints for :class:`~authbridge.AuthMiddleware`."""

    def __init__(self, auth: Auth, refresh: Callable[[str], Awaitable[Tokens]]) -> None:
        self.auth = auth
        self.prefix = auth.config.route_prefix
        self._plumbing = Plumbing(auth)
        self._documents = Documents(auth)
        self._sign_in = SignInRoutes(self._plumbing)
        self._routes: dict[str, tuple[str, Handler]] = {
            **self._sign_in.routes(),
            **SessionRoutes(self._plumbing, refresh).routes(),
            **AccountRoutes(self).routes(),
        }

    def paths(self) -> list[str]:
        """Every path these endpoints answer (for frameworks that route before middleware)."""
        names = (*self._routes, *self.auth.provider_routes, "client.js")
        own = [self._plumbing.prefix_slash + name for name in names]
        return [*own, JWKS_PATH, OPENID_PATH]

    @property
    def prefixes(self) -> tuple[str, ...]:
        """Every path :meth:`answers` starts with one of these (one ``str.startswith`` rules
        out most requests)."""
        return (self._plumbing.prefix_slash, JWKS_PATH, OPENID_PATH)

    def answers(self, path: str) -> bool:
        """True for the paths (relative to ``root_path``) these endpoints answer."""
        return path.startswith(self._plumbing.prefix_slash) or path in (JWKS_PATH, OPENID_PATH)

    async def handle_static(self, scope: Scope, send: Send, path: str) -> bool:
        """Serve the documents that need no authentication (``path`` relative to
        ``root_path``). Returns False for other paths."""
        if not self._documents.serves(path):
            return False
        await self._documents.serve(scope, send, path)
        return True

    async def handle(self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext) -> None:
        """Serve one auth endpoint request (``ctx.state`` is already resolved)."""
        trusted = self.auth.trusted_issuers
        if ctx.state is not None and trusted is not None and trusted.issued(ctx.state):
            # Another issuer's token does not drive our sessions: to these endpoints the
            # request is anonymous (no sign-out, token or session list for a foreign session).
            ctx.state = AuthState(source="bearer")
        subpath = ctx.path[len(self._plumbing.prefix_slash) :]
        route = self._routes.get(subpath)
        if route is None:
            provider_route = self.auth.provider_routes.get(subpath)
            if provider_route is None:
                await json_response(send, 404, {"error": "NotFound"})
                return
            await self._sign_in.provider_route(scope, receive, send, ctx, provider_route)
            return
        method, handler = route
        if ctx.method != method and not (method == "GET" and ctx.method == "HEAD"):
            await json_response(
                send, 405, {"error": "MethodNotAllowed"}, [(b"allow", method.encode())]
            )
            return
        config = self.auth.config
        if method == "POST" and ctx.is_foreign(config.allowed_origins, config.site_origin):
            await json_response(send, 403, {"error": "Forbidden"})
            return
        await self._plumbing.run(scope, receive, send, ctx, method, handler)

    # -- what the account routes (authbridge.account) use ----------------------------------------

    def signed_in(self, ctx: RequestContext) -> tuple[str, str]:
        """``(user_id, session_id)`` of the request.

        Raises:
            HTTPError: ``Unauthenticated`` (401) for a request without a session of ours.
        """
        return self._plumbing.signed_in(ctx)

    def sign_in_request(self, ctx: RequestContext) -> SignInRequest:
        """What a provider learns about this request."""
        return self._sign_in.sign_in_request(ctx)

    async def answer_redirect(
        self, send: Send, ctx: RequestContext, request: SignInRequest, result: Redirect, form: bool
    ) -> None:
        """Answer a flow's start: the provider's cookies, then ``{"redirect"}`` (forms: 303)."""
        await self._plumbing.answer_redirect(send, ctx, request, result, form)

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
        await self._plumbing.finish(scope, send, ctx, form, body, payload)
