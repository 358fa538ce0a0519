"""Removing a second factor (disabling TOTP, removing a passkey) ends the user's other sessions,
like changing the email or the password: someone holding a stolen session is cut off when the
owner removes a factor. The session that removed it stays signed in; a refused removal ends
nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pyotp
import pytest
from starlette.applications import Starlette

from authbridge import Auth, AuthMiddleware
from tests.toolkit.clients import ClientFactory, sign_in, sign_up
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import AuthFactory
from tests.toolkit.passkeys import ORIGIN, Authenticator

Browsers = Callable[[], httpx.AsyncClient]
JSON = {"accept": "application/json", "content-type": "application/json"}


@pytest.fixture
async def mfa_auth(auth_factory: AuthFactory) -> Auth:
    return await auth_factory(totp=True, passkeys=True, site_url=ORIGIN)


@pytest.fixture
def browsers(mfa_auth: Auth, client_factory: ClientFactory) -> Browsers:
    """A new browser (its own cookie jar) on the same app."""
    app = AuthMiddleware(Starlette(), mfa_auth)
    return lambda: client_factory(app)


async def account_status(client: httpx.AsyncClient) -> int:
    return (await client.get("/api/auth/account", headers=JSON)).status_code


async def signed_in_elsewhere(browsers: Browsers) -> tuple[httpx.AsyncClient, str]:
    client = browsers()
    answer = await sign_in(client)
    assert answer.json()["signedIn"] is True, answer.text
    return client, str(answer.json()["sessionId"])


async def enable_totp(client: httpx.AsyncClient, clock: FakeClock) -> None:
    secret = (await client.post("/api/auth/totp/enroll", headers=JSON)).json()["secret"]
    code = pyotp.TOTP(secret).generate_otp(int(clock.now.timestamp()) // 30)
    confirmed = await client.post("/api/auth/totp/confirm", json={"code": code})
    assert confirmed.json()["enabled"] is True, confirmed.text


async def passkey_options(client: httpx.AsyncClient, ceremony: str) -> dict[str, Any]:
    answer = await client.post(f"/api/auth/passkeys/{ceremony}/options", headers=JSON)
    assert answer.status_code == 200, answer.text
    options: dict[str, Any] = answer.json()["publicKey"]
    return options


async def add_passkey(client: httpx.AsyncClient) -> tuple[str, Authenticator]:
    """Register a passkey for the signed-in user; returns its id and the authenticator."""
    authenticator = Authenticator()
    credential = authenticator.create(await passkey_options(client, "register"))
    answer = await client.post("/api/auth/passkeys/register", json={"credential": credential})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["passkey"]["id"]), authenticator


async def test_disabling_totp_ends_every_other_session_and_keeps_this_one(
    mfa_auth: Auth, browsers: Browsers, clock: FakeClock
) -> None:
    owner = browsers()
    me = await sign_up(owner)
    laptop, laptop_session = await signed_in_elsewhere(browsers)
    someone = await sign_up(browsers(), "someone@example.com")
    await enable_totp(owner, clock)
    assert await account_status(laptop) == 200  # enabling it ends nothing

    disabled = await owner.post("/api/auth/totp/disable", headers=JSON)

    assert disabled.status_code == 200 and disabled.json() == {"enabled": False}
    assert await account_status(owner) == 200
    assert await mfa_auth.get_session(me["sessionId"]) is not None
    assert await mfa_auth.get_session(laptop_session) is None
    assert await account_status(laptop) == 401  # its access token is refused at once
    assert await mfa_auth.get_session(someone["sessionId"]) is not None  # other users untouched


async def test_removing_a_passkey_ends_every_other_session_and_keeps_this_one(
    mfa_auth: Auth, browsers: Browsers
) -> None:
    owner = browsers()
    me = await sign_up(owner)
    laptop, laptop_session = await signed_in_elsewhere(browsers)
    passkey_id, authenticator = await add_passkey(owner)
    # A session signed in with the passkey itself (a stolen authenticator, say).
    thief = browsers()
    signed = await thief.post(
        "/api/auth/signin",
        json={
            "provider": "passkey",
            "params": {"credential": authenticator.get(await passkey_options(thief, "signin"))},
        },
    )
    assert signed.json()["signedIn"] is True, signed.text

    removed = await owner.post("/api/auth/passkeys/remove", json={"id": passkey_id})

    assert removed.status_code == 200 and removed.json() == {"removed": True}
    assert await account_status(owner) == 200
    assert await mfa_auth.get_session(me["sessionId"]) is not None
    for client, session_id in ((laptop, laptop_session), (thief, signed.json()["sessionId"])):
        assert await mfa_auth.get_session(session_id) is None
        assert await account_status(client) == 401


@pytest.mark.parametrize(
    ("refusal", "status", "error"),
    [
        ("totp, not enabled", 400, "TotpNotEnabled"),
        ("totp, no recent sign-in", 401, "RecentAuthRequired"),
        ("passkey, unknown id", 400, "PasskeyNotFound"),
        ("passkey, no recent sign-in", 401, "RecentAuthRequired"),
    ],
)
async def test_a_refused_removal_ends_no_session(
    mfa_auth: Auth,
    browsers: Browsers,
    clock: FakeClock,
    refusal: str,
    status: int,
    error: str,
) -> None:
    owner = browsers()
    await sign_up(owner)
    laptop, laptop_session = await signed_in_elsewhere(browsers)
    passkey_id, _ = await add_passkey(owner)
    if refusal == "totp, no recent sign-in":
        await enable_totp(owner, clock)
    if refusal.endswith("no recent sign-in"):
        clock.advance(11 * 60)  # past the providers' ten minutes
    if refusal.startswith("totp"):
        answer = await owner.post("/api/auth/totp/disable", headers=JSON)
    else:
        body = {"id": passkey_id if refusal.endswith("no recent sign-in") else "nope"}
        answer = await owner.post("/api/auth/passkeys/remove", json=body)
    assert (answer.status_code, answer.json()) == (status, {"error": error})
    assert await mfa_auth.get_session(laptop_session) is not None
    assert await account_status(laptop) == 200
