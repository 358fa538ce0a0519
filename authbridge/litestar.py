"""Litestar integration: a plugin that installs the middleware the native way, and a guard.

::

    from litestar import Litestar, Request, get
    from authbridge import Auth, AuthState, AuthUser
    from authbridge.litestar import AuthPlugin, requires_auth

    @get("/me", guards=[requires_auth])
    async def me(request: Request[AuthUser, AuthState, object]) -> dict[str, str | None]:
        return {"userId": request.auth.user_id}

    app = Litestar([me], plugins=[AuthPlugin(Auth())])

Litestar runs middleware only after it has matched a route, so ``DefineMiddleware(AuthMiddleware)``
alone leaves the auth endpoints (``/api/auth/*``, ``/.well-known/*``) answering 404. The plugin
adds that middleware *and* routes for those paths (the middleware answers them before the route
handler runs), and opens / closes the engine with the app's lifespan, so a configuration error
fails startup.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

from litestar import Litestar, MediaType, Request, Response, asgi
from litestar.config.app import AppConfig
from litestar.connection import ASGIConnection
from litestar.exceptions import (
    NotAuthorizedException,
    NotFoundException,
    ServiceUnavailableException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.plugins import InitPluginProtocol
from litestar.types import Receive, Scope, Send

from .endpoints import AuthEndpoints
from .engine import Auth
from .middleware import AuthMiddleware
from .middleware._app import OnRequest
from .middleware._authenticator import NOT_TOKEN_ERRORS
from .pages import PAGE_HEADERS, SignInPage
from .routing import Pattern, RouteMatcher
from .state import AuthState, AuthUser, get_auth_state

__all__ = ["AuthPlugin", "AuthRequest", "requires_auth"]

AuthRequest = Request[AuthUser, AuthState, Any]
"""A Litestar request whose ``.user`` is an :class:`~authbridge.AuthUser` and ``.auth`` the
:class:`~authbridge.AuthState`."""


class AuthPlugin(InitPluginProtocol):
    """Install authbridge in a Litestar app: ``Litestar(..., plugins=[AuthPlugin(auth)])``.

    Args:
        auth: the engine (default: ``Auth(AuthConfig.from_env())``).
        protect, on_request, sign_in_page: as for :class:`~authbridge.AuthMiddleware`.
    """

    __slots__ = ("_sign_in_page", "auth", "middleware")

    def __init__(
        self,
        auth: Auth | None = None,
        *,
        protect: RouteMatcher | Pattern | list[Pattern] | None = None,
        on_request: OnRequest | None = None,
        sign_in_page: SignInPage | bool = True,
    ) -> None:
        self.auth = auth if auth is not None else Auth()
        if sign_in_page is True:
            sign_in_page = SignInPage(self.auth)
        self._sign_in_page = sign_in_page or None
        # Litestar types its middleware with its own TypedDict scopes; ours is plain ASGI.
        self.middleware = DefineMiddleware(
            cast(Any, AuthMiddleware),
            auth=self.auth,
            protect=protect,
            on_request=on_request,
            sign_in_page=False,  # served from the 404 handler below
        )

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Add the middleware (outermost), the auth routes, the engine's lifespan and, when the
        app has no sign-in page, the built-in one."""
        app_config.middleware.insert(0, self.middleware)
        app_config.route_handlers.extend(self._routes())
        app_config.lifespan.append(self._lifespan)
        if self._sign_in_page is not None:
            handlers = app_config.exception_handlers
            previous = handlers.get(NotFoundException) or handlers.get(404)
            handlers[NotFoundException] = self._not_found_handler(self._sign_in_page, previous)
        return app_config

    def _not_found_handler(self, page: SignInPage, previous: Any) -> Any:
        # Litestar answers unrouted paths before any middleware runs, so the built-in page is
        # served from its 404 handler rather than by the middleware.
        sign_in_path = self.auth.config.sign_in_path

        def not_found(request: Request[Any, Any, Any], exc: NotFoundException) -> Response[Any]:
            if request.scope["path"] == sign_in_path and request.method in ("GET", "HEAD"):
                headers = {k.decode(): v.decode() for k, v in PAGE_HEADERS}
                return Response(
                    page.render(cast(Any, request.scope)),
                    media_type=MediaType.HTML,
                    headers=headers,
                )
            if previous is not None:
                return cast(Response[Any], previous(request, exc))
            return Response(
                {"status_code": exc.status_code, "detail": exc.detail},
                status_code=exc.status_code,
            )

        return not_found

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Litestar) -> AsyncIterator[None]:
        # Raises ConfigError / StoreUnavailable: Litestar reports lifespan.startup.failed.
        await self.auth.open()
        self.auth.start_background()
        try:
            yield
        finally:
            await self.auth.close()

    def _routes(self) -> list[Any]:
        async def not_http(scope: Scope, receive: Receive, send: Send) -> None:
            # The middleware answers these paths over HTTP before the handler runs; what gets
            # here is a WebSocket, which they do not serve: closed as on any path without one.
            raise NotFoundException()

        paths = AuthEndpoints(self.auth, self.auth.refresh).paths()
        return [
            asgi(path, name=f"authbridge:{path}", include_in_schema=False, copy_scope=False)(
                not_http
            )
            for path in paths
        ]


def requires_auth(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A Litestar guard: let the request through only when someone is signed in.

    Raises:
        NotAuthorizedException: 401 with ``WWW-Authenticate: Bearer`` when nobody is.
        ServiceUnavailableException: 503 when the database was down while refreshing.
    """
    state = get_auth_state(connection)
    if state.is_authenticated:
        return
    if state.error == "unavailable":
        raise ServiceUnavailableException("StoreUnavailable", headers={"Retry-After": "1"})
    challenge = 'Bearer realm="authbridge"'
    if state.error is not None and state.error not in NOT_TOKEN_ERRORS:
        challenge += f', error="invalid_token", error_description="{state.error}"'
    raise NotAuthorizedException("Unauthenticated", headers={"WWW-Authenticate": challenge})
