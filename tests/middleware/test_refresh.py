"""Transparent refresh: a missing, expired or nearly expired access token is rotated before the
app runs, the app sees the new state in the same request, and the new cookies go out on the
response (streaming ones too). Store failures never sign anyone out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from authbridge import Auth, AuthConfig, AuthMiddleware
from tests.toolkit.clients import ClientFactory, sign_up
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import AuthFactory
from tests.toolkit.servers import serve

from .conftest import (
    JWT,
    PLAIN_JWT,
    PLAIN_REFRESH,
    REFRESH,
    cookie_header,
    cookie_value,
    jar_cookies,
    set_cookies,
    starlette_app,
)


async def signed_in(
    auth: Auth, client_factory: ClientFactory
) -> tuple[AuthMiddleware, httpx.AsyncClient, dict[str, str]]:
    app = AuthMiddleware(starlette_app(), auth)
    client = client_factory(app)
    body = await sign_up(client)
    return app, client, body


async def test_an_expired_access_token_is_refreshed_before_the_app_runs(
    auth: Auth, client_factory: ClientFactory, clock: FakeClock
) -> None:
    _, client, body = await signed_in(auth, client_factory)
    before = jar_cookies(client)
    clock.advance(3600)
    response = await client.get("/whoami")
    seen = response.json()
    assert seen["userId"] == body["userId"]
    assert seen["sessionId"] == body["sessionId"]
    assert seen["refreshed"] is True and seen["error"] is None
    out = set_cookies(response)
    assert set(out) == {JWT, REFRESH}
    assert cookie_value(out[JWT]) != before[JWT]
    assert cookie_value(out[REFRESH]) != before[REFRESH]
    # The next request uses the new cookies and needs no refresh.
    again = await client.get("/whoami")
    assert again.json()["refreshed"] is False and "set-cookie" not in again.headers


async def test_a_missing_access_token_is_restored_from_the_refresh_cookie(
    auth: Auth, client_factory: ClientFactory
) -> None:
    app, client, body = await signed_in(auth, client_factory)
    refresh = jar_cookies(client)[REFRESH]
    response = await client_factory(app).get("/whoami", headers=cookie_header(**{REFRESH: refresh}))
    assert response.json()["userId"] == body["userId"]
    assert set(set_cookies(response)) == {JWT, REFRESH}


@pytest.mark.parametrize(
    ("jwt_duration", "margin"),
    [
        (timedelta(hours=1), 60),  # 10 % = 360 s, capped at 60 s
        (timedelta(minutes=5), 30),  # 10 %
        (timedelta(seconds=60), 10),  # 10 % = 6 s, raised to 10 s
    ],
)
async def test_refresh_margin_boundaries(
    auth_factory: AuthFactory,
    client_factory: ClientFactory,
    clock: FakeClock,
    jwt_duration: timedelta,
    margin: int,
) -> None:
    auth = await auth_factory(jwt_duration=jwt_duration)
    _, client, _ = await signed_in(auth, client_factory)
    clock.advance(jwt_duration.total_seconds() - margin - 0.001)
    outside = await client.get("/whoami")
    assert outside.json()["refreshed"] is False
    assert "set-cookie" not in outside.headers
    clock.advance(0.001)
    inside = await client.get("/whoami")
    assert inside.json()["refreshed"] is True
    assert set(set_cookies(inside)) == {JWT, REFRESH}


async def test_a_streaming_response_carries_the_rotated_cookies(
    auth: Auth, client_factory: ClientFactory, clock: FakeClock
) -> None:
    _, client, body = await signed_in(auth, client_factory)
    clock.advance(3600)
    response = await client.get("/stream")
    assert response.text == f"user:{body['userId']}:done"
    assert set(set_cookies(response)) == {JWT, REFRESH}
    assert response.headers["cache-control"] == "private, no-store"


async def test_concurrent_requests_share_one_rotation(
    auth: Auth, client_factory: ClientFactory, clock: FakeClock
) -> None:
    app, client, body = await signed_in(auth, client_factory)
    headers = cookie_header(**{REFRESH: jar_cookies(client)[REFRESH]})
    clock.advance(3600)
    responses = await asyncio.gather(
        *(client_factory(app).get("/whoami", headers=headers) for _ in range(5))
    )
    assert {r.json()["userId"] for r in responses} == {body["userId"]}
    refreshed = {cookie_value(set_cookies(r)[REFRESH]) for r in responses}
    assert len(refreshed) == 1


async def test_an_invalid_refresh_cookie_clears_the_cookies(
    auth: Auth, client_factory: ClientFactory
) -> None:
    app = AuthMiddleware(starlette_app(), auth)
    response = await client_factory(app).get(
        "/whoami", headers=cookie_header(**{REFRESH: "AAAAAAAAAAAAAAAAAAAAAA.bogus-secret"})
    )
    assert response.status_code == 200
    assert response.json()["error"] == "invalid_refresh_token"
    out = set_cookies(response)
    assert set(out) == {JWT, REFRESH}
    assert all("Max-Age=0" in header for header in out.values())


async def test_refresh_after_sign_out_elsewhere_clears_the_cookies(
    auth: Auth, client_factory: ClientFactory, clock: FakeClock
) -> None:
    _, client, body = await signed_in(auth, client_factory)
    await auth.sign_out(body["sessionId"])
    clock.advance(3600)
    response = await client.get("/whoami")
    assert response.json()["userId"] is None
    assert "Max-Age=0" in set_cookies(response)[REFRESH]


async def test_cross_site_subresource_requests_do_not_rotate(
    auth: Auth, client_factory: ClientFactory, clock: FakeClock
) -> None:
    _, client, _ = await signed_in(auth, client_factory)
    clock.advance(3600)
    image = await client.get(
        "/whoami", headers={"sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors"}
    )
    assert image.json()["userId"] is None and "set-cookie" not in image.headers
    link = await client.get(
        "/whoami", headers={"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}
    )
    assert link.json()["refreshed"] is True


# -- store failures --------------------------------------------------------------------------------

UNREACHABLE = {
    "postgresql": "postgresql+asyncpg://postgres@127.0.0.1:1/x",
    "sqlite": "sqlite+aiosqlite:////nonexistent-authbridge-dir/auth.db",
}


@pytest.fixture(params=sorted(UNREACHABLE))
async def broken_auth(
    request: pytest.FixtureRequest, auth: Auth, clock: FakeClock
) -> AsyncIterator[Auth]:
    """A second engine with the same keys whose database cannot be reached."""
    config: AuthConfig = auth.config.replace(database_url=UNREACHABLE[request.param])
    broken = Auth(config, clock=clock)
    await broken.open()
    yield broken
    await broken.close()


async def test_an_unreachable_store_never_clears_cookies_or_fails(
    auth: Auth, broken_auth: Auth, client_factory: ClientFactory, clock: FakeClock
) -> None:
    _, client, body = await signed_in(auth, client_factory)
    cookies = jar_cookies(client)
    broken_app = AuthMiddleware(starlette_app(), broken_auth)
    headers = cookie_header(**{JWT: cookies[JWT], REFRESH: cookies[REFRESH]})
    browser = client_factory(broken_app)

    # Near expiry: the refresh fails, the still-valid token keeps the user signed in.
    clock.advance(3600 - 30)
    near = await browser.get("/whoami", headers=headers)
    assert near.status_code == 200
    assert near.json()["userId"] == body["userId"]
    assert "set-cookie" not in near.headers

    # Expired: anonymous for now, cookies untouched so the next request can still refresh.
    clock.advance(60)
    expired = await browser.get("/whoami", headers=headers)
    assert expired.status_code == 200
    assert (expired.json()["userId"], expired.json()["error"]) == (None, "unavailable")
    assert "set-cookie" not in expired.headers

    explicit = await browser.post("/api/auth/refresh", headers=headers)
    assert explicit.status_code == 503
    assert explicit.json() == {"error": "StoreUnavailable"}
    assert "set-cookie" not in explicit.headers

    # The healthy instance still rotates the same refresh token afterwards.
    healthy = await client_factory(AuthMiddleware(starlette_app(), auth)).get(
        "/whoami", headers=headers
    )
    assert healthy.json()["userId"] == body["userId"]


async def test_a_store_that_breaks_while_running_never_signs_out(
    auth: Auth, client_factory: ClientFactory, clock: FakeClock
) -> None:
    _, client, body = await signed_in(auth, client_factory)
    good_url = auth.store.url
    # Dispose of the pool and point it at a database that cannot be opened.
    await auth.store.close()
    auth.store.url = "sqlite+aiosqlite:////nonexistent-authbridge-dir/auth.db"
    clock.advance(3600)
    response = await client.get("/whoami")
    assert response.status_code == 200
    assert response.json()["error"] == "unavailable"
    assert "set-cookie" not in response.headers
    signout = await client.post("/api/auth/signout")
    assert signout.status_code == 503
    assert "set-cookie" not in signout.headers
    await auth.store.close()
    auth.store.url = good_url
    recovered = await client.get("/whoami")
    assert recovered.json()["userId"] == body["userId"]
    assert recovered.json()["refreshed"] is True


async def test_a_protected_route_asks_to_retry_while_the_store_is_down(
    auth: Auth, broken_auth: Auth, client_factory: ClientFactory, clock: FakeClock
) -> None:
    _, client, _ = await signed_in(auth, client_factory)
    cookies = jar_cookies(client)
    headers = cookie_header(**{JWT: cookies[JWT], REFRESH: cookies[REFRESH]})
    browser = client_factory(AuthMiddleware(starlette_app(), broken_auth, protect=["/private"]))
    clock.advance(3600)
    for accept in ("text/html", "application/json"):
        response = await browser.get("/private", headers={**headers, "accept": accept})
        assert (response.status_code, response.json()) == (503, {"error": "StoreUnavailable"})
        assert response.headers["retry-after"] == "1"
        assert "set-cookie" not in response.headers


async def test_endpoints_answer_503_while_the_store_is_down(
    auth: Auth, broken_auth: Auth, client_factory: ClientFactory
) -> None:
    _, client, _ = await signed_in(auth, client_factory)
    browser = client_factory(AuthMiddleware(starlette_app(), broken_auth))
    for email in ("ada@example.com", "new@example.com"):
        response = await browser.post(
            "/api/auth/signin",
            json={
                "provider": "password",
                "params": {"flow": "signIn", "email": email, "password": "whatever-password"},
            },
        )
        assert (response.status_code, response.json()) == (503, {"error": "StoreUnavailable"})
    token = (await client.post("/api/auth/token")).json()["token"]
    sessions = await browser.get("/api/auth/sessions", headers={"authorization": f"Bearer {token}"})
    assert (sessions.status_code, sessions.json()) == (503, {"error": "StoreUnavailable"})


async def test_a_store_that_cannot_open_serves_anonymous_and_503s(
    auth: Auth, client_factory: ClientFactory, clock: FakeClock
) -> None:
    _, client, _ = await signed_in(auth, client_factory)
    cookies = jar_cookies(client)
    config = auth.config.replace(database_url=UNREACHABLE["postgresql"])
    never_open = Auth(config, clock=clock, create_tables=True)
    try:
        app = AuthMiddleware(starlette_app(), never_open, protect=["/private"])
        browser = client_factory(app)
        assert (await browser.get("/whoami")).json()["error"] is None
        with_cookies = await browser.get(
            "/whoami", headers=cookie_header(**{JWT: cookies[JWT], REFRESH: cookies[REFRESH]})
        )
        assert (with_cookies.status_code, with_cookies.json()["error"]) == (200, "unavailable")
        assert "set-cookie" not in with_cookies.headers
        endpoint = await browser.post("/api/auth/token")
        assert (endpoint.status_code, endpoint.json()) == (503, {"error": "StoreUnavailable"})
        jwks = await browser.get("/.well-known/jwks.json")
        assert (jwks.status_code, jwks.json()) == (503, {"error": "StoreUnavailable"})
        assert not never_open.is_open
    finally:
        await never_open.close()


async def test_a_streaming_response_over_a_real_server_carries_the_rotated_cookies(
    auth: Auth, client_factory: ClientFactory, clock: FakeClock
) -> None:
    app = AuthMiddleware(starlette_app(), auth)
    async with serve(app, lifespan="auto") as base:
        client = client_factory(app, base_url=base, transport=httpx.AsyncHTTPTransport())
        body = await sign_up(client)
        clock.advance(3600)
        chunks: list[bytes] = []
        async with client.stream("GET", "/stream") as response:
            assert response.headers["transfer-encoding"] == "chunked"
            assert set(set_cookies(response)) == {PLAIN_JWT, PLAIN_REFRESH}
            assert response.headers["cache-control"] == "private, no-store"
            async for chunk in response.aiter_raw():
                chunks.append(chunk)
        assert b"".join(chunks) == f"user:{body['userId']}:done".encode()
        # The jar took the new cookies: the next request needs no refresh.
        again = await client.get("/whoami")
        assert again.json()["refreshed"] is False and "set-cookie" not in again.headers
