"""Sign-out takes effect at once on the instance that did it and, after one revocation poll, on
every other instance sharing the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from authbridge import Auth, AuthMiddleware
from tests.toolkit.clients import ClientFactory, sign_in, sign_up
from tests.toolkit.engines import AuthFactory

from .conftest import JWT, cookie_header, jar_cookies, starlette_app


async def seen_with(client: httpx.AsyncClient, token: str, via: str) -> dict[str, object]:
    headers = (
        {"authorization": f"Bearer {token}"} if via == "bearer" else cookie_header(**{JWT: token})
    )
    body: dict[str, object] = (await client.get("/whoami", headers=headers)).json()
    return body


@pytest.mark.parametrize("via", ["bearer", "cookie"])
async def test_the_signing_out_instance_refuses_the_token_at_once(
    auth: Auth, client_factory: ClientFactory, via: str
) -> None:
    app = AuthMiddleware(starlette_app(), auth)
    browser = client_factory(app)
    await sign_up(browser)
    token = jar_cookies(browser)[JWT]
    assert (await seen_with(client_factory(app), token, via))["authenticated"] is True
    await browser.post("/api/auth/signout")
    seen = await seen_with(client_factory(app), token, via)
    assert (seen["userId"], seen["error"]) == (None, "revoked")


@pytest.mark.parametrize("via", ["bearer", "cookie"])
async def test_another_instance_refuses_the_token_after_its_poll(
    auth_factory: AuthFactory, client_factory: ClientFactory, via: str
) -> None:
    first, second = await auth_factory(), await auth_factory()
    app1 = AuthMiddleware(starlette_app(), first)
    app2 = AuthMiddleware(starlette_app(), second)
    browser = client_factory(app1)
    await sign_up(browser)
    token = jar_cookies(browser)[JWT]
    assert (await seen_with(client_factory(app2), token, via))["authenticated"] is True
    await browser.post("/api/auth/signout")
    # Until it polls, the other instance cannot know (the documented ~1 s window).
    assert (await seen_with(client_factory(app2), token, via))["authenticated"] is True
    assert await second.revocations.poll(second.store) == 1  # the one sign-out
    seen = await seen_with(client_factory(app2), token, via)
    assert (seen["userId"], seen["error"]) == (None, "revoked")


async def test_the_background_poller_spreads_revocations(
    auth_factory: AuthFactory, client_factory: ClientFactory
) -> None:
    first = await auth_factory()
    second = await auth_factory(revocation_poll_interval=timedelta(milliseconds=20))
    second.start_background()
    app2 = AuthMiddleware(starlette_app(), second)
    browser = client_factory(AuthMiddleware(starlette_app(), first))
    body = await sign_up(browser)
    token = jar_cookies(browser)[JWT]
    await browser.post("/api/auth/signout")
    for _ in range(250):
        if body["sessionId"] in second.revocations:
            break
        await asyncio.sleep(0.02)
    seen = await seen_with(client_factory(app2), token, "bearer")
    assert seen["error"] == "revoked"


async def test_revoking_other_sessions_reaches_every_instance(
    auth_factory: AuthFactory, client_factory: ClientFactory
) -> None:
    first, second = await auth_factory(), await auth_factory()
    app1 = AuthMiddleware(starlette_app(), first)
    app2 = AuthMiddleware(starlette_app(), second)
    laptop, phone = client_factory(app1), client_factory(app2)
    await sign_up(laptop)
    await sign_in(phone)
    phone_token = jar_cookies(phone)[JWT]
    response = await laptop.post("/api/auth/sessions/revoke", json={"others": True})
    assert response.status_code == 200
    await second.revocations.poll(second.store)
    assert (await seen_with(client_factory(app2), phone_token, "bearer"))["error"] == "revoked"
    # The phone's browser, with its refresh cookie, is signed out too (cookies cleared).
    assert (await phone.get("/whoami")).json()["authenticated"] is False
    assert (await laptop.get("/whoami")).json()["authenticated"] is True
