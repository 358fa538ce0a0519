"""Shared caches must never store a response that set cookies or depended on who is signed in;
responses that never looked at auth keep their headers."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from authbridge import Auth, AuthMiddleware, get_auth_user_id
from authbridge._asgi import Receive, Scope, Send
from tests.toolkit.clients import ClientFactory, sign_up
from tests.toolkit.clock import FakeClock

from .conftest import jar_cookies


async def personal(request: Request) -> Response:
    headers = {}
    for name in ("cache-control", "vary"):
        value = request.query_params.get(name)
        if value is not None:
            headers[name] = value
    return JSONResponse({"userId": get_auth_user_id(request)}, headers=headers)


async def public(request: Request) -> Response:
    return PlainTextResponse(
        "same for everyone",
        headers={"cache-control": "public, max-age=60", "vary": "Accept-Encoding"},
    )


@pytest.fixture
def client(auth: Auth, client_factory: ClientFactory) -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/personal", personal), Route("/public", public)])
    return client_factory(AuthMiddleware(app, auth))


async def test_responses_that_set_cookies_are_private_and_not_stored(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    signed_up = await client.post(
        "/api/auth/signin",
        json={
            "provider": "password",
            "params": {
                "flow": "signUp",
                "email": "ada@example.com",
                "password": "correct horse battery staple",
            },
        },
    )
    assert signed_up.headers["cache-control"] == "private, no-store"
    assert signed_up.headers["vary"] == "Cookie"
    clock.advance(3600)
    refreshed = await client.get("/public")
    assert "set-cookie" in refreshed.headers
    assert refreshed.headers["cache-control"] == "private, no-store"
    assert refreshed.headers["vary"] == "Accept-Encoding, Cookie"


async def test_responses_that_read_auth_are_private_and_vary_on_cookie(
    client: httpx.AsyncClient,
) -> None:
    anonymous = await client.get("/personal")
    assert anonymous.headers["cache-control"] == "private"
    assert anonymous.headers["vary"] == "Cookie"
    await sign_up(client)
    signed_in = await client.get("/personal")
    assert signed_in.json()["userId"] is not None
    assert "set-cookie" not in signed_in.headers
    assert signed_in.headers["cache-control"] == "private"
    assert signed_in.headers["vary"] == "Cookie"


@pytest.mark.parametrize(
    ("app_cache_control", "expected"),
    [
        ("public, max-age=60", "private, max-age=60"),
        ("max-age=60", "private, max-age=60"),
        ("no-store", "no-store"),
        ("private, max-age=5", "private, max-age=5"),
    ],
)
async def test_the_apps_cache_control_is_made_private(
    client: httpx.AsyncClient, app_cache_control: str, expected: str
) -> None:
    response = await client.get("/personal", params={"cache-control": app_cache_control})
    assert response.headers["cache-control"] == expected


@pytest.mark.parametrize(
    ("app_vary", "expected"),
    [("Accept-Encoding", "Accept-Encoding, Cookie"), ("cookie", "cookie"), ("*", "*")],
)
async def test_vary_is_merged(client: httpx.AsyncClient, app_vary: str, expected: str) -> None:
    response = await client.get("/personal", params={"vary": app_vary})
    assert response.headers.get_list("vary") == [expected]


async def test_bearer_responses_vary_on_authorization_too(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    token = jar_cookies(client)["__Host-authbridge.jwt"]
    client.cookies.clear()
    response = await client.get("/personal", headers={"authorization": f"Bearer {token}"})
    assert response.json()["userId"] is not None
    assert response.headers["vary"] == "Cookie, Authorization"
    assert response.headers["cache-control"] == "private"


async def test_responses_that_never_touched_auth_keep_their_headers(
    client: httpx.AsyncClient,
) -> None:
    anonymous = await client.get("/public")
    assert anonymous.headers["cache-control"] == "public, max-age=60"
    assert anonymous.headers.get_list("vary") == ["Accept-Encoding"]
    assert "set-cookie" not in anonymous.headers
    await sign_up(client)
    signed_in = await client.get("/public")
    assert signed_in.headers["cache-control"] == "public, max-age=60"
    assert signed_in.headers.get_list("vary") == ["Accept-Encoding"]
    assert "set-cookie" not in signed_in.headers


async def test_anonymous_response_without_cache_headers_is_unchanged(
    auth: Auth, client_factory: ClientFactory
) -> None:
    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"x-app", b"1")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    client = client_factory(AuthMiddleware(raw, auth))
    response = await client.get("/")
    assert sorted(response.headers.keys()) == ["x-app"]
