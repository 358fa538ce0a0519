"""The FastAPI dependencies and the Litestar plugin at their edges: the database down (503 with
``Retry-After``, never a sign-out), a user or session gone while the access token is still
valid (401), an invalid token named in the challenge, and the plugin's 404 handling (WebSockets
to the endpoints' paths included)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from litestar import Litestar, WebSocket, get, websocket
from litestar.exceptions import NotFoundException
from litestar.response import Response
from sqlalchemy import delete

from authbridge import Auth, AuthMiddleware
from authbridge.fastapi import CurrentSession, CurrentUser, CurrentUserId, OptionalUser
from authbridge.litestar import AuthPlugin, requires_auth
from tests.toolkit.clients import ClientFactory, sign_up
from tests.toolkit.clock import FakeClock as Clock

from .conftest import forge

BROKEN_URL = "sqlite+aiosqlite:////nonexistent-authbridge-dir/auth.db"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """These edges are decided by the adapters, not the backend: SQLite only."""
    return f"sqlite+aiosqlite:///{tmp_path}/auth.db"


def fastapi_app(auth: Auth) -> FastAPI:
    app = FastAPI()
    app.add_middleware(AuthMiddleware, auth=auth)

    @app.get("/user-id")
    async def user_id(user_id: CurrentUserId) -> dict[str, Any]:
        return {"userId": user_id}

    @app.get("/user")
    async def user(user: CurrentUser) -> dict[str, Any]:
        return {"email": user.email}

    @app.get("/maybe-user")
    async def maybe_user(user: OptionalUser) -> dict[str, Any]:
        return {"email": user.email if user else None}

    @app.get("/session")
    async def session(session: CurrentSession) -> dict[str, Any]:
        return {"sessionId": session.session_id}

    return app


async def break_store(auth: Auth) -> str:
    """Point the running engine at a database that cannot be opened; returns the good URL."""
    good = auth.store.url
    await auth.store.close()
    auth.store.url = BROKEN_URL
    return good


async def test_fastapi_dependencies_answer_503_while_the_store_is_down(
    auth: Auth, client_factory: ClientFactory, clock: Clock
) -> None:
    client = client_factory(fastapi_app(auth))
    await sign_up(client, "down@example.com")
    good = await break_store(auth)
    try:
        # The access token is still valid: the id needs no database, the rows do.
        assert (await client.get("/user-id")).status_code == 200
        for path in ("/user", "/maybe-user", "/session"):
            response = await client.get(path)
            assert (response.status_code, response.json()) == (503, {"detail": "StoreUnavailable"})
            assert response.headers["retry-after"] == "1"
        # Expired: the refresh cannot happen, so the id is unknown for now, still not a 401.
        clock.advance(timedelta(hours=1))
        response = await client.get("/user-id")
        assert (response.status_code, response.json()) == (503, {"detail": "StoreUnavailable"})
        assert "set-cookie" not in response.headers
    finally:
        await auth.store.close()
        auth.store.url = good
    assert (await client.get("/user")).json() == {"email": "down@example.com"}


async def test_fastapi_dependencies_answer_401_when_the_user_or_session_is_gone(
    auth: Auth, client_factory: ClientFactory
) -> None:
    """Rows deleted behind authbridge's back (no revocation, e.g. by hand in the database): the
    still-valid access token alone is not enough for the dependencies that load them."""
    client = client_factory(fastapi_app(auth))
    nobody = await client.get("/session")
    assert (nobody.status_code, nobody.json()) == (401, {"detail": "Unauthenticated"})
    body = await sign_up(client, "gone@example.com")
    sessions, users = auth.store.tables.sessions, auth.store.tables.users
    async with auth.store.transaction() as conn:
        await conn.execute(delete(sessions).where(sessions.c.id == body["sessionId"]))
    ended = await client.get("/session")
    assert (ended.status_code, ended.json()) == (401, {"detail": "Unauthenticated"})
    other = client_factory(fastapi_app(auth))
    await sign_up(other, "deleted@example.com")
    async with auth.store.transaction() as conn:
        await conn.execute(delete(users).where(users.c.email == "deleted@example.com"))
    response = await other.get("/user")
    assert (response.status_code, response.json()) == (401, {"detail": "Unauthenticated"})
    assert response.headers["www-authenticate"] == 'Bearer realm="authbridge"'
    assert (await other.get("/maybe-user")).json() == {"email": None}


# -- Litestar ----------------------------------------------------------------------------------


@get("/private", guards=[requires_auth])
async def private() -> dict[str, str]:
    return {"ok": "yes"}


def litestar_client(client_factory: ClientFactory, auth: Auth, **options: Any) -> httpx.AsyncClient:
    plugin_options = options.pop("plugin", {})
    app = Litestar([private], plugins=[AuthPlugin(auth, **plugin_options)], **options)
    return client_factory(app)


async def test_the_litestar_guard_names_an_invalid_token_in_the_challenge(
    auth: Auth, client_factory: ClientFactory
) -> None:
    client = litestar_client(client_factory, auth)
    expired = forge(auth, claims={"exp": int(auth.clock().timestamp()) - 10})
    response = await client.get("/private", headers={"authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer realm="authbridge", error="invalid_token", error_description="expired"'
    )


async def test_the_litestar_guard_answers_503_while_the_store_is_down(
    auth: Auth, client_factory: ClientFactory, clock: Clock
) -> None:
    client = litestar_client(client_factory, auth)
    await sign_up(client, "ls-down@example.com")
    good = await break_store(auth)
    try:
        clock.advance(timedelta(hours=1))
        response = await client.get("/private")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
    finally:
        await auth.store.close()
        auth.store.url = good
    assert (await client.get("/private")).json() == {"ok": "yes"}


async def test_the_litestar_plugin_keeps_the_apps_own_404_handler(
    auth: Auth, client_factory: ClientFactory
) -> None:
    def not_found(request: Any, exc: NotFoundException) -> Response[Any]:
        return Response({"custom": True}, status_code=404)

    client = litestar_client(
        client_factory, auth, exception_handlers={NotFoundException: not_found}
    )
    assert (await client.get("/nowhere")).json() == {"custom": True}
    page = await client.get("/signin")
    assert page.status_code == 200 and "<form" in page.text
    plain = litestar_client(client_factory, auth)
    missing = await plain.get("/nowhere")
    assert (missing.status_code, missing.json()) == (
        404,
        {"status_code": 404, "detail": "Not Found"},
    )


async def test_without_the_built_in_page_the_sign_in_path_is_the_apps_404(
    auth: Auth, client_factory: ClientFactory
) -> None:
    client = litestar_client(client_factory, auth, plugin={"sign_in_page": False})
    assert (await client.get("/signin")).status_code == 404
    # The auth endpoints are still served by the middleware.
    assert (await client.get("/api/auth/client.js")).status_code == 200


@websocket("/ws")
async def echo(socket: WebSocket[Any, Any, Any]) -> None:
    await socket.accept()
    await socket.send_text("hello")
    await socket.close()


async def websocket_handshake(app: Any, path: str) -> list[dict[str, Any]]:
    """What an ASGI app sends back to a WebSocket handshake for ``path``."""
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "wss",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"origin", b"https://testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 443),
        "subprotocols": [],
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=5)
    return sent


@pytest.mark.parametrize("path", ["/api/auth/signin", "/api/auth/token", "/.well-known/jwks.json"])
async def test_a_websocket_to_an_auth_endpoint_is_closed_like_one_to_a_path_without_a_socket(
    auth: Auth, path: str
) -> None:
    """The endpoints answer HTTP only; the plugin's routes for them must not make a WebSocket
    to one look like a server fault or a missing middleware."""
    app = Litestar([echo], plugins=[AuthPlugin(auth)])
    served = await websocket_handshake(app, "/ws")
    assert [m["type"] for m in served] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert await websocket_handshake(app, path) == await websocket_handshake(app, "/nowhere")
