"""``Auth.cleanup`` and the second-factor tables: expired passkey challenges and TOTP enrolments
nobody confirmed are deleted and counted; live challenges and confirmed secrets stay."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pyotp
import pytest

from authbridge import Auth, AuthMiddleware
from tests.toolkit.clients import ClientFactory, sign_in, sign_up
from tests.toolkit.clock import FakeClock as Clock
from tests.toolkit.engines import AuthFactory

from .conftest import JSON_CT, starlette_app


@pytest.fixture
async def mfa_auth(auth_factory: AuthFactory) -> Auth:
    return await auth_factory(passkeys=True, totp=True, site_url="https://testserver")


@pytest.fixture
def client(mfa_auth: Auth, client_factory: ClientFactory) -> httpx.AsyncClient:
    return client_factory(AuthMiddleware(starlette_app(), mfa_auth))


async def options(client: httpx.AsyncClient) -> None:
    answer = await client.post("/api/auth/passkeys/signin/options", headers=JSON_CT)
    assert answer.status_code == 200, answer.text


def code_now(secret: str, clock: Clock) -> str:
    return pyotp.TOTP(secret).generate_otp(int(clock.now.timestamp()) // 30)


async def test_cleanup_deletes_expired_passkey_challenges_in_batches(
    mfa_auth: Auth, client: httpx.AsyncClient, clock: Clock
) -> None:
    for _ in range(3):
        await options(client)
    assert (await mfa_auth.cleanup()).passkey_challenges == 0  # still live
    clock.advance(timedelta(minutes=5, seconds=1))
    first = await mfa_auth.cleanup(batch_size=2, max_batches=1)
    assert first.passkey_challenges == 2
    rest = await mfa_auth.cleanup(batch_size=2)
    assert rest.passkey_challenges == 1
    assert (await mfa_auth.cleanup()).passkey_challenges == 0


async def test_a_live_challenge_survives_cleanup_and_is_counted_once_it_expires(
    mfa_auth: Auth, client: httpx.AsyncClient, clock: Clock
) -> None:
    await options(client)
    clock.advance(timedelta(minutes=4))
    assert (await mfa_auth.cleanup()).passkey_challenges == 0
    clock.advance(timedelta(minutes=1))
    report = await mfa_auth.cleanup()
    assert report.passkey_challenges == 1
    assert report.totp_enrolments == 0


async def test_an_enrolment_nobody_confirmed_expires_after_an_hour_and_cleanup_deletes_it(
    mfa_auth: Auth, client: httpx.AsyncClient, clock: Clock
) -> None:
    await sign_up(client)
    enrolled = await client.post("/api/auth/totp/enroll", headers=JSON_CT)
    assert enrolled.status_code == 200
    secret = enrolled.json()["secret"]
    json_accept = {"accept": "application/json"}
    assert (await client.get("/api/auth/totp", headers=json_accept)).json()["pending"] is True
    clock.advance(timedelta(minutes=59))
    assert (await mfa_auth.cleanup()).totp_enrolments == 0
    clock.advance(timedelta(minutes=1))
    assert (await sign_in(client)).status_code == 200  # a fresh sign-in: recent enough
    late = await client.post("/api/auth/totp/confirm", json={"code": code_now(secret, clock)})
    assert late.status_code == 400 and late.json() == {"error": "TotpNotEnabled"}
    status = (await client.get("/api/auth/totp", headers=json_accept)).json()
    assert status == {"enabled": False, "pending": False, "recoveryCodesLeft": 0}
    assert (await mfa_auth.cleanup()).totp_enrolments == 1
    assert (await mfa_auth.cleanup()).totp_enrolments == 0
    # Enrolling again works as ever.
    again = await client.post("/api/auth/totp/enroll", headers=JSON_CT)
    confirmed = await client.post(
        "/api/auth/totp/confirm", json={"code": code_now(again.json()["secret"], clock)}
    )
    assert confirmed.status_code == 200, confirmed.text


async def test_a_confirmed_secret_is_never_cleaned_up(
    mfa_auth: Auth, client: httpx.AsyncClient, clock: Clock
) -> None:
    await sign_up(client)
    enrolled = await client.post("/api/auth/totp/enroll", headers=JSON_CT)
    secret = enrolled.json()["secret"]
    confirmed = await client.post("/api/auth/totp/confirm", json={"code": code_now(secret, clock)})
    assert confirmed.status_code == 200
    clock.advance(timedelta(days=2))
    assert (await mfa_auth.cleanup()).totp_enrolments == 0
    status = await client.get("/api/auth/totp", headers={"accept": "application/json"})
    assert status.json()["enabled"] is True
