"""The same probe app written for each supported framework.

Every app answers ``GET/POST /whoami`` and ``GET /private`` with the JSON view of the auth state
(:func:`describe`), and, where the framework has WebSockets, ``/ws`` sends that JSON once and
closes. The conformance suite wraps each in ``AuthMiddleware`` and checks they all behave alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI
from fastapi import Request as FastAPIRequest
from fastapi import WebSocket as FastAPIWebSocket
from litestar import Litestar, get, post, websocket
from litestar import Request as LitestarRequest
from litestar import WebSocket as LitestarWebSocket
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from authbridge import (
    Auth,
    AuthMiddleware,
    AuthState,
    AuthUser,
    get_auth_state,
    get_auth_user_id,
)
from authbridge._asgi import AnyASGIApp, ASGIApp, Receive, Scope, Send, json_response
from authbridge.fastapi import CurrentAuthState, CurrentUserId, OptionalUserId
from authbridge.litestar import AuthPlugin, requires_auth
from authbridge.routing import Pattern

from .conftest import describe

get_auth_state_of = get_auth_state

__all__ = ["FRAMEWORKS", "NATIVE", "WEBSOCKET_FRAMEWORKS", "build"]


# -- Starlette -------------------------------------------------------------------------------------


def starlette() -> ASGIApp:
    async def whoami(request: Request) -> Response:
        return JSONResponse({**describe(request), "frameworkUser": request.user.is_authenticated})

    async def ws(socket: WebSocket) -> None:
        await socket.accept()
        await socket.send_json(describe(socket))
        await socket.close()

    return Starlette(
        routes=[
            Route("/whoami", whoami, methods=["GET", "POST"]),
            Route("/private", whoami),
            WebSocketRoute("/ws", ws),
        ]
    )


# -- FastAPI ---------------------------------------------------------------------------------------


def current_user_id(request: FastAPIRequest) -> str | None:
    """A FastAPI dependency over the public helper."""
    return get_auth_user_id(request)


def fastapi() -> ASGIApp:
    app = FastAPI()

    @app.api_route("/whoami", methods=["GET", "POST"])
    async def whoami(
        request: FastAPIRequest, user_id: str | None = Depends(current_user_id)
    ) -> dict[str, Any]:
        seen = describe(request)
        assert seen["userId"] == user_id
        return {**seen, "frameworkUser": request.user.is_authenticated}

    @app.get("/private")
    async def private(request: FastAPIRequest) -> dict[str, Any]:
        return describe(request)

    @app.websocket("/ws")
    async def ws(socket: FastAPIWebSocket) -> None:
        await socket.accept()
        await socket.send_json(describe(socket))
        await socket.close()

    return app


# -- Litestar --------------------------------------------------------------------------------------


def litestar() -> AnyASGIApp:
    @get("/whoami")
    async def whoami(request: LitestarRequest[Any, Any, Any]) -> dict[str, Any]:
        return {**describe(request), "frameworkUser": request.user.is_authenticated}

    @post("/whoami", status_code=200)
    async def whoami_post(request: LitestarRequest[Any, Any, Any]) -> dict[str, Any]:
        return describe(request)

    @get("/private")
    async def private(request: LitestarRequest[Any, Any, Any]) -> dict[str, Any]:
        return describe(request)

    @websocket("/ws")
    async def ws(socket: LitestarWebSocket[Any, Any, Any]) -> None:
        await socket.accept()
        await socket.send_json(describe(socket))
        await socket.close()

    return Litestar(route_handlers=[whoami, whoami_post, private, ws])


# -- Quart -----------------------------------------------------------------------------------------


def quart() -> AnyASGIApp:
    from quart import Quart, request
    from quart import websocket as quart_websocket

    app = Quart("authbridge_probe")

    @app.route("/whoami", methods=["GET", "POST"])
    async def whoami() -> dict[str, Any]:
        return describe(request)

    @app.route("/private")
    async def private() -> dict[str, Any]:
        return describe(request)

    @app.websocket("/ws")
    async def ws() -> None:
        await quart_websocket.accept()
        await quart_websocket.send(json.dumps(describe(quart_websocket)))

    return app


# -- Django ----------------------------------------------------------------------------------------


class DjangoURLConf:
    """``ROOT_URLCONF`` may be any object with ``urlpatterns``; filled in once Django is set up."""

    urlpatterns: list[Any] = []


def django() -> ASGIApp:
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="authbridge-tests-only",
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF=DjangoURLConf,
            MIDDLEWARE=["authbridge.django.AuthenticationMiddleware"],
            LOGIN_URL="/signin",
            INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
            DATABASES={},
            USE_TZ=True,
        )
        import django as django_module

        django_module.setup()
    from django.contrib.auth.decorators import login_required
    from django.core.handlers.asgi import ASGIHandler
    from django.http import HttpRequest, JsonResponse
    from django.urls import path

    async def whoami(request: HttpRequest) -> JsonResponse:
        assert request.auth is get_auth_state_of(request)
        return JsonResponse({**describe(request), "frameworkUser": request.user.is_authenticated})

    @login_required  # type: ignore[untyped-decorator]
    def private(request: HttpRequest) -> JsonResponse:
        """A sync view: Django runs it in a thread; ``request.user`` is still authbridge's."""
        return JsonResponse(
            {**describe(request), "frameworkUser": request.user.is_authenticated, "sync": True}
        )

    DjangoURLConf.urlpatterns = [
        path("whoami", whoami),
        path("private", private),
    ]
    app: ASGIApp = ASGIHandler()
    return app


# -- raw ASGI --------------------------------------------------------------------------------------


def raw() -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["path"] in ("/whoami", "/private"):
                await json_response(send, 200, describe(scope))
            else:
                await json_response(send, 404, {"error": "NotFound"})
        elif scope["type"] == "websocket":
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": json.dumps(describe(scope))})
            await send({"type": "websocket.close", "code": 1000})
        elif scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    return app


# -- the native ways ------------------------------------------------------------------------------


def fastapi_native(auth: Auth) -> AnyASGIApp:
    """``app.add_middleware`` and the ``authbridge.fastapi`` dependencies."""
    app = FastAPI()
    app.add_middleware(AuthMiddleware, auth=auth)

    @app.api_route("/whoami", methods=["GET", "POST"])
    async def whoami(
        request: FastAPIRequest, state: CurrentAuthState, user_id: OptionalUserId
    ) -> dict[str, Any]:
        seen = describe(request)
        assert seen["userId"] == user_id == state.user_id
        return {**seen, "frameworkUser": request.user.is_authenticated}

    @app.get("/private")
    async def private(request: FastAPIRequest, user_id: CurrentUserId) -> dict[str, Any]:
        return {**describe(request), "frameworkUser": bool(user_id)}

    @app.websocket("/ws")
    async def ws(socket: FastAPIWebSocket, state: CurrentAuthState) -> None:
        await socket.accept()
        await socket.send_json(describe(socket))
        await socket.close()

    return app


def litestar_native(auth: Auth) -> AnyASGIApp:
    """``AuthPlugin`` (the middleware, the auth routes, the lifespan) and the guard."""

    @get("/whoami")
    async def whoami(request: LitestarRequest[AuthUser, AuthState, Any]) -> dict[str, Any]:
        assert request.auth.user_id == request.user.user_id
        return {**describe(request), "frameworkUser": request.user.is_authenticated}

    @post("/whoami", status_code=200)
    async def whoami_post(request: LitestarRequest[AuthUser, AuthState, Any]) -> dict[str, Any]:
        return describe(request)

    @get("/private", guards=[requires_auth])
    async def private(request: LitestarRequest[AuthUser, AuthState, Any]) -> dict[str, Any]:
        return {**describe(request), "frameworkUser": request.user.is_authenticated}

    @websocket("/ws")
    async def ws(socket: LitestarWebSocket[AuthUser, AuthState, Any]) -> None:
        await socket.accept()
        await socket.send_json(describe(socket))
        await socket.close()

    return Litestar(route_handlers=[whoami, whoami_post, private, ws], plugins=[AuthPlugin(auth)])


def django_native(auth: Auth) -> AnyASGIApp:
    """``AuthenticationMiddleware`` in ``MIDDLEWARE`` and ``login_required`` on ``/private``."""
    return AuthMiddleware(django(), auth)


FRAMEWORKS: dict[str, Callable[[], AnyASGIApp]] = {
    "starlette": starlette,
    "fastapi": fastapi,
    "litestar": litestar,
    "quart": quart,
    "django": django,
    "raw": raw,
}
"""Apps the suite wraps in ``AuthMiddleware(app, auth, protect=["/private"])``."""

NATIVE: dict[str, Callable[[Auth], AnyASGIApp]] = {
    "fastapi-native": fastapi_native,
    "litestar-native": litestar_native,
    "django-native": django_native,
}
"""Apps that install authbridge their framework's own way and protect ``/private`` with it."""

WEBSOCKET_FRAMEWORKS = (
    "starlette",
    "fastapi",
    "litestar",
    "quart",
    "raw",
    "fastapi-native",
    "litestar-native",
)
"""Django's own ASGI handler serves HTTP only (WebSockets need Channels)."""


def build(framework: str, auth: Auth, protect: list[Pattern]) -> AnyASGIApp:
    """The probe app of ``framework`` with authbridge installed (``protect`` applies to the
    wrapped ones; native ones protect ``/private`` themselves)."""
    if framework in NATIVE:
        return NATIVE[framework](auth)
    return AuthMiddleware(FRAMEWORKS[framework](), auth, protect=protect)
