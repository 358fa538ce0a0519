"""TOTP second factor over HTTP: enrolment, the held-back sign-in, replay, drift, recovery codes,
rate limits, per_tab mode and step-up for changes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt as pyjwt
import pyotp
import pytest

from authbridge import Auth, AuthMiddleware
from tests.toolkit.clients import ClientFactory, sign_in, sign_up
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import PASSWORD, AuthFactory

from .conftest import FORM_CT, JSON_CT, starlette_app

TAB_A, TAB_B = "tabaaaaaaa", "tabbbbbbbb"


@pytest.fixture
async def totp_auth(auth_factory: AuthFactory) -> Auth:
    return await auth_factory(totp=True)


@pytest.fixture
def client(totp_auth: Auth, client_factory: ClientFactory) -> httpx.AsyncClient:
    return client_factory(AuthMiddleware(starlette_app(), totp_auth))


def code_at(secret: str, clock: FakeClock, steps: int = 0) -> str:
    step = int(clock.now.timestamp()) // 30 + steps
    return pyotp.TOTP(secret).generate_otp(step)


async def enrol(
    client: httpx.AsyncClient, clock: FakeClock, **headers: str
) -> tuple[str, list[str]]:
    """Enrol and confirm TOTP for the signed-in user; returns the secret and recovery codes."""
    started = await client.post("/api/auth/totp/enroll", headers={**JSON_CT, **headers})
    assert started.status_code == 200, started.text
    body = started.json()
    assert body["uri"].startswith("otpauth://totp/") and "secret=" + body["secret"] in body["uri"]
    assert body["qrSvg"].startswith("<svg") and "<script" not in body["qrSvg"]
    confirmed = await client.post(
        "/api/auth/totp/confirm",
        json={"code": code_at(body["secret"], clock)},
        headers=headers,
    )
    assert confirmed.status_code == 200, confirmed.text
    codes: list[str] = confirmed.json()["recoveryCodes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    return body["secret"], codes


async def totp(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await client.post("/api/auth/signin", json={"provider": "totp", "params": params})


async def signed_out(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/auth/signout", headers=JSON_CT)).status_code == 200


async def enrolled_and_signed_out(
    client: httpx.AsyncClient, clock: FakeClock
) -> tuple[str, list[str]]:
    await sign_up(client)
    secret, codes = await enrol(client, clock)
    await signed_out(client)
    clock.advance(60)  # the confirming step is used; start from a fresh one
    return secret, codes


async def test_a_password_sign_in_waits_for_the_code_then_records_both_factors(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    secret, _ = await enrolled_and_signed_out(client, clock)
    first = await sign_in(client)
    assert first.status_code == 200
    assert first.json() == {"started": True, "factor": "totp"}
    assert (await client.get("/whoami")).json()["userId"] is None  # no session yet
    done = await totp(client, code=code_at(secret, clock))
    assert done.status_code == 200 and done.json()["signedIn"] is True
    token = (await client.post("/api/auth/token", headers=JSON_CT)).json()["token"]
    assert pyjwt.decode(token, options={"verify_signature": False})["amr"] == [
        "pwd",
        "totp",
        "mfa",
    ]


async def test_a_used_time_step_cannot_be_replayed(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    secret, _ = await enrolled_and_signed_out(client, clock)
    code = code_at(secret, clock)
    await sign_in(client)
    assert (await totp(client, code=code)).status_code == 200
    await signed_out(client)
    await sign_in(client)
    replay = await totp(client, code=code)
    assert replay.status_code == 400 and replay.json() == {"error": "InvalidCode"}
    # An older step than the last one accepted is refused too, even inside the drift window.
    assert (await totp(client, code=code_at(secret, clock, -1))).status_code == 400
    clock.advance(30)
    assert (await totp(client, code=code_at(secret, clock))).status_code == 200


@pytest.mark.parametrize(
    ("steps", "accepted"), [(-2, False), (-1, True), (0, True), (1, True), (2, False)]
)
async def test_codes_one_step_either_side_are_accepted_at_a_step_boundary(
    client: httpx.AsyncClient, clock: FakeClock, steps: int, accepted: bool
) -> None:
    secret, _ = await enrolled_and_signed_out(client, clock)
    # Exactly at the start of a step.
    clock.advance(30 - int(clock.now.timestamp()) % 30)
    assert int(clock.now.timestamp()) % 30 == 0
    await sign_in(client)
    answer = await totp(client, code=code_at(secret, clock, steps))
    assert (answer.status_code == 200) is accepted, answer.text


async def test_a_code_of_the_step_that_just_ended_is_accepted_one_second_later(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    secret, _ = await enrolled_and_signed_out(client, clock)
    clock.advance(29 - int(clock.now.timestamp()) % 30)  # last second of a step
    code = code_at(secret, clock)
    await sign_in(client)
    clock.advance(1)  # the next step began
    assert (await totp(client, code=code)).status_code == 200


async def test_a_recovery_code_works_once(client: httpx.AsyncClient, clock: FakeClock) -> None:
    _, codes = await enrolled_and_signed_out(client, clock)
    await sign_in(client)
    done = await totp(client, recoveryCode=codes[3].upper())
    assert done.status_code == 200 and done.json()["signedIn"] is True
    status = await client.get("/api/auth/totp")
    assert status.json() == {"enabled": True, "pending": False, "recoveryCodesLeft": 9}
    await signed_out(client)
    await sign_in(client)
    again = await totp(client, recoveryCode=codes[3])
    assert again.status_code == 400 and again.json() == {"error": "InvalidCode"}


async def test_recovery_codes_are_stored_hashed(
    client: httpx.AsyncClient, clock: FakeClock, totp_auth: Auth
) -> None:
    from sqlalchemy import select

    _, codes = await enrolled_and_signed_out(client, clock)
    table = totp_auth.store.tables.recovery_codes
    totp_table = totp_auth.store.tables.totp
    async with totp_auth.store.read() as conn:
        stored = [r.code_hash for r in (await conn.execute(select(table))).all()]
        sealed = (await conn.execute(select(totp_table.c.sealed_secret))).scalar_one()
    assert len(stored) == 10
    flat = {c.replace("-", "") for c in codes}
    assert not flat.intersection(stored) and not set(codes).intersection(stored)
    assert all(len(h) == 64 for h in stored)
    assert not any(c.isupper() and len(c) == 32 for c in sealed.split("."))


async def test_wrong_codes_are_rate_limited(client: httpx.AsyncClient, clock: FakeClock) -> None:
    secret, _ = await enrolled_and_signed_out(client, clock)
    await sign_in(client)
    right = code_at(secret, clock)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    statuses = [(await totp(client, code=wrong)).status_code for _ in range(10)]
    assert statuses == [400] * 10
    blocked = await totp(client, code=right)
    assert blocked.status_code == 429 and blocked.json() == {"error": "TooManyAttempts"}
    assert "retry-after" in blocked.headers


async def test_the_pending_sign_in_expires_after_five_minutes(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    secret, _ = await enrolled_and_signed_out(client, clock)
    await sign_in(client)
    clock.advance(timedelta(minutes=5, seconds=1))
    late = await totp(client, code=code_at(secret, clock))
    assert late.status_code == 400 and late.json() == {"error": "InvalidCode"}


async def test_a_code_without_a_pending_sign_in_is_refused(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    secret, _ = await enrolled_and_signed_out(client, clock)
    alone = await totp(client, code=code_at(secret, clock))
    assert alone.status_code == 400 and alone.json() == {"error": "InvalidCode"}
    forged = await client.post(
        "/api/auth/signin",
        json={"provider": "totp", "params": {"code": code_at(secret, clock)}},
        headers={"cookie": "__Host-authbridge.mfa=eyJ1IjoieCJ9.AAAA"},
    )
    assert forged.status_code == 400


async def test_each_tab_completes_its_own_second_step_in_per_tab_mode(
    auth_factory: AuthFactory, client_factory: ClientFactory, clock: FakeClock
) -> None:
    auth = await auth_factory(totp=True, session_sharing="per_tab")
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    a, b = {"x-authbridge-tab": TAB_A}, {"x-authbridge-tab": TAB_B}
    signed_up = await client.post(
        "/api/auth/signin",
        json={
            "provider": "password",
            "params": {"flow": "signUp", "email": "ada@example.com", "password": PASSWORD},
        },
        headers=a,
    )
    assert signed_up.status_code == 200
    secret, _ = await enrol(client, clock, **a)
    await client.post("/api/auth/signout", headers={**JSON_CT, **a})
    clock.advance(60)
    params = {"flow": "signIn", "email": "ada@example.com", "password": PASSWORD}
    started = await client.post(
        "/api/auth/signin", json={"provider": "password", "params": params}, headers=a
    )
    assert started.json() == {"started": True, "factor": "totp"}
    code = code_at(secret, clock)
    # Tab B has no pending sign-in of its own: the code does not sign it in.
    other = await client.post(
        "/api/auth/signin", json={"provider": "totp", "params": {"code": code}}, headers=b
    )
    assert other.status_code == 400
    mine = await client.post(
        "/api/auth/signin", json={"provider": "totp", "params": {"code": code}}, headers=a
    )
    assert mine.status_code == 200 and mine.json()["signedIn"] is True
    assert (await client.get("/whoami", headers=a)).json()["userId"] == mine.json()["userId"]
    assert (await client.get("/whoami", headers=b)).json()["userId"] is None


async def test_a_form_sign_in_goes_back_to_the_page_to_ask_for_the_code(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    secret, _ = await enrolled_and_signed_out(client, clock)
    answer = await client.post(
        "/api/auth/signin",
        content=urlencode(
            {
                "provider": "password",
                "flow": "signIn",
                "email": "ada@example.com",
                "password": PASSWORD,
                "redirectTo": "/notes",
            }
        ),
        headers={**FORM_CT, "referer": "https://testserver/signin"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signin?factor=totp&next=%2Fnotes"
    done = await client.post(
        "/api/auth/signin",
        content=f"provider=totp&code={code_at(secret, clock)}&redirectTo=%2Fnotes",
        headers=FORM_CT,
    )
    assert done.status_code == 303 and done.headers["location"] == "/notes"
    assert (await client.get("/whoami")).json()["userId"] is not None


async def test_changing_the_second_factor_needs_a_recent_sign_in(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    secret, _ = await enrolled_and_signed_out(client, clock)
    await sign_in(client)
    await totp(client, code=code_at(secret, clock))
    clock.advance(timedelta(minutes=10, seconds=1))
    stale = await client.post("/api/auth/totp/disable", headers=JSON_CT)
    assert stale.status_code == 401 and stale.json() == {"error": "RecentAuthRequired"}
    renew = await client.post("/api/auth/totp/recovery-codes", headers=JSON_CT)
    assert renew.status_code == 401
    await sign_in(client)
    await totp(client, code=code_at(secret, clock))
    disabled = await client.post("/api/auth/totp/disable", headers=JSON_CT)
    assert disabled.status_code == 200 and disabled.json() == {"enabled": False}
    await signed_out(client)
    assert (await sign_in(client)).json()["signedIn"] is True  # no second step any more


async def test_enrolment_needs_a_signed_in_user_and_a_correct_first_code(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    anonymous = await client.post("/api/auth/totp/enroll", headers=JSON_CT)
    assert anonymous.status_code == 401 and anonymous.json() == {"error": "Unauthenticated"}
    await sign_up(client)
    body = (await client.post("/api/auth/totp/enroll", headers=JSON_CT)).json()
    wrong = f"{(int(code_at(body['secret'], clock)) + 1) % 1_000_000:06d}"
    refused = await client.post("/api/auth/totp/confirm", json={"code": wrong})
    assert refused.status_code == 400 and refused.json() == {"error": "InvalidCode"}
    status = (await client.get("/api/auth/totp")).json()
    assert status == {"enabled": False, "pending": True, "recoveryCodesLeft": 0}
    # Until confirmed, sign-in is not held back.
    await signed_out(client)
    assert (await sign_in(client)).json()["signedIn"] is True
    again = await client.post(
        "/api/auth/totp/confirm", json={"code": code_at(body["secret"], clock)}
    )
    assert again.status_code == 200
    twice: Any = await client.post("/api/auth/totp/enroll", headers=JSON_CT)
    assert twice.status_code == 400 and twice.json() == {"error": "TotpAlreadyEnabled"}


async def test_the_built_in_sign_in_page_asks_for_the_code_without_javascript(
    totp_auth: Auth, client_factory: ClientFactory, clock: FakeClock
) -> None:
    from starlette.applications import Starlette

    # An app without a /signin page of its own: the middleware serves the built-in one.
    client = client_factory(AuthMiddleware(Starlette(), totp_auth))
    secret, _ = await enrolled_and_signed_out(client, clock)
    html = {"accept": "text/html"}
    plain = (await client.get("/signin", headers=html)).text
    assert 'id="totp-form"' not in plain and 'id="reauth-notice"' not in plain
    posted = await client.post(
        "/api/auth/signin",
        content=urlencode(
            {
                "provider": "password",
                "flow": "signIn",
                "email": "ada@example.com",
                "password": PASSWORD,
                "redirectTo": "/private",
            }
        ),
        headers={**FORM_CT, "referer": "https://testserver/signin?next=%2Fprivate"},
    )
    assert posted.status_code == 303
    page = (await client.get(posted.headers["location"], headers=html)).text
    assert 'id="totp-form"' in page and 'name="redirectTo" value="/private"' in page
    done = await client.post(
        "/api/auth/signin",
        content=urlencode(
            {"provider": "totp", "code": code_at(secret, clock), "redirectTo": "/private"}
        ),
        headers=FORM_CT,
    )
    assert done.status_code == 303 and done.headers["location"] == "/private"
    token = (await client.post("/api/auth/token", headers=JSON_CT)).json()["token"]
    assert pyjwt.decode(token, options={"verify_signature": False})["amr"][-1] == "mfa"
    reauth = (await client.get("/signin?reauth=1", headers=html)).text
    assert 'id="reauth-notice"' in reauth
