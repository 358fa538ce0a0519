"""Fixtures for the middleware and endpoint suites: a small Starlette app that reports what it
sees, helpers to read ``Set-Cookie`` headers and count rows, and token forgery.

Like every unit suite, these run on SQLite and on PostgreSQL (the shared ``db_url`` fixture).
Clients, sign-up and servers come from the toolkit (``tests/toolkit/``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from http.cookies import SimpleCookie
from typing import Any

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
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import AuthFactory

BASE = "https://testserver"
LOCAL = "http://localhost"
JWT = "__Host-authbridge.jwt"
REFRESH = "__Host-authbridge.refresh"
PLAIN_JWT = "authbridge.jwt"
PLAIN_REFRESH = "authbridge.refresh"
DEVICE = "__Host-authbridge.device"
"""The known-device cookie a successful sign-in sets (outlives sign-out: it is not a session)."""
PLAIN_DEVICE = "authbridge.device"
JSON_CT = {"content-type": "application/json"}
FORM_CT = {"content-type": "application/x-www-form-urlencoded"}


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


@pytest.fixture
async def unopened_auth_factory(
    auth_factory: AuthFactory, clock: FakeClock
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
