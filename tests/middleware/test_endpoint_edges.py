"""Endpoint paths that browsers reach less often: a forced refresh with a dead refresh token, a
provider route posted from another site, form posts that end in a redirect (an account action, a
second factor asked for from a page of ours or from no page at all)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import httpx
import pyotp
import pytest

from authbridge import Auth, AuthMiddleware
from tests.toolkit.clients import ClientFactory, sign_up
from tests.toolkit.clock import FakeClock as Clock
from tests.toolkit.engines import PASSWORD, AuthFactory

from .conftest import (
    FORM_CT,
    JSON_CT,
    JWT,
    REFRESH,
    cookie_header,
    jar_cookies,
    set_cookies,
    starlette_app,
)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """Decided by the endpoints, not the backend: SQLite only."""
    return f"sqlite+aiosqlite:///{tmp_path}/auth.db"


@pytest.fixture
async def totp_auth(auth_factory: AuthFactory) -> Auth:
    return await auth_factory(totp=True)


@pytest.fixture
def client(totp_auth: Auth, client_factory: ClientFactory) -> httpx.AsyncClient:
    return client_factory(AuthMiddleware(starlette_app(), totp_auth))


async def test_a_forced_refresh_with_a_dead_refresh_token_clears_the_cookies(
    client: httpx.AsyncClient, totp_auth: Auth, client_factory: ClientFactory
) -> None:
    """The access token is still valid, so the middleware does not refresh; the client asks for
    a refresh anyway with a refresh token the server does not know."""
    await sign_up(client)
    cookies = cookie_header(
        **{JWT: jar_cookies(client)[JWT], REFRESH: "Zm9yZ2Vk.bm90LWEtcmVhbC1zZWNyZXQ"}
    )
    browser = client_factory(AuthMiddleware(starlette_app(), totp_auth))
    response = await browser.post("/api/auth/refresh", headers={**JSON_CT, **cookies})
    assert (response.status_code, response.json()) == (401, {"error": "InvalidRefreshToken"})
    cleared = set_cookies(response)
    assert "Max-Age=0" in cleared[REFRESH] and "Max-Age=0" in cleared[JWT]


async def test_a_provider_route_posted_from_another_site_is_forbidden(
    client: httpx.AsyncClient,
) -> None:
    await sign_up(client)
    response = await client.post(
        "/api/auth/totp/enroll", headers={**JSON_CT, "origin": "https://evil.example"}
    )
    assert (response.status_code, response.json()) == (403, {"error": "Forbidden"})
    assert (await client.get("/api/auth/totp")).json()["pending"] is False


async def test_an_account_form_goes_to_its_redirect_target(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    response = await client.post(
        "/api/auth/account/password",
        content=urlencode(
            {
                "currentPassword": PASSWORD,
                "newPassword": "another long passphrase",
                "redirectTo": "/settings?changed=1",
            }
        ),
        headers={**FORM_CT, "origin": "https://testserver"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/settings?changed=1"


async def _enrolled(client: httpx.AsyncClient, clock: Clock) -> None:
    await sign_up(client)
    secret = (await client.post("/api/auth/totp/enroll", headers=JSON_CT)).json()["secret"]
    code = pyotp.TOTP(secret).generate_otp(int(clock.now.timestamp()) // 30)
    assert (await client.post("/api/auth/totp/confirm", json={"code": code})).status_code == 200
    await client.post("/api/auth/signout", headers=JSON_CT)


@pytest.mark.parametrize(
    ("referer", "location"),
    [
        (None, "/signin?factor=totp"),
        ("https://testserver/api/auth/email/confirm?token=x", "/signin?factor=totp"),
        ("https://testserver/login?next=%2Fnotes", "/login?factor=totp&next=%2Fnotes"),
    ],
    ids=["no-page", "a-page-of-ours", "the-apps-page"],
)
async def test_a_form_sign_in_needing_a_code_goes_to_a_page_that_asks_for_it(
    client: httpx.AsyncClient, clock: Clock, referer: str | None, location: str
) -> None:
    await _enrolled(client, clock)
    headers = dict(FORM_CT)
    if referer is not None:
        headers["referer"] = referer
    answer = await client.post(
        "/api/auth/signin",
        content=urlencode(
            {"provider": "password", "flow": "signIn", "email": "ada@example.com"}
            | {"password": PASSWORD}
        ),
        headers=headers,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == location
