"""TOTP management and the second step, refused with a stable code when there is nothing to act
on or the request is malformed; and recovery codes renewed (the old ones stop working)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pyotp
import pytest

from authbridge import Auth, AuthMiddleware
from tests.toolkit.clients import ClientFactory, sign_in, sign_up
from tests.toolkit.clock import FakeClock as Clock
from tests.toolkit.engines import AuthFactory

from .conftest import JSON_CT, starlette_app


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """Refusals decided before the store changes anything: SQLite only (test_totp.py runs the
    flows on both backends)."""
    return f"sqlite+aiosqlite:///{tmp_path}/auth.db"


@pytest.fixture
async def totp_auth(auth_factory: AuthFactory) -> Auth:
    return await auth_factory(totp=True)


@pytest.fixture
def client(totp_auth: Auth, client_factory: ClientFactory) -> httpx.AsyncClient:
    return client_factory(AuthMiddleware(starlette_app(), totp_auth))


def code_now(secret: str, clock: Clock) -> str:
    return pyotp.TOTP(secret).generate_otp(int(clock.now.timestamp()) // 30)


async def enrolled(client: httpx.AsyncClient, clock: Clock) -> tuple[str, list[str]]:
    """Sign up and enable TOTP; returns the secret and the recovery codes."""
    await sign_up(client)
    secret = (await client.post("/api/auth/totp/enroll", headers=JSON_CT)).json()["secret"]
    confirmed = await client.post("/api/auth/totp/confirm", json={"code": code_now(secret, clock)})
    assert confirmed.status_code == 200, confirmed.text
    codes: list[str] = confirmed.json()["recoveryCodes"]
    return secret, codes


async def second_step(client: httpx.AsyncClient, **params: object) -> httpx.Response:
    return await client.post("/api/auth/signin", json={"provider": "totp", "params": params})


async def test_managing_totp_that_is_not_enabled_is_refused(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    for path in ("totp/disable", "totp/recovery-codes", "totp/confirm"):
        body = {"code": "123456"} if path == "totp/confirm" else {}
        response = await client.post(f"/api/auth/{path}", json=body)
        assert (response.status_code, response.json()) == (400, {"error": "TotpNotEnabled"}), path


async def test_confirming_twice_is_refused(client: httpx.AsyncClient, clock: Clock) -> None:
    secret, _ = await enrolled(client, clock)
    clock.advance(30)
    again = await client.post("/api/auth/totp/confirm", json={"code": code_now(secret, clock)})
    assert (again.status_code, again.json()) == (400, {"error": "TotpNotEnabled"})


@pytest.mark.parametrize("code", [123456, None, ["123456"]])
async def test_a_confirmation_code_must_be_text(client: httpx.AsyncClient, code: object) -> None:
    await sign_up(client)
    await client.post("/api/auth/totp/enroll", headers=JSON_CT)
    response = await client.post("/api/auth/totp/confirm", json={"code": code})
    assert (response.status_code, response.json()["error"]) == (400, "InvalidParams")


async def test_renewed_recovery_codes_replace_the_old_ones(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, old_codes = await enrolled(client, clock)
    renewed = await client.post("/api/auth/totp/recovery-codes", headers=JSON_CT)
    assert renewed.status_code == 200
    new_codes = renewed.json()["recoveryCodes"]
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    assert (await client.get("/api/auth/totp")).json()["recoveryCodesLeft"] == 10
    await client.post("/api/auth/signout", headers=JSON_CT)
    await sign_in(client)
    stale = await second_step(client, recoveryCode=old_codes[0])
    assert (stale.status_code, stale.json()) == (400, {"error": "InvalidCode"})
    fresh = await second_step(client, recoveryCode=new_codes[0])
    assert fresh.status_code == 200 and fresh.json()["signedIn"] is True


@pytest.mark.parametrize(
    "params", [{}, {"code": 123456}, {"recoveryCode": None}], ids=["nothing", "number", "null"]
)
async def test_a_second_step_without_a_code_is_invalid_params(
    client: httpx.AsyncClient, clock: Clock, params: dict[str, object]
) -> None:
    await enrolled(client, clock)
    await client.post("/api/auth/signout", headers=JSON_CT)
    await sign_in(client)
    response = await second_step(client, **params)
    assert (response.status_code, response.json()["error"]) == (400, "InvalidParams")


@pytest.mark.parametrize("code", ["abcdef", "12345", "1234567", ""])
async def test_a_code_that_is_not_six_digits_is_wrong(
    client: httpx.AsyncClient, clock: Clock, code: str
) -> None:
    await enrolled(client, clock)
    await client.post("/api/auth/signout", headers=JSON_CT)
    await sign_in(client)
    response = await second_step(client, code=code)
    assert (response.status_code, response.json()) == (400, {"error": "InvalidCode"})


async def test_totp_disabled_during_a_pending_sign_in_cannot_complete_it(
    client: httpx.AsyncClient, totp_auth: Auth, client_factory: ClientFactory, clock: Clock
) -> None:
    """Another device disables TOTP while this browser waits at the second step: its pending
    sign-in cannot be finished with a code of the removed secret."""
    secret, _ = await enrolled(client, clock)
    other = client_factory(AuthMiddleware(starlette_app(), totp_auth))
    await sign_in(other)
    clock.advance(30)
    assert (await second_step(other, code=code_now(secret, clock))).status_code == 200
    await client.post("/api/auth/signout", headers=JSON_CT)
    await sign_in(client)  # held back at the second step
    disabled = await other.post("/api/auth/totp/disable", headers=JSON_CT)
    assert disabled.json() == {"enabled": False}
    clock.advance(30)
    response = await second_step(client, code=code_now(secret, clock))
    assert (response.status_code, response.json()) == (400, {"error": "InvalidCode"})
