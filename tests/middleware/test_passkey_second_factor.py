"""A passkey sign-in and TOTP: a user-verified passkey (the device, and the PIN or biometric that
unlocks it) is two factors and signs in at once; when the provider accepts an assertion without
user verification (``PasskeyProvider(user_verification=False)``), that sign-in is one factor and
waits for the TOTP code of a user who has one, like a password sign-in. By default an assertion
without user verification is refused outright."""

from __future__ import annotations

from typing import Any

import httpx
import jwt as pyjwt
import pyotp
import pytest

from authbridge import AuthMiddleware
from authbridge.providers import PasswordProvider
from authbridge.providers.passkeys import PasskeyProvider
from authbridge.providers.totp import TotpProvider
from tests.toolkit.clients import ClientFactory, sign_up
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import AuthFactory
from tests.toolkit.passkeys import AT, ORIGIN, UP, UV, Authenticator

from .conftest import JSON_CT, starlette_app


def code_now(secret: str, clock: FakeClock) -> str:
    return pyotp.TOTP(secret).generate_otp(int(clock.now.timestamp()) // 30)


async def options(client: httpx.AsyncClient, ceremony: str) -> dict[str, Any]:
    answer = await client.post(f"/api/auth/passkeys/{ceremony}/options", headers=JSON_CT)
    assert answer.status_code == 200, answer.text
    public_key: dict[str, Any] = answer.json()["publicKey"]
    return public_key


async def signin(client: httpx.AsyncClient, provider: str, **params: Any) -> httpx.Response:
    return await client.post("/api/auth/signin", json={"provider": provider, "params": params})


async def amr(client: httpx.AsyncClient) -> list[str]:
    token = (await client.post("/api/auth/token", headers=JSON_CT)).json()["token"]
    claims: dict[str, Any] = pyjwt.decode(token, options={"verify_signature": False})
    return list(claims["amr"])


@pytest.mark.parametrize(
    ("user_verification", "flags", "outcome"),
    [
        (True, UP | UV, "signed in"),
        (True, UP, "refused"),
        (False, UP | UV, "signed in"),
        (False, UP, "held for totp"),
    ],
    ids=["uv-required", "uv-required-missing", "uv-optional-given", "uv-optional-missing"],
)
async def test_a_passkey_sign_in_waits_for_totp_only_without_user_verification(
    auth_factory: AuthFactory,
    client_factory: ClientFactory,
    clock: FakeClock,
    user_verification: bool,
    flags: int,
    outcome: str,
) -> None:
    providers = [
        PasswordProvider(),
        PasskeyProvider(user_verification=user_verification),
        TotpProvider(),
    ]
    auth = await auth_factory({"providers": providers}, site_url=ORIGIN)
    app = AuthMiddleware(starlette_app(), auth)
    owner, elsewhere = client_factory(app), client_factory(app)
    user_id = (await sign_up(owner))["userId"]
    authenticator = Authenticator()
    credential = authenticator.create(await options(owner, "register"), flags=UP | UV | AT)
    registered = await owner.post("/api/auth/passkeys/register", json={"credential": credential})
    assert registered.status_code == 200, registered.text
    secret = (await owner.post("/api/auth/totp/enroll", headers=JSON_CT)).json()["secret"]
    confirmed = await owner.post("/api/auth/totp/confirm", json={"code": code_now(secret, clock)})
    assert confirmed.status_code == 200, confirmed.text
    clock.advance(30)  # the confirming step is used

    assertion = authenticator.get(await options(elsewhere, "signin"), flags=flags)
    answer = await signin(elsewhere, "passkey", credential=assertion)

    if outcome == "refused":
        assert (answer.status_code, answer.json()) == (401, {"error": "InvalidCredentials"})
        assert (await elsewhere.get("/whoami")).json()["userId"] is None
    elif outcome == "signed in":
        assert answer.status_code == 200 and answer.json()["signedIn"] is True, answer.text
        assert await amr(elsewhere) == ["hwk", "user"]
    else:
        assert (answer.status_code, answer.json()) == (200, {"started": True, "factor": "totp"})
        assert (await elsewhere.get("/whoami")).json()["userId"] is None  # no session yet
        done = await signin(elsewhere, "totp", code=code_now(secret, clock))
        assert done.status_code == 200 and done.json()["userId"] == user_id, done.text
        assert await amr(elsewhere) == ["hwk", "totp", "mfa"]
