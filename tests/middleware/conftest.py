"""Fixtures for the middleware and endpoint suites: a small Starlette app that reports what it
sees, in-process clients, a real uvicorn server on 127.0.0.1, and helpers to sign up and read
``Set-Cookie`` headers.

Like every unit suite, these run on SQLite and on PostgreSQL (the shared ``db_url`` fixture).
``every_db_url`` is the same parametrisation for modules that name it explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from authbridge import Auth, get_auth_session_id, get_auth_state, get_auth_user_id
from authbridge._asgi import AnyASGIApp, ASGIApp

BASE = "https://testserver"
LOCAL = "http://localhost"
PASSWORD = "correct horse battery staple"
JWT = "__Host-authbridge.jwt"
REFRESH = "__Host-authbridge.refresh"
PLAIN_JWT = "authbridge.jwt"
PLAIN_REFRESH = "authbridge.refresh"
DEVICE = "__Host-authbridge.device"
"""The known-device cookie a successful sign-in sets (outlives sign-out: it is not a session)."""
PLAIN_DEVICE = "authbridge.device"
JSON_CT = {"content-type": "application/json"}
FORM_CT = {"content-type": "application/x-www-form-urlencoded"}


class Clock(Protocol):
    """The shared ``clock`` fixture (``tests/conftest.py`` FakeClock)."""

    now: datetime

    def __call__(self) -> datetime: ...

    def advance(self, delta: float | timedelta) -> None: ...


AuthFactory = Callable[..., Awaitable[Auth]]
ClientFactory = Callable[..., httpx.AsyncClient]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def every_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite, and PostgreSQL where reachable (the same backends as the shared ``db_url``)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/auth.db"
    return str(request.getfixturevalue("pg_url"))


# -- the probe app ---------------------------------------------------------------------------------


def describe(request: Any) -> dict[str, Any]:
    """What the app saw: the public helpers' view of the request's auth state."""
    state = get_auth_state(request)
    return {
        "userId": get_auth_user_id(request),
        "sessionId": get_auth_session_id(request),
        "authenticated": state.is_authenticated,
        "error": state.error,
        "source": state.source,
        "refreshed": state.refreshed,
    }


async def whoami(request: Request) -> Response:
    return JSONResponse({**describe(request), "starletteUser": request.user.is_authenticated})


async def plain(request: Request) -> Response:
    """Never touches auth."""
    return PlainTextResponse("hello", headers={"cache-control": "public, max-age=60"})


async def stream(request: Request) -> Response:
    user_id = get_auth_user_id(request) or "anonymous"

    async def chunks() -> AsyncIterator[bytes]:
        for part in ("user:", user_id, ":done"):
            yield part.encode()
            await asyncio.sleep(0)

    return StreamingResponse(chunks(), media_type="text/plain")


@requires("authenticated", status_code=403)
async def members(request: Request) -> Response:
    return PlainTextResponse("members only")


async def ws_whoami(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json(describe(websocket))
    await websocket.close()


def starlette_app() -> Starlette:
    """The probe app: JSON views of the auth state, a streaming route, a WebSocket."""
    return Starlette(
        routes=[
            Route("/whoami", whoami, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            Route("/plain", plain),
            Route("/stream", stream),
            Route("/members", members),
            Route("/private", whoami, methods=["GET", "POST"]),
            Route("/private/{rest:path}", whoami),
            Route("/public", whoami),
            WebSocketRoute("/ws", ws_whoami),
            WebSocketRoute("/private/ws", ws_whoami),
            Route("/{rest:path}", whoami, methods=["GET", "POST"]),
        ]
    )


# -- clients ---------------------------------------------------------------------------------------


@pytest.fixture
async def client_factory() -> AsyncIterator[ClientFactory]:
    """In-process clients (``https://testserver`` by default; pass ``transport=`` for a real
    server), closed after the test."""
    made: list[httpx.AsyncClient] = []

    def factory(app: ASGIApp, base_url: str = BASE, **kwargs: Any) -> httpx.AsyncClient:
        kwargs.setdefault("transport", httpx.ASGITransport(app=app))
        client = httpx.AsyncClient(base_url=base_url, **kwargs)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.aclose()


async def sign_up(
    client: httpx.AsyncClient, email: str = "ada@example.com", password: str = PASSWORD
) -> dict[str, Any]:
    """Sign up through the JSON endpoint; the client's jar keeps the cookies."""
    response = await client.post(
        "/api/auth/signin",
        json={
            "provider": "password",
            "params": {"flow": "signUp", "email": email, "password": password},
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def sign_in(
    client: httpx.AsyncClient, email: str = "ada@example.com", password: str = PASSWORD
) -> httpx.Response:
    return await client.post(
        "/api/auth/signin",
        json={
            "provider": "password",
            "params": {"flow": "signIn", "email": email, "password": password},
        },
    )


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """``Set-Cookie`` headers by cookie name (the whole header value)."""
    out: dict[str, str] = {}
    for header in response.headers.get_list("set-cookie"):
        out[header.split("=", 1)[0]] = header
    return out


def cookie_value(header: str) -> str:
    parsed: SimpleCookie = SimpleCookie()
    parsed.load(header)
    (morsel,) = parsed.values()
    return morsel.value


def jar_cookies(client: httpx.AsyncClient) -> dict[str, str]:
    return {c.name: c.value or "" for c in client.cookies.jar}


def cookie_header(**cookies: str) -> dict[str, str]:
    return {"cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


async def row_counts(auth: Auth) -> dict[str, int]:
    """Rows per auth table: rejected requests must leave these unchanged."""
    tables = auth.store.tables
    counts: dict[str, int] = {}
    async with auth.store.read() as conn:
        for name in (
            "users",
            "accounts",
            "sessions",
            "refresh_tokens",
            "revocations",
            "rate_limits",
        ):
            table = getattr(tables, name)
            counts[name] = (
                await conn.execute(select(func.count()).select_from(table))
            ).scalar_one()
    return counts


# -- a real server ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_server(
    app: AnyASGIApp, lifespan: Literal["auto", "on", "off"] = "auto", root_path: str = ""
) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) in this event loop; always stopped.
    ``root_path`` is uvicorn's ``--root-path`` (the app is served behind a path-stripping proxy).

    Yields the base URL, ``http://127.0.0.1:<port>``.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan=lifespan,
        log_level="warning",
        ws="websockets-sansio",
        access_log=False,
        root_path=root_path,
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if not server.started:
            if task.done():
                task.result()
            raise RuntimeError("uvicorn did not start within 5 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, timeout=10)
        finally:
            sock.close()


@pytest.fixture
async def unopened_auth_factory(
    auth_factory: AuthFactory, clock: Clock
) -> AsyncIterator[Callable[..., Auth]]:
    """``Auth`` engines that are not open yet (the middleware must open them), configured like
    the shared factory's (fast hashing, the test key, the fake clock). Closed after the test."""
    template = await auth_factory()
    made: list[Auth] = []

    def factory(**overrides: Any) -> Auth:
        engine = Auth(template.config.replace(**overrides), clock=clock, create_tables=True)
        made.append(engine)
        return engine

    yield factory
    for engine in made:
        await engine.close()


# -- token forgery ---------------------------------------------------------------------------------


def forge(
    auth: Auth,
    *,
    claims: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    headers: dict[str, Any] | None = None,
    key: Any = None,
    algorithm: str = "ES256",
) -> str:
    """A JWT like the engine's, with chosen claims / header / key (default: the real key)."""
    import jwt as pyjwt

    from authbridge.tokens import SigningKey

    real = SigningKey.load(auth.config.jwt_private_keys[-1])
    now = int(auth.clock().timestamp())
    body: dict[str, Any] = {
        "sub": "user|session",
        "iss": auth.config.site_url.rstrip("/"),
        "aud": auth.config.audience,
        "iat": now,
        "exp": now + 3600,
    }
    body.update(claims or {})
    for name in drop:
        body.pop(name, None)
    header = {"kid": real.kid}
    header.update(headers or {})
    signing_key: Any = real.private_key if key is None else key
    return pyjwt.encode(body, signing_key, algorithm=algorithm, headers=header)
