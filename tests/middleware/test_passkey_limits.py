"""Passkey options requests are rate limited: each stores a challenge, so a client (and, for
registration, a signed-in user) may ask for at most ``rate_limit.ip_attempts`` per period."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from authbridge import Auth, AuthMiddleware, RateLimitConfig
from tests.toolkit.clients import ClientFactory, sign_up
from tests.toolkit.clock import FakeClock as Clock
from tests.toolkit.engines import AuthFactory

from .conftest import JSON_CT, starlette_app

LIMIT = 3
SIGN_IN_OPTIONS = "/api/auth/passkeys/signin/options"
REGISTER_OPTIONS = "/api/auth/passkeys/register/options"


@pytest.fixture
async def passkey_auth(auth_factory: AuthFactory) -> Auth:
    return await auth_factory(
        passkeys=True,
        site_url="https://testserver",
        rate_limit=RateLimitConfig(ip_attempts=LIMIT, sign_up_attempts=LIMIT),
    )


def client_at(passkey_auth: Auth, client_factory: ClientFactory, ip: str) -> httpx.AsyncClient:
    app = AuthMiddleware(starlette_app(), passkey_auth)
    return client_factory(app, transport=httpx.ASGITransport(app=app, client=(ip, 1234)))


def assert_limited(answer: httpx.Response) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.json() == {"error": "TooManyAttempts"}
    assert int(answer.headers["retry-after"]) >= 1


async def test_sign_in_options_are_limited_per_client_and_refill(
    passkey_auth: Auth, client_factory: ClientFactory, clock: Clock
) -> None:
    client = client_at(passkey_auth, client_factory, "203.0.113.7")
    for _ in range(LIMIT):
        assert (await client.post(SIGN_IN_OPTIONS, headers=JSON_CT)).status_code == 200
    blocked = await client.post(SIGN_IN_OPTIONS, headers=JSON_CT)
    assert_limited(blocked)
    assert "set-cookie" not in blocked.headers  # no challenge was stored or named
    # Another client is not affected.
    other = client_at(passkey_auth, client_factory, "198.51.100.9")
    assert (await other.post(SIGN_IN_OPTIONS, headers=JSON_CT)).status_code == 200
    # The bucket refills continuously: one token after a third of the period.
    clock.advance(timedelta(hours=1) / LIMIT + timedelta(seconds=1))
    assert (await client.post(SIGN_IN_OPTIONS, headers=JSON_CT)).status_code == 200
    assert_limited(await client.post(SIGN_IN_OPTIONS, headers=JSON_CT))


async def test_registration_options_are_limited_per_user_across_addresses(
    passkey_auth: Auth, client_factory: ClientFactory
) -> None:
    first = client_at(passkey_auth, client_factory, "203.0.113.7")
    await sign_up(first)
    for _ in range(LIMIT):
        assert (await first.post(REGISTER_OPTIONS, headers=JSON_CT)).status_code == 200
    assert_limited(await first.post(REGISTER_OPTIONS, headers=JSON_CT))
    # The same user from another address: the user's bucket is empty too.
    moved = client_at(passkey_auth, client_factory, "198.51.100.9")
    moved.cookies = first.cookies
    assert_limited(await moved.post(REGISTER_OPTIONS, headers=JSON_CT))


async def test_refused_requests_spend_nothing(
    passkey_auth: Auth, client_factory: ClientFactory
) -> None:
    client = client_at(passkey_auth, client_factory, "203.0.113.7")
    for _ in range(LIMIT + 2):  # signed out: refused before any challenge is made
        answer = await client.post(REGISTER_OPTIONS, headers=JSON_CT)
        assert answer.status_code == 401
    assert (await client.post(SIGN_IN_OPTIONS, headers=JSON_CT)).status_code == 200
