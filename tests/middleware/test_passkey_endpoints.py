"""Passkey routes over HTTP (the ceremonies themselves run in Chromium: tests/e2e)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from authbridge import Auth, AuthMiddleware
from tests.toolkit.clients import ClientFactory, sign_up
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import AuthFactory

from .conftest import JSON_CT, starlette_app


@pytest.fixture
async def passkey_auth(auth_factory: AuthFactory) -> Auth:
    return await auth_factory(passkeys=True, site_url="https://testserver")


@pytest.fixture
def client(passkey_auth: Auth, client_factory: ClientFactory) -> httpx.AsyncClient:
    return client_factory(AuthMiddleware(starlette_app(), passkey_auth))


async def test_registration_options_need_a_recent_sign_in(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    anonymous = await client.post("/api/auth/passkeys/register/options", headers=JSON_CT)
    assert anonymous.status_code == 401 and anonymous.json() == {"error": "Unauthenticated"}
    await sign_up(client)
    options = await client.post("/api/auth/passkeys/register/options", headers=JSON_CT)
    assert options.status_code == 200
    public_key = options.json()["publicKey"]
    assert public_key["rp"]["id"] == "testserver"
    assert public_key["authenticatorSelection"]["residentKey"] == "required"
    assert public_key["authenticatorSelection"]["userVerification"] == "required"
    assert "__Host-authbridge.webauthn" in options.headers["set-cookie"]
    assert "HttpOnly" in options.headers["set-cookie"]
    clock.advance(timedelta(minutes=10, seconds=1))
    stale = await client.post("/api/auth/passkeys/register/options", headers=JSON_CT)
    assert stale.status_code == 401 and stale.json() == {"error": "RecentAuthRequired"}


async def test_sign_in_options_ask_for_a_discoverable_credential(
    client: httpx.AsyncClient,
) -> None:
    options = await client.post("/api/auth/passkeys/signin/options", headers=JSON_CT)
    assert options.status_code == 200
    public_key = options.json()["publicKey"]
    assert public_key["rpId"] == "testserver"
    assert public_key.get("allowCredentials", []) == []
    assert public_key["userVerification"] == "required"
    assert len(public_key["challenge"]) >= 43  # 32 random bytes, base64url


async def test_a_forged_or_unknown_credential_is_refused_alike(client: httpx.AsyncClient) -> None:
    await client.post("/api/auth/passkeys/signin/options", headers=JSON_CT)
    forged = {
        "id": "AAAA",
        "rawId": "AAAA",
        "type": "public-key",
        "response": {"clientDataJSON": "e30", "authenticatorData": "", "signature": ""},
    }
    answer = await client.post(
        "/api/auth/signin", json={"provider": "passkey", "params": {"credential": forged}}
    )
    assert answer.status_code == 401 and answer.json() == {"error": "InvalidCredentials"}
    missing = await client.post("/api/auth/signin", json={"provider": "passkey", "params": {}})
    assert missing.status_code == 400 and missing.json()["error"] == "InvalidParams"


async def test_list_and_remove_are_for_the_signed_in_user(client: httpx.AsyncClient) -> None:
    json_accept = {"accept": "application/json"}
    anonymous = await client.get("/api/auth/passkeys", headers=json_accept)
    assert anonymous.status_code == 401 and anonymous.json() == {"error": "Unauthenticated"}
    await sign_up(client)
    listed = await client.get("/api/auth/passkeys", headers=json_accept)
    assert listed.json() == {"passkeys": []}
    unknown = await client.post("/api/auth/passkeys/remove", json={"id": "nope"})
    assert unknown.status_code == 400 and unknown.json() == {"error": "PasskeyNotFound"}
